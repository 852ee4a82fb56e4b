use vschema::Keyspace;

use crate::{EngineError, Executor, NoRows, Outcome, Send};

/// Every shard, one after another in key order so that a failure stops the rest and names its
/// shard; the first shard's outcome is the statement's (each shard did the same thing).
pub(crate) async fn execute<E: Executor>(
    send: &Send,
    keyspace: &Keyspace,
    executor: &E,
) -> Result<Outcome, EngineError> {
    let mut first = None;
    for shard in &keyspace.shards {
        let outcome = executor
            .execute(&keyspace.name, &shard.name, &send.query, &mut NoRows)
            .await?;
        first.get_or_insert(outcome);
    }
    Ok(first.unwrap_or_default())
}
