//! The glue: a client statement → session handling or plan → engine → client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use backend::Backends;
use engine::{Column, EngineError, Executor as _, Plan, RowSink, Value};
use frontend::{Handler, HandlerFactory, OkInfo, ResultWriter, SqlError, StatusFlags};
use planner::{Literal, Normalized};
use sqlparser::ast::{Set, SetExpr, ShowStatementFilter, Statement, Use};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::sync::Mutex;
use std::time::Instant;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use tokio::sync::Notify;
use tracing::debug;
use vschema::{Config, VSchema};

use crate::deadlock::{Detector, TxSession, TxView};
use crate::metrics::Metrics;
use crate::stats::Activity;
use crate::topology::Topology;

use crate::error;
use crate::plan_cache::{Cached, PlanCache};
use crate::prepared::{self, PreparedStatement};
use crate::session::Session;
use crate::sysvars::{self, ServerInfo};
use crate::transaction::{SavepointOp, Transaction, TxMode};

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
}

impl Access {
    fn allows(&self, keyspace: &str) -> bool {
        self.keyspaces
            .as_ref()
            .is_none_or(|k| k.iter().any(|k| k == keyspace))
    }
}

/// One client session, as SHOW PROCESSLIST shows it.
pub struct Process {
    pub id: u32,
    pub user: String,
    pub keyspace: Option<String>,
    /// The running statement (its first 200 characters); `None` while idle.
    pub statement: Option<String>,
    /// How long it has run, or idled.
    pub seconds: u64,
}

/// What SHOW PROCESSLIST shows of a session, and how KILL reaches it.
pub struct SessionEntry {
    user: String,
    connected: Instant,
    keyspace: Mutex<Option<String>>,
    /// The running statement (its first 200 characters) and since when; `None` while idle. The
    /// text's buffer is reused from statement to statement.
    running: Mutex<(String, Option<Instant>)>,
    /// Backend connections running its statement now: (keyspace, shard, backend thread id).
    backend: Mutex<Vec<(String, String, u32)>>,
    kill: Arc<Notify>,
    /// Shard statements of the running client statement (the query log's `shards`).
    shards_touched: std::sync::atomic::AtomicU32,
    /// Set when server.query_timeout_ms passed for the running statement.
    timed_out: std::sync::atomic::AtomicBool,
    /// Set while the transaction ends on the shards (`ENDING_*`). The query timeout spares
    /// it, as MySQL's max_execution_time spares COMMIT; a COMMIT abandoned because a shard went
    /// down has an unknown outcome there.
    ending: std::sync::atomic::AtomicU8,
    /// Wakes the running statement to give up on backends that do not answer: after its
    /// timeout and the KILL QUERY that followed, or when a shard it waits on is marked down
    /// (which `abandoned` names).
    abandon: Notify,
    abandoned: Mutex<Option<String>>,
    /// The open transaction as the deadlock detector sees it; `None` before it reaches a
    /// shard and after it ends.
    transaction: Mutex<Option<TxView>>,
    /// Set when the deadlock detector chose this session's transaction to break a cycle: the
    /// statement it interrupted fails with 1213 and the transaction rolls back.
    deadlock_victim: std::sync::atomic::AtomicBool,
}

impl SessionEntry {
    fn register(&self, keyspace: &str, shard: &str, thread: u32) {
        self.backend.lock().expect("session entry").push((
            keyspace.to_string(),
            shard.to_string(),
            thread,
        ));
    }

    fn unregister(&self, shard: &str, thread: u32) {
        self.backend
            .lock()
            .expect("session entry")
            .retain(|(_, s, t)| !(s == shard && *t == thread));
    }

    /// Notes a shard connection the session's transaction has just reserved.
    fn hold(&self, keyspace: &str, shard: &str, thread: u32) {
        self.transaction
            .lock()
            .expect("session entry")
            .get_or_insert_with(|| TxView {
                started: Instant::now(),
                held: Vec::new(),
            })
            .held
            .push((keyspace.to_string(), shard.to_string(), thread));
    }
}

impl crate::deadlock::Watched for Gate {
    fn topology(&self) -> Arc<Topology> {
        Gate::topology(self)
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The sessions whose transactions hold shard connections, as the deadlock detector sees
    /// them.
    fn transactions(&self) -> Vec<TxSession> {
        self.sessions
            .iter()
            .filter_map(|item| {
                let e = item.value();
                let view = e.transaction.lock().expect("session entry").clone()?;
                let statement = match &*e.running.lock().expect("session entry") {
                    (sql, Some(_)) => sql.clone(),
                    (_, None) => String::new(),
                };
                Some(TxSession {
                    id: *item.key(),
                    view,
                    statement,
                    running: e.backend.lock().expect("session entry").clone(),
                })
            })
            .collect()
    }

    /// Breaks a deadlock by its victim: the session's running shard queries are killed, and
    /// the session answers 1213 and rolls its transaction back on every shard.
    async fn break_deadlock(&self, session: u32) {
        let Some(entry) = self.sessions.get(&session).map(|e| e.value().clone()) else {
            return;
        };
        entry.deadlock_victim.store(true, Ordering::Release);
        kill_backend_queries(&self.topology(), &entry).await;
    }
}

impl Gate {
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

    /// The client sessions, by id: what SHOW PROCESSLIST and the status page show.
    pub fn processes(&self) -> Vec<Process> {
        let mut all: Vec<Process> = self
            .sessions
            .iter()
            .map(|item| {
                let e = item.value();
                let (statement, since) = match &*e.running.lock().expect("session entry") {
                    (sql, Some(since)) => (Some(sql.clone()), *since),
                    (_, None) => (None, e.connected),
                };
                Process {
                    id: *item.key(),
                    user: e.user.clone(),
                    keyspace: e.keyspace.lock().expect("session entry").clone(),
                    statement,
                    seconds: since.elapsed().as_secs(),
                }
            })
            .collect();
        all.sort_by_key(|p| p.id);
        all
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Client sessions open now.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Makes the statements now waiting on `keyspace/shard` give up with an error naming it.
    pub fn abandon_statements_on(&self, keyspace: &str, shard: &str) {
        for item in self.sessions.iter() {
            let entry = item.value();
            let waiting = entry
                .backend
                .lock()
                .expect("session entry")
                .iter()
                .any(|(k, s, _)| k == keyspace && s == shard);
            if waiting {
                *entry.abandoned.lock().expect("session entry") =
                    Some(format!("{keyspace}/{shard}"));
                entry.abandon.notify_waiters();
            }
        }
    }

    /// Ends every session at its next command (or now, if idle); their transactions roll back.
    pub fn kill_all(&self) {
        for item in self.sessions.iter() {
            item.value().kill.notify_one();
        }
    }

    /// The metrics in the Prometheus text format (`/metrics`).
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&self.plans, &self.topology())
    }

    /// The current keyspaces and pools.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.load_full()
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
                    let access = Access {
                        keyspaces: u.keyspaces.clone(),
                        read_only: u.read_only,
                        require_tls: u.require_tls,
                        max_connections: u.max_connections,
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
            xid_prefix: format!("sg-{port}-"),
            started: Instant::now(),
            questions: AtomicU64::new(0),
            executions: AtomicU64::new(0),
            plans: PlanCache::new(config.server.plan_cache_size),
            exec: engine::ExecOptions {
                max_buffered_rows: config.server.max_buffered_rows,
            },
            deadlocks: Arc::new(Detector::new(config.server.deadlock_check_ms)),
        }
    }
}

/// Sends a session's statements to the backends: through its transaction's reserved connections
/// when one is open, else through the pools. Counts statements per shard.
struct SessionExecutor<'a> {
    topo: &'a Topology,
    deadlocks: &'a Detector,
    entry: &'a SessionEntry,
    tx: Option<&'a Transaction>,
    /// The session's settings, applied on each pooled connection (transactions apply their own).
    prelude: Option<&'a str>,
    /// For a write in a transaction of its own: shards one after another, in key order.
    in_key_order: bool,
}

impl engine::Executor for SessionExecutor<'_> {
    fn in_key_order(&self) -> bool {
        self.in_key_order
    }

    async fn reserve_ids(
        &self,
        sequence: &vschema::SequenceRef,
        count: u64,
    ) -> Result<u64, EngineError> {
        self.topo.backends.reserve_ids(sequence, count).await
    }

    async fn execute<S: RowSink>(
        &self,
        keyspace: &str,
        shard: &str,
        sql: &str,
        sink: &mut S,
    ) -> Result<engine::Outcome, EngineError> {
        let started = Instant::now();
        if let Some(meter) = self.topo.meter(keyspace, shard) {
            if !meter.healthy() {
                return Err(EngineError::Backend {
                    shard: shard.to_string(),
                    message: "marked down: it did not answer the last health checks (retried every second)".into(),
                });
            }
        }
        self.entry.shards_touched.fetch_add(1, Ordering::Relaxed);
        debug!(
            keyspace,
            shard,
            sql,
            in_transaction = self.tx.is_some(),
            "send"
        );
        // The backend thread is registered while it runs, so KILL QUERY can reach it.
        let result = match self.tx {
            Some(tx) => {
                let (shared, thread, joined) = tx.connection(self.topo, keyspace, shard).await?;
                if joined {
                    self.entry.hold(keyspace, shard, thread);
                }
                let mut conn = shared.lock().await;
                self.entry.register(keyspace, shard, thread);
                let run = backend::run(&mut conn, shard, sql, sink);
                // Only a transaction holding locks on several shards can be part of a
                // deadlock that no shard sees.
                let result = self.deadlocks.watch(run, || tx.shard_count() > 1).await;
                self.entry.unregister(shard, thread);
                result
            }
            None => {
                let conn = self.topo.backends.connection(keyspace, shard).await?;
                let thread = conn.id();
                self.entry.register(keyspace, shard, thread);
                let result = backend::run_pooled(conn, shard, self.prelude, sql, sink).await;
                self.entry.unregister(shard, thread);
                result
            }
        };
        if let Some(meter) = self.topo.meter(keyspace, shard) {
            meter.record(started.elapsed());
        }
        result
    }
}

