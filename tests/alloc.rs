//! No allocation per packet (ARCHITECTURE.md, `sim` invariants): once warm, 10,000
//! packets through `Engine::step` on the seed ruleset allocate nothing.
//!
//! The workload is `fwverify gen mix` (scanners, knockers that open SSH and close it
//! again, SYN flooders, pingers, web clients and UDP probes from 200 sources) at 100
//! packets/s. The warm-up covers 20 minutes of trace time, longer than any connection
//! of this workload lives (SYN_SENT's 120 s is the longest), so the connection table,
//! the ICMP rate-limit peers and the hash tables behind them have reached their steady
//! size. The host listens on tcp:22 only, so the SYN flooders' half-open connections do
//! not fill an accept queue during the measurement (the queues and the connection table
//! are bounded — `--conntrack-max` — but fill up over a longer warm-up than this one).
//!
//! The counting allocator is global to the test binary, but it only counts, per thread,
//! so the other tests running beside this one neither disturb nor are disturbed by it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use fwverify::packet::Packet;
use fwverify::sim::{Engine, Ifaces, Jiffies, Outcome, SimConfig, Verdict};
use fwverify::trace::gen::{Common, Kind, Rate, Spec};
use fwverify::trace::to_jiffies;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the allocator may run while this thread's locals are being destroyed.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

const WARM: u64 = 120_000;
const MEASURED: u64 = 10_000;

#[test]
fn step_allocates_nothing_once_warm() {
    let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed/rules.v4")).unwrap();
    let parsed = fwverify::load(&rules);
    assert!(!parsed.has_errors());
    let cfg = SimConfig { listen: vec![(6, 22)], ..SimConfig::default() };
    let hz = cfg.hz;
    let mut engine = Engine::new(&parsed.ruleset, cfg, Ifaces::default()).expect("the seed ruleset simulates");
    let iface = engine.iface("eth0");
    let spec = Spec {
        kind: Kind::Mix { count: WARM + MEASURED, rate: Rate::per_second(100), sources: 200 },
        common: Common { seed: 3, ..Common::default() },
    };
    let packets: Vec<(Jiffies, Packet)> =
        spec.rows(1).map(|g| (to_jiffies(g.row.time_ns, hz), Packet { iface, ..g.row.pkt })).collect();
    let (warm, measured) = packets.split_at(WARM as usize);
    let mut out = Outcome::default();
    for (now, p) in warm {
        engine.step(*now, p, &mut out);
    }
    let mut verdicts = [0u64; 3];
    let before = allocations();
    for (now, p) in measured {
        engine.step(*now, p, &mut out);
        verdicts[out.verdict as usize] += 1;
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "{during} allocations in {MEASURED} warm packets (verdicts {verdicts:?})");
    // The workload is not trivial: packets are both accepted and dropped.
    let (accepted, dropped) = (verdicts[Verdict::Accept as usize], verdicts[Verdict::Drop as usize]);
    assert!(accepted > 1000 && dropped > 1000, "{verdicts:?}");
}
