//! Client transactions across shards. A transaction reserves one backend connection per shard it
//! touches, starting the shard's own transaction there on first use (savepoints taken before are
//! replayed, so ROLLBACK TO works on every shard). COMMIT goes shard by shard (`multi`); `single`
//! refuses to touch a second shard. Every way out — COMMIT, ROLLBACK, disconnect — ends the shard
//! transactions before the connections go back to their pools.

use std::sync::{Arc, Mutex};

use backend::PooledConn;
use engine::EngineError;

use crate::topology::{ShardThread, Topology};

/// A transaction isolation level, as `SET TRANSACTION ISOLATION LEVEL` and
/// `@@transaction_isolation` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    const ALL: [Isolation; 4] = [
        Isolation::ReadUncommitted,
        Isolation::ReadCommitted,
        Isolation::RepeatableRead,
        Isolation::Serializable,
    ];

    /// `READ COMMITTED`: as SQL names it.
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "READ UNCOMMITTED",
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }

    /// `READ-COMMITTED`: the variable's value.
    pub fn value(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "READ-UNCOMMITTED",
            Isolation::ReadCommitted => "READ-COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE-READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }

    /// A value of `@@transaction_isolation`: its name (either form, any case) or its number.
    pub fn parse_value(text: &str) -> Option<Isolation> {
        let text = text.trim().trim_matches(|c| c == '\'' || c == '"');
        if let Ok(n) = text.parse::<usize>() {
            return Self::ALL.get(n).copied();
        }
        Self::ALL
            .into_iter()
            .find(|i| i.value().eq_ignore_ascii_case(text) || i.sql().eq_ignore_ascii_case(text))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// All of a transaction's statements on one shard; touching a second one is an error.
    Single,
    /// Commit shard by shard; a failure part way names the shards that did commit.
    Multi,
    /// Atomic across shards: XA on every shard, a decision record in an unsharded keyspace
    /// before the first XA COMMIT; `resolve` finishes what a crash left prepared.
    TwoPc,
}

impl TxMode {
    pub fn name(self) -> &'static str {
        match self {
            TxMode::Single => "single",
            TxMode::Multi => "multi",
            TxMode::TwoPc => "twopc",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "single" => Some(TxMode::Single),
            "multi" => Some(TxMode::Multi),
            "twopc" => Some(TxMode::TwoPc),
            _ => None,
        }
    }
}

type Shared = Arc<tokio::sync::Mutex<PooledConn>>;

/// One shard's part of a transaction: its reserved connection and that connection's backend
/// thread id (what the shard's lock tables name it by).
#[derive(Clone)]
struct Joined {
    keyspace: String,
    shard: String,
    thread: u32,
    conn: Shared,
}

/// The savepoint each shard takes before an atomic statement's first query there: a failure
/// on one shard undoes the statement on all of them, and the transaction goes on.
const STATEMENT_SAVEPOINT: &str = "shardgate_statement";

pub struct Transaction {
    /// How each shard's transaction starts (the client's own `START TRANSACTION ...` text).
    start: String,
    /// The session's settings, applied on each reserved connection before it starts.
    prelude: Option<String>,
    /// `SET TRANSACTION ...` for this transaction alone, run on each shard before it starts.
    characteristics: Option<String>,
    mode: TxMode,
    /// The shards' parts, in the order shards joined.
    conns: Mutex<Vec<Joined>>,
    /// SAVEPOINT statements so far, replayed on shards that join later.
    savepoints: Mutex<Vec<String>>,
    /// For twopc: the distributed transaction id (the XA gtrid of every branch).
    dtid: Option<String>,
    /// While an atomic statement runs: the shards (keyspace, shard) that took its savepoint.
    atomic: Mutex<Option<Vec<(String, String)>>>,
}

impl Transaction {
    /// `dtid` names a twopc transaction; other modes ignore it.
    pub fn mode(&self) -> TxMode {
        self.mode
    }

    /// The transaction with `SET TRANSACTION ...` run on each shard before its part starts.
    pub fn with_characteristics(mut self, characteristics: Option<String>) -> Self {
        self.characteristics = characteristics;
        self
    }

    pub fn new(start: &str, mode: TxMode, prelude: Option<String>, dtid: String) -> Self {
        Transaction {
            start: start.to_string(),
            prelude,
            characteristics: None,
            mode,
            conns: Mutex::new(Vec::new()),
            savepoints: Mutex::new(Vec::new()),
            dtid: (mode == TxMode::TwoPc).then_some(dtid),
            atomic: Mutex::new(None),
        }
    }

