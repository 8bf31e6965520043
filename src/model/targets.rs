//! Typed targets (`-j`/`-g`). Each target's `Display` prints its options exactly as
//! `iptables-legacy-save` 1.8.9 does (SEMANTICS.md §1.5), each preceded by a space.
//!
//! Values are stored the way the kernel stores them after iptables has normalised them:
//! MARK and CONNMARK as value/mask pairs, NAT ranges as typed addresses and ports.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use super::matches::Opaque;
use super::net::PortRange;
use super::print::quote;

/// What a rule does when all its matches succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `ACCEPT`
    Accept,
    /// `DROP`
    Drop,
    /// `RETURN`
    Return,
    /// `QUEUE`
    Queue,
    /// A user chain (`-j CHAIN` or `-g CHAIN`).
    Chain(String),
    /// `REJECT`
    Reject(Reject),
    /// `LOG`
    Log(Log),
    /// `NFLOG`
    Nflog(Nflog),
    /// `MARK`
    Mark(Mark),
    /// `CONNMARK`
    Connmark(Connmark),
    /// `CT`
    Ct(Ct),
    /// `NOTRACK` (the kernel's `CT --notrack`, saved under its own name).
    Notrack,
    /// `TCPMSS`
    Tcpmss(Tcpmss),
    /// `DNAT`
    Dnat(Dnat),
    /// `SNAT`
    Snat(Snat),
    /// `MASQUERADE`
    Masquerade(Masquerade),
    /// `REDIRECT`
    Redirect(Redirect),
    /// A target fwverify does not model, kept verbatim.
    Opaque(Opaque),
}

impl Target {
    /// The name written after `-j`.
    pub fn name(&self) -> &str {
        match self {
            Target::Accept => "ACCEPT",
            Target::Drop => "DROP",
            Target::Return => "RETURN",
            Target::Queue => "QUEUE",
            Target::Chain(c) => c,
            Target::Reject(_) => "REJECT",
            Target::Log(_) => "LOG",
            Target::Nflog(_) => "NFLOG",
            Target::Mark(_) => "MARK",
            Target::Connmark(_) => "CONNMARK",
            Target::Ct(_) => "CT",
            Target::Notrack => "NOTRACK",
            Target::Tcpmss(_) => "TCPMSS",
            Target::Dnat(_) => "DNAT",
            Target::Snat(_) => "SNAT",
            Target::Masquerade(_) => "MASQUERADE",
            Target::Redirect(_) => "REDIRECT",
            Target::Opaque(o) => &o.module,
        }
    }

    /// The options in canonical save form, each preceded by a space.
    pub fn options(&self) -> &dyn fmt::Display {
        match self {
            Target::Reject(t) => t,
            Target::Log(t) => t,
            Target::Nflog(t) => t,
            Target::Mark(t) => t,
            Target::Connmark(t) => t,
            Target::Ct(t) => t,
            Target::Tcpmss(t) => t,
            Target::Dnat(t) => t,
            Target::Snat(t) => t,
            Target::Masquerade(t) => t,
            Target::Redirect(t) => t,
            Target::Opaque(t) => t,
            Target::Accept | Target::Drop | Target::Return | Target::Queue | Target::Chain(_) | Target::Notrack => {
                &Nothing
            }
        }
    }

