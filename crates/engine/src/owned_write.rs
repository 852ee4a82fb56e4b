//! DELETE and UPDATE of a table that owns lookup vindexes: the touched rows are read first so their
//! lookup rows can follow. Lookup rows are written before their owners and removed after them, so
//! a failure in between leaves at most an orphaned lookup row (reclaimed by the next insert of
//! that value), never a row that its lookup cannot find.

use vschema::{KeyValue, Keyspace, VSchema};

use crate::fanout::concatenate;
use crate::lookup::{claim, key_value, query_rows, release, same_key};
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
    // (keyspace id, lookup values) of every row the statement will touch.
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
            let primary = row
                .first()
                .and_then(key_value)
                .ok_or_else(|| EngineError::Bug("row without its primary vindex value".into()))?;
            let ksid = w.vindex.map(&primary)?;
            let values: Vec<Option<KeyValue>> = row.iter().skip(1).map(key_value).collect();
            touched.push((ksid, values));
        }
    }
    let mut kept = vec![false; touched.len()];
    if let Some((i, Some(new))) = &w.new_value {
        if touched.len() > 1 {
            return Err(EngineError::Duplicate {
                value: new.to_string(),
                key: w.lookups[*i].column.clone(),
            });
        }
        for (n, (ksid, _)) in touched.iter().enumerate() {
            kept[n] = claim(executor, vschema, keyspace, &w.lookups[*i], new, ksid).await?;
        }
    }
    let queries: Vec<(usize, &str)> = shards
        .iter()
        .map(|&s| (s, w.route.query.as_str()))
        .collect();
    let outcome = concatenate(keyspace, &queries, executor, &mut NoRows).await?;
    for (n, (ksid, values)) in touched.iter().enumerate() {
        for (i, lookup) in w.lookups.iter().enumerate() {
            let Some(old) = values.get(i).and_then(|v| v.as_ref()) else {
                continue;
            };
            let released = match &w.new_value {
                // DELETE: every lookup row of the row goes.
                None => true,
                // UPDATE: only the changed column's old value, unless it is the same key.
                Some((changed, new)) => {
                    *changed == i && !kept[n] && !new.as_ref().is_some_and(|new| same_key(old, new))
                }
            };
            if released {
                release(executor, vschema, lookup, old, ksid).await?;
            }
        }
    }
    Ok(outcome)
}
