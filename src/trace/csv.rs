//! Scenario CSV: `time,src,dst,proto,sport,dport,flags,icmp_type,icmp_code,iface,len,ttl,expect,note`
//! with a header row; `#` lines are comments; unknown columns are errors.

use std::io::{BufRead, BufReader, Read};
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

/// Splits scenario text into records, one line at a time into one reused buffer: `#`
/// lines and blank lines are skipped, fields are split at commas and trimmed, and a field
/// may be quoted (`"a, b"`, with `""` for a quote, even across lines). Hand-written
/// rather than the `csv` crate's reader: this one validates UTF-8 once per line instead
/// of once per field, trims without copying the record, and counts every line, comments
/// included, so errors point at the real line.
struct Records<R: Read> {
    rdr: BufReader<R>,
    /// The current record (its line terminator included).
    text: String,
    /// Byte range of each field's value in `text`.
    fields: Vec<(usize, usize)>,
    /// 1-based column where each field starts.
    cols: Vec<u64>,
    /// Lines read so far.
    lines: u64,
    /// Line of the current record.
    line: u64,
}

/// Why [`Records::next`] failed.
enum RecordError {
    Io(std::io::Error),
    Utf8,
}

impl<R: Read> Records<R> {
    fn new(input: R) -> Records<R> {
        Records {
            rdr: BufReader::with_capacity(1 << 16, input),
            text: String::with_capacity(256),
            fields: Vec::with_capacity(16),
            cols: Vec::with_capacity(16),
            lines: 0,
            line: 0,
        }
    }

    /// Appends the next line to `text`; false at the end of the input.
    fn read_line(&mut self) -> Result<bool, RecordError> {
        let mut bytes = std::mem::take(&mut self.text).into_bytes();
        let n = self.rdr.read_until(b'\n', &mut bytes).map_err(RecordError::Io)?;
        self.text = String::from_utf8(bytes).map_err(|_| RecordError::Utf8)?;
        self.lines += (n > 0) as u64;
        Ok(n > 0)
    }

    /// Reads the next record; false at the end.
    fn next(&mut self) -> Result<bool, RecordError> {
        loop {
            self.text.clear();
            if !self.read_line()? {
                return Ok(false);
            }
            self.line = self.lines;
            if !self.text.starts_with('#') && !self.text.trim_ascii().is_empty() {
                break;
            }
        }
        self.split()?;
        Ok(true)
    }

    /// The end of the text without its line terminator.
    fn end(&self) -> usize {
        self.text.trim_end_matches(['\n', '\r']).len()
    }

    fn split(&mut self) -> Result<(), RecordError> {
        self.fields.clear();
        self.cols.clear();
        let mut at = 0;
        let mut end = self.end();
        loop {
            // Bytes, not `str::find`: fields are short, and a plain loop beats the
            // general pattern search.
            let b = self.text.as_bytes();
            let mut v = at;
            while v < end && b[v].is_ascii_whitespace() {
                v += 1;
            }
            let (value, next) = if v < end && b[v] == b'"' {
                let q = self.quoted(v + 1)?;
                // Undoubling quotes shortened the text.
                end = self.end();
                q
            } else {
                let stop = b[v..end].iter().position(|&c| c == b',').map_or(end, |i| v + i);
                let mut e = stop;
                while e > v && b[e - 1].is_ascii_whitespace() {
                    e -= 1;
                }
                ((v, e), stop)
            };
            self.fields.push(value);
            self.cols.push(at as u64 + 1);
            if next >= end {
                return Ok(());
            }
            at = next + 1;
        }
    }

    /// A quoted value starting at `from` (after the quote): its range, with doubled quotes
    /// undoubled in place, and where the field ends (at a comma or the end).
    fn quoted(&mut self, from: usize) -> Result<((usize, usize), usize), RecordError> {
        let mut at = from;
        let close = loop {
            match self.text[at..].find('"') {
                Some(i) if self.text[at + i + 1..].starts_with('"') => {
                    self.text.remove(at + i);
                    at += i + 1;
                }
                Some(i) => break at + i,
                // The value goes on on the next line (or the input ends inside it).
                None if self.read_line()? => {}
                None => break self.end(),
            }
        };
        let end = self.end();
        let stop = self.text[close.min(end)..end].find(',').map(|i| close + i).unwrap_or(end);
        // Values are trimmed inside the quotes too, as the `csv` crate's `Trim::All` did.
        let v = &self.text[from..close];
        let a = from + (v.len() - v.trim_ascii_start().len());
        Ok(((a, a + v.trim_ascii().len()), stop))
    }

