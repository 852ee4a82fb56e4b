//! Online schema changes (`SET @@ddl_strategy = 'online'`): an `ALTER TABLE` becomes a
//! migration that runs on every shard of its keyspace without blocking writes. On each shard a
//! shadow table takes the new schema; rows are copied into it in primary-key chunks while a
//! change stream applies what is written meanwhile; then all shards cut over together (a short
//! hold of the keyspace's statements, the streams drained, the tables swapped by one RENAME
//! each) or none does. Records in the sidecar keyspace let a restarted proxy resume.
//!
//! Copying and streaming follow gh-ost's rules, so that they need no coordination: a chunk is
//! `INSERT IGNORE ... SELECT` (a row the stream already wrote is newer and stays), a streamed
//! change is a `REPLACE` or a delete by key (it overwrites what a chunk copied). The chunk's
//! SELECT share-locks its rows, so a change to them commits after the chunk does and reaches
//! the shadow after it.

mod shard;
pub(crate) mod store;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use engine::EngineError;
use sqlparser::ast::{AlterTableOperation, Statement};
use tokio::sync::{mpsc, oneshot};

use crate::gate::Gate;
use crate::topology::Topology;
use shard::ShardRun;
pub use store::{Record, ShardPart, Summary};

/// Rows per copy chunk.
const CHUNK: usize = 1000;
/// Cut-over attempts before the migration fails.
const CUTOVER_ATTEMPTS: u32 = 10;
/// How long a cut-over waits for the keyspace's transactions to end and for the streams to
/// drain before it lets statements go and tries again later.
const CUTOVER_WAIT: Duration = Duration::from_secs(2);

/// How `ALTER TABLE` runs in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DdlStrategy {
    /// As plain DDL on every shard.
    #[default]
    Direct,
    /// As a migration.
    Online,
}

impl DdlStrategy {
    pub fn parse(value: &str) -> Option<DdlStrategy> {
        match value.trim().to_ascii_lowercase().as_str() {
            "direct" | "" => Some(DdlStrategy::Direct),
            "online" | "vitess" | "gh-ost" => Some(DdlStrategy::Online),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DdlStrategy::Direct => "direct",
            DdlStrategy::Online => "online",
        }
    }
}

/// A migration running here.
struct Live {
    record: Mutex<Record>,
    cancelled: tokio::sync::watch::Sender<bool>,
    requests: mpsc::UnboundedSender<Request>,
    /// False while a ready migration waits to be told to cut over (a deploy's migrations cut
    /// over one after another once all are ready).
    go: tokio::sync::watch::Sender<bool>,
    /// Ready, and waiting for `go`.
    waiting: std::sync::atomic::AtomicBool,
}

/// The migrations this proxy runs.
pub struct Migrations {
    live: DashMap<String, Arc<Live>>,
    /// A session's strategy until it sets one (`[server] ddl_strategy`).
    pub default_strategy: DdlStrategy,
    /// How long a completed migration stays revertible (`[server] migration_retention_s`).
    retention: Duration,
    /// Rows per second each shard's copy may take (`[server] migration_copy_rate`; 0: no limit).
    copy_rate: u64,
}

fn unsupported(what: impl std::fmt::Display) -> EngineError {
    EngineError::Unsupported(format!("{what} as an online schema change"))
}

/// A new migration's id: time-ordered, unique to this process.
fn new_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed) ^ (std::process::id() << 12);
    format!("{:016x}{:08x}", nanos as u64, n)
}

/// The shadow table of migration `id`, and the name the old table keeps after cut-over.
pub fn shadow_names(id: &str) -> (String, String) {
    (format!("_sg_{id}_new"), format!("_sg_{id}_old"))
}

/// The ALTER that gives `statement`'s table's shadow its new schema: the statement rendered
/// with the shadow's name. Refuses what a copy cannot follow (renames).
fn shadow_alter(statement: &Statement, shadow: &str) -> Result<(String, String), EngineError> {
    let Statement::AlterTable(alter) = statement else {
        return Err(unsupported("a statement other than ALTER TABLE"));
    };
    for op in &alter.operations {
        match op {
            AlterTableOperation::RenameColumn { .. } => return Err(unsupported("RENAME COLUMN")),
            AlterTableOperation::RenameTable { .. } => return Err(unsupported("RENAME TO")),
            AlterTableOperation::ChangeColumn {
                old_name, new_name, ..
            } if !old_name.value.eq_ignore_ascii_case(&new_name.value) => {
                return Err(unsupported("CHANGE COLUMN to another name"))
            }
            _ => {}
        }
    }
    let table = alter
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .ok_or_else(|| unsupported("this table name"))?;
    let mut shadowed = alter.clone();
    shadowed.name =
        sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::with_quote('`', shadow)]);
    Ok((table, Statement::AlterTable(shadowed).to_string()))
}

