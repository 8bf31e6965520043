//! `fwverify prove`: bounded model checking of a property over every trace of at most K
//! packets from one attacker source (the `any` attacker) or from N cooperating sources
//! (`under sources N`): `never`, `possible`, `at most N`, optionally `within T` and
//! `from NAME`. The `scan` attacker (every sequential SYN scan at once, unbounded) is in
//! `prove/scan.rs`.
//!
//! ## The encoding
//!
//! Step `i` is one symbolic packet ([`SymPacket`]) at an integer tick `t_i` (HZ 250,
//! `0 ≤ t_0 ≤ t_1 ≤ …`), through the filter table at INPUT ([`Traversal`] under
//! [`StateModel::Any`]). All packets share one source address. Kernel state is threaded
//! through the steps and, within a step, through the rules in traversal order: the
//! traversal lists every `-m recent`/`-m limit`/`-m hashlimit` evaluation ([`Traversal::stateful`]) with
//! the condition of the rule being reached and of the rule's earlier matches holding;
//! the match's value is defined from the state before it, and its side effect happens
//! exactly under that condition (short-circuit evaluation).
//!
//! Per recent table (for the attacker's address; one source, so `--mask` does not
//! matter; `sources N`: per address, below): `present`, the newest `H` stamps newest first, and their count capped at `H`
//! (`H` = the largest `--hitcount` of the table's rules, at least 1). Times never
//! decrease, so the stamps within a `--seconds` window are a prefix of that list, and
//! `--hitcount h` holds exactly when at least `h` stamps are kept and the `h`-th newest is
//! within the window (inclusive, SEMANTICS.md §3). `--set`, `--rcheck`, `--update`,
//! `--remove` and `!` follow `sim::recent::RecentTable::eval`.
//!
//! ## Abstractions (stated in every answer)
//!
//! - Conntrack: witnesses are searched among traces whose every packet is the first of
//!   its connection ([`SymPacket::first_packet_ct`]; distinct source ports and ICMP ids
//!   in the witness). A bounded "no trace" answer is only given after a second,
//!   over-approximating search in which a packet may have any conntrack state once an
//!   earlier packet of the attacker with the same protocol, ports and destination was
//!   accepted (an ICMP packet: any earlier packet), since only then can a connection
//!   hold it (assumption: the host opens no connections to the attacker itself).
//! - `-m limit`: in the witness search, each rule's token bucket is an integer credit
//!   (full at the first packet, as the simulator creates buckets), refilled to
//!   `min(cap, credit + gap × CPJ)` and taken as `sim::limit::Bucket::take`, with the
//!   trace kept short enough that the kernel's u32 arithmetic does not wrap; the host
//!   receives only the attacker's packets. In the "no trace" search a limit match is a
//!   free Boolean (other senders share the bucket and may drain it).
//! - `-m hashlimit` (packet mode): per table, every evaluation leaves an entry keyed by the
//!   packet's masked addresses and ports (as `--hashlimit-mode` selects); an evaluation
//!   reads the entry of the latest one with its key, unless that entry has expired
//!   (`--hashlimit-htable-expire`; until twice the garbage collector's interval later
//!   the kernel may still find it: either, in proofs; witnesses keep out of that
//!   window), and refills and takes as `sim::hashlimit::Table::eval`
//!   in the kernel's 64-bit arithmetic (wraparound included). The table's configuration
//!   is its creating rule's, as in the simulator. In the "no trace" search a table is
//!   encoded only when it is keyed by the whole source address (the attacker's own
//!   buckets; assumption: no other sender uses the attacker's address); otherwise a
//!   hashlimit match is a free Boolean, as a limit match. Byte and rate-match modes are
//!   free (the simulator refuses them). The unbounded search (`prove/unbounded.rs`)
//!   summarises the packets between its exact ones for these tables too (`HlRec::Summary`:
//!   an entry may have been touched last at any time of the summary, with any credit up
//!   to what it could hold then); `scan` and `flood` leave hashlimit free.
//! - Matches the encoding cannot represent (connlimit, …, unknown targets)
//!   are free Booleans at every evaluation: an over-approximation, sound for "no trace"
//!   answers; a witness that relied on them must survive the replay.
//! - No fragments (conntrack defragments before the filter table), no NAT: rulesets with
//!   rules in tables other than filter, recent `--rdest`, `--rttl` or `--reap` are
//!   UNKNOWN.
//! - Time: ticks are unbounded integers (no jiffies wraparound; the simulator's 64-bit
//!   jiffies do not wrap either).
//!
//! ## Witnesses
//!
//! Witness packets are ones a real host delivers to its firewall: a source that is not
//! special ([`SymPacket::special_addr`]: 0/8, 127/8, 224/4, 240/4, IPv6 `::`, `::1`,
//! ff00::/8, v4-mapped) nor the host's nor the destination, a destination that is a
//! `--host` address (without `--host`: one fixed unicast address for every packet), a
//! unicast link-layer type, never `lo`. Once a trace is found, soft preferences are
//! fixed one by one (`prefer_natural`): eth0 (printed as `eth0` when it is in the chosen
//! interface class), TCP SYN, TTL 64, header-only length, source ports 50000+i (else ≥
//! 1024), ICMP echo requests, gaps of 1 s (else whole seconds), documentation addresses.
//!
//! ## Initial states and counting
//!
//! `from NAME` (`from blacklisted` = table `blacklist`): the "no trace" search starts with
//! the attacker's entry present with 1..=H stamps of any age at or before the first
//! packet, every other table empty. The witness search prepends the shortest prefix (one
//! packet per such table, up to [`MAX_EXTRA_PREFIX`] more; CSV note `prefix`, not counted
//! in the witness length) from the empty state after which exactly those tables hold the
//! attacker; when no prefix can do that and the over-approximation finds a trace, the
//! answer is UNKNOWN saying so.
//!
//! `at most N VERDICT goal within T`: every packet matching the goal with the verdict
//! counts; a trace falsifies the property when N+1 counted packets fall in one window of
//! T (from a counted packet on; no `within`: the whole trace). K is raised to N+1.
//!
//! ## `sources N`
//!
//! Every packet's source is one of `M = min(N, K (+1 with a prefix))` symbolic addresses,
//! pairwise distinct (a trace of K packets uses no more than K, so M slots represent every
//! trace of N sources exactly); in witnesses each address is realistic like any witness
//! source. Every recent table keeps one `RState` per address slot: a `-m recent`
//! evaluation reads the slot of the packet's own address and updates every slot whose
//! address has the same key under the table's `--mask` (so the slots of one key stay
//! equal, as the kernel's one entry for that key); a table used with two different masks
//! is UNKNOWN under several sources. `-m limit` buckets are shared by all sources (one
//! bucket per rule, as in the kernel). The over-approximating conntrack search also
//! requires the same source for a packet to belong to an earlier accepted connection.
//! `at most N` counts the goal packets of all sources together (a per-source limiter is
//! bypassed by a second address). `from NAME`: the first address starts in the tables (with
//! every address of its key), the prefix is sent from it, and the goal packets must come
//! from it; the other addresses start empty and help.
//!
//! Capacity: xt_recent keeps `ip_list_tot` (100) entries per table and evicts the least
//! recently used one when a new address needs an entry (SEMANTICS.md §3,
//! `sim::recent`). A table holds at most M of the attacker's entries (the addresses that
//! reach it), so while M ≤ 100 no entry of the attacker is ever evicted by its own packets:
//! the answer says so ([`Proved::info`]), with N ≤ 100 as "the attacker alone never
//! evicts", with N > 100 as "eviction takes more than 100 sources' packets, beyond the
//! bound K". A bound with M > 100 (only through the library; the CLI's K is at most 64)
//! answers UNKNOWN (LRU eviction is not encoded). Assumption, as for one source: no
//! other sender's packets fill the tables.
//!
//! Every witness is replayed through [`crate::sim::Engine`]; when the replay disagrees
//! the answer is UNKNOWN.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use z3::ast::{Bool, Int, BV};
use z3::{Model, Solver};

use super::encode::{bv, SymPacket, Unencodable, Universe, PKT_TYPES};
use super::property::{Attacker, Property, Quant};
use super::query::goal_condition;
use super::traverse::{hashlimit_tables, Final, StateModel, Traversal};
use super::{check, RuleRef, VerifyError};
use crate::model::matches::{Hashlimit, RecentMode, RecentSide};
use crate::model::{Family, Hook, Match, Ruleset, TableName};
use crate::packet::{proto, FlagLetters};
use crate::sim::Verdict;

mod flood;
mod scan;
mod unbounded;

/// Timer frequency of the encoding and of the replay.
pub const HZ: u32 = 250;

/// Default bound.
pub const DEFAULT_K: usize = 6;

/// `from …` witnesses: prefixes of up to this many packets beyond one per table are tried.
pub const MAX_EXTRA_PREFIX: usize = 2;

/// Options of [`prove`].
#[derive(Clone, Debug)]
pub struct ProveOptions {
    /// Largest number of packets (goal packet included).
    pub k: usize,
    /// The host's addresses (empty: every destination is the host's).
    pub hosts: Vec<IpAddr>,
    /// Open sockets for the replay.
    pub listen: Vec<(u8, u16)>,
}

impl Default for ProveOptions {
    fn default() -> Self {
        ProveOptions { k: DEFAULT_K, hosts: Vec::new(), listen: Vec::new() }
    }
}

/// A replayed witness.
#[derive(Clone, Debug)]
pub struct Witness {
    /// Scenario CSV (goal packet last, every row with `expect`).
    pub csv: String,
    /// Number of packets (the prefix not counted).
    pub packets: usize,
    /// Leading rows (note `prefix`) that put the attacker into the tables of `from …`.
    pub prefix: usize,
}

/// The answer to one property.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A trace ending with the goal packet getting the verdict, replayed in the simulator.
    Witness(Witness),
    /// No trace of at most this many packets does it.
    NoneUpTo(usize),
    /// No trace of the attacker model does it, whatever its length (the scope says
    /// which traces, e.g. every sequential scan).
    NoneAtAll(String),
    /// Not decided, and why.
    Unknown(String),
}

/// The answer with the abstractions it rests on.
#[derive(Clone, Debug)]
pub struct Proved {
    /// The answer.
    pub answer: Answer,
    /// Over-approximations used (rules whose matches were left free).
    pub notes: Vec<String>,
    /// Facts about the answer worth a line each (e.g. a scan witness's rate and the
    /// threshold rate).
    pub info: Vec<String>,
}

