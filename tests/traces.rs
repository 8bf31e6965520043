//! Trace inputs through the binary: `fwverify gen` output replayed by `check --scenario`
//! (the generated knock sequences decide SSH on the seed ruleset as their expectations
//! say), and pcap/pcapng captures written here with `pcap-file` (no binary fixtures).

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;

fn fwverify() -> Command {
    let mut cmd = cargo_bin_cmd!("fwverify");
    cmd.env_remove("NO_COLOR").arg("--color").arg("never");
    cmd
}

fn seed_rules() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed/rules.v4").to_string_lossy().into_owned()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("fwverify writes UTF-8")
}

/// A fresh directory under the target dir, named after the test.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("traces").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

fn check(scenario: &Path) -> std::process::Output {
    fwverify()
        .args(["check", &seed_rules(), "--listen", "tcp:22,tcp:80,tcp:443", "--format", "summary", "--scenario"])
        .arg(scenario)
        .output()
        .expect("run fwverify")
}

#[test]
fn generated_knocks_open_ssh_only_when_correct() {
    let dir = scratch("knocks");
    let cases: [(&[&str], &str); 4] = [
        (&[], "ACCEPT"),
        (&["--mistake", "wrong-port"], "DROP"),
        (&["--mistake", "out-of-order"], "DROP"),
        (&["--mistake", "too-slow"], "DROP"),
    ];
    for (i, (extra, expect)) in cases.iter().enumerate() {
        let path = dir.join(format!("knock{i}.csv"));
        let out = fwverify()
            .args(["gen", "knock", "--ports", "1234,2345,3456", "--gap", "2", "--then", "22", "--seed", "5"])
            .args(*extra)
            .args(["--expect", expect, "-o"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = check(&path);
        assert_eq!(out.status.code(), Some(0), "{extra:?}\n{}{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stdout).contains("1 expectations, 0 failed"), "{}", text(&out.stdout));
    }
}

#[test]
fn gen_is_reproducible_from_its_header() {
    let first = fwverify().args(["gen", "scan", "--ports", "1-300", "--order", "random"]).output().unwrap();
    assert!(first.status.success());
    let first = text(&first.stdout);
    let cmd = first
        .lines()
        .find_map(|l| l.strip_prefix("# regenerate with: fwverify "))
        .expect("the header names the command");
    let again = fwverify().args(cmd.split(' ')).output().unwrap();
    assert_eq!(text(&again.stdout), first);
    assert_eq!(first.lines().filter(|l| !l.starts_with('#')).count(), 301);
}

#[test]
fn gen_many_sources_evicts_recent_entries() {
    let dir = scratch("many");
    let path = dir.join("many.csv");
    // 150 sources each hit the telnet trap: the blacklist holds the last 100.
    let out =
        fwverify().args(["gen", "many-sources", "--count", "150", "--dport", "23", "-o"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("recent blacklist: 100 entries"), "{}", text(&out.stdout));
}

#[test]
fn gen_rejects_impossible_specs() {
    let out = fwverify()
        .args(["gen", "knock", "--ports", "1234", "--mistake", "out-of-order", "--then", "22"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), "fwverify: gen: --mistake out-of-order needs at least two knock ports\n");
}

fn syn(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, [192, 0, 2, 1], 64)
        .tcp(sport, dport, 1, 512)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

/// A capture of the correct knock plus an ARP request, as `tcpdump -w` would write it.
fn knock_capture(path: &Path, truncate_last: bool) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use std::time::Duration;
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2; 6]);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[0; 20]);
    let src = [100, 1, 2, 3];
    let mut frames: Vec<(u64, Vec<u8>)> =
        vec![(0, syn(src, 43000, 1234)), (500, arp), (2000, syn(src, 43001, 2345)), (4000, syn(src, 43002, 3456))];
    let mut last = syn(src, 50000, 22);
    if truncate_last {
        last.truncate(14 + 20 + 8);
    }
    frames.push((6000, last));
    let header = PcapHeader { datalink: pcap_file::DataLink::ETHERNET, ..PcapHeader::default() };
    let mut w = PcapWriter::with_header(std::fs::File::create(path).unwrap(), header).unwrap();
    let t0 = Duration::from_secs(1_750_000_000);
    for (ms, f) in &frames {
        w.write_packet(&PcapPacket::new(t0 + Duration::from_millis(*ms), f.len() as u32, f)).unwrap();
    }
}

#[test]
fn pcap_capture_replays_with_capture_times() {
    let dir = scratch("pcap");
    // The extension does not matter: the magic number decides.
    let path = dir.join("knock.dump");
    knock_capture(&path, false);
    let out = fwverify()
        .args(["check", &seed_rules(), "--listen", "tcp:22", "--format", "json", "--scenario"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let packets = v["scenarios"][0]["packets"].as_array().unwrap();
    let got: Vec<(u64, f64, &str)> = packets
        .iter()
        .map(|p| (p["row"].as_u64().unwrap(), p["time"].as_f64().unwrap(), p["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [(1, 0.0, "DROP"), (2, 2.0, "DROP"), (3, 4.0, "DROP"), (4, 6.0, "ACCEPT")]);
    assert_eq!(text(&out.stderr), format!("fwverify: {}: skipped 1 frame (not IP)\n", path.display()));
}

#[test]
fn malformed_capture_frames_are_errors_with_their_number() {
    let dir = scratch("pcap-bad");
    let path = dir.join("bad.pcap");
    knock_capture(&path, true);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}: frame 5: truncated or malformed TCP header", path.display())), "{err}");
    let csv = dir.join("not-really.pcap");
    std::fs::write(&csv, "time,src,dst,proto\n").unwrap();
    let out = check(&csv);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a pcap or pcapng capture"), "{}", text(&out.stderr));
}