    /// The XA id of one shard's branch: the dtid, and the shard as branch qualifier (shards of
    /// several keyspaces may share a server).
    fn xid(dtid: &str, keyspace: &str, shard: &str) -> String {
        format!("'{dtid}','{keyspace}/{shard}'")
    }

    fn joined(&self) -> Vec<Joined> {
        self.conns.lock().expect("transaction lock").clone()
    }

    /// The shards it holds connections on, with their backend thread ids.
    pub(crate) fn participants(&self) -> Vec<ShardThread> {
        self.joined()
            .into_iter()
            .map(|j| ShardThread {
                keyspace: j.keyspace,
                shard: j.shard,
                thread: j.thread,
            })
            .collect()
    }

    /// How many shards it holds connections on.
    pub(crate) fn shard_count(&self) -> usize {
        self.conns.lock().expect("transaction lock").len()
    }

    /// The shard's reserved connection, its backend thread id, and whether the shard joined
    /// just now: the connection is reserved (and the shard's transaction started) on first use.
    /// During an atomic statement the shard takes the statement's savepoint before its first
    /// query.
    pub(crate) async fn connection(
        &self,
        topo: &Topology,
        keyspace: &str,
        shard: &str,
    ) -> Result<(Shared, u32, bool), EngineError> {
        let (conn, thread, joined) = self.reserve(topo, keyspace, shard).await?;
        let savepoint = self
            .atomic
            .lock()
            .expect("transaction lock")
            .as_mut()
            .is_some_and(|taken| {
                let first = !taken.iter().any(|(k, s)| k == keyspace && s == shard);
                if first {
                    taken.push((keyspace.to_string(), shard.to_string()));
                }
                first
            });
        if savepoint {
            let sql = format!("SAVEPOINT {STATEMENT_SAVEPOINT}");
            conn.lock().await.defer(&sql);
        }
        Ok((conn, thread, joined))
    }

    /// Marks the start of a statement that must apply on all the shards it reaches or on none
    /// (a write to a reference table): each shard takes a savepoint before its part.
    pub(crate) fn begin_atomic(&self) {
        *self.atomic.lock().expect("transaction lock") = Some(Vec::new());
    }

    /// Ends an atomic statement; when it failed, undoes its parts on every shard it reached.
    /// An error here leaves the transaction with part of the statement: the caller must roll
    /// the transaction back.
    pub(crate) async fn end_atomic(&self, failed: bool) -> Result<(), EngineError> {
        let taken = self.atomic.lock().expect("transaction lock").take();
        if !failed {
            return Ok(());
        }
        let undo = format!("ROLLBACK TO SAVEPOINT {STATEMENT_SAVEPOINT}");
        for (keyspace, shard) in taken.unwrap_or_default() {
            let conn = self
                .joined()
                .into_iter()
                .find(|j| j.keyspace == keyspace && j.shard == shard)
                .map(|j| j.conn);
            if let Some(conn) = conn {
                backend::run(&mut *conn.lock().await, &shard, &undo, &mut engine::NoRows).await?;
            }
        }
        Ok(())
    }

    async fn reserve(
        &self,
        topo: &Topology,
        keyspace: &str,
        shard: &str,
    ) -> Result<(Shared, u32, bool), EngineError> {
        {
            let conns = self.conns.lock().expect("transaction lock");
            if let Some(j) = conns
                .iter()
                .find(|j| j.keyspace == keyspace && j.shard == shard)
            {
                return Ok((j.conn.clone(), j.thread, false));
            }
            if self.mode == TxMode::Single {
                if let Some(Joined {
                    keyspace: k,
                    shard: s,
                    ..
                }) = conns.first()
                {
                    return Err(EngineError::Unsupported(format!(
                        "transaction_mode single: this transaction is on shard {k}/{s} and cannot also write shard {keyspace}/{shard}; commit first or SET transaction_mode = 'multi'"
                    )));
                }
            }
        }
        let mut conn = topo.backends.connection(keyspace, shard).await?;
        // The shard's part starts with its first statement, in the same round trip.
        for sql in self.prelude.iter().chain(&self.characteristics) {
            conn.defer(sql);
        }
        match &self.dtid {
            Some(dtid) => conn.defer(&format!("XA START {}", Self::xid(dtid, keyspace, shard))),
            None => conn.defer(&self.start),
        }
        for sql in self.savepoints.lock().expect("transaction lock").iter() {
            conn.defer(sql);
        }
        let thread = conn.id();
        let shared = Arc::new(tokio::sync::Mutex::new(conn));
        self.conns.lock().expect("transaction lock").push(Joined {
            keyspace: keyspace.to_string(),
            shard: shard.to_string(),
            thread,
            conn: shared.clone(),
        });
        Ok((shared, thread, true))
    }

