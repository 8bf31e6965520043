//! One rule line: the words iptables-restore hands to `do_command`, read like getopt_long
//! reads them (SEMANTICS.md §1.3–1.4), with options bound to the most recently loaded
//! module that has them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use super::modules::{self, Arg, Cx, OptDef, Owner, Val};
use crate::diag::Diagnostic;
use crate::model::{
    Chain, Cidr, Counters, Family, IfaceName, IpMatch, MatchItem, Neg, Policy, Proto, Rule, Span, TableName, Target,
    TargetItem,
};

/// The chains of the table a rule line is read in, in declaration order, with an index by
/// name (a rule's `-j NAME` is looked up in constant time).
#[derive(Clone, Copy)]
pub(crate) struct ChainSet<'a> {
    /// Position in `chains` by name.
    pub index: &'a HashMap<String, usize>,
    /// The chains so far.
    pub chains: &'a [Chain],
}

impl ChainSet<'_> {
    /// True when the table has a chain called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Every chain name, in declaration order (for hints; allocates).
    pub fn names(&self) -> Vec<String> {
        self.chains.iter().map(|c| c.name.clone()).collect()
    }
}

/// A word of a rule line after tokenizing.
#[derive(Clone, Debug)]
pub(crate) struct Tok<'t> {
    /// Unquoted text: borrowed from the file unless quoting had to be removed.
    pub text: Cow<'t, str>,
    /// Where it stands.
    pub span: Span,
    /// True when any part was double-quoted (then it is never an option or `!`).
    pub quoted: bool,
}

/// What a rule line asks for (built once per line, moved into the model right away).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// `-A CHAIN …` or `-I CHAIN [N] …`
    Append {
        /// Chain name and its span.
        chain: (String, Span),
        /// The rule.
        rule: Rule,
        /// `-I` position (1-based), `None` for `-A`.
        insert_at: Option<usize>,
        /// Family implied by the rule's addresses.
        family: Option<Family>,
    },
    /// `-N CHAIN`
    NewChain {
        /// Name and span.
        name: (String, Span),
    },
    /// `-P CHAIN POLICY`
    Policy {
        /// Chain and span.
        chain: (String, Span),
        /// New policy.
        policy: Policy,
    },
}

/// Global options of iptables (`original_opts` in iptables.c): long name, short letter, arg.
const GLOBAL: &[(&str, char, Arg)] = &[
    ("append", 'A', Arg::Required),
    ("delete", 'D', Arg::Required),
    ("check", 'C', Arg::Required),
    ("insert", 'I', Arg::Required),
    ("replace", 'R', Arg::Required),
    ("list", 'L', Arg::Optional),
    ("list-rules", 'S', Arg::Optional),
    ("flush", 'F', Arg::Optional),
    ("zero", 'Z', Arg::Optional),
    ("new-chain", 'N', Arg::Required),
    ("delete-chain", 'X', Arg::Optional),
    ("rename-chain", 'E', Arg::Required),
    ("policy", 'P', Arg::Required),
    ("source", 's', Arg::Required),
    ("destination", 'd', Arg::Required),
    ("src", 's', Arg::Required),
    ("dst", 'd', Arg::Required),
    ("protocol", 'p', Arg::Required),
    ("in-interface", 'i', Arg::Required),
    ("jump", 'j', Arg::Required),
    ("table", 't', Arg::Required),
    ("match", 'm', Arg::Required),
    ("numeric", 'n', Arg::None),
    ("out-interface", 'o', Arg::Required),
    ("verbose", 'v', Arg::None),
    ("wait", 'w', Arg::Optional),
    ("wait-interval", 'W', Arg::Optional),
    ("exact", 'x', Arg::None),
    ("fragments", 'f', Arg::None),
    ("version", 'V', Arg::None),
    ("help", 'h', Arg::Optional),
    ("line-numbers", '0', Arg::None),
    ("modprobe", 'M', Arg::Required),
    ("set-counters", 'c', Arg::Required),
    ("goto", 'g', Arg::Required),
    ("ipv4", '4', Arg::None),
    ("ipv6", '6', Arg::None),
];

/// Where an option resolved to.
enum Resolved {
    Global(char),
    Module(usize, usize),
    Target(usize),
}

struct Loaded {
    parser: Box<dyn modules::MatchParser>,
    start: Span,
    end: Span,
    implicit: bool,
}

