//! Connection pools to the shards (one [`ShardPool`] per shard primary) and the
//! [`engine::Executor`] that runs statements on them, streaming rows into the engine's sink.
//!
//! The connections are our own ([`wire`]): rows reach the sink as the packets the shard sent.
//! Connections are reset explicitly when a session's settings were applied to them.

mod pool;
pub mod reparent;
pub mod tls;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use engine::{EngineError, Executor, Outcome, RowSink, Value};
use mysql_common::constants::ColumnType;
pub use pool::{BoxFuture, PoolStats, PooledConn, ShardPool};
use std::sync::Arc;
use vschema::{SequenceRef, Table, VSchema};
use wire::{Conn, Response, WireError};

/// How long a shard may take to hand out a connection before the statement fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Each shard's servers, by keyspace then shard name (looked up without allocating), and the id
/// blocks reserved from sequences.
#[derive(Default)]
pub struct Backends {
    shards: HashMap<String, HashMap<String, Arc<ShardServers>>>,
    sequences: HashMap<SequenceRef, Sequence>,
}

/// What a pool is made from: a reload keeps the pools whose source did not change.
type Source = (vschema::BackendAddr, vschema::PoolSize, vschema::BackendTls);

/// A shard's servers as they stand. A promotion replaces the primary and the replicas in place,
/// so that every holder of this [`Backends`] (statements already running, and those held while
/// it happened) reaches the new primary.
struct ShardServers {
    primary: ArcSwap<Server>,
    replicas: ArcSwap<Replicas>,
    /// Set while the primary changes: statements wait for it.
    hold: Hold,
    /// How long a statement waits for a held shard.
    buffer: Duration,
    /// Whether a primary that stops answering is replaced (and statements wait for that).
    auto_failover: bool,
}

/// A server and the pool of connections to it.
struct Server {
    source: Source,
    pool: Arc<ShardPool>,
}

/// Statements wait here while their shard's primary changes (see [`reparent`]).
#[derive(Default)]
struct Hold {
    held: AtomicBool,
    /// The shard was moved off (see [`Backends::retire`]).
    retired: AtomicBool,
    released: tokio::sync::Notify,
    waiting: AtomicUsize,
}

/// Statements held at once per shard; those beyond fail at once rather than pile up.
const MAX_HELD: usize = 10_000;

impl ShardServers {
    /// The primary's pool, after waiting out a hold.
    async fn primary(&self, name: &str) -> Result<Arc<ShardPool>, EngineError> {
        if self.hold.held.load(Ordering::Acquire) {
            self.wait(name).await?;
        }
        Ok(self.primary.load().pool.clone())
    }

    /// The pool to `source` if it is this shard's primary or one of its replicas.
    fn pool_of(&self, source: &Source) -> Option<Arc<ShardPool>> {
        let primary = self.primary.load();
        if primary.source == *source {
            return Some(primary.pool.clone());
        }
        let replicas = self.replicas.load();
        let replica = replicas.list.iter().find(|r| r.source == *source)?;
        Some(replica.pool.clone())
    }

    async fn wait(&self, name: &str) -> Result<(), EngineError> {
        let unavailable = |message: String| EngineError::Backend {
            shard: name.to_string(),
            message,
        };
        if self.hold.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_HELD {
            self.hold.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(unavailable(format!(
                "its primary is changing and {MAX_HELD} statements already wait for it"
            )));
        }
        let deadline = tokio::time::Instant::now() + self.buffer;
        let waited = async {
            loop {
                let released = self.hold.released.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                if self.hold.retired.load(Ordering::Acquire) {
                    return Err(unavailable(
                        "the keyspace moved to other shards (a reshard switched) while this \
                         statement waited; it was not run: run it again"
                            .into(),
                    ));
                }
                if !self.hold.held.load(Ordering::Acquire) {
                    return Ok(());
                }
                if tokio::time::timeout_at(deadline, released).await.is_err() {
                    return Err(unavailable(format!(
                        "its primary is changing and did not come back within {} ms \
                         (failover_buffer_ms); the statement was not run",
                        self.buffer.as_millis()
                    )));
                }
            }
        }
        .await;
        self.hold.waiting.fetch_sub(1, Ordering::Relaxed);
        waited
    }
}

