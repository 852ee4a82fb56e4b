//! Reshards as records in the sidecar keyspace (`shardgate_reshards`, one per keyspace), so
//! that `status` works from any proxy and a restarted one resumes where it stopped.

use engine::{EngineError, Executor as _};
use serde::{Deserialize, Serialize};

use crate::sidecar::{home, quote, read_rows, text};
use crate::topology::Topology;

const TABLE: &str = "shardgate_reshards";

/// A reshard of one keyspace as recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub keyspace: String,
    /// The shards serving when it began, and those it moves the keyspace to.
    pub sources: Vec<String>,
    pub targets: Vec<String>,
    pub state: State,
    /// Why it failed, what the last step found, or what to do next.
    pub message: String,
    /// One per shard streaming: the sources until the switch, the targets after it.
    pub movers: Vec<MoverState>,
    /// While switching: the streams that run once it is done (from the new serving shards
    /// back), so that a proxy stopped mid-switch resumes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_movers: Vec<MoverState>,
    /// What the last verify found different (at most a few, with their keys).
    pub differences: Vec<String>,
    /// The copy's pace per source shard, at most (none: as fast as it goes).
    #[serde(default)]
    pub max_rows_per_sec: Option<u64>,
    /// Rows the sources held when the copy began (estimated), and rows copied since.
    pub rows_total: u64,
    /// Seconds the copy took, once it ended.
    pub copy_secs: Option<f64>,
    /// How long the switch held statements, in milliseconds.
    pub stall_ms: Option<u64>,
    /// Before the switch: replica reads go to the targets (`switch-reads`).
    #[serde(default)]
    pub reads_switched: bool,
    /// Seconds since the reshard began, as the database counts (not stored: read back).
    #[serde(skip)]
    pub age_secs: u64,
}

/// Where a reshard stands.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Creating the tables, copying rows and streaming changes to the targets.
    #[default]
    Copying,
    /// Copied and streaming; comparing the sources with the targets.
    Verifying,
    /// Verified without differences; streaming; waiting for `switch`.
    Ready,
    /// The last verify found differences: the switch is refused until one finds none.
    Diverged,
    /// Switching: statements held while the streams drain and routing swaps.
    Switching,
    /// The targets serve the keyspace; their changes stream back to the sources.
    Switched,
    /// Switched back: the sources serve again.
    Reversed,
    /// The sources' rows are dropped; the targets serve for good.
    Completed,
    /// Stopped before the switch; the targets' tables dropped.
    Cancelled,
    Failed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Copying => "copying",
            State::Verifying => "verifying",
            State::Ready => "ready",
            State::Diverged => "diverged",
            State::Switching => "switching",
            State::Switched => "switched",
            State::Reversed => "reversed",
            State::Completed => "completed",
            State::Cancelled => "cancelled",
            State::Failed => "failed",
        }
    }

    /// Whether the reshard still has work running (streams) or waiting.
    pub fn active(self) -> bool {
        !matches!(
            self,
            State::Reversed | State::Completed | State::Cancelled | State::Failed
        )
    }

    /// Whether the streams run from the sources to the targets (before the switch).
    pub fn forward(self) -> bool {
        matches!(
            self,
            State::Copying | State::Verifying | State::Ready | State::Diverged
        )
    }
}

/// One shard's stream: where it stands and how far its copy came.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MoverState {
    pub shard: String,
    /// Every change before this GTID position is on the shards it streams to.
    pub position: String,
    /// Each table's copy (none for a stream that only follows changes, as after the switch).
    pub tables: Vec<TableCopy>,
    pub copied: u64,
    /// Milliseconds the stream was behind its shard when last measured.
    pub lag_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableCopy {
    pub name: String,
    /// The last primary key copied, as SQL literals; none before the first chunk.
    pub last_key: Option<Vec<String>>,
    pub done: bool,
}

impl Record {
    pub fn rows_copied(&self) -> u64 {
        self.movers.iter().map(|m| m.copied).sum()
    }

    /// Whether every table of every source is copied.
    pub fn copied(&self) -> bool {
        self.movers.iter().all(|m| m.tables.iter().all(|t| t.done))
    }

    /// How far the slowest stream is behind.
    pub fn lag_ms(&self) -> u64 {
        self.movers.iter().map(|m| m.lag_ms).max().unwrap_or(0)
    }

    /// Seconds the copy may still take, at its pace so far.
    pub fn eta_secs(&self) -> Option<u64> {
        let copied = self.rows_copied();
        (self.state == State::Copying && copied > 0 && copied < self.rows_total).then(|| {
            let left = (self.rows_total - copied) as f64;
            (self.age_secs as f64 * left / copied as f64).round() as u64
        })
    }
}

pub(crate) async fn save(topo: &Topology, record: &Record) -> Result<(), EngineError> {
    let (ks, shard) = home(&topo.vschema, "resharding")?;
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (keyspace_name VARCHAR(64) NOT NULL PRIMARY KEY, \
         record LONGTEXT NOT NULL, created DATETIME NOT NULL, updated DATETIME NOT NULL)"
    );
    let json = serde_json::to_string(record).expect("a reshard record serialises");
    let upsert = format!(
        "INSERT INTO {TABLE} (keyspace_name, record, created, updated) VALUES ({}, {}, NOW(), \
         NOW()) ON DUPLICATE KEY UPDATE record = VALUES(record), updated = NOW()",
        quote(&record.keyspace),
        quote(&json)
    );
    for sql in [create, upsert] {
        topo.backends
            .execute(&ks, &shard, &sql, &mut engine::NoRows)
            .await?;
    }
    Ok(())
}

/// A new reshard of the keyspace replaces the record of an old one that ended.
pub(crate) async fn restart(topo: &Topology, record: &Record) -> Result<(), EngineError> {
    let (ks, shard) = home(&topo.vschema, "resharding")?;
    let delete = format!(
        "DELETE FROM {TABLE} WHERE keyspace_name = {}",
        quote(&record.keyspace)
    );
    match topo
        .backends
        .execute(&ks, &shard, &delete, &mut engine::NoRows)
        .await
    {
        Ok(_) | Err(EngineError::Server { code: 1146, .. }) => {}
        Err(e) => return Err(e),
    }
    save(topo, record).await
}

/// Every recorded reshard; `only` limits them to one keyspace.
pub(crate) async fn load(topo: &Topology, only: Option<&str>) -> Result<Vec<Record>, EngineError> {
    let place = home(&topo.vschema, "resharding")?;
    let filter = only.map_or(String::new(), |k| {
        format!(" WHERE keyspace_name = {}", quote(k))
    });
    let sql = format!(
        "SELECT record, TIMESTAMPDIFF(SECOND, created, NOW()) FROM {TABLE}{filter} \
         ORDER BY keyspace_name"
    );
    Ok(read_rows(topo, place, &sql)
        .await?
        .iter()
        .filter_map(|r| {
            let mut record: Record = serde_json::from_str(&text(&r[0])).ok()?;
            record.age_secs = text(&r[1]).parse().unwrap_or(0);
            Some(record)
        })
        .collect())
}
