//! The command line: clap definitions, opening files, choosing output, exit codes.
//! Everything else lives in the library modules; this one only wires them.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

mod gen;
mod input;
mod kernel;
mod prove;
mod query;

use crate::diag::{self, RenderOptions, SourceFile};
use crate::model::{PrintOptions, SavePrinter};

/// Exit codes (documented in `--help` and the README).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A check failed (expectation, lint error, property falsified).
    pub const FAILED: u8 = 1;
    /// Invalid input or usage.
    pub const INVALID: u8 = 2;
    /// Unknown (solver gave up), with the reason.
    pub const UNKNOWN: u8 = 3;
}

const AFTER_HELP: &str = "\
Examples:
  fwverify check rules.v4                       validate a ruleset like iptables-restore --test
  fwverify fmt rules.v4                         print it as iptables-save would after loading
  fwverify graph rules.v4 | dot -Tsvg > g.svg   draw the chain graph
  fwverify check rules.v4 --scenario scenarios/portscan.csv

Exit status: 0 success, 1 a check failed, 2 invalid input or usage, 3 unknown.";

/// fwverify: a simulator and verifier for iptables rulesets.
#[derive(Parser, Debug)]
#[command(name = "fwverify", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// When to use colour and Unicode in diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Colour choice.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    /// Colour when stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Output formats of `check`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table of every packet, then a summary.
    Text,
    /// Only the summary and the failed expectations.
    Summary,
    /// The JSON document described in the README.
    Json,
}

/// Who computes the verdicts of `check --scenario`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The simulator.
    Sim,
    /// The real kernel, in a throwaway network namespace (root only; real time).
    Kernel,
}

/// How the simulated host is set up.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// The host's addresses (comma-separated). Without it every destination is the host's.
    #[arg(long, value_delimiter = ',')]
    pub host: Vec<std::net::IpAddr>,
    /// Open sockets, e.g. `tcp:22,tcp:80,udp:53`.
    #[arg(long, value_delimiter = ',', value_parser = parse_listen)]
    pub listen: Vec<(u8, u16)>,
    /// Forward packets that are not for the host (ip_forward=1).
    #[arg(long)]
    pub forward: bool,
    /// Kernel timer frequency.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(24..=10000))]
    pub hz: u32,
    /// xt_recent's ip_list_tot (entries per recent table).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ip_list_tot: u32,
    /// xt_recent's ip_pkt_list_tot (0 = unset).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=65535))]
    pub ip_pkt_list_tot: u32,
    /// Interface the packets of a pcap/pcapng capture arrive on.
    #[arg(long, default_value = "eth0", value_parser = parse_iface)]
    pub iface: crate::trace::IfaceBuf,
    /// nf_conntrack_max: connections the simulated table holds; when full, `early_drop`
    /// evicts connections that are not ASSURED or the new packet is dropped (simulator
    /// only: the kernel backend runs with the machine's value, read-only in a namespace).
    #[arg(long, default_value_t = crate::sim::CONNTRACK_MAX, value_parser = clap::value_parser!(u32).range(1..=(1 << 30)))]
    pub conntrack_max: u32,
}

fn parse_iface(s: &str) -> Result<crate::trace::IfaceBuf, String> {
    crate::trace::IfaceBuf::new(s).ok_or_else(|| format!("`{s}`: interface names have at most 15 characters"))
}

fn parse_listen(s: &str) -> Result<(u8, u16), String> {
    let (p, port) = s.split_once(':').ok_or_else(|| format!("`{s}`: write PROTO:PORT, e.g. tcp:22"))?;
    let p = match p.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        _ => return Err(format!("`{s}`: protocol must be tcp or udp")),
    };
    let port = port.parse::<u16>().map_err(|_| format!("`{s}`: port must be 0-65535"))?;
    Ok((p, port))
}