/// A shard's replicas, handed out in turn among those close enough behind their primary.
#[derive(Default)]
struct Replicas {
    list: Vec<Arc<Replica>>,
    next: AtomicUsize,
    max_lag_ms: u64,
}

/// One replica: its pool, what that was made from, and how far behind it is.
struct Replica {
    source: Source,
    pool: Arc<ShardPool>,
    /// Behind its primary as last measured, in milliseconds; `u64::MAX` when it is not
    /// replicating, did not answer, or has not been asked yet.
    lag_ms: AtomicU64,
    /// Whether it replicates, or is a primary lost to a failover.
    standing: std::sync::Mutex<reparent::Standing>,
}

impl Replica {
    /// Whether it replicates from the primary: not a lost primary yet to rejoin, nor a fenced
    /// one. Only such a replica serves reads, is promoted, or is repointed.
    fn replicating(&self) -> bool {
        matches!(
            *self.standing.lock().expect("replica standing"),
            reparent::Standing::Replicating
        )
    }

    /// Asks the replica how far behind it is (`SHOW SLAVE STATUS`: both threads running, and
    /// Seconds_Behind_Master), on its probe connection. A replica that is not
    /// [`Replica::replicating`] stays out of rotation, whatever it answers.
    async fn measure(&self, timeout: Duration) {
        if !self.replicating() {
            self.lag_ms.store(u64::MAX, Ordering::Relaxed);
            return;
        }
        let status = self
            .pool
            .on_probe(timeout, |conn| {
                Box::pin(conn.query_rows("SHOW SLAVE STATUS"))
            })
            .await;
        let running = |v: &Value| matches!(v, Value::Bytes(b) if b == b"Yes");
        // Slave_IO_Running, Slave_SQL_Running and Seconds_Behind_Master are columns 11, 12 and
        // 33 in MariaDB and MySQL alike.
        let lag = match status.as_deref() {
            Some([row]) if row.len() > 32 && running(&row[10]) && running(&row[11]) => {
                int(&row[32]).map_or(u64::MAX, |s| (s.max(0) as u64).saturating_mul(1000))
            }
            _ => u64::MAX,
        };
        self.lag_ms.store(lag, Ordering::Relaxed);
    }
}

/// A sequence's reserved ids. Handing one out takes a plain lock for a moment; only a statement
/// that finds the block used up waits, on `refill`, while one of them reserves the next.
#[derive(Default)]
struct Sequence {
    block: std::sync::Mutex<IdBlock>,
    refill: tokio::sync::Mutex<()>,
}

impl Sequence {
    /// The first of `count` consecutive ids from the block, if it holds that many.
    fn take(&self, count: u64) -> Option<u64> {
        let mut block = self.block.lock().expect("sequence lock");
        (block.end - block.next >= count).then(|| {
            block.next += count;
            block.next - count
        })
    }
}

/// A server's InnoDB transactions as the deadlock detector reads them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LockWaits {
    /// (waiting thread, blocking thread): the first waits for a lock the second holds or
    /// asked for first.
    pub waits: Vec<(u32, u32)>,
    /// (thread, rows it changed) of every open transaction.
    pub rows_modified: Vec<(u32, u64)>,
}

/// Ids reserved from a sequence table and not handed out yet: `next..end`.
#[derive(Debug, Default)]
struct IdBlock {
    next: u64,
    end: u64,
}

impl Backends {
    /// Creates the pools; connections are opened on first use.
    pub fn new(vschema: &VSchema) -> Self {
        Self::reusing(vschema, &Backends::default())
    }

