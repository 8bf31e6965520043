//! fwverify reads Linux `iptables-save` rulesets into a typed model and a chain graph,
//! so that they can be checked, printed canonically, simulated and verified.
//!
//! Brief overview: [`load`] parses text into a [`model::Ruleset`] plus diagnostics,
//! [`graph::ChainGraph`] describes the jumps between chains.
//!
//! ```
//! let parsed = fwverify::load("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n");
//! assert!(!parsed.has_errors());
//! let printed = fwverify::model::SavePrinter { ruleset: &parsed.ruleset, options: Default::default() }.to_string();
//! assert!(printed.contains("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"));
//! ```
#![deny(missing_docs)]
// Diagnostics carry spans, labels, notes and hints by value; boxing them everywhere
// would only add noise to every parser.
#![allow(clippy::result_large_err)]

pub mod check;
pub mod cli;
pub mod diag;
pub mod graph;
pub mod kernel;
pub mod model;
pub mod packet;
pub mod parse;
pub mod report;
pub mod sim;
pub mod trace;
pub mod verify;

pub use parse::Parsed;

/// Parses a ruleset and runs every load-time check, including those that need the chain
/// graph (loops reachable from built-in chains; targets and matches reached from hooks
/// the kernel refuses them in).
pub fn load(text: &str) -> Parsed {
    load_as(text, None)
}

/// [`load`] with the address family known beforehand (e.g. from a `.v4`/`.v6` file name).
pub fn load_as(text: &str, family: Option<model::Family>) -> Parsed {
    let mut parsed = parse::parse_as(text, family);
    let graph = graph::ChainGraph::build(&parsed.ruleset);
    let mut found = graph.loop_errors();
    found.extend(graph.hook_errors());
    if !found.is_empty() {
        parsed.diagnostics.extend(found);
        parsed.diagnostics.sort_by_key(|d| d.span.map(|s| (s.start, s.end)).unwrap_or((u32::MAX, 0)));
    }
    parsed
}
