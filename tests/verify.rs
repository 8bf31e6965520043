//! `fwverify query`: packet classes that get a verdict (exit 0 when some do, 1 when none
//! do), unreachable and shadowed rules, and bad queries (exit 2). Runs on the shipped seed
//! rulesets.

use assert_cmd::cargo::cargo_bin_cmd;

fn seed(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed").join(name).to_string_lossy().into_owned()
}

fn query(args: &[&str]) -> (i32, String, String) {
    let out = cargo_bin_cmd!("fwverify").arg("query").args(args).output().expect("fwverify runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("UTF-8"),
        String::from_utf8(out.stderr).expect("UTF-8"),
    )
}

#[test]
fn ssh_reaches_the_seed_host_only_over_loopback_from_the_empty_state() {
    let (code, out, _) = query(&[&seed("rules.v4"), "ACCEPT tcp dport 22"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 class of packets get ACCEPT at filter INPUT from the empty state"), "{out}");
    assert!(out.contains("\n  tcp in lo dport 22\n"), "{out}");
}

#[test]
fn no_class_exits_1() {
    let (code, out, _) = query(&[&seed("rules.v4"), "ACCEPT udp dport 53 iface eth0"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(": 0 classes of packets get ACCEPT"), "{out}");
}

#[test]
fn any_state_lists_established_traffic() {
    let (code, out, _) = query(&[&seed("rules.v4"), "ACCEPT udp dport 53 iface eth0", "--any-state"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ctstate RELATED,ESTABLISHED"), "{out}");
}

#[test]
fn unreachable_and_shadowed_rules_name_the_covering_rules() {
    let (code, out, _) = query(&[&seed("rules.v4"), "--unreachable", "--shadowed"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unreachable rules: 0\n"), "{out}");
    assert!(out.contains("shadowed rules: 2\n"), "{out}");
    assert!(out.contains("  filter martians #15 ("), "{out}");
    assert!(out.contains("    covered by filter martians #14 ("), "{out}");
    assert!(out.contains("  filter attacks #3 ("), "{out}");
    assert!(out.contains("    covered by filter attacks #2 ("), "{out}");
}

#[test]
fn bad_query_exits_2() {
    let (code, _, err) = query(&[&seed("rules.v4"), "ACCEPT tcp dprt 22"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("query not understood"), "{err}");
    let (code, _, err) = query(&[&seed("rules.v4")]);
    assert_eq!(code, 2, "{err}");
}
