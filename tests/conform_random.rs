//! Randomly generated rulesets and traces through both backends (issue #3 item 6):
//! `fwverify conform` must find zero disagreements.
//!
//! A seeded proptest runner generates [`CASES`] small `filter` rulesets (INPUT and three
//! user chains with jumps, gotos and RETURN; tcp/udp/icmp port and flag matches, `state`,
//! `recent` in every mode with `--seconds`/`--hitcount`/`--reap`/`--rttl`/`--rdest`/
//! `--mask` and `!`, `limit`, `hashlimit`, ACCEPT/DROP/REJECT, a random INPUT policy; OUTPUT with state
//! and flag matches) and short traces (three sources, a few flows, gaps of 108 or 216 ms), and
//! replays each through the simulator and the kernel. The cases run in parallel (one
//! process and one namespace each), so the whole test takes a few seconds.
//!
//! Timing: the kernel replays in real time, and a packet arriving a tick late must not
//! change a result. Packet times are multiples of 108 ms and traces last at most 2.2 s;
//! `--seconds` is 1 or 2, `limit` refills at 1/sec (or too slowly to matter), ICMP errors
//! at 1/sec per destination, TCP's out-of-window replies once per 500 ms and request
//! sockets die 1.004 to 1.032 s after their SYN, so every age the kernel compares is at
//! least 20 ms away from a window, refill or timer boundary.
//!
//! OUTPUT never drops the host's SYN-ACKs: a client that never got one cannot acknowledge
//! it, and what the kernel makes of the made-up acknowledgment depends on its random ISN.
//!
//! On failure the ruleset and the trace are printed (and kept in the temporary directory;
//! `FWV_RANDOM_KEEP=1` keeps them on success too).
//! Without root or iptables this prints `SKIPPED kernel conformance: <reason>` and passes,
//! unless `CI` is set.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestRunner};

use crate::common::skip_or_fail;

/// How many random cases run.
const CASES: usize = 12;

/// The simulation flags every case uses.
const FLAGS: [&str; 2] = ["--listen", "tcp:22,tcp:80,udp:53"];

/// User chains; a chain may jump or go only to a later one, so there are no loops.
const USER: [&str; 3] = ["c1", "c2", "c3"];

/// Sources: the first two share a /24 (for `--mask 255.255.255.0`).
const SOURCES: [&str; 3] = ["100.1.2.3", "100.1.2.77", "100.9.9.9"];

/// The host's address.
const HOST: &str = "192.0.2.1";

/// Time grid of the trace, in milliseconds (see the module docs).
const GRID_MS: u64 = 108;

/// Traces end before this time, in milliseconds.
const MAX_MS: u64 = 2200;

fn bang(inv: bool) -> &'static str {
    if inv {
        "! "
    } else {
        ""
    }
}

/// `[! ]-s …` or nothing.
fn src_part() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(String::new()),
        1 => Just(" -s 100.1.2.3/32".to_string()),
        1 => Just(" ! -s 100.1.2.0/24".to_string()),
        1 => Just(" -s 100.9.0.0/16".to_string()),
    ]
}

/// The protocol part: (text, protocol for REJECT's tcp-reset check).
fn proto_part() -> impl Strategy<Value = (String, Option<&'static str>)> {
    let port = prop_oneof![Just(22u16), Just(80), Just(1000), Just(2000)];
    let tcp_dport = prop::option::weighted(0.6, (prop::bool::weighted(0.2), port))
        .prop_map(|o| o.map(|(inv, p)| format!(" {}--dport {p}", bang(inv))).unwrap_or_default());
    let tcp_flags = prop_oneof![
        4 => Just(""),
        2 => Just(" --syn"),
        1 => Just(" ! --syn"),
        1 => Just(" --tcp-flags SYN,ACK SYN,ACK"),
        1 => Just(" --tcp-flags RST RST"),
        1 => Just(" --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE"),
    ];
    let tcp = (tcp_dport, tcp_flags).prop_map(|(d, f)| {
        if d.is_empty() && f.is_empty() {
            (" -p tcp".to_string(), Some("tcp"))
        } else {
            (format!(" -p tcp -m tcp{d}{f}"), Some("tcp"))
        }
    });
    let udp =
        prop::option::weighted(0.7, (prop::bool::weighted(0.2), prop_oneof![Just(53u16), Just(54)])).prop_map(|o| {
            match o {
                Some((inv, p)) => (format!(" -p udp -m udp {}--dport {p}", bang(inv)), Some("udp")),
                None => (" -p udp".to_string(), Some("udp")),
            }
        });
    let icmp = prop_oneof![Just(""), Just(" -m icmp --icmp-type 8"), Just(" -m icmp ! --icmp-type 8")]
        .prop_map(|m| (format!(" -p icmp{m}"), Some("icmp")));
    prop_oneof![
        3 => Just((String::new(), None)),
        4 => tcp,
        2 => udp,
        1 => icmp,
        1 => Just((" ! -p tcp".to_string(), None)),
    ]
}