impl Proved {
    /// Exit status: 0 the property holds, 1 it does not, 3 unknown.
    pub fn exit_code(&self, q: Quant) -> u8 {
        match (&self.answer, q) {
            (Answer::Unknown(_), _) => 3,
            (Answer::Witness(_), Quant::Possible)
            | (Answer::NoneUpTo(_) | Answer::NoneAtAll(_), Quant::Never | Quant::AtMost(_)) => 0,
            _ => 1,
        }
    }

    /// The one-line verdict: `PROVED up to 6 packets`, `FALSIFIED (…)`, ….
    pub fn headline(&self, q: Quant) -> String {
        let mut h = self.headline_only(q);
        if let Answer::Witness(w) = &self.answer {
            if w.prefix > 0 {
                let _ = write!(h, ", after a {}-packet prefix that creates the initial state", w.prefix);
            }
        }
        h
    }

    fn headline_only(&self, q: Quant) -> String {
        match (&self.answer, q) {
            (Answer::Unknown(why), _) => format!("UNKNOWN: {why}"),
            (Answer::Witness(w), Quant::Never | Quant::AtMost(_)) => {
                format!("FALSIFIED: counterexample of {} packets", w.packets)
            }
            (Answer::Witness(w), _) => format!("POSSIBLE: witness of {} packets", w.packets),
            (Answer::NoneUpTo(k), Quant::Never | Quant::AtMost(_)) => format!("PROVED up to {k} packets (bounded)"),
            (Answer::NoneUpTo(k), _) => format!("IMPOSSIBLE up to {k} packets (bounded)"),
            (Answer::NoneAtAll(_), Quant::Never | Quant::AtMost(_)) => "PROVED (unbounded)".to_string(),
            (Answer::NoneAtAll(_), _) => "IMPOSSIBLE (unbounded)".to_string(),
        }
    }
}

fn unknown(why: impl Into<String>) -> Proved {
    Proved { answer: Answer::Unknown(why.into()), notes: Vec::new(), info: Vec::new() }
}

/// State of one recent table for the attacker's address.
#[derive(Clone)]
struct RState {
    present: Bool,
    /// Stamps kept, 0 ..= H.
    n: Int,
    /// Newest first; only the first `n` mean anything.
    stamps: Vec<Int>,
}

impl RState {
    /// No entry for the attacker (`h` stamps kept).
    fn empty(h: usize) -> RState {
        RState {
            present: Bool::from_bool(false),
            n: Int::from_u64(0),
            stamps: (0..h).map(|_| Int::from_u64(0)).collect(),
        }
    }

    fn ite(c: &Bool, a: &RState, b: &RState) -> RState {
        RState {
            present: c.ite(&a.present, &b.present),
            n: c.ite(&a.n, &b.n),
            stamps: a.stamps.iter().zip(&b.stamps).map(|(x, y)| c.ite(x, y)).collect(),
        }
    }

    /// A stamp at `now` recorded (the entry created if absent).
    fn stamped(&self, now: &Int, h: usize) -> RState {
        let mut stamps = vec![now.clone()];
        stamps.extend(self.stamps.iter().take(h - 1).cloned());
        let n1 = Int::add(&[&self.n, &Int::from_u64(1)]);
        let cap = Int::from_u64(h as u64);
        RState { present: Bool::from_bool(true), n: n1.le(&cap).ite(&n1, &cap), stamps }
    }
}

/// One symbolic trace of `n` packets.
struct Trace {
    pkts: Vec<SymPacket>,
    times: Vec<Int>,
    travs: Vec<Traversal>,
}

struct Setup<'a> {
    rs: &'a Ruleset,
    u: Universe,
    table: usize,
    /// Stamps kept per recent table.
    depth: BTreeMap<String, usize>,
    /// Hashlimit tables as the simulator configures them (from each table's creating
    /// rule).
    hashlimits: Vec<Hashlimit>,
    prop: &'a Property,
    opts: &'a ProveOptions,
}

/// Which search: exact first-packet conntrack states (witnesses) or the
/// over-approximation (bounded "no trace" answers).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Witness,
    Over,
}

/// Decides `prop` on `rs`.
pub fn prove(rs: &Ruleset, prop: &Property, opts: &ProveOptions) -> Result<Proved, VerifyError> {
    // A fresh Z3 context per property: terms left by earlier questions steer the
    // solver's heuristics (the same question took 3 s or 48 s after others).
    z3::with_z3_config(&z3::Config::new(), || prove_here(rs, prop, opts))
}

fn prove_here(rs: &Ruleset, prop: &Property, opts: &ProveOptions) -> Result<Proved, VerifyError> {
    match prop.attacker {
        Attacker::Any | Attacker::Scan { .. } | Attacker::Flood => {}
        Attacker::Sources(0) => return Err(VerifyError::Input("`sources N` needs N ≥ 1".into())),
        Attacker::Sources(_) => {}
    }
    if opts.k == 0 {
        return Err(VerifyError::Input("the bound K must be at least 1".into()));
    }
    for t in &rs.tables {
        if t.name != TableName::Filter && t.chains.iter().any(|c| !c.rules.is_empty()) {
            return Ok(unknown(format!(
                "table {} has rules; prove models the filter table only (no NAT, mangle, raw)",
                t.name
            )));
        }
    }
    let Some(table) = rs.tables.iter().position(|t| t.name == TableName::Filter) else {
        return Ok(unknown("the ruleset has no filter table"));
    };
    let u = Universe::of(rs, &opts.hosts);
    // Stateful matches reached from other hooks would change the state too.
    for hook in [Hook::Forward, Hook::Output] {
        if !rs.tables[table].chains.iter().any(|c| c.hook == Some(hook)) {
            continue;
        }
        let p = SymPacket::new(&format!("other.{}", hook.name()), &u);
        let tr = Traversal::encode(rs, table, hook, &p, &u, StateModel::Any)?;
        if let Some(s) = tr.stateful.first() {
            return Ok(unknown(format!("{} (a stateful match reached from {})", s.rule.describe(rs), hook.name())));
        }
        if let Some(a) = tr.assumed.iter().find(|a| matches!(a.why, Unencodable::State(_))) {
            return Ok(unknown(format!("{}: {} (reached from {})", a.rule.describe(rs), a.why, hook.name())));
        }
    }
    // Recent tables and the features of them the encoding lacks.
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    let t = &rs.tables[table];
    for (ci, c) in t.chains.iter().enumerate() {
        for (ri, r) in c.rules.iter().enumerate() {
            for m in &r.matches {
                if let Match::Recent(rc) = &m.m {
                    let at = RuleRef { table, chain: ci, rule: ri }.describe(rs);
                    if rc.side == RecentSide::Dest {
                        return Ok(unknown(format!("{at}: recent --rdest is not encoded yet")));
                    }
                    if rc.rttl {
                        return Ok(unknown(format!("{at}: recent --rttl is not encoded yet")));
                    }
                    if rc.reap {
                        return Ok(unknown(format!("{at}: recent --reap is not encoded yet")));
                    }
                    let d = depth.entry(rc.name.clone()).or_insert(1);
                    *d = (*d).max(rc.hitcount as usize);
                }
            }
        }
    }
    for name in &prop.initially_in {
        if !depth.contains_key(name) {
            return Err(VerifyError::Input(format!("`from`: no rule of the filter table uses recent table `{name}`")));
        }
    }
    // `at most N`: traces of at least N+1 packets.
    let mut opts = opts.clone();
    if let Quant::AtMost(n) = prop.quant {
        opts.k = opts.k.max(n as usize + 1);
    }
    let opts = &opts;
    let hashlimits = hashlimit_tables(rs);
    let s = Setup { rs, u, table, depth, hashlimits, prop, opts };
    if let Attacker::Scan { min_rate, max_rate } = prop.attacker {
        return scan::prove_scan(&s, min_rate, max_rate);
    }
    if prop.attacker == Attacker::Flood {
        return flood::prove_flood(&s);
    }
    let info = match prop.attacker {
        Attacker::Sources(n) => match s.sources_check(n) {
            Ok(info) => info,
            Err(why) => return Ok(unknown(why)),
        },
        _ => Vec::new(),
    };
    let mut info = info;
    for h in &s.hashlimits {
        if s.hashlimit_exact(h, Mode::Over) {
            info.push(format!(
                "hashlimit `{}`: the attacker's own buckets, keyed by its address (assumption: no other sender uses \
                 it); an expired entry may still be found until the kernel's garbage collector runs (both allowed; \
                 witnesses keep clear of that time)",
                h.name
            ));
        }
    }
    let mut notes = Vec::new();
    let mut no_prefix = false;
    // Phase 1: witnesses, shortest first; with `from …`, after the shortest prefix
    // (one packet per table, up to MAX_EXTRA_PREFIX more) that creates the initial state.
    let base = prop.initially_in.len();
    let mut found = None;
    let mut n1 = Vec::new();
    let mut pre = base;
    for extra in 0..=if base == 0 { 0 } else { MAX_EXTRA_PREFIX } {
        pre = base + extra;
        no_prefix = false;
        (found, n1) = s.search(Mode::Witness, pre, &mut notes, &mut no_prefix)?;
        if found.is_some() || !no_prefix {
            break;
        }
    }
    if let Some((csv, n)) = found {
        let answer = match s.replay(&csv) {
            Ok(_) => Answer::Witness(Witness { csv, packets: n, prefix: pre }),
            Err(why) => Answer::Unknown(format!(
                "the solver's {n}-packet trace does not replay in the simulator ({why}); rules left free: {}",
                if n1.is_empty() { "none".to_string() } else { n1.join("; ") }
            )),
        };
        return Ok(Proved { answer, notes, info });
    }
    // Phase 2: no witness among first-packet traces; is there any trace at all?
    let (found, _) = s.search(Mode::Over, 0, &mut notes, &mut false)?;
    let answer = match found {
        None if prop.attacker == Attacker::Any
            && prop.initially_in.is_empty()
            && matches!(prop.quant, Quant::Never | Quant::Possible)
            && s.any_unbounded()? =>
        {
            Answer::NoneAtAll(
                "every trace of any length from one source (assumption: the host opens no connections to it)".into(),
            )
        }
        None if prop.attacker == Attacker::Any
            && prop.initially_in.is_empty()
            && matches!(prop.quant, Quant::AtMost(n) if s.at_most_unbounded(n as u64)?) =>
        {
            Answer::NoneAtAll(
                "every trace of any length from one source (assumption: the host opens no connections to it)".into(),
            )
        }
        None => Answer::NoneUpTo(opts.k),
        Some((_, n)) if no_prefix => Answer::Unknown(format!(
            "a {n}-packet trace exists from the initial state, but no prefix of at most {pre} packets creates the \
             attacker's entry in {} without touching other state, so no witness could be replayed",
            prop.initially_in.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
        )),
        Some((_, n)) => Answer::Unknown(format!(
            "no trace of connection-initial packets does it, but the over-approximation finds a {n}-packet trace \
             (packets of established connections{}, or matches left free: {})",
            if s.hashlimits.iter().any(|h| s.hashlimit_exact(h, Mode::Over)) {
                ", hashlimit entries past their expiry that the kernel may not have removed yet"
            } else {
                ""
            },
            if notes.is_empty() { "none".to_string() } else { notes.join("; ") }
        )),
    };
    Ok(Proved { answer, notes, info })
}

