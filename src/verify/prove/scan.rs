//! The `scan` attacker of `fwverify prove`: one source sends TCP SYNs to consecutive
//! destination ports `p, p+1, …, e` (any `1 ≤ p ≤ e ≤ 65535`) at one constant rate (any
//! rate, or the range the property gives), every other field the same in every packet;
//! then the goal packet (any packet of the attacker's meeting the goal, at or after the
//! last scan packet; a scan packet that gets the verdict is covered, since the scan up to
//! it followed by that packet is such a trace).
//!
//! ## Encoding without unrolling 65,535 steps
//!
//! Time is real: the scan packet to port `q` is sent at `A + q·g` jiffies (`A` and the
//! gap `g > 0` are real unknowns, so every phase and every real rate is covered), and the
//! kernel sees `⌊A + q·g⌋` (the simulator's jiffies). For a fixed port `q` that is linear.
//!
//! Ports are split at the boundaries of the ruleset's port tests (`--dport`, multiport,
//! conntrack ports, the goal's port): the `slack` ports on each side of every boundary are
//! **exact** (one symbolic packet each, in the scan when `p ≤ q ≤ e`, its traversal and
//! its recent-table effects encoded as in the `any` attacker). The ports between them form
//! **runs** (up to 62,000 ports), each summarised by an over-approximation: a side solver
//! asks, with every stateful match free, which recent tables a packet of the run can
//! `--set`, `--update` or `--remove` and whether one can be accepted; after a run that is
//! in the scan, a table it cannot touch is unchanged, one it can only remove from may lose
//! the attacker, and one it can set or update may hold the attacker with any stamps up to
//! the end of the run. Exact ports need not behave alike within a run for this to be
//! sound: the summary holds for every packet of the run, whatever the partition.
//!
//! So "no trace" answers hold for every scan: `PROVED (unbounded)`. Witnesses are searched
//! in the same encoding with the goal packet the first of its connection, then written as
//! the complete scan and replayed in the simulator; a witness that does not replay (the
//! summaries were too coarse) makes the next try use more exact ports (`slack` 1, 2, 4).
//! The "no trace" answer needs a second search in which the goal packet may belong to a
//! connection a scan packet opened (same ports, accepted), as in the `any` attacker.
//!
//! The searches restart with a new random seed and twice the time limit when one runs
//! out (`check_restarting`): on these encodings Z3's time is heavy-tailed in the seed
//! (0.5 s to over 20 s for the same question). `FWV_SCAN_SEED=N` shifts the seeds of
//! every scan search, to see how an answer's time depends on them. Two things keep most
//! properties off that tail:
//!
//! - **Counting tables first free.** Recent tables some rule asks for `--hitcount` ≥ 2
//!   (rate limiters such as a SYN-flood guard) carry H stamps each, the costliest part of
//!   the encoding, and most properties do not hinge on them. Each search first leaves
//!   their matches free (an over-approximation: "none" there is "none" exact, so a proof
//!   stands); a witness from it counts only when the simulator replays it, and the
//!   threshold's scan too. Otherwise the exact encoding decides.
//! - **A fixed rate first.** The witness search first asks for a scan at one round gap
//!   (1 ms, or the round gap nearest it within the rate bounds), the first packet at 0:
//!   times `⌊(q − p)·g⌋` in integer arithmetic, no floors of real times (about 0.1 s
//!   where the search at any gap takes 0.1–12 s across seeds). It proves nothing about
//!   other gaps: when it finds none, the search at any gap follows.
//!
//! ## Rates
//!
//! A witness comes with the scan's rate, chosen round (the largest of 1, 2, 5 × 10ⁿ ms or
//! µs gaps at most 0.8 times the slowest falsifying gap, so that the kernel replay has
//! margin). The threshold is the supremum of falsifying gaps: "a scan with gap ≥ G
//! falsifies it" is monotone in G, so it is found by bisection. Each step first replays
//! the shortest scan found so far at gap G in the simulator (a scan that replays is one
//! of the encoding's: the step is settled without the solver, whose checks near the
//! threshold are the hard ones), then asks the over-approximation whether any scan with
//! gap ≥ G does it (none: the slower side is proved at once), then the witness encoding.
//! The witness itself is written from an encoding at its round gap, with only the pieces
//! of its port range; one that does not replay gives way to the next round gap.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use z3::ast::{Bool, Int, Real};
use z3::{Params, Solver};

use super::{
    final_of, hashlimit_eval, recent_eval, Answer, HlRec, HlThread, Mode, Proved, RState, Setup, Trace, Witness, HZ,
};
use crate::model::matches::RecentMode;
use crate::model::net::PortRange;
use crate::model::{Hook, Match};
use crate::sim::Verdict;
use crate::verify::encode::{bv, SymPacket};
use crate::verify::query::goal_condition;
use crate::verify::traverse::{Final, StateModel, Traversal};
use crate::verify::{check, VerifyError};

/// Exact ports on each side of a boundary, one try after another.
const SLACKS: [u32; 3] = [1, 2, 4];

/// The slowest scan considered when the property gives no lowest rate: one port an hour.
const SLOWEST_GAP: f64 = 3600.0 * HZ as f64;

/// Time limit of the first search, at a fixed rate, in milliseconds.
const FIXED_MS: u32 = 500;

/// Time limit of each check of the threshold bisection, in milliseconds.
const BISECTION_MS: u32 = 2000;

/// Restarts of [`check_restarting`] and the first one's time limit (ms).
const RESTARTS: u32 = 4;
const RESTART_MS: u32 = 1500;

/// Largest stamp depth (`--hitcount`) a run summary keeps the order of stamps for.
const MAX_PUSHED: usize = 8;

/// Nanoseconds per jiffy at [`HZ`].
const NS_PER_JIFFY: i64 = 1_000_000_000 / HZ as i64;

/// A piece of the port range in scan order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    /// One exact port.
    Port(u16),
    /// A run of ports summarised by its effects.
    Run(u16, u16),
}

/// What the packets of a run can do.
#[derive(Clone, Debug, Default)]
pub(super) struct RunEffects {
    /// Per recent table: (may `--set`, may `--update`, may `--remove`).
    pub(super) tables: BTreeMap<String, (bool, bool, bool)>,
    /// A packet of the run may be accepted.
    pub(super) accept: bool,
}

/// The encoding of one search.
struct Enc {
    solver: Solver,
    first: Int,
    last: Int,
    origin: Real,
    gap: Real,
    tmpl: SymPacket,
    /// Exact ports: port, in the scan, traversal.
    ports: Vec<(u16, Bool, Traversal)>,
    goal: SymPacket,
    goal_t: Int,
    goal_trav: Traversal,
    goal_cond: Bool,
}

/// Port boundaries `b` (ports `b-1` and `b` are told apart by some test).
fn boundaries(s: &Setup<'_>) -> BTreeSet<u32> {
    let mut b = BTreeSet::new();
    let mut add = |r: &PortRange| {
        b.insert(r.lo as u32);
        b.insert(r.hi as u32 + 1);
    };
    for c in &s.rs.tables[s.table].chains {
        for r in &c.rules {
            for m in &r.matches {
                match &m.m {
                    Match::Tcp(t) => t.dport.iter().for_each(|d| add(&d.val)),
                    Match::Udp(t) => t.dport.iter().for_each(|d| add(&d.val)),
                    Match::Multiport(mp) => mp.ports.iter().for_each(&mut add),
                    Match::Conntrack(ct) => ct.orig_dst_port.iter().chain(&ct.repl_src_port).for_each(|d| add(&d.val)),
                    _ => {}
                }
            }
        }
    }
    if let Some(d) = &s.prop.goal.dport {
        add(d);
    }
    b.retain(|x| (2..=65535).contains(x));
    b
}

fn pieces(bounds: &BTreeSet<u32>, slack: u32) -> Vec<Piece> {
    let mut exact = BTreeSet::new();
    for &x in bounds {
        for q in x.saturating_sub(slack).max(1)..(x + slack).min(65536) {
            exact.insert(q);
        }
    }
    let mut out = Vec::new();
    let mut next = 1u32;
    for q in exact {
        if q > next {
            out.push(Piece::Run(next as u16, (q - 1) as u16));
        }
        out.push(Piece::Port(q as u16));
        next = q + 1;
    }
    if next <= 65535 {
        out.push(Piece::Run(next as u16, 65535));
    }
    out
}

/// Every field but the destination port equal.
pub(super) fn same_but_dport(a: &SymPacket, b: &SymPacket) -> Bool {
    let mut c = vec![
        a.src.eq(&b.src),
        a.dst.eq(&b.dst),
        a.proto.eq(&b.proto),
        a.sport.eq(&b.sport),
        a.flags.eq(&b.flags),
        a.icmp_type.eq(&b.icmp_type),
        a.icmp_code.eq(&b.icmp_code),
        a.in_if.eq(&b.in_if),
        a.out_if.eq(&b.out_if),
        a.len.eq(&b.len),
        a.ttl.eq(&b.ttl),
        a.ct.eq(&b.ct),
        a.snat.eq(&b.snat),
        a.dnat.eq(&b.dnat),
        a.mark.eq(&b.mark),
        a.frag.eq(&b.frag),
        a.pkttype.eq(&b.pkttype),
        a.src_local.eq(&b.src_local),
        a.dst_local.eq(&b.dst_local),
    ];
    for ((_, x), (_, y)) in a.tcp_opts.iter().zip(&b.tcp_opts) {
        c.push(x.eq(y));
    }
    Bool::and(&c)
}

