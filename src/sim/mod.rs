//! The discrete-event simulator: a compiled ruleset plus kernel state (recent tables,
//! limit buckets, connection tracking, the host's sockets), stepped one packet at a time
//! at a time passed in (smoltcp style: no clock is read here).
//!
//! Architecture invariants: no I/O; `Engine::step` allocates nothing once warm (its
//! output buffers are reused); time is [`Jiffies`] at a configurable HZ.

pub mod compile;
pub mod conntrack;
pub mod hashlimit;
pub mod host;
pub mod limit;
pub mod recent;

#[cfg(test)]
mod ct_tests;
#[cfg(test)]
mod nat_tests;

use std::net::IpAddr;

use crate::model::matches::{ctstate, PortSide, RecentSide};
use crate::model::targets::RejectWith;
use crate::model::{Hook, Policy, Ruleset, TableName};
use crate::packet::{proto, IfaceId, Packet};
use compile::{CMatch, CRule, CTarget};
pub use compile::{Program, RuleId, RuleInfo, Unsupported};
use conntrack::{state_bits, Conntrack, CtRef};

/// The stage at which `ip_forward` drops a packet whose TTL runs out.
const TTL_EXCEEDED: &str = "TTL exceeded in forwarding";

/// Kernel time in ticks (`jiffies`).
pub type Jiffies = u64;

/// `jiffies` at boot on 64-bit kernels: 2^32 − 300·HZ (SEMANTICS.md §3).
pub fn initial_jiffies(hz: u32) -> Jiffies {
    (1u64 << 32) - 300 * hz as u64
}

/// Simulation parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Timer frequency (default 250).
    pub hz: u32,
    /// xt_recent `ip_list_tot` (entries per table, default 100).
    pub ip_list_tot: usize,
    /// xt_recent `ip_pkt_list_tot` (0 = unset).
    pub ip_pkt_list_tot: u32,
    /// The host's addresses; empty = every destination is the host's.
    pub hosts: Vec<IpAddr>,
    /// Open sockets: (protocol, port).
    pub listen: Vec<(u8, u16)>,
    /// Forward packets not addressed to the host (`ip_forward=1`).
    pub forward: bool,
    /// `nf_conntrack_max` (default 262144, the value of a machine with more than 4 GiB
    /// of RAM; read-only inside a network namespace, so the kernel backend always runs
    /// with the machine's value).
    pub conntrack_max: u32,
    /// `nf_conntrack_buckets` (default 262144, likewise), which decides which
    /// connections `early_drop` evicts from a full table.
    pub conntrack_buckets: u32,
}

/// The default `nf_conntrack_max` and `nf_conntrack_buckets`: `nf_conntrack_init_start`
/// gives 262144 buckets on 64-bit machines with more than 4 GiB of RAM, and as many
/// connections (max factor 1).
pub const CONNTRACK_MAX: u32 = 262_144;

/// The stage at which conntrack drops a packet when the table is full and `early_drop`
/// found nothing to evict.
const TABLE_FULL: &str = "conntrack table full (nf_conntrack_max)";

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hz: 250,
            ip_list_tot: 100,
            ip_pkt_list_tot: 0,
            hosts: Vec::new(),
            listen: Vec::new(),
            forward: false,
            conntrack_max: CONNTRACK_MAX,
            conntrack_buckets: CONNTRACK_MAX,
        }
    }
}

/// Interface names seen by the simulator, interned to small ids.
#[derive(Clone, Debug, Default)]
pub struct Ifaces {
    names: Vec<String>,
}

impl Ifaces {
    /// The id of `name`, adding it if new.
    pub fn intern(&mut self, name: &str) -> IfaceId {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return IfaceId(i as u16);
        }
        self.names.push(name.to_string());
        IfaceId(self.names.len() as u16 - 1)
    }
    /// The id of a known name.
    pub fn get(&self, name: &str) -> Option<IfaceId> {
        self.names.iter().position(|n| n == name).map(|i| IfaceId(i as u16))
    }
    /// All names, by id.
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// The name of an id.
    pub fn name(&self, id: IfaceId) -> &str {
        &self.names[id.0 as usize]
    }
}

/// The fate of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Delivered to the host (or forwarded).
    Accept,
    /// Dropped silently.
    Drop,
    /// Dropped by a REJECT rule, which sent a reply.
    Reject,
}

impl Verdict {
    /// `ACCEPT`, `DROP`, `REJECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Drop => "DROP",
            Verdict::Reject => "REJECT",
        }
    }
    /// Parses a verdict name (case-insensitive).
    pub fn parse(s: &str) -> Option<Verdict> {
        [Verdict::Accept, Verdict::Drop, Verdict::Reject].into_iter().find(|v| s.eq_ignore_ascii_case(v.as_str()))
    }
}

/// Where the verdict was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decided {
    /// A rule's target (the last entry of the path).
    Rule(RuleId),
    /// A built-in chain's policy.
    Policy(TableName, Hook),
    /// Dropped by the kernel before any table saw it as local traffic.
    Stage(&'static str),
    /// Delivered without any rule deciding (no table has the hook).
    Default,
}

/// A packet the host sent in answer, and its fate in OUTPUT/POSTROUTING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The packet.
    pub pkt: Packet,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why it was sent.
    pub why: host::ReplyKind,
}

/// Everything `step` reports about one packet. Reused between steps.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// What decided it.
    pub decided: Decided,
    /// Rules whose matches all succeeded, in traversal order (the counters the kernel
    /// bumps), for this packet and then for the host's replies.
    pub path: Vec<RuleId>,
    /// The host's replies.
    pub replies: Vec<Reply>,
    /// Conntrack state of the packet as rules saw it (ctstate bits).
    pub ctstate: u8,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            verdict: Verdict::Drop,
            decided: Decided::Default,
            path: Vec::with_capacity(64),
            replies: Vec::with_capacity(4),
            ctstate: 0,
        }
    }
}

