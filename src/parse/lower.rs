//! Lowering of the pest parse tree, line by line, into tables and chains.

use std::borrow::Cow;
use std::collections::HashMap;

use pest::iterators::Pair;
use pest::Parser as _;

use super::grammar::{Rule as G, SaveGrammar};
use super::rule::{lower_rule_line, ChainSet, Command, Tok};
use crate::diag::Diagnostic;
use crate::model::{Chain, Counters, Family, Policy, Ruleset, Span, Table, TableName};

/// Names iptables reserves for targets; a chain may not be called so.
const RESERVED: &[&str] = &["ACCEPT", "DROP", "QUEUE", "RETURN"];

struct TableBuilder {
    table: Table,
    /// Position in `table.chains` of every chain, by name. Kept in step with `table.chains`
    /// so that each line finds its chain in constant time: kube-proxy files have tens of
    /// thousands of chains, and a scan per line would make reading them quadratic.
    index: HashMap<String, usize>,
    /// Chain names declared by a `:NAME` line or `-N`, with their spans.
    declared: Vec<(String, Span)>,
    /// The chain the last rule was appended to.
    last_appended: Option<usize>,
}

impl TableBuilder {
    fn new(table: Table) -> TableBuilder {
        let index = table.chains.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        TableBuilder { table, index, declared: Vec::new(), last_appended: None }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// [`TableBuilder::find`] for the chain a rule is appended to: iptables-save writes a
    /// chain's rules together, so the previous rule's chain is tried first (one string
    /// comparison instead of a hash lookup).
    fn find_appended(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.last_appended.filter(|&i| self.table.chains[i].name == name) {
            return Some(i);
        }
        let found = self.find(name);
        self.last_appended = found.or(self.last_appended);
        found
    }

    fn chains(&self) -> ChainSet<'_> {
        ChainSet { index: &self.index, chains: &self.table.chains }
    }
}

pub(super) struct Lowerer<'t> {
    text: &'t str,
    pub(super) diags: &'t mut Vec<Diagnostic>,
    tables: Vec<Table>,
    current: Option<TableBuilder>,
    pub(super) family: Option<Family>,
}

/// Where the line being lowered starts: pest reads one line at a time, so the positions of
/// its pairs are relative to the line.
#[derive(Clone, Copy)]
struct At {
    /// 1-based line number.
    line: u32,
    /// Byte offset of the line in the file.
    base: usize,
}

/// The file could not be read into lines; the byte offset where it went wrong.
pub(super) struct Untokenizable(pub(super) usize);

/// The lines of a file as the grammar's `file` rule sees them
/// (`SOI ~ (line ~ eol)* ~ last_line? ~ EOI`): each with its line break, the last one
/// (possibly empty, when the file ends with a line break) without. Yields the byte offset
/// of the line, its text and whether it is the last.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str, bool)> {
    let mut base = Some(0usize);
    std::iter::from_fn(move || {
        let start = base?;
        match text[start..].find('\n') {
            Some(i) => {
                base = Some(start + i + 1);
                Some((start, &text[start..start + i + 1], false))
            }
            None => {
                base = None;
                Some((start, &text[start..], true))
            }
        }
    })
}

/// Parses one line of [`lines`] with the grammar's `line` rule: its body (a `line_body`
/// alternative, e.g. `rule_line`), if any. Parsing a line on its own gives the same pairs
/// as parsing the whole file, since no rule looks past a line break.
fn parse_line(chunk: &str, last: bool) -> Result<Option<Pair<'_, G>>, usize> {
    let line = SaveGrammar::parse(G::line, chunk).ok().and_then(|mut p| p.next()).ok_or(0usize)?;
    let body_end = line.as_span().end();
    // What follows the body must be the line break (`eol`) or, on the last line, nothing
    // (`&EOI`); the grammar guarantees it, but check rather than trust.
    let eol = &chunk[body_end..];
    let fits = if last { eol.is_empty() } else { eol == "\n" || eol == "\r\n" };
    if !fits {
        return Err(body_end);
    }
    Ok(line.into_inner().next())
}

