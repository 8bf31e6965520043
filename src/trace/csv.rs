//! Scenario CSV: `time,src,dst,proto,sport,dport,flags,icmp_type,icmp_code,iface,len,ttl,expect,note`
//! with a header row; `#` lines are comments; unknown columns are errors.

use std::io::Read;
use std::net::IpAddr;

use super::{IfaceBuf, Row, TraceError};
use crate::packet::{parse_flag_letters, proto, IfaceId, Packet};
use crate::sim::Verdict;

/// The columns a scenario may have.
pub const COLUMNS: [&str; 15] = [
    "time",
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "flags",
    "icmp_type",
    "icmp_code",
    "icmp_id",
    "iface",
    "len",
    "ttl",
    "expect",
    "note",
];

const REQUIRED: [&str; 4] = ["time", "src", "dst", "proto"];

/// A streaming scenario reader.
pub struct CsvTrace<R: Read> {
    file: String,
    rdr: ::csv::Reader<R>,
    rec: ::csv::ByteRecord,
    /// Index of each of [`COLUMNS`] in the file, if present.
    col: [Option<usize>; 15],
    /// Number of columns of the header.
    width: usize,
    row: u64,
    last_ns: u64,
}

fn is_comment(r: &::csv::ByteRecord) -> bool {
    r.get(0).is_some_and(|f| f.first() == Some(&b'#'))
}

impl<R: Read> CsvTrace<R> {
    /// Reads the header of `input`, shown as `file` in errors.
    pub fn new(file: &str, input: R) -> Result<CsvTrace<R>, TraceError> {
        // Comments are recognised here rather than by the csv reader, whose line count
        // skips them: every record keeps its real line number.
        let mut rdr =
            ::csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(::csv::Trim::All).from_reader(input);
        let err = |line: u64, col: u64, message: String| TraceError { file: file.to_string(), line, col, message };
        let mut headers = ::csv::ByteRecord::new();
        loop {
            match rdr.read_byte_record(&mut headers) {
                Ok(true) if is_comment(&headers) => continue,
                Ok(true) => break,
                Ok(false) => {
                    return Err(err(1, 1, "empty scenario: the first line must be a header naming the columns".into()))
                }
                Err(e) => return Err(csv_error(file, &e)),
            }
        }
        if headers.iter().all(|h| h.is_empty()) {
            return Err(err(1, 1, "empty scenario: the first line must be a header naming the columns".into()));
        }
        let line = headers.position().map(|p| p.line()).unwrap_or(1);
        let mut col = [None; 15];
        let mut at = 1u64;
        for (i, h) in headers.iter().enumerate() {
            let name = String::from_utf8_lossy(h).to_ascii_lowercase();
            match COLUMNS.iter().position(|c| *c == name) {
                Some(k) if col[k].is_some() => return Err(err(line, at, format!("column `{name}` given twice"))),
                Some(k) => col[k] = Some(i),
                None => {
                    return Err(err(line, at, format!("unknown column `{name}`; columns are {}", COLUMNS.join(","))));
                }
            }
            at += h.len() as u64 + 1;
        }
        for r in REQUIRED {
            let k = COLUMNS.iter().position(|c| *c == r).expect("required column is known");
            if col[k].is_none() {
                return Err(err(line, 1, format!("missing required column `{r}`")));
            }
        }
        let width = headers.len();
        Ok(CsvTrace { file: file.to_string(), rdr, rec: ::csv::ByteRecord::new(), col, width, row: 0, last_ns: 0 })
    }

    fn field(&self, k: usize) -> Option<&str> {
        let i = self.col[k]?;
        let b = self.rec.get(i)?;
        let s = std::str::from_utf8(b).ok()?;
        (!s.is_empty()).then_some(s)
    }

    fn err(&self, k: usize, message: String) -> TraceError {
        let line = self.rec.position().map(|p| p.line()).unwrap_or(0);
        let col = match self.col[k] {
            Some(i) => 1 + (0..i).map(|j| self.rec.get(j).map(|f| f.len() + 1).unwrap_or(1)).sum::<usize>() as u64,
            None => 1,
        };
        TraceError { file: self.file.clone(), line, col, message }
    }

