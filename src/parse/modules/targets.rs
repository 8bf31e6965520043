//! Built-in verdicts, REJECT and LOG.

use super::{bad, o, req, twice, Arg, Cx, OptDef, TargetParser, Val};
use crate::diag::Diagnostic;
use crate::model::targets::{Log, Reject, RejectWith};
use crate::model::{Family, Proto, TableName, Target};

pub(super) fn target_parser(name: &str, family: Family) -> Option<Box<dyn TargetParser>> {
    Some(match name {
        "ACCEPT" => Box::new(Simple(Target::Accept)),
        "DROP" => Box::new(Simple(Target::Drop)),
        "RETURN" => Box::new(Simple(Target::Return)),
        "QUEUE" => Box::new(Simple(Target::Queue)),
        "REJECT" => Box::new(RejectP(None, family)),
        "LOG" => Box::new(LogP(Log { level: 4, ..Log::default() })),
        _ => return None,
    })
}

struct Simple(Target);

impl TargetParser for Simple {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn opts(&self) -> &'static [OptDef] {
        &[]
    }
    fn take(&mut self, _: usize, _: &str, _: bool, _: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        Err(Diagnostic::error("E0101", cx.at, format!("{} takes no options", self.0.name())))
    }
    fn finish(self: Box<Self>, _: &mut Cx) -> Result<Target, Diagnostic> {
        Ok(self.0)
    }
}

struct RejectP(Option<RejectWith>, Family);

const REJECT_OPTS: &[OptDef] = &[o("reject-with", Arg::Required, false)];

impl TargetParser for RejectP {
    fn name(&self) -> &str {
        "REJECT"
    }
    fn opts(&self) -> &'static [OptDef] {
        REJECT_OPTS
    }
    fn take(&mut self, _: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let v = req(val, cx)?;
        let v6 = self.1 == Family::V6;
        let hit = RejectWith::NAMES.iter().find(|(n, a, r)| {
            let is_v6 = n.starts_with("icmp6");
            (*n == v.text || *a == v.text) && (*r == RejectWith::TcpReset || is_v6 == v6)
        });
        match hit {
            Some((_, _, r)) => self.0 = Some(*r),
            None => {
                return Err(bad(cx, v.span, format!("unknown reject type `{}`", v.text))
                    .note(format!("iptables: unknown reject type \"{}\"", v.text))
                    .help(if v6 {
                        "use icmp6-port-unreachable, icmp6-adm-prohibited, icmp6-no-route, icmp6-addr-unreachable or tcp-reset"
                    } else {
                        "use icmp-port-unreachable, icmp-host-prohibited, icmp-admin-prohibited, icmp-net-unreachable or tcp-reset"
                    }))
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Target, Diagnostic> {
        let with = self.0.unwrap_or(if self.1 == Family::V6 {
            RejectWith::Icmp6PortUnreachable
        } else {
            RejectWith::PortUnreachable
        });
        if cx.table != TableName::Filter {
            return Err(Diagnostic::error("E0210", cx.at, format!("REJECT in table `{}`", cx.table))
                .note("the kernel allows REJECT only in the filter table; the whole table fails to load")
                .help("move the rule to the filter table, or use DROP"));
        }
        if with == RejectWith::TcpReset && !matches!(cx.proto, Some(p) if !p.inv && p.val == Proto::TCP) {
            return Err(Diagnostic::error("E0210", cx.at, "`--reject-with tcp-reset` needs `-p tcp`")
                .note("the kernel refuses tcp-reset for rules that can match other protocols; the whole table fails to load")
                .help("add `-p tcp` to the rule"));
        }
        Ok(Target::Reject(Reject { with }))
    }
}

struct LogP(Log);

const LOG_OPTS: &[OptDef] = &[
    o("log-level", Arg::Required, false),
    o("log-prefix", Arg::Required, false),
    o("log-tcp-sequence", Arg::None, false),
    o("log-tcp-options", Arg::None, false),
    o("log-ip-options", Arg::None, false),
    o("log-uid", Arg::None, false),
    o("log-macdecode", Arg::None, false),
];

/// Syslog level names LOG accepts.
const LEVELS: &[(&str, u8)] = &[
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("error", 3),
    ("err", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

impl TargetParser for LogP {
    fn name(&self) -> &str {
        "LOG"
    }
    fn opts(&self) -> &'static [OptDef] {
        LOG_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let l = &mut self.0;
        match opt {
            0 => {
                let v = req(val, cx)?;
                let n = v.text.parse::<u8>().ok().filter(|n| *n <= 7);
                let n = n.or_else(|| LEVELS.iter().find(|(s, _)| s.eq_ignore_ascii_case(&v.text)).map(|(_, n)| *n));
                l.level = n.ok_or_else(|| {
                    bad(cx, v.span, format!("LOG: bad level `{}`", v.text))
                        .help("use 0-7 or emerg, alert, crit, error, warning, notice, info, debug")
                })?;
            }
            1 => {
                if l.prefix.is_some() {
                    return Err(twice(cx, "LOG", "log-prefix"));
                }
                let v = req(val, cx)?;
                let mut p = v.text;
                if p.len() > 29 {
                    cx.diags.push(
                        Diagnostic::warning(
                            "W0003",
                            v.span,
                            format!("log prefix is {} bytes; iptables keeps the first 29", p.len()),
                        )
                        .help("shorten the prefix"),
                    );
                    let mut cut = 29;
                    while !p.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    p.truncate(cut);
                }
                l.prefix = Some(p);
            }
            2 => l.tcp_sequence = true,
            3 => l.tcp_options = true,
            4 => l.ip_options = true,
            5 => l.uid = true,
            _ => l.macdecode = true,
        }
        Ok(())
    }
    fn finish(self: Box<Self>, _: &mut Cx) -> Result<Target, Diagnostic> {
        Ok(Target::Log(self.0))
    }
}
