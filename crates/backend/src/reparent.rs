//! Planned reparent: a shard's primary hands over to one of its replicas while the shard's
//! statements wait, so that clients see a pause and no errors.
//!
//! 1. The shard is held: new statements for its primary wait (up to the keyspace's
//!    `failover_buffer_ms`).
//! 2. Statements and transactions already on the old primary finish, for up to half that time;
//!    those still running then are killed (their clients get an error, and nothing of their
//!    transaction commits).
//! 3. The old primary becomes read-only, and its last GTID position is read.
//! 4. The chosen replica applies everything up to that position.
//! 5. It is promoted; the other replicas and the old primary replicate from it.
//! 6. The pools swap roles in place and the held statements go to the new primary.
//!
//! Any failure before step 5 makes the old primary writable again and releases the statements
//! to it: the shard is as it was.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vschema::BackendAddr;

use crate::wire::{Conn, WireError};
use crate::{int, text, Backends, Replica, Replicas, Server, ShardPool, ShardServers};

#[derive(Debug, thiserror::Error)]
pub enum ReparentError {
    #[error("no shard {0}")]
    UnknownShard(String),
    #[error("{to} is not a serving replica of {shard} (its replicas: {replicas})")]
    NotAReplica {
        shard: String,
        to: String,
        replicas: String,
    },
    #[error("the primary of {0} is already changing")]
    Busy(String),
    #[error("{server}: {error}")]
    Server { server: String, error: WireError },
    #[error("the primary of {0} answers: no failover")]
    Answers(String),
    #[error("no replica of {shard} received every transaction the others did ({positions}); not failing over, to lose nothing")]
    NoCandidate { shard: String, positions: String },
    #[error("{replica} did not apply the old primary's writes (up to GTID {position}) within {waited:?}; {shard} keeps its primary")]
    CatchUp {
        shard: String,
        replica: String,
        position: String,
        waited: Duration,
    },
}

/// What a reparent did.
#[derive(Debug, Clone)]
pub struct Report {
    pub shard: String,
    pub from: BackendAddr,
    pub to: BackendAddr,
    /// How long the shard's statements were held.
    pub held: Duration,
    /// Connections still busy on the old primary after the grace period, killed.
    pub killed: usize,
    /// Replicas that could not be pointed at the new primary (they need a person).
    pub not_repointed: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: primary {} -> {}; statements held {} ms; {} busy connection(s) killed",
            self.shard,
            self.from,
            self.to,
            self.held.as_millis(),
            self.killed
        )?;
        if !self.not_repointed.is_empty() {
            write!(f, "; not repointed: {}", self.not_repointed.join(", "))?;
        }
        Ok(())
    }
}

/// Whether `to` names `addr`: its `host:port`, or its URL.
fn names(addr: &BackendAddr, to: &str) -> bool {
    let to = to.strip_prefix("mysql://").unwrap_or(to);
    let to = to.rsplit_once('@').map_or(to, |(_, rest)| rest);
    let to = to.split_once('/').map_or(to, |(hostport, _)| hostport);
    to == format!("{}:{}", addr.host, addr.port)
}

/// A string literal for SQL.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The statements that differ between MariaDB and MySQL 8.
struct Flavor {
    mariadb: bool,
}