impl Migrations {
    pub fn new(server: &vschema::ServerConfig) -> Migrations {
        Migrations {
            live: DashMap::new(),
            default_strategy: match server.online_ddl {
                true => DdlStrategy::Online,
                false => DdlStrategy::Direct,
            },
            retention: Duration::from_secs(server.migration_retention_s),
            copy_rate: server.migration_copy_rate,
        }
    }

    /// Starts `statement` (an ALTER TABLE on `keyspace`) as a migration: its id.
    pub async fn submit(
        &self,
        gate: &Arc<Gate>,
        keyspace: &str,
        statement: &Statement,
        sql: &str,
    ) -> Result<String, EngineError> {
        self.submit_with(gate, keyspace, statement, sql, true).await
    }

    /// [`Migrations::submit`]; unless `cut_over`, the migration waits once ready until
    /// [`Migrations::cut_over_now`].
    pub(crate) async fn submit_with(
        &self,
        gate: &Arc<Gate>,
        keyspace: &str,
        statement: &Statement,
        sql: &str,
        cut_over: bool,
    ) -> Result<String, EngineError> {
        if gate.shares_topology() {
            // The cut-over holds this proxy's statements only: another proxy's writes between
            // the drain and the swap would reach the old table and be lost.
            return Err(unsupported(
                "an ALTER TABLE with several proxies ([topology] etcd)",
            ));
        }
        if gate.reshards.moving(keyspace) {
            return Err(unsupported(format!(
                "an ALTER TABLE on keyspace {keyspace} while it is being resharded"
            )));
        }
        let id = new_id();
        let (shadow, _) = shadow_names(&id);
        let (table, _) = shadow_alter(statement, &shadow)?;
        let topo = gate.topology();
        let ks = topo
            .vschema
            .keyspace(keyspace)
            .ok_or_else(|| EngineError::Unsupported(format!("no keyspace {keyspace}")))?;
        // Refused at once, rather than failed later, on a shard whose binlog a stream cannot
        // follow.
        for shard in &ks.shards {
            let refused =
                |why: String| EngineError::Unsupported(format!("{why} (shard {})", shard.name));
            let opts = shard::opts(&topo, keyspace, &shard.name).map_err(refused)?;
            let mut conn = mysql_async::Conn::new(opts)
                .await
                .map_err(|e| refused(e.to_string()))?;
            changestream::check_settings(&mut conn)
                .await
                .map_err(|e| refused(format!("an online schema change: {e}")))?;
        }
        store::ensure_table(&topo).await?;
        let record = Record {
            id: id.clone(),
            keyspace: keyspace.to_string(),
            table,
            statement: sql.to_string(),
            state: "queued".into(),
            message: String::new(),
            parts: ks
                .shards
                .iter()
                .map(|s| ShardPart {
                    shard: s.name.clone(),
                    phase: "queued".into(),
                    ..ShardPart::default()
                })
                .collect(),
            age_secs: 0,
            since_cut_over: None,
        };
        store::save(&topo, &record).await?;
        self.start(gate, record, cut_over);
        Ok(id)
    }

