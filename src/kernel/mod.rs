//! The kernel backend: replays a scenario against the real Linux kernel, in a throwaway
//! network namespace, and reports what the simulator reports (`check::PacketRecord` per
//! row, `check::FinalRecord` at the end), so the two can be printed alike and compared.
//!
//! Brief overview of one run ([`replay`]):
//! 1. `ip netns add fwv-<pid>-<n>`; sysctls as the simulator assumes (`ip_forward` per
//!    `--forward`, `rp_filter` 0, no redirects, no SYN-ACK retransmissions, IPv6 off for
//!    IPv4 scenarios).
//! 2. From a thread that joined the namespace (`setns`): one TUN device per interface the
//!    scenario names (created there under its final name, so nothing ever appears in the
//!    root namespace), the `--listen` sockets, and a raw socket for reading the tables.
//! 3. The host's addresses on the devices (`--host`, else every unicast destination of the
//!    scenario, on the device it first arrives by), a default route by the first device,
//!    host routes for sources that arrive by another one, and per-device policy routing
//!    so that forwarded packets leave by the device they came in by, as in the simulator.
//! 4. The ruleset through `ip netns exec NS iptables-legacy-restore -w` (ip6tables for
//!    IPv6), plus a helper `security` table (below).
//! 5. Each row at its time in real time (`CLOCK_MONOTONIC`): counters read, the packet
//!    written to its TUN device, everything the host sends read back, counters read again.
//! 6. At the end: all rule counters and `/proc/net/xt_recent/*` (read by a thread in the
//!    namespace through `/proc/thread-self/net`).
//!
//! How results are observed:
//! - **Path**: the counters of every rule are read through `getsockopt(IPT_SO_GET_ENTRIES)`
//!   (what `iptables-save -c` does, in microseconds) before and after each packet; a rule
//!   whose packet counter grew by n appears n times. Rules are named by table, chain and
//!   position, and take their line from the model. The kernel cannot tell the traversal
//!   order, so the path is listed in table order (raw, mangle, nat, filter) and blob order
//!   within a table; compare it as a multiset.
//! - **Verdict**: the `security` table runs after `filter` in INPUT and FORWARD
//!   (SEMANTICS.md §7). A helper rule without target at the top of security INPUT and
//!   FORWARD counts the packets that filter let through: its counter growing means ACCEPT.
//!   Otherwise a REJECT rule whose counter grew means REJECT, else DROP. The helper is a
//!   whole `*security` table appended to the ruleset when it has none (left out of
//!   reports), or a rule inserted at position 1 when it has one (positions shifted back).
//!   A security-table DROP after the helper is seen through that rule's counter or the
//!   chain policy counter.
//! - **Replies**: packets read back from the TUN devices that answer the injected packet
//!   (same addresses and ports reversed, echo id, or an ICMP error quoting it); anything
//!   else the host sends is counted in [`KernelRun::notes`] and otherwise ignored. Only
//!   replies that got out are seen, so their verdict is always ACCEPT.
//! - **TCP**: sequence numbers are kept per flow (fixed ISN per 4-tuple; a new one after a
//!   RST or FIN); the host's ISN comes from its SYN-ACK, so later ACKs are in-window and
//!   conntrack's window tracking accepts them.
//! - **Time**: `/proc/timer_list` gives `jiffies` and `CLOCK_MONOTONIC` at one instant;
//!   the trace starts a quarter of a millisecond after a tick (`clock::after_next_tick`),
//!   as the simulator counts time from a tick boundary. A recent entry's `last_seen` is
//!   reported as `(stamp − jiffies at the start) / HZ`: the simulator's value, or one tick
//!   later for a packet written late or timed just before a tick. HZ is the kernel's,
//!   measured.
//!
//! Architecture invariant: the backend only ever creates and deletes its own namespaces
//! (also on Ctrl-C, through [`cleanup_all`], which the command line wires to SIGINT and
//! SIGTERM) and never touches the root namespace's firewall, routes or devices; all its
//! traffic stays inside the namespace.

pub mod conform;