    /// The pools of `vschema`, taking over `old`'s pools (and their connections) for primaries
    /// and replicas whose address and pool size are unchanged. The sequences' reserved blocks start afresh (ids
    /// left unused in them are skipped, as after a restart).
    pub fn reusing(vschema: &VSchema, old: &Backends) -> Self {
        let mut shards: HashMap<String, HashMap<String, Arc<ShardServers>>> = HashMap::new();
        for ks in vschema.keyspaces() {
            for shard in &ks.shards {
                let source =
                    |addr: &vschema::BackendAddr| (addr.clone(), ks.pool, ks.backend_tls.clone());
                let primary = source(&shard.primary);
                let replicas: Vec<Source> = shard.replicas.iter().map(source).collect();
                let before = old.shards.get(&ks.name).and_then(|s| s.get(&shard.name));
                let servers = match before {
                    // Unchanged: kept whole, with a hold that may be on.
                    Some(b)
                        if b.primary.load().source == primary
                            && b.replicas
                                .load()
                                .list
                                .iter()
                                .map(|r| &r.source)
                                .eq(&replicas)
                            && b.buffer == ks.failover_buffer
                            && b.auto_failover == ks.auto_failover
                            && b.replicas.load().max_lag_ms
                                == ks.max_replica_lag.as_millis() as u64 =>
                    {
                        b.clone()
                    }
                    _ => {
                        // A server that was the primary or a replica keeps its pool whatever
                        // its role now.
                        let pool = |source: &Source| {
                            before
                                .and_then(|b| b.pool_of(source))
                                .unwrap_or_else(|| pool_for(&source.0, &ks.pool, &ks.backend_tls))
                        };
                        let list = replicas
                            .iter()
                            .map(|source| {
                                let kept = before.and_then(|b| {
                                    b.replicas
                                        .load()
                                        .list
                                        .iter()
                                        .find(|r| r.source == *source)
                                        .cloned()
                                });
                                kept.unwrap_or_else(|| {
                                    Arc::new(Replica {
                                        pool: pool(source),
                                        source: source.clone(),
                                        lag_ms: AtomicU64::new(u64::MAX),
                                        standing: std::sync::Mutex::new(
                                            reparent::Standing::Replicating,
                                        ),
                                    })
                                })
                            })
                            .collect();
                        Arc::new(ShardServers {
                            primary: ArcSwap::from_pointee(Server {
                                pool: pool(&primary),
                                source: primary,
                            }),
                            replicas: ArcSwap::from_pointee(Replicas {
                                list,
                                next: AtomicUsize::new(0),
                                max_lag_ms: ks.max_replica_lag.as_millis() as u64,
                            }),
                            hold: Hold::default(),
                            buffer: ks.failover_buffer,
                            auto_failover: ks.auto_failover,
                        })
                    }
                };
                shards
                    .entry(ks.name.clone())
                    .or_default()
                    .insert(shard.name.clone(), servers);
            }
        }
        let sequences = vschema
            .keyspaces()
            .flat_map(|ks| {
                ks.tables
                    .iter()
                    .filter(|(_, t)| **t == Table::Sequence)
                    .map(|(name, _)| SequenceRef {
                        keyspace: ks.name.clone(),
                        table: name.clone(),
                    })
            })
            .map(|s| (s, Sequence::default()))
            .collect();
        Backends { shards, sequences }
    }

    /// The version of the servers behind the pools (taken to be of one kind), once any has
    /// been connected to.
    pub fn server_version(&self) -> Option<(u16, u16, u16)> {
        self.shards
            .values()
            .flat_map(|shards| shards.values())
            .find_map(|s| s.primary.load().pool.server_version())
    }

    /// The state of one shard's primary's pool.
    pub fn pool_stats(&self, keyspace: &str, shard: &str) -> Option<PoolStats> {
        Some(self.pool(keyspace, shard).ok()?.stats())
    }

    /// Whether the shard's primary answers a ping within `timeout` (on a connection of its own,
    /// not one of the pool's).
    pub async fn ping(&self, keyspace: &str, shard: &str, timeout: Duration) -> bool {
        match self.pool(keyspace, shard) {
            Ok(pool) => pool.probe(timeout).await,
            Err(_) => false,
        }
    }

