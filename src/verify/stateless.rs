//! Unreachable and shadowed rules, decided with Z3 over every packet in every state.
//!
//! Every table is encoded at each of its hooks ([`Traversal`] under
//! [`StateModel::Any`]): the conntrack state, NAT flags and entry mark are free, and
//! each evaluation of a stateful or unmodelled match is a fresh unconstrained Boolean.
//! That over-approximates what can happen, so both answers are claims about *all*
//! packets and states and are never made by mistake:
//!
//! - a rule is **unreachable** when no packet in any state gets to it (its chain is
//!   not reached from any built-in chain, or earlier rules always decide first);
//! - a rule is **shadowed** when packets reach it and some packet matches it, but every
//!   packet that matches it has been decided before it gets there. The covering rules
//!   are the earlier rules that take some of those packets: verdict rules anywhere
//!   before it, and RETURN/goto rules in the chains on its call stack. A covering rule
//!   with a stateful match never covers alone, since its match may fail;
//! - a rule **never matches** when no packet at all satisfies its own matches
//!   (reversed ranges, contradictory tests).
//!
//! Limits (all on the side of reporting less): two evaluations of the same stateful
//! match are independent (a `--rcheck` repeated after another one is not seen as
//! shadowed); the host's addresses are the ones given (without them any address may be
//! the host's, but a unicast destination in INPUT is); martian filtering at the routing
//! decision is not assumed.

use std::collections::{BTreeMap, BTreeSet};

use z3::ast::Ast;
use z3::ast::{Bool, BV};
use z3::Solver;

use super::encode::{encode_ip, encode_match, MatchCx, MatchEnc, SymPacket, Unencodable, Universe};
use super::traverse::{Effect, Occurrence, StateModel, Traversal};
use super::{check, RuleRef, VerifyError};
use crate::model::{Hook, Ruleset};

/// Why a rule is unreachable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unreached {
    /// Its chain is not reached from any built-in chain of its table.
    ChainNotReached,
    /// Earlier rules decide every packet before it.
    Decided,
}

/// An unreachable rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreachable {
    /// The rule.
    pub rule: RuleRef,
    /// Why.
    pub why: Unreached,
}

/// A shadowed rule and the earlier rules that take its packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shadowed {
    /// The rule.
    pub rule: RuleRef,
    /// Earlier rules that take its packets, in rule order: rules of its own chain or of
    /// the chains that call it (a `-j`/`-g` rule stands for what the chain it enters
    /// decides).
    pub covering: Vec<RuleRef>,
    /// The verdict, RETURN and goto rules that actually decide those packets.
    pub deciders: Vec<RuleRef>,
}

/// Everything the stateless analysis finds.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Unreachable rules, in rule order.
    pub unreachable: Vec<Unreachable>,
    /// Shadowed rules, in rule order.
    pub shadowed: Vec<Shadowed>,
    /// Rules whose own matches no packet satisfies, in rule order.
    pub never_matches: Vec<RuleRef>,
    /// Matches treated as unconstrained (stateful or unmodelled), one entry per rule and match.
    pub assumed: Vec<(RuleRef, Unencodable)>,
}

/// Options of the analysis.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The host's addresses (route type LOCAL; the destinations of INPUT).
    pub hosts: Vec<std::net::IpAddr>,
}

/// The unreachable rules of `rs`.
pub fn unreachable(rs: &Ruleset, opts: &Options) -> Result<Vec<Unreachable>, VerifyError> {
    Ok(analyze_with(rs, opts, false)?.unreachable)
}

/// The shadowed rules of `rs`, with their covering rules.
pub fn shadowed(rs: &Ruleset, opts: &Options) -> Result<Vec<Shadowed>, VerifyError> {
    Ok(analyze(rs, opts)?.shadowed)
}

/// Unreachable, shadowed and never-matching rules in one pass.
pub fn analyze(rs: &Ruleset, opts: &Options) -> Result<Analysis, VerifyError> {
    analyze_with(rs, opts, true)
}

struct Encoded {
    hook: Hook,
    pkt: SymPacket,
    trav: Traversal,
    /// The same traversal without named constants, for evaluating concrete packets.
    plain: Traversal,
    /// Over the plain traversal: the order of the occurrence that decides the packet
    /// (verdict, RETURN, goto, unknown target), `u32::MAX` when none does.
    decider: BV,
    /// A solver holding only this hook's packet constraints.
    small: Solver,
}

