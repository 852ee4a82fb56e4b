//! SHOW statements answered by the proxy: variables, processlist, warnings, tables and the
//! SHOW SHARDGATE family.

use std::sync::atomic::Ordering;

use engine::{Executor as _, Plan, Value};
use frontend::{ResultWriter, SqlError};
use sqlparser::ast::ShowStatementFilter;

use crate::{error, sysvars};

use super::{GateSession, StatementError};

impl GateSession {
    /// `SHOW [SESSION] VARIABLES [LIKE ...]` from a backend with the session's settings, with the
    /// variables that describe the server answered for shardgate itself.
    pub(super) async fn show_variables(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let (columns, mut rows) = self.backend_statement(sql).await?;
        for row in &mut rows {
            let Some(Value::Bytes(name)) = row.first() else {
                continue;
            };
            let name = String::from_utf8_lossy(name).into_owned();
            if let Some(value) = sysvars::variable_text(&name, &self.session, &self.gate.info) {
                if let Some(slot) = row.get_mut(1) {
                    *slot = Value::Bytes(value.into_bytes());
                }
            }
        }
        self.local_rows(out, columns, rows).await
    }

    /// `SHOW [GLOBAL | SESSION] STATUS`: a shard's list, with shardgate's own counters where
    /// MySQL's names mean the same for the proxy (uptime, client threads, questions, Com_*).
    pub(super) async fn show_status(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let (columns, mut rows) = self.backend_statement(sql).await?;
        let gate = &self.gate;
        let processes = gate.processes();
        let mut own: Vec<(String, u64)> = vec![
            ("Uptime".into(), gate.uptime().as_secs()),
            ("Threads_connected".into(), processes.len() as u64),
            (
                "Threads_running".into(),
                processes.iter().filter(|p| p.statement.is_some()).count() as u64,
            ),
            ("Questions".into(), gate.questions.load(Ordering::Relaxed)),
            ("Queries".into(), gate.questions.load(Ordering::Relaxed)),
            (
                "Connections".into(),
                gate.metrics.connections_accepted.get(),
            ),
            (
                "Com_stmt_execute".into(),
                gate.executions.load(Ordering::Relaxed),
            ),
        ];
        for (kind, n) in gate.metrics.statements_by_kind() {
            own.push((format!("Com_{kind}"), n));
        }
        for row in &mut rows {
            let Some(Value::Bytes(name)) = row.first() else {
                continue;
            };
            let name = String::from_utf8_lossy(name);
            if let Some((_, n)) = own.iter().find(|(o, _)| o.eq_ignore_ascii_case(&name)) {
                if let Some(slot) = row.get_mut(1) {
                    *slot = Value::Bytes(n.to_string().into_bytes());
                }
            }
        }
        self.local_rows(out, columns, rows).await
    }

    /// SHOW statements about the server rather than the data (ENGINES, PLUGINS, CHARSET,
    /// COLLATION): a shard of the default keyspace answers for the servers behind the proxy.
    pub(super) async fn show_server(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let (columns, rows) = self.backend_statement(sql).await?;
        self.local_rows(out, columns, rows).await
    }

