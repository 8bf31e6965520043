//! `check --backend kernel` and `conform`: wiring the kernel backend (`crate::kernel`) to
//! scenario files, output formats and exit codes.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{exit, input, Format, SimArgs};
use crate::check::{Collect, PacketRecord, RowSource};
use crate::diag::SourceFile;
use crate::kernel::{self, KernelError, KernelRun};
use crate::report::{describe, JsonReport};
use crate::trace::{seconds, Row, TraceError};

/// Deletes the backend's namespaces on Ctrl-C and SIGTERM, then exits with 130.
fn install_cleanup() {
    // A second call in one process fails harmlessly: the handler is already there.
    let _ = ctrlc::set_handler(|| {
        kernel::cleanup_all();
        eprintln!("fwverify: interrupted; network namespaces removed");
        std::process::exit(130);
    });
}

/// Rows of a scenario already in memory.
struct Rows<'a>(std::slice::Iter<'a, Row>);

impl RowSource for Rows<'_> {
    fn next_row(&mut self) -> Result<Option<Row>, TraceError> {
        Ok(self.0.next().copied())
    }
}

/// Reads every row of a scenario (the kernel replays in real time, so a scenario is small
/// next to what it costs to replay). `Ok(Err(_))` is a bad trace.
fn read_rows(path: &std::path::Path, name: &str, sim: &SimArgs) -> anyhow::Result<Result<Vec<Row>, TraceError>> {
    let mut opened = input::open(path, name, sim.iface, false)?;
    let mut rows = Vec::new();
    loop {
        match opened.trace.next_row() {
            Ok(Some(r)) => rows.push(r),
            Ok(None) => break,
            Err(e) => return Ok(Err(e)),
        }
    }
    opened.finish(name);
    Ok(Ok(rows))
}

/// Prints a kernel error; `Err` only for output errors (a closed pipe).
fn kernel_failed(e: KernelError) -> anyhow::Result<u8> {
    match e {
        KernelError::Output(e) => Err(e.into()),
        e => {
            eprintln!("fwverify: {e}");
            Ok(exit::INVALID)
        }
    }
}

fn print_notes(name: &str, run: &KernelRun) {
    for n in &run.notes {
        eprintln!("fwverify: note: {name}: {n}");
    }
}

fn text_row(out: &mut impl Write, rec: &PacketRecord) -> io::Result<()> {
    let row = &rec.row;
    let mark = match row.expect {
        Some(e) if e != rec.verdict => format!("  FAIL: expected {}", e.as_str()),
        _ => String::new(),
    };
    let path: Vec<String> = rec.path.iter().map(|s| format!("{} {} #{}", s.table, s.chain, s.rule)).collect();
    writeln!(
        out,
        "{:>5} {:>10.3}  {:<52} {:<7} {}{mark}",
        row.row,
        seconds(row.time_ns),
        describe(&row.pkt, row.iface.as_str()),
        rec.verdict.as_str(),
        if path.is_empty() { "no rule counted".to_string() } else { path.join(", ") },
    )?;
    for r in &rec.replies {
        writeln!(
            out,
            "{:>5} {:>10}  {:<52} {:<7} host {}",
            "",
            "",
            format!("< {}", describe(&r.pkt, &r.iface)),
            "",
            r.kind.as_str()
        )?;
    }
    Ok(())
}

