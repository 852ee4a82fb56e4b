//! What the proxy counts, in one Prometheus registry per [`crate::Gate`]: statements by keyspace,
//! kind and opcode; statement and per-shard latency; errors by MySQL code; client connections;
//! pool use per shard; plan cache hits and misses; transactions by mode and outcome; bytes in and
//! out. `/metrics` renders it in the Prometheus text format.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::plan_cache::PlanCache;
use crate::topology::Topology;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets, in seconds: 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub statements: IntCounterVec,
    pub statement_seconds: HistogramVec,
    pub shard_queries: IntCounterVec,
    pub shard_seconds: HistogramVec,
    pub errors: IntCounterVec,
    pub client_connections: IntGauge,
    pub connections_accepted: IntCounter,
    pub transactions: IntCounterVec,
    pub deadlocks: IntCounterVec,
    pub deadlock_check_seconds: prometheus::Histogram,
    plan_cache: IntCounterVec,
    plan_cache_size: IntGauge,
    pool: IntGaugeVec,
    /// Each replica's lag in seconds (-1: not serving, not replicating or not answering).
    replica_lag: IntGaugeVec,
    /// The reshards this proxy runs: rows copied and total, stream lag, state.
    reshard: IntGaugeVec,
    /// Primary changes: by this proxy (reparent, failover) or followed from another.
    pub primary_changes: IntCounterVec,
    /// How long statements were held while a primary changed.
    pub primary_change_held_seconds: HistogramVec,
    bytes_received: IntCounter,
    bytes_sent: IntCounter,
    /// Client bytes, counted by the frontend.
    pub client_bytes: Arc<frontend::ByteCounts>,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

/// Brings a counter up to a total kept elsewhere.
fn catch_up(c: &IntCounter, total: u64) {
    c.inc_by(total.saturating_sub(c.get()));
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("shardgate".into()), None).expect("valid registry");
        let pool = IntGaugeVec::new(
            Opts::new(
                "pool_connections",
                "Backend connections per shard: in use, idle, and callers waiting for one",
            ),
            &["keyspace", "shard", "state"],
        )
        .expect("valid metric");
        r.register(Box::new(pool.clone())).expect("unique metric");
        let replica_lag = IntGaugeVec::new(
            Opts::new(
                "replica_lag_seconds",
                "How far each replica is behind its primary (-1: not serving)",
            ),
            &["keyspace", "shard", "replica"],
        )
        .expect("valid metric");
        r.register(Box::new(replica_lag.clone()))
            .expect("unique metric");
        let reshard = IntGaugeVec::new(
            Opts::new(
                "reshard",
                "Each reshard this proxy runs: rows_copied, rows_total, lag_ms, and 1 for its \
                 state (copying, verifying, ready, diverged, switching, switched)",
            ),
            &["keyspace", "what"],
        )
        .expect("valid metric");
        r.register(Box::new(reshard.clone()))
            .expect("unique metric");
        Metrics {
            replica_lag,
            reshard,
            primary_changes: counter_vec(
                &r,
                "primary_changes_total",
                "Shard primaries changed: by this proxy (reparent, failover) or followed from another, and whether it worked",
                &["keyspace", "shard", "kind", "result"],
            ),
            primary_change_held_seconds: histogram_vec(
                &r,
                "primary_change_held_seconds",
                "How long a shard's statements were held while its primary changed",
                &["keyspace", "shard"],
            ),
            statements: counter_vec(
                &r,
                "statements_total",
                "Client statements by keyspace, kind and plan opcode",
                &["keyspace", "kind", "opcode"],
            ),
            statement_seconds: histogram_vec(
                &r,
                "statement_duration_seconds",
                "Client statement latency, by kind",
                &["kind"],
            ),
            shard_queries: counter_vec(
                &r,
                "shard_queries_total",
                "Statements sent to each shard",
                &["keyspace", "shard"],
            ),
            shard_seconds: histogram_vec(
                &r,
                "shard_query_duration_seconds",
                "Latency of statements on each shard",
                &["keyspace", "shard"],
            ),
            errors: counter_vec(
                &r,
                "errors_total",
                "Errors returned to clients, by MySQL error code",
                &["code"],
            ),
            client_connections: gauge(&r, "client_connections", "Client connections open now"),
            connections_accepted: counter(
                &r,
                "client_connections_accepted_total",
                "Client connections authenticated",
            ),
            transactions: counter_vec(
                &r,
                "transactions_total",
                "Transactions by mode and outcome",
                &["mode", "outcome"],
            ),
            deadlocks: counter_vec(
                &r,
                "deadlocks_total",
                "Transactions rolled back to break a deadlock: by a shard's InnoDB (shard), or by shardgate for a cycle across shards (distributed)",
                &["kind"],
            ),
            deadlock_check_seconds: {
                let h = prometheus::Histogram::with_opts(
                    HistogramOpts::new(
                        "deadlock_check_duration_seconds",
                        "Time spent looking for deadlocks across shards, per check",
                    )
                    .buckets(BUCKETS.to_vec()),
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            plan_cache: counter_vec(
                &r,
                "plan_cache_lookups_total",
                "Plan cache lookups, by result",
                &["result"],
            ),
            plan_cache_size: gauge(&r, "plan_cache_plans", "Plans in the plan cache"),
            pool,
            bytes_received: counter(&r, "client_bytes_received_total", "Bytes read from clients"),
            bytes_sent: counter(&r, "client_bytes_sent_total", "Bytes written to clients"),
            client_bytes: Arc::new(frontend::ByteCounts::default()),
            registry: r,
        }
    }

    /// The registry in the Prometheus text format, after reading the values kept elsewhere: the
    /// plan cache's counters and the pools of `topo`.
    pub fn render(
        &self,
        plans: &PlanCache,
        topo: &Topology,
        reshards: &[crate::reshard::Record],
    ) -> String {
        self.reshard.reset();
        for r in reshards {
            let copied = r.rows_copied() as i64;
            for (what, n) in [
                ("rows_copied", copied),
                ("rows_total", r.rows_total as i64),
                ("lag_ms", r.lag_ms() as i64),
                (r.state.name(), 1),
            ] {
                self.reshard.with_label_values(&[&r.keyspace, what]).set(n);
            }
        }
        let (hits, misses, size) = plans.stats();
        catch_up(&self.plan_cache.with_label_values(&["hit"]), hits);
        catch_up(&self.plan_cache.with_label_values(&["miss"]), misses);
        self.plan_cache_size.set(size as i64);
        catch_up(
            &self.bytes_received,
            self.client_bytes.received.load(Ordering::Relaxed),
        );
        catch_up(
            &self.bytes_sent,
            self.client_bytes.sent.load(Ordering::Relaxed),
        );
        self.pool.reset();
        self.replica_lag.reset();
        for ks in topo.vschema.keyspaces() {
            for shard in &ks.shards {
                for (replica, lag, serving, _) in topo.backends.replica_lags(&ks.name, &shard.name)
                {
                    let seconds = lag.filter(|_| serving).map_or(-1, |l| l.as_secs() as i64);
                    let replica = format!("{}:{}", replica.host, replica.port);
                    self.replica_lag
                        .with_label_values(&[&ks.name, &shard.name, &replica])
                        .set(seconds);
                }
                if let Some(stats) = topo.backends.pool_stats(&ks.name, &shard.name) {
                    for (state, n) in [
                        ("in_use", stats.in_use),
                        ("idle", stats.idle),
                        ("waiting", stats.waiting),
                    ] {
                        self.pool
                            .with_label_values(&[&ks.name, &shard.name, state])
                            .set(n as i64);
                    }
                }
            }
        }
        let mut out = Vec::new();
        // Encoding to a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Client statements so far by kind (`select`, `insert`, ...), over every keyspace.
    pub fn statements_by_kind(&self) -> std::collections::BTreeMap<String, u64> {
        use prometheus::core::Collector;
        let mut by_kind = std::collections::BTreeMap::new();
        for family in self.statements.collect() {
            for metric in family.get_metric() {
                let kind = metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "kind")
                    .map(|l| l.value().to_string())
                    .unwrap_or_default();
                *by_kind.entry(kind).or_insert(0) += metric.get_counter().get_value() as u64;
            }
        }
        by_kind
    }

    /// Statements sent to one shard so far.
    pub fn shard_query_count(&self, keyspace: &str, shard: &str) -> u64 {
        self.shard_queries
            .with_label_values(&[keyspace, shard])
            .get()
    }
}

