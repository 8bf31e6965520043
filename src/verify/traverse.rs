//! Chain traversal as formulas: for one table and hook, the condition under which each
//! rule is reached and fires, and the condition of each final verdict, following
//! `ipt_do_table` (SEMANTICS.md §2): rules in order, `-j` pushes and `-g` replaces the
//! current frame, RETURN or falling off a user chain pops, falling off a built-in chain
//! applies its policy, LOG/NFLOG/MARK/… continue, MARK changes the mark later rules see.
//!
//! Chains reachable from a hook form a DAG (loops are refused at load), so the encoding
//! inlines each call with the condition of reaching it. Intermediate conditions get
//! named Boolean constants defined in [`Traversal::defs`], which keeps the formula linear
//! in the number of rule occurrences; every solver using a traversal must assert them.

use std::collections::{BTreeSet, HashMap};

use z3::ast::{Bool, BV};

use super::encode::{bv, encode_ip, encode_match, sets_mark, MatchCx, MatchEnc, SymPacket, Unencodable, Universe};
use super::{RuleRef, VerifyError};
use crate::model::matches::{ctstate, RecentMode, StatMode};
use crate::model::print::save_order;
use crate::model::targets::{ConnmarkMode, Flow};
use crate::model::{Hook, Match, Policy, Rule, Ruleset, TableName, Target};

/// How much of the kernel state the encoding assumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateModel {
    /// Any state: the conntrack state, SNAT/DNAT flags and entry mark are free, and every
    /// stateful match is an unconstrained fresh Boolean per evaluation (an
    /// over-approximation: whatever some state makes possible is possible).
    Any,
    /// The state right after loading the rules, for the first packet: an empty
    /// connection table (the conntrack state follows from the packet,
    /// [`SymPacket::first_packet_ct`]), empty recent tables, full token buckets, counters
    /// at their start. Matches whose value is still not determined stay fresh Booleans.
    Empty,
}

/// A final verdict of one table at one hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Final {
    /// ACCEPT (also the NAT targets and an ACCEPT policy).
    Accept,
    /// DROP (also a DROP policy).
    Drop,
    /// REJECT.
    Reject,
    /// QUEUE / NFQUEUE.
    Queue,
}

impl Final {
    /// Every verdict.
    pub const ALL: [Final; 4] = [Final::Accept, Final::Drop, Final::Reject, Final::Queue];

    /// `ACCEPT`, `DROP`, `REJECT`, `QUEUE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Final::Accept => "ACCEPT",
            Final::Drop => "DROP",
            Final::Reject => "REJECT",
            Final::Queue => "QUEUE",
        }
    }

    /// Parses a verdict name (case-insensitive).
    pub fn parse(s: &str) -> Option<Final> {
        Final::ALL.into_iter().find(|f| f.as_str().eq_ignore_ascii_case(s))
    }
}

/// What a rule's target does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Ends the traversal with a verdict.
    Verdict(Final),
    /// Leaves the current chain: RETURN, or `-g` (the called chain returns to our caller).
    Leave,
    /// Calls a chain (`-j CHAIN`).
    Call,
    /// Goes on with the next rule (no target, LOG, MARK, …).
    Continue,
    /// A target the model does not know: treated as any of continue, ACCEPT, DROP.
    Unknown,
}

/// One place where the traversal evaluates a rule. A rule of a user chain called from
/// several places has several occurrences.
#[derive(Clone, Debug)]
pub struct Occurrence {
    /// The rule.
    pub rule: RuleRef,
    /// The traversal gets to this rule.
    pub reach: Bool,
    /// The rule's matches hold here (for the mark at this point; stateful parts as
    /// chosen by the [`StateModel`]).
    pub matched: Bool,
    /// `reach ∧ matched`: the rule's counter is bumped and its target runs.
    pub fires: Bool,
    /// What the target does.
    pub effect: Effect,
    /// Position in traversal order.
    pub order: usize,
    /// The kernel jump stack at this rule: frame ids, innermost last. A RETURN or goto
    /// in a frame on this stack, fired earlier, skips this rule.
    pub stack: Vec<u32>,
    /// For each frame of `stack`, the rule whose `-j`/`-g` entered it (`None` for the
    /// built-in chain).
    pub entered_by: Vec<Option<RuleRef>>,
    /// The matches of the `-j`/`-g` rules that led here (true in a built-in chain): a
    /// necessary condition of reaching the rule, much smaller than `reach`.
    pub path: Bool,
}

