//! The crate's own rayon thread pools and deterministic parallel loops.
//!
//! Every sum over customers is taken over fixed-size chunks of rows: each chunk is summed in
//! order by one thread, and the partial sums are then added in chunk order. The chunking does not
//! depend on the number of threads, so results are bit-identical for 1 and N threads.
//!
//! Pools are created lazily, one per requested size, and never shared with the global rayon pool
//! (so clvrs neither takes over nor is starved by the host program's rayon use). A process that
//! forks inherits the pool objects but not their threads: pools are tagged with the creating
//! process id and rebuilt in a child, so a forked worker never waits on threads that do not exist.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::error::{ClvError, Result};

/// Rows per chunk in every parallel loop. Part of the numerical contract: changing it changes the
/// last bits of sums (never their accuracy), so it is a constant, not a tuning knob.
pub const CHUNK_ROWS: usize = 4096;

/// Environment variable read when `n_jobs` is not given.
pub const NUM_THREADS_ENV: &str = "CLVRS_NUM_THREADS";

/// How a loop runs: in the calling thread, or on one of the crate's pools.
#[derive(Clone, Default)]
pub enum Exec {
    /// Run in the calling thread (used when an outer loop is already parallel).
    #[default]
    Serial,
    /// Run on this pool.
    Pool(Arc<rayon::ThreadPool>),
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exec::Serial => write!(f, "Exec::Serial"),
            Exec::Pool(p) => write!(f, "Exec::Pool({} threads)", p.current_num_threads()),
        }
    }
}

impl Exec {
    /// The executor for `n_jobs` threads: `None` reads `CLVRS_NUM_THREADS` and falls back to the
    /// number of available cores; `-1` (or any negative value) means all cores; `1` runs serially.
    pub fn with_jobs(n_jobs: Option<i64>) -> Result<Exec> {
        let threads = resolve_threads(n_jobs)?;
        if threads <= 1 {
            return Ok(Exec::Serial);
        }
        Ok(Exec::Pool(pool(threads)?))
    }

    /// Number of threads this executor uses.
    pub fn threads(&self) -> usize {
        match self {
            Exec::Serial => 1,
            Exec::Pool(p) => p.current_num_threads(),
        }
    }

