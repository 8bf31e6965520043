//! NAT in the simulator (issue #3): DNAT/REDIRECT rewrite the destination before routing,
//! SNAT/MASQUERADE the source in POSTROUTING, and the connection's binding translates
//! later packets in both directions without the nat table.

use std::net::IpAddr;

use super::host::ReplyKind;
use super::*;
use crate::model::matches::ctstate;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn engine(rules: &str, cfg: SimConfig) -> Engine {
    let parsed = crate::load(rules);
    assert!(!parsed.has_errors(), "{rules}");
    let mut e = Engine::new(&parsed.ruleset, cfg, Ifaces::default()).expect("simulates");
    e.iface("eth0");
    e.iface("eth1");
    e
}

fn tcp(e: &mut Engine, iface: &str, src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Packet {
    let mut p = Packet::ip(ip(src), ip(dst), proto::TCP, 40, 64);
    p.sport = sport;
    p.dport = dport;
    p.flags = flags;
    p.iface = e.iface(iface);
    p
}

const SYN: u8 = 0x02;
const SYNACK: u8 = 0x12;
const ACK: u8 = 0x10;

fn rule_pos(e: &Engine, r: RuleId) -> (TableName, String, u32) {
    let i = &e.program().info[r as usize];
    (i.table, i.chain.clone(), i.pos)
}

#[test]
fn redirect_80_to_a_local_8080() {
    let rules =
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        -A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080\nCOMMIT\n\
        *filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n\
        -A INPUT -p tcp -m conntrack --ctstate DNAT -m tcp --dport 8080 -j ACCEPT\n\
        -A OUTPUT -p tcp -m tcp --sport 8080 -j ACCEPT\nCOMMIT\n";
    let cfg = SimConfig { hosts: vec![ip("10.0.0.1")], listen: vec![(proto::TCP, 8080)], ..SimConfig::default() };
    let mut e = engine(rules, cfg);
    let mut out = Outcome::default();
    let t0 = initial_jiffies(250);
    let syn = tcp(&mut e, "eth0", "10.0.0.2", 40000, "10.0.0.1", 80, SYN);
    e.step(t0, &syn, &mut out);
    assert_eq!(out.verdict, Verdict::Accept, "{out:?}");
    // Filter INPUT saw port 8080 (and the DNAT state); the nat rule fired once.
    assert_eq!(rule_pos(&e, out.path[0]).0, TableName::Nat);
    assert_eq!(rule_pos(&e, out.path[1]), (TableName::Filter, "INPUT".into(), 1));
    // The SYN-ACK from port 8080 passes filter OUTPUT (which sees 8080) and leaves as
    // port 80: the client sees the address it asked for.
    assert_eq!(out.replies.len(), 1);
    let r = out.replies[0];
    assert_eq!((r.why, r.verdict), (ReplyKind::SynAck, Verdict::Accept));
    assert_eq!((r.pkt.src, r.pkt.sport, r.pkt.dst, r.pkt.dport), (ip("10.0.0.1"), 80, ip("10.0.0.2"), 40000));
    assert_eq!(rule_pos(&e, out.path[2]), (TableName::Filter, "OUTPUT".into(), 1));
    // The ACK is translated by the binding without the nat table.
    let ack = tcp(&mut e, "eth0", "10.0.0.2", 40000, "10.0.0.1", 80, ACK);
    e.step(t0 + 10, &ack, &mut out);
    assert_eq!(out.verdict, Verdict::Accept);
    assert_eq!(out.ctstate, ctstate::ESTABLISHED);
    assert_eq!(out.path.len(), 1);
    assert_eq!(rule_pos(&e, out.path[0]), (TableName::Filter, "INPUT".into(), 1));
    assert_eq!(e.counters[0].0, 1, "nat saw only the first packet");
    // Port 8080 itself is not redirected: no DNAT state, dropped by the policy.
    let direct = tcp(&mut e, "eth0", "10.0.0.3", 40001, "10.0.0.1", 8080, SYN);
    e.step(t0 + 20, &direct, &mut out);
    assert_eq!(out.verdict, Verdict::Drop);
}

#[test]
fn dnat_to_a_forwarded_server_and_back() {
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        -A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.1.5-192.168.1.9:8000\nCOMMIT\n\
        *filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A FORWARD -d 192.168.1.5/32 -p tcp -m tcp --dport 8000 -m conntrack --ctorigdst 10.0.0.1 --ctreplsrc 192.168.1.5 -j ACCEPT\n\
        -A FORWARD -s 192.168.1.5/32 -p tcp -m tcp --sport 8000 -m state --state ESTABLISHED -j ACCEPT\nCOMMIT\n";
    let cfg = SimConfig { hosts: vec![ip("10.0.0.1"), ip("192.168.1.1")], forward: true, ..SimConfig::default() };
    let mut e = engine(rules, cfg);
    let mut out = Outcome::default();
    let t0 = initial_jiffies(250);
    let syn = tcp(&mut e, "eth0", "10.0.0.2", 40000, "10.0.0.1", 80, SYN);
    e.step(t0, &syn, &mut out);
    assert_eq!(out.verdict, Verdict::Accept, "{out:?}");
    assert!(out.replies.is_empty(), "forwarded, not answered by the host");
    assert_eq!(rule_pos(&e, *out.path.last().unwrap()), (TableName::Filter, "FORWARD".into(), 1));
    // The server answers the translated address; FORWARD sees the server's address,
    // the binding maps the source back to 10.0.0.1:80 in POSTROUTING.
    let synack = tcp(&mut e, "eth1", "192.168.1.5", 8000, "10.0.0.2", 40000, SYNACK);
    e.step(t0 + 1, &synack, &mut out);
    assert_eq!(out.verdict, Verdict::Accept, "{out:?}");
    assert_eq!(out.ctstate, ctstate::ESTABLISHED);
    assert_eq!(rule_pos(&e, *out.path.last().unwrap()), (TableName::Filter, "FORWARD".into(), 2));
    // Without the DNAT the same reply would be unrelated to any connection.
    let stray = tcp(&mut e, "eth1", "192.168.1.6", 8000, "10.0.0.2", 40000, SYNACK);
    e.step(t0 + 2, &stray, &mut out);
    assert_eq!(out.verdict, Verdict::Drop);
    assert_eq!(out.ctstate, ctstate::INVALID);
}

#[test]
fn snat_and_masquerade_forwarded_packets() {
    for target in ["SNAT --to-source 203.0.113.7", "MASQUERADE"] {
        let rules = format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
            -A POSTROUTING -s 192.168.1.0/24 -o eth0 -j {target}\nCOMMIT\n\
            *filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
            -A FORWARD -s 192.168.1.0/24 -j ACCEPT\n\
            -A FORWARD -d 192.168.1.10/32 -m conntrack --ctstate SNAT,ESTABLISHED -j ACCEPT\nCOMMIT\n"
        );
        // MASQUERADE takes the host's first IPv4 address (`--host`).
        let cfg =
            SimConfig { hosts: vec![ip("203.0.113.7"), ip("192.168.1.1")], forward: true, ..SimConfig::default() };
        let mut e = engine(&rules, cfg);
        let mut out = Outcome::default();
        let t0 = initial_jiffies(250);
        let syn = tcp(&mut e, "eth0", "192.168.1.10", 40000, "198.51.100.1", 443, SYN);
        e.step(t0, &syn, &mut out);
        assert_eq!(out.verdict, Verdict::Accept, "{target}: {out:?}");
        assert_eq!(rule_pos(&e, *out.path.last().unwrap()).0, TableName::Nat);
        // The reply to the host's address is mapped back to the client and forwarded
        // (it is not for the host: no answer from the host's stack).
        let synack = tcp(&mut e, "eth0", "198.51.100.1", 443, "203.0.113.7", 40000, SYNACK);
        e.step(t0 + 1, &synack, &mut out);
        assert_eq!(out.verdict, Verdict::Accept, "{target}: {out:?}");
        assert!(out.replies.is_empty(), "{target}");
        assert_eq!(rule_pos(&e, *out.path.last().unwrap()), (TableName::Filter, "FORWARD".into(), 2), "{target}");
        // The connection's tuples.
        let c = e.conntrack.live(t0 + 1).next().unwrap().clone();
        assert_eq!(c.nat_src, Some((ip("203.0.113.7"), 40000)));
        assert_eq!(c.reply().dst(), ip("203.0.113.7"));
    }
}

