use std::collections::BTreeMap;

use vschema::Keyspace;

use crate::fanout::concatenate;
use crate::{EngineError, Executor, Insert, NoRows, Outcome};

/// Groups the rows by the shard their vindex value maps to and sends each shard one INSERT.
pub(crate) async fn execute<E: Executor>(
    insert: &Insert,
    keyspace: &Keyspace,
    executor: &E,
) -> Result<Outcome, EngineError> {
    let mut by_shard: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for row in &insert.rows {
        let shard = keyspace.shard_for(&insert.vindex.map(&row.value)?);
        by_shard.entry(shard).or_default().push(&row.sql);
    }
    let queries: Vec<(usize, String)> = by_shard
        .into_iter()
        .map(|(shard, rows)| {
            (
                shard,
                format!("{}{}{}", insert.prefix, rows.join(", "), insert.suffix),
            )
        })
        .collect();
    let queries: Vec<(usize, &str)> = queries.iter().map(|(s, q)| (*s, q.as_str())).collect();
    concatenate(keyspace, &queries, executor, &mut NoRows).await
}