/// `-m state [!] --state …` in save order, or nothing.
fn state_part() -> impl Strategy<Value = String> {
    prop::option::weighted(0.35, (prop::bool::weighted(0.15), 1u8..16))
        .prop_map(|o| {
            o.map(|(inv, bits)| {
                let names = ["INVALID", "NEW", "RELATED", "ESTABLISHED"];
                let v: Vec<&str> =
                    names.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, n)| *n).collect();
                format!(" -m state {}--state {}", bang(inv), v.join(","))
            })
        })
        .prop_map(Option::unwrap_or_default)
}

/// `-m recent …` in save order (SEMANTICS.md §1.5), or nothing.
fn recent_part() -> impl Strategy<Value = String> {
    let mode = prop_oneof![4 => Just("set"), 3 => Just("rcheck"), 2 => Just("update"), 1 => Just("remove")];
    let secs = prop_oneof![2 => Just(None), 2 => Just(Some(1u32)), 1 => Just(Some(2u32))];
    let hit = prop_oneof![3 => Just(None), 1 => (2u32..=4).prop_map(Some)];
    (
        mode,
        prop::bool::weighted(0.15),
        secs,
        prop::bool::weighted(0.3),
        hit,
        prop::bool::weighted(0.12),
        prop_oneof![Just("a"), Just("b")],
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(mode, inv, secs, reap, hit, rttl, name, mask24, rdest)| {
            let mut s = format!(" -m recent {}--{mode}", bang(inv));
            if matches!(mode, "rcheck" | "update") {
                if let Some(n) = secs {
                    let _ = write!(s, " --seconds {n}");
                    if reap {
                        s.push_str(" --reap");
                    }
                }
                if let Some(h) = hit {
                    let _ = write!(s, " --hitcount {h}");
                }
                if rttl {
                    s.push_str(" --rttl");
                }
            }
            let mask = if mask24 { "255.255.255.0" } else { "255.255.255.255" };
            let side = if rdest { "--rdest" } else { "--rsource" };
            let _ = write!(s, " --name {name} --mask {mask} {side}");
            s
        })
}

/// `-m limit …`: 1/sec refills on a whole second; 6/min and 3/hour never refill within a
/// trace (see the module docs).
fn limit_part() -> impl Strategy<Value = String> {
    prop::option::weighted(0.15, (prop_oneof![Just("1/sec"), Just("6/min"), Just("3/hour")], 1u32..=4)).prop_map(|o| {
        o.map(|(rate, burst)| {
            if burst == 5 {
                format!(" -m limit --limit {rate}")
            } else {
                format!(" -m limit --limit {rate} --limit-burst {burst}")
            }
        })
        .unwrap_or_default()
    })
}

/// `-m hashlimit …` at 1/sec (a token back on a whole second after the bucket's last
/// fill, like `limit`), per source, per source and port, per port or for everything, with
/// entries that outlive the trace (`--hashlimit-htable-expire 10000`: the kernel removes
/// expired entries only when its garbage collector runs, at a phase set when the rule was
/// loaded), or nothing. Two table names, so rules share tables whose configuration comes
/// from the rule that created them.
fn hashlimit_part() -> impl Strategy<Value = String> {
    let mode = prop_oneof![
        Just(" --hashlimit-mode srcip"),
        Just(" --hashlimit-mode srcip,dstport"),
        Just(" --hashlimit-mode dstport"),
        Just("")
    ];
    prop::option::weighted(0.15, (prop::bool::ANY, 1u32..=3, mode, prop_oneof![Just("h1"), Just("h2")])).prop_map(|o| {
        o.map(|(above, burst, mode, name)| {
            let verb = if above { "above" } else { "upto" };
            format!(
                " -m hashlimit --hashlimit-{verb} 1/sec --hashlimit-burst {burst}{mode} --hashlimit-name {name} \
                     --hashlimit-htable-expire 10000"
            )
        })
        .unwrap_or_default()
    })
}

/// The target of a rule in chain `chain` (0 = INPUT, 1.. = user chains).
fn target_part(chain: usize, tcp: bool) -> impl Strategy<Value = String> {
    let later: Vec<&'static str> = USER.iter().skip(chain).copied().collect();
    let jump = if later.is_empty() {
        Just(String::new()).boxed()
    } else {
        (prop::sample::select(later), prop::bool::weighted(0.3))
            .prop_map(|(c, goto)| if goto { format!(" -g {c}") } else { format!(" -j {c}") })
            .boxed()
    };
    let reject = prop_oneof![
        Just(" -j REJECT --reject-with icmp-port-unreachable"),
        Just(" -j REJECT --reject-with icmp-host-prohibited"),
        Just(if tcp { " -j REJECT --reject-with tcp-reset" } else { " -j REJECT --reject-with icmp-port-unreachable" }),
    ]
    .prop_map(str::to_string);
    prop_oneof![
        4 => Just(String::new()),
        4 => Just(" -j ACCEPT".to_string()),
        2 => Just(" -j DROP".to_string()),
        3 => reject,
        1 => Just(" -j RETURN".to_string()),
        3 => jump,
    ]
}