mod clock;
mod dev;
mod netns;
mod recent;
mod tables;
pub mod wire;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::check::{FinalRecord, PacketRecord, PathStep, RecentRecord, ReplyRecord};
use crate::model::{Family, Hook, Policy, Ruleset, TableName, Target};
use crate::packet::{proto, IfaceId, Packet};
use crate::sim::host::ReplyKind;
use crate::sim::{SimConfig, Verdict};
use crate::trace::Row;
pub use netns::cleanup_all;
use netns::Netns;
use tables::{EntryKind, Reader, Snapshot, TableLayout};
use wire::TcpSeq;

/// Why the kernel backend cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// A prerequisite is missing (root, `/dev/net/tun`, a program).
    #[error("the kernel backend needs {0}")]
    Missing(String),
    /// The scenario asks for something the backend cannot reproduce.
    #[error("{0}")]
    Unsupported(String),
    /// `iptables-legacy-restore` refused the ruleset.
    #[error("iptables-legacy-restore refused the ruleset: {0}")]
    Load(String),
    /// Setting up or talking to the namespace failed.
    #[error("{what}: {err}")]
    Setup {
        /// What was being done.
        what: String,
        /// The error.
        err: io::Error,
    },
    /// The caller's sink failed (e.g. a closed pipe).
    #[error(transparent)]
    Output(io::Error),
}

fn setup(what: impl Into<String>) -> impl FnOnce(io::Error) -> KernelError {
    let what = what.into();
    move |err| KernelError::Setup { what, err }
}

/// What a run found besides the records.
#[derive(Clone, Debug)]
pub struct KernelRun {
    /// Recent tables and counters at the end.
    pub last: FinalRecord,
    /// The kernel's HZ.
    pub hz: u32,
    /// How late the latest packet was written, in nanoseconds (scheduling delays on a
    /// busy machine shift the kernel's stamps by as much).
    pub max_late_ns: u64,
    /// Things worth telling the user (HZ or xt_recent parameters that differ from the
    /// simulation's, packets the host sent that answered nothing).
    pub notes: Vec<String>,
}

/// A system program by absolute path, from the usual directories (root's `PATH`; no
/// environment is read).
fn find_program(name: &str) -> Option<PathBuf> {
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn restore_program(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables-legacy-restore",
        Family::V6 => "ip6tables-legacy-restore",
    }
}

/// Checks what the backend needs: root, `/dev/net/tun`, `ip`, and
/// `iptables-legacy-restore` (or `ip6tables-legacy-restore`).
pub fn check_prerequisites(family: Family) -> Result<(), KernelError> {
    // SAFETY: geteuid never fails.
    if unsafe { libc::geteuid() } != 0 {
        return Err(KernelError::Missing(
            "root: it creates a network namespace and TUN devices (run it with sudo)".into(),
        ));
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(KernelError::Missing("/dev/net/tun (load the tun module: modprobe tun)".into()));
    }
    if find_program("ip").is_none() {
        return Err(KernelError::Missing("`ip` from iproute2 (Debian: apt-get install iproute2)".into()));
    }
    let restore = restore_program(family);
    if find_program(restore).is_none() {
        return Err(KernelError::Missing(format!("`{restore}` (Debian: apt-get install iptables)")));
    }
    Ok(())
}

/// What the replay knows about one entry of a table blob.
#[derive(Clone, Debug, Default)]
struct EntryRole {
    /// How reports name it (`None`: not a reported rule).
    step: Option<PathStep>,
    /// The verdict helper: its counter growing means the packet got through filter.
    helper: bool,
    /// A REJECT rule.
    reject: bool,
    /// A security-table rule or policy that drops, after the helper.
    late_drop: bool,
}

struct TableMap {
    layout: TableLayout,
    roles: Vec<EntryRole>,
    before: Snapshot,
    after: Snapshot,
}

/// Per-flow TCP sequence state, so that the kernel's window tracking accepts the trace.
#[derive(Clone, Copy, Debug)]
struct Flow {
    isn: u32,
    nxt: u32,
    rcv: Option<u32>,
    /// A RST or FIN was sent, or the host reset the flow: a SYN starts a new connection.
    over: bool,
}