    /// Field `i`, if the record has it.
    fn get(&self, i: usize) -> Option<&str> {
        self.fields.get(i).map(|&(a, b)| &self.text[a..b])
    }
}

/// A streaming scenario reader.
pub struct CsvTrace<R: Read> {
    file: String,
    rec: Records<R>,
    /// Index of each of [`COLUMNS`] in the file, if present.
    col: [Option<usize>; 15],
    /// Number of columns of the header.
    width: usize,
    row: u64,
    last_ns: u64,
}

impl<R: Read> CsvTrace<R> {
    /// Reads the header of `input`, shown as `file` in errors.
    pub fn new(file: &str, input: R) -> Result<CsvTrace<R>, TraceError> {
        let err = |line: u64, col: u64, message: String| TraceError { file: file.to_string(), line, col, message };
        let mut rec = Records::new(input);
        match rec.next() {
            Ok(true) => {}
            Ok(false) => {
                return Err(err(1, 1, "empty scenario: the first line must be a header naming the columns".into()))
            }
            Err(e) => return Err(record_error(file, rec.lines + 1, e)),
        }
        let line = rec.line;
        let mut col = [None; 15];
        for i in 0..rec.fields.len() {
            let name = rec.get(i).unwrap_or_default().to_ascii_lowercase();
            let at = rec.cols[i];
            match COLUMNS.iter().position(|c| *c == name) {
                Some(k) if col[k].is_some() => return Err(err(line, at, format!("column `{name}` given twice"))),
                Some(k) => col[k] = Some(i),
                None => {
                    return Err(err(line, at, format!("unknown column `{name}`; columns are {}", COLUMNS.join(","))));
                }
            }
        }
        for r in REQUIRED {
            let k = COLUMNS.iter().position(|c| *c == r).expect("required column is known");
            if col[k].is_none() {
                return Err(err(line, 1, format!("missing required column `{r}`")));
            }
        }
        let width = rec.fields.len();
        Ok(CsvTrace { file: file.to_string(), rec, col, width, row: 0, last_ns: 0 })
    }

    fn field(&self, k: usize) -> Option<&str> {
        let s = self.rec.get(self.col[k]?)?;
        (!s.is_empty()).then_some(s)
    }

    fn err(&self, k: usize, message: String) -> TraceError {
        let col = self.col[k].and_then(|i| self.rec.cols.get(i).copied()).unwrap_or(1);
        TraceError { file: self.file.clone(), line: self.rec.line, col, message }
    }

    /// The next row, `Ok(None)` at the end.
    pub fn next_row(&mut self) -> Result<Option<Row>, TraceError> {
        match self.rec.next() {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return Err(record_error(&self.file, self.rec.lines + 1, e)),
        }
        if self.rec.fields.len() != self.width {
            return Err(TraceError {
                file: self.file.clone(),
                line: self.rec.line,
                col: 1,
                message: format!("row has {} fields but the header has {}", self.rec.fields.len(), self.width),
            });
        }
        self.row += 1;
        let line = self.rec.line;
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
            match dotted_quad(s) {
                Some(a) => Ok(IpAddr::V4(a)),
                None => s.parse().map_err(|_| self.err(k, format!("bad {} address `{s}`", COLUMNS[k]))),
            }
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

fn record_error(file: &str, line: u64, e: RecordError) -> TraceError {
    let message = match e {
        RecordError::Io(io) => format!("read error: {io}"),
        RecordError::Utf8 => "invalid UTF-8".to_string(),
    };
    TraceError { file: file.to_string(), line, col: 1, message }
}

/// Parses non-negative decimal seconds (`12`, `0.5`, `3.000001`) to nanoseconds, exactly.
pub fn parse_seconds(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(d) => (&b[..d], &b[d + 1..]),
        None => (b, &b[..0]),
    };
    if (int.is_empty() && frac.is_empty()) || frac.len() > 9 {
        return None;
    }
    let mut i: u64 = 0;
    for &c in int {
        if !c.is_ascii_digit() {
            return None;
        }
        i = i.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    let mut f: u64 = 0;
    for &c in frac {
        if !c.is_ascii_digit() {
            return None;
        }
        f = f * 10 + u64::from(c - b'0');
    }
    for _ in frac.len()..9 {
        f *= 10;
    }
    i.checked_mul(1_000_000_000)?.checked_add(f)
}

/// An IPv4 address in canonical dotted-quad form (four parts of 1–3 digits, no leading
/// zeros, each at most 255), without the general parser; `None` for anything else, which
/// `IpAddr::from_str` then decides. Addresses are most of a scenario row.
fn dotted_quad(s: &str) -> Option<std::net::Ipv4Addr> {
    let b = s.as_bytes();
    if b.len() < 7 || b.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut k = 0;
    let mut i = 0;
    for o in &mut octets {
        let start = i;
        let mut v: u32 = 0;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let n = i - start;
        if n == 0 || v > 255 || (n > 1 && b[start] == b'0') {
            return None;
        }
        *o = v as u8;
        k += 1;
        if k < 4 {
            if i >= b.len() || b[i] != b'.' {
                return None;
            }
            i += 1;
        }
    }
    (i == b.len()).then(|| std::net::Ipv4Addr::from(octets))
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

    proptest::proptest! {
        /// The dotted-quad fast path accepts only what `IpAddr::from_str` accepts, with
        /// the same value.
        #[test]
        fn dotted_quad_agrees_with_std(s in "[0-9.]{0,17}|(25[0-9]|2[0-4][0-9]|1?[0-9]{1,2}|0[0-9]+)(\\.[0-9]{1,4}){3}") {
            if let Some(a) = dotted_quad(&s) {
                proptest::prop_assert_eq!(Ok(IpAddr::V4(a)), s.parse::<IpAddr>());
            }
        }

        /// `parse_seconds` as the definition: integer part, optional `.` and up to nine
        /// fraction digits.
        #[test]
        fn seconds_parse_as_defined(s in "[0-9]{0,21}(\\.[0-9]{0,11})?|[0-9.x]{0,8}") {
            let want = (|| {
                let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
                if (int.is_empty() && frac.is_empty()) || !int.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
                    return None;
                }
                let i: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
                let f: u64 = if frac.is_empty() { 0 } else { frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32) };
                i.checked_mul(1_000_000_000)?.checked_add(f)
            })();
            proptest::prop_assert_eq!(parse_seconds(&s), want);
        }
    }

