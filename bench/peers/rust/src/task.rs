//! The task workloads of bench/WORKLOADS.md (issue 13) on Tokio: each round
//! builds a multi-thread runtime with 2 workers and drives the workload from
//! a task spawned on it (so the driver runs on a worker, as oxide's driver
//! task and Go's main goroutine do); the driver reads the clock.

use crate::{check, Harness};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const IMP: &str = "tokio";
const WORKERS: usize = 2;

/// Runs `driver` as a task on a fresh 2-worker runtime; returns its result.
fn on_runtime<F, Fut>(driver: F) -> f64
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = f64> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let fut = driver();
    rt.block_on(async move { tokio::spawn(fut).await.expect("driver task") })
}

// ---- task_spawn_join --------------------------------------------------------

const SPAWN_BATCH: u64 = 1000;
const SPAWN_BATCHES: u64 = 100;

async fn spawn_join() -> f64 {
    let mut handles: Vec<JoinHandle<u64>> = Vec::with_capacity(SPAWN_BATCH as usize);
    let mut sum = 0u64;
    let t0 = Instant::now();
    for _ in 0..SPAWN_BATCHES {
        for i in 0..SPAWN_BATCH {
            handles.push(tokio::spawn(async move { i + 1 }));
        }
        for h in handles.drain(..) {
            sum += h.await.expect("join");
        }
    }
    let ns = t0.elapsed().as_nanos() as f64;
    check(
        sum == SPAWN_BATCHES * SPAWN_BATCH * (SPAWN_BATCH + 1) / 2,
        "task_spawn_join",
    );
    ns / (SPAWN_BATCHES * SPAWN_BATCH) as f64
}

// ---- task_yield_1pair, task_yield_1000pairs ---------------------------------

/// 2*pairs tasks each yield n times; op = one round of a pair.
async fn yield_pairs(pairs: u64, n: u64, name: &'static str) -> f64 {
    let t0 = Instant::now();
    let handles: Vec<JoinHandle<u64>> = (0..2 * pairs)
        .map(|_| {
            tokio::spawn(async move {
                let mut i = 0;
                while i < n {
                    tokio::task::yield_now().await;
                    i += 1;
                }
                i
            })
        })
        .collect();
    let mut yields = 0;
    for h in handles {
        yields += h.await.expect("join");
    }
    let ns = t0.elapsed().as_nanos() as f64;
    check(yields == 2 * pairs * n, name);
    ns / (pairs * n) as f64
}

// ---- task_skynet ------------------------------------------------------------

const SKYNET_LEAVES: u64 = 1_000_000;
const SKYNET_DIV: u64 = 10;
const SKYNET_TASKS: u64 = 1_111_111; // 1 + 10 + ... + 10^6

/// Recursive async needs a boxed future; each node spawns its 10 children
/// and awaits their JoinHandles.
fn skynet(num: u64, size: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let step = size / SKYNET_DIV;
        let handles: Vec<JoinHandle<u64>> = (0..SKYNET_DIV)
            .map(|i| tokio::spawn(skynet(num + i * step, step)))
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.expect("join");
        }
        sum
    })
}

async fn skynet_run() -> f64 {
    let t0 = Instant::now();
    let sum = tokio::spawn(skynet(0, SKYNET_LEAVES)).await.expect("join");
    let ns = t0.elapsed().as_nanos() as f64;
    check(
        sum == SKYNET_LEAVES * (SKYNET_LEAVES - 1) / 2,
        "task_skynet",
    );
    ns / SKYNET_TASKS as f64
}

// ---- task_mutex_64 ----------------------------------------------------------

const MUTEX_TASKS: u64 = 64;
const MUTEX_OPS: u64 = 20_000;

