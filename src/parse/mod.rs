//! Reading `iptables-save` text: the pest grammar (`grammar/iptables.pest`) tokenizes,
//! lowering turns lines into the typed model and checks what iptables-restore checks.
//!
//! Parsing never fails as a whole: [`parse`] returns the model it could build plus every
//! diagnostic, sorted by position. A rule with an error is left out of the model.
//! Architecture invariant: no I/O; text comes in as `&str`.

mod lower;
mod modules;
mod rule;
mod validate;

use crate::diag::Diagnostic;
use crate::model::{Ruleset, Span};

/// The pest parser generated from `grammar/iptables.pest` (its rule enum is generated).
#[allow(missing_docs)]
pub mod grammar {
    /// The parser; `Rule` names the grammar's rules.
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/iptables.pest"]
    pub struct SaveGrammar;
}

/// The outcome of reading one file.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// Everything that could be read. Rules with errors are missing.
    pub ruleset: Ruleset,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True when any diagnostic is an error (iptables-restore would refuse the file).
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.is_error())
    }
}

/// Parses and validates an `iptables-save` / `ip6tables-save` file.
pub fn parse(text: &str) -> Parsed {
    parse_as(text, None)
}

/// Parses like [`parse`], with the address family known beforehand (`None`: decided from
/// the file's addresses and modules).
pub fn parse_as(text: &str, family: Option<crate::model::Family>) -> Parsed {
    let mut diags = Vec::new();
    let ruleset = match lower::lower_file(text, family, &mut diags) {
        Ok(ruleset) => ruleset,
        Err(lower::Untokenizable(start)) => {
            // The grammar accepts every line (`bad_line`), so this does not happen; report
            // it rather than panic.
            diags.clear();
            let line = text[..start.min(text.len())].matches('\n').count() as u32 + 1;
            diags.push(Diagnostic::error("E0001", Span::new(start, start, line), "file could not be tokenized"));
            Ruleset::default()
        }
    };
    let mut ruleset = ruleset;
    validate::validate(&mut ruleset, &mut diags);
    diags.sort_by_key(|d| d.span.map(|s| (s.start, s.end)).unwrap_or((u32::MAX, 0)));
    Parsed { ruleset, diagnostics: diags }
}

/// The known `-m` module names (modelled or kept opaque), for hints and tests.
pub fn known_matches() -> Vec<&'static str> {
    modules::known_match_names()
}
