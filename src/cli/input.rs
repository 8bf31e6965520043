//! Opening a scenario for `check --scenario`: scenario CSV or a pcap/pcapng capture (told
//! apart by the magic number, whatever the extension says), with a progress bar on
//! stderr for long traces when stderr is a terminal.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressBarIter, ProgressDrawTarget, ProgressStyle};

use crate::check::RowSource;
use crate::trace::csv::CsvTrace;
use crate::trace::pcap::{self, PcapTrace};
use crate::trace::{IfaceBuf, Row, TraceError};

/// Files smaller than this replay in well under a second: no progress bar.
const PROGRESS_MIN_BYTES: u64 = 8 << 20;

type Input = ProgressBarIter<File>;

/// An open trace of either kind (one per scenario, so the size difference is of no matter).
#[allow(clippy::large_enum_variant)]
pub(super) enum Trace {
    Csv(Box<CsvTrace<Input>>),
    Pcap(Box<PcapTrace<Input>>),
}

impl RowSource for Trace {
    fn next_row(&mut self) -> Result<Option<Row>, TraceError> {
        match self {
            Trace::Csv(t) => t.next_row(),
            Trace::Pcap(t) => t.next_row(),
        }
    }
}

/// A trace being replayed, and its progress bar.
pub(super) struct Opened {
    pub trace: Trace,
    bar: ProgressBar,
}

/// Opens `path` (shown as `name`). `progress` allows a bar when stderr is a terminal
/// and the file is large; packets of captures arrive on `iface`.
pub(super) fn open(path: &Path, name: &str, iface: IfaceBuf, progress: bool) -> anyhow::Result<Opened> {
    let mut file = File::open(path).with_context(|| format!("reading {name}"))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut head = [0u8; 4];
    let got = file.read(&mut head).with_context(|| format!("reading {name}"))?;
    let magic = pcap::sniff(&head[..got]);
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if magic.is_none() && matches!(ext.as_deref(), Some("pcap" | "pcapng" | "cap")) {
        anyhow::bail!("{name}: not a pcap or pcapng capture (bad magic number)");
    }
    let file = File::open(path).with_context(|| format!("reading {name}"))?;
    let bar = if progress && len >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(name.to_string());
        bar
    } else {
        ProgressBar::hidden()
    };
    let input = bar.wrap_read(file);
    let trace = match magic {
        Some(_) => Trace::Pcap(Box::new(PcapTrace::new(name, input, iface)?)),
        None => Trace::Csv(Box::new(CsvTrace::new(name, input)?)),
    };
    Ok(Opened { trace, bar })
}

impl Opened {
    /// Clears the bar and reports skipped frames on stderr (never silently).
    pub(super) fn finish(self, name: &str) {
        self.bar.finish_and_clear();
        if let Trace::Pcap(t) = &self.trace {
            let s = t.skipped();
            let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            if s.non_ip > 0 {
                eprintln!("fwverify: {name}: skipped {} (not IP)", plural(s.non_ip, "frame"));
            }
            if s.fragments > 0 {
                eprintln!(
                    "fwverify: {name}: skipped {} (the simulator does not reassemble)",
                    plural(s.fragments, "IP fragment")
                );
            }
        }
    }
}