/// A match the encoding could not represent, and the fresh Boolean standing for it.
#[derive(Clone, Debug)]
pub struct Assumed {
    /// The rule.
    pub rule: RuleRef,
    /// Index of the match in the rule.
    pub index: usize,
    /// Why it is not encodable.
    pub why: Unencodable,
    /// The fresh Boolean (true = the unknown part holds).
    pub var: Bool,
}

/// The encoding of one table at one hook.
#[derive(Clone, Debug)]
pub struct Traversal {
    /// Table.
    pub table: TableName,
    /// Hook.
    pub hook: Hook,
    /// Definitions of the named intermediate constants; assert them all.
    pub defs: Vec<Bool>,
    /// Condition of each final verdict (they are mutually exclusive and one holds).
    pub verdicts: Vec<(Final, Bool)>,
    /// The verdict came from the built-in chain's policy.
    pub by_policy: Bool,
    /// Every rule occurrence in traversal order.
    pub occurrences: Vec<Occurrence>,
    /// Matches the encoding left open.
    pub assumed: Vec<Assumed>,
    /// Constraints on the packet entering the table (conntrack state the table can
    /// see, entry mark under [`StateModel::Empty`]); assert them with the definitions.
    pub entry: Bool,
    /// Every evaluation of a `-m recent`, `-m limit` or `-m hashlimit` match, in traversal
    /// order (what a bounded model checker threads kernel state through).
    pub stateful: Vec<StatefulUse>,
}

/// One evaluation of a stateful match (`-m recent`, `-m limit`, `-m hashlimit`) at one
/// occurrence.
#[derive(Clone, Debug)]
pub struct StatefulUse {
    /// The rule.
    pub rule: RuleRef,
    /// Index of the match in the rule.
    pub index: usize,
    /// Index into [`Traversal::occurrences`] of the occurrence evaluating it.
    pub occ: usize,
    /// The IP part and the earlier matches of the rule hold: with the occurrence's
    /// `reach`, the match is evaluated (and its side effect happens).
    pub before: Bool,
    /// The fresh Boolean standing for the match's unknown part (`None` when the match's
    /// value needs no state, as `--set`).
    pub var: Option<Bool>,
}

impl Traversal {
    /// The condition of verdict `v`.
    pub fn verdict(&self, v: Final) -> Bool {
        self.verdicts.iter().find(|(f, _)| *f == v).map(|(_, b)| b.clone()).expect("every verdict")
    }

    /// Encodes `table` at `hook` for the packet `pkt`.
    pub fn encode(
        rs: &Ruleset,
        table: usize,
        hook: Hook,
        pkt: &SymPacket,
        u: &Universe,
        state: StateModel,
    ) -> Result<Traversal, VerifyError> {
        Self::encode_with(rs, table, hook, pkt, u, state, true)
    }

    /// The same encoding without named intermediate constants ([`Traversal::defs`] is
    /// empty): every condition is a formula over the packet alone, which `Model::eval`
    /// evaluates directly for a concrete packet. Too large to hand to a solver for big
    /// rulesets; occurrences are in the same order as [`Traversal::encode`]'s.
    pub fn encode_plain(
        rs: &Ruleset,
        table: usize,
        hook: Hook,
        pkt: &SymPacket,
        u: &Universe,
        state: StateModel,
    ) -> Result<Traversal, VerifyError> {
        Self::encode_with(rs, table, hook, pkt, u, state, false)
    }