impl Flavor {
    /// MariaDB's statement, or MySQL 8's.
    fn pick(&self, mariadb: &'static str, mysql: &'static str) -> &'static str {
        if self.mariadb {
            mariadb
        } else {
            mysql
        }
    }

    fn position(&self) -> &'static str {
        self.pick(
            "SELECT @@GLOBAL.gtid_binlog_pos",
            "SELECT @@GLOBAL.gtid_executed",
        )
    }

    /// What a server has applied (a replica's received transactions are in its relay log).
    fn applied(&self) -> &'static str {
        self.pick(
            "SELECT @@GLOBAL.gtid_current_pos",
            "SELECT @@GLOBAL.gtid_executed",
        )
    }

    /// Everything a replica received from its (gone) primary, applied or not: MariaDB's
    /// `Gtid_IO_Pos`; MySQL's executed and retrieved GTID sets together. `None` for a server
    /// that is not a replica.
    async fn received(&self, admin: &mut Admin) -> Option<String> {
        let sql = self.pick("SHOW SLAVE STATUS", "SHOW REPLICA STATUS");
        let row = admin.conn.query_first_named(sql).await.ok().flatten()?;
        let column = |name: &str| {
            row.iter()
                .find(|(column, _)| column == name)
                .map(|(_, v)| text(v))
        };
        if self.mariadb {
            return column("Gtid_IO_Pos");
        }
        // A GTID set's text may name a server's intervals more than once: joined, it is the
        // union. MySQL breaks long sets over lines.
        let sets = [column("Executed_Gtid_Set")?, column("Retrieved_Gtid_Set")?];
        let joined: Vec<String> = sets
            .iter()
            .map(|s| s.replace('\n', ""))
            .filter(|s| !s.is_empty())
            .collect();
        Some(joined.join(","))
    }

    /// Whether position `a` includes everything `b` does: compared here for MariaDB, asked of
    /// `judge`'s server (`GTID_SUBSET`) for MySQL.
    async fn covers(&self, judge: &Admin, a: &str, b: &str) -> bool {
        if self.mariadb {
            return gtid::covers(a, b);
        }
        let Ok(mut conn) = Conn::connect(&judge.opts).await else {
            return false;
        };
        let sql = format!("SELECT GTID_SUBSET({}, {})", quote(b), quote(a));
        let answer = conn.query_rows(&sql).await;
        answer.is_ok_and(|rows| rows.first().and_then(|r| int(&r[0])) == Some(1))
    }

    /// A query answering 0 once the server has applied `position`, within `seconds`.
    fn wait_for(&self, position: &str, seconds: u64) -> String {
        if self.mariadb {
            format!("SELECT MASTER_GTID_WAIT({}, {seconds})", quote(position))
        } else {
            format!(
                "SELECT WAIT_FOR_EXECUTED_GTID_SET({}, {seconds})",
                quote(position)
            )
        }
    }

    fn stop(&self) -> &'static str {
        self.pick("STOP SLAVE", "STOP REPLICA")
    }

    fn start(&self) -> &'static str {
        self.pick("START SLAVE", "START REPLICA")
    }

    fn forget_source(&self) -> &'static str {
        self.pick("RESET SLAVE ALL", "RESET REPLICA ALL")
    }

    /// Points a server at `primary`, by GTID, with `primary`'s credentials.
    fn replicate_from(&self, primary: &BackendAddr) -> String {
        let password = quote(primary.password.as_deref().unwrap_or_default());
        let (host, user) = (quote(&primary.host), quote(&primary.user));
        if self.mariadb {
            format!(
                "CHANGE MASTER TO MASTER_HOST = {host}, MASTER_PORT = {}, MASTER_USER = {user}, \
                 MASTER_PASSWORD = {password}, MASTER_USE_GTID = slave_pos, \
                 MASTER_CONNECT_RETRY = 1",
                primary.port
            )
        } else {
            format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST = {host}, SOURCE_PORT = {}, \
                 SOURCE_USER = {user}, SOURCE_PASSWORD = {password}, SOURCE_AUTO_POSITION = 1, \
                 SOURCE_CONNECT_RETRY = 1",
                primary.port
            )
        }
    }

    /// Run on the old primary before it replicates: MariaDB starts a replica from
    /// `gtid_slave_pos`, which a primary never set. MySQL's auto-position needs nothing.
    fn demote(&self) -> Option<&'static str> {
        self.mariadb
            .then_some("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")
    }

    /// How many replicas acknowledge semi-synchronous commits on a primary.
    fn semi_sync_clients(&self) -> &'static str {
        self.pick(
            "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'",
            "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_clients'",
        )
    }

    fn semi_sync_enabled(&self) -> &'static str {
        self.pick(
            "SELECT @@GLOBAL.rpl_semi_sync_master_enabled",
            "SELECT @@GLOBAL.rpl_semi_sync_source_enabled",
        )
    }
}

/// An admin connection to one server, naming it in errors.
struct Admin {
    conn: Conn,
    name: String,
    opts: crate::wire::ConnOpts,
}