    /// What traversal does after this target fired (SEMANTICS.md §7).
    ///
    /// - [`Flow::Accept`]: ACCEPT, and the NAT targets DNAT, SNAT, MASQUERADE, REDIRECT
    ///   (they set up the binding and return `NF_ACCEPT`; later tables and hooks still run).
    /// - [`Flow::Drop`]: DROP, and REJECT (which sends its reply first).
    /// - [`Flow::Queue`]: QUEUE and NFQUEUE.
    /// - [`Flow::Return`]: RETURN. [`Flow::Chain`]: `-j`/`-g` to a user chain.
    /// - [`Flow::Continue`]: LOG, NFLOG, MARK, CONNMARK, CT, NOTRACK, TCPMSS and other
    ///   targets that change the packet or its connection and go on with the next rule.
    /// - [`Flow::Unknown`]: an unmodelled target whose behaviour fwverify does not know.
    pub fn flow(&self) -> Flow {
        match self {
            Target::Accept | Target::Dnat(_) | Target::Snat(_) | Target::Masquerade(_) | Target::Redirect(_) => {
                Flow::Accept
            }
            Target::Drop | Target::Reject(_) => Flow::Drop,
            Target::Queue => Flow::Queue,
            Target::Return => Flow::Return,
            Target::Chain(_) => Flow::Chain,
            Target::Log(_)
            | Target::Nflog(_)
            | Target::Mark(_)
            | Target::Connmark(_)
            | Target::Ct(_)
            | Target::Notrack
            | Target::Tcpmss(_) => Flow::Continue,
            Target::Opaque(o) => match o.module.as_str() {
                "NETMAP" => Flow::Accept,
                "NFQUEUE" => Flow::Queue,
                "AUDIT" | "CHECKSUM" | "CLASSIFY" | "CONNSECMARK" | "DSCP" | "ECN" | "HL" | "HMARK" | "IDLETIMER"
                | "LED" | "RATEEST" | "SECMARK" | "SET" | "TCPOPTSTRIP" | "TEE" | "TOS" | "TRACE" | "TTL" | "ULOG" => {
                    Flow::Continue
                }
                _ => Flow::Unknown,
            },
        }
    }

    /// True for a verdict: the target always ends traversal of this table for the packet
    /// (ACCEPT, DROP, REJECT, QUEUE, and the ACCEPT-like NAT targets). False for RETURN,
    /// chains, targets that continue with the next rule, and unknown targets.
    pub fn is_verdict(&self) -> bool {
        matches!(self.flow(), Flow::Accept | Flow::Drop | Flow::Queue)
    }

    /// True when the target always ends traversal of this table: the same as
    /// [`Target::is_verdict`].
    pub fn is_terminal(&self) -> bool {
        self.is_verdict()
    }
}

/// What a target does to rule traversal; see [`Target::flow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Ends this table's traversal, packet accepted.
    Accept,
    /// Ends traversal, packet dropped.
    Drop,
    /// Ends traversal, packet queued to userspace.
    Queue,
    /// Back to the calling chain (or the policy in a built-in chain).
    Return,
    /// Into a user chain.
    Chain,
    /// On to the next rule.
    Continue,
    /// Not known (unmodelled target).
    Unknown,
}

struct Nothing;
impl fmt::Display for Nothing {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// `REJECT --reject-with`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectWith {
    /// icmp-net-unreachable (code 0)
    NetUnreachable,
    /// icmp-host-unreachable (code 1)
    HostUnreachable,
    /// icmp-proto-unreachable (code 2)
    ProtoUnreachable,
    /// icmp-port-unreachable (code 3, default)
    PortUnreachable,
    /// icmp-net-prohibited (code 9)
    NetProhibited,
    /// icmp-host-prohibited (code 10)
    HostProhibited,
    /// icmp-admin-prohibited (code 13)
    AdminProhibited,
    /// tcp-reset
    TcpReset,
    /// IPv6: icmp6-no-route
    Icmp6NoRoute,
    /// IPv6: icmp6-adm-prohibited
    Icmp6AdmProhibited,
    /// IPv6: icmp6-addr-unreachable
    Icmp6AddrUnreachable,
    /// IPv6: icmp6-port-unreachable (IPv6 default)
    Icmp6PortUnreachable,
    /// IPv6: icmp6-policy-fail
    Icmp6PolicyFail,
    /// IPv6: icmp6-reject-route
    Icmp6RejectRoute,
}

