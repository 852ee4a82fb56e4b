//! SQL → [`Plan`]. Pure and synchronous: a parsed statement, its original text and the VSchema in,
//! a plan (or a reason it cannot be planned) out. It never touches a socket.
//!
//! In the order a statement meets them:
//!
//! - `executable`: executable comments (`/*!40101 … */`) resolved before anything parses.
//! - `normalize`, `template`: the plan cache's side: statements with their literals as bind
//!   variables, and binding a cached plan to new values.
//! - `select`, `dml`, `ddl`: one planner per statement family (the dispatchers). A SELECT goes
//!   through `qualify` (bare column names qualified), `cte`, `colocate` (can it run whole on the
//!   shards?), `union`, `scatter` (concatenate, or merge at the proxy: `merge`), `derived`
//!   (derived tables at the proxy), `pullout` (uncorrelated subqueries run first) and `join` (a
//!   nested loop at the proxy).
//!
//! Leaves that the dispatchers share, importing none of them:
//! - `tables`: resolving table names to keyspaces and placements.
//! - `routing`: finding vindex values in a WHERE clause.
//! - `aggregates`: which calls are aggregates, their typed classification, grouped stages.
//! - `clauses`: a SELECT's clauses as written, and helpers over them (LIMIT, ORDER BY
//!   positions, expressions to evaluate at the proxy).
//! - `text`: mapping parser spans back to the client's text, so statements are forwarded as the
//!   client wrote them (the parser's printer loses comments and backslash escapes).

mod aggregates;
mod clauses;
mod colocate;
mod cte;
mod ddl;
mod derived;
mod dml;
mod executable;
mod explain;
mod information_schema;
mod join;
mod merge;
mod multi_table;
mod normalize;
mod pullout;
mod qualify;
mod routing;
mod scalar_subquery;
mod scatter;
mod select;
mod semi_join;
mod tables;
mod template;
mod text;
mod union;
mod union_limits;

use engine::Plan;
use sqlparser::ast::Statement;
use vschema::{VSchema, VindexError};

pub use clauses::{
    expr_range, leading_words, name_items, set_assignments, split_statements, sql_prepared,
    unparsed_shape, SqlPrepared,
};
pub use ddl::{alter_keys, definition_route, keyspace_statement, lock_tables, KeyspaceStatement};
pub use executable::{resolve as resolve_executable_comments, ServerKind};
pub use explain::explain_note;
pub use information_schema::INFORMATION_SCHEMA;
pub use normalize::{
    bind_markers, normalize, parameter_markers, prepared_text, substitute, Literal, LiteralKind,
    Normalized, Slot,
};
pub use qualify::{Catalog, CatalogColumn, KeyOrder};
pub use tables::from_dual;
pub use template::bind;
pub use text::SourceText;

/// Why a statement has no plan. The gate maps each kind to its MySQL error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A valid statement shape that shardgate cannot run correctly yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("No database selected")]
    NoDatabase,
    /// An unqualified table that several keyspaces hold, with no keyspace to choose.
    #[error("No database selected: table '{table}' is in several keyspaces ({keyspaces}); name it as keyspace.table")]
    AmbiguousTable { table: String, keyspaces: String },
    #[error("Unknown database '{0}'")]
    UnknownKeyspace(String),
    #[error("Table '{keyspace}.{table}' doesn't exist")]
    UnknownTable { keyspace: String, table: String },
    /// A write that does not say where its row goes.
    #[error("Field '{column}' doesn't have a default value: an INSERT into sharded table {table} must give its primary vindex column")]
    MissingVindexColumn { table: String, column: String },
    #[error("Column '{0}' cannot be null: it is the table's primary vindex column")]
    NullVindexValue(String),
    #[error("{0}")]
    Vindex(#[from] VindexError),
    /// Planning needs the keyspace's column lists ([`Catalog`]): the caller loads them and
    /// plans again.
    #[error("the column names of keyspace {0} are not known")]
    NeedColumns(String),
    #[error("Column count doesn't match value count at row {0}")]
    WrongValueCount(usize),
    #[error("Column '{column}' in {clause} is ambiguous")]
    AmbiguousColumn { column: String, clause: String },
}

pub(crate) fn unsupported(what: impl Into<String>) -> PlanError {
    PlanError::Unsupported(what.into())
}

/// What a statement is planned against.
pub struct Context<'a> {
    pub vschema: &'a VSchema,
    /// The session's current keyspace (`USE ks`), if any.
    pub keyspace: Option<&'a str>,
    /// The tables' columns, as far as they are loaded.
    pub catalog: &'a Catalog,
}

impl<'a> Context<'a> {
    /// The keyspace of statements that name no table: the session's, or the first one.
    pub fn default_keyspace(&self) -> Result<&'a vschema::Keyspace, PlanError> {
        match self.keyspace {
            Some(ks) => self
                .vschema
                .keyspace(ks)
                .ok_or_else(|| PlanError::UnknownKeyspace(ks.to_string())),
            None => self.vschema.keyspaces().next().ok_or(PlanError::NoDatabase),
        }
    }
}

/// For a SELECT, the keyspace whose shards can describe its result columns and the text to
/// describe there (COM_STMT_PREPARE); `None` for other statements.
pub fn metadata_target(
    stmt: &Statement,
    sql: &str,
    ctx: &Context<'_>,
) -> Result<Option<(String, String)>, PlanError> {
    match stmt {
        Statement::Query(q) => {
            let source = SourceText::new(sql);
            match select::metadata_target(stmt, q, &source, ctx) {
                // Subqueries from another keyspace run first: describe the statement without them.
                Err(e @ PlanError::Unsupported(_)) => {
                    let Some(text) = pullout::stand_in(q, &source, ctx) else {
                        return Err(e);
                    };
                    let stmt = sqlparser::parser::Parser::parse_sql(
                        &sqlparser::dialect::MySqlDialect {},
                        &text,
                    )
                    .ok()
                    .and_then(|mut s| (s.len() == 1).then(|| s.remove(0)))
                    .ok_or(e)?;
                    metadata_target(&stmt, &text, ctx)
                }
                other => other.map(Some),
            }
        }
        _ => Ok(None),
    }
}

/// Plans a statement the planner wrote itself (a side of a join, a subquery run first).
pub(crate) fn plan_text(sql: &str, ctx: &Context<'_>) -> Result<Plan, PlanError> {
    let stmt = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, sql)
        .ok()
        .and_then(|mut s| (s.len() == 1).then(|| s.remove(0)))
        .ok_or_else(|| unsupported(format!("planning {sql}")))?;
    plan(&stmt, sql, ctx)
}

/// Plans one statement. `sql` is the client's text that `stmt` was parsed from.
pub fn plan(stmt: &Statement, sql: &str, ctx: &Context<'_>) -> Result<Plan, PlanError> {
    let source = SourceText::new(sql);
    match stmt {
        Statement::Query(query) => select::plan_select(stmt, query, &source, ctx),
        Statement::Insert(insert) => dml::plan_insert(stmt, insert, &source, ctx),
        Statement::Update(update) => dml::plan_update(stmt, update, &source, ctx),
        Statement::Delete(delete) => dml::plan_delete(stmt, delete, &source, ctx),
        Statement::Explain {
            statement, analyze, ..
        } => explain::plan_explain(statement, *analyze, &source, ctx),
        _ => ddl::plan_other(stmt, &source, ctx),
    }
}
