//! The registry of client sessions: what SHOW PROCESSLIST shows of each, KILL, and how a
//! session's running statement is stopped (its timeout, a shard marked down, a deadlock).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use frontend::SqlError;
use tokio::sync::Notify;

use crate::deadlock::{TxSession, TxView};
use crate::error;
use crate::metrics::Metrics;
use crate::topology::{ShardThread, Topology};

use super::{Gate, GateSession};

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

/// The statement a session runs, as SHOW PROCESSLIST shows it.
#[derive(Default)]
pub(super) struct Running {
    /// Its first 200 characters; the buffer is reused from statement to statement.
    pub(super) text: String,
    /// Since when it runs; `None` while the session idles (`text` is then stale).
    pub(super) since: Option<Instant>,
}

/// What SHOW PROCESSLIST shows of a session, and how KILL reaches it.
pub struct SessionEntry {
    pub(super) user: String,
    pub(super) connected: Instant,
    pub(super) keyspace: Mutex<Option<String>>,
    pub(super) running: Mutex<Running>,
    /// Backend connections running its statement now.
    pub(super) backend: Mutex<Vec<ShardThread>>,
    pub(super) kill: Arc<Notify>,
    /// Shard statements of the running client statement (the query log's `shards`).
    pub(super) shards_touched: std::sync::atomic::AtomicU32,
    /// Set when server.query_timeout_ms passed for the running statement.
    pub(super) timed_out: std::sync::atomic::AtomicBool,
    /// Set while the transaction ends on the shards. The query timeout spares
    /// it, as MySQL's max_execution_time spares COMMIT; a COMMIT abandoned because a shard went
    /// down has an unknown outcome there.
    pub(super) ending: EndingState,
    /// Wakes the running statement to give up on backends that do not answer: after its
    /// timeout and the KILL QUERY that followed, or when a shard it waits on is marked down
    /// (which `abandoned` names).
    pub(super) abandon: Notify,
    pub(super) abandoned: Mutex<Option<String>>,
    /// The open transaction as the deadlock detector sees it; `None` before it reaches a
    /// shard and after it ends.
    pub(super) transaction: Mutex<Option<TxView>>,
    /// Set when the deadlock detector chose this session's transaction to break a cycle: the
    /// statement it interrupted fails with 1213 and the transaction rolls back.
    pub(super) deadlock_victim: std::sync::atomic::AtomicBool,
    /// Where its statement stands with a reshard's switch: [`IDLE`], [`UNHELD`] (running a
    /// statement that did not wait for a switch: the switch waits for it) or [`HELD`].
    pub(super) switch: std::sync::atomic::AtomicU8,
}

pub(super) const IDLE: u8 = 0;
pub(super) const UNHELD: u8 = 1;
pub(super) const HELD: u8 = 2;

impl SessionEntry {
    pub(super) fn register(&self, keyspace: &str, shard: &str, thread: u32) {
        self.backend
            .lock()
            .expect("session entry")
            .push(ShardThread {
                keyspace: keyspace.to_string(),
                shard: shard.to_string(),
                thread,
            });
    }

    pub(super) fn unregister(&self, shard: &str, thread: u32) {
        self.backend
            .lock()
            .expect("session entry")
            .retain(|t| !(t.shard == shard && t.thread == thread));
    }

    /// Notes a shard connection the session's transaction has just reserved.
    pub(super) fn hold(&self, keyspace: &str, shard: &str, thread: u32) {
        self.transaction
            .lock()
            .expect("session entry")
            .get_or_insert_with(|| TxView {
                started: Instant::now(),
                held: Vec::new(),
            })
            .held
            .push(ShardThread {
                keyspace: keyspace.to_string(),
                shard: shard.to_string(),
                thread,
            });
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
                    Running {
                        text,
                        since: Some(_),
                    } => text.clone(),
                    Running { since: None, .. } => String::new(),
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
    /// The client sessions, by id: what SHOW PROCESSLIST and the status page show.
    pub fn processes(&self) -> Vec<Process> {
        let mut all: Vec<Process> = self
            .sessions
            .iter()
            .map(|item| {
                let e = item.value();
                let (statement, since) = match &*e.running.lock().expect("session entry") {
                    Running {
                        text,
                        since: Some(since),
                    } => (Some(text.clone()), *since),
                    Running { since: None, .. } => (None, e.connected),
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
                .any(|t| t.keyspace == keyspace && t.shard == shard);
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
}

/// Whether the session's transaction is ending on its shards, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    No,
    Rollback,
    Commit,
}

/// The session's [`Ending`], read by its timeout and by the statement that abandons backends.
#[derive(Default)]
pub(super) struct EndingState(AtomicU8);

impl EndingState {
    pub(super) fn set(&self, ending: Ending) {
        self.0.store(ending as u8, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> Ending {
        Self::decode(self.0.load(Ordering::Relaxed))
    }

    /// The state, reset to [`Ending::No`].
    pub(super) fn take(&self) -> Ending {
        Self::decode(self.0.swap(Ending::No as u8, Ordering::Relaxed))
    }

    fn decode(value: u8) -> Ending {
        match value {
            1 => Ending::Rollback,
            2 => Ending::Commit,
            _ => Ending::No,
        }
    }
}

/// How long a shard has to take a KILL QUERY.
pub(super) const KILL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a statement still waits for backends after its timeout's KILL QUERY.
pub(super) const ABANDON_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Stops the backend queries a session is running now (`KILL QUERY` on each backend thread,
/// sent on the shard's probe connection: a pool whose connections are all busy still takes it).
pub(super) async fn kill_backend_queries(topo: &Topology, entry: &SessionEntry) {
    let running: Vec<ShardThread> = entry.backend.lock().expect("session entry").clone();
    for ShardThread {
        keyspace,
        shard,
        thread,
    } in running
    {
        if !topo
            .backends
            .kill_query(&keyspace, &shard, thread, KILL_TIMEOUT)
            .await
        {
            tracing::warn!(%keyspace, %shard, thread, "KILL QUERY on a backend got no answer");
        }
    }
}

impl GateSession {
    /// `KILL [QUERY] id`: stops the session's running backend queries on every shard; `KILL id`
    /// (or `KILL CONNECTION id`) also closes it, rolling back its transaction.
    pub(super) async fn kill(&mut self, id: u64, connection: bool) -> Result<(), SqlError> {
        let entry = u32::try_from(id)
            .ok()
            .and_then(|id| self.gate.sessions.get(&id).map(|e| e.clone()))
            .ok_or_else(|| error::unknown_thread(id))?;
        if entry.user != self.entry.user {
            return Err(error::not_thread_owner(id));
        }
        kill_backend_queries(&self.topo, &entry).await;
        if connection {
            entry.kill.notify_one();
        }
        Ok(())
    }
}