const ENDING_ROLLBACK: u8 = 1;
const ENDING_COMMIT: u8 = 2;

/// Runs of a write in a transaction of its own that a deadlock may end before it fails.
const IMPLICIT_ATTEMPTS: u32 = 3;

/// How long a shard has to take a KILL QUERY.
const KILL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a statement still waits for backends after its timeout's KILL QUERY.
const ABANDON_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Stops the backend queries a session is running now (`KILL QUERY` on each backend thread,
/// sent on the shard's probe connection: a pool whose connections are all busy still takes it).
async fn kill_backend_queries(topo: &Topology, entry: &SessionEntry) {
    let running: Vec<(String, String, u32)> = entry.backend.lock().expect("session entry").clone();
    for (keyspace, shard, thread) in running {
        if !topo
            .backends
            .kill_query(&keyspace, &shard, thread, KILL_TIMEOUT)
            .await
        {
            tracing::warn!(%keyspace, %shard, thread, "KILL QUERY on a backend got no answer");
        }
    }
}

/// Opens a [`GateSession`] per authenticated client.
pub struct Sessions(pub Arc<Gate>);

impl HandlerFactory for Sessions {
    type Handler = GateSession;

    fn credential(&self, user: &str) -> Option<frontend::Credential> {
        self.0.users.get(user).cloned()
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
        let topo = self.0.topology();
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
            running: Mutex::new((String::new(), None)),
            backend: Mutex::new(Vec::new()),
            kill: Arc::new(Notify::new()),
            shards_touched: Default::default(),
            timed_out: Default::default(),
            ending: Default::default(),
            abandon: Notify::new(),
            abandoned: Mutex::new(None),
            transaction: Mutex::new(None),
            deadlock_victim: Default::default(),
        });
        self.0.sessions.insert(conn_id, entry.clone());
        self.0.metrics.client_connections.inc();
        self.0.metrics.connections_accepted.inc();
        let mut session = Session::new(conn_id, user, database.map(str::to_string));
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
            last_plan: (String::new(), "None"),
            last_rows: 0,
            session,
            tx: None,
            entry,
            statements: HashMap::new(),
        })
    }
}

pub struct GateSession {
    gate: Arc<Gate>,
    /// The topology of the statement being run (refreshed as each command starts).
    topo: Arc<Topology>,
    access: Arc<Access>,
    /// The keyspace and opcode of the last plan run, for the statement metrics.
    last_plan: (String, &'static str),
    /// Rows sent or affected by the last plan run (the query log's `rows`).
    last_rows: u64,
    session: Session,
    /// The open transaction, if any.
    tx: Option<Transaction>,
    entry: Arc<SessionEntry>,
    /// Prepared statements, by the id the client knows them by.
    statements: HashMap<u32, Arc<PreparedStatement>>,
}

/// One statement to run: text from COM_QUERY, or a prepared statement with its values.
enum Work<'a> {
    Text(&'a str),
    Prepared(Arc<PreparedStatement>, Vec<Literal>),
}

/// A plan-cache miss to learn from once the statement's text is planned.
struct Learn<'a> {
    key: String,
    template: &'a str,
    literals: &'a [Literal],
}

/// Streams engine rows to the client.
struct ClientSink<'w, 'a> {
    out: &'w mut ResultWriter<'a>,
    started: bool,
    rows: u64,
    rename_first: Option<String>,
}

impl RowSink for ClientSink<'_, '_> {
    async fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
        self.started = true;
        match self.rename_first.take() {
            Some(name) => {
                let mut cols = columns.to_vec();
                if let Some(first) = cols.first_mut() {
                    *first = first
                        .clone()
                        .with_name(name.as_bytes())
                        .with_org_name(name.as_bytes());
                }
                Ok(self.out.columns(&cols).await?)
            }
            None => Ok(self.out.columns(&columns).await?),
        }
    }
    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        self.rows += 1;
        Ok(self.out.row(&row).await?)
    }
}

impl Handler for GateSession {
    async fn query(&mut self, sql: &str, out: &mut ResultWriter<'_>) -> std::io::Result<()> {
        // `a; b; c` from a client that allows it: one result each, the more-results flag on all
        // but the last, stopping at the first error.
        // Tokenizing for semicolons only when there can be more than one statement.
        let several = sql.trim_end().trim_end_matches(';').contains(';');
        // Split after resolving executable comments: a `;` may stand in one.
        let resolved;
        let parts = if several {
            resolved =
                planner::resolve_executable_comments(sql, self.gate.topology().server_kind());
            planner::split_statements(&resolved)
        } else {
            Vec::new()
        };
        if parts.len() > 1 && out.multi_statements() {
            for (i, part) in parts.iter().enumerate() {
                out.set_more_results(i + 1 < parts.len());
                if !self.one_query(Work::Text(part), out).await? {
                    break;
                }
            }
            return Ok(());
        }
        self.one_query(Work::Text(sql), out).await.map(|_| ())
    }

    async fn init_db(&mut self, database: &str) -> Result<(), SqlError> {
        self.use_keyspace(database)
    }

    fn status(&self) -> StatusFlags {
        let mut flags = self.session.status();
        if self.tx.is_some() {
            flags |= StatusFlags::SERVER_STATUS_IN_TRANS;
        }
        flags
    }

    /// A client that goes away mid-transaction has it rolled back on every shard it touched.
    async fn close(&mut self) {
        if let Some(tx) = self.take_tx() {
            let mode = tx.mode().name();
            let outcome = match tx.rollback(&self.topo).await {
                Ok(()) => "rollback_on_disconnect",
                Err(e) => {
                    tracing::warn!(error = %e, "rollback on disconnect failed");
                    "failed"
                }
            };
            self.gate
                .metrics
                .transactions
                .with_label_values(&[mode, outcome])
                .inc();
        }
        self.gate.metrics.client_connections.dec();
        self.gate.sessions.remove(&self.session.conn_id);
    }

    fn kill_signal(&self) -> Option<Arc<Notify>> {
        Some(self.entry.kill.clone())
    }

    async fn reset(&mut self) {
        if let Some(tx) = self.take_tx() {
            if let Err(e) = tx.rollback(&self.topo).await {
                tracing::warn!(error = %e, "rollback on COM_RESET_CONNECTION failed");
            }
        }
        let keyspace = self.session.keyspace.clone();
        self.session = Session::new(self.session.conn_id, &self.entry.user, keyspace);
        self.statements.clear();
    }

    async fn prepare(&mut self, id: u32, sql: &str) -> Result<frontend::Prepared, SqlError> {
        self.topo = self.gate.topology();
        let sql = planner::resolve_executable_comments(sql, self.topo.server_kind());
        let sql = sql.trim().trim_end_matches(';').trim_end();
        let stmt = Arc::new(PreparedStatement::new(sql));
        let params = u16::try_from(stmt.params).map_err(|_| error::too_many_placeholders())?;
        let columns = self.describe(sql).await?;
        self.statements.insert(id, stmt);
        Ok(frontend::Prepared { params, columns })
    }

    async fn execute(
        &mut self,
        id: u32,
        params: Vec<frontend::Param>,
        out: &mut ResultWriter<'_>,
    ) -> std::io::Result<()> {
        let Some(stmt) = self.statements.get(&id).cloned() else {
            return out.error(&error::unknown_statement(id)).await;
        };
        self.gate.executions.fetch_add(1, Ordering::Relaxed);
        // The frontend decoded exactly the statement's parameter count.
        let literals = params.iter().map(prepared::literal).collect();
        self.one_query(Work::Prepared(stmt, literals), out)
            .await
            .map(|_| ())
    }

    fn close_statement(&mut self, id: u32) {
        self.statements.remove(&id);
    }

    async fn field_list(&mut self, table: &str) -> Result<Vec<Column>, SqlError> {
        self.topo = self.gate.topology();
        // Where the table lives is what SHOW COLUMNS would ask; its columns come from any shard.
        let show = format!("SHOW COLUMNS FROM {table}");
        let parsed = Parser::parse_sql(&MySqlDialect {}, &show).map_err(error::syntax)?;
        let catalog = self.topo.catalog.load_full();
        let ctx = self.context(&catalog);
        let Plan::Route(mut route) =
            planner::plan(&parsed[0], &show, &ctx).map_err(error::from_plan)?
        else {
            return Err(error::unsupported("COM_FIELD_LIST on this table"));
        };
        route.query = format!(
            "SELECT * FROM {} LIMIT 0",
            route.query["SHOW COLUMNS FROM ".len()..].trim()
        );
        let gate = self.gate.clone();
        let topo = self.topo.clone();
        let mut sink = engine::Collected::default();
        let exec = SessionExecutor {
            topo: &topo,
            deadlocks: &gate.deadlocks,
            entry: &self.entry,
            tx: self.tx.as_ref(),
            prelude: None,
            in_key_order: false,
        };
        engine::execute(
            &Plan::Route(route),
            &topo.vschema,
            &exec,
            &mut sink,
            &gate.exec,
        )
        .await
        .map_err(|e| error::from_engine(&e))?;
        Ok(sink.columns)
    }

