//! One client statement from start to end: the processlist entry, the timeout, warnings,
//! errors and their codes, the query log and the accounting.

use std::sync::atomic::Ordering;
use std::time::Instant;

use engine::{EngineError, Value};
use frontend::ResultWriter;
use tracing::debug;

use crate::error;

use super::dispatch::{is_show_warnings, writes};
use super::registry::{kill_backend_queries, Ending, ABANDON_AFTER, HELD, IDLE, UNHELD};
use super::{ClientStatement, GateSession, StatementError};

impl GateSession {
    /// One statement, answered through `out`; false when it failed (its ERR is written).
    pub(super) async fn one_query(
        &mut self,
        work: ClientStatement<'_>,
        out: &mut ResultWriter<'_>,
    ) -> std::io::Result<bool> {
        self.gate.questions.fetch_add(1, Ordering::Relaxed);
        // A reshard's switch holds statements that have no shard yet: they run on the new
        // shards once it is done. Those of transactions already on shards go on. The switch
        // sees the mark (stored before the hold is read) of a statement that went on, and
        // waits for it to end.
        if self.tx.as_ref().is_none_or(|t| t.shard_count() == 0) && self.pinned.is_empty() {
            self.entry.switch.store(UNHELD, Ordering::SeqCst);
            if self.gate.reshards.holding() {
                self.entry.switch.store(HELD, Ordering::SeqCst);
                self.gate.reshards.wait_switch().await;
                self.entry.switch.store(UNHELD, Ordering::SeqCst);
            }
        }
        self.topo = self.current_topology();
        let started = Instant::now();
        self.last_plan.keyspace.clear();
        self.last_plan.opcode = "None";
        self.last_rows = 0;
        self.entry.shards_touched.store(0, Ordering::Relaxed);
        // Left set only by a statement that was abandoned mid-run.
        self.shard_prepared = None;
        // The statement's text outlives the work it is moved into below.
        let prepared = match &work {
            ClientStatement::Prepared(p, ..) => Some(p.clone()),
            ClientStatement::Text(_) => None,
        };
        let sql = match (&work, &prepared) {
            (ClientStatement::Text(sql), _) => *sql,
            (_, Some(p)) => p.sql.as_str(),
            (_, None) => "",
        };
        let sql_text = sql;
        {
            let shown = sql.char_indices().nth(200).map_or(sql, |(i, _)| &sql[..i]);
            let mut running = self.entry.running.lock().expect("session entry");
            running.text.clear();
            running.text.push_str(shown);
            running.since = Some(Instant::now());
        }
        if !is_show_warnings(sql) {
            self.session.warnings.clear();
        }
        let timer = self.gate.query_timeout.map(|timeout| {
            let (topo, entry) = (self.topo.clone(), self.entry.clone());
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if entry.ending.get() != Ending::No {
                    return;
                }
                entry.timed_out.store(true, Ordering::Relaxed);
                let killed =
                    tokio::time::timeout(ABANDON_AFTER, kill_backend_queries(&topo, &entry));
                let _ = killed.await;
                // A backend that does not even take the KILL: the statement stops waiting.
                tokio::time::sleep(ABANDON_AFTER).await;
                entry.abandon.notify_waiters();
            })
        });
        let entry = self.entry.clone();
        *entry.abandoned.lock().expect("session entry") = None;
        let mut lost_shard = None;
        let result = if self.access.read_only && writes(sql) {
            Err(StatementError::Sql(error::read_only()))
        } else {
            let run = async {
                match work {
                    ClientStatement::Text(sql) => self.statement(sql, out).await,
                    ClientStatement::Prepared(p, literals, params) => {
                        self.execute_prepared(&p, literals, params, out).await
                    }
                }
            };
            tokio::select! {
                result = run => result,
                () = entry.abandon.notified() => {
                    let shard = entry.abandoned.lock().expect("session entry").take();
                    // Connections of the abandoned statement were dropped mid-response: the
                    // pool closes them.
                    entry.backend.lock().expect("session entry").clear();
                    let committing = entry.ending.take() == Ending::Commit;
                    Err(StatementError::Sql(match shard {
                        Some(shard) if committing => error::commit_unknown(
                            &shard,
                            "marked down by the health check while the transaction committed",
                        ),
                        Some(shard) => {
                            let why = format!("shard {shard} was marked down by the health check while this statement ran there");
                            lost_shard = Some(why.clone());
                            error::from_engine(&EngineError::Lost {
                                shard,
                                message: "marked down by the health check while this statement ran there".into(),
                            })
                        }
                        None => error::bug("statement abandoned without a reason"),
                    }))
                }
            }
        };
        // The statement's connection to that shard is gone, and with it the shard's part of
        // any transaction: a client's transaction is rolled back everywhere (the rest must not
        // be committed without it); a statement's own transaction was dropped with the
        // statement. Either way nothing of it stays, and the error says so.
        let result = match (result, lost_shard) {
            (Err(StatementError::Sql(_)), Some(why)) if self.tx.is_some() => {
                self.abort_transaction().await;
                Err(StatementError::Sql(error::interrupted(&format!(
                    "{why}; the transaction was rolled back on every shard"
                ))))
            }
            (Err(StatementError::Sql(_)), Some(why))
                if self
                    .entry
                    .transaction
                    .lock()
                    .expect("session entry")
                    .take()
                    .is_some() =>
            {
                Err(StatementError::Sql(error::interrupted(&format!(
                    "{why}; the statement was rolled back on every shard"
                ))))
            }
            (other, _) => other,
        };
        let result = match timer {
            Some(timer) => {
                timer.abort();
                // The statement failed because its backend queries were killed at the deadline.
                match result {
                    Err(StatementError::Sql(_))
                        if self.entry.timed_out.swap(false, Ordering::Relaxed) =>
                    {
                        Err(StatementError::Sql(error::query_timeout()))
                    }
                    other => {
                        self.entry.timed_out.store(false, Ordering::Relaxed);
                        other
                    }
                }
            }
            None => result,
        };
        // The deadlock detector interrupted this statement to break a cycle across shards.
        let victim = self.entry.deadlock_victim.swap(false, Ordering::AcqRel);
        let result = match result {
            Err(StatementError::Sql(_)) if victim => Err(StatementError::Sql(error::deadlock())),
            other => other,
        };
        if let Err(StatementError::Sql(e)) = &result {
            if e.code == error::ER_LOCK_DEADLOCK {
                if !victim {
                    self.gate
                        .metrics
                        .deadlocks
                        .with_label_values(&["shard"])
                        .inc();
                }
                self.abort_transaction().await;
            }
        }
        if let Err(StatementError::Sql(e)) = &result {
            // SHOW WARNINGS after an error shows the error, as in MySQL.
            self.session.warnings = vec![vec![
                Value::Bytes(b"Error".to_vec()),
                Value::Int(i64::from(e.code)),
                Value::Bytes(e.message.clone().into_bytes()),
            ]];
        }
        self.entry.running.lock().expect("session entry").since = None;
        self.entry.switch.store(IDLE, Ordering::Relaxed);
        {
            let mut keyspace = self.entry.keyspace.lock().expect("session entry");
            if *keyspace != self.session.keyspace {
                keyspace.clone_from(&self.session.keyspace);
            }
        }
        let code = match &result {
            Err(StatementError::Sql(e)) => Some(e.code),
            _ => None,
        };
        self.account(sql_text, started.elapsed(), code);
        match result {
            Ok(()) => Ok(true),
            Err(StatementError::Client(e)) => Err(e),
            Err(StatementError::Sql(e)) => {
                debug!(code = e.code, message = %e.message, "statement failed");
                out.error(&e).await.map(|_| false)
            }
        }
    }

    /// Counts a finished statement in the metrics, and logs it when the query log or the slow
    /// query threshold asks for it.
    pub(super) fn account(&self, sql: &str, elapsed: std::time::Duration, error: Option<u16>) {
        let metrics = &self.gate.metrics;
        let kind = crate::metrics::statement_kind(sql);
        let (keyspace, opcode) = (&self.last_plan.keyspace, self.last_plan.opcode);
        metrics
            .statements
            .with_label_values(&[keyspace.as_str(), kind, opcode])
            .inc();
        metrics
            .statement_seconds
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
        if let Some(code) = error {
            metrics
                .errors
                .with_label_values(&[code.to_string().as_str()])
                .inc();
        }
        let slow = self.gate.slow_query.is_some_and(|t| elapsed >= t);
        if self.gate.query_log || slow {
            let normalized = planner::normalize(sql, false);
            let text = normalized.as_ref().map_or(sql, |n| n.text.as_str());
            tracing::info!(
                target: "shardgate::query",
                sql = text,
                keyspace = keyspace.as_str(),
                opcode,
                shards = self.entry.shards_touched.load(Ordering::Relaxed),
                rows = self.last_rows,
                duration_us = elapsed.as_micros() as u64,
                error = error.unwrap_or(0),
                slow,
                "statement"
            );
        }
    }
}
