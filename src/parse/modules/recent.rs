//! recent and limit (SEMANTICS.md §3, §4.1).

use std::net::IpAddr;

use super::{bad, o, req, Arg, Cx, MatchParser, OptDef, Val};
use crate::diag::Diagnostic;
use crate::model::matches::{Limit, Recent, RecentMode, RecentSide};
use crate::model::net::prefix_mask;
use crate::model::{Family, Match};

pub(super) fn match_parser(name: &str, _family: Family) -> Option<Box<dyn MatchParser>> {
    Some(match name {
        "recent" => Box::<RecentP>::default(),
        "limit" => Box::<LimitP>::default(),
        _ => return None,
    })
}

#[derive(Default)]
struct RecentP {
    mode: Option<(RecentMode, bool, &'static str)>,
    seconds: Option<u32>,
    reap: bool,
    hitcount: Option<u32>,
    rttl: bool,
    name: Option<String>,
    mask: Option<IpAddr>,
    side: Option<RecentSide>,
    /// Options that only go with rcheck/update, as given (for the conflict message).
    check_only: Vec<&'static str>,
}

const RECENT_OPTS: &[OptDef] = &[
    o("set", Arg::None, true),
    o("rcheck", Arg::None, true),
    o("update", Arg::None, true),
    o("remove", Arg::None, true),
    o("seconds", Arg::Required, false),
    o("reap", Arg::None, false),
    o("hitcount", Arg::Required, false),
    o("rttl", Arg::None, false),
    o("name", Arg::Required, false),
    o("rsource", Arg::None, false),
    o("rdest", Arg::None, false),
    o("mask", Arg::Required, false),
];

fn conflict(cx: &Cx, a: &str, b: &str) -> Diagnostic {
    Diagnostic::error("E0106", cx.at, format!("recent: option `--{a}` cannot be used together with `--{b}`"))
        .note(format!("iptables: recent: option \"--{a}\" cannot be used together with \"--{b}\"."))
}

impl MatchParser for RecentP {
    fn name(&self) -> &str {
        "recent"
    }
    fn opts(&self) -> &'static [OptDef] {
        RECENT_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let name = RECENT_OPTS[opt].name;
        match opt {
            0..=3 => {
                let mode = [RecentMode::Set, RecentMode::Rcheck, RecentMode::Update, RecentMode::Remove][opt];
                if let Some((_, _, prev)) = self.mode {
                    return Err(conflict(cx, name, prev)
                        .help("a recent match does one thing; use two `-m recent` matches, e.g. `-m recent --rcheck … -m recent --set …`"));
                }
                self.mode = Some((mode, inv, name));
            }
            4 => {
                let v = req(val, cx)?;
                let s = v.text.parse::<u64>().ok().filter(|s| (1..=u32::MAX as u64).contains(s)).ok_or_else(|| {
                    bad(cx, v.span, format!("recent: bad value `{}` for `--seconds`", v.text))
                        .note("iptables: recent: bad value for option \"--seconds\", or out of range (1-4294967295).")
                        .help("give a whole number of seconds from 1 to 4294967295")
                })?;
                self.seconds = Some(s as u32);
                self.check_only.push("seconds");
            }
            5 => {
                self.reap = true;
                self.check_only.push("reap");
            }
            6 => {
                let v = req(val, cx)?;
                let h = v.text.parse::<u32>().map_err(|_| {
                    bad(cx, v.span, format!("recent: bad value `{}` for `--hitcount`", v.text))
                        .help("give a whole number")
                })?;
                if h > 65535 {
                    return Err(bad(cx, v.span, format!("recent: hitcount {h} is larger than the kernel allows (65535)"))
                        .note("the kernel refuses the rule (`hitcount (N) is larger than allowed maximum (65535)`) and the whole table fails to load")
                        .help("use a hitcount of at most 65535"));
                }
                self.hitcount = Some(h);
                self.check_only.push("hitcount");
            }
            7 => {
                self.rttl = true;
                self.check_only.push("rttl");
            }
            8 => {
                let v = req(val, cx)?;
                let mut n = v.text.clone();
                if n.is_empty() || n.contains('/') || n == "." || n == ".." {
                    return Err(bad(cx, v.span, format!("recent: invalid table name `{n}`"))
                        .note("the kernel refuses names that are empty, contain `/`, or are `.` or `..`")
                        .help("use letters, digits, `_` and `-`"));
                }
                if n.len() > 199 {
                    cx.diags.push(
                        Diagnostic::warning(
                            "W0003",
                            v.span,
                            format!("recent name is {} bytes; iptables keeps the first 199", n.len()),
                        )
                        .help("shorten the name"),
                    );
                    n.truncate(199);
                }
                self.name = Some(n);
            }
            9 => self.side = Some(RecentSide::Source),
            10 => self.side = Some(RecentSide::Dest),
            _ => {
                let v = req(val, cx)?;
                let m = super::super::rule::parse_ip(&v.text, cx.family)
                    .filter(|a| a.is_ipv4() == (cx.family == Family::V4))
                    .ok_or_else(|| {
                        bad(cx, v.span, format!("recent: bad mask `{}`", v.text))
                            .help("give the mask as an address, e.g. 255.255.255.0")
                    })?;
                self.mask = Some(m);
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let Some((mode, inv, mode_name)) = self.mode else {
            return Err(Diagnostic::error("E0108", cx.at, "recent: no action given")
                .note("iptables: recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'")
                .help("add `--set`, `--rcheck`, `--update` or `--remove`"));
        };
        if matches!(mode, RecentMode::Set | RecentMode::Remove) {
            if let Some(o) = self.check_only.first() {
                return Err(conflict(cx, o, mode_name)
                    .note(format!("`--{o}` only works with `--rcheck` or `--update`; iptables or the kernel refuses it with `--{mode_name}`"))
                    .help(format!("use a separate `-m recent --rcheck --{o} …` match")));
            }
        }
        if self.reap && self.seconds.is_none() {
            return Err(Diagnostic::error("E0106", cx.at, "recent: `--reap` also requires `--seconds`")
                .note("iptables: recent: option \"--reap\" also requires \"--seconds\".")
                .help("add `--seconds S`"));
        }
        let full = prefix_mask(cx.family == Family::V4, if cx.family == Family::V4 { 32 } else { 128 }).expect("valid");
        Ok(Match::Recent(Recent {
            mode,
            inv,
            seconds: self.seconds,
            reap: self.reap,
            hitcount: self.hitcount.unwrap_or(0),
            rttl: self.rttl,
            name: self.name.unwrap_or_else(|| "DEFAULT".into()),
            mask: self.mask.unwrap_or(full),
            side: self.side.unwrap_or(RecentSide::Source),
        }))
    }
}

#[derive(Default)]
struct LimitP {
    avg: Option<u32>,
    burst: Option<u32>,
}

const LIMIT_OPTS: &[OptDef] = &[o("limit", Arg::Required, false), o("limit-burst", Arg::Required, false)];

/// Reads a rate `N[/second|minute|hour|day]` (any prefix of the unit) into an average
/// interval in `1/scale` seconds, like libxt_limit's `parse_rate`. `Err(true)` = too fast.
pub(crate) fn parse_rate(s: &str, scale: u64) -> Result<u64, bool> {
    let (num, unit) = match s.split_once('/') {
        Some((n, u)) => (n, Some(u)),
        None => (s, None),
    };
    let mult: u64 = match unit {
        None => 1,
        Some("") => return Err(false),
        Some(u) => {
            let l = u.to_ascii_lowercase();
            if "second".starts_with(&l) {
                1
            } else if "minute".starts_with(&l) {
                60
            } else if "hour".starts_with(&l) {
                3600
            } else if "day".starts_with(&l) {
                86400
            } else {
                return Err(false);
            }
        }
    };
    // atoi: leading digits only.
    let digits: String = num.trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    let r: u64 = digits.parse().unwrap_or(0);
    if r == 0 {
        return Err(false);
    }
    let avg = scale * mult / r;
    if avg == 0 {
        return Err(true);
    }
    Ok(avg)
}

/// xt_limit's `user2credits` at HZ 250 (SEMANTICS.md §4.1), used for the load check.
fn user2credits(user: u32) -> u32 {
    const HZ: u32 = 250;
    const CPJ: u32 = 128;
    if user > u32::MAX / (HZ * CPJ) {
        (user / 10000).wrapping_mul(HZ * CPJ)
    } else {
        user * HZ * CPJ / 10000
    }
}

impl MatchParser for LimitP {
    fn name(&self) -> &str {
        "limit"
    }
    fn opts(&self) -> &'static [OptDef] {
        LIMIT_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let v = req(val, cx)?;
        if opt == 0 {
            let avg = parse_rate(&v.text, 10000).map_err(|fast| {
                if fast {
                    bad(cx, v.span, format!("limit: rate `{}` is too fast", v.text))
                        .note(format!("iptables: Rate too fast \"{}\"", v.text))
                        .help("the fastest rate is 10000/second")
                } else {
                    bad(cx, v.span, format!("limit: bad rate `{}`", v.text))
                        .note(format!("iptables: bad rate \"{}\"", v.text))
                        .help("write N/second, N/minute, N/hour or N/day")
                }
            })?;
            self.avg = Some(avg as u32);
        } else {
            let b = v.text.parse::<u32>().ok().filter(|b| *b <= 10000).ok_or_else(|| {
                bad(cx, v.span, format!("limit: bad value `{}` for `--limit-burst`", v.text))
                    .note("iptables: limit: bad value for option \"--limit-burst\", or out of range (0-10000).")
                    .help("give a whole number from 1 to 10000")
            })?;
            self.burst = Some(b);
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let avg = self.avg.unwrap_or(10000 * 3600 / 3);
        let burst = self.burst.unwrap_or(5);
        if burst == 0 || user2credits(avg.wrapping_mul(burst)) < user2credits(avg) {
            return Err(Diagnostic::error("E0105", cx.at, format!("limit: burst {burst} does not fit this rate"))
                .note(format!("the kernel refuses the rule (`Overflow, try lower: {avg}/{burst}`) and the whole table fails to load"))
                .help(if burst == 0 { "use a burst of at least 1".to_string() } else { "use a smaller burst or a faster rate (1/day allows a burst of at most 4)".to_string() }));
        }
        Ok(Match::Limit(Limit { avg, burst }))
    }
}
