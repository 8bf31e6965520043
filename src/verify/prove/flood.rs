//! The `flood` attacker of `fwverify prove`: one source sends TCP SYNs to destination
//! ports in any order (each port at most once), at one constant rate, as many as it likes;
//! then the goal packet (any packet of the attacker's meeting the goal, at or after the
//! last SYN; a SYN of the flood that gets the verdict is covered, as for `scan`).
//!
//! ## Encoding
//!
//! Witnesses: the shortest flood prefix, searched as in the `any` attacker with `n = 1..=K`
//! symbolic SYNs (every field but the destination port shared, distinct ports, the first
//! packet of their connections, a constant whole-jiffy gap), then the goal packet; written
//! as CSV and replayed in the simulator. Hashlimit buckets are exact there, as in the
//! `any` attacker's witnesses; in "no trace" answers they are free.
//!
//! "No trace" answers cover every flood of any length: `K` exact SYNs with any ports and
//! any gaps, and before each of them and before the goal packet a summary of any number of
//! further SYNs to any ports (`scan.rs`'s run summary over ports 1–65535: what such a SYN
//! can do to each recent table, all stateful matches free). Every flood is one of these
//! traces with all but `K` of its SYNs summarised, so when none reaches the goal the
//! answer is `PROVED (unbounded)`. The goal packet may belong to a connection an earlier
//! SYN opened when that SYN (exact, or summarised and possibly accepted) has its ports.

use std::collections::{BTreeMap, BTreeSet};

use z3::ast::{Bool, Int};
use z3::Solver;

use super::scan::same_but_dport;
use super::{final_of, Answer, HlRec, Mode, Proved, RState, Setup, Trace, Witness};
use crate::model::Hook;
use crate::verify::encode::SymPacket;
use crate::verify::query::goal_condition;
use crate::verify::traverse::{Final, Traversal};
use crate::verify::{check, VerifyError};

/// One flood search: `n` exact SYNs then the goal packet.
struct FloodEnc {
    solver: Solver,
    tr: Trace,
    goal_cond: Bool,
}

impl Setup<'_> {
    fn flood_encoding(
        &self,
        mode: Mode,
        n: usize,
        effects: Option<&super::scan::RunEffects>,
        free: &mut Vec<String>,
    ) -> Result<FloodEnc, VerifyError> {
        let u = &self.u;
        let tag = if mode == Mode::Witness { format!("fw{n}") } else { format!("fo{n}") };
        let solver = Solver::new();
        let tmpl = self.scan_template(&solver, &tag, mode);
        let gap = Int::new_const(format!("{tag}.gap"));
        solver.assert(gap.ge(Int::from_u64(0)));
        let goal_t = Int::new_const(format!("{tag}.goal.time"));
        let mut state = self.empty_state();
        let mut pkts: Vec<SymPacket> = Vec::new();
        let mut times: Vec<Int> = Vec::new();
        let mut travs: Vec<Traversal> = Vec::new();
        let mut earlier: Vec<SymPacket> = vec![tmpl.clone()];
        let mut accepted: Vec<Bool> = vec![Bool::from_bool(false)];
        let live = Bool::from_bool(true);
        let zero = Int::from_u64(0);
        let mut hl: BTreeMap<String, Vec<HlRec>> = BTreeMap::new();
        let summary = |key: String,
                       start: &Int,
                       end: &Int,
                       state: &mut BTreeMap<String, RState>,
                       earlier: &mut Vec<SymPacket>| {
            let eff = effects?;
            self.summarise(&solver, &key, eff, &live, (start, end), &goal_t, state);
            if eff.accept {
                let rep = SymPacket::new(&key, u);
                solver.assert(same_but_dport(&rep, &tmpl));
                earlier.push(rep);
                return Some(Bool::new_const(format!("{key}.accepted")));
            }
            None
        };
        for i in 0..n {
            let t = Int::new_const(format!("{tag}.t{i}"));
            match mode {
                // A constant whole-jiffy gap from 0.
                Mode::Witness => solver.assert(t.eq(Int::mul(&[&gap, &Int::from_u64(i as u64)]))),
                Mode::Over => solver.assert(match times.last() {
                    Some(prev) => t.ge(prev),
                    None => t.ge(Int::from_u64(0)),
                }),
            }
            let start = times.last().unwrap_or(&zero).clone();
            if let Some(acc) = summary(format!("{tag}.h{i}"), &start, &t, &mut state, &mut earlier) {
                accepted.push(acc);
            }
            let p = SymPacket::new(&format!("{tag}.x{i}"), u);
            solver.assert(same_but_dport(&p, &tmpl));
            for q in &pkts {
                solver.assert(p.dport.eq(&q.dport).not());
            }
            let trav = self.input_traversal(&solver, &p)?;
            // Hashlimit exact in witnesses (no summaries; the replay checks them), free in
            // the "no trace" search.
            let exact = (mode == Mode::Witness).then_some((&p, &mut hl, Mode::Witness));
            self.thread_state(&solver, &trav, &live, &t, &mut state, free, &BTreeSet::new(), exact);
            solver.assert(goal_t.ge(&t));
            accepted.push(trav.verdict(Final::Accept));
            earlier.push(p.clone());
            pkts.push(p);
            times.push(t);
            travs.push(trav);
        }
        let start = times.last().unwrap_or(&zero).clone();
        if let Some(acc) = summary(format!("{tag}.h{n}"), &start, &goal_t, &mut state, &mut earlier) {
            accepted.push(acc);
        }
        let goal = SymPacket::new(&format!("{tag}.goal"), u);
        let goal_trav = self.input_traversal(&solver, &goal)?;
        let before = Trace { pkts: earlier, times: Vec::new(), travs: Vec::new() };
        solver.assert(self.packet_constraints(&goal, &before, mode, &accepted));
        let exact = (mode == Mode::Witness).then_some((&goal, &mut hl, Mode::Witness));
        self.thread_state(&solver, &goal_trav, &live, &goal_t, &mut state, free, &BTreeSet::new(), exact);
        let goal_cond = Bool::and(&[
            goal_condition(&self.prop.goal, &goal, u, Hook::Input),
            goal_trav.verdict(final_of(self.prop.verdict)),
        ]);
        pkts.push(goal);
        times.push(goal_t);
        travs.push(goal_trav);
        Ok(FloodEnc { solver, tr: Trace { pkts, times, travs }, goal_cond })
    }
}

