//! Deadlocks that span shards.
//!
//! Each shard's InnoDB breaks the lock cycles it can see. A cycle that runs through a shardgate
//! transaction, holding locks on one shard while it waits on another, is seen by no shard: its
//! transactions would each wait out `innodb_lock_wait_timeout` (50 s by default) and fail.
//!
//! When a statement of a transaction that holds connections on several shards has waited
//! `server.deadlock_check_ms`, the detector wakes. It reads the lock waits of every server where
//! a transaction holds a connection, joins them into one wait-for graph through the sessions
//! that hold connections on several shards, and breaks each cycle the way InnoDB would: the
//! transaction that changed the fewest rows (the youngest if they tie) is rolled back on every
//! shard, and its client gets 1213. Checks run one at a time, at most one per
//! `deadlock_check_ms` (and per 120 ms), and only while some statement waits: a statement that
//! does not wait pays for one timer, nothing more.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::topology::{ShardThread, Topology};

/// What the detector needs from the proxy whose sessions it watches (the gate's registry).
pub(crate) trait Watched: Send + Sync + 'static {
    fn topology(&self) -> Arc<Topology>;
    fn metrics(&self) -> &Metrics;
    /// The sessions with an open transaction.
    fn transactions(&self) -> Vec<TxSession>;
    /// Rolls back the transaction of session `victim`; its client gets 1213.
    fn break_deadlock(&self, victim: u32) -> impl Future<Output = ()> + Send;
}

/// How long a server has to answer the detector's questions.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// Cycles `SHOW SHARDGATE DEADLOCKS` remembers.
const REMEMBERED: usize = 16;
/// The shortest time from one check to the next. InnoDB fills its information_schema tables
/// (INNODB_TRX, INNODB_LOCK_WAITS) from a cache that it refreshes only when the last read is
/// more than 100 ms old: a reader that asks more often than that sees the same old picture for
/// ever (seen here: a cycle that was never found because checks came every 25 ms). See also
/// `Backends::lock_waits`, which makes several readers take turns.
const MIN_PAUSE: Duration = Duration::from_millis(120);

/// A transaction as the detector sees it: when it first reached a shard, and the shard
/// connections it holds (keyspace, shard, backend thread id).
#[derive(Debug, Clone)]
pub(crate) struct TxView {
    pub started: Instant,
    pub held: Vec<ShardThread>,
}

/// A session in a transaction, as one check sees it.
#[derive(Debug, Clone)]
pub(crate) struct TxSession {
    pub id: u32,
    pub view: TxView,
    /// The running statement's text (empty between statements).
    pub statement: String,
    /// The shard queries it is running now (keyspace, shard, backend thread id).
    pub running: Vec<ShardThread>,
}

/// A broken deadlock, as `SHOW SHARDGATE DEADLOCKS` lists it.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// Counts from 1 in each process.
    pub id: u64,
    pub at: SystemTime,
    /// The session whose transaction was rolled back.
    pub victim: u32,
    pub members: Vec<Member>,
}

/// One session of a cycle.
#[derive(Debug, Clone)]
pub struct Member {
    pub session: u32,
    /// `keyspace/shard` of every connection its transaction held.
    pub shards: Vec<String>,
    /// The statement that was waiting.
    pub statement: String,
    pub rows_modified: u64,
}

pub struct Detector {
    /// `None`: detection is off (`deadlock_check_ms = 0`).
    check_after: Option<Duration>,
    wake: Notify,
    /// Statements that have waited longer than `check_after` and still wait.
    waiting: AtomicUsize,
    recent: Mutex<VecDeque<Cycle>>,
    found: AtomicU64,
}

impl Detector {
    pub fn new(check_after_ms: u64) -> Self {
        Detector {
            check_after: (check_after_ms > 0).then(|| Duration::from_millis(check_after_ms)),
            wake: Notify::new(),
            waiting: AtomicUsize::new(0),
            recent: Mutex::new(VecDeque::new()),
            found: AtomicU64::new(0),
        }
    }

