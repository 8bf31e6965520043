//! `fwverify prove`: bounded model checking with the `any` and `sources N` attackers.
//! Every witness it prints is written with `--counterexample` and replayed here with
//! `fwverify check --scenario` (every row carries `expect`, the goal packet last), and
//! through the kernel backend (`check --backend kernel --format json`: every row, the goal
//! row checked by name, gets the verdict the witness says; `conform`: no disagreement with
//! the simulator in verdicts, paths, replies, recent tables or counters). The kernel
//! replays in real time (the longest witness here spans 61 s), its two runs in parallel.
//! Without root, `/dev/net/tun` or iptables-legacy the kernel part prints `SKIPPED …` and
//! the test passes, unless `CI` is set.

use std::process::{Command, Output};

use assert_cmd::cargo::cargo_bin_cmd;

use crate::common::skip_or_fail;

fn seed(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed").join(name).to_string_lossy().into_owned()
}

fn data(name: &str) -> String {
    super::common::data_dir("prove").join(name).to_string_lossy().into_owned()
}

fn fwverify(args: &[&str]) -> (i32, String) {
    let out = cargo_bin_cmd!("fwverify").args(args).output().expect("fwverify runs");
    let text = String::from_utf8(out.stdout).expect("UTF-8") + &String::from_utf8(out.stderr).expect("UTF-8");
    (out.status.code().unwrap_or(-1), text)
}

/// Proves `prop`, writes the witness, replays it with `check`; returns the exit status,
/// the output and the witness rows.
fn prove_and_replay(rules: &str, prop: &str, k: &str, want: i32) -> (String, Vec<String>) {
    prove_and_replay_with(rules, prop, k, want, &[])
}

/// [`prove_and_replay`] with more arguments (`--host`, `--listen`) for `prove`, `check`
/// and the kernel replay.
fn prove_and_replay_with(rules: &str, prop: &str, k: &str, want: i32, args: &[&str]) -> (String, Vec<String>) {
    // A directory per call (tests run in parallel), removed at the end.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fwverify-prove-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::path::Path::new(rules).file_stem().unwrap().to_string_lossy().into_owned();
    let tag: String = prop.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let csv = dir.join(format!("{base}-{tag}-k{k}.csv"));
    let csv_s = csv.to_string_lossy().into_owned();
    let mut cmd = vec!["prove", rules, "--prop", prop, "--k", k, "--counterexample", &csv_s];
    cmd.extend_from_slice(args);
    let (code, out) = fwverify(&cmd);
    assert_eq!(code, want, "{out}");
    assert!(out.contains("replayed through the simulator"), "{out}");
    let mut cmd = vec!["check", rules, "--scenario", &csv_s, "--format", "summary"];
    cmd.extend_from_slice(args);
    let (c, replay) = fwverify(&cmd);
    assert_eq!(c, 0, "the witness replays with `check`: {replay}");
    assert!(replay.contains("0 failed"), "{replay}");
    let rows: Vec<String> = std::fs::read_to_string(&csv).unwrap().lines().skip(1).map(String::from).collect();
    kernel_replay(rules, &csv_s, args, &rows);
    let _ = std::fs::remove_dir_all(&dir);
    for r in &rows {
        assert_real(r);
    }
    (out, rows)
}

/// The reason the kernel backend cannot run, when `out` says so (as in `conform.rs`).
fn kernel_missing(out: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr.lines().find_map(|l| l.strip_prefix("fwverify: the kernel backend needs "))?;
    (out.status.code() == Some(2)).then(|| format!("the kernel backend needs {reason}"))
}

