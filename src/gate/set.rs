//! SET: session variables the proxy keeps itself (autocommit, transaction_mode), user
//! variables, and settings replayed on every shard connection.

use engine::{Column, Value};
use frontend::SqlError;
use sqlparser::ast::{Set, TransactionAccessMode, TransactionMode};

use crate::error;
use crate::transaction::{Isolation, TxMode};

use super::GateSession;

impl GateSession {
    /// `SET ...`: autocommit, transaction_mode and the character set are the proxy's own; other
    /// session variables are checked on a backend (so unknown ones get MySQL's error) and then
    /// applied on every backend connection that serves the session; user variables are evaluated
    /// once and carried the same way.
    /// SET, parsed (`set`) or only tokenized (`None`: read as assignments).
    pub(super) async fn set(&mut self, set: Option<&Set>, sql: &str) -> Result<(), SqlError> {
        if let Some(set) = set {
            if matches!(set, Set::SetNames { .. } | Set::SetNamesDefault {}) {
                return Ok(());
            }
            if let Set::SetTransaction {
                modes,
                snapshot: None,
                ..
            } = set
            {
                return self.set_transaction(modes, sql).await;
            }
            if !matches!(
                set,
                Set::SingleAssignment { .. } | Set::MultipleAssignments { .. }
            ) {
                return Err(error::unsupported(format!("{set}")));
            }
        }
        let assignments = planner::set_assignments(sql)
            .ok_or_else(|| error::unsupported("this SET statement"))?;
        for (name, value) in assignments {
            let (global, var) = variable_name(&name);
            if global {
                return Err(error::unsupported("SET GLOBAL"));
            }
            match var.to_ascii_lowercase().as_str() {
                "autocommit" => {
                    let on = matches!(
                        value.trim().to_ascii_lowercase().as_str(),
                        "1" | "on" | "true" | "'on'" | "'1'"
                    );
                    if on && !self.session.autocommit {
                        // Turning autocommit on commits the open transaction.
                        self.end_transaction(true).await?;
                    }
                    self.session.autocommit = on;
                }
                "tx_isolation" | "transaction_isolation" => {
                    let value = self.evaluated(value).await?;
                    let isolation = Isolation::parse_value(&value)
                        .ok_or_else(|| error::wrong_value(var, value.trim_matches('\'')))?;
                    self.set_isolation(isolation).await?;
                }
                "tx_read_only" | "transaction_read_only" => {
                    let value = self.evaluated(value).await?;
                    let read_only = match value.trim_matches('\'').to_ascii_lowercase().as_str() {
                        "1" | "on" | "true" => true,
                        "0" | "off" | "false" => false,
                        other => return Err(error::wrong_value(var, other)),
                    };
                    self.set_read_only(read_only).await?;
                }
                "read_target" => {
                    let target = value.trim().trim_matches(|c| c == '\'' || c == '"');
                    self.session.read_target = crate::session::ReadTarget::parse(target)
                        .ok_or_else(|| error::wrong_value("read_target", target))?;
                }
                "ddl_strategy" => {
                    let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
                    self.session.ddl_strategy = crate::migration::DdlStrategy::parse(value)
                        .ok_or_else(|| error::wrong_value("ddl_strategy", value))?;
                }
                "transaction_mode" => {
                    let mode = value
                        .trim()
                        .trim_matches(|c| c == '\'' || c == '"')
                        .to_string();
                    self.session.tx_mode = Some(
                        TxMode::parse(&mode)
                            .ok_or_else(|| error::wrong_value("transaction_mode", &mode))?,
                    );
                }
                // The backends always speak utf8mb4 to shardgate and shardgate to the client.
                "names"
                | "character_set_client"
                | "character_set_connection"
                | "character_set_results"
                | "collation_connection" => {}
                _ if var.starts_with('@') => {
                    let literal = self.evaluate(&value).await?;
                    self.session.remember(var, literal);
                }
                _ => {
                    let value = self.evaluated(value).await?;
                    // Checked by a backend with the session's settings so far; MySQL's error if not.
                    let check = format!("SET {var} = {value}");
                    self.backend_statement(&check).await?;
                    self.session.remember(var, value.clone());
                    if var.eq_ignore_ascii_case("sql_mode") {
                        let (_, rows) = self.backend_statement("SELECT @@sql_mode").await?;
                        self.session.no_backslash_escapes = rows
                            .first()
                            .and_then(|row| row.first())
                            .is_some_and(|mode| match mode {
                                Value::Bytes(b) => String::from_utf8_lossy(b)
                                    .to_ascii_uppercase()
                                    .contains("NO_BACKSLASH_ESCAPES"),
                                _ => false,
                            });
                    }
                }
            }
        }
        Ok(())
    }

