//! Plans and their execution. A [`Plan`] is data built by the planner; [`execute`] runs it against
//! an [`Executor`] (the backend pools in production, a logging fake in tests) and streams rows into
//! a [`RowSink`] (the client connection). The engine never parses SQL.
//!
//! - `plan`: the primitives ([`Route`], [`Insert`], [`Send`], [`MergedSelect`], [`Join`],
//!   [`PullOut`], [`Derived`], [`OwnedWrite`]) and their one renderer, `describe`.
//! - `route`, `insert`, `send`: how the simple primitives execute; `fanout`: one statement on
//!   several shards at once, their rows concatenated.
//! - `select`: a merged SELECT, from `merge_sort` (the shards' streams, merged k-way) through
//!   `ordered_aggregate` (partial aggregates combined), `eval` (expressions at the proxy, with
//!   `compare`, `collation` and `decimal`) and `projection` (the client's columns).
//! - `join`: the nested-loop join across shards; `pullout`: a subquery run first, its rows
//!   turned into SQL; `derived`: a derived table's rows through the outer query's stages.
//! - `lookup`, `owned_write`: lookup vindexes, and writes to tables that own them.
//! - `literal`: values written as SQL for the shards, one escaping policy.

mod append;
mod collation;
mod compare;
mod decimal;
mod derived;
mod eval;
mod fanout;
mod general_ci;
mod insert;
mod join;
pub mod literal;
mod lookup;
mod merge_sort;
mod ordered_aggregate;
mod ordered_write;
mod owned_write;
mod plan;
mod projection;
mod pullout;
mod route;
mod select;
mod send;
mod shard_eval;

use std::future::Future;
use std::sync::Arc;

pub use collation::{Collation, TextOrder};
pub use compare::{SortKey, Weight};
pub use decimal::Decimal;
pub use eval::{ArithOp, CompareOp, EvalExpr, Literal};
pub use lookup::key_value;
pub use mysql_common::packets::Column;
pub use mysql_common::value::Value;
pub use plan::{
    Aggregate, AggregateKind, BitOp, ComputedKind, Derived, Generate, Hole, Insert, InsertRow,
    InsertSelect, Join, JoinColumn, JoinKind, JoinRight, MergedSelect, NewLookupValue, Opcode,
    OrderedWrite, OutputColumn, OwnedLookup, OwnedWrite, Partial, Plan, PullOut, Pulled,
    PulledKind, Route, Send, SendKind, ShardEval, Spread, SqlTemplate, Stage, Wildcard,
};
pub use pullout::{splice, value_rows, NO_ROWS};
pub use shard_eval::any_shard;
use vschema::{Keyspace, SequenceRef, VSchema, VindexError};

/// What a statement did, as reported in the OK packet (or the EOF after rows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub warnings: u16,
    pub info: String,
    /// The warnings themselves (`Level`, `Code`, `Message` rows), read from the shards that
    /// reported any, for `SHOW WARNINGS`.
    pub warning_rows: Vec<Vec<Value>>,
}

impl Outcome {
    /// The shards' warnings with `code` replaced by the proxy's own.
    pub fn replace_warnings(&mut self, code: u16, own: Vec<Vec<Value>>) {
        let theirs = |w: &Vec<Value>| match w.get(1) {
            Some(Value::Int(c)) => *c == i64::from(code),
            Some(Value::UInt(c)) => *c == u64::from(code),
            Some(Value::Bytes(c)) => c.as_slice() == code.to_string().as_bytes(),
            _ => false,
        };
        let before = self.warning_rows.len();
        self.warning_rows.retain(|w| !theirs(w));
        let dropped = (before - self.warning_rows.len()) as u16;
        self.warnings = self
            .warnings
            .saturating_sub(dropped)
            .saturating_add(own.len() as u16);
        self.warning_rows.extend(own);
    }

    /// Folds the outcome of one more shard into a statement that ran on several.
    pub fn merge(&mut self, other: Outcome) {
        self.affected_rows += other.affected_rows;
        if self.last_insert_id == 0 {
            self.last_insert_id = other.last_insert_id;
        }
        self.warnings = self.warnings.saturating_add(other.warnings);
        self.info = merge_info(&self.info, &other.info);
        self.warning_rows.extend(other.warning_rows);
    }
}