/// Replays the witness `csv` (with `rows`, header skipped) through the kernel backend:
/// `check --backend kernel --format json` must give every row its `expect` and the goal
/// row (the last) the witness's verdict, and `conform` must find no disagreement with the
/// simulator. Both run at once, in real time, one namespace each.
fn kernel_replay(rules: &str, csv: &str, args: &[&str], rows: &[String]) {
    let run = |sub: Vec<&str>| -> Output {
        Command::new(env!("CARGO_BIN_EXE_fwverify")).args(sub).args(args).output().expect("running fwverify")
    };
    let text = |o: &Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let witness = rows.join("\n");
    // What the two runs must show, or why not.
    let judge = |check: &Output, conform: &Output| -> Result<(), String> {
        if check.status.code() != Some(0) {
            return Err(format!("the kernel gives every row its verdict:\n{witness}\n{}", text(check)));
        }
        let json: serde_json::Value = serde_json::from_slice(&check.stdout).expect("check --format json");
        let packets = json["scenarios"][0]["packets"].as_array().expect("packets");
        if packets.len() != rows.len() {
            return Err(format!("{} rows in, {} out: {}", rows.len(), packets.len(), text(check)));
        }
        let goal = rows.last().expect("a goal row");
        let kernel = packets.last().expect("a goal packet")["verdict"].as_str().expect("verdict");
        if kernel != field(goal, 13) || !packets.iter().all(|p| p["ok"] == true) {
            return Err(format!("the goal packet in the kernel:\n{witness}\n{}", text(check)));
        }
        let out = text(conform);
        if !(conform.status.success() && out.lines().any(|l| l.ends_with(" rows: 0 disagreements"))) {
            return Err(format!("simulator and kernel disagree on the witness:\n{witness}\n{out}"));
        }
        Ok(())
    };
    // The kernel replays in real time, and witnesses often sit on a boundary (a token
    // back exactly when the trace needs it: `at most 3 … within 1s` of a 1/s bucket has
    // no slack at all), so a replay whose packets went out late, or were processed late
    // on a busy machine, can cross it. A real disagreement is deterministic and shows on
    // every run; one seen in three runs in a row fails.
    for attempt in 1..=3 {
        let (check, conform) = std::thread::scope(|s| {
            let check =
                s.spawn(|| run(vec!["check", "--backend", "kernel", rules, "--scenario", csv, "--format", "json"]));
            let conform = s.spawn(|| run(vec!["conform", rules, "--scenario", csv]));
            (check.join().expect("check thread"), conform.join().expect("conform thread"))
        });
        for out in [&check, &conform] {
            if let Some(reason) = kernel_missing(out) {
                skip_or_fail("kernel replay of prove witnesses", &reason);
                return;
            }
        }
        match judge(&check, &conform) {
            Ok(()) => return,
            Err(why) if attempt == 3 => panic!("{why}"),
            Err(why) => eprintln!("kernel replay of {csv}, attempt {attempt} of 3 discarded:\n{why}"),
        }
    }
}

fn field(row: &str, i: usize) -> &str {
    row.split(',').nth(i).unwrap()
}

/// A packet a real host delivers to its firewall: a unicast source that is not special
/// (0/8, 127/8, 224/4, 240/4, 255.255.255.255, IPv6 `::`, `::1`, ff00::/8), different
/// from the destination, a unicast destination, not on `lo`.
fn assert_real(row: &str) {
    use std::net::IpAddr;
    let special = |a: IpAddr| match a {
        IpAddr::V4(a) => {
            let o = a.octets()[0];
            o == 0 || o == 127 || o >= 224
        }
        IpAddr::V6(a) => a.is_unspecified() || a.is_loopback() || a.is_multicast(),
    };
    let src: IpAddr = field(row, 1).parse().unwrap();
    let dst: IpAddr = field(row, 2).parse().unwrap();
    assert!(!special(src) && !special(dst) && src != dst, "{row}");
    assert_ne!(field(row, 10), "lo", "{row}");
}

