//! `fwverify prove`: bounded model checking of properties, with replayed witnesses.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use super::exit;
use crate::diag::{self, RenderOptions, SourceFile};
use crate::verify::property::{parse_file, parse_property, Property};
use crate::verify::prove::{prove, Answer, ProveOptions, DEFAULT_K};
use crate::verify::VerifyError;

/// Arguments of `fwverify prove`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Properties (one per --prop, or one per line of a --props file, `#` comments):
  possible ACCEPT tcp dport 22                  a trace of at most K packets from one source
                                                ends with the goal packet accepted
  never ACCEPT tcp dport 22 ctstate INVALID     no such trace exists
  … within 60s                                  the trace lasts at most 60 s
  at most 3 ACCEPT tcp dport 22 ctstate NEW within 60s
                                                no trace has 4 such accepted packets within
                                                60 s (K is raised to N+1 at least)
  possible ACCEPT tcp dport 22 from blacklisted the attacker starts in recent table
                                                `blacklist` (`from in NAME`: table NAME);
                                                the witness begins with `prefix` rows that
                                                put it there

Attackers (`under …`):
  any (default)   every field of every packet and every gap symbolic, one source address;
                  results are bounded (`PROVED up to K packets`, `IMPOSSIBLE up to K
                  packets`), or `PROVED (unbounded)` when a search that summarises any
                  number of further packets between K exact ones (`at most N`: between
                  the N+1 counted ones) finds no trace either
  sources N       the same with N cooperating addresses (recent tables per address; the
                  answer says why no entry can be evicted within K packets)
  scan [rate LO-HI]
                  a sequential TCP SYN scan (consecutive destination ports ascending from
                  any first port, any length up to all 65,535, one constant rate, by
                  default any) and then the goal packet; answers hold for every such scan
                  (`PROVED (unbounded)`); a counterexample is the whole scan, with its rate
                  and the threshold rate
  flood           TCP SYNs to distinct ports in any order at one constant rate, then the
                  goal packet; a witness is the shortest such flood, `PROVED (unbounded)`
                  covers floods of any length
 Witness packets are ones a real
host delivers (a non-special source other than the destination, a --host address or one
fixed unicast destination, eth0, TCP SYN, TTL 64 where the rules allow). Every witness is
replayed through the simulator before it is printed.

Examples:
  fwverify prove rules.v4 --prop 'possible ACCEPT tcp dport 22' --counterexample knock.csv
  fwverify prove rules.v4 --prop 'never ACCEPT tcp dport 22 ctstate INVALID' --k 8
  fwverify prove rules.v4 --prop 'never ACCEPT tcp dport 22 under scan'

Exit status: 0 every property holds (never: proved up to K; possible: witness found), 1 one
does not, 2 invalid input, 3 unknown.")]
pub struct ProveArgs {
    /// The iptables-save file.
    pub rules: PathBuf,
    /// A property (may be repeated).
    #[arg(long)]
    pub prop: Vec<String>,
    /// A file of properties, one per line.
    #[arg(long)]
    pub props: Option<PathBuf>,
    /// Largest number of packets in a trace (goal packet included).
    #[arg(long, default_value_t = DEFAULT_K as u32, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub k: u32,
    /// The host's addresses (comma-separated); default: every destination is the host's.
    #[arg(long, value_delimiter = ',')]
    pub host: Vec<IpAddr>,
    /// Open sockets for the replay, e.g. `tcp:22,udp:53`.
    #[arg(long, value_delimiter = ',', value_parser = super::parse_listen)]
    pub listen: Vec<(u8, u16)>,
    /// Write the witness (scenario CSV) here; with several properties, `-N` is added
    /// before the extension for the N-th.
    #[arg(long)]
    pub counterexample: Option<PathBuf>,
}

fn numbered(path: &std::path::Path, i: usize, total: usize) -> PathBuf {
    if total <= 1 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(e) => format!("{stem}-{}.{}", i + 1, e.to_string_lossy()),
        None => format!("{stem}-{}", i + 1),
    };
    path.with_file_name(name)
}