impl SimArgs {
    fn config(&self) -> crate::sim::SimConfig {
        crate::sim::SimConfig {
            hz: self.hz,
            ip_list_tot: self.ip_list_tot as usize,
            ip_pkt_list_tot: self.ip_pkt_list_tot,
            hosts: self.host.clone(),
            listen: self.listen.clone(),
            forward: self.forward,
            conntrack_max: self.conntrack_max,
            ..crate::sim::SimConfig::default()
        }
    }
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a ruleset (and replay scenarios through it)
    #[command(
        after_help = "Examples:\n  fwverify check rules.v4\n  fwverify check rules.v4 --scenario scenarios/portscan.csv"
    )]
    Check {
        /// The iptables-save file.
        rules: PathBuf,
        /// Packet traces to replay (scenario CSV, or a pcap/pcapng capture); may be given
        /// several times.
        #[arg(long)]
        scenario: Vec<PathBuf>,
        /// Simulation options.
        #[command(flatten)]
        sim: SimArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Replay through the simulator or the real kernel (root only).
        #[arg(long, value_enum, default_value_t = Backend::Sim)]
        backend: Backend,
    },
    /// Replay scenarios through the simulator and the real kernel, list every difference
    #[command(
        after_help = "Runs each scenario in real time in a throwaway network namespace (root only) and compares\nverdicts, paths (as multisets), replies, recent tables and counters.\n\nExample:\n  sudo fwverify conform rules.v4 --scenario scenarios/portscan.csv --listen tcp:22,tcp:80,tcp:443\n\nExit status: 0 no difference, 1 differences, 2 invalid input or the kernel backend cannot run."
    )]
    Conform {
        /// The iptables-save file.
        rules: PathBuf,
        /// Packet traces to replay (scenario CSV, or a pcap/pcapng capture).
        #[arg(long, required = true)]
        scenario: Vec<PathBuf>,
        /// Simulation options (the kernel gets the same addresses, sockets and forwarding).
        #[command(flatten)]
        sim: SimArgs,
    },
    /// Report suspicious constructs (shadowed rules, knock ordering, …)
    Lint {
        /// The iptables-save file.
        rules: PathBuf,
    },
    /// Print a ruleset canonically, exactly as iptables-save would after loading it
    #[command(after_help = "Examples:\n  fwverify fmt rules.v4\n  fwverify fmt --counters rules.v4 > canonical.v4")]
    Fmt {
        /// The iptables-save file.
        rules: PathBuf,
        /// Print counters, like `iptables-save -c` after `iptables-restore -c`.
        #[arg(long, short = 'c')]
        counters: bool,
    },
    /// Print the chain graph as Graphviz DOT
    #[command(after_help = "Example:\n  fwverify graph rules.v4 | dot -Tsvg > chains.svg")]
    Graph {
        /// The iptables-save file.
        rules: PathBuf,
    },
    /// Compare two rulesets semantically
    Diff {
        /// The old ruleset.
        old: PathBuf,
        /// The new ruleset.
        new: PathBuf,
    },
    /// Plot blacklist growth and verdicts over time
    Plot {
        /// The iptables-save file.
        rules: PathBuf,
        /// Scenario to replay.
        #[arg(long)]
        scenario: Vec<PathBuf>,
    },
    /// Generate packet scenarios (scans, floods, knocks)
    Gen(gen::GenArgs),
    /// List the packet classes that get a verdict; unreachable and shadowed rules
    Query(query::QueryArgs),
    /// Prove or refute a property over every attacker trace up to K packets
    Prove(prove::ProveArgs),
    /// Print shell completions
    #[command(after_help = "Example:\n  fwverify completions bash > /etc/bash_completion.d/fwverify")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::INVALID } else { exit::OK });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if io.kind() == io::ErrorKind::BrokenPipe {
                    return ExitCode::from(exit::OK);
                }
            }
            eprintln!("fwverify: {e:#}");
            ExitCode::from(exit::INVALID)
        }
    }
}

fn fancy(color: Color) -> bool {
    match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// Reads and loads a ruleset, printing its diagnostics to stderr. `None` when it has errors.
fn load_file(path: &Path, color: Color) -> anyhow::Result<Option<(SourceFile, crate::Parsed)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let b = e.into_bytes();
            let line = b[..good].iter().filter(|&&c| c == b'\n').count() + 1;
            let col = good - b[..good].iter().rposition(|&c| c == b'\n').map(|p| p + 1).unwrap_or(0) + 1;
            anyhow::bail!("{}:{line}:{col}: file is not valid UTF-8", path.display());
        }
    };
    let file = SourceFile::new(path.display().to_string(), text);
    // `rules.v4` / `rules.v6` (the iptables-persistent names) say which tool loads the file.
    let family = match path.extension().and_then(|e| e.to_str()) {
        Some("v4") => Some(crate::model::Family::V4),
        Some("v6") => Some(crate::model::Family::V6),
        _ => None,
    };
    let parsed = crate::load_as(file.text(), family);
    if !parsed.diagnostics.is_empty() {
        let out = diag::render(&parsed.diagnostics, &file, RenderOptions { fancy: fancy(color) }, 50);
        eprint!("{out}");
    }
    if parsed.has_errors() {
        let n = parsed.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!(
            "fwverify: {}: {n} error{}; iptables-restore would not load this file",
            file.name(),
            if n == 1 { "" } else { "s" }
        );
        return Ok(None);
    }
    Ok(Some((file, parsed)))
}

fn not_yet(what: &str, issue: u32) -> anyhow::Result<u8> {
    eprintln!("fwverify: `{what}` is not available yet (planned in issue #{issue})");
    Ok(exit::INVALID)
}