/// Lowers a whole file. It is read line by line, each line (with its line break) parsed on
/// its own by [`parse_line`], so that pest's token queue stays as small as one line instead
/// of growing with the file (a 1 M-rule file would need gigabytes); plain rule lines and
/// chain headers take the fast paths [`plain_rule_line`] and [`plain_chain_header`].
pub(super) fn lower_file(
    text: &str,
    hint: Option<Family>,
    diags: &mut Vec<Diagnostic>,
) -> Result<Ruleset, Untokenizable> {
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
    let family = hint.or_else(|| guess_family(text));
    let mut l = Lowerer { text, diags, tables: Vec::new(), current: None, family };
    let mut line_no = 0u32;
    let mut words = Vec::new();
    for (base, chunk, last) in lines(text) {
        line_no += 1;
        let at = At { line: line_no, base };
        let content = chunk.strip_suffix('\n').unwrap_or(chunk);
        if plain_rule_line(content, at, &mut words) {
            l.rule_words(&words, None, Span::new(base, base + content.len(), line_no));
            continue;
        }
        if let Some(decl) = plain_chain_header(content, at) {
            l.chain_decl(decl);
            continue;
        }
        if let Some(body) = parse_line(chunk, last).map_err(|off| Untokenizable(base + off))? {
            l.line(body, at, last);
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
    Ok(Ruleset { family: l.family, tables: l.tables })
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

fn span_of(p: &Pair<'_, G>, at: At) -> Span {
    let s = p.as_span();
    Span::new(at.base + s.start(), at.base + s.end(), at.line)
}

impl Lowerer<'_> {
    fn line(&mut self, body: Pair<'_, G>, at: At, last: bool) {
        let span = span_of(&body, at);
        match body.as_rule() {
            G::comment | G::blank => {}
            G::table_header => self.table_header(body, at),
            G::chain_header => self.chain_header(body, at),
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
            G::rule_line => self.rule_line(body, at),
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

    fn table_header(&mut self, p: Pair<'_, G>, at: At) {
        let span = span_of(&p, at);
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
        self.current = Some(TableBuilder::new(Table { name: t, chains, span }));
    }

    fn chain_header(&mut self, p: Pair<'_, G>, at: At) {
        let span = span_of(&p, at);
        let mut name = "";
        let mut name_span = span;
        let mut policy: Option<(&str, Span)> = None;
        let mut counters = Counters::default();
        for q in p.into_inner() {
            match q.as_rule() {
                G::chain_name => {
                    name = q.as_str();
                    name_span = span_of(&q, at);
                }
                G::policy => policy = Some((q.as_str(), span_of(&q, at))),
                G::counters => counters = parse_counters(q),
                _ => {}
            }
        }
        self.chain_decl(ChainDecl { span, name, name_span, policy, counters });
    }

    /// A chain header line, as its parts.
    fn chain_decl(&mut self, decl: ChainDecl<'_>) {
        let ChainDecl { span, name, name_span, policy, counters } = decl;
        let Some(tb) = self.current.as_mut() else {
            self.diags.push(
                Diagnostic::error("E0005", span, "chain header outside a table block")
                    .help("start the block with a `*table` line, e.g. `*filter`"),
            );
            return;
        };
        let policy_text = policy.map(|(p, _)| p).unwrap_or("-");
        let policy_span = policy.map(|(_, s)| s).unwrap_or(name_span);
        let builtin = tb.find(name).filter(|&i| tb.table.chains[i].hook.is_some());
        if let Some(chain) = builtin.map(|i| &mut tb.table.chains[i]) {
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
        if RESERVED.contains(&name) || tb.find(name).is_some() {
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
        tb.index.insert(name.to_string(), tb.table.chains.len());
        tb.table.chains.push(Chain {
            name: name.to_string(),
            hook: None,
            policy: None,
            counters: Counters::default(),
            rules: Vec::new(),
            span,
        });
    }

    fn rule_line(&mut self, p: Pair<'_, G>, at: At) {
        let span = span_of(&p, at);
        let mut toks = Vec::new();
        let mut counters = None;
        for q in p.into_inner() {
            match q.as_rule() {
                G::counters => counters = Some(parse_counters(q)),
                G::token => toks.push(token(q, at, self.diags)),
                _ => {}
            }
        }
        self.rule_words(&toks, counters, span);
    }

    /// A rule line, as its words: `span` is the whole line (without the line break).
    fn rule_words(&mut self, toks: &[Tok<'_>], counters: Option<Counters>, span: Span) {
        let Some(tb) = self.current.as_ref() else {
            let first = toks.first().map(|t| &*t.text).unwrap_or("");
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
        let family = self.family;
        let Some(cmd) = lower_rule_line(toks, span, counters, table, tb.chains(), family, self.diags) else { return };
        match cmd {
            Command::Append { chain, rule, insert_at, family } => {
                if self.family.is_none() {
                    self.family = family;
                }
                let tb = self.current.as_mut().expect("checked above");
                match tb.find_appended(&chain.0) {
                    Some(i) => {
                        let c = &mut tb.table.chains[i];
                        match insert_at {
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
                        }
                    }
                    None => {
                        let mut d = Diagnostic::error(
                            "E0204",
                            chain.1,
                            format!("chain `{}` does not exist in table `{table}`", chain.0),
                        )
                        .label("no such chain")
                        .note("iptables-restore fails this line (libiptc: no chain/target/match by that name)");
                        d = match suggest(&chain.0, &tb.chains().names()) {
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
                match tb.find(&chain.0).map(|i| &mut tb.table.chains[i]).filter(|c| c.hook.is_some()) {
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

/// The fast path for the lines that make up almost all of a large file: a rule line as
/// iptables-save writes it (`-A CHAIN` and options, words separated by spaces or tabs,
/// double-quoted sections closed, no backslash, no carriage return, no counters). Fills
/// `words` with exactly the words the grammar's `rule_line` gives for such a line and
/// returns true; returns false for every other line, which then goes through pest.
///
/// Why: pest spends about 1,500 instructions per word (a call-depth and stack check on
/// every combinator), which made the grammar alone slower than `iptables-restore --test`
/// on kube-proxy files. The grammar stays the definition: the test
/// `plain_lines_tokenize_like_the_grammar` checks this function against it.
fn plain_rule_line<'t>(content: &'t str, at: At, words: &mut Vec<Tok<'t>>) -> bool {
    let b = content.as_bytes();
    // A line starting with `-` can only be a `rule_line` (not a comment, header, COMMIT or
    // blank line), and without `\r` and `\\` no word needs `mid_cr` or `escape`.
    if b.first() != Some(&b'-') {
        return false;
    }
    words.clear();
    let span = |s: usize, e: usize| Span::new(at.base + s, at.base + e, at.line);
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i == b.len() {
            return true;
        }
        let start = i;
        while i < b.len() {
            match b[i] {
                b' ' | b'\t' | b'"' => break,
                b'\r' | b'\\' => return false,
                _ => i += 1,
            }
        }
        if i == b.len() || b[i] != b'"' {
            words.push(Tok { text: Cow::Borrowed(&content[start..i]), span: span(start, i), quoted: false });
            continue;
        }
        // `bare? ~ quoted`: the word ends with the closing quote.
        let open = i;
        i += 1;
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\r' || b[i] == b'\\' {
                return false;
            }
            i += 1;
        }
        if i == b.len() {
            return false; // unterminated: the grammar reports it
        }
        let mut text = String::with_capacity(i - start - 1);
        text.push_str(&content[start..open]);
        text.push_str(&content[open + 1..i]);
        i += 1;
        words.push(Tok { text: Cow::Owned(text), span: span(start, i), quoted: true });
    }
}

/// The parts of a `chain_header` line.
struct ChainDecl<'t> {
    /// The whole line, without the line break.
    span: Span,
    /// `chain_name`.
    name: &'t str,
    name_span: Span,
    /// `policy` and its span, when given.
    policy: Option<(&'t str, Span)>,
    /// `counters`, zero when not given.
    counters: Counters,
}

/// The fast path for chain headers as iptables-save writes them, `:NAME POLICY [P:B]`
/// (spaces or tabs between the parts, no carriage return): the parts the grammar's
/// `chain_header` gives for such a line, or `None` for every other line, which then goes
/// through pest. Checked against the grammar by `plain_lines_tokenize_like_the_grammar`.
fn plain_chain_header(content: &str, at: At) -> Option<ChainDecl<'_>> {
    let b = content.as_bytes();
    if b.first() != Some(&b':') || b.contains(&b'\r') {
        return None;
    }
    let ws = |c: u8| c == b' ' || c == b'\t';
    let span = |s: usize, e: usize| Span::new(at.base + s, at.base + e, at.line);
    let word_end = |from: usize, stop: &dyn Fn(u8) -> bool| (from..b.len()).find(|&i| stop(b[i])).unwrap_or(b.len());
    let skip_ws = |from: usize| (from..b.len()).find(|&i| !ws(b[i])).unwrap_or(b.len());
    // chain_name: up to white space (there is no line break or `\r` in `content`).
    let name_end = word_end(1, &ws);
    // ws+ ~ policy: up to white space or `[`.
    let policy_start = skip_ws(name_end);
    let policy_end = word_end(policy_start, &|c| ws(c) || c == b'[');
    // ws+ ~ counters: `[digits:digits]`, then only white space.
    let counters_start = skip_ws(policy_end);
    if name_end == 1 || policy_start == name_end || policy_end == policy_start || counters_start == policy_end {
        return None;
    }
    let rest = content[counters_start..].strip_prefix('[')?;
    let (packets, rest) = rest.split_once(':')?;
    let (bytes, rest) = rest.split_once(']')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(packets) || !digits(bytes) || !rest.bytes().all(ws) {
        return None;
    }
    Some(ChainDecl {
        span: span(0, b.len()),
        name: &content[1..name_end],
        name_span: span(1, name_end),
        policy: Some((&content[policy_start..policy_end], span(policy_start, policy_end))),
        counters: Counters { packets: packets.parse().unwrap_or(u64::MAX), bytes: bytes.parse().unwrap_or(u64::MAX) },
    })
}

/// Builds a word from a `token` pair. The grammar has decided where the word starts and
/// ends (`token` is atomic: one pair per word, which halves pest's work on long files);
/// this only undoes the quoting: a bare part, then optionally a quoted part whose
/// backslashes escape the next character and whose closing quote is the word's last
/// character (`quoted_inner`, `escape`, `close_quote`, `unterminated` in the grammar).
fn token<'t>(p: Pair<'t, G>, at: At, diags: &mut Vec<Diagnostic>) -> Tok<'t> {
    let span = span_of(&p, at);
    let raw = p.as_str();
    let Some(open) = raw.find('"') else {
        return Tok { text: Cow::Borrowed(raw), span, quoted: false };
    };
    let mut text = String::with_capacity(raw.len());
    text.push_str(&raw[..open]);
    let mut chars = raw[open + 1..].chars();
    let mut closed = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                // A backslash before the end of the line stays unpaired; it is dropped.
                if let Some(n) = chars.next() {
                    text.push(n);
                }
            }
            '"' => {
                closed = true;
                break;
            }
            c => text.push(c),
        }
    }
    if !closed {
        diags.push(
            Diagnostic::warning("W0002", span, "double quote not closed before the end of the line")
                .label("the quoted text runs to the end of the line")
                .note("iptables-restore takes the rest of the line, options included, as this one word")
                .help("close the quote"),
        );
    }
    Tok { text: Cow::Owned(text), span, quoted: true }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A word as `(text, start, end, quoted)`, for comparisons.
    type Word = (String, usize, usize, bool);

    fn words(toks: &[Tok<'_>]) -> Vec<Word> {
        toks.iter().map(|t| (t.text.to_string(), t.span.start as usize, t.span.end as usize, t.quoted)).collect()
    }

    /// The words of `content` as the grammar reads them, or `None` when the line is not a
    /// `rule_line`.
    fn grammar_words(content: &str) -> Option<Vec<Word>> {
        let chunk = format!("{content}\n");
        let body = parse_line(&chunk, false).ok()??;
        if body.as_rule() != G::rule_line {
            return None;
        }
        let at = At { line: 1, base: 0 };
        let mut diags = Vec::new();
        let toks: Vec<Tok<'_>> =
            body.into_inner().filter(|q| q.as_rule() == G::token).map(|q| token(q, at, &mut diags)).collect();
        Some(words(&toks))
    }

    /// A chain header as `(line, name, name span, policy and span, counters)`.
    type ChainParts = (Span, String, Span, Option<(String, Span)>, Counters);

    /// The parts of a chain header as the grammar reads them.
    fn grammar_chain(content: &str) -> Option<ChainParts> {
        let chunk = format!("{content}\n");
        let body = parse_line(&chunk, false).ok()??;
        if body.as_rule() != G::chain_header {
            return None;
        }
        let at = At { line: 1, base: 0 };
        let span = span_of(&body, at);
        let (mut name, mut name_span, mut policy, mut counters) = (String::new(), span, None, Counters::default());
        for q in body.into_inner() {
            match q.as_rule() {
                G::chain_name => (name, name_span) = (q.as_str().to_string(), span_of(&q, at)),
                G::policy => policy = Some((q.as_str().to_string(), span_of(&q, at))),
                G::counters => counters = parse_counters(q),
                _ => {}
            }
        }
        Some((span, name, name_span, policy, counters))
    }

    /// Lines built from the pieces that matter to the tokenizer.
    fn line() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "-A",
            "-",
            "INPUT",
            "-m",
            "comment",
            "--comment",
            " ",
            "  ",
            "\t",
            "\"",
            "\\",
            "\r",
            "!",
            "x y",
            "é",
            ":",
            "[",
            "]",
            "0",
            "12",
            "-j",
            "ACCEPT",
            "#",
            "*",
            "COMMIT",
            "=",
            "'",
        ]);
        (prop::sample::select(vec!["-", ":", "-A INPUT", ":X - ", "[1:2] ", ""]), prop::collection::vec(piece, 0..16))
            .prop_map(|(first, rest)| format!("{first}{}", rest.concat()))
    }

    /// Chain headers, mostly well-formed, each part sometimes not.
    fn chain_line() -> impl Strategy<Value = String> {
        (
            prop_oneof![3 => "[A-Z-]{1,4}", 1 => "[A-Z\\-é\\[\"]{0,4}"],
            prop_oneof![3 => Just(" ".to_string()), 1 => "[ \t]{0,2}"],
            prop_oneof![3 => "(-|ACCEPT|DROP)", 1 => "[A-Z\\-\\[]{0,3}"],
            prop_oneof![3 => Just(" ".to_string()), 1 => "[ \t]{0,2}"],
            prop_oneof![3 => "\\[[0-9]{1,3}:[0-9]{1,3}\\]", 1 => "\\[?[0-9]{0,2}:?[0-9]{0,2}\\]?"],
            prop_oneof![3 => Just(String::new()), 1 => "[ \tx\r]{0,2}"],
        )
            .prop_map(|(n, a, p, b, c, t)| format!(":{n}{a}{p}{b}{c}{t}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The fast paths give what the grammar gives, on every line they accept.
        #[test]
        fn plain_lines_tokenize_like_the_grammar(content in prop_oneof![line(), chain_line()]) {
            let at = At { line: 1, base: 0 };
            let mut toks = Vec::new();
            if plain_rule_line(&content, at, &mut toks) {
                prop_assert_eq!(Some(words(&toks)), grammar_words(&content));
            }
            if let Some(d) = plain_chain_header(&content, at) {
                let policy = d.policy.map(|(p, s)| (p.to_string(), s));
                prop_assert_eq!(Some((d.span, d.name.to_string(), d.name_span, policy, d.counters)), grammar_chain(&content));
            }
        }

        /// Reading line by line gives the lines (bodies and their positions) that the
        /// grammar's `file` rule gives for the whole file.
        #[test]
        fn lines_read_like_the_file_rule(parts in prop::collection::vec(line(), 0..6), ends in prop::collection::vec(prop::sample::select(vec!["\n", "\r\n", "\r", ""]), 6)) {
            let text: String = parts.iter().zip(&ends).map(|(l, e)| format!("{l}{e}")).collect();
            let whole: Option<Vec<(G, usize, usize)>> = SaveGrammar::parse(G::file, &text).ok().map(|mut f| {
                f.next()
                    .expect("file")
                    .into_inner()
                    .filter(|p| matches!(p.as_rule(), G::line | G::last_line))
                    .filter_map(|p| p.into_inner().next())
                    .map(|b| (b.as_rule(), b.as_span().start(), b.as_span().end()))
                    .collect()
            });
            let by_line: Result<Vec<(G, usize, usize)>, usize> = lines(&text)
                .filter_map(|(base, chunk, last)| match parse_line(chunk, last) {
                    Ok(Some(b)) => Some(Ok((b.as_rule(), base + b.as_span().start(), base + b.as_span().end()))),
                    Ok(None) => None,
                    Err(off) => Some(Err(base + off)),
                })
                .collect();
            prop_assert_eq!(whole, by_line.ok());
        }
    }

    #[test]
    fn kube_proxy_line_takes_the_fast_path() {
        let content = r#"-A KUBE-SVC-X -m comment --comment "ns/svc:http -> 10.0.0.1:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-Y"#;
        let mut toks = Vec::new();
        assert!(plain_rule_line(content, At { line: 1, base: 0 }, &mut toks));
        assert_eq!(toks[5].text, "ns/svc:http -> 10.0.0.1:80");
        assert_eq!(Some(words(&toks)), grammar_words(content));
        assert!(plain_chain_header(":KUBE-SVC-X - [0:0]", At { line: 1, base: 0 }).is_some());
    }
}
