//! One shard's part of a migration: its shadow table, the copy of its rows, the stream of its
//! changes into the shadow, and its side of the cut-over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use changestream::{
    check_settings, current_position, Applier, Change, ChangeStream, Position, StreamOptions,
    Tables, Target,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::{Record, ShardPart};
use super::{shadow_names, Live, CHUNK};
use crate::topology::Topology;

/// Replica lag past which the copy waits.
const MAX_LAG: Duration = Duration::from_secs(1);
/// How often the stream asks the shard for a heartbeat when idle: the cut-over waits about
/// this long for a stream to show it has everything.
const HEARTBEAT: Duration = Duration::from_millis(100);

pub(super) struct ShardRun {
    pub shard: String,
    live: Arc<Live>,
    index: usize,
    db: String,
    table: String,
    shadow: String,
    old: String,
    /// The proxy's own connection to the shard: positions, the swap.
    control: Conn,
    copier: JoinHandle<Result<(), String>>,
    applier: JoinHandle<Result<(), String>>,
    /// The stream's position once what came before it is in the shadow.
    applied: watch::Receiver<Position>,
    copied: bool,
    /// The oldest sample of the shard's position that the stream has not yet passed, and
    /// when it was taken: how far behind the stream is.
    sampled: Option<(Position, Instant)>,
    /// The stream was within a second of the shard at the last check.
    caught_up: bool,
}

/// A connection to the shard's primary outside the pools, in its keyspace's database.
fn opts(topo: &Topology, keyspace: &str, shard: &str) -> Result<Opts, String> {
    let addr = topo
        .backends
        .primary_addr(keyspace, shard)
        .map_err(|e| e.to_string())?;
    Ok(OptsBuilder::default()
        .ip_or_hostname(addr.host)
        .tcp_port(addr.port)
        .user(Some(addr.user))
        .pass(addr.password)
        .db_name(Some(addr.database))
        .prefer_socket(false)
        .into())
}

fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn failed<'a>(shard: &'a str, what: &'a str) -> impl Fn(mysql_async::Error) -> String + 'a {
    move |e| format!("{shard}: {what}: {e}")
}