    /// The next row, `Ok(None)` at the end.
    pub fn next_row(&mut self) -> Result<Option<Row>, TraceError> {
        loop {
            match self.rdr.read_byte_record(&mut self.rec) {
                Ok(false) => return Ok(None),
                Ok(true) if is_comment(&self.rec) => continue,
                Ok(true) if self.rec.len() == 1 && self.rec.get(0) == Some(b"") => continue,
                Ok(true) => break,
                Err(e) => return Err(csv_error(&self.file, &e)),
            }
        }
        if self.rec.len() != self.width {
            let line = self.rec.position().map(|p| p.line()).unwrap_or(0);
            return Err(TraceError {
                file: self.file.clone(),
                line,
                col: 1,
                message: format!("row has {} fields but the header has {}", self.rec.len(), self.width),
            });
        }
        self.row += 1;
        let line = self.rec.position().map(|p| p.line()).unwrap_or(0);
        const TIME: usize = 0;
        let time = self.field(TIME).ok_or_else(|| self.err(TIME, "empty time".into()))?;
        let time_ns = parse_seconds(time).ok_or_else(|| {
            self.err(TIME, format!("bad time `{time}`: seconds since the trace start, e.g. 0, 1.5 or 0.004"))
        })?;
        if time_ns < self.last_ns {
            return Err(self.err(
                TIME,
                format!(
                    "time goes backwards in row {}: {time} is earlier than the previous row's {}",
                    self.row,
                    super::seconds(self.last_ns)
                ),
            ));
        }
        self.last_ns = time_ns;
        let addr = |k: usize| -> Result<IpAddr, TraceError> {
            let s = self.field(k).ok_or_else(|| self.err(k, format!("empty {}", COLUMNS[k])))?;
            s.parse().map_err(|_| self.err(k, format!("bad {} address `{s}`", COLUMNS[k])))
        };
        let src = addr(1)?;
        let dst = addr(2)?;
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(self.err(2, "source and destination are of different address families".into()));
        }
        let p = self.field(3).ok_or_else(|| self.err(3, "empty proto".into()))?;
        // Compared without lowercasing into a new String: no allocation per row.
        let is = |name: &str| p.eq_ignore_ascii_case(name);
        let pr = if is("tcp") {
            proto::TCP
        } else if is("udp") {
            proto::UDP
        } else if is("icmp") {
            proto::ICMP
        } else if is("icmpv6") || is("icmp6") || is("ipv6-icmp") {
            proto::ICMPV6
        } else {
            p.parse::<u8>().map_err(|_| self.err(3, format!("bad proto `{p}`: tcp, udp, icmp, icmpv6 or 0-255")))?
        };
        let num = |k: usize, max: u64| -> Result<Option<u64>, TraceError> {
            match self.field(k) {
                None => Ok(None),
                Some(s) => match s.parse::<u64>() {
                    Ok(v) if v <= max => Ok(Some(v)),
                    _ => Err(self.err(k, format!("bad {} `{s}`: a whole number from 0 to {max}", COLUMNS[k]))),
                },
            }
        };
        let ports = matches!(pr, proto::TCP | proto::UDP);
        let (sport, dport) = if ports {
            let sp = num(4, 65535)?.ok_or_else(|| self.err(4, format!("sport is required for {p}")))?;
            let dp = num(5, 65535)?.ok_or_else(|| self.err(5, format!("dport is required for {p}")))?;
            (sp as u16, dp as u16)
        } else {
            (num(4, 65535)?.unwrap_or(0) as u16, num(5, 65535)?.unwrap_or(0) as u16)
        };
        let flags = match self.field(6) {
            None if pr == proto::TCP => 0x02,
            None => 0,
            Some(s) => {
                if pr != proto::TCP {
                    return Err(self.err(6, format!("flags given for a {p} packet")));
                }
                parse_flag_letters(s)
                    .ok_or_else(|| self.err(6, format!("bad flags `{s}`: letters F S R P A U E C, or NONE")))?
            }
        };
        let is_icmp = matches!(pr, proto::ICMP | proto::ICMPV6);
        let default_type = if pr == proto::ICMPV6 { 128 } else { 8 };
        let icmp_type = num(7, 255)?.map(|v| v as u8).unwrap_or(if is_icmp { default_type } else { 0 });
        let icmp_code = num(8, 255)?.unwrap_or(0) as u8;
        let icmp_id = num(9, 65535)?.unwrap_or(0) as u16;
        let iface_s = self.field(10).unwrap_or("eth0");
        let iface = IfaceBuf::new(iface_s)
            .ok_or_else(|| self.err(10, format!("interface name `{iface_s}` is longer than 15 characters")))?;
        let len = num(11, 65535)?.map(|v| v as u16).unwrap_or_else(|| Packet::header_len(src, pr));
        let ttl = num(12, 255)?.unwrap_or(64) as u8;
        let expect = match self.field(13) {
            None => None,
            Some(s) => Some(
                Verdict::parse(s).ok_or_else(|| self.err(13, format!("bad expect `{s}`: ACCEPT, DROP or REJECT")))?,
            ),
        };
        let pkt = Packet {
            src,
            dst,
            proto: pr,
            sport,
            dport,
            flags,
            icmp_type: if is_icmp { icmp_type } else { 0 },
            icmp_code: if is_icmp { icmp_code } else { 0 },
            icmp_id,
            iface: IfaceId(0),
            len,
            ttl,
        };
        Ok(Some(Row { row: self.row, line, time_ns, pkt, iface, expect }))
    }
}

