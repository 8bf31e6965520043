//! Lowering of the pest parse tree, line by line, into tables and chains.

use pest::iterators::Pair;

use super::grammar::Rule as G;
use super::rule::{lower_rule_line, Command, Tok};
use crate::diag::Diagnostic;
use crate::model::{Chain, Counters, Family, Policy, Ruleset, Span, Table, TableName};

/// Names iptables reserves for targets; a chain may not be called so.
const RESERVED: &[&str] = &["ACCEPT", "DROP", "QUEUE", "RETURN"];

struct TableBuilder {
    table: Table,
    /// Chain names declared by a `:NAME` line or `-N`, with their spans.
    declared: Vec<(String, Span)>,
}

pub(super) struct Lowerer<'t> {
    text: &'t str,
    pub(super) diags: &'t mut Vec<Diagnostic>,
    tables: Vec<Table>,
    current: Option<TableBuilder>,
    pub(super) family: Option<Family>,
}

pub(super) fn lower_file(file: Pair<'_, G>, text: &str, diags: &mut Vec<Diagnostic>) -> Ruleset {
    // The grammar folds a `\r` before the line break into the line's end, so CRLF
    // files are recognised here, once, at the first one.
    if let Some(pos) = text.find("\r\n") {
        let line = text[..pos].matches('\n').count() as u32 + 1;
        diags.push(
            Diagnostic::error("E0002", Span::new(pos, pos + 1, line), "file has CRLF (Windows) line endings")
                .label("carriage return before the line break")
                .note("iptables-restore keeps the `\\r` as part of the last word of every line, so it rejects the file (e.g. `unable to initialize table 'filter\\r'`)")
                .help("convert the line endings, e.g. `dos2unix FILE` or `sed -i 's/\\r$//' FILE`"),
        );
    }
    let family = guess_family(text);
    let mut l = Lowerer { text, diags, tables: Vec::new(), current: None, family };
    let mut line_no = 0u32;
    for pair in file.into_inner() {
        match pair.as_rule() {
            G::line | G::last_line => {
                line_no += 1;
                let last = pair.as_rule() == G::last_line;
                if let Some(body) = pair.into_inner().next() {
                    l.line(body, line_no, last);
                }
            }
            _ => {}
        }
    }
    if let Some(tb) = l.current.take() {
        let end = text.len();
        l.diags.push(
            Diagnostic::error(
                "E0003",
                Span::new(end, end, line_no.max(1)),
                format!("table `{}` is not committed: `COMMIT` expected", tb.table.name),
            )
            .label("file ends here")
            .note("iptables-restore loads nothing of a table block without COMMIT")
            .help("add a line `COMMIT` at the end of the table block"),
        );
    }
    Ruleset { family: l.family, tables: l.tables }
}