impl RejectWith {
    /// Canonical names and accepted aliases (libipt_REJECT / libip6t_REJECT).
    pub const NAMES: &'static [(&'static str, &'static str, RejectWith)] = &[
        ("icmp-net-unreachable", "net-unreach", RejectWith::NetUnreachable),
        ("icmp-host-unreachable", "host-unreach", RejectWith::HostUnreachable),
        ("icmp-proto-unreachable", "proto-unreach", RejectWith::ProtoUnreachable),
        ("icmp-port-unreachable", "port-unreach", RejectWith::PortUnreachable),
        ("icmp-net-prohibited", "net-prohib", RejectWith::NetProhibited),
        ("icmp-host-prohibited", "host-prohib", RejectWith::HostProhibited),
        ("icmp-admin-prohibited", "admin-prohib", RejectWith::AdminProhibited),
        ("tcp-reset", "tcp-rst", RejectWith::TcpReset),
        ("icmp6-no-route", "no-route", RejectWith::Icmp6NoRoute),
        ("icmp6-adm-prohibited", "adm-prohibited", RejectWith::Icmp6AdmProhibited),
        ("icmp6-addr-unreachable", "addr-unreach", RejectWith::Icmp6AddrUnreachable),
        ("icmp6-port-unreachable", "port-unreach", RejectWith::Icmp6PortUnreachable),
        ("icmp6-policy-fail", "policy-fail", RejectWith::Icmp6PolicyFail),
        ("icmp6-reject-route", "reject-route", RejectWith::Icmp6RejectRoute),
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        RejectWith::NAMES.iter().find(|(_, _, r)| *r == self).map(|(n, _, _)| *n).unwrap_or("?")
    }

    /// The ICMP code sent for an ICMPv4 reject type.
    pub fn icmp_code(self) -> Option<u8> {
        Some(match self {
            RejectWith::NetUnreachable => 0,
            RejectWith::HostUnreachable => 1,
            RejectWith::ProtoUnreachable => 2,
            RejectWith::PortUnreachable => 3,
            RejectWith::NetProhibited => 9,
            RejectWith::HostProhibited => 10,
            RejectWith::AdminProhibited => 13,
            _ => return None,
        })
    }
}

/// `-j REJECT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The reply sent.
    pub with: RejectWith,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " --reject-with {}", self.with.as_str())
    }
}

/// `-j LOG`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Log {
    /// `--log-prefix` (≤ 29 bytes).
    pub prefix: Option<String>,
    /// `--log-level` 0–7 (default 4, not printed).
    pub level: u8,
    /// `--log-tcp-sequence`
    pub tcp_sequence: bool,
    /// `--log-tcp-options`
    pub tcp_options: bool,
    /// `--log-ip-options`
    pub ip_options: bool,
    /// `--log-uid`
    pub uid: bool,
    /// `--log-macdecode`
    pub macdecode: bool,
}

impl fmt::Display for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.prefix {
            write!(f, " --log-prefix {}", quote(p))?;
        }
        if self.level != 4 {
            write!(f, " --log-level {}", self.level)?;
        }
        for (on, name) in [
            (self.tcp_sequence, "log-tcp-sequence"),
            (self.tcp_options, "log-tcp-options"),
            (self.ip_options, "log-ip-options"),
            (self.uid, "log-uid"),
            (self.macdecode, "log-macdecode"),
        ] {
            if on {
                write!(f, " --{name}")?;
            }
        }
        Ok(())
    }
}

/// How much of the packet NFLOG copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NflogLen {
    /// `--nflog-size N`: copy N bytes (saved even when 0).
    Size(u32),
    /// `--nflog-range N`: the obsolete option the kernel ignores (saved when ≠ 0).
    Range(u32),
}

/// `-j NFLOG`: send the packet to an nfnetlink_log group; traversal continues.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Nflog {
    /// `--nflog-prefix` (1–63 bytes; longer prefixes are cut to 63).
    pub prefix: Option<String>,
    /// `--nflog-group` (default 0, not printed).
    pub group: u16,
    /// `--nflog-size` or `--nflog-range`.
    pub len: Option<NflogLen>,
    /// `--nflog-threshold` (default 0, not printed).
    pub threshold: u16,
}

impl fmt::Display for Nflog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.prefix.as_deref().filter(|p| !p.is_empty()) {
            write!(f, " --nflog-prefix {}", quote(p))?;
        }
        if self.group != 0 {
            write!(f, " --nflog-group {}", self.group)?;
        }
        match self.len {
            Some(NflogLen::Size(n)) => write!(f, " --nflog-size {n}")?,
            Some(NflogLen::Range(n)) if n != 0 => write!(f, " --nflog-range {n}")?,
            _ => {}
        }
        if self.threshold != 0 {
            write!(f, " --nflog-threshold {}", self.threshold)?;
        }
        Ok(())
    }
}