    /// What the server of `keyspace/shard` reports of its InnoDB transactions, asked on the
    /// probe connection within `timeout`. `None` when it did not answer.
    ///
    /// InnoDB fills INNODB_TRX and INNODB_LOCK_WAITS from a cache that it refreshes only when
    /// its last read is more than 100 ms old, so readers that ask more often than that (several
    /// shardgate processes, each checking for deadlocks) would read one old picture for ever.
    /// Readers therefore take turns: each holds the named lock `shardgate_lock_waits` from its
    /// read until 105 ms later, and the next reader's read refreshes the cache.
    pub async fn lock_waits(
        &self,
        keyspace: &str,
        shard: &str,
        timeout: Duration,
    ) -> Option<LockWaits> {
        let pool = self.pool(keyspace, shard).ok()?;
        let waits = pool
            .on_probe(timeout, |conn| {
                Box::pin(async move {
                    let turn = conn
                        .query_rows("SELECT GET_LOCK('shardgate_lock_waits', 1)")
                        .await?;
                    if turn.first().and_then(|r| int(&r[0])) != Some(1) {
                        return Ok(None);
                    }
                    let (major, _, _) = conn.server_version();
                    // MySQL 8 lists lock waits, live, in performance_schema; MariaDB (10 and
                    // later) and MySQL 5.7 in information_schema.
                    let waits = if (8..10).contains(&major) {
                        "SELECT r.PROCESSLIST_ID, NULL, b.PROCESSLIST_ID \
                         FROM performance_schema.data_lock_waits w \
                         JOIN performance_schema.threads r ON r.THREAD_ID = w.REQUESTING_THREAD_ID \
                         JOIN performance_schema.threads b ON b.THREAD_ID = w.BLOCKING_THREAD_ID"
                    } else {
                        "SELECT r.trx_mysql_thread_id, NULL, b.trx_mysql_thread_id \
                         FROM information_schema.INNODB_LOCK_WAITS w \
                         JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id \
                         JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id"
                    };
                    // One statement: InnoDB answers it from one version of its cache.
                    let rows = conn
                        .query_rows(&format!(
                            "SELECT trx_mysql_thread_id, trx_rows_modified, NULL \
                             FROM information_schema.INNODB_TRX UNION ALL {waits}"
                        ))
                        .await?;
                    let mut out = LockWaits::default();
                    for row in rows {
                        let thread = int(&row[0]).unwrap_or(0) as u32;
                        match (int(&row[1]), int(&row[2])) {
                            (_, Some(blocker)) => out.waits.push((thread, blocker as u32)),
                            (Some(rows), None) => out.rows_modified.push((thread, rows as u64)),
                            (None, None) => {}
                        }
                    }
                    Ok(Some(out))
                })
            })
            .await
            .flatten()?;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(105)).await;
            pool.on_probe(Duration::from_secs(1), |conn| {
                Box::pin(conn.query_drop("DO RELEASE_ALL_LOCKS()"))
            })
            .await;
        });
        Some(waits)
    }

    /// `KILL QUERY thread` on the server of `keyspace/shard`, on the probe connection (a pool
    /// whose connections are all busy still takes it). False when it did not answer in time.
    pub async fn kill_query(
        &self,
        keyspace: &str,
        shard: &str,
        thread: u32,
        timeout: Duration,
    ) -> bool {
        let Ok(pool) = self.pool(keyspace, shard) else {
            return false;
        };
        pool.on_probe(timeout, |conn| {
            Box::pin(async move { conn.query_drop(&format!("KILL QUERY {thread}")).await })
        })
        .await
        .is_some()
    }

    /// Takes a new block of at least `count` ids from the sequence table, in one transaction on
    /// its shard: the row lock serialises every shardgate process sharing the sequence.
    async fn reserve_block(
        &self,
        sequence: &SequenceRef,
        count: u64,
    ) -> Result<(u64, u64), EngineError> {
        let ks = &sequence.keyspace;
        let shard = self
            .shards
            .get(ks)
            .and_then(|shards| shards.keys().next())
            .cloned()
            .unwrap_or_default();
        let err = |e| to_engine_error(&format!("{ks}/{shard} (sequence {})", sequence.table), e);
        let mut conn = self.connection(ks, &shard).await?;
        let table = sequence.table.replace('`', "``");
        // A failure leaves the transaction open: the connection is rolled back as it goes back.
        conn.query_drop("START TRANSACTION").await.map_err(err)?;
        let rows = conn
            .query_rows(&format!(
                "SELECT next_id, cache FROM `{table}` WHERE id = 0 FOR UPDATE"
            ))
            .await
            .map_err(err)?;
        let row = rows.first().map(|r| (int(&r[0]), int(&r[1])));
        let Some((Some(next), cache)) = row else {
            return Err(EngineError::Sequence(format!(
                "sequence table {ks}.{} has no row with id = 0 and a next_id; create it with INSERT INTO {} (id, next_id, cache) VALUES (0, 1, 1000)",
                sequence.table, sequence.table
            )));
        };
        let (next, cache) = (next as u64, cache.map(|c| c as u64));
        let n = cache.unwrap_or(1).max(count).max(1);
        let end = next
            .checked_add(n)
            .ok_or_else(|| EngineError::OutOfRange(format!("sequence {}", sequence.table)))?;
        conn.query_drop(&format!(
            "UPDATE `{table}` SET next_id = {end} WHERE id = 0"
        ))
        .await
        .map_err(err)?;
        conn.query_drop("COMMIT").await.map_err(err)?;
        Ok((next, end))
    }

    /// Closes the idle connections of every pool.
    pub async fn disconnect(self) {
        for servers in self.shards.values().flat_map(HashMap::values) {
            servers.primary.load().pool.close_idle().await;
            for replica in &servers.replicas.load().list {
                replica.pool.close_idle().await;
            }
        }
    }

    /// A connection of the shard's pool, for the caller to keep (a transaction reserves one per
    /// shard). Fails fast when the shard does not answer.
    /// While the shard's primary changes, the statement waits (up to the keyspace's
    /// `failover_buffer_ms`) and then gets a connection to the new one.
    /// With `auto_failover`, a primary that cannot be reached is tried again (the statement
    /// was not sent) until the buffer's time is up: meanwhile it may be replaced.
    pub async fn connection(&self, keyspace: &str, shard: &str) -> Result<PooledConn, EngineError> {
        let servers = self.servers(keyspace, shard)?;
        let pool = servers.primary(shard).await?;
        let first = Self::connect(&pool, shard).await;
        if !servers.auto_failover || !matches!(first, Err(EngineError::Backend { .. })) {
            return first;
        }
        let deadline = tokio::time::Instant::now() + servers.buffer;
        let mut last = first;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let pool = servers.primary(shard).await?;
            last = Self::connect(&pool, shard).await;
            if !matches!(last, Err(EngineError::Backend { .. })) {
                break;
            }
        }
        last
    }

    /// Whether the shard's keyspace replaces primaries that stop answering.
    pub fn auto_failover(&self, keyspace: &str, shard: &str) -> bool {
        self.servers(keyspace, shard).is_ok_and(|s| s.auto_failover)
    }

    /// A connection to one of the shard's replicas that are close enough behind their primary,
    /// taken in turn. When none is: with `fallback` the primary's, else an error.
    pub async fn read_connection(
        &self,
        keyspace: &str,
        shard: &str,
        fallback: bool,
    ) -> Result<PooledConn, EngineError> {
        let replicas = self.servers(keyspace, shard)?.replicas.load();
        let n = replicas.list.len();
        let start = replicas.next.fetch_add(1, Ordering::Relaxed);
        let serving = (0..n)
            .map(|i| &replicas.list[(start + i) % n])
            .find(|replica| replica.lag_ms.load(Ordering::Relaxed) <= replicas.max_lag_ms)
            .map(|replica| replica.pool.clone());
        drop(replicas);
        match serving {
            Some(pool) => Self::connect(&pool, shard).await,
            None if fallback => self.connection(keyspace, shard).await,
            None => Err(EngineError::Backend {
                shard: format!("{keyspace}/{shard}"),
                message: "no replica is serving (none listed, not replicating, or further \
                          behind than max_replica_lag_ms), and read_target is replica_only"
                    .into(),
            }),
        }
    }

    /// Each of the shard's replicas, with how far behind it was last measured (`None`: not
    /// replicating, not answering, or not asked yet) and whether that is within its
    /// keyspace's bound.
    pub fn replica_lags(
        &self,
        keyspace: &str,
        shard: &str,
    ) -> Vec<(vschema::BackendAddr, Option<Duration>, bool, Option<String>)> {
        let Ok(servers) = self.servers(keyspace, shard) else {
            return Vec::new();
        };
        let r = servers.replicas.load();
        r.list
            .iter()
            .map(|replica| {
                let lag = replica.lag_ms.load(Ordering::Relaxed);
                (
                    replica.source.0.clone(),
                    (lag != u64::MAX).then(|| Duration::from_millis(lag)),
                    lag <= r.max_lag_ms,
                    match &*replica.standing.lock().expect("replica standing") {
                        reparent::Standing::Replicating => None,
                        reparent::Standing::Rejoin { .. } => {
                            Some("the primary before a failover; not answering yet".into())
                        }
                        reparent::Standing::Fenced(why) => Some(why.clone()),
                    },
                )
            })
            .collect()
    }

    /// Measures how far behind every replica is, each within `timeout`; a primary lost to a
    /// failover that answers again rejoins (or is fenced).
    pub async fn measure_replicas(&self, timeout: Duration) {
        let mut measures = tokio::task::JoinSet::new();
        for servers in self.shards.values().flat_map(HashMap::values) {
            for replica in servers.replicas.load().list.iter().cloned() {
                let servers = servers.clone();
                measures.spawn(async move {
                    let standing = replica.standing.lock().expect("replica standing").clone();
                    if let reparent::Standing::Rejoin { promoted_at } = standing {
                        servers.rejoin(&replica, &promoted_at).await;
                    }
                    replica.measure(timeout).await
                });
            }
        }
        while measures.join_next().await.is_some() {}
    }

    async fn connect(pool: &Arc<ShardPool>, shard: &str) -> Result<PooledConn, EngineError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, pool.get()).await {
            Ok(conn) => conn.map_err(|e| to_engine_error(shard, e)),
            Err(_) => Err(EngineError::Backend {
                shard: shard.to_string(),
                message: format!("no connection within {CONNECT_TIMEOUT:?}"),
            }),
        }
    }

    /// The result columns of `sql` as the shard's own COM_STMT_PREPARE reports them, without
    /// running it.
    pub async fn describe(
        &self,
        keyspace: &str,
        shard: &str,
        sql: &str,
    ) -> Result<Vec<engine::Column>, EngineError> {
        let mut conn = self.connection(keyspace, shard).await?;
        conn.describe(sql)
            .await
            .map_err(|e| to_engine_error(shard, e))
    }

    /// The columns of the tables of the shard's database, or with `information_schema` those of
    /// the server's `information_schema` tables, each table's in table order.
    pub async fn table_columns(
        &self,
        keyspace: &str,
        shard: &str,
        information_schema: bool,
    ) -> Result<Vec<TableColumn>, EngineError> {
        let mut conn = self.connection(keyspace, shard).await?;
        let schema = if information_schema {
            "'information_schema'"
        } else {
            "DATABASE()"
        };
        let rows = conn
            .query_rows(&format!(
                "SELECT TABLE_NAME, COLUMN_NAME, EXTRA LIKE '%INVISIBLE%', COLUMN_KEY = 'PRI', \
                 DATA_TYPE, COLLATION_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = {schema} ORDER BY TABLE_NAME, ORDINAL_POSITION"
            ))
            .await
            .map_err(|e| to_engine_error(shard, e))?;
        Ok(rows
            .iter()
            .map(|r| TableColumn {
                table: text(&r[0]),
                column: text(&r[1]),
                invisible: int(&r[2]) == Some(1),
                primary: int(&r[3]) == Some(1),
                data_type: text(&r[4]),
                collation: (r[5] != Value::NULL).then(|| text(&r[5])),
            })
            .collect())
    }

    fn servers(&self, keyspace: &str, shard: &str) -> Result<&Arc<ShardServers>, EngineError> {
        self.shards
            .get(keyspace)
            .and_then(|shards| shards.get(shard))
            .ok_or_else(|| EngineError::Backend {
                shard: format!("{keyspace}/{shard}"),
                message: "[BUG] no pool for this shard".into(),
            })
    }

    /// The pool of the shard's primary as it is now (no waiting out a hold: for the proxy's
    /// own questions on its probe connection).
    fn pool(&self, keyspace: &str, shard: &str) -> Result<Arc<ShardPool>, EngineError> {
        Ok(self.servers(keyspace, shard)?.primary.load().pool.clone())
    }
}