    #[test]
    fn canonical_quads_take_the_fast_path() {
        assert_eq!(dotted_quad("100.1.2.3"), Some([100, 1, 2, 3].into()));
        assert_eq!(dotted_quad("255.255.255.255"), Some([255; 4].into()));
        for s in ["256.1.2.3", "01.2.3.4", "1.2.3", "1.2.3.4.", "1.2.3.4 ", "1..2.3", "1234.1.2.3", "::1"] {
            assert_eq!(dotted_quad(s), None, "{s}");
        }
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
    fn quotes_comments_blank_lines_and_crlf() {
        let text = "# scenario\r\ntime , src,dst,proto,note\r\n\r\n  \n\
                    0, 1.2.3.4 ,10.0.0.1,icmp,\"a, \"\"quoted\"\" note\"\r\n\
                    # between rows\n\
                    1,1.2.3.4,10.0.0.1,\" icmp \",\"two\nlines\"\n\
                    2,1.2.3.4,10.0.0.1,icmp,last";
        let r = rows(text).unwrap();
        assert_eq!(r.iter().map(|r| (r.row, r.line)).collect::<Vec<_>>(), [(1, 5), (2, 7), (3, 9)]);
        assert_eq!(r[1].pkt.proto, crate::packet::proto::ICMP, "a quoted value is trimmed inside its quotes too");
        let mut t =
            CsvTrace::new("s.csv", "time,src,dst,proto,note\n0,1.2.3.4,10.0.0.1,icmp,\"a\"\"b\"\n".as_bytes()).unwrap();
        t.next_row().unwrap().unwrap();
        assert_eq!(t.rec.get(4), Some("a\"b"));
    }

    #[test]
    fn malformed_rows() {
        let e = rows("time,src,dst,proto\n0,1.2.3.4,10.0.0.1\n").unwrap_err();
        assert_eq!((e.line, e.col, e.message.as_str()), (2, 1, "row has 3 fields but the header has 4"));
        let mut bad = b"time,src,dst,proto\n0,1.2.3.4,10.0.0.1,icmp\n0,".to_vec();
        bad.extend_from_slice(&[0xff, b'\n']);
        let mut t = CsvTrace::new("s.csv", &bad[..]).unwrap();
        assert!(t.next_row().unwrap().is_some());
        let e = t.next_row().unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (3, "invalid UTF-8"));
        let e = rows("# only a comment\n").unwrap_err();
        assert!(e.message.starts_with("empty scenario"), "{}", e.message);
    }

    #[test]
    fn seconds_are_exact() {
        assert_eq!(parse_seconds("0.004"), Some(4_000_000));
        assert_eq!(parse_seconds("10"), Some(10_000_000_000));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("1e3"), None);
    }
}
