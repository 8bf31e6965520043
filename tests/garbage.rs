//! Arbitrary input ends in a value or an error, never a panic or a hang: token soup as
//! rulesets (those that load are then simulated for a few packets), random rows as
//! scenario CSV, random bytes behind a capture's magic number.

use std::net::IpAddr;

use fwverify::packet::{proto, Packet};
use fwverify::sim::{Engine, Ifaces, Outcome, SimConfig};
use fwverify::trace::csv::CsvTrace;
use fwverify::trace::pcap::PcapTrace;
use fwverify::trace::IfaceBuf;
use proptest::prelude::*;

/// Pieces of `iptables-save` text, valid and not, for rules after `-A CHAIN`.
const RULE_TOKENS: &[&str] = &[
    "-p",
    "tcp",
    "udp",
    "icmp",
    "ipv6-icmp",
    "all",
    "!",
    "-s",
    "-d",
    "1.2.3.4",
    "10.0.0.0/8",
    "1.2.3.4/40",
    "::1",
    "2001:db8::/33",
    "-i",
    "-o",
    "eth0",
    "lo",
    "eth+",
    "-f",
    "-m",
    "recent",
    "--set",
    "--rcheck",
    "--update",
    "--remove",
    "--name",
    "--seconds",
    "--hitcount",
    "--rttl",
    "--reap",
    "--mask",
    "--rsource",
    "--rdest",
    "255.255.255.0",
    "limit",
    "--limit",
    "1/s",
    "3/min",
    "0/s",
    "--limit-burst",
    "hashlimit",
    "--hashlimit-above",
    "--hashlimit-upto",
    "--hashlimit-mode",
    "srcip,dstport",
    "--hashlimit-name",
    "state",
    "--state",
    "NEW,ESTABLISHED",
    "conntrack",
    "--ctstate",
    "INVALID",
    "--dport",
    "--sport",
    "22",
    "0:65535",
    "70000",
    "9:1",
    "--tcp-flags",
    "SYN,ACK",
    "SYN",
    "--syn",
    "multiport",
    "--dports",
    "1,2,3",
    "comment",
    "--comment",
    "\"a b\"",
    "\"",
    "'",
    "hl",
    "--hl-eq",
    "--hl",
    "ttl",
    "--ttl-gt",
    "255",
    "256",
    "-j",
    "-g",
    "ACCEPT",
    "DROP",
    "RETURN",
    "REJECT",
    "--reject-with",
    "tcp-reset",
    "icmp-port-unreachable",
    "LOG",
    "--log-prefix",
    "MARK",
    "--set-mark",
    "0x1/0xff",
    "DNAT",
    "--to-destination",
    "1.2.3.4:80",
    "SNAT",
    "--to-source",
    "MASQUERADE",
    "REDIRECT",
    "--to-ports",
    "NOTRACK",
    "CT",
    "--notrack",
    "length",
    "--length",
    "10:20",
    "addrtype",
    "--src-type",
    "LOCAL",
    "iprange",
    "--src-range",
    "1.1.1.1-1.1.1.9",
    "connlimit",
    "--connlimit-above",
    "2",
    "mark",
    "--mark",
    "1",
    "icmp",
    "--icmp-type",
    "echo-request",
    "8/0",
    "statistic",
    "--mode",
    "nth",
    "--every",
    "3",
    "x",
    "INPUT",
    "other",
    "#",
    "-c",
    "[1:2]",
    "-A",
    "-N",
];

/// Lines that are not rules: headers, chains, commits, comments and broken ones.
const LINES: &[&str] = &[
    "*filter",
    "*nat",
    "*mangle",
    "*raw",
    "*bogus",
    ":INPUT DROP [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":FORWARD ACCEPT [3:4]",
    ":PREROUTING ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
    ":other - [0:0]",
    ":other - [0:0",
    ":INPUT",
    "COMMIT",
    "# a comment",
    "",
    "\t",
    "-A other -j RETURN",
    "-A INPUT -j other",
    "-A other -j other",
];

