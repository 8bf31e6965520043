//! Comparing the simulator's records with the kernel's (`fwverify conform`): per row the
//! verdict, the path as a multiset (the kernel only knows counters, not their order) and
//! the replies that got out; at the end the recent tables (hits exactly, `last_seen`
//! within one tick) and the rule counters.

use std::collections::BTreeMap;
use std::fmt;

use crate::check::{FinalRecord, PacketRecord, PathStep, ReplyRecord};
use crate::packet::{proto, FlagLetters};
use crate::sim::Verdict;

/// One difference between the simulator and the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// The row (and its line in the scenario), or `None` for the final state.
    pub row: Option<(u64, u64)>,
    /// What differs: `verdict`, `path`, `replies`, `rows`, `recent NAME`, `counter KEY`.
    pub field: String,
    /// The simulator's value.
    pub sim: String,
    /// The kernel's value.
    pub kernel: String,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((row, line)) = self.row {
            write!(f, "row {row} (line {line}): ")?;
        }
        write!(f, "{}: simulator {}; kernel {}", self.field, self.sim, self.kernel)
    }
}

fn step(s: &PathStep) -> String {
    format!("{} {} #{} (line {})", s.table, s.chain, s.rule, s.line)
}

/// A reply in one line, without its length (the kernel's SYN-ACK carries an MSS option the
/// simulator does not model).
fn reply(r: &ReplyRecord) -> String {
    let p = &r.pkt;
    let body = match p.proto {
        proto::TCP => format!("tcp {}:{} > {}:{} {}", p.src, p.sport, p.dst, p.dport, FlagLetters(p.flags)),
        proto::UDP => format!("udp {}:{} > {}:{}", p.src, p.sport, p.dst, p.dport),
        proto::ICMP | proto::ICMPV6 => format!("icmp {} > {} type {}/{}", p.src, p.dst, p.icmp_type, p.icmp_code),
        n => format!("proto {n} {} > {}", p.src, p.dst),
    };
    format!("{} {body} {}", r.kind.as_str(), r.iface)
}

fn multiset<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// `a − b` as a multiset, shown as a list.
fn minus(a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>) -> String {
    let mut out = Vec::new();
    for (k, &n) in a {
        let m = b.get(k).copied().unwrap_or(0);
        if n > m {
            out.push(if n - m == 1 { k.clone() } else { format!("{k} ×{}", n - m) });
        }
    }
    if out.is_empty() {
        "nothing more".into()
    } else {
        out.join(", ")
    }
}

/// Compares one row's records.
pub fn compare_packet(sim: &PacketRecord, kern: &PacketRecord) -> Vec<Disagreement> {
    let at = Some((sim.row.row, sim.row.line));
    let mut out = Vec::new();
    if sim.verdict != kern.verdict {
        out.push(Disagreement {
            row: at,
            field: "verdict".into(),
            sim: verdict_text(sim),
            kernel: kern.verdict.as_str().into(),
        });
    }
    let sp = multiset(sim.path.iter().map(step));
    let kp = multiset(kern.path.iter().map(step));
    if sp != kp {
        out.push(Disagreement {
            row: at,
            field: "path".into(),
            sim: format!("has {}", minus(&sp, &kp)),
            kernel: format!("has {}", minus(&kp, &sp)),
        });
    }
    // Only replies that leave the host can be seen on the kernel's side.
    let sr = multiset(sim.replies.iter().filter(|r| r.verdict == Verdict::Accept).map(reply));
    let kr = multiset(kern.replies.iter().map(reply));
    if sr != kr {
        let show = |m: &BTreeMap<String, usize>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|(k, n)| if *n == 1 { k.clone() } else { format!("{k} ×{n}") })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        out.push(Disagreement { row: at, field: "replies".into(), sim: show(&sr), kernel: show(&kr) });
    }
    out
}

fn verdict_text(r: &PacketRecord) -> String {
    match r.stage {
        Some(s) => format!("{} ({s})", r.verdict.as_str()),
        None => r.verdict.as_str().into(),
    }
}

