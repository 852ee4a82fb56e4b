//! Running a [`Derived`] table: the inner plan's rows pass through the outer query's stages on
//! their way to the client. The inner plan runs alongside, feeding a bounded channel, so rows
//! stream and an outer LIMIT stops the inner statement.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use vschema::VSchema;

use crate::plan::{Derived, Plan};
use crate::select::{build, finish, push, Flow};
use crate::{Column, EngineError, ExecOptions, Executor, Outcome, RowSink, Value};

/// Rows in flight between the inner plan and the outer stages.
pub(crate) const IN_FLIGHT: usize = 64;

pub(crate) enum Message {
    Columns(Arc<[Column]>),
    Row(Vec<Value>),
}

pub(crate) async fn execute<E: Executor, S: RowSink>(
    derived: &Derived,
    vschema: &VSchema,
    executor: &E,
    sink: &mut S,
    options: &ExecOptions,
) -> Result<Outcome, EngineError> {
    let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
    let inner = run_inner(&derived.inner, vschema, executor, tx, options);
    // `move`: the receiver goes with the outer stages, and is dropped when they stop.
    let outer = async move {
        let mut runs = None;
        let mut out = Vec::new();
        while let Some(message) = rx.recv().await {
            match message {
                Message::Columns(columns) => {
                    let (r, output) = build(&derived.stages, columns.to_vec(), options)?;
                    runs = Some(r);
                    sink.columns(Arc::from(output)).await?;
                }
                Message::Row(row) => {
                    let r = runs.as_mut().ok_or_else(|| {
                        EngineError::Bug("a derived table's row before its columns".into())
                    })?;
                    let flow = push(r, 0, row, &mut out)?;
                    for row in out.drain(..) {
                        sink.row(row).await?;
                    }
                    if flow == Flow::Stop {
                        // Dropping the receiver stops the inner statement.
                        return Ok(true);
                    }
                }
            }
        }
        if let Some(r) = runs.as_mut() {
            finish(r, 0, &mut out)?;
            for row in out.drain(..) {
                sink.row(row).await?;
            }
        }
        Ok::<bool, EngineError>(false)
    };
    let (inner, outer) = tokio::join!(inner, outer);
    let stopped = outer?;
    match inner {
        Ok(_) => Ok(Outcome::default()),
        Err(EngineError::Abandoned) if stopped => Ok(Outcome::default()),
        Err(e) => Err(e),
    }
}

/// The inner plan into the channel. (Boxed as a `Send` future: plans nest, so this and
/// `execute` call each other.)
pub(crate) fn run_inner<'a, E: Executor>(
    plan: &'a Plan,
    vschema: &'a VSchema,
    executor: &'a E,
    tx: mpsc::Sender<Message>,
    options: &'a ExecOptions,
) -> Pin<Box<dyn Future<Output = Result<Outcome, EngineError>> + Send + 'a>> {
    Box::pin(async move {
        let mut sink = Channel { tx };
        crate::execute(plan, vschema, executor, &mut sink, options).await
    })
}

struct Channel {
    tx: mpsc::Sender<Message>,
}

impl RowSink for Channel {
    async fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
        self.tx
            .send(Message::Columns(columns))
            .await
            .map_err(|_| EngineError::Abandoned)
    }

    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        self.tx
            .send(Message::Row(row))
            .await
            .map_err(|_| EngineError::Abandoned)
    }
}