/// Decides a property under the flood attacker.
pub(super) fn prove_flood(s: &Setup<'_>) -> Result<Proved, VerifyError> {
    let unknown = |why: &str| Ok(super::unknown(why));
    if !matches!(s.prop.quant, super::Quant::Never | super::Quant::Possible) {
        return unknown("`at most N` is not encoded for the flood attacker");
    }
    if s.prop.within.is_some() {
        return unknown("`within` is not encoded for the flood attacker");
    }
    if !s.prop.initially_in.is_empty() {
        return unknown("`from …` is not encoded for the flood attacker (floods start from the empty state)");
    }
    let k = s.opts.k;
    let mut notes: Vec<String> = Vec::new();
    let merge = |free: Vec<String>, notes: &mut Vec<String>| {
        for f in free {
            if !notes.contains(&f) {
                notes.push(f);
            }
        }
    };
    // Witnesses: shortest flood prefix first.
    for n in 1..=k {
        let mut free = Vec::new();
        let enc = s.flood_encoding(Mode::Witness, n, None, &mut free)?;
        merge(free, &mut notes);
        if !check(&enc.solver, std::slice::from_ref(&enc.goal_cond), || format!("a flood of {n} SYNs"))? {
            continue;
        }
        enc.solver.assert(&enc.goal_cond);
        s.prefer_natural(&enc.solver, &enc.tr)?;
        check(&enc.solver, &[], || "the flood witness".into())?;
        let m = enc
            .solver
            .get_model()
            .ok_or_else(|| VerifyError::Unknown { what: "the flood witness".into(), reason: "no model".into() })?;
        let csv = s.csv(&m, &enc.tr, 0)?;
        let answer = match s.replay(&csv) {
            Ok(_) => Answer::Witness(Witness { csv, packets: n + 1, prefix: 0 }),
            Err(why) => Answer::Unknown(format!("the solver's flood does not replay in the simulator ({why})")),
        };
        let syns = if n == 1 { "1 SYN".to_string() } else { format!("{n} SYNs to distinct ports") };
        let info = vec![format!("flood: {syns} at one constant rate, then the goal packet")];
        return Ok(Proved { answer, notes, info });
    }
    // Every flood, with all but K of its SYNs summarised.
    let settable = s.settable()?;
    let absent = s.depth.keys().filter(|t| !settable.contains(*t)).cloned().collect();
    let eff = s.run_effects(1, 65535, &absent)?;
    let mut free = Vec::new();
    let enc = s.flood_encoding(Mode::Over, k, Some(&eff), &mut free)?;
    merge(free, &mut notes);
    if !check(&enc.solver, std::slice::from_ref(&enc.goal_cond), || "a flood".into())? {
        return Ok(Proved {
            answer: Answer::NoneAtAll(
                "every flood (TCP SYNs from one source to distinct ports, any order, any rate, any length), then \
                 any packet"
                    .into(),
            ),
            notes,
            info: vec![format!("{k} SYNs encoded exactly, any number of others summarised (over-approximated)")],
        });
    }
    unknown(&format!(
        "no flood of at most {k} SYNs does it, but the over-approximation (longer floods summarised, the goal packet \
         in a connection a SYN opened) finds a trace"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{run_default as run, seed};
    use super::*;
    use crate::verify::property::Quant;

    #[test]
    fn a_flood_in_the_right_order_knocks() {
        let r = run(&seed("rules.v4"), "never ACCEPT tcp dport 22 under flood");
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        let dports: Vec<&str> = w.csv.lines().skip(1).map(|l| l.split(',').nth(5).unwrap()).collect();
        assert_eq!(dports, ["1234", "2345", "3456", "22"], "{}", w.csv);
        assert_eq!(r.exit_code(Quant::Never), 1);
    }

    /// Soundness against the simulator: every flood of up to three distinct ports within
    /// 1..=12 at a few rates, then a SYN to port 9 at a few delays; when one gets ACCEPT
    /// the prover must not say PROVED.
    #[test]
    fn proved_floods_hold_in_the_simulator() {
        use super::super::scan::tests::{last_verdict, random_rules};
        use crate::sim::Verdict;
        let (mut proved, mut falsified, mut unknown) = (0, 0, 0);
        for seed in 1..=30u64 {
            let rules = random_rules(seed);
            let parsed = crate::load(&rules);
            let rs = &parsed.ruleset;
            let mut orders: Vec<Vec<u64>> = (1..=12).map(|a| vec![a]).collect();
            for a in 1..=12u64 {
                for b in (1..=12u64).filter(|b| *b != a) {
                    orders.push(vec![a, b]);
                    for c in (1..=12u64).filter(|c| *c != a && *c != b) {
                        orders.push(vec![a, b, c]);
                    }
                }
            }
            let t = |ns: u64| format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
            let found = orders.iter().find_map(|o| {
                for g in [4_000_000u64, 1_000_000_000, 3_000_000_000] {
                    for d in [0u64, 1_000_000_000, 8_000_000_000] {
                        let mut csv = String::from("time,src,dst,proto,sport,dport,flags\n");
                        for (i, q) in o.iter().enumerate() {
                            csv.push_str(&format!("{},203.0.113.7,192.0.2.1,tcp,40000,{q},S\n", t(i as u64 * g)));
                        }
                        let end = (o.len() as u64 - 1) * g + d;
                        csv.push_str(&format!("{},203.0.113.7,192.0.2.1,tcp,40001,9,S\n", t(end)));
                        if last_verdict(rs, &csv) == Verdict::Accept {
                            return Some(csv);
                        }
                    }
                }
                None
            });
            let r = run(&rules, "never ACCEPT tcp dport 9 under flood");
            match (&r.answer, &found) {
                (Answer::NoneAtAll(_), Some(csv)) => panic!("PROVED, but the simulator accepts:\n{rules}\n{csv}"),
                (Answer::NoneAtAll(_), None) => proved += 1,
                (Answer::Witness(_), _) => falsified += 1,
                (Answer::Unknown(_), _) => unknown += 1,
                (a, _) => panic!("{a:?}\n{rules}"),
            }
        }
        eprintln!("random flood properties: {proved} proved, {falsified} falsified, {unknown} unknown");
        assert!(proved > 0 && falsified > 0, "{proved} proved, {falsified} falsified");
    }

    #[test]
    fn no_flood_gets_past_a_closed_port() {
        let rules = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                     -A INPUT -p tcp -m tcp --syn -m recent --set --name f\n\
                     -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n";
        let r = run(rules, "never ACCEPT tcp dport 22 under flood");
        assert!(matches!(r.answer, Answer::NoneAtAll(_)), "{r:?}");
        assert_eq!(r.headline(Quant::Never), "PROVED (unbounded)");
    }
}