type FlowKey = (IpAddr, u16, IpAddr, u16);

#[derive(Debug, Default)]
struct Flows {
    map: HashMap<FlowKey, Flow>,
}

impl Flows {
    fn seq_for(&mut self, p: &Packet) -> TcpSeq {
        let key = (p.src, p.sport, p.dst, p.dport);
        let payload = (p.len as u32).saturating_sub(Packet::header_len(p.src, proto::TCP) as u32);
        let (syn, ack, fin, rst) = (p.flags & 0x02 != 0, p.flags & 0x10 != 0, p.flags & 0x01 != 0, p.flags & 0x04 != 0);
        let prev = self.map.get(&key).copied();
        let mut f = match prev {
            Some(f) if !(syn && !ack && f.over) => f,
            _ => {
                let isn = match prev {
                    Some(f) => f.nxt.wrapping_add(1_000_000),
                    None => ((p.sport as u32) << 16 | p.dport as u32).wrapping_mul(2_654_435_761),
                };
                Flow { isn, nxt: isn, rcv: None, over: false }
            }
        };
        // A SYN without ACK on a live flow is a retransmission: same ISN.
        let seq = if syn && !ack { f.isn } else { f.nxt };
        let end = seq.wrapping_add(payload + syn as u32 + fin as u32);
        if syn && !ack || end.wrapping_sub(f.nxt) as i32 > 0 {
            f.nxt = end;
        }
        if rst || fin {
            f.over = true;
        }
        self.map.insert(key, f);
        TcpSeq { seq, ack: if ack { f.rcv.unwrap_or(0) } else { 0 } }
    }

    fn reply(&mut self, r: &wire::Parsed) {
        let p = &r.pkt;
        let Some(f) = self.map.get_mut(&(p.dst, p.dport, p.src, p.sport)) else { return };
        let (syn, fin, rst) = (p.flags & 0x02 != 0, p.flags & 0x01 != 0, p.flags & 0x04 != 0);
        if rst {
            f.over = true;
            return;
        }
        let end = r.tcp.seq.wrapping_add(r.payload + syn as u32 + fin as u32);
        if syn || f.rcv.is_none_or(|n| end.wrapping_sub(n) as i32 > 0) {
            f.rcv = Some(end);
        }
    }
}

/// Whether `r` (sent by the host) answers `p` (injected).
fn answers(p: &Packet, r: &wire::Parsed) -> bool {
    let q = &r.pkt;
    // An ICMP error names what it answers; its source is whichever address the host
    // picked (for a forwarded packet, its own, not the packet's destination).
    if let Some((s, d, pr, sp, dp)) = r.quoted {
        return q.dst == p.src && s == p.src && d == p.dst && pr == p.proto && sp == p.sport && dp == p.dport;
    }
    if q.src != p.dst || q.dst != p.src {
        return false;
    }
    match q.proto {
        proto::TCP | proto::UDP => q.proto == p.proto && q.sport == p.dport && q.dport == p.sport,
        proto::ICMP => p.proto == proto::ICMP && q.icmp_type == 0 && p.icmp_type == 8 && q.icmp_id == p.icmp_id,
        proto::ICMPV6 => p.proto == proto::ICMPV6 && q.icmp_type == 129 && p.icmp_type == 128 && q.icmp_id == p.icmp_id,
        _ => false,
    }
}

fn reply_kind(r: &Packet, verdict: Verdict) -> ReplyKind {
    let rejected = verdict == Verdict::Reject;
    match r.proto {
        proto::TCP if r.flags & 0x04 != 0 => {
            if rejected {
                ReplyKind::Reject
            } else {
                ReplyKind::Reset
            }
        }
        proto::TCP if r.flags & 0x12 == 0x12 => ReplyKind::SynAck,
        proto::ICMP if r.icmp_type == 0 => ReplyKind::EchoReply,
        proto::ICMPV6 if r.icmp_type == 129 => ReplyKind::EchoReply,
        proto::ICMP if !rejected && r.icmp_type == 3 && r.icmp_code == 3 => ReplyKind::PortUnreachable,
        proto::ICMP if r.icmp_type == 11 => ReplyKind::TimeExceeded,
        proto::ICMPV6 if !rejected && r.icmp_type == 1 && r.icmp_code == 4 => ReplyKind::PortUnreachable,
        proto::ICMP | proto::ICMPV6 => ReplyKind::Reject,
        _ => ReplyKind::Ack,
    }
}

