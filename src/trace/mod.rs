//! Packet traces: scenario CSV files (streamed row by row with one reused record), pcap
//! captures, and generated scenarios (`gen`). Seconds become jiffies here, once, by [`to_jiffies`].
//!
//! Architecture invariant: readers take any `impl Read` and hold O(1) state, so memory
//! does not grow with trace length.

pub mod csv;
pub mod gen;
pub mod pcap;

use std::fmt;

use crate::packet::Packet;
use crate::sim::{initial_jiffies, Jiffies, Verdict};

/// An interface name of at most 15 bytes, stored inline (no heap per row).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfaceBuf {
    buf: [u8; 15],
    len: u8,
}

impl IfaceBuf {
    /// `None` when longer than 15 bytes.
    pub fn new(s: &str) -> Option<IfaceBuf> {
        if s.len() > 15 {
            return None;
        }
        let mut buf = [0; 15];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Some(IfaceBuf { buf, len: s.len() as u8 })
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Debug for IfaceBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One packet of a trace.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// 1-based data row number (header and comments excluded).
    pub row: u64,
    /// 1-based line in the file.
    pub line: u64,
    /// Time since the trace start, in nanoseconds.
    pub time_ns: u64,
    /// The packet (its `iface` is resolved by the caller from `iface`).
    pub pkt: Packet,
    /// Interface name.
    pub iface: IfaceBuf,
    /// Expected verdict.
    pub expect: Option<Verdict>,
}

/// A bad trace: where and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.display())]
pub struct TraceError {
    /// File name as shown.
    pub file: String,
    /// 1-based line of a CSV file, or 1-based frame number of a capture (0: the file
    /// as a whole).
    pub line: u64,
    /// 1-based column of a CSV file; 0 for a capture, whose `line` is a frame number.
    pub col: u64,
    /// What is wrong (lowercase phrase).
    pub message: String,
}

impl TraceError {
    fn display(&self) -> String {
        match (self.line, self.col) {
            (0, 0) => format!("{}: {}", self.file, self.message),
            (frame, 0) => format!("{}: frame {frame}: {}", self.file, self.message),
            (line, col) => format!("{}:{line}:{col}: {}", self.file, self.message),
        }
    }
}

/// Converts seconds (as nanoseconds since the trace start) to jiffies: the kernel's
/// `jiffies` start at 2^32 − 300·HZ and advance HZ times a second; a packet at `t`
/// seconds arrives at tick `floor(t·HZ)` (SEMANTICS.md §3, "Time").
pub fn to_jiffies(time_ns: u64, hz: u32) -> Jiffies {
    initial_jiffies(hz) + ((time_ns as u128 * hz as u128) / 1_000_000_000) as u64
}

/// Seconds as a float, for reports.
pub fn seconds(time_ns: u64) -> f64 {
    time_ns as f64 / 1e9
}
