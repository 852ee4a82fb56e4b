//! Driver chatter answered by the proxy itself: `SELECT @@version_comment LIMIT 1`,
//! `SELECT DATABASE(), USER()`, `SELECT LAST_INSERT_ID()` and the like. Server variables that
//! describe the server (`@@port`, `@@socket`, `@@version`) must describe shardgate, never a shard:
//! some drivers reconnect to the `@@socket` they read.

use engine::{Column, Value};
use mysql_common::constants::{ColumnFlags, ColumnType};
use sqlparser::ast::{Expr, FunctionArguments, Query, SelectItem, SetExpr};

use crate::session::Session;

/// What the proxy says about itself.
pub struct ServerInfo {
    pub version: String,
    pub port: u16,
    pub max_packet_size: usize,
}

enum Local {
    Text(String),
    Int(i64),
    Null,
}

/// Server variables the proxy answers; others go to a shard.
fn sysvar(name: &str, session: &Session, info: &ServerInfo) -> Option<Local> {
    let name = name.to_ascii_lowercase();
    let name = name.trim_start_matches("@@");
    let name = name
        .strip_prefix("session.")
        .or_else(|| name.strip_prefix("local."))
        .or_else(|| name.strip_prefix("global."))
        .unwrap_or(name);
    Some(match name {
        "version" => Local::Text(info.version.clone()),
        "version_comment" => Local::Text("shardgate MySQL sharding proxy".into()),
        "port" => Local::Int(i64::from(info.port)),
        "socket" => Local::Text(String::new()),
        "hostname" => Local::Text(hostname()),
        "autocommit" => Local::Int(i64::from(session.autocommit)),
        "read_target" => Local::Text(session.read_target.name().into()),
        "ddl_strategy" => Local::Text(session.ddl_strategy.name().into()),
        "transaction_mode" => {
            Local::Text(format!("{:?}", session.effective_tx_mode()).to_ascii_lowercase())
        }
        "character_set_client"
        | "character_set_connection"
        | "character_set_results"
        | "character_set_server"
        | "character_set_database" => Local::Text("utf8mb4".into()),
        "collation_connection" | "collation_server" | "collation_database" => {
            Local::Text("utf8mb4_general_ci".into())
        }
        "max_allowed_packet" => Local::Int(info.max_packet_size as i64),
        "tx_isolation" | "transaction_isolation" => Local::Text(
            session
                .isolation
                .unwrap_or(crate::transaction::Isolation::RepeatableRead)
                .value()
                .into(),
        ),
        "tx_read_only" | "transaction_read_only" => Local::Int(i64::from(session.read_only)),
        "auto_increment_increment" => Local::Int(1),
        "lower_case_table_names" => Local::Int(0),
        "wait_timeout" | "interactive_timeout" => Local::Int(28800),
        "have_ssl" | "have_openssl" => Local::Text("DISABLED".into()),
        "init_connect" => Local::Text(String::new()),
        "performance_schema" => Local::Int(0),
        _ => return None,
    })
}

