//! Typed targets (`-j`/`-g`). `Display` prints ` -j NAME opts` exactly as iptables-save.

use std::fmt;

use super::matches::Opaque;
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
            Target::Opaque(o) => &o.module,
        }
    }

    /// The options in canonical save form, each preceded by a space.
    pub fn options(&self) -> &dyn fmt::Display {
        match self {
            Target::Reject(t) => t,
            Target::Log(t) => t,
            Target::Opaque(t) => t,
            Target::Accept | Target::Drop | Target::Return | Target::Queue | Target::Chain(_) => &Nothing,
        }
    }

    /// True when the target always ends traversal of this table (ACCEPT, DROP, REJECT,
    /// QUEUE, NAT targets); false for RETURN, chains and non-terminal extensions.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Target::Accept | Target::Drop | Target::Queue | Target::Reject(_))
    }
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