fn final_of(v: Verdict) -> Final {
    match v {
        Verdict::Accept => Final::Accept,
        Verdict::Drop => Final::Drop,
        Verdict::Reject => Final::Reject,
    }
}

impl Setup<'_> {
    /// Searches traces of 1..=K packets; returns the CSV of the first found and the
    /// descriptions of matches left free.
    #[allow(clippy::type_complexity)]
    fn search(
        &self,
        mode: Mode,
        pre: usize,
        notes: &mut Vec<String>,
        no_prefix: &mut bool,
    ) -> Result<(Option<(String, usize)>, Vec<String>), VerifyError> {
        let solver = Solver::new();
        // Witnesses of `from NAME` start with one concrete packet per table that creates
        // the attacker's entry (the prefix); the "no trace" search starts from the
        // symbolic initial state instead.
        // `at most N`: the goal packets that got the verdict so far, and the count that
        // falsifies.
        let at_most = match self.prop.quant {
            Quant::AtMost(n) => Some(n as u64 + 1),
            _ => None,
        };
        let mut hits: Vec<Bool> = Vec::new();
        let mut tr = Trace { pkts: Vec::new(), times: Vec::new(), travs: Vec::new() };
        // `sources N`: the attacker's addresses (pairwise distinct; every packet comes
        // from one of them) and the state of each recent table per address (slot).
        let slots = self.slots();
        let tag = if mode == Mode::Witness { "w" } else { "o" };
        let srcs = self.source_addrs(&solver, tag, slots);
        let masks = self.recent_masks();
        let mut state: BTreeMap<String, Vec<RState>> =
            self.depth.iter().map(|(name, h)| (name.clone(), vec![RState::empty(*h); slots])).collect();
        let mut free: Vec<String> = Vec::new();
        // Token buckets of `-m limit` (witness search only): credit and last take.
        let mut buckets: BTreeMap<(RuleRef, usize), (Int, Int)> = BTreeMap::new();
        // Hashlimit tables: every evaluation so far (the entries they leave).
        let mut hl: BTreeMap<String, Vec<HlRec>> = BTreeMap::new();
        let mut accepted: Vec<Bool> = Vec::new();
        let verdict = final_of(self.prop.verdict);
        for i in 0..pre + self.opts.k {
            let p = SymPacket::new(&format!("{tag}{i}"), &self.u);
            let trav = self.input_traversal(&solver, &p)?;
            solver.assert(self.packet_constraints(&p, &tr, mode, &accepted));
            if slots > 1 {
                solver.assert(Bool::or(&srcs.iter().map(|a| p.src.eq(a)).collect::<Vec<_>>()));
                if i < pre {
                    // The prefix puts the first address into the tables of `from …`.
                    solver.assert(p.src.eq(&srcs[0]));
                }
            }
            let t = Int::new_const(format!("{tag}{i}.time"));
            solver.assert(&match tr.times.last() {
                Some(prev) => t.ge(prev),
                // Nothing depends on absolute time (empty tables, buckets created at the
                // first packet): witnesses start at 0.
                None if mode == Mode::Witness => t.eq(Int::from_u64(0)),
                None => t.ge(Int::from_u64(0)),
            });
            if i == 0 && mode == Mode::Over {
                // `from NAME`: the attacker's entry is present with 1..=H stamps, all at
                // or before the first packet (any age), newest first.
                for name in &self.prop.initially_in {
                    let h = self.depth[name];
                    let st = RState {
                        present: Bool::from_bool(true),
                        n: Int::new_const(format!("{tag}.init.{name}.n")),
                        stamps: (0..h).map(|j| Int::new_const(format!("{tag}.init.{name}.s{j}"))).collect(),
                    };
                    solver.assert(st.n.ge(Int::from_u64(1)));
                    solver.assert(st.n.le(Int::from_u64(h as u64)));
                    solver.assert(st.stamps[0].le(&t));
                    for j in 1..h {
                        solver.assert(st.stamps[j].le(&st.stamps[j - 1]));
                    }
                    // `sources N`: the first address is the one in the table (and every
                    // address with the same key under the table's `--mask`).
                    let empty = state[name][0].clone();
                    let per_slot = (0..slots)
                        .map(|j| match j {
                            0 => st.clone(),
                            _ => RState::ite(&self.same_key(&masks, name, &srcs[j], &srcs[0]), &st, &empty),
                        })
                        .collect();
                    state.insert(name.clone(), per_slot);
                }
            }
            if let (Some(w), None) = (self.prop.within, at_most) {
                // The whole trace after the prefix, goal packet included, lasts at most
                // `within`.
                if i >= pre {
                    let t0 = tr.times.get(pre).unwrap_or(&t);
                    solver.assert(Int::sub(&[&t, t0]).le(Int::from_u64(w * HZ as u64)));
                }
            }
            // Thread the state through the stateful matches in traversal order.
            let mut covered: Vec<Bool> = Vec::new();
            for su in &trav.stateful {
                let rule = su.rule.get(self.rs);
                let guard = Bool::and(&[trav.occurrences[su.occ].reach.clone(), su.before.clone()]);
                match &rule.matches[su.index].m {
                    Match::Recent(rc) => {
                        let h = self.depth[&rc.name];
                        let sts = state[&rc.name].clone();
                        let (value, after) = if slots == 1 {
                            let (value, after) = recent_eval(rc, &sts[0], &t, h);
                            (value, vec![RState::ite(&guard, &after, &sts[0])])
                        } else {
                            // The packet reads its own address's entry and updates the
                            // entry of every address with the same key.
                            let mut values = Vec::new();
                            let mut next = Vec::new();
                            for (a, st) in srcs.iter().zip(&sts) {
                                let (value, after) = recent_eval(rc, st, &t, h);
                                values.push(Bool::and(&[p.src.eq(a), value]));
                                let touch = Bool::and(&[guard.clone(), self.same_key(&masks, &rc.name, &p.src, a)]);
                                next.push(RState::ite(&touch, &after, st));
                            }
                            (Bool::or(&values), next)
                        };
                        if let Some(v) = &su.var {
                            solver.assert(v.eq(&value));
                            covered.push(v.clone());
                        }
                        state.insert(rc.name.clone(), after);
                    }
                    Match::Limit(l) if mode == Mode::Witness => {
                        let key = (su.rule.clone(), su.index);
                        let cap = crate::sim::limit::user2credits(l.avg.wrapping_mul(l.burst), HZ) as u64;
                        let cost = crate::sim::limit::user2credits(l.avg, HZ) as u64;
                        let cpj = crate::sim::limit::credits_per_jiffy(HZ) as u64;
                        let t0 = tr.times.first().unwrap_or(&t).clone();
                        let (credit, prev) =
                            buckets.get(&key).cloned().unwrap_or_else(|| (Int::from_u64(cap), t0.clone()));
                        // No u32 wraparound: the trace is short enough that
                        // gap × credits-per-jiffy + cap stays below 2^32.
                        let span = ((u32::MAX as u64).saturating_sub(cap)) / cpj;
                        solver.assert(Int::sub(&[&t, &t0]).le(Int::from_u64(span)));
                        let (credit2, prev2, ok) = limit_take(&credit, &prev, &t, cap, cost, cpj);
                        if let Some(v) = &su.var {
                            solver.assert(v.eq(&ok));
                            covered.push(v.clone());
                        }
                        let credit = guard.ite(&credit2, &credit);
                        let prev = guard.ite(&prev2, &prev);
                        buckets.insert(key, (credit, prev));
                    }
                    Match::Hashlimit(h) if self.hashlimit_exact(h, mode) => {
                        let cfg = self.hashlimit_cfg(&h.name).expect("exact only for a compiled table");
                        let evals = hl.entry(h.name.clone()).or_default();
                        let (value, eval) = hashlimit_eval(cfg, h.above, &p, (&t, mode), &guard, evals, &solver);
                        if let Some(v) = &su.var {
                            solver.assert(v.eq(&value));
                            covered.push(v.clone());
                        }
                        evals.push(HlRec::Eval(eval));
                    }
                    m => {
                        let d = match m {
                            Match::Hashlimit(_) => format!(
                                "{}: hashlimit (either outcome: its bucket is not the attacker's own)",
                                su.rule.describe(self.rs)
                            ),
                            _ => format!("{}: limit (either outcome)", su.rule.describe(self.rs)),
                        };
                        if !free.contains(&d) {
                            free.push(d);
                        }
                        if let Some(v) = &su.var {
                            covered.push(v.clone());
                        }
                    }
                }
            }
            self.note_assumed(&trav, &covered, &mut free);
            accepted.push(trav.verdict(Final::Accept));
            let mut goal =
                Bool::and(&[goal_condition(&self.prop.goal, &p, &self.u, Hook::Input), trav.verdict(verdict)]);
            if slots > 1 && !self.prop.initially_in.is_empty() {
                // `from NAME under sources N`: the goal packets are the first address's
                // (the one that starts in the tables); the others help.
                goal = Bool::and(&[goal, p.src.eq(&srcs[0])]);
            }
            tr.pkts.push(p);
            tr.times.push(t);
            tr.travs.push(trav);
            if i + 1 == pre {
                // After the prefix: the attacker is in every table of `from …` and in no
                // other (the initial state the property names).
                // `sources N`: the first address (and those with its key); the
                // other addresses are in no table.
                for (name, sts) in &state {
                    let held = self.prop.initially_in.contains(name);
                    for (j, st) in sts.iter().enumerate() {
                        let want = if held { st.present.clone() } else { st.present.not() };
                        if j == 0 {
                            solver.assert(&want);
                        } else {
                            let shared = self.same_key(&masks, name, &srcs[j], &srcs[0]);
                            solver.assert(shared.ite(&want, &st.present.not()));
                        }
                    }
                }
                if !check(&solver, &[], || "the prefix".into())? {
                    *no_prefix = true;
                    return Ok((None, free));
                }
            }
            if i < pre {
                continue;
            }
            let n = i + 1 - pre;
            let goal = match at_most {
                None => goal,
                Some(need) => {
                    // A packet past the count, the last counted: some counted packet `j`
                    // starts a window of `within` holding `need` counted packets.
                    hits.push(goal.clone());
                    let w = Int::from_u64(self.prop.within.unwrap_or(u64::MAX / 2 / HZ as u64) * HZ as u64);
                    let times = &tr.times[pre..];
                    let mut alts = Vec::new();
                    for j in 0..hits.len() {
                        let inside: Vec<Int> = (j..hits.len())
                            .map(|x| {
                                let ok = Bool::and(&[hits[x].clone(), Int::sub(&[&times[x], &times[j]]).le(&w)]);
                                ok.ite(&Int::from_u64(1), &Int::from_u64(0))
                            })
                            .collect();
                        let refs: Vec<&Int> = inside.iter().collect();
                        alts.push(Bool::and(&[hits[j].clone(), Int::add(&refs).ge(Int::from_u64(need))]));
                    }
                    Bool::and(&[goal, Bool::or(&alts)])
                }
            };
            if check(&solver, std::slice::from_ref(&goal), || format!("a trace of {n} packets"))? {
                solver.assert(&goal);
                if mode == Mode::Witness {
                    self.prefer_natural(&solver, &tr)?;
                }
                check(&solver, &[], || format!("a trace of {n} packets"))?;
                let m = solver
                    .get_model()
                    .ok_or_else(|| VerifyError::Unknown { what: "the witness".into(), reason: "no model".into() })?;
                for f in &free {
                    if !notes.contains(f) {
                        notes.push(f.clone());
                    }
                }
                return Ok((Some((self.csv(&m, &tr, pre)?, n)), free));
            }
        }
        for f in &free {
            if !notes.contains(f) {
                notes.push(f.clone());
            }
        }
        Ok((None, free))
    }

    fn packet_constraints(&self, p: &SymPacket, tr: &Trace, mode: Mode, accepted: &[Bool]) -> Bool {
        let u = &self.u;
        let mut c = vec![
            p.well_formed(u, Hook::Input),
            p.deliverable(u),
            p.frag.not(),
            p.snat.not(),
            p.dnat.not(),
            p.mark.eq(bv(0, 32)),
            p.dst_local.clone(),
            p.src_local.not(),
        ];
        if let Some(lo) = u.ifaces.reps.iter().position(|r| r == "lo") {
            c.push(p.in_if.eq(bv(lo as u128, u.ifaces.width())).not());
        }
        if let (Some(first), 1) = (tr.pkts.first(), self.slots()) {
            c.push(p.src.eq(&first.src));
        }
        let first = p.first_packet_ct(u);
        match mode {
            Mode::Witness => {
                c.push(first);
                // A packet a real host delivers: a unicast source that is neither the
                // host's nor special, to one unicast address of the host.
                c.push(p.special_addr(&p.src).not());
                c.push(p.special_addr(&p.dst).not());
                c.push(p.src_local.not());
                c.push(p.dst_local.clone());
                c.push(p.src.eq(&p.dst).not());
                if u.hosts.is_empty() {
                    if let Some(first) = tr.pkts.first() {
                        c.push(p.dst.eq(&first.dst));
                    }
                }
                let uni = PKT_TYPES.iter().position(|(n, _)| *n == "unicast").expect("unicast");
                c.push(p.pkttype.eq(bv(uni as u128, 2)));
                for (_, o) in &p.tcp_opts {
                    c.push(o.not());
                }
                c.push(p.ttl.bvuge(bv(1, 8)));
                let l4: Vec<u8> = match u.family {
                    Family::V4 => vec![6, 17, 1],
                    Family::V6 => vec![6, 17, 58],
                };
                c.push(Bool::or(&l4.iter().map(|x| p.is_proto(*x)).collect::<Vec<_>>()));
                c.push(p.len.bvule(bv(1500, 16)));
                // Each packet opens its own connection: distinct source ports.
                for q in &tr.pkts {
                    c.push(Bool::and(&[p.is_proto(6), q.is_proto(6)]).implies(p.sport.eq(&q.sport).not()));
                    c.push(Bool::and(&[p.is_proto(17), q.is_proto(17)]).implies(p.sport.eq(&q.sport).not()));
                }
            }
            Mode::Over => {
                // A packet may be in any state when an earlier packet of the attacker
                // with the same (proto, ports, destination) was accepted (its connection
                // may exist), or when it is ICMP (RELATED to any accepted connection);
                // otherwise no connection involves it and its state is the first
                // packet's. Assumption: the host opens no connections to the attacker.
                let mut alts = vec![first];
                let icmp = match u.family {
                    Family::V4 => p.is_proto(1),
                    Family::V6 => p.is_proto(58),
                };
                for (q, acc) in tr.pkts.iter().zip(accepted) {
                    let same = Bool::and(&[
                        p.src.eq(&q.src),
                        p.proto.eq(&q.proto),
                        p.sport.eq(&q.sport),
                        p.dport.eq(&q.dport),
                        p.dst.eq(&q.dst),
                    ]);
                    alts.push(Bool::and(&[acc.clone(), Bool::or(&[same, icmp.clone()])]));
                }
                c.push(Bool::or(&alts));
            }
        }
        Bool::and(&c)
    }

    /// Makes the witness look like ordinary traffic: soft preferences tried one by one in
    /// priority order (each kept when the trace stays possible): one interface (`eth0`'s
    /// class), TCP SYN, TTL 64, header-only length, source ports ≥ 1024 (50000, 50001, …),
    /// ICMP echo requests, gaps of 1 s (else whole seconds), documentation addresses.
    fn prefer_natural(&self, solver: &Solver, tr: &Trace) -> Result<(), VerifyError> {
        let u = &self.u;
        let iw = u.ifaces.width();
        let eth0 = bv(u.iface_class("eth0") as u128, iw);
        let (base, w) = match u.family {
            Family::V4 => (20u128, 32),
            Family::V6 => (40u128, 128),
        };
        let icmp = match u.family {
            Family::V4 => 1,
            Family::V6 => 58,
        };
        let mut prefs: Vec<Bool> = Vec::new();
        for p in &tr.pkts {
            prefs.push(p.in_if.eq(&eth0));
        }
        for p in &tr.pkts {
            prefs.push(p.is_proto(6).implies(p.flags.eq(bv(0x02, 8))));
        }
        for p in &tr.pkts {
            prefs.push(p.ttl.eq(bv(64, 8)));
        }
        for p in &tr.pkts {
            let hdr = |proto: u8, n: u128| p.is_proto(proto).implies(p.len.eq(bv(base + n, 16)));
            prefs.push(Bool::and(&[hdr(6, 20), hdr(17, 8), hdr(icmp, 8)]));
        }
        for (i, p) in tr.pkts.iter().enumerate() {
            let ports = Bool::or(&[p.is_proto(6), p.is_proto(17)]);
            prefs.push(ports.implies(p.sport.eq(bv(50000 + i as u128, 16))));
            prefs.push(ports.implies(p.sport.bvuge(bv(1024, 16))));
        }
        for p in &tr.pkts {
            prefs.push(p.is_proto(icmp).implies(Bool::and(&[
                p.icmp_type.eq(bv(if icmp == 1 { 8 } else { 128 }, 8)),
                p.icmp_code.eq(bv(0, 8)),
            ])));
        }
        if self.slots() > 1 {
            // `sources N`: as few addresses as the trace allows (the first packet's).
            if let Some(first) = tr.pkts.first() {
                for p in &tr.pkts[1..] {
                    prefs.push(p.src.eq(&first.src));
                }
            }
        }
        let hz = Int::from_u64(HZ as u64);
        for pair in tr.times.windows(2) {
            let gap = Int::sub(&[&pair[1], &pair[0]]);
            prefs.push(gap.eq(&hz));
            prefs.push(Bool::and(&[gap.ge(&hz), gap.modulo(&hz).eq(Int::from_u64(0))]));
            // Else at the same time as the packet before: a gap the solver picks freely
            // tends to sit on a bucket's refill boundary (a fraction of a tick from the
            // other outcome), which a replay on the real kernel, a little late, can cross.
            prefs.push(gap.eq(Int::from_u64(0)));
        }
        let addrs = |cands: &[&str]| -> Vec<u128> {
            cands
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok())
                .filter(|a| a.is_ipv4() == (u.family == Family::V4))
                .map(super::encode::ip_bits)
                .collect()
        };
        if let Some(p) = tr.pkts.first() {
            for a in addrs(&["203.0.113.7", "198.51.100.7", "192.0.2.7", "2001:db8:1::7"]) {
                prefs.push(p.src.eq(bv(a, w)));
            }
            if u.hosts.is_empty() {
                for a in addrs(&["192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"]) {
                    prefs.push(p.dst.eq(bv(a, w)));
                }
            }
        }
        if self.slots() > 1 {
            // `sources N`: the other addresses 203.0.113.8, .9, … in order of appearance
            // (the first that fits wins: an address already used fails for a packet of
            // another source).
            let cands: Vec<String> = (0..self.slots())
                .flat_map(|j| [format!("203.0.113.{}", 7 + j), format!("2001:db8:1::{:x}", 7 + j)])
                .collect();
            let cands: Vec<&str> = cands.iter().map(String::as_str).collect();
            let ours = addrs(&cands);
            for p in tr.pkts.iter().skip(1) {
                for a in &ours {
                    prefs.push(p.src.eq(bv(*a, w)));
                }
            }
        }
        // Kept preferences stay asserted (one scope each); among alternatives for one
        // field (address candidates) the first that fits wins and the rest fail.
        for pref in &prefs {
            solver.push();
            solver.assert(pref);
            if check(solver, &[], || "a natural witness".into())? {
                continue;
            }
            solver.pop(1);
        }
        Ok(())
    }

    fn csv(&self, m: &Model, tr: &Trace, pre: usize) -> Result<String, VerifyError> {
        let bad =
            |what: &str| VerifyError::Unknown { what: format!("the witness's {what}"), reason: "no value".into() };
        let num = |x: &BV| -> Result<u128, VerifyError> {
            let v = m.eval(x, true).ok_or_else(|| bad("fields"))?;
            let s = v.as_u64().map(|v| v as u128);
            match s {
                Some(v) => Ok(v),
                None => {
                    let t = v.to_string();
                    let t = t.trim_start_matches("#x");
                    u128::from_str_radix(t, 16).map_err(|_| bad("address"))
                }
            }
        };
        let addr = |x: &BV| -> Result<IpAddr, VerifyError> {
            let v = num(x)?;
            Ok(match self.u.family {
                Family::V4 => IpAddr::V4((v as u32).into()),
                Family::V6 => IpAddr::V6(v.into()),
            })
        };
        let mut out = String::from(
            "time,src,dst,proto,sport,dport,flags,icmp_type,icmp_code,icmp_id,iface,len,ttl,expect,note\n",
        );
        let n = tr.pkts.len();
        for (i, (p, t)) in tr.pkts.iter().zip(&tr.times).enumerate() {
            let ticks = m.eval(t, true).and_then(|v| v.as_u64()).ok_or_else(|| bad("time"))?;
            let ms = ticks * 1000 / HZ as u64;
            let proto = num(&p.proto)? as u8;
            let (pname, ports, flags, icmp) = match proto {
                6 => ("tcp".to_string(), true, format!("{}", FlagLetters(num(&p.flags)? as u8)), false),
                17 => ("udp".to_string(), true, String::new(), false),
                1 if self.u.family == Family::V4 => ("icmp".to_string(), false, String::new(), true),
                58 if self.u.family == Family::V6 => ("icmpv6".to_string(), false, String::new(), true),
                x => (x.to_string(), false, String::new(), false),
            };
            let (sport, dport) = if ports {
                (num(&p.sport)?.to_string(), num(&p.dport)?.to_string())
            } else {
                (String::new(), String::new())
            };
            let (ity, icode, iid) = if icmp {
                (num(&p.icmp_type)?.to_string(), num(&p.icmp_code)?.to_string(), (i + 1).to_string())
            } else {
                (String::new(), String::new(), String::new())
            };
            let class = num(&p.in_if)? as usize;
            let iface = if class == self.u.iface_class("eth0") { "eth0" } else { &self.u.ifaces.reps[class] };
            let trav = &tr.travs[i];
            let mut verdict = "DROP";
            for (f, name) in [(Final::Accept, "ACCEPT"), (Final::Drop, "DROP"), (Final::Reject, "REJECT")] {
                if m.eval(&trav.verdict(f), true).and_then(|b| b.as_bool()) == Some(true) {
                    verdict = name;
                }
            }
            let note = if i + 1 == n {
                "goal"
            } else if i < pre {
                "prefix"
            } else {
                ""
            };
            writeln!(
                out,
                "{}.{:03},{},{},{pname},{sport},{dport},{flags},{ity},{icode},{iid},{iface},{},{},{verdict},{note}",
                ms / 1000,
                ms % 1000,
                addr(&p.src)?,
                addr(&p.dst)?,
                num(&p.len)?,
                num(&p.ttl)?,
            )
            .expect("write to String");
        }
        Ok(out)
    }

    /// Replays a witness through the simulator: every row must get its `expect`; the
    /// simulator's verdict of every row.
    fn replay(&self, csv: &str) -> Result<Vec<Verdict>, String> {
        use crate::sim::{Engine, Ifaces, Outcome, SimConfig};
        let cfg = SimConfig {
            hz: HZ,
            hosts: self.opts.hosts.clone(),
            listen: self.opts.listen.clone(),
            ..SimConfig::default()
        };
        let mut engine = Engine::new(self.rs, cfg, Ifaces::default())
            .map_err(|e| format!("the simulator cannot run this ruleset ({} unsupported rules)", e.len()))?;
        let mut trace = crate::trace::csv::CsvTrace::new("witness", csv.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = Outcome::default();
        let mut verdicts = Vec::new();
        while let Some(mut row) = trace.next_row().map_err(|e| e.to_string())? {
            row.pkt.iface = engine.iface(row.iface.as_str());
            engine.step(crate::trace::to_jiffies(row.time_ns, HZ), &row.pkt, &mut out);
            verdicts.push(out.verdict);
            if let Some(e) = row.expect {
                if e != out.verdict {
                    return Err(format!(
                        "row {}: the encoding says {}, the simulator {}",
                        row.row,
                        e.as_str(),
                        out.verdict.as_str()
                    ));
                }
            }
        }
        Ok(verdicts)
    }
}

