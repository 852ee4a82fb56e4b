//! Migrations as records in the sidecar keyspace (`shardgate_migrations`), so that any proxy
//! shows them and a restarted one resumes them.

use engine::{EngineError, Executor as _};
use serde::{Deserialize, Serialize};

use crate::sidecar::{home, quote, read_rows, text};
use crate::topology::Topology;

const TABLE: &str = "shardgate_migrations";

/// One shard's part of a migration: how far its copy and its stream have come.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShardPart {
    pub shard: String,
    /// `queued`, `copying`, `catching up`, `ready`, `complete`, `failed`, `cancelled`.
    pub phase: String,
    /// The stream's position: every change before it is in the shadow table.
    pub position: String,
    /// The copy's last primary key, as SQL literals; none before the first chunk.
    pub last_key: Option<Vec<String>>,
    /// The greatest primary key when the copy began: rows beyond it came after the stream's
    /// start, which brings them. None before the copy began.
    #[serde(default)]
    pub end_key: Option<Vec<String>>,
    pub copied: u64,
    pub total: u64,
    /// Milliseconds the stream was behind the shard when last measured.
    pub lag_ms: u64,
}

/// A migration as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub keyspace: String,
    pub table: String,
    pub statement: String,
    pub state: String,
    pub message: String,
    pub parts: Vec<ShardPart>,
    /// Seconds since the migration started (as the database counts).
    pub age_secs: u64,
    /// Seconds since it cut over, once it has.
    pub since_cut_over: Option<u64>,
}

/// What a migration's shards add up to, as SHOW SHARDGATE MIGRATIONS, `/migrations` and the
/// CLI show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub id: String,
    pub keyspace: String,
    pub table: String,
    pub statement: String,
    pub state: String,
    pub message: String,
    pub shards: Vec<ShardPart>,
    pub rows_copied: u64,
    pub rows_total: u64,
    /// Percent of the rows copied (100 once cut over).
    pub progress: f64,
    /// Seconds the copy may still take, at its pace so far.
    pub eta_secs: Option<u64>,
    /// How far the slowest shard's stream is behind.
    pub lag_secs: f64,
}

impl Record {
    /// Whether its streams still run: queued or copying, or cut over and following the new
    /// table for a revert.
    pub fn streaming(&self) -> bool {
        let reversing = self.state == "complete" && self.parts.iter().all(|p| p.phase == "reverse");
        reversing || matches!(self.state.as_str(), "queued" | "running")
    }

    pub fn summary(&self) -> Summary {
        let copied: u64 = self.parts.iter().map(|p| p.copied).sum();
        let total: u64 = self.parts.iter().map(|p| p.total).sum();
        let progress = match (self.state.as_str(), total) {
            ("complete" | "reverted", _) => 100.0,
            (_, 0) => 0.0,
            _ => (copied as f64 * 100.0 / total as f64).min(100.0),
        };
        let eta_secs = (self.state == "running" && progress > 0.0 && progress < 100.0)
            .then(|| (self.age_secs as f64 * (100.0 - progress) / progress).round() as u64);
        Summary {
            id: self.id.clone(),
            keyspace: self.keyspace.clone(),
            table: self.table.clone(),
            statement: self.statement.clone(),
            state: self.state.clone(),
            message: self.message.clone(),
            shards: self.parts.clone(),
            rows_copied: copied,
            rows_total: total,
            progress,
            eta_secs,
            lag_secs: self.parts.iter().map(|p| p.lag_ms).max().unwrap_or(0) as f64 / 1000.0,
        }
    }
}

fn place(topo: &Topology) -> Result<(String, String), EngineError> {
    home(&topo.vschema, "an online schema change")
}

pub(crate) async fn ensure_table(topo: &Topology) -> Result<(), EngineError> {
    let (ks, shard) = place(topo)?;
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id VARCHAR(64) NOT NULL PRIMARY KEY, \
         keyspace_name VARCHAR(64) NOT NULL, table_name VARCHAR(64) NOT NULL, statement TEXT NOT NULL, \
         state VARCHAR(16) NOT NULL, message TEXT NOT NULL, parts LONGTEXT NOT NULL, \
         created DATETIME NOT NULL, updated DATETIME NOT NULL, cut_over DATETIME NULL)"
    );
    topo.backends
        .execute(&ks, &shard, &create, &mut engine::NoRows)
        .await?;
    Ok(())
}

pub(crate) async fn save(topo: &Topology, record: &Record) -> Result<(), EngineError> {
    let (ks, shard) = place(topo)?;
    let parts = serde_json::to_string(&record.parts).expect("parts serialise");
    let sql = format!(
        "INSERT INTO {TABLE} (id, keyspace_name, table_name, statement, state, message, parts, \
         created, updated) VALUES ({}, {}, {}, {}, {}, {}, {}, NOW(), NOW()) \
         ON DUPLICATE KEY UPDATE state = VALUES(state), message = VALUES(message), \
         parts = VALUES(parts), updated = NOW(), \
         cut_over = IF(VALUES(state) = 'complete', COALESCE(cut_over, NOW()), cut_over)",
        quote(&record.id),
        quote(&record.keyspace),
        quote(&record.table),
        quote(&record.statement),
        quote(&record.state),
        quote(&record.message),
        quote(&parts),
    );
    topo.backends
        .execute(&ks, &shard, &sql, &mut engine::NoRows)
        .await?;
    Ok(())
}

/// Every recorded migration, oldest first; `only` limits them to one id.
pub(crate) async fn load(topo: &Topology, only: Option<&str>) -> Result<Vec<Record>, EngineError> {
    let place = place(topo)?;
    let filter = only.map_or(String::new(), |id| format!(" WHERE id = {}", quote(id)));
    let sql = format!(
        "SELECT id, keyspace_name, table_name, statement, state, message, parts, \
         TIMESTAMPDIFF(SECOND, created, NOW()), TIMESTAMPDIFF(SECOND, cut_over, NOW()) \
         FROM {TABLE}{filter} ORDER BY created, id"
    );
    Ok(read_rows(topo, place, &sql)
        .await?
        .iter()
        .map(|r| Record {
            id: text(&r[0]),
            keyspace: text(&r[1]),
            table: text(&r[2]),
            statement: text(&r[3]),
            state: text(&r[4]),
            message: text(&r[5]),
            parts: serde_json::from_str(&text(&r[6])).unwrap_or_default(),
            age_secs: text(&r[7]).parse().unwrap_or(0),
            since_cut_over: text(&r[8]).parse().ok(),
        })
        .collect())
}
