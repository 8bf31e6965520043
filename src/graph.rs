//! The chain graph: one node per chain, one edge per `-j CHAIN` / `-g CHAIN` rule
//! (petgraph), with the checks that need it (loops reachable from a built-in chain,
//! targets and matches reached from hooks the kernel refuses them in) and Graphviz DOT
//! output.
//!
//! Architecture invariant: built from the model only; no I/O, rendering goes to a `String`.

use std::collections::HashMap;
use std::fmt::Write as _;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, EdgeRef};
use petgraph::Direction;

use crate::diag::Diagnostic;
use crate::model::targets::Tcpmss;
use crate::model::{Hook, IpMatch, Match, Rule, Ruleset, Span, Table, Target};

/// A set of netfilter hooks (built-in chains).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HookSet(u8);

impl HookSet {
    /// No hook.
    pub const EMPTY: HookSet = HookSet(0);

    fn bit(h: Hook) -> u8 {
        1 << Hook::ALL.iter().position(|x| *x == h).unwrap_or(0)
    }
    /// The set of the given hooks.
    pub fn of(hooks: &[Hook]) -> HookSet {
        HookSet(hooks.iter().fold(0, |b, h| b | HookSet::bit(*h)))
    }
    /// Adds a hook.
    pub fn insert(&mut self, h: Hook) {
        self.0 |= HookSet::bit(h);
    }
    /// Whether `h` is in the set.
    pub fn contains(self, h: Hook) -> bool {
        self.0 & HookSet::bit(h) != 0
    }
    /// True when empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The hooks, in packet order.
    pub fn iter(self) -> impl Iterator<Item = Hook> {
        Hook::ALL.into_iter().filter(move |h| self.contains(*h))
    }
    /// The hooks of `self` not in `other`.
    pub fn minus(self, other: HookSet) -> HookSet {
        HookSet(self.0 & !other.0)
    }
}

/// The hooks each rule of a table is reached from, as the kernel computes them when it
/// loads the table (`mark_source_chains` in ip_tables.c), plus one way to get there.
///
/// The kernel walks each built-in chain rule by rule, follows every `-j`/`-g` into its
/// user chain and comes back, and stops a chain at the first *unconditional* ACCEPT,
/// DROP, RETURN or QUEUE (no address, interface, protocol or fragment test, no match,
/// `-j` not `-g`). Rules after that point are not reached from that hook, and neither are
/// the chains only they jump to. A rule reached from no hook passes every hook check.
#[derive(Clone, Debug)]
pub struct TableHooks {
    /// `rules[chain][rule]`: the hooks the rule is reached from.
    pub rules: Vec<Vec<HookSet>>,
    /// `chains[chain]`: the hooks the chain is entered from (the union over its rules, or
    /// its own hook for a built-in chain).
    pub chains: Vec<HookSet>,
    /// `via[hook][chain]`: the chain that first jumped into `chain` while walking `hook`.
    via: Vec<Vec<Option<usize>>>,
}

impl TableHooks {
    /// Walks every built-in chain of `table`.
    pub fn compute(table: &Table) -> TableHooks {
        let n = table.chains.len();
        let index: std::collections::HashMap<&str, usize> =
            table.chains.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
        let mut rules: Vec<Vec<HookSet>> = table.chains.iter().map(|c| vec![HookSet::EMPTY; c.rules.len()]).collect();
        let mut chains = vec![HookSet::EMPTY; n];
        let mut via = vec![vec![None; n]; Hook::ALL.len()];
        for (start, c) in table.chains.iter().enumerate() {
            let Some(hook) = c.hook else { continue };
            let hi = Hook::ALL.iter().position(|h| *h == hook).unwrap_or(0);
            let mut seen = vec![false; n];
            seen[start] = true;
            chains[start].insert(hook);
            // (chain, next rule) frames instead of recursion: chains can nest deeply.
            let mut stack = vec![(start, 0usize)];
            while let Some((ci, ri)) = stack.pop() {
                let Some(r) = table.chains[ci].rules.get(ri) else { continue };
                rules[ci][ri].insert(hook);
                if !unconditional_verdict(r) {
                    stack.push((ci, ri + 1));
                }
                let dst = r.target.as_ref().and_then(|t| match &t.t {
                    Target::Chain(name) => index.get(name.as_str()).copied(),
                    _ => None,
                });
                if let Some(d) = dst {
                    if !seen[d] {
                        seen[d] = true;
                        chains[d].insert(hook);
                        via[hi][d] = Some(ci);
                        stack.push((d, 0));
                    }
                }
            }
        }
        TableHooks { rules, chains, via }
    }