/// How long to wait for the host's replies after a packet, at most (delayed ACKs come
/// after TCP_ATO_MIN = 40 ms).
const SETTLE_NS: u64 = 60_000_000;

/// `SCHED_FIFO` (lowest priority) for the replaying thread while it lives, so that a busy
/// machine delays packets less; silently nothing where it is not allowed. The thread only
/// sleeps, writes and reads (and polls for the next tick, at most 100 ms, before the
/// trace starts), so it cannot starve anything.
struct Realtime(Option<(libc::c_int, libc::sched_param)>);

impl Realtime {
    fn enter() -> Realtime {
        // SAFETY: plain syscalls on the calling thread with valid pointers.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            let mut old = libc::sched_param { sched_priority: 0 };
            if policy < 0 || libc::sched_getparam(0, &mut old) != 0 {
                return Realtime(None);
            }
            let p = libc::sched_param { sched_priority: 1 };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) != 0 {
                return Realtime(None);
            }
            Realtime(Some((policy, old)))
        }
    }
}

impl Drop for Realtime {
    fn drop(&mut self) {
        if let Some((policy, old)) = self.0 {
            // SAFETY: restores what sched_getscheduler/sched_getparam returned.
            unsafe { libc::sched_setscheduler(0, policy, &old) };
        }
    }
}

/// The `*security` table that tells ACCEPT from DROP (see the module docs).
const HELPER_TABLE: &str =
    "*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT\n-A FORWARD\nCOMMIT\n";

/// Everything that lives in the namespace. Fields drop in order: descriptors first, the
/// namespace last.
struct Session {
    tuns: Vec<OwnedFd>,
    _socks: Vec<OwnedFd>,
    reader: Reader,
    ns: Netns,
}

fn write_sysctls(values: &[(&str, &str)], v6_optional: bool) -> io::Result<()> {
    for (k, v) in values {
        let path = format!("/proc/sys/net/{}", k.replace('.', "/"));
        if let Err(e) = std::fs::write(&path, v) {
            if v6_optional && k.starts_with("ipv6.") && e.kind() == io::ErrorKind::NotFound {
                continue;
            }
            return Err(io::Error::new(e.kind(), format!("{path}: {e}")));
        }
    }
    Ok(())
}

/// The devices and addresses a scenario needs.
struct Plan {
    ifaces: Vec<String>,
    /// (address, device index).
    hosts: Vec<(IpAddr, usize)>,
    /// Sources first seen on a device other than the first: (address, device index).
    routes: Vec<(IpAddr, usize)>,
    family: Family,
}

