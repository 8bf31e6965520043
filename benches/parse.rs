//! Parse speed: `fwverify::load` on generated kube-proxy-like rulesets of 10 k, 100 k and
//! 1 M rules, against `iptables-legacy-restore --test` on the same files, in the same run.
//!
//! `cargo bench --bench parse` prints a Markdown table for BENCHMARKS.md. Other sizes:
//! `cargo bench --bench parse -- 5000 50000`. The kernel side runs only as root with
//! `ip` and `iptables-legacy-restore` installed, and only inside a throwaway network
//! namespace (`fwv-bench-PID`), deleted again at the end; the host firewall is never
//! touched. Otherwise the table says that the comparison was skipped.
//!
//! A plain `main` rather than criterion: a 1 M-rule sample takes seconds, the kernel side
//! is an external process, and the figures we want (median, rules/s, speed-up, peak RSS
//! of a fresh process) are simple to compute directly.

mod kubegen;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child process that measures peak memory: the file to load.
const RSS_CHILD_ENV: &str = "FWV_BENCH_RSS_CHILD";

fn main() {
    if let Some(path) = std::env::var_os(RSS_CHILD_ENV) {
        rss_child(Path::new(&path));
        return;
    }
    let mut sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.replace('_', "").parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![10_000, 100_000, 1_000_000];
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-parse");
    std::fs::create_dir_all(&dir).expect("create the bench directory");

    print_machine();
    let kernel = match Kernel::new() {
        Ok(k) => Some(k),
        Err(why) => {
            println!("kernel comparison skipped: {why}");
            None
        }
    };
    // What `ip netns exec NS` itself costs (it also sets up a mount namespace); subtracted
    // from the iptables-legacy-restore times so that they are the tool's own.
    let exec_overhead = kernel.as_ref().map(|k| median((0..5).map(|_| k.exec_true()))).unwrap_or_default();
    if kernel.is_some() {
        println!("`ip netns exec` start-up: {:.1} ms (subtracted from the iptables figures)", ms(exec_overhead));
    }
    println!();

    let mut rows = Vec::new();
    for &n in &sizes {
        let n = n.max(kubegen::MIN_RULES);
        let t = Instant::now();
        let g = kubegen::kube_proxy(n);
        assert_eq!(g.rules, n);
        let path = dir.join(format!("kube-{n}.rules"));
        std::fs::write(&path, &g.text).expect("write the generated file");
        eprintln!(
            "{n} rules: {} chains, {} services, {:.1} MiB, generated in {:.2} s -> {}",
            g.chains,
            g.services,
            g.text.len() as f64 / 1048576.0,
            t.elapsed().as_secs_f64(),
            path.display()
        );

        // Correctness first: the file must load without errors.
        let parsed = fwverify::load(&g.text);
        let errors = parsed.diagnostics.iter().filter(|d| d.is_error()).count();
        assert_eq!(errors, 0, "generated file has errors: {:?}", parsed.diagnostics.iter().find(|d| d.is_error()));
        assert_eq!(parsed.ruleset.rule_count(), n, "every generated rule is in the model");
        let warnings = parsed.diagnostics.len();
        drop(parsed);

        let runs = runs_for(n, 9, 5, 3);
        let fw = median((0..runs).map(|_| {
            let t = Instant::now();
            let parsed = fwverify::load(&g.text);
            let d = t.elapsed();
            assert_eq!(parsed.ruleset.rule_count(), n);
            drop(parsed);
            d
        }));
        let rss = peak_rss(&path);
        eprintln!("  fwverify: {:.1} ms (median of {runs}), {warnings} warnings", ms(fw));

        let ipt = kernel.as_ref().map(|k| {
            if n <= 100_000 {
                k.load_for_real(&path, n);
            }
            let runs = runs_for(n, 5, 3, 1);
            let t = median((0..runs).map(|_| k.restore_test(&path))).saturating_sub(exec_overhead);
            eprintln!("  iptables-legacy-restore --test: {:.1} ms (median of {runs})", ms(t));
            t
        });
        rows.push(Row { rules: n, chains: g.chains, bytes: g.text.len(), fw, rss, ipt, warnings });
    }
    drop(kernel);
    print_table(&rows);
}