/// Compares the final states; `hz` is the kernel's tick rate: `last_seen` may be one tick
/// late (see `kernel`'s module docs), plus `late_ns`, how late the replay wrote packets.
pub fn compare_final(sim: &FinalRecord, kern: &FinalRecord, hz: u32, late_ns: u64) -> Vec<Disagreement> {
    let mut out = Vec::new();
    let tick = 1.0 / hz as f64 + late_ns as f64 / 1e9 + 1e-6;
    let sim_t: BTreeMap<_, _> = sim.recent.iter().map(|(n, e)| (n.as_str(), e)).collect();
    let kern_t: BTreeMap<_, _> = kern.recent.iter().map(|(n, e)| (n.as_str(), e)).collect();
    let names: std::collections::BTreeSet<&str> = sim_t.keys().chain(kern_t.keys()).copied().collect();
    for name in names {
        let field = format!("recent {name}");
        let (s, k) = match (sim_t.get(name), kern_t.get(name)) {
            (Some(s), Some(k)) => (*s, *k),
            (s, _) => {
                let (a, b) = if s.is_some() { ("a table", "no table") } else { ("no table", "a table") };
                out.push(Disagreement { row: None, field, sim: a.into(), kernel: b.into() });
                continue;
            }
        };
        let addrs: std::collections::BTreeSet<_> = s.iter().chain(k.iter()).map(|e| e.addr).collect();
        for addr in addrs {
            let se = s.iter().find(|e| e.addr == addr);
            let ke = k.iter().find(|e| e.addr == addr);
            let show = |e: Option<&crate::check::RecentRecord>| match e {
                Some(e) => {
                    format!("{} hit{}, last seen {:.3} s", e.hits, if e.hits == 1 { "" } else { "s" }, e.last_seen)
                }
                None => "no entry".into(),
            };
            let same = match (se, ke) {
                (Some(a), Some(b)) => a.hits == b.hits && (a.last_seen - b.last_seen).abs() <= tick,
                _ => false,
            };
            if !same {
                out.push(Disagreement { row: None, field: format!("{field} {addr}"), sim: show(se), kernel: show(ke) });
            }
        }
    }
    let sc: BTreeMap<_, _> = sim.counters.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let kc: BTreeMap<_, _> = kern.counters.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let keys: std::collections::BTreeSet<&str> = sc.keys().chain(kc.keys()).copied().collect();
    for key in keys {
        let (a, b) = (sc.get(key).copied().unwrap_or((0, 0)), kc.get(key).copied().unwrap_or((0, 0)));
        if a != b {
            out.push(Disagreement {
                row: None,
                field: format!("counter {key}"),
                sim: format!("[{},{}]", a.0, a.1),
                kernel: format!("[{},{}]", b.0, b.1),
            });
        }
    }
    out
}

/// Compares two whole runs of one scenario.
pub fn compare(
    sim: &[PacketRecord],
    sim_last: &FinalRecord,
    kern: &[PacketRecord],
    kern_last: &FinalRecord,
    hz: u32,
    late_ns: u64,
) -> Vec<Disagreement> {
    let mut out = Vec::new();
    if sim.len() != kern.len() {
        out.push(Disagreement {
            row: None,
            field: "rows".into(),
            sim: sim.len().to_string(),
            kernel: kern.len().to_string(),
        });
    }
    for (s, k) in sim.iter().zip(kern) {
        out.extend(compare_packet(s, k));
    }
    out.extend(compare_final(sim_last, kern_last, hz, late_ns));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::RecentRecord;
    use crate::model::TableName;

    fn fin(last_seen: f64, counters: &[(&str, (u64, u64))]) -> FinalRecord {
        FinalRecord {
            recent: vec![(
                "blacklist".into(),
                vec![RecentRecord { addr: "100.1.2.3".parse().unwrap(), hits: 2, last_seen }],
            )],
            counters: counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn last_seen_may_be_one_tick_late() {
        let a = fin(3.0, &[("filter:INPUT:1", (1, 40))]);
        assert!(compare_final(&a, &fin(3.004, &[("filter:INPUT:1", (1, 40))]), 250, 0).is_empty());
        let d = compare_final(&a, &fin(3.012, &[("filter:INPUT:1", (2, 80))]), 250, 0);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].field, "recent blacklist 100.1.2.3");
        assert_eq!(d[1].to_string(), "counter filter:INPUT:1: simulator [1,40]; kernel [2,80]");
    }

    #[test]
    fn paths_are_multisets() {
        let s = |rule| PathStep { table: TableName::Filter, chain: "INPUT".into(), rule, line: rule + 10 };
        let a = multiset([s(1), s(2), s(2)].iter().map(step));
        let b = multiset([s(2), s(1)].iter().map(step));
        assert_eq!(minus(&a, &b), "filter INPUT #2 (line 12)");
        assert_eq!(minus(&b, &a), "nothing more");
    }
}