    fn encode_with(
        rs: &Ruleset,
        table: usize,
        hook: Hook,
        pkt: &SymPacket,
        u: &Universe,
        state: StateModel,
        named: bool,
    ) -> Result<Traversal, VerifyError> {
        let t = &rs.tables[table];
        let start = t
            .chains
            .iter()
            .position(|c| c.hook == Some(hook))
            .ok_or_else(|| VerifyError::Input(format!("table {} has no {} chain", t.name, hook.name())))?;
        let mut e = Enc {
            rs,
            table,
            pkt,
            u,
            hook,
            state,
            defs: Vec::new(),
            occs: Vec::new(),
            assumed: Vec::new(),
            stateful: Vec::new(),
            lists: Default::default(),
            frames: 0,
            recent_written: HashMap::new(),
            limit_seen: HashMap::new(),
            hashlimit_seen: HashMap::new(),
            nth_seen: BTreeSet::new(),
            hashlimit_elsewhere: BTreeSet::new(),
            connmark_targets: false,
            depth: 0,
            named,
        };
        e.prepare();
        let mut entry = vec![];
        let mark = if state == StateModel::Empty && !e.marks_before() {
            entry.push(pkt.mark.eq(bv(0, 32)));
            bv(0, 32)
        } else {
            pkt.mark.clone()
        };
        // Which conntrack states the table sees: raw runs before conntrack (INVALID),
        // nat only for the first packet of a connection (SEMANTICS.md §7).
        match t.name {
            TableName::Raw => entry.push(pkt.ct.eq(bv(0, 3))),
            TableName::Nat => entry.push(match state {
                StateModel::Empty => pkt.ct_in(ctstate::NEW),
                StateModel::Any => pkt.ct_in(ctstate::NEW | ctstate::RELATED),
            }),
            _ => {}
        }
        let top = Bool::from_bool(true);
        let frame = e.new_frame();
        let (ret, _, _) = e.chain(
            start,
            top.clone(),
            mark,
            pkt.ttl.clone(),
            Place { stack: vec![frame], entered_by: vec![None], path: top },
        )?;
        let policy = t.chains[start].policy.unwrap_or(Policy::Accept);
        let by_policy = ret;
        match policy {
            Policy::Accept => e.lists[0].push(by_policy.clone()),
            Policy::Drop => e.lists[1].push(by_policy.clone()),
        }
        let mut verdicts = Vec::new();
        for (i, f) in Final::ALL.into_iter().enumerate() {
            let v = Bool::or(&e.lists[i]);
            verdicts.push((f, e.name(v)));
        }
        Ok(Traversal {
            table: t.name,
            hook,
            defs: e.defs,
            verdicts,
            by_policy,
            occurrences: e.occs,
            assumed: e.assumed,
            entry: Bool::and(&entry),
            stateful: e.stateful,
        })
    }
}

/// Where a chain is entered: the kernel stack of frames (this chain's last), the rule
/// that entered each frame, and the matches of those rules.
struct Place {
    stack: Vec<u32>,
    entered_by: Vec<Option<RuleRef>>,
    path: Bool,
}

