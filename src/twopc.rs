//! The twopc decision records and the recovery of prepared XA transactions. A record
//! (`shardgate_twopc` in the first unsharded keyspace) is written after every shard has prepared
//! and before the first XA COMMIT; recovery commits the prepared branches that have a record and
//! rolls back those that do not, so no transaction is ever half applied.

use std::collections::BTreeSet;

use backend::Backends;
use engine::{EngineError, Executor as _};
use vschema::VSchema;

use crate::topology::Topology;

const TABLE: &str = "shardgate_twopc";

/// The keyspace that holds decision records: the first unsharded one.
fn decision_shard(vschema: &VSchema) -> Result<(String, String), EngineError> {
    crate::sidecar::home(vschema, "transaction_mode twopc")
}

pub(crate) async fn record_commit(topo: &Topology, dtid: &str) -> Result<(), EngineError> {
    let (ks, shard) = decision_shard(&topo.vschema)?;
    let create = format!("CREATE TABLE IF NOT EXISTS {TABLE} (dtid VARCHAR(128) NOT NULL PRIMARY KEY, state VARCHAR(16) NOT NULL, created DATETIME NOT NULL)");
    topo.backends
        .execute(&ks, &shard, &create, &mut engine::NoRows)
        .await?;
    let insert =
        format!("INSERT INTO {TABLE} (dtid, state, created) VALUES ('{dtid}', 'commit', NOW())");
    topo.backends
        .execute(&ks, &shard, &insert, &mut engine::NoRows)
        .await?;
    Ok(())
}

pub(crate) async fn forget(topo: &Topology, dtid: &str) {
    if let Ok((ks, shard)) = decision_shard(&topo.vschema) {
        let delete = format!("DELETE FROM {TABLE} WHERE dtid = '{dtid}'");
        if let Err(e) = topo
            .backends
            .execute(&ks, &shard, &delete, &mut engine::NoRows)
            .await
        {
            tracing::warn!(error = %e, dtid, "could not remove a twopc decision record");
        }
    }
}

/// What `resolve` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub committed: BTreeSet<String>,
    pub rolled_back: BTreeSet<String>,
}

/// Finishes every prepared XA branch whose dtid starts with `prefix`: committed when its decision
/// is recorded, rolled back otherwise.
pub async fn resolve(
    backends: &Backends,
    vschema: &VSchema,
    prefix: &str,
) -> Result<Resolved, EngineError> {
    let mut decided = BTreeSet::new();
    if let Ok((ks, shard)) = decision_shard(vschema) {
        let mut rows = engine::Collected::default();
        match backends
            .execute(
                &ks,
                &shard,
                &format!("SELECT dtid FROM {TABLE} WHERE state = 'commit'"),
                &mut rows,
            )
            .await
        {
            Ok(_) => decided.extend(
                rows.rows
                    .iter()
                    .filter_map(|r| r.first())
                    .map(crate::sidecar::text),
            ),
            // No table yet: nothing was ever decided.
            Err(EngineError::Server { code: 1146, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut done = Resolved::default();
    // A branch whose connection died a moment ago may still be attached to it on its server,
    // which then refuses to finish it (XAER_NOTA) while XA RECOVER lists it: passes repeat,
    // a little later, until no branch is listed.
    let mut attempts = 0;
    loop {
        let listed = resolve_pass(backends, vschema, prefix, &decided, &mut done).await?;
        if listed == 0 {
            break;
        }
        attempts += 1;
        if attempts == RESOLVE_ATTEMPTS {
            return Err(EngineError::Commit(format!(
                "{listed} prepared branches with prefix {prefix} could not be finished: their servers still hold them for a connection"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if let Ok((ks, shard)) = decision_shard(vschema) {
        for dtid in &done.committed {
            let _ = backends
                .execute(
                    &ks,
                    &shard,
                    &format!("DELETE FROM {TABLE} WHERE dtid = '{dtid}'"),
                    &mut engine::NoRows,
                )
                .await;
        }
    }
    Ok(done)
}

/// Passes over the shards' prepared branches before [`resolve`] gives up.
const RESOLVE_ATTEMPTS: u32 = 50;

/// One pass of [`resolve`]: each prepared branch with `prefix` committed or rolled back, as
/// recorded. Returns how many branches XA RECOVER listed.
async fn resolve_pass(
    backends: &Backends,
    vschema: &VSchema,
    prefix: &str,
    decided: &BTreeSet<String>,
    done: &mut Resolved,
) -> Result<usize, EngineError> {
    let mut listed = 0;
    for ks in vschema.keyspaces() {
        for shard in &ks.shards {
            let mut rows = engine::Collected::default();
            backends
                .execute(&ks.name, &shard.name, "XA RECOVER", &mut rows)
                .await?;
            for row in rows.rows {
                // formatID, gtrid_length, bqual_length, data = gtrid || bqual
                let (Some(gl), Some(data)) = (
                    row.get(1).map(crate::sidecar::text),
                    row.get(3).map(crate::sidecar::text),
                ) else {
                    continue;
                };
                let Ok(gl) = gl.parse::<usize>() else {
                    continue;
                };
                if gl > data.len() || !data[..gl].starts_with(prefix) {
                    continue;
                }
                listed += 1;
                let (gtrid, bqual) = data.split_at(gl);
                let xid = format!("'{gtrid}','{bqual}'");
                let commit = decided.contains(gtrid);
                let sql = if commit {
                    format!("XA COMMIT {xid}")
                } else {
                    format!("XA ROLLBACK {xid}")
                };
                // Servers shared by several shards list the same branch more than once: the
                // second finish finds it gone (or still held, and the next pass sees it again).
                match backends
                    .execute(&ks.name, &shard.name, &sql, &mut engine::NoRows)
                    .await
                {
                    Ok(_) if commit => {
                        done.committed.insert(gtrid.to_string());
                    }
                    Ok(_) => {
                        done.rolled_back.insert(gtrid.to_string());
                    }
                    Err(EngineError::Server { code: 1397, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(listed)
}
