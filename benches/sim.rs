//! Simulator speed: packets per second of `Engine::step` alone, on the seed ruleset with
//! four traces built in memory beforehand (a stress mix of scans, knocks, SYN floods,
//! pings, web clients and UDP probes from many sources, `fwverify gen mix`; sequential
//! port scans; a SYN flood; a busy server's inbound traffic, mostly established flows)
//! and on a generated 10,000-rule ruleset with the mix; and end to end,
//! `check::replay` reading a generated multi-million-row scenario CSV with an observer
//! that only counts.
//!
//! `cargo bench --bench sim` prints a Markdown table for BENCHMARKS.md. Sizes:
//! `cargo bench --bench sim -- STEP_PACKETS CSV_ROWS` (defaults 2,000,000 and 3,000,000).
//!
//! A plain `main` rather than criterion, as in `benches/parse.rs`: each sample is a run of
//! millions of packets through a fresh engine (its state tables fill as the trace goes
//! on, so the figure is a throughput over a whole trace, not a per-call latency), and the
//! figures wanted (median packets/s) are simple to compute directly.

use std::io::{self, BufWriter};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use fwverify::check::{replay, replay_prefetched, Observer, Summary};
use fwverify::packet::Packet;
use fwverify::sim::conntrack::Conn;
use fwverify::sim::{Engine, Ifaces, Jiffies, Outcome, SimConfig};
use fwverify::trace::gen::{self, Common, Kind, Rate, Spec, SplitMix64};
use fwverify::trace::{to_jiffies, Row};

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.replace('_', "").parse().ok()).collect();
    let step_packets = args.first().copied().unwrap_or(2_000_000);
    let csv_rows = args.get(1).copied().unwrap_or(3_000_000);
    print_machine();

    let seed_rules = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed/rules.v4"))
        .expect("read scenarios/seed/rules.v4");
    let mut table = Vec::new();

    // `FWV_BENCH_ONLY=seed|scan|flood|server|big|e2e` runs one part (for profiling).
    let only = std::env::var("FWV_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    let trace = mixed_trace(step_packets);
    if part("seed") {
        table.push(step_rate("seed ruleset (47 rules), mixed trace", &seed_rules, &trace, 7));
    }
    if part("scan") {
        let scan = rows(&scan_spec(step_packets));
        table.push(step_rate("seed ruleset, sequential port scans", &seed_rules, &scan, 7));
    }
    if part("flood") {
        let flood = rows(&flood_spec(step_packets));
        table.push(step_rate("seed ruleset, SYN flood at port 80", &seed_rules, &flood, 7));
    }
    if part("server") {
        let web = server_trace(step_packets);
        table.push(step_rate(
            "seed ruleset, server traffic (established flows, knocked SSH, scans)",
            &seed_rules,
            &web,
            7,
        ));
    }
    if part("big") {
        let big_trace = &trace[..trace.len().min(400_000)];
        table.push(step_rate("generated ruleset (10,000 rules)", &big_ruleset(10_000), big_trace, 3));
    }

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-sim");
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let csv = dir.join(format!("mix-{csv_rows}.csv"));
    if !csv.exists() {
        let t = Instant::now();
        let tmp = csv.with_extension("tmp");
        let mut w = BufWriter::with_capacity(1 << 16, std::fs::File::create(&tmp).expect("create the CSV"));
        gen::write_csv(&mix_spec(csv_rows), &mut w).expect("write the CSV");
        drop(w);
        std::fs::rename(&tmp, &csv).expect("rename the CSV");
        eprintln!("generated {} in {:.1} s", csv.display(), t.elapsed().as_secs_f64());
    }
    if part("e2e") {
        table.push(end_to_end(&seed_rules, &csv, 3, false));
        table.push(end_to_end(&seed_rules, &csv, 3, true));
    }

    println!();
    println!("| what | packets | median CPU time | packets/s | ns/packet |");
    println!("|---|---:|---:|---:|---:|");
    for r in &table {
        println!(
            "| {} | {} | {:.0} ms | {:.2} M | {:.0} |",
            r.what,
            r.packets,
            r.time.as_secs_f64() * 1000.0,
            r.packets as f64 / r.time.as_secs_f64() / 1e6,
            r.time.as_nanos() as f64 / r.packets as f64
        );
    }
}

struct Result {
    what: String,
    packets: u64,
    time: Duration,
}

/// The mixed workload used everywhere here: 1000 sources at 10,000 packets/s.
fn mix_spec(count: u64) -> Spec {
    Spec { kind: Kind::Mix { count, rate: Rate::per_second(10_000), sources: 1000 }, common: Common::default() }
}

/// The mixed trace as (row, packet) pairs with interfaces left for the engine to intern.
fn mixed_trace(n: u64) -> Vec<Row> {
    rows(&mix_spec(n))
}

fn rows(spec: &Spec) -> Vec<Row> {
    spec.rows(1).map(|g| g.row).collect()
}

