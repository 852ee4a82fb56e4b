//! Statement kinds → their handlers: the plan cache's fast path, then the parsed statement
//! (USE, SET, transactions, SHOW, KILL, EXPLAIN) or a plan to run.

use engine::{Plan, Value};
use frontend::{Handler, OkInfo, ResultWriter, SqlError};
use planner::Literal;
use sqlparser::ast::{SetExpr, Statement, Use};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use crate::prepared::PreparedStatement;
use crate::session::ReadTarget;
use crate::transaction::{SavepointOp, TxMode};
use crate::{error, sysvars};

use super::{CacheMiss, GateSession, StatementError};

impl GateSession {
    /// `USE ks`, `USE ks:shard` (target one shard, like Vitess), `USE ks@primary`,
    /// `USE ks@replica` (reads outside transactions from replicas).
    pub(super) fn use_keyspace(&mut self, name: &str) -> Result<(), SqlError> {
        let name = name.trim().trim_matches('`');
        let (name, read_target) = match name.split_once('@') {
            Some((ks, role)) => match ReadTarget::parse(role) {
                Some(target) => (ks, target),
                None => {
                    return Err(error::unsupported(format!(
                        "USE ...@{role}: the roles are primary, replica and replica_only"
                    )))
                }
            },
            None => (name, self.access.read_target),
        };
        let (ks_name, shard) = match name.split_once(':') {
            Some((ks, shard)) => (ks, Some(shard)),
            None => (name, None),
        };
        let ks = self
            .topo
            .vschema
            .keyspace(ks_name)
            .ok_or_else(|| error::unknown_database(name))?;
        if !self.access.allows(ks_name) {
            return Err(error::access_denied(&self.entry.user, ks_name));
        }
        if let Some(shard) = shard {
            if !ks.shards.iter().any(|s| s.name == shard) {
                return Err(error::unknown_database(name));
            }
        }
        self.session.keyspace = Some(ks_name.to_string());
        self.session.target_shard = shard.map(str::to_string);
        self.session.read_target = read_target;
        self.session.keyspace_tx_mode = ks
            .transaction_mode
            .as_deref()
            .and_then(TxMode::parse)
            .unwrap_or(TxMode::Multi);
        Ok(())
    }

    pub(super) async fn statement(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let sql = self.resolve_comments(sql);
        let sql = sql.trim().trim_end_matches(';').trim_end();
        self.check_backslashes(sql)?;
        if self.session.target_shard.is_none() {
            if let Some(n) = planner::normalize(sql, false) {
                let literals = n
                    .literals(sql, &[])
                    .ok_or_else(|| error::bug("normalised literal out of range"))?;
                return self.normalized(&n, literals, Some(sql), None, out).await;
            }
        }
        // Boxed, here and on a plan-cache miss: the parsed path's future is large, and the
        // cached path (most statements) should not carry and move it.
        Box::pin(self.parsed_statement(sql, out, None)).await
    }