    /// Awaits `statement` (one shard's part of a statement in a transaction). Once it has
    /// waited `deadlock_check_ms` while its transaction holds connections on several shards
    /// (`several`, asked then: the parts of a statement on several shards join concurrently),
    /// wakes the detector and keeps it checking until the statement ends.
    pub(crate) async fn watch<F: Future>(
        &self,
        statement: F,
        several: impl Fn() -> bool,
    ) -> F::Output {
        let Some(after) = self.check_after else {
            return statement.await;
        };
        tokio::pin!(statement);
        loop {
            tokio::select! {
                biased;
                out = &mut statement => return out,
                () = tokio::time::sleep(after) => {}
            }
            if several() {
                break;
            }
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        self.wake.notify_one();
        statement.await
    }

    /// The last cycles broken, oldest first.
    pub fn recent(&self) -> Vec<Cycle> {
        self.recent
            .lock()
            .expect("deadlock log")
            .iter()
            .cloned()
            .collect()
    }

    fn remember(&self, mut cycle: Cycle) {
        cycle.id = self.found.fetch_add(1, Ordering::Relaxed) + 1;
        let mut recent = self.recent.lock().expect("deadlock log");
        if recent.len() == REMEMBERED {
            recent.pop_front();
        }
        recent.push_back(cycle);
    }
}

/// Counts a statement out of the waiting ones when it ends, however it ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The detector's task: sleeps until a statement has waited too long, then checks every
/// `deadlock_check_ms` while any still waits.
pub(crate) async fn serve(detector: Arc<Detector>, gate: Weak<impl Watched>) {
    let Some(period) = detector.check_after else {
        return;
    };
    let pause = period.max(MIN_PAUSE);
    loop {
        detector.wake.notified().await;
        while detector.waiting.load(Ordering::Acquire) > 0 {
            let Some(gate) = gate.upgrade() else {
                return;
            };
            let started = Instant::now();
            check(gate.as_ref(), &detector).await;
            gate.metrics()
                .deadlock_check_seconds
                .observe(started.elapsed().as_secs_f64());
            drop(gate);
            tokio::time::sleep_until((started + pause).into()).await;
        }
    }
}

/// The servers that sessions hold connections on, by address (shards of several keyspaces may
/// share one, and thread ids are a server's): each server's address and a shard to ask it
/// through, and the server of each (keyspace, shard).
type Servers = (
    Vec<(String, String, String)>,
    HashMap<(String, String), usize>,
);

fn servers(topo: &Topology, sessions: &[TxSession]) -> Servers {
    let mut servers: Vec<(String, String, String)> = Vec::new();
    let mut server_of = HashMap::new();
    for ShardThread {
        keyspace, shard, ..
    } in sessions.iter().flat_map(|s| &s.view.held)
    {
        let key = (keyspace.clone(), shard.clone());
        if server_of.contains_key(&key) {
            continue;
        }
        let Some(addr) = topo
            .vschema
            .keyspace(keyspace)
            .and_then(|ks| ks.shards.iter().find(|s| s.name == *shard))
            .map(|s| format!("{}:{}", s.primary.host, s.primary.port))
        else {
            continue;
        };
        let index = match servers.iter().position(|(a, _, _)| *a == addr) {
            Some(i) => i,
            None => {
                servers.push((addr, keyspace.clone(), shard.clone()));
                servers.len() - 1
            }
        };
        server_of.insert(key, index);
    }
    (servers, server_of)
}

/// One check: the lock waits of every server a transaction holds a connection on, the cycles
/// among them, and a victim for each.
async fn check(gate: &impl Watched, detector: &Detector) {
    let topo = gate.topology();
    let (servers, server_of) = servers(&topo, &gate.transactions());
    let thread_of = |t: &ShardThread| -> Option<Thread> {
        Some((
            *server_of.get(&(t.keyspace.clone(), t.shard.clone()))?,
            t.thread,
        ))
    };
    let answers = futures_util::future::join_all(
        servers
            .iter()
            .map(|(_, ks, shard)| topo.backends.lock_waits(ks, shard, ASK_TIMEOUT)),
    )
    .await;
    let mut graph = Graph::default();
    let mut rows_of: HashMap<Thread, u64> = HashMap::new();
    for (server, answer) in answers.into_iter().enumerate() {
        let Some(answer) = answer else {
            tracing::warn!(server = %servers[server].0, "deadlock check: the server did not report its lock waits");
            continue;
        };
        for (waiter, blocker) in answer.waits {
            graph.waits.push(((server, waiter), (server, blocker)));
        }
        for (thread, rows) in answer.rows_modified {
            rows_of.insert((server, thread), rows);
        }
    }
    // Read after the servers answered: a wait of one of our threads counts only if that
    // thread still runs a statement, so a picture that is older than it seems (InnoDB's cache)
    // cannot make up a cycle.
    let sessions = gate.transactions();
    let running: Vec<Thread> = sessions
        .iter()
        .flat_map(|s| &s.running)
        .filter_map(thread_of)
        .collect();
    for session in &sessions {
        let threads: Vec<Thread> = session.view.held.iter().filter_map(thread_of).collect();
        graph.sessions.push(SessionNode {
            id: session.id,
            started: session.view.started,
            rows_modified: threads.iter().filter_map(|t| rows_of.get(t)).sum(),
            threads,
        });
    }
    let ours: std::collections::HashSet<Thread> = graph
        .sessions
        .iter()
        .flat_map(|s| s.threads.iter().copied())
        .collect();
    graph
        .waits
        .retain(|(waiter, _)| !ours.contains(waiter) || running.contains(waiter));
    tracing::debug!(waits = ?graph.waits, sessions = ?graph.sessions, "deadlock check");
    for found in graph.cycles() {
        let members = found
            .members
            .iter()
            .filter_map(|id| {
                let session = sessions.iter().find(|s| s.id == *id)?;
                let node = graph.sessions.iter().find(|n| n.id == *id)?;
                Some(Member {
                    session: *id,
                    shards: session
                        .view
                        .held
                        .iter()
                        .map(|t| format!("{}/{}", t.keyspace, t.shard))
                        .collect(),
                    statement: session.statement.clone(),
                    rows_modified: node.rows_modified,
                })
            })
            .collect();
        tracing::warn!(victim = found.victim, sessions = ?found.members, "deadlock across shards: rolling back the victim's transaction");
        gate.metrics()
            .deadlocks
            .with_label_values(&["distributed"])
            .inc();
        detector.remember(Cycle {
            id: 0,
            at: SystemTime::now(),
            victim: found.victim,
            members,
        });
        gate.break_deadlock(found.victim).await;
    }
}

/// A server's thread: (server index, thread id).
type Thread = (usize, u32);

#[derive(Debug, Clone)]
struct SessionNode {
    id: u32,
    started: Instant,
    rows_modified: u64,
    threads: Vec<Thread>,
}

/// Lock waits of every server, and the sessions whose transactions tie threads of several
/// shards together.
#[derive(Debug, Default)]
struct Graph {
    /// (waiting thread, thread it waits for).
    waits: Vec<(Thread, Thread)>,
    sessions: Vec<SessionNode>,
}

/// A cycle found, with the session chosen to break it.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    victim: u32,
    /// The sessions on the cycle, in the order of its edges.
    members: Vec<u32>,
}