/// One rule of `chain` (0 = INPUT, 1.. = user chains), without the `-A NAME`.
fn rule(chain: usize) -> impl Strategy<Value = String> {
    (src_part(), proto_part(), state_part(), recent_part(), prop::bool::weighted(0.5), limit_part(), hashlimit_part())
        .prop_flat_map(move |(src, (proto, p), state, recent, with_recent, limit, hashlimit)| {
            let recent = if with_recent { recent } else { String::new() };
            // `tcp-reset` needs `-p tcp` (not inverted).
            let tcp = p == Some("tcp") && proto.starts_with(" -p tcp");
            target_part(chain, tcp).prop_map(move |t| format!("{src}{proto}{state}{recent}{limit}{hashlimit}{t}"))
        })
}

/// An OUTPUT rule: state and tcp flag matches, ACCEPT/DROP or counting only. Only rules
/// that cannot match a SYN-ACK drop (see the module docs).
fn output_rule() -> impl Strategy<Value = String> {
    let counting = prop_oneof![
        Just(""),
        Just(" -p tcp -m tcp --tcp-flags SYN,ACK SYN,ACK"),
        Just(" -p tcp -m tcp --tcp-flags RST RST"),
        Just(" -p icmp"),
    ];
    let target = prop_oneof![Just(""), Just(" -j ACCEPT")];
    let dropping = prop_oneof![
        Just(" -p tcp -m tcp --tcp-flags RST RST"),
        Just(" -p tcp -m tcp --tcp-flags SYN,ACK ACK"),
        Just(" -p icmp"),
        Just(" -p udp"),
    ];
    prop_oneof![
        3 => (counting, state_part(), target).prop_map(|(f, s, t)| format!("{f}{s}{t}")),
        1 => (dropping, state_part()).prop_map(|(f, s)| format!("{f}{s} -j DROP")),
    ]
}

/// A whole ruleset.
fn ruleset() -> impl Strategy<Value = String> {
    let chains = (
        prop::collection::vec(rule(0), 2..=6),
        prop::collection::vec(rule(1), 0..=4),
        prop::collection::vec(rule(2), 0..=3),
        prop::collection::vec(rule(3), 0..=3),
        prop::collection::vec(output_rule(), 0..=3),
    );
    (chains, prop::bool::weighted(0.35)).prop_map(|((input, c1, c2, c3, output), in_drop)| {
        let pol = |drop: bool| if drop { "DROP" } else { "ACCEPT" };
        let mut s = String::from("*filter\n");
        let _ = writeln!(s, ":INPUT {} [0:0]", pol(in_drop));
        s.push_str(":FORWARD DROP [0:0]\n");
        s.push_str(":OUTPUT ACCEPT [0:0]\n");
        for c in USER {
            let _ = writeln!(s, ":{c} - [0:0]");
        }
        for (name, rules) in [("INPUT", &input), ("OUTPUT", &output), ("c1", &c1), ("c2", &c2), ("c3", &c3)] {
            for r in rules.iter() {
                let _ = writeln!(s, "-A {name}{r}");
            }
        }
        s.push_str("COMMIT\n");
        s
    })
}

/// One packet of the trace, as CSV fields after the time:
/// `src,dst,proto,sport,dport,flags,icmp_type,icmp_id,len,ttl`.
fn packet() -> impl Strategy<Value = String> {
    let src = prop::sample::select(SOURCES.to_vec());
    let flags = prop_oneof![
        5 => Just(("S", 0u16)),
        4 => Just(("A", 0)),
        2 => Just(("PA", 100)),
        1 => Just(("FA", 0)),
        1 => Just(("R", 0)),
        1 => Just(("SA", 0)),
        1 => Just(("NONE", 0)),
    ];
    let tcp =
        (prop::sample::select(vec![40000u16, 40001, 40002]), prop::sample::select(vec![22u16, 80, 1000, 2000]), flags)
            .prop_map(|(sp, dp, (f, len))| {
                let len = if len == 0 { String::new() } else { len.to_string() };
                format!("tcp,{sp},{dp},{f},,,{len}")
            });
    let udp = (prop::sample::select(vec![50000u16, 50001]), prop::sample::select(vec![53u16, 54]))
        .prop_map(|(sp, dp)| format!("udp,{sp},{dp},,,,"));
    let icmp = prop_oneof![
        3 => (1u16..=2).prop_map(|id| format!("icmp,,,,8,{id},")),
        1 => Just("icmp,,,,0,3,".to_string()),
    ];
    let ttl = prop_oneof![5 => Just(64u8), 1 => Just(50)];
    (src, prop_oneof![6 => tcp, 2 => udp, 1 => icmp], ttl).prop_map(|(s, rest, ttl)| format!("{s},{HOST},{rest},{ttl}"))
}