/// Sums two info strings of the same shape, `Rows matched: 1  Changed: 1  Warnings: 0` or
/// `Records: 2  Duplicates: 0  Warnings: 0`, as one server would have counted them.
fn merge_info(a: &str, b: &str) -> String {
    if a.is_empty() {
        return b.to_string();
    }
    if b.is_empty() {
        return a.to_string();
    }
    let parse = |s: &str| -> Option<Vec<(String, u64)>> {
        s.split("  ")
            .map(|part| {
                let (label, n) = part.trim().rsplit_once(": ")?;
                Some((label.to_string(), n.trim().parse().ok()?))
            })
            .collect()
    };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) if x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| p.0 == q.0) => {
            let parts: Vec<String> = x
                .iter()
                .zip(&y)
                .map(|(p, q)| format!("{}: {}", p.0, p.1 + q.1))
                .collect();
            parts.join("  ")
        }
        _ => a.to_string(),
    }
}

/// Receives a statement's result set: the columns once, then each row.
pub trait RowSink: std::marker::Send {
    fn columns(
        &mut self,
        columns: Arc<[Column]>,
    ) -> impl Future<Output = Result<(), EngineError>> + std::marker::Send;
    fn row(
        &mut self,
        row: Vec<Value>,
    ) -> impl Future<Output = Result<(), EngineError>> + std::marker::Send;

    /// A row in the text protocol as the shard sent it: its packet's payload, `columns` values
    /// each a length-encoded string or 0xfb for NULL. A sink that passes rows on unchanged
    /// takes the bytes as they are; the others get the row decoded.
    fn text_row(
        &mut self,
        payload: &[u8],
        columns: usize,
    ) -> impl Future<Output = Result<(), EngineError>> + std::marker::Send {
        let row = decode_text_row(payload, columns);
        async move { self.row(row?).await }
    }

    /// Whether this sink passes binary-protocol rows on as they are (see
    /// [`RowSink::binary_row`]): only then is a statement worth running prepared on its shard.
    fn relays_binary(&self) -> bool {
        false
    }

    /// A row in the binary protocol (a prepared statement's result) as the shard sent it. A
    /// sink that passes rows on unchanged takes the bytes as they are; the others get the row
    /// decoded.
    fn binary_row(
        &mut self,
        payload: &[u8],
        columns: &Arc<[Column]>,
    ) -> impl Future<Output = Result<(), EngineError>> + std::marker::Send {
        let row = decode_binary_row(payload, columns);
        async move { self.row(row?).await }
    }
}

/// The values of a binary-protocol row (see [`RowSink::binary_row`]).
pub fn decode_binary_row(
    payload: &[u8],
    columns: &Arc<[Column]>,
) -> Result<Vec<Value>, EngineError> {
    use mysql_common::value::ServerSide;
    let row: mysql_common::row::RowDeserializer<ServerSide, mysql_common::proto::Binary> =
        mysql_common::io::ParseBuf(payload)
            .parse(columns.clone())
            .map_err(|e| EngineError::Bug(format!("a malformed binary row from a shard: {e}")))?;
    let values = mysql_common::row::Row::from(row).unwrap_raw();
    Ok(values
        .into_iter()
        .map(|v| v.unwrap_or(Value::NULL))
        .collect())
}

/// The values of a text-protocol row (see [`RowSink::text_row`]), as bytes or NULL.
pub fn decode_text_row(payload: &[u8], columns: usize) -> Result<Vec<Value>, EngineError> {
    let mut spans = Vec::with_capacity(columns);
    compare::text_spans(payload, columns, &mut spans)?;
    Ok(spans
        .into_iter()
        .map(|span| match span {
            Some((start, end)) => Value::Bytes(payload[start as usize..end as usize].to_vec()),
            None => Value::NULL,
        })
        .collect())
}

/// Runs one SQL statement on one shard. `keyspace` and `shard` are names from the VSchema.
pub trait Executor: Sync {
    fn execute<S: RowSink>(
        &self,
        keyspace: &str,
        shard: &str,
        sql: &str,
        sink: &mut S,
    ) -> impl Future<Output = Result<Outcome, EngineError>> + std::marker::Send;

    /// Reserves `count` consecutive ids from a sequence; returns the first.
    fn reserve_ids(
        &self,
        sequence: &SequenceRef,
        count: u64,
    ) -> impl Future<Output = Result<u64, EngineError>> + std::marker::Send;

    /// Whether a statement on several shards must reach them one after another, in key order,
    /// rather than all at once. A write that holds its locks until the transaction it runs in
    /// ends (a write's own transaction) then takes them in one global order, so two such
    /// writes can never wait for each other in a cycle across shards, whichever proxy runs
    /// them. Only consumers that read the shards in key order may be given such an executor.
    fn in_key_order(&self) -> bool {
        false
    }