fn pool_for(
    addr: &vschema::BackendAddr,
    size: &vschema::PoolSize,
    tls: &vschema::BackendTls,
) -> Arc<ShardPool> {
    let opts = wire::ConnOpts {
        host: addr.host.clone(),
        port: addr.port,
        user: addr.user.clone(),
        password: addr.password.clone().unwrap_or_default(),
        database: addr.database.clone(),
        tls: tls::client_config(tls),
    };
    ShardPool::new(opts, size.min, size.max)
}

/// A column as `information_schema.COLUMNS` lists it.
#[derive(Debug, Clone)]
pub struct TableColumn {
    pub table: String,
    pub column: String,
    /// MariaDB's INVISIBLE.
    pub invisible: bool,
    /// Part of the primary key.
    pub primary: bool,
    /// DATA_TYPE: `int`, `varchar`, ...
    pub data_type: String,
    /// COLLATION_NAME; none for numbers, temporals and binary strings.
    pub collation: Option<String>,
}

/// An integer column of a row the proxy asked for itself.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

fn to_engine_error(shard: &str, e: WireError) -> EngineError {
    match e {
        WireError::Server {
            code,
            state,
            message,
        } => EngineError::Server {
            shard: shard.to_string(),
            code,
            state,
            message,
        },
        other => EngineError::Backend {
            shard: shard.to_string(),
            message: other.to_string(),
        },
    }
}

