//! Lookup vindexes at execution time: resolving a value to its keyspace ID, claiming lookup rows
//! before their owner rows are written, releasing them after the owners are gone. Lookup tables
//! live in unsharded keyspaces.

use vschema::{KeyValue, Keyspace, KeyspaceId, LookupTo, LookupVindex, VSchema, VindexKind};

use crate::plan::OwnedLookup;
use crate::{Collected, EngineError, Executor, Value};

/// The value as a SQL literal ([`crate::literal`]).
pub(crate) fn literal(value: &KeyValue) -> String {
    match value {
        KeyValue::Int(v) => v.to_string(),
        KeyValue::UInt(v) => v.to_string(),
        KeyValue::Decimal(d) => d.clone(),
        // Bound before execution; left as written, a shard refuses it rather than guess.
        KeyValue::Param(i) => format!("?{}", i + 1),
        KeyValue::Text(bytes) => crate::literal::text(bytes),
    }
}

/// A column value read back from a shard, as a vindex input.
pub(crate) fn key_value(v: &Value) -> Option<KeyValue> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(KeyValue::Text(b.clone())),
        Value::Int(i) => Some(KeyValue::Int(*i)),
        Value::UInt(u) => Some(KeyValue::UInt(*u)),
        other => Some(KeyValue::Text(
            other.as_sql(true).trim_matches('\'').as_bytes().to_vec(),
        )),
    }
}

/// Runs a statement on one shard and returns its rows.
pub(crate) async fn query_rows<E: Executor>(
    executor: &E,
    keyspace: &str,
    shard: &str,
    sql: &str,
) -> Result<Vec<Vec<Value>>, EngineError> {
    let mut rows = Collected::default();
    executor.execute(keyspace, shard, sql, &mut rows).await?;
    Ok(rows.rows)
}

/// The shard holding the lookup row of `value`: the keyspace's only shard, or, for a lookup
/// table in a sharded keyspace, the shard its own primary vindex (on the `from` column) picks.
fn lookup_shard<'a>(
    vschema: &'a VSchema,
    vindex: &LookupVindex,
    value: &KeyValue,
) -> Result<(&'a str, &'a str), EngineError> {
    let ks = vschema
        .keyspace(&vindex.keyspace)
        .ok_or_else(|| EngineError::UnknownKeyspace(vindex.keyspace.clone()))?;
    let index = if ks.sharded {
        match ks.table(&vindex.table) {
            Some(vschema::Table::Sharded { vindex: own, .. }) => ks.shard_for(&own.map(value)?),
            _ => {
                return Err(EngineError::Bug(format!(
                    "lookup table {}.{} has no primary vindex",
                    ks.name, vindex.table
                )))
            }
        }
    } else {
        0
    };
    let shard = ks
        .shards
        .get(index)
        .ok_or_else(|| EngineError::Bug(format!("keyspace {} has no shard {index}", ks.name)))?;
    Ok((&ks.name, &shard.name))
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// The `to` column's value for `ksid`, as SQL: its bytes, or for `lookup_hash_unique` the
/// integer the hash vindex maps to it.
fn to_literal(vindex: &LookupVindex, ksid: &KeyspaceId) -> Result<String, EngineError> {
    match vindex.to_holds {
        LookupTo::KeyspaceId => Ok(crate::literal::hex(&ksid.0, false)),
        LookupTo::HashedId => vschema::vindex::hash_reverse(ksid)
            .map(|id| id.to_string())
            .ok_or_else(|| {
                EngineError::Unsupported(format!(
                    "lookup_hash_unique vindex {} for keyspace ID {ksid}, which is not 8 bytes",
                    vindex.name
                ))
            }),
    }
}

/// The keyspace ID a `to` column value stands for.
fn to_ksid(vindex: &LookupVindex, value: Value) -> Option<KeyspaceId> {
    match (vindex.to_holds, value) {
        (_, Value::NULL) => None,
        (LookupTo::KeyspaceId, Value::Bytes(b)) => Some(KeyspaceId(b)),
        (LookupTo::KeyspaceId, _) => None,
        (LookupTo::HashedId, v) => VindexKind::Hash.map(&key_value(&v)?).ok(),
    }
}

/// The keyspace ID a lookup value maps to, if it has a lookup row.
pub(crate) async fn resolve<E: Executor>(
    executor: &E,
    vschema: &VSchema,
    vindex: &LookupVindex,
    value: &KeyValue,
) -> Result<Option<KeyspaceId>, EngineError> {
    read_lookup(executor, vschema, vindex, value, "").await
}

/// [`resolve`], reading `lock`ed (`FOR UPDATE`) when it is not empty.
async fn read_lookup<E: Executor>(
    executor: &E,
    vschema: &VSchema,
    vindex: &LookupVindex,
    value: &KeyValue,
    lock: &str,
) -> Result<Option<KeyspaceId>, EngineError> {
    let (ks, shard) = lookup_shard(vschema, vindex, value)?;
    let sql = format!(
        "SELECT {} FROM {} WHERE {} = {}{lock}",
        quote(&vindex.to),
        quote(&vindex.table),
        quote(&vindex.from),
        literal(value)
    );
    let rows = query_rows(executor, ks, shard, &sql).await?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .and_then(|to| to_ksid(vindex, to)))
}