fn check_scenarios(
    file: &SourceFile,
    parsed: &crate::Parsed,
    scenarios: &[PathBuf],
    sim: &SimArgs,
    format: Format,
    stdout: &mut impl Write,
) -> anyhow::Result<u8> {
    use crate::check::replay_prefetched;
    use crate::report::{JsonReport, TextReport};
    let mut failed = false;
    let mut json = (format == Format::Json).then(|| JsonReport::new(io::BufWriter::new(&mut *stdout)));
    if let Some(j) = json.as_mut() {
        j.begin()?;
    }
    let mut text_out = io::BufWriter::new(io::stdout());
    for path in scenarios {
        let mut engine = match crate::sim::Engine::new(&parsed.ruleset, sim.config(), crate::sim::Ifaces::default()) {
            Ok(e) => e,
            Err(errs) => {
                for e in &errs {
                    eprintln!("fwverify: {}: cannot simulate {}", file.location(e.span), e.what);
                    eprintln!("  {}", file.line_text(e.span.line as usize));
                }
                eprintln!(
                    "fwverify: {} rule(s) use features the simulator does not model; no verdicts were computed",
                    errs.len()
                );
                return Ok(exit::INVALID);
            }
        };
        let name = path.display().to_string();
        let progress = format != Format::Text || !io::stdout().is_terminal();
        let mut opened = input::open(path, &name, sim.iface, progress)?;
        let summary = match json.as_mut() {
            Some(j) => {
                j.scenario(&name)?;
                replay_prefetched(&mut engine, &mut opened.trace, j)
            }
            None => {
                let mut t = TextReport::new(&mut text_out, file, &name, format == Format::Text);
                replay_prefetched(&mut engine, &mut opened.trace, &mut t)
            }
        };
        opened.finish(&name);
        let summary = match summary {
            Ok(s) => s,
            Err(crate::check::ReplayError::Io(e)) => return Err(e.into()),
            Err(e) => {
                text_out.flush()?;
                eprintln!("fwverify: {e}");
                return Ok(exit::INVALID);
            }
        };
        if !summary.failures.is_empty() {
            failed = true;
        }
    }
    if let Some(mut j) = json {
        j.end()?;
    }
    text_out.flush()?;
    Ok(if failed { exit::FAILED } else { exit::OK })
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let color = cli.color;
    let mut stdout = io::stdout().lock();
    match cli.command {
        Command::Check { rules, scenario, sim, format, backend } => {
            let Some((file, parsed)) = load_file(&rules, color)? else { return Ok(exit::INVALID) };
            if !scenario.is_empty() && backend == Backend::Kernel {
                return kernel::check(&file, &parsed, &scenario, &sim, format, &mut stdout);
            }
            if !scenario.is_empty() {
                return check_scenarios(&file, &parsed, &scenario, &sim, format, &mut stdout);
            }
            let rs = &parsed.ruleset;
            let chains: usize = rs.tables.iter().map(|t| t.chains.len()).sum();
            let warnings = parsed.diagnostics.len();
            writeln!(
                stdout,
                "{}: ok: {} table{}, {chains} chains, {} rules, {warnings} warning{}",
                file.name(),
                rs.tables.len(),
                if rs.tables.len() == 1 { "" } else { "s" },
                rs.rule_count(),
                if warnings == 1 { "" } else { "s" }
            )?;
            Ok(exit::OK)
        }
        Command::Fmt { rules, counters } => {
            let Some((_, parsed)) = load_file(&rules, color)? else { return Ok(exit::INVALID) };
            write!(stdout, "{}", SavePrinter { ruleset: &parsed.ruleset, options: PrintOptions { counters } })?;
            Ok(exit::OK)
        }
        Command::Graph { rules } => {
            let Some((_, parsed)) = load_file(&rules, color)? else { return Ok(exit::INVALID) };
            write!(stdout, "{}", crate::graph::ChainGraph::build(&parsed.ruleset).to_dot())?;
            Ok(exit::OK)
        }
        Command::Conform { rules, scenario, sim } => {
            let Some((file, parsed)) = load_file(&rules, color)? else { return Ok(exit::INVALID) };
            kernel::conform(&file, &parsed, &scenario, &sim, &mut stdout)
        }
        Command::Lint { .. } => not_yet("lint", 4),
        Command::Diff { .. } => not_yet("diff", 4),
        Command::Plot { .. } => not_yet("plot", 3),
        Command::Gen(args) => gen::run(args, &mut stdout),
        Command::Prove(args) => {
            let Some((_, parsed)) = load_file(&args.rules, color)? else { return Ok(exit::INVALID) };
            prove::run(&args, &parsed, color, &mut stdout)
        }
        Command::Query(args) => {
            let Some((file, parsed)) = load_file(&args.rules, color)? else { return Ok(exit::INVALID) };
            query::run(&args, &file, &parsed, &mut stdout)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "fwverify", &mut stdout);
            Ok(exit::OK)
        }
    }
}
