//! Client transactions across shards. A transaction reserves one backend connection per shard it
//! touches, starting the shard's own transaction there on first use (savepoints taken before are
//! replayed, so ROLLBACK TO works on every shard). COMMIT goes shard by shard (`multi`); `single`
//! refuses to touch a second shard. Every way out — COMMIT, ROLLBACK, disconnect — ends the shard
//! transactions before the connections go back to their pools.

use std::sync::{Arc, Mutex};

use backend::Conn;
use engine::{EngineError, Outcome, RowSink};

use crate::gate::Gate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// All of a transaction's statements on one shard; touching a second one is an error.
    Single,
    /// Commit shard by shard; a failure part way names the shards that did commit.
    Multi,
}

impl TxMode {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "single" => Some(TxMode::Single),
            "multi" => Some(TxMode::Multi),
            _ => None,
        }
    }
}

type Shared = Arc<tokio::sync::Mutex<Conn>>;

pub struct Transaction {
    /// How each shard's transaction starts (the client's own `START TRANSACTION ...` text).
    start: String,
    /// The session's settings, applied on each reserved connection before it starts.
    prelude: Option<String>,
    mode: TxMode,
    /// (keyspace, shard, connection) in the order shards joined.
    conns: Mutex<Vec<(String, String, Shared)>>,
    /// SAVEPOINT statements so far, replayed on shards that join later.
    savepoints: Mutex<Vec<String>>,
}

impl Transaction {
    pub fn new(start: &str, mode: TxMode, prelude: Option<String>) -> Self {
        Transaction {
            start: start.to_string(),
            prelude,
            mode,
            conns: Mutex::new(Vec::new()),
            savepoints: Mutex::new(Vec::new()),
        }
    }

    fn joined(&self) -> Vec<(String, String, Shared)> {
        self.conns.lock().expect("transaction lock").clone()
    }

    /// The shard's reserved connection, reserving it (and starting its transaction) on first use.
    pub(crate) async fn connection(
        &self,
        gate: &Gate,
        keyspace: &str,
        shard: &str,
    ) -> Result<Shared, EngineError> {
        {
            let conns = self.conns.lock().expect("transaction lock");
            if let Some((_, _, c)) = conns.iter().find(|(k, s, _)| k == keyspace && s == shard) {
                return Ok(c.clone());
            }
            if self.mode == TxMode::Single {
                if let Some((k, s, _)) = conns.first() {
                    return Err(EngineError::Unsupported(format!(
                        "transaction_mode single: this transaction is on shard {k}/{s} and cannot also write shard {keyspace}/{shard}; commit first or SET transaction_mode = 'multi'"
                    )));
                }
            }
        }
        let mut conn = gate.backends.connection(keyspace, shard).await?;
        let replay: Vec<String> = self
            .prelude
            .iter()
            .cloned()
            .chain(std::iter::once(self.start.clone()))
            .chain(
                self.savepoints
                    .lock()
                    .expect("transaction lock")
                    .iter()
                    .cloned(),
            )
            .collect();
        for sql in replay {
            backend::run(&mut conn, shard, &sql, &mut engine::NoRows).await?;
        }
        let shared = Arc::new(tokio::sync::Mutex::new(conn));
        self.conns.lock().expect("transaction lock").push((
            keyspace.to_string(),
            shard.to_string(),
            shared.clone(),
        ));
        Ok(shared)
    }

    pub async fn execute<S: RowSink>(
        &self,
        gate: &Gate,
        keyspace: &str,
        shard: &str,
        sql: &str,
        sink: &mut S,
    ) -> Result<Outcome, EngineError> {
        let conn = self.connection(gate, keyspace, shard).await?;
        let mut conn = conn.lock().await;
        backend::run(&mut conn, shard, sql, sink).await
    }

    /// SAVEPOINT, ROLLBACK TO SAVEPOINT, RELEASE SAVEPOINT: on every joined shard, and remembered
    /// for the shards that join later.
    pub async fn savepoint(
        &self,
        sql: &str,
        name: &str,
        kind: SavepointOp,
    ) -> Result<(), EngineError> {
        for (_, shard, conn) in self.joined() {
            backend::run(&mut *conn.lock().await, &shard, sql, &mut engine::NoRows).await?;
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
    pub async fn commit(self) -> Result<(), EngineError> {
        let joined = self.joined();
        let mut committed = Vec::new();
        for (i, (ks, shard, conn)) in joined.iter().enumerate() {
            if let Err(e) = backend::run(
                &mut *conn.lock().await,
                shard,
                "COMMIT",
                &mut engine::NoRows,
            )
            .await
            {
                for (_, s, c) in &joined[i + 1..] {
                    let _ = backend::run(&mut *c.lock().await, s, "ROLLBACK", &mut engine::NoRows)
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
        for (_, _, conn) in self.joined() {
            let mut conn = conn.lock().await;
            if conn.reset().await.is_err() {
                tracing::warn!("could not reset a backend connection after a transaction");
            }
        }
    }

    /// Rolls back every shard; the connections then go back to their pools clean.
    pub async fn rollback(self) -> Result<(), EngineError> {
        let mut first_error = None;
        for (_, shard, conn) in self.joined() {
            if let Err(e) = backend::run(
                &mut *conn.lock().await,
                &shard,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavepointOp {
    Set,
    RollbackTo,
    Release,
}

fn savepoint_name(stmt: &str) -> &str {
    stmt.rsplit(' ').next().unwrap_or_default()
}