impl Graph {
    /// The cycles that no single server can see, each with its victim. A session's threads are
    /// tied together: a thread holding its locks waits, in effect, for the session's waiting
    /// thread. A cycle through such a tie spans connections that InnoDB sees as unrelated
    /// transactions. Cycles within one connection's waits are InnoDB's to break. Once a victim
    /// is chosen its threads leave the graph, so one check breaks every independent cycle once.
    fn cycles(&self) -> Vec<Found> {
        let owner: HashMap<Thread, usize> = self
            .sessions
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.threads.iter().map(move |t| (*t, i)))
            .collect();
        let mut gone = vec![false; self.sessions.len()];
        let mut found = Vec::new();
        loop {
            let alive = |t: &Thread| owner.get(t).is_none_or(|&s| !gone[s]);
            let mut next: HashMap<Thread, Vec<Thread>> = HashMap::new();
            for (w, b) in &self.waits {
                if alive(w) && alive(b) {
                    next.entry(*w).or_default().push(*b);
                }
            }
            // Ties: from each thread of a session to each of its threads that waits.
            let mut ties = Vec::new();
            for (i, s) in self.sessions.iter().enumerate() {
                if gone[i] {
                    continue;
                }
                for waiting in s.threads.iter().filter(|t| next.contains_key(t)) {
                    for holding in s.threads.iter().filter(|t| *t != waiting) {
                        ties.push((*holding, *waiting));
                    }
                }
            }
            for (from, to) in &ties {
                next.entry(*from).or_default().push(*to);
            }
            let cycle = ties
                .iter()
                .find_map(|(holding, waiting)| path(&next, *waiting, *holding));
            let Some(path) = cycle else {
                return found;
            };
            let mut members: Vec<usize> = Vec::new();
            for t in &path {
                if let Some(&s) = owner.get(t) {
                    if !members.contains(&s) {
                        members.push(s);
                    }
                }
            }
            // InnoDB's choice: the fewest rows changed; of equals, the youngest.
            let victim = *members
                .iter()
                .min_by_key(|&&s| {
                    let s = &self.sessions[s];
                    (s.rows_modified, std::cmp::Reverse(s.started))
                })
                .expect("a cycle through a tie has a session");
            gone[victim] = true;
            found.push(Found {
                victim: self.sessions[victim].id,
                members: members.iter().map(|&s| self.sessions[s].id).collect(),
            });
        }
    }
}

