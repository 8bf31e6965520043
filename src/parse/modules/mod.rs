//! Per-module option parsers: each `-m` match and `-j` target declares its options
//! (name, whether it takes a value, whether `!` is allowed) and turns them into a typed
//! model value, checking what the iptables extension and the kernel check.
//!
//! Modules fwverify does not model but knows (real xtables extensions) are kept as
//! `Opaque` with a warning; names that are no extension at all are errors, as in
//! iptables-restore.

mod basic;
mod ext;
mod opaque;
mod recent;
mod targets;

use crate::diag::Diagnostic;
use crate::model::{Family, Match, Neg, PortRange, Proto, Span, TableName, Target};

pub(crate) use opaque::{known_match_names, known_target_names, module_with_option};

/// Whether an option takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A flag.
    None,
    /// Always a value (the next word, or `--opt=value`).
    Required,
    /// A value if the next word is not an option.
    Optional,
    /// Two words (`--tcp-flags MASK COMP`), handed over joined by one space.
    Two,
}

/// One option of a module.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OptDef {
    /// Long name without `--`.
    pub name: &'static str,
    /// Value kind.
    pub arg: Arg,
    /// Whether `!` may precede it.
    pub inv: bool,
}

/// Shorthand for option tables.
pub(crate) const fn o(name: &'static str, arg: Arg, inv: bool) -> OptDef {
    OptDef { name, arg, inv }
}

/// An option's value word.
#[derive(Clone, Debug)]
pub(crate) struct Val {
    /// Unquoted text.
    pub text: String,
    /// Where it stands.
    pub span: Span,
}

/// What a module parser may know about the rule.
pub(crate) struct Cx<'a> {
    /// Address family of the file.
    pub family: Family,
    /// `-p` of the rule, if any.
    pub proto: Option<Neg<Proto>>,
    /// Table of the rule.
    #[allow(dead_code)]
    pub table: TableName,
    /// Warnings go here.
    pub diags: &'a mut Vec<Diagnostic>,
    /// The option being parsed (in `take`) or the module's whole text (in `finish`).
    pub at: Span,
}

