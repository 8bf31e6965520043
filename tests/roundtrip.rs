//! Property test: random rules written in canonical `iptables-save` form (SEMANTICS.md
//! §1.4–1.5) load without errors and print back byte for byte, with and without counters.
//!
//! The generator writes the canonical text itself, from the rules in SEMANTICS.md, so a
//! difference points at fwverify's parser or printer, not at the generator's own printing.
//! Jumps only go "forward" between user chains, so no loop is ever generated.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// User chains, sorted the way iptables-save sorts them (by bytes).
const USER: [&str; 3] = ["LOGDROP", "knock", "ssh-in"];
/// All chains in save order: built-ins, then user chains.
const CHAINS: [&str; 6] = ["INPUT", "FORWARD", "OUTPUT", "LOGDROP", "knock", "ssh-in"];

/// `xtables_save_string`: bare when non-empty and only `[A-Za-z0-9_-]`, else double-quoted
/// with `"`, `\` and `'` escaped.
fn save_string(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn bang(inv: bool) -> &'static str {
    if inv {
        " !"
    } else {
        ""
    }
}

/// ` [!] -s a.b.c.d/len` with host bits cleared.
fn cidr(opt: &'static str) -> impl Strategy<Value = String> {
    (any::<u32>(), 1u32..=32, any::<bool>()).prop_map(move |(a, len, inv)| {
        let mask = u32::MAX << (32 - len);
        format!("{} -{opt} {}/{len}", bang(inv), std::net::Ipv4Addr::from(a & mask))
    })
}

fn iface(opt: &'static str) -> impl Strategy<Value = String> {
    ("[a-z]{2,5}[0-9]{0,3}\\+?", any::<bool>()).prop_map(move |(n, inv)| format!("{} -{opt} {n}", bang(inv)))
}

/// A port or a range as saved: `N`, or `LO:HI` with `LO != HI`. Reversed ranges only for
/// udp (tcp refuses them), and never `0:65535` (saved as nothing).
fn port_range(reversed_ok: bool) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u16>().prop_map(|p| p.to_string()),
        prop_oneof![Just(22u16), Just(80), Just(443), 0u16..1024].prop_map(|p| p.to_string()),
        (any::<u16>(), any::<u16>())
            .prop_filter("N:N is saved as N", |(a, b)| a != b)
            .prop_filter("0:65535 is saved as nothing", |(a, b)| (*a, *b) != (0, 65535))
            .prop_filter("tcp refuses reversed ranges", move |(a, b)| reversed_ok || a < b)
            .prop_map(|(a, b)| format!("{a}:{b}")),
    ]
}

fn opt_port(name: &'static str, reversed_ok: bool) -> impl Strategy<Value = String> {
    prop::option::weighted(0.5, (any::<bool>(), port_range(reversed_ok)))
        .prop_map(move |o| o.map(|(inv, p)| format!("{} --{name} {p}", bang(inv))).unwrap_or_default())
}

/// `FIN,SYN,…` in kernel order, or `NONE`.
fn tcp_flags(bits: u8) -> String {
    let names = ["FIN", "SYN", "RST", "PSH", "ACK", "URG"];
    let v: Vec<&str> = names.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, n)| *n).collect();
    if v.is_empty() {
        "NONE".into()
    } else {
        v.join(",")
    }
}

fn m_tcp() -> impl Strategy<Value = String> {
    // An empty mask is saved only with `!`.
    let flags =
        prop::option::weighted(0.4, (any::<bool>(), 0u8..64, 0u8..64).prop_filter("saved", |(i, m, _)| *i || *m != 0))
            .prop_map(|o| o.map(|(inv, m, c)| format!("{} --tcp-flags {} {}", bang(inv), tcp_flags(m), tcp_flags(c))));
    let option = prop::option::weighted(0.15, (any::<bool>(), 1u8..=255))
        .prop_map(|o| o.map(|(inv, n)| format!("{} --tcp-option {n}", bang(inv))));
    (opt_port("sport", false), opt_port("dport", false), option, flags)
        .prop_map(|(s, d, o, f)| format!(" -m tcp{s}{d}{}{}", o.unwrap_or_default(), f.unwrap_or_default()))
}

fn m_udp() -> impl Strategy<Value = String> {
    (opt_port("sport", true), opt_port("dport", true)).prop_map(|(s, d)| format!(" -m udp{s}{d}"))
}

fn m_icmp() -> impl Strategy<Value = String> {
    let ty = prop_oneof![
        Just("any".to_string()),
        (0u8..=254).prop_map(|t| t.to_string()),
        (0u8..=254, any::<u8>()).prop_map(|(t, c)| format!("{t}/{c}")),
    ];
    (any::<bool>(), ty).prop_map(|(inv, t)| format!(" -m icmp{} --icmp-type {t}", bang(inv)))
}

