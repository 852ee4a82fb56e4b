//! The glue: a client statement → session handling or plan → engine → client. This file holds
//! what every session shares ([`Gate`]), users and admission ([`Sessions`]) and a session's
//! state ([`GateSession`]). A statement's way through the submodules:
//!
//! - `handler`: the protocol commands (`frontend::Handler`), translated.
//! - `lifecycle`: one statement from start to end: processlist, timeout, errors, query log.
//! - `dispatch`: statement kinds → their handlers; `planning`: plan cache and planning;
//!   `run`: a plan executed on the session's shard connections, rows to the client.
//! - `tx`: transactions; `set`: SET; `show`: the SHOW statements the proxy answers, and
//!   `shardgate`: SHOW SHARDGATE;
//!   `prepare`: SQL-level PREPARE, EXECUTE and DEALLOCATE PREPARE.
//! - `locks`: named locks (GET_LOCK) and LOCK TABLES, on connections the session keeps.
//! - `registry`: every session as SHOW PROCESSLIST sees it, KILL, abandoning a shard.

mod dispatch;
mod handler;
mod lifecycle;
mod locks;
mod migrations;
mod planning;
mod prepare;
pub mod primaries;
mod registry;
mod run;
mod set;
mod shardgate;
mod show;
mod tx;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use backend::Backends;
use dashmap::DashMap;
use frontend::{HandlerFactory, SqlError};
use planner::Literal;
use tokio::sync::Notify;
use vschema::{Config, VSchema};

use crate::deadlock::Detector;
use crate::error;
use crate::metrics::Metrics;
use crate::plan_cache::PlanCache;
use crate::prepared::{PreparedStatement, ShardPrepared};
use crate::session::Session;
use crate::stats::Activity;
use crate::sysvars::ServerInfo;
use crate::topology::Topology;
use crate::transaction::{Transaction, TxMode};

pub use registry::Process;
use registry::SessionEntry;

/// What every session shares.
pub struct Gate {
    /// The keyspaces and their pools, swapped whole by a reload.
    topology: ArcSwap<Topology>,
    pub metrics: Metrics,
    pub activity: Activity,
    /// Log every statement, or only those slower than `slow_query`.
    query_log: bool,
    slow_query: Option<std::time::Duration>,
    users: HashMap<String, frontend::Credential>,
    access: HashMap<String, Arc<Access>>,
    /// Client connections at once (1040 beyond).
    max_connections: usize,
    /// Statements running longer are interrupted with 3024.
    query_timeout: Option<std::time::Duration>,
    info: ServerInfo,
    exec: engine::ExecOptions,
    /// Every client session, by connection id: SHOW PROCESSLIST and KILL.
    sessions: DashMap<u32, Arc<SessionEntry>>,
    /// Starts the ids of this instance's twopc transactions (`sg-<port>-`), so that a restart on
    /// the same port resolves its own prepared transactions and no one else's.
    pub xid_prefix: String,
    started: Instant,
    /// Client statements so far (COM_STATISTICS).
    questions: AtomicU64,
    /// COM_STMT_EXECUTE commands so far.
    executions: AtomicU64,
    pub plans: PlanCache,
    pub deadlocks: Arc<Detector>,
    /// The config file, when the proxy was started from one: a new primary is recorded in
    /// the state file beside it.
    config_path: std::sync::OnceLock<std::path::PathBuf>,
    /// The topology shared with other proxies through etcd, when the config says so.
    shared: std::sync::OnceLock<Arc<crate::etcd::Shared>>,
    /// The last primary changes, newest last.
    changes: std::sync::Mutex<std::collections::VecDeque<primaries::PrimaryChange>>,
    /// The online schema changes this proxy runs.
    pub migrations: crate::migration::Migrations,
    /// Schema branches, their users and deploy requests.
    pub branches: crate::branch::Branches,
    /// Keyspaces moving to other shards, and the hold of their switch.
    pub reshards: crate::reshard::Reshards,
}

/// The start of the twopc transaction ids of the proxy serving on `port`.
pub fn xid_prefix(port: u16) -> String {
    format!("sg-{port}-")
}

/// What a user may do, from the config.
#[derive(Debug, Default)]
pub struct Access {
    /// `None`: every keyspace.
    keyspaces: Option<Vec<String>>,
    read_only: bool,
    require_tls: bool,
    /// 0: no limit of the user's own.
    max_connections: usize,
    /// Where the user's sessions read until they say otherwise.
    read_target: crate::session::ReadTarget,
}