struct State<'a> {
    toks: &'a [Tok<'a>],
    i: usize,
    family: Family,
    family_seen: Option<Family>,
    table: TableName,
    ip: IpMatch,
    matches: Vec<Loaded>,
    target: Option<(Box<dyn modules::TargetParser>, bool, Span, Span)>,
    command: Option<(char, String, Span)>,
    insert_at: Option<usize>,
    policy: Option<(String, Span)>,
    counters: Option<Counters>,
    proto_loaded: bool,
    diags: &'a mut Vec<Diagnostic>,
}

/// Lowers one rule line. Errors are pushed to `diags` and give `None`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lower_rule_line(
    toks: &[Tok<'_>],
    line_span: Span,
    counters: Option<Counters>,
    table: TableName,
    chains: ChainSet<'_>,
    family: Option<Family>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Command> {
    let mut st = State {
        toks,
        i: 0,
        family: family.unwrap_or(Family::V4),
        family_seen: None,
        table,
        ip: IpMatch::default(),
        matches: Vec::new(),
        target: None,
        command: None,
        insert_at: None,
        policy: None,
        counters,
        proto_loaded: false,
        diags,
    };
    let _ = line_span;
    match st.run(chains) {
        Ok(cmd) => cmd,
        Err(d) => {
            st.diags.push(d);
            None
        }
    }
}

fn err(code: &'static str, span: Span, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::error(code, span, msg)
}

impl State<'_> {
    fn run(&mut self, chains: ChainSet<'_>) -> Result<Option<Command>, Diagnostic> {
        let mut invert: Option<Span> = None;
        // The words outlive `self`'s borrows: options are passed on as slices of them.
        let toks = self.toks;
        while self.i < toks.len() {
            let tok = &toks[self.i];
            self.i += 1;
            if !tok.quoted && tok.text == "!" {
                if let Some(prev) = invert {
                    return Err(err("E0104", prev.to(tok.span), "multiple consecutive `!`")
                        .note("iptables: multiple consecutive ! not allowed")
                        .help("use a single `!`"));
                }
                invert = Some(tok.span);
                continue;
            }
            let text: &str = &tok.text;
            let (resolved, name, inline_val) = if tok.quoted || !text.starts_with('-') || text == "-" {
                return Err(self.stray(tok));
            } else if let Some(long) = text.strip_prefix("--") {
                let (n, v) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                match self.resolve_long(n, tok)? {
                    // The option as written, up to `=`: `--NAME` (`-NAME` when `NAME`
                    // itself starts with `-`, as iptables prints it).
                    Some(r) => (r, if n.starts_with('-') { n } else { &text[..2 + n.len()] }, v.map(str::to_string)),
                    None => {
                        // An implicit protocol module was loaded; read the word again.
                        self.i -= 1;
                        continue;
                    }
                }
            } else {
                let c = text[1..].chars().next().unwrap_or('-');
                let rest = &text[1 + c.len_utf8()..];
                let Some(&(long, short, arg)) = GLOBAL.iter().find(|(_, s, _)| *s == c) else {
                    return Err(err("E0101", tok.span, format!("unknown option `-{c}`"))
                        .help("see `iptables -h` for the options of a rule"));
                };
                let _ = long;
                if !rest.is_empty() && arg == Arg::None {
                    return Err(err("E0101", tok.span, format!("unknown option `{text}`"))
                        .note("combined short options are not supported by fwverify")
                        .help("write each option separately"));
                }
                (Resolved::Global(short), &text[..1 + c.len_utf8()], (!rest.is_empty()).then(|| rest.to_string()))
            };
            let inv = invert.take();
            self.apply(resolved, name, inv, inline_val, tok.span, chains)?;
        }
        if let Some(s) = invert {
            return Err(err("E0104", s, "`!` at the end of the rule").help("put `!` before the option it negates"));
        }
        self.finish()
    }

    /// A word that is neither an option nor the value of one.
    fn stray(&self, tok: &Tok<'_>) -> Diagnostic {
        let prev = self.i.checked_sub(2).map(|j| &*self.toks[j].text).unwrap_or("");
        let mut d = err("E0101", tok.span, format!("unexpected word `{}`", tok.text))
            .label("not an option and not the value of one")
            .note(format!("iptables-restore: Bad argument `{}'", tok.text));
        if prev == "!" && self.i >= 3 {
            let opt = &self.toks[self.i - 3].text;
            d = d.help(format!("`{opt} ! VALUE` is the old intrapositioned negation; write `! {opt} {}`", tok.text));
        } else if tok.text.starts_with('#') {
            d = d.help("comments must start at column 0 on a line of their own; use `-m comment --comment \"…\"` for rule comments");
        } else if tok.text.contains('/') && prev.starts_with('-') {
            d = d.help(format!("`{prev}` takes no value here, or a value was given twice"));
        }
        d
    }

    fn resolve_long(&mut self, name: &str, tok: &Tok<'_>) -> Result<Option<Resolved>, Diagnostic> {
        // Exact matches first, in getopt's table order: globals, then newest module first.
        if let Some(&(_, c, _)) = GLOBAL.iter().find(|(n, _, _)| *n == name) {
            return Ok(Some(Resolved::Global(c)));
        }
        if let Some(r) = self.find_owned(|n| n == name) {
            return Ok(Some(r));
        }
        // An option of a known module that is not loaded: say so before getopt's prefix
        // matching turns `--set` into `--set-counters` (SEMANTICS.md §1.6).
        let prefix_hits = self.prefix_candidates(name);
        if prefix_hits.is_empty() {
            if self.load_implicit_proto(name, tok.span)? {
                return Ok(None);
            }
            if let Some(r) = self.give_to_schemaless(name) {
                return Ok(Some(r));
            }
        }
        let owner_module = modules::module_with_option(name);
        if let Some(module) = owner_module {
            if prefix_hits.iter().all(|(_, global)| *global) {
                return Err(self.missing_module(name, module, tok, &prefix_hits));
            }
        }
        match prefix_hits.len() {
            0 => Err(self.unknown_option(name, tok)),
            1 => Ok(Some(prefix_hits.into_iter().next().expect("one").0)),
            _ => Err(err("E0101", tok.span, format!("option `--{name}` is ambiguous"))
                .note("iptables accepts unambiguous abbreviations of long options only")
                .help("write the option in full")),
        }
    }

    fn find_owned(&self, pred: impl Fn(&str) -> bool) -> Option<Resolved> {
        let mut owners: Vec<(usize, Owner)> = Vec::new();
        if let Some((t, _, _, _)) = &self.target {
            owners.push((usize::MAX, Owner::Target(t.opts())));
        }
        for (k, m) in self.matches.iter().enumerate().rev() {
            owners.push((k, Owner::Match(m.parser.opts())));
        }
        // The target was loaded after or before matches; order by load time.
        let target_after = self
            .target
            .as_ref()
            .map(|(_, _, s, _)| self.matches.last().map(|m| s.start > m.start.start).unwrap_or(true));
        if target_after == Some(false) {
            owners.rotate_left(1);
        }
        for (k, o) in owners {
            let opts = match o {
                Owner::Target(o) | Owner::Match(o) => o,
            };
            if let Some(j) = opts.iter().position(|d| pred(d.name)) {
                return Some(if k == usize::MAX { Resolved::Target(j) } else { Resolved::Module(k, j) });
            }
        }
        None
    }

    /// Every option `name` abbreviates, with whether it is a global option. Options with
    /// the same meaning (src/source) count once.
    fn prefix_candidates(&self, name: &str) -> Vec<(Resolved, bool)> {
        let mut out: Vec<(Resolved, bool)> = Vec::new();
        let mut seen_globals: Vec<char> = Vec::new();
        for &(n, c, _) in GLOBAL {
            if n.starts_with(name) && !seen_globals.contains(&c) {
                seen_globals.push(c);
                out.push((Resolved::Global(c), true));
            }
        }
        if let Some((t, _, _, _)) = &self.target {
            for (j, d) in t.opts().iter().enumerate() {
                if d.name.starts_with(name) {
                    out.push((Resolved::Target(j), false));
                }
            }
        }
        for (k, m) in self.matches.iter().enumerate().rev() {
            for (j, d) in m.parser.opts().iter().enumerate() {
                if d.name.starts_with(name) {
                    out.push((Resolved::Module(k, j), false));
                }
            }
        }
        out
    }

    fn give_to_schemaless(&mut self, name: &str) -> Option<Resolved> {
        let _ = name;
        if let Some((t, _, _, _)) = &self.target {
            if t.schemaless() {
                return Some(Resolved::Target(usize::MAX));
            }
        }
        let k = self.matches.iter().rposition(|m| m.parser.schemaless())?;
        Some(Resolved::Module(k, usize::MAX))
    }

    /// Loads the `-p` protocol's match implicitly, as iptables does for an option no loaded
    /// module knows, but only when that match has the option `--name` (or one it
    /// abbreviates): an option of a schemaless opaque module must not leave an empty
    /// `-m tcp` behind (`-p udp -m conntrack --ctstate NEW` saves without `-m udp`).
    fn load_implicit_proto(&mut self, name: &str, at: Span) -> Result<bool, Diagnostic> {
        if self.proto_loaded {
            return Ok(false);
        }
        let Some(p) = self.ip.proto else { return Ok(false) };
        let module = match (p.val, self.family) {
            (Proto::TCP, _) => "tcp",
            (Proto::UDP, _) => "udp",
            (Proto::ICMP, Family::V4) => "icmp",
            (Proto::ICMPV6, Family::V6) => "icmp6",
            (Proto(132), _) => "sctp",
            (Proto(33), _) => "dccp",
            (Proto(136), _) => "udplite",
            _ => return Ok(false),
        };
        if self.matches.iter().any(|m| m.parser.name() == module) {
            return Ok(false);
        }
        let Some(parser) = modules::match_parser(module, self.family) else { return Ok(false) };
        let owns = if parser.schemaless() {
            // Takes any option: claim it unless a loaded schemaless module can take it.
            modules::module_with_option(name) == Some(module) || !self.matches.iter().any(|m| m.parser.schemaless())
        } else {
            parser.opts().iter().any(|d| d.name.starts_with(name))
        };
        if !owns {
            return Ok(false);
        }
        self.proto_loaded = true;
        self.matches.push(Loaded { parser, start: at, end: at, implicit: true });
        Ok(true)
    }

    fn missing_module(&self, name: &str, module: &str, tok: &Tok<'_>, prefix_hits: &[(Resolved, bool)]) -> Diagnostic {
        let proto_module = matches!(module, "tcp" | "udp" | "icmp" | "icmp6" | "sctp" | "dccp");
        let mut d = err("E0103", tok.span, format!("option `--{name}` given without `-m {module}`"))
            .label(format!("belongs to the {module} module"));
        if let Some((Resolved::Global(c), _)) = prefix_hits.first() {
            let long = GLOBAL.iter().find(|(_, s, _)| s == c).map(|(n, _, _)| *n).unwrap_or("");
            let what = if *c == 'c' { "-c packet counter not numeric" } else { "a confusing error" };
            d = d.note(format!(
                "iptables-restore reads `--{name}` as an abbreviation of `--{long}` and reports \"{what}\""
            ));
        } else {
            d = d.note(format!("iptables-restore: unknown option \"--{name}\""));
        }
        if proto_module {
            let proto = if module == "icmp6" { "ipv6-icmp" } else { module };
            match self.ip.proto {
                Some(p) if p.inv => d.help(format!("`--{name}` cannot be used with `! -p`; remove the `!`")),
                _ => d.help(format!("add `-p {proto}` (or `-m {module}`) before `--{name}`")),
            }
        } else {
            d.help(format!("add `-m {module}` before `--{name}`"))
        }
    }

    fn unknown_option(&self, name: &str, tok: &Tok<'_>) -> Diagnostic {
        let mut d = err("E0101", tok.span, format!("unknown option `--{name}`"))
            .note(format!("iptables-restore: unknown option \"--{name}\""));
        let mut all: Vec<String> = GLOBAL.iter().map(|(n, _, _)| n.to_string()).collect();
        for m in &self.matches {
            all.extend(m.parser.opts().iter().map(|o| o.name.to_string()));
        }
        if let Some((t, _, _, _)) = &self.target {
            all.extend(t.opts().iter().map(|o| o.name.to_string()));
        }
        if let Some(s) = super::lower::suggest(name, &all) {
            d = d.help(format!("did you mean `--{s}`?"));
        } else if self.matches.is_empty() {
            d = d.help("options of a match need `-m MODULE` before them");
        }
        d
    }

    /// Takes the value of an option: inline (`--opt=v`, `-pTCP`) or the next word.
    fn value(&mut self, inline: Option<String>, opt_span: Span, name: &str) -> Result<Val, Diagnostic> {
        if let Some(v) = inline {
            return Ok(Val { text: v, span: opt_span });
        }
        match self.toks.get(self.i) {
            Some(t) => {
                self.i += 1;
                Ok(Val { text: t.text.to_string(), span: t.span })
            }
            None => Err(err("E0102", opt_span, format!("option `{name}` needs a value"))
                .label("value missing")
                .help(format!("write `{name} VALUE`"))),
        }
    }

    fn optional_value(&mut self, inline: Option<String>, opt_span: Span) -> Option<Val> {
        if let Some(v) = inline {
            return Some(Val { text: v, span: opt_span });
        }
        let t = self.toks.get(self.i)?;
        if t.quoted || (!t.text.starts_with('-') && t.text != "!") {
            self.i += 1;
            return Some(Val { text: t.text.to_string(), span: t.span });
        }
        None
    }

    fn apply(
        &mut self,
        r: Resolved,
        opt_name: &str,
        inv: Option<Span>,
        inline: Option<String>,
        span: Span,
        chains: ChainSet<'_>,
    ) -> Result<(), Diagnostic> {
        match r {
            Resolved::Global(c) => self.global(c, opt_name, inv, inline, span, chains),
            Resolved::Module(k, j) => {
                let def = if j == usize::MAX {
                    OptDef { name: "", arg: Arg::Optional, inv: true }
                } else {
                    self.matches[k].parser.opts()[j]
                };
                let val = self.take_arg(def, inline, span, opt_name)?;
                check_inv(def, inv, opt_name, self.matches[k].parser.name())?;
                let mut cx =
                    Cx { family: self.family, proto: self.ip.proto, table: self.table, diags: self.diags, at: span };
                let bare = if j == usize::MAX { opt_name.trim_start_matches('-') } else { def.name };
                self.matches[k].parser.take(j, bare, inv.is_some(), val, &mut cx)?;
                let end = self.toks[self.i - 1].span;
                self.matches[k].end = end;
                Ok(())
            }
            Resolved::Target(j) => {
                let (t, _, _, _) = self.target.as_mut().expect("resolved to the target");
                let def =
                    if j == usize::MAX { OptDef { name: "", arg: Arg::Optional, inv: true } } else { t.opts()[j] };
                let val = self.take_arg(def, inline, span, opt_name)?;
                let (t, _, _, end) = self.target.as_mut().expect("resolved to the target");
                check_inv(def, inv, opt_name, t.name())?;
                let mut cx =
                    Cx { family: self.family, proto: self.ip.proto, table: self.table, diags: self.diags, at: span };
                let bare = if j == usize::MAX { opt_name.trim_start_matches('-') } else { def.name };
                t.take(j, bare, inv.is_some(), val, &mut cx)?;
                *end = self.toks[self.i - 1].span;
                Ok(())
            }
        }
    }

    fn take_arg(
        &mut self,
        def: OptDef,
        inline: Option<String>,
        span: Span,
        name: &str,
    ) -> Result<Option<Val>, Diagnostic> {
        Ok(match def.arg {
            Arg::None => {
                if inline.is_some() {
                    return Err(err("E0101", span, format!("option `{name}` takes no value")));
                }
                None
            }
            Arg::Required => Some(self.value(inline, span, name)?),
            Arg::Optional => self.optional_value(inline, span),
            Arg::Two => {
                let a = self.value(inline, span, name)?;
                let b = self.value(None, span, name)?;
                Some(Val { text: format!("{} {}", a.text, b.text), span: a.span.to(b.span) })
            }
        })
    }

    fn global(
        &mut self,
        c: char,
        name: &str,
        inv: Option<Span>,
        inline: Option<String>,
        span: Span,
        chains: ChainSet<'_>,
    ) -> Result<(), Diagnostic> {
        let invertible = matches!(c, 's' | 'd' | 'i' | 'o' | 'p' | 'f');
        if let (Some(s), false) = (inv, invertible) {
            return Err(err("E0104", s, format!("`{name}` cannot be negated with `!`")).help("remove the `!`"));
        }
        let inv_b = inv.is_some();
        match c {
            'A' | 'I' | 'N' | 'P' | 'D' | 'R' | 'F' | 'Z' | 'X' | 'E' | 'C' | 'L' | 'S' => {
                if let Some((prev, _, s)) = &self.command {
                    return Err(err("E0106", span, format!("second command `{name}` in one rule line"))
                        .note(format!("the line already has `-{prev}` at column {}", s.start))
                        .help("write one command per line"));
                }
                let v = self.value(inline, span, name)?;
                if !matches!(c, 'A' | 'I' | 'N' | 'P') {
                    return Err(err("E0101", span, format!("command `{name}` is not supported in a ruleset file"))
                        .note("fwverify reads files as iptables-save writes them: -A, -I, -N and -P")
                        .help("apply the change to the ruleset and save it again"));
                }
                if c == 'I' {
                    if let Some(t) = self.toks.get(self.i) {
                        if let Ok(n) = t.text.parse::<usize>() {
                            self.i += 1;
                            self.insert_at = Some(n);
                        }
                    }
                    self.insert_at.get_or_insert(1);
                }
                if c == 'P' {
                    let p = self.value(None, span, name)?;
                    self.policy = Some((p.text, p.span));
                }
                self.command = Some((c, v.text, v.span));
                let _ = chains;
            }
            's' | 'd' => {
                let v = self.value(inline, span, name)?;
                if v.text == "!" {
                    let next = self.toks.get(self.i).map(|t| t.text.to_string()).unwrap_or_default();
                    return Err(err(
                        "E0104",
                        v.span,
                        format!("`{name} ! ADDRESS` is the old intrapositioned negation"),
                    )
                    .note("iptables 1.4.3 and later reject it: Bad argument")
                    .help(format!("write `! {name} {next}`")));
                }
                let cidr = self.address(&v)?;
                let slot = if c == 's' { &mut self.ip.src } else { &mut self.ip.dst };
                if slot.is_some() {
                    return Err(dup(span, name));
                }
                // `0/0` matches everything and is not saved.
                if !cidr.is_any() || inv_b {
                    *slot = Some(Neg { inv: inv_b, val: cidr });
                }
            }
            'i' | 'o' => {
                let v = self.value(inline, span, name)?;
                let Some(iface) = IfaceName::new(&v.text) else {
                    return Err(err(
                        "E0105",
                        v.span,
                        format!("interface name `{}` is {} characters long", v.text, v.text.len()),
                    )
                    .label("longer than 15 characters")
                    .note("iptables: interface name must be shorter than IFNAMSIZ (15)")
                    .help("use the real interface name (see `ip link`); `+` at the end matches a prefix"));
                };
                let slot = if c == 'i' { &mut self.ip.in_iface } else { &mut self.ip.out_iface };
                if slot.is_some() {
                    return Err(dup(span, name));
                }
                // `-i +` matches everything and is not saved, but the kernel still counts
                // the rule as conditional, so it is kept (the printer omits it).
                *slot = Some(Neg { inv: inv_b, val: iface });
            }
            'p' => {
                let v = self.value(inline, span, name)?;
                let Some(p) = Proto::parse(&v.text) else {
                    return Err(err("E0105", v.span, format!("unknown protocol `{}`", v.text))
                        .note(format!("iptables: unknown protocol \"{}\" specified", v.text))
                        .help("use a name from /etc/protocols (tcp, udp, icmp, …) or a number 0-255"));
                };
                if self.ip.proto.is_some() {
                    return Err(dup(span, name));
                }
                if p.0 == 0 {
                    if inv_b {
                        return Err(err("E0104", span, "`! -p all` matches nothing").help("remove the rule or the `!`"));
                    }
                } else {
                    self.ip.proto = Some(Neg { inv: inv_b, val: p });
                }
            }
            'f' => {
                if self.ip.fragment.is_some() {
                    return Err(dup(span, name));
                }
                if self.family == Family::V6 {
                    return Err(err("E0101", span, "`-f` is not available in ip6tables").help("use `-m frag` instead"));
                }
                self.ip.fragment = Some(inv_b);
            }
            'm' => {
                let v = self.value(inline, span, name)?;
                let module = v.text.clone();
                match modules::match_parser(&module, self.family) {
                    Some(p) => {
                        if p.is_opaque() {
                            self.diags.push(modules::opaque_warning(&module, v.span, false));
                        }
                        if [self.proto_name()].contains(&Some(module.as_str())) {
                            self.proto_loaded = true;
                        }
                        self.matches.push(Loaded { parser: p, start: span, end: v.span, implicit: false });
                    }
                    None => return Err(modules::unknown_module(&module, v.span, false)),
                }
            }
            'j' | 'g' => {
                let v = self.value(inline, span, name)?;
                if self.target.is_some() {
                    return Err(err("E0106", span, "second target in one rule")
                        .note("iptables: multiple -j flags not allowed")
                        .help("a rule has one target; use a user chain to do several things"));
                }
                let goto = c == 'g';
                let parser: Box<dyn modules::TargetParser> = if chains.contains(&v.text) {
                    if goto && crate::model::Hook::from_name(&v.text).is_some() {
                        return Err(err("E0208", v.span, format!("`-g {}` goes to a built-in chain", v.text))
                            .note(
                                "the kernel refuses jumps and gotos to built-in chains; the whole table fails to load",
                            )
                            .help("move the rules into a user-defined chain and go there"));
                    }
                    if crate::model::Hook::from_name(&v.text).is_some() {
                        return Err(err("E0208", v.span, format!("`-j {}` jumps to a built-in chain", v.text))
                            .note("the kernel refuses jumps to built-in chains; the whole table fails to load")
                            .help("move the rules into a user-defined chain and jump there"));
                    }
                    Box::new(modules::ChainTarget(v.text.clone()))
                } else if goto {
                    return Err(undefined_chain(&v, chains, true));
                } else {
                    match modules::target_parser(&v.text, self.family) {
                        Some(p) => {
                            if p.is_opaque() {
                                self.diags.push(modules::opaque_warning(&v.text, v.span, true));
                            }
                            p
                        }
                        None => return Err(undefined_chain(&v, chains, false)),
                    }
                };
                self.target = Some((parser, goto, span, v.span));
            }
            'c' => {
                let p = self.value(inline, span, name)?;
                let b = self.value(None, span, name)?;
                let parse = |v: &Val| {
                    v.text.parse::<u64>().map_err(|_| {
                        err("E0105", v.span, format!("counter `{}` is not a number", v.text))
                            .note("iptables: -c packet counter not numeric")
                            .help("write `-c PACKETS BYTES` with decimal numbers")
                    })
                };
                self.counters = Some(Counters { packets: parse(&p)?, bytes: parse(&b)? });
            }
            't' => {
                return Err(err("E0101", span, "`-t` is not allowed in a ruleset file")
                    .note("iptables-restore takes the table from the `*table` line")
                    .help("remove `-t TABLE`; put the rule in the right `*table` block"));
            }
            '4' => {
                if self.family == Family::V6 {
                    self.i = self.toks.len();
                }
            }
            '6' => {
                if self.family == Family::V4 {
                    // iptables ignores a line marked for ip6tables.
                    self.i = self.toks.len();
                    self.command = None;
                }
            }
            'w' | 'W' => {
                let _ = self.optional_value(inline, span);
            }
            _ => {
                return Err(
                    err("E0101", span, format!("option `{name}` has no meaning in a ruleset file")).help("remove it")
                );
            }
        }
        Ok(())
    }

    fn proto_name(&self) -> Option<&'static str> {
        match self.ip.proto.map(|p| p.val) {
            Some(Proto::TCP) => Some("tcp"),
            Some(Proto::UDP) => Some("udp"),
            Some(Proto::ICMP) => Some("icmp"),
            Some(Proto::ICMPV6) => Some("icmp6"),
            Some(Proto(132)) => Some("sctp"),
            _ => None,
        }
    }

    fn address(&mut self, v: &Val) -> Result<Cidr, Diagnostic> {
        let text = v.text.as_str();
        if text.contains(',') {
            return Err(err("E0105", v.span, format!("address list `{text}`"))
                .note("iptables expands comma lists into one rule per address; fwverify keeps one rule per line")
                .help("write one rule per address, as iptables-save does"));
        }
        let cidr = parse_cidr(text, self.family).map_err(|why| {
            err("E0105", v.span, format!("bad address `{text}`"))
                .label(why.clone())
                .note(format!("iptables: host/network `{text}' not found, or invalid mask"))
                .help("write an address with an optional /prefix or /dotted.mask; host names are not resolved")
        })?;
        if cidr.family() != self.family {
            let f = |x: Family| if x == Family::V4 { "IPv4" } else { "IPv6" };
            return Err(err("E0105", v.span, format!("{} address in an {} ruleset", f(cidr.family()), f(self.family)))
                .help("keep IPv4 rules in iptables-save files and IPv6 rules in ip6tables-save files"));
        }
        self.family_seen = Some(cidr.family());
        Ok(cidr)
    }

    fn finish(&mut self) -> Result<Option<Command>, Diagnostic> {
        let Some((c, chain, chain_span)) = self.command.take() else {
            if self.toks.is_empty() || self.i == self.toks.len() && self.toks.iter().any(|t| t.text == "-6") {
                return Ok(None);
            }
            let first = &self.toks[0];
            return Err(err("E0101", first.span, "rule line without a command")
                .note("every rule line starts with -A CHAIN (iptables-save writes nothing else)")
                .help("start the line with `-A CHAIN`"));
        };
        match c {
            'N' => return Ok(Some(Command::NewChain { name: (chain, chain_span) })),
            'P' => {
                let (p, s) = self.policy.take().unwrap_or_default();
                let policy = match p.as_str() {
                    "ACCEPT" => Policy::Accept,
                    "DROP" => Policy::Drop,
                    _ => {
                        return Err(
                            err("E0201", s, format!("bad policy `{p}`")).help("built-in chains take ACCEPT or DROP")
                        )
                    }
                };
                return Ok(Some(Command::Policy { chain: (chain, chain_span), policy }));
            }
            _ => {}
        }
        let mut matches = Vec::with_capacity(self.matches.len());
        let loaded = std::mem::take(&mut self.matches);
        for m in loaded {
            let span = m.start.to(m.end);
            let mut cx =
                Cx { family: self.family, proto: self.ip.proto, table: self.table, diags: self.diags, at: span };
            let implicit = m.implicit;
            let parsed = m.parser.finish(&mut cx)?;
            let _ = implicit;
            matches.push(MatchItem { m: parsed, span });
        }
        let target = match self.target.take() {
            Some((t, goto, start, end)) => {
                let span = start.to(end);
                let mut cx =
                    Cx { family: self.family, proto: self.ip.proto, table: self.table, diags: self.diags, at: span };
                let t: Target = t.finish(&mut cx)?;
                Some(TargetItem { t, goto, span })
            }
            None => None,
        };
        let span = self.toks.first().map(|t| t.span).unwrap_or_default().to(self
            .toks
            .last()
            .map(|t| t.span)
            .unwrap_or_default());
        let rule = Rule { span, counters: self.counters, ip: std::mem::take(&mut self.ip), matches, target };
        Ok(Some(Command::Append {
            chain: (chain, chain_span),
            rule,
            insert_at: if c == 'I' { self.insert_at } else { None },
            family: self.family_seen,
        }))
    }
}

