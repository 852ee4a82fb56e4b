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
/// Bytes of statements a follower sends at once within a source transaction.
const MAX_BATCH: usize = 1 << 20;
/// How long a swap waits for the tables' metadata locks.
const SWAP_WAIT: Duration = Duration::from_secs(3);
/// Statements running at once on a shard past which the copy waits.
const MAX_RUNNING: u64 = 64;
/// How often the stream asks the shard for a heartbeat when idle: the cut-over waits about
/// this long for a stream to show it has everything.
const HEARTBEAT: Duration = Duration::from_millis(100);

/// A change stream of one table into another on the same shard, publishing its position
/// (everything before it is in the target) as it goes.
pub(super) struct Follower {
    task: Task,
    applied: watch::Receiver<Position>,
}

/// A task of the migration's, which ends when this is dropped.
struct Task(JoinHandle<Result<(), String>>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Follower {
    async fn start(
        opts: &Opts,
        from: Position,
        db: &str,
        source: &str,
        target: &str,
        live: Arc<Live>,
        index: usize,
    ) -> Result<Follower, String> {
        let shard = live.record.lock().expect("migration lock").parts[index]
            .shard
            .clone();
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
        let target = Target::read(&mut apply, db, target)
            .await
            .map_err(|e| format!("{shard}: {e}"))?;
        let stream = ChangeStream::start(
            opts.clone(),
            from.clone(),
            StreamOptions {
                tables: Tables {
                    schema: Some(db.to_string()),
                    names: vec![source.to_string()],
                },
                heartbeat: HEARTBEAT,
                ..StreamOptions::default()
            },
        )
        .await
        .map_err(|e| format!("{shard}: {e}"))?;
        let (applied_tx, applied) = watch::channel(from);
        let task = Task(tokio::spawn(apply_changes(
            source.to_string(),
            stream,
            Destination {
                conn: apply,
                applier,
                target,
            },
            live,
            index,
            applied_tx,
        )));
        Ok(Follower { task, applied })
    }

    fn failure(&mut self, shard: &str) -> Option<String> {
        if !self.task.0.is_finished() {
            return None;
        }
        Some(format!("{shard}: the change stream stopped"))
    }

    fn position(&self) -> Position {
        self.applied.borrow().clone()
    }

    /// Waits until everything before `position` is applied, until `deadline`.
    async fn reach(&mut self, position: &Position, deadline: Instant) -> Result<(), &'static str> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, self.applied.wait_for(|p| p.covers(position))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("the change stream stopped"),
            Err(_) => Err("the change stream did not catch up in time"),
        }
    }
}

/// One shard's side of a cut-over: the stream drains, then two tables swap names.
pub(super) trait Side {
    fn shard(&self) -> &str;
    /// With the keyspace's writes held: waits until the stream has applied everything the
    /// shard has written (until `deadline`); the shard's position then.
    async fn drain(&mut self, deadline: Instant) -> Result<Position, String>;
    async fn swap(&mut self) -> Result<(), String>;
    async fn swap_back(&mut self) -> Result<(), String>;
}

/// A shard's names for a migration's tables.
#[derive(Clone)]
pub(super) struct Names {
    db: String,
    table: String,
    shadow: String,
    old: String,
}

impl Names {
    /// `RENAME TABLE` of `table` to `to` and `from` to `table`, in one statement.
    fn rotate(&self, to: &str, from: &str) -> String {
        format!(
            "RENAME TABLE {db}.{t} TO {db}.{to}, {db}.{from} TO {db}.{t}",
            db = ident(&self.db),
            t = ident(&self.table),
            to = ident(to),
            from = ident(from),
        )
    }
}

async fn drain(
    control: &mut Conn,
    follower: &mut Follower,
    shard: &str,
    deadline: Instant,
) -> Result<Position, String> {
    let now = current_position(control)
        .await
        .map_err(|e| format!("{shard}: {e}"))?;
    follower
        .reach(&now, deadline)
        .await
        .map_err(|why| format!("{shard}: {why}"))?;
    Ok(now)
}

async fn rename(control: &mut Conn, shard: &str, sql: String) -> Result<(), String> {
    control
        .query_drop(sql)
        .await
        .map_err(failed(shard, "swapping the tables"))
}