/// Runs `fwverify prove` on a loaded ruleset.
pub(super) fn run(
    a: &ProveArgs,
    parsed: &crate::Parsed,
    color: super::Color,
    out: &mut impl Write,
) -> anyhow::Result<u8> {
    let mut props: Vec<Property> = Vec::new();
    for (i, p) in a.prop.iter().enumerate() {
        match parse_property(p, 0, 1) {
            Ok(p) => props.push(p),
            Err(d) => {
                let f = SourceFile::new(format!("--prop #{}", i + 1), p.clone());
                eprint!("{}", diag::render(&[d], &f, RenderOptions { fancy: super::fancy(color) }, 10));
                return Ok(exit::INVALID);
            }
        }
    }
    if let Some(path) = &a.props {
        let text = std::fs::read_to_string(path)?;
        let (ps, diags) = parse_file(&text);
        if !diags.is_empty() {
            let f = SourceFile::new(path.display().to_string(), text.clone());
            eprint!("{}", diag::render(&diags, &f, RenderOptions { fancy: super::fancy(color) }, 50));
            return Ok(exit::INVALID);
        }
        props.extend(ps);
    }
    if props.is_empty() {
        eprintln!("fwverify: give a property with --prop '…' or --props FILE");
        return Ok(exit::INVALID);
    }
    let opts = ProveOptions { k: a.k as usize, hosts: a.host.clone(), listen: a.listen.clone() };
    let mut worst = exit::OK;
    let total = props.len();
    for (i, p) in props.iter().enumerate() {
        let r = match prove(&parsed.ruleset, p, &opts) {
            Ok(r) => r,
            Err(VerifyError::Input(e)) => {
                eprintln!("fwverify: {e}");
                return Ok(exit::INVALID);
            }
            Err(e) => {
                writeln!(out, "{}: UNKNOWN: {e}", p.text)?;
                worst = worst.max(exit::UNKNOWN);
                continue;
            }
        };
        writeln!(out, "{}: {}", p.text, r.headline(p.quant))?;
        if let Answer::Witness(w) = &r.answer {
            writeln!(out, "  replayed through the simulator: every verdict agrees")?;
            for i in &r.info {
                writeln!(out, "  {i}")?;
            }
            // Long witnesses (scans): the header, the first and the last rows.
            let lines: Vec<&str> = w.csv.lines().collect();
            if lines.len() <= 41 {
                for line in &lines {
                    writeln!(out, "  {line}")?;
                }
            } else {
                for line in &lines[..11] {
                    writeln!(out, "  {line}")?;
                }
                writeln!(out, "  … {} more rows (all in the --counterexample file) …", lines.len() - 21)?;
                for line in &lines[lines.len() - 10..] {
                    writeln!(out, "  {line}")?;
                }
            }
            if let Some(path) = &a.counterexample {
                let path = numbered(path, i, total);
                std::fs::write(&path, &w.csv)?;
                writeln!(out, "  written to {}", path.display())?;
            }
        }
        if let Answer::NoneAtAll(scope) = &r.answer {
            writeln!(out, "  unbounded: {scope}")?;
            for i in &r.info {
                writeln!(out, "  {i}")?;
            }
        }
        if let Answer::NoneUpTo(k) = r.answer {
            let from = match p.attacker {
                crate::verify::property::Attacker::Sources(n) if n > 1 => format!("from up to {n} cooperating sources"),
                _ => "from one source".to_string(),
            };
            writeln!(
                out,
                "  bounded: traces of at most {k} packets {from}; conntrack: a packet is the first of its \
                 connection unless an earlier one of the same connection was accepted",
            )?;
            for i in &r.info {
                writeln!(out, "  {i}")?;
            }
        }
        for n in &r.notes {
            writeln!(out, "  over-approximated: {n}")?;
        }
        let code = r.exit_code(p.quant);
        // UNKNOWN (3) outranks FAILED (1).
        worst = worst.max(code);
    }
    Ok(worst)
}