    /// SAVEPOINT, ROLLBACK TO SAVEPOINT, RELEASE SAVEPOINT: on every joined shard, and remembered
    /// for the shards that join later.
    pub async fn savepoint(
        &self,
        sql: &str,
        name: &str,
        kind: SavepointOp,
    ) -> Result<(), EngineError> {
        if self.dtid.is_some() {
            return Err(EngineError::Unsupported(
                "savepoints in transaction_mode twopc (XA has none)".into(),
            ));
        }
        for j in self.joined() {
            backend::run(
                &mut *j.conn.lock().await,
                &j.shard,
                sql,
                &mut engine::NoRows,
            )
            .await?;
        }
        let mut list = self.savepoints.lock().expect("transaction lock");
        let position = list
            .iter()
            .position(|s| savepoint_name(s).eq_ignore_ascii_case(name));
        match kind {
            SavepointOp::Set => {
                // Setting a name again moves it.
                if let Some(p) = position {
                    list.remove(p);
                }
                list.push(format!("SAVEPOINT {name}"));
            }
            // Later savepoints are gone after a rollback to an earlier one, and with a release.
            SavepointOp::RollbackTo => {
                let keep = position.map(|p| p + 1).unwrap_or(list.len());
                list.truncate(keep);
            }
            SavepointOp::Release => {
                let keep = position.unwrap_or(list.len());
                list.truncate(keep);
            }
        }
        Ok(())
    }

    /// Commits shard by shard. On a failure the rest are rolled back and the error names the
    /// shards that had committed.
    pub async fn commit(self, topo: &Topology) -> Result<(), EngineError> {
        if let Some(dtid) = self.dtid.clone() {
            return self.commit_twopc(topo, &dtid).await;
        }
        let joined = self.joined();
        // A shard that cannot take its COMMIT fails the transaction before any shard commits.
        if let Some(j) = joined.iter().find(|j| !Self::reachable(topo, j)) {
            let shard = format!("{}/{}", j.keyspace, j.shard);
            self.rollback(topo).await?;
            return Err(EngineError::Commit(format!(
                "shard {shard}: marked down by the health check, or its connection was lost; committed on: none; rolled back on the others"
            )));
        }
        let mut committed = Vec::new();
        for (
            i,
            Joined {
                keyspace: ks,
                shard,
                conn,
                ..
            },
        ) in joined.iter().enumerate()
        {
            if let Err(e) = backend::run(
                &mut *conn.lock().await,
                shard,
                "COMMIT",
                &mut engine::NoRows,
            )
            .await
            {
                for j in joined[i + 1..].iter().filter(|j| Self::reachable(topo, j)) {
                    let _ = backend::run(
                        &mut *j.conn.lock().await,
                        &j.shard,
                        "ROLLBACK",
                        &mut engine::NoRows,
                    )
                    .await;
                }
                let done = if committed.is_empty() {
                    "none".to_string()
                } else {
                    committed.join(", ")
                };
                return Err(EngineError::Commit(format!(
                    "shard {ks}/{shard}: {e}; committed on: {done}; rolled back on the others"
                )));
            }
            committed.push(format!("{ks}/{shard}"));
        }
        self.release().await;
        Ok(())
    }

    /// Session settings must not follow the connections back to their pools.
    async fn release(&self) {
        if self.prelude.is_none() {
            return;
        }
        for j in self.joined() {
            if !j.conn.lock().await.reset_or_close().await {
                tracing::warn!("could not reset a backend connection after a transaction");
            }
        }
    }

