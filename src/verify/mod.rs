//! The verifier: properties of a ruleset over every packet trace an attacker can send,
//! decided with Z3 (issue #4).
//!
//! - [`property`]: the property language of `fwverify prove`.
//! - [`encode`]: the symbolic packet ([`encode::SymPacket`]) and every stateless match as
//!   a z3 `Bool`; stateful and opaque matches are reported as not encodable, never guessed.
//! - [`traverse`]: one table at one hook as formulas, exactly as `ipt_do_table` walks it
//!   (SEMANTICS.md §2): the condition of reaching and firing each rule, and of each
//!   final verdict.
//! - [`stateless`]: unreachable and shadowed rules (used by `lint`).
//! - [`query`]: the packet classes that get a verdict (`fwverify query`).
//!
//! Z3 answers Unknown honestly: every check goes through [`check`], which turns an
//! Unknown into [`VerifyError::Unknown`] with the solver's reason.
//!
//! Architecture invariant: no I/O; counterexamples are replayed in `sim` before they are
//! reported; z3's context is the thread-local one of the `z3`
//! crate, so formulas never cross threads.

pub mod encode;
pub mod property;
pub mod prove;
pub mod query;
pub mod stateless;
pub mod traverse;

#[cfg(test)]
mod crosscheck;

use std::fmt;

use z3::ast::Bool;
use z3::{SatResult, Solver};

use crate::model::{Rule, Ruleset};

/// A rule by position: indices into `Ruleset::tables`, `Table::chains`, `Chain::rules`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// Table index.
    pub table: usize,
    /// Chain index in the table.
    pub chain: usize,
    /// Rule index in the chain (0-based).
    pub rule: usize,
}

impl RuleRef {
    /// The rule.
    pub fn get<'r>(&self, rs: &'r Ruleset) -> &'r Rule {
        &rs.tables[self.table].chains[self.chain].rules[self.rule]
    }

    /// `filter INPUT #3` (1-based position, as `iptables -L --line-numbers` counts).
    pub fn describe(&self, rs: &Ruleset) -> String {
        let t = &rs.tables[self.table];
        format!("{} {} #{}", t.name, t.chains[self.chain].name, self.rule + 1)
    }
}

/// Why a verification question has no answer.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Z3 returned Unknown.
    #[error("z3 could not decide {what}: {reason}")]
    Unknown {
        /// The question.
        what: String,
        /// `get_reason_unknown()`.
        reason: String,
    },
    /// The question does not fit the ruleset (no such table or hook, a loop, a bad query).
    #[error("{0}")]
    Input(String),
}

/// Runs `solver` under `assumptions`: `Ok(true)` when satisfiable, `Ok(false)` when not,
/// and [`VerifyError::Unknown`] with the solver's reason otherwise. `what` names the
/// question for the message.
pub fn check(solver: &Solver, assumptions: &[Bool], what: impl FnOnce() -> String) -> Result<bool, VerifyError> {
    let r = if assumptions.is_empty() { solver.check() } else { solver.check_assumptions(assumptions) };
    match r {
        SatResult::Sat => Ok(true),
        SatResult::Unsat => Ok(false),
        SatResult::Unknown => Err(VerifyError::Unknown {
            what: what(),
            reason: solver.get_reason_unknown().unwrap_or_else(|| "no reason given".into()),
        }),
    }
}

/// Shows a rule as `filter INPUT #3: -A INPUT -p tcp …`.
pub struct ShowRule<'a>(pub &'a Ruleset, pub &'a RuleRef);

impl fmt::Display for ShowRule<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rs = self.0;
        let r = self.1;
        let chain = &rs.tables[r.table].chains[r.chain].name;
        write!(f, "{}: -A {chain}", r.describe(rs))?;
        let rule = r.get(rs);
        write!(f, "{rule}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use z3::ast::BV;

    #[test]
    fn unknown_is_reported_with_the_solvers_reason() {
        let solver = Solver::new();
        let mut p = z3::Params::new();
        p.set_u32("rlimit", 1);
        solver.set_params(&p);
        let (x, y) = (BV::new_const("x", 64), BV::new_const("y", 64));
        solver.assert(x.bvmul(&y).eq(BV::from_u64(0x1234_5678_9abc_def1, 64)));
        solver.assert(x.bvugt(BV::from_u64(1, 64)));
        solver.assert(y.bvugt(BV::from_u64(1, 64)));
        match check(&solver, &[], || "a factorisation".into()) {
            Err(VerifyError::Unknown { what, reason }) => {
                assert_eq!(what, "a factorisation");
                assert!(!reason.is_empty());
            }
            other => panic!("expected Unknown, got {other:?}"),
        }
    }
}