fn dup(span: Span, name: &str) -> Diagnostic {
    err("E0107", span, format!("option `{name}` given twice"))
        .note("iptables: multiple flags of the same type not allowed")
        .help("give each option once; use two rules for two values")
}

fn check_inv(def: OptDef, inv: Option<Span>, name: &str, module: &str) -> Result<(), Diagnostic> {
    match inv {
        Some(s) if !def.inv => Err(err("E0104", s, format!("{module}: option `{name}` cannot be inverted"))
            .label("`!` not allowed here")
            .help("remove the `!`")),
        _ => Ok(()),
    }
}

fn undefined_chain(v: &Val, chains: ChainSet<'_>, goto: bool) -> Diagnostic {
    let mut d = err("E0205", v.span, format!("no chain or target named `{}`", v.text))
        .label(if goto { "goto needs a user-defined chain" } else { "not a chain of this table, nor a known target" })
        .note(format!("iptables-restore: Couldn't load target `{}'", v.text));
    let mut cands: Vec<String> = chains.names();
    cands.extend(modules::known_target_names().iter().map(|s| s.to_string()));
    d = match super::lower::suggest(&v.text, &cands) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None => d.help(format!("declare the chain with `:{} - [0:0]` before the rules that use it", v.text)),
    };
    d
}

