//! The property language of `fwverify prove`: what must never (or may) happen to which
//! packet, under which attacker, within which time, from which initial state.
//!
//! ```text
//! never ACCEPT tcp dport 22 under scan
//! possible ACCEPT tcp dport 22 from blacklisted
//! never ACCEPT tcp dport 22 ctstate INVALID
//! at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s
//! ```
//!
//! A file holds one property per line; `#` starts a comment line.

use pest::Parser;

use crate::diag::Diagnostic;
use crate::model::matches::ctstate;
use crate::model::{PortRange, Span};
use crate::sim::Verdict;

#[allow(missing_docs)]
mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/property.pest"]
    pub struct PropGrammar;
}
use grammar::{PropGrammar, Rule as P};

/// How the property quantifies over attacker traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// No trace ends with the goal packet getting the verdict.
    Never,
    /// Some trace does (a witness is produced).
    Possible,
    /// No trace has more than N goal packets getting the verdict within the time bound.
    AtMost(u32),
}

/// Who sends the packets before (and including) the goal packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attacker {
    /// One source; every field of every packet and every gap symbolic.
    Any,
    /// A sequential TCP SYN scan: consecutive destination ports ascending from any start,
    /// at a constant rate (packets per second, optionally bounded), then the goal packet.
    Scan {
        /// Lowest rate considered.
        min_rate: Option<u32>,
        /// Highest rate considered.
        max_rate: Option<u32>,
    },
    /// Packets to every port in any order at any rate (one source).
    Flood,
    /// N cooperating source addresses.
    Sources(u32),
}

/// The goal packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Goal {
    /// IP protocol (`None` = any).
    pub proto: Option<u8>,
    /// Destination ports.
    pub dport: Option<PortRange>,
    /// Source ports.
    pub sport: Option<PortRange>,
    /// Exact TCP flags.
    pub flags: Option<u8>,
    /// ICMP type and optional code.
    pub icmp: Option<(u8, Option<u8>)>,
    /// Conntrack states allowed (ctstate bits).
    pub ctstate: Option<u8>,
    /// Interface it arrives on.
    pub iface: Option<String>,
    /// Destination address.
    pub dst: Option<std::net::IpAddr>,
    /// Source address.
    pub src: Option<std::net::IpAddr>,
}

/// A property.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// The text as written.
    pub text: String,
    /// Quantifier.
    pub quant: Quant,
    /// The verdict of interest.
    pub verdict: Verdict,
    /// The goal packet.
    pub goal: Goal,
    /// Attacker model (default `Any`).
    pub attacker: Attacker,
    /// Time bound in seconds.
    pub within: Option<u64>,
    /// Recent tables that hold the attacker's address initially (`from blacklisted`).
    pub initially_in: Vec<String>,
}

fn num<T: std::str::FromStr>(s: &str, span: Span, what: &str) -> Result<T, Diagnostic> {
    s.parse().map_err(|_| Diagnostic::error("E0301", span, format!("{what} `{s}` is out of range")))
}