impl Access {
    fn allows(&self, keyspace: &str) -> bool {
        self.keyspaces
            .as_ref()
            .is_none_or(|k| k.iter().any(|k| k == keyspace))
    }
}

impl Gate {
    /// Statements running that a reshard's switch did not hold (see `GateSession::one_query`).
    pub(crate) fn unheld_statements(&self) -> usize {
        self.sessions
            .iter()
            .filter(|e| e.switch.load(std::sync::atomic::Ordering::SeqCst) == registry::UNHELD)
            .count()
    }

    /// Statements sent so far to each shard of the current topology, as `keyspace/shard` →
    /// count.
    pub fn shard_query_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let topo = self.topology();
        topo.vschema
            .keyspaces()
            .flat_map(|ks| {
                ks.shards.iter().map(|s| {
                    let n = self.metrics.shard_query_count(&ks.name, &s.name);
                    (format!("{}/{}", ks.name, s.name), n)
                })
            })
            .collect()
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The metrics in the Prometheus text format (`/metrics`).
    pub fn metrics_text(&self) -> String {
        let reshards = self.reshards.running_records();
        self.metrics
            .render(&self.plans, &self.topology(), &reshards)
    }

    /// The current keyspaces and pools.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.load_full()
    }

    /// Re-reads the config at `path` and, if it is valid, swaps the keyspaces and their pools in
    /// one step; an invalid file changes nothing. Statements already running finish on the old
    /// topology. Server settings (addresses, limits) and users take effect at the next start.
    pub fn reload(&self, path: &std::path::Path) -> Result<(), vschema::ConfigError> {
        match vschema::load_config(path) {
            Ok(_) if self.shared.get().is_some() => {
                // Every proxy sharing the topology switches when etcd has the new keyspaces.
                let shared = self.shared.get().cloned().expect("checked");
                let path = path.to_path_buf();
                tokio::spawn(async move {
                    if let Err(e) = shared.publish_keyspaces(&path).await {
                        tracing::error!(error = %e, "reload: the keyspaces were not shared");
                    }
                });
                Ok(())
            }
            Ok(config) => {
                self.replace_topology(config.vschema);
                tracing::info!(config = %path.display(), "reloaded the keyspaces");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused: the config is invalid; keeping the current one");
                Err(e)
            }
        }
    }

    /// Validates nothing: `vschema` comes from a validated config. Pools of shards whose address
    /// and pool size did not change are kept (with their connections); the others are new, and
    /// the old ones close as their last connections come back.
    pub fn replace_topology(&self, vschema: Arc<VSchema>) {
        let old = self.topology();
        let backends = Backends::reusing(&vschema, &old.backends);
        self.topology.store(Arc::new(Topology::new(
            vschema,
            backends,
            &self.metrics.shard_queries,
            &self.metrics.shard_seconds,
        )));
        // Plans name keyspaces, vindexes and shards of the old map.
        self.plans.clear();
        self.reshards.topology_replaced(self);
    }

    pub fn new(config: &Config, port: u16) -> Self {
        let metrics = Metrics::new();
        Gate {
            topology: ArcSwap::from_pointee(Topology::new(
                config.vschema.clone(),
                Backends::new(&config.vschema),
                &metrics.shard_queries,
                &metrics.shard_seconds,
            )),
            metrics,
            activity: Activity::default(),
            query_log: config.server.query_log,
            slow_query: (config.server.slow_query_ms > 0)
                .then(|| std::time::Duration::from_millis(config.server.slow_query_ms)),
            access: config
                .users
                .iter()
                .map(|u| {
                    // A keyspace's unlisted tables are its own, wherever they live.
                    let keyspaces =
                        u.keyspaces.as_ref().map(|allowed| {
                            let mut all = allowed.clone();
                            all.extend(allowed.iter().filter_map(|k| {
                                config.vschema.keyspace(k)?.unlisted_tables.clone()
                            }));
                            all
                        });
                    let access = Access {
                        keyspaces,
                        read_only: u.read_only,
                        require_tls: u.require_tls,
                        max_connections: u.max_connections,
                        read_target: u.read_target,
                    };
                    (u.name.clone(), Arc::new(access))
                })
                .collect(),
            max_connections: config.server.max_connections,
            query_timeout: (config.server.query_timeout_ms > 0)
                .then(|| std::time::Duration::from_millis(config.server.query_timeout_ms)),
            users: config
                .users
                .iter()
                .map(|u| {
                    let cred = match &u.secret {
                        vschema::Secret::Password(p) => frontend::Credential::Plain(p.clone()),
                        vschema::Secret::NativeHash(h) => frontend::Credential::NativeHash(*h),
                        vschema::Secret::Sha2Hash(s) => frontend::Credential::Sha2Hash(s.clone()),
                    };
                    (u.name.clone(), cred)
                })
                .collect(),
            info: ServerInfo {
                version: frontend::ServerOptions::default().server_version,
                port,
                max_packet_size: config.server.max_packet_size,
            },
            sessions: DashMap::new(),
            xid_prefix: xid_prefix(port),
            started: Instant::now(),
            questions: AtomicU64::new(0),
            executions: AtomicU64::new(0),
            plans: PlanCache::new(config.server.plan_cache_size),
            exec: engine::ExecOptions {
                max_buffered_rows: config.server.max_buffered_rows,
            },
            deadlocks: Arc::new(Detector::new(config.server.deadlock_check_ms)),
            config_path: std::sync::OnceLock::new(),
            shared: std::sync::OnceLock::new(),
            changes: Default::default(),
            migrations: crate::migration::Migrations::new(&config.server),
            branches: crate::branch::Branches::new(config.server.plan_cache_size),
            reshards: Default::default(),
        }
    }
}