impl Admin {
    async fn open(pool: &ShardPool) -> Result<Admin, ReparentError> {
        let name = format!("{}:{}", pool.opts().host, pool.opts().port);
        match Conn::connect(pool.opts()).await {
            Ok(conn) => Ok(Admin {
                conn,
                name,
                opts: pool.opts().clone(),
            }),
            Err(error) => Err(ReparentError::Server {
                server: name,
                error,
            }),
        }
    }

    async fn run(&mut self, sql: &str) -> Result<(), ReparentError> {
        self.conn
            .query_drop(sql)
            .await
            .map_err(|error| ReparentError::Server {
                server: self.name.clone(),
                error,
            })
    }

    /// The first column of the first row, as text (empty for none or NULL).
    async fn value(&mut self, sql: &str) -> Result<String, ReparentError> {
        let rows = self
            .conn
            .query_rows(sql)
            .await
            .map_err(|error| ReparentError::Server {
                server: self.name.clone(),
                error,
            })?;
        Ok(rows
            .first()
            .and_then(|r| r.last())
            .map(text)
            .unwrap_or_default())
    }
}

/// Lets the held statements go when dropped, whatever happened.
struct Release<'a>(&'a ShardServers);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        // A retired shard stays held: its waiters fail (see `ShardServers::wait`).
        if !self.0.hold.retired.load(Ordering::Acquire) {
            self.0.hold.held.store(false, Ordering::Release);
        }
        self.0.hold.released.notify_waiters();
    }
}

impl Backends {
    /// Hands `keyspace/shard`'s primary over to its replica `to` (`host:port` or its URL), as
    /// the module's notes describe.
    pub async fn reparent(
        &self,
        keyspace: &str,
        shard: &str,
        to: &str,
    ) -> Result<Report, ReparentError> {
        let name = format!("{keyspace}/{shard}");
        let servers = self.shard_servers(keyspace, shard)?;
        let replicas = servers.replicas.load_full();
        let Some(chosen) = replicas.named(to).filter(|r| r.replicating()) else {
            let list: Vec<String> = replicas
                .list
                .iter()
                .filter(|r| r.replicating())
                .map(|r| r.source.0.to_string())
                .collect();
            return Err(ReparentError::NotAReplica {
                shard: name,
                to: to.to_string(),
                replicas: if list.is_empty() {
                    "none".into()
                } else {
                    list.join(", ")
                },
            });
        };
        let release = servers.hold_all(&name)?;
        let started = Instant::now();
        let old = servers.primary.load_full();

        let killed = drain(&old.pool, servers.buffer / 2).await?;
        let mut old_admin = Admin::open(&old.pool).await?;
        let flavor = Flavor {
            mariadb: old_admin.conn.server_version().0 >= 10,
        };
        old_admin.run("SET GLOBAL read_only = ON").await?;
        let caught_up = async {
            let position = old_admin.value(flavor.position()).await?;
            let mut new_admin = Admin::open(&chosen.pool).await?;
            catch_up(&mut new_admin, &flavor, &name, &position, &servers, started).await?;
            Ok(new_admin)
        }
        .await;
        let mut new_admin = match caught_up {
            Ok(admin) => admin,
            Err(e) => {
                // The shard stays as it was.
                if let Err(undo) = old_admin.run("SET GLOBAL read_only = OFF").await {
                    tracing::error!(error = %undo, "could not make the old primary writable again");
                }
                return Err(e);
            }
        };
        // From here the chosen replica is the primary: what fails now is reported, not undone.
        let semi_sync = old_admin.value(flavor.semi_sync_enabled()).await? == "1";
        promote(&mut new_admin, &flavor, semi_sync).await?;
        let mut not_repointed = Vec::new();
        let demoted = async {
            old_admin.run(flavor.stop()).await?;
            if let Some(demote) = flavor.demote() {
                old_admin.run(demote).await?;
            }
            old_admin
                .run(&flavor.replicate_from(&chosen.source.0))
                .await?;
            old_admin.run(flavor.start()).await
        };
        if let Err(e) = demoted.await {
            tracing::error!(error = %e, "the old primary does not replicate from the new one");
            not_repointed.push(old_admin.name.clone());
        }
        let others = others(&replicas, &chosen);
        not_repointed.extend(repoint(&others, &flavor, &chosen).await);
        if semi_sync {
            await_semi_sync(&mut new_admin, &flavor).await;
        }
        servers.swap(&chosen, others, &old, Standing::Replicating);
        drop(release);
        let report = Report {
            shard: name,
            from: old.source.0.clone(),
            to: chosen.source.0.clone(),
            held: started.elapsed(),
            killed,
            not_repointed,
        };
        tracing::info!(%report, "reparented");
        Ok(report)
    }