    /// Run `f` inside the pool (so nested rayon calls use it), or directly when serial.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            Exec::Serial => f(),
            Exec::Pool(p) => p.install(f),
        }
    }

    /// Reduce over `n_rows` rows in fixed chunks: `chunk(range, acc)` folds the rows of `range`
    /// into an accumulator made by `init`, and `combine(total, partial)` merges the chunks' results
    /// in chunk order. Deterministic for any thread count.
    pub fn chunked_reduce<A, I, F, C>(&self, n_rows: usize, init: I, chunk: F, mut combine: C) -> A
    where
        A: Send,
        I: Fn() -> A + Sync,
        F: Fn(Range<usize>, &mut A) + Sync,
        C: FnMut(&mut A, A),
    {
        let n_chunks = n_rows.div_ceil(CHUNK_ROWS);
        let work = |c: usize| {
            let mut acc = init();
            let start = c * CHUNK_ROWS;
            chunk(start..(start + CHUNK_ROWS).min(n_rows), &mut acc);
            acc
        };
        let partials: Vec<A> = match self {
            Exec::Pool(p) if n_chunks > 1 => {
                p.install(|| (0..n_chunks).into_par_iter().map(work).collect())
            }
            _ => (0..n_chunks).map(work).collect(),
        };
        let mut total = init();
        for partial in partials {
            combine(&mut total, partial);
        }
        total
    }

    /// Sum `width` accumulators over `n_rows` rows: `chunk(range, acc)` adds the contribution of
    /// the rows in `range` into `acc` (which starts at zero). Deterministic for any thread count.
    pub fn chunked_sum<F>(&self, n_rows: usize, width: usize, chunk: F) -> Vec<f64>
    where
        F: Fn(Range<usize>, &mut [f64]) + Sync,
    {
        self.chunked_reduce(
            n_rows,
            || vec![0.0; width],
            |range, acc: &mut Vec<f64>| chunk(range, acc),
            |total, partial| {
                for (t, v) in total.iter_mut().zip(partial) {
                    *t += v;
                }
            },
        )
    }

    /// Fill `out[i] = f(i)` for every row, in parallel chunks.
    pub fn fill<T, F>(&self, out: &mut [T], f: F)
    where
        T: Send,
        F: Fn(usize) -> T + Sync,
    {
        self.fill_blocks(out, |start, block| {
            for (offset, slot) in block.iter_mut().enumerate() {
                *slot = f(start + offset);
            }
        });
    }

    /// Fill `out` block by block in parallel: `f(start, block)` writes the rows
    /// `start..start + block.len()` (for kernels that process several rows at once).
    pub fn fill_blocks<T, F>(&self, out: &mut [T], f: F)
    where
        T: Send,
        F: Fn(usize, &mut [T]) + Sync,
    {
        let body = |(c, block): (usize, &mut [T])| f(c * CHUNK_ROWS, block);
        match self {
            Exec::Pool(p) if out.len() > CHUNK_ROWS => p.install(|| {
                out.par_chunks_mut(CHUNK_ROWS).enumerate().for_each(body);
            }),
            _ => out.chunks_mut(CHUNK_ROWS).enumerate().for_each(body),
        }
    }

    /// Sort with `compare` in parallel (on this executor's pool) when there is enough to gain.
    /// With a total order the result does not depend on the thread count.
    pub fn sort_unstable_by<T, F>(&self, items: &mut [T], compare: F)
    where
        T: Send,
        F: Fn(&T, &T) -> std::cmp::Ordering + Sync,
    {
        match self {
            Exec::Pool(p) if items.len() > PARALLEL_SORT_ITEMS => {
                p.install(|| items.par_sort_unstable_by(&compare))
            }
            _ => items.sort_unstable_by(compare),
        }
    }

    /// Call `f` on each range `items[starts[k]..starts[k + 1]]` of `items` (`starts` from 0 to
    /// `items.len()`, rising): on a pool, the ranges in parallel. For the frequency buckets of a
    /// compression, one large range (no repeat purchase) and many small ones, which sorted one
    /// after the other left all but one thread idle. `f` must give each range the same result
    /// whichever thread runs it.
    pub fn for_each_range<T: Send>(
        &self,
        items: &mut [T],
        starts: &[usize],
        f: impl Fn(&mut [T]) + Sync,
    ) {
        match self {
            Exec::Pool(p) if items.len() > PARALLEL_SORT_ITEMS => p.install(|| {
                let mut ranges = Vec::with_capacity(starts.len().saturating_sub(1));
                let mut rest = items;
                for bounds in starts.windows(2) {
                    let (range, tail) = rest.split_at_mut(bounds[1] - bounds[0]);
                    ranges.push(range);
                    rest = tail;
                }
                ranges.into_par_iter().for_each(&f);
            }),
            _ => {
                for bounds in starts.windows(2) {
                    f(&mut items[bounds[0]..bounds[1]]);
                }
            }
        }
    }

    /// Map `f` over `items` in parallel, keeping order (used for many-model work).
    pub fn map<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        match self {
            Exec::Pool(p) if items.len() > 1 => p.install(|| items.par_iter().map(&f).collect()),
            _ => items.iter().map(f).collect(),
        }
    }

    /// [`Exec::map`] for few items of uneven, large cost (whole model fits): every item stays
    /// a task another thread can take. Rayon's adaptive split stops dividing after a few
    /// levels, and a thread then runs its remaining range serially, so one slow item near the
    /// end of a range kept the other thread idle (`fit_segments` of the Pareto/NBD benchmark
    /// on 2 threads: 1.41 s of work on one thread against 1.05 s on the other, the slow
    /// segment 315 about the difference). Order and results as `map` (each item computed
    /// alone): the same bits for any thread count.
    pub fn map_each<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        match self {
            Exec::Pool(p) if items.len() > 1 => {
                p.install(|| items.par_iter().with_max_len(1).map(&f).collect())
            }
            _ => items.iter().map(f).collect(),
        }
    }
}