/// The threads on a shortest path from `from` to `to` (both included), if there is one.
fn path(next: &HashMap<Thread, Vec<Thread>>, from: Thread, to: Thread) -> Option<Vec<Thread>> {
    let mut came_from: HashMap<Thread, Thread> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(t) = queue.pop_front() {
        if t == to {
            let mut out = vec![t];
            let mut at = t;
            while at != from {
                at = came_from[&at];
                out.push(at);
            }
            out.reverse();
            return Some(out);
        }
        for n in next.get(&t).into_iter().flatten() {
            if *n != from && !came_from.contains_key(n) {
                came_from.insert(*n, t);
                queue.push_back(*n);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u32, age_ms: u64, rows: u64, threads: &[Thread]) -> SessionNode {
        SessionNode {
            id,
            started: Instant::now() - Duration::from_millis(age_ms),
            rows_modified: rows,
            threads: threads.to_vec(),
        }
    }

    /// Two sessions, each holding a row on server 0 and server 1 and waiting for the other's.
    #[test]
    fn two_sessions_in_opposite_orders() {
        let graph = Graph {
            // Session 1 waits on server 1 (thread 21) for session 2's thread 22; session 2
            // waits on server 0 (thread 12) for session 1's thread 11.
            waits: vec![((1, 21), (1, 22)), ((0, 12), (0, 11))],
            sessions: vec![
                session(1, 500, 2, &[(0, 11), (1, 21)]),
                session(2, 400, 1, &[(1, 22), (0, 12)]),
            ],
        };
        let found = graph.cycles();
        assert_eq!(found.len(), 1, "{found:?}");
        // Session 2 changed fewer rows.
        assert_eq!(found[0].victim, 2);
        let mut members = found[0].members.clone();
        members.sort();
        assert_eq!(members, [1, 2]);
    }

    #[test]
    fn ties_go_to_the_youngest() {
        let graph = Graph {
            waits: vec![((1, 21), (1, 22)), ((0, 12), (0, 11))],
            sessions: vec![
                session(1, 100, 1, &[(0, 11), (1, 21)]),
                session(2, 900, 1, &[(1, 22), (0, 12)]),
            ],
        };
        assert_eq!(graph.cycles()[0].victim, 1);
    }

    /// Three sessions over three servers, each waiting for the next.
    #[test]
    fn three_sessions_in_a_ring() {
        let graph = Graph {
            waits: vec![((1, 2), (1, 3)), ((2, 4), (2, 5)), ((0, 6), (0, 1))],
            sessions: vec![
                session(1, 300, 3, &[(0, 1), (1, 2)]),
                session(2, 200, 3, &[(1, 3), (2, 4)]),
                session(3, 100, 3, &[(2, 5), (0, 6)]),
            ],
        };
        let found = graph.cycles();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].victim, 3, "all equal: the youngest");
        assert_eq!(found[0].members.len(), 3);
    }

    /// A session waits for a lock that another holds while that one waits for nothing: no
    /// cycle, nothing broken.
    #[test]
    fn a_long_wait_is_not_a_deadlock() {
        let graph = Graph {
            waits: vec![((1, 21), (1, 99)), ((0, 12), (0, 11))],
            sessions: vec![
                session(1, 500, 2, &[(0, 11), (1, 21)]),
                session(2, 400, 1, &[(0, 12)]),
            ],
        };
        assert_eq!(graph.cycles(), []);
    }

    /// A cycle within one server's threads is InnoDB's: it needs no tie between threads.
    #[test]
    fn a_cycle_on_one_server_is_left_to_innodb() {
        let graph = Graph {
            waits: vec![((0, 1), (0, 2)), ((0, 2), (0, 1))],
            sessions: vec![session(1, 10, 0, &[(0, 1)]), session(2, 20, 0, &[(0, 2)])],
        };
        assert_eq!(graph.cycles(), []);
    }

    /// Two shards on one server: the cycle is on one server but runs through a session's two
    /// connections, which InnoDB sees as two transactions.
    #[test]
    fn two_shards_on_one_server() {
        let graph = Graph {
            waits: vec![((0, 2), (0, 3)), ((0, 4), (0, 1))],
            sessions: vec![
                session(1, 10, 5, &[(0, 1), (0, 2)]),
                session(2, 20, 1, &[(0, 3), (0, 4)]),
            ],
        };
        let found = graph.cycles();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].victim, 2);
    }

    /// A thread of another client may stand in the middle of a cycle.
    #[test]
    fn through_a_thread_of_another_client() {
        let graph = Graph {
            // Session 1 (server 1) waits for an outside thread 50, which waits for session
            // 2's thread; session 2 (server 0) waits for session 1.
            waits: vec![((1, 21), (1, 50)), ((1, 50), (1, 22)), ((0, 12), (0, 11))],
            sessions: vec![
                session(1, 500, 0, &[(0, 11), (1, 21)]),
                session(2, 400, 4, &[(1, 22), (0, 12)]),
            ],
        };
        let found = graph.cycles();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].victim, 1);
    }

    /// Two independent cycles are both broken in one check.
    #[test]
    fn independent_cycles() {
        let graph = Graph {
            waits: vec![
                ((1, 21), (1, 22)),
                ((0, 12), (0, 11)),
                ((1, 31), (1, 32)),
                ((0, 42), (0, 41)),
            ],
            sessions: vec![
                session(1, 10, 1, &[(0, 11), (1, 21)]),
                session(2, 10, 2, &[(1, 22), (0, 12)]),
                session(3, 10, 1, &[(0, 41), (1, 31)]),
                session(4, 10, 2, &[(1, 32), (0, 42)]),
            ],
        };
        let mut victims: Vec<u32> = graph.cycles().iter().map(|f| f.victim).collect();
        victims.sort();
        assert_eq!(victims, [1, 3]);
    }
}
