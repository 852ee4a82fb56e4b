//! Lookup vindexes at execution time: resolving a value to its keyspace ID, claiming lookup rows
//! before their owner rows are written, releasing them after the owners are gone. Lookup tables
//! live in unsharded keyspaces, or in sharded ones by their first `from` column.

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
        KeyValue::Tuple(values) => {
            format!(
                "({})",
                values.iter().map(literal).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// A column value read back from a shard, as a vindex input.
pub fn key_value(v: &Value) -> Option<KeyValue> {
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

/// Where a lookup table's rows are.
struct Home<'a> {
    keyspace: &'a Keyspace,
    /// In a sharded keyspace: the table's primary vindex, and whether its column is `to` (a
    /// row is on its keyspace ID's shard) rather than the first `from` column.
    placed: Option<(&'a vschema::Vindex, bool)>,
}

fn home<'a>(vschema: &'a VSchema, vindex: &LookupVindex) -> Result<Home<'a>, EngineError> {
    let keyspace = vschema
        .keyspace(&vindex.keyspace)
        .ok_or_else(|| EngineError::UnknownKeyspace(vindex.keyspace.clone()))?;
    let placed = match keyspace.table(&vindex.table) {
        _ if !keyspace.sharded => None,
        Some(vschema::Table::Sharded {
            column,
            vindex: own,
            ..
        }) => Some((own.as_ref(), column.eq_ignore_ascii_case(&vindex.to))),
        _ => {
            return Err(EngineError::Bug(format!(
                "lookup table {}.{} has no primary vindex",
                keyspace.name, vindex.table
            )))
        }
    };
    Ok(Home { keyspace, placed })
}

impl Home<'_> {
    /// The shards that may hold rows of `key` (at `ksid`, when it is known): the keyspace's
    /// only one, the one its vindex picks, or every shard for a table placed by `to` when the
    /// keyspace ID is not known.
    fn shards(
        &self,
        vindex: &LookupVindex,
        key: &KeyValue,
        ksid: Option<&KeyspaceId>,
    ) -> Result<Vec<&str>, EngineError> {
        let ks = self.keyspace;
        let index = match (self.placed, ksid) {
            (None, _) => 0,
            (Some((own, false)), _) => ks.shard_for(&own.map(key)?),
            (Some((own, true)), Some(ksid)) => ks.shard_for(&own.map(&to_value(vindex, ksid)?)?),
            (Some((_, true)), None) => {
                return Ok(ks.shards.iter().map(|s| s.name.as_str()).collect())
            }
        };
        Ok(vec![ks.shards[index].name.as_str()])
    }

    /// The one shard a row `key → ksid` is written to.
    fn shard(
        &self,
        vindex: &LookupVindex,
        key: &KeyValue,
        ksid: &KeyspaceId,
    ) -> Result<&str, EngineError> {
        Ok(self.shards(vindex, key, Some(ksid))?[0])
    }
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// The `to` column's value for `ksid`: its bytes, or for the `lookup_hash` kinds the integer
/// the hash vindex maps to it.
fn to_value(vindex: &LookupVindex, ksid: &KeyspaceId) -> Result<KeyValue, EngineError> {
    match vindex.to_holds {
        LookupTo::KeyspaceId => Ok(KeyValue::Text(ksid.0.clone())),
        LookupTo::HashedId => vschema::vindex::hash_reverse(ksid)
            .map(KeyValue::UInt)
            .ok_or_else(|| {
                EngineError::Unsupported(format!(
                    "{} vindex {} for keyspace ID {ksid}, which is not 8 bytes",
                    vindex.type_name(),
                    vindex.name
                ))
            }),
    }
}

/// [`to_value`] as SQL.
fn to_literal(vindex: &LookupVindex, ksid: &KeyspaceId) -> Result<String, EngineError> {
    Ok(match to_value(vindex, ksid)? {
        KeyValue::Text(bytes) => crate::literal::hex(&bytes, false),
        other => literal(&other),
    })
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

/// The keyspace IDs a lookup value maps to (at most one for a unique lookup vindex).
pub(crate) async fn resolve<E: Executor>(
    executor: &E,
    vschema: &VSchema,
    vindex: &LookupVindex,
    value: &KeyValue,
) -> Result<Vec<KeyspaceId>, EngineError> {
    read_lookup(executor, vschema, vindex, std::slice::from_ref(value), "").await
}

/// `a = 1 AND b = 'x'` over the lookup's first `key.len()` `from` columns.
fn key_condition(vindex: &LookupVindex, key: &[KeyValue]) -> String {
    vindex
        .from
        .iter()
        .zip(key)
        .map(|(c, v)| format!("{} = {}", quote(c), literal(v)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The `to` of the lookup rows whose first `from` columns hold `key`, read `lock`ed
/// (`FOR UPDATE`) when it is not empty.
async fn read_lookup<E: Executor>(
    executor: &E,
    vschema: &VSchema,
    vindex: &LookupVindex,
    key: &[KeyValue],
    lock: &str,
) -> Result<Vec<KeyspaceId>, EngineError> {
    let home = home(vschema, vindex)?;
    let sql = format!(
        "SELECT {} FROM {} WHERE {}{lock}",
        quote(&vindex.to),
        quote(&vindex.table),
        key_condition(vindex, key)
    );
    let mut out = Vec::new();
    for shard in home.shards(vindex, &key[0], None)? {
        let rows = query_rows(executor, &home.keyspace.name, shard, &sql).await?;
        out.extend(
            rows.into_iter()
                .filter_map(|r| r.into_iter().next().and_then(|to| to_ksid(vindex, to))),
        );
    }
    Ok(out)
}

/// A row's key for `lookup`: its values for the lookup's columns, with a generated id in
/// place. `None` when the row has no lookup row (a NULL, and the vindex ignores them).
pub(crate) fn row_key(
    lookup: &OwnedLookup,
    values: &[Option<KeyValue>],
    generated_id: Option<&KeyValue>,
) -> Result<Option<Vec<KeyValue>>, EngineError> {
    let mut key = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        // The generated id, not the NULL, 0 or DEFAULT written in its place.
        match generated_id
            .filter(|_| lookup.generated == Some(i))
            .or(v.as_ref())
        {
            Some(v) => key.push(v.clone()),
            None if lookup.vindex.ignore_nulls => return Ok(None),
            None => return Err(EngineError::NullLookupValue(lookup.columns[i].clone())),
        }
    }
    Ok(Some(key))
}

/// Writes the lookup row `key → ksid` before its owner row is written. Returns whether the row
/// already pointed at `ksid` (the same value, under the column's collation, stays with its row).
///
/// On a duplicate (the lookup table's own unique key decides what is one), a consistent lookup
/// checks the current owner: if its row exists the value is taken (1062); if not, the lookup
/// row is an orphan of a failed write and is taken over.
///
/// The gate runs every write that claims lookup rows in a transaction (the statement's own in
/// autocommit), so the lookup row stays locked until its owner row is written: a concurrent
/// insert of the same value waits at its own INSERT or at the locked read below, then finds the
/// owner's row and gets 1062. Two inserts that find the same orphan both hold a shared lock on
/// it from their duplicate-key check; their locked reads deadlock, InnoDB rolls one back, and
/// the gate runs that statement again, when it finds the other's owner row.
///
/// An `autocommit` lookup vindex writes its row at once, outside the transaction, replacing
/// whatever row held the key (as Vitess's does).
pub(crate) async fn claim<E: Executor>(
    executor: &E,
    vschema: &VSchema,
    owner_keyspace: &Keyspace,
    lookup: &OwnedLookup,
    key: &[KeyValue],
    ksid: &KeyspaceId,
) -> Result<bool, EngineError> {
    let v = &lookup.vindex;
    let home = home(vschema, v)?;
    let ks = home.keyspace.name.as_str();
    let shard = home.shard(v, &key[0], ksid)?;
    let columns: Vec<String> = v.from.iter().chain([&v.to]).map(|c| quote(c)).collect();
    let values: Vec<String> = key.iter().map(literal).collect();
    let insert = format!(
        "INSERT INTO {} ({}) VALUES ({}, {})",
        quote(&v.table),
        columns.join(", "),
        values.join(", "),
        to_literal(v, ksid)?
    );
    if v.autocommit {
        let upsert = format!(
            "{insert} ON DUPLICATE KEY UPDATE {}",
            columns
                .iter()
                .map(|c| format!("{c} = VALUES({c})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        executor.execute_autocommit(ks, shard, &upsert).await?;
        return Ok(false);
    }
    // A unique lookup table placed by keyspace ID: each shard's unique key sees only its own
    // rows, so the others are read first.
    let spread = home.placed.is_some_and(|(_, by_to)| by_to) && v.unique;
    if spread
        && read_lookup(executor, vschema, v, key, " FOR UPDATE")
            .await?
            .is_empty()
    {
        executor
            .execute(ks, shard, &insert, &mut crate::NoRows)
            .await?;
        return Ok(false);
    }
    if !spread {
        match executor
            .execute(ks, shard, &insert, &mut crate::NoRows)
            .await
        {
            Ok(_) => return Ok(false),
            Err(EngineError::Server { code: 1062, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let duplicate = || duplicate(lookup, key);
    let current = read_lookup(executor, vschema, v, key, " FOR UPDATE").await?;
    if current.is_empty() {
        // Deleted between our insert and this read: try once more.
        return executor
            .execute(ks, shard, &insert, &mut crate::NoRows)
            .await
            .map(|_| false)
            .map_err(|e| match e {
                EngineError::Server { code: 1062, .. } => duplicate(),
                other => other,
            });
    }
    if current.contains(ksid) {
        return Ok(true);
    }
    let [current] = current.as_slice() else {
        // Several rows for the key, none ours: the table's key is not on the `from` columns.
        return Err(duplicate());
    };
    if !v.consistent || owner_holds(executor, owner_keyspace, lookup, key, current, None).await? {
        return Err(duplicate());
    }
    // Compare-and-set: the orphan goes only if it still points where we read (another insert
    // that took it over first changed or removed it), then our row is written where it belongs.
    let orphan = format!(
        "DELETE FROM {} WHERE {} AND {} = {}",
        quote(&v.table),
        key_condition(v, key),
        quote(&v.to),
        to_literal(v, current)?
    );
    let orphan_shard = home.shard(v, &key[0], current)?;
    let taken = executor
        .execute(ks, orphan_shard, &orphan, &mut crate::NoRows)
        .await?;
    if taken.affected_rows != 1 {
        return Err(duplicate());
    }
    executor
        .execute(ks, shard, &insert, &mut crate::NoRows)
        .await
        .map_err(|e| match e {
            EngineError::Server { code: 1062, .. } => duplicate(),
            other => other,
        })?;
    Ok(false)
}

/// A row inserted into a table that reads through a lookup vindex it does not own: the lookup
/// must map the row's value to the row's keyspace ID, or the row could not be found through it
/// (as Vitess checks, unless the vindex says `no_verify`). A NULL is not looked up.
pub(crate) async fn verify<E: Executor>(
    executor: &E,
    vschema: &VSchema,
    lookup: &OwnedLookup,
    value: &Option<KeyValue>,
    ksid: &KeyspaceId,
) -> Result<(), EngineError> {
    let Some(value) = value else {
        return Ok(());
    };
    if resolve(executor, vschema, &lookup.vindex, value)
        .await?
        .contains(ksid)
    {
        return Ok(());
    }
    Err(EngineError::NotMapped {
        value: value.to_string(),
        column: lookup.columns[0].clone(),
        vindex: lookup.vindex.name.clone(),
    })
}

/// Whether a row of the owner table at `ksid` holds `key`. A locking read sees the latest
/// committed rows, whatever snapshot the transaction holds.
async fn owner_holds<E: Executor>(
    executor: &E,
    owner_keyspace: &Keyspace,
    lookup: &OwnedLookup,
    key: &[KeyValue],
    ksid: &KeyspaceId,
    primary: Option<&vschema::Vindex>,
) -> Result<bool, EngineError> {
    let shard = &owner_keyspace.shards[owner_keyspace.shard_for(ksid)].name;
    let condition = lookup
        .columns
        .iter()
        .zip(key)
        .map(|(c, v)| format!("{} = {}", quote(c), literal(v)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let columns: Vec<String> = lookup.primary.iter().map(|c| quote(c)).collect();
    let probe = format!(
        "SELECT {} FROM {} WHERE {condition} LOCK IN SHARE MODE",
        columns.join(", "),
        quote(&lookup.table),
    );
    let rows = query_rows(executor, &owner_keyspace.name, shard, &probe).await?;
    Ok(rows.iter().any(|r| match (primary, primary_value(r)) {
        (None, _) => true,
        (Some(vindex), Some(v)) => vindex.map(&v).is_ok_and(|id| id == *ksid),
        (Some(_), None) => false,
    }))
}

/// A row's primary vindex value from its columns: one, or a multi-column vindex's tuple.
pub(crate) fn primary_value(row: &[Value]) -> Option<KeyValue> {
    match row {
        [one] => key_value(one),
        many => Some(KeyValue::Tuple(
            many.iter().map(key_value).collect::<Option<_>>()?,
        )),
    }
}

/// Removes the lookup row of a key whose owner row (at `ksid`) is gone or no longer holds it.
/// A non-unique lookup row stays while another row at `ksid` holds the key; an `autocommit`
/// one always stays (as in Vitess: it was not written in the transaction that removes it).
pub(crate) async fn release<E: Executor>(
    executor: &E,
    vschema: &VSchema,
    owner_keyspace: &Keyspace,
    primary: &vschema::Vindex,
    lookup: &OwnedLookup,
    key: &[KeyValue],
    ksid: &KeyspaceId,
) -> Result<(), EngineError> {
    let v = &lookup.vindex;
    if v.autocommit
        || (!v.unique
            && owner_holds(executor, owner_keyspace, lookup, key, ksid, Some(primary)).await?)
    {
        return Ok(());
    }
    let home = home(vschema, v)?;
    let shard = home.shard(v, &key[0], ksid)?;
    let delete = format!(
        "DELETE FROM {} WHERE {} AND {} = {}",
        quote(&v.table),
        key_condition(v, key),
        quote(&v.to),
        to_literal(v, ksid)?
    );
    executor
        .execute(&home.keyspace.name, shard, &delete, &mut crate::NoRows)
        .await?;
    Ok(())
}

fn literal_text(value: &KeyValue) -> Vec<u8> {
    match value {
        KeyValue::Text(b) => b.clone(),
        other => other.to_string().into_bytes(),
    }
}

/// 1062 for `key` of a unique lookup, in MySQL's words (a multi-column key's parts joined by
/// `-`).
fn duplicate(lookup: &OwnedLookup, key: &[KeyValue]) -> EngineError {
    EngineError::Duplicate {
        value: key
            .iter()
            .map(|k| String::from_utf8_lossy(&literal_text(k)).into_owned())
            .collect::<Vec<_>>()
            .join("-"),
        key: lookup.display(),
    }
}

/// 1062 when two of one statement's keys for a unique lookup are the same: the lookup table
/// cannot tell two new rows apart.
pub(crate) fn distinct_keys(
    lookup: &OwnedLookup,
    keys: &[Vec<KeyValue>],
) -> Result<(), EngineError> {
    for (n, key) in keys.iter().enumerate() {
        if keys[..n].iter().any(|k| same_key(k, key)) {
            return Err(duplicate(lookup, key));
        }
    }
    Ok(())
}

/// Keys equal for a unique key under a case-insensitive, PAD SPACE collation (the default).
pub(crate) fn same_key(a: &[KeyValue], b: &[KeyValue]) -> bool {
    let norm = |v: &KeyValue| {
        String::from_utf8_lossy(&literal_text(v))
            .trim_end_matches(' ')
            .to_lowercase()
    };
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| norm(a) == norm(b))
}
