//! The keyspace map (VSchema) and the rest of the config: loading from TOML, validation, key
//! ranges and vindexes. Everything here is immutable once loaded and shared behind an `Arc`.
//!
//! - `keyrange`: shard names as key ranges, containment, tiling checks.
//! - `vindex`: value → keyspace ID functions (Vitess-compatible).
//! - `load`: TOML (and Vitess `vschema.json`) → validated [`Config`], with errors naming file,
//!   line and key path.

pub mod keyrange;
mod load;
mod loose_key;
mod raw;
mod state;
pub mod vindex;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use keyrange::KeyRange;
pub use load::{
    keyspace_vschema_toml, keyspaces_toml, load_config, load_vitess_json, parse_config,
    parse_with_keyspaces, with_keyspace_vschema,
};
pub use state::{
    branch_database, current_vschema, record_primary, record_serving, record_vschema, state_path,
};
pub use vindex::{
    parse_static_map, KeyValue, KeyspaceId, MultiColumn, Vindex, VindexError, VindexKind,
};

/// A config mistake, located: `shardgate.toml:12: keyspaces.commerce.tables.orders: unknown vindex "hsh"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub users: Vec<User>,
    pub vschema: Arc<VSchema>,
    /// Where several proxies share their keyspaces and primaries; `None`: this proxy alone,
    /// with a state file beside its config.
    pub topology: Option<SharedTopology>,
}

/// `[topology]`: etcd endpoints and the key prefix under which the proxies of one database
/// keep their topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedTopology {
    pub etcd: Vec<String>,
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    /// Admin HTTP address (/metrics, /healthz, /readyz, /status, /reload).
    pub admin: Option<String>,
    /// Largest client packet accepted, in bytes.
    pub max_packet_size: usize,
    /// Rows a cross-shard merge may hold in memory (sorting after aggregation); beyond it the
    /// query fails with a clear error instead of exhausting memory.
    pub max_buffered_rows: usize,
    /// Plans the plan cache holds (least recently used go first).
    pub plan_cache_size: usize,
    /// Log every statement (JSON lines with `--log-format json`), not only slow ones.
    pub query_log: bool,
    /// TLS for clients: a PEM certificate chain and its private key (paths relative to the
    /// config file).
    pub tls: Option<TlsFiles>,
    /// Statements slower than this are logged as slow queries (0: none).
    pub slow_query_ms: u64,
    /// Client connections at once; more are refused with 1040.
    pub max_connections: usize,
    /// A statement running longer is interrupted (its backend queries killed) with 3024
    /// (0: no limit).
    pub query_timeout_ms: u64,
    /// A client idle this long is disconnected with 4031 (0: never).
    pub idle_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long running statements and open transactions may take to finish
    /// before they are rolled back and their connections closed.
    pub shutdown_timeout_ms: u64,
    /// A statement of a transaction on several shards that waits this long makes shardgate look
    /// for a deadlock that spans shards (0: never).
    pub deadlock_check_ms: u64,
    /// How `ALTER TABLE` runs unless a session says otherwise: as plain DDL on every shard
    /// (false) or as an online migration (true, `ddl_strategy = "online"`).
    pub online_ddl: bool,
    /// How long after a migration's cut-over its old table is kept up to date (and the
    /// migration revertible); then the old table is dropped.
    pub migration_retention_s: u64,
    /// Rows per second a migration copies on each shard (0: as fast as the shard takes them).
    pub migration_copy_rate: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which servers of a shard answer the session's reads outside transactions (`USE ks@replica`,
/// `SET read_target = '...'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadTarget {
    #[default]
    Primary,
    /// A replica within its keyspace's lag bound, taken in turn; the primary when none is.
    Replica,
    /// A replica within its lag bound, or an error naming the shard when none is.
    ReplicaOnly,
}