fn analyze_with(rs: &Ruleset, opts: &Options, shadowing: bool) -> Result<Analysis, VerifyError> {
    let u = Universe::of(rs, &opts.hosts);
    let mut out = Analysis::default();
    for (ti, t) in rs.tables.iter().enumerate() {
        // `solver` holds the traversals; each hook's `small` only its packet, for a
        // rule's own matches.
        let solver = Solver::new();
        let mut enc = Vec::new();
        for (hi, c) in t.chains.iter().enumerate().filter(|(_, c)| c.hook.is_some()) {
            let hook = c.hook.expect("built-in");
            let pkt = SymPacket::new(&format!("t{ti}h{hi}"), &u);
            let trav = Traversal::encode(rs, ti, hook, &pkt, &u, StateModel::Any)?;
            let plain = Traversal::encode_plain(rs, ti, hook, &pkt, &u, StateModel::Any)?;
            for d in &trav.defs {
                solver.assert(d);
            }
            let small = Solver::new();
            for s in [&solver, &small] {
                s.assert(pkt.well_formed(&u, hook));
                s.assert(&trav.entry);
            }
            let mut decider = BV::from_u64(u32::MAX as u64, 32);
            for o in plain.occurrences.iter().rev() {
                if matches!(o.effect, Effect::Verdict(_) | Effect::Leave | Effect::Unknown) {
                    decider = o.fires.ite(&BV::from_u64(o.order as u64, 32), &decider);
                }
            }
            enc.push(Encoded { hook, pkt, trav, plain, decider, small });
        }
        let mut assumed = BTreeSet::new();
        for e in &enc {
            for a in &e.trav.assumed {
                if assumed.insert((a.rule.clone(), a.index)) {
                    out.assumed.push((a.rule.clone(), a.why.clone()));
                }
            }
        }
        // Occurrences of each rule over all hooks.
        let mut occs: BTreeMap<RuleRef, Vec<(usize, &Occurrence)>> = BTreeMap::new();
        for (ei, e) in enc.iter().enumerate() {
            for o in &e.trav.occurrences {
                occs.entry(o.rule.clone()).or_default().push((ei, o));
            }
        }
        // Rules some model has shown reachable; occurrences not yet known to be.
        let mut reached: BTreeSet<RuleRef> = BTreeSet::new();
        let mut pending: Vec<&Occurrence> = enc.iter().flat_map(|e| &e.trav.occurrences).collect();
        for (ci, c) in t.chains.iter().enumerate() {
            for ri in 0..c.rules.len() {
                let rr = RuleRef { table: ti, chain: ci, rule: ri };
                let Some(list) = occs.get(&rr) else {
                    out.unreachable.push(Unreachable { rule: rr, why: Unreached::ChainNotReached });
                    continue;
                };
                if !reached.contains(&rr) {
                    let reach = Bool::or(&list.iter().map(|(_, o)| o.reach.clone()).collect::<Vec<_>>());
                    let q = Bool::fresh_const("q");
                    solver.assert(q.eq(&reach));
                    if !check(&solver, &[q], || format!("whether {} is reachable", rr.describe(rs)))? {
                        out.unreachable.push(Unreachable { rule: rr, why: Unreached::Decided });
                        continue;
                    }
                    // One packet usually reaches many rules: learn them all from its model.
                    let m = solver.get_model().expect("sat has a model");
                    pending.retain(|o| {
                        let hit = m.eval(&o.reach, true).and_then(|b| b.as_bool()).unwrap_or(false);
                        if hit {
                            reached.insert(o.rule.clone());
                        }
                        !hit
                    });
                }
                if !shadowing {
                    continue;
                }
                if !fires_somewhere(rs, &rr, list, &enc, &solver, &u)? {
                    let hooks: BTreeSet<usize> = list.iter().map(|(ei, _)| *ei).collect();
                    let mut can = false;
                    for ei in hooks {
                        let small = &enc[ei].small;
                        small.push();
                        small.assert(own_match(rs, &rr, &enc[ei], &u));
                        let r = check(small, &[], || format!("whether {} can match", rr.describe(rs)));
                        small.pop(1);
                        can |= r?;
                    }
                    if !can {
                        out.never_matches.push(rr);
                        continue;
                    }
                    let (covering, deciders) = covering(rs, &solver, &enc, list)?;
                    out.shadowed.push(Shadowed { rule: rr, covering, deciders });
                }
            }
        }
    }
    Ok(out)
}