    /// `sql` with its executable comments resolved as the servers behind the proxy would
    /// (asked of the pools only when there is a comment).
    pub(super) fn resolve_comments<'s>(&self, sql: &'s str) -> std::borrow::Cow<'s, str> {
        if !sql.contains("/*") {
            return std::borrow::Cow::Borrowed(sql);
        }
        planner::resolve_executable_comments(sql, self.gate.topology().server_kind())
    }

    /// Refuses what the planner would read otherwise than the shards: a backslash under
    /// NO_BACKSLASH_ESCAPES (a statement for one named shard goes as written).
    pub(super) fn check_backslashes(&self, sql: &str) -> Result<(), SqlError> {
        if self.session.no_backslash_escapes
            && self.session.target_shard.is_none()
            && sql.contains('\\')
        {
            return Err(error::backslash_without_escapes());
        }
        Ok(())
    }

    pub(super) async fn execute_prepared(
        &mut self,
        stmt: &PreparedStatement,
        literals: Vec<Literal>,
        params: Vec<frontend::Param>,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        match &stmt.normalized {
            Some(n) if self.session.target_shard.is_none() => {
                let bound = n
                    .literals(&stmt.sql, &literals)
                    .ok_or_else(error::wrong_arguments)?;
                self.normalized(n, bound, None, Some(params), out).await
            }
            _ => {
                let text = stmt.text_with(&literals)?;
                self.statement(&text, out).await
            }
        }
    }

    pub(super) async fn parsed_statement(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
        learn: Option<CacheMiss<'_>>,
    ) -> Result<(), StatementError> {
        if sql.is_empty() {
            return Err(error::empty_query().into());
        }
        // Statements the parser does not know: `USE ks:shard`, `SHOW SHARDGATE ...`.
        let lower = sql.to_ascii_lowercase();
        if let Some(name) = lower.strip_prefix("use ").map(|_| &sql[4..]) {
            self.use_keyspace(name)?;
            return self.ok(out).await;
        }
        if is_show_warnings(sql) {
            return self.show_warnings(&lower, out).await;
        }
        if lower.split_whitespace().take(2).eq(["show", "shardgate"]) {
            return self.show_shardgate(&lower, out).await;
        }
        if lower
            .split_whitespace()
            .take(3)
            .eq(["alter", "shardgate", "migration"])
            || lower.split_whitespace().take(2).eq(["revert", "migration"])
        {
            return self.alter_migration(sql, out).await;
        }
        if let Some((all, rest)) = strip_vexplain(sql) {
            let plan = self.plan_text(rest).await?;
            let mut lines: Vec<String> = plan.describe().lines().map(str::to_string).collect();
            if all {
                // Each shard statement as its keyspace's first shard explains it.
                for (keyspace, query) in plan.shard_queries() {
                    lines.push(format!("EXPLAIN on {keyspace}: {query}"));
                    let explain = Plan::Route(engine::Route {
                        keyspace: keyspace.to_string(),
                        opcode: engine::Opcode::Reference,
                        query: format!("EXPLAIN {query}"),
                        elsewhere: None,
                    });
                    let mut found = engine::Collected::default();
                    self.execute(&explain, &mut found)
                        .await
                        .map_err(|e| error::from_engine(&e))?;
                    for row in found.rows {
                        let fields: Vec<String> = found
                            .columns
                            .iter()
                            .zip(row)
                            .map(|(c, v)| {
                                let value = match v {
                                    Value::NULL => "NULL".to_string(),
                                    Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                                    other => other.as_sql(true),
                                };
                                format!("{}={value}", c.name_str())
                            })
                            .collect();
                        lines.push(format!("  {}", fields.join(" ")));
                    }
                }
            }
            let rows = lines
                .into_iter()
                .map(|l| vec![Value::Bytes(l.into_bytes())])
                .collect();
            return self
                .local_rows(out, vec![sysvars::text_column("plan")], rows)
                .await;
        }
        // PREPARE, EXECUTE and DEALLOCATE PREPARE in MySQL's form, which the parser does not know.
        if ["prepare", "execute", "deallocate", "drop"]
            .iter()
            .any(|w| lower.starts_with(w))
        {
            if let Some(statement) = planner::sql_prepared(sql) {
                return self.sql_prepared(statement, out).await;
            }
        }
        // SHOW statements about a keyspace that the parser does not know.
        if lower.starts_with("show ") {
            let catalog = self.topo.catalog.load_full();
            if let Some(statement) = planner::keyspace_statement(sql, &self.context(&catalog)) {
                let statement = statement.map_err(error::from_plan)?;
                return self.keyspace_statement(statement, out).await;
            }
        }
        // The parser does not know MariaDB's `LOCK IN SHARE MODE`: plan without it, send it along.
        let (sql, share_lock) = split_share_lock(sql);
        let mut statements = match Parser::parse_sql(&MySqlDialect {}, sql) {
            Ok(s) => s,
            // The parser does not know every SET MySQL takes (`SET a = 1, NAMES x COLLATE y`,
            // as sqlx sends); the assignments are read from the tokens instead.
            Err(_) if lower.starts_with("set ") && planner::set_assignments(sql).is_some() => {
                self.set(None, sql).await?;
                return self.ok(out).await;
            }
            // Nor `START TRANSACTION WITH CONSISTENT SNAPSHOT`: each shard takes the client's
            // text as it is.
            Err(_) if planner::leading_words(sql, 2) == ["START", "TRANSACTION"] => {
                self.end_transaction(true).await?;
                self.unlock_tables().await;
                self.begin(sql);
                return self.ok(out).await;
            }
            Err(e) => {
                let catalog = self.topo.catalog.load_full();
                let Some(plan) = planner::alter_keys(sql, &self.context(&catalog)) else {
                    return Err(error::unparsed(sql, e).into());
                };
                let plan = plan.map_err(error::from_plan)?;
                // DDL commits the open transaction first, as in MySQL.
                self.end_transaction(true).await?;
                return self.run(&plan, out, None).await;
            }
        };
        if statements.len() != 1 {
            return Err(error::unsupported("several statements in one query").into());
        }
        let stmt = statements.remove(0);
        if share_lock && !matches!(stmt, Statement::Query(_)) {
            return Err(
                error::syntax("LOCK IN SHARE MODE after a statement that is not a SELECT").into(),
            );
        }
        match &stmt {
            Statement::Use(u) => {
                let name = match u {
                    Use::Object(n) | Use::Database(n) | Use::Schema(n) => n.to_string(),
                    _ => return Err(error::unsupported(format!("{stmt}")).into()),
                };
                self.use_keyspace(&name)?;
                return self.ok(out).await;
            }
            Statement::Set(set) => {
                self.set(Some(set), sql).await?;
                return self.ok(out).await;
            }
            Statement::StartTransaction { .. } => {
                // A new transaction commits the open one and gives up the table locks, as in
                // MySQL.
                self.end_transaction(true).await?;
                self.unlock_tables().await;
                let start = if sql
                    .get(..5)
                    .is_some_and(|w| w.eq_ignore_ascii_case("begin"))
                {
                    "START TRANSACTION"
                } else {
                    sql
                };
                self.begin(start);
                return self.ok(out).await;
            }
            Statement::Commit { chain: false, .. } => {
                self.end_transaction(true).await?;
                return self.ok(out).await;
            }
            Statement::Rollback {
                savepoint: None,
                chain: false,
            } => {
                self.end_transaction(false).await?;
                return self.ok(out).await;
            }
            Statement::Rollback {
                savepoint: Some(name),
                chain: false,
            } => {
                self.savepoint(sql, &name.value, SavepointOp::RollbackTo)
                    .await?;
                return self.ok(out).await;
            }
            Statement::Savepoint { name } => {
                self.savepoint(sql, &name.value, SavepointOp::Set).await?;
                return self.ok(out).await;
            }
            Statement::ReleaseSavepoint { name } => {
                self.savepoint(sql, &name.value, SavepointOp::Release)
                    .await?;
                return self.ok(out).await;
            }
            Statement::ShowDatabases { show_options, .. }
            | Statement::ShowSchemas { show_options, .. } => {
                return self.show_databases(show_options, out).await
            }
            Statement::ShowVariable { variable }
                if variable
                    .first()
                    .is_some_and(|v| v.value.eq_ignore_ascii_case("grants")) =>
            {
                return self.show_grants(sql, out).await
            }
            Statement::ShowTables {
                full, show_options, ..
            } => return self.show_tables(*full, show_options, out).await,
            Statement::LockTables { tables } => {
                self.lock_tables(tables).await?;
                return self.ok(out).await;
            }
            Statement::UnlockTables => {
                self.unlock_tables().await;
                return self.ok(out).await;
            }
            Statement::Kill { modifier, id } => {
                self.kill(
                    *id,
                    !matches!(modifier, Some(sqlparser::ast::KillType::Query)),
                )
                .await?;
                return self.ok(out).await;
            }
            Statement::ShowProcessList { .. } => return self.show_processlist(out).await,
            Statement::ShowStatus { .. } => return self.show_status(sql, out).await,
            Statement::ShowCharset(_) | Statement::ShowCollation { .. } => {
                return self.show_from_shard(sql, Vec::new(), out).await
            }
            Statement::ShowVariable { variable }
                if matches!(
                    variable
                        .first()
                        .map(|v| v.value.to_ascii_lowercase())
                        .as_deref(),
                    Some("engines" | "plugins" | "storage")
                ) =>
            {
                return self.show_from_shard(sql, Vec::new(), out).await
            }
            Statement::ShowVariable { variable }
                if variable.first().is_some_and(|v| {
                    ["index", "indexes", "keys"].contains(&v.value.to_ascii_lowercase().as_str())
                }) =>
            {
                return self.show_index(sql, out).await;
            }
            Statement::ShowVariables { global: false, .. } => {
                return self.show_variables(sql, out).await
            }
            Statement::Query(q) if matches!(q.body.as_ref(), SetExpr::Select(s) if s.into.is_some()) => {
                return self.select_into(q, out).await
            }
            Statement::Query(q) if sysvars::uses_named_locks(q) => {
                return self.named_lock_statement(sql, out).await
            }
            Statement::Query(q) => match sysvars::answer(q, sql, &self.session, &self.gate.info)? {
                Some(sysvars::Answer::Local((columns, rows))) => {
                    return self.local_rows(out, columns, rows).await
                }
                Some(sysvars::Answer::Shard {
                    text,
                    sets_last_insert_id: None,
                }) => {
                    let plan = self.plan_text(&text).await?;
                    return self.run(&plan, out, None).await;
                }
                Some(sysvars::Answer::Shard {
                    text,
                    sets_last_insert_id: Some(item),
                }) => {
                    let plan = self.plan_text(&text).await?;
                    let mut rows = engine::Collected::default();
                    self.execute(&plan, &mut rows)
                        .await
                        .map_err(|e| error::from_engine(&e))?;
                    let value = rows.rows.first().and_then(|r| r.get(item));
                    self.session.last_insert_id = match value {
                        Some(Value::Int(n)) => *n as u64,
                        Some(Value::UInt(n)) => *n,
                        Some(Value::Bytes(b)) => String::from_utf8_lossy(b)
                            .trim()
                            .parse::<f64>()
                            .map_or(0, |f| f as u64),
                        _ => 0,
                    };
                    return self.local_rows(out, rows.columns, rows.rows).await;
                }
                None => {}
            },
            _ => {}
        }
        let plan = match (&self.session.keyspace, &self.session.target_shard) {
            (Some(ks), Some(shard)) => Plan::Route(engine::Route {
                keyspace: ks.clone(),
                opcode: engine::Opcode::Destination {
                    shard: shard.clone(),
                },
                query: sql.to_string(),
                elsewhere: None,
            }),
            _ => self.plan_statement(&stmt, sql).await?,
        };
        let plan = if share_lock {
            with_share_lock(plan)?
        } else {
            plan
        };
        if let Some(learn) = learn {
            self.learn(learn, &stmt, &plan);
        }
        if is_ddl(&stmt) {
            // As PlanetScale's safe migrations: a production main changes by deploy requests.
            if self.branch.is_none() && self.gate.branches.production() {
                return Err(error::unsupported(
                    "DDL on main, which is production; change a branch and deploy it with \
                     `shardgate deploy-request create <branch>`",
                )
                .into());
            }
            if self.branch.is_none() {
                if let Some(ks) =
                    (plan.keyspaces().into_iter()).find(|k| self.gate.reshards.moving(k))
                {
                    return Err(error::unsupported(format!(
                        "DDL on keyspace {ks} while it is being resharded (the streams copy \
                         rows, not schema changes); complete or cancel the reshard first"
                    ))
                    .into());
                }
            }
            // DDL commits the open transaction first, as in MySQL, and runs outside it.
            self.end_transaction(true).await?;
            // A branch's ALTER runs directly: online migrations change main.
            if matches!(stmt, Statement::AlterTable(_))
                && self.branch.is_none()
                && self.session.ddl_strategy == crate::migration::DdlStrategy::Online
            {
                return self.online_alter(&plan, &stmt, sql, out).await;
            }
            let result = self.run(&plan, out, None).await;
            // A column name may now belong to another table than the plans made of it say.
            self.topo.forget_columns(plan.keyspaces());
            self.plans().clear();
            return result;
        }
        if matches!(stmt, Statement::Explain { .. }) {
            let catalog = self.topo.catalog.load_full();
            self.note = planner::explain_note(&stmt, sql, &self.context(&catalog));
        }
        self.ensure_transaction();
        // SQL_CALC_FOUND_ROWS: the rows without the LIMIT, counted by a statement of its own
        // (the shards' own counts would each be partial).
        let found = match found_rows_query(&stmt) {
            Some(count) => Some(self.count_rows(&count).await?),
            None => None,
        };
        self.run(&plan, out, None).await?;
        if let Some(found) = found {
            self.session.found_rows = found;
        }
        Ok(())
    }

    /// The one number a `SELECT COUNT(*) ...` returns, run in the session's transaction.
    async fn count_rows(&mut self, sql: &str) -> Result<u64, StatementError> {
        let plan = self.plan_text(sql).await?;
        let mut rows = engine::Collected::default();
        self.execute(&plan, &mut rows)
            .await
            .map_err(|e| error::from_engine(&e))?;
        Ok(match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Int(n)) => *n as u64,
            Some(Value::UInt(n)) => *n,
            Some(Value::Bytes(b)) => String::from_utf8_lossy(b).parse().unwrap_or(0),
            _ => 0,
        })
    }

    /// An empty OK, with the status flags as they are after the statement (BEGIN sets
    /// in-transaction, COMMIT clears it).
    pub(super) async fn ok(&self, out: &mut ResultWriter<'_>) -> Result<(), StatementError> {
        self.ok_with_warnings(out, 0).await
    }

    pub(super) async fn ok_with_warnings(
        &self,
        out: &mut ResultWriter<'_>,
        warnings: u16,
    ) -> Result<(), StatementError> {
        out.set_status(self.status());
        let info = OkInfo {
            warnings,
            ..OkInfo::default()
        };
        Ok(out.ok(&info).await?)
    }
}

