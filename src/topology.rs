//! The reloadable snapshot the proxy serves from: the keyspace map, the pools that serve it, each
//! shard's meters and the tables' columns. A reload swaps in a new [`Topology`]; a statement
//! works on the one it started with. Everything that runs statements (the gate, transactions,
//! two-phase commit, the deadlock detector, the status page) depends on this module, never on
//! the gate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use backend::Backends;
use engine::EngineError;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use vschema::VSchema;

/// A shard connection by its server's thread id: what KILL QUERY and the servers' lock tables
/// name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardThread {
    pub keyspace: String,
    pub shard: String,
    pub thread: u32,
}

/// What a reload replaces as one: the keyspace map and the pools that serve it. A statement
/// works on one snapshot from its start to its end.
pub struct Topology {
    pub vschema: Arc<VSchema>,
    pub backends: Backends,
    /// Each shard's counters, by keyspace then shard (looked up without allocating).
    meters: HashMap<String, HashMap<String, ShardMeter>>,
    /// The tables' columns, loaded from a shard of each keyspace when a plan needs them.
    pub catalog: ArcSwap<planner::Catalog>,
}

impl Topology {
    /// `shard_queries` and `shard_seconds`: the metrics' series, labelled by keyspace and shard.
    pub(crate) fn new(
        vschema: Arc<VSchema>,
        backends: Backends,
        shard_queries: &IntCounterVec,
        shard_seconds: &HistogramVec,
    ) -> Self {
        let meters = vschema
            .keyspaces()
            .map(|ks| {
                let shards = ks
                    .shards
                    .iter()
                    .map(|s| {
                        let labels = [ks.name.as_str(), s.name.as_str()];
                        let meter = ShardMeter::new(
                            shard_queries.with_label_values(&labels),
                            shard_seconds.with_label_values(&labels),
                        );
                        (s.name.clone(), meter)
                    })
                    .collect();
                (ks.name.clone(), shards)
            })
            .collect();
        Topology {
            vschema,
            backends,
            meters,
            catalog: ArcSwap::default(),
        }
    }

    /// Loads the column lists of `keyspace`'s tables from its first shard.
    pub(crate) async fn load_columns(&self, keyspace: &str) -> Result<(), EngineError> {
        // information_schema's own tables: as any server has them.
        let own = keyspace == planner::INFORMATION_SCHEMA;
        let ks = match own {
            true => self.vschema.keyspaces().next(),
            false => self.vschema.keyspace(keyspace),
        }
        .ok_or_else(|| EngineError::UnknownKeyspace(keyspace.to_string()))?;
        let columns = self
            .backends
            .table_columns(&ks.name, &ks.shards[0].name, own)
            .await?;
        let columns = columns.into_iter().map(|c| planner::CatalogColumn {
            order: planner::KeyOrder::of(&c.data_type, c.collation.as_deref()),
            table: c.table,
            column: c.column,
            invisible: c.invisible,
            primary: c.primary,
        });
        let catalog = self.catalog.load().with_keyspace(keyspace, columns);
        self.catalog.store(Arc::new(catalog));
        Ok(())
    }

    /// Forgets the column lists of keyspaces whose tables changed.
    pub(crate) fn forget_columns<'k>(&self, keyspaces: impl IntoIterator<Item = &'k str>) {
        for ks in keyspaces {
            if let Some(catalog) = self.catalog.load().without_keyspace(ks) {
                self.catalog.store(Arc::new(catalog));
            }
        }
    }

    pub fn meter(&self, keyspace: &str, shard: &str) -> Option<&ShardMeter> {
        self.meters.get(keyspace)?.get(shard)
    }

    /// Whose rules executable comments follow: the backends' (MariaDB from major version 10)
    /// once one has answered, else those of the MySQL version shardgate announces.
    pub fn server_kind(&self) -> planner::ServerKind {
        self.backends
            .server_version()
            .map_or(planner::ServerKind::MYSQL_8, |v| {
                planner::ServerKind::new(v.0 >= 10, v)
            })
    }
}

/// Upper bounds of the latency buckets, in seconds (the last bucket is unbounded).
pub(crate) const BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
pub(crate) const BUCKETS: usize = 17;

/// What one shard's statements are counted in: the Prometheus series and the status page's
/// histogram.
pub struct ShardMeter {
    queries: IntCounter,
    seconds: Histogram,
    buckets: [AtomicU64; BUCKETS],
    /// False once the health check failed twice in a row, until it succeeds again.
    healthy: AtomicBool,
    failed_checks: AtomicU32,
    /// Statements the server answered (rows, OK or its own error) since the last health check.
    answered: AtomicU64,
}

/// Health checks that fail in a row before a shard is marked down.
const FAILED_CHECKS: u32 = 2;

impl ShardMeter {
    pub fn new(queries: IntCounter, seconds: Histogram) -> Self {
        ShardMeter {
            queries,
            seconds,
            buckets: Default::default(),
            healthy: AtomicBool::new(true),
            failed_checks: AtomicU32::new(0),
            answered: AtomicU64::new(0),
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records one health check; returns the new state when it changed. A server that answered
    /// statements since the last check is alive even if its ping was late: a loaded machine
    /// can delay a ping past its timeout while the server keeps serving, and marking it down
    /// would abandon the statements it is answering.
    pub fn checked(&self, pinged: bool) -> Option<bool> {
        let served = self.answered.swap(0, Ordering::Relaxed) > 0;
        if pinged || (served && self.healthy()) {
            self.failed_checks.store(0, Ordering::Relaxed);
            return (!self.healthy.swap(true, Ordering::Relaxed)).then_some(true);
        }
        let failed = self.failed_checks.fetch_add(1, Ordering::Relaxed) + 1;
        (failed >= FAILED_CHECKS && self.healthy.swap(false, Ordering::Relaxed)).then_some(false)
    }

    pub fn record(&self, elapsed: Duration, answered: bool) {
        if answered {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
        let s = elapsed.as_secs_f64();
        self.queries.inc();
        self.seconds.observe(s);
        let i = BOUNDS.partition_point(|b| *b < s);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter() -> ShardMeter {
        let queries = IntCounter::new("q", "q").unwrap();
        let seconds = Histogram::with_opts(prometheus::HistogramOpts::new("s", "s")).unwrap();
        ShardMeter::new(queries, seconds)
    }

    #[test]
    fn missed_pings_mark_a_shard_down_unless_it_kept_answering() {
        let m = meter();
        assert_eq!(m.checked(false), None);
        assert_eq!(m.checked(false), Some(false), "two misses in a row");
        assert!(!m.healthy());
        assert_eq!(m.checked(true), Some(true));

        // Late pings, but statements answered in between: still up.
        for _ in 0..5 {
            m.record(Duration::from_millis(1), true);
            assert_eq!(m.checked(false), None);
        }
        assert!(m.healthy());

        // Statements that failed without an answer are no sign of life.
        m.record(Duration::from_millis(1), false);
        assert_eq!(m.checked(false), None);
        assert_eq!(m.checked(false), Some(false));
        // Once down, only a ping brings it back.
        m.record(Duration::from_millis(1), true);
        assert_eq!(m.checked(false), None);
        assert!(!m.healthy());
    }
}