fn real(x: f64) -> Real {
    // Jiffies with nine decimals (well below a nanosecond at HZ 250).
    ratio((x * 1e9).round() as i64, 1_000_000_000)
}

/// `num / den` (the system libz3 may predate `Z3_mk_real_int64`).
fn ratio(num: i64, den: i64) -> Real {
    Real::from_rational_str(&num.to_string(), &den.to_string()).expect("a numeral")
}

fn port_in(x: &z3::ast::BV, lo: u16, hi: u16) -> Bool {
    Bool::and(&[x.bvuge(bv(lo as u128, 16)), x.bvule(bv(hi as u128, 16))])
}

impl Setup<'_> {
    /// The scan template: a TCP SYN of the attacker's, as `mode` wants its packets.
    pub(super) fn scan_template(&self, solver: &Solver, tag: &str, mode: Mode) -> SymPacket {
        let tmpl = SymPacket::new(&format!("{tag}.scan"), &self.u);
        let empty = Trace { pkts: Vec::new(), times: Vec::new(), travs: Vec::new() };
        solver.assert(self.packet_constraints(&tmpl, &empty, mode, &[]));
        solver.assert(tmpl.is_proto(6));
        solver.assert(tmpl.flags.eq(bv(0x02, 8)));
        tmpl
    }

    /// The recent tables a SYN of the attacker's (any destination port) can ever put it
    /// in: the least fixpoint of "a `--set` of the table is reachable when every table
    /// outside the set is known not to hold the attacker". Tables outside it never do in
    /// any scan or flood (they start empty, `--update` creates nothing), so their matches
    /// are fixed in the run summaries.
    pub(super) fn settable(&self) -> Result<BTreeSet<String>, VerifyError> {
        // One side solver, the `absent` tables' matches fixed in a scope per round.
        let solver = Solver::new();
        let (_, trav) = self.side_rep(&solver)?;
        let yes = Bool::from_bool(true);
        self.settable_by(|absent| {
            solver.push();
            self.fix_absent(&solver, &trav, absent);
            let eff = self.effects_under(&solver, &trav, &yes, &yes, "scan ports 1-65535");
            solver.pop(1);
            eff
        })
    }

    /// [`Setup::settable`] for packets whose effects `effects` gives.
    pub(super) fn settable_by(
        &self,
        effects: impl Fn(&BTreeSet<String>) -> Result<RunEffects, VerifyError>,
    ) -> Result<BTreeSet<String>, VerifyError> {
        let mut set: BTreeSet<String> = BTreeSet::new();
        loop {
            let absent: BTreeSet<String> = self.depth.keys().filter(|t| !set.contains(*t)).cloned().collect();
            let eff = effects(&absent)?;
            let next: BTreeSet<String> = eff
                .tables
                .iter()
                .filter(|(_, (s, _, _))| *s)
                .map(|(t, _)| t.clone())
                .chain(set.iter().cloned())
                .collect();
            if next == set {
                return Ok(set);
            }
            set = next;
        }
    }

    /// What packets of the scan to ports `lo..=hi` can do, every stateful match free
    /// except the recent matches of `absent` tables (which never hold the attacker).
    pub(super) fn run_effects(&self, lo: u16, hi: u16, absent: &BTreeSet<String>) -> Result<RunEffects, VerifyError> {
        Ok(self.runs_effects(&[(lo, hi)], absent)?.pop().expect("one run, one answer"))
    }

    /// A side solver's scan SYN to any destination port (the template's other fields) and
    /// its traversal, both asserted on `solver`.
    fn side_rep(&self, solver: &Solver) -> Result<(SymPacket, Traversal), VerifyError> {
        let tmpl = self.scan_template(solver, "side", Mode::Over);
        let rep = SymPacket::new("side.run", &self.u);
        solver.assert(same_but_dport(&rep, &tmpl));
        let trav = self.input_traversal(solver, &rep)?;
        Ok((rep, trav))
    }

    /// What the packet `rep` (constrained on `solver`) can do, every stateful match free
    /// except the recent matches of `absent` tables: the recent tables it can `--set`,
    /// `--update` or `--remove`, and whether it can be accepted when `opens` holds (the
    /// condition under which an accepted packet creates a connection).
    pub(super) fn effects_of(
        &self,
        solver: &Solver,
        rep: &SymPacket,
        absent: &BTreeSet<String>,
        opens: &Bool,
        what: &str,
    ) -> Result<RunEffects, VerifyError> {
        let trav = self.input_traversal(solver, rep)?;
        self.fix_absent(solver, &trav, absent);
        self.effects_under(solver, &trav, &Bool::from_bool(true), opens, what)
    }

    /// What packets of the scan to each of the port ranges `runs` can do
    /// ([`Setup::run_effects`]), on one side solver: the traversal encoded once, each
    /// run's ports an assumption.
    fn runs_effects(&self, runs: &[(u16, u16)], absent: &BTreeSet<String>) -> Result<Vec<RunEffects>, VerifyError> {
        let solver = Solver::new();
        // A scan SYN is the first packet of its connection (the template says so).
        let (rep, trav) = self.side_rep(&solver)?;
        self.fix_absent(&solver, &trav, absent);
        let opens = Bool::from_bool(true);
        runs.iter()
            .map(|&(lo, hi)| {
                let ports = port_in(&rep.dport, lo, hi);
                self.effects_under(&solver, &trav, &ports, &opens, &format!("scan ports {lo}-{hi}"))
            })
            .collect()
    }

    /// [`Setup::effects_of`] of the traversal `trav` (encoded on `solver`) when `cond`
    /// holds.
    fn effects_under(
        &self,
        solver: &Solver,
        trav: &Traversal,
        cond: &Bool,
        opens: &Bool,
        what: &str,
    ) -> Result<RunEffects, VerifyError> {
        let mut eff = RunEffects::default();
        for su in &trav.stateful {
            let Match::Recent(rc) = &su.rule.get(self.rs).matches[su.index].m else { continue };
            let kind = match rc.mode {
                RecentMode::Set => 0,
                RecentMode::Update => 1,
                RecentMode::Remove => 2,
                RecentMode::Rcheck => continue,
            };
            let e = eff.tables.entry(rc.name.clone()).or_default();
            let known = [e.0, e.1, e.2][kind];
            if known {
                continue;
            }
            let guard = Bool::and(&[trav.occurrences[su.occ].reach.clone(), su.before.clone()]);
            if check(solver, &[cond.clone(), guard], || format!("the effects of {what}"))? {
                let e = eff.tables.get_mut(&rc.name).expect("entry");
                match kind {
                    0 => e.0 = true,
                    1 => e.1 = true,
                    _ => e.2 = true,
                }
            }
        }
        eff.accept = check(solver, &[cond.clone(), trav.verdict(Final::Accept), opens.clone()], || what.to_string())?;
        Ok(eff)
    }

    /// The recent matches of `absent` tables (never holding the attacker) in `trav` take
    /// their value for a missing entry.
    pub(super) fn fix_absent(&self, solver: &Solver, trav: &Traversal, absent: &BTreeSet<String>) {
        for su in &trav.stateful {
            if let (Match::Recent(rc), Some(v)) = (&su.rule.get(self.rs).matches[su.index].m, &su.var) {
                if absent.contains(&rc.name) && rc.mode != RecentMode::Set {
                    solver.assert(v.eq(Bool::from_bool(rc.inv)));
                }
            }
        }
    }

    /// Threads the recent tables through one traversal at `now`, when `live`; the recent
    /// matches of the `skip` tables are left free (and not noted: the caller knows).
    /// With `hashlimit` (the traversal's packet, the tables' records and the search's
    /// mode: a witness search without summaries, or a "no trace" search whose summaries
    /// are recorded there too), the hashlimit matches that mode can encode are exact;
    /// otherwise every hashlimit match is free.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn thread_state(
        &self,
        solver: &Solver,
        trav: &Traversal,
        live: &Bool,
        now: &Int,
        state: &mut BTreeMap<String, RState>,
        free: &mut Vec<String>,
        skip: &BTreeSet<String>,
        mut hashlimit: Option<HlThread<'_>>,
    ) {
        let mut covered: Vec<Bool> = Vec::new();
        for su in &trav.stateful {
            let rule = su.rule.get(self.rs);
            let guard = Bool::and(&[live.clone(), trav.occurrences[su.occ].reach.clone(), su.before.clone()]);
            if let (Match::Hashlimit(h), Some((p, hl, mode))) = (&rule.matches[su.index].m, hashlimit.as_mut()) {
                if self.hashlimit_exact(h, *mode) {
                    let cfg = self.hashlimit_cfg(&h.name).expect("exact only for a compiled table");
                    let recs = hl.entry(h.name.clone()).or_default();
                    let (value, eval) = hashlimit_eval(cfg, h.above, p, (now, *mode), &guard, recs, solver);
                    if let Some(v) = &su.var {
                        solver.assert(v.eq(&value));
                        covered.push(v.clone());
                    }
                    recs.push(HlRec::Eval(eval));
                    continue;
                }
            }
            if let Match::Recent(rc) = &rule.matches[su.index].m {
                if skip.contains(&rc.name) {
                    if let Some(v) = &su.var {
                        covered.push(v.clone());
                    }
                    continue;
                }
                let h = self.depth[&rc.name];
                let st = state[&rc.name].clone();
                let (value, after) = recent_eval(rc, &st, now, h);
                if let Some(v) = &su.var {
                    solver.assert(v.eq(&value));
                    covered.push(v.clone());
                }
                state.insert(rc.name.clone(), RState::ite(&guard, &after, &st));
            } else {
                let d = format!("{}: {} (either outcome)", su.rule.describe(self.rs), rule.matches[su.index].m.name());
                if !free.contains(&d) {
                    free.push(d);
                }
                if let Some(v) = &su.var {
                    covered.push(v.clone());
                }
            }
        }
        self.note_assumed(trav, &covered, free);
    }

    /// The state after a summarised run (`live`: it is part of the trace) of packets sent
    /// between `start` and `end`: a table the run cannot touch is unchanged; one it can
    /// only remove from may lose the attacker; one it can set or update but never remove
    /// from gets 0..=H new stamps in `[start, end]` pushed in front of its old ones (the
    /// entry created when it can be set; H at most [`MAX_PUSHED`]); any other may hold
    /// any stamps up to `end` (and the goal's time).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn summarise(
        &self,
        solver: &Solver,
        key: &str,
        eff: &RunEffects,
        live: &Bool,
        (start, end): (&Int, &Int),
        goal_t: &Int,
        state: &mut BTreeMap<String, RState>,
    ) {
        for (name, &(set, update, remove)) in &eff.tables {
            if !(set || update || remove) {
                continue;
            }
            let h = self.depth[name];
            let old = state[name].clone();
            let fresh = |what: &str| format!("{key}.{name}.{what}");
            // The pushed-stamps form is quadratic in H (a choice per position and
            // count): kept for small H, where counting arguments need it.
            let new = if (set || update) && !remove && h <= MAX_PUSHED {
                // Stamps only ever get added: `pushed` new ones, newest first.
                let pushed = Int::new_const(fresh("pushed"));
                solver.assert(pushed.ge(Int::from_u64(0)));
                solver.assert(pushed.le(Int::from_u64(h as u64)));
                let added: Vec<Int> = (0..h).map(|j| Int::new_const(fresh(&format!("a{j}")))).collect();
                for (j, a) in added.iter().enumerate() {
                    solver.assert(a.ge(start));
                    solver.assert(a.le(end));
                    solver.assert(a.le(goal_t));
                    if j > 0 {
                        solver.assert(a.le(&added[j - 1]));
                    }
                }
                let some = pushed.gt(Int::from_u64(0));
                if !set {
                    // `--update` adds to an existing entry only.
                    solver.assert(some.implies(&old.present));
                }
                let stamps: Vec<Int> = (0..h)
                    .map(|i| {
                        (1..=h).fold(old.stamps[i].clone(), |acc, k| {
                            let v = if i < k { added[i].clone() } else { old.stamps[i - k].clone() };
                            pushed.eq(Int::from_u64(k as u64)).ite(&v, &acc)
                        })
                    })
                    .collect();
                let sum = Int::add(&[&old.n, &pushed]);
                let cap = Int::from_u64(h as u64);
                RState { present: Bool::or(&[old.present.clone(), some]), n: sum.le(&cap).ite(&sum, &cap), stamps }
            } else {
                let present = if set || remove {
                    let p = Bool::new_const(fresh("present"));
                    if !set {
                        solver.assert(p.implies(&old.present));
                    }
                    p
                } else {
                    old.present.clone()
                };
                let (n, stamps) = if set || update {
                    let n = Int::new_const(fresh("n"));
                    solver.assert(n.ge(Int::from_u64(0)));
                    solver.assert(n.le(Int::from_u64(h as u64)));
                    let stamps: Vec<Int> = (0..h).map(|j| Int::new_const(fresh(&format!("s{j}")))).collect();
                    solver.assert(stamps[0].le(end));
                    solver.assert(stamps[0].le(goal_t));
                    for j in 1..h {
                        solver.assert(stamps[j].le(&stamps[j - 1]));
                    }
                    (n, stamps)
                } else {
                    (old.n.clone(), old.stamps.clone())
                };
                RState { present, n, stamps }
            };
            state.insert(name.clone(), RState::ite(live, &new, &old));
        }
    }

    /// The whole encoding: exact ports, run summaries, the goal packet; the recent
    /// matches of the `skip` tables free (an over-approximation; empty: exact).
    #[allow(clippy::too_many_arguments)]
    fn scan_encoding(
        &self,
        mode: Mode,
        pieces: &[Piece],
        effects: &BTreeMap<(u16, u16), RunEffects>,
        gap_bounds: (Option<f64>, Option<f64>),
        skip: &BTreeSet<String>,
        fixed: Option<i64>,
        free: &mut Vec<String>,
    ) -> Result<Enc, VerifyError> {
        let u = &self.u;
        let tag = &match (mode, fixed) {
            (Mode::Witness, None) => "sw".to_string(),
            (Mode::Witness, Some(g_ns)) => format!("sf{g_ns}"),
            (Mode::Over, _) => "so".to_string(),
        };
        let solver = Solver::new();
        let mut params = Params::new();
        params.set_u32("random_seed", seed_base());
        solver.set_params(&params);
        let tmpl = self.scan_template(&solver, tag, mode);
        let first = Int::new_const(format!("{tag}.first"));
        let last = Int::new_const(format!("{tag}.last"));
        solver.assert(first.ge(Int::from_u64(1)));
        solver.assert(first.le(&last));
        solver.assert(last.le(Int::from_u64(65535)));
        let origin = Real::new_const(format!("{tag}.origin"));
        let gap = Real::new_const(format!("{tag}.gap"));
        solver.assert(gap.gt(real(0.0)));
        if let Some(lo) = gap_bounds.0 {
            solver.assert(gap.ge(real(lo)));
        }
        if let Some(hi) = gap_bounds.1 {
            solver.assert(gap.le(real(hi)));
        }
        let goal_t = Int::new_const(format!("{tag}.goal.time"));
        let at = |q: u16| match fixed {
            // The first packet at 0, integer arithmetic: ⌊(q - first)·g / 1 jiffy⌋.
            Some(g_ns) => Int::mul(&[&Int::sub(&[&Int::from_u64(q as u64), &first]), &Int::from_i64(g_ns)])
                .div(Int::from_i64(NS_PER_JIFFY)),
            None => Real::add(&[&origin, &Real::mul(&[&ratio(q as i64, 1), &gap])]).to_int(),
        };
        if let Some(g_ns) = fixed {
            let g = ratio(g_ns, NS_PER_JIFFY);
            solver.assert(gap.eq(&g));
            solver.assert(Real::add(&[&origin, &Real::mul(&[&Real::from_int(&first), &g])]).eq(real(0.0)));
        }
        let mut state = self.empty_state();
        let mut ports = Vec::new();
        // Earlier packets of the attacker for the goal's conntrack alternatives.
        let mut earlier: Vec<SymPacket> = Vec::new();
        let mut accepted: Vec<Bool> = Vec::new();
        for piece in pieces {
            match *piece {
                Piece::Port(q) => {
                    let pkt = SymPacket::new(&format!("{tag}.p{q}"), u);
                    solver.assert(same_but_dport(&pkt, &tmpl));
                    solver.assert(pkt.dport.eq(bv(q as u128, 16)));
                    let trav = Traversal::encode(self.rs, self.table, Hook::Input, &pkt, u, StateModel::Any)?;
                    for d in &trav.defs {
                        solver.assert(d);
                    }
                    let live = Bool::and(&[first.le(Int::from_u64(q as u64)), last.ge(Int::from_u64(q as u64))]);
                    solver.assert(live.implies(&trav.entry));
                    let now = at(q);
                    solver.assert(live.implies(goal_t.ge(&now)));
                    self.thread_state(&solver, &trav, &live, &now, &mut state, free, skip, None);
                    accepted.push(Bool::and(&[live.clone(), trav.verdict(Final::Accept)]));
                    earlier.push(pkt);
                    ports.push((q, live, trav));
                }
                Piece::Run(lo, hi) => {
                    let mut eff = effects[&(lo, hi)].clone();
                    eff.tables.retain(|t, _| !skip.contains(t));
                    let eff = &eff;
                    let live = Bool::and(&[first.le(Int::from_u64(hi as u64)), last.ge(Int::from_u64(lo as u64))]);
                    let end = at(hi);
                    let start = at(lo);
                    self.summarise(&solver, &format!("{tag}.r{lo}"), eff, &live, (&start, &end), &goal_t, &mut state);
                    if eff.accept {
                        let rep = SymPacket::new(&format!("{tag}.r{lo}"), u);
                        solver.assert(same_but_dport(&rep, &tmpl));
                        solver.assert(port_in(&rep.dport, lo, hi));
                        accepted.push(Bool::and(&[live, Bool::new_const(format!("{tag}.r{lo}.accepted"))]));
                        earlier.push(rep);
                    }
                }
            }
        }
        // The goal packet.
        let goal = SymPacket::new(&format!("{tag}.goal"), u);
        let goal_trav = self.input_traversal(&solver, &goal)?;
        let before = match mode {
            Mode::Witness => Trace { pkts: vec![tmpl.clone()], times: Vec::new(), travs: Vec::new() },
            Mode::Over => {
                earlier.insert(0, tmpl.clone());
                accepted.insert(0, Bool::from_bool(false));
                Trace { pkts: earlier, times: Vec::new(), travs: Vec::new() }
            }
        };
        solver.assert(self.packet_constraints(&goal, &before, mode, &accepted));
        self.thread_state(&solver, &goal_trav, &Bool::from_bool(true), &goal_t, &mut state, free, skip, None);
        let goal_cond = Bool::and(&[
            goal_condition(&self.prop.goal, &goal, u, Hook::Input),
            goal_trav.verdict(final_of(self.prop.verdict)),
        ]);
        Ok(Enc { solver, first, last, origin, gap, tmpl, ports, goal, goal_t, goal_trav, goal_cond })
    }
}