/// For a `SELECT SQL_CALC_FOUND_ROWS ...`, the statement counting its rows without its LIMIT
/// (rendered from the parsed query).
pub(super) fn found_rows_query(stmt: &Statement) -> Option<String> {
    if !calc_found_rows(stmt) {
        return None;
    }
    let Statement::Query(q) = stmt else {
        return None;
    };
    let mut q = q.clone();
    if let SetExpr::Select(select) = q.body.as_mut() {
        if let Some(modifiers) = select.select_modifiers.as_mut() {
            modifiers.sql_calc_found_rows = false;
        }
    }
    q.limit_clause = None;
    q.order_by = None;
    Some(format!("SELECT COUNT(*) FROM ({q}) AS sg_found_rows"))
}

/// Whether a statement is a `SELECT SQL_CALC_FOUND_ROWS ...` (checked without copying it: every
/// planned SELECT asks).
pub(super) fn calc_found_rows(stmt: &Statement) -> bool {
    matches!(stmt, Statement::Query(q) if matches!(q.body.as_ref(),
        SetExpr::Select(s) if s.select_modifiers.as_ref().is_some_and(|m| m.sql_calc_found_rows)))
}

/// Whether a statement writes (refused for read-only users): by its first keyword, and for
/// `WITH ...`, by the statement the parser finds.
pub(super) fn writes(sql: &str) -> bool {
    match crate::metrics::statement_kind(sql) {
        "insert" | "update" | "delete" | "replace" | "create" | "alter" | "drop" | "truncate"
        | "rename" | "load" | "call" | "grant" | "revoke" | "lock" => true,
        "with" => Parser::parse_sql(&MySqlDialect {}, sql).is_ok_and(|s| match s.as_slice() {
            [Statement::Query(q)] => matches!(
                q.body.as_ref(),
                SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
            ),
            _ => true,
        }),
        _ => false,
    }
}

