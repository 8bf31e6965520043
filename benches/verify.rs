//! Verifier speed: reachability plus shadowing (`verify::stateless::analyze`) on a
//! generated 1,000-rule ruleset, on the largest corpus file
//! (`ext_kr_geo_allowlist.v4`, 2,751 rules) and on the seed ruleset; one
//! `verify::query` on the seed ruleset; and `verify::prove` on each seed property of
//! issue #4 ([`PROVE`]: the knock on the seed ruleset, a blacklisted source regaining
//! SSH, the naive chain, the SSH brute-force limiter), at the CLI's default K.
//!
//! `cargo bench --bench verify` prints a Markdown table for BENCHMARKS.md
//! (`cargo bench --bench verify -- N` for another generated size, `-- prove` for the
//! `prove` rows only).
//!
//! A plain `main`, as in `benches/sim.rs`: each sample is seconds of solver work on a
//! fresh encoding, and the figure wanted is the median CPU time of a few samples.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use fwverify::verify::property::parse_property;
use fwverify::verify::prove::{prove, ProveOptions};
use fwverify::verify::query::{query, QueryOptions};
use fwverify::verify::stateless::{analyze, Options};
use fwverify::verify::traverse::Final;

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000);
    print_machine();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed = std::fs::read_to_string(root.join("scenarios/seed/rules.v4")).expect("seed ruleset");
    let corpus = root.join("../shared/corpus/files/ext_kr_geo_allowlist.v4");
    let big = generated(n);
    // `FWV_BENCH_DUMP=path` writes the generated ruleset, for profiling with the CLI.
    if let Some(p) = std::env::var_os("FWV_BENCH_DUMP") {
        std::fs::write(p, &big).expect("write the generated ruleset");
    }
    let mut rows = Vec::new();
    if !std::env::args().any(|a| a == "prove") {
        rows.push(stateless_row(&format!("generated ruleset ({n} rules)"), &big));
        match std::fs::read_to_string(&corpus) {
            Ok(text) => rows.push(stateless_row("corpus ext_kr_geo_allowlist.v4", &text)),
            Err(e) => eprintln!("skipping {}: {e}", corpus.display()),
        }
        rows.push(stateless_row("seed rules.v4", &seed));
        rows.push(query_row("seed rules.v4: query `ACCEPT tcp dport 22`", &seed, "ACCEPT tcp dport 22"));
    }
    for (file, prop) in PROVE {
        let text = std::fs::read_to_string(root.join(file)).expect("a seed ruleset");
        let name = Path::new(file).file_name().expect("file name").to_string_lossy();
        rows.push(prove_row(&format!("{name}: prove `{prop}`"), &text, prop));
    }
    println!("\n| what | rules | findings | CPU time (median of 3) | wall |");
    println!("|---|---:|---|---:|---:|");
    for r in rows {
        println!("| {} | {} | {} | {:.2} s | {:.2} s |", r.0, r.1, r.2, r.3.as_secs_f64(), r.4.as_secs_f64());
    }
}

type Row = (String, usize, String, Duration, Duration);

/// The seed properties of issue #4 (ruleset relative to the crate root, property), timed
/// with `verify::prove` at the default K (`DEFAULT_K`; `at most N` raises it to N+1).
/// The `scan` properties join this list when the scan attacker lands.
const PROVE: &[(&str, &str)] = &[
    ("scenarios/seed/rules.v4", "possible ACCEPT tcp dport 22"),
    ("scenarios/seed/rules.v4", "possible ACCEPT tcp dport 22 from blacklisted"),
    ("scenarios/seed/naive.v4", "never ACCEPT tcp dport 22"),
    ("tests/data/prove/ssh-limiter.v4", "never ACCEPT tcp dport 22 ctstate INVALID"),
    ("tests/data/prove/ssh-limiter.v4", "at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s"),
    // `sources N`: the limiter bypassed by a second address; a knock shared by a /24.
    ("tests/data/prove/ssh-limiter.v4", "at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s under sources 2"),
    ("tests/data/prove/subnet-knock.v4", "possible ACCEPT tcp dport 22 under sources 2"),
    ("scenarios/seed/rules.v4", "never ACCEPT tcp dport 22 ctstate INVALID under sources 6"),
];

