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

impl<R: io::Read> RowSource for trace::pcap::PcapTrace<R> {
    fn next_row(&mut self) -> Result<Option<Row>, TraceError> {
        trace::pcap::PcapTrace::next_row(self)
    }
}

/// Replays every row of `src` through `engine`, pushing results to `obs`.
pub fn replay(engine: &mut Engine, src: &mut dyn RowSource, obs: &mut dyn Observer) -> Result<Summary, ReplayError> {
    let mut out = Outcome::default();
    let mut sum = Summary::default();
    let hz = engine.config().hz;
    // One row of lookahead, so that the engine can prefetch for it; a read error still
    // comes after every row before it has been stepped and observed.
    let mut cur = src.next_row()?;
    while let Some(mut row) = cur {
        let ahead = src.next_row();
        if let Ok(Some(next)) = &ahead {
            engine.prefetch(&next.pkt);
        }
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
        cur = ahead?;
    }
    obs.finish(engine, &sum)?;
    Ok(sum)
}

/// Rows read ahead per batch by [`replay_prefetched`].
const BATCH: usize = 1024;

/// [`replay`] with `src` read on a second thread: batches of 1,024 rows are parsed
/// while the engine steps through the previous ones, so on two cores reading and
/// simulating overlap. The same rows reach the engine in the same order, and the result
/// is [`replay`]'s; at most three batches are in flight (memory stays bounded), and their
/// buffers go back to the reader, so nothing is allocated per row once warm. A read error
/// arrives after the rows before it, as in [`replay`].
pub fn replay_prefetched<S: RowSource + Send>(
    engine: &mut Engine,
    src: &mut S,
    obs: &mut dyn Observer,
) -> Result<Summary, ReplayError> {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::sync_channel::<(Vec<Row>, Result<bool, TraceError>)>(1);
    let (back_tx, back_rx) = mpsc::channel::<Vec<Row>>();
    std::thread::scope(|scope| {
        scope.spawn(move || loop {
            let mut batch = back_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH));
            let mut status = Ok(true);
            while batch.len() < BATCH {
                match src.next_row() {
                    Ok(Some(r)) => batch.push(r),
                    Ok(None) => {
                        status = Ok(false);
                        break;
                    }
                    Err(e) => {
                        status = Err(e);
                        break;
                    }
                }
            }
            // Consumed from the end.
            batch.reverse();
            let more = matches!(status, Ok(true));
            // A closed channel: the replay stopped early (an observer's error).
            if tx.send((batch, status)).is_err() || !more {
                return;
            }
        });
        let mut rows = Prefetched { rx, back: back_tx, cur: Vec::new(), end: None };
        replay(engine, &mut rows, obs)
    })
}

/// The consuming side of [`replay_prefetched`].
struct Prefetched {
    rx: std::sync::mpsc::Receiver<(Vec<Row>, Result<bool, TraceError>)>,
    back: std::sync::mpsc::Sender<Vec<Row>>,
    /// The current batch, reversed.
    cur: Vec<Row>,
    /// How the input ended, once the last batch has arrived.
    end: Option<Result<(), TraceError>>,
}

impl RowSource for Prefetched {
    fn next_row(&mut self) -> Result<Option<Row>, TraceError> {
        loop {
            if let Some(r) = self.cur.pop() {
                return Ok(Some(r));
            }
            if let Some(end) = self.end.take() {
                self.end = Some(Ok(()));
                return end.map(|()| None);
            }
            let (batch, status) = self.rx.recv().expect("the reader sends until the end");
            let empty = std::mem::replace(&mut self.cur, batch);
            let _ = self.back.send(empty);
            match status {
                Ok(true) => {}
                Ok(false) => self.end = Some(Ok(())),
                Err(e) => self.end = Some(Err(e)),
            }
        }
    }
}

/// One rule on a packet's path, named as reports show it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathStep {
    /// Table.
    pub table: crate::model::TableName,
    /// Chain name.
    pub chain: String,
    /// 1-based position in the chain.
    pub rule: u32,
    /// 1-based line of the rule in the ruleset file.
    pub line: u32,
}

/// A packet the host sent in answer to a trace packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyRecord {
    /// Why it was sent.
    pub kind: crate::sim::host::ReplyKind,
    /// The packet (its `iface` id is meaningless here; see `iface`).
    pub pkt: crate::packet::Packet,
    /// The interface it left by.
    pub iface: String,
    /// Its fate in OUTPUT/POSTROUTING.
    pub verdict: Verdict,
}

/// What happened to one trace row, independent of the backend that computed it (the
/// simulator or the kernel): what `report` prints and the conformance check compares.
#[derive(Clone, Debug)]
pub struct PacketRecord {
    /// The trace row.
    pub row: Row,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the kernel dropped it before any rule, when known.
    pub stage: Option<&'static str>,
    /// Rules whose counters the packet (and then the host's replies) bumped.
    pub path: Vec<PathStep>,
    /// The host's replies.
    pub replies: Vec<ReplyRecord>,
}

impl PacketRecord {
    /// The record of a simulated packet.
    pub fn from_sim(row: &Row, out: &Outcome, engine: &Engine) -> PacketRecord {
        let path = out
            .path
            .iter()
            .map(|&r| {
                let i = &engine.program().info[r as usize];
                PathStep { table: i.table, chain: i.chain.clone(), rule: i.pos, line: i.span.line }
            })
            .collect();
        let replies = out
            .replies
            .iter()
            .map(|r| ReplyRecord {
                kind: r.why,
                pkt: r.pkt,
                iface: engine.ifaces.name(r.pkt.iface).to_string(),
                verdict: r.verdict,
            })
            .collect();
        let stage = match out.decided {
            crate::sim::Decided::Stage(s) => Some(s),
            _ => None,
        };
        PacketRecord { row: *row, verdict: out.verdict, stage, path, replies }
    }
}

