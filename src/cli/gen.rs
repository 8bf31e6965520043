//! `fwverify gen`: clap definitions for the scenario generators and their wiring to
//! [`crate::trace::gen`].

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::sim::Verdict;
use crate::trace::gen::{self, Common, Kind, Mistake, Order, PortList, Rate, Spec};
use crate::trace::IfaceBuf;

const GEN_HELP: &str = "\
Examples:
  fwverify gen scan --ports 1-1024 --rate 100 --order random --seed 1 > scan.csv
  fwverify gen synflood --rate 1000 --count 5000 --sources 10 --dport 80
  fwverify gen knock --ports 1234,2345,3456 --gap 2 --then 22 --expect ACCEPT
  fwverify gen knock --ports 1234,2345,3456 --gap 2 --mistake too-slow --then 22 --expect DROP
  fwverify gen icmp-burst --count 6 --interval 0.1
  fwverify gen many-sources --count 150 --dport 22
  fwverify gen mix --count 10000000 -o big.csv

The output is scenario CSV for `fwverify check --scenario`. Its `#` header records the
command (with the seed) that regenerates it exactly. `--expect` applies to every row,
except for `knock`, where it applies to the final SYN only.";

/// `fwverify gen` arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = GEN_HELP)]
pub struct GenArgs {
    /// What to generate.
    #[command(subcommand)]
    kind: GenKind,
}