impl ReadTarget {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "primary" => Some(ReadTarget::Primary),
            "replica" => Some(ReadTarget::Replica),
            "replica_only" => Some(ReadTarget::ReplicaOnly),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ReadTarget::Primary => "primary",
            ReadTarget::Replica => "replica",
            ReadTarget::ReplicaOnly => "replica_only",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub secret: Secret,
    /// The keyspaces the user may use; `None`: all of them.
    pub keyspaces: Option<Vec<String>>,
    /// Writes refused (1290), as on a read-only server.
    pub read_only: bool,
    /// Logins without TLS refused (1045), as for MySQL's REQUIRE SSL.
    pub require_tls: bool,
    /// Connections the user may have open at once (0: no limit but the server's).
    pub max_connections: usize,
    /// Where the user's sessions read outside transactions until they say otherwise.
    pub read_target: ReadTarget,
}

/// How the config gives a user's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// In plain text (the demo; shardgate warns).
    Password(String),
    /// MySQL's mysql_native_password hash, SHA1(SHA1(password)), written `*` + 40 hex digits as
    /// `SELECT authentication_string FROM mysql.user` shows it.
    NativeHash([u8; 20]),
    /// MySQL's caching_sha2_password hash (`$A$005$` + salt + digest), as
    /// `SELECT authentication_string FROM mysql.user` shows it.
    Sha2Hash(String),
}

/// Parses MySQL's `*` + 40 hex digits mysql_native_password hash.
pub fn parse_native_hash(text: &str) -> Option<[u8; 20]> {
    let hex = text.strip_prefix('*')?;
    if hex.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Every keyspace, by name.
#[derive(Debug, Clone, Default)]
pub struct VSchema {
    keyspaces: BTreeMap<String, Keyspace>,
}

impl VSchema {
    pub fn new(keyspaces: impl IntoIterator<Item = Keyspace>) -> Self {
        VSchema {
            keyspaces: keyspaces.into_iter().map(|k| (k.name.clone(), k)).collect(),
        }
    }

    pub fn keyspace(&self, name: &str) -> Option<&Keyspace> {
        self.keyspaces.get(name)
    }

    pub fn keyspaces(&self) -> impl Iterator<Item = &Keyspace> {
        self.keyspaces.values()
    }
}

/// Replicas further behind than this answer no reads, unless the keyspace says otherwise.
pub const MAX_REPLICA_LAG: std::time::Duration = std::time::Duration::from_secs(30);

/// How long statements wait for a shard whose primary changes, unless the keyspace says.
pub const FAILOVER_BUFFER: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Keyspace {
    pub name: String,
    pub sharded: bool,
    /// In key order; they tile the whole keyspace-ID space.
    pub shards: Vec<Shard>,
    /// Shards configured for the keyspace that serve nothing: where a reshard can move it, or
    /// those it moved from (kept for going back).
    pub spare_shards: Vec<Shard>,
    pub tables: BTreeMap<String, Table>,
    pub pool: PoolSize,
    /// How transactions started in this keyspace commit, unless the session chose.
    pub transaction_mode: Option<String>,
    /// Replicas further behind than this answer no reads.
    pub max_replica_lag: std::time::Duration,
    /// How long statements for a shard wait while its primary changes.
    pub failover_buffer: std::time::Duration,
    /// Whether a primary that stops answering is replaced by its most advanced replica.
    pub auto_failover: bool,
    /// TLS to this keyspace's shards.
    pub backend_tls: BackendTls,
    /// The unsharded keyspace where the tables this sharded keyspace does not list live (tables
    /// an ORM or a migration tool creates): statements naming them go there.
    pub unlisted_tables: Option<String>,
}

/// TLS to the backends, with the meanings of the `mysql` client's `--ssl-mode`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BackendTls {
    #[default]
    Disabled,
    /// Encrypted; the server's certificate is not checked.
    Required,
    /// Encrypted, the certificate signed by `ca`; its name is not checked.
    VerifyCa(PathBuf),
    /// Encrypted, the certificate signed by `ca` and naming the shard's host.
    VerifyIdentity(PathBuf),
}

