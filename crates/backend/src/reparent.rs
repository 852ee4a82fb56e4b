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
    #[error("{to} is not a replica of {shard} (its replicas: {replicas})")]
    NotAReplica {
        shard: String,
        to: String,
        replicas: String,
    },
    #[error("the primary of {0} is already changing")]
    Busy(String),
    #[error("{server}: {error}")]
    Server { server: String, error: WireError },
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
    fn position(&self) -> &'static str {
        if self.mariadb {
            "SELECT @@GLOBAL.gtid_binlog_pos"
        } else {
            "SELECT @@GLOBAL.gtid_executed"
        }
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
        if self.mariadb {
            "STOP SLAVE"
        } else {
            "STOP REPLICA"
        }
    }

    fn start(&self) -> &'static str {
        if self.mariadb {
            "START SLAVE"
        } else {
            "START REPLICA"
        }
    }

    fn forget_source(&self) -> &'static str {
        if self.mariadb {
            "RESET SLAVE ALL"
        } else {
            "RESET REPLICA ALL"
        }
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
        if self.mariadb {
            "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'"
        } else {
            "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_clients'"
        }
    }

    fn semi_sync_enabled(&self) -> &'static str {
        if self.mariadb {
            "SELECT @@GLOBAL.rpl_semi_sync_master_enabled"
        } else {
            "SELECT @@GLOBAL.rpl_semi_sync_source_enabled"
        }
    }
}

/// An admin connection to one server, naming it in errors.
struct Admin {
    conn: Conn,
    name: String,
}

impl Admin {
    async fn open(pool: &ShardPool) -> Result<Admin, ReparentError> {
        let name = format!("{}:{}", pool.opts().host, pool.opts().port);
        match Conn::connect(pool.opts()).await {
            Ok(conn) => Ok(Admin { conn, name }),
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
        self.0.hold.held.store(false, Ordering::Release);
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
        let servers = self
            .servers(keyspace, shard)
            .map_err(|_| ReparentError::UnknownShard(name.clone()))?
            .clone();
        let replicas = servers.replicas.load_full();
        let Some(chosen) = replicas
            .list
            .iter()
            .find(|r| names(&r.source.0, to))
            .cloned()
        else {
            let list: Vec<String> = replicas
                .list
                .iter()
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
        if servers.hold.held.swap(true, Ordering::AcqRel) {
            return Err(ReparentError::Busy(name));
        }
        let release = Release(&servers);
        let started = Instant::now();
        let old = servers.primary.load_full();

        let killed = drain(&old.pool, servers.buffer / 2).await?;
        let mut old_admin = Admin::open(&old.pool).await?;
        let flavor = Flavor {
            mariadb: old_admin.conn.server_version().0 >= 10,
        };
        old_admin.run("SET GLOBAL read_only = ON").await?;
        let promoted = async {
            let position = old_admin.value(flavor.position()).await?;
            let mut new_admin = Admin::open(&chosen.pool).await?;
            let left = servers.buffer.saturating_sub(started.elapsed());
            let seconds = left.as_secs().max(1);
            let caught_up = new_admin
                .value(&flavor.wait_for(&position, seconds))
                .await?;
            if caught_up != "0" {
                return Err(ReparentError::CatchUp {
                    shard: name.clone(),
                    replica: new_admin.name.clone(),
                    position,
                    waited: Duration::from_secs(seconds),
                });
            }
            new_admin.run(flavor.stop()).await?;
            new_admin.run(flavor.forget_source()).await?;
            Ok(new_admin)
        }
        .await;
        let mut new_admin = match promoted {
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
        let semi_sync = old_admin
            .value(flavor.semi_sync_enabled())
            .await
            .unwrap_or_default();
        if semi_sync == "1" {
            let enable = if flavor.mariadb {
                "SET GLOBAL rpl_semi_sync_master_enabled = ON"
            } else {
                "SET GLOBAL rpl_semi_sync_source_enabled = ON"
            };
            new_admin.run(enable).await?;
        }
        new_admin.run("SET GLOBAL read_only = OFF").await?;

        let mut not_repointed = Vec::new();
        let repoint = flavor.replicate_from(&chosen.source.0);
        let demoted = async {
            old_admin.run(flavor.stop()).await?;
            if let Some(demote) = flavor.demote() {
                old_admin.run(demote).await?;
            }
            old_admin.run(&repoint).await?;
            old_admin.run(flavor.start()).await
        };
        if let Err(e) = demoted.await {
            tracing::error!(error = %e, "the old primary does not replicate from the new one");
            not_repointed.push(old_admin.name.clone());
        }
        let others: Vec<Arc<Replica>> = replicas
            .list
            .iter()
            .filter(|r| !Arc::ptr_eq(r, &chosen))
            .cloned()
            .collect();
        for other in &others {
            let repointed = async {
                let mut admin = Admin::open(&other.pool).await?;
                admin.run(flavor.stop()).await?;
                admin.run(&repoint).await?;
                admin.run(flavor.start()).await
            };
            if let Err(e) = repointed.await {
                tracing::error!(replica = %other.source.0, error = %e, "a replica does not replicate from the new primary");
                not_repointed.push(other.source.0.to_string());
            }
        }
        // Semi-synchronous commits wait for a replica's acknowledgement (up to the server's
        // timeout): the held writes go once one is connected.
        if semi_sync == "1" {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let clients = new_admin.value(flavor.semi_sync_clients()).await?;
                if clients.parse::<u32>().is_ok_and(|n| n > 0) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }

        servers.primary.store(Arc::new(Server {
            source: chosen.source.clone(),
            pool: chosen.pool.clone(),
        }));
        let mut list = others;
        list.push(Arc::new(Replica {
            source: old.source.clone(),
            pool: old.pool.clone(),
            lag_ms: AtomicU64::new(u64::MAX),
        }));
        servers.replicas.store(Arc::new(Replicas {
            list,
            next: AtomicUsize::new(0),
            max_lag_ms: replicas.max_lag_ms,
        }));
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
    fn literals_are_quoted() {
        assert_eq!(quote(r"it's \ here"), r"'it\'s \\ here'");
    }
}
