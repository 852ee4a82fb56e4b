//! Branches, their users, deploy requests and the production flag, kept in the sidecar keyspace
//! beside the migrations' records, so that a restarted proxy (and the CLI, through it) sees
//! them.

use std::collections::BTreeMap;

use engine::Executor as _;
use engine::{Collected, EngineError, Value};

use crate::sidecar::{home, quote, text};
use crate::topology::Topology;

const BRANCHES: &str = "shardgate_branches";
const USERS: &str = "shardgate_branch_users";
const REQUESTS: &str = "shardgate_deploy_requests";
const SETTINGS: &str = "shardgate_settings";

/// A branch as recorded.
#[derive(Debug, Clone)]
pub(crate) struct BranchRecord {
    pub name: String,
    /// `none`, `sample` or `full`.
    pub data: String,
    /// Main's tables when the branch was made, per keyspace, as `CREATE TABLE` statements:
    /// the base of a deploy request's three-way comparison.
    pub base: BTreeMap<String, Vec<String>>,
    pub vschema: VSchemas,
    pub age_secs: u64,
}

/// A branch's keyspace VSchemas (TOML): main's when the branch was made, and those the branch
/// changed.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct VSchemas {
    pub base: BTreeMap<String, String>,
    pub changed: BTreeMap<String, String>,
}

/// A deploy request as recorded; `body` is its JSON (see [`super::deploy::Request`]).
pub(crate) struct RequestRecord {
    pub id: u64,
    pub body: String,
    pub age_secs: u64,
}

fn place(topo: &Topology) -> Result<(String, String), EngineError> {
    home(&topo.vschema, "schema branches")
}

async fn run(topo: &Topology, sql: &str) -> Result<Collected, EngineError> {
    let (ks, shard) = place(topo)?;
    let mut rows = Collected::default();
    topo.backends.execute(&ks, &shard, sql, &mut rows).await?;
    Ok(rows)
}

pub(crate) async fn ensure_tables(topo: &Topology) -> Result<(), EngineError> {
    for create in [
        format!(
            "CREATE TABLE IF NOT EXISTS {BRANCHES} (name VARCHAR(64) NOT NULL PRIMARY KEY, \
             data VARCHAR(16) NOT NULL, base LONGTEXT NOT NULL, vschema LONGTEXT NOT NULL, \
             created DATETIME NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {USERS} (user VARCHAR(80) NOT NULL PRIMARY KEY, \
             branch VARCHAR(64) NOT NULL, password_hash CHAR(41) NOT NULL, \
             created DATETIME NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {REQUESTS} (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             body LONGTEXT NOT NULL, created DATETIME NOT NULL, updated DATETIME NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {SETTINGS} (name VARCHAR(64) NOT NULL PRIMARY KEY, \
             value TEXT NOT NULL)"
        ),
    ] {
        run(topo, &create).await?;
    }
    Ok(())
}