/// `VEXPLAIN [PLAN] <statement>` → the statement.
/// `VEXPLAIN [PLAN | ALL] statement` → (ALL?, the statement).
pub(super) fn strip_vexplain(sql: &str) -> Option<(bool, &str)> {
    let rest = sql
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("vexplain"))?;
    let rest = sql[rest.len()..].trim_start();
    for (word, all) in [("plan", false), ("all", true)] {
        if let Some(p) = rest.get(..word.len()) {
            if p.eq_ignore_ascii_case(word) && rest[word.len()..].starts_with(char::is_whitespace) {
                return Some((all, rest[word.len()..].trim_start()));
            }
        }
    }
    Some((false, rest))
}

pub(super) fn is_show_warnings(sql: &str) -> bool {
    let lower = sql.trim().to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().take(3).collect();
    matches!(
        words.as_slice(),
        ["show", "warnings", ..] | ["show", "count(*)", "warnings"]
    )
}

/// `SELECT ... LOCK IN SHARE MODE` → (the SELECT, true).
pub(super) fn split_share_lock(sql: &str) -> (&str, bool) {
    let trimmed = sql.trim_end();
    let lower = trimmed.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().rev().take(4).collect();
    if words == ["mode", "share", "in", "lock"] {
        let cut = lower.rfind("lock").unwrap_or(trimmed.len());
        (trimmed[..cut].trim_end(), true)
    } else {
        (sql, false)
    }
}

/// Puts `LOCK IN SHARE MODE` back on the statement every shard receives.
pub(super) fn with_share_lock(plan: Plan) -> Result<Plan, SqlError> {
    Ok(match plan {
        Plan::Route(mut r) => {
            r.query.push_str(" LOCK IN SHARE MODE");
            Plan::Route(r)
        }
        Plan::Merge(mut s) => {
            s.route.query.push_str(" LOCK IN SHARE MODE");
            Plan::Merge(s)
        }
        _ => return Err(error::unsupported("LOCK IN SHARE MODE on this statement")),
    })
}

/// Statements MySQL runs in a transaction of their own, committing the open one first.
pub(super) fn is_ddl(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::CreateTable(_)
            | Statement::AlterTable(_)
            | Statement::Drop { .. }
            | Statement::Truncate(_)
            | Statement::CreateIndex(_)
            | Statement::RenameTable(_)
    )
}