/// One entry of a recent table at the end of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentRecord {
    /// Masked address.
    pub addr: std::net::IpAddr,
    /// Stamps held.
    pub hits: usize,
    /// Newest stamp, in seconds since the trace start.
    pub last_seen: f64,
}

/// Kernel state at the end of a trace, independent of the backend.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FinalRecord {
    /// Recent tables by name (sorted), entries sorted by address.
    pub recent: Vec<(String, Vec<RecentRecord>)>,
    /// Non-zero rule counters by `table:chain:pos` (sorted): (packets, bytes).
    pub counters: Vec<(String, (u64, u64))>,
}

impl FinalRecord {
    /// The final state of a simulation.
    pub fn from_sim(engine: &Engine) -> FinalRecord {
        let start = crate::sim::initial_jiffies(engine.config().hz);
        let hz = engine.config().hz as f64;
        let mut recent: Vec<(String, Vec<RecentRecord>)> = engine
            .recent_tables()
            .iter()
            .map(|t| {
                let mut entries: Vec<RecentRecord> = t
                    .entries()
                    .iter()
                    .map(|e| RecentRecord {
                        addr: e.addr,
                        hits: e.stamps.len(),
                        last_seen: (e.last_seen as f64 - start as f64) / hz,
                    })
                    .collect();
                entries.sort_by_key(|e| e.addr);
                (t.name.clone(), entries)
            })
            .collect();
        recent.sort_by(|a, b| a.0.cmp(&b.0));
        let mut counters: Vec<(String, (u64, u64))> = engine
            .counters
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| *p > 0)
            .map(|(i, &c)| {
                let info = &engine.program().info[i];
                (format!("{}:{}:{}", info.table, info.chain, info.pos), c)
            })
            .collect();
        counters.sort();
        FinalRecord { recent, counters }
    }
}

/// An observer that keeps every record, for comparing backends.
#[derive(Debug, Default)]
pub struct Collect {
    /// One record per row.
    pub packets: Vec<PacketRecord>,
    /// The final state.
    pub last: FinalRecord,
}

impl Observer for Collect {
    fn packet(&mut self, row: &Row, _now: Jiffies, out: &Outcome, engine: &Engine) -> io::Result<()> {
        self.packets.push(PacketRecord::from_sim(row, out, engine));
        Ok(())
    }
    fn finish(&mut self, engine: &Engine, _summary: &Summary) -> io::Result<()> {
        self.last = FinalRecord::from_sim(engine);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Ifaces, SimConfig};

    /// Records every row's number and verdict.
    struct Record(Vec<(u64, Verdict)>);

    impl Observer for Record {
        fn packet(&mut self, row: &Row, _now: Jiffies, out: &Outcome, _engine: &Engine) -> io::Result<()> {
            self.0.push((row.row, out.verdict));
            Ok(())
        }
    }

    /// Both replays of `csv` on the seed ruleset: what each observed and returned.
    fn both(csv: &str) -> [(Vec<(u64, Verdict)>, String); 2] {
        let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed/rules.v4")).unwrap();
        let parsed = crate::load(&rules);
        let cfg = SimConfig { listen: vec![(6, 22), (6, 80)], ..SimConfig::default() };
        [false, true].map(|prefetched| {
            let mut engine = Engine::new(&parsed.ruleset, cfg.clone(), Ifaces::default()).unwrap();
            let mut trace = trace::csv::CsvTrace::new("t.csv", csv.as_bytes()).unwrap();
            let mut obs = Record(Vec::new());
            let r = if prefetched {
                replay_prefetched(&mut engine, &mut trace, &mut obs)
            } else {
                replay(&mut engine, &mut trace, &mut obs)
            };
            (obs.0, format!("{r:?}"))
        })
    }

    #[test]
    fn prefetched_replay_is_the_same_replay() {
        // Several batches of a mixed trace, then the same with a bad row in the third
        // batch: the rows before it replay, then its error, in both.
        let mut csv = String::from("time,src,dst,proto,sport,dport,flags\n");
        for i in 0..3000u64 {
            let port = [22, 80, 1234, 2345, 3456, 21, 443][(i * 7 % 11 % 7) as usize];
            let flags = ["S", "A", "SA", "R"][(i % 4) as usize];
            csv.push_str(&format!(
                "{}.{:03},100.1.{}.{},192.0.2.1,tcp,{},{port},{flags}\n",
                i / 100,
                (i % 100) * 10,
                i % 3,
                i % 5 + 1,
                40000 + i
            ));
        }
        let [a, b] = both(&csv);
        assert_eq!(a.0.len(), 3000);
        assert_eq!(a, b);
        let bad: String = csv
            .lines()
            .enumerate()
            .map(|(i, l)| if i == 2500 { "1.0,bad\n".to_string() } else { format!("{l}\n") })
            .collect();
        let [a, b] = both(&bad);
        assert_eq!(a.0.len(), 2499, "{}", a.1);
        assert!(a.1.contains("line: 2501"), "{}", a.1);
        assert_eq!(a, b);
    }
}