impl ShardRun {
    /// Sets up the shadow (or finds it, resuming), starts the stream from the shard's position
    /// (or the recorded one) and the copy after the recorded key.
    pub(super) async fn start(
        topo: &Arc<Topology>,
        live: Arc<Live>,
        index: usize,
        part: ShardPart,
        alter: &str,
    ) -> Result<ShardRun, String> {
        let (id, keyspace, table) = {
            let r = live.record.lock().expect("migration lock");
            (r.id.clone(), r.keyspace.clone(), r.table.clone())
        };
        let shard = part.shard.clone();
        let opts = opts(topo, &keyspace, &shard)?;
        let db = opts.db_name().unwrap_or_default().to_string();
        let (shadow, old) = shadow_names(&id);
        let mut control = Conn::new(opts.clone())
            .await
            .map_err(failed(&shard, "connecting"))?;
        check_settings(&mut control)
            .await
            .map_err(|e| format!("{shard}: {e}"))?;
        let exists: Option<String> = control
            .exec_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&db, &shadow),
            )
            .await
            .map_err(failed(&shard, "looking for the shadow table"))?;
        let resuming = exists.is_some() && !part.position.is_empty();
        let (position, last_key) = if resuming {
            let flavor = current_position(&mut control)
                .await
                .map_err(|e| format!("{shard}: {e}"))?
                .flavor();
            let position = Position::parse(flavor, &part.position).map_err(|e| e.to_string())?;
            (position, part.last_key.clone())
        } else {
            for sql in [
                format!("DROP TABLE IF EXISTS {}", ident(&shadow)),
                format!("CREATE TABLE {} LIKE {}", ident(&shadow), ident(&table)),
                alter.to_string(),
            ] {
                control
                    .query_drop(&sql)
                    .await
                    .map_err(failed(&shard, "making the shadow table"))?;
            }
            // Taken before the copy starts: the stream brings every change the copy misses.
            let position = current_position(&mut control)
                .await
                .map_err(|e| format!("{shard}: {e}"))?;
            (position, None)
        };
        let source: Vec<String> = control
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&db, &table),
            )
            .await
            .map_err(failed(&shard, "reading the table's columns"))?;
        let key: Vec<String> = control
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                (&db, &table),
            )
            .await
            .map_err(failed(&shard, "reading the table's primary key"))?;
        if key.is_empty() {
            return Err(format!(
                "{shard}: {table} has no primary key, which an online schema change copies by"
            ));
        }
        let mut apply = Conn::new(opts.clone())
            .await
            .map_err(failed(&shard, "connecting"))?;
        apply
            .query_drop(Applier::session())
            .await
            .map_err(failed(&shard, "setting up the stream's connection"))?;
        let applier = Applier::new(&mut apply)
            .await
            .map_err(|e| format!("{shard}: {e}"))?;
        let target = Target::read(&mut apply, &db, &shadow)
            .await
            .map_err(|e| format!("{shard}: {e}"))?;
        let common: Vec<String> = source
            .into_iter()
            .filter(|c| target.columns.iter().any(|t| t.eq_ignore_ascii_case(c)))
            .collect();
        let stream = ChangeStream::start(
            opts.clone(),
            position.clone(),
            StreamOptions {
                tables: Tables {
                    schema: Some(db.clone()),
                    names: vec![table.clone()],
                },
                heartbeat: HEARTBEAT,
                ..StreamOptions::default()
            },
        )
        .await
        .map_err(|e| format!("{shard}: {e}"))?;
        let (applied_tx, applied) = watch::channel(position.clone());
        {
            let mut r = live.record.lock().expect("migration lock");
            let p = &mut r.parts[index];
            p.phase = "copying".into();
            p.position = position.to_string();
        }
        let applier = tokio::spawn(apply_changes(
            stream,
            apply,
            applier,
            target,
            live.clone(),
            index,
            applied_tx,
        ));
        let copy = Copy {
            shard: shard.clone(),
            keyspace,
            topo: topo.clone(),
            table: ident(&table),
            shadow: ident(&shadow),
            key: key.iter().map(|k| ident(k)).collect(),
            columns: common.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", "),
            live: live.clone(),
            index,
        };
        let conn = Conn::new(opts).await.map_err(failed(&shard, "connecting"))?;
        let copier = tokio::spawn(copy.run(conn, last_key, part.total == 0));
        Ok(ShardRun {
            shard,
            live,
            index,
            db,
            table,
            shadow,
            old,
            control,
            copier,
            applier,
            applied,
            copied: false,
            sampled: None,
            caught_up: false,
        })
    }

    /// Fails when the copy or the stream did; notes when the copy is done, and samples the
    /// shard's position once it is.
    pub(super) async fn check(&mut self) -> Result<(), String> {
        if self.applier.is_finished() {
            return Err(match (&mut self.applier).await {
                Ok(Err(why)) => why,
                _ => format!("{}: the change stream stopped", self.shard),
            });
        }
        if !self.copied && self.copier.is_finished() {
            match (&mut self.copier).await {
                Ok(Ok(())) => self.copied = true,
                Ok(Err(why)) => return Err(why),
                Err(e) => return Err(format!("{}: the copy stopped: {e}", self.shard)),
            }
            self.live.record.lock().expect("migration lock").parts[self.index].phase =
                "catching up".into();
        }
        if self.copied {
            let now = current_position(&mut self.control)
                .await
                .map_err(|e| format!("{}: {e}", self.shard))?;
            let applied = self.applied.borrow().clone();
            let lag = match &self.sampled {
                _ if applied.covers(&now) => Duration::ZERO,
                // Behind by less than the time since a position it has passed was read.
                Some((before, at)) if applied.covers(before) => at.elapsed(),
                Some((_, at)) => at.elapsed() + Duration::from_secs(1),
                None => Duration::from_secs(1),
            };
            if self
                .sampled
                .as_ref()
                .is_none_or(|(before, _)| applied.covers(before))
            {
                self.sampled = Some((now, Instant::now()));
            }
            self.caught_up = lag < Duration::from_secs(1);
            let mut r = self.live.record.lock().expect("migration lock");
            let part = &mut r.parts[self.index];
            part.lag_ms = lag.as_millis() as u64;
            part.phase = match self.caught_up {
                true => "ready",
                false => "catching up",
            }
            .into();
        }
        Ok(())
    }

    /// Copied, and the stream within a second of the shard.
    pub(super) fn ready(&self) -> bool {
        self.copied && self.caught_up
    }

    /// With the keyspace's writes held: waits until the stream has applied everything the
    /// shard has written, until `deadline`.
    pub(super) async fn drain(&mut self, deadline: Instant) -> Result<(), String> {
        let now = current_position(&mut self.control)
            .await
            .map_err(|e| format!("{}: {e}", self.shard))?;
        let wait = deadline.saturating_duration_since(Instant::now());
        let reached = tokio::time::timeout(wait, self.applied.wait_for(|p| p.covers(&now))).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(format!("{}: the change stream stopped", self.shard)),
            Err(_) => Err(format!(
                "{}: the change stream did not catch up in time",
                self.shard
            )),
        }
    }

    /// The shadow becomes the table; the table keeps its old rows under another name.
    pub(super) async fn swap(&mut self) -> Result<(), String> {
        let sql = format!(
            "RENAME TABLE {db}.{t} TO {db}.{old}, {db}.{shadow} TO {db}.{t}",
            db = ident(&self.db),
            t = ident(&self.table),
            old = ident(&self.old),
            shadow = ident(&self.shadow)
        );
        self.control
            .query_drop(sql)
            .await
            .map_err(failed(&self.shard, "swapping the tables"))
    }

    pub(super) async fn swap_back(&mut self) -> Result<(), String> {
        let sql = format!(
            "RENAME TABLE {db}.{t} TO {db}.{shadow}, {db}.{old} TO {db}.{t}",
            db = ident(&self.db),
            t = ident(&self.table),
            old = ident(&self.old),
            shadow = ident(&self.shadow)
        );
        self.control
            .query_drop(sql)
            .await
            .map_err(failed(&self.shard, "swapping the tables back"))
    }

    /// Cut over: the copy and the stream end here.
    pub(super) fn finish(&mut self) {
        self.copier.abort();
        self.applier.abort();
    }
}

