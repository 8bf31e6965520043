//! Helpers shared by the benches: a generated firewall ruleset, CPU time, machine facts.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::time::Duration;

use fwverify::trace::gen::SplitMix64;

/// A ruleset of about `n` rules in the style of a large hand-written firewall: a dispatch
/// on protocol and port range into `groups` user chains, each with per-network port rules,
/// connection state, recent-list checks, rate limits and a RETURN, plus a blacklist chain.
pub fn firewall_ruleset(n: usize, groups: usize) -> String {
    let mut s =
        String::from("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:blacklist - [0:0]\n");
    for g in 0..groups {
        let _ = writeln!(s, ":svc{g:03} - [0:0]");
    }
    s.push_str("-A INPUT -i lo -j ACCEPT\n");
    s.push_str("-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n");
    s.push_str("-A INPUT -m state --state INVALID -j DROP\n");
    s.push_str("-A INPUT -m recent --name bl --rcheck --seconds 600 -j DROP\n");
    s.push_str("-A INPUT -p icmp -m limit --limit 5/s --limit-burst 10 -j ACCEPT\n");
    let width = 65536 / groups;
    for g in 0..groups {
        let (lo, hi) = (g * width, if g == groups - 1 { 65535 } else { (g + 1) * width - 1 });
        let proto = if g % 4 == 3 { "udp" } else { "tcp" };
        let _ = writeln!(s, "-A INPUT -p {proto} -m {proto} --dport {lo}:{hi} -j svc{g:03}");
    }
    // Only a trap port blacklists (what its group chain leaves undecided falls through to
    // here), so most packets walk the dispatch and a group chain.
    s.push_str("-A INPUT -p tcp -m tcp --dport 23 -j blacklist\n");
    s.push_str("-A blacklist -m recent --name bl --set -j DROP\n");
    let fixed = s.lines().filter(|l| l.starts_with("-A")).count();
    let per = (n - fixed) / groups;
    let mut rng = SplitMix64::new(42);
    let mut written = fixed;
    for g in 0..groups {
        let proto = if g % 4 == 3 { "udp" } else { "tcp" };
        let count = if g == groups - 1 { n - written } else { per };
        for k in 0..count {
            let port = g * width + rng.below(width as u64) as usize;
            let net = format!("{}.{}.{}.0/24", 100 + rng.below(100), rng.below(256), rng.below(256));
            let line = match k % 10 {
                0 => format!("-A svc{g:03} -p {proto} -m {proto} --dport {port} -m state --state NEW -j ACCEPT"),
                1 => format!("-A svc{g:03} -s {net} -p {proto} -m {proto} --dport {port} -j ACCEPT"),
                2 => format!("-A svc{g:03} -p {proto} -m {proto} --sport 1024:65535 --dport {port} -j DROP"),
                3 => format!(
                    "-A svc{g:03} -p {proto} -m {proto} --dport {port} -m recent --name r{g} --rcheck --seconds 60 --hitcount 5 -j DROP"
                ),
                4 => format!("-A svc{g:03} -p {proto} -m {proto} --dport {port} -m recent --name r{g} --set"),
                5 => format!("-A svc{g:03} -p {proto} -m {proto} --dport {port} -m limit --limit 100/s -j ACCEPT"),
                6 => format!("-A svc{g:03} -s {net} -j RETURN"),
                7 => format!("-A svc{g:03} -d 192.0.2.{}/32 -p {proto} -m {proto} --dport {port} -j REJECT", rng.below(255)),
                8 => format!("-A svc{g:03} -p {proto} -m multiport --dports {port},{},{} -j ACCEPT", port ^ 1, port ^ 2),
                _ => format!("-A svc{g:03} -s {net} -m comment --comment \"net {k}\" -j DROP"),
            };
            s.push_str(&line);
            s.push('\n');
        }
        written += count;
    }
    s.push_str("COMMIT\n");
    s
}

/// CPU time of this process (user + system, from `/proc/self/stat`, 10 ms ticks).
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses): utime is the 14th field.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<u64> = rest.split(' ').skip(11).take(2).map(|x| x.parse().expect("tick count")).collect();
    Duration::from_millis((f[0] + f[1]) * 10)
}

/// `N CPUs, model, Linux release` of this machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs, {cpu}, Linux {}", kernel.trim())
}
