//! Kernel conformance of `fwverify fmt`: each ruleset is loaded with
//! `iptables-legacy-restore` (`ip6tables-…` for `.v6`) into a fresh, throwaway network
//! namespace and read back with `iptables-legacy-save`; the text must equal `fwverify fmt`
//! (and, restored with `-c` and saved with `-c`, `fwverify fmt --counters`).
//!
//! Rulesets: `data/kernel/*` (hand-written, every typed module and target, in non-canonical
//! forms on purpose), `data/cli/good.rules`, every corpus file the kernel accepts, and a
//! fixed-seed sample of the `roundtrip` generator's canonical rulesets. Also: every
//! `data/bad/*` input really is refused by the kernel.
//!
//! Safety: iptables only ever runs as `ip netns exec fwv-test-<pid>-<n> …`; each namespace
//! is deleted by a `Drop` guard, also when a test fails. The host firewall is never touched.
//! Without root or the tools this prints `SKIPPED kernel conformance: <reason>` and passes,
//! unless `CI` is set.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::common::{corpus_manifest, data_dir, line_diff, skip_or_fail};

const TOOLS: [&str; 5] =
    ["ip", "iptables-legacy-restore", "iptables-legacy-save", "ip6tables-legacy-restore", "ip6tables-legacy-save"];

/// A network namespace that exists as long as this value does.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Result<Netns, String> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!("fwv-test-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let out = Command::new("ip").args(["netns", "add", &name]).output().map_err(|e| format!("running ip: {e}"))?;
        if !out.status.success() {
            return Err(format!("ip netns add {name}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Netns { name })
    }

    /// Runs `prog args` inside the namespace with `stdin` as input.
    fn exec(&self, prog: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, prog])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("ip netns exec {} {prog}: {e}", self.name));
        // A refused file may close stdin early; the exit status tells.
        let _ = child.stdin.take().expect("piped").write_all(stdin);
        child.wait_with_output().expect("waiting for iptables")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                .any(|d| d.join(tool).is_file())
        })
        .unwrap_or(false)
}

/// Why the kernel tests cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    if uid != Some("0") {
        return Some("not running as root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    if let Some(t) = TOOLS.iter().find(|t| !on_path(t)) {
        return Some(format!("`{t}` not found (apt-get install iptables iproute2)"));
    }
    match Netns::new() {
        Ok(ns) => {
            let out = ns.exec("iptables-legacy-save", &[], b"");
            (!out.status.success()).then(|| {
                format!("iptables-legacy-save fails in a namespace: {}", String::from_utf8_lossy(&out.stderr).trim())
            })
        }
        Err(e) => Some(format!("cannot create a network namespace: {e}")),
    }
}

/// Skips (or fails under CI) when the kernel is unavailable; true when the test may run.
fn kernel_ready() -> bool {
    match unavailable() {
        None => true,
        Some(reason) => {
            skip_or_fail("kernel conformance", &reason);
            false
        }
    }
}

fn tools(v6: bool) -> (&'static str, &'static str) {
    if v6 {
        ("ip6tables-legacy-restore", "ip6tables-legacy-save")
    } else {
        ("iptables-legacy-restore", "iptables-legacy-save")
    }
}