/// The number of cores this process may use, looked up once per process.
///
/// `std::thread::available_parallelism` reads the cgroup quota files on every call (about 8 us
/// of system calls, a sixth of P(alive) for CDNOW's 2,357 customers), and every core call asks.
/// Cached with the process id, so that a forked child looks again.
fn available_cores() -> usize {
    static CORES: Mutex<Option<(u32, usize)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut cached = CORES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match *cached {
        Some((process_id, cores)) if process_id == pid => cores,
        _ => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            *cached = Some((pid, cores));
            cores
        }
    }
}

/// Items above which a sort runs in parallel (below, the split costs more than it saves).
const PARALLEL_SORT_ITEMS: usize = 50_000;

fn resolve_threads(n_jobs: Option<i64>) -> Result<usize> {
    let cores = available_cores();
    let requested = match n_jobs {
        Some(n) => n,
        None => match std::env::var(NUM_THREADS_ENV) {
            Ok(text) if !text.trim().is_empty() => text.trim().parse::<i64>().map_err(|_| {
                ClvError::invalid_parameter(
                    NUM_THREADS_ENV,
                    format!("must be an integer number of threads, got {text:?}"),
                )
            })?,
            _ => -1,
        },
    };
    match requested {
        0 => Err(ClvError::invalid_parameter(
            "n_jobs",
            "must be a positive number of threads, or -1 for all cores (got 0)",
        )),
        n if n < 0 => Ok(cores),
        n => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(4096)),
    }
}

struct CachedPool {
    process_id: u32,
    threads: usize,
    pool: Arc<rayon::ThreadPool>,
}

static POOLS: Mutex<Vec<CachedPool>> = Mutex::new(Vec::new());

fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    let pid = std::process::id();
    let mut pools = POOLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if pools.iter().any(|p| p.process_id != pid) {
        // Forked child: the parent's worker threads do not exist here. Forget (not drop) the
        // stale pools, since dropping would signal threads that are gone.
        for stale in pools.drain(..) {
            std::mem::forget(stale.pool);
        }
    }
    if let Some(found) = pools.iter().find(|p| p.threads == threads) {
        return Ok(found.pool.clone());
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("clvrs-{i}"))
        .build()
        .map_err(|e| ClvError::Internal(format!("could not start {threads} threads: {e}")))?;
    let built = Arc::new(built);
    pools.push(CachedPool {
        process_id: pid,
        threads,
        pool: built.clone(),
    });
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_sum_is_identical_for_any_thread_count() {
        let values: Vec<f64> = (0..100_003)
            .map(|i| (i as f64 * 0.37).sin() * 1e3)
            .collect();
        let sum_with = |exec: &Exec| {
            exec.chunked_sum(values.len(), 2, |range, acc| {
                for v in &values[range] {
                    acc[0] += v;
                    acc[1] += v * v;
                }
            })
        };
        let serial = sum_with(&Exec::Serial);
        for jobs in [2, 3, 7] {
            let parallel = sum_with(&Exec::with_jobs(Some(jobs)).unwrap());
            assert_eq!(serial, parallel, "n_jobs = {jobs}");
        }
    }

    #[test]
    fn fill_visits_every_row_once() {
        let mut out = vec![0.0; 3 * CHUNK_ROWS + 5];
        Exec::with_jobs(Some(2))
            .unwrap()
            .fill(&mut out, |i| i as f64);
        assert!(out.iter().enumerate().all(|(i, v)| *v == i as f64));
    }

    #[test]
    fn map_each_lets_other_threads_take_the_items_behind_a_slow_one() {
        // Item 0 waits until every other item is done. `map` leaves items 1.. in item 0's
        // serial range behind it (the wait would time out); `map_each` lets the second thread
        // take them all.
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::{Duration, Instant};
        let items: Vec<usize> = (0..64).collect();
        let done = AtomicUsize::new(0);
        let exec = Exec::with_jobs(Some(2)).unwrap();
        let out = exec.map_each(&items, |&i| {
            if i == 0 {
                let deadline = Instant::now() + Duration::from_secs(5);
                while done.load(Ordering::SeqCst) < items.len() - 1 {
                    if Instant::now() > deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
            Some(i * i)
        });
        let expected: Vec<Option<usize>> = items.iter().map(|&i| Some(i * i)).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn n_jobs_zero_is_rejected() {
        assert!(Exec::with_jobs(Some(0)).is_err());
        assert_eq!(Exec::with_jobs(Some(1)).unwrap().threads(), 1);
    }
}
