//! Running a plan: the engine's executor over the session's shard connections (in its
//! transaction, or an implicit one for writes to several shards), rows streamed to the client.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use engine::{Column, EngineError, Plan, RowSink, Value};
use frontend::{Handler, OkInfo, ResultWriter};
use tracing::debug;

use crate::deadlock::Detector;
use crate::error;
use crate::prepared::ShardPrepared;
use crate::topology::Topology;
use crate::transaction::{Transaction, TxMode};

use super::registry::SessionEntry;
use super::{GateSession, StatementError};

/// Sends a session's statements to the backends: through its transaction's reserved connections
/// when one is open, else through the pools. Counts statements per shard.
pub(super) struct SessionExecutor<'a> {
    pub(super) topo: &'a Topology,
    pub(super) deadlocks: &'a Detector,
    pub(super) entry: &'a SessionEntry,
    pub(super) tx: Option<&'a Transaction>,
    /// The session's settings, applied on each pooled connection (transactions apply their own).
    pub(super) prelude: Option<&'a str>,
    /// For a write in a transaction of its own: shards one after another, in key order.
    pub(super) in_key_order: bool,
    /// The session's connections that hold its locks (`locks`): its statements to their shards
    /// run there.
    pub(super) pinned: &'a [Pinned],
    /// A prepared execution's statement: sent prepared when the engine sends the text it was
    /// bound to to a shard, for a sink that relays binary rows.
    pub(super) prepared: Option<&'a ShardPrepared>,
    /// A read outside a transaction that the session sends to replicas, and whether the
    /// primary answers when no replica can.
    pub(super) from_replica: Option<bool>,
}

/// A shard connection the session keeps because it holds the session's locks: named locks
/// (GET_LOCK), which the server ties to the connection that took them, or table locks (LOCK
/// TABLES).
pub(super) struct Pinned {
    pub(super) keyspace: String,
    pub(super) shard: String,
    pub(super) conn: tokio::sync::Mutex<backend::PooledConn>,
    pub(super) named_locks: bool,
    pub(super) table_locks: bool,
}

impl engine::Executor for SessionExecutor<'_> {
    fn in_key_order(&self) -> bool {
        self.in_key_order
    }

    async fn reserve_ids(
        &self,
        sequence: &vschema::SequenceRef,
        count: u64,
    ) -> Result<u64, EngineError> {
        self.topo.backends.reserve_ids(sequence, count).await
    }

    async fn execute_autocommit(
        &self,
        keyspace: &str,
        shard: &str,
        sql: &str,
    ) -> Result<engine::Outcome, EngineError> {
        self.topo
            .backends
            .execute(keyspace, shard, sql, &mut engine::NoRows)
            .await
    }

    async fn execute<S: RowSink>(
        &self,
        keyspace: &str,
        shard: &str,
        sql: &str,
        sink: &mut S,
    ) -> Result<engine::Outcome, EngineError> {
        let started = Instant::now();
        if let Some(meter) = self.topo.meter(keyspace, shard) {
            // With auto_failover the statement waits for the new primary instead.
            if !meter.healthy() && !self.topo.backends.auto_failover(keyspace, shard) {
                return Err(EngineError::Backend {
                    shard: shard.to_string(),
                    message: "marked down: it did not answer the last health checks (retried every second)".into(),
                });
            }
        }
        self.entry.shards_touched.fetch_add(1, Ordering::Relaxed);
        debug!(
            keyspace,
            shard,
            sql,
            in_transaction = self.tx.is_some(),
            "send"
        );
        // A session with settings of its own runs text: a statement is parsed when it is
        // prepared, under the sql_mode of that moment, and a connection keeps it prepared for
        // other sessions (and a pooled connection is reset after such a session's statement,
        // which drops its prepared statements).
        let command = match self.prepared {
            Some(p) if p.bound == sql && sink.relays_binary() && self.prelude.is_none() => {
                backend::Command::Execute {
                    sql: &p.sql,
                    params: &p.params,
                    text: sql,
                }
            }
            _ => backend::Command::Query(sql),
        };
        if let Some(pinned) = self
            .pinned
            .iter()
            .find(|p| p.keyspace == keyspace && p.shard == shard)
        {
            let mut conn = pinned.conn.lock().await;
            let thread = conn.id();
            self.entry.register(keyspace, shard, thread);
            let result = backend::run(&mut conn, shard, command, sink).await;
            self.entry.unregister(shard, thread);
            return result;
        }
        // The backend thread is registered while it runs, so KILL QUERY can reach it.
        let result = match self.tx {
            Some(tx) => {
                let (shared, thread, joined) = tx.connection(self.topo, keyspace, shard).await?;
                if joined {
                    self.entry.hold(keyspace, shard, thread);
                }
                let mut conn = shared.lock().await;
                self.entry.register(keyspace, shard, thread);
                let run = backend::run(&mut conn, shard, command, sink);
                // Only a transaction holding locks on several shards can be part of a
                // deadlock that no shard sees.
                let result = self.deadlocks.watch(run, || tx.shard_count() > 1).await;
                self.entry.unregister(shard, thread);
                result
            }
            None => {
                let conn = match self.from_replica {
                    Some(fallback) => {
                        let backends = &self.topo.backends;
                        backends.read_connection(keyspace, shard, fallback).await?
                    }
                    None => self.topo.backends.connection(keyspace, shard).await?,
                };
                let thread = conn.id();
                self.entry.register(keyspace, shard, thread);
                let result = backend::run_pooled(conn, shard, self.prelude, command, sink).await;
                self.entry.unregister(shard, thread);
                result
            }
        };
        if let Some(meter) = self.topo.meter(keyspace, shard) {
            let answered = matches!(result, Ok(_) | Err(EngineError::Server { .. }));
            meter.record(started.elapsed(), answered);
        }
        result
    }
}

