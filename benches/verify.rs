//! Verifier speed: reachability plus shadowing (`verify::stateless::analyze`) on a
//! generated 1,000-rule ruleset, on the largest corpus files ([`CORPUS`]: the TUM i8
//! firewall, 4,140 and 2,807 rules, with a dummy MAC for the anonymised ones, and
//! `ext_kr_geo_allowlist.v4`, 2,751 rules) and on the seed ruleset; one
//! `verify::query` on the seed ruleset; and `verify::prove` on each seed property of
//! issue #4 ([`PROVE`]: the knock on the seed ruleset, a blacklisted source regaining
//! SSH, the naive chain, the SSH brute-force limiter, the scan and flood attackers), at
//! the CLI's default K.
//!
//! `cargo bench --bench verify` prints a Markdown table for BENCHMARKS.md
//! (`cargo bench --bench verify -- N` for another generated size, `-- prove` for the
//! `prove` rows only, any other word for the rows whose name contains it, e.g.
//! `-- prove naive.v4` or `-- tum_i8`).
//!
//! A plain `main`, as in `benches/sim.rs`: each sample is seconds of solver work on a
//! fresh encoding, and the figure wanted is the median CPU time of a few samples.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use fwverify::verify::property::parse_property;
use fwverify::verify::prove::{prove, ProveOptions};
use fwverify::verify::query::{query, QueryOptions};
use fwverify::verify::stateless::{analyze, Options, Unreached};
use fwverify::verify::traverse::Final;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1000);
    // Other words (not `prove`, not cargo's `--bench`) select the rows whose name
    // contains one of them, e.g. `-- prove naive.v4` or `-- tum_i8`.
    let filters: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-') && *a != "prove" && a.parse::<usize>().is_err())
        .collect();
    let wanted = |what: &str| filters.is_empty() || filters.iter().any(|f| what.contains(f));
    print_machine();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed = std::fs::read_to_string(root.join("scenarios/seed/rules.v4")).expect("seed ruleset");
    let corpus = root.join("../shared/corpus/files");
    let big = generated(n);
    // `FWV_BENCH_DUMP=path` writes the generated ruleset, for profiling with the CLI.
    if let Some(p) = std::env::var_os("FWV_BENCH_DUMP") {
        std::fs::write(p, &big).expect("write the generated ruleset");
    }
    let mut rows = Vec::new();
    if !args.iter().any(|a| a == "prove") {
        let what = format!("generated ruleset ({n} rules)");
        if wanted(&what) {
            rows.push(stateless_row(&what, &big));
        }
        for (file, what) in CORPUS.iter().filter(|(_, what)| wanted(what)) {
            let path = corpus.join(file);
            match std::fs::read_to_string(&path) {
                // The TUM files' MAC addresses were anonymised to `XX:XX:XX:XX:XX:XX`,
                // which iptables-restore rejects; a dummy MAC stands in for them.
                Ok(text) => rows.push(stateless_row(what, &text.replace("XX:XX:XX:XX:XX:XX", DUMMY_MAC))),
                Err(e) => eprintln!("skipping {}: {e}", path.display()),
            }
        }
        if wanted("seed rules.v4") {
            rows.push(stateless_row("seed rules.v4", &seed));
        }
        let what = "seed rules.v4: query `ACCEPT tcp dport 22`";
        if wanted(what) {
            rows.push(query_row(what, &seed, "ACCEPT tcp dport 22"));
        }
    }
    for (file, prop) in PROVE {
        let name = Path::new(file).file_name().expect("file name").to_string_lossy();
        let what = format!("{name}: prove `{prop}`");
        if wanted(&what) {
            let text = std::fs::read_to_string(root.join(file)).expect("a seed ruleset");
            rows.push(prove_row(&what, &text, prop));
        }
    }
    println!("\n| what | rules | findings | CPU time (median of {}) | wall |", samples());
    println!("|---|---:|---|---:|---:|");
    for r in rows {
        println!("| {} | {} | {} | {:.2} s | {:.2} s |", r.0, r.1, r.2, r.3.as_secs_f64(), r.4.as_secs_f64());
    }
}

type Row = (String, usize, String, Duration, Duration);

/// The largest corpus files (in `../shared/corpus/files`, see its `MANIFEST.tsv`).
const CORPUS: &[(&str, &str)] = &[
    ("ext_kr_geo_allowlist.v4", "corpus ext_kr_geo_allowlist.v4"),
    ("tum_i8_2013-10-20.v4", "corpus tum_i8_2013-10-20.v4 (dummy MAC)"),
    ("tum_i8_2014-07-25.v4", "corpus tum_i8_2014-07-25.v4 (dummy MAC)"),
];