    /// Whether migration `id` is ready and waiting to cut over.
    pub(crate) fn waiting(&self, id: &str) -> bool {
        self.live
            .get(id)
            .is_some_and(|l| l.waiting.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Lets a migration submitted without cut-over cut over once it is ready.
    pub(crate) fn cut_over_now(&self, id: &str) {
        if let Some(live) = self.live.get(id) {
            live.go.send_replace(true);
        }
    }

    /// A migration's state as recorded, with this proxy's live progress.
    pub(crate) async fn state(&self, topo: &Topology, id: &str) -> Result<String, EngineError> {
        Ok(self
            .list(topo, Some(id))
            .await?
            .pop()
            .map_or_else(|| "gone".to_string(), |r| r.state))
    }

    fn start(&self, gate: &Arc<Gate>, record: Record, cut_over: bool) {
        let (cancelled, _) = tokio::sync::watch::channel(false);
        let (requests, received) = mpsc::unbounded_channel();
        let (go, _) = tokio::sync::watch::channel(cut_over);
        let live = Arc::new(Live {
            record: Mutex::new(record.clone()),
            cancelled,
            requests,
            go,
            waiting: Default::default(),
        });
        self.live.insert(record.id.clone(), live.clone());
        tokio::spawn(run(Arc::downgrade(gate), live, received));
    }

    /// Resumes the migrations a stopped proxy left running (at start-up); those in `held`
    /// (a deploy's) wait once ready until [`Migrations::cut_over_now`].
    pub async fn resume(
        &self,
        gate: &Arc<Gate>,
        held: &std::collections::HashSet<String>,
    ) -> Result<usize, EngineError> {
        let topo = gate.topology();
        if crate::sidecar::home(&topo.vschema, "").is_err() {
            return Ok(0);
        }
        let mut resumed = 0;
        for record in store::load(&topo, None).await? {
            if record.streaming() && !self.live.contains_key(&record.id) {
                tracing::info!(id = %record.id, table = %record.table, "resuming a migration");
                let cut_over = !held.contains(&record.id);
                self.start(gate, record, cut_over);
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    /// Every migration, as recorded, with the live progress of those running here.
    pub async fn list(
        &self,
        topo: &Topology,
        only: Option<&str>,
    ) -> Result<Vec<Record>, EngineError> {
        let mut records = store::load(topo, only).await?;
        for record in &mut records {
            if let Some(live) = self.live.get(&record.id) {
                let now = live.record.lock().expect("migration lock").clone();
                record.state = now.state;
                record.message = now.message;
                record.parts = now.parts;
            }
        }
        Ok(records)
    }

    /// `ALTER SHARDGATE MIGRATION 'id' CANCEL`: stops it and drops its shadow tables; the
    /// table stays as it was.
    pub async fn cancel(&self, gate: &Arc<Gate>, id: &str) -> Result<(), EngineError> {
        if let Some(live) = self.live.get(id) {
            let state = live.record.lock().expect("migration lock").state.clone();
            if matches!(state.as_str(), "queued" | "running") {
                live.cancelled.send_replace(true);
                return Ok(());
            }
            return Err(EngineError::Unsupported(format!(
                "cancelling migration '{id}', which is {state} (REVERT MIGRATION undoes it)"
            )));
        }
        let topo = gate.topology();
        let mut record = store::load(&topo, Some(id))
            .await?
            .pop()
            .ok_or_else(|| EngineError::Unsupported(format!("no migration '{id}'")))?;
        match record.state.as_str() {
            "queued" | "running" => {
                // Recorded as running by a proxy that is gone: nothing runs it now.
                record.state = "cancelled".into();
                store::save(&topo, &record).await
            }
            state => Err(EngineError::Unsupported(format!(
                "cancelling migration '{id}', which is {state}"
            ))),
        }
    }

    /// `REVERT MIGRATION 'id'`: the old table, kept up to date since the cut-over, takes the
    /// table's place again on every shard (or on none).
    pub async fn revert(&self, id: &str) -> Result<(), EngineError> {
        let refused =
            |why: String| EngineError::Unsupported(format!("reverting migration '{id}': {why}"));
        let live = self
            .live
            .get(id)
            .map(|l| l.clone())
            .ok_or_else(|| refused("it is not complete and revertible on this proxy".into()))?;
        {
            let record = live.record.lock().expect("migration lock");
            if record.state != "complete" || record.parts.iter().any(|p| p.phase != "reverse") {
                return Err(refused(format!("it is {}", record.state)));
            }
        }
        let (reply, answer) = oneshot::channel();
        live.requests
            .send(Request::Revert(reply))
            .map_err(|_| refused("it ended".into()))?;
        answer
            .await
            .map_err(|_| refused("it ended".into()))?
            .map_err(refused)
    }

    /// `ALTER SHARDGATE MIGRATION 'id' RETRY`: a failed or cancelled migration runs again
    /// from the start.
    pub async fn retry(&self, gate: &Arc<Gate>, id: &str) -> Result<(), EngineError> {
        let topo = gate.topology();
        let mut record = store::load(&topo, Some(id))
            .await?
            .pop()
            .ok_or_else(|| EngineError::Unsupported(format!("no migration '{id}'")))?;
        if !matches!(record.state.as_str(), "failed" | "cancelled") || self.live.contains_key(id) {
            return Err(EngineError::Unsupported(format!(
                "retrying migration '{id}', which is {}",
                record.state
            )));
        }
        record.state = "queued".into();
        record.message.clear();
        for part in &mut record.parts {
            *part = ShardPart {
                shard: part.shard.clone(),
                phase: "queued".into(),
                ..ShardPart::default()
            };
        }
        store::save(&topo, &record).await?;
        self.start(gate, record, true);
        Ok(())
    }
}

/// Runs a migration to its end, recording how it ended: copies and cuts over (unless it has
/// already), then keeps the old tables following the new ones until a revert or the end of
/// the retention.
async fn run(gate: Weak<Gate>, live: Arc<Live>, mut requests: mpsc::UnboundedReceiver<Request>) {
    let id = live.record.lock().expect("migration lock").id.clone();
    let mut cancelled = live.cancelled.subscribe();
    let outcome = tokio::select! {
        outcome = forward(&gate, &live) => outcome,
        _ = cancelled.wait_for(|c| *c) => Err(Ended::Cancelled),
    };
    let Some(strong) = gate.upgrade() else { return };
    let topo = strong.topology();
    drop(strong);
    let reverse = match outcome {
        Ok(reverse) => reverse,
        Err(ended) => {
            let (state, message) = match ended {
                Ended::Cancelled => ("cancelled", String::new()),
                Ended::Failed(why) => {
                    tracing::warn!(%id, why, "migration failed");
                    ("failed", why)
                }
            };
            let record = live.record.lock().expect("migration lock").clone();
            shard::drop_shadows(&topo, &record).await;
            end(&gate, &topo, &live, state, message).await;
            return;
        }
    };
    save(&topo, &live).await;
    let (state, message) = follow_back(&gate, &topo, &live, reverse, &mut requests).await;
    end(&gate, &topo, &live, state, message).await;
}

/// Records how a migration ended and forgets it here.
async fn end(gate: &Weak<Gate>, topo: &Topology, live: &Live, state: &str, message: String) {
    let record = {
        let mut record = live.record.lock().expect("migration lock");
        record.state = state.into();
        if !message.is_empty() {
            record.message = message;
        }
        for part in &mut record.parts {
            if matches!(state, "cancelled" | "failed") || part.phase == "reverse" {
                part.phase = state.into();
            }
        }
        record.clone()
    };
    if let Err(e) = store::save(topo, &record).await {
        tracing::warn!(id = %record.id, error = %e, "could not record how a migration ended");
    }
    if let Some(gate) = gate.upgrade() {
        gate.migrations.live.remove(&record.id);
    }
}

/// A request to a migration's task, answered when done.
enum Request {
    Revert(oneshot::Sender<Result<(), String>>),
}

/// After the cut-over: the old tables follow the new ones until a revert swaps them back,
/// or the retention ends and they are dropped. How the migration ended.
async fn follow_back(
    gate: &Weak<Gate>,
    topo: &Topology,
    live: &Arc<Live>,
    mut reverse: Vec<shard::Reverse>,
    requests: &mut mpsc::UnboundedReceiver<Request>,
) -> (&'static str, String) {
    let retention = match gate.upgrade() {
        Some(gate) => gate.migrations.retention,
        None => return ("complete", String::new()),
    };
    let since = live.record.lock().expect("migration lock").since_cut_over;
    let left = retention.saturating_sub(Duration::from_secs(since.unwrap_or(0)));
    let retire_at = tokio::time::Instant::now() + left;
    let mut last_save = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(retire_at) => break,
            request = requests.recv() => match request {
                Some(Request::Revert(reply)) => {
                    let Some(strong) = gate.upgrade() else {
                        return ("complete", String::new());
                    };
                    match cut_over(&strong, topo, live, &mut reverse).await {
                        Ok((stall, _)) => {
                            let _ = reply.send(Ok(()));
                            let (new, _) = shadow_names(&live.record.lock().expect("migration lock").id);
                            return ("reverted", format!(
                                "reverted; writes held {} ms; the new table is kept as {new}",
                                stall.as_millis()
                            ));
                        }
                        Err(Ended::Failed(why)) => {
                            let _ = reply.send(Err(why));
                        }
                        Err(Ended::Cancelled) => {
                            let _ = reply.send(Err("cancelled".into()));
                        }
                    }
                }
                None => return ("complete", String::new()),
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for r in &mut reverse {
                    if let Err(why) = r.check() {
                        tracing::warn!(shard = %r.shard, why, "a migration's reverse stream stopped; it can no longer be reverted");
                        let mut record = live.record.lock().expect("migration lock");
                        record.message = format!("not revertible: {why}");
                        for part in &mut record.parts {
                            part.phase = "complete".into();
                        }
                        drop(record);
                        return ("complete", String::new());
                    }
                }
                if last_save.elapsed() >= Duration::from_secs(1) {
                    last_save = Instant::now();
                    save(topo, live).await;
                }
            }
        }
    }
    for r in reverse {
        if let Err(why) = r.retire().await {
            tracing::warn!(why, "could not drop a migration's old table");
        }
    }
    (
        "complete",
        "retention over: the old tables are dropped".into(),
    )
}

enum Ended {
    Cancelled,
    Failed(String),
}

impl From<String> for Ended {
    fn from(why: String) -> Self {
        Ended::Failed(why)
    }
}

/// Copies and streams on every shard, then cuts over; the shards' reverse streams. A
/// migration that cut over before the proxy restarted resumes its reverse streams.
async fn forward(gate: &Weak<Gate>, live: &Arc<Live>) -> Result<Vec<shard::Reverse>, Ended> {
    let upgrade = || {
        gate.upgrade()
            .ok_or_else(|| Ended::Failed("the proxy stopped".into()))
    };
    let (topo, rate) = {
        let gate = upgrade()?;
        (gate.topology(), gate.migrations.copy_rate)
    };
    let record = live.record.lock().expect("migration lock").clone();
    if record.state == "complete" {
        let mut reverse = Vec::new();
        for index in 0..record.parts.len() {
            reverse.push(shard::Reverse::resume(&topo, live.clone(), index).await?);
        }
        return Ok(reverse);
    }
    live.record.lock().expect("migration lock").state = "running".into();
    let statement = parse_alter(&record.statement)?;
    let (shadow, _) = shadow_names(&record.id);
    let (_, alter) = shadow_alter(&statement, &shadow).map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    for (index, part) in record.parts.iter().enumerate() {
        let run = ShardRun::start(&topo, live.clone(), index, part.clone(), &alter, rate).await?;
        runs.push(run.counting(adds_unique_key(&statement)));
    }
    // Until every copy is done and every stream has caught up with its shard.
    let mut last_save = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for run in &mut runs {
            run.check().await?;
        }
        if last_save.elapsed() >= Duration::from_secs(1) {
            last_save = Instant::now();
            save(&topo, live).await;
        }
        if runs.iter().all(ShardRun::ready) && *live.go.borrow() {
            break;
        }
        let waiting = runs.iter().all(ShardRun::ready);
        live.waiting
            .store(waiting, std::sync::atomic::Ordering::Relaxed);
    }
    live.waiting
        .store(false, std::sync::atomic::Ordering::Relaxed);
    save(&topo, live).await;
    let (stall, positions) = cut_over(&upgrade()?, &topo, live, &mut runs).await?;
    tracing::info!(id = %record.id, stall_ms = stall.as_millis() as u64, "migration cut over");
    {
        let mut r = live.record.lock().expect("migration lock");
        r.state = "complete".into();
        r.message = format!("cut over; writes held {} ms", stall.as_millis());
    }
    let mut reverse = Vec::new();
    for (run, position) in runs.into_iter().zip(positions) {
        reverse.push(run.reverse(position).await?);
    }
    Ok(reverse)
}

/// Whether an ALTER adds a unique key (or a primary key): rows that repeat it would be lost in
/// the new table, so the cut-over counts both tables' rows first.
fn adds_unique_key(statement: &Statement) -> bool {
    use sqlparser::ast::TableConstraint;
    let Statement::AlterTable(alter) = statement else {
        return false;
    };
    alter.operations.iter().any(|op| {
        matches!(
            op,
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::Unique(_) | TableConstraint::PrimaryKey(_),
                ..
            }
        )
    })
}

fn parse_alter(sql: &str) -> Result<Statement, String> {
    use sqlparser::dialect::MySqlDialect;
    let mut statements = sqlparser::parser::Parser::parse_sql(&MySqlDialect {}, sql)
        .map_err(|e| format!("the recorded statement no longer parses: {e}"))?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        _ => Err("the recorded statement is not one statement".into()),
    }
}