#[test]
fn nat_targets_with_random_are_refused() {
    let parsed = crate::load(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        -A POSTROUTING -j MASQUERADE --random\nCOMMIT\n",
    );
    assert!(!parsed.has_errors());
    let errs = Engine::new(&parsed.ruleset, SimConfig::default(), Ifaces::default()).err().expect("refused");
    assert!(errs[0].what.contains("--random"), "{errs:?}");
}

#[test]
fn nat_port_choice() {
    use crate::model::targets::NatPorts;
    use crate::model::PortRange;
    use compile::{NatAddr, NatTo};
    let r = |lo, hi, base| Some(NatPorts { range: PortRange { lo, hi }, base });
    let to = |ports| NatTo { src: false, addr: NatAddr::Fixed(ip("1.2.3.4")), ports };
    let a = ip("9.9.9.9");
    assert_eq!(to(None).pick(a, 80, &[], false), (ip("1.2.3.4"), 80));
    assert_eq!(to(r(8000, 8010, None)).pick(a, 80, &[], false).1, 8000);
    assert_eq!(to(r(8000, 8010, None)).pick(a, 8005, &[], false).1, 8005);
    assert_eq!(to(r(8000, 8009, Some(70))).pick(a, 85, &[], false).1, 8005);
    let redirect = NatTo { src: false, addr: NatAddr::Host, ports: None };
    assert_eq!(redirect.pick(a, 80, &[ip("::1"), ip("10.0.0.1")], false).0, ip("10.0.0.1"));
    assert_eq!(redirect.pick(a, 80, &[ip("10.0.0.1")], true).0, ip("127.0.0.1"));
    assert_eq!(redirect.pick(a, 80, &[], false).0, a);
}

#[test]
fn reject_replies_go_back_through_the_binding() {
    let rules =
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        -A PREROUTING -p tcp -m tcp --dport 81 -j REDIRECT --to-ports 8081\nCOMMIT\n\
        *filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A INPUT -p tcp -m tcp --dport 8081 -j REJECT --reject-with tcp-reset\nCOMMIT\n";
    let cfg = SimConfig { hosts: vec![ip("10.0.0.1")], ..SimConfig::default() };
    let mut e = engine(rules, cfg);
    let mut out = Outcome::default();
    let syn = tcp(&mut e, "eth0", "10.0.0.2", 40000, "10.0.0.1", 81, SYN);
    e.step(initial_jiffies(250), &syn, &mut out);
    assert_eq!(out.verdict, Verdict::Reject);
    let r = out.replies[0];
    assert_eq!((r.why, r.pkt.src, r.pkt.sport, r.pkt.dport), (ReplyKind::Reject, ip("10.0.0.1"), 81, 40000));
}