/// Result of one table traversal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TVerdict {
    Accept,
    Drop,
    Reject(RejectWith),
}

/// Sizes of the engine's tables that grow with the traffic ([`Engine::state_sizes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateSizes {
    /// Connections in the conntrack table (expired ones not yet collected included).
    pub conns: usize,
    /// Slots of the connection vector (live and free).
    pub conn_slots: usize,
    /// Sockets of the host (request, established, CLOSE_WAIT).
    pub socks: usize,
    /// ICMP rate-limit peers.
    pub peers: usize,
}

/// The simulator.
pub struct Engine {
    prog: Program,
    cfg: SimConfig,
    /// Interfaces.
    pub ifaces: Ifaces,
    /// Rule counters (packets, bytes), by rule id.
    pub counters: Vec<(u64, u64)>,
    /// Policy counters by chain id.
    pub policy_counters: Vec<(u64, u64)>,
    st: MatchState,
    /// Connection tracking.
    pub conntrack: Conntrack,
    host: host::Host,
    stack: Vec<(u32, u32)>,
    /// Per hook, the tables it runs, in order.
    plans: [Plan; 5],
    started: bool,
    /// Set by NOTRACK / CT --notrack in the raw table for the packet in flight.
    notrack: bool,
    /// The connection of the packet in flight as it ended its way in (`Pending` if its
    /// new connection was dropped before confirmation): what REJECT and the host's ICMP
    /// errors attach to their replies.
    pkt_ct: CtRef,
}

/// INPUT's tables by priority slot (raw, mangle, nat, filter, security): mangle −150,
/// filter 0, security 50, nat (source manip) 100. Other hooks run them in slot order.
const INPUT_ORDER: [u8; 5] = [0, 1, 3, 4, 2];

/// The tables one hook runs, in order: (priority slot, table index).
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    len: u8,
    at: [(u8, u8); 5],
}

impl Plan {
    fn tables(&self) -> &[(u8, u8)] {
        &self.at[..self.len as usize]
    }
}

/// State that matches change as they are evaluated.
struct MatchState {
    recent: Vec<recent::RecentTable>,
    limits: Vec<limit::Bucket>,
    nth: Vec<u32>,
    hashlimits: Vec<hashlimit::Table>,
    /// Per connlimit rule: the connections it has seen.
    connlimits: Vec<Vec<conntrack::Key>>,
    /// Set when a match hot-drops the packet (full hashlimit table).
    hotdrop: bool,
}

/// Per-packet context for match evaluation.
struct Cx {
    now: Jiffies,
    in_dev: Option<IfaceId>,
    out_dev: Option<IfaceId>,
    ct: u8,
    ctref: CtRef,
    local_socket: bool,
    /// The destination is one of the host's addresses (route type LOCAL).
    dst_local: bool,
    /// The source is one of the host's addresses (only with `--host`).
    src_local: bool,
    /// The socket the packet carries, for `-m owner`.
    sock: SockOwner,
}

/// The socket a packet carries as `-m owner` sees it (`skb_to_full_sk`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SockOwner {
    /// No socket, or one without a `struct socket`: incoming and forwarded packets,
    /// REJECT's RST (`nf_send_reset` builds a packet of its own), and the ACKs of a
    /// connection no application has accepted (a child socket is grafted by `accept`).
    None,
    /// A kernel socket, without a file: TCP's control socket (RSTs) and ICMP's (echo
    /// replies, ICMP errors, REJECT's ICMP replies).
    Kernel,
    /// A process's socket: a SYN-ACK carries its request's listener. The host's listening
    /// sockets belong to root (uid 0, gid 0), as the kernel backend's do.
    Process { uid: u32, gid: u32 },
}

/// xt_owner's `owner_mt`.
fn owner_match(o: &compile::OwnerTest, sock: SockOwner) -> bool {
    match sock {
        // `(match ^ invert) == 0`: every option given is negated.
        SockOwner::None => {
            o.socket_exists.is_none_or(|inv| inv) && o.uid.is_none_or(|u| u.0) && o.gid.is_none_or(|g| g.0)
        }
        // `! --socket-exists` with a socket.
        _ if o.socket_exists == Some(true) => false,
        // No file: `((match ^ invert) & (UID | GID)) == 0`.
        SockOwner::Kernel => o.uid.is_none_or(|u| u.0) && o.gid.is_none_or(|g| g.0),
        SockOwner::Process { uid, gid } => {
            o.uid.is_none_or(|(inv, lo, hi)| (lo <= uid && uid <= hi) != inv)
                && o.gid.is_none_or(|(inv, lo, hi)| (lo <= gid && gid <= hi) != inv)
        }
    }
}