    /// SHOW TABLE STATUS, SHOW TRIGGERS and SHOW CREATE DATABASE of a keyspace: one shard
    /// answers (TABLE STATUS's row counts and sizes are that shard's), under the keyspace's name.
    pub(super) async fn keyspace_statement(
        &mut self,
        statement: planner::KeyspaceStatement,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let name = match &statement {
            planner::KeyspaceStatement::OnShard { keyspace, .. }
            | planner::KeyspaceStatement::CreateDatabase { keyspace } => keyspace.clone(),
        };
        let topo = self.topo.clone();
        let ks = topo
            .vschema
            .keyspace(&name)
            .ok_or_else(|| error::unknown_database(&name))?;
        match statement {
            planner::KeyspaceStatement::OnShard { keyspace, query } => {
                let opcode = if ks.sharded {
                    engine::Opcode::Reference
                } else {
                    engine::Opcode::Unsharded
                };
                let plan = Plan::Route(engine::Route {
                    keyspace,
                    opcode,
                    query,
                    elsewhere: None,
                });
                self.run(&plan, out, None).await
            }
            planner::KeyspaceStatement::CreateDatabase { keyspace } => {
                let shard = &ks.shards[0];
                let database = &shard.primary.database;
                let sql = format!("SHOW CREATE DATABASE `{}`", database.replace('`', "``"));
                let mut found = engine::Collected::default();
                topo.backends
                    .execute(&ks.name, &shard.name, &sql, &mut found)
                    .await
                    .map_err(|e| error::from_engine(&e))?;
                let shard_name = format!("CREATE DATABASE `{}`", database.replace('`', "``"));
                let own_name = format!("CREATE DATABASE `{}`", keyspace.replace('`', "``"));
                for row in &mut found.rows {
                    if let Some(slot) = row.get_mut(0) {
                        *slot = Value::Bytes(keyspace.as_bytes().to_vec());
                    }
                    if let Some(Value::Bytes(text)) = row.get_mut(1) {
                        let renamed =
                            String::from_utf8_lossy(text).replacen(&shard_name, &own_name, 1);
                        *text = renamed.into_bytes();
                    }
                }
                self.local_rows(out, found.columns, found.rows).await
            }
        }
    }

    /// `SHOW GRANTS [FOR CURRENT_USER | user]`: the session user's privileges as the config
    /// gives them (every keyspace or some, read-only or not).
    pub(super) async fn show_grants(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let user = self.entry.user.clone();
        let words = planner::leading_words(sql, 4);
        if let Some(named) = words.get(3) {
            let named = named.trim_matches(|c| c == '\'' || c == '`' || c == '"');
            if words[2] == "FOR" && named != "CURRENT_USER" && named != user {
                return Err(error::access_denied(&user, "mysql").into());
            }
        }
        let privileges = if self.access.read_only {
            "SELECT"
        } else {
            "ALL PRIVILEGES"
        };
        let grantee = format!("`{}`@`%`", user.replace('`', "``"));
        let mut rows = vec![format!("GRANT USAGE ON *.* TO {grantee}")];
        match &self.access.keyspaces {
            None => rows.push(format!("GRANT {privileges} ON *.* TO {grantee}")),
            Some(keyspaces) => rows.extend(keyspaces.iter().map(|ks| {
                format!(
                    "GRANT {privileges} ON `{}`.* TO {grantee}",
                    ks.replace('`', "``")
                )
            })),
        }
        let rows = rows
            .into_iter()
            .map(|g| vec![Value::Bytes(g.into_bytes())])
            .collect();
        let column = sysvars::text_column(&format!("Grants for {user}@%"));
        self.local_rows(out, vec![column], rows).await
    }

    pub(super) async fn show_processlist(
        &mut self,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let rows: Vec<Vec<Value>> = self
            .gate
            .processes()
            .into_iter()
            .map(|p| {
                vec![
                    Value::Int(i64::from(p.id)),
                    text(&p.user),
                    text("localhost"),
                    p.keyspace.as_deref().map_or(Value::NULL, text),
                    text(if p.statement.is_some() {
                        "Query"
                    } else {
                        "Sleep"
                    }),
                    Value::Int(p.seconds as i64),
                    text(""),
                    p.statement.as_deref().map_or(Value::NULL, text),
                ]
            })
            .collect();
        let mut columns = [
            "Id", "User", "Host", "db", "Command", "Time", "State", "Info",
        ]
        .map(sysvars::text_column)
        .to_vec();
        for i in [0, 5] {
            columns[i] = sysvars::int_column(["Id", "Time"][usize::from(i == 5)]);
        }
        self.local_rows(out, columns, rows).await
    }

    /// `SHOW WARNINGS [LIMIT n]` and `SHOW COUNT(*) WARNINGS`: the last statement's warnings,
    /// gathered from the shards that reported any.
    pub(super) async fn show_warnings(
        &mut self,
        lower: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let warnings = self.session.warnings.clone();
        if lower.contains("count(*)") {
            let rows = vec![vec![Value::Int(warnings.len() as i64)]];
            return self
                .local_rows(
                    out,
                    vec![sysvars::int_column("@@session.warning_count")],
                    rows,
                )
                .await;
        }
        let limit = lower
            .split_whitespace()
            .skip_while(|w| *w != "limit")
            .nth(1)
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let columns = vec![
            sysvars::text_column("Level"),
            sysvars::int_column("Code"),
            sysvars::text_column("Message"),
        ];
        self.local_rows(out, columns, warnings.into_iter().take(limit).collect())
            .await
    }