fn plan(ruleset: &Ruleset, rows: &[Row], cfg: &SimConfig) -> Result<Plan, KernelError> {
    let family = ruleset.family();
    let mut ifaces: Vec<String> = Vec::new();
    let mut dsts: Vec<(IpAddr, usize)> = Vec::new();
    let mut srcs: Vec<(IpAddr, usize)> = Vec::new();
    for r in rows {
        let v4 = r.pkt.src.is_ipv4();
        if v4 != (family == Family::V4) {
            return Err(KernelError::Unsupported(format!(
                "row {} (line {}): an IPv{} packet against an IPv{} ruleset",
                r.row,
                r.line,
                if v4 { 4 } else { 6 },
                if v4 { 6 } else { 4 }
            )));
        }
        let name = r.iface.as_str();
        if name == "lo" {
            return Err(KernelError::Unsupported(format!(
                "row {} (line {}): packets on `lo` cannot be injected through a TUN device",
                r.row, r.line
            )));
        }
        let i = match ifaces.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                ifaces.push(name.to_string());
                ifaces.len() - 1
            }
        };
        if !dsts.iter().any(|(a, _)| *a == r.pkt.dst) {
            dsts.push((r.pkt.dst, i));
        }
        if !srcs.iter().any(|(a, _)| *a == r.pkt.src) {
            srcs.push((r.pkt.src, i));
        }
    }
    if ifaces.is_empty() {
        ifaces.push("eth0".into());
    }
    let unicast = |a: &IpAddr| match a {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified() || a.is_loopback()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified() || a.is_loopback()),
    };
    let hosts: Vec<(IpAddr, usize)> = if cfg.hosts.is_empty() {
        dsts.into_iter().filter(|(a, _)| unicast(a)).collect()
    } else {
        cfg.hosts.iter().map(|&a| (a, dsts.iter().find(|(d, _)| *d == a).map_or(0, |(_, i)| *i))).collect()
    };
    let routes = srcs.into_iter().filter(|(a, i)| *i != 0 && unicast(a)).collect();
    Ok(Plan { ifaces, hosts, routes, family })
}

fn open_session(ruleset: &Ruleset, text: &str, plan: &Plan, cfg: &SimConfig) -> Result<Session, KernelError> {
    let v6 = plan.family == Family::V6;
    let ns = Netns::create().map_err(setup("creating a network namespace"))?;
    let forward = if cfg.forward { "1" } else { "0" };
    let mut sysctls = vec![
        ("ipv4.conf.all.rp_filter", "0"),
        ("ipv4.conf.default.rp_filter", "0"),
        ("ipv4.conf.all.send_redirects", "0"),
        ("ipv4.conf.default.send_redirects", "0"),
        ("ipv4.tcp_synack_retries", "0"),
    ];
    if v6 {
        sysctls.extend([
            ("ipv6.conf.all.forwarding", forward),
            ("ipv6.conf.default.accept_dad", "0"),
            ("ipv6.conf.default.dad_transmits", "0"),
            ("ipv6.conf.default.accept_ra", "0"),
            ("ipv6.conf.default.autoconf", "0"),
            ("ipv6.conf.default.router_solicitations", "0"),
        ]);
    } else {
        sysctls.extend([
            ("ipv4.ip_forward", forward),
            ("ipv6.conf.all.disable_ipv6", "1"),
            ("ipv6.conf.default.disable_ipv6", "1"),
        ]);
    }
    let ifaces = &plan.ifaces;
    let listen = &cfg.listen;
    let (tuns, socks, raw) = ns
        .within(|| {
            write_sysctls(&sysctls, !v6)?;
            let tuns = ifaces
                .iter()
                .map(|n| dev::open_tun(n).map_err(|e| io::Error::new(e.kind(), format!("TUN device {n}: {e}"))))
                .collect::<io::Result<Vec<_>>>()?;
            let socks = listen
                .iter()
                .map(|&(p, port)| {
                    dev::listen(v6, p, port).map_err(|e| io::Error::new(e.kind(), format!("listening on {port}: {e}")))
                })
                .collect::<io::Result<Vec<_>>>()?;
            Ok((tuns, socks, dev::raw_socket(v6)?))
        })
        .map_err(setup(format!("setting up namespace {}", ns.name())))?;
    let mut batch = String::from("link set lo up\n");
    for n in ifaces {
        batch += &format!("link set {n} multicast off\nlink set {n} up\n");
    }
    for (a, i) in &plan.hosts {
        let n = &ifaces[*i];
        match a {
            IpAddr::V4(_) => batch += &format!("address add {a}/32 dev {n}\n"),
            IpAddr::V6(_) => batch += &format!("address add {a}/128 dev {n} nodad\n"),
        }
    }
    batch += &format!("route add default dev {}\n", ifaces[0]);
    for (a, i) in &plan.routes {
        batch += &format!("route add {a}/{} dev {}\n", if v6 { 128 } else { 32 }, ifaces[*i]);
    }
    ns.ip_batch(&batch, v6).map_err(setup("configuring the namespace's devices"))?;
    // The simulator forwards a packet out of the interface it came in by.
    let mut rules = String::new();
    for (i, n) in ifaces.iter().enumerate().skip(1) {
        rules += &format!("rule add iif {n} table {}\nroute add default dev {n} table {}\n", 100 + i, 100 + i);
    }
    if !rules.is_empty() {
        ns.ip_batch(&rules, v6).map_err(setup("configuring the namespace's routing"))?;
    }

    let restore = find_program(restore_program(plan.family)).expect("checked by check_prerequisites");
    let restore = restore.to_string_lossy();
    let has_security = ruleset.table(TableName::Security).is_some();
    let mut input = text.to_string();
    if !input.ends_with('\n') {
        input.push('\n');
    }
    if !has_security {
        input += HELPER_TABLE;
    }
    ns.exec(&restore, &["-w"], Some(input.as_bytes())).map_err(|e| KernelError::Load(e.to_string()))?;
    if has_security {
        let prog = if v6 { "ip6tables-legacy" } else { "iptables-legacy" };
        let prog = find_program(prog).ok_or_else(|| KernelError::Missing(format!("`{prog}`")))?;
        for chain in ["INPUT", "FORWARD"] {
            ns.exec(&prog.to_string_lossy(), &["-w", "-t", "security", "-I", chain, "1"], None)
                .map_err(setup("inserting the verdict helper rule"))?;
        }
    }
    let family = plan.family;
    Ok(Session { tuns, _socks: socks, reader: Reader::new(raw, family), ns })
}

