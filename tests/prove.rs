//! `fwverify prove`: bounded model checking with the `any` attacker. Every witness it
//! prints is written with `--counterexample` and replayed here with `fwverify check
//! --scenario` (every row carries `expect`, the goal packet last).

use assert_cmd::cargo::cargo_bin_cmd;

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
    let dir = std::env::temp_dir().join(format!("fwverify-prove-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::path::Path::new(rules).file_stem().unwrap().to_string_lossy().into_owned();
    let tag: String = prop.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let csv = dir.join(format!("{base}-{tag}-k{k}.csv"));
    let csv_s = csv.to_string_lossy().into_owned();
    let (code, out) = fwverify(&["prove", rules, "--prop", prop, "--k", k, "--counterexample", &csv_s]);
    assert_eq!(code, want, "{out}");
    assert!(out.contains("replayed through the simulator"), "{out}");
    let (c, replay) = fwverify(&["check", rules, "--scenario", &csv_s, "--format", "summary"]);
    assert_eq!(c, 0, "the witness replays with `check`: {replay}");
    assert!(replay.contains("0 failed"), "{replay}");
    let rows: Vec<String> = std::fs::read_to_string(&csv).unwrap().lines().skip(1).map(String::from).collect();
    let _ = std::fs::remove_file(&csv);
    for r in &rows {
        assert_real(r);
    }
    (out, rows)
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
    let dir = std::env::temp_dir().join(format!("fwverify-prove-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("knock.csv");
    let csv_s = csv.to_string_lossy().into_owned();
    let (code, out) = fwverify(&[
        "prove",
        &seed("rules.v4"),
        "--prop",
        "possible ACCEPT tcp dport 22",
        "--host",
        "198.51.100.20",
        "--counterexample",
        &csv_s,
    ]);
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    for r in text.lines().skip(1) {
        assert_real(r);
        assert_eq!(field(r, 2), "198.51.100.20", "{out}");
    }
    let (c, replay) =
        fwverify(&["check", &seed("rules.v4"), "--scenario", &csv_s, "--host", "198.51.100.20", "--format", "summary"]);
    assert_eq!(c, 0, "{replay}");
    let _ = std::fs::remove_dir_all(&dir);
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
        assert!(out.contains("PROVED up to 6 packets (bounded)"), "{out}");
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
fn unimplemented_attackers_answer_unknown() {
    let (code, out) = fwverify(&["prove", &seed("rules.v4"), "--prop", "never ACCEPT tcp dport 22 under scan"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("UNKNOWN: scan attacker not implemented yet"), "{out}");
}

#[test]
fn a_bad_property_is_invalid_input() {
    let (code, out) = fwverify(&["prove", &seed("rules.v4"), "--prop", "never ACCEPT tcp dprt 22"]);
    assert_eq!(code, 2, "{out}");
}