    fn statistics(&self) -> String {
        let uptime = self.gate.started.elapsed().as_secs();
        let questions = self.gate.questions.load(Ordering::Relaxed);
        let qps = questions as f64 / uptime.max(1) as f64;
        format!(
            "Uptime: {uptime}  Threads: {}  Questions: {questions}  Slow queries: 0  Opens: 0  Open tables: 0  Queries per second avg: {qps:.3}",
            self.gate.sessions.len()
        )
    }
}

enum Failure {
    /// Answer the client with this error.
    Sql(SqlError),
    /// The client connection itself failed.
    Client(std::io::Error),
}

impl From<SqlError> for Failure {
    fn from(e: SqlError) -> Self {
        Failure::Sql(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Client(e)
    }
}

impl GateSession {
    /// One statement, answered through `out`; false when it failed (its ERR is written).
    async fn one_query(
        &mut self,
        work: Work<'_>,
        out: &mut ResultWriter<'_>,
    ) -> std::io::Result<bool> {
        self.gate.questions.fetch_add(1, Ordering::Relaxed);
        self.topo = self.gate.topology();
        let started = Instant::now();
        self.last_plan.0.clear();
        self.last_plan.1 = "None";
        self.last_rows = 0;
        self.entry.shards_touched.store(0, Ordering::Relaxed);
        // The statement's text outlives the work it is moved into below.
        let prepared = match &work {
            Work::Prepared(p, _) => Some(p.clone()),
            Work::Text(_) => None,
        };
        let sql = match (&work, &prepared) {
            (Work::Text(sql), _) => *sql,
            (_, Some(p)) => p.sql.as_str(),
            (_, None) => "",
        };
        let sql_text = sql;
        {
            let shown = sql.char_indices().nth(200).map_or(sql, |(i, _)| &sql[..i]);
            let mut running = self.entry.running.lock().expect("session entry");
            running.0.clear();
            running.0.push_str(shown);
            running.1 = Some(Instant::now());
        }
        if !is_show_warnings(sql) {
            self.session.warnings.clear();
        }
        let timer = self.gate.query_timeout.map(|timeout| {
            let (topo, entry) = (self.topo.clone(), self.entry.clone());
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if entry.ending.load(Ordering::Relaxed) != 0 {
                    return;
                }
                entry.timed_out.store(true, Ordering::Relaxed);
                let killed =
                    tokio::time::timeout(ABANDON_AFTER, kill_backend_queries(&topo, &entry));
                let _ = killed.await;
                // A backend that does not even take the KILL: the statement stops waiting.
                tokio::time::sleep(ABANDON_AFTER).await;
                entry.abandon.notify_waiters();
            })
        });
        let entry = self.entry.clone();
        *entry.abandoned.lock().expect("session entry") = None;
        let mut lost_shard = None;
        let result = if self.access.read_only && writes(sql) {
            Err(Failure::Sql(error::read_only()))
        } else {
            let run = async {
                match work {
                    Work::Text(sql) => self.statement(sql, out).await,
                    Work::Prepared(p, literals) => self.execute_prepared(&p, literals, out).await,
                }
            };
            tokio::select! {
                result = run => result,
                () = entry.abandon.notified() => {
                    let shard = entry.abandoned.lock().expect("session entry").take();
                    // Connections of the abandoned statement were dropped mid-response: the
                    // pool closes them.
                    entry.backend.lock().expect("session entry").clear();
                    let committing = entry.ending.swap(0, Ordering::Relaxed) == ENDING_COMMIT;
                    Err(Failure::Sql(match shard {
                        Some(shard) if committing => error::commit_unknown(
                            &shard,
                            "marked down by the health check while the transaction committed",
                        ),
                        Some(shard) => {
                            let why = format!("shard {shard} was marked down by the health check while this statement ran there");
                            lost_shard = Some(why.clone());
                            error::from_engine(&EngineError::Lost {
                                shard,
                                message: "marked down by the health check while this statement ran there".into(),
                            })
                        }
                        None => error::bug("statement abandoned without a reason"),
                    }))
                }
            }
        };
        // The statement's connection to that shard is gone, and with it the shard's part of
        // any transaction: a client's transaction is rolled back everywhere (the rest must not
        // be committed without it); a statement's own transaction was dropped with the
        // statement. Either way nothing of it stays, and the error says so.
        let result = match (result, lost_shard) {
            (Err(Failure::Sql(_)), Some(why)) if self.tx.is_some() => {
                self.abort_transaction().await;
                Err(Failure::Sql(error::interrupted(&format!(
                    "{why}; the transaction was rolled back on every shard"
                ))))
            }
            (Err(Failure::Sql(_)), Some(why))
                if self
                    .entry
                    .transaction
                    .lock()
                    .expect("session entry")
                    .take()
                    .is_some() =>
            {
                Err(Failure::Sql(error::interrupted(&format!(
                    "{why}; the statement was rolled back on every shard"
                ))))
            }
            (other, _) => other,
        };
        let result = match timer {
            Some(timer) => {
                timer.abort();
                // The statement failed because its backend queries were killed at the deadline.
                match result {
                    Err(Failure::Sql(_)) if self.entry.timed_out.swap(false, Ordering::Relaxed) => {
                        Err(Failure::Sql(error::query_timeout()))
                    }
                    other => {
                        self.entry.timed_out.store(false, Ordering::Relaxed);
                        other
                    }
                }
            }
            None => result,
        };
        // The deadlock detector interrupted this statement to break a cycle across shards.
        let victim = self.entry.deadlock_victim.swap(false, Ordering::AcqRel);
        let result = match result {
            Err(Failure::Sql(_)) if victim => Err(Failure::Sql(error::deadlock())),
            other => other,
        };
        if let Err(Failure::Sql(e)) = &result {
            if e.code == error::ER_LOCK_DEADLOCK {
                if !victim {
                    self.gate
                        .metrics
                        .deadlocks
                        .with_label_values(&["shard"])
                        .inc();
                }
                self.abort_transaction().await;
            }
        }
        if let Err(Failure::Sql(e)) = &result {
            // SHOW WARNINGS after an error shows the error, as in MySQL.
            self.session.warnings = vec![vec![
                Value::Bytes(b"Error".to_vec()),
                Value::Int(i64::from(e.code)),
                Value::Bytes(e.message.clone().into_bytes()),
            ]];
        }
        self.entry.running.lock().expect("session entry").1 = None;
        {
            let mut keyspace = self.entry.keyspace.lock().expect("session entry");
            if *keyspace != self.session.keyspace {
                keyspace.clone_from(&self.session.keyspace);
            }
        }
        let code = match &result {
            Err(Failure::Sql(e)) => Some(e.code),
            _ => None,
        };
        self.account(sql_text, started.elapsed(), code);
        match result {
            Ok(()) => Ok(true),
            Err(Failure::Client(e)) => Err(e),
            Err(Failure::Sql(e)) => {
                debug!(code = e.code, message = %e.message, "statement failed");
                out.error(&e).await.map(|_| false)
            }
        }
    }

    /// Counts a finished statement in the metrics, and logs it when the query log or the slow
    /// query threshold asks for it.
    fn account(&self, sql: &str, elapsed: std::time::Duration, error: Option<u16>) {
        let metrics = &self.gate.metrics;
        let kind = crate::metrics::statement_kind(sql);
        let (keyspace, opcode) = (&self.last_plan.0, self.last_plan.1);
        metrics
            .statements
            .with_label_values(&[keyspace.as_str(), kind, opcode])
            .inc();
        metrics
            .statement_seconds
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
        if let Some(code) = error {
            metrics
                .errors
                .with_label_values(&[code.to_string().as_str()])
                .inc();
        }
        let slow = self.gate.slow_query.is_some_and(|t| elapsed >= t);
        if self.gate.query_log || slow {
            let normalized = planner::normalize(sql, false);
            let text = normalized.as_ref().map_or(sql, |n| n.text.as_str());
            tracing::info!(
                target: "shardgate::query",
                sql = text,
                keyspace = keyspace.as_str(),
                opcode,
                shards = self.entry.shards_touched.load(Ordering::Relaxed),
                rows = self.last_rows,
                duration_us = elapsed.as_micros() as u64,
                error = error.unwrap_or(0),
                slow,
                "statement"
            );
        }
    }

    /// `USE ks`, `USE ks:shard` (target one shard, like Vitess), `USE ks@primary`.
    fn use_keyspace(&mut self, name: &str) -> Result<(), SqlError> {
        let name = name.trim().trim_matches('`');
        let name = match name.split_once('@') {
            Some((ks, "primary")) => ks,
            Some((_, role)) => {
                return Err(error::unsupported(format!(
                    "USE ...@{role} (routing to replicas)"
                )))
            }
            None => name,
        };
        let (ks_name, shard) = match name.split_once(':') {
            Some((ks, shard)) => (ks, Some(shard)),
            None => (name, None),
        };
        let ks = self
            .topo
            .vschema
            .keyspace(ks_name)
            .ok_or_else(|| error::unknown_database(name))?;
        if !self.access.allows(ks_name) {
            return Err(error::access_denied(&self.entry.user, ks_name));
        }
        if let Some(shard) = shard {
            if !ks.shards.iter().any(|s| s.name == shard) {
                return Err(error::unknown_database(name));
            }
        }
        self.session.keyspace = Some(ks_name.to_string());
        self.session.target_shard = shard.map(str::to_string);
        self.session.keyspace_tx_mode = ks
            .transaction_mode
            .as_deref()
            .and_then(TxMode::parse)
            .unwrap_or(TxMode::Multi);
        Ok(())
    }

    async fn statement(&mut self, sql: &str, out: &mut ResultWriter<'_>) -> Result<(), Failure> {
        let sql = planner::resolve_executable_comments(sql, self.topo.server_kind());
        let sql = sql.trim().trim_end_matches(';').trim_end();
        if self.session.target_shard.is_none() {
            if let Some(n) = planner::normalize(sql, false) {
                let literals = n
                    .literals(sql, &[])
                    .ok_or_else(|| error::bug("normalised literal out of range"))?;
                return self.normalized(&n, literals, Some(sql), out).await;
            }
        }
        self.parsed_statement(sql, out, None).await
    }

    async fn execute_prepared(
        &mut self,
        stmt: &PreparedStatement,
        params: Vec<Literal>,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), Failure> {
        match &stmt.normalized {
            Some(n) if self.session.target_shard.is_none() => {
                let literals = n
                    .literals(&stmt.sql, &params)
                    .ok_or_else(error::wrong_arguments)?;
                self.normalized(n, literals, None, out).await
            }
            _ => {
                let text = stmt.text_with(&params)?;
                self.statement(&text, out).await
            }
        }
    }

    /// A normalised statement: its cached plan bound to `literals`, or else the statement planned
    /// from its text (`sql`, or the template with the literals spliced in), and the cache taught.
    async fn normalized(
        &mut self,
        n: &Normalized,
        literals: Vec<Literal>,
        sql: Option<&str>,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), Failure> {
        let keyspace = self.session.keyspace.as_deref().unwrap_or("");
        let mut key = String::with_capacity(n.text.len() + 1 + keyspace.len());
        key.push_str(&n.text);
        key.push('\0');
        key.push_str(keyspace);
        let started = Instant::now();
        let cached = self.gate.plans.get(&key);
        if let Some(Cached::Template(template)) = cached.as_deref() {
            if let Some(plan) = planner::bind(template, &literals, &self.topo.vschema) {
                self.gate.plans.hit();
                if self.tx.is_none() && !self.session.autocommit {
                    self.begin("START TRANSACTION");
                }
                let result = self.run(&plan, out, None).await;
                self.gate
                    .activity
                    .record_statement(&n.text, started.elapsed());
                return result;
            }
        }
        self.gate.plans.miss();
        let text = match sql {
            Some(sql) => std::borrow::Cow::Borrowed(sql),
            None => std::borrow::Cow::Owned(
                planner::substitute(&n.text, &literals).ok_or_else(error::wrong_arguments)?,
            ),
        };
        let learn = cached.is_none().then_some(Learn {
            key,
            template: &n.text,
            literals: &literals,
        });
        let result = self.parsed_statement(&text, out, learn).await;
        self.gate
            .activity
            .record_statement(&n.text, started.elapsed());
        result
    }

    /// Teaches the plan cache the template of a statement just planned from its text: kept only
    /// if, bound to this statement's literals, it gives the very plan the text gave.
    fn learn(&self, learn: Learn<'_>, stmt: &Statement, plan: &Plan) {
        let cacheable = match stmt {
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => true,
            Statement::Query(q) => {
                matches!(q.body.as_ref(), SetExpr::Select(s) if !s.from.is_empty())
            }
            _ => false,
        };
        let template = cacheable
            .then(|| {
                let (text, share_lock) = split_share_lock(learn.template);
                let parsed = Parser::parse_sql(&MySqlDialect {}, text).ok()?;
                let [stmt] = parsed.as_slice() else {
                    return None;
                };
                let catalog = self.topo.catalog.load_full();
                let ctx = self.context(&catalog);
                let template = planner::plan(stmt, text, &ctx).ok()?;
                if share_lock {
                    with_share_lock(template).ok()
                } else {
                    Some(template)
                }
            })
            .flatten()
            .filter(|t| {
                planner::bind(t, learn.literals, &self.topo.vschema).as_ref() == Some(plan)
            });
        debug!(
            template = learn.template,
            cached = template.is_some(),
            "plan cache miss"
        );
        self.gate.plans.insert(
            learn.key,
            template.map_or(Cached::Uncacheable, |t| Cached::Template(Box::new(t))),
        );
    }

    /// The result columns of a statement being prepared, as a shard describes them; none for
    /// statements without a result or that cannot be described before they run.
    async fn describe(&self, sql: &str) -> Result<Vec<Column>, SqlError> {
        let text = split_share_lock(sql).0;
        let parsed = match Parser::parse_sql(&MySqlDialect {}, text) {
            Ok(parsed) => parsed,
            // A query or write the parser refuses would fail at every execution: fail the
            // prepare, as MySQL does. Other statements are left to their execution.
            Err(e) if planner::normalize(sql, true).is_some() => return Err(error::syntax(e)),
            Err(_) => return Ok(Vec::new()),
        };
        let [stmt] = parsed.as_slice() else {
            return Ok(Vec::new());
        };
        let catalog = self.topo.catalog.load_full();
        let ctx = self.context(&catalog);
        let (keyspace, query) = match planner::metadata_target(stmt, text, &ctx) {
            Ok(Some(target)) => target,
            Ok(None) | Err(planner::PlanError::NoDatabase) => return Ok(Vec::new()),
            Err(e @ planner::PlanError::Unsupported(_)) => {
                let planned = match self.plan_statement(stmt, text).await {
                    Ok(plan) => Ok(plan),
                    // A parameter the proxy itself would evaluate (a join condition across
                    // shards): planned with 0 in its place, since the columns of the result
                    // do not depend on its value.
                    Err(_) => self.plan_text(&with_zeros(text)).await,
                };
                match planned {
                    // A join across shards: each side describes its own columns.
                    Ok(Plan::Join(join)) => return self.describe_join(&join).await,
                    _ => return Err(error::from_plan(e)),
                }
            }
            Err(e) => return Err(error::from_plan(e)),
        };
        let shard = match &self.session.target_shard {
            Some(shard) => shard.clone(),
            None => match self.topo.vschema.keyspace(&keyspace) {
                Some(ks) => ks.shards[0].name.clone(),
                None => return Ok(Vec::new()),
            },
        };
        self.topo
            .backends
            .describe(&keyspace, &shard, &query)
            .await
            .map_err(|e| error::from_engine(&e))
    }

    /// The columns of a join across shards: its left query's and its right query's, as their
    /// keyspaces' first shards describe them.
    /// (Boxed: a join's left side may be a join.)
    fn describe_join<'a>(
        &'a self,
        join: &'a engine::Join,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<Column>, SqlError>> + Send + 'a>,
    > {
        Box::pin(async move {
            let first_shard = |keyspace: &str| {
                self.topo
                    .vschema
                    .keyspace(keyspace)
                    .map(|k| k.shards[0].name.clone())
                    .ok_or_else(|| error::unknown_database(keyspace))
            };
            let describe = |keyspace: String, query: String| async move {
                let shard = first_shard(&keyspace)?;
                self.topo
                    .backends
                    .describe(&keyspace, &shard, &query)
                    .await
                    .map_err(|e| error::from_engine(&e))
            };
            let left = match join.left.as_ref() {
                Plan::Route(left) => describe(left.keyspace.clone(), left.query.clone()).await?,
                Plan::Join(inner) => self.describe_join(inner).await?,
                _ => return Ok(Vec::new()),
            };
            let right_query = join
                .right
                .query
                .replace(engine::JoinRight::MATCHES, "NULL")
                .replace(engine::JoinRight::KEYS, "NULL");
            let right = describe(join.right.keyspace.clone(), right_query).await?;
            let width = right.len().saturating_sub(1);
            let joined = engine::JoinColumn::expand(&join.columns, left.len(), width)
                .iter()
                .filter_map(|c| match c {
                    engine::JoinColumn::Left(i) => left.get(*i).cloned(),
                    engine::JoinColumn::Right(i) => right.get(*i).cloned(),
                    _ => None,
                })
                .collect();
            // What the join's stages make of the joined row: projection, hidden columns dropped.
            engine::stage_output(&join.stages, joined).map_err(|e| error::from_engine(&e))
        })
    }

    async fn parsed_statement(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
        learn: Option<Learn<'_>>,
    ) -> Result<(), Failure> {
        if sql.is_empty() {
            return Err(error::empty_query().into());
        }
        // Statements the parser does not know: `USE ks:shard`, `SHOW SHARDGATE ...`.
        let lower = sql.to_ascii_lowercase();
        if let Some(name) = lower.strip_prefix("use ").map(|_| &sql[4..]) {
            self.use_keyspace(name)?;
            return self.ok(out).await;
        }
        if is_show_warnings(sql) {
            return self.show_warnings(&lower, out).await;
        }
        if lower.split_whitespace().take(2).eq(["show", "shardgate"]) {
            return self.show_shardgate(&lower, out).await;
        }
        if let Some(rest) = strip_vexplain(sql) {
            let plan = self.plan_text(rest).await?;
            let rows = plan
                .describe()
                .lines()
                .map(|l| vec![Value::Bytes(l.as_bytes().to_vec())])
                .collect();
            return self
                .local_rows(out, vec![sysvars::text_column("plan")], rows)
                .await;
        }
        // The parser does not know MariaDB's `LOCK IN SHARE MODE`: plan without it, send it along.
        let (sql, share_lock) = split_share_lock(sql);
        let mut statements = match Parser::parse_sql(&MySqlDialect {}, sql) {
            Ok(s) => s,
            // The parser does not know every SET MySQL takes (`SET a = 1, NAMES x COLLATE y`,
            // as sqlx sends); the assignments are read from the tokens instead.
            Err(_) if lower.starts_with("set ") && planner::set_assignments(sql).is_some() => {
                self.set(None, sql).await?;
                return self.ok(out).await;
            }
            Err(e) => return Err(error::syntax(e).into()),
        };
        if statements.len() != 1 {
            return Err(error::unsupported("several statements in one query").into());
        }
        let stmt = statements.remove(0);
        if share_lock && !matches!(stmt, Statement::Query(_)) {
            return Err(
                error::syntax("LOCK IN SHARE MODE after a statement that is not a SELECT").into(),
            );
        }
        match &stmt {
            Statement::Use(u) => {
                let name = match u {
                    Use::Object(n) | Use::Database(n) | Use::Schema(n) => n.to_string(),
                    _ => return Err(error::unsupported(format!("{stmt}")).into()),
                };
                self.use_keyspace(&name)?;
                return self.ok(out).await;
            }
            Statement::Set(set) => {
                self.set(Some(set), sql).await?;
                return self.ok(out).await;
            }
            Statement::StartTransaction { .. } => {
                // A new transaction commits the open one, as in MySQL.
                self.end_transaction(true).await?;
                let start = if sql
                    .get(..5)
                    .is_some_and(|w| w.eq_ignore_ascii_case("begin"))
                {
                    "START TRANSACTION"
                } else {
                    sql
                };
                self.begin(start);
                return self.ok(out).await;
            }
            Statement::Commit { chain: false, .. } => {
                self.end_transaction(true).await?;
                return self.ok(out).await;
            }
            Statement::Rollback {
                savepoint: None,
                chain: false,
            } => {
                self.end_transaction(false).await?;
                return self.ok(out).await;
            }
            Statement::Rollback {
                savepoint: Some(name),
                chain: false,
            } => {
                self.savepoint(sql, &name.value, SavepointOp::RollbackTo)
                    .await?;
                return self.ok(out).await;
            }
            Statement::Savepoint { name } => {
                self.savepoint(sql, &name.value, SavepointOp::Set).await?;
                return self.ok(out).await;
            }
            Statement::ReleaseSavepoint { name } => {
                self.savepoint(sql, &name.value, SavepointOp::Release)
                    .await?;
                return self.ok(out).await;
            }
            Statement::ShowDatabases { .. } => {
                let rows = self
                    .topo
                    .vschema
                    .keyspaces()
                    .filter(|k| self.access.allows(&k.name))
                    .map(|k| vec![Value::Bytes(k.name.clone().into_bytes())])
                    .collect();
                return self
                    .local_rows(out, vec![sysvars::text_column("Database")], rows)
                    .await;
            }
            Statement::ShowTables {
                full, show_options, ..
            } => return self.show_tables(*full, show_options, out).await,
            Statement::Kill { modifier, id } => {
                self.kill(
                    *id,
                    !matches!(modifier, Some(sqlparser::ast::KillType::Query)),
                )
                .await?;
                return self.ok(out).await;
            }
            Statement::ShowProcessList { .. } => return self.show_processlist(out).await,
            Statement::ShowVariable { variable }
                if variable.first().is_some_and(|v| {
                    ["index", "indexes", "keys"].contains(&v.value.to_ascii_lowercase().as_str())
                }) =>
            {
                // SHOW INDEX FROM t: planned like SHOW COLUMNS FROM t (any one shard has it).
                let lower = sql.to_ascii_lowercase();
                let at = [" from ", " in "]
                    .iter()
                    .filter_map(|k| lower.find(k).map(|i| i + k.len()))
                    .min()
                    .ok_or_else(|| error::syntax("SHOW INDEX needs FROM table"))?;
                let columns_sql = format!("SHOW COLUMNS FROM {}", &sql[at..]);
                let parsed =
                    Parser::parse_sql(&MySqlDialect {}, &columns_sql).map_err(error::syntax)?;
                let catalog = self.topo.catalog.load_full();
                let ctx = self.context(&catalog);
                let plan = match planner::plan(&parsed[0], &columns_sql, &ctx)
                    .map_err(error::from_plan)?
                {
                    Plan::Route(mut r) => {
                        r.query = format!(
                            "SHOW INDEX FROM {}",
                            r.query["SHOW COLUMNS FROM ".len()..].trim_start()
                        );
                        Plan::Route(r)
                    }
                    _ => return Err(error::unsupported("this SHOW INDEX").into()),
                };
                return self.run(&plan, out, None).await;
            }
            Statement::ShowVariables { global: false, .. } => {
                return self.show_variables(sql, out).await
            }
            Statement::Query(q) => {
                if let Some((columns, rows)) =
                    sysvars::answer(q, sql, &self.session, &self.gate.info)?
                {
                    return self.local_rows(out, columns, rows).await;
                }
            }
            _ => {}
        }
        let plan = match (&self.session.keyspace, &self.session.target_shard) {
            (Some(ks), Some(shard)) => Plan::Route(engine::Route {
                keyspace: ks.clone(),
                opcode: engine::Opcode::Destination {
                    shard: shard.clone(),
                },
                query: sql.to_string(),
                elsewhere: None,
            }),
            _ => self.plan_statement(&stmt, sql).await?,
        };
        let plan = if share_lock {
            with_share_lock(plan)?
        } else {
            plan
        };
        if let Some(learn) = learn {
            self.learn(learn, &stmt, &plan);
        }
        if is_ddl(&stmt) {
            // DDL commits the open transaction first, as in MySQL, and runs outside it.
            self.end_transaction(true).await?;
            let result = self.run(&plan, out, None).await;
            // A column name may now belong to another table than the plans made of it say.
            self.topo.forget_columns(plan.keyspaces());
            self.gate.plans.clear();
            return result;
        } else if self.tx.is_none() && !self.session.autocommit {
            self.begin("START TRANSACTION");
        }
        self.run(&plan, out, None).await
    }

    /// Opens a transaction; `start` is how each shard starts its part.
    fn begin(&mut self, start: &str) {
        let tx = self.new_transaction(start, self.session.effective_tx_mode());
        self.tx = Some(tx);
    }

    /// Takes the open transaction to end it: from here on no deadlock check counts it.
    fn take_tx(&mut self) -> Option<Transaction> {
        *self.entry.transaction.lock().expect("session entry") = None;
        self.tx.take()
    }

    fn new_transaction(&mut self, start: &str, mode: TxMode) -> Transaction {
        self.session.transactions += 1;
        let dtid = format!(
            "{}{}-{}",
            self.gate.xid_prefix, self.session.conn_id, self.session.transactions
        );
        Transaction::new(start, mode, self.session.prelude(), dtid)
    }

    /// An empty OK, with the status flags as they are after the statement (BEGIN sets
    /// in-transaction, COMMIT clears it).
    async fn ok(&self, out: &mut ResultWriter<'_>) -> Result<(), Failure> {
        out.set_status(self.status());
        Ok(out.ok(&OkInfo::default()).await?)
    }

    /// Ends the open transaction (if any) with COMMIT or ROLLBACK on every shard it touched.
    async fn end_transaction(&mut self, commit: bool) -> Result<(), SqlError> {
        let Some(tx) = self.take_tx() else {
            return Ok(());
        };
        self.finish(tx, commit)
            .await
            .map_err(|e| error::from_engine(&e))
    }

    /// Commits or rolls back a transaction on every shard it touched, and counts it.
    async fn finish(&self, tx: Transaction, commit: bool) -> Result<(), EngineError> {
        let mode = tx.mode().name();
        // Registered like a statement's backend queries, so that a shard marked down while it
        // ends the transaction abandons it rather than leaving the client waiting.
        let held = tx.participants();
        for (keyspace, shard, thread) in &held {
            self.entry.register(keyspace, shard, *thread);
        }
        let ending = if commit {
            ENDING_COMMIT
        } else {
            ENDING_ROLLBACK
        };
        self.entry.ending.store(ending, Ordering::Relaxed);
        let result = if commit {
            tx.commit(&self.topo).await
        } else {
            tx.rollback(&self.topo).await
        };
        self.entry.ending.store(0, Ordering::Relaxed);
        for (_, shard, thread) in &held {
            self.entry.unregister(shard, *thread);
        }
        let outcome = match (&result, commit) {
            (Err(_), _) => "failed",
            (Ok(()), true) => "commit",
            (Ok(()), false) => "rollback",
        };
        self.gate
            .metrics
            .transactions
            .with_label_values(&[mode, outcome])
            .inc();
        result
    }

    async fn savepoint(&mut self, sql: &str, name: &str, op: SavepointOp) -> Result<(), SqlError> {
        if self.tx.is_none() && !self.session.autocommit {
            self.begin("START TRANSACTION");
        }
        match &self.tx {
            Some(tx) => tx
                .savepoint(sql, name, op)
                .await
                .map_err(|e| error::from_engine(&e)),
            // Outside a transaction MySQL accepts SAVEPOINT and forgets it at once.
            None if op == SavepointOp::Set => Ok(()),
            None => Err(SqlError::new(
                1305,
                "42000",
                format!("SAVEPOINT {name} does not exist"),
            )),
        }
    }

    /// `SHOW [SESSION] VARIABLES [LIKE ...]` from a backend with the session's settings, with the
    /// variables that describe the server answered for shardgate itself.
    async fn show_variables(
        &mut self,
        sql: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), Failure> {
        let (columns, mut rows) = self.backend_statement(sql).await?;
        for row in &mut rows {
            let Some(Value::Bytes(name)) = row.first() else {
                continue;
            };
            let name = String::from_utf8_lossy(name).into_owned();
            if let Some(value) = sysvars::variable_text(&name, &self.session, &self.gate.info) {
                if let Some(slot) = row.get_mut(1) {
                    *slot = Value::Bytes(value.into_bytes());
                }
            }
        }
        self.local_rows(out, columns, rows).await
    }

    /// `KILL [QUERY] id`: stops the session's running backend queries on every shard; `KILL id`
    /// (or `KILL CONNECTION id`) also closes it, rolling back its transaction.
    async fn kill(&mut self, id: u64, connection: bool) -> Result<(), SqlError> {
        let unknown = || SqlError::new(1094, "HY000", format!("Unknown thread id: {id}"));
        let entry = u32::try_from(id)
            .ok()
            .and_then(|id| self.gate.sessions.get(&id).map(|e| e.clone()))
            .ok_or_else(unknown)?;
        if entry.user != self.entry.user {
            return Err(SqlError::new(
                1095,
                "HY000",
                format!("You are not owner of thread {id}"),
            ));
        }
        kill_backend_queries(&self.topo, &entry).await;
        if connection {
            entry.kill.notify_one();
        }
        Ok(())
    }

    async fn show_processlist(&mut self, out: &mut ResultWriter<'_>) -> Result<(), Failure> {
        let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let rows: Vec<Vec<Value>> = self
            .gate
            .processes()
            .into_iter()
            .map(|p| {
                vec![
                    Value::Int(i64::from(p.id)),
                    text(&p.user),
                    text("localhost"),
                    p.keyspace.as_deref().map_or(Value::NULL, text),
                    text(if p.statement.is_some() {
                        "Query"
                    } else {
                        "Sleep"
                    }),
                    Value::Int(p.seconds as i64),
                    text(""),
                    p.statement.as_deref().map_or(Value::NULL, text),
                ]
            })
            .collect();
        let mut columns = [
            "Id", "User", "Host", "db", "Command", "Time", "State", "Info",
        ]
        .map(sysvars::text_column)
        .to_vec();
        for i in [0, 5] {
            columns[i] = sysvars::int_column(["Id", "Time"][usize::from(i == 5)]);
        }
        self.local_rows(out, columns, rows).await
    }

    /// `SHOW WARNINGS [LIMIT n]` and `SHOW COUNT(*) WARNINGS`: the last statement's warnings,
    /// gathered from the shards that reported any.
    async fn show_warnings(
        &mut self,
        lower: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), Failure> {
        let warnings = self.session.warnings.clone();
        if lower.contains("count(*)") {
            let rows = vec![vec![Value::Int(warnings.len() as i64)]];
            return self
                .local_rows(
                    out,
                    vec![sysvars::int_column("@@session.warning_count")],
                    rows,
                )
                .await;
        }
        let limit = lower
            .split_whitespace()
            .skip_while(|w| *w != "limit")
            .nth(1)
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let columns = vec![
            sysvars::text_column("Level"),
            sysvars::int_column("Code"),
            sysvars::text_column("Message"),
        ];
        self.local_rows(out, columns, warnings.into_iter().take(limit).collect())
            .await
    }

    /// `SHOW SHARDGATE SHARDS` (with a live check of each primary) and `SHOW SHARDGATE VSCHEMA`.
    async fn show_shardgate(
        &mut self,
        lower: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), Failure> {
        let what = lower.split_whitespace().nth(2).unwrap_or_default();
        let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        match what {
            "shards" => {
                let mut rows = Vec::new();
                for ks in self.topo.vschema.keyspaces() {
                    for shard in &ks.shards {
                        let health = match tokio::time::timeout(
                            std::time::Duration::from_secs(2),
                            self.topo.backends.execute(
                                &ks.name,
                                &shard.name,
                                "DO 0",
                                &mut engine::NoRows,
                            ),
                        )
                        .await
                        {
                            Ok(Ok(_)) => "serving".to_string(),
                            Ok(Err(e)) => format!("unreachable: {e}"),
                            Err(_) => "unreachable: no answer within 2 s".to_string(),
                        };
                        rows.push(vec![
                            text(&ks.name),
                            text(&shard.name),
                            text(&shard.range.to_string()),
                            text(&shard.primary.to_string()),
                            text(&health),
                        ]);
                    }
                }
                let columns = ["Keyspace", "Shard", "KeyRange", "Primary", "Health"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "vschema" => {
                let mut rows = Vec::new();
                for ks in self.topo.vschema.keyspaces() {
                    for (name, table) in &ks.tables {
                        let (kind, column, vindex) = match table {
                            vschema::Table::Sharded { column, vindex, .. } => (
                                "sharded",
                                column.clone(),
                                format!("{} ({})", vindex.name, vindex.kind.name()),
                            ),
                            vschema::Table::Reference => {
                                ("reference", String::new(), String::new())
                            }
                            vschema::Table::Sequence => ("sequence", String::new(), String::new()),
                            vschema::Table::Unsharded => {
                                ("unsharded", String::new(), String::new())
                            }
                        };
                        rows.push(vec![
                            text(&ks.name),
                            text(name),
                            text(kind),
                            text(&column),
                            text(&vindex),
                        ]);
                    }
                }
                let columns = ["Keyspace", "Table", "Type", "Column", "Vindex"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "checksums" => {
                let table = lower.split_whitespace().nth(3).map(|t| t.trim_matches('`'));
                let rows = self.reference_checksums(table).await?;
                let columns = ["Keyspace", "Table", "Shard", "Checksum", "Differs"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "status" => {
                let (hits, misses, plans) = self.gate.plans.stats();
                let rows = [
                    ("Questions", self.gate.questions.load(Ordering::Relaxed)),
                    (
                        "Prepared_executions",
                        self.gate.executions.load(Ordering::Relaxed),
                    ),
                    ("Plan_cache_hits", hits),
                    ("Plan_cache_misses", misses),
                    ("Plan_cache_plans", plans as u64),
                    ("Sessions", self.gate.sessions.len() as u64),
                ]
                .map(|(name, v)| vec![text(name), text(&v.to_string())])
                .to_vec();
                let columns = ["Variable_name", "Value"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "deadlocks" => {
                let mut rows = Vec::new();
                for cycle in self.gate.deadlocks.recent() {
                    let at = cycle
                        .at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or_default();
                    for m in &cycle.members {
                        rows.push(vec![
                            text(&cycle.id.to_string()),
                            text(&format!("{at:.3}")),
                            text(&m.session.to_string()),
                            text(if m.session == cycle.victim {
                                "yes"
                            } else {
                                "no"
                            }),
                            text(&m.shards.join(",")),
                            text(&m.rows_modified.to_string()),
                            text(&m.statement),
                        ]);
                    }
                }
                let columns = [
                    "Deadlock",
                    "Time",
                    "Session",
                    "Victim",
                    "Shards",
                    "Rows_modified",
                    "Statement",
                ]
                .map(sysvars::text_column)
                .to_vec();
                self.local_rows(out, columns, rows).await
            }
            other => {
                Err(error::unsupported(format!("SHOW SHARDGATE {}", other.to_uppercase())).into())
            }
        }
    }

    /// `SHOW SHARDGATE CHECKSUMS [table]`: `CHECKSUM TABLE` of each reference table (or the
    /// one named) on every shard of its keyspace, with the shards whose checksum differs from
    /// the one most shards have marked: every copy of a reference table should be the same.
    async fn reference_checksums(&self, only: Option<&str>) -> Result<Vec<Vec<Value>>, SqlError> {
        let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let mut rows = Vec::new();
        for ks in self.topo.vschema.keyspaces() {
            if !self.access.allows(&ks.name) {
                continue;
            }
            if self
                .session
                .keyspace
                .as_ref()
                .is_some_and(|k| *k != ks.name)
                && only.is_some()
            {
                continue;
            }
            for (name, table) in &ks.tables {
                if *table != vschema::Table::Reference
                    || only.is_some_and(|t| !t.eq_ignore_ascii_case(name))
                {
                    continue;
                }
                let sql = format!("CHECKSUM TABLE `{}`", name.replace('`', "``"));
                let mut sums = Vec::new();
                for shard in &ks.shards {
                    let mut found = engine::Collected::default();
                    self.topo
                        .backends
                        .execute(&ks.name, &shard.name, &sql, &mut found)
                        .await
                        .map_err(|e| error::from_engine(&e))?;
                    let sum = match found.rows.first().and_then(|r| r.get(1)) {
                        Some(Value::NULL) | None => "NULL".to_string(),
                        Some(v) => v.as_sql(true).trim_matches('\'').to_string(),
                    };
                    sums.push((shard.name.clone(), sum));
                }
                // The checksum most shards have; without a majority every shard is suspect.
                let count = |sum: &String| sums.iter().filter(|(_, s)| s == sum).count();
                let majority = sums
                    .iter()
                    .map(|(_, sum)| sum)
                    .find(|sum| count(sum) * 2 > sums.len())
                    .cloned();
                for (shard, sum) in sums {
                    let differs = if majority.as_ref() == Some(&sum) {
                        "no"
                    } else {
                        "yes"
                    };
                    rows.push(vec![
                        text(&ks.name),
                        text(name),
                        text(&shard),
                        text(&sum),
                        text(differs),
                    ]);
                }
            }
        }
        Ok(rows)
    }

    /// Plans one statement without running it (`VEXPLAIN PLAN`).
    async fn plan_text(&self, sql: &str) -> Result<Plan, SqlError> {
        let mut statements = Parser::parse_sql(&MySqlDialect {}, sql).map_err(error::syntax)?;
        if statements.len() != 1 {
            return Err(error::unsupported("several statements in one query"));
        }
        let stmt = statements.remove(0);
        self.plan_statement(&stmt, sql).await
    }

    /// Plans a statement, loading the column lists it needs first.
    async fn plan_statement(&self, stmt: &Statement, sql: &str) -> Result<Plan, SqlError> {
        let mut loaded = Vec::new();
        loop {
            let catalog = self.topo.catalog.load_full();
            match planner::plan(stmt, sql, &self.context(&catalog)) {
                Err(planner::PlanError::NeedColumns(ks)) if !loaded.contains(&ks) => {
                    self.topo
                        .load_columns(&ks)
                        .await
                        .map_err(|e| error::from_engine(&e))?;
                    loaded.push(ks);
                }
                other => return other.map_err(error::from_plan),
            }
        }
    }

    fn context<'c>(&'c self, catalog: &'c planner::Catalog) -> planner::Context<'c> {
        planner::Context {
            vschema: &self.topo.vschema,
            keyspace: self.session.keyspace.as_deref(),
            catalog,
        }
    }

    async fn run(
        &mut self,
        plan: &Plan,
        out: &mut ResultWriter<'_>,
        rename_first: Option<String>,
    ) -> Result<(), Failure> {
        if let Plan::PullOut(p) = plan {
            return self.run_pull_out(p, out, rename_first).await;
        }
        if self.access.keyspaces.is_some() {
            if let Some(ks) = plan
                .keyspaces()
                .into_iter()
                .find(|k| !self.access.allows(k))
            {
                return Err(Failure::Sql(error::access_denied(&self.entry.user, ks)));
            }
        }
        let (keyspace, opcode) = crate::metrics::plan_labels(plan);
        self.last_plan.0.clear();
        self.last_plan.0.push_str(keyspace);
        self.last_plan.1 = opcode;
        let mut sink = ClientSink {
            out,
            started: false,
            rows: 0,
            rename_first,
        };
        let result = self.execute(plan, &mut sink).await;
        let started = sink.started;
        self.last_rows = sink.rows;
        out.set_status(self.status());
        match result {
            Ok(outcome) if started => {
                self.session.row_count = -1;
                self.session.warnings = outcome.warning_rows;
                Ok(out.finish_rows(outcome.warnings).await?)
            }
            Ok(outcome) => {
                self.last_rows = outcome.affected_rows;
                self.session.row_count = outcome.affected_rows as i64;
                self.session.warnings = outcome.warning_rows.clone();
                if outcome.last_insert_id != 0 {
                    self.session.last_insert_id = outcome.last_insert_id;
                }
                let info = OkInfo {
                    affected_rows: outcome.affected_rows,
                    last_insert_id: outcome.last_insert_id,
                    warnings: outcome.warnings,
                    info: outcome.info,
                };
                Ok(out.ok(&info).await?)
            }
            Err(EngineError::Client(e)) => Err(Failure::Client(e)),
            // An ERR packet may replace the next row of a result set already started.
            Err(e) => Err(Failure::Sql(error::from_engine(&e))),
        }
    }

    /// Runs a plan's statements through the session's transaction, or the pools. A write that
    /// may change rows in several places applies everywhere or nowhere: in autocommit it runs
    /// as a transaction of its own (run again after a deadlock: nothing of it was visible);
    /// inside the client's transaction each shard takes a savepoint before its part, and a
    /// failure undoes the parts that were done.
    async fn execute<S: RowSink>(
        &mut self,
        plan: &Plan,
        sink: &mut S,
    ) -> Result<engine::Outcome, EngineError> {
        if !plan.may_write_several() {
            return self.execute_in(self.tx.as_ref(), plan, sink, false).await;
        }
        if let Some(tx) = &self.tx {
            tx.begin_atomic();
            let result = self.execute_in(Some(tx), plan, sink, false).await;
            match tx.end_atomic(result.is_err()).await {
                Ok(()) => return result,
                Err(undo) => {
                    tracing::warn!(error = %undo, "a failed statement could not be undone on every shard: rolling its transaction back");
                    self.abort_transaction().await;
                    return result.map_err(|e| e.rolled_back());
                }
            }
        }
        let mut mode = self.session.effective_tx_mode();
        if mode == TxMode::Single {
            // One statement's own transaction may span shards: that is what it is for.
            mode = TxMode::Multi;
        }
        let mut attempt = 1;
        loop {
            let tx = self.new_transaction("START TRANSACTION", mode);
            let result = self.execute_in(Some(&tx), plan, sink, true).await;
            let ended = self.finish(tx, result.is_ok()).await;
            *self.entry.transaction.lock().expect("session entry") = None;
            match (result, ended) {
                (Ok(outcome), Ok(())) => return Ok(outcome),
                (Ok(_), Err(e)) => return Err(e),
                (Err(e), _)
                    if attempt < IMPLICIT_ATTEMPTS
                        && (e.is_deadlock()
                            || self.entry.deadlock_victim.swap(false, Ordering::AcqRel)) =>
                {
                    attempt += 1
                }
                (Err(e), _) => return Err(e),
            }
        }
    }

    async fn execute_in<S: RowSink>(
        &self,
        tx: Option<&Transaction>,
        plan: &Plan,
        sink: &mut S,
        in_key_order: bool,
    ) -> Result<engine::Outcome, EngineError> {
        let prelude = self.session.prelude();
        let executor = SessionExecutor {
            topo: &self.topo,
            deadlocks: &self.gate.deadlocks,
            entry: &self.entry,
            tx,
            prelude: prelude.as_deref(),
            in_key_order,
        };
        engine::execute(plan, &self.topo.vschema, &executor, sink, &self.gate.exec).await
    }

    /// Runs the subqueries, splices their results into the statement, then plans and runs it.
    /// (Boxed as a `Send` future: it and `run` call each other.)
    fn run_pull_out<'a, 'w: 'a>(
        &'a mut self,
        pull_out: &'a engine::PullOut,
        out: &'a mut ResultWriter<'w>,
        rename_first: Option<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failure>> + Send + 'a>> {
        Box::pin(async move {
            let gate = self.gate.clone();
            let topo = self.topo.clone();
            let prelude = self.session.prelude();
            let mut sql = pull_out.template.clone();
            for (i, subquery) in pull_out.subqueries.iter().enumerate() {
                let executor = SessionExecutor {
                    topo: &topo,
                    deadlocks: &gate.deadlocks,
                    entry: &self.entry,
                    tx: self.tx.as_ref(),
                    prelude: prelude.as_deref(),
                    in_key_order: false,
                };
                let splice = engine::splice(subquery, &topo.vschema, &executor, &gate.exec)
                    .await
                    .map_err(|e| match e {
                        EngineError::Client(e) => Failure::Client(e),
                        e => Failure::Sql(error::from_engine(&e)),
                    })?;
                sql = sql.replace(&engine::PullOut::marker(i), &splice);
            }
            let plan = self.plan_text(&sql).await?;
            self.run(&plan, out, rename_first).await
        })
    }

    /// A deadlock rolls the whole transaction back, as in MySQL: the shard that chose this
    /// session as its victim has rolled back its part, so the other shards' parts must not
    /// survive to be committed by the client's next COMMIT or BEGIN.
    async fn abort_transaction(&mut self) {
        if let Some(tx) = self.take_tx() {
            if let Err(e) = tx.rollback(&self.topo).await {
                tracing::warn!(error = %e, "rollback after a deadlock failed");
            }
        }
    }

    async fn local_rows(
        &mut self,
        out: &mut ResultWriter<'_>,
        columns: Vec<Column>,
        rows: Vec<Vec<Value>>,
    ) -> Result<(), Failure> {
        out.columns(&columns).await?;
        for row in rows {
            out.row(&row).await?;
        }
        self.session.row_count = -1;
        out.set_status(self.status());
        Ok(out.finish_rows(0).await?)
    }

    /// `SHOW [FULL] TABLES [FROM ks] [LIKE ..|WHERE ..]`: asked of the keyspace's first shard, with
    /// the column named after the keyspace rather than the shard's database.
    async fn show_tables(
        &mut self,
        full: bool,
        options: &sqlparser::ast::ShowStatementOptions,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), Failure> {
        let keyspace = match options
            .show_in
            .as_ref()
            .and_then(|s| s.parent_name.as_ref())
        {
            Some(name) => name.to_string(),
            None => self
                .session
                .keyspace
                .clone()
                .ok_or_else(|| SqlError::new(1046, "3D000", "No database selected"))?,
        };
        let ks = self
            .topo
            .vschema
            .keyspace(&keyspace)
            .ok_or_else(|| error::unknown_database(&keyspace))?;
        let filter = match options.filter_position.as_ref() {
            None => String::new(),
            Some(
                sqlparser::ast::ShowStatementFilterPosition::Suffix(f)
                | sqlparser::ast::ShowStatementFilterPosition::Infix(f),
            ) => match f {
                ShowStatementFilter::Like(_)
                | ShowStatementFilter::Where(_)
                | ShowStatementFilter::ILike(_) => format!(" {f}"),
                ShowStatementFilter::NoKeyword(_) => {
                    return Err(error::unsupported("SHOW TABLES with this filter").into())
                }
            },
        };
        let query = format!("SHOW {}TABLES{filter}", if full { "FULL " } else { "" });
        let opcode = if ks.sharded {
            engine::Opcode::Reference
        } else {
            engine::Opcode::Unsharded
        };
        let plan = Plan::Route(engine::Route {
            keyspace: ks.name.clone(),
            opcode,
            query,
            elsewhere: None,
        });
        self.run(&plan, out, Some(format!("Tables_in_{}", ks.name)))
            .await
    }

    /// `SET ...`: autocommit, transaction_mode and the character set are the proxy's own; other
    /// session variables are checked on a backend (so unknown ones get MySQL's error) and then
    /// applied on every backend connection that serves the session; user variables are evaluated
    /// once and carried the same way.
    /// SET, parsed (`set`) or only tokenized (`None`: read as assignments).
    async fn set(&mut self, set: Option<&Set>, sql: &str) -> Result<(), SqlError> {
        if let Some(set) = set {
            if matches!(set, Set::SetNames { .. } | Set::SetNamesDefault {}) {
                return Ok(());
            }
            if !matches!(
                set,
                Set::SingleAssignment { .. } | Set::MultipleAssignments { .. }
            ) {
                return Err(error::unsupported(format!("{set}")));
            }
        }
        let assignments = planner::set_assignments(sql)
            .ok_or_else(|| error::unsupported("this SET statement"))?;
        for (name, value) in assignments {
            let (global, var) = variable_name(&name);
            if global {
                return Err(error::unsupported("SET GLOBAL"));
            }
            match var.to_ascii_lowercase().as_str() {
                "autocommit" => {
                    let on = matches!(
                        value.trim().to_ascii_lowercase().as_str(),
                        "1" | "on" | "true" | "'on'" | "'1'"
                    );
                    if on && !self.session.autocommit {
                        // Turning autocommit on commits the open transaction.
                        self.end_transaction(true).await?;
                    }
                    self.session.autocommit = on;
                }
                "transaction_mode" => {
                    let mode = value
                        .trim()
                        .trim_matches(|c| c == '\'' || c == '"')
                        .to_string();
                    self.session.tx_mode = Some(TxMode::parse(&mode).ok_or_else(|| {
                        SqlError::new(
                            1231,
                            "42000",
                            format!(
                                "Variable 'transaction_mode' can't be set to the value of '{mode}'"
                            ),
                        )
                    })?);
                }
                // The backends always speak utf8mb4 to shardgate and shardgate to the client.
                "names"
                | "character_set_client"
                | "character_set_connection"
                | "character_set_results"
                | "collation_connection" => {}
                _ if var.starts_with('@') => {
                    let literal = self.evaluate(&value).await?;
                    self.session.remember(var, literal);
                }
                _ => {
                    // A value read from a variable (`SET sql_mode = @OLD_SQL_MODE`) is taken now:
                    // the shards' connections that replay the setting do not hold the variable.
                    let value = if value.contains('@') {
                        self.evaluate(&value).await?
                    } else {
                        value
                    };
                    // Checked by a backend with the session's settings so far; MySQL's error if not.
                    let check = format!("SET {var} = {value}");
                    self.backend_statement(&check).await?;
                    self.session.remember(var, value.clone());
                }
            }
        }
        Ok(())
    }

    /// Runs a statement on the default keyspace's first shard with the session's settings and
    /// returns its rows with their column definitions.
    async fn backend_statement(
        &self,
        sql: &str,
    ) -> Result<(Vec<Column>, Vec<Vec<Value>>), SqlError> {
        let catalog = self.topo.catalog.load_full();
        let ctx = self.context(&catalog);
        let ks = crate::select_default_keyspace(&ctx).map_err(error::from_plan)?;
        let shard = &ks.shards[0].name;
        let mut sink = engine::Collected::default();
        let prelude = self.session.prelude().unwrap_or_else(|| "DO 0".into());
        self.topo
            .backends
            .execute_with(&ks.name, shard, &prelude, sql, &mut sink)
            .await
            .map_err(|e| error::from_engine(&e))?;
        Ok((sink.columns, sink.rows))
    }

    /// A user variable's value, evaluated once, as a SQL literal.
    async fn evaluate(&self, expr: &str) -> Result<String, SqlError> {
        let (columns, rows) = self.backend_statement(&format!("SELECT {expr}")).await?;
        let value = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or(Value::NULL);
        let numeric = columns.first().is_some_and(|c| {
            use mysql_common::constants::ColumnType::*;
            matches!(
                c.column_type(),
                MYSQL_TYPE_TINY
                    | MYSQL_TYPE_SHORT
                    | MYSQL_TYPE_LONG
                    | MYSQL_TYPE_LONGLONG
                    | MYSQL_TYPE_INT24
                    | MYSQL_TYPE_DECIMAL
                    | MYSQL_TYPE_NEWDECIMAL
                    | MYSQL_TYPE_FLOAT
                    | MYSQL_TYPE_DOUBLE
            )
        });
        Ok(match value {
            Value::NULL => "NULL".into(),
            Value::Bytes(b) if numeric => String::from_utf8_lossy(&b).into_owned(),
            Value::Bytes(b) => {
                let mut hex = String::from("X'");
                for byte in b {
                    hex.push_str(&format!("{byte:02x}"));
                }
                // A binary literal would change the variable's type; convert back to text.
                format!("CONVERT({hex}' USING utf8mb4)")
            }
            other => other.as_sql(true),
        })
    }
}

/// `SESSION x` / `@@session.x` / `@@x` / `x` → (is it GLOBAL, the variable as `x`); user
/// variables keep their `@`.
/// Whether a statement writes (refused for read-only users): by its first keyword, and for
/// `WITH ...`, by the statement the parser finds.
fn writes(sql: &str) -> bool {
    match crate::metrics::statement_kind(sql) {
        "insert" | "update" | "delete" | "replace" | "create" | "alter" | "drop" | "truncate"
        | "rename" | "load" | "call" | "grant" | "revoke" | "lock" => true,
        "with" => Parser::parse_sql(&MySqlDialect {}, sql).is_ok_and(|s| match s.as_slice() {
            [Statement::Query(q)] => matches!(
                q.body.as_ref(),
                SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
            ),
            _ => true,
        }),
        _ => false,
    }
}

fn variable_name(name: &str) -> (bool, &str) {
    let name = name.trim();
    let lower = name.to_ascii_lowercase();
    for (prefix, global) in [
        ("global ", true),
        ("session ", false),
        ("local ", false),
        ("@@global.", true),
        ("@@session.", false),
        ("@@local.", false),
    ] {
        if lower.starts_with(prefix) {
            return (global, name[prefix.len()..].trim());
        }
    }
    if lower.starts_with("@@") {
        return (false, &name[2..]);
    }
    (false, name)
}

/// `VEXPLAIN [PLAN] <statement>` → the statement.
fn strip_vexplain(sql: &str) -> Option<&str> {
    let rest = sql
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("vexplain"))?;
    let rest = sql[rest.len()..].trim_start();
    let rest = match rest.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("plan") && rest[4..].starts_with(char::is_whitespace) => {
            rest[4..].trim_start()
        }
        _ => rest,
    };
    Some(rest)
}

/// `sql` with a `0` in place of each `?` parameter marker (found in `sql` itself).
fn with_zeros(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for at in planner::parameter_markers(sql) {
        out.push_str(&sql[copied..at]);
        out.push('0');
        copied = at + 1;
    }
    out.push_str(&sql[copied..]);
    out
}

fn is_show_warnings(sql: &str) -> bool {
    let lower = sql.trim().to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().take(3).collect();
    matches!(
        words.as_slice(),
        ["show", "warnings", ..] | ["show", "count(*)", "warnings"]
    )
}

/// `SELECT ... LOCK IN SHARE MODE` → (the SELECT, true).
fn split_share_lock(sql: &str) -> (&str, bool) {
    let trimmed = sql.trim_end();
    let lower = trimmed.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().rev().take(4).collect();
    if words == ["mode", "share", "in", "lock"] {
        let cut = lower.rfind("lock").unwrap_or(trimmed.len());
        (trimmed[..cut].trim_end(), true)
    } else {
        (sql, false)
    }
}

/// Puts `LOCK IN SHARE MODE` back on the statement every shard receives.
fn with_share_lock(plan: Plan) -> Result<Plan, SqlError> {
    Ok(match plan {
        Plan::Route(mut r) => {
            r.query.push_str(" LOCK IN SHARE MODE");
            Plan::Route(r)
        }
        Plan::Select(mut s) => {
            s.route.query.push_str(" LOCK IN SHARE MODE");
            Plan::Select(s)
        }
        _ => return Err(error::unsupported("LOCK IN SHARE MODE on this statement")),
    })
}

/// Statements MySQL runs in a transaction of their own, committing the open one first.
fn is_ddl(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::CreateTable(_)
            | Statement::AlterTable(_)
            | Statement::Drop { .. }
            | Statement::Truncate(_)
            | Statement::CreateIndex(_)
            | Statement::RenameTable(_)
    )
}