#[test]
fn the_seed_knock_opens_ssh() {
    let (out, rows) = prove_and_replay(&seed("rules.v4"), "possible ACCEPT tcp dport 22", "4", 0);
    assert!(out.contains("POSSIBLE: witness of 4 packets"), "{out}");
    let dports: Vec<&str> = rows.iter().map(|r| field(r, 5)).collect();
    assert_eq!(dports, ["1234", "2345", "3456", "22"], "{out}");
    assert_eq!(field(rows.last().unwrap(), 13), "ACCEPT");
    // Ordinary traffic: SYNs of distinct connections, TTL 64, on eth0, one destination.
    for r in &rows {
        assert_eq!((field(r, 6), field(r, 12), field(r, 10)), ("S", "64", "eth0"), "{out}");
        assert!(field(r, 4).parse::<u16>().unwrap() >= 1024, "{out}");
        assert_eq!(field(r, 2), field(&rows[0], 2), "{out}");
    }
}

#[test]
fn witnesses_go_to_the_given_host_address() {
    let (out, rows) =
        prove_and_replay_with(&seed("rules.v4"), "possible ACCEPT tcp dport 22", "6", 0, &["--host", "198.51.100.20"]);
    for r in &rows {
        assert_eq!(field(r, 2), "198.51.100.20", "{out}");
    }
}

