//! Reading a namespace's legacy iptables tables through `getsockopt(IPT_SO_GET_INFO /
//! IPT_SO_GET_ENTRIES)` — what libiptc does for `iptables-save -c`, but in microseconds,
//! so counters can be read before and after every packet without upsetting the timing.
//!
//! The blob is a sequence of `ipt_entry` (or `ip6t_entry`) records. Built-in chains start
//! at `hook_entry[h]` and end with their policy entry at `underflow[h]`; a user chain
//! starts with an `ERROR` target entry naming it and ends with a `RETURN` entry; the blob
//! ends with an `ERROR` entry named `ERROR` (`net/ipv4/netfilter/ip_tables.c`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::model::{Family, Hook, TableName};

const SO_GET_INFO: libc::c_int = 64;
const SO_GET_ENTRIES: libc::c_int = 65;
/// `sizeof(struct ipt_getinfo)`: `name[32]`, `valid_hooks`, `hook_entry[5]`, `underflow[5]`,
/// `num_entries`, `size`.
const GETINFO_LEN: usize = 84;
/// `sizeof(struct ipt_get_entries)`: `name[32]`, `size`, padding to the 8-byte alignment of
/// the entries that follow.
const GET_ENTRIES_HDR: usize = 40;

/// Offsets inside one entry, per family.
#[derive(Clone, Copy, Debug)]
struct Layout {
    level: libc::c_int,
    /// `target_offset` (u16), then `next_offset` (u16).
    target_offset: usize,
    /// `struct xt_counters { u64 pcnt, bcnt }`.
    counters: usize,
}

const V4: Layout = Layout { level: libc::SOL_IP, target_offset: 88, counters: 96 };
const V6: Layout = Layout { level: libc::SOL_IPV6, target_offset: 140, counters: 152 };

/// What one entry of the blob is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Rule `pos` (1-based) of `chain`.
    Rule {
        /// Chain name.
        chain: String,
        /// 1-based position.
        pos: u32,
    },
    /// The policy of a built-in chain.
    Policy(Hook),
    /// Chain heads, user-chain tails and the final entry.
    Other,
}

/// The shape of one loaded table: what each entry is, in blob order.
#[derive(Clone, Debug)]
pub struct TableLayout {
    /// The table.
    pub name: TableName,
    /// One per entry.
    pub entries: Vec<EntryKind>,
    size: usize,
}

/// A raw socket in the namespace, used only for `getsockopt`.
#[derive(Debug)]
pub struct Reader {
    sock: OwnedFd,
    layout: Layout,
    buf: Vec<u8>,
}

/// Counters of every entry of one table, in blob order: (packets, bytes).
pub type Snapshot = Vec<(u64, u64)>;

impl Reader {
    /// Wraps a raw socket created inside the namespace (`socket(AF_INET[6], SOCK_RAW,
    /// IPPROTO_RAW)`).
    pub fn new(sock: OwnedFd, family: Family) -> Reader {
        let layout = if family == Family::V6 { V6 } else { V4 };
        Reader { sock, layout, buf: Vec::new() }
    }

