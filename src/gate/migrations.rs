//! Online schema changes as a session sees them: `ALTER TABLE` under `ddl_strategy = 'online'`,
//! `SHOW SHARDGATE MIGRATIONS`, `ALTER SHARDGATE MIGRATION '<id>' CANCEL | RETRY`.

use engine::{Plan, Value};
use frontend::ResultWriter;
use sqlparser::ast::Statement;

use crate::{error, sysvars};

use super::{GateSession, StatementError};

fn text(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

impl GateSession {
    /// Starts the ALTER as a migration; its id is the result, as Vitess gives it.
    pub(super) async fn online_alter(
        &mut self,
        plan: &Plan,
        stmt: &Statement,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let keyspace = plan
            .keyspaces()
            .first()
            .ok_or_else(|| error::unsupported("an online ALTER outside any keyspace"))?
            .to_string();
        let id = self
            .gate
            .migrations
            .submit(&self.gate, &keyspace, stmt, sql)
            .await
            .map_err(|e| error::from_engine(&e))?;
        self.local_rows(
            out,
            vec![sysvars::text_column("uuid")],
            vec![vec![text(&id)]],
        )
        .await
    }

    /// `ALTER SHARDGATE MIGRATION '<id>' CANCEL | RETRY` (and `REVERT MIGRATION`, refused).
    pub(super) async fn alter_migration(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let words: Vec<&str> = sql.split_whitespace().collect();
        let quoted = |w: &str| w.trim_matches(|c| c == '\'' || c == '"').to_string();
        if words[0].eq_ignore_ascii_case("revert") {
            let id = words
                .get(2)
                .map(|w| quoted(w.trim_end_matches(';')))
                .unwrap_or_default();
            self.gate
                .migrations
                .revert(&id)
                .await
                .map_err(|e| error::from_engine(&e))?;
            return self.ok(out).await;
        }
        let (Some(id), Some(action)) = (words.get(3).map(|w| quoted(w)), words.get(4)) else {
            return Err(error::unsupported(
                "ALTER SHARDGATE MIGRATION without an id and an action",
            )
            .into());
        };
        let done = match action.trim_end_matches(';').to_ascii_lowercase().as_str() {
            "cancel" => self.gate.migrations.cancel(&self.gate, &id).await,
            "retry" => self.gate.migrations.retry(&self.gate, &id).await,
            other => {
                return Err(
                    error::unsupported(format!("ALTER SHARDGATE MIGRATION ... {other}")).into(),
                )
            }
        };
        done.map_err(|e| error::from_engine(&e))?;
        self.ok(out).await
    }

    /// `SHOW SHARDGATE MIGRATIONS`: each migration, its shards' phases, rows copied, progress,
    /// an estimate of the time left and how far the streams are behind.
    pub(super) async fn show_migrations(
        &mut self,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let records = self
            .gate
            .migrations
            .list(&self.topo, None)
            .await
            .map_err(|e| error::from_engine(&e))?;
        let rows = records
            .iter()
            .map(|r| {
                let m = r.summary();
                let shards: Vec<String> = m
                    .shards
                    .iter()
                    .map(|p| format!("{}: {}", p.shard, p.phase))
                    .collect();
                vec![
                    text(&m.id),
                    text(&m.keyspace),
                    text(&m.table),
                    text(&m.statement),
                    text(&m.state),
                    text(&shards.join("; ")),
                    text(&m.rows_copied.to_string()),
                    text(&m.rows_total.to_string()),
                    text(&format!("{:.1}", m.progress)),
                    text(&m.eta_secs.map_or(String::new(), |s| s.to_string())),
                    text(&format!("{:.1}", m.lag_secs)),
                    text(&m.message),
                ]
            })
            .collect();
        let columns = [
            "Id",
            "Keyspace",
            "Table",
            "Statement",
            "State",
            "Shards",
            "Rows_copied",
            "Rows_total",
            "Progress",
            "ETA_seconds",
            "Lag_seconds",
            "Message",
        ]
        .map(sysvars::text_column)
        .to_vec();
        self.local_rows(out, columns, rows).await
    }
}