    /// A value read from a variable (`SET sql_mode = @OLD_SQL_MODE`) taken now, as a literal:
    /// the shards' connections that replay the setting do not hold the variable.
    async fn evaluated(&self, value: String) -> Result<String, SqlError> {
        if value.contains('@') {
            self.evaluate(&value).await
        } else {
            Ok(value)
        }
    }

    /// `SET [SESSION | GLOBAL] TRANSACTION ...` (the parser drops the scope: the text has it).
    /// With SESSION, for every transaction from now on; without, for the next one only.
    async fn set_transaction(
        &mut self,
        modes: &[TransactionMode],
        sql: &str,
    ) -> Result<(), SqlError> {
        let scope = planner::leading_words(sql, 2).pop().unwrap_or_default();
        match scope.as_str() {
            "SESSION" | "LOCAL" => {
                for mode in modes {
                    match mode {
                        TransactionMode::IsolationLevel(level) => {
                            let isolation =
                                Isolation::parse_value(&level.to_string()).ok_or_else(|| {
                                    error::unsupported(format!("ISOLATION LEVEL {level}"))
                                })?;
                            self.set_isolation(isolation).await?;
                        }
                        TransactionMode::AccessMode(access) => {
                            self.set_read_only(*access == TransactionAccessMode::ReadOnly)
                                .await?;
                        }
                    }
                }
                Ok(())
            }
            "TRANSACTION" => {
                if self.tx.is_some() {
                    return Err(error::transaction_in_progress());
                }
                for mode in modes {
                    if let TransactionMode::IsolationLevel(level) = mode {
                        Isolation::parse_value(&level.to_string()).ok_or_else(|| {
                            error::unsupported(format!("ISOLATION LEVEL {level}"))
                        })?;
                    }
                }
                let modes: Vec<String> = modes.iter().map(ToString::to_string).collect();
                self.session.next_transaction =
                    Some(format!("SET TRANSACTION {}", modes.join(", ")));
                Ok(())
            }
            _ => Err(error::unsupported("SET GLOBAL TRANSACTION")),
        }
    }

    /// The session's isolation level, on every backend connection it uses from now on.
    async fn set_isolation(&mut self, isolation: Isolation) -> Result<(), SqlError> {
        let (name, _) = self.transaction_variables().await?;
        self.session
            .remember(name, format!("'{}'", isolation.value()));
        self.session.isolation = Some(isolation);
        Ok(())
    }

    /// The session's access mode, on every backend connection it uses from now on.
    async fn set_read_only(&mut self, read_only: bool) -> Result<(), SqlError> {
        let (_, name) = self.transaction_variables().await?;
        self.session.remember(name, u8::from(read_only).to_string());
        self.session.read_only = read_only;
        Ok(())
    }

    /// The backends' names for the isolation level and access mode: MariaDB before 11.1 knows
    /// only `tx_isolation` and `tx_read_only`, MySQL 8 only `transaction_*`.
    async fn transaction_variables(&self) -> Result<(&'static str, &'static str), SqlError> {
        if self.topo.backends.server_version().is_none() {
            // The servers' version comes with the first connection to one.
            self.backend_statement("DO 0").await?;
        }
        let kind = self.topo.server_kind();
        Ok(if kind.mariadb && kind.version < 110100 {
            ("tx_isolation", "tx_read_only")
        } else {
            ("transaction_isolation", "transaction_read_only")
        })
    }

    /// Runs a statement on the default keyspace's first shard with the session's settings and
    /// returns its rows with their column definitions.
    pub(super) async fn backend_statement(
        &self,
        sql: &str,
    ) -> Result<(Vec<Column>, Vec<Vec<Value>>), SqlError> {
        let catalog = self.topo.catalog.load_full();
        let ctx = self.context(&catalog);
        let ks = ctx.default_keyspace().map_err(error::from_plan)?;
        let shard = &ks.shards[0].name;
        let mut sink = engine::Collected::default();
        let prelude = self.session.prelude().unwrap_or_else(|| "DO 0".into());
        self.topo
            .backends
            .execute_with(&ks.name, shard, &prelude, sql, &mut sink)
            .await
            .map_err(|e| error::from_engine(&e))?;
        Ok((sink.columns, sink.rows))
    }