/// Runs of a write in a transaction of its own that a deadlock may end before it fails.
pub(super) const IMPLICIT_ATTEMPTS: u32 = 3;

/// Streams engine rows to the client.
pub(super) struct ClientSink<'w, 'a> {
    pub(super) out: &'w mut ResultWriter<'a>,
    pub(super) started: bool,
    pub(super) rows: u64,
    pub(super) rename_first: Option<String>,
}

impl RowSink for ClientSink<'_, '_> {
    async fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
        self.started = true;
        match self.rename_first.take() {
            Some(name) => {
                let mut cols = columns.to_vec();
                if let Some(first) = cols.first_mut() {
                    *first = first
                        .clone()
                        .with_name(name.as_bytes())
                        .with_org_name(name.as_bytes());
                }
                Ok(self.out.columns(&cols).await?)
            }
            None => Ok(self.out.columns(&columns).await?),
        }
    }
    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        self.rows += 1;
        Ok(self.out.row(&row).await?)
    }
    fn relays_binary(&self) -> bool {
        self.out.is_binary()
    }
    async fn binary_row(
        &mut self,
        payload: &[u8],
        columns: &Arc<[Column]>,
    ) -> Result<(), EngineError> {
        if self.out.binary_row(payload).await? {
            self.rows += 1;
            return Ok(());
        }
        self.row(engine::decode_binary_row(payload, columns)?).await
    }
    async fn text_row(&mut self, payload: &[u8], columns: usize) -> Result<(), EngineError> {
        // The shard's own bytes go out when the client reads text too: nothing decoded,
        // nothing allocated.
        if self.out.text_row(payload).await? {
            self.rows += 1;
            return Ok(());
        }
        self.row(engine::decode_text_row(payload, columns)?).await
    }
}