impl Backends {
    /// Runs `sql` on a pooled connection after `prelude` (the session's `SET ...`).
    pub async fn execute_with<S: RowSink>(
        &self,
        keyspace: &str,
        shard: &str,
        prelude: &str,
        sql: &str,
        sink: &mut S,
    ) -> Result<Outcome, EngineError> {
        run_pooled(
            self.connection(keyspace, shard).await?,
            shard,
            Some(prelude),
            sql,
            sink,
        )
        .await
    }
}

/// A statement for a shard.
#[derive(Clone, Copy)]
pub enum Command<'a> {
    /// Its text, run as it is (COM_QUERY).
    Query(&'a str),
    /// A statement with `?` markers run prepared with these parameters, its rows in the binary
    /// protocol; `text` (the same statement with the values in place) runs instead when the
    /// shard will not prepare it.
    Execute {
        sql: &'a str,
        params: &'a [(Value, ColumnType)],
        text: &'a str,
    },
}

impl<'a> From<&'a str> for Command<'a> {
    fn from(sql: &'a str) -> Self {
        Command::Query(sql)
    }
}

impl<'a> From<&'a String> for Command<'a> {
    fn from(sql: &'a String) -> Self {
        Command::Query(sql)
    }
}

/// Runs a statement on a pooled connection (after `prelude`, the session's settings, if any),
/// then resets the connection when a prelude changed it, so no session state goes back to the
/// pool.
pub async fn run_pooled<'a, S: RowSink>(
    mut conn: PooledConn,
    shard: &str,
    prelude: Option<&str>,
    command: impl Into<Command<'a>>,
    sink: &mut S,
) -> Result<Outcome, EngineError> {
    if let Some(prelude) = prelude {
        conn.defer(prelude);
    }
    let result = run(&mut conn, shard, command, sink).await;
    // A connection that cannot be reset is closed instead of returned.
    if prelude.is_some() && conn.reset().await.is_err() {
        conn.set_finished(false);
    }
    result
}