    /// Replaces `keyspace/shard`'s primary, which stopped answering, with its most advanced
    /// replica: the one that received every transaction any replica received (with
    /// semi-synchronous replication, every acknowledged commit). Refuses when no replica
    /// has all of them, rather than lose one. The old primary, when it answers again, rejoins
    /// as a replica if it holds nothing the new primary lacks, and is fenced (read-only, out of
    /// rotation, reported) if it does.
    pub async fn fail_over(&self, keyspace: &str, shard: &str) -> Result<Report, ReparentError> {
        let name = format!("{keyspace}/{shard}");
        let servers = self.shard_servers(keyspace, shard)?;
        let old = servers.primary.load_full();
        if old.pool.probe(Duration::from_secs(1)).await {
            return Err(ReparentError::Answers(name));
        }
        let release = servers.hold_all(&name)?;
        if !Arc::ptr_eq(&servers.primary.load_full(), &old) {
            // Replaced while it was probed.
            return Err(ReparentError::Answers(name));
        }
        let started = Instant::now();
        // Idle connections to the dead server would fail their next statement (and a goodbye
        // to it could wait on an unreachable host).
        old.pool.drop_idle();
        let replicas = servers.replicas.load_full();
        let mut received = Vec::new();
        let mut flavor = Flavor { mariadb: true };
        // A lost primary that has not rejoined, or a fenced one, may hold transactions that
        // nobody acknowledged: never a candidate.
        for replica in replicas.list.iter().filter(|r| r.replicating()) {
            let Ok(Ok(mut admin)) =
                tokio::time::timeout(Duration::from_secs(2), Admin::open(&replica.pool)).await
            else {
                continue;
            };
            flavor.mariadb = admin.conn.server_version().0 >= 10;
            // What it received stays put: its source is gone anyway.
            if let Some(position) = flavor.received(&mut admin).await {
                received.push((replica.clone(), admin, position));
            }
        }
        let mut most = None;
        for (i, (_, judge, mine)) in received.iter().enumerate() {
            let mut all = true;
            for (_, _, theirs) in &received {
                all = all && flavor.covers(judge, mine, theirs).await;
            }
            if all {
                most = Some(i);
                break;
            }
        }
        let Some(most) = most else {
            let positions: Vec<String> = received
                .iter()
                .map(|(r, _, p)| format!("{} has {p:?}", r.source.0))
                .collect();
            return Err(ReparentError::NoCandidate {
                shard: name,
                positions: positions.join("; "),
            });
        };
        let (chosen, mut new_admin, position) = received.swap_remove(most);
        drop(received);
        catch_up(&mut new_admin, &flavor, &name, &position, &servers, started).await?;
        let semi_sync = flavor.pick(
            "SELECT @@GLOBAL.rpl_semi_sync_slave_enabled",
            "SELECT @@GLOBAL.rpl_semi_sync_replica_enabled",
        );
        let semi_sync = new_admin.value(semi_sync).await.unwrap_or_default() == "1";
        promote(&mut new_admin, &flavor, semi_sync).await?;
        let promoted_at = new_admin.value(flavor.applied()).await?;
        let others = others(&replicas, &chosen);
        let not_repointed = repoint(&others, &flavor, &chosen).await;
        if semi_sync && !others.is_empty() {
            await_semi_sync(&mut new_admin, &flavor).await;
        }
        servers.swap(&chosen, others, &old, Standing::Rejoin { promoted_at });
        drop(release);
        let report = Report {
            shard: name,
            from: old.source.0.clone(),
            to: chosen.source.0.clone(),
            held: started.elapsed(),
            killed: 0,
            not_repointed,
        };
        tracing::warn!(%report, "failed over");
        Ok(report)
    }