/// Options every generator takes.
#[derive(clap::Args, Debug, Clone)]
struct CommonArgs {
    /// Source address (the first of several, for --sources/--count).
    #[arg(long, default_value = "100.1.2.3")]
    src: IpAddr,
    /// Destination address.
    #[arg(long, default_value = "192.0.2.1")]
    dst: IpAddr,
    /// Time of the first packet, in seconds.
    #[arg(long, default_value = "0", value_parser = parse_secs)]
    start: u64,
    /// Interface the packets arrive on.
    #[arg(long, default_value = "eth0", value_parser = parse_iface)]
    iface: IfaceBuf,
    /// Expected verdict (ACCEPT, DROP or REJECT) to write in the `expect` column.
    #[arg(long, value_parser = parse_verdict)]
    expect: Option<Verdict>,
    /// Seed of the random parts (default: a fresh one, printed in the header).
    #[arg(long)]
    seed: Option<u64>,
    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OrderArg {
    Sequential,
    Random,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum MistakeArg {
    WrongPort,
    OutOfOrder,
    TooSlow,
}

#[derive(clap::Subcommand, Debug)]
enum GenKind {
    /// TCP SYN port scan
    Scan {
        /// Ports: ranges and single ports, e.g. 1-1024 or 22,80,8000-8080.
        #[arg(long, value_parser = PortList::parse)]
        ports: PortList,
        /// Probes per second.
        #[arg(long, default_value = "100", value_parser = parse_rate)]
        rate: Rate,
        /// Probe order.
        #[arg(long, value_enum, default_value_t = OrderArg::Sequential)]
        order: OrderArg,
        /// Sweep the ports this many times (each random sweep in a new order).
        #[arg(long, default_value_t = 1)]
        repeat: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// SYN flood from one or more sources with random source ports
    Synflood {
        /// Packets per second (all sources together).
        #[arg(long, value_parser = parse_rate)]
        rate: Rate,
        /// Number of packets.
        #[arg(long)]
        count: u64,
        /// Number of sources (consecutive addresses from --src, in turn).
        #[arg(long, default_value_t = 1)]
        sources: u64,
        /// Destination port.
        #[arg(long)]
        dport: u16,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Port-knock sequence, then a SYN to the port it opens
    Knock {
        /// Knock ports, in order.
        #[arg(long, value_delimiter = ',', required = true)]
        ports: Vec<u16>,
        /// Seconds between knocks.
        #[arg(long, default_value = "1", value_parser = parse_secs)]
        gap: u64,
        /// Make a mistake.
        #[arg(long, value_enum)]
        mistake: Option<MistakeArg>,
        /// The port the knock opens.
        #[arg(long)]
        then: u16,
        /// The ruleset's knock window in seconds (`too-slow` waits one second longer).
        #[arg(long, default_value = "10", value_parser = parse_secs)]
        window: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Burst of ICMP echo requests
    IcmpBurst {
        /// Number of packets.
        #[arg(long)]
        count: u64,
        /// Seconds between packets.
        #[arg(long, value_parser = parse_secs)]
        interval: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// One SYN from each of many sources (fills and evicts recent tables)
    ManySources {
        /// Number of sources (consecutive addresses from --src).
        #[arg(long)]
        count: u64,
        /// Destination port.
        #[arg(long)]
        dport: u16,
        /// Packets per second.
        #[arg(long, default_value = "100", value_parser = parse_rate)]
        rate: Rate,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Mixed workload for the seed ruleset: scans, knocks, floods, pings, web, UDP
    Mix {
        /// Number of packets.
        #[arg(long)]
        count: u64,
        /// Packets per second.
        #[arg(long, default_value = "10000", value_parser = parse_rate)]
        rate: Rate,
        /// Number of sources (consecutive addresses from --src).
        #[arg(long, default_value_t = 1000)]
        sources: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
}

fn parse_secs(s: &str) -> Result<u64, String> {
    crate::trace::csv::parse_seconds(s).ok_or_else(|| format!("`{s}`: seconds, e.g. 2, 0.5 or 0.004"))
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    Rate::parse(s).ok_or_else(|| format!("`{s}`: packets per second above zero, e.g. 100 or 0.5"))
}

fn parse_iface(s: &str) -> Result<IfaceBuf, String> {
    IfaceBuf::new(s).ok_or_else(|| format!("`{s}`: interface names have at most 15 characters"))
}

fn parse_verdict(s: &str) -> Result<Verdict, String> {
    Verdict::parse(s).ok_or_else(|| format!("`{s}`: ACCEPT, DROP or REJECT"))
}

/// A seed for runs without `--seed`: the clock mixed with the process id. Only the CLI
/// reads clocks; the seed goes into the header, so the output is still reproducible.
fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    gen::SplitMix64::new(t as u64 ^ ((std::process::id() as u64) << 32)).next_u64() >> 1
}

fn spec(kind: GenKind) -> (Spec, Option<PathBuf>) {
    let (kind, c) = match kind {
        GenKind::Scan { ports, rate, order, repeat, common } => {
            let order = match order {
                OrderArg::Sequential => Order::Sequential,
                OrderArg::Random => Order::Random,
            };
            (Kind::Scan { ports, rate, order, repeat }, common)
        }
        GenKind::Synflood { rate, count, sources, dport, common } => {
            (Kind::SynFlood { rate, count, sources, dport }, common)
        }
        GenKind::Knock { ports, gap, mistake, then, window, common } => {
            let mistake = mistake.map(|m| match m {
                MistakeArg::WrongPort => Mistake::WrongPort,
                MistakeArg::OutOfOrder => Mistake::OutOfOrder,
                MistakeArg::TooSlow => Mistake::TooSlow,
            });
            (Kind::Knock { ports, gap_ns: gap, mistake, then, window_ns: window }, common)
        }
        GenKind::IcmpBurst { count, interval, common } => (Kind::IcmpBurst { count, interval_ns: interval }, common),
        GenKind::ManySources { count, dport, rate, common } => (Kind::ManySources { count, dport, rate }, common),
        GenKind::Mix { count, rate, sources, common } => (Kind::Mix { count, rate, sources }, common),
    };
    let common = Common {
        src: c.src,
        dst: c.dst,
        start_ns: c.start,
        iface: c.iface,
        expect: c.expect,
        seed: c.seed.unwrap_or_else(fresh_seed),
    };
    (Spec { kind, common }, c.output)
}

/// Runs `fwverify gen`.
pub fn run(args: GenArgs, stdout: &mut impl Write) -> anyhow::Result<u8> {
    let (spec, output) = spec(args.kind);
    if let Err(e) = spec.validate() {
        eprintln!("fwverify: gen: {e}");
        return Ok(super::exit::INVALID);
    }
    match output {
        Some(path) => {
            let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            let mut w = io::BufWriter::with_capacity(1 << 16, file);
            gen::write_csv(&spec, &mut w).with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let mut w = io::BufWriter::with_capacity(1 << 16, stdout);
            gen::write_csv(&spec, &mut w)?;
        }
    }
    Ok(super::exit::OK)
}
