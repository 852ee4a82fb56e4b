//! DELETE and UPDATE of a table that owns lookup vindexes: the touched rows are read first so their
//! lookup rows can follow. Lookup rows are written before their owners and removed after them, so
//! a failure in between leaves at most an orphaned lookup row (reclaimed by the next insert of
//! that value), never a row that its lookup cannot find.

use vschema::{KeyValue, Keyspace, VSchema};

use crate::fanout::concatenate;
use crate::lookup::{
    claim, distinct_keys, key_value, primary_value, query_rows, release, row_key, same_key,
};
use crate::plan::OwnedWrite;
use crate::route::shards_for;
use crate::{EngineError, ExecOptions, Executor, NoRows, Outcome};

pub(crate) async fn execute<E: Executor>(
    w: &OwnedWrite,
    keyspace: &Keyspace,
    vschema: &VSchema,
    executor: &E,
    options: &ExecOptions,
) -> Result<Outcome, EngineError> {
    let shards = shards_for(&w.route.opcode, keyspace, vschema, executor).await?;
    // (keyspace id, each lookup's values) of every row the statement will touch.
    let mut touched = Vec::new();
    for &s in &shards {
        for row in query_rows(
            executor,
            &keyspace.name,
            &keyspace.shards[s].name,
            &w.select,
        )
        .await?
        {
            if touched.len() >= options.max_buffered_rows {
                return Err(EngineError::TooManyRows(options.max_buffered_rows));
            }
            let n = w.vindex.column_count();
            let primary = primary_value(row.get(..n).unwrap_or_default())
                .ok_or_else(|| EngineError::Bug("row without its primary vindex value".into()))?;
            let ksid = w.vindex.map(&primary)?;
            let mut values = row.iter().skip(n).map(key_value);
            let per_lookup: Vec<Vec<Option<KeyValue>>> = w
                .lookups
                .iter()
                .map(|l| values.by_ref().take(l.columns.len()).collect())
                .collect();
            touched.push((ksid, per_lookup));
        }
    }
    // An UPDATE of a lookup column: each row's new key for that lookup, claimed first.
    let mut new_keys: Vec<Option<Vec<KeyValue>>> = Vec::new();
    let mut kept = vec![false; touched.len()];
    if let Some(change) = &w.new_value {
        let lookup = &w.lookups[change.lookup];
        for (_, values) in &touched {
            let mut new = values[change.lookup].clone();
            new[change.column] = change.value.clone();
            new_keys.push(row_key(lookup, &new, None)?);
        }
        if lookup.vindex.unique {
            let keys: Vec<Vec<KeyValue>> = new_keys.iter().flatten().cloned().collect();
            distinct_keys(lookup, &keys)?;
        }
        for (n, (ksid, _)) in touched.iter().enumerate() {
            if let Some(key) = &new_keys[n] {
                kept[n] = claim(executor, vschema, keyspace, lookup, key, ksid).await?;
            }
        }
    }
    let queries: Vec<(usize, &str)> = shards
        .iter()
        .map(|&s| (s, w.route.query.as_str()))
        .collect();
    let outcome = concatenate(keyspace, &queries, executor, &mut NoRows).await?;
    for (n, (ksid, values)) in touched.iter().enumerate() {
        for (i, lookup) in w.lookups.iter().enumerate() {
            // A row with a NULL in the lookup's columns has no lookup row.
            let Some(old) = values[i].iter().cloned().collect::<Option<Vec<KeyValue>>>() else {
                continue;
            };
            let released = match &w.new_value {
                // DELETE: every lookup row of the row goes.
                None => true,
                // UPDATE: only the changed lookup's old key, unless it is the same key.
                Some(change) => {
                    change.lookup == i
                        && !kept[n]
                        && !new_keys[n].as_ref().is_some_and(|new| same_key(&old, new))
                }
            };
            if released {
                release(executor, vschema, keyspace, &w.vindex, lookup, &old, ksid).await?;
            }
        }
    }
    Ok(outcome)
}