/// `-j MARK`, in the kernel's one form `--set-xmark VALUE/MASK`:
/// `mark = (mark & !mask) ^ value`. `--set-mark V/M` is `V/(V|M)`, `--and-mark B` is
/// `0/!B`, `--or-mark B` is `B/B`, `--xor-mark B` is `B/0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mark {
    /// Bits XORed in after masking.
    pub value: u32,
    /// Bits cleared first.
    pub mask: u32,
}

impl Mark {
    /// The new packet mark.
    pub fn apply(&self, mark: u32) -> u32 {
        (mark & !self.mask) ^ self.value
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " --set-xmark {:#x}/{:#x}", self.value, self.mask)
    }
}

/// What CONNMARK does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnmarkMode {
    /// `--set-xmark VALUE/CTMASK`: `ctmark = (ctmark & !ctmask) ^ value` (also from
    /// `--set-mark`, `--and-mark`, `--or-mark`, `--xor-mark`, converted as for MARK).
    Set {
        /// Bits XORed in.
        value: u32,
        /// Bits cleared first.
        ctmask: u32,
    },
    /// `--save-mark`: `ctmark = (ctmark & !ctmask) ^ shift(nfmark & nfmask)`.
    Save {
        /// Packet-mark bits copied.
        nfmask: u32,
        /// Connection-mark bits replaced.
        ctmask: u32,
    },
    /// `--restore-mark`: `nfmark = (nfmark & !nfmask) ^ shift(ctmark & ctmask)`.
    Restore {
        /// Packet-mark bits replaced.
        nfmask: u32,
        /// Connection-mark bits copied.
        ctmask: u32,
    },
}

/// `-j CONNMARK` (revision 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Connmark {
    /// The operation.
    pub mode: ConnmarkMode,
    /// `--right-shift-mark` when true, else `--left-shift-mark`.
    pub shift_right: bool,
    /// Shift distance 0–31 (0 = none, not printed).
    pub shift_bits: u8,
}

impl Connmark {
    fn shift(&self, v: u32) -> u32 {
        let b = u32::from(self.shift_bits);
        if self.shift_right {
            v.checked_shr(b).unwrap_or(0)
        } else {
            v.checked_shl(b).unwrap_or(0)
        }
    }

    /// The new `(packet mark, connection mark)`, as `xt_connmark` computes them.
    pub fn apply(&self, nfmark: u32, ctmark: u32) -> (u32, u32) {
        match self.mode {
            ConnmarkMode::Set { value, ctmask } => (nfmark, self.shift((ctmark & !ctmask) ^ value)),
            ConnmarkMode::Save { nfmask, ctmask } => (nfmark, (ctmark & !ctmask) ^ self.shift(nfmark & nfmask)),
            ConnmarkMode::Restore { nfmask, ctmask } => ((nfmark & !nfmask) ^ self.shift(ctmark & ctmask), ctmark),
        }
    }
}

impl fmt::Display for Connmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            ConnmarkMode::Set { value, ctmask } => write!(f, " --set-xmark {value:#x}/{ctmask:#x}")?,
            ConnmarkMode::Save { nfmask, ctmask } => {
                write!(f, " --save-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}")?
            }
            ConnmarkMode::Restore { nfmask, ctmask } => {
                write!(f, " --restore-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}")?
            }
        }
        if self.shift_bits != 0 {
            let dir = if self.shift_right { "right" } else { "left" };
            write!(f, " --{dir}-shift-mark {}", self.shift_bits)?;
        }
        Ok(())
    }
}

/// Conntrack event names of `CT --ctevents`, in save order; bit `i` of [`Ct::ctevents`]
/// is `CT_EVENTS[i]`.
pub const CT_EVENTS: &[&str] =
    &["new", "related", "destroy", "reply", "assured", "protoinfo", "helper", "mark", "natseqinfo", "secmark"];