    /// A user variable's value, evaluated once, as a SQL literal.
    pub(super) async fn evaluate(&self, expr: &str) -> Result<String, SqlError> {
        let (columns, rows) = self.backend_statement(&format!("SELECT {expr}")).await?;
        let value = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or(Value::NULL);
        Ok(value_literal(columns.first(), value))
    }

    /// `SELECT ... INTO @a, @b ...`: the query runs without its INTO, and its one row's values
    /// become the user variables (no row: they keep their values, with MySQL's warning 1329;
    /// several: MySQL's error 1172).
    pub(super) async fn select_into(
        &mut self,
        query: &sqlparser::ast::Query,
        out: &mut frontend::ResultWriter<'_>,
    ) -> Result<(), super::StatementError> {
        let mut query = query.clone();
        let sqlparser::ast::SetExpr::Select(select) = query.body.as_mut() else {
            return Err(error::unsupported("INTO in this query").into());
        };
        let into = select.into.take().expect("checked by the caller");
        let mut names = Vec::with_capacity(into.targets.len());
        for target in &into.targets {
            match target {
                sqlparser::ast::Expr::Identifier(i) if i.value.starts_with('@') => {
                    names.push(i.value.clone())
                }
                other => return Err(error::unsupported(format!("SELECT ... INTO {other}")).into()),
            }
        }
        let plan = self.plan_text(&query.to_string()).await?;
        let mut result = engine::Collected::default();
        self.execute(&plan, &mut result)
            .await
            .map_err(|e| error::from_engine(&e))?;
        if result.columns.len() != names.len() {
            return Err(SqlError::new(
                1222,
                "21000",
                "The used SELECT statements have a different number of columns",
            )
            .into());
        }
        let mut warnings = 0;
        match result.rows.len() {
            0 => {
                const NO_DATA: &str = "No data - zero rows fetched, selected, or processed";
                self.session.warnings = vec![vec![
                    Value::Bytes(b"Warning".to_vec()),
                    Value::Int(1329),
                    Value::Bytes(NO_DATA.as_bytes().to_vec()),
                ]];
                warnings = 1;
            }
            1 => {
                let row = result.rows.remove(0);
                for ((name, value), column) in names.iter().zip(row).zip(&result.columns) {
                    self.session
                        .remember(name, value_literal(Some(column), value));
                }
            }
            _ => {
                return Err(
                    SqlError::new(1172, "42000", "Result consisted of more than one row").into(),
                )
            }
        }
        self.ok_with_warnings(out, warnings).await
    }
}

/// A value from a backend as the SQL literal that gives it back with its type: numbers as
/// themselves, text as a hex literal of text, NULL.
fn value_literal(column: Option<&Column>, value: Value) -> String {
    {
        let numeric = column.is_some_and(|c| {
            use mysql_common::constants::ColumnType::*;
            matches!(
                c.column_type(),
                MYSQL_TYPE_TINY
                    | MYSQL_TYPE_SHORT
                    | MYSQL_TYPE_LONG
                    | MYSQL_TYPE_LONGLONG
                    | MYSQL_TYPE_INT24
                    | MYSQL_TYPE_DECIMAL
                    | MYSQL_TYPE_NEWDECIMAL
                    | MYSQL_TYPE_FLOAT
                    | MYSQL_TYPE_DOUBLE
            )
        });
        match value {
            Value::NULL => "NULL".into(),
            Value::Bytes(b) if numeric => String::from_utf8_lossy(&b).into_owned(),
            // A binary literal would change the variable's type: text stays text.
            Value::Bytes(b) => engine::literal::hex(&b, engine::literal::is_text(&b)),
            other => other.as_sql(true),
        }
    }
}

/// `SESSION x` / `@@session.x` / `@@x` / `x` → (is it GLOBAL, the variable as `x`); user
/// variables keep their `@`.
pub(super) fn variable_name(name: &str) -> (bool, &str) {
    let name = name.trim();
    let lower = name.to_ascii_lowercase();
    for (prefix, global) in [
        ("global ", true),
        ("session ", false),
        ("local ", false),
        ("@@global.", true),
        ("@@session.", false),
        ("@@local.", false),
    ] {
        if lower.starts_with(prefix) {
            return (global, name[prefix.len()..].trim());
        }
    }
    if lower.starts_with("@@") {
        return (false, &name[2..]);
    }
    (false, name)
}