/// Rows of `sql`; none when the table is not there yet (nothing was ever recorded).
async fn rows(topo: &Topology, sql: &str) -> Result<Vec<Vec<Value>>, EngineError> {
    match run(topo, sql).await {
        Ok(rows) => Ok(rows.rows),
        Err(EngineError::Server { code: 1146, .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

pub(crate) async fn save_branch(topo: &Topology, branch: &BranchRecord) -> Result<(), EngineError> {
    let base = serde_json::to_string(&branch.base).expect("schemas serialise");
    let vschema = serde_json::to_string(&branch.vschema).expect("VSchemas serialise");
    let sql = format!(
        "INSERT INTO {BRANCHES} (name, data, base, vschema, created) VALUES ({}, {}, {}, {}, NOW())",
        quote(&branch.name),
        quote(&branch.data),
        quote(&base),
        quote(&vschema)
    );
    run(topo, &sql).await.map(drop)
}

pub(crate) async fn save_vschemas(
    topo: &Topology,
    name: &str,
    vschema: &VSchemas,
) -> Result<(), EngineError> {
    let vschema = serde_json::to_string(vschema).expect("VSchemas serialise");
    let sql = format!(
        "UPDATE {BRANCHES} SET vschema = {} WHERE name = {}",
        quote(&vschema),
        quote(name)
    );
    run(topo, &sql).await.map(drop)
}

pub(crate) async fn branches(topo: &Topology) -> Result<Vec<BranchRecord>, EngineError> {
    let sql = format!(
        "SELECT name, data, base, TIMESTAMPDIFF(SECOND, created, NOW()), vschema FROM {BRANCHES} \
         ORDER BY created, name"
    );
    Ok(rows(topo, &sql)
        .await?
        .iter()
        .map(|r| BranchRecord {
            name: text(&r[0]),
            data: text(&r[1]),
            base: serde_json::from_str(&text(&r[2])).unwrap_or_default(),
            age_secs: text(&r[3]).parse().unwrap_or(0),
            vschema: serde_json::from_str(&text(&r[4])).unwrap_or_default(),
        })
        .collect())
}

pub(crate) async fn delete_branch(topo: &Topology, name: &str) -> Result<(), EngineError> {
    run(
        topo,
        &format!("DELETE FROM {USERS} WHERE branch = {}", quote(name)),
    )
    .await?;
    run(
        topo,
        &format!("DELETE FROM {BRANCHES} WHERE name = {}", quote(name)),
    )
    .await?;
    Ok(())
}

pub(crate) async fn save_user(
    topo: &Topology,
    user: &str,
    branch: &str,
    hash: &str,
) -> Result<(), EngineError> {
    let sql = format!(
        "INSERT INTO {USERS} (user, branch, password_hash, created) VALUES ({}, {}, {}, NOW())",
        quote(user),
        quote(branch),
        quote(hash)
    );
    run(topo, &sql).await.map(drop)
}

/// (user, branch, mysql_native_password hash), every branch user.
pub(crate) async fn users(topo: &Topology) -> Result<Vec<(String, String, String)>, EngineError> {
    let sql = format!("SELECT user, branch, password_hash FROM {USERS} ORDER BY created, user");
    Ok(rows(topo, &sql)
        .await?
        .iter()
        .map(|r| (text(&r[0]), text(&r[1]), text(&r[2])))
        .collect())
}

pub(crate) async fn setting(topo: &Topology, name: &str) -> Result<Option<String>, EngineError> {
    let sql = format!("SELECT value FROM {SETTINGS} WHERE name = {}", quote(name));
    Ok(rows(topo, &sql).await?.first().map(|r| text(&r[0])))
}

pub(crate) async fn set_setting(
    topo: &Topology,
    name: &str,
    value: &str,
) -> Result<(), EngineError> {
    let sql = format!(
        "INSERT INTO {SETTINGS} (name, value) VALUES ({}, {}) \
         ON DUPLICATE KEY UPDATE value = VALUES(value)",
        quote(name),
        quote(value)
    );
    run(topo, &sql).await.map(drop)
}

/// Records a new deploy request: its number.
pub(crate) async fn new_request(topo: &Topology, body: &str) -> Result<u64, EngineError> {
    let (ks, shard) = place(topo)?;
    let sql = format!(
        "INSERT INTO {REQUESTS} (body, created, updated) VALUES ({}, NOW(), NOW())",
        quote(body)
    );
    let outcome = topo
        .backends
        .execute(&ks, &shard, &sql, &mut engine::NoRows)
        .await?;
    Ok(outcome.last_insert_id)
}

pub(crate) async fn save_request(topo: &Topology, id: u64, body: &str) -> Result<(), EngineError> {
    let sql = format!(
        "UPDATE {REQUESTS} SET body = {}, updated = NOW() WHERE id = {id}",
        quote(body)
    );
    run(topo, &sql).await.map(drop)
}

/// Every deploy request, oldest first; `only` limits them to one.
pub(crate) async fn requests(
    topo: &Topology,
    only: Option<u64>,
) -> Result<Vec<RequestRecord>, EngineError> {
    let filter = only.map_or(String::new(), |id| format!(" WHERE id = {id}"));
    let sql = format!(
        "SELECT id, body, TIMESTAMPDIFF(SECOND, created, NOW()) FROM {REQUESTS}{filter} ORDER BY id"
    );
    Ok(rows(topo, &sql)
        .await?
        .iter()
        .map(|r| RequestRecord {
            id: text(&r[0]).parse().unwrap_or(0),
            body: text(&r[1]),
            age_secs: text(&r[2]).parse().unwrap_or(0),
        })
        .collect())
}
