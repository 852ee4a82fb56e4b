//! The config file as written: serde structs that reject unknown keys. `load` turns them into the
//! validated model; nothing else reads them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub server: RawServer,
    #[serde(default)]
    pub users: Vec<Spanned<RawUser>>,
    #[serde(default)]
    pub keyspaces: BTreeMap<String, Spanned<RawKeyspace>>,
    pub topology: Option<RawTopology>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTopology {
    pub etcd: Vec<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Spanned<String>,
    pub admin: Option<Spanned<String>>,
    pub max_packet_size: Option<usize>,
    pub max_buffered_rows: Option<usize>,
    pub plan_cache_size: Option<usize>,
    pub query_log: Option<bool>,
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    pub max_connections: Option<usize>,
    pub query_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub slow_query_ms: Option<u64>,
    pub shutdown_timeout_ms: Option<u64>,
    pub deadlock_check_ms: Option<u64>,
    pub ddl_strategy: Option<Spanned<String>>,
    pub migration_retention_s: Option<u64>,
    pub migration_copy_rate: Option<u64>,
    /// Where the sessions of users without a `read_target` of their own read.
    pub read_target: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    pub name: String,
    pub password: Option<String>,
    pub password_hash: Option<String>,
    pub password_sha2: Option<String>,
    pub keyspaces: Option<Vec<String>>,
    pub read_only: Option<bool>,
    pub require_tls: Option<bool>,
    pub max_connections: Option<usize>,
    pub read_target: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeyspace {
    pub sharded: Option<bool>,
    #[serde(default)]
    pub shards: Vec<Spanned<RawShard>>,
    /// Shards a reshard can move the keyspace to: not serving until one switches to them.
    #[serde(default)]
    pub spare_shards: Vec<Spanned<RawShard>>,
    pub pool: Option<RawPool>,
    pub backend_tls: Option<Spanned<String>>,
    pub backend_ca: Option<String>,
    #[serde(default)]
    pub vindexes: BTreeMap<String, Spanned<RawVindex>>,
    #[serde(default)]
    pub tables: BTreeMap<String, Spanned<RawTable>>,
    /// A Vitess `vschema.json` giving `sharded`, `vindexes` and `tables` for this keyspace.
    pub vschema_json: Option<Spanned<String>>,
    /// `single`, `multi` or `twopc`: how transactions that start here commit.
    pub transaction_mode: Option<Spanned<String>>,
    /// Replicas further behind their primary than this many milliseconds answer no reads.
    pub max_replica_lag_ms: Option<u64>,
    /// How long statements for a shard wait while its primary changes, in milliseconds.
    pub failover_buffer_ms: Option<u64>,
    /// Replace a primary that misses its health checks with its most advanced replica.
    #[serde(default)]
    pub auto_failover: bool,
    /// An unsharded keyspace that holds the tables this (sharded) keyspace's VSchema does not
    /// list.
    pub unlisted_tables: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShard {
    pub name: Spanned<String>,
    pub primary: Spanned<String>,
    /// Servers replicating from the primary, for reads that may lag.
    #[serde(default)]
    pub replicas: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub min: Option<usize>,
    pub max: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVindex {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// Lookup vindexes: the lookup table (`keyspace.table`) and its columns.
    pub table: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `numeric_static_map`: its JSON entries, in a file (relative to this one) or inline.
    pub json_path: Option<String>,
    pub json: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTable {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub primary_vindex: Option<Spanned<RawColumnVindex>>,
    pub auto_increment: Option<Spanned<RawAutoIncrement>>,
    #[serde(default)]
    pub secondary_vindexes: Vec<Spanned<RawColumnVindex>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAutoIncrement {
    pub column: String,
    /// `table` or `keyspace.table`.
    pub sequence: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawColumnVindex {
    pub column: String,
    pub vindex: Spanned<String>,
}

/// A Vitess keyspace `vschema.json`. Unknown keys are ignored: Vitess files carry many settings that
/// do not change placement.
#[derive(Debug, Deserialize)]
pub(crate) struct VitessKeyspace {
    #[serde(default)]
    pub sharded: bool,
    #[serde(default, alias = "requireExplicitRouting")]
    pub require_explicit_routing: bool,
    #[serde(default)]
    pub vindexes: BTreeMap<String, VitessVindex>,
    #[serde(default)]
    pub tables: BTreeMap<String, VitessTable>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VitessVindex {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The table whose writes maintain a lookup vindex's rows.
    #[serde(default)]
    pub owner: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VitessTable {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, alias = "columnVindexes")]
    pub column_vindexes: Vec<VitessColumnVindex>,
    #[serde(alias = "autoIncrement")]
    pub auto_increment: Option<VitessAutoIncrement>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VitessAutoIncrement {
    pub column: String,
    pub sequence: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VitessColumnVindex {
    pub column: Option<String>,
    #[serde(default)]
    pub columns: Vec<String>,
    pub name: String,
}
