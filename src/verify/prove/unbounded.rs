//! Unbounded answers for the `any` attacker: when no trace of at most K packets reaches
//! the goal, one more search tries to show that no trace of any length does.
//!
//! The encoding is the bounded over-approximation with a summary of any number of
//! further attacker packets before each of the K exact packets and before the goal
//! packet (`scan.rs`'s run summary, for any packet of the attacker's in any conntrack
//! state: the recent tables such a packet can touch, every stateful match free except
//! those of tables no packet can ever fill). A summarised packet can have opened a
//! connection only when a first packet of a connection can be accepted, and then one
//! with any ports (it is free), so the goal packet may be in any state exactly when the
//! over-approximation lets an exact or summarised first packet with its tuple be
//! accepted. Every trace is one of these with all but K of its packets summarised: when
//! none reaches the goal the answer holds for traces of any length.
//!
//! Hashlimit tables that the over-approximation encodes (keyed by the attacker's whole
//! address) get a summary record before each exact packet: any entry may have been
//! touched last during the summary, with any credit from 0 up to what it could hold then
//! (`prove.rs`, `hashlimit_eval`).
//!
//! Only for `never`/`possible` from the empty state (`within` is dropped, which only
//! adds traces); `at most N`, `from …` and `sources N` stay bounded.

use std::collections::{BTreeMap, BTreeSet};

use z3::ast::{Bool, Int};
use z3::Solver;

use super::scan::RunEffects;
use super::{final_of, HlRec, Mode, Setup, Trace, HZ};
use crate::model::Hook;
use crate::verify::encode::SymPacket;
use crate::verify::query::goal_condition;
use crate::verify::traverse::Final;
use crate::verify::{check, VerifyError};