/// Runs one statement on a connection and streams its rows into `sink`.
pub async fn run<'a, S: RowSink>(
    conn: &mut PooledConn,
    shard: &str,
    command: impl Into<Command<'a>>,
    sink: &mut S,
) -> Result<Outcome, EngineError> {
    conn.set_finished(false);
    let outcome = read_response(conn, shard, command.into(), sink).await;
    // A server error ends its response too; anything else may leave packets unread.
    conn.set_finished(matches!(outcome, Ok(_) | Err(EngineError::Server { .. })));
    // The statement was sent: a connection that broke now leaves its outcome unknown.
    outcome.map_err(|e| match e {
        EngineError::Backend { shard, message } => EngineError::Lost { shard, message },
        other => other,
    })
}

async fn read_response<S: RowSink>(
    conn: &mut Conn,
    shard: &str,
    command: Command<'_>,
    sink: &mut S,
) -> Result<Outcome, EngineError> {
    let err = |e| to_engine_error(shard, e);
    let (response, binary) = match command {
        Command::Query(sql) => (conn.query(sql).await, false),
        Command::Execute { sql, params, text } => match conn.execute(sql, params).await {
            Ok(Some(response)) => (Ok(response), true),
            Ok(None) => (conn.query(text).await, false),
            Err(e) => (Err(e), true),
        },
    };
    if let Response::Rows(columns) = response.map_err(err)? {
        if !columns.is_empty() {
            let count = columns.len();
            sink.columns(columns.clone()).await?;
            while let Some(row) = conn.next_row().await.map_err(err)? {
                if binary {
                    sink.binary_row(row, &columns).await?;
                } else {
                    sink.text_row(row, count).await?;
                }
            }
        }
    }
    let summary = conn.summary();
    let mut outcome = Outcome {
        affected_rows: summary.affected_rows,
        last_insert_id: summary.last_insert_id,
        warnings: summary.warnings,
        info: summary.info.clone(),
        warning_rows: Vec::new(),
    };
    // Anything after the first result (a stored procedure's status) is read and dropped so the
    // connection stays clean.
    conn.finish().await.map_err(err)?;
    // The connection goes back to a pool: read its warnings now, while they exist.
    if outcome.warnings > 0 {
        outcome.warning_rows = conn.query_rows("SHOW WARNINGS").await.map_err(err)?;
    }
    Ok(outcome)
}

impl Executor for Backends {
    async fn reserve_ids(&self, sequence: &SequenceRef, count: u64) -> Result<u64, EngineError> {
        let cell = self.sequences.get(sequence).ok_or_else(|| {
            EngineError::Bug(format!(
                "no sequence {}.{}",
                sequence.keyspace, sequence.table
            ))
        })?;
        loop {
            if let Some(first) = cell.take(count) {
                return Ok(first);
            }
            let _refilling = cell.refill.lock().await;
            // Another statement may have refilled it meanwhile.
            if let Some(first) = cell.take(count) {
                return Ok(first);
            }
            // The rest of the old block is skipped so that a statement's ids are consecutive.
            let (next, end) = self.reserve_block(sequence, count).await?;
            *cell.block.lock().expect("sequence lock") = IdBlock { next, end };
        }
    }

    async fn execute<S: RowSink>(
        &self,
        keyspace: &str,
        shard: &str,
        sql: &str,
        sink: &mut S,
    ) -> Result<Outcome, EngineError> {
        let mut conn = self.connection(keyspace, shard).await?;
        run(&mut conn, shard, sql, sink).await
    }
}