/// A statement's kind, from its first keyword: the label of `statements_total`.
pub fn statement_kind(sql: &str) -> &'static str {
    let word = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    const KINDS: &[&str] = &[
        "select",
        "insert",
        "update",
        "delete",
        "replace",
        "set",
        "show",
        "begin",
        "start",
        "commit",
        "rollback",
        "use",
        "create",
        "alter",
        "drop",
        "truncate",
        "explain",
        "describe",
        "savepoint",
        "release",
        "kill",
        "vexplain",
        "with",
        "lock",
        "unlock",
        "do",
        "rename",
        "load",
        "call",
        "grant",
        "revoke",
        "handler",
    ];
    KINDS
        .iter()
        .find(|k| word.eq_ignore_ascii_case(k))
        .copied()
        .unwrap_or("other")
}

/// The keyspace and opcode a plan is counted under.
pub fn plan_labels(plan: &engine::Plan) -> (&str, &'static str) {
    use engine::Plan;
    match plan {
        Plan::Route(r) => (&r.keyspace, r.opcode.name()),
        Plan::Merge(s) => (&s.route.keyspace, s.route.opcode.name()),
        Plan::OwnedWrite(w) => (&w.route.keyspace, w.route.opcode.name()),
        Plan::Insert(i) => (&i.keyspace, "Insert"),
        Plan::Send(s) => (&s.keyspace, "Send"),
        Plan::Join(_) => ("", "Join"),
        Plan::Derived(_) => ("", "Derived"),
        Plan::Concat(_) => ("", "Concatenate"),
        Plan::InsertSelect(_) => ("", "InsertSelect"),
        Plan::OrderedWrite(w) => (&w.route.keyspace, "OrderedWrite"),
        Plan::PullOut(_) => ("", "PullOut"),
        Plan::ShardEval(e) => (&e.keyspace, "ShardEval"),
        Plan::Append(_) => ("", "Append"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_first_keyword() {
        assert_eq!(statement_kind("  SELECT 1"), "select");
        assert_eq!(statement_kind("(select 1) union (select 2)"), "select");
        assert_eq!(statement_kind("insert into t values (1)"), "insert");
        assert_eq!(statement_kind("CALL p()"), "call");
        assert_eq!(statement_kind("HELP 'x'"), "other");
    }
}