impl Engine {
    /// Builds an engine for `rs`. `ifaces` must hold every interface the packets use.
    pub fn new(rs: &Ruleset, cfg: SimConfig, ifaces: Ifaces) -> Result<Engine, Vec<Unsupported>> {
        let prog = compile::compile(rs, &cfg, &ifaces)?;
        let recent = prog
            .recent
            .iter()
            .map(|d| {
                let (m4, m6) = match d.mask {
                    IpAddr::V4(m) => (u32::from(m), u128::MAX),
                    IpAddr::V6(m) => (u32::MAX, u128::from(m)),
                };
                recent::RecentTable::new(&d.name, m4, m6, cfg.ip_list_tot, d.ring)
            })
            .collect();
        let mut by_hook = [[None; 5]; 5];
        let order = [TableName::Raw, TableName::Mangle, TableName::Nat, TableName::Filter, TableName::Security];
        for (ti, t) in prog.tables.iter().enumerate() {
            let slot = order.iter().position(|x| *x == t.name).expect("known table");
            for (h, c) in t.hooks.iter().enumerate() {
                if c.is_some() {
                    by_hook[h][slot] = Some(ti as u8);
                }
            }
        }
        let mut plans = [Plan::default(); 5];
        for (h, plan) in plans.iter_mut().enumerate() {
            let slots = if h == Hook::Input as usize { INPUT_ORDER } else { [0, 1, 2, 3, 4] };
            for slot in slots {
                if let Some(ti) = by_hook[h][slot as usize] {
                    plan.at[plan.len as usize] = (slot, ti);
                    plan.len += 1;
                }
            }
        }
        let start = initial_jiffies(cfg.hz);
        let limits = prog.limits.iter().map(|l| limit::Bucket::new(l.avg, l.burst, cfg.hz, start)).collect();
        Ok(Engine {
            counters: vec![(0, 0); prog.rules.len()],
            policy_counters: vec![(0, 0); prog.chains.len()],
            stack: Vec::with_capacity(prog.max_depth + 1),
            conntrack: Conntrack::new(cfg.hz, cfg.conntrack_max, cfg.conntrack_buckets),
            host: host::Host::new(&cfg),
            st: MatchState {
                recent,
                limits,
                nth: prog.nth.clone(),
                hashlimits: prog.hashlimits.iter().map(|h| hashlimit::Table::new(h, cfg.hz)).collect(),
                connlimits: vec![Vec::with_capacity(16); prog.connlimits as usize],
                hotdrop: false,
            },
            notrack: false,
            pkt_ct: CtRef::Invalid,
            plans,
            prog,
            cfg,
            ifaces,
            started: false,
        })
    }

    /// The id of interface `name`, interning it (and extending every compiled interface
    /// test) the first time it is seen.
    pub fn iface(&mut self, name: &str) -> IfaceId {
        if let Some(id) = self.ifaces.get(name) {
            return id;
        }
        let id = self.ifaces.intern(name);
        for r in &mut self.prog.rules {
            for t in [r.ip.in_iface.as_mut(), r.ip.out_iface.as_mut()].into_iter().flatten() {
                t.matches.push(t.name.matches(name));
            }
        }
        compile::build_prefilter(&mut self.prog);
        id
    }

    /// The compiled program (rule names for reports).
    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The recent tables.
    pub fn recent_tables(&self) -> &[recent::RecentTable] {
        &self.st.recent
    }

    /// How many entries the engine's growing tables hold (for memory checks).
    pub fn state_sizes(&self) -> StateSizes {
        StateSizes {
            conns: self.conntrack.len(),
            conn_slots: self.conntrack.slots(),
            socks: self.host.socks_len(),
            peers: self.host.peers_len(),
        }
    }

    /// Tells the engine which packet comes after the one about to be stepped, so that its
    /// connection-table lookup can start early (a cache prefetch, see
    /// [`Conntrack::prefetch`]). Optional; changes no result.
    #[inline]
    pub fn prefetch(&self, next: &Packet) {
        self.conntrack.prefetch(next);
    }

    /// Runs one packet arriving on `pkt.iface` at `now`, and the host's replies to it.
    pub fn step(&mut self, now: Jiffies, pkt: &Packet, out: &mut Outcome) {
        if !self.started {
            // Buckets are created when the ruleset is loaded, just before the trace.
            for (b, d) in self.st.limits.iter_mut().zip(&self.prog.limits) {
                *b = limit::Bucket::new(d.avg, d.burst, self.cfg.hz, now);
            }
            self.started = true;
        }
        out.path.clear();
        out.replies.clear();
        self.conntrack.gc(now);
        // `pkt` as the host and the routing decision see it, after destination NAT.
        let mut natted = *pkt;
        let (verdict, decided, ct) = self.receive(now, &mut natted, &mut out.path);
        let pkt = &natted;
        out.verdict = verdict;
        out.decided = decided;
        out.ctstate = ct;
        // The host answers what it received, and REJECT answers for the firewall.
        let mut replies: [Option<(Packet, host::ReplyKind, CtRef)>; 2] = [None, None];
        match decided {
            Decided::Rule(r) if verdict == Verdict::Reject => {
                if let CTarget::Reject(with) = self.prog.rules[r as usize].target {
                    replies[0] = self.host.reject_reply(pkt, with, now);
                }
            }
            Decided::Stage(TTL_EXCEEDED) => replies[0] = self.host.time_exceeded(pkt, now),
            _ if verdict == Verdict::Accept && self.host.is_local(pkt.dst) => {
                replies[0] = self.host.answer(pkt, now);
            }
            _ => {}
        }
        // REJECT's RST (`nf_send_reset`) and every ICMP error the host sends (REJECT's and
        // port unreachable, through `icmp_glue_bits`) carry the offending packet's
        // connection (`nf_ct_attach`): they are RELATED and conntrack in OUTPUT leaves them
        // alone (found by `fwverify conform`, tests/data/conform/reject.csv: a tcp-reset
        // RST passes `OUTPUT -m state --state RELATED`). A packet without a connection
        // gives nothing to attach: the reply is tracked like any packet, and an ICMP error
        // is then RELATED only when it quotes a tracked connection (`icmp_error`).
        // `nf_send_reset` also moves a confirmed TCP connection to CLOSE
        // (`nf_ct_set_closing`).
        let had_ct = matches!(self.pkt_ct, CtRef::Pending | CtRef::Existing(..));
        for (rp, kind, _) in replies.iter().flatten() {
            let icmp_error = matches!(
                kind,
                host::ReplyKind::Reject | host::ReplyKind::PortUnreachable | host::ReplyKind::TimeExceeded
            ) && matches!(rp.proto, proto::ICMP | proto::ICMPV6);
            let reset = *kind == host::ReplyKind::Reject && rp.proto == proto::TCP;
            let attached = if (icmp_error || reset) && had_ct {
                if reset {
                    self.conntrack.set_closing(self.pkt_ct, now);
                }
                Some(CtRef::Related)
            } else if icmp_error {
                Some(if self.conntrack.tracks(pkt, now) { CtRef::Related } else { CtRef::Invalid })
            } else {
                None
            };
            let sock = match kind {
                host::ReplyKind::SynAck => SockOwner::Process { uid: 0, gid: 0 },
                host::ReplyKind::Ack => SockOwner::None,
                host::ReplyKind::Reject if reset => SockOwner::None,
                _ => SockOwner::Kernel,
            };
            let mut sent = *rp;
            let v = self.send(now, &mut sent, attached, sock, &mut out.path);
            out.replies.push(Reply { pkt: sent, verdict: v, why: *kind });
        }
    }

