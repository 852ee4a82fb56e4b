//! Our own pool of shard connections ([`crate::wire::Conn`]), one per shard.
//!
//! mysql_async's pool hands every returned connection to a recycler task through a channel and
//! re-checks the socket on each checkout: a task wake-up and a boxed future per statement, on the
//! path every query takes. Here a checkout is a semaphore permit and a pop from a mutex-guarded
//! stack (most recently used first, so warm connections are reused), and a return is a push. The
//! cleanup mysql_async did in its recycler happens only where it is needed: a connection whose
//! last statement did not finish is closed, and one that may still be in a transaction is rolled
//! back in a task of its own before it goes back.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::wire::{Conn, ConnOpts, WireError};

/// A boxed future borrowing a connection (what [`ShardPool::on_probe`] runs).
pub type BoxFuture<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'c>>;

/// A connection idle for longer than this is pinged before it is handed out: its server may
/// have gone away meanwhile. Under load connections come back within microseconds and skip it.
const STALE_AFTER: Duration = Duration::from_secs(1);
/// Idle connections older than this are closed rather than reused, down to the pool's `min`.
const IDLE_TTL: Duration = Duration::from_secs(60);

pub struct ShardPool {
    opts: ConnOpts,
    /// Connections kept open however long they idle.
    min: usize,
    idle: Mutex<Vec<Idle>>,
    /// One permit per connection that may exist in use; idle ones hold none.
    permits: Arc<Semaphore>,
    /// Connections open now, idle or in use: what `min` is compared with.
    open: AtomicUsize,
    max: usize,
    /// Callers waiting for a connection (all `max` are in use).
    waiting: AtomicUsize,
    /// The health check's own connection: outside the pool, so that a pool whose connections
    /// are all busy still answers, and a busy pool is not taken for a dead shard.
    probe: tokio::sync::Mutex<Option<Conn>>,
    /// The server's version, from the handshake of the first connection opened.
    version: OnceLock<(u16, u16, u16)>,
}

