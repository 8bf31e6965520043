//! Canonical `iptables-save` printing of the model (SEMANTICS.md §1.4–1.5).

use std::borrow::Cow;
use std::fmt;

use super::{Chain, Counters, Rule, Ruleset, Table};

/// Quotes a string the way `xtables_save_string` does: bare when it is non-empty and only
/// `[A-Za-z0-9_-]`, else in double quotes with `"`, `\` and `'` escaped by a backslash.
pub fn quote(s: &str) -> Cow<'_, str> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Cow::Owned(out)
}

/// How to print a ruleset.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrintOptions {
    /// Print rule counters as `[pkts:bytes]` prefixes and chain counters as given, like
    /// `iptables-save -c` after `iptables-restore -c`. Without it every counter is `[0:0]`
    /// and rules have no prefix, as after a plain `iptables-restore`.
    pub counters: bool,
}

/// Prints a ruleset exactly as `iptables-legacy-save` prints it after the file was
/// loaded into an empty network namespace: tables in reverse order of their first
/// appearance (the kernel lists the most recently created table first), built-in chains
/// in hook order, user chains sorted by name (libiptc keeps them sorted), canonical rules.
pub struct SavePrinter<'a> {
    /// The ruleset.
    pub ruleset: &'a Ruleset,
    /// Options.
    pub options: PrintOptions,
}

impl fmt::Display for SavePrinter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for table in self.ruleset.tables.iter().rev() {
            write_table(f, table, self.options)?;
        }
        Ok(())
    }
}

/// The chains of a table in save order: built-ins (hook order), then user chains by name.
pub(crate) fn save_order(table: &Table) -> Vec<&Chain> {
    let mut builtins: Vec<&Chain> = table.chains.iter().filter(|c| c.hook.is_some()).collect();
    builtins.sort_by_key(|c| c.hook);
    let mut users: Vec<&Chain> = table.chains.iter().filter(|c| c.hook.is_none()).collect();
    users.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    builtins.extend(users);
    builtins
}

fn write_table(f: &mut fmt::Formatter<'_>, table: &Table, o: PrintOptions) -> fmt::Result {
    writeln!(f, "*{}", table.name)?;
    let chains = save_order(table);
    for c in &chains {
        let counters = if o.counters && c.hook.is_some() { c.counters } else { Counters::default() };
        match c.policy {
            Some(p) => writeln!(f, ":{} {} [{}:{}]", c.name, p, counters.packets, counters.bytes)?,
            None => writeln!(f, ":{} - [0:0]", c.name)?,
        }
    }
    for c in &chains {
        for r in &c.rules {
            if o.counters {
                let k = r.counters.unwrap_or_default();
                write!(f, "[{}:{}] ", k.packets, k.bytes)?;
            }
            writeln!(f, "-A {}{}", c.name, RuleBody(r))?;
        }
    }
    writeln!(f, "COMMIT")
}

/// The part of a rule after `-A CHAIN`, with a leading space (empty for an empty rule).
pub struct RuleBody<'a>(pub &'a Rule);

impl fmt::Display for RuleBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let bang = |inv: bool| if inv { " !" } else { "" };
        if let Some(s) = &r.ip.src {
            write!(f, "{} -s {}", bang(s.inv), s.val)?;
        }
        if let Some(d) = &r.ip.dst {
            write!(f, "{} -d {}", bang(d.inv), d.val)?;
        }
        // A bare `-i +`/`-o +` matches every interface and iptables-save omits it.
        if let Some(i) = r.ip.in_iface.as_ref().filter(|i| i.inv || !i.val.is_any()) {
            write!(f, "{} -i {}", bang(i.inv), i.val)?;
        }
        if let Some(o) = r.ip.out_iface.as_ref().filter(|o| o.inv || !o.val.is_any()) {
            write!(f, "{} -o {}", bang(o.inv), o.val)?;
        }
        if let Some(p) = &r.ip.proto {
            write!(f, "{} -p {}", bang(p.inv), p.val)?;
        }
        if let Some(inv) = r.ip.fragment {
            write!(f, "{} -f", bang(inv))?;
        }
        for m in &r.matches {
            write!(f, " {}", m.m)?;
        }
        if let Some(t) = &r.target {
            write!(f, " -{} {}{}", if t.goto { 'g' } else { 'j' }, t.t.name(), t.t.options())?;
        }
        Ok(())
    }
}

impl fmt::Display for Rule {
    /// The rule without `-A CHAIN`, starting with a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        RuleBody(self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting_follows_xtables_save_string() {
        assert_eq!(quote("abc-_1"), "abc-_1");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("it's"), "\"it\\'s\"");
        assert_eq!(quote("a \"b\" c\\"), "\"a \\\"b\\\" c\\\\\"");
    }
}