/// Expectation event names of `CT --expevents` (bit `i` of [`Ct::expevents`]).
pub const CT_EXP_EVENTS: &[&str] = &["new"];

/// `CT --zone`, `--zone-orig`, `--zone-reply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CtZone {
    /// Zone number (ignored when `from_mark`).
    pub id: u16,
    /// `mark`: the zone is the packet mark.
    pub from_mark: bool,
    /// Applies to the original direction (`--zone-orig`).
    pub orig: bool,
    /// Applies to the reply direction (`--zone-reply`). Neither or both = `--zone`.
    pub reply: bool,
}

impl CtZone {
    /// True when iptables-save prints the zone (a mark zone or a non-zero id).
    pub fn is_set(&self) -> bool {
        self.from_mark || self.id != 0
    }
}

/// `-j CT` (revision 2): conntrack settings for the connection a packet starts.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ct {
    /// `--notrack`: do not track (the packet is UNTRACKED); the kernel then ignores the rest.
    pub notrack: bool,
    /// `--helper NAME` (≤ 15 bytes).
    pub helper: Option<String>,
    /// `--timeout NAME`: a timeout policy created with `nfct timeout add`.
    pub timeout: Option<String>,
    /// `--ctevents` bit set over [`CT_EVENTS`].
    pub ctevents: u16,
    /// `--expevents` bit set over [`CT_EXP_EVENTS`].
    pub expevents: u16,
    /// The zone.
    pub zone: CtZone,
}

fn write_events(f: &mut fmt::Formatter<'_>, opt: &str, names: &[&str], bits: u16) -> fmt::Result {
    if bits == 0 {
        return Ok(());
    }
    write!(f, " --{opt} ")?;
    let mut sep = "";
    for (i, n) in names.iter().enumerate() {
        if bits & (1 << i) != 0 {
            write!(f, "{sep}{n}")?;
            sep = ",";
        }
    }
    Ok(())
}

impl fmt::Display for Ct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.notrack {
            f.write_str(" --notrack")?;
        }
        if let Some(h) = self.helper.as_deref().filter(|h| !h.is_empty()) {
            write!(f, " --helper {h}")?;
        }
        if let Some(t) = self.timeout.as_deref().filter(|t| !t.is_empty()) {
            write!(f, " --timeout {t}")?;
        }
        write_events(f, "ctevents", CT_EVENTS, self.ctevents)?;
        write_events(f, "expevents", CT_EXP_EVENTS, self.expevents)?;
        let z = self.zone;
        if z.is_set() {
            let dir = match (z.orig, z.reply) {
                (true, false) => "-orig",
                (false, true) => "-reply",
                _ => "",
            };
            if z.from_mark {
                write!(f, " --zone{dir} mark")?;
            } else {
                write!(f, " --zone{dir} {}", z.id)?;
            }
        }
        Ok(())
    }
}

/// `-j TCPMSS`: rewrite the MSS option of TCP SYN packets; traversal continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tcpmss {
    /// `--set-mss N` (0–65515).
    SetMss(u16),
    /// `--clamp-mss-to-pmtu`: path MTU minus 40 (FORWARD, OUTPUT, POSTROUTING only).
    ClampPmtu,
}

impl fmt::Display for Tcpmss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tcpmss::SetMss(n) => write!(f, " --set-mss {n}"),
            Tcpmss::ClampPmtu => f.write_str(" --clamp-mss-to-pmtu"),
        }
    }
}

/// Ports of a NAT mapping: `LO[-HI][/BASE]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NatPorts {
    /// The port range mapped to (never reversed: iptables refuses that).
    pub range: PortRange,
    /// Shifted port map base (`/BASE`, DNAT only; SNAT and MASQUERADE keep the flag but
    /// lose the number, so it reads 0).
    pub base: Option<u16>,
}

impl fmt::Display for NatPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.range.lo)?;
        if self.range.hi != self.range.lo {
            write!(f, "-{}", self.range.hi)?;
        }
        if let Some(b) = self.base {
            write!(f, "/{b}")?;
        }
        Ok(())
    }
}