impl Keyspace {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// The shards (indexes, in key order) that may hold keyspace IDs starting with `prefix`.
    pub fn shards_with_prefix(&self, prefix: &[u8]) -> Vec<usize> {
        // IDs starting with the prefix lie in [prefix, prefix + 1); no end when it is all 0xff.
        let mut end = prefix.to_vec();
        while end.last() == Some(&0xff) {
            end.pop();
        }
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                let (start, stop) = (s.range.start(), s.range.end());
                (stop.is_empty() || prefix < stop) && (end.is_empty() || start < end.as_slice())
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The index of the shard that owns `id`. Shards tile the space, so there is always one.
    pub fn shard_for(&self, id: &KeyspaceId) -> usize {
        self.shards
            .iter()
            .position(|s| s.range.contains(&id.0))
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    pub min: usize,
    pub max: usize,
}

impl Default for PoolSize {
    fn default() -> Self {
        PoolSize { min: 4, max: 64 }
    }
}

#[derive(Debug, Clone)]
pub struct Shard {
    pub name: String,
    pub range: KeyRange,
    pub primary: BackendAddr,
    /// Servers replicating from the primary: reads that accept some lag may go to them.
    pub replicas: Vec<BackendAddr>,
}

/// A backend MySQL address, from `mysql://user[:password]@host:port/database`.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendAddr {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
}

impl fmt::Debug for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Never shows the password.
impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mysql://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

impl BackendAddr {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("mysql://")
            .ok_or_else(|| format!("{url:?} is not a mysql:// address"))?;
        let (userinfo, hostpart) = rest
            .rsplit_once('@')
            .ok_or_else(|| format!("{url:?} has no user (mysql://user@host:port/db)"))?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p.to_string())),
            None => (userinfo, None),
        };
        if user.is_empty() {
            return Err(format!("{url:?} has an empty user name"));
        }
        let (hostport, database) = hostpart
            .split_once('/')
            .ok_or_else(|| format!("{url:?} names no database (mysql://user@host:port/db)"))?;
        if database.is_empty() || database.contains(['/', '?', '`']) {
            return Err(format!("{url:?} has an invalid database name {database:?}"));
        }
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("{url:?} has no port (mysql://user@host:port/db)"))?;
        if host.is_empty() {
            return Err(format!("{url:?} has an empty host"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{url:?} has an invalid port {port:?}"))?;
        Ok(BackendAddr {
            host: host.to_string(),
            port,
            user: user.to_string(),
            password,
            database: database.to_string(),
        })
    }
}

/// How a table's rows are placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Table {
    /// Rows spread over the shards by the primary vindex of `column`.
    Sharded {
        /// Empty for a multi-column vindex: no one column places a row, and no column name
        /// matches it, so reasoning about one vindex column (routing, colocated joins) never
        /// applies. Its columns are `columns`.
        column: String,
        /// The columns of a multi-column primary vindex (`multicol`, `region_json`), in order.
        columns: Vec<String>,
        vindex: Arc<Vindex>,
        auto_increment: Option<AutoIncrement>,
        /// Secondary columns mapped through lookup tables.
        lookups: Vec<LookupColumn>,
    },
    /// A sequence (`id`, `next_id`, `cache` columns) in an unsharded keyspace that hands out
    /// blocks of ids to sharded tables' AUTO_INCREMENT columns.
    Sequence,
    /// A full copy on every shard: read from any one, write to all.
    Reference,
    /// A table of an unsharded keyspace: everything on its one shard.
    Unsharded,
}