/// A pool's state, for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub in_use: usize,
    pub idle: usize,
    pub waiting: usize,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl ShardPool {
    pub fn new(opts: ConnOpts, min: usize, max: usize) -> Arc<Self> {
        Arc::new(ShardPool {
            opts,
            min,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1))),
            open: AtomicUsize::new(0),
            max: max.max(1),
            waiting: AtomicUsize::new(0),
            probe: tokio::sync::Mutex::new(None),
            version: OnceLock::new(),
        })
    }

    /// Pings the server on the probe connection (opening it first if needed); false when the
    /// server does not answer within `timeout`. A probe that failed is closed.
    pub async fn probe(&self, timeout: Duration) -> bool {
        self.on_probe(timeout, |conn| Box::pin(conn.ping()))
            .await
            .is_some()
    }

    /// Runs `job` on the probe connection (opening it first if needed), within `timeout`;
    /// `None` when it failed or took longer, and then the probe is closed. The probe is for
    /// the proxy's own short questions (health, lock waits, KILL QUERY), which must be
    /// answered even while every pooled connection is busy.
    pub async fn on_probe<T>(
        &self,
        timeout: Duration,
        job: impl for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, WireError>>,
    ) -> Option<T> {
        let Ok(mut probe) = tokio::time::timeout(timeout, self.probe.lock()).await else {
            return None;
        };
        let run = async {
            if probe.is_none() {
                *probe = Some(self.connect().await.ok()?);
            }
            job(probe.as_mut()?).await.ok()
        };
        let answer = tokio::time::timeout(timeout, run).await.ok().flatten();
        if answer.is_none() {
            // Dropped without a goodbye: the server may not be answering.
            probe.take();
        }
        answer
    }

    /// How its connections log in.
    pub fn opts(&self) -> &ConnOpts {
        &self.opts
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            in_use: self.max - self.permits.available_permits(),
            idle: self.idle.lock().expect("pool lock").len(),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A connection for the caller alone until the returned guard is dropped. Waits (FIFO) while
    /// `max` connections are in use.
    pub async fn get(self: &Arc<Self>) -> Result<PooledConn, WireError> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let permit = self.permits.clone().acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                permit.expect("the pool's semaphore is never closed")
            }
        };
        loop {
            let idle = self.idle.lock().expect("pool lock").pop();
            let Some(Idle { mut conn, since }) = idle else {
                break;
            };
            let age = since.elapsed();
            let expired = age > IDLE_TTL && self.open() > self.min;
            if expired || (age > STALE_AFTER && conn.ping().await.is_err()) {
                self.open.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            return Ok(self.guard(conn, permit));
        }
        let conn = self.connect().await?;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(self.guard(conn, permit))
    }

    async fn connect(&self) -> Result<Conn, WireError> {
        let conn = Conn::connect(&self.opts).await?;
        let _ = self.version.set(conn.server_version());
        Ok(conn)
    }

    /// The server's version, once a connection to it has been opened.
    pub fn server_version(&self) -> Option<(u16, u16, u16)> {
        self.version.get().copied()
    }

    fn guard(self: &Arc<Self>, conn: Conn, permit: OwnedSemaphorePermit) -> PooledConn {
        PooledConn {
            conn: Some(conn),
            pool: self.clone(),
            permit: Some(permit),
            finished: true,
        }
    }

    fn put(&self, conn: Conn) {
        self.idle.lock().expect("pool lock").push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Drops the idle connections without a goodbye (their server may be gone).
    pub fn drop_idle(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().expect("pool lock"));
        self.open.fetch_sub(idle.len(), Ordering::Relaxed);
    }

    /// Closes the idle connections; those in use close or come back when their guards drop.
    pub async fn close_idle(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().expect("pool lock"));
        for Idle { conn, .. } in idle {
            self.open.fetch_sub(1, Ordering::Relaxed);
            conn.quit().await;
        }
    }
}

/// A connection taken from a [`ShardPool`]; it goes back when dropped, if it is fit to.
pub struct PooledConn {
    conn: Option<Conn>,
    pool: Arc<ShardPool>,
    /// Released only once the connection is back (or closed), so the pool never holds more
    /// than `max` connections.
    permit: Option<OwnedSemaphorePermit>,
    /// False while a statement's response is being read: a guard dropped then (the client went
    /// away, KILL, an error in the sink) has unread packets on its connection.
    finished: bool,
}

impl PooledConn {
    /// Marks the start (false) and the complete end (true) of a statement's response.
    pub fn set_finished(&mut self, finished: bool) {
        self.finished = finished;
    }

    /// Clears what a session left on the connection (settings, user variables, named and table
    /// locks) before it goes back to the pool; false when that failed, and then the connection
    /// is closed instead.
    pub async fn reset_or_close(&mut self) -> bool {
        let reset = self.reset().await.is_ok();
        if !reset {
            self.set_finished(false);
        }
        reset
    }

    /// False when a statement's response was left unread: the connection cannot take another.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl Deref for PooledConn {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // Deferred statements never reached the server.
        conn.discard_deferred();
        if conn.is_broken() {
            // Its server may have gone (or restarted): the idle ones would fail their next
            // statement, so they are closed rather than handed out.
            self.pool.drop_idle();
        }
        if !self.finished || conn.is_broken() {
            // Closed as it drops: the server rolls back what it left open.
            self.pool.open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if conn.in_transaction() == Some(false) {
            self.pool.put(conn);
            return;
        }
        // The last statement failed (its transaction state is unknown) or a transaction is
        // open: roll back before anyone else gets the connection.
        let pool = self.pool.clone();
        let permit = self.permit.take();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            pool.open.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        runtime.spawn(async move {
            if conn.query_drop("ROLLBACK").await.is_ok() {
                pool.put(conn);
            } else {
                pool.open.fetch_sub(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
}
