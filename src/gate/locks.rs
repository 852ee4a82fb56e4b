//! Locks that live on a server connection: named locks (`GET_LOCK` and friends) and table locks
//! (`LOCK TABLES`). The session keeps the connections that hold them ([`Pinned`]); its
//! statements to those shards run there, and the connections are reset (which releases every
//! lock) before they go back to their pools.
//!
//! Named locks go to the first shard of the keyspace, so every client's locks of a keyspace meet
//! on one server. Table locks are taken on every shard of the tables' keyspaces, with
//! autocommit off there: each statement then ends with COMMIT, or ROLLBACK when it failed, on
//! every such shard, so a statement over several shards still applies everywhere or nowhere
//! (COMMIT does not release table locks).

use engine::{EngineError, Plan};
use frontend::{ResultWriter, SqlError};
use sqlparser::ast::LockTable;

use crate::error;

use super::run::Pinned;
use super::{GateSession, StatementError};

impl GateSession {
    /// A statement of named locks (`SELECT GET_LOCK('m', 10)`): on the connection that holds
    /// the session's locks of its keyspace's first shard, pinned at the first one.
    pub(super) async fn named_lock_statement(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let catalog = self.topo.catalog.load_full();
        let keyspace = self
            .context(&catalog)
            .default_keyspace()
            .map_err(error::from_plan)?;
        let (keyspace, shard) = (keyspace.name.clone(), keyspace.shards[0].name.clone());
        let at = self.pin(&keyspace, &shard).await?;
        self.pinned[at].named_locks = true;
        let plan = Plan::Route(engine::Route {
            keyspace,
            opcode: engine::Opcode::Destination { shard },
            query: sql.to_string(),
            elsewhere: None,
        });
        self.run(&plan, out, None).await
    }

    /// `LOCK TABLES`: the open transaction commits and earlier table locks go, as in MySQL;
    /// then every shard of the tables' keyspaces takes its tables' locks.
    pub(super) async fn lock_tables(&mut self, tables: &[LockTable]) -> Result<(), SqlError> {
        if !self.session.autocommit {
            return Err(error::unsupported("LOCK TABLES with autocommit=0"));
        }
        self.end_transaction(true).await?;
        self.unlock_tables().await;
        let catalog = self.topo.catalog.load_full();
        let statements =
            planner::lock_tables(tables, &self.context(&catalog)).map_err(error::from_plan)?;
        let topo = self.topo.clone();
        for (keyspace, statement) in statements {
            let ks = topo
                .vschema
                .keyspace(&keyspace)
                .ok_or_else(|| error::unknown_database(&keyspace))?;
            for shard in &ks.shards {
                let locked = async {
                    let at = self.pin(&keyspace, &shard.name).await?;
                    self.pinned[at].table_locks = true;
                    let mut conn = self.pinned[at].conn.lock().await;
                    for sql in ["SET autocommit = 0", statement.as_str()] {
                        backend::run(&mut conn, &shard.name, sql, &mut engine::NoRows)
                            .await
                            .map_err(|e| error::from_engine(&e))?;
                    }
                    Ok::<_, SqlError>(())
                };
                if let Err(e) = locked.await {
                    self.unlock_tables().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Ends a statement run under LOCK TABLES: COMMIT on every shard that holds table locks, or
    /// ROLLBACK when the statement failed.
    pub(super) async fn end_locked_statement(
        &mut self,
        succeeded: bool,
    ) -> Result<(), EngineError> {
        let end = if succeeded { "COMMIT" } else { "ROLLBACK" };
        let mut outcome = Ok(());
        for pinned in self.pinned.iter().filter(|p| p.table_locks) {
            let mut conn = pinned.conn.lock().await;
            if let Err(e) = backend::run(&mut conn, &pinned.shard, end, &mut engine::NoRows).await {
                outcome = outcome.and(Err(e));
            }
        }
        outcome.map(|_| ())
    }

    /// `UNLOCK TABLES` (also before new table locks, and when a transaction starts): the
    /// shards give up the session's table locks; a connection that holds no named locks goes
    /// back to its pool.
    pub(super) async fn unlock_tables(&mut self) {
        for pinned in self.pinned.iter_mut().filter(|p| p.table_locks) {
            pinned.table_locks = false;
            let conn = pinned.conn.get_mut();
            for sql in ["ROLLBACK", "UNLOCK TABLES", "SET autocommit = 1"] {
                if backend::run(conn, &pinned.shard, sql, &mut engine::NoRows)
                    .await
                    .is_err()
                {
                    // Closed rather than kept with its locks.
                    pinned.named_locks = false;
                    break;
                }
            }
        }
        let (keep, release): (Vec<Pinned>, Vec<Pinned>) = std::mem::take(&mut self.pinned)
            .into_iter()
            .partition(|p| p.named_locks);
        self.pinned = keep;
        release_all(release).await;
    }

    /// Gives up every lock of the session: each pinned connection is reset (which releases
    /// them) before it goes back to its pool, or closed.
    pub(super) async fn release_pinned(&mut self) {
        release_all(std::mem::take(&mut self.pinned)).await;
    }

    /// The index of the session's connection to `keyspace`/`shard`, pinned now if needed, with
    /// the session's settings.
    async fn pin(&mut self, keyspace: &str, shard: &str) -> Result<usize, SqlError> {
        if let Some(at) = self
            .pinned
            .iter()
            .position(|p| p.keyspace == keyspace && p.shard == shard)
        {
            return Ok(at);
        }
        let mut conn = self
            .topo
            .backends
            .connection(keyspace, shard)
            .await
            .map_err(|e| error::from_engine(&e))?;
        if let Some(prelude) = self.session.prelude() {
            backend::run(&mut conn, shard, &prelude, &mut engine::NoRows)
                .await
                .map_err(|e| error::from_engine(&e))?;
        }
        self.pinned.push(Pinned {
            keyspace: keyspace.to_string(),
            shard: shard.to_string(),
            conn: tokio::sync::Mutex::new(conn),
            named_locks: false,
            table_locks: false,
        });
        Ok(self.pinned.len() - 1)
    }
}

async fn release_all(pinned: Vec<Pinned>) {
    for p in pinned {
        p.conn.into_inner().reset_or_close().await;
    }
}