/// Opens a [`GateSession`] per authenticated client.
pub struct Sessions(pub Arc<Gate>);

impl HandlerFactory for Sessions {
    type Handler = GateSession;

    fn credential(&self, user: &str) -> Option<frontend::Credential> {
        self.0
            .users
            .get(user)
            .cloned()
            .or_else(|| self.0.branches.credential(user))
    }

    fn requires_tls(&self, user: &str) -> bool {
        self.0.access.get(user).is_some_and(|a| a.require_tls)
    }

    async fn connect(
        &self,
        conn_id: u32,
        user: &str,
        database: Option<&str>,
    ) -> Result<GateSession, SqlError> {
        // A branch's user sees the branch's databases under main's keyspace names.
        // One whose branch is not served (deleted meanwhile) is refused, never sent to main.
        let branch = match self.0.users.contains_key(user) {
            true => None,
            false => Some(
                self.0
                    .branches
                    .serving_for(user)
                    .ok_or_else(|| error::access_denied(user, database.unwrap_or_default()))?,
            ),
        };
        let topo = branch
            .as_ref()
            .map_or_else(|| self.0.topology(), |b| b.topology.clone());
        let access = self.0.access.get(user).cloned().unwrap_or_default();
        if self.0.sessions.len() >= self.0.max_connections {
            return Err(error::too_many_connections());
        }
        if access.max_connections > 0 {
            let open = self
                .0
                .sessions
                .iter()
                .filter(|s| s.value().user == user)
                .count();
            if open >= access.max_connections {
                return Err(error::user_limit(user, access.max_connections));
            }
        }
        if let Some(db) = database {
            if topo.vschema.keyspace(db).is_none() {
                return Err(error::unknown_database(db));
            }
            if !access.allows(db) {
                return Err(error::access_denied(user, db));
            }
        }
        let entry = Arc::new(SessionEntry {
            user: user.to_string(),
            connected: Instant::now(),
            keyspace: Mutex::new(database.map(str::to_string)),
            running: Mutex::default(),
            backend: Mutex::new(Vec::new()),
            kill: Arc::new(Notify::new()),
            shards_touched: Default::default(),
            timed_out: Default::default(),
            ending: Default::default(),
            abandon: Notify::new(),
            abandoned: Mutex::new(None),
            transaction: Mutex::new(None),
            deadlock_victim: Default::default(),
            switch: Default::default(),
        });
        self.0.sessions.insert(conn_id, entry.clone());
        self.0.metrics.client_connections.inc();
        self.0.metrics.connections_accepted.inc();
        let mut session = Session::new(conn_id, user, database.map(str::to_string));
        session.read_target = access.read_target;
        // Nobody serves traffic from a branch: its DDL runs directly.
        if branch.is_none() {
            session.ddl_strategy = self.0.migrations.default_strategy;
        }
        if let Some(mode) = database
            .and_then(|db| topo.vschema.keyspace(db))
            .and_then(|k| k.transaction_mode.as_deref())
            .and_then(TxMode::parse)
        {
            session.keyspace_tx_mode = mode;
        }
        Ok(GateSession {
            gate: self.0.clone(),
            topo,
            access,
            last_plan: LastPlan::default(),
            last_rows: 0,
            note: None,
            session,
            tx: None,
            entry,
            statements: HashMap::new(),
            named_statements: HashMap::new(),
            pinned: Vec::new(),
            shard_prepared: None,
            replica_read: None,
            reading: None,
            branch,
        })
    }
}