/// Decides the family before lowering, since defaults (recent masks, REJECT types) depend
/// on it: IPv6 when an address option holds an IPv6 address or an ip6tables-only module
/// or protocol appears.
fn guess_family(text: &str) -> Option<Family> {
    for line in text.lines() {
        if !(line.starts_with("-A") || line.starts_with('[') || line.starts_with("-I")) {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        while let Some(w) = words.next() {
            match w {
                "-s" | "-d" | "--source" | "--destination" | "--src" | "--dst" => {
                    if let Some(v) = words.next() {
                        if v.contains(':') {
                            return Some(Family::V6);
                        }
                        if v.contains('.') {
                            return Some(Family::V4);
                        }
                    }
                }
                "icmp6"
                | "ipv6-icmp"
                | "icmpv6"
                | "--icmpv6-type"
                | "hl"
                | "ipv6header"
                | "icmp6-port-unreachable"
                | "icmp6-adm-prohibited" => return Some(Family::V6),
                "--icmp-type" => return Some(Family::V4),
                _ => {}
            }
        }
    }
    None
}

fn span_of(p: &Pair<'_, G>, line: u32) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end(), line)
}

impl Lowerer<'_> {
    fn line(&mut self, body: Pair<'_, G>, line: u32, last: bool) {
        let span = span_of(&body, line);
        match body.as_rule() {
            G::comment | G::blank => {}
            G::table_header => self.table_header(body, line),
            G::chain_header => self.chain_header(body, line),
            G::commit => {
                if last {
                    self.diags.push(
                        Diagnostic::error("E0003", span, "`COMMIT` on the last line has no line break")
                            .label("iptables-restore does not see this as COMMIT")
                            .note("iptables-restore compares the whole line with \"COMMIT\\n\" and fails with ``Bad argument `COMMIT'``")
                            .help("end the file with a line break"),
                    );
                    self.current = None;
                    return;
                }
                match self.current.take() {
                    Some(tb) => self.commit(tb),
                    None => self.diags.push(
                        Diagnostic::error("E0005", span, "`COMMIT` outside a table block")
                            .help("start the block with a `*table` line, e.g. `*filter`"),
                    ),
                }
            }
            G::rule_line => self.rule_line(body, line),
            _ => self.bad_line(span),
        }
    }

    fn bad_line(&mut self, span: Span) {
        let text = &self.text[span.start as usize..span.end as usize];
        let mut d = Diagnostic::error("E0001", span, "line not understood");
        if text.trim_start().starts_with('#') {
            d = d
                .label("comment not at column 0")
                .note("iptables-restore only takes `#` comments that start at the first column")
                .help("remove the indentation before `#`");
        }
        self.diags.push(d);
    }

    fn table_header(&mut self, p: Pair<'_, G>, line: u32) {
        let span = span_of(&p, line);
        let name_pair = p.into_inner().find(|q| q.as_rule() == G::table_name);
        let name = name_pair.as_ref().map(|q| q.as_str()).unwrap_or("");
        if let Some(tb) = self.current.take() {
            self.diags.push(
                Diagnostic::error(
                    "E0003",
                    span,
                    format!("new table block before `COMMIT` of table `{}`", tb.table.name),
                )
                .help("add `COMMIT` before this line"),
            );
        }
        let Some(t) = TableName::parse(name) else {
            let mut d = Diagnostic::error("E0004", span, format!("unknown table `{name}`"))
                .label("not a table")
                .note("iptables-restore: unable to initialize table");
            if let Some(close) = TableName::ALL.iter().find(|t| t.as_str().eq_ignore_ascii_case(name.trim())) {
                d = d.help(format!("did you mean `*{close}`?"));
            } else {
                d = d.help("tables are raw, mangle, nat, filter and security");
            }
            self.diags.push(d);
            return;
        };
        let chains = t
            .hooks()
            .iter()
            .map(|&h| Chain {
                name: h.name().to_string(),
                hook: Some(h),
                policy: Some(Policy::Accept),
                counters: Counters::default(),
                rules: Vec::new(),
                span,
            })
            .collect();
        self.current = Some(TableBuilder { table: Table { name: t, chains, span }, declared: Vec::new() });
    }

    fn chain_header(&mut self, p: Pair<'_, G>, line: u32) {
        let span = span_of(&p, line);
        let mut name = "";
        let mut name_span = span;
        let mut policy: Option<(&str, Span)> = None;
        let mut counters = Counters::default();
        for q in p.into_inner() {
            match q.as_rule() {
                G::chain_name => {
                    name = q.as_str();
                    name_span = span_of(&q, line);
                }
                G::policy => policy = Some((q.as_str(), span_of(&q, line))),
                G::counters => counters = parse_counters(q),
                _ => {}
            }
        }
        let Some(tb) = self.current.as_mut() else {
            self.diags.push(
                Diagnostic::error("E0005", span, "chain header outside a table block")
                    .help("start the block with a `*table` line, e.g. `*filter`"),
            );
            return;
        };
        let policy_text = policy.map(|(p, _)| p).unwrap_or("-");
        let policy_span = policy.map(|(_, s)| s).unwrap_or(name_span);
        if let Some(chain) = tb.table.chains.iter_mut().find(|c| c.name == name && c.hook.is_some()) {
            match policy_text {
                "ACCEPT" => chain.policy = Some(Policy::Accept),
                "DROP" => chain.policy = Some(Policy::Drop),
                "-" => {}
                other => {
                    self.diags.push(
                        Diagnostic::error(
                            "E0201",
                            policy_span,
                            format!("bad policy `{other}` for built-in chain `{name}`"),
                        )
                        .label("not a policy")
                        .note("built-in chains take ACCEPT or DROP")
                        .help("use ACCEPT or DROP"),
                    );
                    return;
                }
            }
            chain.counters = counters;
            chain.span = span;
            return;
        }
        if policy_text != "-" {
            let mut d = Diagnostic::error(
                "E0203",
                policy_span,
                format!(
                    "policy `{policy_text}` on chain `{name}`, which is not a built-in chain of table `{}`",
                    tb.table.name
                ),
            )
            .label("user-defined chains have no policy")
            .note("iptables-restore: Bad built-in chain name");
            d = d.help(format!(
                "write `:{name} - [0:0]`, or use a built-in chain of this table ({})",
                builtin_list(tb.table.name)
            ));
            self.diags.push(d);
            return;
        }
        self.new_chain(name, name_span, span);
    }

    pub(super) fn new_chain(&mut self, name: &str, name_span: Span, span: Span) {
        let Some(tb) = self.current.as_mut() else { return };
        if name.len() > 28 {
            self.diags.push(
                Diagnostic::error("E0206", name_span, format!("chain name `{name}` is {} characters long", name.len()))
                    .label("too long")
                    .note("chain names have at most 28 characters")
                    .help("use a shorter name"),
            );
            return;
        }
        if RESERVED.contains(&name) || tb.table.chains.iter().any(|c| c.name == name) {
            let mut d = Diagnostic::error("E0202", name_span, format!("chain `{name}` already exists"))
                .label("defined again here")
                .note("iptables-restore: error creating chain: File exists");
            if let Some((_, first)) = tb.declared.iter().find(|(n, _)| n == name) {
                d = d.help(format!("remove one of the definitions (the first is on line {})", first.line));
            } else {
                d = d.help("pick a name that is not a built-in chain or target");
            }
            self.diags.push(d);
            return;
        }
        tb.declared.push((name.to_string(), name_span));
        tb.table.chains.push(Chain {
            name: name.to_string(),
            hook: None,
            policy: None,
            counters: Counters::default(),
            rules: Vec::new(),
            span,
        });
    }

    fn rule_line(&mut self, p: Pair<'_, G>, line: u32) {
        let span = span_of(&p, line);
        let mut toks = Vec::new();
        let mut counters = None;
        for q in p.into_inner() {
            match q.as_rule() {
                G::counters => counters = Some(parse_counters(q)),
                G::token => toks.push(token(q, line, self.diags)),
                _ => {}
            }
        }
        let Some(tb) = self.current.as_ref() else {
            let first = toks.first().map(|t| t.text.as_str()).unwrap_or("");
            let d = if first.starts_with('*') || first.starts_with(':') || first == "COMMIT" {
                Diagnostic::error("E0001", span, format!("malformed line `{first}`"))
                    .help("table lines are `*NAME`, chain lines `:NAME POLICY [0:0]`, each alone on its line")
            } else {
                Diagnostic::error("E0005", span, "rule outside a table block")
                    .help("put the rule between a `*table` line and `COMMIT`")
            };
            self.diags.push(d);
            return;
        };
        if let Some(first) = toks.first() {
            if first.text == "COMMIT" {
                self.diags.push(
                    Diagnostic::error("E0003", first.span, "`COMMIT` must stand alone at column 0")
                        .label("not read as COMMIT")
                        .note("iptables-restore: Bad argument `COMMIT'")
                        .help("remove the spaces or words around `COMMIT`"),
                );
                return;
            }
            if first.text.starts_with(':') || first.text.starts_with('*') {
                self.diags.push(
                    Diagnostic::error("E0006", span, "malformed chain or table line")
                        .help("chain lines are `:NAME POLICY [pkts:bytes]`, table lines `*NAME`"),
                );
                return;
            }
            if first.text.starts_with('[') {
                self.diags.push(
                    Diagnostic::error("E0006", first.span, format!("bad counters `{}`", first.text))
                        .help("counters are `[packets:bytes]` with decimal numbers"),
                );
                return;
            }
        }
        let table = tb.table.name;
        let chains: Vec<String> = tb.table.chains.iter().map(|c| c.name.clone()).collect();
        let family = self.family;
        let Some(cmd) = lower_rule_line(&toks, span, counters, table, &chains, family, self.diags) else { return };
        match cmd {
            Command::Append { chain, rule, insert_at, family } => {
                if self.family.is_none() {
                    self.family = family;
                }
                let tb = self.current.as_mut().expect("checked above");
                match tb.table.chains.iter_mut().find(|c| c.name == chain.0) {
                    Some(c) => match insert_at {
                        Some(n) if n >= 1 && n <= c.rules.len() + 1 => c.rules.insert(n - 1, rule),
                        Some(n) => self.diags.push(
                            Diagnostic::error(
                                "E0105",
                                chain.1,
                                format!("cannot insert at position {n} in chain `{}`", chain.0),
                            )
                            .note(format!("the chain has {} rules", c.rules.len()))
                            .help("use -A to append, or a position from 1 to one past the last rule"),
                        ),
                        None => c.rules.push(rule),
                    },
                    None => {
                        let mut d = Diagnostic::error(
                            "E0204",
                            chain.1,
                            format!("chain `{}` does not exist in table `{table}`", chain.0),
                        )
                        .label("no such chain")
                        .note("iptables-restore fails this line (libiptc: no chain/target/match by that name)");
                        d = match suggest(&chain.0, &chains) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None => d.help(format!("declare it first with `:{} - [0:0]`", chain.0)),
                        };
                        self.diags.push(d);
                    }
                }
            }
            Command::NewChain { name } => self.new_chain(&name.0, name.1, span),
            Command::Policy { chain, policy } => {
                let tb = self.current.as_mut().expect("checked above");
                match tb.table.chains.iter_mut().find(|c| c.name == chain.0 && c.hook.is_some()) {
                    Some(c) => c.policy = Some(policy),
                    None => self.diags.push(
                        Diagnostic::error(
                            "E0203",
                            chain.1,
                            format!("`{}` is not a built-in chain of table `{table}`", chain.0),
                        )
                        .help(format!("policies can be set on {}", builtin_list(table))),
                    ),
                }
            }
        }
    }

    fn commit(&mut self, tb: TableBuilder) {
        if let Some(i) = self.tables.iter().position(|t| t.name == tb.table.name) {
            self.diags.push(
                Diagnostic::warning(
                    "W0005",
                    tb.table.span,
                    format!("table `{}` is given twice; this block replaces the earlier one", tb.table.name),
                )
                .note(format!("the earlier block starts on line {}", self.tables[i].span.line))
                .help("merge the two blocks"),
            );
            // The kernel replaces the table where it first appeared.
            self.tables[i] = tb.table;
            return;
        }
        self.tables.push(tb.table);
    }
}