/// Ports and ranges of `-m multiport`, at most 15 slots (a range takes two).
fn m_multiport() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        3 => any::<u16>().prop_map(|p| (p.to_string(), 1)),
        1 => (any::<u16>(), any::<u16>()).prop_filter("a real range", |(a, b)| a < b).prop_map(|(a, b)| (format!("{a}:{b}"), 2)),
    ];
    let side = prop_oneof![Just("sports"), Just("dports"), Just("ports")];
    (any::<bool>(), side, prop::collection::vec(item, 1..10)).prop_map(|(inv, side, items)| {
        let mut slots = 0;
        let list: Vec<String> = items
            .into_iter()
            .take_while(|(_, n)| {
                slots += n;
                slots <= 15
            })
            .map(|(s, _)| s)
            .collect();
        format!(" -m multiport{} --{side} {}", bang(inv), list.join(","))
    })
}

fn m_state() -> impl Strategy<Value = String> {
    (any::<bool>(), 1u8..32).prop_map(|(inv, bits)| {
        let names = ["INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED"];
        let v: Vec<&str> = names.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, n)| *n).collect();
        format!(" -m state{} --state {}", bang(inv), v.join(","))
    })
}

/// `-m recent` in every mode. `--seconds`, `--reap`, `--hitcount` and `--rttl` only with
/// `--rcheck`/`--update` (the kernel refuses them with `--set`/`--remove`); `--reap` needs
/// `--seconds`.
fn m_recent() -> impl Strategy<Value = String> {
    let mode = prop_oneof![Just("set"), Just("rcheck"), Just("update"), Just("remove")];
    let seconds = prop::option::of(prop_oneof![1u32..=600, 1u32..=i32::MAX as u32]);
    // No leading dot: the name becomes a /proc/net/xt_recent entry.
    let name = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,11}";
    let mask = prop_oneof![Just(u32::MAX), Just(0xffff_ff00), any::<u32>()];
    (
        any::<bool>(),
        mode,
        seconds,
        any::<bool>(),
        prop::option::of(1u32..=100),
        any::<bool>(),
        name,
        mask,
        any::<bool>(),
    )
        .prop_map(|(inv, mode, seconds, reap, hit, rttl, name, mask, rdest)| {
            let mut s = format!(" -m recent{} --{mode}", bang(inv));
            if mode == "rcheck" || mode == "update" {
                if let Some(sec) = seconds {
                    s += &format!(" --seconds {sec}");
                    if reap {
                        s += " --reap";
                    }
                }
                if let Some(h) = hit {
                    s += &format!(" --hitcount {h}");
                }
                if rttl {
                    s += " --rttl";
                }
            }
            let side = if rdest { "--rdest" } else { "--rsource" };
            format!("{s} --name {name} --mask {} {side}", std::net::Ipv4Addr::from(mask))
        })
}

const LIMIT_SCALE: u64 = 10_000;
const RATE_UNITS: [(u64, &str); 4] = [(86_400, "day"), (3_600, "hour"), (60, "min"), (1, "sec")];

/// libxt_limit's `print_rate`: the largest unit that still shows the rate exactly enough.
fn print_rate(avg: u64) -> String {
    let mult = |i: usize| RATE_UNITS[i].0 * LIMIT_SCALE;
    let mut i = 1;
    while i < RATE_UNITS.len() {
        if avg > mult(i) || mult(i) / avg < mult(i) % avg {
            break;
        }
        i += 1;
    }
    format!("{}/{}", mult(i - 1) / avg, RATE_UNITS[i - 1].1)
}

/// libxt_limit's `parse_rate` for `N/unit`.
fn parse_rate(n: u64, unit_secs: u64) -> u64 {
    unit_secs * LIMIT_SCALE / n
}

/// `-m limit`: only rates whose saved form reads back to the same rate (a fixpoint of
/// iptables' own parse and print), burst 1-10000, and `avg * burst` within the kernel's
/// 32-bit credit arithmetic (else: "Overflow, try lower").
fn m_limit() -> impl Strategy<Value = String> {
    let unit = prop_oneof![Just((1u64, 10_000u64)), Just((60, 2_000)), Just((3_600, 5_000)), Just((86_400, 5_000))];
    (unit, 1u64..10_000, prop_oneof![Just(5u64), 1u64..=10_000])
        .prop_map(|((secs, max), n, burst)| (parse_rate(n.min(max), secs), burst))
        .prop_filter("avg > 0", |(avg, _)| *avg > 0)
        .prop_filter("saved rate reads back to itself", |(avg, _)| {
            let shown = print_rate(*avg);
            let (n, unit) = shown.split_once('/').unwrap();
            let secs = RATE_UNITS.iter().find(|(_, u)| *u == unit).unwrap().0;
            parse_rate(n.parse().unwrap(), secs) == *avg
        })
        .prop_filter("no credit overflow", |(avg, burst)| avg * burst <= u32::MAX as u64)
        .prop_map(|(avg, burst)| {
            let b = if burst == 5 { String::new() } else { format!(" --limit-burst {burst}") };
            format!(" -m limit --limit {}{b}", print_rate(avg))
        })
}

