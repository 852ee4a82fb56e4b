use std::collections::BTreeSet;

use vschema::{Keyspace, VSchema};

use crate::fanout::concatenate;
use crate::lookup::resolve;
use crate::{EngineError, Executor, Opcode, Outcome, Route, RowSink};

/// The indexes (in key order) of the shards a route reaches.
pub(crate) async fn shards_for<E: Executor>(
    opcode: &Opcode,
    keyspace: &Keyspace,
    vschema: &VSchema,
    executor: &E,
) -> Result<Vec<usize>, EngineError> {
    Ok(match opcode {
        Opcode::Unsharded | Opcode::Reference => vec![0],
        Opcode::EqualUnique { vindex, value } => vec![keyspace.shard_for(&vindex.map(value)?)],
        Opcode::In { vindex, values } => {
            let mut set = BTreeSet::new();
            for v in values {
                set.insert(keyspace.shard_for(&vindex.map(v)?));
            }
            set.into_iter().collect()
        }
        Opcode::Scatter => (0..keyspace.shards.len()).collect(),
        Opcode::Prefix { vindex, values } => {
            let prefix = match &vindex.multi {
                Some(multi) => multi.prefix(values)?,
                None => {
                    return Err(EngineError::Bug(format!(
                        "{} is not multi-column",
                        vindex.name
                    )))
                }
            };
            keyspace.shards_with_prefix(&prefix)
        }
        Opcode::Destination { shard } => {
            vec![keyspace
                .shards
                .iter()
                .position(|s| s.name == *shard)
                .ok_or_else(|| {
                    EngineError::Bug(format!("no shard {shard} in {}", keyspace.name))
                })?]
        }
        // No lookup row: no row holds the value, and any one shard says so.
        Opcode::Lookup { vindex, value } => {
            let shards: BTreeSet<usize> = resolve(executor, vschema, vindex, value)
                .await?
                .iter()
                .map(|ksid| keyspace.shard_for(ksid))
                .collect();
            if shards.is_empty() {
                vec![0]
            } else {
                shards.into_iter().collect()
            }
        }
    })
}

pub(crate) async fn execute<E: Executor, S: RowSink>(
    route: &Route,
    keyspace: &Keyspace,
    vschema: &VSchema,
    executor: &E,
    sink: &mut S,
) -> Result<Outcome, EngineError> {
    let shards = shards_for(&route.opcode, keyspace, vschema, executor).await?;
    tracing::debug!(keyspace = %keyspace.name, opcode = route.opcode.name(), shards = shards.len(), "route");
    if let [one] = shards.as_slice() {
        return executor
            .execute(
                &keyspace.name,
                &keyspace.shards[*one].name,
                &route.query,
                sink,
            )
            .await;
    }
    let queries: Vec<(usize, &str)> = shards
        .iter()
        .enumerate()
        .map(|(n, &i)| (i, route.text_for(n)))
        .collect();
    // Boxed: a fan-out's future is large, and the one-shard path should not carry it.
    Box::pin(concatenate(keyspace, &queries, executor, sink)).await
}