fn builtin_list(t: TableName) -> String {
    t.hooks().iter().map(|h| h.name()).collect::<Vec<_>>().join(", ")
}

/// The closest name by edit distance (≤ 2, or a case-insensitive match), for hints.
pub(super) fn suggest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(&name.to_ascii_lowercase(), &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn parse_counters(p: Pair<'_, G>) -> Counters {
    let mut nums = p.into_inner().map(|n| n.as_str().parse::<u64>().unwrap_or(u64::MAX));
    Counters { packets: nums.next().unwrap_or(0), bytes: nums.next().unwrap_or(0) }
}

/// Builds a word from a `token` pair: bare text plus the unescaped quoted section.
fn token(p: Pair<'_, G>, line: u32, diags: &mut Vec<Diagnostic>) -> Tok {
    let span = span_of(&p, line);
    let mut text = String::new();
    let mut quoted = false;
    for q in p.into_inner() {
        match q.as_rule() {
            G::bare => text.push_str(q.as_str()),
            G::quoted => {
                quoted = true;
                for r in q.into_inner() {
                    match r.as_rule() {
                        G::quoted_inner => {
                            let mut chars = r.as_str().chars();
                            while let Some(c) = chars.next() {
                                if c == '\\' {
                                    if let Some(n) = chars.next() {
                                        text.push(n);
                                    }
                                } else {
                                    text.push(c);
                                }
                            }
                        }
                        G::unterminated => diags.push(
                            Diagnostic::warning("W0002", span, "double quote not closed before the end of the line")
                                .label("the quoted text runs to the end of the line")
                                .note("iptables-restore takes the rest of the line, options included, as this one word")
                                .help("close the quote"),
                        ),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Tok { text, span, quoted }
}