fn csv_error(file: &str, e: &::csv::Error) -> TraceError {
    let (line, msg) = match e.kind() {
        ::csv::ErrorKind::UnequalLengths { pos, expected_len, len } => (
            pos.as_ref().map(|p| p.line()).unwrap_or(0),
            format!("row has {len} fields but the header has {expected_len}"),
        ),
        ::csv::ErrorKind::Utf8 { pos, .. } => {
            (pos.as_ref().map(|p| p.line()).unwrap_or(0), "invalid UTF-8".to_string())
        }
        ::csv::ErrorKind::Io(io) => (0, format!("read error: {io}")),
        _ => (e.position().map(|p| p.line()).unwrap_or(0), e.to_string()),
    };
    TraceError { file: file.to_string(), line, col: 1, message: msg }
}

/// Parses non-negative decimal seconds (`12`, `0.5`, `3.000001`) to nanoseconds, exactly.
pub fn parse_seconds(s: &str) -> Option<u64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if (int.is_empty() && frac.is_empty()) || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let i: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut f: u64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    for _ in frac.len()..9 {
        f *= 10;
    }
    i.checked_mul(1_000_000_000)?.checked_add(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Result<Vec<Row>, TraceError> {
        let mut t = CsvTrace::new("s.csv", text.as_bytes())?;
        let mut v = Vec::new();
        while let Some(r) = t.next_row()? {
            v.push(r);
        }
        Ok(v)
    }

    #[test]
    fn reads_rows_with_defaults() {
        let r = rows("time,src,dst,proto,dport,sport,expect\n# a comment\n0.5,1.2.3.4,10.0.0.1,tcp,22,40000,DROP\n")
            .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].row, 1);
        assert_eq!(r[0].line, 3);
        assert_eq!(r[0].time_ns, 500_000_000);
        assert_eq!(r[0].pkt.flags, 0x02);
        assert_eq!(r[0].pkt.len, 40);
        assert_eq!(r[0].iface.as_str(), "eth0");
        assert_eq!(r[0].expect, Some(Verdict::Drop));
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = rows("time,src,dst,proto\n1,1.2.3.4,10.0.0.1,icmp\n0.5,1.2.3.4,10.0.0.1,icmp\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 1));
        assert!(e.message.contains("backwards in row 2"), "{}", e.message);
        let e = rows("time,src,dst,proto,bogus\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 20));
        let e = rows("time,src,dst,proto\n0,1.2.3.4,300.1.1.1,icmp\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 11));
        let e = rows("time,src,dst,proto,dport\n0,1.2.3.4,1.1.1.1,tcp,22\n").unwrap_err();
        assert!(e.message.contains("sport is required"));
    }

    #[test]
    fn seconds_are_exact() {
        assert_eq!(parse_seconds("0.004"), Some(4_000_000));
        assert_eq!(parse_seconds("10"), Some(10_000_000_000));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("1e3"), None);
    }
}
