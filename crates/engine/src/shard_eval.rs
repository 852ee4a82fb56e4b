//! Running a [`ShardEval`]: select items over values the proxy merged (`COALESCE(SUM(x), 0)`,
//! `CASE WHEN COUNT(*) > 2 THEN ... END`, any function over a derived table's columns) that the
//! proxy's own evaluator does not compute. The input plan's rows carry each item's inputs as
//! trailing columns; in batches, one shard evaluates the items over those values as literals,
//! in a derived table whose first branch (`... LIMIT 0`, no row) gives every input the type it
//! has on the server, so the items come back as one server would compute and type them.

use std::sync::Arc;

use tokio::sync::mpsc;
use vschema::VSchema;

use crate::derived::{run_inner, Message, IN_FLIGHT};
use crate::plan::{Opcode, Plan, Route, ShardEval};
use crate::pullout::{collect_at_most, literal};
use crate::select::{build, finish, push, Run};
use crate::{Column, EngineError, ExecOptions, Executor, Outcome, RowSink, Value};

/// Rows per evaluating statement: bounds its text and the rows held.
const BATCH: usize = 256;

pub(crate) async fn execute<E: Executor, S: RowSink>(
    eval: &ShardEval,
    vschema: &VSchema,
    executor: &E,
    sink: &mut S,
    options: &ExecOptions,
) -> Result<Outcome, EngineError> {
    let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
    let inner = run_inner(&eval.input, vschema, executor, tx, options);
    // `move`: the receiver goes with the evaluation, and is dropped if it fails.
    let outer = async move {
        let mut evaluating = Evaluating {
            eval,
            vschema,
            executor,
            options,
            sink,
            input: None,
            batch: Vec::new(),
            runs: None,
        };
        while let Some(message) = rx.recv().await {
            match message {
                Message::Columns(columns) => evaluating.columns(columns)?,
                Message::Row(row) => evaluating.row(row).await?,
            }
        }
        evaluating.flush(true).await
    };
    let (inner, outer) = tokio::join!(inner, outer);
    match (inner, outer) {
        // The input's own failure, not the evaluation's for want of its rows.
        (Err(e), _) if !matches!(e, EngineError::Abandoned) => Err(e),
        (_, Err(e)) => Err(e),
        (inner, Ok(())) => inner,
    }
}

struct Evaluating<'a, E, S> {
    eval: &'a ShardEval,
    vschema: &'a VSchema,
    executor: &'a E,
    options: &'a ExecOptions,
    sink: &'a mut S,
    input: Option<Arc<[Column]>>,
    batch: Vec<Vec<Value>>,
    /// The stages after evaluation, once the columns are known (the client then has them).
    runs: Option<Vec<Run<'a>>>,
}

impl<E: Executor, S: RowSink> Evaluating<'_, E, S> {
    fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
        if columns.len() < self.eval.visible {
            return Err(EngineError::Bug(format!(
                "{} columns to evaluate over, {} visible",
                columns.len(),
                self.eval.visible
            )));
        }
        self.input = Some(columns);
        Ok(())
    }

    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        self.batch.push(row);
        if self.batch.len() >= BATCH {
            self.flush(false).await?;
        }
        Ok(())
    }

    /// Evaluates the held rows and sends them on; at the `end`, with no row ever, still asks for
    /// the items' columns.
    async fn flush(&mut self, end: bool) -> Result<(), EngineError> {
        if self.batch.is_empty() && !end {
            return Ok(());
        }
        if self.batch.is_empty() && self.runs.is_some() {
            // The end, with every row evaluated: what the stages still hold.
            if let Some(runs) = self.runs.as_mut() {
                let mut out = Vec::new();
                finish(runs, 0, &mut out)?;
                for r in out {
                    self.sink.row(r).await?;
                }
            }
            return Ok(());
        }
        let eval = self.eval;
        let input = self
            .input
            .clone()
            .ok_or_else(|| EngineError::Bug("rows to evaluate before their columns".into()))?;
        let mut sql = format!("SELECT {} FROM (({})", eval.select, eval.typing);
        for (n, row) in self.batch.iter().enumerate() {
            sql.push_str(" UNION ALL SELECT ");
            for c in eval.visible..input.len() {
                match &row[c] {
                    Value::NULL => sql.push_str("NULL"),
                    v => sql.push_str(&literal(v, &input[c])),
                }
                sql.push_str(", ");
            }
            sql.push_str(&(n + 1).to_string());
        }
        sql.push_str(") AS sg_in ORDER BY sg_in.sg_n");
        let plan = Plan::Route(Route {
            keyspace: eval.keyspace.clone(),
            opcode: eval.opcode.clone(),
            query: sql,
            elsewhere: None,
        });
        let (computed, _) = collect_at_most(
            &plan,
            self.vschema,
            self.executor,
            self.options,
            self.batch.len(),
        )
        .await?;
        if computed.rows.len() != self.batch.len() || computed.columns.len() < eval.items.len() {
            return Err(EngineError::Bug(format!(
                "{} rows of {} items evaluated for {} rows of {}",
                computed.rows.len(),
                computed.columns.len(),
                self.batch.len(),
                eval.items.len()
            )));
        }
        if self.runs.is_none() {
            let mut columns = input[..eval.visible].to_vec();
            for (&at, def) in eval.items.iter().zip(&computed.columns) {
                columns[at] = def.clone();
            }
            columns.extend(computed.columns[eval.items.len()..].iter().cloned());
            let (runs, output) = build(&eval.stages, columns, self.options)?;
            self.sink.columns(Arc::from(output)).await?;
            self.runs = Some(runs);
        }
        let runs = self
            .runs
            .as_mut()
            .ok_or_else(|| EngineError::Bug("evaluated rows without stages".into()))?;
        let mut out = Vec::new();
        for (mut row, values) in self.batch.drain(..).zip(computed.rows) {
            row.truncate(eval.visible);
            let mut values = values.into_iter();
            for (&at, v) in eval.items.iter().zip(values.by_ref()) {
                row[at] = v;
            }
            row.extend(values);
            // A LIMIT that is met still lets the batch finish; the rest is dropped.
            let _ = push(runs, 0, row, &mut out)?;
            for r in out.drain(..) {
                self.sink.row(r).await?;
            }
        }
        if end {
            finish(runs, 0, &mut out)?;
            for r in out.drain(..) {
                self.sink.row(r).await?;
            }
        }
        Ok(())
    }
}

/// The one shard an evaluation runs on: any, for literals.
pub fn any_shard(sharded: bool) -> Opcode {
    if sharded {
        Opcode::Reference
    } else {
        Opcode::Unsharded
    }
}
