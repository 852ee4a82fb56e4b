//! Running an [`Plan::Append`]: plans one after the other, their rows under the first one's
//! columns (every plan returns the same columns). Each runs into a channel, as a derived table's
//! inner plan does, so plans nest without the sink's type nesting with them.

use tokio::sync::mpsc;
use vschema::VSchema;

use crate::derived::{run_inner, Message, IN_FLIGHT};
use crate::plan::Plan;
use crate::{EngineError, ExecOptions, Executor, Outcome, RowSink};

pub(crate) async fn execute<E: Executor, S: RowSink>(
    plans: &[Plan],
    vschema: &VSchema,
    executor: &E,
    sink: &mut S,
    options: &ExecOptions,
) -> Result<Outcome, EngineError> {
    let mut total = Outcome::default();
    for (n, plan) in plans.iter().enumerate() {
        let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
        let inner = run_inner(plan, vschema, executor, tx, options);
        let forward = async {
            while let Some(message) = rx.recv().await {
                match message {
                    Message::Columns(columns) if n == 0 => sink.columns(columns).await?,
                    Message::Columns(_) => {}
                    Message::Row(row) => sink.row(row).await?,
                }
            }
            Ok::<(), EngineError>(())
        };
        let (outcome, forwarded) = tokio::join!(inner, forward);
        forwarded?;
        total.merge(outcome?);
    }
    Ok(total)
}