/// A locally administered unicast MAC for the corpus's anonymised `XX:XX:XX:XX:XX:XX`.
const DUMMY_MAC: &str = "02:00:00:00:00:01";

/// The seed properties of issue #4 (ruleset relative to the crate root, property), timed
/// with `verify::prove` at the default K (`DEFAULT_K`; `at most N` raises it to N+1).
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
    // `scan`: every sequential SYN scan at once (the naive chain's witness is a whole scan,
    // with the threshold rate found by bisection); `flood`: every port in any order.
    ("scenarios/seed/rules.v4", "never ACCEPT tcp dport 22 under scan"),
    ("scenarios/seed/naive.v4", "never ACCEPT tcp dport 22 under scan"),
    ("tests/data/prove/consecutive.v4", "never ACCEPT tcp dport 22 under scan"),
    ("scenarios/seed/naive.v4", "never ACCEPT tcp dport 22 under scan rate 1-110"),
    ("scenarios/seed/rules.v4", "never ACCEPT tcp dport 22 under flood"),
    ("scenarios/seed/rules.v4", "never ACCEPT tcp dport 22 ctstate INVALID under flood"),
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
    let mut last = None;
    for _ in 0..samples() {
        let clock = Clock::start();
        let a = fresh(|| analyze(rs, &Options::default())).expect("z3 decides every rule");
        taken.push(clock.elapsed());
        last = Some(a);
    }
    let a = last.expect("at least one sample");
    // `FWV_BENCH_LIST=1` lists the shadowed rules' lines (with the dummy MAC, for the
    // TUM files), to look at what the analysis found.
    if std::env::var_os("FWV_BENCH_LIST").is_some() {
        let lines: Vec<&str> = text.lines().collect();
        let line = |r: &fwverify::verify::RuleRef| {
            let n = rs.tables[r.table].chains[r.chain].rules[r.rule].span.line;
            format!("{n}: {}", lines.get((n as usize).saturating_sub(1)).unwrap_or(&""))
        };
        for sh in &a.shadowed {
            eprintln!("    shadowed {}", line(&sh.rule));
            for c in &sh.covering {
                eprintln!("      by {}", line(c));
            }
        }
    }
    let findings = format!(
        "{} unreachable, {} shadowed, {} never match",
        a.unreachable.len(),
        a.shadowed.len(),
        a.never_matches.len()
    );
    eprintln!("{what}: {findings}");
    // Per table: the analysis runs table by table (one solver each).
    for (ti, t) in rs.tables.iter().enumerate() {
        let rules: usize = t.chains.iter().map(|c| c.rules.len()).sum();
        let unreachable: Vec<_> = a.unreachable.iter().filter(|u| u.rule.table == ti).collect();
        let not_called = unreachable.iter().filter(|u| u.why == Unreached::ChainNotReached).count();
        eprintln!(
            "    {}: {rules} rules, {} unreachable ({not_called} in chains no built-in chain reaches), {} shadowed, \
             {} never match, {} matches assumed free",
            t.name,
            unreachable.len(),
            a.shadowed.iter().filter(|r| r.rule.table == ti).count(),
            a.never_matches.iter().filter(|r| r.table == ti).count(),
            a.assumed.iter().filter(|(r, _)| r.table == ti).count(),
        );
    }
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
        found = fresh(|| query(&parsed.ruleset, v, &prop.goal, &QueryOptions::default()))
            .expect("z3 decides")
            .classes
            .len();
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
    // The answers' facts (e.g. a scan's threshold rate), each once, so that a sample
    // whose answer differs (a threshold bisection cut short) shows.
    let mut info: Vec<String> = Vec::new();
    for _ in 0..samples() {
        let clock = Clock::start();
        let r = fresh(|| prove(&parsed.ruleset, &p, &ProveOptions::default())).expect("prove answers");
        taken.push(clock.elapsed());
        answer = r.headline(p.quant);
        for line in r.info {
            if !info.contains(&line) {
                info.push(line);
            }
        }
    }
    eprintln!("{what}: {answer}");
    for line in info {
        eprintln!("    {line}");
    }
    let (cpu, wall) = median(taken);
    (what.to_string(), parsed.ruleset.rule_count(), answer, cpu, wall)
}

/// Runs `f` in a new Z3 context, as a fresh `fwverify` process would. Every Z3 call of
/// the crate uses the thread-local context; reusing it from one sample to the next
/// carries terms over and changes the solver's search, which made repeated samples of
/// the same `prove` differ by more than 10×.
fn fresh<R: Send + Sync>(f: impl FnOnce() -> R + Send + Sync) -> R {
    z3::with_z3_config(&z3::Config::new(), f)
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
