//! Checks over a whole lowered ruleset that iptables makes per rule but that need the
//! chain a rule lands in.

use crate::diag::Diagnostic;
use crate::model::{Hook, Ruleset};

pub(super) fn validate(rs: &mut Ruleset, diags: &mut Vec<Diagnostic>) {
    for t in &mut rs.tables {
        for c in &mut t.chains {
            let Some(hook) = c.hook else { continue };
            let mut bad = Vec::new();
            for (i, r) in c.rules.iter().enumerate() {
                let no_in = matches!(hook, Hook::Output | Hook::Postrouting);
                let no_out = matches!(hook, Hook::Input | Hook::Prerouting);
                let (opt, present) =
                    if no_in { ("-i", r.ip.in_iface.is_some()) } else { ("-o", r.ip.out_iface.is_some()) };
                if (no_in || no_out) && present {
                    diags.push(
                        Diagnostic::error("E0209", r.span, format!("`{opt}` cannot be used in chain {}", c.name))
                            .note(format!(
                                "packets in {} have no {} interface; iptables: Can't use {opt} with {}",
                                c.name,
                                if no_in { "input" } else { "output" },
                                c.name
                            ))
                            .help(format!(
                                "remove `{opt}`, or move the rule to a chain where packets have that interface"
                            )),
                    );
                    bad.push(i);
                }
            }
            for i in bad.into_iter().rev() {
                c.rules.remove(i);
            }
        }
    }
}
