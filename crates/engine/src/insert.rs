use std::collections::BTreeMap;

use vschema::{KeyValue, Keyspace};

use crate::fanout::concatenate;
use crate::{EngineError, Executor, Insert, NoRows, Outcome};

/// Groups the rows by the shard their vindex value maps to and sends each shard one INSERT.
pub(crate) async fn execute<E: Executor>(
    insert: &Insert,
    keyspace: &Keyspace,
    executor: &E,
) -> Result<Outcome, EngineError> {
    // Ids for the rows that need one, consecutive in row order.
    let wanted = insert.rows.iter().filter(|r| r.generate).count() as u64;
    let first_id = match (&insert.generate, wanted) {
        (Some(g), n) if n > 0 => Some(executor.reserve_ids(&g.sequence, n).await?),
        _ => None,
    };
    let column = insert.generate.as_ref().map(|g| g.column);
    let mut next_id = first_id;
    let mut by_shard: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for row in &insert.rows {
        let id = if row.generate {
            let id =
                next_id.ok_or_else(|| EngineError::Bug("generated row without an id".into()))?;
            next_id = Some(id + 1);
            Some(id)
        } else {
            None
        };
        let value = match (&row.value, id) {
            (Some(v), _) => v.clone(),
            (None, Some(id)) => i64::try_from(id)
                .map(KeyValue::Int)
                .unwrap_or(KeyValue::UInt(id)),
            (None, None) => return Err(EngineError::Bug("row without a vindex value".into())),
        };
        let shard = keyspace.shard_for(&insert.vindex.map(&value)?);
        by_shard.entry(shard).or_default().push(row.sql(column, id));
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
    let mut outcome = concatenate(keyspace, &queries, executor, &mut NoRows).await?;
    // As in MySQL, the statement's insert id is the first id it generated.
    if let Some(id) = first_id {
        outcome.last_insert_id = id;
    }
    Ok(outcome)
}