/// One client session. It owns all of the session's state: its settings and SQL-visible
/// values ([`Session`]), its transaction, its prepared statements. `entry` is the part that
/// others read and signal (SHOW PROCESSLIST, KILL, timeouts, the deadlock detector).
pub struct GateSession {
    gate: Arc<Gate>,
    /// The topology of the statement being run (refreshed as each command starts).
    topo: Arc<Topology>,
    access: Arc<Access>,
    /// The keyspace and opcode of the last plan run, for the statement metrics.
    last_plan: LastPlan,
    /// Rows sent or affected by the last plan run (the query log's `rows`).
    last_rows: u64,
    /// A note for the warnings of the next result sent (EXPLAIN over several shards).
    note: Option<String>,
    session: Session,
    /// The open transaction, if any.
    tx: Option<Transaction>,
    entry: Arc<SessionEntry>,
    /// Prepared statements, by the id the client knows them by.
    statements: HashMap<u32, Arc<PreparedStatement>>,
    /// `PREPARE s FROM ...` statements, by their name (lower case).
    named_statements: HashMap<String, Arc<PreparedStatement>>,
    /// The connections that hold the session's named and table locks.
    pinned: Vec<run::Pinned>,
    /// The prepared execution being run, as its shard can run it prepared.
    shard_prepared: Option<ShardPrepared>,
    /// The statement being run is a read that the session sends to replicas (outside
    /// transactions), and whether the primary answers when no replica can.
    replica_read: Option<bool>,
    /// That read is planned and run where a reshard sent replica reads.
    reading: Option<Arc<crate::reshard::ReadRouting>>,
    /// The branch the session is served from; `None` for main.
    branch: Option<Arc<crate::branch::Serving>>,
}

impl GateSession {
    /// The topology the session's next command runs on: its branch's, or main's now.
    fn current_topology(&mut self) -> Arc<Topology> {
        match &self.branch {
            Some(b) => {
                // The branch's VSchema may have changed since the last command.
                if let Some(now) = self.gate.branches.serving(&b.name) {
                    self.branch = Some(now);
                }
                self.branch
                    .as_ref()
                    .expect("a branch session")
                    .topology
                    .clone()
            }
            None => self.gate.topology(),
        }
    }

    /// The plans of the session's branch, or main's.
    fn plans(&self) -> &crate::plan_cache::PlanCache {
        if let Some(reading) = &self.reading {
            return &reading.plans;
        }
        match &self.branch {
            Some(b) => &b.plans,
            None => &self.gate.plans,
        }
    }
}

/// Where the last plan ran, for the statement metrics.
struct LastPlan {
    /// Reused from statement to statement.
    keyspace: String,
    opcode: &'static str,
}

impl Default for LastPlan {
    fn default() -> Self {
        LastPlan {
            keyspace: String::new(),
            opcode: "None",
        }
    }
}

/// One statement to run: text from COM_QUERY, or a prepared statement with its values.
enum ClientStatement<'a> {
    Text(&'a str),
    /// From COM_STMT_EXECUTE: the statement, its parameters as literals, and as sent.
    Prepared(Arc<PreparedStatement>, Vec<Literal>, Vec<frontend::Param>),
}

/// A plan-cache miss to learn from once the statement's text is planned.
struct CacheMiss<'a> {
    key: String,
    template: &'a str,
    literals: &'a [Literal],
}

enum StatementError {
    /// Answer the client with this error.
    Sql(SqlError),
    /// The client connection itself failed.
    Client(std::io::Error),
}

impl From<SqlError> for StatementError {
    fn from(e: SqlError) -> Self {
        StatementError::Sql(e)
    }
}

impl From<std::io::Error> for StatementError {
    fn from(e: std::io::Error) -> Self {
        StatementError::Client(e)
    }
}

impl GateSession {}
