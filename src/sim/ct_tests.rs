//! The connection table's limit in the engine (`nf_conntrack_max`, `early_drop`).

use std::net::IpAddr;

use super::*;

fn tcp(e: &mut Engine, src: &str, sport: u16, dport: u16, flags: u8) -> Packet {
    let mut p = Packet::ip(src.parse::<IpAddr>().unwrap(), "10.0.0.1".parse().unwrap(), proto::TCP, 40, 64);
    p.sport = sport;
    p.dport = dport;
    p.flags = flags;
    p.iface = e.iface("eth0");
    p
}

/// Two ASSURED connections fill a table of two: `early_drop` finds nothing to evict, so a
/// new SYN is dropped at conntrack (after raw), while the connections' own packets and an
/// untracked (NOTRACK) packet still pass.
#[test]
fn a_full_table_of_assured_connections_drops_new_ones() {
    let rules = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A PREROUTING -p tcp -m tcp --dport 23 -j NOTRACK\n-A OUTPUT -p tcp -m tcp --sport 23 -j NOTRACK\nCOMMIT\n\
        *filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A INPUT -m state --state ESTABLISHED,NEW,UNTRACKED -j ACCEPT\nCOMMIT\n";
    let parsed = crate::load(rules);
    assert!(!parsed.has_errors());
    let cfg = SimConfig {
        hosts: vec!["10.0.0.1".parse().unwrap()],
        listen: vec![(proto::TCP, 22), (proto::TCP, 23)],
        conntrack_max: 2,
        conntrack_buckets: 1,
        ..SimConfig::default()
    };
    let mut e = Engine::new(&parsed.ruleset, cfg, Ifaces::default()).unwrap();
    let mut out = Outcome::default();
    let t = initial_jiffies(250);
    for (k, src) in ["192.0.2.10", "192.0.2.11"].into_iter().enumerate() {
        let syn = tcp(&mut e, src, 40000, 22, 0x02);
        e.step(t + k as u64, &syn, &mut out);
        assert_eq!(out.verdict, Verdict::Accept);
        let ack = tcp(&mut e, src, 40000, 22, 0x10);
        e.step(t + k as u64, &ack, &mut out);
        assert_eq!(out.verdict, Verdict::Accept);
    }
    assert_eq!(e.state_sizes().conns, 2);
    let syn = tcp(&mut e, "192.0.2.12", 40000, 22, 0x02);
    e.step(t + 5, &syn, &mut out);
    assert_eq!((out.verdict, out.decided), (Verdict::Drop, Decided::Stage(TABLE_FULL)));
    assert!(out.replies.is_empty());
    let data = tcp(&mut e, "192.0.2.10", 40000, 22, 0x18);
    e.step(t + 6, &data, &mut out);
    assert_eq!(out.verdict, Verdict::Accept);
    let untracked = tcp(&mut e, "192.0.2.13", 40000, 23, 0x02);
    e.step(t + 7, &untracked, &mut out);
    assert_eq!(out.verdict, Verdict::Accept, "{out:?}");
    assert_eq!(out.ctstate, ctstate::UNTRACKED);
    assert_eq!(e.state_sizes().conns, 2);
}
