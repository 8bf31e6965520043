//! fwverify's integration tests: one binary (`autotests = false`), one module per area.
//!
//! - `corpus`: every real-world ruleset in `../shared/corpus` loads (or is refused) as the
//!   kernel decided, accepted files round-trip through the printer and simulate (or name
//!   the match the simulator cannot evaluate).
//! - `bad`: malformed inputs in `data/bad/`, rendered diagnostics snapshotted with insta.
//! - `cli`: the `fwverify` binary — exit codes, `fmt`, `graph`, `--help`, missing files.
//! - `roundtrip`: proptest — generated canonical rules print back unchanged.
//! - `kernel`: `fwverify fmt` against `iptables-legacy-restore` + `-save` in a throwaway
//!   network namespace (root only; skipped with a message elsewhere, fails under `CI`).
//! - `conform`: the simulator against the kernel for every shipped scenario and the
//!   conformance suite (`data/conform/`: one small ruleset per feature, with expectations).
//! - `conform_random`: the same for seeded random rulesets and traces (proptest).
//! - `prove`: `fwverify prove` witnesses, replayed with `check --scenario`.
//! - `verify`: `fwverify query` (packet classes, unreachable and shadowed rules).
//! - `traces`: `fwverify gen` output and pcap/pcapng captures replayed by `check --scenario`.
//! - `garbage`: proptest — token-soup rulesets, random scenario rows and random capture
//!   bytes end in a value or an error, never a panic or a hang.

mod common;

mod alloc;
mod bad;
mod cli;
mod conform;
mod conform_random;
mod corpus;
mod garbage;
mod kernel;
mod prove;
mod roundtrip;
mod traces;
mod verify;