    /// Another proxy is changing the shard's primary: statements here wait (as for one of our
    /// own) until [`Backends::release_remote`]. False when the shard was held already.
    pub fn hold_remote(&self, keyspace: &str, shard: &str) -> bool {
        self.servers(keyspace, shard)
            .is_ok_and(|s| !s.hold.held.swap(true, Ordering::AcqRel))
    }

    /// The shard no longer serves its keyspace (a reshard moved it): statements that still
    /// reach it through this topology (held while the routing changed) fail rather than run
    /// there. Call while holding it.
    pub fn retire(&self, keyspace: &str, shard: &str) {
        if let Ok(s) = self.servers(keyspace, shard) {
            s.hold.retired.store(true, Ordering::Release);
        }
    }

    pub fn release_remote(&self, keyspace: &str, shard: &str) {
        if let Ok(servers) = self.servers(keyspace, shard) {
            drop(Release(servers));
        }
    }

    /// Where the shard's primary is now: for the proxy's own connections outside the pools
    /// (a change stream, a migration's cut-over).
    pub fn primary_addr(
        &self,
        keyspace: &str,
        shard: &str,
    ) -> Result<BackendAddr, engine::EngineError> {
        Ok(self
            .servers(keyspace, shard)?
            .primary
            .load()
            .source
            .0
            .clone())
    }

    /// Whether the shard's statements are held (its primary is changing).
    pub fn is_held(&self, keyspace: &str, shard: &str) -> bool {
        self.servers(keyspace, shard)
            .is_ok_and(|s| s.hold.held.load(Ordering::Acquire))
    }

    /// Connections of the shard's primary in use here now.
    pub fn primary_in_use(&self, keyspace: &str, shard: &str) -> usize {
        self.pool(keyspace, shard).map_or(0, |p| p.stats().in_use)
    }

    /// Another proxy made `to` (`host:port`) the shard's primary: the pools swap roles as the
    /// servers did. False when `to` is the primary already, or not a server of the shard.
    pub fn follow(&self, keyspace: &str, shard: &str, to: &str) -> bool {
        let Ok(servers) = self.servers(keyspace, shard) else {
            return false;
        };
        let old = servers.primary.load_full();
        if names(&old.source.0, to) {
            return false;
        }
        let replicas = servers.replicas.load_full();
        let Some(chosen) = replicas.named(to) else {
            tracing::error!(shard = %format!("{keyspace}/{shard}"), %to, "the shared topology names a primary that is not a server of this shard");
            return false;
        };
        servers.swap(
            &chosen,
            others(&replicas, &chosen),
            &old,
            Standing::Replicating,
        );
        // Idle connections to the old primary would send it writes it refuses now.
        old.pool.drop_idle();
        true
    }

    fn shard_servers(
        &self,
        keyspace: &str,
        shard: &str,
    ) -> Result<Arc<ShardServers>, ReparentError> {
        self.servers(keyspace, shard)
            .cloned()
            .map_err(|_| ReparentError::UnknownShard(format!("{keyspace}/{shard}")))
    }
}

