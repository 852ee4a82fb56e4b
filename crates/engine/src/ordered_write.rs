//! Running an [`OrderedWrite`]: UPDATE or DELETE ... ORDER BY ... LIMIT n over several shards.

use std::cmp::Ordering;

use vschema::{Keyspace, VSchema};

use crate::compare::Comparator;
use crate::route::shards_for;
use crate::{Collected, EngineError, Executor, Hole, NoRows, OrderedWrite, Outcome, Value};

pub(crate) async fn execute<E: Executor>(
    write: &OrderedWrite,
    keyspace: &Keyspace,
    vschema: &VSchema,
    executor: &E,
) -> Result<Outcome, EngineError> {
    let shards = shards_for(&write.route.opcode, keyspace, vschema, executor).await?;
    // Each shard's first n rows' keys, tagged with the shard.
    let mut rows: Vec<(usize, Vec<Value>)> = Vec::new();
    let mut columns = Vec::new();
    for &shard in &shards {
        let mut found = Collected::default();
        executor
            .execute(
                &keyspace.name,
                &keyspace.shards[shard].name,
                &write.route.query,
                &mut found,
            )
            .await?;
        columns = found.columns;
        rows.extend(found.rows.into_iter().map(|r| (shard, r)));
    }
    if !write.keys.is_empty() {
        let cmp = Comparator::new(&write.keys, &columns)?;
        // Stable: rows of equal keys keep their shard's order.
        rows.sort_by(|a, b| match cmp.compare(&a.1, &b.1) {
            Ordering::Equal => a.0.cmp(&b.0),
            other => other,
        });
    }
    let limit = usize::try_from(write.limit).unwrap_or(usize::MAX);
    let mut counts = vec![0u64; keyspace.shards.len()];
    for (shard, _) in rows.iter().take(limit) {
        counts[*shard] += 1;
    }
    let mut outcome = Outcome::default();
    for &shard in &shards {
        if counts[shard] == 0 {
            continue;
        }
        let count = counts[shard].to_string();
        let sql = write.write.render(|hole| match hole {
            Hole::Limit => count.as_str(),
            _ => "NULL",
        });
        let done = executor
            .execute(
                &keyspace.name,
                &keyspace.shards[shard].name,
                &sql,
                &mut NoRows,
            )
            .await?;
        outcome.merge(done);
    }
    Ok(outcome)
}