/// Whether some packet fires the rule. Tries first, per hook, packets of models of the
/// rule's own matches, evaluated on the plain traversal (no search; unknown matches
/// taken as false, a real possibility); each miss excludes the rule that took the packet
/// from the next try. Only then searches.
fn fires_somewhere(
    rs: &Ruleset,
    rr: &RuleRef,
    list: &[(usize, &Occurrence)],
    enc: &[Encoded],
    solver: &Solver,
    u: &Universe,
) -> Result<bool, VerifyError> {
    const TRIES: usize = 6;
    let hooks: BTreeSet<usize> = list.iter().map(|(ei, _)| *ei).collect();
    for ei in hooks {
        let e = &enc[ei];
        let small = &e.small;
        small.push();
        small.assert(own_match(rs, rr, e, u));
        let paths: Vec<Bool> =
            list.iter().filter(|(x, _)| *x == ei).map(|(_, o)| e.plain.occurrences[o.order].path.clone()).collect();
        small.assert(Bool::or(&paths));
        let mut fired = false;
        for _ in 0..TRIES {
            if !check(small, &[], || format!("whether {} can match", rr.describe(rs)))? {
                break;
            }
            let m = small.get_model().expect("sat has a model");
            // The rule's own unknown matches hold; every other one fails (a real
            // possibility either way).
            for a in e.plain.assumed.iter().filter(|a| a.rule == *rr) {
                m.add_const_interp(&a.var.decl(), &Bool::from_bool(true));
            }
            fired = list.iter().filter(|(x, _)| *x == ei).any(|(_, o)| {
                m.eval(&e.plain.occurrences[o.order].fires, true).and_then(|b| b.as_bool()).unwrap_or(false)
            });
            if fired {
                break;
            }
            let Some(j) = m.eval(&e.decider, true).and_then(|v| v.as_u64()) else { break };
            let Some(d) = e.trav.occurrences.get(j as usize) else { break };
            small.assert(own_match(rs, &d.rule, e, u).not());
        }
        small.pop(1);
        if fired {
            return Ok(true);
        }
    }
    let fires = Bool::or(&list.iter().map(|(_, o)| o.fires.clone()).collect::<Vec<_>>());
    let f = Bool::fresh_const("q");
    solver.assert(f.eq(&fires));
    check(solver, &[f], || format!("whether {} can fire", rr.describe(rs)))
}

/// The rule's matches alone at one hook, with the entry mark and TTL (free), stateful
/// parts unconstrained.
fn own_match(rs: &Ruleset, rr: &RuleRef, e: &Encoded, u: &Universe) -> Bool {
    let rule = rr.get(rs);
    let cx = MatchCx { pkt: &e.pkt, u, hook: e.hook, mark: &e.pkt.mark, ttl: &e.pkt.ttl };
    let mut c = vec![encode_ip(&rule.ip, &cx)];
    for m in &rule.matches {
        match encode_match(&m.m, &cx) {
            MatchEnc::Exact(b) => c.push(b),
            enc @ MatchEnc::Unknown { .. } => c.push(enc.with(&Bool::fresh_const("unknown"))),
        }
    }
    Bool::and(&c)
}

/// Whether an earlier occurrence `j` can keep a packet from getting to `o`.
fn diverts(j: &Occurrence, o: &Occurrence) -> bool {
    if j.order >= o.order {
        return false;
    }
    match j.effect {
        Effect::Verdict(_) | Effect::Unknown => true,
        Effect::Leave => j.stack.last().is_some_and(|f| o.stack.contains(f)),
        Effect::Call | Effect::Continue => false,
    }
}