struct Row {
    rules: usize,
    chains: usize,
    bytes: usize,
    fw: Duration,
    rss: Option<u64>,
    ipt: Option<Duration>,
    warnings: usize,
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| rules | chains | file | fwverify::load | rules/s | peak RSS | iptables-legacy-restore --test | speed-up | ns/rule |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let ipt = r.ipt.map(|d| format!("{:.0} ms", ms(d))).unwrap_or_else(|| "skipped".into());
        let speedup =
            r.ipt.map(|d| format!("{:.1}×", d.as_secs_f64() / r.fw.as_secs_f64())).unwrap_or_else(|| "–".into());
        let rss = r.rss.map(|kib| format!("{:.0} MiB", kib as f64 / 1024.0)).unwrap_or_else(|| "?".into());
        println!(
            "| {} | {} | {:.1} MiB | {:.0} ms | {:.2} M | {rss} | {ipt} | {speedup} | {:.0} |",
            r.rules,
            r.chains,
            r.bytes as f64 / 1048576.0,
            ms(r.fw),
            r.rules as f64 / r.fw.as_secs_f64() / 1e6,
            r.fw.as_nanos() as f64 / r.rules as f64,
        );
    }
    if let [first, .., last] = rows {
        let per_rule = |r: &Row| r.fw.as_secs_f64() / r.rules as f64;
        println!();
        println!(
            "growth: {}× the rules took {:.1}× the time ({:.2}× the time per rule); {} warnings on the largest file (unmodelled modules)",
            last.rules / first.rules,
            last.fw.as_secs_f64() / first.fw.as_secs_f64(),
            per_rule(last) / per_rule(first),
            last.warnings
        );
    }
}

fn runs_for(n: usize, small: usize, medium: usize, large: usize) -> usize {
    match n {
        0..=20_000 => small,
        20_001..=200_000 => medium,
        _ => large,
    }
}

fn median(samples: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = samples.collect();
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak resident memory (KiB) of a fresh process that reads `path` and loads it.
fn peak_rss(path: &Path) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe).env(RSS_CHILD_ENV, path).stderr(Stdio::inherit()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn rss_child(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read the generated file");
    let parsed = fwverify::load(&text);
    assert!(!parsed.has_errors());
    println!("{}", vm_hwm_kib().expect("VmHWM in /proc/self/status"));
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn print_machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| k / 1048576.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("machine: {cpus} CPUs, {cpu}, {mem_gib:.1} GiB RAM, Linux {}", kernel.trim());
    let ipt = Command::new("iptables-legacy-restore").arg("--version").output();
    if let Ok(o) = ipt {
        println!("kernel side: {}", String::from_utf8_lossy(&o.stdout).trim());
    }
}

/// A throwaway network namespace for `iptables-legacy-restore`, deleted on drop. Every
/// iptables command runs through `ip netns exec`, so the host firewall is never touched.
struct Kernel {
    netns: String,
}

impl Kernel {
    fn new() -> Result<Kernel, String> {
        let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
        let uid = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2));
        if uid != Some("0") {
            return Err("not root (network namespaces need CAP_SYS_ADMIN)".into());
        }
        for tool in ["ip", "iptables-legacy-restore"] {
            let found = Command::new(tool).arg(if tool == "ip" { "-V" } else { "--version" }).output();
            if !found.map(|o| o.status.success()).unwrap_or(false) {
                return Err(format!("`{tool}` not found"));
            }
        }
        let netns = format!("fwv-bench-{}", std::process::id());
        let out = Command::new("ip").args(["netns", "add", &netns]).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("ip netns add {netns}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Kernel { netns })
    }

    fn iptables(&self, tool: &str, args: &[&str], stdin: Option<&Path>) -> (bool, String) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, tool]).args(args);
        cmd.stdin(match stdin {
            Some(p) => Stdio::from(File::open(p).expect("open the generated file")),
            None => Stdio::null(),
        });
        let out = cmd.output().expect("run ip netns exec");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Wall time of `ip netns exec NETNS true`.
    fn exec_true(&self) -> Duration {
        let t = Instant::now();
        let status = Command::new("ip").args(["netns", "exec", &self.netns, "true"]).status();
        assert!(status.map(|s| s.success()).unwrap_or(false), "ip netns exec {} true failed", self.netns);
        t.elapsed()
    }

    /// Wall time of `iptables-legacy-restore --test < path` (process start included).
    fn restore_test(&self, path: &Path) -> Duration {
        let t = Instant::now();
        let (ok, out) = self.iptables("iptables-legacy-restore", &["--test"], Some(path));
        let d = t.elapsed();
        assert!(ok, "iptables-legacy-restore --test refused {}: {out}", path.display());
        d
    }

    /// Loads the file into the namespace's kernel tables (so the kernel's own checks run,
    /// which `--test` skips) and checks that all `rules` rules arrived; then flushes.
    fn load_for_real(&self, path: &Path, rules: usize) {
        let (ok, out) = self.iptables("iptables-legacy-restore", &[], Some(path));
        assert!(ok, "the kernel refused {}: {out}", path.display());
        let (ok, saved) = self.iptables("iptables-legacy-save", &[], None);
        assert!(ok, "iptables-legacy-save failed: {saved}");
        let loaded = saved.lines().filter(|l| l.starts_with("-A ")).count();
        assert_eq!(loaded, rules, "the kernel holds every generated rule");
        eprintln!("  kernel: loaded {loaded} rules for real in netns {}", self.netns);
        let empty = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
        let flush = path.with_extension("empty");
        std::fs::write(&flush, empty).expect("write the flush file");
        let (ok, out) = self.iptables("iptables-legacy-restore", &[], Some(&flush));
        assert!(ok, "flushing the namespace failed: {out}");
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}