/// `sources N`: addresses, recent-table keys, table capacity.
impl Setup<'_> {
    /// Attacker addresses modelled: 1 for one source; under `sources N`, N but no more
    /// than a trace can use (one per packet, the prefix's address included).
    fn slots(&self) -> usize {
        match self.prop.attacker {
            Attacker::Sources(n) => {
                let most = self.opts.k + usize::from(!self.prop.initially_in.is_empty());
                (n as usize).clamp(1, most.max(1))
            }
            _ => 1,
        }
    }

    /// The attacker's addresses under `sources N` (none for one source): pairwise
    /// distinct.
    fn source_addrs(&self, solver: &Solver, tag: &str, slots: usize) -> Vec<BV> {
        if slots <= 1 {
            return Vec::new();
        }
        let w = match self.u.family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        let srcs: Vec<BV> = (0..slots).map(|j| BV::new_const(format!("{tag}.src{j}"), w)).collect();
        for (j, a) in srcs.iter().enumerate() {
            for b in &srcs[j + 1..] {
                solver.assert(a.eq(b).not());
            }
        }
        srcs
    }

    /// The `--mask` values the filter table's rules give each recent table.
    fn recent_masks(&self) -> BTreeMap<String, Vec<u128>> {
        let mut masks: BTreeMap<String, Vec<u128>> = BTreeMap::new();
        for c in &self.rs.tables[self.table].chains {
            for r in &c.rules {
                for m in &r.matches {
                    if let Match::Recent(rc) = &m.m {
                        let v = masks.entry(rc.name.clone()).or_default();
                        let bits = super::encode::ip_bits(rc.mask);
                        if !v.contains(&bits) {
                            v.push(bits);
                        }
                    }
                }
            }
        }
        masks
    }

    /// The filter table's traversal of `p` at INPUT, its definitions and its entry
    /// asserted on `solver`.
    fn input_traversal(&self, solver: &Solver, p: &SymPacket) -> Result<Traversal, VerifyError> {
        let trav = Traversal::encode(self.rs, self.table, Hook::Input, p, &self.u, StateModel::Any)?;
        for d in &trav.defs {
            solver.assert(d);
        }
        solver.assert(&trav.entry);
        Ok(trav)
    }

    /// The configuration of hashlimit table `name`.
    fn hashlimit_cfg(&self, name: &str) -> Option<&Hashlimit> {
        self.hashlimits.iter().find(|h| h.name == name)
    }

    /// Whether a hashlimit match is encoded exactly in a search of `mode`: packet mode
    /// (the simulator refuses byte and rate-match modes), a table that cannot fill up
    /// within the trace (every evaluation creates at most one entry), and, in the "no
    /// trace" search, a bucket that is the attacker's own: keyed by its whole source
    /// address (assumption, as for recent tables: no other sender uses the attacker's
    /// address). Other buckets are shared with other senders, who may drain them: there
    /// the match is left free, as `-m limit`'s.
    fn hashlimit_exact(&self, h: &Hashlimit, mode: Mode) -> bool {
        use crate::model::matches::hashmode;
        let Some(cfg) = self.hashlimit_cfg(&h.name) else { return false };
        let size = if cfg.size == 0 { 8192 } else { cfg.size as u64 };
        let max = if cfg.max == 0 { 8 * size } else { cfg.max as u64 };
        let evals = (self.opts.k as u64 + MAX_EXTRA_PREFIX as u64 + self.prop.initially_in.len() as u64) * 64;
        let width = if self.u.family == Family::V6 { 128 } else { 32 };
        !cfg.bytes
            && !cfg.rate_match
            && max > evals
            && (mode == Mode::Witness || (cfg.mode & hashmode::SRCIP != 0 && cfg.srcmask as u32 >= width))
    }

    /// Whether `x` and `y` share an entry of recent table `name` (equal under its mask;
    /// [`Setup::sources_check`] makes sure a table has one mask).
    fn same_key(&self, masks: &BTreeMap<String, Vec<u128>>, name: &str, x: &BV, y: &BV) -> Bool {
        let w = x.get_size();
        let full = if w == 128 { u128::MAX } else { (1u128 << w) - 1 };
        match masks.get(name).and_then(|m| m.first()) {
            Some(&m) if m & full != full => {
                let m = bv(m & full, w);
                x.bvand(&m).eq(y.bvand(&m))
            }
            _ => x.eq(y),
        }
    }

    /// `sources N`: what the encoding cannot represent (UNKNOWN), else what the answer
    /// rests on about the tables' capacity.
    fn sources_check(&self, n: u32) -> Result<Vec<String>, String> {
        let slots = self.slots();
        let cap = crate::sim::SimConfig::default().ip_list_tot;
        for (name, m) in self.recent_masks() {
            if m.len() > 1 && slots > 1 {
                return Err(format!(
                    "recent table `{name}` is used with different --mask values; with several sources the \
                     entries they share are not encoded"
                ));
            }
        }
        if self.depth.is_empty() && self.hashlimits.is_empty() {
            return Ok(vec![format!(
                "sources {n}: the ruleset keeps no per-address state (no recent or hashlimit tables)"
            )]);
        }
        if self.depth.is_empty() {
            // Hashlimit buckets are per key, and a table is encoded only while the trace
            // cannot fill it (`hashlimit_exact`).
            return Ok(vec![format!(
                "sources {n}: no recent tables; hashlimit buckets are kept per key, and no hashlimit table can \
                 fill up within the bound"
            )]);
        }
        if slots > cap {
            return Err(format!(
                "sources {n}: a trace of {} packets can fill a recent table past its {cap} entries \
                 (ip_list_tot), and LRU eviction is not encoded",
                self.opts.k
            ));
        }
        let mut info = vec![if slots == 1 {
            format!("sources {n}: one address, as the `any` attacker")
        } else {
            format!(
                "sources {n}: every packet comes from one of {slots} distinct addresses{}; recent tables are kept \
                 per address (per --mask key){}",
                if (n as usize) > slots {
                    format!(" (a trace of {} packets uses no more)", self.opts.k)
                } else {
                    String::new()
                },
                if self.prop.initially_in.is_empty() {
                    ""
                } else {
                    "; the first address starts in the tables of `from` and sends the goal packets"
                }
            )
        }];
        info.push(if (n as usize) > cap {
            format!(
                "recent-table eviction: a table holds at most {slots} of the attacker's entries in a trace of at \
                 most {} packets, below its {cap} entries (ip_list_tot), so no entry is evicted; evicting one \
                 takes more than {cap} distinct sources' packets, beyond the bound",
                self.opts.k
            )
        } else {
            format!(
                "recent-table eviction: N = {n} ≤ {cap} entries (ip_list_tot), so the attacker's packets alone \
                 never evict an entry (assumption: no other sender fills the tables)"
            )
        });
        Ok(info)
    }
}