/// Parses `ADDR[/LEN|/MASK]` of the given family (no host names).
pub(crate) fn parse_cidr(text: &str, family: Family) -> Result<Cidr, String> {
    let (a, m) = match text.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (text, None),
    };
    let addr: IpAddr =
        parse_ip(a, family).ok_or_else(|| "not an IP address (host names are not resolved)".to_string())?;
    let v4 = addr.is_ipv4();
    let width = if v4 { 32 } else { 128 };
    match m {
        None => Cidr::with_prefix(addr, width).ok_or_else(|| "bad address".into()),
        Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
            let len: u32 = m.parse().map_err(|_| format!("invalid mask `{m}`"))?;
            if len > width as u32 {
                return Err(format!("invalid mask `{m}`: at most {width}"));
            }
            Cidr::with_prefix(addr, len as u8).ok_or_else(|| format!("invalid mask `{m}`"))
        }
        Some(m) => {
            let mask: IpAddr = m.parse().map_err(|_| format!("invalid mask `{m}`"))?;
            Cidr::new(addr, mask).ok_or_else(|| format!("mask `{m}` is of the other address family"))
        }
    }
}

/// An IP address as inet_pton/inet_aton read it; IPv4 also in the short forms iptables
/// accepts (`0/0`, `10/8`: missing trailing octets are zero).
pub(crate) fn parse_ip(s: &str, family: Family) -> Option<IpAddr> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(a);
    }
    if family == Family::V4 || !s.contains(':') {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.is_empty() || parts.len() > 4 || parts.iter().any(|p| p.is_empty() || p.len() > 3) {
            return None;
        }
        let mut o = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            o[i] = p.parse().ok()?;
        }
        return Some(IpAddr::from(o));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_like_iptables() {
        assert_eq!(parse_cidr("0/0", Family::V4).unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(parse_cidr("10.0.0.1/24", Family::V4).unwrap().to_string(), "10.0.0.0/24");
        assert_eq!(parse_cidr("1.2.3.4", Family::V4).unwrap().to_string(), "1.2.3.4/32");
        assert_eq!(parse_cidr("192.168.1.0/255.255.255.0", Family::V4).unwrap().to_string(), "192.168.1.0/24");
        assert!(parse_cidr("1.2.3.4/33", Family::V4).is_err());
        assert!(parse_cidr("300.0.0.1", Family::V4).is_err());
        assert!(parse_cidr("host.example", Family::V4).is_err());
        assert_eq!(parse_cidr("fe80::1/64", Family::V6).unwrap().to_string(), "fe80::/64");
    }
}
