//! The verifier: properties of a ruleset over every packet trace an attacker can send,
//! decided with Z3.
//!
//! Architecture invariant: no I/O; counterexamples are replayed in `sim` before they are
//! reported.

pub mod property;