    /// Two-phase commit: XA PREPARE on every shard, the decision recorded, then XA COMMIT on
    /// every shard and the record removed. Before the record a failure rolls everything back;
    /// after it every shard commits (now, or through `resolve` after a crash).
    async fn commit_twopc(self, topo: &Topology, dtid: &str) -> Result<(), EngineError> {
        let joined = self.joined();
        let run = |conn: Shared, shard: String, sql: String| async move {
            backend::run(&mut *conn.lock().await, &shard, &sql, &mut engine::NoRows).await
        };
        if let [Joined {
            keyspace: ks,
            shard,
            conn,
            ..
        }] = joined.as_slice()
        {
            let xid = Self::xid(dtid, ks, shard);
            run(conn.clone(), shard.clone(), format!("XA END {xid}")).await?;
            run(
                conn.clone(),
                shard.clone(),
                format!("XA COMMIT {xid} ONE PHASE"),
            )
            .await?;
            self.release().await;
            return Ok(());
        }
        let mut prepared = Vec::new();
        for Joined {
            keyspace: ks,
            shard,
            conn,
            ..
        } in &joined
        {
            let xid = Self::xid(dtid, ks, shard);
            let step = async {
                run(conn.clone(), shard.clone(), format!("XA END {xid}")).await?;
                run(conn.clone(), shard.clone(), format!("XA PREPARE {xid}")).await
            };
            if let Err(e) = step.await {
                for j in &joined {
                    let x = Self::xid(dtid, &j.keyspace, &j.shard);
                    if !prepared.contains(&x) {
                        let _ = run(j.conn.clone(), j.shard.clone(), format!("XA END {x}")).await;
                    }
                    let _ = run(j.conn.clone(), j.shard.clone(), format!("XA ROLLBACK {x}")).await;
                }
                self.release().await;
                return Err(EngineError::Commit(format!(
                    "shard {ks}/{shard} could not prepare: {e}; rolled back on every shard"
                )));
            }
            prepared.push(xid);
        }
        crash_point("after_prepare");
        crate::twopc::record_commit(topo, dtid).await?;
        crash_point("after_decision");
        let mut failed = Vec::new();
        for Joined {
            keyspace: ks,
            shard,
            conn,
            ..
        } in &joined
        {
            if let Err(e) = run(
                conn.clone(),
                shard.clone(),
                format!("XA COMMIT {}", Self::xid(dtid, ks, shard)),
            )
            .await
            {
                failed.push(format!("{ks}/{shard}: {e}"));
            }
        }
        self.release().await;
        if failed.is_empty() {
            crate::twopc::forget(topo, dtid).await;
            Ok(())
        } else {
            // The decision stands: `shardgate resolve` (or the next start) commits the rest.
            Err(EngineError::Commit(format!(
                "committed, but XA COMMIT is pending on {}; it will be finished by resolve",
                failed.join("; ")
            )))
        }
    }

    /// Whether a shard's connection can take a statement: a shard marked down, or a connection
    /// whose last response was given up, would leave the caller waiting. Their parts are
    /// dropped instead, and the server rolls them back when it sees the connection close.
    fn reachable(topo: &Topology, j: &Joined) -> bool {
        topo.meter(&j.keyspace, &j.shard)
            .is_none_or(|m| m.healthy())
            && j.conn
                .try_lock()
                .is_ok_and(|c| c.is_finished() && !c.is_broken())
    }

    /// Rolls back every shard; the connections then go back to their pools clean.
    pub async fn rollback(self, topo: &Topology) -> Result<(), EngineError> {
        self.conns
            .lock()
            .expect("transaction lock")
            .retain(|j| Self::reachable(topo, j));
        if let Some(dtid) = self.dtid.clone() {
            let mut first_error = None;
            for Joined {
                keyspace: ks,
                shard,
                conn,
                ..
            } in self.joined()
            {
                let xid = Self::xid(&dtid, &ks, &shard);
                let mut c = conn.lock().await;
                let _ = backend::run(
                    &mut c,
                    &shard,
                    &format!("XA END {xid}"),
                    &mut engine::NoRows,
                )
                .await;
                if let Err(e) = backend::run(
                    &mut c,
                    &shard,
                    &format!("XA ROLLBACK {xid}"),
                    &mut engine::NoRows,
                )
                .await
                {
                    first_error.get_or_insert(e);
                }
            }
            self.release().await;
            return first_error.map_or(Ok(()), Err);
        }
        let mut first_error = None;
        for j in self.joined() {
            if let Err(e) = backend::run(
                &mut *j.conn.lock().await,
                &j.shard,
                "ROLLBACK",
                &mut engine::NoRows,
            )
            .await
            {
                first_error.get_or_insert(e);
            }
        }
        self.release().await;
        first_error.map_or(Ok(()), Err)
    }
}

/// Fault injection for the crash tests: `SHARDGATE_TWOPC_CRASH=after_prepare|after_decision`
/// makes the process die at that point of a two-phase commit.
fn crash_point(name: &str) {
    if std::env::var("SHARDGATE_TWOPC_CRASH").is_ok_and(|v| v == name) {
        tracing::error!(point = name, "SHARDGATE_TWOPC_CRASH: aborting");
        std::process::abort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavepointOp {
    Set,
    RollbackTo,
    Release,
}

fn savepoint_name(stmt: &str) -> &str {
    stmt.rsplit(' ').next().unwrap_or_default()
}
