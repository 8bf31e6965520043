//! The `fwverify` binary: exit codes (0 ok, 1 check failed, 2 invalid input or usage),
//! where output goes, `fmt`, `graph`, `--help` and messages for missing files and
//! unfinished subcommands. Fixtures are in `data/cli/`.

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;

use crate::common::data_dir;

fn fwverify() -> Command {
    let mut cmd = cargo_bin_cmd!("fwverify");
    cmd.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE").arg("--color").arg("never");
    cmd
}

fn fixture(name: &str) -> String {
    data_dir("cli").join(name).to_string_lossy().into_owned()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("fwverify writes UTF-8")
}

/// `good.rules` as `iptables-legacy-save` prints it after `iptables-legacy-restore`
/// (checked on Linux 6.18 / iptables 1.8.9; the `kernel` module re-checks it when root).
const GOOD_FMT: &str = "\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:from_lan - [0:0]
:ssh_in - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 192.168.1.0/24 -p tcp -m tcp --dport 22 -j ssh_in
-A INPUT -i eth1 -g from_lan
-A from_lan -p udp -m udp --dport 53 -j ACCEPT
-A from_lan -p icmp -m icmp --icmp-type 8 -m limit --limit 1/sec -j ACCEPT
-A ssh_in -m recent --set --name ssh --mask 255.255.255.255 --rsource
-A ssh_in -m recent --update --seconds 60 --hitcount 4 --name ssh --mask 255.255.255.255 --rsource -j DROP
-A ssh_in -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth0 -j MASQUERADE
COMMIT
";

#[test]
fn check_accepts_a_good_file() {
    let out = fwverify().arg("check").arg(fixture("good.rules")).output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert!(stdout.contains("good.rules: ok: 2 tables, 9 chains, 10 rules"), "stdout:\n{stdout}");
}

#[test]
fn check_rejects_a_bad_file_with_the_diagnostic_on_stderr() {
    let out = fwverify().arg("check").arg(fixture("bad.rules")).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout for an invalid file");
    assert!(stderr.contains("error[E0103]"), "stderr:\n{stderr}");
    assert!(stderr.contains("bad.rules:7:"), "the location names file:line:col:\n{stderr}");
    assert!(stderr.contains("-m recent"), "the hint names the missing module:\n{stderr}");
    assert!(stderr.contains("1 error; iptables-restore would not load this file"), "stderr:\n{stderr}");
}

#[test]
fn fmt_and_graph_refuse_a_bad_file_too() {
    for cmd in ["fmt", "graph"] {
        let out = fwverify().arg(cmd).arg(fixture("bad.rules")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(out.stdout.is_empty(), "{cmd} prints nothing for an invalid file");
        assert!(text(&out.stderr).contains("error[E0103]"), "{cmd}");
    }
}

#[test]
fn fmt_prints_what_iptables_save_prints() {
    let out = fwverify().arg("fmt").arg(fixture("good.rules")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let got = text(&out.stdout);
    if let Some(d) = crate::common::line_diff(GOOD_FMT, &got) {
        panic!("fmt good.rules:\n{d}");
    }
}

#[test]
fn fmt_counters_keeps_rule_and_policy_counters() {
    let out = fwverify().args(["fmt", "--counters"]).arg(fixture("good.rules")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let got = text(&out.stdout);
    assert!(got.contains(":INPUT DROP [12:3400]\n"), "{got}");
    assert!(got.contains("[7:420] -A INPUT -i lo -j ACCEPT\n"), "{got}");
    assert!(got.contains("[0:0] -A ssh_in -j ACCEPT\n"), "rules without counters print [0:0]:\n{got}");
    let short = fwverify().args(["fmt", "-c"]).arg(fixture("good.rules")).output().unwrap();
    assert_eq!(text(&short.stdout), got, "-c is --counters");
}

#[test]
fn graph_draws_clusters_and_dashed_gotos() {
    let out = fwverify().arg("graph").arg(fixture("good.rules")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("subgraph \"cluster_filter\""), "{dot}");
    assert!(dot.contains("subgraph \"cluster_nat\""), "{dot}");
    let edge = |to: &str| {
        dot.lines()
            .find(|l| l.contains("\"filter:INPUT\" -> ") && l.contains(&format!("\"filter:{to}\"")))
            .unwrap_or_else(|| panic!("no edge INPUT -> {to}:\n{dot}"))
    };
    assert!(edge("from_lan").contains("style=dashed"), "a goto is dashed:\n{dot}");
    assert!(!edge("ssh_in").contains("style=dashed"), "a jump is solid:\n{dot}");
    assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "balanced braces:\n{dot}");
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let out = fwverify().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("Examples:"), "{help}");
    assert!(help.contains("fwverify check rules.v4"), "{help}");
    assert!(help.contains("Exit status:"), "{help}");
    let out = fwverify().args(["fmt", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("fwverify fmt rules.v4"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [&[][..], &["check"][..], &["frobnicate"][..], &["fmt", "--bogus", "x"][..]] {
        let out = fwverify().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "fwverify {args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("Usage"), "fwverify {args:?} explains the usage");
    }
}

#[test]
fn missing_file_names_the_file() {
    let out = fwverify().args(["check", "no/such/file.v4"]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.starts_with("fwverify: reading no/such/file.v4: No such file"), "stderr:\n{stderr}");
}

#[test]
fn subcommands_not_implemented_yet_say_so() {
    let good = fixture("good.rules");
    let cases: [Vec<&str>; 3] = [vec!["lint", &good], vec!["diff", &good, &good], vec!["plot", &good]];
    for args in cases {
        let out = fwverify().args(&args).output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "fwverify {args:?}: {stderr}");
        assert!(stderr.contains("is not available yet"), "fwverify {args:?}: {stderr}");
    }
}

#[test]
fn completions_are_generated() {
    let out = fwverify().args(["completions", "bash"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("fwverify"));
}