async fn save(topo: &Topology, live: &Live) {
    let record = live.record.lock().expect("migration lock").clone();
    if let Err(e) = store::save(topo, &record).await {
        tracing::warn!(id = %record.id, error = %e, "could not record a migration's progress");
    }
}

/// Holds the keyspace's statements, waits for its transactions to end and each stream to
/// reach its shard's position, then swaps the tables on every shard; on any failure, swaps
/// back those already swapped. Tries again later when transactions do not end in time. How
/// long statements were held, and each shard's position at the swap.
async fn cut_over<S: shard::Side>(
    gate: &Arc<Gate>,
    topo: &Topology,
    live: &Arc<Live>,
    sides: &mut [S],
) -> Result<(Duration, Vec<changestream::Position>), Ended> {
    let keyspace = live.record.lock().expect("migration lock").keyspace.clone();
    let shards: Vec<String> = sides.iter().map(|r| r.shard().to_string()).collect();
    let mut last = String::new();
    for _ in 0..CUTOVER_ATTEMPTS {
        let held = Held {
            topo,
            keyspace: &keyspace,
            shards: shards
                .iter()
                .filter(|s| topo.backends.hold_remote(&keyspace, s))
                .collect(),
        };
        if held.shards.len() < shards.len() {
            // A primary change holds a shard: after it.
            drop(held);
            last = "a shard's primary was changing".into();
            tokio::time::sleep(CUTOVER_WAIT).await;
            continue;
        }
        let stall = Instant::now();
        let deadline = stall + CUTOVER_WAIT;
        let busy = || {
            shards
                .iter()
                .any(|s| topo.backends.primary_in_use(&keyspace, s) > 0)
        };
        while busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if busy() {
            drop(held);
            last = "transactions on the keyspace did not end in time".into();
            tracing::warn!(keyspace, "a cut-over attempt: {last}");
            tokio::time::sleep(CUTOVER_WAIT).await;
            continue;
        }
        let mut positions = Vec::new();
        for side in sides.iter_mut() {
            match side.drain(deadline).await {
                Ok(p) => positions.push(p),
                Err(why) => {
                    last = why;
                    break;
                }
            }
        }
        if positions.len() < sides.len() {
            tracing::warn!(keyspace, "a cut-over attempt: {last}");
            drop(held);
            tokio::time::sleep(CUTOVER_WAIT).await;
            continue;
        }
        let mut swapped = Vec::new();
        let mut failure = None;
        for (i, side) in sides.iter_mut().enumerate() {
            match side.swap().await {
                Ok(()) => swapped.push(i),
                Err(why) => {
                    failure = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = failure {
            let mut back = true;
            for &i in &swapped {
                if let Err(e) = sides[i].swap_back().await {
                    back = false;
                    tracing::error!(shard = %sides[i].shard(), error = %e, "could not swap a migrated table back");
                }
            }
            // A table whose metadata lock was taken (ER_LOCK_WAIT_TIMEOUT): later, again.
            if back && why.contains("1205") {
                tracing::warn!(why, "a cut-over attempt waited too long for a table lock");
                last = why;
                drop(held);
                tokio::time::sleep(CUTOVER_WAIT).await;
                continue;
            }
            return Err(Ended::Failed(format!("cut-over failed: {why}")));
        }
        topo.forget_columns([keyspace.as_str()]);
        gate.plans.clear();
        drop(held);
        return Ok((stall.elapsed(), positions));
    }
    Err(Ended::Failed(format!(
        "no cut-over after {CUTOVER_ATTEMPTS} attempts: {last}"
    )))
}

/// Shards whose statements a cut-over holds: released when dropped, however the cut-over ends
/// (a cancelled migration's future is dropped mid-way).
struct Held<'a> {
    topo: &'a Topology,
    keyspace: &'a str,
    shards: Vec<&'a String>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        for shard in &self.shards {
            self.topo.backends.release_remote(self.keyspace, shard);
        }
    }
}