/// A trace: up to 18 packets, gaps of one or two grid steps, shorter than [`MAX_MS`].
fn trace() -> impl Strategy<Value = String> {
    prop::collection::vec((1u64..=2, packet()), 6..=18).prop_map(|rows| {
        let mut s = String::from("time,src,dst,proto,sport,dport,flags,icmp_type,icmp_id,len,ttl\n");
        let mut t = 0u64;
        for (i, (steps, p)) in rows.into_iter().enumerate() {
            if i > 0 {
                t += steps * GRID_MS;
            }
            if t >= MAX_MS {
                break;
            }
            let _ = writeln!(s, "{}.{:03},{p}", t / 1000, t % 1000);
        }
        s
    })
}

/// The generated cases, from a fixed seed. `FWV_RANDOM_SEED` and `FWV_RANDOM_CASES`
/// explore further (e.g. `FWV_RANDOM_SEED=7 FWV_RANDOM_CASES=40 cargo test --release
/// --test tests conform_random`).
fn cases() -> Vec<(String, String)> {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("FWV_RANDOM_SEED").unwrap_or(0x6677_7663_6f6e_666d);
    let n = env("FWV_RANDOM_CASES").map_or(CASES, |n| n as usize);
    let mut runner =
        TestRunner::new(Config { rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() });
    let strategy = (ruleset(), trace());
    (0..n).map(|_| strategy.new_tree(&mut runner).expect("generating a case").current()).collect()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The reason the kernel backend cannot run, when `stderr` (exit 2) says so.
fn kernel_missing(code: Option<i32>, stderr: &str) -> Option<String> {
    let reason = stderr.lines().find_map(|l| l.strip_prefix("fwverify: the kernel backend needs "))?;
    (code == Some(2)).then(|| format!("the kernel backend needs {reason}"))
}

fn fwverify(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fwverify")).current_dir(root()).args(args).output().expect("running fwverify")
}

#[test]
fn random_rulesets_and_traces_agree_with_the_kernel() {
    let dir = std::env::temp_dir().join(format!("fwv-conform-random-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let files: Vec<(PathBuf, PathBuf, String, String)> = cases()
        .into_iter()
        .enumerate()
        .map(|(i, (rules, trace))| {
            let r = dir.join(format!("case{i:02}.v4"));
            let t = dir.join(format!("case{i:02}.csv"));
            std::fs::write(&r, &rules).expect("writing the ruleset");
            std::fs::write(&t, &trace).expect("writing the trace");
            (r, t, rules, trace)
        })
        .collect();

    // The simulator must accept every generated case (no rule it cannot evaluate).
    for (r, t, rules, trace) in &files {
        let out = fwverify(&[
            "check".as_ref(),
            r.as_os_str(),
            "--scenario".as_ref(),
            t.as_os_str(),
            FLAGS[0].as_ref(),
            FLAGS[1].as_ref(),
        ]);
        assert!(
            out.status.code() == Some(0),
            "fwverify check refused a generated case (exit {:?}):\n{}\n--- ruleset\n{rules}--- trace\n{trace}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let runs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|(r, t, _, _)| {
                s.spawn(move || {
                    fwverify(&[
                        "conform".as_ref(),
                        r.as_os_str(),
                        "--scenario".as_ref(),
                        t.as_os_str(),
                        FLAGS[0].as_ref(),
                        FLAGS[1].as_ref(),
                    ])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("conform thread")).collect()
    });
    let mut failures = Vec::new();
    for ((_, t, rules, trace), out) in files.iter().zip(&runs) {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(reason) = kernel_missing(out.status.code(), &stderr) {
            let _ = std::fs::remove_dir_all(&dir);
            skip_or_fail("kernel conformance", &reason);
            return;
        }
        let clean = out.status.success() && stdout.lines().any(|l| l.ends_with(" rows: 0 disagreements"));
        if !clean {
            failures.push(format!(
                "{} (exit {:?}):\n{stdout}{stderr}--- ruleset\n{rules}--- trace\n{trace}",
                t.display(),
                out.status.code()
            ));
        }
    }
    if failures.is_empty() && std::env::var_os("FWV_RANDOM_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(failures.is_empty(), "simulator and kernel disagree on generated cases:\n{}", failures.join("\n"));
}
