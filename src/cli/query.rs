//! `fwverify query`: packet classes that get a verdict, unreachable and shadowed rules.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use super::exit;
use crate::diag::SourceFile;
use crate::model::{Hook, Ruleset, TableName};
use crate::verify::property::parse_property;
use crate::verify::query::{query, QueryOptions};
use crate::verify::stateless;
use crate::verify::traverse::{Final, StateModel};
use crate::verify::{RuleRef, VerifyError};

/// Arguments of `fwverify query`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
The query is a verdict and a goal packet, as in `prove` properties:
  ACCEPT tcp dport 22        ACCEPT udp           DROP any ctstate NEW
  ACCEPT tcp dport 22 iface eth0 src 192.0.2.7    REJECT icmp type 8

Classes are printed as boxes: protocol, CIDR prefixes, port ranges, flag bits (`!SYN` = SYN
clear), interfaces (`eth+(other)` = names starting with eth that no rule names exactly),
conntrack states; `[if RULE `-m …` matches]` marks a match the encoding cannot decide.

Examples:
  fwverify query rules.v4 'ACCEPT tcp dport 22'
  fwverify query rules.v4 'ACCEPT any' --hook FORWARD --max 20
  fwverify query rules.v4 --unreachable --shadowed

Exit status: 0 some class gets the verdict (without a query: nothing unreachable or
shadowed), 1 none does (without a query: findings), 2 invalid input, 3 the solver gave up.")]
pub struct QueryArgs {
    /// The iptables-save file.
    pub rules: PathBuf,
    /// `VERDICT GOAL`, e.g. `ACCEPT tcp dport 22`.
    pub query: Option<String>,
    /// Table to evaluate.
    #[arg(long, default_value = "filter", value_parser = parse_table)]
    pub table: TableName,
    /// Hook (built-in chain) to start from.
    #[arg(long, default_value = "INPUT", value_parser = parse_hook)]
    pub hook: Hook,
    /// Print at most this many classes.
    #[arg(long, default_value_t = 50)]
    pub max: usize,
    /// Any conntrack state and kernel state instead of the first packet after loading.
    #[arg(long)]
    pub any_state: bool,
    /// The host's addresses (comma-separated); default: every destination is the host's.
    #[arg(long, value_delimiter = ',')]
    pub host: Vec<IpAddr>,
    /// List rules no packet in any state reaches.
    #[arg(long)]
    pub unreachable: bool,
    /// List rules whose packets earlier rules always decide, with the covering rules.
    #[arg(long)]
    pub shadowed: bool,
}

fn parse_table(s: &str) -> Result<TableName, String> {
    TableName::parse(s).ok_or_else(|| format!("`{s}`: tables are raw, mangle, nat, filter, security"))
}

fn parse_hook(s: &str) -> Result<Hook, String> {
    Hook::from_name(&s.to_ascii_uppercase())
        .ok_or_else(|| format!("`{s}`: hooks are PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING"))
}

fn rule_line(file: &SourceFile, rs: &Ruleset, r: &RuleRef) -> String {
    let span = r.get(rs).span;
    format!("{} ({})", r.describe(rs), file.location(span))
}

fn unknown(e: VerifyError) -> anyhow::Result<u8> {
    match e {
        VerifyError::Unknown { .. } => {
            eprintln!("fwverify: UNKNOWN: {e}");
            Ok(exit::UNKNOWN)
        }
        VerifyError::Input(_) => {
            eprintln!("fwverify: {e}");
            Ok(exit::INVALID)
        }
    }
}