impl GateSession {
    pub(super) async fn run(
        &mut self,
        plan: &Plan,
        out: &mut ResultWriter<'_>,
        rename_first: Option<String>,
    ) -> Result<(), StatementError> {
        if self.access.keyspaces.is_some() {
            if let Some(ks) = plan
                .keyspaces()
                .into_iter()
                .find(|k| !self.access.allows(k))
            {
                return Err(StatementError::Sql(error::access_denied(
                    &self.entry.user,
                    ks,
                )));
            }
        }
        // Plans that run in steps: their first steps (subqueries, an INSERT's SELECT) are checked
        // above, the statement they lead to when it runs.
        if let Plan::PullOut(p) = plan {
            return self.run_pull_out(p, out, rename_first).await;
        }
        if let Plan::InsertSelect(p) = plan {
            return self.run_insert_select(p, out).await;
        }
        let (keyspace, opcode) = crate::metrics::plan_labels(plan);
        self.last_plan.keyspace.clear();
        self.last_plan.keyspace.push_str(keyspace);
        self.last_plan.opcode = opcode;
        let mut sink = ClientSink {
            out,
            started: false,
            rows: 0,
            rename_first,
        };
        let mut result = self.execute(plan, &mut sink).await;
        if self.pinned.iter().any(|p| p.table_locks) {
            if let Err(e) = self.end_locked_statement(result.is_ok()).await {
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        let started = sink.started;
        self.last_rows = sink.rows;
        out.set_status(self.status());
        // The note goes with this statement's rows, or nowhere.
        let note = self.note.take();
        match result {
            Ok(mut outcome) if started => {
                self.session.row_count = -1;
                self.session.found_rows = self.last_rows;
                if let Some(note) = note {
                    outcome.warnings += 1;
                    outcome.warning_rows.push(vec![
                        Value::Bytes(b"Note".to_vec()),
                        Value::Int(1003),
                        Value::Bytes(note.into_bytes()),
                    ]);
                }
                self.session.warnings = kept_warnings(outcome.warning_rows);
                Ok(out.finish_rows(outcome.warnings).await?)
            }
            Ok(outcome) => {
                self.last_rows = outcome.affected_rows;
                self.session.row_count = outcome.affected_rows as i64;
                self.session.warnings = kept_warnings(outcome.warning_rows.clone());
                if outcome.last_insert_id != 0 {
                    self.session.last_insert_id = outcome.last_insert_id;
                }
                let info = OkInfo {
                    affected_rows: outcome.affected_rows,
                    last_insert_id: outcome.last_insert_id,
                    warnings: outcome.warnings,
                    info: outcome.info,
                };
                Ok(out.ok(&info).await?)
            }
            Err(EngineError::Client(e)) => Err(StatementError::Client(e)),
            // An ERR packet may replace the next row of a result set already started.
            Err(e) => Err(StatementError::Sql(error::from_engine(&e))),
        }
    }

    /// Runs a plan's statements through the session's transaction, or the pools. A write that
    /// may change rows in several places applies everywhere or nowhere: in autocommit it runs
    /// as a transaction of its own (run again after a deadlock: nothing of it was visible);
    /// inside the client's transaction each shard takes a savepoint before its part, and a
    /// failure undoes the parts that were done.
    pub(super) async fn execute<S: RowSink>(
        &mut self,
        plan: &Plan,
        sink: &mut S,
    ) -> Result<engine::Outcome, EngineError> {
        // Under LOCK TABLES the statement runs on the connections that hold the locks, and
        // ends with COMMIT or ROLLBACK on all of them (`locks`).
        if !plan.may_write_several() || self.pinned.iter().any(|p| p.table_locks) {
            return self.execute_in(self.tx.as_ref(), plan, sink, false).await;
        }
        if let Some(tx) = &self.tx {
            tx.begin_atomic();
            let result = self.execute_in(Some(tx), plan, sink, false).await;
            match tx.end_atomic(result.is_err()).await {
                Ok(()) => return result,
                Err(undo) => {
                    tracing::warn!(error = %undo, "a failed statement could not be undone on every shard: rolling its transaction back");
                    self.abort_transaction().await;
                    return result.map_err(|e| e.rolled_back());
                }
            }
        }
        let mut mode = self.session.effective_tx_mode();
        if mode == TxMode::Single {
            // One statement's own transaction may span shards: that is what it is for.
            mode = TxMode::Multi;
        }
        let mut attempt = 1;
        loop {
            let tx = self.new_transaction("START TRANSACTION", mode);
            let result = self.execute_in(Some(&tx), plan, sink, true).await;
            let ended = self.finish(tx, result.is_ok()).await;
            *self.entry.transaction.lock().expect("session entry") = None;
            match (result, ended) {
                (Ok(outcome), Ok(())) => return Ok(outcome),
                (Ok(_), Err(e)) => return Err(e),
                (Err(e), _)
                    if attempt < IMPLICIT_ATTEMPTS
                        && (e.is_deadlock()
                            || self.entry.deadlock_victim.swap(false, Ordering::AcqRel)) =>
                {
                    attempt += 1
                }
                (Err(e), _) => return Err(e),
            }
        }
    }

    pub(super) async fn execute_in<S: RowSink>(
        &self,
        tx: Option<&Transaction>,
        plan: &Plan,
        sink: &mut S,
        in_key_order: bool,
    ) -> Result<engine::Outcome, EngineError> {
        let prelude = self.session.prelude();
        let executor = SessionExecutor {
            topo: &self.topo,
            deadlocks: &self.gate.deadlocks,
            entry: &self.entry,
            tx,
            prelude: prelude.as_deref(),
            in_key_order,
            pinned: &self.pinned,
            prepared: self.shard_prepared.as_ref(),
            from_replica: self.replica_read.filter(|_| tx.is_none()),
        };
        engine::execute(plan, &self.topo.vschema, &executor, sink, &self.gate.exec).await
    }

    /// Runs the subqueries, splices their results into the statement, then plans and runs it.
    /// (Boxed as a `Send` future: it and `run` call each other.)
    pub(super) fn run_pull_out<'a, 'w: 'a>(
        &'a mut self,
        pull_out: &'a engine::PullOut,
        out: &'a mut ResultWriter<'w>,
        rename_first: Option<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StatementError>> + Send + 'a>>
    {
        Box::pin(async move {
            let gate = self.gate.clone();
            let topo = self.topo.clone();
            let prelude = self.session.prelude();
            let mut values = Vec::with_capacity(pull_out.subqueries.len());
            for subquery in &pull_out.subqueries {
                let executor = SessionExecutor {
                    topo: &topo,
                    deadlocks: &gate.deadlocks,
                    entry: &self.entry,
                    tx: self.tx.as_ref(),
                    prelude: prelude.as_deref(),
                    in_key_order: false,
                    pinned: &[],
                    prepared: None,
                    from_replica: self.replica_read.filter(|_| self.tx.is_none()),
                };
                let splice = engine::splice(subquery, &topo.vschema, &executor, &gate.exec)
                    .await
                    .map_err(|e| match e {
                        EngineError::Client(e) => StatementError::Client(e),
                        e => StatementError::Sql(error::from_engine(&e)),
                    })?;
                values.push(splice);
            }
            let sql = pull_out.template.render(|hole| match hole {
                engine::Hole::Subquery(i) => values.get(i).map_or("NULL", String::as_str),
                engine::Hole::Matches | engine::Hole::Keys | engine::Hole::Limit => "NULL",
            });
            let plan = self.plan_text(&sql).await?;
            self.run(&plan, out, rename_first).await
        })
    }

    /// INSERT ... SELECT into a sharded table: the SELECT's rows (at most max_buffered_rows),
    /// in the session's transaction, then one INSERT ... VALUES of them, run like any INSERT
    /// (all rows or none).
    /// (Boxed: it runs the INSERT through `run`, which calls it.)
    fn run_insert_select<'a, 'w: 'a>(
        &'a mut self,
        insert: &'a engine::InsertSelect,
        out: &'a mut ResultWriter<'w>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StatementError>> + Send + 'a>>
    {
        Box::pin(async move {
            let rows = {
                let prelude = self.session.prelude();
                let executor = SessionExecutor {
                    topo: &self.topo,
                    deadlocks: &self.gate.deadlocks,
                    entry: &self.entry,
                    tx: self.tx.as_ref(),
                    prelude: prelude.as_deref(),
                    in_key_order: false,
                    pinned: &self.pinned,
                    prepared: None,
                    from_replica: None,
                };
                engine::value_rows(
                    &insert.select,
                    &self.topo.vschema,
                    &executor,
                    &self.gate.exec,
                )
                .await
                .map_err(|e| match e {
                    EngineError::Client(e) => StatementError::Client(e),
                    e => StatementError::Sql(error::from_engine(&e)),
                })?
            };
            if rows.is_empty() {
                self.session.row_count = 0;
                self.last_rows = 0;
                out.set_status(self.status());
                let info = OkInfo {
                    info: "Records: 0  Duplicates: 0  Warnings: 0".into(),
                    ..OkInfo::default()
                };
                return Ok(out.ok(&info).await?);
            }
            let sql = format!("{}{}{}", insert.prefix, rows.join(", "), insert.suffix);
            let mut plan = self.plan_text(&sql).await?;
            match &mut plan {
                Plan::Insert(i) => i.from_select = true,
                Plan::Route(_) | Plan::Send(_) => {}
                _ => return Err(error::bug("INSERT ... SELECT planned as something else").into()),
            }
            self.run(&plan, out, None).await
        })
    }

    pub(super) async fn local_rows(
        &mut self,
        out: &mut ResultWriter<'_>,
        columns: Vec<Column>,
        rows: Vec<Vec<Value>>,
    ) -> Result<(), StatementError> {
        out.columns(&columns).await?;
        for row in rows {
            out.row(&row).await?;
        }
        self.session.row_count = -1;
        out.set_status(self.status());
        Ok(out.finish_rows(0).await?)
    }
}

/// The warnings `SHOW WARNINGS` lists: the first `max_error_count` (64 by default; the count
/// still says how many there were), as a server keeps them.
fn kept_warnings(mut rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    const MAX_ERROR_COUNT: usize = 64;
    rows.truncate(MAX_ERROR_COUNT);
    rows
}