impl Drop for ShardRun {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Applies the stream's changes to the shadow, each source transaction in one, publishing the
/// position after each.
async fn apply_changes(
    mut stream: ChangeStream,
    mut conn: Conn,
    applier: Applier,
    target: Target,
    live: Arc<Live>,
    index: usize,
    applied: watch::Sender<Position>,
) -> Result<(), String> {
    let shard = live.record.lock().expect("migration lock").parts[index]
        .shard
        .clone();
    loop {
        let change = stream.next().await.map_err(|e| format!("{shard}: {e}"))?;
        let position = match &change {
            Change::Begin { .. } => {
                conn.query_drop("BEGIN")
                    .await
                    .map_err(failed(&shard, "the stream's transaction"))?;
                None
            }
            Change::Commit { position } => {
                conn.query_drop("COMMIT")
                    .await
                    .map_err(failed(&shard, "the stream's commit"))?;
                Some(position.clone())
            }
            Change::Rollback => {
                conn.query_drop("ROLLBACK")
                    .await
                    .map_err(failed(&shard, "the stream's rollback"))?;
                None
            }
            Change::Heartbeat { position } => Some(position.clone()),
            // The proxy's own DDL (the shadow, the swap) and any other on the schema.
            Change::Statement { .. } => None,
            row => {
                let statements = applier
                    .statements(row, &target)
                    .map_err(|e| format!("{shard}: {e}"))?;
                for sql in statements {
                    conn.query_drop(&sql)
                        .await
                        .map_err(failed(&shard, "applying a change"))?;
                }
                None
            }
        };
        if let Some(position) = position {
            live.record.lock().expect("migration lock").parts[index].position =
                position.to_string();
            applied.send_replace(position);
        }
    }
}

/// The copy of one shard's rows into its shadow, chunk by chunk in key order.
struct Copy {
    shard: String,
    keyspace: String,
    topo: Arc<Topology>,
    table: String,
    shadow: String,
    key: Vec<String>,
    columns: String,
    live: Arc<Live>,
    index: usize,
}

impl Copy {
    fn key_tuple(&self) -> String {
        match self.key.len() {
            1 => self.key[0].clone(),
            _ => format!("({})", self.key.join(", ")),
        }
    }

