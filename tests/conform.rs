//! Kernel conformance of the simulator (issue #3): `fwverify conform` replays every shipped
//! scenario (`scenarios/*.csv`) against `scenarios/seed/rules.v4` through the simulator and
//! through the real kernel (a throwaway network namespace with TUN devices), and must find
//! no disagreement in verdicts, paths, replies, recent tables or counters.
//!
//! Besides the shipped scenarios: `SUITE`, the conformance suite of issue #3 item 6 (one
//! small ruleset per feature under `tests/data/conform/`, with `expect` columns that must
//! hold in the simulator), and `EXTRA`; randomly generated rulesets and traces are in
//! `conform_random.rs`.
//!
//! The scenarios run in real time (up to ~13 s each), so they run in parallel, one process
//! and one namespace each. Afterwards none of their namespaces and no TUN device in the
//! root namespace may be left. Without root, `/dev/net/tun` or iptables-legacy this prints
//! `SKIPPED kernel conformance: <reason>` and passes, unless `CI` is set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::skip_or_fail;

const LISTEN: &str = "tcp:22,tcp:80,tcp:443";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scenarios() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    v.sort();
    v
}

/// TUN devices in the root namespace.
fn root_tun_devices() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("tun_flags").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("fwv-{pid}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `fwverify conform RULES --scenario SCENARIO ARGS…` from the crate root; returns its
/// pid and output.
fn conform_with(rules: &Path, scenario: &Path, args: &[&str]) -> (u32, Output) {
    let child = Command::new(env!("CARGO_BIN_EXE_fwverify"))
        .current_dir(root())
        .arg("conform")
        .arg(rules)
        .arg("--scenario")
        .arg(scenario)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running fwverify");
    let pid = child.id();
    (pid, child.wait_with_output().expect("waiting for fwverify"))
}

/// `conform` on one scenario against the seed ruleset.
fn conform(scenario: &Path) -> (u32, Output) {
    conform_with(&root().join("scenarios/seed/rules.v4"), scenario, &["--listen", LISTEN])
}

/// The reason the kernel backend cannot run, when `out` says so.
fn kernel_missing(out: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr.lines().find_map(|l| l.strip_prefix("fwverify: the kernel backend needs "))?;
    (out.status.code() == Some(2)).then(|| format!("the kernel backend needs {reason}"))
}

#[test]
fn shipped_scenarios_behave_in_the_kernel_as_simulated() {
    let tuns_before = root_tun_devices();
    let runs: Vec<(PathBuf, u32, Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = scenarios()
            .into_iter()
            .map(|p| {
                s.spawn(move || {
                    let (pid, out) = conform(&p);
                    (p, pid, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("conform thread")).collect()
    });
    assert!(!runs.is_empty(), "no scenarios/*.csv");

    let mut failures = Vec::new();
    for (path, pid, out) in &runs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(reason) = kernel_missing(out) {
            skip_or_fail("kernel conformance", &reason);
            return;
        }
        let name = path.file_name().expect("file name").to_string_lossy();
        let summary = format!("{}: ", path.display());
        let clean = out.status.success()
            && stdout.lines().any(|l| l.starts_with(&summary) && l.ends_with(" rows: 0 disagreements"));
        if !clean {
            failures.push(format!("{name} (exit {:?}):\n{stdout}{stderr}", out.status.code()));
        }
        let left = namespaces_of(*pid);
        assert!(left.is_empty(), "{name}: namespaces left behind: {left:?}");
    }
    let tuns_after = root_tun_devices();
    let new: Vec<_> = tuns_after.difference(&tuns_before).collect();
    assert!(new.is_empty(), "TUN devices left in the root namespace: {new:?}");
    assert!(failures.is_empty(), "simulator and kernel disagree:\n{}", failures.join("\n"));
}

#[test]
fn conform_refuses_a_bad_scenario_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("fwv-conform-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "time,src,dst,proto\n0,1.2.3.4,300.1.1.1,icmp\n").expect("writing");
    let (_, out) = conform(&bad);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad dst address `300.1.1.1`") || stderr.contains("the kernel backend needs"), "{stderr}");
}

/// Scenarios beyond the shipped ones (host replies to data, FIN and SYN on a half-closed
/// connection, forwarding with POSTROUTING and REJECT, IPv6 echo, `-m hl`, `-m owner` on
/// each kind of packet the host sends, `-m policy` without IPsec): the simulator and the
/// kernel must agree on every row. (Issue #3: these were disagreements once; each was
/// fixed in the simulator.)
const EXTRA: &[(&str, &str, &[&str], &str)] = &[
    (
        "tests/data/conform/accept-queue.v4",
        "tests/data/conform/accept-queue.csv",
        &["--listen", "tcp:80"],
        "tests/data/conform/accept-queue.csv: 8199 rows: 0 disagreements\n",
    ),
    (
        "tests/data/conform/udp-assured.v4",
        "tests/data/conform/udp-assured.csv",
        &["--forward", "--host", "192.0.2.1"],
        "tests/data/conform/udp-assured.csv: 8 rows: 0 disagreements\n",
    ),
    (
        "tests/data/conform/host.v4",
        "tests/data/conform/host.csv",
        &["--listen", "tcp:22,tcp:25"],
        "tests/data/conform/host.csv: 12 rows: 0 disagreements\n",
    ),
    (
        "tests/data/conform/forward.v4",
        "tests/data/conform/forward.csv",
        &["--listen", "tcp:22", "--forward", "--host", "192.0.2.1"],
        "tests/data/conform/forward.csv: 5 rows: 0 disagreements\n",
    ),
    (
        "tests/data/conform/v6.v6",
        "tests/data/conform/v6.csv",
        &["--listen", "tcp:22"],
        "tests/data/conform/v6.csv: 5 rows: 0 disagreements\n",
    ),
    (
        "tests/data/conform/hl.v6",
        "tests/data/conform/hl.csv",
        &["--listen", "tcp:22"],
        "tests/data/conform/hl.csv: 7 rows: 0 disagreements\n",
    ),
    (
        "tests/data/conform/owner.v4",
        "tests/data/conform/owner.csv",
        &["--listen", "tcp:22"],
        "tests/data/conform/owner.csv: 9 rows: 0 disagreements\n",
    ),
    (
        "tests/data/conform/policy.v4",
        "tests/data/conform/policy.csv",
        &["--listen", "tcp:22"],
        "tests/data/conform/policy.csv: 5 rows: 0 disagreements\n",
    ),
];

#[test]
fn extra_scenarios_agree_with_the_kernel() {
    let runs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = EXTRA
            .iter()
            .map(|(rules, scenario, args, want)| {
                s.spawn(move || (scenario, want, conform_with(Path::new(rules), Path::new(scenario), args)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("conform thread")).collect()
    });
    let mut failures = Vec::new();
    for (scenario, want, (pid, out)) in runs {
        if let Some(reason) = kernel_missing(&out) {
            skip_or_fail("kernel conformance", &reason);
            return;
        }
        let got = String::from_utf8_lossy(&out.stdout);
        if out.status.code() != Some(0) || got != **want {
            failures.push(format!(
                "{scenario} (exit {:?}):\n{}\n{}",
                out.status.code(),
                crate::common::line_diff(want, &got).unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        assert!(namespaces_of(pid).is_empty(), "{scenario}: namespaces left behind");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The conformance suite of issue #3 item 6: small rulesets, each focused on one feature,
/// with scenarios whose `expect` columns follow from the kernel's semantics. Each case is
/// (ruleset, scenario, simulation flags) under `tests/data/conform/`. Packet times keep
/// 20 ms or more away from every time window's boundary (the kernel replays in real time
/// and real packets arrive a little late).
const SUITE: &[(&str, &str, &[&str])] = &[
    // Port knocking: right, wrong port between knocks / out of order, too slow.
    ("knock.v4", "knock-right.csv", &["--listen", "tcp:22"]),
    ("knock.v4", "knock-wrong.csv", &["--listen", "tcp:22"]),
    ("knock.v4", "knock-slow.csv", &["--listen", "tcp:22"]),
    // A SYN flood blacklists its source (--hitcount in a 1 s window), which expires.
    ("flood.v4", "flood.csv", &["--listen", "tcp:80"]),
    // Blacklist by a trap port, escape by a knock that removes the entry.
    ("escape.v4", "escape.csv", &["--listen", "tcp:22,tcp:80"]),
    // SSH brute-force limiter: --set then --update --seconds --hitcount; --rttl.
    ("ssh-update.v4", "ssh-update.csv", &["--listen", "tcp:22"]),
    ("ssh-rttl.v4", "ssh-rttl.csv", &["--listen", "tcp:22"]),
    // --reap, --mask, --rdest.
    ("reap.v4", "reap.csv", &["--listen", "tcp:80"]),
    ("mask.v4", "mask.csv", &["--listen", "tcp:22,tcp:23,tcp:24"]),
    ("rdest.v4", "rdest.csv", &["--listen", "tcp:22,tcp:23", "--host", "192.0.2.1,192.0.2.2"]),
    // `!` with recent, and on the IP part and tcp/udp/icmp/multiport/state options.
    ("not-recent.v4", "not-recent.csv", &["--listen", "tcp:22,tcp:80"]),
    ("not-basic.v4", "not-basic.csv", &["--listen", "tcp:22,tcp:80,udp:53", "--host", "192.0.2.1,192.0.2.2"]),
    // Recent table eviction past 100 entries; stamp rings of 32 and 64.
    ("evict.v4", "evict.csv", &["--listen", "udp:10"]),
    ("ring.v4", "ring.csv", &["--listen", "udp:7"]),
    // limit and hashlimit bursts.
    ("limit.v4", "limit.csv", &["--listen", "udp:5000,udp:6000"]),
    ("hashlimit.v4", "hashlimit.csv", &["--listen", "udp:53,tcp:80"]),
    // Conntrack: TCP handshakes with open and closed ports, invalid flags; UDP and ICMP.
    ("tcp-state.v4", "tcp-state.csv", &["--listen", "tcp:22"]),
    ("udp-icmp-state.v4", "udp-icmp-state.csv", &["--listen", "udp:53"]),
    // The host's TCP sockets: request sockets, challenge ACKs and their rate limit.
    ("tcp-host.v4", "tcp-host.csv", &["--listen", "tcp:22"]),
    // goto/RETURN nesting.
    ("goto.v4", "goto.csv", &["--listen", "tcp:10,tcp:20,tcp:30,tcp:40,tcp:61,tcp:62,udp:53,udp:54,udp:55,udp:56"]),
    // REJECT replies and their conntrack state; OUTPUT DROP eating the host's replies.
    ("reject.v4", "reject.csv", &["--listen", "tcp:22"]),
    ("output-drop.v4", "output-drop.csv", &["--listen", "tcp:22"]),
    // Forwarding: the TTL that FORWARD, -m ttl and --rttl see; TTL 1.
    ("forward-ttl.v4", "forward-ttl.csv", &["--forward", "--host", "192.0.2.1", "--listen", "tcp:22"]),
    // NAT: REDIRECT to a local port (the reply leaves as the original port); DNAT to a
    // port range and SNAT in nat INPUT; DNAT to a forwarded server and MASQUERADE, with
    // the replies translated by the connection's binding.
    ("redirect.v4", "redirect.csv", &["--host", "192.0.2.1", "--listen", "tcp:22,tcp:8080"]),
    ("nat-input.v4", "nat-input.csv", &["--host", "192.0.2.1", "--listen", "tcp:2100,tcp:2150"]),
    ("nat-forward.v4", "nat-forward.csv", &["--forward", "--host", "192.0.2.1"]),
];

fn suite_path(file: &str) -> PathBuf {
    root().join("tests/data/conform").join(file)
}

/// Every case of [`SUITE`] meets its expectations in the simulator (`fwverify check`,
/// needs no root).
#[test]
fn suite_meets_its_expectations_in_the_simulator() {
    assert!(SUITE.len() >= 20, "issue #3 asks for at least 20 cases");
    let mut failures = Vec::new();
    for (rules, scenario, args) in SUITE {
        let out = Command::new(env!("CARGO_BIN_EXE_fwverify"))
            .current_dir(root())
            .arg("check")
            .arg(suite_path(rules))
            .arg("--scenario")
            .arg(suite_path(scenario))
            .args(*args)
            .output()
            .expect("running fwverify");
        if !out.status.success() {
            failures.push(format!(
                "{scenario} (exit {:?}):\n{}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "expectations failed in the simulator:\n{}", failures.join("\n"));
}

/// Every case of [`SUITE`] through both backends, in parallel (one process and one
/// namespace each): zero disagreements. With the simulator's expectations holding (the
/// test above), the kernel's verdicts hold them too.
#[test]
fn suite_agrees_with_the_kernel() {
    let tuns_before = root_tun_devices();
    let runs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = SUITE
            .iter()
            .map(|(rules, scenario, args)| {
                s.spawn(move || {
                    let (pid, out) = conform_with(&suite_path(rules), &suite_path(scenario), args);
                    (*scenario, pid, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("conform thread")).collect()
    });
    let mut failures = Vec::new();
    for (scenario, pid, out) in &runs {
        if let Some(reason) = kernel_missing(out) {
            skip_or_fail("kernel conformance", &reason);
            return;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let clean = out.status.success() && stdout.lines().any(|l| l.ends_with(" rows: 0 disagreements"));
        if !clean {
            failures.push(format!(
                "{scenario} (exit {:?}):\n{stdout}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let left = namespaces_of(*pid);
        assert!(left.is_empty(), "{scenario}: namespaces left behind: {left:?}");
    }
    let new: Vec<_> = root_tun_devices().difference(&tuns_before).cloned().collect();
    assert!(new.is_empty(), "TUN devices left in the root namespace: {new:?}");
    assert!(failures.is_empty(), "simulator and kernel disagree:\n{}", failures.join("\n"));
}
