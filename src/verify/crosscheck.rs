//! The encoding against the simulator: random stateless rulesets (filter INPUT with two
//! user chains, jumps, gotos, RETURN, MARK, `!` forms, every stateless match), random
//! first packets; the verdict the formulas give for the concrete packet must be the one
//! `sim::Engine::step` computes on a fresh engine.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use z3::ast::Bool;
use z3::Solver;

use super::encode::{bv, ip_bits, SymPacket, Universe};
use super::query::packet_constraints;
use super::traverse::{Final, StateModel, Traversal};
use crate::model::Hook;
use crate::packet::Packet;
use crate::sim::{initial_jiffies, Decided, Engine, Ifaces, Outcome, SimConfig, Verdict};

const CIDRS: [&str; 6] =
    ["10.0.0.0/8", "10.1.2.0/24", "192.168.1.7", "0.0.0.0/1", "172.16.0.0/12", "10.0.0.0/255.0.255.0"];
const IFACES: [&str; 4] = ["eth0", "eth+", "lo", "wlan0"];
const SRCS: [[u8; 4]; 7] =
    [[10, 1, 2, 3], [10, 0, 5, 0], [192, 168, 1, 7], [8, 8, 8, 8], [172, 16, 4, 4], [200, 1, 1, 1], [127, 0, 0, 1]];
const PKT_IFACES: [&str; 4] = ["eth0", "eth1", "lo", "wlan0"];

fn bang() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just(""), 1 => Just("! ")]
}

fn ports() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u16..100).prop_map(|p| p.to_string()),
        (0u16..100, 0u16..100).prop_map(|(a, b)| if a == b {
            a.to_string()
        } else {
            format!("{}:{}", a.min(b), a.max(b))
        }),
    ]
}

/// The IP part and matches of one rule.
fn matches() -> impl Strategy<Value = String> {
    let ip = (
        proptest::option::of((bang(), prop::sample::select(&CIDRS[..]))),
        proptest::option::of((bang(), prop::sample::select(&CIDRS[..]))),
        proptest::option::of((bang(), prop::sample::select(&IFACES[..]))),
    )
        .prop_map(|(s, d, i)| {
            let mut t = String::new();
            if let Some((b, c)) = s {
                t += &format!(" {b}-s {c}");
            }
            if let Some((b, c)) = d {
                t += &format!(" {b}-d {c}");
            }
            if let Some((b, c)) = i {
                t += &format!(" {b}-i {c}");
            }
            t
        });
    let proto = prop_oneof![
        Just(String::new()),
        (bang(), ports(), bang(), ports(), 0u8..4).prop_map(|(b1, p1, b2, p2, f)| {
            let flags = match f {
                0 => "",
                1 => " --syn",
                2 => " ! --tcp-flags SYN,ACK SYN",
                _ => " --tcp-flags ALL ACK",
            };
            format!(" -p tcp -m tcp {b1}--sport {p1} {b2}--dport {p2}{flags}")
        }),
        (bang(), ports()).prop_map(|(b, p)| format!(" -p udp {b}--dport {p}")),
        prop_oneof![Just(" -p icmp --icmp-type 8"), Just(" -p icmp ! --icmp-type 3/3"), Just(" -p icmp")]
            .prop_map(String::from),
        (bang(), ports(), ports()).prop_map(|(b, a, c)| format!(" -p tcp -m multiport {b}--ports {a},{c}")),
        Just(" ! -p udp".to_string()),
    ];
    let extra = prop_oneof![
        4 => Just(String::new()),
        1 => (bang(), 0u8..3).prop_map(|(b, s)| {
            let st = ["NEW", "INVALID", "ESTABLISHED,RELATED"][s as usize];
            format!(" -m state {b}--state {st}")
        }),
        1 => Just(" -m conntrack --ctstate NEW,UNTRACKED".to_string()),
        1 => (bang(), 0u16..150, 0u16..150).prop_map(|(b, a, c)| format!(" -m length {b}--length {}:{}", a.min(c), a.max(c))),
        1 => (0u8..3, 0u8..70).prop_map(|(o, v)| format!(" -m ttl --ttl-{} {v}", ["eq", "lt", "gt"][o as usize])),
        1 => (bang(), 0u32..3).prop_map(|(b, v)| format!(" -m mark {b}--mark {v}/0x3")),
        1 => (bang(), 0u8..3).prop_map(|(b, v)| format!(" -m iprange {b}--src-range 10.0.0.0-10.{v}.255.255")),
        1 => bang().prop_map(|b| format!(" -m addrtype {b}--dst-type LOCAL")),
        1 => bang().prop_map(|b| format!(" -m addrtype {b}--src-type LOCAL,BROADCAST")),
        1 => bang().prop_map(|b| format!(" -m pkttype {b}--pkt-type broadcast")),
        1 => Just(" -m comment --comment hi".to_string()),
    ];
    (ip, proto, extra).prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

fn target(chain: usize) -> impl Strategy<Value = String> {
    // INPUT may call A and B, A may call B; B calls nothing (no loops).
    let jumps: Vec<&'static str> = match chain {
        0 => vec![" -j A", " -j B", " -g A", " -g B"],
        1 => vec![" -j B", " -g B"],
        _ => vec![" -j LOG"],
    };
    prop_oneof![
        3 => prop::sample::select(vec![" -j ACCEPT", " -j DROP", " -j REJECT", " -j RETURN", "", " -j LOG", " -j MARK --set-mark 1", " -j MARK --or-mark 2"]),
        2 => prop::sample::select(jumps),
    ]
    .prop_map(String::from)
}