/// Decides a property under the scan attacker.
pub(super) fn prove_scan(s: &Setup<'_>, min_rate: Option<u32>, max_rate: Option<u32>) -> Result<Proved, VerifyError> {
    let unknown = |why: &str| Ok(super::unknown(why));
    if !matches!(s.prop.quant, super::Quant::Never | super::Quant::Possible) {
        return unknown("`at most N` is not encoded for the scan attacker");
    }
    if s.prop.within.is_some() {
        return unknown("`within` is not encoded for the scan attacker");
    }
    if !s.prop.initially_in.is_empty() {
        return unknown("`from …` is not encoded for the scan attacker (scans start from the empty state)");
    }
    if let (Some(lo), Some(hi)) = (min_rate, max_rate) {
        if lo > hi {
            return Err(VerifyError::Input(format!("scan rate {lo}-{hi}: the lowest rate is above the highest")));
        }
    }
    if min_rate == Some(0) || max_rate == Some(0) {
        return Err(VerifyError::Input("scan rate: rates are packets per second, at least 1".into()));
    }
    // Gap bounds in jiffies from the rate bounds (ports per second).
    let gap_lo = max_rate.map(|r| HZ as f64 / r as f64);
    let gap_hi = min_rate.map(|r| HZ as f64 / r as f64);
    let scope = match (min_rate, max_rate) {
        (None, None) => "every sequential TCP SYN scan (any first port, any length, any constant rate)".to_string(),
        (Some(a), None) => format!("every sequential TCP SYN scan at {a} ports/s or faster"),
        (None, Some(b)) => format!("every sequential TCP SYN scan at up to {b} ports/s"),
        (Some(a), Some(b)) => format!("every sequential TCP SYN scan at {a} to {b} ports/s"),
    };
    let bounds = boundaries(s);
    let settable = s.settable()?;
    let absent: BTreeSet<String> = s.depth.keys().filter(|t| !settable.contains(*t)).cloned().collect();
    // Counting tables (some rule asks for `--hitcount` 2 or more) that a scan can fill:
    // their stamp lists make the searches slow and heavy-tailed in Z3's seed, and most
    // properties do not hinge on them. Each search first leaves their matches free, an
    // over-approximation: no scan there is no scan at all, and a witness from it counts
    // only once the simulator has replayed it and the threshold's scan (below); else the
    // exact encoding decides.
    let counting: BTreeSet<String> =
        s.depth.iter().filter(|(t, h)| **h >= 2 && settable.contains(*t)).map(|(t, _)| t.clone()).collect();
    let exact_only = BTreeSet::new();
    let passes: Vec<&BTreeSet<String>> =
        if counting.is_empty() { vec![&exact_only] } else { vec![&counting, &exact_only] };
    let mut notes: Vec<String> = Vec::new();
    let mut last_why = String::new();
    'slack: for slack in SLACKS {
        let pieces = pieces(&bounds, slack);
        let runs: Vec<(u16, u16)> =
            pieces.iter().filter_map(|p| if let Piece::Run(lo, hi) = *p { Some((lo, hi)) } else { None }).collect();
        let effects: BTreeMap<(u16, u16), RunEffects> =
            runs.iter().copied().zip(s.runs_effects(&runs, &absent)?).collect();
        // Each search in a fresh Z3 context: the side solvers' terms above would
        // otherwise steer its heuristics (seconds either way on the same question).
        let gaps = (gap_lo, gap_hi);
        for skip in &passes {
            let (found, free) = z3::with_z3_config(&z3::Config::new(), || -> Result<_, VerifyError> {
                let mut free = Vec::new();
                // First a scan at one round gap, in integer arithmetic (no floors of real
                // times): quick where the general search can take seconds. It proves
                // nothing about other gaps, so "none" there means the general search.
                let mut fixed = None;
                if let Some(g_ns) = fixed_gap(gaps) {
                    let f = s.scan_encoding(Mode::Witness, &pieces, &effects, gaps, skip, Some(g_ns), &mut free)?;
                    if check_within(&f.solver, std::slice::from_ref(&f.goal_cond), FIXED_MS, "a scan at a fixed rate")?
                        == Some(true)
                    {
                        let m = f.solver.get_model().ok_or_else(|| VerifyError::Unknown {
                            what: "the scan witness".into(),
                            reason: "no model".into(),
                        })?;
                        fixed = Some((f, m));
                    }
                }
                let (enc, first, general) = match fixed {
                    Some((f, m)) => (f, m, false),
                    None => {
                        let w = s.scan_encoding(Mode::Witness, &pieces, &effects, gaps, skip, None, &mut free)?;
                        let r = check_restarting(&w.solver, std::slice::from_ref(&w.goal_cond), "a scan")?;
                        if !r {
                            return Ok((None, free));
                        }
                        let m = w.solver.get_model().ok_or_else(|| VerifyError::Unknown {
                            what: "the scan witness".into(),
                            reason: "no model".into(),
                        })?;
                        w.solver.assert(&w.goal_cond);
                        (w, m, true)
                    }
                };
                let w = general.then_some(&enc);
                Ok((Some(scan_witness(s, w, &pieces, &effects, gaps, skip, (&enc, first))?), free))
            })?;
            for f in free {
                if !notes.contains(&f) {
                    notes.push(f);
                }
            }
            match found {
                Some(Ok((csv, packets, info))) => {
                    return Ok(Proved { answer: Answer::Witness(Witness { csv, packets, prefix: 0 }), notes, info });
                }
                Some(Err(why)) if skip.is_empty() => {
                    last_why = format!("the solver's scan does not replay in the simulator ({why})");
                    continue 'slack;
                }
                // The abstraction's scan does not replay: the exact encoding decides.
                Some(Err(_)) => {}
                // None even with the counting tables free: none at all.
                None => break,
            }
        }
        let mut none = false;
        for skip in &passes {
            none = z3::with_z3_config(&z3::Config::new(), || -> Result<bool, VerifyError> {
                let o = s.scan_encoding(Mode::Over, &pieces, &effects, gaps, skip, None, &mut Vec::new())?;
                Ok(!check_restarting(&o.solver, std::slice::from_ref(&o.goal_cond), "a scan")?)
            })?;
            if none {
                break;
            }
        }
        if none {
            let exact = pieces.iter().filter(|p| matches!(p, Piece::Port(_))).count();
            let info = vec![format!(
                "{exact} ports near the rules' port boundaries encoded exactly, the runs between them summarised \
                 (over-approximated)"
            )];
            return Ok(Proved { answer: Answer::NoneAtAll(format!("{scope}, then any packet")), notes, info });
        }
        last_why = "no scan opens a connection the goal packet starts, but the over-approximation (the goal packet \
                    in a connection a scan packet opened, runs of ports summarised) finds one"
            .into();
    }
    unknown(&last_why)
}