/// Writes the lookup row `value → ksid` before its owner row is written. Returns whether the row
/// already pointed at `ksid` (the same value, under the column's collation, stays with its row).
///
/// On a duplicate, a consistent lookup checks the current owner: if its row exists the value is
/// taken (1062); if not, the lookup row is an orphan of a failed write and is taken over.
///
/// The gate runs every write that claims lookup rows in a transaction (the statement's own in
/// autocommit), so the lookup row stays locked until its owner row is written: a concurrent
/// insert of the same value waits at its own INSERT or at the locked read below, then finds the
/// owner's row and gets 1062. Two inserts that find the same orphan both hold a shared lock on
/// it from their duplicate-key check; their locked reads deadlock, InnoDB rolls one back, and
/// the gate runs that statement again, when it finds the other's owner row.
pub(crate) async fn claim<E: Executor>(
    executor: &E,
    vschema: &VSchema,
    owner_keyspace: &Keyspace,
    lookup: &OwnedLookup,
    value: &KeyValue,
    ksid: &KeyspaceId,
) -> Result<bool, EngineError> {
    let v = &lookup.vindex;
    let (ks, shard) = lookup_shard(vschema, v, value)?;
    let insert = format!(
        "INSERT INTO {} ({}, {}) VALUES ({}, {})",
        quote(&v.table),
        quote(&v.from),
        quote(&v.to),
        literal(value),
        to_literal(v, ksid)?
    );
    match executor
        .execute(ks, shard, &insert, &mut crate::NoRows)
        .await
    {
        Ok(_) => return Ok(false),
        Err(EngineError::Server { code: 1062, .. }) => {}
        Err(e) => return Err(e),
    }
    let duplicate = || EngineError::Duplicate {
        value: String::from_utf8_lossy(&literal_text(value)).into_owned(),
        key: lookup.column.clone(),
    };
    let Some(current) = read_lookup(executor, vschema, v, value, " FOR UPDATE").await? else {
        // Deleted between our insert and this read: try once more.
        return executor
            .execute(ks, shard, &insert, &mut crate::NoRows)
            .await
            .map(|_| false)
            .map_err(|e| match e {
                EngineError::Server { code: 1062, .. } => duplicate(),
                other => other,
            });
    };
    if current == *ksid {
        return Ok(true);
    }
    if !v.consistent {
        return Err(duplicate());
    }
    let owner_shard = &owner_keyspace.shards[owner_keyspace.shard_for(&current)].name;
    // A locking read sees the latest committed row, whatever snapshot the transaction holds.
    let probe = format!(
        "SELECT 1 FROM {} WHERE {} = {} LIMIT 1 LOCK IN SHARE MODE",
        quote(&lookup.table),
        quote(&lookup.column),
        literal(value)
    );
    if !query_rows(executor, &owner_keyspace.name, owner_shard, &probe)
        .await?
        .is_empty()
    {
        return Err(duplicate());
    }
    let takeover = format!(
        "UPDATE {} SET {} = {} WHERE {} = {} AND {} = {}",
        quote(&v.table),
        quote(&v.to),
        to_literal(v, ksid)?,
        quote(&v.from),
        literal(value),
        quote(&v.to),
        to_literal(v, &current)?
    );
    // Compare-and-set: another insert that took the orphan over first changed `to`.
    let taken = executor
        .execute(ks, shard, &takeover, &mut crate::NoRows)
        .await?;
    if taken.affected_rows != 1 {
        return Err(duplicate());
    }
    Ok(false)
}

/// Removes the lookup row of a value whose owner row (at `ksid`) is gone or no longer holds it.
pub(crate) async fn release<E: Executor>(
    executor: &E,
    vschema: &VSchema,
    lookup: &OwnedLookup,
    value: &KeyValue,
    ksid: &KeyspaceId,
) -> Result<(), EngineError> {
    let v = &lookup.vindex;
    let (ks, shard) = lookup_shard(vschema, v, value)?;
    let delete = format!(
        "DELETE FROM {} WHERE {} = {} AND {} = {}",
        quote(&v.table),
        quote(&v.from),
        literal(value),
        quote(&v.to),
        to_literal(v, ksid)?
    );
    executor
        .execute(ks, shard, &delete, &mut crate::NoRows)
        .await?;
    Ok(())
}

fn literal_text(value: &KeyValue) -> Vec<u8> {
    match value {
        KeyValue::Text(b) => b.clone(),
        other => other.to_string().into_bytes(),
    }
}

/// Values equal for a unique key under a case-insensitive, PAD SPACE collation (the default).
pub(crate) fn same_key(a: &KeyValue, b: &KeyValue) -> bool {
    let norm = |v: &KeyValue| {
        String::from_utf8_lossy(&literal_text(v))
            .trim_end_matches(' ')
            .to_lowercase()
    };
    norm(a) == norm(b)
}