fn ruleset() -> impl Strategy<Value = String> {
    let chain = |c: usize| prop::collection::vec((matches(), target(c)), 0..7);
    (any::<bool>(), chain(0), chain(1), chain(2)).prop_map(|(acc, i, a, b)| {
        let mut t = format!(
            "*filter\n:INPUT {} [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n",
            if acc { "ACCEPT" } else { "DROP" }
        );
        for (name, rules) in [("INPUT", i), ("A", a), ("B", b)] {
            for (m, tg) in rules {
                t += &format!("-A {name}{m}{tg}\n");
            }
        }
        t + "COMMIT\n"
    })
}

#[derive(Clone, Debug)]
struct Pkt {
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
    flags: u8,
    icmp: (u8, u8),
    iface: &'static str,
    extra_len: u16,
    ttl: u8,
}

fn packet() -> impl Strategy<Value = Pkt> {
    (
        prop::sample::select(&SRCS[..]),
        prop_oneof![Just([10, 0, 0, 1]), Just([192, 168, 1, 7]), Just([255, 255, 255, 255]), Just([10, 1, 2, 200])],
        prop::sample::select(vec![6u8, 17, 1, 47]),
        (0u16..100, 0u16..100, any::<u8>()),
        prop::sample::select(vec![(8u8, 0u8), (3, 3), (0, 0), (11, 0), (13, 0)]),
        prop::sample::select(&PKT_IFACES[..]),
        (0u16..120, 0u8..80),
    )
        .prop_map(|(src, dst, proto, (sport, dport, flags), icmp, iface, (extra_len, ttl))| Pkt {
            src,
            dst,
            proto,
            sport,
            dport,
            flags,
            icmp,
            iface,
            extra_len,
            ttl,
        })
}