/// Runs `fwverify query` on a loaded ruleset.
pub(super) fn run(
    a: &QueryArgs,
    file: &SourceFile,
    parsed: &crate::Parsed,
    out: &mut impl Write,
) -> anyhow::Result<u8> {
    let rs = &parsed.ruleset;
    if a.query.is_none() && !a.unreachable && !a.shadowed {
        eprintln!("fwverify: give a query such as 'ACCEPT tcp dport 22', or --unreachable / --shadowed");
        return Ok(exit::INVALID);
    }
    let mut code = exit::OK;
    if a.unreachable || a.shadowed {
        let opts = stateless::Options { hosts: a.host.clone() };
        let found = match stateless::analyze(rs, &opts) {
            Ok(f) => f,
            Err(e) => return unknown(e),
        };
        if a.unreachable {
            writeln!(out, "unreachable rules: {}", found.unreachable.len())?;
            for u in &found.unreachable {
                let why = match u.why {
                    stateless::Unreached::ChainNotReached => "its chain is not reached from any built-in chain",
                    stateless::Unreached::Decided => "earlier rules decide every packet first",
                };
                writeln!(out, "  {}: {why}", rule_line(file, rs, &u.rule))?;
                writeln!(out, "    {}", file.line_text(u.rule.get(rs).span.line as usize).trim())?;
            }
        }
        if a.shadowed {
            writeln!(out, "shadowed rules: {}", found.shadowed.len())?;
            for s in &found.shadowed {
                writeln!(out, "  {}", rule_line(file, rs, &s.rule))?;
                writeln!(out, "    {}", file.line_text(s.rule.get(rs).span.line as usize).trim())?;
                if s.covering.is_empty() {
                    writeln!(
                        out,
                        "    never fires: the packets it matches never get to its chain, or earlier targets (MARK) change them"
                    )?;
                }
                for c in &s.covering {
                    let line = file.line_text(c.get(rs).span.line as usize).trim();
                    writeln!(out, "    covered by {}: {line}", rule_line(file, rs, c))?;
                }
                let inner: Vec<String> =
                    s.deciders.iter().filter(|d| !s.covering.contains(d)).map(|d| d.describe(rs)).collect();
                if !inner.is_empty() {
                    writeln!(out, "    (decided inside the called chains by {})", inner.join(", "))?;
                }
            }
            writeln!(out, "rules that never match: {}", found.never_matches.len())?;
            for n in &found.never_matches {
                writeln!(out, "  {}", rule_line(file, rs, n))?;
            }
        }
        if !found.assumed.is_empty() {
            writeln!(
                out,
                "note: {} match(es) treated as unconstrained (either outcome possible), e.g. {}: {}",
                found.assumed.len(),
                found.assumed[0].0.describe(rs),
                found.assumed[0].1
            )?;
        }
        if !found.unreachable.is_empty() || !found.shadowed.is_empty() {
            code = exit::FAILED;
        }
    }
    let Some(q) = &a.query else { return Ok(code) };
    let prop = match parse_property(&format!("possible {q}"), 0, 1) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("fwverify: query not understood: {}", d.message);
            eprintln!("  write a verdict and a goal, e.g. 'ACCEPT tcp dport 22' or 'DROP any ctstate NEW'");
            return Ok(exit::INVALID);
        }
    };
    let verdict = Final::parse(prop.verdict.as_str()).expect("the grammar admits verdicts only");
    let opts = QueryOptions {
        table: a.table,
        hook: a.hook,
        max: a.max,
        state: if a.any_state { StateModel::Any } else { StateModel::Empty },
        hosts: a.host.clone(),
    };
    let r = match query(rs, verdict, &prop.goal, &opts) {
        Ok(r) => r,
        Err(e) => return unknown(e),
    };
    let state = if a.any_state { "in any state" } else { "from the empty state" };
    writeln!(
        out,
        "{} {}: {} class{} of packets get {} at {} {} {state}{}",
        file.name(),
        q,
        r.classes.len(),
        if r.classes.len() == 1 { "" } else { "es" },
        verdict.as_str(),
        a.table,
        a.hook.name(),
        if r.complete { "" } else { " (more exist; raise --max)" }
    )?;
    for c in &r.classes {
        writeln!(out, "  {c}")?;
    }
    if !r.assumed.is_empty() {
        writeln!(out, "note: these matches are not decided by the encoding; classes marked [if …] depend on them:")?;
        for (rule, why) in &r.assumed {
            writeln!(out, "  {}: {why}", rule_line(file, rs, rule))?;
        }
    }
    Ok(if r.classes.is_empty() { exit::FAILED } else { exit::OK })
}
