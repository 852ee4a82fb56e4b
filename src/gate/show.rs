//! SHOW statements answered by the proxy, or by a shard with the proxy's own values put in:
//! variables, status, databases, tables, indexes, grants, processlist, warnings.

use std::sync::atomic::Ordering;

use engine::{Executor as _, Plan, Value};
use frontend::ResultWriter;
use sqlparser::ast::{ShowStatementFilter, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

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
        let own = [
            "version",
            "version_comment",
            "port",
            "socket",
            "hostname",
            "autocommit",
        ]
        .into_iter()
        .filter_map(|name| {
            let value = sysvars::variable_text(name, &self.session, &self.gate.info)?;
            Some((name.to_string(), value))
        })
        .collect();
        self.show_from_shard(sql, own, out).await
    }

    /// `SHOW [GLOBAL | SESSION] STATUS`: a shard's list, with shardgate's own counters where
    /// MySQL's names mean the same for the proxy (uptime, client threads, questions, Com_*).
    pub(super) async fn show_status(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let gate = &self.gate;
        let processes = gate.processes();
        let questions = gate.questions.load(Ordering::Relaxed);
        let mut own: Vec<(String, u64)> = vec![
            ("Uptime".into(), gate.uptime().as_secs()),
            ("Threads_connected".into(), processes.len() as u64),
            (
                "Threads_running".into(),
                processes.iter().filter(|p| p.statement.is_some()).count() as u64,
            ),
            ("Questions".into(), questions),
            ("Queries".into(), questions),
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
        let own = own.into_iter().map(|(n, v)| (n, v.to_string())).collect();
        self.show_from_shard(sql, own, out).await
    }

    /// A SHOW statement that a shard of the default keyspace answers (ENGINES, PLUGINS,
    /// CHARSET, COLLATION describe the servers behind the proxy), with the values of the rows
    /// named in `own` (variable, value) put in: those the proxy knows better.
    pub(super) async fn show_from_shard(
        &mut self,
        sql: &str,
        own: Vec<(String, String)>,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let (columns, mut rows) = self.backend_statement(sql).await?;
        for row in &mut rows {
            let Some(Value::Bytes(name)) = row.first() else {
                continue;
            };
            let name = String::from_utf8_lossy(name);
            let value = own.iter().find(|(o, _)| o.eq_ignore_ascii_case(&name));
            if let (Some((_, value)), Some(slot)) = (value, row.get_mut(1)) {
                *slot = Value::Bytes(value.clone().into_bytes());
            }
        }
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
            planner::KeyspaceStatement::OnShard { keyspace, query }
                if ks.unlisted_tables.is_some() && query.starts_with("SHOW TABLE STATUS") =>
            {
                let (columns, rows) = self.table_rows(&keyspace, &query).await?;
                self.local_rows(out, columns, rows).await
            }
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

    /// `SHOW DATABASES | SCHEMAS [LIKE ...]`: the keyspaces the user may use.
    pub(super) async fn show_databases(
        &mut self,
        show_options: &sqlparser::ast::ShowStatementOptions,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let pattern = match &show_options.filter_position {
            None => None,
            Some(
                sqlparser::ast::ShowStatementFilterPosition::Suffix(
                    sqlparser::ast::ShowStatementFilter::Like(p),
                )
                | sqlparser::ast::ShowStatementFilterPosition::Infix(
                    sqlparser::ast::ShowStatementFilter::Like(p),
                ),
            ) => Some(p.clone()),
            Some(_) => return Err(error::unsupported("SHOW DATABASES with this filter").into()),
        };
        let rows = self
            .topo
            .vschema
            .keyspaces()
            .filter(|k| self.access.allows(&k.name))
            .filter(|k| pattern.as_deref().is_none_or(|p| like(p, &k.name)))
            .map(|k| vec![Value::Bytes(k.name.clone().into_bytes())])
            .collect();
        let column = match &pattern {
            Some(p) => format!("Database ({p})"),
            None => "Database".to_string(),
        };
        self.local_rows(out, vec![sysvars::text_column(&column)], rows)
            .await
    }

    /// `SHOW INDEX FROM t`: any one shard of t's keyspace answers.
    pub(super) async fn show_index(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        // SHOW INDEX FROM t: the parser reads what follows FROM as it would for
        // SHOW COLUMNS; any one shard of t's keyspace answers.
        let b = sql.as_bytes();
        let at = [&b" from "[..], b" in "]
            .iter()
            .filter_map(|k| {
                let i = b.windows(k.len()).position(|w| w.eq_ignore_ascii_case(k))?;
                Some(i + k.len())
            })
            .min()
            .ok_or_else(|| error::syntax("SHOW INDEX needs FROM table"))?;
        let columns_sql = format!("SHOW COLUMNS FROM {}", &sql[at..]);
        let parsed = Parser::parse_sql(&MySqlDialect {}, &columns_sql).map_err(error::syntax)?;
        let [Statement::ShowColumns { show_options, .. }] = parsed.as_slice() else {
            return Err(error::unsupported("this SHOW INDEX").into());
        };
        let table = show_options
            .show_in
            .as_ref()
            .and_then(|s| s.parent_name.as_ref())
            .ok_or_else(|| error::syntax("SHOW INDEX needs FROM table"))?;
        let filter = match &show_options.filter_position {
            Some(sqlparser::ast::ShowStatementFilterPosition::Suffix(f)) => {
                format!(" {f}")
            }
            Some(_) => return Err(error::unsupported("this SHOW INDEX").into()),
            None => String::new(),
        };
        let catalog = self.topo.catalog.load_full();
        let ctx = self.context(&catalog);
        let plan = planner::definition_route(table, &ctx, |name| {
            format!("SHOW INDEX FROM {name}{filter}")
        })
        .map_err(error::from_plan)?;
        self.run(&plan, out, None).await
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
            // `FROM `ks``: the name, not its quoted text.
            Some(name) => name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map_or_else(|| name.to_string(), |i| i.value.clone()),
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
        if ks.unlisted_tables.is_some() {
            let (mut columns, rows) = self.table_rows(&keyspace, &query).await?;
            if let Some(first) = columns.first_mut() {
                *first = first
                    .clone()
                    .with_name(format!("Tables_in_{keyspace}").as_bytes());
            }
            return self.local_rows(out, columns, rows).await;
        }
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

    /// The rows of a SHOW statement with a row per table (named in its first column) for a
    /// keyspace with unlisted tables: its first shard's, then those of the tables it does not
    /// list from its unlisted-tables keyspace, together in name order.
    async fn table_rows(
        &self,
        keyspace: &str,
        query: &str,
    ) -> Result<(Vec<engine::Column>, Vec<Vec<Value>>), StatementError> {
        let topo = self.topo.clone();
        let ks = topo
            .vschema
            .keyspace(keyspace)
            .ok_or_else(|| error::unknown_database(keyspace))?;
        let first = |ks: &vschema::Keyspace| {
            let (ks, shard) = (ks.name.clone(), ks.shards[0].name.clone());
            let topo = topo.clone();
            async move {
                let mut found = engine::Collected::default();
                topo.backends
                    .execute(&ks, &shard, query, &mut found)
                    .await
                    .map_err(|e| error::from_engine(&e))?;
                Ok::<_, StatementError>(found)
            }
        };
        let mut found = first(ks).await?;
        if let Some(unlisted) = ks
            .unlisted_tables
            .as_deref()
            .and_then(|u| topo.vschema.keyspace(u))
        {
            let name = |row: &[Value]| match row.first() {
                Some(Value::Bytes(name)) => String::from_utf8_lossy(name).into_owned(),
                _ => String::new(),
            };
            let theirs = first(unlisted).await?;
            found.rows.extend(theirs.rows.into_iter().filter(|row| {
                let name = name(row);
                !ks.tables.contains_key(&name) && !unlisted.tables.contains_key(&name)
            }));
            found.rows.sort_by_key(|row| name(row));
        }
        Ok((found.columns, found.rows))
    }
}

/// SQL's LIKE: `%` any run, `_` any one character, `\\` escapes.
fn like(pattern: &str, text: &str) -> bool {
    fn at(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| at(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && at(rest, &t[1..]),
            Some(('\\', [c, rest @ ..])) => t.first() == Some(c) && at(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && at(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    at(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("c%", "commerce"));
        assert!(like("m_in", "main"));
        assert!(like("%", ""));
        assert!(like("a\\_b", "a_b"));
        assert!(!like("a\\_b", "axb"));
        assert!(!like("c%", "main"));
        assert!(!like("main_", "main"));
    }
}