/// Where DNAT/SNAT map to: `[ADDR[-ADDR]][:PORTS]` (IPv6 addresses in brackets when
/// ports follow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct NatRange {
    /// First and last address (equal for one address); `None` keeps the address.
    pub addrs: Option<(IpAddr, IpAddr)>,
    /// Ports; `None` keeps the port (or picks one when it clashes).
    pub ports: Option<NatPorts>,
}

impl fmt::Display for NatRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((lo, hi)) = self.addrs {
            let brackets = lo.is_ipv6() && self.ports.is_some();
            if brackets {
                f.write_str("[")?;
            }
            write!(f, "{}", ntop(lo))?;
            if hi != lo {
                write!(f, "-{}", ntop(hi))?;
            }
            if brackets {
                f.write_str("]")?;
            }
        }
        if let Some(p) = &self.ports {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// An address as glibc's `inet_ntop` writes it: like Rust's `Display`, except that an
/// IPv4-compatible IPv6 address (first 96 bits zero, seventh 16-bit word non-zero, e.g.
/// `::1:80`) is written dotted (`::0.1.0.128`), as iptables-save prints it.
pub fn ntop(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(a) => {
            let w = a.segments();
            if w[..6].iter().all(|x| *x == 0) && w[6] != 0 {
                let [.., b0, b1, b2, b3] = a.octets();
                return format!("::{b0}.{b1}.{b2}.{b3}");
            }
            Ipv6Addr::from(w).to_string()
        }
        IpAddr::V4(a) => a.to_string(),
    }
}

/// `-j DNAT` (nat PREROUTING and OUTPUT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dnat {
    /// `--to-destination`.
    pub to: NatRange,
    /// `--random`
    pub random: bool,
    /// `--persistent`
    pub persistent: bool,
}

impl fmt::Display for Dnat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " --to-destination {}", self.to)?;
        write_flags(f, self.random, false, self.persistent)
    }
}

fn write_flags(f: &mut fmt::Formatter<'_>, random: bool, fully: bool, persistent: bool) -> fmt::Result {
    for (on, name) in [(random, "random"), (fully, "random-fully"), (persistent, "persistent")] {
        if on {
            write!(f, " --{name}")?;
        }
    }
    Ok(())
}

/// `-j SNAT` (nat POSTROUTING and INPUT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snat {
    /// `--to-source`.
    pub to: NatRange,
    /// `--random`
    pub random: bool,
    /// `--random-fully`
    pub random_fully: bool,
    /// `--persistent`
    pub persistent: bool,
}

impl fmt::Display for Snat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " --to-source {}", self.to)?;
        write_flags(f, self.random, self.random_fully, self.persistent)
    }
}

/// `-j MASQUERADE` (nat POSTROUTING): SNAT to the outgoing interface's address.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Masquerade {
    /// `--to-ports`.
    pub ports: Option<NatPorts>,
    /// `--random`
    pub random: bool,
    /// `--random-fully`
    pub random_fully: bool,
}

impl fmt::Display for Masquerade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.ports {
            write!(f, " --to-ports {p}")?;
        }
        write_flags(f, self.random, self.random_fully, false)
    }
}

/// `-j REDIRECT` (nat PREROUTING and OUTPUT): DNAT to the incoming interface's primary
/// address (127.0.0.1 / ::1 for locally generated packets).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Redirect {
    /// `--to-ports`.
    pub ports: Option<NatPorts>,
    /// `--random`
    pub random: bool,
}