impl Setup<'_> {
    /// No table holds the attacker.
    fn empty_state(&self) -> BTreeMap<String, RState> {
        self.depth.iter().map(|(name, h)| (name.clone(), RState::empty(*h))).collect()
    }

    /// Notes every unencodable match of `trav` left free (not among `covered`, the
    /// stateful ones the caller encoded) in `free`, once each.
    fn note_assumed(&self, trav: &Traversal, covered: &[Bool], free: &mut Vec<String>) {
        for a in &trav.assumed {
            if covered.iter().any(|v| v.ast_eq(&a.var)) {
                continue;
            }
            let d = format!("{}: {}", a.rule.describe(self.rs), a.why);
            if !free.contains(&d) {
                free.push(d);
            }
        }
    }
}

/// What happened to a hashlimit table, in order: an exact evaluation, or a summary of
/// any number of the attacker's packets between `start` and `end` (unbounded searches),
/// which may have touched the entry of any key: taken tokens, refreshed its expiry, or
/// created it.
enum HlRec {
    Eval(HlEval),
    Summary { live: Bool, start: Int, end: Int },
}

/// Hashlimit state to thread exactly through a traversal: its packet, the tables'
/// records, and the search's mode ([`Setup::thread_state`]).
type HlThread<'a> = (&'a SymPacket, &'a mut BTreeMap<String, Vec<HlRec>>, Mode);

