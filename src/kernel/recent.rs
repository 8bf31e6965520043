//! `/proc/net/xt_recent/NAME`, one line per entry (SEMANTICS.md §3):
//! `src=10.9.0.2 ttl: 64 last_seen: 4295032023 oldest_pkt: 3 4295031934, 4295031981, 4295032023`.
//! `oldest_pkt` is really the ring's write index; the list holds the stamps in slot order.

use std::net::IpAddr;

/// One entry as the kernel prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcEntry {
    /// Masked address.
    pub addr: IpAddr,
    /// TTL recorded.
    pub ttl: u8,
    /// Newest stamp (jiffies).
    pub last_seen: u64,
    /// Stamps held (jiffies), in ring slot order.
    pub stamps: Vec<u64>,
}

/// Parses one line; `None` when it is not in the kernel's format.
pub fn parse_line(line: &str) -> Option<ProcEntry> {
    let rest = line.strip_prefix("src=")?;
    let (addr, rest) = rest.split_once(' ')?;
    let rest = rest.trim_start().strip_prefix("ttl:")?.trim_start();
    let (ttl, rest) = rest.split_once(' ')?;
    let rest = rest.trim_start().strip_prefix("last_seen:")?.trim_start();
    let (last, rest) = rest.split_once(' ')?;
    let rest = rest.trim_start().strip_prefix("oldest_pkt:")?.trim_start();
    let (_index, stamps) = rest.split_once(' ').unwrap_or((rest, ""));
    let stamps = stamps
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some(ProcEntry { addr: addr.parse().ok()?, ttl: ttl.parse().ok()?, last_seen: last.parse().ok()?, stamps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format() {
        let e =
            parse_line("src=10.9.0.2 ttl: 64 last_seen: 4295032023 oldest_pkt: 3 4295031934, 4295031981, 4295032023")
                .unwrap();
        assert_eq!(e.addr, "10.9.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(e.ttl, 64);
        assert_eq!(e.last_seen, 4295032023);
        assert_eq!(e.stamps, vec![4295031934, 4295031981, 4295032023]);
        let e = parse_line("src=2001:0db8:0000:0000:0000:0000:0000:0001 ttl: 0 last_seen: 5 oldest_pkt: 1 5").unwrap();
        assert_eq!(e.addr, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(e.stamps, vec![5]);
        assert_eq!(parse_line("garbage"), None);
    }
}