    /// The chain names from built-in chain `hook` to `chain`, as first walked.
    pub fn path<'t>(&self, table: &'t Table, hook: Hook, chain: usize) -> Vec<&'t str> {
        let hi = Hook::ALL.iter().position(|h| *h == hook).unwrap_or(0);
        let mut out = vec![table.chains[chain].name.as_str()];
        let mut c = chain;
        while let Some(p) = self.via[hi][c] {
            if out.len() > table.chains.len() {
                break;
            }
            out.push(table.chains[p].name.as_str());
            c = p;
        }
        out.reverse();
        out
    }
}

/// True when the IP part of a rule tests nothing (the kernel's `unconditional()`: an
/// all-zero `ipt_ip`; `-s 0.0.0.0/0` and `-p all` are zero, `! -s 0/0` is not).
fn ip_unconditional(ip: &IpMatch) -> bool {
    ip.src.is_none_or(|c| !c.inv && c.val.is_any())
        && ip.dst.is_none_or(|c| !c.inv && c.val.is_any())
        // `-i +` is saved as nothing, but the kernel sees the name "+" and calls the
        // rule conditional.
        && ip.in_iface.is_none()
        && ip.out_iface.is_none()
        && ip.proto.is_none()
        && ip.fragment.is_none()
}

/// An unconditional ACCEPT, DROP, RETURN or QUEUE: the kernel's walk stops there.
fn unconditional_verdict(r: &Rule) -> bool {
    let Some(t) = &r.target else { return false };
    !t.goto
        && matches!(t.t, Target::Accept | Target::Drop | Target::Return | Target::Queue)
        && r.matches.is_empty()
        && ip_unconditional(&r.ip)
}

/// The hooks the kernel allows a target in (`xt_target.hooks`), when it restricts them.
fn target_hooks(t: &Target) -> Option<&'static [Hook]> {
    use Hook::*;
    Some(match t {
        Target::Masquerade(_) => &[Postrouting],
        Target::Snat(_) => &[Input, Postrouting],
        Target::Dnat(_) | Target::Redirect(_) => &[Prerouting, Output],
        Target::Reject(_) => &[Input, Forward, Output],
        Target::Ct(_) | Target::Notrack => &[Prerouting, Output],
        Target::Tcpmss(Tcpmss::ClampPmtu) => &[Forward, Output, Postrouting],
        Target::Opaque(o) => match o.module.as_str() {
            "TPROXY" => &[Prerouting],
            "SYNPROXY" => &[Input, Forward],
            _ => return None,
        },
        _ => return None,
    })
}

/// True when the canonical options contain `opt` not preceded by `!`.
fn has_plain(opts: &str, opt: &str) -> bool {
    let words: Vec<&str> = opts.split_ascii_whitespace().collect();
    words.iter().enumerate().any(|(i, w)| *w == opt && (i == 0 || words[i - 1] != "!"))
}