    /// Incoming path: PREROUTING, routing, INPUT or FORWARD, confirm.
    /// `pkt` is rewritten by the NAT binding of its connection as it goes (destination
    /// NAT in PREROUTING, source NAT in INPUT/POSTROUTING).
    fn receive(&mut self, now: Jiffies, pkt: &mut Packet, path: &mut Vec<RuleId>) -> (Verdict, Decided, u8) {
        let mut ct = CtRef::Invalid;
        let mut tracked = false;
        let mut mark = 0u32;
        let mut last = Decided::Default;
        let hook = Hook::Prerouting;
        self.notrack = false;
        let dst_local = self.host.is_local(pkt.dst);
        // raw PREROUTING runs before conntrack.
        let plan = self.plans[Hook::Prerouting as usize];
        for &(slot, ti) in plan.tables() {
            if slot >= 1 && !tracked {
                ct = if self.notrack { CtRef::Untracked } else { self.conntrack.packet_in(pkt, now) };
                tracked = true;
                if !self.notrack && self.conntrack.table_full() {
                    self.pkt_ct = CtRef::Invalid;
                    return (Verdict::Drop, Decided::Stage(TABLE_FULL), ctstate::INVALID);
                }
            }
            if slot == 2 && !matches!(ct, CtRef::Pending) {
                continue; // nat only sees the first packet of a connection
            }
            let cx = Cx {
                now,
                in_dev: Some(pkt.iface),
                out_dev: None,
                ct: state_bits(ct, &self.conntrack),
                ctref: ct,
                local_socket: false,
                dst_local,
                src_local: self.host.is_own(pkt.src),
                sock: SockOwner::None,
            };
            match self.run_table(ti as usize, hook, pkt, &cx, &mut mark, path, &mut last) {
                TVerdict::Accept => {}
                v => return self.dropped(v, last, ct),
            }
        }
        if !tracked {
            ct = if self.notrack { CtRef::Untracked } else { self.conntrack.packet_in(pkt, now) };
            if !self.notrack && self.conntrack.table_full() {
                self.pkt_ct = CtRef::Invalid;
                return (Verdict::Drop, Decided::Stage(TABLE_FULL), ctstate::INVALID);
            }
        }
        // nat PREROUTING (−100): destination manip, before the routing decision.
        self.conntrack.translate(ct, pkt, false);
        let dst_local = self.host.is_local(pkt.dst);
        let ctbits = state_bits(ct, &self.conntrack);
        if let Some(why) = self.host.martian(pkt, &self.ifaces) {
            self.conntrack.abort();
            return (Verdict::Drop, Decided::Stage(why), ctbits);
        }
        let local = self.host.is_local(pkt.dst);
        let hook = if local {
            Hook::Input
        } else if self.cfg.forward {
            Hook::Forward
        } else {
            self.conntrack.abort();
            return (Verdict::Drop, Decided::Stage("not addressed to the host and forwarding is off"), ctbits);
        };
        let h = hook as usize;
        let out_dev = if local { None } else { Some(pkt.iface) };
        // `ip_forward` drops a packet whose TTL would expire (`ttl <= 1`, before the FORWARD
        // hook) and otherwise decrements the TTL (`ip_decrease_ttl`) before NF_INET_FORWARD,
        // so FORWARD and POSTROUTING see it one lower: `-m ttl` sees the new value and
        // xt_recent adds the one back (found by `fwverify conform`,
        // tests/data/conform/forward-ttl.csv); `step` sends the ICMP time exceeded.
        if hook == Hook::Forward && pkt.ttl <= 1 {
            self.pkt_ct = ct;
            self.conntrack.abort();
            return (Verdict::Drop, Decided::Stage(TTL_EXCEEDED), ctbits);
        }
        if hook == Hook::Forward {
            pkt.ttl = pkt.ttl.wrapping_sub(1);
        }
        // INPUT: mangle −150, filter 0, security 50, nat (source manip) 100 (`plans`).
        let plan = self.plans[h];
        for &(slot, ti) in plan.tables() {
            if slot == 2 && !matches!(ct, CtRef::Pending) {
                continue;
            }
            let cx = Cx {
                now,
                in_dev: Some(pkt.iface),
                out_dev,
                ct: state_bits(ct, &self.conntrack),
                ctref: ct,
                local_socket: false,
                dst_local,
                src_local: self.host.is_own(pkt.src),
                sock: SockOwner::None,
            };
            let before = last;
            match self.run_table(ti as usize, hook, pkt, &cx, &mut mark, path, &mut last) {
                TVerdict::Accept if slot == 2 && local => {
                    // nat INPUT runs after filter but only binds: what decided the
                    // packet's fate is still filter's (or security's) verdict.
                    last = before;
                }
                TVerdict::Accept => {}
                v => return self.dropped(v, last, ct),
            }
        }
        if hook == Hook::Input {
            self.conntrack.translate(ct, pkt, true);
        }
        if hook == Hook::Forward {
            // Forwarded packets leave through POSTROUTING (no input device there).
            let plan = self.plans[Hook::Postrouting as usize];
            for &(slot, ti) in plan.tables() {
                if slot == 2 && !matches!(ct, CtRef::Pending) {
                    continue;
                }
                let cx = Cx {
                    now,
                    in_dev: None,
                    out_dev: Some(pkt.iface),
                    ct: state_bits(ct, &self.conntrack),
                    ctref: ct,
                    local_socket: false,
                    dst_local,
                    src_local: self.host.is_own(pkt.src),
                    sock: SockOwner::None,
                };
                match self.run_table(ti as usize, Hook::Postrouting, pkt, &cx, &mut mark, path, &mut last) {
                    TVerdict::Accept => {}
                    v => return self.dropped(v, last, ct),
                }
            }
            self.conntrack.translate(ct, pkt, true);
        }
        self.pkt_ct = self.conntrack.confirm(ct);
        (Verdict::Accept, last, ctbits)
    }