#[test]
fn the_seed_ruleset_keeps_ssh_closed_for_three_packets() {
    let (code, out) = fwverify(&["prove", &seed("rules.v4"), "--prop", "never ACCEPT tcp dport 22", "--k", "3"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PROVED up to 3 packets (bounded)"), "{out}");
    let (code, out) = fwverify(&["prove", &seed("rules.v4"), "--prop", "possible ACCEPT tcp dport 22", "--k", "3"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("IMPOSSIBLE up to 3 packets (bounded)"), "{out}");
}

#[test]
fn the_naive_knock_opens_ssh_and_is_falsified() {
    let (out, rows) = prove_and_replay(&seed("naive.v4"), "never ACCEPT tcp dport 22", "6", 1);
    assert!(out.contains("FALSIFIED: counterexample of 4 packets"), "{out}");
    assert_eq!(rows.len(), 4);
}

#[test]
fn an_invalid_packet_bypasses_the_ssh_limiter() {
    let (out, rows) = prove_and_replay(&data("ssh-limiter.v4"), "never ACCEPT tcp dport 22 ctstate INVALID", "6", 1);
    assert!(out.contains("FALSIFIED: counterexample of 1 packets"), "{out}");
    let goal = rows.last().unwrap();
    assert_eq!((field(goal, 3), field(goal, 5), field(goal, 13)), ("tcp", "22", "ACCEPT"), "{out}");
    // A flag combination conntrack calls INVALID (e.g. SYN+FIN), not SYN or ACK alone.
    assert!(!matches!(field(goal, 6), "S" | "A" | "SU" | "AU"), "{out}");
}

#[test]
fn the_limiter_drops_the_fourth_syn_within_a_minute() {
    let (code, out) =
        fwverify(&["prove", &data("ssh-limiter.v4"), "--prop", "possible DROP tcp dport 22 flags S", "--k", "3"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("IMPOSSIBLE up to 3 packets"), "{out}");
    let (out, rows) =
        prove_and_replay(&data("ssh-limiter.v4"), "possible DROP tcp dport 22 flags S within 60s", "6", 0);
    assert_eq!(rows.len(), 4, "{out}");
}

#[test]
fn a_blacklisted_source_regains_ssh_by_knocking() {
    let (out, rows) = prove_and_replay(&seed("rules.v4"), "possible ACCEPT tcp dport 22 from blacklisted", "4", 0);
    assert!(out.contains("POSSIBLE: witness of 4 packets, after a 1-packet prefix"), "{out}");
    // The prefix row creates the blacklist entry (a trap packet through bl_drop).
    assert_eq!((field(&rows[0], 13), field(&rows[0], 14)), ("DROP", "prefix"), "{out}");
    let dports: Vec<&str> = rows[1..].iter().map(|r| field(r, 5)).collect();
    assert_eq!(dports, ["1234", "2345", "3456", "22"], "{out}");
    assert_eq!(field(rows.last().unwrap(), 13), "ACCEPT");
}

#[test]
fn the_limiter_accepts_at_most_three_new_connections_a_minute() {
    let limiter = data("ssh-limiter.v4");
    for prop in
        ["at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s", "at most 4 ACCEPT tcp dport 22 ctstate NEW within 60s"]
    {
        let (code, out) = fwverify(&["prove", &limiter, "--prop", prop, "--k", "6"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("PROVED (unbounded)"), "{out}");
    }
    // Over 200 s the window frees up: the fourth NEW connection 60 s after the first.
    let (out, rows) = prove_and_replay(&limiter, "at most 3 ACCEPT tcp dport 22 ctstate NEW within 200s", "6", 1);
    assert!(out.contains("FALSIFIED: counterexample of 4 packets"), "{out}");
    let sports: std::collections::BTreeSet<&str> = rows.iter().map(|r| field(r, 4)).collect();
    assert_eq!(sports.len(), 4, "four connections: {out}");
    for r in &rows {
        assert_eq!((field(r, 5), field(r, 6), field(r, 13)), ("22", "S", "ACCEPT"), "{out}");
    }
}

#[test]
fn hashlimit_buckets_limit_ssh_and_their_witnesses_replay_in_the_kernel() {
    let rules = data("hashlimit-ssh.v4");
    let (code, out) = fwverify(&["prove", &rules, "--prop", "at most 4 ACCEPT tcp dport 22 ctstate NEW within 1s"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PROVED (unbounded)"), "{out}");
    // The burst of 3 and the token back after a second.
    let (out, rows) = prove_and_replay(&rules, "at most 3 ACCEPT tcp dport 22 ctstate NEW within 1s", "6", 1);
    assert!(out.contains("FALSIFIED: counterexample of 4 packets"), "{out}");
    for r in &rows {
        assert_eq!((field(r, 5), field(r, 6), field(r, 13)), ("22", "S", "ACCEPT"), "{out}");
    }
    // The per-port SYN bucket drops the third SYN to port 80 before a token is back.
    let (out, rows) = prove_and_replay(&rules, "possible DROP tcp dport 80", "6", 0);
    assert!(out.contains("witness of 3 packets"), "{out}");
    assert_eq!(field(rows.last().unwrap(), 13), "DROP", "{out}");
}

#[test]
fn two_sources_get_past_the_per_source_limiter() {
    let limiter = data("ssh-limiter.v4");
    let prop = "at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s";
    let (code, out) = fwverify(&["prove", &limiter, "--prop", &format!("{prop} under sources 1"), "--k", "6"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PROVED up to 6 packets (bounded)"), "{out}");
    let (out, rows) = prove_and_replay(&limiter, &format!("{prop} under sources 2"), "6", 1);
    assert!(out.contains("FALSIFIED: counterexample of 4 packets"), "{out}");
    assert!(out.contains("never evict an entry"), "{out}");
    let srcs: std::collections::BTreeSet<&str> = rows.iter().map(|r| field(r, 1)).collect();
    assert_eq!(srcs.len(), 2, "{out}");
    for r in &rows {
        assert_eq!((field(r, 5), field(r, 6), field(r, 13)), ("22", "S", "ACCEPT"), "{out}");
    }
}

#[test]
fn a_subnet_knock_takes_two_cooperating_sources() {
    let rules = data("subnet-knock.v4");
    let (code, out) = fwverify(&["prove", &rules, "--prop", "possible ACCEPT tcp dport 22", "--k", "4"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("IMPOSSIBLE up to 4 packets (bounded)"), "{out}");
    let (out, rows) = prove_and_replay(&rules, "possible ACCEPT tcp dport 22 under sources 2", "4", 0);
    assert!(out.contains("POSSIBLE: witness of 2 packets"), "{out}");
    // One address knocks, another of its /24 connects.
    assert_eq!((field(&rows[0], 5), field(&rows[1], 5)), ("1234", "22"), "{out}");
    assert_ne!(field(&rows[0], 1), field(&rows[1], 1), "{out}");
}

#[test]
fn a_flood_in_the_right_order_knocks_and_none_is_invalid() {
    let (out, rows) = prove_and_replay(&seed("rules.v4"), "never ACCEPT tcp dport 22 under flood", "6", 1);
    let dports: Vec<&str> = rows.iter().map(|r| field(r, 5)).collect();
    assert_eq!(dports, ["1234", "2345", "3456", "22"], "{out}");
    let (code, out) =
        fwverify(&["prove", &seed("rules.v4"), "--prop", "never ACCEPT tcp dport 22 ctstate INVALID under flood"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PROVED (unbounded)"), "{out}");
    let (code, out) = fwverify(&["prove", &seed("rules.v4"), "--prop", "at most 3 ACCEPT tcp dport 22 under flood"]);
    assert_eq!(code, 3, "{out}");
}

#[test]
fn no_trace_of_any_length_gets_an_invalid_packet_to_ssh_on_the_seed() {
    let (code, out) = fwverify(&["prove", &seed("rules.v4"), "--prop", "never ACCEPT tcp dport 22 ctstate INVALID"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PROVED (unbounded)"), "{out}");
    assert!(out.contains("unbounded: every trace of any length from one source"), "{out}");
    let (code, out) = fwverify(&["prove", &seed("rules.v4"), "--prop", "possible ACCEPT tcp dport 3389"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("IMPOSSIBLE (unbounded)"), "{out}");
}

#[test]
fn no_scan_unlocks_the_corrected_seed() {
    let (code, out) = fwverify(&["prove", &seed("rules.v4"), "--prop", "never ACCEPT tcp dport 22 under scan"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("never ACCEPT tcp dport 22 under scan: PROVED (unbounded)"), "{out}");
    assert!(out.contains("unbounded: every sequential TCP SYN scan (any first port, any length, any constant rate)"));
}

#[test]
fn a_fast_scan_unlocks_the_naive_chain() {
    // The whole scan (1234..=3456 at a round rate above the threshold) and the SSH SYN,
    // replayed by `check` and in the kernel (about 12 s of real time).
    let (out, rows) = prove_and_replay(&seed("naive.v4"), "never ACCEPT tcp dport 22 under scan", "6", 1);
    assert!(out.contains("FALSIFIED: counterexample of 2224 packets"), "{out}");
    assert!(out.contains("scan: ports 1234-3456 (2223 SYNs)"), "{out}");
    // 1111 ports between knocks in a 10 s window: about 111 ports/s.
    let th = out.lines().find_map(|l| l.trim().strip_prefix("threshold rate: about ")).expect("a threshold");
    let rate: f64 = th.split(' ').next().unwrap().parse().unwrap();
    assert!((110.9..111.2).contains(&rate), "{out}");
    assert_eq!(rows.len(), 2224);
    assert!(field(&rows[0], 14).starts_with("scan of ports 1234-3456 at "), "{}", rows[0]);
    let goal = rows.last().unwrap();
    assert_eq!((field(goal, 5), field(goal, 13)), ("22", "ACCEPT"));
    // Slower scans cannot do it.
    let (code, out) =
        fwverify(&["prove", &seed("naive.v4"), "--prop", "never ACCEPT tcp dport 22 under scan rate 1-110"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PROVED (unbounded)"), "{out}");
}

#[test]
fn a_scan_unlocks_consecutive_knock_ports() {
    let (out, rows) = prove_and_replay(&data("consecutive.v4"), "never ACCEPT tcp dport 22 under scan", "6", 1);
    let dports: Vec<&str> = rows.iter().map(|r| field(r, 5)).collect();
    assert_eq!(dports, ["1234", "1235", "1236", "22"], "{out}");
}

#[test]
fn a_bad_property_is_invalid_input() {
    let (code, out) = fwverify(&["prove", &seed("rules.v4"), "--prop", "never ACCEPT tcp dprt 22"]);
    assert_eq!(code, 2, "{out}");
}