/// One source sweeping all ports 1-65535 in order at 10,000 ports/s, again and again
/// (`fwverify gen scan --ports 1-65535 --rate 10000 --repeat R`): the seed's main use.
/// The source is blacklisted at its first probe of port 21, so most of the trace is the
/// blacklisted path (rcheck, then the `blacklist` chain).
fn scan_spec(n: u64) -> Spec {
    let ports = gen::PortList::parse("1-65535").expect("a port list");
    let kind =
        Kind::Scan { ports, rate: Rate::per_second(10_000), order: gen::Order::Sequential, repeat: n.div_ceil(65_535) };
    Spec { kind, common: Common::default() }
}

/// SYNs to port 80 from 50 sources (round robin, random source ports) at 10,000
/// packets/s: each source passes the 60-per-second `synflood` check for its first SYNs
/// and is then blacklisted (`fwverify gen synflood --sources 50 --dport 80`).
fn flood_spec(n: u64) -> Spec {
    let kind = Kind::SynFlood { rate: Rate::per_second(10_000), count: n, sources: 50, dport: 80 };
    Spec { kind, common: Common::default() }
}

/// Inbound traffic of a busy server running the seed ruleset, as a capture of it shows
/// it: most packets belong to established connections. 300 flows at a time, interleaved
/// at random, at 10,000 packets/s: 90 % long-lived web connections to 80/443 from 5,000
/// client addresses (SYN, ACK, 100–2,000 segments, every other one with 512 bytes of
/// data, FIN, ACK), 5 % SSH sessions opened by the three knocks (then as long), 5 % short
/// scans (20 consecutive ports from one of 200 other addresses; those that touch a trap
/// port are blacklisted). The simulated host never accepts a connection (as the kernel
/// backend's sockets), so each listening port takes at most 4,096 of them before its
/// accept queue is full; long flows keep a 2 M-packet trace at about 2,000 connections.
fn server_trace(n: u64) -> Vec<Row> {
    #[derive(Clone, Copy)]
    struct Flow {
        src: IpAddr,
        sport: u16,
        port: u16,
        kind: u8,
        step: u32,
        len: u32,
    }
    let c = Common::default();
    let mut rng = SplitMix64::new(7);
    let spawn = |rng: &mut SplitMix64| {
        let sport = rng.range(1024, 60000);
        match rng.below(100) {
            0..=89 => {
                let port = if rng.below(2) == 0 { 80 } else { 443 };
                let src = gen::nth_addr(c.src, rng.below(5000));
                Flow { src, sport, port, kind: 0, step: 0, len: 4 + rng.range(100, 2000) as u32 }
            }
            90..=94 => {
                let src = gen::nth_addr(c.src, rng.below(5000));
                Flow { src, sport, port: 22, kind: 1, step: 0, len: 7 + rng.range(100, 2000) as u32 }
            }
            _ => {
                let src = gen::nth_addr(c.src, 10_000 + rng.below(200));
                Flow { src, sport, port: rng.range(1, 65000), kind: 2, step: 0, len: 20 }
            }
        }
    };
    let mut flows: Vec<Flow> = (0..300).map(|_| spawn(&mut rng)).collect();
    let rate = Rate::per_second(10_000);
    (0..n)
        .map(|i| {
            let a = rng.below(flows.len() as u64) as usize;
            if flows[a].step >= flows[a].len {
                flows[a] = spawn(&mut rng);
            }
            let f = flows[a];
            flows[a].step += 1;
            let (s, last) = (f.step, f.len - 1);
            let (sport, dport, flags, data) = match f.kind {
                0 => match s {
                    0 => (f.sport, f.port, 0x02, false),
                    _ if s == last - 1 => (f.sport, f.port, 0x11, false),
                    _ if s == last || s == 1 => (f.sport, f.port, 0x10, false),
                    _ => (f.sport, f.port, if s % 2 == 0 { 0x18 } else { 0x10 }, s % 2 == 0),
                },
                1 => match s {
                    0..=2 => (f.sport + s as u16, [1234, 2345, 3456][s as usize], 0x02, false),
                    3 => (f.sport + 3, 22, 0x02, false),
                    _ if s == last - 1 => (f.sport + 3, 22, 0x11, false),
                    _ if s == last || s == 4 => (f.sport + 3, 22, 0x10, false),
                    _ => (f.sport + 3, 22, if s % 2 == 0 { 0x18 } else { 0x10 }, s % 2 == 0),
                },
                _ => (f.sport, f.port.wrapping_add(s as u16), 0x02, false),
            };
            let mut pkt = Packet::ip(f.src, c.dst, 6, Packet::header_len(f.src, 6), 64);
            (pkt.sport, pkt.dport, pkt.flags) = (sport, dport, flags);
            if data {
                pkt.len += 512;
            }
            Row { row: i + 1, line: i + 2, time_ns: rate.offset_ns(i), pkt, iface: c.iface, expect: None }
        })
        .collect()
}

fn config() -> SimConfig {
    SimConfig { listen: vec![(6, 22), (6, 80), (6, 443)], ..SimConfig::default() }
}