    /// Runs a write outside any transaction the session has open, committed at once (the lookup
    /// rows of an `autocommit` lookup vindex).
    fn execute_autocommit(
        &self,
        keyspace: &str,
        shard: &str,
        sql: &str,
    ) -> impl Future<Output = Result<Outcome, EngineError>> + std::marker::Send {
        async move { self.execute(keyspace, shard, sql, &mut NoRows).await }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The backend server refused the statement; its code and SQLSTATE pass through.
    #[error("shard {shard}: {message}")]
    Server {
        shard: String,
        code: u16,
        state: String,
        message: String,
    },
    /// The backend could not be reached: the statement was not sent.
    #[error("shard {shard}: {message}")]
    Backend { shard: String, message: String },
    /// The connection broke, or was given up, after the statement was sent: what it did on
    /// that shard is unknown.
    #[error("shard {shard}: {message}")]
    Lost { shard: String, message: String },
    /// A value that a write must place has no keyspace ID.
    #[error("{0}")]
    Vindex(#[from] VindexError),
    #[error("keyspace {0} is not in the VSchema")]
    UnknownKeyspace(String),
    /// Writing to the client failed; the statement is abandoned.
    #[error("client connection: {0}")]
    Client(#[from] std::io::Error),
    /// A shape that cannot be merged correctly yet, found once the column types are known.
    #[error("{0}")]
    Unsupported(String),
    /// A merge that would hold more rows than allowed.
    #[error("the merge would hold more than {0} rows (server.max_buffered_rows)")]
    TooManyRows(usize),
    #[error("value out of range in {0}")]
    OutOfRange(String),
    /// The reader of a shard's rows stopped reading (it had enough).
    #[error("result abandoned")]
    Abandoned,
    /// COMMIT failed part way through a multi-shard transaction.
    #[error("{0}")]
    Commit(String),
    /// A sequence could not hand out ids.
    #[error("{0}")]
    Sequence(String),
    /// A unique lookup value that another row already holds.
    #[error("Duplicate entry '{value}' for key '{key}'")]
    Duplicate { value: String, key: String },
    /// A value a lookup vindex does not map to the row's keyspace ID, in a table that does not
    /// own the vindex.
    #[error("Cannot add or update a child row: value {value} of column {column} does not map to the row's keyspace ID through lookup vindex {vindex}")]
    NotMapped {
        value: String,
        column: String,
        vindex: String,
    },
    /// A NULL for a lookup vindex that does not take them (`ignore_nulls` not set).
    #[error("Column '{0}' cannot be null")]
    NullLookupValue(String),
    /// A scalar subquery that returned several rows.
    #[error("Subquery returns more than 1 row")]
    SubqueryRows,
    /// A subquery with the wrong number of columns for where it stands.
    #[error("Operand should contain {0} column(s)")]
    SubqueryColumns(usize),
    #[error("[BUG] {0}")]
    Bug(String),
}

impl EngineError {
    /// ER_LOCK_DEADLOCK from a shard: its transaction there was rolled back.
    pub fn is_deadlock(&self) -> bool {
        matches!(self, EngineError::Server { code: 1213, .. })
    }

    /// The same error, saying that the whole transaction it happened in was rolled back.
    pub fn rolled_back(self) -> Self {
        const NOTE: &str = "; the statement could not be undone on its shards alone, so the whole transaction was rolled back";
        match self {
            EngineError::Server {
                shard,
                code,
                state,
                message,
            } => EngineError::Server {
                shard,
                code,
                state,
                message: message + NOTE,
            },
            EngineError::Backend { shard, message } => EngineError::Backend {
                shard,
                message: message + NOTE,
            },
            EngineError::Lost { shard, message } => EngineError::Lost {
                shard,
                message: message + NOTE,
            },
            other => other,
        }
    }
}

/// Limits that apply while executing.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Rows a merge may hold in memory (MemorySort).
    pub max_buffered_rows: usize,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            max_buffered_rows: 100_000,
        }
    }
}