    fn dropped(&mut self, v: TVerdict, last: Decided, ct: CtRef) -> (Verdict, Decided, u8) {
        let bits = state_bits(ct, &self.conntrack);
        self.pkt_ct = ct;
        self.conntrack.abort();
        match v {
            TVerdict::Reject(_) => (Verdict::Reject, last, bits),
            _ => (Verdict::Drop, last, bits),
        }
    }

    /// Outgoing path of a host-generated packet: OUTPUT then POSTROUTING, then confirm.
    /// `attached`: the connection the packet carries from its making (`nf_ct_attach`),
    /// which conntrack keeps (and NOTRACK cannot replace).
    /// `pkt` is rewritten by its connection's NAT binding (destination after nat OUTPUT,
    /// source after nat POSTROUTING): on return it is what leaves the host.
    fn send(
        &mut self,
        now: Jiffies,
        pkt: &mut Packet,
        attached: Option<CtRef>,
        sock: SockOwner,
        path: &mut Vec<RuleId>,
    ) -> Verdict {
        let mut mark = 0u32;
        let mut last = Decided::Default;
        let mut ct = CtRef::Invalid;
        let mut tracked = false;
        self.notrack = false;
        for hook in [Hook::Output, Hook::Postrouting] {
            let plan = self.plans[hook as usize];
            let mut manipulated = false;
            // Conntrack runs after raw OUTPUT (−200), the NAT manip right after nat (OUTPUT
            // −100: destination; POSTROUTING 100: source), whether or not the tables are
            // there: the last entry (slot 5) stands for the end of the hook.
            for &(slot, ti) in plan.tables().iter().chain(&[(5, 0)]) {
                if hook == Hook::Output && slot >= 1 && !tracked {
                    ct = match attached {
                        Some(a) => a,
                        None if self.notrack => CtRef::Untracked,
                        None => self.conntrack.packet_in_near(pkt, now, self.pkt_ct),
                    };
                    tracked = true;
                    if attached.is_none() && !self.notrack && self.conntrack.table_full() {
                        return Verdict::Drop;
                    }
                }
                if slot >= 3 && !manipulated {
                    manipulated = true;
                    let src_manip = hook == Hook::Postrouting;
                    if ct == CtRef::Related {
                        // REJECT's and ICMP errors' replies go back through the offending
                        // packet's binding (`nf_nat_icmp_reply_translation` for the
                        // outer header; a RST is a RELATED packet of the connection).
                        if let Some(c) = self.conntrack.conn_of(self.pkt_ct) {
                            let reply = !matches!(self.pkt_ct, CtRef::Existing(_, true));
                            c.translate(pkt, reply, src_manip);
                        }
                    } else {
                        self.conntrack.translate(ct, pkt, src_manip);
                    }
                }
                if slot == 5 || (slot == 2 && !matches!(ct, CtRef::Pending)) {
                    continue;
                }
                let cx = Cx {
                    now,
                    in_dev: None,
                    out_dev: Some(pkt.iface),
                    ct: state_bits(ct, &self.conntrack),
                    ctref: ct,
                    local_socket: false,
                    dst_local: self.host.is_local(pkt.dst),
                    src_local: self.host.is_own(pkt.src),
                    sock,
                };
                if self.run_table(ti as usize, hook, pkt, &cx, &mut mark, path, &mut last) != TVerdict::Accept {
                    self.conntrack.abort();
                    return Verdict::Drop;
                }
            }
        }
        self.conntrack.confirm(ct);
        Verdict::Accept
    }