/// The kernel's save of `text` after a restore into a fresh namespace, `#` lines removed.
fn kernel_save(text: &[u8], v6: bool, counters: bool) -> Result<String, String> {
    let ns = Netns::new()?;
    let (restore, save) = tools(v6);
    let c: &[&str] = if counters { &["-c"] } else { &[] };
    let out = ns.exec(restore, c, text);
    if !out.status.success() {
        return Err(format!(
            "{restore}{} refused it ({}): {}",
            if counters { " -c" } else { "" },
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let out = ns.exec(save, c, b"");
    if !out.status.success() {
        return Err(format!("{save} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let saved = String::from_utf8(out.stdout).map_err(|e| format!("{save} printed non-UTF-8: {e}"))?;
    Ok(saved.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect())
}

/// `fwverify fmt [--counters] path`.
fn fwverify_fmt(path: &Path, counters: bool) -> Result<String, String> {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("fwverify");
    cmd.args(["--color", "never", "fmt"]);
    if counters {
        cmd.arg("--counters");
    }
    let out = cmd.arg(path).output().map_err(|e| format!("running fwverify: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error[")).take(5).collect();
        return Err(format!("fwverify fmt exited with {}: {}", out.status, errors.join("; ")));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("fwverify printed non-UTF-8: {e}"))
}

/// One ruleset to compare.
struct Case {
    /// Shown in reports.
    name: String,
    path: PathBuf,
    v6: bool,
}

/// Runs `f` over `items` on a few threads (each item uses its own namespace).
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(4, |n| n.get()).min(8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                out.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
            });
        }
    });
    let mut v = out.into_inner().unwrap_or_else(|e| e.into_inner());
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

/// Compares kernel and fwverify for one case; `None` when they agree.
fn compare(case: &Case, counters: bool) -> Option<String> {
    let label = format!("{}{}", case.name, if counters { " (restore -c / save -c vs fmt --counters)" } else { "" });
    let text = match std::fs::read(&case.path) {
        Ok(t) => t,
        Err(e) => return Some(format!("== {label}: reading {}: {e}", case.path.display())),
    };
    let expected = match kernel_save(&text, case.v6, counters) {
        Ok(s) => s,
        Err(e) => return Some(format!("== {label}: {e}")),
    };
    let got = match fwverify_fmt(&case.path, counters) {
        Ok(s) => s,
        Err(e) => return Some(format!("== {label}: {e}")),
    };
    line_diff(&expected, &got).map(|d| format!("== {label}: fwverify fmt differs from iptables-legacy-save\n{d}"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn case(path: PathBuf, name: String) -> Case {
    let v6 = path.extension().is_some_and(|e| e == "v6");
    Case { name, path, v6 }
}

/// Temporary files for generated rulesets, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("fwv-test-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn report(what: &str, cases: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "kernel conformance ({what}): {} of {cases} differ\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn fmt_matches_iptables_save_for_fixtures() {
    if !kernel_ready() {
        return;
    }
    let mut cases: Vec<Case> = files_in(&data_dir("kernel"))
        .into_iter()
        .map(|p| {
            let n = format!("tests/data/kernel/{}", p.file_name().expect("file").to_string_lossy());
            case(p, n)
        })
        .collect();
    cases.push(case(data_dir("cli").join("good.rules"), "tests/data/cli/good.rules".into()));
    let rules: usize = cases
        .iter()
        .map(|c| std::fs::read_to_string(&c.path).unwrap_or_default().lines().filter(|l| l.contains("-A ")).count())
        .sum();
    assert!(rules >= 80, "only {rules} fixture rules");
    let jobs: Vec<(&Case, bool)> = cases.iter().flat_map(|c| [(c, false), (c, true)]).collect();
    let failures = parallel(&jobs, |(c, counters)| compare(c, *counters)).into_iter().flatten().collect();
    report("fixtures", jobs.len(), failures);
}

#[test]
fn fmt_matches_iptables_save_for_the_corpus() {
    let entries = match corpus_manifest() {
        Ok(m) => m,
        Err(reason) => return skip_or_fail("corpus", &reason),
    };
    if !kernel_ready() {
        return;
    }
    let cases: Vec<Case> =
        entries.iter().filter(|e| e.kernel_test == 0).map(|e| case(e.path(), e.file.clone())).collect();
    let jobs: Vec<(&Case, bool)> = cases.iter().flat_map(|c| [(c, false), (c, true)]).collect();
    let failures = parallel(&jobs, |(c, counters)| compare(c, *counters)).into_iter().flatten().collect();
    report("corpus", jobs.len(), failures);
}

#[test]
fn fmt_matches_iptables_save_for_generated_rulesets() {
    if !kernel_ready() {
        return;
    }
    // The roundtrip generator's canonical text must also be what the kernel prints.
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[0x5a; 32]));
    let strategy = crate::roundtrip::ruleset();
    let dir = TempDir::new("gen");
    let cases: Vec<Case> = (0..40)
        .map(|i| {
            let text = strategy.new_tree(&mut runner).expect("generator").current();
            let path = dir.0.join(format!("generated-{i:02}.v4"));
            std::fs::write(&path, &text).expect("writing a generated ruleset");
            case(path, format!("generated ruleset #{i} (seed 0x5a…)"))
        })
        .collect();
    let failures: Vec<String> = parallel(&cases, |c| {
        compare(c, false).map(|d| format!("{d}\ninput:\n{}", std::fs::read_to_string(&c.path).unwrap_or_default()))
    })
    .into_iter()
    .flatten()
    .collect();
    report("generated", cases.len(), failures);
}

#[test]
fn bad_inputs_are_refused_by_the_kernel() {
    if !kernel_ready() {
        return;
    }
    let files = files_in(&data_dir("bad"));
    let accepted: Vec<String> = parallel(&files, |p| {
        let text = std::fs::read(p).expect("fixture");
        match kernel_save(&text, false, false) {
            Ok(saved) => Some(format!("{}: accepted; saved as\n{saved}", p.display())),
            Err(_) => None,
        }
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(accepted.is_empty(), "tests/data/bad must hold only inputs the kernel refuses:\n{}", accepted.join("\n"));
}