/// Names every entry of every loaded table after the model.
fn map_tables(ruleset: &Ruleset, reader: &mut Reader, notes: &mut Vec<String>) -> Result<Vec<TableMap>, KernelError> {
    let has_security = ruleset.table(TableName::Security).is_some();
    let mut maps = Vec::new();
    for name in TableName::ALL {
        let model = ruleset.table(name);
        if model.is_none() && name != TableName::Security {
            continue;
        }
        let layout = reader.layout(name).map_err(setup(format!("reading table {name}")))?;
        let mut roles = Vec::with_capacity(layout.entries.len());
        let mut counts: HashMap<String, u32> = HashMap::new();
        for e in &layout.entries {
            let mut role = EntryRole::default();
            match e {
                EntryKind::Rule { chain, pos } => {
                    let security = name == TableName::Security;
                    let helper_chain = chain == "INPUT" || chain == "FORWARD";
                    if security && helper_chain && (!has_security || *pos == 1) {
                        role.helper = *pos == 1;
                    } else if let Some(t) = model {
                        let pos = if security && helper_chain { pos - 1 } else { *pos };
                        *counts.entry(chain.clone()).or_default() += 1;
                        let rule = t.chain(chain).and_then(|c| c.rules.get(pos as usize - 1));
                        let target = rule.and_then(|r| r.target.as_ref()).map(|t| &t.t);
                        role.reject = matches!(target, Some(Target::Reject(_)));
                        role.late_drop = security && helper_chain && matches!(target, Some(Target::Drop));
                        role.step = Some(PathStep {
                            table: name,
                            chain: chain.clone(),
                            rule: pos,
                            line: rule.map_or(0, |r| r.span.line),
                        });
                    }
                }
                EntryKind::Policy(h) => {
                    let drops = model.and_then(|t| t.chain(h.name())).is_some_and(|c| c.policy == Some(Policy::Drop));
                    role.late_drop = name == TableName::Security && matches!(h, Hook::Input | Hook::Forward) && drops;
                }
                EntryKind::Other => {}
            }
            roles.push(role);
        }
        if let Some(t) = model {
            for c in &t.chains {
                let k = counts.get(&c.name).copied().unwrap_or(0);
                if k as usize != c.rules.len() {
                    notes.push(format!(
                        "the kernel holds {k} rules in {name} {}, the model {}; their lines may be wrong",
                        c.name,
                        c.rules.len()
                    ));
                }
            }
        }
        maps.push(TableMap { layout, roles, before: Vec::new(), after: Vec::new() });
    }
    Ok(maps)
}

