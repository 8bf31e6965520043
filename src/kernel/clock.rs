//! The kernel's clocks as the backend needs them: `CLOCK_MONOTONIC` (the clock of
//! `ktime_get`, which `/proc/timer_list` prints as "now at N nsecs"), and `jiffies` with
//! the kernel's HZ, which xt_recent stamps use.

use std::io::{self, BufRead};
use std::time::Duration;

/// `CLOCK_MONOTONIC` in nanoseconds.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns`.
pub fn sleep_until(deadline_ns: u64) {
    loop {
        let now = mono_ns();
        if now >= deadline_ns {
            return;
        }
        std::thread::sleep(Duration::from_nanos(deadline_ns - now));
    }
}

/// One reading of `/proc/timer_list`: the monotonic time and `jiffies` at (almost) the
/// same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// `now at N nsecs`.
    pub mono_ns: u64,
    /// The first `jiffies: N` line.
    pub jiffies: u64,
}

/// Reads `/proc/timer_list` (root only), only as far as the first `jiffies:` line: the
/// file is generated while it is read, and is long on machines with many CPUs.
pub fn read_tick() -> io::Result<Tick> {
    let file = std::io::BufReader::new(std::fs::File::open("/proc/timer_list")?);
    parse_tick(file.lines().map_while(Result::ok))
        .ok_or_else(|| io::Error::other("/proc/timer_list has no `now at` or `jiffies:` line"))
}

/// How far after a jiffies tick [`after_next_tick`] puts the start: more than the
/// ~60 µs a reading takes, so that the start is after the tick whichever end of the
/// reading the tick fell in, and far less than a tick (4 ms at HZ 250).
const AFTER_TICK_NS: u64 = 250_000;

/// Waits for `jiffies` to move on and returns a start [`AFTER_TICK_NS`] after the new
/// tick, with that tick's `jiffies`. The simulator counts a trace's time from a tick
/// boundary (time 0 is a whole jiffy); a kernel replay that starts anywhere in a tick
/// would see a packet `t` after the start one jiffy later than the simulator whenever
/// the start's phase plus `t`'s fraction of a tick reach the next tick. Started here,
/// packets at whole jiffies (what `prove` writes) keep the simulator's jiffies unless
/// they are written almost a tick late.
pub fn after_next_tick() -> io::Result<Tick> {
    let first = read_tick()?;
    loop {
        let t = read_tick()?;
        // 100 ms is several ticks at any HZ: give up waiting (start anywhere). The caller
        // polls at real-time priority, so this bounds how long it keeps its CPU.
        if t.jiffies != first.jiffies || t.mono_ns > first.mono_ns + 100_000_000 {
            let start = Tick { mono_ns: t.mono_ns + AFTER_TICK_NS, jiffies: t.jiffies };
            sleep_until(start.mono_ns);
            return Ok(start);
        }
    }
}

fn parse_tick(lines: impl Iterator<Item = impl AsRef<str>>) -> Option<Tick> {
    let mut mono = None;
    let mut jiffies = None;
    for line in lines {
        let line = line.as_ref();
        if let Some(rest) = line.strip_prefix("now at ") {
            mono = rest.split_whitespace().next()?.parse().ok();
        } else if let Some(rest) = line.strip_prefix("jiffies:") {
            jiffies = rest.trim().parse().ok();
        }
        if let (Some(m), Some(j)) = (mono, jiffies) {
            return Some(Tick { mono_ns: m, jiffies: j });
        }
    }
    None
}

/// The kernel's HZ. 64-bit kernels start `jiffies` at 2^32 − 300·HZ (SEMANTICS.md §3), so
/// `HZ = (jiffies − 2^32) / (uptime − 300 s)` once the machine is up for a while; before
/// that, two readings 200 ms apart. The result is rounded to the nearest usual value.
pub fn kernel_hz(t: Tick) -> io::Result<u32> {
    let up = t.mono_ns as f64 / 1e9;
    let raw = if up > 400.0 {
        (t.jiffies as f64 - 4294967296.0) / (up - 300.0)
    } else {
        std::thread::sleep(Duration::from_millis(200));
        let u = read_tick()?;
        (u.jiffies - t.jiffies) as f64 / ((u.mono_ns - t.mono_ns) as f64 / 1e9)
    };
    const USUAL: [u32; 6] = [24, 100, 250, 300, 1000, 1024];
    Ok(USUAL.into_iter().min_by(|a, b| (*a as f64 - raw).abs().total_cmp(&(*b as f64 - raw).abs())).expect("non-empty"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_timer_list() {
        let text = "Timer List Version: v0.10\nHRTIMER_MAX_CLOCK_BASES: 8\nnow at 1565405681126 nsecs\n\ncpu: 0\n  .idle_jiffies   : 4295283153\njiffies: 4295283583\n";
        assert_eq!(parse_tick(text.lines()), Some(Tick { mono_ns: 1565405681126, jiffies: 4295283583 }));
    }

    #[test]
    fn hz_from_uptime() {
        // 1565.4 s up at HZ 250: 4294892296 + 1565.4·250.
        let t = Tick { mono_ns: 1_565_405_681_126, jiffies: 4294892296 + 391_351 };
        assert_eq!(kernel_hz(t).unwrap(), 250);
    }
}
