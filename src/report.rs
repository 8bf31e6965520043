//! Printing results: the per-packet table, the summary, and the JSON document
//! (`--format json`). Observers write to any `impl Write`.
//!
//! JSON shape: `{"scenarios":[{"file":…,"packets":[{"row":1,"time":0.0,"verdict":"DROP",
//! "path":[{"table":"filter","chain":"INPUT","rule":5,"line":17}],"expect":"DROP","ok":true}],
//! "recent":{"NAME":[{"addr":"1.2.3.4","hits":1,"last_seen":3.0}]},
//! "counters":{"filter:INPUT:5":[1,60]}}]}` — `path` holds every rule whose matches all
//! succeeded (whose counters the kernel bumps), for the packet and then for the host's
//! replies to it; `rule` is the 1-based position in its chain; `hits` the stamps held;
//! `last_seen` seconds since the trace start; `counters` every rule with a non-zero count.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;

use crate::check::{FinalRecord, Observer, PacketRecord, Summary};
use crate::diag::SourceFile;
use crate::packet::{proto, FlagLetters, Packet};
use crate::sim::{initial_jiffies, Decided, Engine, Jiffies, Outcome};
use crate::trace::{seconds, Row};

fn addr_port(a: IpAddr, p: u16) -> String {
    match a {
        IpAddr::V4(_) => format!("{a}:{p}"),
        IpAddr::V6(_) => format!("[{a}]:{p}"),
    }
}

/// A packet in one line: `tcp 1.2.3.4:40000 > 10.0.0.1:22 S eth0`.
pub fn describe(p: &Packet, iface: &str) -> String {
    match p.proto {
        proto::TCP => format!(
            "tcp {} > {} {} {iface}",
            addr_port(p.src, p.sport),
            addr_port(p.dst, p.dport),
            FlagLetters(p.flags)
        ),
        proto::UDP => format!("udp {} > {} {iface}", addr_port(p.src, p.sport), addr_port(p.dst, p.dport)),
        proto::ICMP | proto::ICMPV6 => {
            format!("icmp {} > {} type {}/{} {iface}", p.src, p.dst, p.icmp_type, p.icmp_code)
        }
        n => format!("proto {n} {} > {} {iface}", p.src, p.dst),
    }
}

/// What decided the verdict, for humans.
pub fn decided_by(d: Decided, engine: &Engine, src: &SourceFile) -> String {
    match d {
        Decided::Rule(r) => {
            let info = &engine.program().info[r as usize];
            let (line, _) = src.line_col(info.span.start as usize);
            let text = src.line_text(line);
            let text = if text.chars().count() > 70 {
                format!("{}…", text.chars().take(69).collect::<String>())
            } else {
                text.to_string()
            };
            format!("{}:{line} [{} {} #{}] {text}", src.name(), info.table, info.chain, info.pos)
        }
        Decided::Policy(t, h) => format!("policy of {t} {}", h.name()),
        Decided::Stage(s) => s.to_string(),
        Decided::Default => "no rule".to_string(),
    }
}

/// The human-readable per-packet table.
pub struct TextReport<'a, W: Write> {
    out: W,
    src: &'a SourceFile,
    file: String,
    /// Print every packet (else only the summary and failures).
    pub rows: bool,
    header_done: bool,
}

impl<'a, W: Write> TextReport<'a, W> {
    /// A report for the ruleset `src`, scenario `file`.
    pub fn new(out: W, src: &'a SourceFile, file: &str, rows: bool) -> Self {
        TextReport { out, src, file: file.to_string(), rows, header_done: false }
    }
}

impl<W: Write> Observer for TextReport<'_, W> {
    fn packet(&mut self, row: &Row, _now: Jiffies, out: &Outcome, engine: &Engine) -> io::Result<()> {
        if !self.rows {
            return Ok(());
        }
        if !self.header_done {
            writeln!(self.out, "{}:", self.file)?;
            writeln!(self.out, "{:>5} {:>10}  {:<52} {:<7} decided by", "row", "time", "packet", "verdict")?;
            self.header_done = true;
        }
        let mark = match row.expect {
            Some(e) if e != out.verdict => format!("  FAIL: expected {}", e.as_str()),
            _ => String::new(),
        };
        writeln!(
            self.out,
            "{:>5} {:>10.3}  {:<52} {:<7} {}{mark}",
            row.row,
            seconds(row.time_ns),
            describe(&row.pkt, row.iface.as_str()),
            out.verdict.as_str(),
            decided_by(out.decided, engine, self.src),
        )?;
        for r in &out.replies {
            writeln!(
                self.out,
                "{:>5} {:>10}  {:<52} {:<7} host {}",
                "",
                "",
                format!("< {}", describe(&r.pkt, engine.ifaces.name(r.pkt.iface))),
                r.verdict.as_str(),
                r.why.as_str()
            )?;
        }
        Ok(())
    }

    fn finish(&mut self, engine: &Engine, s: &Summary) -> io::Result<()> {
        writeln!(
            self.out,
            "{}: {} packets: {} accepted, {} dropped, {} rejected; {} expectations, {} failed",
            self.file,
            s.packets,
            s.accepted,
            s.dropped,
            s.rejected,
            s.checked,
            s.failures.len()
        )?;
        for (row, line, e, got) in &s.failures {
            writeln!(
                self.out,
                "  FAIL {}:{line}: row {row}: expected {}, got {}",
                self.file,
                e.as_str(),
                got.as_str()
            )?;
        }
        let start = initial_jiffies(engine.config().hz);
        for t in engine.recent_tables() {
            let entries = t.entries();
            let mut line =
                format!("  recent {}: {} entr{}", t.name, entries.len(), if entries.len() == 1 { "y" } else { "ies" });
            for e in entries.iter().take(8) {
                let _ =
                    write!(line, " {} ({} hits, last {:.3}s)", e.addr, e.stamps.len(), rel(e.last_seen, start, engine));
            }
            if entries.len() > 8 {
                let _ = write!(line, " …");
            }
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }
}

