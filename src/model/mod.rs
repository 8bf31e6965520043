//! The typed model of a ruleset: `Ruleset → Table → Chain → Rule`, with source spans,
//! typed matches and targets, and canonical `iptables-save` printing (`Display`).
//!
//! Architecture invariant: `model` does no I/O and knows nothing about pest, petgraph or
//! z3. Every other module speaks in these types.

pub mod matches;
pub mod net;
pub mod print;
pub mod targets;

pub use matches::Match;
pub use net::{Cidr, Family, IfaceName, PortRange, Proto, TcpFlags};
pub use print::{quote, PrintOptions, SavePrinter};
pub use targets::Target;

/// A byte range in the source text, plus the 1-based line it starts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset one past the last byte.
    pub end: u32,
    /// 1-based line number of `start`.
    pub line: u32,
}

impl Span {
    /// A span of `start..end` on `line`.
    pub fn new(start: usize, end: usize, line: u32) -> Span {
        Span { start: start as u32, end: end as u32, line }
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end), line: self.line.min(other.line) }
    }
}

/// Packet and byte counters (`[pkts:bytes]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A whole `iptables-save` file: the tables in file order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// IPv4 or IPv6, decided from the file's addresses and modules (default IPv4).
    pub family: Option<Family>,
    /// Tables in the order of their `*table` lines. A table given twice keeps only the last
    /// block, as iptables-restore does.
    pub tables: Vec<Table>,
}

impl Ruleset {
    /// The table called `name`.
    pub fn table(&self, name: TableName) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
    /// The family, IPv4 unless the file says otherwise.
    pub fn family(&self) -> Family {
        self.family.unwrap_or(Family::V4)
    }
    /// Total number of rules.
    pub fn rule_count(&self) -> usize {
        self.tables.iter().flat_map(|t| &t.chains).map(|c| c.rules.len()).sum()
    }
}

/// The netfilter tables iptables-restore knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableName {
    /// `raw`
    Raw,
    /// `mangle`
    Mangle,
    /// `nat`
    Nat,
    /// `filter`
    Filter,
    /// `security`
    Security,
}

/// A netfilter hook (built-in chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// PREROUTING
    Prerouting,
    /// INPUT
    Input,
    /// FORWARD
    Forward,
    /// OUTPUT
    Output,
    /// POSTROUTING
    Postrouting,
}

impl Hook {
    /// Every hook, in packet order.
    pub const ALL: [Hook; 5] = [Hook::Prerouting, Hook::Input, Hook::Forward, Hook::Output, Hook::Postrouting];
    /// The built-in chain name.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }
    /// The hook of a built-in chain name.
    pub fn from_name(s: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.name() == s)
    }
}

impl TableName {
    /// Every table, in the order iptables-legacy-save lists a freshly loaded namespace.
    pub const ALL: [TableName; 5] =
        [TableName::Raw, TableName::Mangle, TableName::Nat, TableName::Filter, TableName::Security];

    /// The name as written after `*`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableName::Raw => "raw",
            TableName::Mangle => "mangle",
            TableName::Nat => "nat",
            TableName::Filter => "filter",
            TableName::Security => "security",
        }
    }

    /// Parses a table name (exact, case-sensitive like the kernel).
    pub fn parse(s: &str) -> Option<TableName> {
        TableName::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The built-in chains (hooks) of this table, in iptables-save order.
    pub fn hooks(self) -> &'static [Hook] {
        use Hook::*;
        match self {
            TableName::Raw => &[Prerouting, Output],
            TableName::Mangle => &[Prerouting, Input, Forward, Output, Postrouting],
            TableName::Nat => &[Prerouting, Input, Output, Postrouting],
            TableName::Filter | TableName::Security => &[Input, Forward, Output],
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `*table … COMMIT` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Which table.
    pub name: TableName,
    /// Built-in chains first (in hook order), then user chains in the order they were declared.
    pub chains: Vec<Chain>,
    /// The `*table` line.
    pub span: Span,
}

impl Table {
    /// The chain called `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
    /// Index of the chain called `name`.
    pub fn chain_index(&self, name: &str) -> Option<usize> {
        self.chains.iter().position(|c| c.name == name)
    }
}

/// A built-in chain's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// ACCEPT
    Accept,
    /// DROP
    Drop,
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        })
    }
}

/// A chain with its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Name (≤ 28 characters).
    pub name: String,
    /// `Some` for built-in chains (their hook), `None` for user chains.
    pub hook: Option<Hook>,
    /// Policy of a built-in chain; user chains have none.
    pub policy: Option<Policy>,
    /// The header's counters (`[0:0]` when absent).
    pub counters: Counters,
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// The `:NAME` header line, or the table line for built-ins the file never declared.
    pub span: Span,
}

/// One rule: the IP part, matches in source order, and an optional target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The whole line.
    pub span: Span,
    /// `[pkts:bytes]` prefix or `-c P B`, if given.
    pub counters: Option<Counters>,
    /// `-s -d -i -o -p -f`.
    pub ip: IpMatch,
    /// `-m` matches in source order (with implicit `-m tcp/udp/icmp` inserted where iptables
    /// inserts them).
    pub matches: Vec<MatchItem>,
    /// `-j`/`-g`; a rule without target only counts packets.
    pub target: Option<TargetItem>,
}

/// The generic IP header part of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IpMatch {
    /// `[!] -s`
    pub src: Option<Neg<Cidr>>,
    /// `[!] -d`
    pub dst: Option<Neg<Cidr>>,
    /// `[!] -i`
    pub in_iface: Option<Neg<IfaceName>>,
    /// `[!] -o`
    pub out_iface: Option<Neg<IfaceName>>,
    /// `[!] -p` (protocol 0/`all` is stored as `None`).
    pub proto: Option<Neg<Proto>>,
    /// `[!] -f`: `Some(false)` = only non-first fragments, `Some(true)` = `! -f`.
    pub fragment: Option<bool>,
}

/// A value with its `!` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Neg<T> {
    /// True when written with `!`.
    pub inv: bool,
    /// The value.
    pub val: T,
}

impl<T> Neg<T> {
    /// A value without `!`.
    pub fn pos(val: T) -> Neg<T> {
        Neg { inv: false, val }
    }
}

/// A match with the span of its `-m NAME …` text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchItem {
    /// The match.
    pub m: Match,
    /// From `-m` (or the first option of an implicit match) to its last option.
    pub span: Span,
}

/// A target with the span of its `-j NAME …` text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetItem {
    /// The target.
    pub t: Target,
    /// True for `-g` (goto), false for `-j`.
    pub goto: bool,
    /// From `-j`/`-g` to its last option.
    pub span: Span,
}