/// The verdict the formulas give for a concrete packet, or `None` when the packet
/// constraints exclude it.
fn z3_verdict(
    solver: &Solver,
    trav: &Traversal,
    pkt: &SymPacket,
    u: &Universe,
    p: &Packet,
    iface: &str,
) -> Option<Final> {
    let port_proto = matches!(p.proto, 6 | 17);
    let icmp = p.proto == 1;
    let dst = match p.dst {
        IpAddr::V4(d) => d,
        IpAddr::V6(_) => unreachable!(),
    };
    let pkttype = if dst.is_broadcast() {
        1
    } else if dst.is_multicast() {
        2
    } else {
        0
    };
    let mut fix = vec![
        pkt.src.eq(bv(ip_bits(p.src), 32)),
        pkt.dst.eq(bv(ip_bits(p.dst), 32)),
        pkt.proto.eq(bv(p.proto as u128, 8)),
        pkt.sport.eq(bv(if port_proto { p.sport } else { 0 } as u128, 16)),
        pkt.dport.eq(bv(if port_proto { p.dport } else { 0 } as u128, 16)),
        pkt.flags.eq(bv(if p.proto == 6 { p.flags } else { 0 } as u128, 8)),
        pkt.icmp_type.eq(bv(if icmp { p.icmp_type } else { 0 } as u128, 8)),
        pkt.icmp_code.eq(bv(if icmp { p.icmp_code } else { 0 } as u128, 8)),
        pkt.in_if.eq(bv(u.iface_class(iface) as u128, u.ifaces.width())),
        pkt.len.eq(bv(p.len as u128, 16)),
        pkt.ttl.eq(bv(p.ttl as u128, 8)),
        pkt.pkttype.eq(bv(pkttype, 2)),
        pkt.frag.not(),
        // The simulator: only loopback sources are the host's without `--host`.
        pkt.src_local.eq(Bool::from_bool(p.src.is_loopback())),
    ];
    for (_, o) in &pkt.tcp_opts {
        fix.push(o.not());
    }
    solver.push();
    solver.assert(Bool::and(&fix));
    let sat = super::check(solver, &[], || "a concrete packet".into()).expect("z3 decides concrete packets");
    let out = sat.then(|| {
        let m = solver.get_model().expect("model");
        let hits: Vec<Final> = Final::ALL
            .into_iter()
            .filter(|f| m.eval(&trav.verdict(*f), true).and_then(|b| b.as_bool()).unwrap_or(false))
            .collect();
        assert_eq!(hits.len(), 1, "exactly one verdict holds: {hits:?}");
        hits[0]
    });
    solver.pop(1);
    out
}

proptest! {
    // 64 cases by default; PROPTEST_CASES raises it for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn stateless_verdicts_agree_with_the_simulator(text in ruleset(), pkts in prop::collection::vec(packet(), 1..25)) {
        let parsed = crate::load(&text);
        prop_assert!(!parsed.has_errors(), "{text}\n{:?}", parsed.diagnostics);
        let rs = &parsed.ruleset;
        let u = Universe::of(rs, &[]);
        let sym = SymPacket::new("x", &u);
        let trav = Traversal::encode(rs, 0, Hook::Input, &sym, &u, StateModel::Empty).unwrap();
        prop_assert!(trav.assumed.is_empty());
        let solver = Solver::new();
        for d in &trav.defs {
            solver.assert(d);
        }
        solver.assert(&trav.entry);
        solver.assert(packet_constraints(rs, &u, &sym, Hook::Input, StateModel::Empty));
        for p in pkts {
            let mut engine = Engine::new(rs, SimConfig::default(), Ifaces::default()).expect("stateless rules simulate");
            let iface = engine.iface(p.iface);
            let src = IpAddr::V4(Ipv4Addr::from(p.src));
            let pk = Packet {
                src,
                dst: IpAddr::V4(Ipv4Addr::from(p.dst)),
                proto: p.proto,
                sport: if matches!(p.proto, 6 | 17) { p.sport } else { 0 },
                dport: if matches!(p.proto, 6 | 17) { p.dport } else { 0 },
                flags: if p.proto == 6 { p.flags } else { 0 },
                icmp_type: if p.proto == 1 { p.icmp.0 } else { 0 },
                icmp_code: if p.proto == 1 { p.icmp.1 } else { 0 },
                icmp_id: 1,
                iface,
                len: Packet::header_len(src, p.proto) + p.extra_len,
                ttl: p.ttl,
            };
            let mut out = Outcome::default();
            engine.step(initial_jiffies(250) + 1000, &pk, &mut out);
            let z = z3_verdict(&solver, &trav, &sym, &u, &pk, p.iface);
            match out.decided {
                Decided::Stage(why) => prop_assert!(z.is_none(), "{text}\n{pk:?}: sim: {why}, z3: {z:?}"),
                _ => {
                    let want = match out.verdict {
                        Verdict::Accept => Final::Accept,
                        Verdict::Drop => Final::Drop,
                        Verdict::Reject => Final::Reject,
                    };
                    prop_assert_eq!(z, Some(want), "{}\n{:?} decided by {:?}", text, pk, out.decided);
                }
            }
        }
    }
}