/// The earlier rules that decide the packets `o` would match, nearest first: each one
/// named decides some of them, and every packet matching the rule matches one of them
/// unless it never gets to the rule's chain at all.
fn covering(
    rs: &Ruleset,
    solver: &Solver,
    enc: &[Encoded],
    list: &[(usize, &Occurrence)],
) -> Result<(Vec<RuleRef>, Vec<RuleRef>), VerifyError> {
    let mut found = BTreeSet::new();
    let mut via = BTreeSet::new();
    for (ei, o) in list {
        let mut cands: Vec<&Occurrence> = enc[*ei].trav.occurrences.iter().filter(|j| diverts(j, o)).collect();
        cands.sort_by_key(|j| std::cmp::Reverse(j.order));
        // Packets of the rule not yet matched by a covering rule.
        let mut left = o.matched.clone();
        for j in cands {
            let q = Bool::fresh_const("q");
            solver.assert(q.eq(Bool::and(&[left.clone(), j.fires.clone()])));
            if check(solver, &[q], || {
                format!("whether {} takes packets of {}", j.rule.describe(rs), o.rule.describe(rs))
            })? {
                found.insert(attribute(j, o));
                via.insert(j.rule.clone());
                let next = Bool::fresh_const("left");
                solver.assert(next.eq(Bool::and(&[left, j.matched.not()])));
                left = next;
                let l = Bool::fresh_const("q");
                solver.assert(l.eq(&left));
                if !check(solver, &[l], || format!("whether {} is covered", o.rule.describe(rs)))? {
                    break;
                }
            }
        }
    }
    Ok((found.into_iter().collect(), via.into_iter().collect()))
}