/// Text with spaces, quotes, backslashes, `#`, `!`, dashes and non-ASCII letters.
fn free_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{1,12}",
        prop::collection::vec(
            prop_oneof![
                4 => prop::char::range('a', 'z'),
                1 => Just(' '), 1 => Just('"'), 1 => Just('\''), 1 => Just('\\'), 1 => Just('#'),
                1 => Just('!'), 1 => Just('-'), 1 => Just(':'), 1 => Just('é'), 1 => Just('/'),
            ],
            0..max,
        )
        .prop_map(|v| v.into_iter().collect::<String>()),
    ]
}

fn m_comment() -> impl Strategy<Value = String> {
    free_text(40).prop_map(|t| format!(" -m comment --comment {}", save_string(&t)))
}

/// The layer-4 protocol of a rule, deciding which matches it may carry.
#[derive(Clone, Copy, Debug, PartialEq)]
enum L4 {
    Any,
    Tcp,
    Udp,
    Icmp,
    /// `-p NAME` (possibly with `!`) without protocol matches.
    Other(&'static str, bool),
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        3 => Just(L4::Any),
        4 => Just(L4::Tcp),
        2 => Just(L4::Udp),
        2 => Just(L4::Icmp),
        1 => (prop_oneof![Just("tcp"), Just("udp"), Just("icmp"), Just("gre"), Just("esp"), Just("ah"), Just("igmp")], any::<bool>())
            .prop_map(|(p, inv)| L4::Other(p, inv)),
    ]
}

fn matches(p: L4) -> impl Strategy<Value = String> {
    let generic = prop_oneof![m_state(), m_recent(), m_limit(), m_comment()].boxed();
    let proto = match p {
        L4::Tcp => prop_oneof![m_tcp(), m_multiport()].boxed(),
        L4::Udp => prop_oneof![m_udp(), m_multiport()].boxed(),
        L4::Icmp => m_icmp().boxed(),
        _ => generic.clone(),
    };
    prop::collection::vec(prop_oneof![generic, proto], 0..4).prop_map(|v| v.concat())
}

fn log_target() -> impl Strategy<Value = String> {
    let prefix =
        prop::option::of(free_text(29).prop_filter("non-empty, at most 29 bytes", |s| !s.is_empty() && s.len() <= 29));
    let level = prop::option::of(prop_oneof![Just(0u8), Just(1), Just(2), Just(3), Just(5), Just(6), Just(7)]);
    (prefix, level, any::<[bool; 5]>()).prop_map(|(prefix, level, flags)| {
        let mut s = String::from(" -j LOG");
        if let Some(p) = prefix {
            s += &format!(" --log-prefix {}", save_string(&p));
        }
        if let Some(l) = level {
            s += &format!(" --log-level {l}");
        }
        let names = ["--log-tcp-sequence", "--log-tcp-options", "--log-ip-options", "--log-uid", "--log-macdecode"];
        for (on, n) in flags.iter().zip(names) {
            if *on {
                s += " ";
                s += n;
            }
        }
        s
    })
}

fn target(chain: usize, p: L4) -> impl Strategy<Value = String> {
    let mut reject = vec![
        "icmp-net-unreachable",
        "icmp-host-unreachable",
        "icmp-port-unreachable",
        "icmp-proto-unreachable",
        "icmp-net-prohibited",
        "icmp-host-prohibited",
        "icmp-admin-prohibited",
    ];
    if p == L4::Tcp {
        reject.push("tcp-reset");
    }
    let later: Vec<&'static str> = CHAINS[chain.max(2) + 1..].to_vec();
    let jumps = if later.is_empty() {
        Just(" -j DROP".to_string()).boxed()
    } else {
        (prop::sample::select(later), any::<bool>())
            .prop_map(|(c, goto)| format!(" -{} {c}", if goto { 'g' } else { 'j' }))
            .boxed()
    };
    prop_oneof![
        1 => Just(String::new()),
        3 => prop_oneof![Just(" -j ACCEPT"), Just(" -j DROP"), Just(" -j RETURN")].prop_map(String::from),
        1 => prop::sample::select(reject).prop_map(|r| format!(" -j REJECT --reject-with {r}")),
        2 => log_target(),
        2 => jumps,
    ]
}