/// Whole, valid pieces of a filter rule, so that most generated rulesets load and run.
const FRAGMENTS: &[&str] = &[
    "-p tcp -m tcp --dport 22",
    "-p tcp -m tcp --sport 1024:65535 --tcp-flags SYN,ACK SYN",
    "-p udp -m udp --dport 53",
    "-p icmp -m icmp --icmp-type 8",
    "-s 1.2.3.0/24",
    "! -s 10.0.0.0/8",
    "-d 192.0.2.1",
    "-i eth0",
    "! -i lo",
    "-m state --state NEW",
    "-m state --state RELATED,ESTABLISHED",
    "-m conntrack --ctstate INVALID",
    "-m recent --set --name a",
    "-m recent --rcheck --seconds 2 --hitcount 2 --name a",
    "-m recent --update --seconds 60 --rttl --name b",
    "-m recent ! --rcheck --name b",
    "-m recent --remove --name a",
    "-m limit --limit 2/sec --limit-burst 2",
    "-m hashlimit --hashlimit-above 1/sec --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name h",
    "-p tcp -m multiport --dports 22,80,443",
    "-m length --length 0:100",
    "-m ttl --ttl-lt 5",
    "-m connlimit --connlimit-above 1",
    "-m mark --mark 0x1",
    "-m comment --comment \"x\"",
];

const TARGETS: &[&str] = &[
    "-j ACCEPT",
    "-j DROP",
    "-j RETURN",
    "-j other",
    "-g other",
    "-j REJECT",
    "-j REJECT --reject-with icmp-host-prohibited",
    "-j LOG --log-prefix \"x \"",
    "-j MARK --set-xmark 0x1/0xffffffff",
    "",
];

fn ruleset() -> impl Strategy<Value = String> {
    let soup = (
        prop::sample::select(&["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING", "other", "nope"][..]),
        prop::collection::vec(prop::sample::select(RULE_TOKENS), 0..12),
    )
        .prop_map(|(chain, toks)| format!("-A {chain} {}", toks.join(" ")));
    let valid = (
        prop::sample::select(&["INPUT", "INPUT", "INPUT", "FORWARD", "other"][..]),
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..4),
        prop::sample::select(TARGETS),
    )
        .prop_map(|(chain, frags, target)| format!("-A {chain} {} {target}", frags.join(" ")));
    let line = prop_oneof![
        30 => valid,
        1 => soup,
        1 => prop::sample::select(LINES).prop_map(String::from),
    ];
    (0..10u8, prop::collection::vec(line, 0..14), 0..10u8).prop_map(|(head, body, commit)| {
        let mut s = String::new();
        if head > 0 {
            s.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:other - [0:0]\n");
        }
        for l in body {
            s.push_str(&l);
            s.push('\n');
        }
        if commit > 0 {
            s.push_str("COMMIT\n");
        }
        s
    })
}

fn packets() -> Vec<Packet> {
    let a = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut syn = Packet::ip(a("1.2.3.4"), a("192.0.2.1"), proto::TCP, 40, 64);
    (syn.sport, syn.dport, syn.flags) = (40000, 22, 0x02);
    let ack = Packet { flags: 0x10, ..syn };
    let udp = Packet { proto: proto::UDP, dport: 53, flags: 0, len: 28, ..syn };
    let ping = Packet { icmp_type: 8, icmp_id: 1, ..Packet::ip(a("10.1.1.1"), a("192.0.2.1"), proto::ICMP, 28, 1) };
    vec![syn, ack, udp, ping, syn]
}

const CSV_TOKENS: &[&str] = &[
    "0",
    "0.5",
    "1.000000001",
    "1e3",
    "-1",
    "99999999999999999999",
    "1.2.3.4",
    "::1",
    "300.1.1.1",
    "tcp",
    "udp",
    "icmp",
    "icmpv6",
    "6",
    "256",
    "22",
    "65536",
    "S",
    "SA",
    "NONE",
    "Z",
    "8",
    "eth0",
    "a-very-long-interface-name",
    "",
    "ACCEPT",
    "DROP",
    "nope",
    "\"q\"",
    "\"",
    "#c",
    " 1",
    "0x10",
];

fn csv() -> impl Strategy<Value = String> {
    // The reader's columns and one it does not know.
    let columns: Vec<&str> = fwverify::trace::csv::COLUMNS.iter().copied().chain(["bogus"]).collect();
    let header = prop::collection::vec(prop::sample::select(columns), 0..10);
    let rows = prop::collection::vec(prop::collection::vec(prop::sample::select(CSV_TOKENS), 0..12), 0..10);
    (any::<bool>(), header, rows).prop_map(|(full, header, rows)| {
        let mut s = if full { "time,src,dst,proto,sport,dport,flags".to_string() } else { header.join(",") };
        s.push('\n');
        for r in rows {
            s.push_str(&r.join(","));
            s.push('\n');
        }
        s
    })
}