fn read_counters(reader: &mut Reader, maps: &mut [TableMap], after: bool) -> Result<(), KernelError> {
    for m in maps {
        let out = if after { &mut m.after } else { &mut m.before };
        reader.counters(&m.layout, out).map_err(setup(format!("reading the counters of table {}", m.layout.name)))?;
    }
    Ok(())
}

fn read_module_param(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/module/xt_recent/parameters/{name}")).ok()?.trim().parse().ok()
}

/// Replays `rows` against the kernel with the ruleset `text` (parsed as `ruleset`), calling
/// `sink` with each row's record as soon as it is known. Takes as long as the trace.
pub fn replay(
    ruleset: &Ruleset,
    text: &str,
    rows: &[Row],
    cfg: &SimConfig,
    sink: &mut dyn FnMut(&PacketRecord) -> io::Result<()>,
) -> Result<KernelRun, KernelError> {
    let plan = plan(ruleset, rows, cfg)?;
    check_prerequisites(plan.family)?;
    let mut notes = Vec::new();
    let mut s = open_session(ruleset, text, &plan, cfg)?;
    let mut maps = map_tables(ruleset, &mut s.reader, &mut notes)?;
    for (param, want) in [("ip_list_tot", cfg.ip_list_tot as u64), ("ip_pkt_list_tot", cfg.ip_pkt_list_tot as u64)] {
        if let Some(have) = read_module_param(param) {
            if have != want {
                notes.push(format!("xt_recent's {param} is {have} in this kernel, the simulation assumed {want}"));
            }
        }
    }

    let start = clock::read_tick().map_err(setup("reading /proc/timer_list"))?;
    let hz = clock::kernel_hz(start).map_err(setup("measuring the kernel's HZ"))?;
    if hz != cfg.hz {
        notes.push(format!("the kernel runs at HZ {hz}, the simulation assumed {}", cfg.hz));
    }
    // The trace starts just after a tick (as the simulator counts time). Real-time
    // priority from here: the wait for the tick and the first packets are on time on a
    // busy machine too (as a normal thread, the wake-up after the wait came up to a
    // scheduler slice, 4 ms, late).
    let realtime = Realtime::enter();
    let start = clock::after_next_tick().map_err(setup("reading /proc/timer_list"))?;
    let mut flows = Flows::default();
    let mut strays = 0usize;
    let mut max_late = 0u64;
    let mut raised = Vec::new();
    for (k, row) in rows.iter().enumerate() {
        let mut pkt = row.pkt;
        let dev = plan.ifaces.iter().position(|n| n == row.iface.as_str()).expect("planned");
        pkt.iface = IfaceId(dev as u16);
        let min = Packet::header_len(pkt.src, pkt.proto);
        if pkt.len < min {
            raised.push(row.row);
        }
        let deadline = start.mono_ns + row.time_ns;
        clock::sleep_until(deadline);
        let seq = if pkt.proto == proto::TCP { flows.seq_for(&pkt) } else { TcpSeq::default() };
        let bytes = wire::build(&pkt, seq, row.row as u16);
        read_counters(&mut s.reader, &mut maps, false)?;
        max_late = max_late.max(clock::mono_ns().saturating_sub(deadline));
        dev::write_packet(&s.tuns[dev], &bytes).map_err(setup(format!(
            "writing row {} to {}",
            row.row,
            row.iface.as_str()
        )))?;
        // Most replies are sent inside the write; delayed ACKs follow within TCP_ATO_MIN
        // (40 ms). Wait for them, but not past the next packet's time.
        let next = rows.get(k + 1).map_or(u64::MAX, |r| start.mono_ns + r.time_ns);
        let settle = next.saturating_sub(clock::mono_ns() + 300_000).min(SETTLE_NS);
        let mut got: Vec<(usize, wire::Parsed)> = Vec::new();
        dev::drain(&s.tuns, settle, |i, b| {
            if let Some(p) = wire::parse(b) {
                got.push((i, p));
            }
        })
        .map_err(setup("reading from the TUN devices"))?;
        read_counters(&mut s.reader, &mut maps, true)?;

        let (mut accepted, mut rejected, mut late_drop) = (false, false, false);
        let mut path = Vec::new();
        for m in &maps {
            for (i, role) in m.roles.iter().enumerate() {
                let n = m.after[i].0.saturating_sub(m.before[i].0);
                if n == 0 {
                    continue;
                }
                accepted |= role.helper;
                rejected |= role.reject;
                late_drop |= role.late_drop;
                if let Some(step) = &role.step {
                    path.extend(std::iter::repeat_n(step.clone(), n as usize));
                }
            }
        }
        let verdict = if accepted && !late_drop {
            Verdict::Accept
        } else if rejected {
            Verdict::Reject
        } else {
            Verdict::Drop
        };
        let mut replies = Vec::new();
        for (i, p) in got {
            if p.pkt.proto == proto::TCP {
                flows.reply(&p);
            }
            if !answers(&pkt, &p) {
                // The forwarded packet itself is not a reply, nor a stray; NAT may have
                // rewritten one of its ends (DNAT the destination, SNAT the source).
                let forwarded = p.pkt.proto == pkt.proto
                    && ((p.pkt.src == pkt.src && p.pkt.sport == pkt.sport)
                        || (p.pkt.dst == pkt.dst && p.pkt.dport == pkt.dport));
                strays += usize::from(!forwarded);
                continue;
            }
            let mut r = p.pkt;
            r.iface = IfaceId(i as u16);
            replies.push(ReplyRecord {
                kind: reply_kind(&r, verdict),
                pkt: r,
                iface: plan.ifaces[i].clone(),
                verdict: Verdict::Accept,
            });
        }
        sink(&PacketRecord { row: *row, verdict, stage: None, path, replies }).map_err(KernelError::Output)?;
    }

    drop(realtime);
    read_counters(&mut s.reader, &mut maps, true)?;
    let mut counters = Vec::new();
    for m in &maps {
        for (i, role) in m.roles.iter().enumerate() {
            if let (Some(step), (p, b)) = (&role.step, m.after[i]) {
                if p > 0 {
                    counters.push((format!("{}:{}:{}", step.table, step.chain, step.rule), (p, b)));
                }
            }
        }
    }
    counters.sort();
    let tables = s.ns.within(read_recent_tables).map_err(setup("reading /proc/net/xt_recent"))?;
    let recent = tables
        .into_iter()
        .map(|(name, entries)| {
            let mut list: Vec<RecentRecord> = entries
                .iter()
                .map(|e| RecentRecord {
                    addr: e.addr,
                    hits: e.stamps.len(),
                    last_seen: (e.last_seen as i64 - start.jiffies as i64) as f64 / hz as f64,
                })
                .collect();
            list.sort_by_key(|e| e.addr);
            (name, list)
        })
        .collect();
    // Started just after a tick, a packet at a whole jiffy lands in the simulator's jiffy
    // unless written most of a tick late: say so from half a tick on.
    if max_late > 500_000_000 / hz as u64 {
        notes.push(format!(
            "packets were sent up to {:.1} ms late (the machine was busy); timing-dependent results may differ",
            max_late as f64 / 1e6
        ));
    }
    if strays > 0 {
        notes.push(format!("the host sent {strays} packet(s) that answered no injected packet; they were ignored"));
    }
    if !raised.is_empty() {
        notes.push(format!(
            "rows {} are shorter than their headers; the kernel got them at header length",
            raised.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    drop(s);
    Ok(KernelRun { last: FinalRecord { recent, counters }, hz, max_late_ns: max_late, notes })
}

/// Every `/proc/net/xt_recent` table of the calling thread's namespace, sorted by name.
fn read_recent_tables() -> io::Result<Vec<(String, Vec<recent::ProcEntry>)>> {
    let dir = Path::new("/proc/thread-self/net/xt_recent");
    let mut out = Vec::new();
    let list = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in list {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(e.path())?;
        out.push((name, text.lines().filter_map(recent::parse_line).collect()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