impl Table {
    /// A sharded table's primary vindex columns: its one column, or a multi-column vindex's.
    pub fn vindex_columns(&self) -> Vec<&str> {
        match self {
            Table::Sharded {
                column, columns, ..
            } if columns.is_empty() => vec![column.as_str()],
            Table::Sharded { columns, .. } => columns.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// Secondary columns whose values map to keyspace IDs through a lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupColumn {
    /// The table's columns, in the order of the lookup's `from` columns. Reads use the first.
    pub columns: Vec<String>,
    pub vindex: Arc<LookupVindex>,
    /// This table owns the vindex: its writes add and remove the lookup rows. A table that does
    /// not only reads through it.
    pub owned: bool,
}

impl LookupColumn {
    /// The column a `WHERE column = value` routes by.
    pub fn first(&self) -> &str {
        &self.columns[0]
    }

    /// The columns as the lookup names them in messages: `email` or `(oname, corder_id)`.
    pub fn display(&self) -> String {
        match self.columns.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(", ")),
        }
    }
}

/// A lookup vindex: rows `(from..., to)` of a lookup table map values to the keyspace IDs of the
/// rows that hold them. The table lives in an unsharded keyspace, or in a sharded one by its
/// first `from` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupVindex {
    pub name: String,
    pub keyspace: String,
    pub table: String,
    /// One or more columns; a read finds rows by the first.
    pub from: Vec<String>,
    pub to: String,
    /// A value has at most one row (`*_unique`); otherwise it may be on several keyspace IDs.
    pub unique: bool,
    /// Consistent: a lookup row whose owner row does not exist (left by a failed insert) is
    /// taken over by the next insert of the same value instead of blocking it.
    pub consistent: bool,
    /// What the `to` column holds.
    pub to_holds: LookupTo,
    /// Written by its owner but not read (`write_only`, while it is being backfilled).
    pub write_only: bool,
    /// A row with a NULL in a `from` column has no lookup row; otherwise writing one is an error.
    pub ignore_nulls: bool,
    /// Lookup rows are written at once, outside the owner's transaction, replacing any row of the
    /// same key, and never removed.
    pub autocommit: bool,
    /// A table that does not own the vindex inserts rows without checking that the lookup maps
    /// their values to their keyspace IDs.
    pub no_verify: bool,
}

/// What a lookup table's `to` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupTo {
    /// The keyspace ID's bytes (`lookup_unique`, `consistent_lookup_unique`).
    KeyspaceId,
    /// The integer the `hash` vindex maps to the keyspace ID (`lookup_hash_unique`): the
    /// owner's id when its primary vindex is `hash`.
    HashedId,
}

impl LookupVindex {
    /// The Vitess type name.
    pub fn type_name(&self) -> &'static str {
        match (self.unique, self.consistent, self.to_holds) {
            (true, true, _) => "consistent_lookup_unique",
            (false, true, _) => "consistent_lookup",
            (true, false, LookupTo::KeyspaceId) => "lookup_unique",
            (false, false, LookupTo::KeyspaceId) => "lookup",
            (true, false, LookupTo::HashedId) => "lookup_hash_unique",
            (false, false, LookupTo::HashedId) => "lookup_hash",
        }
    }
}

/// What a lookup vindex type's name says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupType {
    pub unique: bool,
    pub consistent: bool,
    pub to_holds: LookupTo,
}

impl LookupType {
    pub fn of(name: &str) -> Option<LookupType> {
        let (unique, consistent, to_holds) = match name {
            "consistent_lookup_unique" => (true, true, LookupTo::KeyspaceId),
            "consistent_lookup" => (false, true, LookupTo::KeyspaceId),
            "lookup_unique" => (true, false, LookupTo::KeyspaceId),
            "lookup" => (false, false, LookupTo::KeyspaceId),
            "lookup_hash_unique" => (true, false, LookupTo::HashedId),
            "lookup_hash" => (false, false, LookupTo::HashedId),
            _ => return None,
        };
        Some(LookupType {
            unique,
            consistent,
            to_holds,
        })
    }
}

/// A sharded table's AUTO_INCREMENT column, filled from a sequence table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoIncrement {
    pub column: String,
    pub sequence: SequenceRef,
}

/// Where a sequence table lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceRef {
    pub keyspace: String,
    pub table: String,
}