/// The hooks the kernel allows a match in, when it restricts them: by module
/// (`xt_match.hooks`) or by option (the match's `checkentry`). Options are read from the
/// canonical save text, so typed and opaque matches are treated alike.
fn match_hooks(m: &Match) -> Option<(&'static [Hook], String)> {
    use Hook::*;
    let opts = match m.name() {
        "policy" | "addrtype" | "physdev" => m.options().to_string(),
        _ => String::new(),
    };
    let has = |o: &str| opts.split_ascii_whitespace().any(|w| w == o);
    let (hooks, what): (&'static [Hook], &str) = match m.name() {
        "mac" => (&[Prerouting, Input, Forward], "-m mac"),
        "owner" => (&[Output, Postrouting], "-m owner"),
        "socket" => (&[Prerouting, Input], "-m socket"),
        "rpfilter" => (&[Prerouting], "-m rpfilter"),
        "policy" if opts.contains("--dir in") => (&[Prerouting, Input, Forward], "-m policy --dir in"),
        "policy" if opts.contains("--dir out") => (&[Forward, Output, Postrouting], "-m policy --dir out"),
        "addrtype" if has("--limit-iface-in") => (&[Prerouting, Input, Forward], "-m addrtype --limit-iface-in"),
        "addrtype" if has("--limit-iface-out") => (&[Forward, Output, Postrouting], "-m addrtype --limit-iface-out"),
        "physdev" if (has("--physdev-out") || has("--physdev-is-out")) && !has_plain(&opts, "--physdev-is-bridged") => {
            (&[Prerouting, Input, Forward, Postrouting], "-m physdev --physdev-out")
        }
        _ => return None,
    };
    Some((hooks, what.to_string()))
}

/// TCPMSS needs a `-m tcp` test that requires SYN (kernel `tcpmss_tg4_check`).
fn has_syn_test(r: &Rule) -> bool {
    r.matches.iter().any(|m| match &m.m {
        Match::Tcp(t) => t.flags.is_some_and(|f| !f.inv && f.val.comp.0 & 0x02 != 0),
        _ => false,
    })
}

/// A chain in the graph.
#[derive(Clone, Debug)]
pub struct ChainNode {
    /// Index of the table in `Ruleset::tables`.
    pub table: usize,
    /// Index of the chain in `Table::chains`.
    pub chain: usize,
}

/// A jump or goto.
#[derive(Clone, Debug)]
pub struct JumpEdge {
    /// 1-based rule position in the source chain.
    pub rule: usize,
    /// True for `-g`.
    pub goto: bool,
    /// The rule's span.
    pub span: Span,
}

/// Chains and the jumps between them, for every table of a ruleset.
pub struct ChainGraph<'r> {
    /// The ruleset the graph describes.
    pub ruleset: &'r Ruleset,
    /// The graph.
    pub graph: DiGraph<ChainNode, JumpEdge>,
    /// `nodes[table][chain]`.
    nodes: Vec<Vec<NodeIndex>>,
}