/// Parses one property. `offset`/`line` place spans in the enclosing file.
pub fn parse_property(text: &str, offset: usize, line: u32) -> Result<Property, Diagnostic> {
    let sp = |s: pest::Span<'_>| Span::new(offset + s.start(), offset + s.end(), line);
    let mut pairs = PropGrammar::parse(P::property, text).map_err(|e| {
        let (s, en) = match e.location {
            pest::error::InputLocation::Pos(p) => (p, p + 1),
            pest::error::InputLocation::Span((s, en)) => (s, en),
        };
        let expected = match &e.variant {
            pest::error::ErrorVariant::ParsingError { positives, .. } => {
                positives.iter().map(|r| format!("{r:?}").replace('_', " ")).collect::<Vec<_>>().join(", ")
            }
            pest::error::ErrorVariant::CustomError { message } => message.clone(),
        };
        Diagnostic::error(
            "E0301",
            Span::new(offset + s, offset + en.min(text.len()).max(s), line),
            "property not understood",
        )
        .label(format!("expected {expected}"))
        .help("write e.g. `never ACCEPT tcp dport 22 under scan` or `possible ACCEPT tcp dport 22`")
    })?;
    let prop = pairs.next().expect("property rule");
    let mut p = Property {
        text: text.trim().to_string(),
        quant: Quant::Never,
        verdict: Verdict::Accept,
        goal: Goal::default(),
        attacker: Attacker::Any,
        within: None,
        initially_in: Vec::new(),
    };
    for part in prop.into_inner() {
        match part.as_rule() {
            P::quant => {
                let q = part.into_inner().next().expect("quant alternative");
                p.quant = match q.as_rule() {
                    P::never => Quant::Never,
                    P::possible => Quant::Possible,
                    _ => {
                        let n = q.into_inner().next().expect("number");
                        Quant::AtMost(num(n.as_str(), sp(n.as_span()), "count")?)
                    }
                };
            }
            P::verdict => p.verdict = Verdict::parse(part.as_str()).expect("grammar admits verdicts only"),
            P::goal => goal(part, &mut p.goal, &sp)?,
            P::clause => {
                let c = part.into_inner().next().expect("clause alternative");
                match c.as_rule() {
                    P::under => {
                        let a = c.into_inner().next().expect("attacker").into_inner().next().expect("kind");
                        p.attacker = match a.as_rule() {
                            P::scan => {
                                let mut min_rate = None;
                                let mut max_rate = None;
                                if let Some(r) = a.into_inner().next() {
                                    let s = sp(r.as_span());
                                    match r.as_str().split_once('-') {
                                        Some((lo, hi)) => {
                                            min_rate = Some(num(lo, s, "rate")?);
                                            max_rate = Some(num(hi, s, "rate")?);
                                        }
                                        None => max_rate = Some(num(r.as_str(), s, "rate")?),
                                    }
                                }
                                Attacker::Scan { min_rate, max_rate }
                            }
                            P::flood => Attacker::Flood,
                            P::sources => {
                                let n = a.into_inner().next().expect("number");
                                Attacker::Sources(num(n.as_str(), sp(n.as_span()), "source count")?)
                            }
                            _ => Attacker::Any,
                        };
                    }
                    P::within => {
                        let d = c.into_inner().next().expect("duration");
                        let t = d.as_str().to_ascii_lowercase();
                        let (digits, mult) = match t.chars().last() {
                            Some('m') => (&t[..t.len() - 1], 60),
                            Some('h') => (&t[..t.len() - 1], 3600),
                            Some('s') => (&t[..t.len() - 1], 1),
                            _ => (&t[..], 1),
                        };
                        let v: u64 = num(digits, sp(d.as_span()), "duration")?;
                        p.within = Some(v * mult);
                    }
                    _ => {
                        let f = c.into_inner().next().expect("from alternative");
                        let name = f.into_inner().next().map(|n| n.as_str().to_string());
                        p.initially_in.push(name.unwrap_or_else(|| "blacklist".into()));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

fn goal(
    pair: pest::iterators::Pair<'_, P>,
    g: &mut Goal,
    sp: &dyn Fn(pest::Span<'_>) -> Span,
) -> Result<(), Diagnostic> {
    for part in pair.into_inner() {
        match part.as_rule() {
            P::proto => {
                g.proto = match part.as_str().to_ascii_lowercase().as_str() {
                    "tcp" => Some(6),
                    "udp" => Some(17),
                    "icmp" => Some(1),
                    "icmpv6" => Some(58),
                    _ => None,
                }
            }
            P::field => {
                let f = part.into_inner().next().expect("field alternative");
                let rule = f.as_rule();
                let s = sp(f.as_span());
                let mut inner = f.into_inner();
                match rule {
                    P::dport | P::sport => {
                        let v = inner.next().expect("ports").as_str();
                        let r = match v.split_once(':') {
                            Some((a, b)) => PortRange { lo: num(a, s, "port")?, hi: num(b, s, "port")? },
                            None => PortRange::single(num(v, s, "port")?),
                        };
                        if rule == P::dport {
                            g.dport = Some(r)
                        } else {
                            g.sport = Some(r)
                        }
                    }
                    P::flags => {
                        let v = inner.next().expect("letters").as_str();
                        g.flags = crate::packet::parse_flag_letters(v);
                    }
                    P::icmp_type => {
                        let t = num(inner.next().expect("type").as_str(), s, "ICMP type")?;
                        let c = match inner.next() {
                            Some(c) => Some(num(c.as_str(), s, "ICMP code")?),
                            None => None,
                        };
                        g.icmp = Some((t, c));
                    }
                    P::ctstate => {
                        let list = inner.next().expect("states").as_str().to_ascii_uppercase();
                        let mut bits = 0;
                        for n in list.split(',') {
                            bits |= ctstate::NAMES.iter().find(|(m, _)| *m == n).map(|(_, b)| *b).unwrap_or(0);
                        }
                        g.ctstate = Some(bits);
                    }
                    P::iface => g.iface = Some(inner.next().expect("name").as_str().to_string()),
                    P::dst | P::src => {
                        let a = inner.next().expect("addr");
                        let ip = a.as_str().parse().map_err(|_| {
                            Diagnostic::error("E0301", sp(a.as_span()), format!("bad address `{}`", a.as_str()))
                        })?;
                        if rule == P::dst {
                            g.dst = Some(ip)
                        } else {
                            g.src = Some(ip)
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses a properties file: one property per line, `#` comment lines, blank lines.
pub fn parse_file(text: &str) -> (Vec<Property>, Vec<Diagnostic>) {
    let mut props = Vec::new();
    let mut diags = Vec::new();
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let body = line.trim_end_matches(['\n', '\r']);
        let t = body.trim_start();
        if !(t.is_empty() || t.starts_with('#')) {
            match parse_property(body, offset, i as u32 + 1) {
                Ok(p) => props.push(p),
                Err(d) => diags.push(d),
            }
        }
        offset += line.len();
    }
    (props, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_quoted_in_the_issue_parses() {
        let p = parse_property("never ACCEPT tcp dport 22 under scan", 0, 1).unwrap();
        assert_eq!(p.quant, Quant::Never);
        assert_eq!(p.goal.proto, Some(6));
        assert_eq!(p.goal.dport, Some(PortRange::single(22)));
        assert_eq!(p.attacker, Attacker::Scan { min_rate: None, max_rate: None });
        let p = parse_property("possible ACCEPT tcp dport 22", 0, 1).unwrap();
        assert_eq!((p.quant, p.attacker), (Quant::Possible, Attacker::Any));
        let p = parse_property("never ACCEPT tcp dport 22 ctstate INVALID", 0, 1).unwrap();
        assert_eq!(p.goal.ctstate, Some(ctstate::INVALID));
        let p = parse_property("at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s", 0, 1).unwrap();
        assert_eq!((p.quant, p.within), (Quant::AtMost(3), Some(60)));
        let p = parse_property("possible ACCEPT tcp dport 22 from blacklisted", 0, 1).unwrap();
        assert_eq!(p.initially_in, vec!["blacklist".to_string()]);
        let p = parse_property("never ACCEPT tcp dport 22 under sources 150 within 1h", 0, 1).unwrap();
        assert_eq!((p.attacker, p.within), (Attacker::Sources(150), Some(3600)));
    }

    #[test]
    fn errors_point_at_the_word() {
        let e = parse_property("never ACCEPT tcp dprt 22", 10, 3).unwrap_err();
        assert_eq!(e.code, "E0301");
        let s = e.span.unwrap();
        assert_eq!((s.start, s.line), (10 + 17, 3));
    }
}