    /// `ipt_do_table` for one table at one hook.
    #[allow(clippy::too_many_arguments)]
    fn run_table(
        &mut self,
        ti: usize,
        hook: Hook,
        pkt: &Packet,
        cx: &Cx,
        mark: &mut u32,
        path: &mut Vec<RuleId>,
        last: &mut Decided,
    ) -> TVerdict {
        // `Hook` variants are declared in `Hook::ALL` order (checked by a test).
        let Some(start) = self.prog.tables[ti].hooks[hook as usize] else { return TVerdict::Accept };
        let mut chain = start;
        let mut i = self.prog.chains[chain as usize].first;
        if i == self.prog.chains[chain as usize].end {
            return self.policy(start, pkt, last, hook, ti); // an empty built-in chain
        }
        self.stack.clear();
        let (v4, src, dst) = match (pkt.src, pkt.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (true, u32::from(s), u32::from(d)),
            _ => (false, 0, 0),
        };
        let ci = compile::class_index(pkt.proto);
        let facts = compile::PreFacts {
            v4,
            src,
            dst,
            in_bit: compile::iface_bit(cx.in_dev),
            out_bit: compile::iface_bit(cx.out_dev),
            sport: pkt.sport,
            dport: pkt.dport,
            flags: pkt.flags,
            ct: cx.ct,
        };
        let next = &self.prog.next[ci];
        let pre = &self.prog.pre;
        let mut end = self.prog.chains[chain as usize].end;
        loop {
            // Rules whose prefilter fails would fail without side effects: skip them.
            i = next[i as usize];
            while i < end {
                let p = &pre[i as usize];
                if p.run != u32::MAX {
                    let r = &self.prog.runs[p.run as usize];
                    if !r.hit(&facts) {
                        i = r.after[ci];
                        continue;
                    }
                }
                if p.pass(&facts) {
                    break;
                }
                i = p.after[ci];
            }
            if i >= end {
                // Fell off the end: return to the caller, or the policy of a built-in.
                match self.stack.pop() {
                    Some((ret_chain, ret_i)) => {
                        chain = ret_chain;
                        i = ret_i;
                        end = self.prog.chains[chain as usize].end;
                        continue;
                    }
                    None => return self.policy(start, pkt, last, hook, ti),
                }
            }
            let rule = &self.prog.rules[i as usize];
            let p = &pre[i as usize];
            if p.full
                && ((p.ip && !ip_match(rule, pkt, cx))
                    || !eval_matches(&self.prog, &mut self.st, &self.conntrack, rule, pkt, cx, hook, *mark))
            {
                if self.st.hotdrop {
                    self.st.hotdrop = false;
                    *last = Decided::Stage("hot-dropped by a match (hashlimit table full)");
                    return TVerdict::Drop;
                }
                i += 1;
                continue;
            }
            let k = &mut self.counters[i as usize];
            k.0 += 1;
            k.1 += pkt.len as u64;
            path.push(i);
            match rule.target {
                CTarget::Accept => {
                    *last = Decided::Rule(i);
                    return TVerdict::Accept;
                }
                CTarget::Drop => {
                    *last = Decided::Rule(i);
                    return TVerdict::Drop;
                }
                CTarget::Reject(w) => {
                    *last = Decided::Rule(i);
                    return TVerdict::Reject(w);
                }
                CTarget::Continue => i += 1,
                CTarget::Mark { value, mask } => {
                    *mark = (*mark & !mask) ^ value;
                    i += 1;
                }
                CTarget::Connmark(ref c) => {
                    if let Some(ctm) = self.conntrack.mark(cx.ctref) {
                        let (nf, ctm2) = c.apply(*mark, ctm);
                        *mark = nf;
                        self.conntrack.set_mark(cx.ctref, ctm2);
                    }
                    i += 1;
                }
                CTarget::Notrack => {
                    self.notrack = true;
                    i += 1;
                }
                CTarget::Nat(n) => {
                    let (a, p) = if n.src { (pkt.src, pkt.sport) } else { (pkt.dst, pkt.dport) };
                    let to = n.pick(a, p, &self.cfg.hosts, hook == Hook::Output);
                    self.conntrack.set_nat(cx.ctref, n.src, to);
                    *last = Decided::Rule(i);
                    return TVerdict::Accept;
                }
                CTarget::Return => match self.stack.pop() {
                    Some((ret_chain, ret_i)) => {
                        chain = ret_chain;
                        i = ret_i;
                        end = self.prog.chains[chain as usize].end;
                    }
                    None => return self.policy(start, pkt, last, hook, ti),
                },
                CTarget::Jump(to) => {
                    self.stack.push((chain, i + 1));
                    chain = to;
                    i = self.prog.chains[to as usize].first;
                    end = self.prog.chains[to as usize].end;
                }
                CTarget::Goto(to) => {
                    chain = to;
                    i = self.prog.chains[to as usize].first;
                    end = self.prog.chains[to as usize].end;
                }
            }
        }
    }