pub(super) struct ShardRun {
    pub shard: String,
    live: Arc<Live>,
    index: usize,
    opts: Opts,
    names: Names,
    /// The proxy's own connection to the shard: positions, the swap.
    control: Conn,
    copier: Task,
    follower: Follower,
    copied: bool,
    /// The oldest sample of the shard's position that the stream has not yet passed, and
    /// when it was taken: how far behind the stream is.
    sampled: Option<(Position, Instant)>,
    /// The stream was within a second of the shard at the last check.
    caught_up: bool,
    /// The swap first checks that the new table has every row of the old (see
    /// [`ShardRun::counting`]).
    count: bool,
}
/// A connection to the shard's primary outside the pools, in its keyspace's database.
pub(super) fn opts(topo: &Topology, keyspace: &str, shard: &str) -> Result<Opts, String> {
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

/// The proxy's own connection to a shard for positions and swaps. A swap that waits for a
/// table's metadata lock (a transaction that holds it outside the proxy's hold) gives up after
/// a few seconds, rather than the server's default of a year, and the cut-over tries again.
async fn control(opts: &Opts, shard: &str) -> Result<Conn, String> {
    let mut conn = Conn::new(opts.clone())
        .await
        .map_err(failed(shard, "connecting"))?;
    conn.query_drop(format!(
        "SET SESSION lock_wait_timeout = {}",
        SWAP_WAIT.as_secs()
    ))
    .await
    .map_err(failed(shard, "setting up the control connection"))?;
    Ok(conn)
}

fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn failed<'a>(shard: &'a str, what: &'a str) -> impl Fn(mysql_async::Error) -> String + 'a {
    move |e| format!("{shard}: {what}: {e}")
}

impl ShardRun {
    /// With `count`, the swap first checks, with the keyspace's writes held and the stream
    /// drained, that the new table has as many rows as the old: a write that repeated an added
    /// unique key would have replaced another row in it.
    pub(super) fn counting(mut self, count: bool) -> ShardRun {
        self.count = count;
        self
    }

    /// Sets up the shadow (or finds it, resuming), starts the stream from the shard's position
    /// (or the recorded one) and the copy after the recorded key.
    pub(super) async fn start(
        topo: &Arc<Topology>,
        live: Arc<Live>,
        index: usize,
        part: ShardPart,
        alter: &str,
        rate: u64,
    ) -> Result<ShardRun, String> {
        let (id, keyspace, table) = {
            let r = live.record.lock().expect("migration lock");
            (r.id.clone(), r.keyspace.clone(), r.table.clone())
        };
        let shard = part.shard.clone();
        let opts = opts(topo, &keyspace, &shard)?;
        let db = opts.db_name().unwrap_or_default().to_string();
        let (shadow, old) = shadow_names(&id);
        let mut control = control(&opts, &shard).await?;
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
        let shadow_columns: Vec<String> = control
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ?",
                (&db, &shadow),
            )
            .await
            .map_err(failed(&shard, "reading the shadow's columns"))?;
        let common: Vec<String> = source
            .into_iter()
            .filter(|c| shadow_columns.iter().any(|t| t.eq_ignore_ascii_case(c)))
            .collect();
        let follower = Follower::start(
            &opts,
            position.clone(),
            &db,
            &table,
            &shadow,
            live.clone(),
            index,
        )
        .await?;
        {
            let mut r = live.record.lock().expect("migration lock");
            let p = &mut r.parts[index];
            p.phase = "copying".into();
            p.position = position.to_string();
        }
        let copy = Copy {
            shard: shard.clone(),
            keyspace,
            topo: topo.clone(),
            table: ident(&table),
            shadow: ident(&shadow),
            key: key.iter().map(|k| ident(k)).collect(),
            columns: common
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            live: live.clone(),
            index,
            rate,
        };
        let conn = Conn::new(opts.clone())
            .await
            .map_err(failed(&shard, "connecting"))?;
        let end_key = if resuming { part.end_key.clone() } else { None };
        let copier = Task(tokio::spawn(copy.run(
            conn,
            last_key,
            end_key,
            part.total == 0,
        )));
        Ok(ShardRun {
            shard,
            live,
            index,
            opts,
            names: Names {
                db,
                table,
                shadow,
                old,
            },
            control,
            copier,
            follower,
            copied: false,
            sampled: None,
            caught_up: false,
            count: false,
        })
    }

    /// Fails when the copy or the stream did; notes when the copy is done, and samples the
    /// shard's position once it is.
    pub(super) async fn check(&mut self) -> Result<(), String> {
        if let Some(why) = self.follower.failure(&self.shard) {
            return Err(match (&mut self.follower.task.0).await {
                Ok(Err(why)) => why,
                _ => why,
            });
        }
        if !self.copied && self.copier.0.is_finished() {
            match (&mut self.copier.0).await {
                Ok(Ok(())) => self.copied = true,
                Ok(Err(why)) => return Err(why),
                Err(e) => return Err(format!("{}: the copy stopped: {e}", self.shard)),
            }
        }
        if self.copied {
            let now = current_position(&mut self.control)
                .await
                .map_err(|e| format!("{}: {e}", self.shard))?;
            let applied = self.follower.position();
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

    /// After the cut-over at `position`: the old table follows the new one from there, so
    /// that a revert loses nothing written since.
    pub(super) async fn reverse(self, position: Position) -> Result<Reverse, String> {
        let ShardRun {
            shard,
            live,
            index,
            opts,
            names,
            control,
            ..
        } = self;
        Reverse::start(shard, live, index, opts, names, control, position).await
    }
}

impl Side for ShardRun {
    fn shard(&self) -> &str {
        &self.shard
    }

    async fn drain(&mut self, deadline: Instant) -> Result<Position, String> {
        drain(&mut self.control, &mut self.follower, &self.shard, deadline).await
    }

    /// The shadow becomes the table; the table keeps its old rows under another name.
    async fn swap(&mut self) -> Result<(), String> {
        if self.count {
            let names = &self.names;
            let sql = format!(
                "SELECT (SELECT COUNT(*) FROM {db}.{t}), (SELECT COUNT(*) FROM {db}.{s})",
                db = ident(&names.db),
                t = ident(&names.table),
                s = ident(&names.shadow)
            );
            let counts: Option<(u64, u64)> = self
                .control
                .query_first(sql)
                .await
                .map_err(failed(&self.shard, "counting the rows"))?;
            if let Some((table, shadow)) = counts.filter(|(t, s)| t != s) {
                return Err(format!(
                    "shard {}: the new table has {shadow} of the table's {table} rows: rows \
                     written meanwhile repeat a key the new schema makes unique",
                    self.shard
                ));
            }
        }
        let sql = self.names.rotate(&self.names.old, &self.names.shadow);
        rename(&mut self.control, &self.shard, sql).await
    }

    async fn swap_back(&mut self) -> Result<(), String> {
        let sql = self.names.rotate(&self.names.shadow, &self.names.old);
        rename(&mut self.control, &self.shard, sql).await
    }
}

/// A cut-over shard's old table, kept up to date from the new one until the migration is
/// reverted or its retention ends.
pub(super) struct Reverse {
    pub shard: String,
    live: Arc<Live>,
    index: usize,
    names: Names,
    control: Conn,
    follower: Follower,
}

impl Reverse {
    async fn start(
        shard: String,
        live: Arc<Live>,
        index: usize,
        opts: Opts,
        names: Names,
        control: Conn,
        position: Position,
    ) -> Result<Reverse, String> {
        {
            let mut r = live.record.lock().expect("migration lock");
            let part = &mut r.parts[index];
            part.phase = "reverse".into();
            part.position = position.to_string();
            part.lag_ms = 0;
        }
        let follower = Follower::start(
            &opts,
            position,
            &names.db,
            &names.table,
            &names.old,
            live.clone(),
            index,
        )
        .await?;
        Ok(Reverse {
            shard,
            live,
            index,
            names,
            control,
            follower,
        })
    }

    /// A recorded migration's reverse stream, again (the proxy restarted).
    pub(super) async fn resume(
        topo: &Topology,
        live: Arc<Live>,
        index: usize,
    ) -> Result<Reverse, String> {
        let (id, keyspace, table, part) = {
            let r = live.record.lock().expect("migration lock");
            (
                r.id.clone(),
                r.keyspace.clone(),
                r.table.clone(),
                r.parts[index].clone(),
            )
        };
        let opts = opts(topo, &keyspace, &part.shard)?;
        let mut control = control(&opts, &part.shard).await?;
        let flavor = current_position(&mut control)
            .await
            .map_err(|e| format!("{}: {e}", part.shard))?
            .flavor();
        let position = Position::parse(flavor, &part.position).map_err(|e| e.to_string())?;
        let (shadow, old) = shadow_names(&id);
        let names = Names {
            db: opts.db_name().unwrap_or_default().to_string(),
            table,
            shadow,
            old,
        };
        Reverse::start(part.shard, live, index, opts, names, control, position).await
    }

    pub(super) fn check(&mut self) -> Result<(), String> {
        match self.follower.failure(&self.shard) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Retention over: the old table goes.
    pub(super) async fn retire(mut self) -> Result<(), String> {
        let sql = format!(
            "DROP TABLE IF EXISTS {}.{}",
            ident(&self.names.db),
            ident(&self.names.old)
        );
        self.control
            .query_drop(sql)
            .await
            .map_err(failed(&self.shard, "dropping the old table"))?;
        self.live.record.lock().expect("migration lock").parts[self.index].phase = "retired".into();
        Ok(())
    }
}

impl Side for Reverse {
    fn shard(&self) -> &str {
        &self.shard
    }

    async fn drain(&mut self, deadline: Instant) -> Result<Position, String> {
        drain(&mut self.control, &mut self.follower, &self.shard, deadline).await
    }

    /// The old table comes back; the new one stays beside it under the shadow's name.
    async fn swap(&mut self) -> Result<(), String> {
        let sql = self.names.rotate(&self.names.shadow, &self.names.old);
        rename(&mut self.control, &self.shard, sql).await
    }

    async fn swap_back(&mut self) -> Result<(), String> {
        let sql = self.names.rotate(&self.names.old, &self.names.shadow);
        rename(&mut self.control, &self.shard, sql).await
    }
}

/// Where a follower's changes go: its connection, how changes become statements, the table.
struct Destination {
    conn: Conn,
    applier: Applier,
    target: Target,
}

/// Applies the stream's changes of `source` to the destination, each source transaction in
/// one, publishing the position after each.
async fn apply_changes(
    source: String,
    mut stream: ChangeStream,
    into: Destination,
    live: Arc<Live>,
    index: usize,
    applied: watch::Sender<Position>,
) -> Result<(), String> {
    let Destination {
        mut conn,
        applier,
        target,
    } = into;
    let shard = live.record.lock().expect("migration lock").parts[index]
        .shard
        .clone();
    // A source transaction's statements go in one multi-statement round trip with its BEGIN
    // and COMMIT (a large one in several, within the open transaction): one round trip per
    // single-row write rather than three, so that the stream keeps up with the writers.
    let mut batch = String::new();
    let mut sent = false;
    loop {
        let change = stream.next().await.map_err(|e| format!("{shard}: {e}"))?;
        let position = match &change {
            Change::Begin { .. } => {
                batch = "BEGIN".into();
                sent = false;
                None
            }
            Change::Commit { position } => {
                batch.push_str(";COMMIT");
                conn.query_drop(std::mem::take(&mut batch))
                    .await
                    .map_err(failed(&shard, "applying a transaction"))?;
                Some(position.clone())
            }
            Change::Rollback => {
                batch.clear();
                if sent {
                    conn.query_drop("ROLLBACK")
                        .await
                        .map_err(failed(&shard, "the stream's rollback"))?;
                }
                None
            }
            Change::Heartbeat { position } => Some(position.clone()),
            // DDL on the followed table by anyone but the migration (whose statements name its
            // `_sg_` tables) would be lost in the shadow: the migration stops instead.
            Change::Statement { sql, .. } => {
                let lower = sql.to_ascii_lowercase();
                if !lower.contains("_sg_") && names_table(&lower, &source.to_ascii_lowercase()) {
                    return Err(format!(
                        "{shard}: {source} changed during the migration ({sql})"
                    ));
                }
                None
            }
            row => {
                let statements = applier
                    .statements(row, &target)
                    .map_err(|e| format!("{shard}: {e}"))?;
                for sql in statements {
                    batch.push(';');
                    batch.push_str(&sql);
                }
                if batch.len() > MAX_BATCH {
                    conn.query_drop(std::mem::take(&mut batch))
                        .await
                        .map_err(failed(&shard, "applying a transaction"))?;
                    batch.push_str("DO 0");
                    sent = true;
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

/// Whether DDL text names `table` as a whole word (quoted or not).
fn names_table(sql: &str, table: &str) -> bool {
    sql.match_indices(table).any(|(at, _)| {
        let before = sql[..at].chars().next_back();
        let after = sql[at + table.len()..].chars().next();
        let edge =
            |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '$'));
        edge(before) && edge(after)
    })
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
    /// Rows per second at most (0: no limit).
    rate: u64,
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
        end: Option<Vec<String>>,
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
        let literals = |row: mysql_async::Row| -> Vec<String> {
            row.unwrap().into_iter().map(|v| v.as_sql(false)).collect()
        };
        // The copy ends at the greatest key it began with: rows inserted since are in the
        // stream, and a copy chasing them might never end.
        let end = match end {
            Some(end) => end,
            None => {
                let descending: Vec<String> =
                    self.key.iter().map(|k| format!("{k} DESC")).collect();
                let greatest: Option<mysql_async::Row> = conn
                    .query_first(format!(
                        "SELECT {} FROM {} ORDER BY {} LIMIT 1",
                        self.key.join(", "),
                        self.table,
                        descending.join(", ")
                    ))
                    .await
                    .map_err(failed(&shard, "finding the greatest key"))?;
                let Some(greatest) = greatest.map(literals) else {
                    return Ok(());
                };
                self.live.record.lock().expect("migration lock").parts[self.index].end_key =
                    Some(greatest.clone());
                greatest
            }
        };
        let up_to = format!("{key} <= {}", Self::literal_tuple(&end));
        loop {
            self.throttle(&mut conn).await?;
            let chunk_started = Instant::now();
            let mut conditions: Vec<String> = last
                .as_ref()
                .map(|l| format!("{key} > {}", Self::literal_tuple(l)))
                .into_iter()
                .chain([up_to.clone()])
                .collect();
            let boundary: Option<mysql_async::Row> = conn
                .query_first(format!(
                    "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 1 OFFSET {}",
                    self.key.join(", "),
                    self.table,
                    conditions.join(" AND "),
                    self.key.join(", "),
                    CHUNK - 1
                ))
                .await
                .map_err(failed(&shard, "finding the next chunk"))?;
            let boundary: Option<Vec<String>> = boundary.map(literals);
            if let Some(b) = &boundary {
                conditions.push(format!("{key} <= {}", Self::literal_tuple(b)));
            }
            let filter = format!(" WHERE {}", conditions.join(" AND "));
            conn.query_drop(format!(
                "INSERT IGNORE INTO {shadow} ({cols}) SELECT {cols} FROM {table}{filter}",
                shadow = self.shadow,
                cols = self.columns,
                table = self.table
            ))
            .await
            .map_err(failed(&shard, "copying a chunk"))?;
            let inserted = conn.affected_rows();
            // A row the stream wrote first is skipped on its primary key, as it should be. One
            // skipped on another unique key repeats a key the new schema makes unique: the
            // migration would lose it, so it fails instead.
            if conn.get_warnings() > 0 {
                let warnings: Vec<(String, u32, String)> = conn
                    .query("SHOW WARNINGS")
                    .await
                    .map_err(failed(&shard, "reading the copy's warnings"))?;
                if let Some((_, _, message)) = warnings.iter().find(|(_, code, m)| {
                    *code == 1062 && !m.ends_with("'PRIMARY'") && !m.ends_with(".PRIMARY'")
                }) {
                    return Err(format!(
                        "shard {shard}: rows repeat a key the new schema makes unique ({message}); \
                         the copy would drop them"
                    ));
                }
            }
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
            if self.rate > 0 {
                let due = Duration::from_secs_f64(inserted as f64 / self.rate as f64);
                tokio::time::sleep(due.saturating_sub(chunk_started.elapsed())).await;
            }
        }
    }

    /// Waits while a replica of the shard is more than [`MAX_LAG`] behind, or while the
    /// shard runs more than [`MAX_RUNNING`] statements at once (as gh-ost's max-load).
    async fn throttle(&self, conn: &mut Conn) -> Result<(), String> {
        loop {
            let behind = self
                .topo
                .backends
                .replica_lags(&self.keyspace, &self.shard)
                .into_iter()
                .any(|(_, lag, _, _)| lag.is_some_and(|l| l > MAX_LAG));
            let running: Option<(String, u64)> = conn
                .query_first("SHOW GLOBAL STATUS LIKE 'Threads_running'")
                .await
                .map_err(failed(&self.shard, "reading the shard's load"))?;
            let busy = running.is_some_and(|(_, n)| n > MAX_RUNNING);
            if !behind && !busy {
                return Ok(());
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