/// The rule a user sees deciding for `o`: `j` itself when it is in a chain on `o`'s
/// stack, else the `-j`/`-g` rule in the nearest shared chain that led to it.
fn attribute(j: &Occurrence, o: &Occurrence) -> RuleRef {
    let k = j.stack.iter().zip(&o.stack).take_while(|(a, b)| a == b).count();
    if k >= j.stack.len() {
        return j.rule.clone();
    }
    j.entered_by.get(k).cloned().flatten().unwrap_or_else(|| j.rule.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(rules: &str) -> Ruleset {
        let text =
            format!("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{rules}COMMIT\n");
        let p = crate::load(&text);
        assert!(!p.has_errors(), "{:?}", p.diagnostics);
        p.ruleset
    }

    /// `(unreachable, shadowed with covering, never matching)` as `chain#pos` strings.
    fn check_rules(rules: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
        let rs = load(rules);
        let a = analyze(&rs, &Options::default()).unwrap();
        let name = |r: &RuleRef| format!("{}#{}", rs.tables[r.table].chains[r.chain].name, r.rule + 1);
        (
            a.unreachable.iter().map(|u| name(&u.rule)).collect(),
            a.shadowed
                .iter()
                .map(|s| format!("{} by {}", name(&s.rule), s.covering.iter().map(name).collect::<Vec<_>>().join(",")))
                .collect(),
            a.never_matches.iter().map(name).collect(),
        )
    }

    #[test]
    fn rule_after_unconditional_accept_is_unreachable() {
        let (u, s, n) = check_rules("-A INPUT -j ACCEPT\n-A INPUT -p tcp --dport 22 -j DROP\n");
        assert_eq!(u, ["INPUT#2"]);
        assert!(s.is_empty() && n.is_empty());
    }

    #[test]
    fn narrower_port_after_wider_range_is_shadowed_not_the_reverse() {
        let (u, s, _) = check_rules("-A INPUT -p tcp --dport 22 -j DROP\n-A INPUT -p tcp --dport 20:30 -j ACCEPT\n");
        assert!(u.is_empty() && s.is_empty(), "{u:?} {s:?}");
        let (u, s, _) = check_rules("-A INPUT -p tcp --dport 20:30 -j DROP\n-A INPUT -p tcp --dport 22 -j ACCEPT\n");
        assert!(u.is_empty());
        assert_eq!(s, ["INPUT#2 by INPUT#1"]);
    }

    #[test]
    fn covering_by_several_rules_names_them_all() {
        let (_, s, _) = check_rules(
            "-A INPUT -p tcp --dport 20:22 -j DROP\n-A INPUT -p udp -j ACCEPT\n-A INPUT -p tcp --dport 23:30 -j REJECT\n-A INPUT -p tcp --dport 21:25 -j ACCEPT\n",
        );
        assert_eq!(s, ["INPUT#4 by INPUT#1,INPUT#3"]);
    }

    #[test]
    fn stateful_rules_never_cover() {
        let (u, s, _) =
            check_rules("-A INPUT -p tcp -m limit --limit 1/s -j DROP\n-A INPUT -p tcp --dport 22 -j ACCEPT\n");
        assert!(u.is_empty() && s.is_empty());
        // A stateless rule behind it covers; the nearest covering rules are named.
        let (_, s, _) = check_rules(
            "-A INPUT -p tcp -m limit --limit 1/s -j DROP\n-A INPUT -p tcp -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\n",
        );
        assert_eq!(s, ["INPUT#3 by INPUT#2"]);
    }

    #[test]
    fn goto_and_return_nesting() {
        // INPUT -g A: when A falls off, INPUT's policy applies, so INPUT#2 is reached only
        // by packets that are not tcp: reachable, but shadowed by the goto. B's RETURN
        // takes every udp packet before B#2.
        let rules = ":A - [0:0]\n:B - [0:0]\n-A INPUT -p tcp -g A\n-A INPUT -p tcp --dport 22 -j DROP\n-A INPUT -j B\n-A A -p tcp --dport 80 -j ACCEPT\n-A B -p udp -j RETURN\n-A B -p udp --dport 53 -j ACCEPT\n-A B -j DROP\n-A B -j ACCEPT\n";
        let (u, s, n) = check_rules(rules);
        assert_eq!(u, ["B#4"]);
        assert_eq!(s, ["INPUT#2 by INPUT#1", "B#2 by B#1"]);
        assert!(n.is_empty(), "{n:?}");
        // After `-j B` returns for udp only, a udp rule in INPUT is reachable.
        let (u, _, _) = check_rules(":B - [0:0]\n-A INPUT -j B\n-A INPUT -p udp -j ACCEPT\n-A INPUT -p tcp -j ACCEPT\n-A B -p udp -j RETURN\n-A B -j DROP\n");
        assert_eq!(u, ["INPUT#3"]);
    }

    #[test]
    fn shadowed_through_a_called_chain() {
        let rules = ":A - [0:0]\n-A INPUT -j A\n-A INPUT -s 10.0.0.0/8 -p tcp --dport 22 -j DROP\n-A A -s 10.0.0.0/8 -j ACCEPT\n";
        let (_, s, _) = check_rules(rules);
        // Named by the jump that leads to the deciding rule.
        assert_eq!(s, ["INPUT#2 by INPUT#1"]);
        let a = analyze(&load(rules), &Options::default()).unwrap();
        assert_eq!(a.shadowed[0].deciders, [RuleRef { table: 0, chain: 3, rule: 0 }]);
    }

    #[test]
    fn negations_multiport_and_wildcards() {
        let (u, s, n) = check_rules(
            "-A INPUT ! -s 10.0.0.0/8 -j DROP\n-A INPUT -s 192.168.1.1 -j ACCEPT\n-A INPUT -p tcp -m multiport --dports 22,80:90 -j ACCEPT\n-A INPUT -p tcp --dport 85 -j DROP\n-A INPUT -i eth+ -j DROP\n-A INPUT -i eth0 -j ACCEPT\n-A INPUT -p tcp ! --dport 0:65535 -j DROP\n",
        );
        assert_eq!(u, Vec::<String>::new());
        // Rule 1 also decides some of the later rules' packets (those from outside 10/8),
        // but the nearest covering rules suffice.
        assert_eq!(s, ["INPUT#2 by INPUT#1", "INPUT#4 by INPUT#3", "INPUT#6 by INPUT#5"]);
        assert_eq!(n, ["INPUT#7"]);
    }

    #[test]
    fn mark_set_earlier_is_seen_later() {
        let (u, s, _) = check_rules(
            "-A INPUT -p tcp -j MARK --set-mark 1\n-A INPUT -p tcp -m mark ! --mark 1 -j DROP\n-A INPUT -p udp -m mark --mark 1 -j DROP\n",
        );
        assert!(u.is_empty());
        // Every tcp packet carries mark 1 by rule 2: it never fires, though no earlier rule
        // decides its packets (no covering rule). Udp packets keep the mark they came with.
        assert_eq!(s, ["INPUT#2 by "]);
    }

    #[test]
    fn state_matches_partition_the_states() {
        let (u, s, _) = check_rules(
            "-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT\n-A INPUT -m conntrack --ctstate INVALID,NEW,UNTRACKED -j DROP\n-A INPUT -j ACCEPT\n",
        );
        assert_eq!(u, ["INPUT#3"]);
        assert!(s.is_empty());
    }
}
