//! The `frontend::Handler` of a session: each protocol command, translated to the gate's
//! statement handling.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use engine::{Column, Plan};
use frontend::{Handler, ResultWriter, SqlError, StatusFlags};
use tokio::sync::Notify;

use crate::prepared::PreparedStatement;
use crate::session::Session;
use crate::{error, prepared};

use super::run::SessionExecutor;
use super::{ClientStatement, GateSession};

impl Handler for GateSession {
    async fn query(&mut self, sql: &str, out: &mut ResultWriter<'_>) -> std::io::Result<()> {
        // `a; b; c` from a client that allows it: one result each, the more-results flag on all
        // but the last, stopping at the first error.
        // Tokenizing for semicolons only when there can be more than one statement.
        let several = sql.trim_end().trim_end_matches(';').contains(';');
        // Split after resolving executable comments: a `;` may stand in one.
        let resolved;
        let parts = if several {
            resolved = self.resolve_comments(sql);
            planner::split_statements(&resolved)
        } else {
            Vec::new()
        };
        if parts.len() > 1 && out.multi_statements() {
            for (i, part) in parts.iter().enumerate() {
                out.set_more_results(i + 1 < parts.len());
                if !self.one_query(ClientStatement::Text(part), out).await? {
                    break;
                }
            }
            return Ok(());
        }
        self.one_query(ClientStatement::Text(sql), out)
            .await
            .map(|_| ())
    }

    async fn init_db(&mut self, database: &str) -> Result<(), SqlError> {
        self.use_keyspace(database)
    }

    fn status(&self) -> StatusFlags {
        let mut flags = self.session.status();
        if self.tx.is_some() {
            flags |= StatusFlags::SERVER_STATUS_IN_TRANS;
        }
        flags
    }

    /// A client that goes away mid-transaction has it rolled back on every shard it touched.
    async fn close(&mut self) {
        if let Some(tx) = self.take_tx() {
            let mode = tx.mode().name();
            let outcome = match tx.rollback(&self.topo).await {
                Ok(()) => "rollback_on_disconnect",
                Err(e) => {
                    tracing::warn!(error = %e, "rollback on disconnect failed");
                    "failed"
                }
            };
            self.gate
                .metrics
                .transactions
                .with_label_values(&[mode, outcome])
                .inc();
        }
        self.release_pinned().await;
        self.gate.metrics.client_connections.dec();
        self.gate.sessions.remove(&self.session.conn_id);
    }

    fn kill_signal(&self) -> Option<Arc<Notify>> {
        Some(self.entry.kill.clone())
    }

    async fn reset(&mut self) {
        if let Some(tx) = self.take_tx() {
            if let Err(e) = tx.rollback(&self.topo).await {
                tracing::warn!(error = %e, "rollback on COM_RESET_CONNECTION failed");
            }
        }
        let keyspace = self.session.keyspace.clone();
        self.session = Session::new(self.session.conn_id, &self.entry.user, keyspace);
        self.session.read_target = self.access.read_target;
        if self.branch.is_none() {
            self.session.ddl_strategy = self.gate.migrations.default_strategy;
        }
        self.statements.clear();
        self.named_statements.clear();
        self.release_pinned().await;
    }

    async fn prepare(&mut self, id: u32, sql: &str) -> Result<frontend::Prepared, SqlError> {
        self.topo = self.current_topology();
        let sql = self.resolve_comments(sql);
        let sql = sql.trim().trim_end_matches(';').trim_end();
        self.check_backslashes(sql)?;
        let stmt = Arc::new(PreparedStatement::new(sql));
        let params = u16::try_from(stmt.params).map_err(|_| error::too_many_placeholders())?;
        let columns = self.describe(sql).await?;
        self.statements.insert(id, stmt);
        Ok(frontend::Prepared { params, columns })
    }

    async fn execute(
        &mut self,
        id: u32,
        params: Vec<frontend::Param>,
        out: &mut ResultWriter<'_>,
    ) -> std::io::Result<()> {
        let Some(stmt) = self.statements.get(&id).cloned() else {
            return out.error(&error::unknown_statement(id)).await;
        };
        self.gate.executions.fetch_add(1, Ordering::Relaxed);
        // The frontend decoded exactly the statement's parameter count.
        let literals = params.iter().map(prepared::literal).collect();
        self.one_query(ClientStatement::Prepared(stmt, literals, params), out)
            .await
            .map(|_| ())
    }

    fn close_statement(&mut self, id: u32) {
        self.statements.remove(&id);
    }

    async fn field_list(&mut self, table: &str) -> Result<Vec<Column>, SqlError> {
        self.topo = self.current_topology();
        // The table's columns come from any shard of its keyspace.
        let name =
            sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::with_quote('`', table)]);
        let catalog = self.topo.catalog.load_full();
        let ctx = self.context(&catalog);
        let Plan::Route(route) =
            planner::definition_route(&name, &ctx, |name| format!("SELECT * FROM {name} LIMIT 0"))
                .map_err(error::from_plan)?
        else {
            return Err(error::unsupported("COM_FIELD_LIST on this table"));
        };
        let gate = self.gate.clone();
        let topo = self.topo.clone();
        let mut sink = engine::Collected::default();
        let exec = SessionExecutor {
            topo: &topo,
            deadlocks: &gate.deadlocks,
            entry: &self.entry,
            tx: self.tx.as_ref(),
            prelude: None,
            in_key_order: false,
            pinned: &[],
            prepared: None,
            from_replica: None,
        };
        engine::execute(
            &Plan::Route(route),
            &topo.vschema,
            &exec,
            &mut sink,
            &gate.exec,
        )
        .await
        .map_err(|e| error::from_engine(&e))?;
        Ok(sink.columns)
    }

    fn statistics(&self) -> String {
        let uptime = self.gate.started.elapsed().as_secs();
        let questions = self.gate.questions.load(Ordering::Relaxed);
        let qps = questions as f64 / uptime.max(1) as f64;
        format!(
            "Uptime: {uptime}  Threads: {}  Questions: {questions}  Slow queries: 0  Opens: 0  Open tables: 0  Queries per second avg: {qps:.3}",
            self.gate.sessions.len()
        )
    }
}
