//! Recent activity for the status page: per shard, statements per second and p50/p99 latency
//! over the last ten minutes (sampled every few seconds from cumulative counters, so the hot
//! path only increments atomics), shard health from periodic pings, and statements by total time
//! under their normalised text.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::topology::{Topology, BOUNDS, BUCKETS};

/// How often the sampler runs, and how many samples a shard's history keeps (ten minutes).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLES: usize = 120;
/// Statements tracked by text; beyond this, new texts are not added (the busiest come first).
const TOP_CAPACITY: usize = 1_000;
/// One sample of a shard: statements per second and latency quantiles (seconds) over the
/// interval before it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Point {
    pub qps: f64,
    pub p50: f64,
    pub p99: f64,
}

#[derive(Default)]
struct History {
    last: Option<([u64; BUCKETS], Instant)>,
    points: VecDeque<Point>,
    healthy: Option<bool>,
}

/// A statement text's totals.
#[derive(Default)]
struct Totals {
    count: AtomicU64,
    micros: AtomicU64,
}

#[derive(Default)]
pub struct Activity {
    shards: Mutex<HashMap<(String, String), History>>,
    top: DashMap<String, Totals>,
}

/// The bucket bound under which a `q` share of the `counts` fall.
fn quantile(counts: &[u64; BUCKETS], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let wanted = (q * total as f64).ceil() as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= wanted {
            return BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
        }
    }
    f64::INFINITY
}

impl Activity {
    /// Adds one run of a statement under its normalised text.
    pub fn record_statement(&self, text: &str, elapsed: Duration) {
        let add = |t: &Totals| {
            t.count.fetch_add(1, Ordering::Relaxed);
            t.micros
                .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        };
        if let Some(t) = self.top.get(text) {
            add(&t);
        } else if self.top.len() < TOP_CAPACITY {
            add(&self.top.entry(text.to_string()).or_default());
        }
    }

    /// The `n` statements with the most total time: (text, runs, total time).
    pub fn top(&self, n: usize) -> Vec<(String, u64, Duration)> {
        let mut all: Vec<(String, u64, Duration)> = self
            .top
            .iter()
            .map(|e| {
                (
                    e.key().clone(),
                    e.count.load(Ordering::Relaxed),
                    Duration::from_micros(e.micros.load(Ordering::Relaxed)),
                )
            })
            .collect();
        all.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// Takes a sample of every shard of `topo`.
    pub async fn sample(&self, topo: &Topology) {
        let now = Instant::now();
        let mut shards = self.shards.lock().expect("activity");
        for ks in topo.vschema.keyspaces() {
            for shard in &ks.shards {
                let Some(meter) = topo.meter(&ks.name, &shard.name) else {
                    continue;
                };
                let counts = meter.snapshot();
                let h = shards
                    .entry((ks.name.clone(), shard.name.clone()))
                    .or_default();
                h.healthy = Some(meter.healthy());
                if let Some((before, at)) = h.last {
                    let delta: [u64; BUCKETS] =
                        std::array::from_fn(|i| counts[i].saturating_sub(before[i]));
                    let secs = now.duration_since(at).as_secs_f64().max(0.001);
                    h.points.push_back(Point {
                        qps: delta.iter().sum::<u64>() as f64 / secs,
                        p50: quantile(&delta, 0.5),
                        p99: quantile(&delta, 0.99),
                    });
                    if h.points.len() > SAMPLES {
                        h.points.pop_front();
                    }
                }
                h.last = Some((counts, now));
            }
        }
    }

    /// A shard's samples, oldest first, and whether its last ping answered.
    pub fn shard(&self, keyspace: &str, shard: &str) -> (Vec<Point>, Option<bool>) {
        let shards = self.shards.lock().expect("activity");
        match shards.get(&(keyspace.to_string(), shard.to_string())) {
            Some(h) => (h.points.iter().copied().collect(), h.healthy),
            None => (Vec::new(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_bounds() {
        let mut counts = [0u64; BUCKETS];
        counts[3] = 98; // ≤ 1 ms
        counts[8] = 2; // ≤ 50 ms
        assert_eq!(quantile(&counts, 0.5), 0.001);
        assert_eq!(quantile(&counts, 0.99), 0.05);
        assert_eq!(quantile(&[0; BUCKETS], 0.5), 0.0);
    }

    #[test]
    fn top_statements_by_total_time() {
        let a = Activity::default();
        a.record_statement("select ?", Duration::from_millis(1));
        a.record_statement("select ?", Duration::from_millis(1));
        a.record_statement("update t", Duration::from_millis(5));
        let top = a.top(10);
        assert_eq!(top[0].0, "update t");
        assert_eq!((top[1].1, top[1].2), (2, Duration::from_millis(2)));
    }
}
