//! Where the proxy keeps what must outlive it (twopc decisions, migrations): tables in the
//! first unsharded keyspace, so that any proxy can read and resume them.

use engine::{Collected, EngineError, Executor as _, Value};
use vschema::VSchema;

/// The keyspace and shard that hold the proxy's own tables; `what` names the feature that
/// needs one when there is none.
pub(crate) fn home(vschema: &VSchema, what: &str) -> Result<(String, String), EngineError> {
    vschema
        .keyspaces()
        .find(|k| !k.sharded)
        .map(|k| (k.name.clone(), k.shards[0].name.clone()))
        .ok_or_else(|| {
            EngineError::Unsupported(format!(
                "{what} without an unsharded keyspace to keep its records in"
            ))
        })
}

/// A value read back from a record, as text.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::NULL => String::new(),
        other => other.as_sql(true).trim_matches('\'').to_string(),
    }
}

/// `s` as a quoted SQL string.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The rows `sql` reads on the records' shard `ks/shard`; none when its table was never made
/// (the feature never ran).
pub(crate) async fn read_rows(
    topo: &crate::topology::Topology,
    (ks, shard): (String, String),
    sql: &str,
) -> Result<Vec<Vec<Value>>, EngineError> {
    let mut rows = Collected::default();
    match topo.backends.execute(&ks, &shard, sql, &mut rows).await {
        Ok(_) => Ok(rows.rows),
        Err(EngineError::Server { code: 1146, .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