    fn literal_tuple(values: &[String]) -> String {
        match values.len() {
            1 => values[0].clone(),
            _ => format!("({})", values.join(", ")),
        }
    }

    async fn run(
        self,
        mut conn: Conn,
        mut last: Option<Vec<String>>,
        count: bool,
    ) -> Result<(), String> {
        let shard = self.shard.clone();
        // The chunk's SELECT share-locks its rows only under REPEATABLE READ or stronger.
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .map_err(failed(&shard, "setting up the copy"))?;
        if count {
            let total: Option<u64> = conn
                .query_first(format!("SELECT COUNT(*) FROM {}", self.table))
                .await
                .map_err(failed(&shard, "counting rows"))?;
            self.live.record.lock().expect("migration lock").parts[self.index].total =
                total.unwrap_or(0);
        }
        let key = self.key_tuple();
        loop {
            self.throttle().await;
            let after = last
                .as_ref()
                .map(|l| format!("{key} > {}", Self::literal_tuple(l)));
            let boundary: Option<mysql_async::Row> = conn
                .query_first(format!(
                    "SELECT {} FROM {}{} ORDER BY {} LIMIT 1 OFFSET {}",
                    self.key.join(", "),
                    self.table,
                    after.as_ref().map_or(String::new(), |a| format!(" WHERE {a}")),
                    self.key.join(", "),
                    CHUNK - 1
                ))
                .await
                .map_err(failed(&shard, "finding the next chunk"))?;
            let boundary: Option<Vec<String>> = boundary.map(|row| {
                row.unwrap()
                    .into_iter()
                    .map(|v| v.as_sql(false))
                    .collect()
            });
            let mut conditions: Vec<String> = after.into_iter().collect();
            if let Some(b) = &boundary {
                conditions.push(format!("{key} <= {}", Self::literal_tuple(b)));
            }
            let filter = match conditions.is_empty() {
                true => String::new(),
                false => format!(" WHERE {}", conditions.join(" AND ")),
            };
            conn.query_drop(format!(
                "INSERT IGNORE INTO {shadow} ({cols}) SELECT {cols} FROM {table}{filter}",
                shadow = self.shadow,
                cols = self.columns,
                table = self.table
            ))
            .await
            .map_err(failed(&shard, "copying a chunk"))?;
            let inserted = conn.affected_rows();
            {
                let mut r = self.live.record.lock().expect("migration lock");
                let part = &mut r.parts[self.index];
                part.copied += inserted;
                part.last_key = boundary.clone().or(part.last_key.take());
            }
            match boundary {
                Some(b) => last = Some(b),
                None => return Ok(()),
            }
        }
    }

    /// Waits while a replica of the shard is more than [`MAX_LAG`] behind.
    async fn throttle(&self) {
        loop {
            let behind = self
                .topo
                .backends
                .replica_lags(&self.keyspace, &self.shard)
                .into_iter()
                .any(|(_, lag, _, _)| lag.is_some_and(|l| l > MAX_LAG));
            if !behind {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Drops a failed or cancelled migration's shadow tables, shard by shard (best effort).
pub(super) async fn drop_shadows(topo: &Topology, record: &Record) {
    let (shadow, _) = shadow_names(&record.id);
    for part in &record.parts {
        let dropped = async {
            let opts = opts(topo, &record.keyspace, &part.shard)?;
            let mut conn = Conn::new(opts).await.map_err(|e| e.to_string())?;
            conn.query_drop(format!("DROP TABLE IF EXISTS {}", ident(&shadow)))
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = tokio::time::timeout(Duration::from_secs(5), dropped)
            .await
            .unwrap_or_else(|_| Err("no answer within 5 s".into()))
        {
            tracing::warn!(shard = %part.shard, error = %e, "could not drop a migration's shadow table");
        }
    }
}