/// One evaluation of a hashlimit table: when it happened (`live`), the packet's key
/// (its masked addresses and ports, as the table's `--hashlimit-mode` selects; zeros
/// for the parts not selected) and the entry it left.
struct HlEval {
    live: Bool,
    key: [BV; 4],
    credit: Int,
    prev: Int,
    expires: Int,
}

/// The key of `p` in hashlimit table `cfg` (`sim::hashlimit::Table::key`).
fn hashlimit_key(cfg: &Hashlimit, p: &SymPacket) -> [BV; 4] {
    use crate::model::matches::hashmode;
    let w = p.src.get_size();
    let addr = |a: &BV, on: bool, len: u8| {
        let len = (len as u32).min(w);
        if !on || len == 0 {
            return bv(0, w);
        }
        let m = if len == 128 { u128::MAX } else { ((1u128 << len) - 1) << (w - len) };
        a.bvand(bv(m, w))
    };
    let ports = Bool::or(&[p.proto.eq(bv(proto::TCP as u128, 8)), p.proto.eq(bv(proto::UDP as u128, 8))]);
    let port = |x: &BV, on: bool| if on { ports.ite(x, &bv(0, 16)) } else { bv(0, 16) };
    [
        addr(&p.src, cfg.mode & hashmode::SRCIP != 0, cfg.srcmask),
        addr(&p.dst, cfg.mode & hashmode::DSTIP != 0, cfg.dstmask),
        port(&p.sport, cfg.mode & hashmode::SRCPORT != 0),
        port(&p.dport, cfg.mode & hashmode::DSTPORT != 0),
    ]
}

/// A hashlimit match of `p` at `now` (`sim::hashlimit::Table::eval`, revision 3 packet
/// mode, 64-bit credits) given the table's earlier evaluations, when `live`: the match's
/// value (`above`: over the limit) and what the evaluation leaves. The packet's entry is
/// the one the latest live evaluation with the same key left, unless it has expired
/// (then, as when there is none, a full bucket is created). The refill is the kernel's
/// `u64` arithmetic, wraparound included: `credit + (delta × CPJ mod 2^64)`, mod 2^64,
/// capped.
///
/// The kernel collects expired entries only every `--hashlimit-htable-gcinterval` (the
/// simulator at once): for up to that long after expiry (taken twice, for the garbage
/// collector's phase and delays) a packet may still find the old entry. `Mode::Over`
/// allows either there; witnesses (`Mode::Witness`) keep their packets out of that window
/// so that the kernel and the simulator agree on them (found by `fwverify conform`: the
/// same trace gave a fresh bucket in one run and the old one in the next).
///
/// A summary record (`HlRec::Summary`, "no trace" searches only) may have touched the
/// packet's entry last at some time in its interval, leaving any credit from 0 up to what
/// the entry could hold then: its old credit refilled for the time since its last touch
/// when it cannot have expired in between, else a full bucket.
fn hashlimit_eval(
    cfg: &Hashlimit,
    above: bool,
    p: &SymPacket,
    (now, mode): (&Int, Mode),
    live: &Bool,
    evals: &[HlRec],
    solver: &Solver,
) -> (Bool, HlEval) {
    use crate::sim::hashlimit::{credits_per_jiffy, user2credits};
    let cap = user2credits(cfg.avg.wrapping_mul(cfg.burst), HZ);
    let cost = user2credits(cfg.avg, HZ);
    let cpj = credits_per_jiffy(HZ);
    let expire = (cfg.expire as u64 * HZ as u64).div_ceil(1000);
    // A kept entry was touched at most `expire` ago (plus the collector's delay, below):
    // then the refill cannot wrap around.
    let no_wrap = (expire as u128 + 2 * 1000 * HZ as u128) * (cpj as u128) + (cap as u128) < 1 << 64;
    let key = hashlimit_key(cfg, p);
    let cap_i = Int::from_u64(cap);
    let (mut found, mut credit, mut prev, mut expires) =
        (Bool::from_bool(false), cap_i.clone(), now.clone(), Int::from_u64(0));
    for r in evals {
        match r {
            HlRec::Eval(e) => {
                let same = Bool::and(&[
                    e.live.clone(),
                    e.key[0].eq(&key[0]),
                    e.key[1].eq(&key[1]),
                    e.key[2].eq(&key[2]),
                    e.key[3].eq(&key[3]),
                ]);
                found = Bool::or(&[same.clone(), found]);
                credit = same.ite(&e.credit, &credit);
                prev = same.ite(&e.prev, &prev);
                expires = same.ite(&e.expires, &expires);
            }
            HlRec::Summary { live, start, end } => {
                debug_assert!(mode == Mode::Over, "summaries only over-approximate");
                let touched = Bool::and(&[live.clone(), Bool::fresh_const("hashlimit.touched")]);
                let last = Int::fresh_const("hashlimit.last_touch");
                let left = Int::fresh_const("hashlimit.credit");
                let gap = Int::sub(&[&last, &prev]);
                let refill = Int::add(&[&credit, &Int::mul(&[&gap, &Int::from_u64(cpj)])]);
                let bound = if no_wrap {
                    let kept = Bool::and(&[found.clone(), gap.le(Int::from_u64(expire))]);
                    kept.ite(&refill.le(&cap_i).ite(&refill, &cap_i), &cap_i)
                } else {
                    cap_i.clone()
                };
                solver.assert(touched.implies(Bool::and(&[
                    last.ge(start),
                    last.le(end),
                    left.ge(Int::from_u64(0)),
                    left.le(&bound),
                ])));
                found = Bool::or(&[touched.clone(), found]);
                credit = touched.ite(&left, &credit);
                prev = touched.ite(&last, &prev);
                expires = touched.ite(&Int::add(&[&last, &Int::from_u64(expire)]), &expires);
            }
        }
    }
    let gc = Int::add(&[&expires, &Int::from_u64(2 * (cfg.gc_interval as u64 * HZ as u64).div_ceil(1000))]);
    let late = Bool::and(&[found.clone(), expires.lt(now), gc.ge(now)]);
    let kept = match mode {
        Mode::Witness => {
            solver.assert(Bool::and(&[live.clone(), late]).not());
            Bool::and(&[found, expires.ge(now)])
        }
        Mode::Over => Bool::or(&[
            Bool::and(&[found, expires.ge(now)]),
            Bool::and(&[late, Bool::fresh_const("hashlimit.not_yet_collected")]),
        ]),
    };
    let delta = Int::sub(&[now, &prev]);
    let sum = if (expire as u128) * (cpj as u128) + (cap as u128) < 1 << 64 {
        // A kept entry was touched at most `expire` ago: no wraparound is possible.
        Int::add(&[&credit, &Int::mul(&[&delta, &Int::from_u64(cpj)])])
    } else {
        // delta × CPJ mod 2^64 with CPJ a power of two: (delta mod 2^64/CPJ) × CPJ.
        let two64 = Int::from_u128(1 << 64);
        let inc = Int::mul(&[&delta.modulo(Int::from_u64(u64::MAX / cpj + 1)), &Int::from_u64(cpj)]);
        let sum = Int::add(&[&credit, &inc]);
        sum.ge(&two64).ite(&Int::sub(&[&sum, &two64]), &sum)
    };
    let refilled = sum.le(&cap_i).ite(&sum, &cap_i);
    let c0 = kept.ite(&refilled, &cap_i);
    let cost_i = Int::from_u64(cost);
    let ok = c0.ge(&cost_i);
    let c1 = ok.ite(&Int::sub(&[&c0, &cost_i]), &c0);
    let value = if above { ok.not() } else { ok };
    let eval = HlEval {
        live: live.clone(),
        key,
        credit: c1,
        prev: now.clone(),
        expires: Int::add(&[now, &Int::from_u64(expire)]),
    };
    (value, eval)
}

/// `sim::limit::Bucket::take` on integers: the result and the new credit and stamp.
fn limit_take(credit: &Int, prev: &Int, now: &Int, cap: u64, cost: u64, cpj: u64) -> (Int, Int, Bool) {
    let cost_i = Int::from_u64(cost);
    let blocked = Bool::and(&[credit.lt(&cost_i), prev.eq(now)]);
    let inc = Int::mul(&[&Int::sub(&[now, prev]), &Int::from_u64(cpj)]);
    let sum = Int::add(&[credit, &inc]);
    let cap_i = Int::from_u64(cap);
    let c = sum.le(&cap_i).ite(&sum, &cap_i);
    let ok = c.ge(&cost_i);
    let after = ok.ite(&Int::sub(&[&c, &cost_i]), &c);
    (blocked.ite(credit, &after), blocked.ite(prev, now), Bool::and(&[blocked.not(), ok]))
}