impl<'r> ChainGraph<'r> {
    /// Builds the graph. Jumps to chains that do not exist are left out (parse reports them).
    pub fn build(ruleset: &'r Ruleset) -> ChainGraph<'r> {
        let mut graph = DiGraph::new();
        let mut nodes = Vec::new();
        for (ti, t) in ruleset.tables.iter().enumerate() {
            nodes.push(
                (0..t.chains.len()).map(|ci| graph.add_node(ChainNode { table: ti, chain: ci })).collect::<Vec<_>>(),
            );
        }
        for (ti, t) in ruleset.tables.iter().enumerate() {
            // Names to positions once per table: a lookup per jump by scanning the chains
            // would be quadratic on kube-proxy rulesets (tens of thousands of chains).
            let index: HashMap<&str, usize> =
                t.chains.iter().enumerate().rev().map(|(ci, c)| (c.name.as_str(), ci)).collect();
            for (ci, c) in t.chains.iter().enumerate() {
                for (ri, r) in c.rules.iter().enumerate() {
                    if let Some(ti_) = &r.target {
                        if let Target::Chain(name) = &ti_.t {
                            if let Some(&dst) = index.get(name.as_str()) {
                                graph.add_edge(
                                    nodes[ti][ci],
                                    nodes[ti][dst],
                                    JumpEdge { rule: ri + 1, goto: ti_.goto, span: r.span },
                                );
                            }
                        }
                    }
                }
            }
        }
        ChainGraph { ruleset, graph, nodes }
    }

    /// The node of a chain.
    pub fn node(&self, table: usize, chain: usize) -> NodeIndex {
        self.nodes[table][chain]
    }

    /// Chains reachable from the built-in chains of `table`.
    pub fn reachable(&self, table: usize) -> Vec<bool> {
        let t = &self.ruleset.tables[table];
        let mut seen = vec![false; t.chains.len()];
        for (ci, c) in t.chains.iter().enumerate() {
            if c.hook.is_some() {
                let mut dfs = Dfs::new(&self.graph, self.nodes[table][ci]);
                while let Some(n) = dfs.next(&self.graph) {
                    seen[self.graph[n].chain] = true;
                }
            }
        }
        seen
    }

    /// Errors for chain loops reachable from a built-in chain: the kernel refuses such a
    /// table (`iptables-restore: line N failed`). Unreachable loops load fine.
    pub fn loop_errors(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        // Reachability per table, computed once, on the first loop found in that table.
        let mut reach: Vec<Option<Vec<bool>>> = vec![None; self.ruleset.tables.len()];
        // Which SCC each node is in, to find the edges inside one in linear time.
        let mut in_scc = vec![usize::MAX; self.graph.node_count()];
        for (k, scc) in petgraph::algo::tarjan_scc(&self.graph).into_iter().enumerate() {
            let first = scc[0];
            let ti = self.graph[first].table;
            let cyclic = scc.len() > 1 || self.graph.edges_connecting(first, first).next().is_some();
            if !cyclic {
                continue;
            }
            let reach = reach[ti].get_or_insert_with(|| self.reachable(ti));
            if !scc.iter().any(|n| reach[self.graph[*n].chain]) {
                continue;
            }
            for n in &scc {
                in_scc[n.index()] = k;
            }
            let t = &self.ruleset.tables[ti];
            // Report at the edge inside the loop that appears last in the file.
            let mut inside: Vec<_> = scc
                .iter()
                .flat_map(|&n| self.graph.edges_directed(n, Direction::Outgoing))
                .filter(|e| in_scc[e.target().index()] == k)
                .collect();
            inside.sort_by_key(|e| e.weight().span.start);
            let Some(e) = inside.last() else { continue };
            let mut names: Vec<&str> = scc.iter().map(|n| t.chains[self.graph[*n].chain].name.as_str()).collect();
            names.sort_unstable();
            let target = &t.chains[self.graph[e.target()].chain].name;
            out.push(
                Diagnostic::error("E0207", e.weight().span, format!("chain loop reachable from a built-in chain: {}", names.join(" → ")))
                    .label(format!("closes the loop back to `{target}`"))
                    .note("the kernel refuses a table whose built-in chains can reach a loop; iptables-restore fails at COMMIT")
                    .help("remove this jump, or make it a RETURN"),
            );
        }
        out.sort_by_key(|d| d.span.map(|s| s.start));
        out
    }

    /// Errors for rules the kernel refuses because of where they can be reached from
    /// (SEMANTICS.md §1.6, §8.20), reported at the target or match with the chain path:
    /// MASQUERADE only from nat POSTROUTING, SNAT from POSTROUTING or INPUT, DNAT and
    /// REDIRECT from PREROUTING or OUTPUT, REJECT from INPUT, FORWARD or OUTPUT, CT and
    /// NOTRACK from PREROUTING or OUTPUT, `TCPMSS --clamp-mss-to-pmtu` from FORWARD,
    /// OUTPUT or POSTROUTING, TPROXY from PREROUTING, SYNPROXY from INPUT or FORWARD,
    /// `-m mac` from PREROUTING, INPUT or FORWARD, `-m owner` from OUTPUT or POSTROUTING,
    /// `-m socket`, `-m rpfilter`, `-m policy --dir`, `-m addrtype --limit-iface-*` and
    /// `-m physdev --physdev-out` likewise. Reachability is the kernel's
    /// ([`TableHooks`]): rules that no built-in chain reaches are not checked.
    ///
    /// Also reports TCPMSS rules without a SYN test (`-p tcp --syn` or `--tcp-flags … SYN`),
    /// which the kernel refuses wherever they are. Either makes iptables-restore fail at
    /// COMMIT and the whole table is not loaded.
    pub fn hook_errors(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for t in &self.ruleset.tables {
            let hooks = TableHooks::compute(t);
            for (ci, c) in t.chains.iter().enumerate() {
                for (ri, r) in c.rules.iter().enumerate() {
                    let reached = hooks.rules[ci][ri];
                    let mut items: Vec<(Span, String, &'static [Hook])> = Vec::new();
                    if let Some(ti) = &r.target {
                        if let Some(h) = target_hooks(&ti.t) {
                            let what = match &ti.t {
                                Target::Tcpmss(_) => "-j TCPMSS --clamp-mss-to-pmtu".to_string(),
                                other => format!("-j {}", other.name()),
                            };
                            items.push((ti.span, what, h));
                        }
                        if matches!(ti.t, Target::Tcpmss(_)) && !has_syn_test(r) {
                            out.push(
                                Diagnostic::error("E0210", ti.span, "TCPMSS without a SYN test")
                                    .label("the rule must test for SYN")
                                    .note("the kernel refuses TCPMSS unless a `-m tcp` match requires SYN (\"Only works on TCP SYN packets\"); iptables-restore fails at COMMIT and the whole table is not loaded")
                                    .help("add `--syn` (or `--tcp-flags SYN,RST SYN`) after `-p tcp`"),
                            );
                        }
                    }
                    for m in &r.matches {
                        if let Some((h, what)) = match_hooks(&m.m) {
                            items.push((m.span, what, h));
                        }
                    }
                    for (span, what, allowed) in items {
                        let bad = reached.minus(HookSet::of(allowed));
                        let Some(first) = bad.iter().next() else { continue };
                        let path = hooks.path(t, first, ci).join(" → ");
                        let bad_names: Vec<&str> = bad.iter().map(|h| h.name()).collect();
                        let ok_names: Vec<&str> = allowed.iter().map(|h| h.name()).collect();
                        let msg = if c.hook.is_some() {
                            format!("`{what}` in {} {}", t.name, c.name)
                        } else {
                            format!("`{what}` reachable from {} {}: {path}", t.name, bad_names.join(", "))
                        };
                        out.push(
                            Diagnostic::error("E0210", span, msg)
                                .label(format!("allowed only from {}", ok_names.join(", ")))
                                .note(format!(
                                    "the kernel checks every rule against the built-in chains that reach it and refuses `{what}` from {}; iptables-restore fails at COMMIT and the whole table is not loaded",
                                    bad_names.join(", ")
                                ))
                                .help(if c.hook.is_some() {
                                    format!("move the rule to {}", ok_names.join(" or "))
                                } else {
                                    format!("jump to `{}` only from {}", c.name, ok_names.join(" or "))
                                }),
                        );
                    }
                }
            }
        }
        out.sort_by_key(|d| d.span.map(|s| s.start));
        out
    }

    /// Graphviz DOT: a cluster per table, built-in chains as boxes showing their policy,
    /// user chains as ellipses, jumps solid and gotos dashed, labelled by rule position
    /// and line.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph fwverify {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n  edge [fontname=\"monospace\", fontsize=10];\n");
        for (ti, t) in self.ruleset.tables.iter().enumerate() {
            let _ = writeln!(s, "  subgraph \"cluster_{}\" {{\n    label=\"{}\";", t.name, t.name);
            for (ci, c) in t.chains.iter().enumerate() {
                let id = format!("{}:{}", t.name, c.name);
                match c.policy {
                    Some(p) => {
                        let _ = writeln!(
                            s,
                            "    \"{}\" [shape=box, style=bold, label=\"{}\\npolicy {}\\n{} rules\"];",
                            esc(&id),
                            esc(&c.name),
                            p,
                            c.rules.len()
                        );
                    }
                    None => {
                        let _ = writeln!(
                            s,
                            "    \"{}\" [shape=ellipse, label=\"{}\\n{} rules\"];",
                            esc(&id),
                            esc(&c.name),
                            c.rules.len()
                        );
                    }
                }
                let _ = ci;
            }
            let _ = writeln!(s, "  }}");
            for e in self.graph.edge_references() {
                let a = &self.graph[e.source()];
                if a.table != ti {
                    continue;
                }
                let b = &self.graph[e.target()];
                let w = e.weight();
                let _ = writeln!(
                    s,
                    "  \"{}:{}\" -> \"{}:{}\" [label=\"{}#{} (line {})\"{}];",
                    t.name,
                    esc(&t.chains[a.chain].name),
                    t.name,
                    esc(&t.chains[b.chain].name),
                    if w.goto { "goto " } else { "" },
                    w.rule,
                    w.span.line,
                    if w.goto { ", style=dashed" } else { "" }
                );
            }
        }
        s.push_str("}\n");
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    //! Each case was loaded with iptables-legacy-restore 1.8.9 on Linux 6.18; `ok` means
    //! the kernel accepted the table.

    use super::*;

    const MAC: &str = "-m mac --mac-source 00:11:22:33:44:55";

    /// The E0210 errors of a file.
    fn hook_errs(text: &str) -> Vec<Diagnostic> {
        crate::load(text).diagnostics.into_iter().filter(|d| d.code == "E0210").collect()
    }

    fn ok(text: &str) {
        let e = hook_errs(text);
        assert!(e.is_empty(), "{text}\n{:?}", e.iter().map(|d| &d.message).collect::<Vec<_>>());
    }

    /// Asserts one E0210 whose message contains `msg`, on line `line`.
    fn refused(text: &str, msg: &str, line: u32) {
        let e = hook_errs(text);
        assert_eq!(e.len(), 1, "{text}\n{:?}", e.iter().map(|d| &d.message).collect::<Vec<_>>());
        assert!(e[0].message.contains(msg), "{:?} lacks {msg:?}", e[0].message);
        assert_eq!(e[0].span.map(|s| s.line), Some(line), "{}", e[0].message);
        assert!(e[0].note.is_some() && e[0].help.is_some());
    }

    #[test]
    fn mac_reached_from_output() {
        refused(
            &format!("*filter\n:A - [0:0]\n-A OUTPUT -j A\n-A A {MAC}\nCOMMIT\n"),
            "`-m mac` reachable from filter OUTPUT: OUTPUT → A",
            4,
        );
        refused(&format!("*filter\n:A - [0:0]\n-A OUTPUT -g A\n-A A {MAC}\nCOMMIT\n"), "OUTPUT → A", 4);
        refused(&format!("*mangle\n-A POSTROUTING {MAC}\nCOMMIT\n"), "`-m mac` in mangle POSTROUTING", 2);
        refused(
            &format!(
                "*filter\n:A - [0:0]\n:B - [0:0]\n-A OUTPUT -j B\n-A B -j A\n-A B -j RETURN\n-A A {MAC}\nCOMMIT\n"
            ),
            "OUTPUT → B → A",
            7,
        );
        ok(&format!("*filter\n:A - [0:0]\n-A INPUT -j A\n-A FORWARD -j A\n-A A {MAC}\nCOMMIT\n"));
        ok(&format!("*nat\n-A PREROUTING {MAC}\n-A INPUT {MAC}\nCOMMIT\n"));
        // Never reached: not checked.
        ok(&format!("*filter\n:A - [0:0]\n-A A {MAC}\nCOMMIT\n"));
    }

    #[test]
    fn the_kernel_walk_stops_at_unconditional_verdicts() {
        // Rules after an unconditional ACCEPT/DROP/RETURN/QUEUE are not reached.
        for v in ["ACCEPT", "DROP", "QUEUE"] {
            ok(&format!("*filter\n:A - [0:0]\n-A OUTPUT -j {v}\n-A OUTPUT -j A\n-A A {MAC}\nCOMMIT\n"));
        }
        ok(&format!(
            "*filter\n:A - [0:0]\n:B - [0:0]\n-A OUTPUT -j B\n-A B -j RETURN\n-A B -j A\n-A A {MAC}\nCOMMIT\n"
        ));
        ok(&format!(
            "*filter\n:A - [0:0]\n:B - [0:0]\n-A OUTPUT -j A\n-A A -j ACCEPT\n-A A -j B\n-A B {MAC}\nCOMMIT\n"
        ));
        ok(&format!(
            "*filter\n:A - [0:0]\n-A OUTPUT -s 0.0.0.0/0 -p all -j ACCEPT\n-A OUTPUT -j A\n-A A {MAC}\nCOMMIT\n"
        ));
        // Anything conditional, non-standard or a goto does not stop it.
        for first in
            ["-p tcp -j ACCEPT", "! -s 0.0.0.0/0 -j ACCEPT", "-m comment --comment x -j ACCEPT", "-j REJECT", "-j LOG"]
        {
            refused(
                &format!("*filter\n:A - [0:0]\n-A OUTPUT {first}\n-A OUTPUT -j A\n-A A {MAC}\nCOMMIT\n"),
                "OUTPUT → A",
                5,
            );
        }
        refused(&format!("*filter\n:A - [0:0]\n-A OUTPUT\n-A OUTPUT {MAC}\nCOMMIT\n"), "in filter OUTPUT", 4);
        refused(
            &format!(
                "*filter\n:A - [0:0]\n:B - [0:0]\n-A OUTPUT -j A\n-A A -g B\n-A B -j RETURN\n-A A {MAC}\nCOMMIT\n"
            ),
            "reachable from filter OUTPUT: OUTPUT → A",
            7,
        );
    }

    #[test]
    fn owner_and_other_matches() {
        refused("*filter\n-A INPUT -m owner --uid-owner 0\nCOMMIT\n", "`-m owner` in filter INPUT", 2);
        ok("*filter\n-A OUTPUT -m owner --uid-owner 0\nCOMMIT\n*nat\n-A POSTROUTING -m owner --uid-owner 0\nCOMMIT\n");
        ok("*mangle\n-A PREROUTING -m socket\n-A INPUT -m socket\n-A PREROUTING -m rpfilter\nCOMMIT\n");
        refused("*mangle\n-A OUTPUT -m socket\nCOMMIT\n", "-m socket", 2);
        refused("*mangle\n-A INPUT -m rpfilter\nCOMMIT\n", "-m rpfilter", 2);
        refused("*mangle\n-A OUTPUT -m physdev --physdev-out x\nCOMMIT\n", "-m physdev", 2);
        refused("*mangle\n-A OUTPUT -m physdev ! --physdev-is-bridged --physdev-out x\nCOMMIT\n", "-m physdev", 2);
        ok("*mangle\n-A OUTPUT -m physdev --physdev-is-bridged --physdev-out x\n-A POSTROUTING -m physdev --physdev-out x\nCOMMIT\n");
        refused("*mangle\n-A OUTPUT -m policy --dir in --pol none\nCOMMIT\n", "-m policy --dir in", 2);
        refused("*mangle\n-A PREROUTING -m policy --dir out --pol none\nCOMMIT\n", "-m policy --dir out", 2);
        refused("*mangle\n-A OUTPUT -m addrtype --src-type LOCAL --limit-iface-in\nCOMMIT\n", "--limit-iface-in", 2);
        refused("*mangle\n-A INPUT -m addrtype --src-type LOCAL --limit-iface-out\nCOMMIT\n", "--limit-iface-out", 2);
        ok("*mangle\n-A FORWARD -m addrtype --src-type LOCAL --limit-iface-in\nCOMMIT\n");
    }

    #[test]
    fn nat_targets_by_hook() {
        refused(
            "*nat\n:A - [0:0]\n-A PREROUTING -j A\n-A POSTROUTING -j A\n-A A -j MASQUERADE\nCOMMIT\n",
            "`-j MASQUERADE` reachable from nat PREROUTING: PREROUTING → A",
            5,
        );
        ok("*nat\n:A - [0:0]\n-A POSTROUTING -j A\n-A A -j MASQUERADE\nCOMMIT\n");
        refused(
            "*nat\n:A - [0:0]\n-A INPUT -j A\n-A OUTPUT -j A\n-A A -j SNAT --to 1.1.1.1\nCOMMIT\n",
            "reachable from nat OUTPUT: OUTPUT → A",
            5,
        );
        ok("*nat\n:A - [0:0]\n-A INPUT -j A\n-A POSTROUTING -j A\n-A A -j SNAT --to 1.1.1.1\nCOMMIT\n");
        ok("*nat\n:A - [0:0]\n-A OUTPUT -j A\n-A PREROUTING -j A\n-A A -j DNAT --to 1.1.1.1\n-A A -j REDIRECT\nCOMMIT\n");
        refused(
            "*nat\n:A - [0:0]\n-A INPUT -j A\n-A A -j REDIRECT\nCOMMIT\n",
            "`-j REDIRECT` reachable from nat INPUT",
            4,
        );
    }

    #[test]
    fn tcpmss() {
        refused(
            "*mangle\n:A - [0:0]\n-A PREROUTING -j A\n-A A -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT\n",
            "`-j TCPMSS --clamp-mss-to-pmtu` reachable from mangle PREROUTING",
            4,
        );
        ok("*mangle\n:A - [0:0]\n-A FORWARD -j A\n-A OUTPUT -j A\n-A POSTROUTING -j A\n-A A -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT\n");
        ok("*mangle\n-A PREROUTING -p tcp --syn -j TCPMSS --set-mss 1000\nCOMMIT\n");
        // The SYN test is required even where no hook reaches the rule.
        refused("*mangle\n:A - [0:0]\n-A A -p tcp -j TCPMSS --set-mss 5\nCOMMIT\n", "TCPMSS without a SYN test", 3);
        ok("*mangle\n-A OUTPUT -p tcp -m tcp --dport 1 -m tcp --syn -j TCPMSS --set-mss 5\nCOMMIT\n");
        ok("*mangle\n-A OUTPUT -p tcp --tcp-flags ACK SYN -j TCPMSS --set-mss 5\nCOMMIT\n");
    }

    #[test]
    fn hook_sets() {
        let parsed = crate::load(
            "*filter\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A OUTPUT -j A\n-A A -j DROP\n-A A -j B\nCOMMIT\n",
        );
        let t = &parsed.ruleset.tables[0];
        let h = TableHooks::compute(t);
        let a = t.chain_index("A").unwrap();
        let b = t.chain_index("B").unwrap();
        assert_eq!(h.chains[a], HookSet::of(&[Hook::Input, Hook::Output]));
        assert_eq!(h.rules[a][0], HookSet::of(&[Hook::Input, Hook::Output]));
        assert!(h.rules[a][1].is_empty());
        assert!(h.chains[b].is_empty());
        assert_eq!(h.path(t, Hook::Output, a), vec!["OUTPUT", "A"]);
        assert_eq!(
            HookSet::of(&[Hook::Input, Hook::Output]).minus(HookSet::of(&[Hook::Output])).iter().collect::<Vec<_>>(),
            vec![Hook::Input]
        );
    }
}