/// The first random seed of the scan searches: 0, or `FWV_SCAN_SEED`.
fn seed_base() -> u32 {
    std::env::var("FWV_SCAN_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `check` with a time limit (ms; the seed [`seed_base`]): `None` when it runs out.
fn check_within(solver: &Solver, assumptions: &[Bool], ms: u32, what: &str) -> Result<Option<bool>, VerifyError> {
    let mut p = Params::new();
    p.set_u32("random_seed", seed_base());
    p.set_u32("timeout", ms);
    solver.set_params(&p);
    let r = check(solver, assumptions, || what.to_string());
    let mut p = Params::new();
    p.set_u32("timeout", u32::MAX);
    solver.set_params(&p);
    match r {
        Ok(b) => Ok(Some(b)),
        Err(VerifyError::Unknown { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The gap (ns) of the first search, at a fixed rate: 1 ms (1,000 ports/s), or the
/// round gap nearest it within the rate bounds (jiffies).
fn fixed_gap((lo, hi): (Option<f64>, Option<f64>)) -> Option<i64> {
    let jiffies = |ns: i64| ns as f64 / NS_PER_JIFFY as f64;
    let mut round = (0..=10).flat_map(|e| [1, 2, 5].map(|k| k * 10i64.pow(e)));
    let mut g = 1_000_000i64;
    if let Some(l) = lo.filter(|l| jiffies(g) < *l) {
        g = round.clone().find(|g| jiffies(*g) >= l)?;
    }
    if let Some(h) = hi.filter(|h| jiffies(g) > *h) {
        g = round.rfind(|g| jiffies(*g) <= h)?;
    }
    (lo.is_none_or(|l| jiffies(g) >= l) && hi.is_none_or(|h| jiffies(g) <= h)).then_some(g)
}

/// `check` with restarts: Z3's search on these encodings is heavy-tailed (the same
/// question takes 0.5 s or over 20 s depending on the random seed), so each try has a
/// time limit and the next a new seed and twice the limit; the last has none.
fn check_restarting(solver: &Solver, assumptions: &[Bool], what: &str) -> Result<bool, VerifyError> {
    let base = seed_base();
    let mut limit_ms = RESTART_MS;
    for attempt in 0..=RESTARTS {
        let mut p = Params::new();
        p.set_u32("random_seed", base + attempt);
        p.set_u32("timeout", if attempt == RESTARTS { u32::MAX } else { limit_ms });
        solver.set_params(&p);
        match check(solver, assumptions, || what.to_string()) {
            Err(VerifyError::Unknown { .. }) if attempt < RESTARTS => limit_ms *= 2,
            r => {
                let mut p = Params::new();
                p.set_u32("timeout", u32::MAX);
                solver.set_params(&p);
                return r;
            }
        }
    }
    unreachable!("the last attempt has no time limit")
}

/// The model's value of a real as f64.
fn real_value(m: &z3::Model, x: &Real) -> Option<f64> {
    m.eval(x, true).map(|v| v.approx_f64())
}

fn int_value(m: &z3::Model, x: &Int) -> Option<i64> {
    m.eval(x, true).and_then(|v| v.as_i64())
}

/// A round gap in nanoseconds at most `max_ns`: 1, 2 or 5 × 10ⁿ.
fn round_gap(max_ns: f64) -> Option<i64> {
    let mut best = None;
    let mut unit = 1i64;
    while unit <= 10_000_000_000 {
        for k in [1, 2, 5] {
            let g = unit * k;
            if (g as f64) <= max_ns {
                best = Some(g);
            }
        }
        unit *= 10;
    }
    best
}

type ScanWitness = (String, usize, Vec<String>);

/// A model's scan for the simulator: the template's row (split), the goal's row (with
/// the verdict as `expect`), the first and last port, each packet's time and the goal's
/// (ns).
struct ModelScan {
    t: Vec<String>,
    goal: String,
    p: i64,
    e: i64,
    times: Vec<i64>,
    goal_ns: i64,
}

/// Builds, minimises and replays the witness of a satisfiable scan encoding (the goal
/// asserted); `Err` when it does not replay.
fn scan_witness(
    s: &Setup<'_>,
    w: Option<&Enc>,
    pieces: &[Piece],
    effects: &BTreeMap<(u16, u16), RunEffects>,
    gaps: (Option<f64>, Option<f64>),
    skip: &BTreeSet<String>,
    (fenc, first): (&Enc, z3::Model),
) -> Result<Result<ScanWitness, String>, VerifyError> {
    let no_value = || VerifyError::Unknown { what: "the scan witness".into(), reason: "no value".into() };
    let no =
        |what: &str| VerifyError::Unknown { what: format!("the scan witness's {what}"), reason: "no value".into() };
    let abstracted = !skip.is_empty();
    // The model of the search that found the scan (in `fenc`: `w`, the search at any
    // gap, or the one at a fixed gap; taken before the goal was asserted, so no second
    // full search).
    let m = first;
    let g0 = real_value(&m, &fenc.gap).ok_or_else(|| no("gap"))?;
    // The threshold: the supremum of falsifying gaps (monotone: a witness with gap ≥ G).
    let cap = gaps.1.unwrap_or(SLOWEST_GAP);
    // The general encodings: `o` the over-approximation (a scan with gap ≥ G there is
    // none: proved), `w` the witness search's (any gap, the goal asserted), built when
    // first needed.
    let o = s.scan_encoding(Mode::Over, pieces, effects, gaps, skip, None, &mut Vec::new())?;
    let w_cell: OnceCell<Enc> = OnceCell::new();
    let general = || -> Result<&Enc, VerifyError> {
        if let Some(w) = w {
            return Ok(w);
        }
        if let Some(w) = w_cell.get() {
            return Ok(w);
        }
        let w = s.scan_encoding(Mode::Witness, pieces, effects, gaps, skip, None, &mut Vec::new())?;
        w.solver.assert(&w.goal_cond);
        Ok(w_cell.get_or_init(|| w))
    };
    // Checks near the threshold can be hard (the floors of many real times): each has a
    // time limit, and one that runs out ends the bisection with the bracket so far.
    // `Some(Some(model))` when a scan with gap ≥ `g` does it in `e` (the goal `cond`),
    // `Some(None)` when none does; `None` when the check ran out of time.
    let at_least = |e: &Enc, g: f64, cond: &[Bool]| -> Result<Option<Option<z3::Model>>, VerifyError> {
        e.solver.push();
        e.solver.assert(e.gap.ge(real(g)));
        let r = match check_within(&e.solver, cond, BISECTION_MS, "a slower scan")? {
            Some(true) => Some(Some(e.solver.get_model().ok_or_else(no_value)?)),
            Some(false) => Some(None),
            None => None,
        };
        e.solver.pop(1);
        Ok(r)
    };
    let mut info = Vec::new();
    // The template's and the goal's CSV fields in a model of `e`: (a row of the template
    // packet, split; the goal packet's row).
    let fields = |e: &Enc, m: &z3::Model| -> Result<(Vec<String>, String), VerifyError> {
        let goal_j = int_value(m, &e.goal_t).ok_or_else(|| no("goal time"))?;
        let goal_csv = s.csv(
            m,
            &Trace {
                pkts: vec![e.goal.clone()],
                times: vec![Int::from_i64(goal_j.max(0))],
                travs: vec![e.goal_trav.clone()],
            },
            0,
        )?;
        let goal_row = goal_csv.lines().nth(1).ok_or_else(no_value)?.to_string();
        let tmpl_csv = s.csv(
            m,
            &Trace { pkts: vec![e.tmpl.clone()], times: vec![Int::from_u64(0)], travs: vec![e.goal_trav.clone()] },
            0,
        )?;
        let t = tmpl_csv.lines().nth(1).ok_or_else(no_value)?.split(',').map(String::from).collect();
        Ok((t, goal_row))
    };
    // A model's scan as the simulator replays it (at the encoding's very jiffies).
    let model_scan = |e: &Enc, m: &z3::Model| -> Result<Option<ModelScan>, VerifyError> {
        let Some((p, last, times, goal_ns)) = model_times(m, e) else { return Ok(None) };
        let (t, goal) = fields(e, m)?;
        let mut g: Vec<String> = goal.split(',').map(String::from).collect();
        g[13] = s.prop.verdict.as_str().to_string();
        Ok(Some(ModelScan { t, goal: g.join(","), p, e: last, times, goal_ns }))
    };
    // Whether the ports `p..=e` of `sc` replay at `time(q)` and the goal at `goal_ns`.
    let replays = |sc: &ModelScan, (p, e): (i64, i64), time: &dyn Fn(i64) -> i64, goal_ns: i64| {
        replay_scan(s, &sc.t, &sc.goal, (p, e), time, goal_ns)
    };
    let replays_as_is = |sc: &ModelScan| replays(sc, (sc.p, sc.e), &|q| sc.times[(q - sc.p) as usize], sc.goal_ns);
    // The shortest part of `sc` that still replays, at the same times (end lowered, then
    // start raised, by bisection; every try replayed).
    let shorten = |sc: ModelScan| -> ModelScan {
        let at = |q: i64| sc.times[(q - sc.p) as usize];
        let (a, hi) = shortest_range(sc.p, sc.e, |x, y| replays(&sc, (x, y), &at, sc.goal_ns));
        let times = sc.times[(a - sc.p) as usize..=(hi - sc.p) as usize].to_vec();
        ModelScan { p: a, e: hi, times, ..sc }
    };
    // Whether `sc`'s ports, at a constant gap of at least `g` jiffies (its own phase,
    // else none) and the goal packet as long after the last, replay.
    let replays_at = |sc: &ModelScan, g: f64| -> bool {
        let g_ns = (g * NS_PER_JIFFY as f64).ceil() as i64;
        let delay = sc.goal_ns - sc.times[sc.times.len() - 1];
        let n = sc.e - sc.p;
        let phases = if sc.times[0] == 0 { vec![0] } else { vec![sc.times[0], 0] };
        phases.into_iter().any(|ph| {
            n.checked_mul(g_ns).is_some_and(|end| end < i64::MAX / 4)
                && replays(sc, (sc.p, sc.e), &|q| ph + (q - sc.p) * g_ns, ph + n * g_ns + delay)
        })
    };
    // The bisection's lower end: each step first tries the shortest scan that replayed
    // (`shape`) at the new gap in the simulator (a scan that replays settles the step:
    // it is a scan in the encoding too), then asks the solver. `verified`: the lower
    // end's scan replays.
    let (mut lo, mut hi) = (g0, cap);
    let mut shape = model_scan(fenc, &m)?.filter(|sc| replays_as_is(sc)).map(shorten);
    let mut verified = shape.is_some();
    // `proved`: the upper end is a gap no scan at or above does it with, in `o`.
    let mut proved = false;
    let step = |g: f64, shape: &mut Option<ModelScan>, verified: &mut bool, proved: &mut bool| {
        if shape.as_ref().is_some_and(|sc| replays_at(sc, g)) {
            *verified = true;
            return Ok(Some(true));
        }
        match at_least(&o, g, std::slice::from_ref(&o.goal_cond))? {
            Some(None) => {
                *proved = true;
                return Ok(Some(false));
            }
            None => return Ok(None),
            Some(Some(_)) => {}
        }
        let w = general()?;
        match at_least(w, g, &[])? {
            Some(Some(mm)) => {
                let sc = model_scan(w, &mm)?.filter(|sc| replays_as_is(sc));
                if abstracted && sc.is_none() {
                    // The counting tables were free and the solver's scan does not
                    // replay: the bisection ends at the last scan that does.
                    return Ok(None);
                }
                *verified = sc.is_some();
                if shape.is_none() {
                    *shape = sc.map(shorten);
                }
                Ok(Some(true))
            }
            Some(None) => {
                *proved = false;
                Ok(Some(false))
            }
            None => Ok(None),
        }
    };
    let any_rate = step(cap, &mut shape, &mut verified, &mut proved)? == Some(true);
    if any_rate {
        lo = cap;
    } else {
        while hi / lo > 1.0002 {
            let mid = (lo * hi).sqrt();
            let (mut p, mut v) = (proved, verified);
            match step(mid, &mut shape, &mut v, &mut p)? {
                Some(true) => (lo, verified) = (mid, v),
                Some(false) => (hi, proved) = (mid, p),
                None => break,
            }
        }
    }
    // With counting tables free, the lower end must be a scan that replays; else the
    // exact encoding decides.
    if abstracted && !verified {
        return Ok(Err("the threshold's scan, with counting tables free, does not replay".into()));
    }
    // The witness's gap: round, at most 0.8 × the slowest (and at most 1 s), within the
    // rate bounds; else the solver's own.
    let lo_ns = lo * NS_PER_JIFFY as f64;
    let mut tries: Vec<i64> = Vec::new();
    if let Some(g) = round_gap((0.8 * lo_ns).min(1e9)) {
        tries.push(g);
    }
    if let Some(g) = round_gap(lo_ns.min(1e9)) {
        tries.push(g);
    }
    tries.push((g0 * NS_PER_JIFFY as f64).round().max(1.0) as i64);
    tries.dedup();
    // Each round gap is tried in the simulator first on the shortest scan that replayed
    // (else the first model's): when the goal packet (1 s after the scan) gets the
    // verdict, the scan is shrunk there (end lowered, then start raised, by bisection,
    // every try replayed) and the result confirmed in the encoding with gap, start and
    // end fixed, a quick check. Otherwise the solver searches at that gap.
    let (p0, e0) = (int_value(&m, &fenc.first).ok_or_else(no_value)?, int_value(&m, &fenc.last).ok_or_else(no_value)?);
    let base = match shape {
        Some(sc) => sc,
        None => {
            let (t, goal) = fields(fenc, &m)?;
            let mut g: Vec<String> = goal.split(',').map(String::from).collect();
            g[13] = s.prop.verdict.as_str().to_string();
            ModelScan { t, goal: g.join(","), p: p0, e: e0, times: Vec::new(), goal_ns: 0 }
        }
    };
    let works = |g_ns: i64, p: i64, e: i64| replays(&base, (p, e), &|q| (q - p) * g_ns, (e - p) * g_ns + 1_000_000_000);
    // The witness is written from an encoding at its gap (integer times from 0, the
    // goal no earlier than the last scan packet): quick to solve with its ports fixed.
    // With `ports` known, only the pieces of the scan's range are encoded (a run cut at
    // its ends keeps its effects, an over-approximation of its part).
    let at_gap = |g_ns: i64, ports: Option<(i64, i64)>| -> Result<Enc, VerifyError> {
        let f = match ports {
            None => s.scan_encoding(Mode::Witness, pieces, effects, gaps, skip, Some(g_ns), &mut Vec::new())?,
            Some((a, e)) => {
                let mut ps = Vec::new();
                let mut eff = BTreeMap::new();
                for piece in pieces {
                    match *piece {
                        Piece::Port(q) if (a..=e).contains(&(q as i64)) => ps.push(Piece::Port(q)),
                        Piece::Run(lo, hi) if hi as i64 >= a && lo as i64 <= e => {
                            let cut = ((lo as i64).max(a) as u16, (hi as i64).min(e) as u16);
                            ps.push(Piece::Run(cut.0, cut.1));
                            eff.insert(cut, effects[&(lo, hi)].clone());
                        }
                        _ => {}
                    }
                }
                let f = s.scan_encoding(Mode::Witness, &ps, &eff, gaps, skip, Some(g_ns), &mut Vec::new())?;
                f.solver.assert(f.first.eq(Int::from_i64(a)));
                f.solver.assert(f.last.eq(Int::from_i64(e)));
                f
            }
        };
        f.solver.assert(&f.goal_cond);
        let end = Int::mul(&[&Int::sub(&[&f.last, &f.first]), &Int::from_i64(g_ns)]).div(Int::from_i64(NS_PER_JIFFY));
        f.solver.assert(f.goal_t.ge(&end));
        Ok(f)
    };
    // The witness at gap `g_ns` from a satisfiable encoding `we` at that gap (`shortened`:
    // its ports fixed to a scan the simulator shortened): its rows, each with the
    // verdict it gets, the ports and the template's fields; `Err` when it does not replay.
    type Written = (Vec<Vec<String>>, Vec<Verdict>, (i64, i64), Vec<String>);
    let write = |g_ns: i64, we: &Enc, shortened: bool| -> Result<Result<Written, String>, VerifyError> {
        let solver = &we.solver;
        // Fewest scan packets (when the simulator's shrinking did not do it): the
        // solver's own bisection on the scan's length.
        let m = solver.get_model().ok_or_else(no_value)?;
        if !shortened {
            let len = |m: &z3::Model| -> Option<i64> { Some(int_value(m, &we.last)? - int_value(m, &we.first)?) };
            let (mut a, mut b) = (0i64, len(&m).ok_or_else(|| no("length"))?);
            let span = Int::sub(&[&we.last, &we.first]);
            // Each check with a time limit: one that runs out keeps the shortest found so far.
            while a < b {
                let mid = (a + b) / 2;
                match check_within(solver, &[span.le(Int::from_i64(mid))], BISECTION_MS, "a shorter scan")? {
                    Some(true) => b = mid,
                    Some(false) => a = mid + 1,
                    None => break,
                }
            }
            solver.assert(span.le(Int::from_i64(b)));
        }
        // The goal packet one second after the last scan packet, where it can be.
        let end = Int::mul(&[&Int::sub(&[&we.last, &we.first]), &Int::from_i64(g_ns)]).div(Int::from_i64(NS_PER_JIFFY));
        for pref in [we.goal_t.eq(Int::add(&[&end, &Int::from_u64(HZ as u64)])), we.goal_t.eq(&end)] {
            if check(solver, std::slice::from_ref(&pref), || "the goal's time".into())? {
                solver.assert(&pref);
                break;
            }
        }
        let tr = Trace { pkts: vec![we.tmpl.clone(), we.goal.clone()], times: Vec::new(), travs: Vec::new() };
        s.prefer_natural(solver, &tr)?;
        check(solver, &[], || "the scan witness".into())?;
        let m = solver.get_model().ok_or_else(no_value)?;
        let (p, e) = (int_value(&m, &we.first).ok_or_else(no_value)?, int_value(&m, &we.last).ok_or_else(no_value)?);
        let goal_j = int_value(&m, &we.goal_t).ok_or_else(|| no("goal time"))?;
        let (t, goal_row) = fields(we, &m)?;
        let verdict_of = |trav: &Traversal| -> &'static str {
            for (f, name) in [(Final::Accept, "ACCEPT"), (Final::Drop, "DROP"), (Final::Reject, "REJECT")] {
                if m.eval(&trav.verdict(f), true).and_then(|b| b.as_bool()) == Some(true) {
                    return name;
                }
            }
            "DROP"
        };
        // The exact ports' verdicts in the model (the replay checks them), unless
        // counting tables were free.
        let exact: BTreeMap<u16, &'static str> = if abstracted {
            BTreeMap::new()
        } else {
            we.ports.iter().map(|(q, _, trav)| (*q, verdict_of(trav))).collect()
        };
        let end_ns = (e - p) * g_ns;
        let goal_ns = end_ns.max(goal_j * NS_PER_JIFFY);
        let mut rows = scan_rows(&t, &goal_row, (p, e), &|q| (q - p) * g_ns, goal_ns, &exact);
        let verdicts = match s.replay(&render(&rows)) {
            Ok(v) => v,
            Err(why) => return Ok(Err(why)),
        };
        // Every row carries the verdict it gets (the runs' rows from the replay), so the
        // file checks the whole scan, on either backend.
        for (r, v) in rows.iter_mut().zip(&verdicts) {
            if r[13].is_empty() {
                r[13] = v.as_str().to_string();
            }
        }
        Ok(Ok((rows, verdicts, (p, e), t)))
    };
    // A gap whose witness does not replay (the summaries too coarse for the solver's
    // scan) gives way to the next.
    let mut written = None;
    let mut why = "no scan at a fixed rate near the solver's".to_string();
    for g_ns in tries {
        let gj = g_ns as f64 / NS_PER_JIFFY as f64;
        if gaps.0.is_some_and(|l| gj < l) || gaps.1.is_some_and(|h| gj > h) {
            continue;
        }
        let (p1, e1) = (base.p, base.e);
        if works(g_ns, p1, e1) {
            let (a, hi) = shortest_range(p1, e1, |x, y| works(g_ns, x, y));
            let f = at_gap(g_ns, Some((a, hi)))?;
            if check(&f.solver, &[], || "the shortened scan".into())? {
                match write(g_ns, &f, true)? {
                    Ok(w) => {
                        written = Some((g_ns, w));
                        break;
                    }
                    Err(w) => why = w,
                }
            }
        }
        let f = at_gap(g_ns, None)?;
        if check_restarting(&f.solver, &[], "a scan at a round rate")? {
            match write(g_ns, &f, false)? {
                Ok(w) => {
                    written = Some((g_ns, w));
                    break;
                }
                Err(w) => why = w,
            }
        }
    }
    let Some((g_ns, (mut rows, verdicts, (p, e), t))) = written else {
        return Ok(Err(why));
    };
    let rate = 1e9 / g_ns as f64;
    let syns = if e == p { "1 SYN".to_string() } else { format!("{} SYNs", e - p + 1) };
    let mut line = format!(
        "scan: ports {p}-{e} ({syns}) from {} at {} ports/s (one every {}), then the goal packet",
        t[1],
        fmt_rate(rate),
        fmt_gap(g_ns)
    );
    rows[0][14] = format!("scan of ports {p}-{e} at {} ports/s", fmt_rate(rate));
    let accepted = verdicts.iter().filter(|v| **v == Verdict::Accept).count();
    let _ = write!(line, "; {accepted} of the {} packets accepted", verdicts.len());
    info.push(line);
    if any_rate {
        info.push(match gaps.1 {
            Some(_) => "rate: scans at every rate in the range do it".to_string(),
            None => "rate: scans as slow as one port an hour still do it".to_string(),
        });
    } else {
        let (fast, slow) = fmt_pair(HZ as f64 / lo, HZ as f64 / hi);
        // The slower side, with the over-approximation: no scan slower than `slow` (the
        // bisection's upper end, when `o` said so in time; else `o` without a time
        // limit, then, when the counting tables were free there, the exact one).
        if !proved {
            o.solver.push();
            o.solver.assert(o.gap.ge(real(hi)));
            proved = !check(&o.solver, std::slice::from_ref(&o.goal_cond), || "a slower scan".into())?;
            o.solver.pop(1);
        }
        if !proved && abstracted {
            let o = s.scan_encoding(
                Mode::Over,
                pieces,
                effects,
                (Some(hi), gaps.1),
                &BTreeSet::new(),
                None,
                &mut Vec::new(),
            )?;
            proved = !check(&o.solver, std::slice::from_ref(&o.goal_cond), || "a slower scan".into())?;
        }
        if !proved && abstracted {
            return Ok(Err("no proof for slower scans (counting tables free)".into()));
        }
        info.push(if proved {
            format!(
                "threshold rate: about {} ports/s (a scan at {} ports/s or faster does it; none at {} ports/s or \
                 slower does: proved)",
                fast, fast, slow
            )
        } else {
            format!(
                "threshold rate: about {} ports/s (a scan at {} ports/s or faster does it; slower scans: unknown)",
                fast, fast
            )
        });
    }
    let n = rows.len();
    Ok(Ok((render(&rows), n, info)))
}

/// The shortest range `a..=e` inside `p..=e0` for which `works(a, e)` holds, given that
/// `works(p, e0)` does: the end lowered, then the start raised, each by bisection (every
/// try is a call of `works`).
fn shortest_range(p: i64, e0: i64, works: impl Fn(i64, i64) -> bool) -> (i64, i64) {
    let hi = first_true(p - 1, e0, |e| works(p, e));
    let a = first_true(p, hi + 1, |a| !works(a, hi)) - 1;
    (a, hi)
}

/// The least `x` in `lo+1..=hi` with `f(x)`, by bisection, for `f` false up to some point
/// and true from there on, and taken to be true at `hi` (which is not evaluated).
fn first_true(mut lo: i64, mut hi: i64, f: impl Fn(i64) -> bool) -> i64 {
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if f(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Whether the goal packet gets its verdict (`expect`) after the scan: [`Setup::replay`]
/// of `scan_rows(t, goal, (p, e), time, goal_ns, {})` without writing the rows out (the
/// template and goal rows read once, the port and time set per packet).
fn replay_scan(
    s: &Setup<'_>,
    t: &[String],
    goal: &str,
    (p, e): (i64, i64),
    time: &dyn Fn(i64) -> i64,
    goal_ns: i64,
) -> bool {
    use crate::sim::{Engine, Ifaces, Outcome, SimConfig};
    let two = render(&scan_rows(t, goal, (p, p), &|_| 0, goal_ns.max(0), &BTreeMap::new()));
    let Ok(mut trace) = crate::trace::csv::CsvTrace::new("witness", two.as_bytes()) else { return false };
    let (Ok(Some(tmpl)), Ok(Some(g))) = (trace.next_row(), trace.next_row()) else { return false };
    let cfg = SimConfig { hz: HZ, hosts: s.opts.hosts.clone(), listen: s.opts.listen.clone(), ..SimConfig::default() };
    let Ok(mut engine) = Engine::new(s.rs, cfg, Ifaces::default()) else { return false };
    let mut pkt = tmpl.pkt;
    pkt.iface = engine.iface(tmpl.iface.as_str());
    let mut out = Outcome::default();
    let mut now = 0u64;
    for q in p..=e {
        let Ok(ns) = u64::try_from(time(q)) else { return false };
        if ns < now {
            return false;
        }
        now = ns;
        pkt.dport = q as u16;
        engine.step(crate::trace::to_jiffies(ns, HZ), &pkt, &mut out);
    }
    let mut gp = g.pkt;
    gp.iface = engine.iface(g.iface.as_str());
    let Ok(gns) = u64::try_from(goal_ns) else { return false };
    if gns < now {
        return false;
    }
    engine.step(crate::trace::to_jiffies(gns, HZ), &gp, &mut out);
    g.expect == Some(out.verdict)
}

/// The scan of model `m` of `w` at the times the encoding gives it, in ns from the first
/// packet's jiffy (so each packet's jiffy is `⌊A + q·g⌋` shifted), up to the goal
/// packet's jiffy: (first port, last port, the time of each port's packet, the goal's
/// time); `None` when a number does not fit.
fn model_times(m: &z3::Model, w: &Enc) -> Option<(i64, i64, Vec<i64>, i64)> {
    let (an, ad) = m.eval(&w.origin, true)?.as_rational()?;
    let (gn, gd) = m.eval(&w.gap, true)?.as_rational()?;
    let (p, e) = (int_value(m, &w.first)?, int_value(m, &w.last)?);
    let goal_j = int_value(m, &w.goal_t)? as i128;
    if ad <= 0 || gd <= 0 || p > e {
        return None;
    }
    let ns = NS_PER_JIFFY as i128;
    let den = (ad as i128).checked_mul(gd as i128)?;
    // (⌊x⌋, ⌊x · ns⌋) for x = A + q·g.
    let at = |q: i64| -> Option<(i128, i128)> {
        let num = (an as i128)
            .checked_mul(gd as i128)?
            .checked_add((q as i128).checked_mul(gn as i128)?.checked_mul(ad as i128)?)?;
        Some((num.div_euclid(den), num.checked_mul(ns)?.div_euclid(den)))
    };
    let (j0, _) = at(p)?;
    if j0 > goal_j {
        return None;
    }
    let base = j0.checked_mul(ns)?;
    // The packets up to the goal's jiffy (the encoding may put the goal packet before a
    // run's last ones): a shorter scan at the same rate.
    let mut times = Vec::new();
    let mut last = 0;
    for q in p..=e {
        let (j, t) = at(q)?;
        if j > goal_j {
            break;
        }
        times.push(i64::try_from(t - base).ok()?);
        last = t;
    }
    let goal = goal_j.checked_mul(ns)?.max(last) - base;
    Some((p, p + times.len() as i64 - 1, times, i64::try_from(goal).ok()?))
}

fn time_str(ns: i64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// The witness rows: one SYN per port `p..=e` with the template's fields `t` (a CSV row
/// of the template packet) at `time(port)` ns, `expect` where `exact` knows it, then the
/// goal row at `goal_ns`.
fn scan_rows(
    t: &[String],
    goal_row: &str,
    (p, e): (i64, i64),
    time: &dyn Fn(i64) -> i64,
    goal_ns: i64,
    exact: &BTreeMap<u16, &'static str>,
) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for q in p..=e {
        let expect = exact.get(&(q as u16)).copied().unwrap_or("");
        // time,src,dst,proto,sport,dport,flags,icmp_type,icmp_code,icmp_id,iface,len,ttl,expect,note
        rows.push(vec![
            time_str(time(q)),
            t[1].clone(),
            t[2].clone(),
            "tcp".into(),
            t[4].clone(),
            q.to_string(),
            "S".into(),
            String::new(),
            String::new(),
            String::new(),
            t[10].clone(),
            t[11].clone(),
            t[12].clone(),
            expect.into(),
            "scan".into(),
        ]);
    }
    let mut g: Vec<String> = goal_row.split(',').map(String::from).collect();
    g[0] = time_str(goal_ns);
    rows.push(g);
    rows
}

fn render(rows: &[Vec<String>]) -> String {
    let mut out =
        String::from("time,src,dst,proto,sport,dport,flags,icmp_type,icmp_code,icmp_id,iface,len,ttl,expect,note\n");
    for r in rows {
        out.push_str(&r.join(","));
        out.push('\n');
    }
    out
}

fn fmt_rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.1}")
    } else if r >= 1.0 {
        format!("{r:.2}")
    } else {
        format!("{r:.4}")
    }
}

/// Two rates with as many decimals as tell them apart (at most six).
fn fmt_pair(a: f64, b: f64) -> (String, String) {
    let mut d = if a >= 100.0 { 1 } else { 2 };
    loop {
        let (x, y) = (format!("{a:.d$}"), format!("{b:.d$}"));
        if x != y || d >= 6 {
            return (x, y);
        }
        d += 1;
    }
}

fn fmt_gap(ns: i64) -> String {
    if ns % 1_000_000_000 == 0 {
        format!("{} s", ns / 1_000_000_000)
    } else if ns % 1_000_000 == 0 {
        format!("{} ms", ns / 1_000_000)
    } else if ns % 1_000 == 0 {
        format!("{} µs", ns / 1_000)
    } else {
        format!("{ns} ns")
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tests::{run_default as run, seed};
    use super::*;
    use crate::verify::property::Quant;

    #[test]
    fn no_scan_unlocks_the_seed() {
        let r = run(&seed("rules.v4"), "never ACCEPT tcp dport 22 under scan");
        assert!(matches!(r.answer, Answer::NoneAtAll(_)), "{r:?}");
        assert_eq!(r.headline(Quant::Never), "PROVED (unbounded)");
        assert_eq!(r.exit_code(Quant::Never), 0);
    }

    #[test]
    fn a_fast_scan_unlocks_the_naive_chain() {
        let r = run(&seed("naive.v4"), "never ACCEPT tcp dport 22 under scan");
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        let rows: Vec<&str> = w.csv.lines().skip(1).collect();
        assert!(rows.last().unwrap().contains(",ACCEPT,goal"), "{}", w.csv);
        let dports: Vec<&str> = rows.iter().map(|l| l.split(',').nth(5).unwrap()).collect();
        assert_eq!((dports[0], dports[dports.len() - 2]), ("1234", "3456"), "{:?}", r.info);
        let th = r.info.iter().find(|i| i.starts_with("threshold rate: about ")).expect("threshold");
        let rate: f64 = th["threshold rate: about ".len()..].split(' ').next().unwrap().parse().unwrap();
        assert!((110.5..111.5).contains(&rate), "{th}");
        assert!(th.contains("proved"), "{th}");
        assert!(w.csv.lines().nth(1).unwrap().ends_with(",scan of ports 1234-3456 at 200.0 ports/s"), "{}", w.csv);
        // Slower than the threshold: proved.
        let r = run(&seed("naive.v4"), "never ACCEPT tcp dport 22 under scan rate 1-110");
        assert!(matches!(r.answer, Answer::NoneAtAll(_)), "{r:?}");
    }

    #[test]
    fn a_scan_unlocks_consecutive_knock_ports() {
        let rules =
            std::fs::read_to_string(format!("{}/tests/data/prove/consecutive.v4", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let r = run(&rules, "never ACCEPT tcp dport 22 under scan");
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        let dports: Vec<&str> = w.csv.lines().skip(1).map(|l| l.split(',').nth(5).unwrap()).collect();
        assert_eq!(dports, ["1234", "1235", "1236", "22"], "{}", w.csv);
        assert_eq!(r.exit_code(Quant::Never), 1);
    }

    /// The simulator's verdict of the last row of `csv`.
    pub(in crate::verify::prove) fn last_verdict(rs: &crate::model::Ruleset, csv: &str) -> Verdict {
        super::super::tests::verdicts(rs, csv).pop().expect("a trace of at least one row")
    }

    /// A small random knock-like ruleset on ports 1..=16 (goal port 9).
    pub(in crate::verify::prove) fn random_rules(seed: u64) -> String {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut out = String::from("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        let secs = [1, 2, 5, 10];
        for _ in 0..3 + next(5) {
            let q = 1 + next(16);
            let k = next(3);
            let rule = match next(7) {
                0 => format!("-p tcp -m tcp --dport {q} -m recent --set --name k{k}"),
                1 => format!(
                    "-p tcp -m tcp --dport {q} -m recent --rcheck --seconds {} --name k{k} -m recent --set --name k{}",
                    secs[next(4) as usize],
                    (k + 1) % 3
                ),
                2 => format!("-m recent --remove --name k{k}"),
                3 => format!("-p tcp -m tcp --dport {q}:{} -j DROP", q + next(4)),
                4 => "-p tcp -m tcp --syn -m recent --set --name f".to_string(),
                5 => format!(
                    "-m recent --update --seconds {} --hitcount {} --name f -j DROP",
                    secs[next(2) as usize],
                    2 + next(3)
                ),
                _ => format!(
                    "-p tcp -m tcp --dport {} -m recent --rcheck --seconds {} --name k{k}",
                    9,
                    secs[next(4) as usize]
                ),
            };
            out.push_str(&format!("-A INPUT {rule}\n"));
        }
        out.push_str(&format!("-A INPUT -p tcp -m tcp --dport 9 -m recent --rcheck --name k{} -j ACCEPT\n", next(3)));
        out.push_str("COMMIT\n");
        out
    }

    /// Soundness against the simulator: every scan of ports within 1..=20 at a few rates,
    /// then a SYN to port 9 at a few delays; when one gets ACCEPT the prover must not
    /// say PROVED.
    #[test]
    fn proved_scans_hold_in_the_simulator() {
        let gaps_ns: [u64; 6] = [1_000_000, 4_000_000, 10_000_000, 300_000_000, 1_000_000_000, 3_000_000_000];
        let delays_ns: [u64; 4] = [0, 4_000_000, 1_000_000_000, 8_000_000_000];
        let (mut proved, mut falsified, mut unknown) = (0, 0, 0);
        for seed in 1..=40u64 {
            let rules = random_rules(seed);
            let parsed = crate::load(&rules);
            assert!(!parsed.has_errors(), "{rules}");
            let rs = &parsed.ruleset;
            let mut found: Option<String> = None;
            'search: for p in 1..=20u64 {
                for e in p..=20u64 {
                    for g in gaps_ns {
                        for d in delays_ns {
                            let mut csv = String::from("time,src,dst,proto,sport,dport,flags\n");
                            let t = |ns: u64| format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
                            for q in p..=e {
                                csv.push_str(&format!("{},203.0.113.7,192.0.2.1,tcp,40000,{q},S\n", t((q - p) * g)));
                            }
                            csv.push_str(&format!("{},203.0.113.7,192.0.2.1,tcp,40001,9,S\n", t((e - p) * g + d)));
                            if last_verdict(rs, &csv) == Verdict::Accept {
                                found = Some(csv);
                                break 'search;
                            }
                        }
                    }
                }
            }
            let r = run(&rules, "never ACCEPT tcp dport 9 under scan");
            match (&r.answer, &found) {
                (Answer::NoneAtAll(_), Some(csv)) => panic!("PROVED, but the simulator accepts:\n{rules}\n{csv}"),
                (Answer::NoneAtAll(_), None) => proved += 1,
                (Answer::Witness(_), _) => falsified += 1,
                (Answer::Unknown(_), _) => unknown += 1,
                (a, _) => panic!("{a:?}"),
            }
        }
        eprintln!("random scan properties: {proved} proved, {falsified} falsified, {unknown} unknown");
        assert!(proved > 0 && falsified > 0, "{proved} proved, {falsified} falsified");
    }

    #[test]
    fn pieces_cover_every_port_once() {
        let b: BTreeSet<u32> = [2, 22, 23, 1234, 65535].into_iter().collect();
        for slack in SLACKS {
            let mut next = 1u32;
            for p in pieces(&b, slack) {
                let (lo, hi) = match p {
                    Piece::Port(q) => (q as u32, q as u32),
                    Piece::Run(lo, hi) => (lo as u32, hi as u32),
                };
                assert_eq!(lo, next, "{slack}");
                assert!(hi >= lo);
                next = hi + 1;
            }
            assert_eq!(next, 65536);
        }
    }
}