    fn getsockopt(&self, opt: libc::c_int, buf: &mut [u8]) -> io::Result<()> {
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: buf is valid for len bytes; the kernel writes at most len bytes.
        let r = unsafe {
            libc::getsockopt(self.sock.as_raw_fd(), self.layout.level, opt, buf.as_mut_ptr().cast(), &mut len)
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn info(&self, table: TableName) -> io::Result<([u32; 5], [u32; 5], usize)> {
        let mut b = [0u8; GETINFO_LEN];
        b[..table.as_str().len()].copy_from_slice(table.as_str().as_bytes());
        self.getsockopt(SO_GET_INFO, &mut b)?;
        let u = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let valid = u(32);
        let mut hook_entry = [u32::MAX; 5];
        let mut underflow = [u32::MAX; 5];
        for h in 0..5 {
            if valid & (1 << h) != 0 {
                hook_entry[h] = u(36 + 4 * h);
                underflow[h] = u(56 + 4 * h);
            }
        }
        Ok((hook_entry, underflow, u(80) as usize))
    }

    /// Fetches the table blob into the internal buffer; returns its length.
    fn fetch(&mut self, table: TableName, size: usize) -> io::Result<usize> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(GET_ENTRIES_HDR + size, 0);
        buf[..table.as_str().len()].copy_from_slice(table.as_str().as_bytes());
        buf[32..36].copy_from_slice(&(size as u32).to_ne_bytes());
        let r = self.getsockopt(SO_GET_ENTRIES, &mut buf);
        self.buf = buf;
        r.map(|_| size)
    }

    /// Entry offsets of the fetched blob.
    fn offsets(&self, size: usize) -> Vec<usize> {
        let mut v = Vec::new();
        let mut off = 0;
        while off < size {
            v.push(off);
            let at = GET_ENTRIES_HDR + off + self.layout.target_offset + 2;
            let next = u16::from_ne_bytes([self.buf[at], self.buf[at + 1]]) as usize;
            if next == 0 {
                break;
            }
            off += next;
        }
        v
    }

    /// Reads the shape of `table` (which must be loaded in the namespace: asking for a
    /// table that is not would instantiate it).
    pub fn layout(&mut self, table: TableName) -> io::Result<TableLayout> {
        let (hook_entry, underflow, size) = self.info(table)?;
        self.fetch(table, size)?;
        let offs = self.offsets(size);
        let mut entries = Vec::with_capacity(offs.len());
        let target_name = |buf: &[u8], off: usize| {
            let e = GET_ENTRIES_HDR + off;
            let at = e + self.layout.target_offset;
            let t = e + u16::from_ne_bytes([buf[at], buf[at + 1]]) as usize;
            // struct xt_entry_target: u16 target_size; char name[29]; u8 revision; data.
            (cstr(&buf[t + 2..t + 31]), t + 32)
        };
        // The chain being walked: (name, next rule position, is a user chain).
        let mut cur: Option<(String, u32, bool)> = None;
        for (i, &off) in offs.iter().enumerate() {
            let o = off as u32;
            if let Some(h) = underflow.iter().position(|&u| u == o) {
                entries.push(EntryKind::Policy(Hook::ALL[h]));
                cur = None;
                continue;
            }
            if let Some(h) = hook_entry.iter().position(|&e| e == o) {
                cur = Some((Hook::ALL[h].name().to_string(), 1, false));
            }
            let (tname, data) = target_name(&self.buf, off);
            if tname == "ERROR" {
                let last = i + 1 == offs.len();
                cur = if last { None } else { Some((cstr(&self.buf[data..data + 32]), 1, true)) };
                entries.push(EntryKind::Other);
                continue;
            }
            // A user chain ends with its RETURN tail, just before the next chain's head.
            let tail = offs.get(i + 1).is_some_and(|&n| target_name(&self.buf, n).0 == "ERROR");
            match cur.as_mut() {
                Some((_, _, true)) if tail => entries.push(EntryKind::Other),
                Some((chain, pos, _)) => {
                    entries.push(EntryKind::Rule { chain: chain.clone(), pos: *pos });
                    *pos += 1;
                }
                None => entries.push(EntryKind::Other),
            }
        }
        Ok(TableLayout { name: table, entries, size })
    }

    /// The counters of every entry of `table`, which has the shape `layout`.
    pub fn counters(&mut self, layout: &TableLayout, out: &mut Snapshot) -> io::Result<()> {
        let (_, _, size) = self.info(layout.name)?;
        if size != layout.size {
            return Err(io::Error::other(format!("table {} changed while replaying", layout.name)));
        }
        self.fetch(layout.name, size)?;
        out.clear();
        for off in self.offsets(size) {
            let c = GET_ENTRIES_HDR + off + self.layout.counters;
            let p = u64::from_ne_bytes(self.buf[c..c + 8].try_into().expect("8 bytes"));
            let b = u64::from_ne_bytes(self.buf[c + 8..c + 16].try_into().expect("8 bytes"));
            out.push((p, b));
        }
        Ok(())
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}