/// One rule of chain `chain`: `-A CHAIN` + IP part + matches + target. `-i` is left out in
/// OUTPUT and `-o` in INPUT, where iptables refuses them.
fn rule(chain: usize) -> impl Strategy<Value = String> {
    l4().prop_flat_map(move |p| {
        let i = if chain == 2 { Just(None).boxed() } else { prop::option::weighted(0.3, iface("i")).boxed() };
        let o = if chain == 0 { Just(None).boxed() } else { prop::option::weighted(0.3, iface("o")).boxed() };
        let frag = prop::option::weighted(0.1, any::<bool>());
        let ip = (prop::option::weighted(0.4, cidr("s")), prop::option::weighted(0.3, cidr("d")), i, o, frag);
        (ip, matches(p), target(chain, p)).prop_map(move |((s, d, i, o, f), m, t)| {
            let proto = match p {
                L4::Any => String::new(),
                L4::Tcp => " -p tcp".into(),
                L4::Udp => " -p udp".into(),
                L4::Icmp => " -p icmp".into(),
                L4::Other(n, inv) => format!("{} -p {n}", bang(inv)),
            };
            let frag = f.map(|inv| format!("{} -f", bang(inv))).unwrap_or_default();
            let ip = [s, d, i, o].into_iter().flatten().collect::<String>();
            format!("-A {}{ip}{proto}{frag}{m}{t}", CHAINS[chain])
        })
    })
}

/// A filter table: three built-in chains with random policies, the user chains, and up
/// to 12 rules in random chains (printed grouped by chain, in save order).
pub(crate) fn ruleset() -> impl Strategy<Value = String> {
    let rules = prop::collection::vec((0..CHAINS.len()).prop_flat_map(|c| (Just(c), rule(c))), 0..12);
    (any::<[bool; 3]>(), rules).prop_map(|(pol, mut rules)| {
        rules.sort_by_key(|(c, _)| *c);
        let mut s = String::from("*filter\n");
        for (name, drop) in CHAINS[..3].iter().zip(pol) {
            s += &format!(":{name} {} [0:0]\n", if drop { "DROP" } else { "ACCEPT" });
        }
        for name in USER {
            s += &format!(":{name} - [0:0]\n");
        }
        for (_, r) in rules {
            s += &r;
            s.push('\n');
        }
        s + "COMMIT\n"
    })
}

fn config() -> Config {
    Config {
        cases: 300,
        rng_seed: RngSeed::Fixed(0x6677_7665_7269_6679),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn canonical_rules_print_back_unchanged(text in ruleset()) {
        // `FWV_SHOW=1 cargo test canonical_rules -- --nocapture` shows what is generated.
        if std::env::var_os("FWV_SHOW").is_some() { eprintln!("{text}"); }
        let parsed = fwverify::load(&text);
        let errors: Vec<String> = parsed.diagnostics.iter().filter(|d| d.is_error())
            .map(|d| format!("{} line {}: {}", d.code, d.span.map_or(0, |s| s.line), d.message))
            .collect();
        prop_assert!(errors.is_empty(), "errors for\n{text}\n{errors:#?}");
        let printed = crate::common::print(&parsed.ruleset, false);
        if let Some(d) = crate::common::line_diff(&text, &printed) {
            prop_assert!(false, "fmt changed canonical text:\n{d}");
        }
        // With counters: every rule gets `[0:0]`, and that text is a fixpoint too.
        let with = crate::common::print(&parsed.ruleset, true);
        let again = fwverify::load(&with);
        prop_assert!(!again.has_errors(), "counter print does not load:\n{with}");
        let with2 = crate::common::print(&again.ruleset, true);
        if let Some(d) = crate::common::line_diff(&with, &with2) {
            prop_assert!(false, "fmt --counters is not a fixpoint:\n{d}");
        }
    }
}

#[test]
fn rate_printing_reference_matches_semantics_examples() {
    // SEMANTICS.md §1.5: `--limit 1/s` → `1/sec`; bare limit → `3/hour`; `60/min` → `1/sec`.
    assert_eq!(print_rate(parse_rate(1, 1)), "1/sec");
    assert_eq!(print_rate(parse_rate(3, 3_600)), "3/hour");
    assert_eq!(print_rate(parse_rate(60, 60)), "1/sec");
    assert_eq!(print_rate(parse_rate(90, 3_600)), "90/hour");
    assert_eq!(save_string("it's"), "\"it\\'s\"");
    assert_eq!(save_string(""), "\"\"");
}