/// Samples per figure (`FWV_BENCH_SAMPLES`, default 3).
fn samples() -> usize {
    std::env::var("FWV_BENCH_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

fn stateless_row(what: &str, text: &str) -> Row {
    let parsed = fwverify::load(text);
    assert!(!parsed.has_errors(), "{what} loads");
    let rs = &parsed.ruleset;
    let mut taken = Vec::new();
    let mut findings = String::new();
    for _ in 0..samples() {
        let clock = Clock::start();
        let a = analyze(rs, &Options::default()).expect("z3 decides every rule");
        taken.push(clock.elapsed());
        findings = format!(
            "{} unreachable, {} shadowed, {} never match",
            a.unreachable.len(),
            a.shadowed.len(),
            a.never_matches.len()
        );
    }
    eprintln!("{what}: {findings}");
    let (cpu, wall) = median(taken);
    (what.to_string(), rs.rule_count(), findings, cpu, wall)
}

fn query_row(what: &str, text: &str, q: &str) -> Row {
    let parsed = fwverify::load(text);
    let prop = parse_property(&format!("possible {q}"), 0, 1).expect("query parses");
    let v = Final::parse(prop.verdict.as_str()).expect("verdict");
    let mut taken = Vec::new();
    let mut found = 0;
    for _ in 0..samples() {
        let clock = Clock::start();
        found = query(&parsed.ruleset, v, &prop.goal, &QueryOptions::default()).expect("z3 decides").classes.len();
        taken.push(clock.elapsed());
    }
    let (cpu, wall) = median(taken);
    (what.to_string(), parsed.ruleset.rule_count(), format!("{found} class(es)"), cpu, wall)
}

fn prove_row(what: &str, text: &str, prop: &str) -> Row {
    let parsed = fwverify::load(text);
    assert!(!parsed.has_errors(), "{what} loads");
    let p = parse_property(prop, 0, 1).expect("the property parses");
    let mut taken = Vec::new();
    let mut answer = String::new();
    for _ in 0..samples() {
        let clock = Clock::start();
        let r = prove(&parsed.ruleset, &p, &ProveOptions::default()).expect("prove answers");
        taken.push(clock.elapsed());
        answer = r.headline(p.quant);
    }
    eprintln!("{what}: {answer}");
    let (cpu, wall) = median(taken);
    (what.to_string(), parsed.ruleset.rule_count(), answer, cpu, wall)
}

/// A ruleset of `n` rules in the style of a large hand-written firewall (as in
/// `benches/sim.rs`, with 20 user chains).
fn generated(n: usize) -> String {
    support::firewall_ruleset(n, 20)
}

fn print_machine() {
    println!("machine: {}; libz3 {}", support::machine(), z3_version());
}

fn z3_version() -> String {
    std::fs::read_dir("/usr/lib/x86_64-linux-gnu")
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with("libz3.so."))
        })
        .unwrap_or_else(|| "(unknown)".into())
}

/// CPU time of this process (user + system, from `/proc/self/stat`) and wall time: on a
/// shared machine, wall time also counts the time other processes held the CPU.
struct Clock {
    cpu: Duration,
    wall: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock { cpu: support::cpu_time(), wall: Instant::now() }
    }
    fn elapsed(&self) -> (Duration, Duration) {
        let (cpu, wall) = (support::cpu_time() - self.cpu, self.wall.elapsed());
        eprintln!("  sample: {:.0} ms CPU, {:.0} ms wall", cpu.as_secs_f64() * 1e3, wall.as_secs_f64() * 1e3);
        (cpu, wall)
    }
}

fn median(mut v: Vec<(Duration, Duration)>) -> (Duration, Duration) {
    v.sort_unstable();
    v[v.len() / 2]
}