struct Enc<'a> {
    rs: &'a Ruleset,
    table: usize,
    pkt: &'a SymPacket,
    u: &'a Universe,
    hook: Hook,
    state: StateModel,
    defs: Vec<Bool>,
    occs: Vec<Occurrence>,
    assumed: Vec<Assumed>,
    stateful: Vec<StatefulUse>,
    /// Conditions of ACCEPT, DROP, REJECT, QUEUE.
    lists: [Vec<Bool>; 4],
    frames: u32,
    /// Empty-state bookkeeping: recent tables possibly written before this point.
    /// Empty-state bookkeeping: per recent table, how many stamps rules before this
    /// point may have recorded for the packet's address (`u32::MAX`: unknown).
    recent_written: HashMap<String, u32>,
    /// Evaluations so far of each `-m limit` rule.
    limit_seen: HashMap<RuleRef, u32>,
    /// Evaluations so far of each hashlimit table.
    hashlimit_seen: HashMap<String, u32>,
    /// `statistic --mode nth` rules evaluated so far.
    nth_seen: BTreeSet<RuleRef>,
    /// Hashlimit tables other tables or earlier hooks use.
    hashlimit_elsewhere: BTreeSet<String>,
    /// The ruleset has CONNMARK targets.
    connmark_targets: bool,
    depth: usize,
    /// Name intermediate conditions (see [`Traversal::encode_plain`]).
    named: bool,
}

/// The hashlimit tables of `rs` as the simulator configures them: key, rate, burst and
/// expiry from each table's creating rule (the first in load order: tables in file order, chains
/// in blob order, as `sim::compile`), so that the encoding and the replay agree.
pub(super) fn hashlimit_tables(rs: &Ruleset) -> Vec<crate::model::matches::Hashlimit> {
    let mut out: Vec<crate::model::matches::Hashlimit> = Vec::new();
    for t in &rs.tables {
        for c in save_order(t) {
            for r in &c.rules {
                for m in &r.matches {
                    if let Match::Hashlimit(h) = &m.m {
                        if !out.iter().any(|x| x.name == h.name) {
                            out.push(h.clone());
                        }
                    }
                }
            }
        }
    }
    out
}

/// Hooks a packet crosses before `h` on its way (received: PREROUTING before INPUT and
/// FORWARD, FORWARD before POSTROUTING; local: OUTPUT before POSTROUTING).
fn earlier_hooks(h: Hook) -> &'static [Hook] {
    match h {
        Hook::Prerouting | Hook::Output => &[],
        Hook::Input => &[Hook::Prerouting],
        Hook::Forward => &[Hook::Prerouting],
        Hook::Postrouting => &[Hook::Prerouting, Hook::Forward, Hook::Output],
    }
}