/// A server variable's value as shardgate answers it, for `SHOW VARIABLES`.
pub fn variable_text(name: &str, session: &Session, info: &ServerInfo) -> Option<String> {
    // Only the variables that describe the server itself; the rest are the backend's.
    if !matches!(
        name.to_ascii_lowercase().as_str(),
        "version" | "version_comment" | "port" | "socket" | "hostname" | "autocommit"
    ) {
        return None;
    }
    Some(match sysvar(name, session, info)? {
        Local::Text(t) => t,
        Local::Int(1) if name.eq_ignore_ascii_case("autocommit") => "ON".into(),
        Local::Int(0) if name.eq_ignore_ascii_case("autocommit") => "OFF".into(),
        Local::Int(i) => i.to_string(),
        Local::Null => String::new(),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Functions whose answer is session state the shards do not have.
fn session_function(name: &str, session: &Session, info: &ServerInfo) -> Option<Local> {
    Some(match name.to_ascii_lowercase().as_str() {
        "database" | "schema" => session
            .keyspace
            .clone()
            .map(Local::Text)
            .unwrap_or(Local::Null),
        "user" | "current_user" | "session_user" | "system_user" => {
            Local::Text(format!("{}@localhost", session.user))
        }
        "connection_id" => Local::Int(i64::from(session.conn_id)),
        "last_insert_id" => Local::Int(session.last_insert_id as i64),
        "row_count" => Local::Int(session.row_count),
        "found_rows" => Local::Int(session.found_rows as i64),
        "version" => Local::Text(info.version.clone()),
        _ => return None,
    })
}

fn local_value(expr: &Expr, session: &Session, info: &ServerInfo) -> Option<Local> {
    match expr {
        Expr::Identifier(id) if id.value.starts_with("@@") => sysvar(&id.value, session, info),
        Expr::CompoundIdentifier(parts)
            if parts.first().is_some_and(|p| p.value.starts_with("@@")) =>
        {
            let name: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
            sysvar(&name.join("."), session, info)
        }
        Expr::Function(f) => {
            let no_args = match &f.args {
                FunctionArguments::None => true,
                FunctionArguments::List(l) => l.args.is_empty(),
                FunctionArguments::Subquery(_) => false,
            };
            if no_args && f.over.is_none() {
                session_function(&f.name.to_string(), session, info)
            } else {
                None
            }
        }
        Expr::Nested(inner) => local_value(inner, session, info),
        _ => None,
    }
}

fn is_session_state(expr: &Expr) -> bool {
    match expr {
        Expr::Function(f) => {
            matches!(
                f.name.to_string().to_ascii_lowercase().as_str(),
                "database"
                    | "schema"
                    | "connection_id"
                    | "last_insert_id"
                    | "row_count"
                    | "found_rows"
            )
        }
        Expr::Nested(inner) => is_session_state(inner),
        _ => false,
    }
}

/// Whether session state (DATABASE(), LAST_INSERT_ID(), ...) appears anywhere in `expr`, which a
/// shard would answer with its own.
fn holds_session_state(expr: &Expr) -> bool {
    sqlparser::ast::visit_expressions(expr, |e: &Expr| {
        if is_session_state(e) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// Whether a table-less SELECT uses named locks (GET_LOCK, RELEASE_LOCK, ...), which live on the
/// connection that took them.
pub fn uses_named_locks(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    if !(select.from.is_empty() || planner::from_dual(&select.from)) {
        return false;
    }
    sqlparser::ast::visit_expressions(query, |e: &Expr| match e {
        Expr::Function(f)
            if [
                "get_lock",
                "release_lock",
                "release_all_locks",
                "is_free_lock",
                "is_used_lock",
            ]
            .contains(&f.name.to_string().to_ascii_lowercase().as_str()) =>
        {
            std::ops::ControlFlow::Break(())
        }
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break()
}

/// Column definitions and rows the proxy answers itself.
pub type LocalRows = (Vec<Column>, Vec<Vec<Value>>);

/// How a table-less SELECT that reads server variables or session functions is answered.
pub enum Answer {
    /// By the proxy alone.
    Local(LocalRows),
    /// By a shard, given this text: the session's values written in as literals, each item
    /// named as the client's text would name it. `LAST_INSERT_ID(expr)` is its `expr` there,
    /// and `sets_last_insert_id` the item whose value becomes the session's LAST_INSERT_ID().
    Shard {
        text: String,
        sets_last_insert_id: Option<usize>,
    },
}

/// The answer to a table-less SELECT made only of values the proxy knows: column definitions and
/// one row (none under `LIMIT 0`). When it mixes session state with expressions only a shard
/// can evaluate, the text for the shard with the session's values in it; `Ok(None)` when a
/// shard should answer the statement as it is.
pub fn answer(
    query: &Query,
    sql: &str,
    session: &Session,
    info: &ServerInfo,
) -> Result<Option<Answer>, frontend::SqlError> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Ok(None);
    };
    if !(select.from.is_empty() || planner::from_dual(&select.from))
        || select.selection.is_some()
        || query.order_by.is_some()
        || query.with.is_some()
    {
        return Ok(None);
    }
    let mut columns = Vec::new();
    let mut row = Vec::new();
    let mut needs_session = false;
    let mut all_local = true;
    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => return Ok(None),
        };
        needs_session |= holds_session_state(expr);
        let Some(value) = local_value(expr, session, info) else {
            all_local = false;
            continue;
        };
        let name = alias.unwrap_or_else(|| text_of(expr, sql));
        let (column, value) = match value {
            Local::Text(s) => (text_column(&name), Value::Bytes(s.into_bytes())),
            Local::Int(i) => (int_column(&name), Value::Int(i)),
            Local::Null => (text_column(&name), Value::NULL),
        };
        columns.push(column);
        row.push(value);
    }
    if !all_local {
        if !needs_session {
            return Ok(None);
        }
        return with_session_values(query, sql, session, info)
            .map(|text| {
                Some(Answer::Shard {
                    text,
                    sets_last_insert_id: select.projection.iter().position(|item| match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            last_insert_id_argument(e).is_some()
                        }
                        _ => false,
                    }),
                })
            })
            .ok_or_else(|| {
                crate::error::unsupported("session functions mixed with other expressions")
            });
    }
    let limit_zero = query
        .limit_clause
        .as_ref()
        .is_some_and(|l| l.to_string().trim().eq_ignore_ascii_case("LIMIT 0"));
    Ok(Some(Answer::Local((
        columns,
        if limit_zero { vec![] } else { vec![row] },
    ))))
}

/// `query` rendered with each session function and proxy variable replaced by its value as a
/// literal, and each unaliased item named by its text as the client wrote it. `None` when a
/// session value is not known here (FOUND_ROWS()).
fn with_session_values(
    query: &Query,
    sql: &str,
    session: &Session,
    info: &ServerInfo,
) -> Option<String> {
    let mut query = query.clone();
    planner::name_items(&mut query, &planner::SourceText::new(sql));
    let mut unknown = false;
    let _ = sqlparser::ast::visit_expressions_mut(&mut query, |e: &mut Expr| {
        if let Some(argument) = last_insert_id_argument(e) {
            *e = Expr::Nested(Box::new(argument.clone()));
        } else if is_session_state(e) || local_value(e, session, info).is_some() {
            match local_value(e, session, info) {
                Some(value) => *e = literal(value),
                None => unknown = true,
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    (!unknown).then(|| query.to_string())
}

/// The argument of `LAST_INSERT_ID(expr)`, which returns `expr` and makes it the session's
/// LAST_INSERT_ID().
fn last_insert_id_argument(expr: &Expr) -> Option<&Expr> {
    let Expr::Function(f) = expr else {
        return None;
    };
    if !f.name.to_string().eq_ignore_ascii_case("last_insert_id") {
        return None;
    }
    match &f.args {
        FunctionArguments::List(l) => match l.args.as_slice() {
            [sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e))] => {
                Some(e)
            }
            _ => None,
        },
        _ => None,
    }
}

fn literal(value: Local) -> Expr {
    let value = match value {
        Local::Text(s) => sqlparser::ast::Value::SingleQuotedString(s),
        Local::Int(i) => sqlparser::ast::Value::Number(i.to_string(), false),
        Local::Null => sqlparser::ast::Value::Null,
    };
    Expr::value(value)
}

/// The column name MySQL gives an unaliased expression: its text as the client wrote it.
fn text_of(expr: &Expr, sql: &str) -> String {
    let source = planner::SourceText::new(sql);
    match planner::expr_range(expr, &source) {
        Some(range) => sql[range].to_string(),
        None => expr.to_string(),
    }
}

pub fn text_column(name: &str) -> Column {
    Column::new(ColumnType::MYSQL_TYPE_VAR_STRING)
        .with_name(name.as_bytes())
        .with_character_set(45)
        .with_column_length(1024)
}

pub fn int_column(name: &str) -> Column {
    Column::new(ColumnType::MYSQL_TYPE_LONGLONG)
        .with_name(name.as_bytes())
        .with_character_set(63)
        .with_column_length(21)
        .with_flags(ColumnFlags::BINARY_FLAG | ColumnFlags::NUM_FLAG)
}