impl ShardServers {
    /// Holds the shard's statements until the returned guard drops.
    fn hold_all(&self, name: &str) -> Result<Release<'_>, ReparentError> {
        if self.hold.held.swap(true, Ordering::AcqRel) {
            return Err(ReparentError::Busy(name.to_string()));
        }
        Ok(Release(self))
    }

    /// Makes `chosen` the primary, and the others and the old primary its replicas.
    fn swap(&self, chosen: &Replica, others: Vec<Arc<Replica>>, old: &Server, standing: Standing) {
        self.primary.store(Arc::new(Server {
            source: chosen.source.clone(),
            pool: chosen.pool.clone(),
        }));
        let mut list = others;
        list.push(Arc::new(Replica {
            source: old.source.clone(),
            pool: old.pool.clone(),
            lag_ms: AtomicU64::new(u64::MAX),
            standing: std::sync::Mutex::new(standing),
        }));
        let max_lag_ms = self.replicas.load().max_lag_ms;
        self.replicas.store(Arc::new(Replicas {
            list,
            next: AtomicUsize::new(0),
            max_lag_ms,
        }));
    }

    /// A demoted primary that answers again: replicates from the primary when it holds nothing
    /// beyond `promoted_at` (what the primary had when promoted), else stays read-only and out
    /// of rotation. Nothing happens while it does not answer.
    pub(crate) async fn rejoin(&self, replica: &Replica, promoted_at: &str) {
        let Ok(Ok(mut old)) =
            tokio::time::timeout(Duration::from_secs(1), Admin::open(&replica.pool)).await
        else {
            return;
        };
        let primary = self.primary.load_full();
        let flavor = Flavor {
            mariadb: old.conn.server_version().0 >= 10,
        };
        let rejoined = async {
            // Whatever follows, nothing is written to it through its old role any more.
            old.run("SET GLOBAL read_only = ON").await?;
            let held = old.value(flavor.position()).await?;
            if !flavor.covers(&old, promoted_at, &held).await {
                return Ok(Some(held));
            }
            old.run(flavor.stop()).await?;
            if let Some(demote) = flavor.demote() {
                old.run(demote).await?;
            }
            old.run(&flavor.replicate_from(&primary.source.0)).await?;
            old.run(flavor.start()).await?;
            Ok::<_, ReparentError>(None)
        };
        let standing = match rejoined.await {
            Ok(None) => {
                tracing::info!(server = %replica.source.0, "the old primary rejoined as a replica");
                Standing::Replicating
            }
            Ok(Some(held)) => {
                let why = format!(
                    "fenced: it holds transactions the new primary lacks (it has {held}; the \
                     primary was promoted at {promoted_at}); read-only, out of rotation"
                );
                tracing::error!(server = %replica.source.0, "{why}");
                Standing::Fenced(why)
            }
            Err(e) => {
                tracing::warn!(server = %replica.source.0, error = %e, "the old primary answers but could not rejoin yet");
                return;
            }
        };
        *replica.standing.lock().expect("replica standing") = standing;
    }
}

/// Where a replica stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Standing {
    Replicating,
    /// A primary lost to a failover: checked when it answers again (see
    /// [`ShardServers::rejoin`]).
    Rejoin {
        promoted_at: String,
    },
    /// A demoted primary with transactions nobody else has: why.
    Fenced(String),
}

impl Replicas {
    /// The replica `to` names (see [`names`]).
    fn named(&self, to: &str) -> Option<Arc<Replica>> {
        self.list.iter().find(|r| names(&r.source.0, to)).cloned()
    }
}

/// The shard's replicas other than `chosen`, in their order.
fn others(replicas: &Replicas, chosen: &Arc<Replica>) -> Vec<Arc<Replica>> {
    replicas
        .list
        .iter()
        .filter(|r| !Arc::ptr_eq(r, chosen))
        .cloned()
        .collect()
}

/// Waits, within what is left of the shard's buffer, until `admin`'s server has applied
/// `position`.
async fn catch_up(
    admin: &mut Admin,
    flavor: &Flavor,
    shard: &str,
    position: &str,
    servers: &ShardServers,
    started: Instant,
) -> Result<(), ReparentError> {
    let left = servers.buffer.saturating_sub(started.elapsed());
    let seconds = left.as_secs().max(1);
    if admin.value(&flavor.wait_for(position, seconds)).await? == "0" {
        return Ok(());
    }
    Err(ReparentError::CatchUp {
        shard: shard.to_string(),
        replica: admin.name.clone(),
        position: position.to_string(),
        waited: Duration::from_secs(seconds),
    })
}

/// Makes a replica a writable primary (semi-synchronous when the group was).
async fn promote(admin: &mut Admin, flavor: &Flavor, semi_sync: bool) -> Result<(), ReparentError> {
    admin.run(flavor.stop()).await?;
    admin.run(flavor.forget_source()).await?;
    if semi_sync {
        let enable = flavor.pick(
            "SET GLOBAL rpl_semi_sync_master_enabled = ON",
            "SET GLOBAL rpl_semi_sync_source_enabled = ON",
        );
        admin.run(enable).await?;
    }
    admin.run("SET GLOBAL read_only = OFF").await
}