/// Median packets/s of `Engine::step` over `trace`, each run on a fresh engine.
fn step_rate(what: &str, rules: &str, trace: &[Row], runs: usize) -> Result {
    let parsed = fwverify::load(rules);
    assert!(!parsed.has_errors(), "{what}: {:?}", parsed.diagnostics.iter().find(|d| d.is_error()));
    let hz = config().hz;
    let times = (0..runs).map(|_| {
        let mut engine = Engine::new(&parsed.ruleset, config(), Ifaces::default()).expect("simulatable");
        let iface = engine.iface("eth0");
        let packets: Vec<(Jiffies, Packet)> =
            trace.iter().map(|r| (to_jiffies(r.time_ns, hz), Packet { iface, ..r.pkt })).collect();
        let mut out = Outcome::default();
        let (mut accepted, mut replies) = (0u64, 0u64);
        let t = Clock::start();
        for (k, (now, p)) in packets.iter().enumerate() {
            if let Some((_, next)) = packets.get(k + 1) {
                engine.prefetch(next);
            }
            engine.step(*now, p, &mut out);
            accepted += (out.verdict == fwverify::sim::Verdict::Accept) as u64;
            replies += out.replies.len() as u64;
        }
        let d = t.elapsed();
        let z = engine.state_sizes();
        eprintln!(
            "  after the trace: {accepted} packets accepted, {replies} host replies, {} connections ({} bytes each), {} sockets",
            z.conns,
            size_of::<Conn>(),
            z.socks
        );
        d
    });
    let time = median(times);
    eprintln!("{what}: {:.2} M packets/s", trace.len() as f64 / time.as_secs_f64() / 1e6);
    Result { what: format!("`Engine::step`, {what}"), packets: trace.len() as u64, time }
}

/// An observer that only counts (what `--format summary` costs, minus printing).
struct Count(u64);

impl Observer for Count {
    fn packet(&mut self, _row: &Row, _now: Jiffies, _out: &Outcome, _engine: &Engine) -> io::Result<()> {
        self.0 += 1;
        Ok(())
    }
    fn finish(&mut self, _engine: &Engine, _summary: &Summary) -> io::Result<()> {
        Ok(())
    }
}

/// Median packets/s of reading `csv` and replaying it through the seed ruleset: with
/// `check::replay` on one thread (CPU time), or, `prefetched`, as `fwverify check` does,
/// with `check::replay_prefetched` reading on a second thread (wall time: the CPU time
/// of two threads adds up, what the user waits for does not).
fn end_to_end(rules: &str, csv: &Path, runs: usize, prefetched: bool) -> Result {
    let parsed = fwverify::load(rules);
    let mut packets = 0;
    let times = (0..runs).map(|_| {
        let t = Clock::start();
        let mut engine = Engine::new(&parsed.ruleset, config(), Ifaces::default()).expect("simulatable");
        let file = std::fs::File::open(csv).expect("open the CSV");
        let mut trace = fwverify::trace::csv::CsvTrace::new("mix.csv", file).expect("a scenario");
        let mut obs = Count(0);
        let s = if prefetched {
            replay_prefetched(&mut engine, &mut trace, &mut obs)
        } else {
            replay(&mut engine, &mut trace, &mut obs)
        };
        packets = s.expect("replays").packets;
        if prefetched {
            t.elapsed_wall()
        } else {
            t.elapsed()
        }
    });
    let time = median(times);
    let what = if prefetched {
        "end to end: `check::replay_prefetched` (as `fwverify check`) of a scenario CSV, seed ruleset, **wall time**"
    } else {
        "end to end: `check::replay` of a scenario CSV, seed ruleset"
    };
    eprintln!("{what}: {:.2} M packets/s", packets as f64 / time.as_secs_f64() / 1e6);
    Result { what: what.into(), packets, time }
}

fn big_ruleset(n: usize) -> String {
    let s = support::firewall_ruleset(n, 100);
    let parsed = fwverify::load(&s);
    assert_eq!(parsed.ruleset.rule_count(), n, "the generated ruleset has {n} rules");
    s
}

/// CPU time of this process (user + system, from `/proc/self/stat`, in clock ticks of
/// 10 ms): on a shared machine, wall-clock time also counts the time other processes
/// held the CPU. Runs last seconds, so the tick is under 1 % of a sample.
struct Clock {
    cpu: Duration,
    wall: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock { cpu: support::cpu_time(), wall: Instant::now() }
    }
    fn elapsed(&self) -> Duration {
        let (cpu, wall) = (support::cpu_time() - self.cpu, self.wall.elapsed());
        eprintln!("  sample: {:.0} ms CPU, {:.0} ms wall", cpu.as_secs_f64() * 1e3, wall.as_secs_f64() * 1e3);
        cpu
    }

    /// Wall time (for work spread over threads), printed with the CPU time.
    fn elapsed_wall(&self) -> Duration {
        let (cpu, wall) = (support::cpu_time() - self.cpu, self.wall.elapsed());
        eprintln!("  sample: {:.0} ms CPU, {:.0} ms wall", cpu.as_secs_f64() * 1e3, wall.as_secs_f64() * 1e3);
        wall
    }
}

fn median(samples: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = samples.collect();
    v.sort_unstable();
    v[v.len() / 2]
}

fn print_machine() {
    println!("machine: {}", support::machine());
}