/// A capture: a pcap file header (Ethernet or raw IP), then records of random lengths
/// holding IPv4/IPv6 headers with random fields and tails; or a bare magic number and
/// random bytes.
fn capture() -> impl Strategy<Value = Vec<u8>> {
    const MAGIC: &[&[u8]] = &[
        &[0xd4, 0xc3, 0xb2, 0xa1],
        &[0xa1, 0xb2, 0xc3, 0xd4],
        &[0x4d, 0x3c, 0xb2, 0xa1],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        &[],
    ];
    let raw = (prop::sample::select(MAGIC), prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(m, rest)| {
        let mut v = m.to_vec();
        v.extend(rest);
        v
    });
    // A record's packet: an IPv4 or IPv6 header whose lengths mostly fit, a protocol
    // among TCP, UDP, ICMP and others, random addresses and fields, a random tail; the
    // link-layer header is added per file.
    let ip = (any::<bool>(), prop::sample::select(&[6u8, 17, 1, 58, 47, 6][..]), any::<[u8; 40]>(), any::<u8>())
        .prop_flat_map(|(v6, pr, fields, fit)| (Just((v6, pr, fields, fit)), prop::collection::vec(any::<u8>(), 0..48)))
        .prop_map(|((v6, pr, fields, fit), tail)| {
            let mut h = fields.to_vec();
            if v6 {
                h[0] = 0x60;
                let plen = if fit % 5 == 0 { fit as u16 } else { tail.len() as u16 };
                h[4..6].copy_from_slice(&plen.to_be_bytes());
                h[6] = pr;
            } else {
                h.truncate(20);
                h[0] = 0x45;
                let total = if fit % 5 == 0 { fit as u16 } else { 20 + tail.len() as u16 };
                h[2..4].copy_from_slice(&total.to_be_bytes());
                h[6] &= 0x1f; // fragment bits mostly clear
                h[9] = pr;
            }
            h.extend(tail);
            (v6, h)
        });
    let record = (any::<u32>(), ip, any::<u8>()).prop_map(|(ts, (v6, data), cut)| (ts, v6, data, cut));
    let file = (prop::sample::select(&[1u32, 101, 113, 276, 999][..]), prop::collection::vec(record, 0..12)).prop_map(
        |(link, records)| {
            let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0];
            v.extend_from_slice(&link.to_le_bytes());
            for (k, (ts, v6, ip, cut)) in records.into_iter().enumerate() {
                let mut data = match link {
                    1 => vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
                    113 => vec![0; 14],
                    276 => vec![0; 20],
                    _ => Vec::new(),
                };
                match link {
                    1 | 113 => data.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] }),
                    276 => data[..2].copy_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] }),
                    _ => {}
                }
                data.extend(ip);
                // Times that mostly go forward, now and then back.
                let sec = if cut == 7 { 0 } else { k as u32 };
                v.extend_from_slice(&sec.to_le_bytes());
                v.extend_from_slice(&(ts % 1_000_000).to_le_bytes());
                let len = data.len() as u32;
                // The record's captured length is sometimes wrong.
                let incl = if cut == 255 { len + 7 } else { len };
                v.extend_from_slice(&incl.to_le_bytes());
                v.extend_from_slice(&len.to_le_bytes());
                v.extend(data);
            }
            v
        },
    );
    prop_oneof![1 => raw, 3 => file]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_rulesets_load_or_are_refused(text in ruleset()) {
        let parsed = fwverify::load(&text);
        if !parsed.has_errors() {
            let host = SimConfig {
                listen: vec![(6, 22), (17, 53)],
                forward: true,
                hosts: vec!["192.0.2.1".parse().unwrap()],
                ..SimConfig::default()
            };
            for cfg in [SimConfig::default(), host] {
                if let Ok(mut engine) = Engine::new(&parsed.ruleset, cfg, Ifaces::default()) {
                    let iface = engine.iface("eth0");
                    let mut out = Outcome::default();
                    for (i, p) in packets().into_iter().enumerate() {
                        let now = fwverify::trace::to_jiffies(i as u64 * 300_000_000, 250);
                        engine.step(now, &Packet { iface, ..p }, &mut out);
                    }
                }
            }
        }
    }

    #[test]
    fn random_scenario_rows_read_or_fail(text in csv()) {
        if let Ok(mut t) = CsvTrace::new("s.csv", text.as_bytes()) {
            for _ in 0..100 {
                match t.next_row() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn random_capture_bytes_read_or_fail(bytes in capture()) {
        let iface = IfaceBuf::new("eth0").unwrap();
        if let Ok(mut t) = PcapTrace::new("c.pcap", bytes.as_slice(), iface) {
            let mut n = 0;
            while let Ok(Some(_)) = t.next_row() {
                n += 1;
                prop_assert!(n <= bytes.len(), "more rows than bytes: the reader does not advance");
            }
        }
    }
}