impl fmt::Display for Redirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.ports {
            write!(f, " --to-ports {p}")?;
        }
        write_flags(f, self.random, false, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(table: &str, rule: &str) -> Target {
        let parsed = crate::load(&format!("*{table}\n-A {rule}\nCOMMIT\n"));
        assert!(!parsed.has_errors(), "{rule}: {:?}", parsed.diagnostics);
        let t = &parsed.ruleset.tables[0];
        let r = t.chains.iter().flat_map(|c| &c.rules).next().expect("one rule");
        r.target.as_ref().expect("a target").t.clone()
    }

    #[test]
    fn verdict_or_continue() {
        for (table, rule) in [
            ("nat", "PREROUTING -j DNAT --to 1.2.3.4"),
            ("nat", "POSTROUTING -j SNAT --to 1.2.3.4"),
            ("nat", "POSTROUTING -j MASQUERADE"),
            ("nat", "PREROUTING -j REDIRECT"),
        ] {
            let t = target(table, rule);
            assert_eq!(t.flow(), Flow::Accept, "{rule}");
            assert!(t.is_verdict() && t.is_terminal(), "{rule}");
        }
        for (table, rule) in [
            ("mangle", "PREROUTING -j MARK --set-mark 1"),
            ("mangle", "PREROUTING -j CONNMARK --save-mark"),
            ("raw", "PREROUTING -j CT --notrack"),
            ("raw", "PREROUTING -j NOTRACK"),
            ("mangle", "FORWARD -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu"),
            ("filter", "INPUT -j NFLOG"),
            ("filter", "INPUT -j LOG"),
        ] {
            let t = target(table, rule);
            assert_eq!(t.flow(), Flow::Continue, "{rule}");
            assert!(!t.is_verdict() && !t.is_terminal(), "{rule}");
        }
        assert_eq!(Target::Drop.flow(), Flow::Drop);
        assert!(target("filter", "INPUT -j REJECT").is_terminal());
        assert_eq!(Target::Return.flow(), Flow::Return);
        assert!(!Target::Return.is_terminal());
        assert_eq!(Target::Chain("X".into()).flow(), Flow::Chain);
        assert_eq!(Target::Queue.flow(), Flow::Queue);
    }

    #[test]
    fn mark_arithmetic() {
        // --set-xmark V/M: (mark & !M) ^ V
        assert_eq!(Mark { value: 0x5, mask: u32::MAX }.apply(0xabcd), 0x5);
        assert_eq!(Mark { value: 0x10, mask: 0xf0 }.apply(0xff), 0x1f);
        assert_eq!(Mark { value: 0, mask: !3 }.apply(0xff), 0x3); // --and-mark 3
        assert_eq!(Mark { value: 1, mask: 1 }.apply(0x10), 0x11); // --or-mark 1
        assert_eq!(Mark { value: 3, mask: 0 }.apply(0x1), 0x2); // --xor-mark 3
    }

    #[test]
    fn connmark_arithmetic() {
        let set = Connmark { mode: ConnmarkMode::Set { value: 7, ctmask: 0xff }, shift_right: false, shift_bits: 0 };
        assert_eq!(set.apply(0x1, 0x1234), (0x1, 0x1207));
        let save =
            Connmark { mode: ConnmarkMode::Save { nfmask: 0xf, ctmask: 0xf0 }, shift_right: false, shift_bits: 4 };
        assert_eq!(save.apply(0x3, 0xfff), (0x3, 0xf3f));
        let restore =
            Connmark { mode: ConnmarkMode::Restore { nfmask: 0xff, ctmask: 0xf0 }, shift_right: true, shift_bits: 4 };
        assert_eq!(restore.apply(0x1234, 0x5a), (0x1205, 0x5a));
    }

    #[test]
    fn addresses_like_inet_ntop() {
        let v6 = |s: &str| ntop(IpAddr::V6(s.parse().unwrap()));
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1:80"), "::0.1.0.128");
        assert_eq!(v6("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(v6("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(v6("::100"), "::100");
        assert_eq!(v6("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
        assert_eq!(ntop(IpAddr::V4([10, 0, 0, 1].into())), "10.0.0.1");
    }

    #[test]
    fn nat_range_text() {
        let p = |lo, hi, base| Some(NatPorts { range: PortRange { lo, hi }, base });
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::9".parse().unwrap();
        assert_eq!(
            NatRange { addrs: Some((a, b)), ports: p(80, 90, Some(100)) }.to_string(),
            "[2001:db8::1-2001:db8::9]:80-90/100"
        );
        assert_eq!(NatRange { addrs: Some((a, a)), ports: None }.to_string(), "2001:db8::1");
        assert_eq!(NatRange { addrs: None, ports: p(80, 80, None) }.to_string(), ":80");
    }
}