    /// `SHOW SHARDGATE SHARDS` (with a live check of each primary) and `SHOW SHARDGATE VSCHEMA`.
    pub(super) async fn show_shardgate(
        &mut self,
        lower: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let what = lower.split_whitespace().nth(2).unwrap_or_default();
        let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        match what {
            "shards" => {
                let mut rows = Vec::new();
                for ks in self.topo.vschema.keyspaces() {
                    for shard in &ks.shards {
                        let health = match tokio::time::timeout(
                            std::time::Duration::from_secs(2),
                            self.topo.backends.execute(
                                &ks.name,
                                &shard.name,
                                "DO 0",
                                &mut engine::NoRows,
                            ),
                        )
                        .await
                        {
                            Ok(Ok(_)) => "serving".to_string(),
                            Ok(Err(e)) => format!("unreachable: {e}"),
                            Err(_) => "unreachable: no answer within 2 s".to_string(),
                        };
                        rows.push(vec![
                            text(&ks.name),
                            text(&shard.name),
                            text(&shard.range.to_string()),
                            text(&shard.primary.to_string()),
                            text(&health),
                        ]);
                    }
                }
                let columns = ["Keyspace", "Shard", "KeyRange", "Primary", "Health"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "vschema" => {
                let mut rows = Vec::new();
                for ks in self.topo.vschema.keyspaces() {
                    for (name, table) in &ks.tables {
                        let (kind, column, vindex) = match table {
                            vschema::Table::Sharded { column, vindex, .. } => (
                                "sharded",
                                column.clone(),
                                format!("{} ({})", vindex.name, vindex.kind.name()),
                            ),
                            vschema::Table::Reference => {
                                ("reference", String::new(), String::new())
                            }
                            vschema::Table::Sequence => ("sequence", String::new(), String::new()),
                            vschema::Table::Unsharded => {
                                ("unsharded", String::new(), String::new())
                            }
                        };
                        rows.push(vec![
                            text(&ks.name),
                            text(name),
                            text(kind),
                            text(&column),
                            text(&vindex),
                        ]);
                    }
                }
                let columns = ["Keyspace", "Table", "Type", "Column", "Vindex"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "checksums" => {
                let table = lower.split_whitespace().nth(3).map(|t| t.trim_matches('`'));
                let rows = self.reference_checksums(table).await?;
                let columns = ["Keyspace", "Table", "Shard", "Checksum", "Differs"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "status" => {
                let (hits, misses, plans) = self.gate.plans.stats();
                let rows = [
                    ("Questions", self.gate.questions.load(Ordering::Relaxed)),
                    (
                        "Prepared_executions",
                        self.gate.executions.load(Ordering::Relaxed),
                    ),
                    ("Plan_cache_hits", hits),
                    ("Plan_cache_misses", misses),
                    ("Plan_cache_plans", plans as u64),
                    ("Sessions", self.gate.sessions.len() as u64),
                ]
                .map(|(name, v)| vec![text(name), text(&v.to_string())])
                .to_vec();
                let columns = ["Variable_name", "Value"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "deadlocks" => {
                let mut rows = Vec::new();
                for cycle in self.gate.deadlocks.recent() {
                    let at = cycle
                        .at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or_default();
                    for m in &cycle.members {
                        rows.push(vec![
                            text(&cycle.id.to_string()),
                            text(&format!("{at:.3}")),
                            text(&m.session.to_string()),
                            text(if m.session == cycle.victim {
                                "yes"
                            } else {
                                "no"
                            }),
                            text(&m.shards.join(",")),
                            text(&m.rows_modified.to_string()),
                            text(&m.statement),
                        ]);
                    }
                }
                let columns = [
                    "Deadlock",
                    "Time",
                    "Session",
                    "Victim",
                    "Shards",
                    "Rows_modified",
                    "Statement",
                ]
                .map(sysvars::text_column)
                .to_vec();
                self.local_rows(out, columns, rows).await
            }
            other => {
                Err(error::unsupported(format!("SHOW SHARDGATE {}", other.to_uppercase())).into())
            }
        }
    }

    /// `SHOW SHARDGATE CHECKSUMS [table]`: `CHECKSUM TABLE` of each reference table (or the
    /// one named) on every shard of its keyspace, with the shards whose checksum differs from
    /// the one most shards have marked: every copy of a reference table should be the same.
    pub(super) async fn reference_checksums(
        &self,
        only: Option<&str>,
    ) -> Result<Vec<Vec<Value>>, SqlError> {
        let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let mut rows = Vec::new();
        for ks in self.topo.vschema.keyspaces() {
            if !self.access.allows(&ks.name) {
                continue;
            }
            if self
                .session
                .keyspace
                .as_ref()
                .is_some_and(|k| *k != ks.name)
                && only.is_some()
            {
                continue;
            }
            for (name, table) in &ks.tables {
                if *table != vschema::Table::Reference
                    || only.is_some_and(|t| !t.eq_ignore_ascii_case(name))
                {
                    continue;
                }
                let sql = format!("CHECKSUM TABLE `{}`", name.replace('`', "``"));
                let mut sums = Vec::new();
                for shard in &ks.shards {
                    let mut found = engine::Collected::default();
                    self.topo
                        .backends
                        .execute(&ks.name, &shard.name, &sql, &mut found)
                        .await
                        .map_err(|e| error::from_engine(&e))?;
                    let sum = match found.rows.first().and_then(|r| r.get(1)) {
                        Some(Value::NULL) | None => "NULL".to_string(),
                        Some(v) => v.as_sql(true).trim_matches('\'').to_string(),
                    };
                    sums.push((shard.name.clone(), sum));
                }
                // The checksum most shards have; without a majority every shard is suspect.
                let count = |sum: &String| sums.iter().filter(|(_, s)| s == sum).count();
                let majority = sums
                    .iter()
                    .map(|(_, sum)| sum)
                    .find(|sum| count(sum) * 2 > sums.len())
                    .cloned();
                for (shard, sum) in sums {
                    let differs = if majority.as_ref() == Some(&sum) {
                        "no"
                    } else {
                        "yes"
                    };
                    rows.push(vec![
                        text(&ks.name),
                        text(name),
                        text(&shard),
                        text(&sum),
                        text(differs),
                    ]);
                }
            }
        }
        Ok(rows)
    }

    /// `SHOW [FULL] TABLES [FROM ks] [LIKE ..|WHERE ..]`: asked of the keyspace's first shard, with
    /// the column named after the keyspace rather than the shard's database.
    pub(super) async fn show_tables(
        &mut self,
        full: bool,
        options: &sqlparser::ast::ShowStatementOptions,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let keyspace = match options
            .show_in
            .as_ref()
            .and_then(|s| s.parent_name.as_ref())
        {
            Some(name) => name.to_string(),
            None => self
                .session
                .keyspace
                .clone()
                .ok_or_else(error::no_database)?,
        };
        let ks = self
            .topo
            .vschema
            .keyspace(&keyspace)
            .ok_or_else(|| error::unknown_database(&keyspace))?;
        let filter = match options.filter_position.as_ref() {
            None => String::new(),
            Some(
                sqlparser::ast::ShowStatementFilterPosition::Suffix(f)
                | sqlparser::ast::ShowStatementFilterPosition::Infix(f),
            ) => match f {
                ShowStatementFilter::Like(_)
                | ShowStatementFilter::Where(_)
                | ShowStatementFilter::ILike(_) => format!(" {f}"),
                ShowStatementFilter::NoKeyword(_) => {
                    return Err(error::unsupported("SHOW TABLES with this filter").into())
                }
            },
        };
        let query = format!("SHOW {}TABLES{filter}", if full { "FULL " } else { "" });
        let opcode = if ks.sharded {
            engine::Opcode::Reference
        } else {
            engine::Opcode::Unsharded
        };
        let plan = Plan::Route(engine::Route {
            keyspace: ks.name.clone(),
            opcode,
            query,
            elsewhere: None,
        });
        self.run(&plan, out, Some(format!("Tables_in_{}", ks.name)))
            .await
    }
}
