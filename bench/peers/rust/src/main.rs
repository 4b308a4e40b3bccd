//! The Rust peers of oxide's benchmarks: every workload of
//! bench/WORKLOADS.md that Rust std, parking_lot, crossbeam-channel,
//! flume and Tokio (the task workloads, task.rs) implement, timed the way bench/harness.c times the C ones.
//!
//! Usage: oxide-peers [SUBSTRING]   (or BENCH=SUBSTRING); OX_BENCH_ROUNDS
//! sets the repetitions (default 3, the median is printed).
//! Output: workload<TAB>impl<TAB>ns_per_op; skips are reported on stderr.

use std::cell::Cell;
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

mod task;

// ---- harness ---------------------------------------------------------------

struct Harness {
    filter: String,
    rounds: usize,
    /// OX_BENCH_IMPL: run only this implementation (bench/run.sh runs each
    /// in its own process); unset or empty: all.
    imp: Option<String>,
}

impl Harness {
    fn from_env() -> Harness {
        let filter = std::env::args()
            .nth(1)
            .or_else(|| std::env::var("BENCH").ok())
            .unwrap_or_default();
        let rounds = std::env::var("OX_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse::<usize>().ok())
            .filter(|&r| (1..=100).contains(&r))
            .unwrap_or(3);
        let imp = std::env::var("OX_BENCH_IMPL")
            .ok()
            .filter(|s| !s.is_empty());
        Harness {
            filter,
            rounds,
            imp,
        }
    }

    fn wants(&self, workload: &str) -> bool {
        // "=name" selects one workload exactly (bench/run.sh runs each
        // workload in a fresh process that way); otherwise a substring.
        match self.filter.strip_prefix('=') {
            Some(exact) => workload == exact,
            None => workload.contains(self.filter.as_str()),
        }
    }

    /// Runs `f` (one measurement, returning ns per op) `rounds` times and
    /// prints the median.
    fn wants_imp(&self, imp: &str) -> bool {
        self.imp.as_deref().map_or(true, |only| only == imp)
    }

    fn run(&self, workload: &str, imp: &str, mut f: impl FnMut() -> f64) {
        if !self.wants(workload) || !self.wants_imp(imp) {
            return;
        }
        let mut samples: Vec<f64> = (0..self.rounds).map(|_| f()).collect();
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{}\t{}\t{:.1}", workload, imp, samples[self.rounds / 2]);
        std::io::stdout().flush().unwrap();
    }

    fn skip(&self, workload: &str, imp: &str, why: &str) {
        if self.wants(workload) && self.wants_imp(imp) {
            eprintln!("# skipped {} {}: {}", workload, imp, why);
        }
    }
}

fn ns_per(start: Instant, ops: u64) -> f64 {
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// Starts `n` threads running `worker(i)` before the timer; they wait at a
/// gate that is opened right after the clock is read, then `main_part`
/// runs on the calling thread. The timer stops when all have finished.
fn timed_team<W, M>(n: usize, worker: W, main_part: M) -> u128
where
    W: Fn(usize) + Sync,
    M: FnOnce(),
{
    let gate = AtomicBool::new(false);
    let mut start = None;
    thread::scope(|s| {
        for i in 0..n {
            let (gate, worker) = (&gate, &worker);
            s.spawn(move || {
                // Acquire pairs with the Release store below.
                while !gate.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                worker(i);
            });
        }
        start = Some(Instant::now());
        gate.store(true, Ordering::Release);
        main_part();
    });
    start.unwrap().elapsed().as_nanos()
}

fn check(ok: bool, workload: &str) {
    if !ok {
        eprintln!("rust peers: {}: wrong result", workload);
        std::process::exit(1);
    }
}

// ---- threads (rust-std) ----------------------------------------------------

const SPAWN_COUNT: u64 = 20_000;
const SCOPE_COUNT: u64 = 5_000;
const SCOPE_THREADS: u64 = 4;
const TLS_OPS: u64 = 100_000_000;

fn spawn_join() -> f64 {
    let t0 = Instant::now();
    for _ in 0..SPAWN_COUNT {
        thread::spawn(|| {}).join().unwrap();
    }
    ns_per(t0, SPAWN_COUNT)
}

fn scoped_spawn_join() -> f64 {
    let counter = AtomicU64::new(0);
    let t0 = Instant::now();
    for _ in 0..SCOPE_COUNT {
        thread::scope(|s| {
            for _ in 0..SCOPE_THREADS {
                s.spawn(|| {
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
    }
    let r = ns_per(t0, SCOPE_COUNT * SCOPE_THREADS);
    check(
        counter.load(Ordering::Relaxed) == SCOPE_COUNT * SCOPE_THREADS,
        "scoped_spawn_join",
    );
    r
}

thread_local! {
    // A lazily initialised thread-local (the non-`const` form), like
    // oxide's: each access goes through the lazy-state check. (The
    // `const { }` form would skip that check; it is not what is compared.)
    #[allow(clippy::missing_const_for_thread_local)]
    static TLS_VALUE: Cell<i32> = Cell::new(1);
}

fn tls_access() -> f64 {
    let mut sum: u64 = 0;
    let t0 = Instant::now();
    for _ in 0..TLS_OPS {
        // An empty asm statement that may touch any memory (no `nomem`):
        // the same barrier as the C peer's asm volatile("" ::: "memory"),
        // so the thread-local is read through the accessor every iteration.
        unsafe { std::arch::asm!("", options(nostack, preserves_flags)) };
        sum += TLS_VALUE.with(|v| v.get()) as u64;
    }
    let r = ns_per(t0, TLS_OPS);
    check(black_box(sum) == TLS_OPS, "tls_access");
    r
}

// ---- locks (rust-std, parking_lot) ------------------------------------------

const UNCONTENDED_OPS: u64 = 10_000_000;
const CONTENDED_THREADS: usize = 4;
const CONTENDED_OPS: u64 = 1_000_000;
const RW_THREADS: usize = 4;
const RW_OPS: u64 = 1_000_000;
const RW_WRITE_EVERY: u64 = 100;
const HANDOFFS: u64 = 100_000;

trait BenchMutex: Sync {
    fn new(v: u64) -> Self;
    fn bump(&self);
    fn get(&self) -> u64;
}

impl BenchMutex for std::sync::Mutex<u64> {
    fn new(v: u64) -> Self {
        std::sync::Mutex::new(v)
    }
    #[inline(always)]
    fn bump(&self) {
        *self.lock().unwrap() += 1;
    }
    fn get(&self) -> u64 {
        *self.lock().unwrap()
    }
}

impl BenchMutex for parking_lot::Mutex<u64> {
    fn new(v: u64) -> Self {
        parking_lot::Mutex::new(v)
    }
    #[inline(always)]
    fn bump(&self) {
        *self.lock() += 1;
    }
    fn get(&self) -> u64 {
        *self.lock()
    }
}

trait BenchRwLock: Sync {
    fn new(v: u64) -> Self;
    fn bump(&self);
    fn read(&self) -> u64;
}

impl BenchRwLock for std::sync::RwLock<u64> {
    fn new(v: u64) -> Self {
        std::sync::RwLock::new(v)
    }
    #[inline(always)]
    fn bump(&self) {
        *self.write().unwrap() += 1;
    }
    #[inline(always)]
    fn read(&self) -> u64 {
        *std::sync::RwLock::read(self).unwrap()
    }
}

impl BenchRwLock for parking_lot::RwLock<u64> {
    fn new(v: u64) -> Self {
        parking_lot::RwLock::new(v)
    }
    #[inline(always)]
    fn bump(&self) {
        *self.write() += 1;
    }
    #[inline(always)]
    fn read(&self) -> u64 {
        *parking_lot::RwLock::read(self)
    }
}

fn mutex_uncontended<M: BenchMutex>() -> f64 {
    let m = M::new(0);
    let t0 = Instant::now();
    for _ in 0..UNCONTENDED_OPS {
        m.bump();
    }
    let r = ns_per(t0, UNCONTENDED_OPS);
    check(m.get() == UNCONTENDED_OPS, "mutex_uncontended");
    r
}

fn mutex_contended<M: BenchMutex>() -> f64 {
    let m = M::new(0);
    let ns = timed_team(
        CONTENDED_THREADS,
        |_| {
            for _ in 0..CONTENDED_OPS {
                m.bump();
            }
        },
        || {},
    );
    let ops = CONTENDED_THREADS as u64 * CONTENDED_OPS;
    check(m.get() == ops, "mutex_contended");
    ns as f64 / ops as f64
}

fn rwlock_read_heavy<L: BenchRwLock>() -> f64 {
    let l = L::new(0);
    let ns = timed_team(
        RW_THREADS,
        |_| {
            let mut seen = 0u64;
            for i in 0..RW_OPS {
                if i % RW_WRITE_EVERY == RW_WRITE_EVERY - 1 {
                    l.bump();
                } else {
                    seen = seen.wrapping_add(l.read());
                }
            }
            black_box(seen);
        },
        || {},
    );
    check(
        l.read() == RW_THREADS as u64 * (RW_OPS / RW_WRITE_EVERY),
        "rwlock_read_heavy",
    );
    ns as f64 / (RW_THREADS as u64 * RW_OPS) as f64
}

fn rwlock_uncontended_read<L: BenchRwLock>() -> f64 {
    let l = L::new(1);
    let mut seen = 0u64;
    let t0 = Instant::now();
    for _ in 0..UNCONTENDED_OPS {
        seen = seen.wrapping_add(l.read());
    }
    let r = ns_per(t0, UNCONTENDED_OPS);
    check(
        black_box(seen) == UNCONTENDED_OPS,
        "rwlock_uncontended_read",
    );
    r
}

// Two threads hand a turn flag back and forth through one mutex and one
// condvar; only the other thread can be waiting, so notify_one suffices.
fn condvar_pingpong_std() -> f64 {
    let m = std::sync::Mutex::new(0u32);
    let cv = std::sync::Condvar::new();
    let ns = timed_team(
        2,
        |me| {
            let me = me as u32;
            for _ in 0..HANDOFFS / 2 {
                let mut turn = m.lock().unwrap();
                while *turn != me {
                    turn = cv.wait(turn).unwrap();
                }
                *turn = 1 - me;
                cv.notify_one();
            }
        },
        || {},
    );
    check(*m.lock().unwrap() == 0, "condvar_pingpong");
    ns as f64 / HANDOFFS as f64
}

fn condvar_pingpong_parking_lot() -> f64 {
    let m = parking_lot::Mutex::new(0u32);
    let cv = parking_lot::Condvar::new();
    let ns = timed_team(
        2,
        |me| {
            let me = me as u32;
            for _ in 0..HANDOFFS / 2 {
                let mut turn = m.lock();
                while *turn != me {
                    cv.wait(&mut turn);
                }
                *turn = 1 - me;
                cv.notify_one();
            }
        },
        || {},
    );
    check(*m.lock() == 0, "condvar_pingpong");
    ns as f64 / HANDOFFS as f64
}

// ---- channels (rust-std, crossbeam, flume) ---------------------------------

const MSGS_LARGE: u64 = 1_000_000; // unbounded, boundedN
const MSGS_SMALL: u64 = 400_000; // bounded0, bounded1
const SIDE: usize = 4;
const PINGPONG_TRIPS: u64 = 50_000;

#[derive(Clone, Copy)]
enum Cap {
    Unbounded,
    Bounded(usize),
}

/// One channel implementation. `clone_r` is None for single-consumer
/// channels (std::sync::mpsc), whose mpmc workloads are skipped.
trait Chan {
    const NAME: &'static str;
    type S: Send;
    type R: Send;
    fn make(cap: Cap) -> (Self::S, Self::R);
    fn clone_s(s: &Self::S) -> Self::S;
    fn clone_r(r: &Self::R) -> Option<Self::R>;
    fn send(s: &Self::S, v: u64);
    fn recv(r: &Self::R) -> u64;
}

enum StdSender {
    Unbounded(std::sync::mpsc::Sender<u64>),
    Bounded(std::sync::mpsc::SyncSender<u64>),
}

struct StdMpsc;
impl Chan for StdMpsc {
    const NAME: &'static str = "rust-std";
    type S = StdSender;
    type R = std::sync::mpsc::Receiver<u64>;
    fn make(cap: Cap) -> (StdSender, Self::R) {
        match cap {
            Cap::Unbounded => {
                let (s, r) = std::sync::mpsc::channel();
                (StdSender::Unbounded(s), r)
            }
            Cap::Bounded(n) => {
                let (s, r) = std::sync::mpsc::sync_channel(n);
                (StdSender::Bounded(s), r)
            }
        }
    }
    fn clone_s(s: &StdSender) -> StdSender {
        match s {
            StdSender::Unbounded(s) => StdSender::Unbounded(s.clone()),
            StdSender::Bounded(s) => StdSender::Bounded(s.clone()),
        }
    }
    fn clone_r(_: &Self::R) -> Option<Self::R> {
        None
    }
    #[inline(always)]
    fn send(s: &StdSender, v: u64) {
        match s {
            StdSender::Unbounded(s) => s.send(v).unwrap(),
            StdSender::Bounded(s) => s.send(v).unwrap(),
        }
    }
    #[inline(always)]
    fn recv(r: &Self::R) -> u64 {
        r.recv().unwrap()
    }
}

/// crossbeam-channel and flume have the same API for what is measured
/// here: `unbounded()`, `bounded(n)`, cloneable senders and receivers.
macro_rules! mpmc_crate_chan {
    ($ty:ident, $name:literal, $krate:ident) => {
        struct $ty;
        impl Chan for $ty {
            const NAME: &'static str = $name;
            type S = $krate::Sender<u64>;
            type R = $krate::Receiver<u64>;
            fn make(cap: Cap) -> (Self::S, Self::R) {
                match cap {
                    Cap::Unbounded => $krate::unbounded(),
                    Cap::Bounded(n) => $krate::bounded(n),
                }
            }
            fn clone_s(s: &Self::S) -> Self::S {
                s.clone()
            }
            fn clone_r(r: &Self::R) -> Option<Self::R> {
                Some(r.clone())
            }
            #[inline(always)]
            fn send(s: &Self::S, v: u64) {
                s.send(v).unwrap()
            }
            #[inline(always)]
            fn recv(r: &Self::R) -> u64 {
                r.recv().unwrap()
            }
        }
    };
}

mpmc_crate_chan!(Crossbeam, "crossbeam", crossbeam_channel);
mpmc_crate_chan!(Flume, "flume", flume);

/// Sum of 0..n: what the receivers must add up to.
fn expected_sum(n: u64) -> u64 {
    n * (n - 1) / 2
}

/// `seq`: one thread sends all n messages, then receives all.
fn chan_seq<C: Chan>(cap: Cap, n: u64, name: &str) -> f64 {
    let (s, r) = C::make(cap);
    let t0 = Instant::now();
    for v in 0..n {
        C::send(&s, v);
    }
    let mut sum = 0u64;
    for _ in 0..n {
        sum += C::recv(&r);
    }
    let res = ns_per(t0, n);
    check(sum == expected_sum(n), name);
    res
}

/// `senders` threads send n messages between them; `receivers` threads
/// receive n/receivers each, or the main thread receives all when
/// `receivers` is 0. The channel is created before and dropped after the
/// timed region (the main thread keeps the original handles).
fn chan_threads<C: Chan>(cap: Cap, n: u64, senders: usize, receivers: usize, name: &str) -> f64 {
    let (s, r) = C::make(cap);
    let per_sender = n / senders as u64;
    let per_receiver = if receivers == 0 {
        n
    } else {
        n / receivers as u64
    };
    let txs: Vec<std::sync::Mutex<Option<C::S>>> = (0..senders)
        .map(|_| std::sync::Mutex::new(Some(C::clone_s(&s))))
        .collect();
    let rxs: Vec<std::sync::Mutex<Option<C::R>>> = (0..receivers)
        .map(|_| std::sync::Mutex::new(Some(C::clone_r(&r).expect("multi-consumer channel"))))
        .collect();
    let total = AtomicU64::new(0);
    let receive = |rx: &C::R| {
        let mut sum = 0u64;
        for _ in 0..per_receiver {
            sum += C::recv(rx);
        }
        total.fetch_add(sum, Ordering::Relaxed);
    };
    let ns = timed_team(
        senders + receivers,
        |i| {
            if i < senders {
                // Take the handle out so it is dropped when this thread ends.
                let tx = txs[i].lock().unwrap().take().unwrap();
                let first = per_sender * i as u64;
                for v in first..first + per_sender {
                    C::send(&tx, v);
                }
            } else {
                let rx = rxs[i - senders].lock().unwrap().take().unwrap();
                receive(&rx);
            }
        },
        || {
            if receivers == 0 {
                receive(&r);
            }
        },
    );
    check(total.load(Ordering::Relaxed) == expected_sum(n), name);
    drop((s, r));
    ns as f64 / n as f64
}

/// `pingpong`: A (main) sends on one bounded(1) channel, B receives and
/// sends it back on another, A receives. op = one round trip.
fn chan_pingpong<C: Chan>() -> f64 {
    let (s1, r1) = C::make(Cap::Bounded(1));
    let (s2, r2) = C::make(Cap::Bounded(1));
    let b_side = std::sync::Mutex::new(Some((r1, s2)));
    let mut sum = 0u64;
    let ns = timed_team(
        1,
        |_| {
            let (r1, s2) = b_side.lock().unwrap().take().unwrap();
            for _ in 0..PINGPONG_TRIPS {
                let v = C::recv(&r1);
                C::send(&s2, v);
            }
        },
        || {
            for v in 0..PINGPONG_TRIPS {
                C::send(&s1, v);
                sum += C::recv(&r2);
            }
        },
    );
    check(sum == expected_sum(PINGPONG_TRIPS), "chan_pingpong");
    ns as f64 / PINGPONG_TRIPS as f64
}

fn chan_suite<C: Chan>(h: &Harness) {
    let flavors = [
        ("unbounded", Cap::Unbounded, MSGS_LARGE),
        ("bounded0", Cap::Bounded(0), MSGS_SMALL),
        ("bounded1", Cap::Bounded(1), MSGS_SMALL),
        ("boundedN", Cap::Bounded(MSGS_LARGE as usize), MSGS_LARGE),
    ];
    let multi_consumer = {
        let (_s, r) = C::make(Cap::Bounded(1));
        C::clone_r(&r).is_some()
    };
    for &(flavor, cap, n) in &flavors {
        if n == MSGS_LARGE {
            let w = format!("chan_seq_{}", flavor);
            h.run(&w, C::NAME, || chan_seq::<C>(cap, n, &w));
        }
        let w = format!("chan_spsc_{}", flavor);
        h.run(&w, C::NAME, || chan_threads::<C>(cap, n, 1, 0, &w));
        let w = format!("chan_mpsc_{}", flavor);
        h.run(&w, C::NAME, || chan_threads::<C>(cap, n, SIDE, 0, &w));
        let w = format!("chan_mpmc_{}", flavor);
        if multi_consumer {
            h.run(&w, C::NAME, || chan_threads::<C>(cap, n, SIDE, SIDE, &w));
        } else {
            h.skip(&w, C::NAME, "std::sync::mpsc is single-consumer");
        }
    }
    h.run("chan_pingpong", C::NAME, chan_pingpong::<C>);
}

/// parking_lot's name in the output. Built with the deadlock_detection
/// feature (run-peers.sh builds that second binary), parking_lot keeps a
/// per-thread list of the locks each thread holds, the counterpart of
/// oxide's held-lock record, and reports as parking_lot-dd.
const PARKING_LOT: &str = if cfg!(feature = "deadlock_detection") {
    "parking_lot-dd"
} else {
    "parking_lot"
};

fn main() {
    let h = Harness::from_env();
    // One idle extra thread for the whole run, as every implementation has.
    thread::spawn(|| loop {
        thread::park();
    });

    h.run("spawn_join", "rust-std", spawn_join);
    h.run("scoped_spawn_join", "rust-std", scoped_spawn_join);
    h.run("tls_access", "rust-std", tls_access);

    h.run(
        "mutex_uncontended",
        "rust-std",
        mutex_uncontended::<std::sync::Mutex<u64>>,
    );
    h.run(
        "mutex_uncontended",
        PARKING_LOT,
        mutex_uncontended::<parking_lot::Mutex<u64>>,
    );
    h.run(
        "mutex_contended",
        "rust-std",
        mutex_contended::<std::sync::Mutex<u64>>,
    );
    h.run(
        "mutex_contended",
        PARKING_LOT,
        mutex_contended::<parking_lot::Mutex<u64>>,
    );
    h.run(
        "rwlock_read_heavy",
        "rust-std",
        rwlock_read_heavy::<std::sync::RwLock<u64>>,
    );
    h.run(
        "rwlock_read_heavy",
        PARKING_LOT,
        rwlock_read_heavy::<parking_lot::RwLock<u64>>,
    );
    h.run(
        "rwlock_uncontended_read",
        "rust-std",
        rwlock_uncontended_read::<std::sync::RwLock<u64>>,
    );
    h.run(
        "rwlock_uncontended_read",
        PARKING_LOT,
        rwlock_uncontended_read::<parking_lot::RwLock<u64>>,
    );
    h.run("condvar_pingpong", "rust-std", condvar_pingpong_std);
    h.run(
        "condvar_pingpong",
        PARKING_LOT,
        condvar_pingpong_parking_lot,
    );

    chan_suite::<StdMpsc>(&h);
    chan_suite::<Crossbeam>(&h);
    chan_suite::<Flume>(&h);

    task::run_task_workloads(&h);
}