    fn policy(&mut self, chain: u32, pkt: &Packet, last: &mut Decided, hook: Hook, ti: usize) -> TVerdict {
        let k = &mut self.policy_counters[chain as usize];
        k.0 += 1;
        k.1 += pkt.len as u64;
        *last = Decided::Policy(self.prog.tables[ti].name, hook);
        match self.prog.chains[chain as usize].policy {
            Some(Policy::Drop) => TVerdict::Drop,
            _ => TVerdict::Accept,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_matches(
    prog: &Program,
    st: &mut MatchState,
    ct: &Conntrack,
    rule: &CRule,
    pkt: &Packet,
    cx: &Cx,
    hook: Hook,
    mark: u32,
) -> bool {
    let (a, b) = rule.matches;
    for m in &prog.matches[a as usize..b as usize] {
        let ok = match m {
            CMatch::True => true,
            CMatch::Tcp { sport, dport, flags, option } => {
                pkt.proto == proto::TCP
                        && port_ok(sport, pkt.sport)
                        && port_ok(dport, pkt.dport)
                        && flags.is_none_or(|f| f.val.matches(pkt.flags) != f.inv)
                        // Scenario packets carry no TCP options.
                        && option.is_none_or(|o| o.inv)
            }
            CMatch::Udp { sport, dport } => {
                pkt.proto == proto::UDP && port_ok(sport, pkt.sport) && port_ok(dport, pkt.dport)
            }
            CMatch::Icmp(t) => {
                pkt.proto == proto::ICMP && t.is_none_or(|t| t.val.matches(pkt.icmp_type, pkt.icmp_code) != t.inv)
            }
            CMatch::Multiport(m) => {
                let _ = PortSide::Src;
                pkt.has_ports() && m.hits(pkt.sport, pkt.dport) != m.inv
            }
            CMatch::State { inv, bits } => (cx.ct & bits != 0) != *inv,
            CMatch::Recent(c) => {
                let addr = match c.side {
                    RecentSide::Source => pkt.src,
                    RecentSide::Dest => pkt.dst,
                };
                // The TTL as seen before forwarding (SEMANTICS.md §3).
                let forwardish = matches!(hook, Hook::Forward | Hook::Output | Hook::Postrouting);
                let ttl = if forwardish && !cx.local_socket { pkt.ttl.wrapping_add(1) } else { pkt.ttl };
                st.recent[c.table as usize].eval(c, addr, ttl, cx.now)
            }
            CMatch::Mark { inv, value, mask } => ((mark & mask) == *value) != *inv,
            CMatch::Length { inv, min, max } => (pkt.len >= *min && pkt.len <= *max) != *inv,
            CMatch::Ttl(t) => t.matches(pkt.ttl),
            CMatch::Tcpmss { inv } => *inv,
            _ => eval_rare(st, ct, m, pkt, cx),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The matches [`eval_matches`] leaves out of line: rarely used, and reading parts of the
/// engine (limit buckets, hashlimit and connlimit tables, the connection) that, inlined,
/// the compiler loads on every rule evaluated.
#[inline(never)]
fn eval_rare(st: &mut MatchState, ct: &Conntrack, m: &CMatch, pkt: &Packet, cx: &Cx) -> bool {
    match m {
        CMatch::Limit(id) => st.limits[*id as usize].take(cx.now),
        CMatch::Owner(o) => owner_match(o, cx.sock),
        CMatch::False => false,
        CMatch::Conntrack(m) => ct_match(m, ct, cx, pkt),
        CMatch::Connmark { inv, value, mask } => match ct.mark(cx.ctref) {
            Some(m) => ((m & mask) == *value) != *inv,
            None => false,
        },
        CMatch::Iprange(r) => {
            r.src.as_ref().is_none_or(|s| s.val.contains(pkt.src) != s.inv)
                && r.dst.as_ref().is_none_or(|d| d.val.contains(pkt.dst) != d.inv)
        }
        CMatch::Icmp6 { inv, ty, code_min, code_max } => {
            pkt.proto == proto::ICMPV6
                && (pkt.icmp_type == *ty && pkt.icmp_code >= *code_min && pkt.icmp_code <= *code_max) != *inv
        }
        CMatch::Pkttype { inv, ty } => (pkt_type(pkt, cx) == *ty) != *inv,
        CMatch::Addrtype(a) => {
            a.src.is_none_or(|s| (addr_type(pkt.src, cx, cx.src_local) & s.val != 0) != s.inv)
                && a.dst.is_none_or(|d| (addr_type(pkt.dst, cx, cx.dst_local) & d.val != 0) != d.inv)
        }
        CMatch::Nth { id, every, inv } => {
            // xt_statistic: the counter runs 0..=every-1 from `--packet`; the packet
            // that brings it back to 0 matches.
            let c = &mut st.nth[*id as usize];
            *c = if *c + 1 >= *every { 0 } else { *c + 1 };
            (*c == 0) != *inv
        }
        CMatch::Physdev(d) => {
            // Scenario packets are never bridged: the match holds only when every
            // given test is negated (xt_physdev without bridge info).
            d.in_dev.as_ref().is_none_or(|x| x.inv)
                && d.out_dev.as_ref().is_none_or(|x| x.inv)
                && d.is_in.is_none_or(|x| x)
                && d.is_out.is_none_or(|x| x)
                && d.is_bridged.is_none_or(|x| x)
        }
        CMatch::Hashlimit { table, above } => match st.hashlimits[*table as usize].eval(pkt, cx.now) {
            Some(under) => under != *above,
            None => {
                st.hotdrop = true;
                false
            }
        },
        CMatch::Connlimit { id, above, limit, mask, daddr } => {
            let seen = &mut st.connlimits[*id as usize];
            let n = connlimit_count(seen, ct, cx, pkt, *mask, *daddr);
            if *above {
                n > *limit
            } else {
                n <= *limit
            }
        }
        _ => unreachable!("evaluated inline by eval_matches"),
    }
}

#[inline(never)]
fn ct_match(m: &crate::model::matches::Conntrack, ct: &Conntrack, cx: &Cx, _pkt: &Packet) -> bool {
    use crate::model::matches::{ctstatus, CtDir};
    let conn = match cx.ctref {
        CtRef::Existing(id, _) => Some(ct.conn(id).clone()),
        CtRef::Pending => ct.pending_conn().cloned(),
        _ => None,
    };
    if let Some(s) = m.state {
        // SNAT/DNAT: the connection's binding changes the tuple (as bound so far).
        let bits = cx.ct | conn.as_ref().map_or(0, |c| c.nat_bits());
        if (bits & s.val != 0) == s.inv {
            return false;
        }
    }
    let tests_beyond_state = m.tests_connection();
    let Some(c) = conn else {
        // Without a connection only the state test is evaluated: `conntrack_mt` returns
        // `match_flags & XT_CONNTRACK_STATE` (true when a state test was given and passed).
        let _ = tests_beyond_state;
        return m.state.is_some();
    };
    let o = c.orig;
    let r = c.reply();
    let addr_ok = |t: &Option<crate::model::Neg<crate::model::matches::AddrMask>>, a: std::net::IpAddr| {
        t.as_ref().is_none_or(|t| t.val.contains(a) != t.inv)
    };
    let port_ok2 = |t: &Option<crate::model::Neg<crate::model::PortRange>>, p: u16| {
        t.as_ref().is_none_or(|t| t.val.contains(p) != t.inv)
    };
    if let Some(p) = m.proto {
        if (o.proto() == p.val) == p.inv {
            return false;
        }
    }
    if !addr_ok(&m.orig_src, o.src())
        || !addr_ok(&m.orig_dst, o.dst())
        || !addr_ok(&m.repl_src, r.src())
        || !addr_ok(&m.repl_dst, r.dst())
        || !port_ok2(&m.orig_src_port, o.sport())
        || !port_ok2(&m.orig_dst_port, o.dport())
        || !port_ok2(&m.repl_src_port, r.sport())
        || !port_ok2(&m.repl_dst_port, r.dport())
    {
        return false;
    }
    if let Some(s) = m.status {
        let mut bits = 0;
        if c.seen_reply {
            bits |= ctstatus::SEEN_REPLY;
        }
        if c.assured {
            bits |= ctstatus::ASSURED;
        }
        if matches!(cx.ctref, CtRef::Existing(..)) {
            bits |= ctstatus::CONFIRMED;
        }
        if (bits & s.val != 0) == s.inv {
            return false;
        }
    }
    if let Some(e) = m.expire {
        let left = c.expires.saturating_sub(cx.now) / ct.hz();
        let inside = left >= e.val.0 as u64 && left <= e.val.1 as u64;
        if inside == e.inv {
            return false;
        }
    }
    if let Some(d) = m.dir {
        let reply = matches!(cx.ctref, CtRef::Existing(_, true));
        if (d == CtDir::Reply) != reply {
            return false;
        }
    }
    true
}

fn pkt_type(pkt: &Packet, cx: &Cx) -> crate::model::matches::PktType {
    use crate::model::matches::PktType;
    match pkt.dst {
        IpAddr::V4(d) if d.is_broadcast() => PktType::Broadcast,
        IpAddr::V4(d) if d.is_multicast() => PktType::Multicast,
        IpAddr::V6(d) if d.is_multicast() => PktType::Multicast,
        // A TUN/Ethernet frame addressed to this host's link address.
        _ if cx.in_dev.is_some() || cx.dst_local => PktType::Unicast,
        _ => PktType::Unicast,
    }
}

/// The route type of an address as `-m addrtype` sees it.
fn addr_type(a: IpAddr, _cx: &Cx, local: bool) -> u16 {
    const UNICAST: u16 = 1 << 1;
    const LOCAL: u16 = 1 << 2;
    const BROADCAST: u16 = 1 << 3;
    const MULTICAST: u16 = 1 << 5;
    match a {
        IpAddr::V4(v) if v.is_broadcast() => BROADCAST,
        IpAddr::V4(v) if v.is_multicast() => MULTICAST,
        IpAddr::V6(v) if v.is_multicast() => MULTICAST,
        IpAddr::V4(v) if v.is_loopback() => LOCAL,
        IpAddr::V6(v) if v.is_loopback() => LOCAL,
        _ if local => LOCAL,
        _ => UNICAST,
    }
}

fn connlimit_count(
    seen: &mut Vec<conntrack::Key>,
    ct: &Conntrack,
    cx: &Cx,
    pkt: &Packet,
    mask: u8,
    daddr: bool,
) -> u32 {
    let key = match cx.ctref {
        CtRef::Existing(id, _) => ct.conn(id).orig,
        _ => Conntrack::key(pkt),
    };
    seen.retain(|k| ct.is_open(k, cx.now) || *k == key);
    if !seen.contains(&key) {
        seen.push(key);
    }
    let pick = |k: &conntrack::Key| if daddr { k.dst() } else { k.src() };
    let w = if pick(&key).is_ipv4() { 32 } else { 128 };
    let m = crate::model::Cidr::with_prefix(pick(&key), mask.min(w));
    seen.iter().filter(|k| m.is_some_and(|m| m.contains(pick(k)))).count() as u32
}

fn port_ok(p: &Option<crate::model::Neg<crate::model::PortRange>>, v: u16) -> bool {
    p.is_none_or(|r| r.val.contains(v) != r.inv)
}

fn ip_match(rule: &CRule, pkt: &Packet, cx: &Cx) -> bool {
    let ip = &rule.ip;
    // The protocol first: the cheapest test, and the one that most often fails.
    if let Some(p) = &ip.proto {
        if (p.val == pkt.proto) == p.inv {
            return false;
        }
    }
    if let Some(s) = &ip.src {
        if s.val.contains(pkt.src) == s.inv {
            return false;
        }
    }
    if let Some(d) = &ip.dst {
        if d.val.contains(pkt.dst) == d.inv {
            return false;
        }
    }
    if let Some(t) = &ip.in_iface {
        if !t.eval(cx.in_dev) {
            return false;
        }
    }
    if let Some(t) = &ip.out_iface {
        if !t.eval(cx.out_dev) {
            return false;
        }
    }
    // Scenario packets are never fragments; with conntrack they would be reassembled.
    if let Some(inv) = ip.fragment {
        if !inv {
            return false;
        }
    }
    let _ = ctstate::NEW;
    true
}