/// Runs `plan` and streams its rows (if any) into `sink`.
pub async fn execute<E: Executor, S: RowSink>(
    plan: &Plan,
    vschema: &VSchema,
    executor: &E,
    sink: &mut S,
    options: &ExecOptions,
) -> Result<Outcome, EngineError> {
    // An async fn's future is as large as its largest branch, and every statement moves it
    // (into a box, into its caller's): the plans of one round trip run inline, the others
    // (fan-outs, merges, joins) boxed.
    match plan {
        Plan::Merge(s) => {
            Box::pin(select::execute(
                s,
                keyspace(vschema, &s.route.keyspace)?,
                vschema,
                executor,
                sink,
                options,
            ))
            .await
        }
        Plan::Route(route) => {
            route::execute(
                route,
                keyspace(vschema, &route.keyspace)?,
                vschema,
                executor,
                sink,
            )
            .await
        }
        Plan::Insert(insert) => {
            insert::execute(
                insert,
                keyspace(vschema, &insert.keyspace)?,
                vschema,
                executor,
                sink,
            )
            .await
        }
        Plan::Send(send) => {
            Box::pin(send::execute(
                send,
                keyspace(vschema, &send.keyspace)?,
                executor,
            ))
            .await
        }
        Plan::OwnedWrite(w) => {
            Box::pin(owned_write::execute(
                w,
                keyspace(vschema, &w.route.keyspace)?,
                vschema,
                executor,
                options,
            ))
            .await
        }
        Plan::Join(j) => Box::pin(join::execute(j, vschema, executor, sink, options)).await,
        Plan::Derived(d) => Box::pin(derived::execute(d, vschema, executor, sink, options)).await,
        Plan::ShardEval(e) => {
            Box::pin(shard_eval::execute(e, vschema, executor, sink, options)).await
        }
        Plan::Append(plans) => {
            Box::pin(append::execute(plans, vschema, executor, sink, options)).await
        }
        Plan::Concat(parts) => Box::pin(concat(parts, vschema, executor, sink)).await,
        Plan::OrderedWrite(w) => {
            Box::pin(ordered_write::execute(
                w,
                keyspace(vschema, &w.route.keyspace)?,
                vschema,
                executor,
            ))
            .await
        }
        // Its statement is planned once the subqueries' values are known: the caller does that.
        Plan::PullOut(_) | Plan::InsertSelect(_) => Err(EngineError::Bug(
            "a plan run in steps by its caller reached the engine whole".into(),
        )),
    }
}

/// Runs each route in turn into `sink`, the columns of the first one only.
async fn concat<E: Executor, S: RowSink>(
    parts: &[Route],
    vschema: &VSchema,
    executor: &E,
    sink: &mut S,
) -> Result<Outcome, EngineError> {
    /// Passes rows on; columns only once.
    struct Continued<'s, S> {
        sink: &'s mut S,
        columns_sent: bool,
    }
    impl<S: RowSink> RowSink for Continued<'_, S> {
        async fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
            if !std::mem::replace(&mut self.columns_sent, true) {
                self.sink.columns(columns).await?;
            }
            Ok(())
        }
        async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
            self.sink.row(row).await
        }
    }
    let mut continued = Continued {
        sink,
        columns_sent: false,
    };
    for part in parts {
        let ks = keyspace(vschema, &part.keyspace)?;
        route::execute(part, ks, vschema, executor, &mut continued).await?;
    }
    Ok(Outcome::default())
}

/// The columns `stages` turn `input` into: what a merged or joined result looks like before it
/// runs (COM_STMT_PREPARE).
pub fn stage_output(stages: &[Stage], input: Vec<Column>) -> Result<Vec<Column>, EngineError> {
    select::build(stages, input, &ExecOptions::default()).map(|(_, output)| output)
}

fn keyspace<'a>(vschema: &'a VSchema, name: &str) -> Result<&'a Keyspace, EngineError> {
    vschema
        .keyspace(name)
        .ok_or_else(|| EngineError::UnknownKeyspace(name.to_string()))
}

/// A sink that keeps a whole (small) result: lookup rows, session variables, warnings.
#[derive(Debug, Default)]
pub struct Collected {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl RowSink for Collected {
    async fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
        self.columns = columns.to_vec();
        Ok(())
    }
    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        self.rows.push(row);
        Ok(())
    }
}

/// A sink for statements that return no rows; rows that arrive anyway are dropped.
pub struct NoRows;

impl RowSink for NoRows {
    async fn columns(&mut self, _: Arc<[Column]>) -> Result<(), EngineError> {
        Ok(())
    }
    async fn row(&mut self, _: Vec<Value>) -> Result<(), EngineError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod info_tests {
    #[test]
    fn info_strings_add_up() {
        assert_eq!(
            super::merge_info(
                "Rows matched: 2  Changed: 1  Warnings: 0",
                "Rows matched: 3  Changed: 3  Warnings: 1"
            ),
            "Rows matched: 5  Changed: 4  Warnings: 1"
        );
        assert_eq!(
            super::merge_info(
                "Records: 2  Duplicates: 0  Warnings: 0",
                "Records: 1  Duplicates: 1  Warnings: 0"
            ),
            "Records: 3  Duplicates: 1  Warnings: 0"
        );
        assert_eq!(
            super::merge_info("", "Records: 1  Duplicates: 0  Warnings: 0"),
            "Records: 1  Duplicates: 0  Warnings: 0"
        );
    }
}