/// The value of a non-`--set`… recent match (with `!`) in state `st` at `now`, and the
/// state after it, as `sim::recent::RecentTable::eval`.
fn recent_eval(rc: &crate::model::matches::Recent, st: &RState, now: &Int, h: usize) -> (Bool, RState) {
    let inv = Bool::from_bool(rc.inv);
    match rc.mode {
        RecentMode::Set => (Bool::from_bool(!rc.inv), st.stamped(now, h)),
        RecentMode::Remove => {
            let after = RState { present: Bool::from_bool(false), n: Int::from_u64(0), stamps: st.stamps.clone() };
            (st.present.ite(&Bool::from_bool(!rc.inv), &inv), after)
        }
        RecentMode::Rcheck | RecentMode::Update => {
            let need = rc.hitcount.max(1) as usize;
            let mut hit = vec![st.present.clone(), st.n.ge(Int::from_u64(need as u64))];
            if let Some(s) = rc.seconds {
                // `--seconds` × HZ in 32 bits, as the kernel computes it.
                let w = s.wrapping_mul(HZ) as u64;
                hit.push(Int::sub(&[now, &st.stamps[need - 1]]).le(Int::from_u64(w)));
            }
            let hits = Bool::and(&hit);
            let value = st.present.ite(&hits.xor(&inv), &inv);
            let after = if rc.mode == RecentMode::Update {
                let rec = Bool::and(&[st.present.clone(), value.clone()]);
                RState::ite(&rec, &st.stamped(now, h), st)
            } else {
                st.clone()
            };
            (value, after)
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::verify::property::parse_property;

    /// [`run`] at the default bound.
    pub(super) fn run_default(rules: &str, prop: &str) -> Proved {
        run(rules, prop, DEFAULT_K)
    }

    pub(super) fn run(rules: &str, prop: &str, k: usize) -> Proved {
        let parsed = crate::load(rules);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let p = parse_property(prop, 0, 1).unwrap();
        prove(&parsed.ruleset, &p, &ProveOptions { k, ..ProveOptions::default() }).unwrap()
    }

    pub(super) fn seed(name: &str) -> String {
        std::fs::read_to_string(format!("{}/scenarios/seed/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    const LIMITER: &str = "*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -m recent --set --name SSH --rsource
-A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -m recent --update --seconds 60 --hitcount 4 --name SSH --rsource -j DROP
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
";

    #[test]
    fn the_seed_knock_is_found_and_replays() {
        let r = run(&seed("rules.v4"), "possible ACCEPT tcp dport 22", 4);
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        assert_eq!(w.packets, 4);
        assert_eq!(r.exit_code(Quant::Possible), 0);
        let dports: Vec<&str> = w.csv.lines().skip(1).map(|l| l.split(',').nth(5).unwrap()).collect();
        assert_eq!(dports, ["1234", "2345", "3456", "22"], "{}", w.csv);
        assert!(w.csv.lines().last().unwrap().contains(",ACCEPT,goal"));
        for row in w.csv.lines().skip(1) {
            let f: Vec<&str> = row.split(',').collect();
            // SYN, TTL 64, eth0, source ≥ 1024, a non-special source other than the destination.
            assert_eq!((f[6], f[12], f[10]), ("S", "64", "eth0"), "{}", w.csv);
            assert!(f[4].parse::<u16>().unwrap() >= 1024, "{}", w.csv);
            let src: std::net::Ipv4Addr = f[1].parse().unwrap();
            assert!(!matches!(src.octets()[0], 0 | 127 | 224..=255), "{}", w.csv);
            assert_ne!(f[1], f[2], "{}", w.csv);
        }
    }

    #[test]
    fn the_seed_knock_needs_four_packets() {
        let r = run(&seed("rules.v4"), "possible ACCEPT tcp dport 22", 3);
        assert!(matches!(r.answer, Answer::NoneUpTo(3)), "{r:?}");
    }

    #[test]
    fn an_invalid_syn_fin_bypasses_the_ssh_limiter() {
        let r = run(LIMITER, "never ACCEPT tcp dport 22 ctstate INVALID", 4);
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        assert_eq!(r.exit_code(Quant::Never), 1);
        let last = w.csv.lines().last().unwrap();
        assert!(last.contains(",tcp,") && last.contains(",ACCEPT,goal"), "{}", w.csv);
    }

    #[test]
    fn the_limiter_drops_the_fourth_new_connection_within_a_minute() {
        // Four NEW SYNs within 60 s: the fourth is dropped; a DROP of tcp/22 is possible
        // only from the fourth packet on.
        let r = run(LIMITER, "possible DROP tcp dport 22 flags S", 3);
        assert!(matches!(r.answer, Answer::NoneUpTo(3)), "{r:?}");
        let r = run(LIMITER, "possible DROP tcp dport 22 flags S within 60s", 4);
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        assert_eq!(w.packets, 4, "{}", w.csv);
    }

    #[test]
    fn the_icmp_limit_bucket_drops_the_fifth_ping() {
        // `-m limit --limit 1/s --limit-burst 4`: four evaluations pass on a full bucket.
        let r = run(&seed("rules.v4"), "possible DROP icmp", 6);
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        assert_eq!(w.packets, 5, "{}", w.csv);
        // Without the witness search the bucket is free (other senders share it).
        let r = run(&seed("rules.v4"), "possible DROP icmp", 4);
        assert!(matches!(&r.answer, Answer::Unknown(w) if w.contains("limit")), "{r:?}");
    }

    #[test]
    fn a_blacklisted_source_regains_ssh_by_knocking() {
        let r = run(&seed("rules.v4"), "possible ACCEPT tcp dport 22 from blacklisted", 4);
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        assert_eq!((w.packets, w.prefix), (4, 1), "{}", w.csv);
        let rows: Vec<&str> = w.csv.lines().skip(1).collect();
        assert!(rows[0].ends_with(",DROP,prefix"), "{}", w.csv);
        let dports: Vec<&str> = rows[1..].iter().map(|l| l.split(',').nth(5).unwrap()).collect();
        assert_eq!(dports, ["1234", "2345", "3456", "22"], "{}", w.csv);
        // From the blacklisted state three packets are not enough either.
        let r = run(&seed("rules.v4"), "possible ACCEPT tcp dport 22 from blacklisted", 3);
        assert!(matches!(r.answer, Answer::NoneUpTo(3)), "{r:?}");
        // knock3 cannot be entered without touching synflood or blacklist: no witness
        // that replays, so UNKNOWN (and it says why).
        let r = run(&seed("rules.v4"), "possible ACCEPT tcp dport 22 from in knock3", 2);
        assert!(matches!(&r.answer, Answer::Unknown(w) if w.contains("no prefix")), "{r:?}");
        // A table no rule uses is bad input.
        let p = parse_property("possible ACCEPT tcp dport 22 from in nosuch", 0, 1).unwrap();
        let parsed = crate::load(&seed("rules.v4"));
        assert!(matches!(prove(&parsed.ruleset, &p, &ProveOptions::default()), Err(VerifyError::Input(_))));
    }

    #[test]
    fn the_limiter_accepts_at_most_three_new_connections_a_minute() {
        // For traces of any length (the N+1 counted packets exact, the rest summarised).
        let r = run(LIMITER, "at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s", 6);
        assert!(matches!(r.answer, Answer::NoneAtAll(_)), "{r:?}");
        assert_eq!(r.exit_code(Quant::AtMost(3)), 0);
        // Bounded (`sources` has no unbounded search): K is raised to N+1 at least.
        let r = run(LIMITER, "at most 4 ACCEPT tcp dport 22 ctstate NEW within 60s under sources 1", 2);
        assert!(matches!(r.answer, Answer::NoneUpTo(5)), "{r:?}");
        // Over 200 s the window frees up: a fourth NEW connection 60 s after the first.
        let r = run(LIMITER, "at most 3 ACCEPT tcp dport 22 ctstate NEW within 200s", 6);
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        assert_eq!(w.packets, 4, "{}", w.csv);
        assert_eq!(r.exit_code(Quant::AtMost(3)), 1);
        assert_eq!(w.csv.lines().filter(|l| l.contains(",S,") && l.contains(",ACCEPT,")).count(), 4, "{}", w.csv);
    }

    #[test]
    fn two_sources_get_past_a_per_source_limiter() {
        // One source: at most 3 NEW connections a minute (PROVED); two sources: the
        // fourth comes from the second address, whose entry is empty.
        let prop = "at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s";
        let r = run(LIMITER, &format!("{prop} under sources 1"), 6);
        assert!(matches!(r.answer, Answer::NoneUpTo(6)), "{r:?}");
        let r = run(LIMITER, &format!("{prop} under sources 2"), 6);
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        assert_eq!(w.packets, 4, "{}", w.csv);
        let srcs: std::collections::BTreeSet<&str> =
            w.csv.lines().skip(1).map(|l| l.split(',').nth(1).unwrap()).collect();
        assert_eq!(srcs.len(), 2, "{}", w.csv);
        assert!(r.info.iter().any(|i| i.contains("never evict")), "{:?}", r.info);
    }

    const SUBNET_KNOCK: &str = "*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m recent --rcheck --name knocker --rsource -j DROP
-A INPUT -p tcp -m tcp --dport 22 -m recent --rcheck --seconds 30 --name opened --mask 255.255.255.0 --rsource -j ACCEPT
-A INPUT -p tcp -m tcp --dport 1234 -m recent --set --name knocker --rsource
-A INPUT -p tcp -m tcp --dport 1234 -m recent --set --name opened --mask 255.255.255.0 --rsource -j DROP
COMMIT
";

    #[test]
    fn a_subnet_knock_needs_two_sources_in_one_mask() {
        let r = run(SUBNET_KNOCK, "possible ACCEPT tcp dport 22", 4);
        assert!(matches!(r.answer, Answer::NoneUpTo(4)), "{r:?}");
        let r = run(SUBNET_KNOCK, "possible ACCEPT tcp dport 22 under sources 2", 4);
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        let rows: Vec<Vec<&str>> = w.csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 2, "{}", w.csv);
        assert_eq!((rows[0][5], rows[1][5]), ("1234", "22"), "{}", w.csv);
        let (a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
            (rows[0][1].parse().unwrap(), rows[1][1].parse().unwrap());
        assert!(a != b && a.octets()[..3] == b.octets()[..3], "{}", w.csv);
        // Without the shared /24 the second source has no entry.
        let exact = SUBNET_KNOCK.replace(" --mask 255.255.255.0", "");
        let r = run(&exact, "possible ACCEPT tcp dport 22 under sources 3", 4);
        assert!(matches!(r.answer, Answer::NoneUpTo(4)), "{r:?}");
    }

    #[test]
    fn sources_past_the_table_capacity_and_mixed_masks() {
        // More sources than a table holds: a trace of K packets still cannot evict.
        let r = run(LIMITER, "at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s under sources 500", 4);
        assert!(matches!(r.answer, Answer::Witness(_)), "{r:?}");
        assert!(r.info.iter().any(|i| i.contains("beyond the bound")), "{:?}", r.info);
        // The bound itself past the capacity: eviction is not encoded.
        let parsed = crate::load(LIMITER);
        let p = parse_property("never ACCEPT tcp dport 22 ctstate INVALID under sources 500", 0, 1).unwrap();
        let r = prove(&parsed.ruleset, &p, &ProveOptions { k: 101, ..ProveOptions::default() }).unwrap();
        assert!(matches!(&r.answer, Answer::Unknown(w) if w.contains("eviction is not encoded")), "{r:?}");
        // One table under two masks: the shared entries are not encoded.
        let mixed =
            SUBNET_KNOCK.replace("--set --name opened --mask 255.255.255.0", "--set --name opened --mask 255.255.0.0");
        let r = run(&mixed, "possible ACCEPT tcp dport 22 under sources 2", 4);
        assert!(matches!(&r.answer, Answer::Unknown(w) if w.contains("different --mask")), "{r:?}");
        // `sources 0` is bad input.
        let p = parse_property("never ACCEPT tcp dport 22 under sources 0", 0, 1).unwrap();
        assert!(matches!(prove(&parsed.ruleset, &p, &ProveOptions::default()), Err(VerifyError::Input(_))));
    }

    #[test]
    fn from_blacklisted_under_sources_is_about_the_first_address() {
        let r = run(&seed("rules.v4"), "possible ACCEPT tcp dport 22 from blacklisted under sources 2", 4);
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        let rows: Vec<&str> = w.csv.lines().skip(1).collect();
        let first = rows[0].split(',').nth(1).unwrap();
        assert_eq!(rows.last().unwrap().split(',').nth(1).unwrap(), first, "{}", w.csv);
    }

    #[test]
    fn unsupported_attackers_are_unknown() {
        let r = run(LIMITER, "at most 3 ACCEPT tcp dport 22 under flood", 4);
        assert!(matches!(&r.answer, Answer::Unknown(w) if w.contains("`at most N` is not encoded")), "{r:?}");
        assert_eq!(r.exit_code(Quant::Never), 3);
    }

    /// A hashlimit SSH limiter: 1/s with a burst of 3 per source, and SYNs above 4/s
    /// (burst 2) per source and port dropped.
    const HASHLIMITER: &str = "*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --syn -m hashlimit --hashlimit-above 4/sec --hashlimit-burst 2 --hashlimit-mode srcip,dstport --hashlimit-name syn -j DROP
-A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name ssh -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
";

    #[test]
    fn hashlimit_buckets_are_encoded() {
        // 3 tokens and one more within a second: a fifth is impossible, a fourth is not.
        let r = run_default(HASHLIMITER, "at most 4 ACCEPT tcp dport 22 ctstate NEW within 1s");
        assert!(matches!(r.answer, Answer::NoneAtAll(_)), "{r:?}");
        assert!(!r.notes.iter().any(|n| n.contains("hashlimit")), "{r:?}");
        let r = run_default(HASHLIMITER, "at most 3 ACCEPT tcp dport 22 ctstate NEW within 1s");
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        assert_eq!(w.packets, 4, "{}", w.csv);
        // The per-port SYN bucket: two at once, the third dropped until a token is back.
        let r = run_default(HASHLIMITER, "possible DROP tcp dport 80");
        let Answer::Witness(w) = &r.answer else { panic!("{r:?}") };
        assert_eq!(w.packets, 3, "{}", w.csv);
    }

    #[test]
    fn a_shared_hashlimit_bucket_is_left_free_in_proofs() {
        // Keyed by destination port only: every sender drains the same bucket, so "no
        // trace" cannot rest on the attacker's own packets.
        let shared = HASHLIMITER
            .replace("--hashlimit-mode srcip --hashlimit-name ssh", "--hashlimit-mode dstport --hashlimit-name ssh");
        let r = run_default(&shared, "at most 4 ACCEPT tcp dport 22 ctstate NEW within 1s");
        assert!(matches!(&r.answer, Answer::Unknown(w) if w.contains("hashlimit")), "{r:?}");
        let r = run_default(&shared, "at most 3 ACCEPT tcp dport 22 ctstate NEW within 1s");
        assert!(matches!(r.answer, Answer::Witness(_)), "{r:?}");
    }

    /// Every verdict of replaying `csv` through the simulator.
    pub(super) fn verdicts(rs: &Ruleset, csv: &str) -> Vec<Verdict> {
        use crate::sim::{Engine, Ifaces, Outcome, SimConfig};
        let mut engine = Engine::new(rs, SimConfig::default(), Ifaces::default()).expect("simulable");
        let mut trace = crate::trace::csv::CsvTrace::new("t", csv.as_bytes()).unwrap();
        let mut out = Outcome::default();
        let mut v = Vec::new();
        while let Some(mut row) = trace.next_row().unwrap() {
            row.pkt.iface = engine.iface(row.iface.as_str());
            engine.step(crate::trace::to_jiffies(row.time_ns, HZ), &row.pkt, &mut out);
            v.push(out.verdict);
        }
        v
    }

    /// Soundness of the hashlimit encoding against the simulator: random hashlimit
    /// rulesets, `at most N ACCEPT tcp dport 22 ctstate NEW within W`, and every trace
    /// of up to 4 SYNs to ports 22 and 80 with gaps from a small set. No PROVED answer
    /// may have a counterexample among them; a witness has been replayed by `prove`.
    #[test]
    fn hashlimit_answers_agree_with_the_simulator() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let gaps_ms = [0u64, 100, 300, 1000, 2500];
        let (mut proved, mut unbounded, mut falsified) = (0, 0, 0);
        for case in 0..120 {
            let rate = ["1/sec", "2/sec", "1/min", "3/sec"][next(4) as usize];
            let burst = 1 + next(3);
            let mode = ["srcip", "srcip,dstport"][next(2) as usize];
            // Either verb with either target: with `upto … -j DROP` (or `above … -j
            // ACCEPT`) other packets draining the bucket let SSH through.
            let verb = ["upto", "above"][next(2) as usize];
            let target = ["ACCEPT", "DROP"][next(2) as usize];
            let expire = if next(2) == 0 {
                String::new()
            } else {
                format!(" --hashlimit-htable-expire {}", 200 * (1 + next(10)))
            };
            let rules = format!(
                "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                 -A INPUT -p tcp -m tcp --syn -m hashlimit --hashlimit-{verb} {rate} --hashlimit-burst {burst} \
                 --hashlimit-mode {mode}{expire} --hashlimit-name h -j {target}\n\
                 -A INPUT -p tcp -m tcp --dport 22 -j {}\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n",
                if target == "ACCEPT" { "DROP" } else { "ACCEPT" }
            );
            let parsed = crate::load(&rules);
            assert!(!parsed.has_errors(), "{rules}: {:?}", parsed.diagnostics);
            let rs = &parsed.ruleset;
            let n = 1 + next(3) as usize;
            let window_ms = 1000 * (1 + next(3));
            // The shortest simulator trace with n+1 accepted SSH SYNs within the window.
            // The shortest simulator trace of up to `max_len` SYNs to ports 22 and 80 at
            // gaps from `gaps` with n+1 accepted SSH SYNs within the window.
            let search = |max_len: usize, gaps: &[u64]| -> Option<(usize, String)> {
                for len in n + 1..=max_len {
                    for code in 0..(2 * gaps.len()).pow(len as u32) {
                        let mut c = code;
                        let mut csv = String::from("time,src,dst,proto,sport,dport,flags\n");
                        let (mut t, mut times) = (0u64, Vec::new());
                        for i in 0..len {
                            let (port, gap) = ([22, 80][c % 2], gaps[(c / 2) % gaps.len()]);
                            c /= 2 * gaps.len();
                            if i > 0 {
                                t += gap;
                            }
                            times.push((t, port));
                            csv.push_str(&format!(
                                "{}.{:03},203.0.113.7,192.0.2.1,tcp,{},{port},S\n",
                                t / 1000,
                                t % 1000,
                                50000 + i
                            ));
                        }
                        let v = verdicts(rs, &csv);
                        let hits: Vec<u64> = times
                            .iter()
                            .zip(&v)
                            .filter(|((_, p), v)| *p == 22 && **v == Verdict::Accept)
                            .map(|((t, _), _)| *t)
                            .collect();
                        // Whole jiffies: the window compares ticks at HZ 250.
                        let tick = |ms: u64| ms * HZ as u64 / 1000;
                        if hits.windows(n + 1).any(|w| tick(w[n]) - tick(w[0]) <= tick(window_ms)) {
                            return Some((len, csv));
                        }
                    }
                }
                None
            };
            let prop = format!("at most {n} ACCEPT tcp dport 22 ctstate NEW within {}s", window_ms / 1000);
            let r = run(&rules, &prop, 4);
            let mut found = search(4, &gaps_ms);
            if found.is_none() && matches!(r.answer, Answer::NoneAtAll(_)) {
                // Unbounded: longer traces, other packets between the counted ones.
                found = search(6, &[0, 300, 1000]);
            }
            match (&r.answer, &found) {
                (Answer::NoneAtAll(_) | Answer::NoneUpTo(_), Some((len, csv))) => {
                    panic!(
                        "case {case}: {prop}: PROVED ({:?}), but the simulator has {len} packets:\n{rules}\n{csv}",
                        r.answer
                    )
                }
                (Answer::NoneAtAll(_), None) => {
                    proved += 1;
                    unbounded += 1;
                }
                (Answer::NoneUpTo(_), None) => proved += 1,
                (Answer::Witness(_), _) => falsified += 1,
                (Answer::Unknown(_), _) => {}
            }
        }
        eprintln!("random hashlimit properties: {proved} proved ({unbounded} unbounded), {falsified} falsified");
        assert!(proved > 0 && falsified > 0, "{proved} proved, {falsified} falsified");
    }
}