/// Points those of `others` that replicate at the new primary; those that could not be, by
/// name. A fenced server stays as it is, and a lost primary rejoins the new one by itself.
async fn repoint(others: &[Arc<Replica>], flavor: &Flavor, primary: &Replica) -> Vec<String> {
    let sql = flavor.replicate_from(&primary.source.0);
    let mut failed = Vec::new();
    for other in others.iter().filter(|r| r.replicating()) {
        let repointed = async {
            let mut admin = Admin::open(&other.pool).await?;
            admin.run(flavor.stop()).await?;
            admin.run(&sql).await?;
            admin.run(flavor.start()).await
        };
        if let Err(e) = repointed.await {
            tracing::error!(replica = %other.source.0, error = %e, "a replica does not replicate from the new primary");
            failed.push(other.source.0.to_string());
        }
    }
    failed
}

/// Semi-synchronous commits wait for a replica's acknowledgement (up to the server's
/// timeout): the held writes go once one is connected, or after 2 s.
async fn await_semi_sync(admin: &mut Admin, flavor: &Flavor) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let clients = admin.value(flavor.semi_sync_clients()).await;
        if clients.is_ok_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// MariaDB GTID positions (`domain-server-sequence` per replication domain), as the change
/// stream reads them.
mod gtid {
    use changestream::{Flavor, Position};

    /// Whether `a` includes everything `b` does: every domain of `b`, at least as far. (In
    /// strict mode a domain's sequence numbers only grow, along one history.) A position that
    /// does not parse covers nothing.
    pub fn covers(a: &str, b: &str) -> bool {
        match (
            Position::parse(Flavor::MariaDb, a),
            Position::parse(Flavor::MariaDb, b),
        ) {
            (Ok(a), Ok(b)) => a.covers(&b),
            _ => false,
        }
    }
}

/// Waits up to `grace` for the old primary's connections in use to come back, then kills
/// those still busy (the pool's user's connections, other than replication's). How many it
/// killed.
async fn drain(pool: &ShardPool, grace: Duration) -> Result<usize, ReparentError> {
    let deadline = Instant::now() + grace;
    while pool.stats().in_use > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if pool.stats().in_use == 0 {
        return Ok(0);
    }
    pool.close_idle().await;
    let mut admin = Admin::open(pool).await?;
    let busy = admin
        .conn
        .query_rows(&format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = {} \
             AND ID <> CONNECTION_ID() AND COMMAND NOT LIKE 'Binlog Dump%'",
            quote(&pool.opts().user)
        ))
        .await
        .map_err(|error| ReparentError::Server {
            server: admin.name.clone(),
            error,
        })?;
    let mut killed = 0;
    for id in busy.iter().filter_map(|r| int(&r[0])) {
        // One that ended meanwhile is not an error.
        if admin.run(&format!("KILL CONNECTION {id}")).await.is_ok() {
            killed += 1;
        }
    }
    tracing::warn!(
        killed,
        "killed what was still running on the old primary after the grace period"
    );
    Ok(killed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_named_by_address_or_url() {
        let addr = BackendAddr {
            host: "127.0.0.1".into(),
            port: 3307,
            user: "root".into(),
            password: None,
            database: "shop".into(),
        };
        assert!(names(&addr, "127.0.0.1:3307"));
        assert!(names(&addr, "mysql://root@127.0.0.1:3307/shop"));
        assert!(names(&addr, "mysql://u:p@127.0.0.1:3307"));
        assert!(!names(&addr, "127.0.0.1:3306"));
        assert!(!names(&addr, "localhost:3307"));
    }

    #[test]
    fn positions_compare_by_domain() {
        assert!(gtid::covers("0-1-10", "0-1-9"));
        assert!(gtid::covers("0-2-10", "0-1-10"));
        assert!(!gtid::covers("0-1-9", "0-1-10"));
        assert!(gtid::covers("0-1-10,1-3-4", "1-3-4"));
        assert!(!gtid::covers("0-1-10", "0-1-9,1-3-4"));
        assert!(gtid::covers("0-1-3", ""));
        assert!(!gtid::covers("", "0-1-1"));
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote(r"it's \ here"), r"'it\'s \\ here'");
    }
}