fn rel(j: Jiffies, start: Jiffies, engine: &Engine) -> f64 {
    (j as f64 - start as f64) / engine.config().hz as f64
}

/// Streams the JSON document; call [`JsonReport::begin`] once before the first
/// scenario and [`JsonReport::end`] after the last.
pub struct JsonReport<W: Write> {
    out: W,
    first_packet: bool,
    first_scenario: bool,
}

impl<W: Write> JsonReport<W> {
    /// A writer.
    pub fn new(out: W) -> Self {
        JsonReport { out, first_packet: true, first_scenario: true }
    }
    /// Opens the document.
    pub fn begin(&mut self) -> io::Result<()> {
        self.out.write_all(b"{\"scenarios\":[")
    }
    /// Opens one scenario.
    pub fn scenario(&mut self, file: &str) -> io::Result<()> {
        if !self.first_scenario {
            self.out.write_all(b",")?;
        }
        self.first_scenario = false;
        self.first_packet = true;
        write!(self.out, "{{\"file\":{},\"packets\":[", serde_json::to_string(file)?)
    }
    /// Closes the document.
    pub fn end(&mut self) -> io::Result<()> {
        self.out.write_all(b"]}\n")?;
        self.out.flush()
    }
}

impl<W: Write> JsonReport<W> {
    /// Writes one packet of the current scenario.
    pub fn write_packet(&mut self, rec: &PacketRecord) -> io::Result<()> {
        if !self.first_packet {
            self.out.write_all(b",")?;
        }
        self.first_packet = false;
        serde_json::to_writer(&mut self.out, &packet_json(rec))?;
        Ok(())
    }

    /// Closes the current scenario with its recent tables and counters.
    pub fn write_final(&mut self, last: &FinalRecord) -> io::Result<()> {
        let (recent, counters) = final_json(last);
        write!(self.out, "],\"recent\":{recent},\"counters\":{counters}}}")
    }
}

/// The JSON object of one packet (the module docs give the shape).
pub fn packet_json(rec: &PacketRecord) -> serde_json::Value {
    let row = &rec.row;
    let path: Vec<serde_json::Value> = rec
        .path
        .iter()
        .map(|p| serde_json::json!({"table": p.table.as_str(), "chain": p.chain, "rule": p.rule, "line": p.line}))
        .collect();
    let replies: Vec<serde_json::Value> = rec
        .replies
        .iter()
        .map(|r| serde_json::json!({"kind": r.kind.as_str(), "packet": describe(&r.pkt, &r.iface), "verdict": r.verdict.as_str()}))
        .collect();
    let mut v = serde_json::json!({
        "row": row.row,
        "time": seconds(row.time_ns),
        "verdict": rec.verdict.as_str(),
        "path": path,
    });
    if let Some(s) = rec.stage {
        v["stage"] = serde_json::json!(s);
    }
    if !replies.is_empty() {
        v["replies"] = serde_json::json!(replies);
    }
    if let Some(e) = row.expect {
        v["expect"] = serde_json::json!(e.as_str());
        v["ok"] = serde_json::json!(e == rec.verdict);
    }
    v
}

/// The `recent` and `counters` objects that close a scenario.
pub fn final_json(last: &FinalRecord) -> (serde_json::Value, serde_json::Value) {
    let mut recent = serde_json::Map::new();
    for (name, entries) in &last.recent {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| serde_json::json!({"addr": e.addr.to_string(), "hits": e.hits, "last_seen": e.last_seen}))
            .collect();
        recent.insert(name.clone(), serde_json::Value::Array(list));
    }
    let mut counters = serde_json::Map::new();
    for (key, (p, b)) in &last.counters {
        counters.insert(key.clone(), serde_json::json!([p, b]));
    }
    (serde_json::Value::Object(recent), serde_json::Value::Object(counters))
}

impl<W: Write> Observer for JsonReport<W> {
    fn packet(&mut self, row: &Row, _now: Jiffies, out: &Outcome, engine: &Engine) -> io::Result<()> {
        self.write_packet(&PacketRecord::from_sim(row, out, engine))
    }

    fn finish(&mut self, engine: &Engine, _s: &Summary) -> io::Result<()> {
        self.write_final(&FinalRecord::from_sim(engine))
    }
}
