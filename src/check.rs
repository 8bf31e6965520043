//! Replaying traces: rows from a trace go through the engine, results are pushed to an
//! [`Observer`] (ripgrep's sink model). `report` has the observers that print.

use std::io;

use crate::sim::{Engine, Jiffies, Outcome, Verdict};
use crate::trace::{self, Row, TraceError};

/// Receives each packet's result as it is produced.
pub trait Observer {
    /// One trace row and what happened to it.
    fn packet(&mut self, row: &Row, now: Jiffies, out: &Outcome, engine: &Engine) -> io::Result<()>;
    /// After the last row.
    fn finish(&mut self, _engine: &Engine, _summary: &Summary) -> io::Result<()> {
        Ok(())
    }
}

/// Totals of one replay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Packets replayed.
    pub packets: u64,
    /// Accepted.
    pub accepted: u64,
    /// Dropped.
    pub dropped: u64,
    /// Rejected.
    pub rejected: u64,
    /// Rows whose `expect` did not hold: (row, line, expected, got).
    pub failures: Vec<(u64, u64, Verdict, Verdict)>,
    /// Rows with an `expect`.
    pub checked: u64,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The trace is malformed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// Writing output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A packet's family differs from the ruleset's.
    #[error("{0}")]
    Family(String),
}

/// A source of rows.
pub trait RowSource {
    /// The next row.
    fn next_row(&mut self) -> Result<Option<Row>, TraceError>;
}

impl<R: io::Read> RowSource for trace::csv::CsvTrace<R> {
    fn next_row(&mut self) -> Result<Option<Row>, TraceError> {
        trace::csv::CsvTrace::next_row(self)
    }
}

/// Replays every row of `src` through `engine`, pushing results to `obs`.
pub fn replay(engine: &mut Engine, src: &mut dyn RowSource, obs: &mut dyn Observer) -> Result<Summary, ReplayError> {
    let mut out = Outcome::default();
    let mut sum = Summary::default();
    let hz = engine.config().hz;
    while let Some(mut row) = src.next_row()? {
        row.pkt.iface = engine.iface(row.iface.as_str());
        let now = trace::to_jiffies(row.time_ns, hz);
        engine.step(now, &row.pkt, &mut out);
        sum.packets += 1;
        match out.verdict {
            Verdict::Accept => sum.accepted += 1,
            Verdict::Drop => sum.dropped += 1,
            Verdict::Reject => sum.rejected += 1,
        }
        if let Some(e) = row.expect {
            sum.checked += 1;
            if e != out.verdict {
                sum.failures.push((row.row, row.line, e, out.verdict));
            }
        }
        obs.packet(&row, now, &out, engine)?;
    }
    obs.finish(engine, &sum)?;
    Ok(sum)
}
