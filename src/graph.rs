//! The chain graph: one node per chain, one edge per `-j CHAIN` / `-g CHAIN` rule
//! (petgraph), with the checks that need it (loops reachable from a built-in chain) and
//! Graphviz DOT output.
//!
//! Architecture invariant: built from the model only; no I/O, rendering goes to a `String`.

use std::fmt::Write as _;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, EdgeRef};
use petgraph::Direction;

use crate::diag::Diagnostic;
use crate::model::{Ruleset, Span, Target};

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
            for (ci, c) in t.chains.iter().enumerate() {
                for (ri, r) in c.rules.iter().enumerate() {
                    if let Some(ti_) = &r.target {
                        if let Target::Chain(name) = &ti_.t {
                            if let Some(dst) = t.chain_index(name) {
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
        for scc in petgraph::algo::tarjan_scc(&self.graph) {
            let first = scc[0];
            let ti = self.graph[first].table;
            let cyclic = scc.len() > 1 || self.graph.edges_connecting(first, first).next().is_some();
            if !cyclic {
                continue;
            }
            let reach = self.reachable(ti);
            if !scc.iter().any(|n| reach[self.graph[*n].chain]) {
                continue;
            }
            let t = &self.ruleset.tables[ti];
            // Report at the edge inside the loop that appears last in the file.
            let mut inside: Vec<_> = scc
                .iter()
                .flat_map(|&n| self.graph.edges_directed(n, Direction::Outgoing))
                .filter(|e| scc.contains(&e.target()))
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