/// `check RULES --scenario … --backend kernel`.
pub(super) fn check(
    file: &SourceFile,
    parsed: &crate::Parsed,
    scenarios: &[PathBuf],
    sim: &SimArgs,
    format: Format,
    stdout: &mut impl Write,
) -> anyhow::Result<u8> {
    install_cleanup();
    if let Err(e) = kernel::check_prerequisites(parsed.ruleset.family()) {
        return kernel_failed(e);
    }
    let cfg = sim.config();
    let mut json = (format == Format::Json).then(|| JsonReport::new(io::BufWriter::new(&mut *stdout)));
    let mut out = io::BufWriter::new(io::stdout());
    if let Some(j) = json.as_mut() {
        j.begin()?;
    }
    let mut failed = false;
    for path in scenarios {
        let name = path.display().to_string();
        let rows = match read_rows(path, &name, sim)? {
            Ok(r) => r,
            Err(e) => {
                eprintln!("fwverify: {e}");
                return Ok(exit::INVALID);
            }
        };
        if let Some(j) = json.as_mut() {
            j.scenario(&name)?;
        } else if format == Format::Text {
            writeln!(out, "{name} (kernel):")?;
            writeln!(out, "{:>5} {:>10}  {:<52} {:<7} rules counted (unordered)", "row", "time", "packet", "verdict")?;
        }
        let (mut packets, mut fails) = (0u64, Vec::new());
        let run = kernel::replay(&parsed.ruleset, file.text(), &rows, &cfg, &mut |rec| {
            packets += 1;
            if let Some(e) = rec.row.expect.filter(|e| *e != rec.verdict) {
                fails.push((rec.row.row, rec.row.line, e, rec.verdict));
            }
            match json.as_mut() {
                Some(j) => j.write_packet(rec),
                None if format == Format::Text => {
                    text_row(&mut out, rec)?;
                    out.flush()
                }
                None => Ok(()),
            }
        });
        let run = match run {
            Ok(r) => r,
            Err(e) => return kernel_failed(e),
        };
        out.flush()?;
        print_notes(&name, &run);
        match json.as_mut() {
            Some(j) => j.write_final(&run.last)?,
            None => {
                writeln!(out, "{name} (kernel): {packets} packets; {} failed expectation(s)", fails.len())?;
                for (row, line, e, got) in &fails {
                    writeln!(out, "  FAIL {name}:{line}: row {row}: expected {}, got {}", e.as_str(), got.as_str())?;
                }
            }
        }
        failed |= !fails.is_empty();
    }
    if let Some(mut j) = json {
        j.end()?;
    }
    out.flush()?;
    Ok(if failed { exit::FAILED } else { exit::OK })
}

/// `conform RULES --scenario …`: the simulator and the kernel on the same scenarios.
pub(super) fn conform(
    file: &SourceFile,
    parsed: &crate::Parsed,
    scenarios: &[PathBuf],
    sim: &SimArgs,
    stdout: &mut impl Write,
) -> anyhow::Result<u8> {
    install_cleanup();
    if scenarios.is_empty() {
        eprintln!("fwverify: conform needs at least one --scenario");
        return Ok(exit::INVALID);
    }
    if let Err(e) = kernel::check_prerequisites(parsed.ruleset.family()) {
        return kernel_failed(e);
    }
    let cfg = sim.config();
    let mut total = 0usize;
    for path in scenarios {
        let name = path.display().to_string();
        let rows = match read_rows(path, &name, sim)? {
            Ok(r) => r,
            Err(e) => {
                eprintln!("fwverify: {e}");
                return Ok(exit::INVALID);
            }
        };
        let mut engine = match crate::sim::Engine::new(&parsed.ruleset, cfg.clone(), crate::sim::Ifaces::default()) {
            Ok(e) => e,
            Err(errs) => {
                for e in &errs {
                    eprintln!("fwverify: {}: cannot simulate {}", file.location(e.span), e.what);
                }
                return Ok(exit::INVALID);
            }
        };
        let mut sim_out = Collect::default();
        if let Err(e) = crate::check::replay(&mut engine, &mut Rows(rows.iter()), &mut sim_out) {
            eprintln!("fwverify: {e}");
            return Ok(exit::INVALID);
        }
        let mut kern: Vec<PacketRecord> = Vec::with_capacity(rows.len());
        let run = kernel::replay(&parsed.ruleset, file.text(), &rows, &cfg, &mut |rec| {
            kern.push(rec.clone());
            Ok(())
        });
        let run = match run {
            Ok(r) => r,
            Err(e) => return kernel_failed(e),
        };
        stdout.flush()?;
        print_notes(&name, &run);
        let diffs =
            kernel::conform::compare(&sim_out.packets, &sim_out.last, &kern, &run.last, run.hz, run.max_late_ns);
        for d in &diffs {
            writeln!(stdout, "{name}: {d}")?;
        }
        writeln!(
            stdout,
            "{name}: {} rows: {} disagreement{}",
            rows.len(),
            diffs.len(),
            if diffs.len() == 1 { "" } else { "s" }
        )?;
        total += diffs.len();
    }
    stdout.flush()?;
    Ok(if total == 0 { exit::OK } else { exit::FAILED })
}