/// tokio::sync::Mutex: a task waiting for it is suspended, as in oxide and Go.
async fn mutex_64() -> f64 {
    let m = Arc::new(tokio::sync::Mutex::new(0u64));
    let t0 = Instant::now();
    let handles: Vec<JoinHandle<()>> = (0..MUTEX_TASKS)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move {
                for _ in 0..MUTEX_OPS {
                    *m.lock().await += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("join");
    }
    let ns = t0.elapsed().as_nanos() as f64;
    check(*m.lock().await == MUTEX_TASKS * MUTEX_OPS, "task_mutex_64");
    ns / (MUTEX_TASKS * MUTEX_OPS) as f64
}

// ---- task_sleep_p99_ns ------------------------------------------------------

const SLEEPERS: usize = 100_000;
const SLEEP_NS: i64 = 1_000_000;

/// The value is the 99th percentile of how late each sleep woke, in ns.
async fn sleep_p99() -> f64 {
    let handles: Vec<JoinHandle<i64>> = (0..SLEEPERS)
        .map(|_| {
            tokio::spawn(async {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_nanos(SLEEP_NS as u64)).await;
                start.elapsed().as_nanos() as i64 - SLEEP_NS
            })
        })
        .collect();
    let mut lateness = Vec::with_capacity(SLEEPERS);
    for h in handles {
        lateness.push(h.await.expect("join"));
    }
    lateness.sort_unstable();
    check(lateness[0] >= 0, "task_sleep_p99_ns");
    lateness[SLEEPERS / 100 * 99] as f64
}

// ---- task_idle_bytes, task_1M_blocked_bytes ---------------------------------

fn rss_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's resident field");
    pages * page_size()
}

extern "C" {
    fn sysconf(name: i32) -> i64;
}

fn page_size() -> f64 {
    // glibc's _SC_PAGESIZE.
    const SC_PAGESIZE: i32 = 30;
    // SAFETY: sysconf only reads a configuration value.
    unsafe { sysconf(SC_PAGESIZE) as f64 }
}

/// n tasks block receiving on one channel; the value is the RSS growth per
/// task once all are blocked. Tokio's mpsc has one receiver, so the shared
/// channel is a broadcast channel (each task holds a Receiver from
/// subscribe()); one send releases them all, and every task must return the
/// value exactly once.
async fn blocked_bytes(n: usize, name: &'static str) -> f64 {
    const VALUE: u64 = 41;
    let (tx, _keep) = tokio::sync::broadcast::channel::<u64>(1);
    let receivers: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
    // Every slot written before the first reading, as oxide's handle array.
    let mut handles: Vec<Option<JoinHandle<u64>>> = (0..n).map(|_| None).collect();
    let waiting = Arc::new(AtomicU64::new(0));
    let before = rss_bytes();
    for (slot, mut rx) in handles.iter_mut().zip(receivers) {
        let waiting = waiting.clone();
        *slot = Some(tokio::spawn(async move {
            // Relaxed: a count the driver polls; the receive is the hand-over.
            waiting.fetch_add(1, Ordering::Relaxed);
            rx.recv().await.expect("recv") + 1
        }));
    }
    while waiting.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The last ones get from the count into the wait.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let after = rss_bytes();
    tx.send(VALUE).expect("send");
    let mut sum = 0u64;
    for h in handles {
        sum += h.expect("spawned").await.expect("join");
    }
    check(sum == n as u64 * (VALUE + 1), name);
    (after - before) / n as f64
}

pub fn run_task_workloads(h: &Harness) {
    h.run("task_spawn_join", IMP, || on_runtime(spawn_join));
    h.run("task_yield_1pair", IMP, || {
        on_runtime(|| yield_pairs(1, 200_000, "task_yield_1pair"))
    });
    h.run("task_yield_1000pairs", IMP, || {
        on_runtime(|| yield_pairs(1000, 1000, "task_yield_1000pairs"))
    });
    h.run("task_skynet", IMP, || on_runtime(skynet_run));
    h.run("task_mutex_64", IMP, || on_runtime(mutex_64));
    h.skip(
        "task_chan_pingpong",
        IMP,
        "Tokio has no rendezvous channel (mpsc::channel(0) panics)",
    );
    h.run("task_sleep_p99_ns", IMP, || on_runtime(sleep_p99));
    h.run("task_idle_bytes", IMP, || {
        on_runtime(|| blocked_bytes(10_000, "task_idle_bytes"))
    });
    h.run("task_1M_blocked_bytes", IMP, || {
        on_runtime(|| blocked_bytes(1_000_000, "task_1M_blocked_bytes"))
    });
}
