use std::collections::BTreeMap;

use vschema::{KeyValue, Keyspace, VSchema};

use crate::lookup::{claim, distinct_keys, row_key, verify};

use crate::fanout::with_streams;
use crate::{EngineError, Executor, Insert, NoRows, Outcome, RowSink};

/// Groups the rows by the shard their vindex value maps to and sends each shard one INSERT.
/// With RETURNING, the one row's shard streams its rows into `sink`.
pub(crate) async fn execute<E: Executor, S: RowSink>(
    insert: &Insert,
    keyspace: &Keyspace,
    vschema: &VSchema,
    executor: &E,
    sink: &mut S,
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
    // Each unique lookup value once per statement: the lookup table cannot tell two new rows
    // apart. (Generated ids are new, so never the same.)
    for (i, lookup) in insert.lookups.iter().enumerate() {
        if !lookup.owned || !lookup.vindex.unique {
            continue;
        }
        let keys: Vec<Vec<KeyValue>> = insert
            .rows
            .iter()
            .filter_map(|r| r.lookup_values.get(i)?.iter().cloned().collect())
            .collect();
        distinct_keys(lookup, &keys)?;
    }
    for row in &insert.rows {
        let id = if row.generate {
            let id =
                next_id.ok_or_else(|| EngineError::Bug("generated row without an id".into()))?;
            next_id = Some(id + 1);
            Some(id)
        } else {
            None
        };
        let id_value = id.map(|id| {
            i64::try_from(id)
                .map(KeyValue::Int)
                .unwrap_or(KeyValue::UInt(id))
        });
        let value = row
            .value
            .clone()
            .or_else(|| id_value.clone())
            .ok_or_else(|| EngineError::Bug("row without a vindex value".into()))?;
        let ksid = insert.vindex.map(&value)?;
        // Lookup rows first: a failure after this leaves only orphans, which the next insert of
        // the same value reclaims.
        for (lookup, values) in insert.lookups.iter().zip(&row.lookup_values) {
            if !lookup.owned {
                verify(executor, vschema, lookup, &values[0], &ksid).await?;
            } else if let Some(key) = row_key(lookup, values, id_value.as_ref())? {
                claim(executor, vschema, keyspace, lookup, &key, &ksid).await?;
            }
        }
        let shard = keyspace.shard_for(&ksid);
        by_shard.entry(shard).or_default().push(row.sql(column, id));
    }
    if insert.returning {
        let [(shard, rows)] = Vec::from_iter(by_shard).try_into().map_err(|_| {
            EngineError::Bug("INSERT ... RETURNING with rows for several shards".into())
        })?;
        let sql = format!("{}{}{}", insert.prefix, rows.join(", "), insert.suffix);
        let mut outcome = executor
            .execute(&keyspace.name, &keyspace.shards[shard].name, &sql, sink)
            .await?;
        if let Some(id) = first_id {
            outcome.last_insert_id = id;
        }
        return Ok(outcome);
    }
    let row_counts: Vec<usize> = by_shard.values().map(Vec::len).collect();
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
    let outcomes = match queries[..] {
        // Most inserts: one shard, no streams to run side by side.
        [(shard, sql)] => {
            let shard = &keyspace.shards[shard].name;
            vec![
                executor
                    .execute(&keyspace.name, shard, sql, &mut NoRows)
                    .await?,
            ]
        }
        // Boxed: a fan-out's future is large, and the one-shard path should not carry it.
        _ => {
            Box::pin(with_streams(
                keyspace,
                &queries,
                executor,
                |streams| async move {
                    let mut outcomes = Vec::with_capacity(streams.len());
                    for mut stream in streams {
                        outcomes.push(stream.finish().await?);
                    }
                    Ok(outcomes)
                },
            ))
            .await?
        }
    };
    // One server reports `Records: n  Duplicates: d  Warnings: w` for a multi-row INSERT; a shard
    // that got a single row reports nothing, its duplicate shows in its affected rows instead
    // (0 for an ignored row, 2 for a replaced or updated one).
    let mut outcome = Outcome::default();
    let mut duplicates = 0u64;
    for (o, rows) in outcomes.into_iter().zip(row_counts) {
        duplicates += match info_number(&o.info, "Duplicates") {
            Some(d) => d,
            None if rows == 1 && o.affected_rows != 1 => 1,
            None => 0,
        };
        outcome.merge(o);
    }
    outcome.info = if insert.rows.len() > 1 || insert.from_select {
        format!(
            "Records: {}  Duplicates: {duplicates}  Warnings: {}",
            insert.rows.len(),
            outcome.warnings
        )
    } else {
        String::new()
    };
    // As in MySQL, the statement's insert id is the first id it generated.
    if let Some(id) = first_id {
        outcome.last_insert_id = id;
    }
    Ok(outcome)
}

fn info_number(info: &str, label: &str) -> Option<u64> {
    info.split("  ").find_map(|part| {
        part.trim()
            .strip_prefix(label)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}