impl<'a> Enc<'a> {
    /// Rules that may run before this traversal in the packet's path: every rule of
    /// other tables, and this table's rules if it has a chain at an earlier hook.
    fn rules_before(&self) -> Vec<&'a Rule> {
        let mut out = Vec::new();
        let rs: &'a Ruleset = self.rs;
        for (ti, t) in rs.tables.iter().enumerate() {
            let earlier = earlier_hooks(self.hook).iter().any(|h| t.chains.iter().any(|c| c.hook == Some(*h)));
            if ti != self.table || earlier {
                out.extend(t.chains.iter().flat_map(|c| &c.rules));
            }
        }
        out
    }

    fn marks_before(&self) -> bool {
        self.rules_before().iter().any(|r| r.target.as_ref().is_some_and(|t| sets_mark(&t.t)))
    }

    fn prepare(&mut self) {
        let before = self.rules_before();
        for r in &before {
            for m in &r.matches {
                match &m.m {
                    Match::Recent(rc) if rc.mode == RecentMode::Set => {
                        self.recent_written.insert(rc.name.clone(), u32::MAX);
                    }
                    Match::Hashlimit(h) => {
                        self.hashlimit_elsewhere.insert(h.name.clone());
                    }
                    _ => {}
                }
            }
        }
        self.connmark_targets = self.rs.tables.iter().flat_map(|t| &t.chains).flat_map(|c| &c.rules).any(|r| {
            matches!(r.target.as_ref().map(|t| &t.t), Some(Target::Connmark(c)) if !matches!(c.mode, ConnmarkMode::Restore { .. }))
        });
    }

    fn new_frame(&mut self) -> u32 {
        self.frames += 1;
        self.frames
    }

    fn name(&mut self, b: Bool) -> Bool {
        if !self.named || b.as_bool().is_some() {
            return b;
        }
        let v = Bool::fresh_const("t");
        self.defs.push(v.eq(&b));
        v
    }

    fn name_bv(&mut self, x: BV) -> BV {
        if !self.named {
            return x;
        }
        let v = BV::fresh_const("m", x.get_size());
        self.defs.push(v.eq(&x));
        v
    }

    fn fresh(&mut self, rule: &RuleRef, index: usize, why: Unencodable) -> Bool {
        let var = Bool::fresh_const("unknown");
        self.assumed.push(Assumed { rule: rule.clone(), index, why, var: var.clone() });
        var
    }

    /// The value of a stateful match's unknown part under the state model.
    fn unknown_part(&mut self, rr: &RuleRef, index: usize, m: &Match, why: Unencodable) -> Bool {
        if self.state == StateModel::Any {
            return self.fresh(rr, index, why);
        }
        let known: Option<bool> = match m {
            // xt_recent on an empty table (SEMANTICS.md §3 step 4): `--set` creates the
            // entry and flips the result; the other modes return the `!` flag.
            // An entry holds at most one stamp per earlier recording rule; with fewer
            // than `--hitcount` (at least one) the check fails (SEMANTICS.md §3 step 5).
            Match::Recent(r) => {
                let k = self.recent_written.get(&r.name).copied().unwrap_or(0);
                let need = if r.mode == RecentMode::Remove { 1 } else { r.hitcount.max(1) };
                (k < need).then_some(r.inv)
            }
            // A full bucket matches `burst` evaluations (SEMANTICS.md §4.1).
            Match::Limit(l) => {
                let k = self.limit_seen.entry(rr.clone()).or_insert(0);
                *k += 1;
                (*k <= l.burst).then_some(true)
            }
            Match::Hashlimit(h) if !h.bytes && !h.rate_match && !self.hashlimit_elsewhere.contains(&h.name) => {
                let burst = self.hashlimit_burst(&h.name).unwrap_or(h.burst);
                let k = self.hashlimit_seen.entry(h.name.clone()).or_insert(0);
                *k += 1;
                (*k as u64 <= burst).then_some(!h.above)
            }
            // The only connection counted is the packet's own.
            Match::Connlimit(c) => Some(if c.above { 1 > c.limit } else { 1 <= c.limit }),
            Match::Statistic(s) => match s.mode {
                StatMode::Nth { every, packet } if self.nth_seen.insert(rr.clone()) => {
                    let c = if packet + 1 >= every { 0 } else { packet + 1 };
                    Some((c == 0) != s.inv)
                }
                _ => None,
            },
            Match::Connmark(c) if !self.connmark_targets => {
                // A new connection has mark 0; without a connection the match fails.
                let v = (c.value == 0) != c.inv;
                let new = self.pkt.ct_in(ctstate::NEW);
                return Bool::and(&[new, Bool::from_bool(v)]);
            }
            _ => None,
        };
        match known {
            Some(b) => Bool::from_bool(b),
            None => self.fresh(rr, index, why),
        }
    }

    fn hashlimit_burst(&self, name: &str) -> Option<u64> {
        hashlimit_tables(self.rs).into_iter().find(|h| h.name == name).map(|h| h.burst)
    }

    fn rule_match(&mut self, rr: &RuleRef, rule: &Rule, mark: &BV, ttl: &BV) -> Bool {
        let cx = MatchCx { pkt: self.pkt, u: self.u, hook: self.hook, mark, ttl };
        let mut c = vec![encode_ip(&rule.ip, &cx)];
        let encs: Vec<MatchEnc> = rule.matches.iter().map(|m| encode_match(&m.m, &cx)).collect();
        for (i, (enc, m)) in encs.into_iter().zip(&rule.matches).enumerate() {
            if let Match::Recent(r) = &m.m {
                if matches!(r.mode, RecentMode::Set | RecentMode::Update) {
                    let k = self.recent_written.entry(r.name.clone()).or_insert(0);
                    *k = k.saturating_add(1);
                }
            }
            let before = if matches!(m.m, Match::Recent(_) | Match::Limit(_) | Match::Hashlimit(_)) {
                Some(Bool::and(&c))
            } else {
                None
            };
            let mut var = None;
            match &enc {
                MatchEnc::Exact(b) => c.push(b.clone()),
                MatchEnc::Unknown { why, .. } => {
                    let x = self.unknown_part(rr, i, &m.m, why.clone());
                    c.push(enc.with(&x));
                    var = Some(x);
                }
            }
            if let Some(before) = before {
                let occ = self.occs.len();
                self.stateful.push(StatefulUse { rule: rr.clone(), index: i, occ, before, var });
            }
        }
        Bool::and(&c)
    }

    /// Encodes chain `ci` entered under `entry` with `mark` and `ttl`; `stack` is the
    /// kernel stack of frames, this chain's frame last. Returns the condition of
    /// returning to the caller (RETURN, falling off, or a goto'd chain doing so) and the
    /// mark and TTL then.
    fn chain(
        &mut self,
        ci: usize,
        entry: Bool,
        mut mark: BV,
        mut ttl: BV,
        at: Place,
    ) -> Result<(Bool, BV, BV), VerifyError> {
        let Place { stack, entered_by, path } = at;
        self.depth += 1;
        let t = &self.rs.tables[self.table];
        if self.depth > t.chains.len() + 1 {
            return Err(VerifyError::Input(format!("chain {} is part of a loop", t.chains[ci].name)));
        }
        let chain = &t.chains[ci];
        let mut reach = entry;
        let mut rets: Vec<(Bool, BV, BV)> = Vec::new();
        for (ri, rule) in chain.rules.iter().enumerate() {
            let rr = RuleRef { table: self.table, chain: ci, rule: ri };
            let m = self.rule_match(&rr, rule, &mark, &ttl);
            let m = self.name(m);
            let fires = self.name(Bool::and(&[reach.clone(), m.clone()]));
            let (effect, goto_target) = match &rule.target {
                None => (Effect::Continue, None),
                Some(ti) => match &ti.t {
                    Target::Chain(n) => {
                        let to = t.chain_index(n).ok_or_else(|| VerifyError::Input(format!("no chain {n}")))?;
                        (if ti.goto { Effect::Leave } else { Effect::Call }, Some(to))
                    }
                    Target::Reject(_) => (Effect::Verdict(Final::Reject), None),
                    other => match other.flow() {
                        Flow::Accept => (Effect::Verdict(Final::Accept), None),
                        Flow::Drop => (Effect::Verdict(Final::Drop), None),
                        Flow::Queue => (Effect::Verdict(Final::Queue), None),
                        Flow::Return => (Effect::Leave, None),
                        Flow::Continue => (Effect::Continue, None),
                        Flow::Chain | Flow::Unknown => (Effect::Unknown, None),
                    },
                },
            };
            let order = self.occs.len();
            self.occs.push(Occurrence {
                rule: rr.clone(),
                reach: reach.clone(),
                matched: m.clone(),
                fires: fires.clone(),
                effect,
                order,
                stack: stack.clone(),
                entered_by: entered_by.clone(),
                path: path.clone(),
            });
            let not_m = Bool::and(&[reach.clone(), m.not()]);
            let next = match effect {
                Effect::Verdict(v) => {
                    let i = Final::ALL.iter().position(|f| *f == v).expect("verdict");
                    self.lists[i].push(fires.clone());
                    not_m
                }
                Effect::Continue => {
                    if let Some(ti) = &rule.target {
                        match &ti.t {
                            Target::Mark(mk) => {
                                let new = mark.bvand(bv(!mk.mask as u128, 32)).bvxor(bv(mk.value as u128, 32));
                                let v = m.ite(&new, &mark);
                                mark = self.name_bv(v);
                            }
                            Target::Connmark(c) => {
                                if let ConnmarkMode::Restore { nfmask, .. } = c.mode {
                                    // The connection mark is state: the restored bits are unknown.
                                    let ct = BV::fresh_const("ctmark", 32);
                                    let why = Unencodable::State("CONNMARK --restore-mark".into());
                                    self.assumed.push(Assumed {
                                        rule: rr.clone(),
                                        index: usize::MAX,
                                        why,
                                        var: Bool::fresh_const("ctmark_used"),
                                    });
                                    let new =
                                        mark.bvand(bv(!nfmask as u128, 32)).bvor(ct.bvand(bv(nfmask as u128, 32)));
                                    let v = m.ite(&new, &mark);
                                    mark = self.name_bv(v);
                                }
                            }
                            Target::Opaque(o) if matches!(o.module.as_str(), "TTL" | "HL") => {
                                let new = BV::fresh_const("ttl", 8);
                                let v = m.ite(&new, &ttl);
                                ttl = self.name_bv(v);
                            }
                            _ => {}
                        }
                    }
                    reach.clone()
                }
                Effect::Call => {
                    let to = goto_target.expect("call target");
                    let mut inner = Place {
                        stack: stack.clone(),
                        entered_by: entered_by.clone(),
                        path: Bool::and(&[path.clone(), m.clone()]),
                    };
                    inner.stack.push(self.new_frame());
                    inner.entered_by.push(Some(rr.clone()));
                    let (r, rm, rt) = self.chain(to, fires.clone(), mark.clone(), ttl.clone(), inner)?;
                    if !rm.ast_eq(&mark) {
                        let v = r.ite(&rm, &mark);
                        mark = self.name_bv(v);
                    }
                    if !rt.ast_eq(&ttl) {
                        let v = r.ite(&rt, &ttl);
                        ttl = self.name_bv(v);
                    }
                    Bool::or(&[not_m, r])
                }
                Effect::Leave => {
                    match goto_target {
                        Some(to) => {
                            let mut inner = Place {
                                stack: stack.clone(),
                                entered_by: entered_by.clone(),
                                path: Bool::and(&[path.clone(), m.clone()]),
                            };
                            inner.stack.pop();
                            inner.entered_by.pop();
                            inner.stack.push(self.new_frame());
                            inner.entered_by.push(Some(rr.clone()));
                            let r = self.chain(to, fires.clone(), mark.clone(), ttl.clone(), inner)?;
                            rets.push(r);
                        }
                        None => rets.push((fires.clone(), mark.clone(), ttl.clone())),
                    }
                    not_m
                }
                Effect::Unknown => {
                    let why = Unencodable::Opaque(format!(
                        "target {} (its effect on traversal)",
                        rule.target.as_ref().map(|t| t.t.name()).unwrap_or("?")
                    ));
                    let cont = self.fresh(&rr, usize::MAX, why.clone());
                    let acc = self.fresh(&rr, usize::MAX, why);
                    let stops = Bool::and(&[fires.clone(), cont.not()]);
                    self.lists[0].push(Bool::and(&[stops.clone(), acc.clone()]));
                    self.lists[1].push(Bool::and(&[stops, acc.not()]));
                    Bool::or(&[not_m, Bool::and(&[fires.clone(), cont])])
                }
            };
            reach = self.name(next);
        }
        rets.push((reach, mark, ttl));
        self.depth -= 1;
        if rets.len() == 1 {
            return Ok(rets.pop().expect("one"));
        }
        let cond = self.name(Bool::or(&rets.iter().map(|r| r.0.clone()).collect::<Vec<_>>()));
        let (_, mut m, mut t) = rets.last().cloned().expect("fall-off");
        for (c, rm, rt) in rets.iter().rev().skip(1) {
            m = c.ite(rm, &m);
            t = c.ite(rt, &t);
        }
        Ok((cond, m, t))
    }
}