impl Setup<'_> {
    /// What any packet of the attacker's can do (`absent`: tables never filled); it can
    /// open a connection when it is the first of one.
    fn any_effects(&self, absent: &BTreeSet<String>) -> Result<RunEffects, VerifyError> {
        let solver = Solver::new();
        let rep = SymPacket::new("any.side", &self.u);
        solver.assert(self.packet_constraints_any_ct(&rep));
        let first = rep.first_packet_ct(&self.u);
        self.effects_of(&solver, &rep, absent, &first, "any packet of the attacker's")
    }

    /// `packet_constraints` in `Over` mode for a trace's first packet, its conntrack
    /// state left free (the constraints are put on a copy with a fresh state).
    fn packet_constraints_any_ct(&self, p: &SymPacket) -> Bool {
        let empty = Trace { pkts: Vec::new(), times: Vec::new(), travs: Vec::new() };
        let shadow = p.with_ct(z3::ast::BV::fresh_const("ct_shadow", 3));
        self.packet_constraints(&shadow, &empty, Mode::Over, &[])
    }

    /// No trace of any length reaches the goal (`Ok(true)`), or the summaries are too
    /// coarse to say (`Ok(false)`).
    pub(super) fn any_unbounded(&self) -> Result<bool, VerifyError> {
        let k = self.opts.k;
        self.summarised_search(k + 1, |i| i == k, None)
    }

    /// `at most N … [within T]` for traces of any length: no trace has N+1 counted packets
    /// inside one window (`Ok(true)`); the N+1 are exact, everything before and between
    /// them is summarised.
    pub(super) fn at_most_unbounded(&self, n: u64) -> Result<bool, VerifyError> {
        self.summarised_search(n as usize + 1, |_| true, self.prop.within)
    }

    /// `steps` exact packets, a summary of any number of packets before each; the
    /// packets `counted` says must get the verdict and meet the goal, all of them within
    /// `window` seconds. `Ok(true)` when no such trace exists.
    fn summarised_search(
        &self,
        steps: usize,
        counted: impl Fn(usize) -> bool,
        window: Option<u64>,
    ) -> Result<bool, VerifyError> {
        let settable = self.settable_by(|absent| self.any_effects(absent))?;
        let absent: BTreeSet<String> = self.depth.keys().filter(|t| !settable.contains(*t)).cloned().collect();
        let eff = self.any_effects(&absent)?;
        let u = &self.u;
        let solver = Solver::new();
        let last_t = Int::new_const("ub.last.time");
        let mut state = self.empty_state();
        let mut earlier: Vec<SymPacket> = Vec::new();
        let mut accepted: Vec<Bool> = Vec::new();
        let mut times: Vec<Int> = Vec::new();
        let mut goals: Vec<Bool> = Vec::new();
        let mut first_counted: Option<Int> = None;
        let live = Bool::from_bool(true);
        let mut free = Vec::new();
        // Hashlimit tables: exact evaluations and the summaries between them.
        let mut hl: BTreeMap<String, Vec<HlRec>> = BTreeMap::new();
        for i in 0..steps {
            let t = if i + 1 == steps { last_t.clone() } else { Int::new_const(format!("ub.t{i}")) };
            solver.assert(match times.last() {
                Some(prev) => t.ge(prev),
                None => t.ge(Int::from_u64(0)),
            });
            // Any number of packets before this one.
            let start = times.last().cloned().unwrap_or_else(|| Int::from_u64(0));
            self.summarise(&solver, &format!("ub.h{i}"), &eff, &live, (&start, &t), &last_t, &mut state);
            for h in &self.hashlimits {
                let summary = HlRec::Summary { live: live.clone(), start: start.clone(), end: t.clone() };
                hl.entry(h.name.clone()).or_default().push(summary);
            }
            if eff.accept {
                // A summarised first packet that may have opened a connection: its own
                // traversal, state free (but for tables never filled).
                let rep = SymPacket::new(&format!("ub.h{i}"), u);
                let rt = self.input_traversal(&solver, &rep)?;
                solver.assert(self.packet_constraints_any_ct(&rep));
                solver.assert(rep.first_packet_ct(u));
                if let Some(first) = earlier.first() {
                    solver.assert(rep.src.eq(&first.src));
                }
                self.fix_absent(&solver, &rt, &absent);
                accepted.push(rt.verdict(Final::Accept));
                earlier.push(rep);
            }
            let p = SymPacket::new(&format!("ub.x{i}"), u);
            let trav = self.input_traversal(&solver, &p)?;
            let before = Trace { pkts: earlier.clone(), times: Vec::new(), travs: Vec::new() };
            solver.assert(self.packet_constraints(&p, &before, Mode::Over, &accepted));
            self.thread_state(
                &solver,
                &trav,
                &live,
                &t,
                &mut state,
                &mut free,
                &BTreeSet::new(),
                Some((&p, &mut hl, Mode::Over)),
            );
            if counted(i) {
                goals.push(Bool::and(&[
                    goal_condition(&self.prop.goal, &p, u, Hook::Input),
                    trav.verdict(final_of(self.prop.verdict)),
                ]));
                let t0 = first_counted.get_or_insert_with(|| t.clone());
                if let Some(w) = window {
                    solver.assert(Int::sub(&[&t, t0]).le(Int::from_u64(w * HZ as u64)));
                }
            }
            accepted.push(trav.verdict(Final::Accept));
            earlier.push(p);
            times.push(t);
        }
        Ok(!check(&solver, &goals, || "a trace of any length".into())?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::scan::tests::{last_verdict, random_rules};
    use super::super::{prove, Answer, ProveOptions};
    use crate::sim::Verdict;
    use crate::verify::property::parse_property;

    /// Soundness against the simulator: every trace of up to three packets from a small
    /// alphabet (SYNs to ports 1..=12, an ACK and a FIN on the SYN-to-9 connection, UDP
    /// and ICMP) at a few gaps; when a TCP packet to port 9 gets ACCEPT the prover must
    /// say neither PROVED (unbounded) nor PROVED up to K ≥ the trace's length.
    #[test]
    fn proved_any_properties_hold_in_the_simulator() {
        let mut alphabet: Vec<String> = (1..=12).map(|q| format!("tcp,{},{q},S", 40000 + q)).collect();
        alphabet.extend(["tcp,40009,9,A".to_string(), "tcp,40009,9,FA".into(), "udp,40100,9,".into()]);
        let (mut unbounded, mut bounded, mut falsified) = (0, 0, 0);
        for seed in 1..=20u64 {
            let rules = random_rules(seed);
            let parsed = crate::load(&rules);
            let rs = &parsed.ruleset;
            let mut found: Option<(usize, String)> = None;
            'search: for len in 1..=3usize {
                let total = alphabet.len().pow(len as u32);
                for code in 0..total {
                    for g in [4_000_000u64, 1_000_000_000, 6_000_000_000] {
                        let mut csv = String::from("time,src,dst,proto,sport,dport,flags\n");
                        let mut c = code;
                        for i in 0..len {
                            let pkt = &alphabet[c % alphabet.len()];
                            c /= alphabet.len();
                            let ns = i as u64 * g;
                            csv.push_str(&format!(
                                "{}.{:09},203.0.113.7,192.0.2.1,{pkt}\n",
                                ns / 1_000_000_000,
                                ns % 1_000_000_000
                            ));
                            let goal = pkt.starts_with("tcp,") && pkt.split(',').nth(2) == Some("9");
                            if goal && last_verdict(rs, &csv) == Verdict::Accept {
                                found = Some((i + 1, csv));
                                break 'search;
                            }
                        }
                    }
                }
            }
            let p = parse_property("never ACCEPT tcp dport 9", 0, 1).unwrap();
            let r = prove(rs, &p, &ProveOptions { k: 4, ..ProveOptions::default() }).unwrap();
            match (&r.answer, &found) {
                (Answer::NoneAtAll(_), Some((_, csv))) => {
                    panic!("PROVED (unbounded), but the simulator accepts:\n{rules}\n{csv}")
                }
                (Answer::NoneUpTo(k), Some((n, csv))) if k >= n => {
                    panic!("PROVED up to {k}, but the simulator accepts after {n}:\n{rules}\n{csv}")
                }
                (Answer::NoneAtAll(_), None) => unbounded += 1,
                (Answer::NoneUpTo(_), _) => bounded += 1,
                (Answer::Witness(_), _) => falsified += 1,
                (Answer::Unknown(_), _) => {}
            }
        }
        eprintln!("random any-attacker properties: {unbounded} unbounded, {bounded} bounded, {falsified} falsified");
        assert!(unbounded > 0 && falsified > 0, "{unbounded} unbounded, {falsified} falsified");
    }
}