/// The option table of an owner, for resolution.
pub(crate) enum Owner {
    /// A match's options.
    Match(&'static [OptDef]),
    /// The target's options.
    Target(&'static [OptDef]),
}

/// Parses the options of one `-m` match.
pub(crate) trait MatchParser {
    /// Module name.
    fn name(&self) -> &str;
    /// Its options.
    fn opts(&self) -> &'static [OptDef];
    /// True for an unknown-schema opaque module that takes any option.
    fn schemaless(&self) -> bool {
        false
    }
    /// True for a known extension kept without a model.
    fn is_opaque(&self) -> bool {
        false
    }
    /// One option: `opt` indexes `opts()` (`usize::MAX` for a schemaless module), `name`
    /// is the option as resolved (without `--`).
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic>;
    /// After the last option: check and build.
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic>;
}

/// Parses the options of a `-j` target.
pub(crate) trait TargetParser {
    /// Target name.
    fn name(&self) -> &str;
    /// Its options.
    fn opts(&self) -> &'static [OptDef];
    /// True for an unknown-schema opaque target.
    fn schemaless(&self) -> bool {
        false
    }
    /// True for a known extension kept without a model.
    fn is_opaque(&self) -> bool {
        false
    }
    /// One option, as for [`MatchParser::take`].
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic>;
    /// After the last option.
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Target, Diagnostic>;
}

/// Matches that exist for IPv6 only.
const V6_ONLY: &[&str] = &["icmp6", "hl", "rt", "frag", "ipv6header", "mh", "hbh", "dst", "srh", "eui64"];
/// Matches that exist for IPv4 only.
const V4_ONLY: &[&str] = &["icmp", "ttl"];

/// The parser for `-m NAME`, or `None` when no such extension exists.
pub(crate) fn match_parser(name: &str, family: Family) -> Option<Box<dyn MatchParser>> {
    if let Some(p) = basic::match_parser(name, family) {
        return Some(p);
    }
    if let Some(p) = recent::match_parser(name, family) {
        return Some(p);
    }
    if let Some(p) = ext::match_parser(name, family) {
        return Some(p);
    }
    // Extensions that exist for one family only: iptables cannot load them for the other
    // ("Couldn't load match").
    let other_family = match family {
        Family::V4 => V6_ONLY.contains(&name),
        Family::V6 => V4_ONLY.contains(&name),
    };
    if other_family {
        return None;
    }
    opaque::match_parser(name)
}

/// The parser for `-j NAME` (not a chain), or `None` when no such target exists.
pub(crate) fn target_parser(name: &str, family: Family) -> Option<Box<dyn TargetParser>> {
    if let Some(p) = targets::target_parser(name, family) {
        return Some(p);
    }
    opaque::target_parser(name)
}

/// The warning for a known but unmodelled module.
pub(crate) fn opaque_warning(name: &str, span: Span, target: bool) -> Diagnostic {
    {
        let kind = if target { "target" } else { "match" };
        let note = if !target && name == "policy" {
            // `sim::compile`: no IPsec on the simulated host.
            "fwverify checks and prints its options as given; the simulator evaluates it as on a host without IPsec (`--pol none` holds, `--pol ipsec` never), the verifier cannot"
        } else {
            "fwverify checks and prints its options as given; the simulator and verifier cannot evaluate it"
        };
        Diagnostic::warning("W0001", span, format!("{kind} `{name}` is kept but not modelled"))
            .label("printed back as written")
            .note(note)
    }
}

/// The error for `-m NAME` when no such extension exists.
pub(crate) fn unknown_module(name: &str, span: Span, target: bool) -> Diagnostic {
    let kind = if target { "target" } else { "match" };
    let mut d = Diagnostic::error("E0109", span, format!("unknown {kind} `{name}`"))
        .label("no iptables extension has this name")
        .note(format!("iptables-restore: Couldn't load {kind} `{name}':No such file or directory"));
    if !target && (V6_ONLY.contains(&name) || V4_ONLY.contains(&name)) {
        let (here, there, alt) = if V6_ONLY.contains(&name) {
            (
                "IPv4",
                "ip6tables",
                if name == "hl" {
                    "use `-m ttl` instead"
                } else if name == "icmp6" {
                    "use `-m icmp` instead"
                } else {
                    "drop the match"
                },
            )
        } else {
            (
                "IPv6",
                "iptables",
                if name == "ttl" {
                    "use `-m hl` instead"
                } else if name == "icmp" {
                    "use `-m icmp6` instead"
                } else {
                    "drop the match"
                },
            )
        };
        return Diagnostic::error("E0109", span, format!("match `{name}` is not available in an {here} ruleset"))
            .label(format!("an {there} extension"))
            .note(format!("iptables-restore: Couldn't load match `{name}':No such file or directory"))
            .help(format!(
                "{alt}, or move the rule to the {} file",
                if here == "IPv4" { "ip6tables" } else { "iptables" }
            ));
    }
    let names: Vec<String> = known_match_names().iter().map(|s| s.to_string()).collect();
    if let Some(s) = super::lower::suggest(name, &names) {
        d = d.help(format!("did you mean `-m {s}`?"));
    }
    d
}

/// `-j CHAIN` / `-g CHAIN`.
pub(crate) struct ChainTarget(pub String);

impl TargetParser for ChainTarget {
    fn name(&self) -> &str {
        &self.0
    }
    fn opts(&self) -> &'static [OptDef] {
        &[]
    }
    fn take(&mut self, _: usize, _: &str, _: bool, _: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        Err(Diagnostic::error("E0101", cx.at, "a chain target takes no options"))
    }
    fn finish(self: Box<Self>, _: &mut Cx) -> Result<Target, Diagnostic> {
        Ok(Target::Chain(self.0))
    }
}

/// A plain error at the current option.
pub(crate) fn bad(cx: &Cx, span: Span, msg: impl Into<String>) -> Diagnostic {
    let _ = cx;
    Diagnostic::error("E0105", span, msg)
}

/// The value of an option whose `Arg` is `Required`.
pub(crate) fn req(val: Option<Val>, cx: &Cx) -> Result<Val, Diagnostic> {
    val.ok_or_else(|| Diagnostic::error("E0102", cx.at, "option needs a value"))
}

/// Error for an option given twice.
pub(crate) fn twice(cx: &Cx, module: &str, name: &str) -> Diagnostic {
    Diagnostic::error("E0107", cx.at, format!("{module}: option `--{name}` given twice"))
        .note(format!("iptables: {module}: \"--{name}\" option may only be specified once"))
        .help("give the option once")
}

/// Well-known service names iptables resolves through /etc/services (netbase).
const SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("http", 80),
    ("www", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("auth", 113),
    ("ntp", 123),
    ("netbios-ns", 137),
    ("netbios-dgm", 138),
    ("netbios-ssn", 139),
    ("imap2", 143),
    ("imap", 143),
    ("snmp", 161),
    ("snmp-trap", 162),
    ("bgp", 179),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("isakmp", 500),
    ("syslog", 514),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("imaps", 993),
    ("pop3s", 995),
    ("openvpn", 1194),
    ("ms-sql-s", 1433),
    ("mysql", 3306),
    ("ms-wbt-server", 3389),
    ("sip", 5060),
    ("postgresql", 5432),
    ("x11", 6000),
    ("http-alt", 8080),
];

/// A port number or service name.
pub(crate) fn parse_port(s: &str) -> Option<u16> {
    if let Ok(n) = s.parse::<u32>() {
        return u16::try_from(n).ok();
    }
    SERVICES.iter().find(|(n, _)| *n == s).map(|&(_, p)| p)
}

/// `P`, `A:B`, `A:`, `:B` as iptables reads port ranges (SEMANTICS.md §1.4).
pub(crate) fn parse_port_range(v: &Val) -> Result<PortRange, Diagnostic> {
    let bad_port = |p: &str| {
        Diagnostic::error("E0105", v.span, format!("invalid port `{p}`"))
            .label("not a port number (0-65535) or service name")
            .note(format!("iptables: invalid port/service `{p}' specified"))
            .help("write a port 0-65535, a range `LOW:HIGH`, or a service name from /etc/services")
    };
    if v.text == "!" {
        return Err(Diagnostic::error("E0104", v.span, "`--option ! VALUE` is the old intrapositioned negation")
            .note("iptables: invalid port/service `!' specified")
            .help("put `!` before the option: `! --dport 22`"));
    }
    let (lo, hi) = match v.text.split_once(':') {
        Some((a, b)) => {
            let lo = if a.is_empty() { 0 } else { parse_port(a).ok_or_else(|| bad_port(a))? };
            let hi = if b.is_empty() { 65535 } else { parse_port(b).ok_or_else(|| bad_port(b))? };
            (lo, hi)
        }
        None => {
            let p = parse_port(&v.text).ok_or_else(|| bad_port(&v.text))?;
            (p, p)
        }
    };
    Ok(PortRange { lo, hi })
}
