//! One shard's stream of a reshard: copies its rows to the shards that own them now (by each
//! row's keyspace id), and applies its binlog's changes to them, in one task.
//!
//! The copy needs no snapshot and no lock. Changes are applied to every row, copied or not,
//! as `REPLACE`s and deletes by primary key, and a chunk is read only after the changes
//! received so far are applied. A chunk so reflects the source at a moment after the stream's
//! position, and every change after that moment is applied after the chunk is written: the
//! row ends as the source has it. Replaying changes already reflected does no harm, so a
//! restart resumes from any recorded pair of position and last key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use changestream::{
    current_position, Applier, Change, ChangeStream, Position, StreamOptions, Tables, Target,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Params, Row, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use vschema::{KeyRange, KeyValue, Vindex};

use super::store::TableCopy;
use super::Live;

/// Rows per chunk of the copy.
pub(super) const CHUNK: usize = 1000;
/// Changes applied between two chunks at most, so that the copy goes on under heavy writes
/// while the stream keeps up.
const CHANGES_PER_ROUND: usize = 5000;
/// Bytes of statements sent at once within a source transaction.
const MAX_BATCH: usize = 1 << 20;
/// How long a source's binlog is idle before the server says where it stands: a switch
/// waits about this long for a stream to show it has everything.
const HEARTBEAT: Duration = Duration::from_millis(25);
/// How often the stream's lag is measured and its progress published.
const TICK: Duration = Duration::from_millis(250);

/// A shard a reshard reads from or writes to, reached outside the pools.
#[derive(Clone)]
pub(super) struct Endpoint {
    pub shard: String,
    pub range: KeyRange,
    pub opts: Opts,
    pub db: String,
}

impl Endpoint {
    pub(super) async fn connect(&self) -> Result<Conn, String> {
        let mut conn = Conn::new(self.opts.clone())
            .await
            .map_err(failed(&self.shard, "connecting"))?;
        // TIMESTAMPs go as instants both ways, and the binlog's are applied under UTC.
        conn.query_drop(Applier::session())
            .await
            .map_err(failed(&self.shard, "setting up the connection"))?;
        Ok(conn)
    }
}

/// Where a table's rows go.
#[derive(Debug, Clone)]
pub(super) enum Place {
    /// By the keyspace id of these columns' values.
    Sharded {
        vindex: Arc<Vindex>,
        columns: Vec<String>,
    },
    /// Everywhere.
    Reference,
}

#[derive(Debug, Clone)]
pub(super) struct TableLayout {
    pub name: String,
    /// The primary key's columns, in order.
    pub key: Vec<String>,
    pub place: Place,
}

impl TableLayout {
    /// The shards (indexes into `to`) that `row` goes to, its columns named by `name_of`.
    pub(super) fn destinations(
        &self,
        to: &[Endpoint],
        row: &[Value],
        name_of: impl Fn(usize) -> Option<String>,
    ) -> Result<Vec<usize>, String> {
        let Place::Sharded { vindex, columns } = &self.place else {
            return Ok((0..to.len()).collect());
        };
        let id = keyspace_id(vindex, columns, row, name_of)
            .map_err(|e| format!("{}: a row's keyspace id: {e}", self.name))?;
        match to.iter().position(|e| e.range.contains(&id.0)) {
            Some(i) => Ok(vec![i]),
            None => Err(format!(
                "{}: a row's keyspace id {id} is on none of the shards it goes to",
                self.name
            )),
        }
    }

    /// `WHERE` over the key after `last` (none: from the start), and `ORDER BY` the key.
    pub(super) fn after(&self, last: Option<&[String]>) -> String {
        let key: Vec<String> = self.key.iter().map(|c| ident(c)).collect();
        let order = format!(" ORDER BY {}", key.join(", "));
        match last {
            None => order,
            Some(values) => format!(
                " WHERE ({}) > ({}){order}",
                key.join(", "),
                values.join(", ")
            ),
        }
    }
}

/// The keyspace id of the row whose vindex `columns` are found by `name_of` (column index →
/// name).
pub(super) fn keyspace_id(
    vindex: &Vindex,
    columns: &[String],
    row: &[Value],
    name_of: impl Fn(usize) -> Option<String>,
) -> Result<vschema::KeyspaceId, String> {
    let mut values = Vec::with_capacity(columns.len());
    for column in columns {
        let i = (0..row.len())
            .find(|&i| name_of(i).is_some_and(|n| n.eq_ignore_ascii_case(column)))
            .ok_or_else(|| format!("no column {column}"))?;
        values.push(key_value(&row[i]));
    }
    let value = match values.len() {
        1 => values.remove(0),
        _ => KeyValue::Tuple(values),
    };
    vindex.map(&value).map_err(|e| e.to_string())
}

/// A row's value as a vindex reads a literal.
fn key_value(v: &Value) -> KeyValue {
    match v {
        Value::Int(i) => KeyValue::Int(*i),
        Value::UInt(u) => i64::try_from(*u).map_or(KeyValue::UInt(*u), KeyValue::Int),
        Value::Bytes(b) => KeyValue::Text(b.clone()),
        Value::Float(f) => KeyValue::Decimal(f.to_string()),
        Value::Double(d) => KeyValue::Decimal(d.to_string()),
        other => KeyValue::Text(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}

/// `value` of a column with character set `charset` as an SQL literal that compares as the
/// column does: text under the column's collation, binary strings as bytes.
pub(super) fn literal(value: &Value, charset: u16) -> String {
    match value {
        Value::Bytes(b) => {
            let hex: String = b.iter().map(|b| format!("{b:02X}")).collect();
            match (b.is_empty(), charset) {
                (true, 63) => "X''".into(),
                (true, _) => "''".into(),
                (false, 63) => format!("X'{hex}'"),
                (false, _) => format!("_utf8mb4 X'{hex}'"),
            }
        }
        other => other.as_sql(true),
    }
}

pub(super) fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(super) fn failed<'a>(
    shard: &'a str,
    what: &'a str,
) -> impl Fn(mysql_async::Error) -> String + 'a {
    move |e| format!("{shard}: {what}: {e}")
}

/// What one stream does.
pub(super) struct Spec {
    pub from: Endpoint,
    pub to: Arc<Vec<Endpoint>>,
    pub tables: Arc<Vec<TableLayout>>,
    /// Whether this stream carries the reference tables (one stream does).
    pub references: bool,
    /// The copy's pace, at most.
    pub max_rows_per_sec: Option<u64>,
    pub live: Arc<Live>,
    pub index: usize,
}

/// A running stream: ends when dropped.
pub(super) struct Mover {
    task: Task,
    applied: watch::Receiver<Position>,
}

/// A task that ends when this is dropped.
struct Task(Option<JoinHandle<Result<(), String>>>);

impl Task {
    fn spawn(f: impl std::future::Future<Output = Result<(), String>> + Send + 'static) -> Task {
        Task(Some(tokio::spawn(f)))
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

impl Mover {
    /// Starts the stream from the position its state records, or from the shard's position
    /// now when it records none (before any row is copied).
    pub(super) async fn start(spec: Spec) -> Result<Mover, String> {
        let shard = spec.from.shard.clone();
        let mut control = spec.from.connect().await?;
        let recorded = spec.live.mover(spec.index).position;
        let from = match recorded.is_empty() {
            true => current_position(&mut control)
                .await
                .map_err(|e| format!("{shard}: {e}"))?,
            false => {
                let now = current_position(&mut control)
                    .await
                    .map_err(|e| format!("{shard}: {e}"))?;
                Position::parse(now.flavor(), &recorded).map_err(|e| format!("{shard}: {e}"))?
            }
        };
        spec.live
            .update_mover(spec.index, |m| m.position = from.to_string());
        let stream = ChangeStream::start(
            spec.from.opts.clone(),
            from.clone(),
            StreamOptions {
                tables: Tables::of_schema(&spec.from.db),
                heartbeat: HEARTBEAT,
                ..StreamOptions::default()
            },
        )
        .await
        .map_err(|e| format!("{shard}: {e}"))?;
        let mut dests = Vec::new();
        for e in spec.to.iter() {
            dests.push(Dest {
                conn: e.connect().await?,
                ready: String::new(),
                statements: String::new(),
                open: false,
            });
        }
        let applier = Applier::new(&mut dests[0].conn)
            .await
            .map_err(|e| format!("{}: {e}", spec.to[0].shard))?;
        let copy = match spec.live.mover(spec.index).tables.iter().all(|t| t.done) {
            true => None,
            false => Some(spec.from.connect().await?),
        };
        let (applied_tx, applied) = watch::channel(from);
        let run = Run {
            spec,
            control,
            copy,
            dests,
            applier,
            targets: HashMap::new(),
            applied: applied_tx,
            pending: None,
            sampled: None,
        };
        Ok(Mover {
            task: Task::spawn(run.run(stream)),
            applied,
        })
    }

    /// Why the stream stopped, once it has.
    pub(super) fn failure(&mut self) -> Option<String> {
        use futures_util::FutureExt;
        let handle = self.task.0.as_mut()?;
        if !handle.is_finished() {
            return None;
        }
        Some(match handle.now_or_never() {
            Some(Ok(Err(e))) => e,
            _ => "the stream stopped".into(),
        })
    }

    /// Waits until everything before `position` is applied, until `deadline`.
    pub(super) async fn reach(
        &mut self,
        position: &Position,
        deadline: Instant,
    ) -> Result<(), &'static str> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, self.applied.wait_for(|p| p.covers(position))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("the stream stopped"),
            Err(_) => Err("the stream did not catch up in time"),
        }
    }

    /// Ends the stream and waits until it has.
    pub(super) async fn stop(mut self) {
        if let Some(handle) = self.task.0.take() {
            handle.abort();
            let _ = handle.await;
        }
    }
}

/// A shard changes go to, and the statements of the source transaction for it so far.
struct Dest {
    conn: Conn,
    /// Whole source transactions not sent yet (`BEGIN;...;COMMIT;` each).
    ready: String,
    /// The current source transaction's statements so far.
    statements: String,
    /// A `BEGIN` was sent for the current source transaction.
    open: bool,
}

struct Run {
    spec: Spec,
    /// For the source's position.
    control: Conn,
    /// Reads the chunks; none once everything is copied.
    copy: Option<Conn>,
    dests: Vec<Dest>,
    applier: Applier,
    /// Each destination's columns of each table.
    targets: HashMap<(usize, String), Target>,
    applied: watch::Sender<Position>,
    /// Where the stream stands once the transactions waiting in `Dest::ready` are sent.
    pending: Option<Position>,
    /// The source's position at a moment, until the stream passes it: the lag.
    sampled: Option<(Position, Instant)>,
}

impl Run {
    async fn run(mut self, mut stream: ChangeStream) -> Result<(), String> {
        let shard = self.spec.from.shard.clone();
        // The stream is read in a task of its own, so that waiting for a change never
        // loses one: changes queue here while a chunk is copied.
        let (tx, mut rx) = mpsc::channel::<Result<Change, String>>(4096);
        let pump_shard = shard.clone();
        let _pump = Task::spawn(async move {
            loop {
                let change = stream
                    .next()
                    .await
                    .map_err(|e| format!("{pump_shard}: {e}"));
                let failed = change.is_err();
                if tx.send(change).await.is_err() || failed {
                    return Ok(());
                }
            }
        });
        let result = self.follow(&mut rx).await;
        if let Err(e) = &result {
            tracing::error!(shard = %shard, error = %e, "a reshard stream stopped");
        }
        result
    }

    async fn follow(
        &mut self,
        rx: &mut mpsc::Receiver<Result<Change, String>>,
    ) -> Result<(), String> {
        let mut tick = Instant::now();
        loop {
            let copying = self.copy.is_some();
            // Changes first: a chunk is read only after those received so far are applied.
            let mut applied = 0;
            while applied < CHANGES_PER_ROUND && tick.elapsed() < TICK {
                let change = match copying {
                    true => match rx.try_recv() {
                        Ok(c) => c,
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            return Err("the change stream ended".into())
                        }
                    },
                    false => {
                        match tokio::time::timeout(TICK.saturating_sub(tick.elapsed()), rx.recv())
                            .await
                        {
                            Ok(Some(c)) => c,
                            Ok(None) => return Err("the change stream ended".into()),
                            Err(_) => break,
                        }
                    }
                };
                self.apply(change?).await?;
                applied += 1;
                // Transactions that came together go to each shard in one round trip.
                if rx.is_empty() || self.waiting() > MAX_BATCH {
                    self.flush().await?;
                }
            }
            self.flush().await?;
            if copying {
                self.copy_chunk().await?;
            }
            if tick.elapsed() >= TICK {
                tick = Instant::now();
                self.measure().await?;
            }
        }
    }

    /// The stream's lag: the source's position is sampled, and how long the stream has not
    /// passed it is how far behind it is (0 once it has: a new sample is taken). Positions
    /// come with the stream's heartbeats, so a stream that keeps up may show up to a second.
    async fn measure(&mut self) -> Result<(), String> {
        let shard = &self.spec.from.shard;
        let applied = self.applied.borrow().clone();
        let lag = match &self.sampled {
            Some((p, _)) if applied.covers(p) => {
                self.sampled = None;
                Duration::ZERO
            }
            Some((_, at)) => at.elapsed(),
            None => Duration::ZERO,
        };
        if self.sampled.is_none() {
            let now = current_position(&mut self.control)
                .await
                .map_err(|e| format!("{shard}: {e}"))?;
            self.sampled = Some((now, Instant::now()));
        }
        let lag_ms = lag.as_millis() as u64;
        self.spec.live.update_mover(self.spec.index, |m| {
            m.position = applied.to_string();
            m.lag_ms = lag_ms;
        });
        Ok(())
    }

    /// Bytes of whole transactions waiting to be sent.
    fn waiting(&self) -> usize {
        self.dests.iter().map(|d| d.ready.len()).sum()
    }

    /// Sends the whole transactions waiting, then publishes the position they reach.
    async fn flush(&mut self) -> Result<(), String> {
        for (i, d) in self.dests.iter_mut().enumerate() {
            if d.ready.is_empty() {
                continue;
            }
            let sql = std::mem::take(&mut d.ready);
            d.conn
                .query_drop(sql.trim_end_matches(';'))
                .await
                .map_err(failed(&self.spec.to[i].shard, "applying transactions"))?;
        }
        if let Some(p) = self.pending.take() {
            self.applied.send_replace(p);
        }
        Ok(())
    }

    async fn apply(&mut self, change: Change) -> Result<(), String> {
        let shard = self.spec.from.shard.clone();
        match change {
            Change::Begin { .. } => {
                for d in &mut self.dests {
                    d.statements.clear();
                    d.open = false;
                }
            }
            Change::Commit { position } => {
                for d in self.dests.iter_mut() {
                    if d.statements.is_empty() && !d.open {
                        continue;
                    }
                    if !d.open {
                        d.ready.push_str("BEGIN;");
                    }
                    d.ready.push_str(&std::mem::take(&mut d.statements));
                    d.ready.push_str("COMMIT;");
                    d.open = false;
                }
                self.pending = Some(position);
            }
            Change::Rollback => {
                for d in &mut self.dests {
                    d.statements.clear();
                    if d.open {
                        d.open = false;
                        let _ = d.conn.query_drop("ROLLBACK").await;
                    }
                }
            }
            Change::Heartbeat { position } => {
                self.pending = Some(position);
            }
            Change::Statement { sql, .. } => {
                return Err(format!(
                    "{shard}: the keyspace's schema changed during the reshard ({sql}); \
                     cancel it and start again"
                ));
            }
            Change::Insert { ref table, ref row } | Change::Delete { ref table, ref row } => {
                let (table, row) = (table.clone(), row.clone());
                self.route(&change, &table, &row).await?;
            }
            Change::Update {
                ref table,
                ref before,
                ref after,
            } => {
                let Some(layout) = self.layout(&table.name)? else {
                    return Ok(());
                };
                let name_of = |i: usize| table.columns.get(i).map(|c| c.name.clone());
                let from = layout.destinations(&self.spec.to, before, name_of)?;
                let to = layout.destinations(&self.spec.to, after, name_of)?;
                if from == to {
                    self.route(&change, table, after).await?;
                } else {
                    // The row's keyspace id changed: it leaves one shard for another.
                    let delete = Change::Delete {
                        table: table.clone(),
                        row: before.clone(),
                    };
                    let insert = Change::Insert {
                        table: table.clone(),
                        row: after.clone(),
                    };
                    self.route(&delete, table, before).await?;
                    self.route(&insert, table, after).await?;
                }
            }
        }
        Ok(())
    }

    /// The layout of a table a change names: none for those this stream leaves alone (the
    /// reference tables of the other streams, the proxy's own `_` tables).
    fn layout(&self, name: &str) -> Result<Option<TableLayout>, String> {
        match self.spec.tables.iter().find(|t| t.name == name) {
            Some(t) if matches!(t.place, Place::Reference) && !self.spec.references => Ok(None),
            Some(t) => Ok(Some(t.clone())),
            None if name.starts_with('_') => Ok(None),
            None => Err(format!(
                "{}: a change to table {name}, which the reshard does not move (made after it \
                 began?)",
                self.spec.from.shard
            )),
        }
    }

    /// Adds a row change's statements to the shards it goes to.
    async fn route(
        &mut self,
        change: &Change,
        table: &changestream::Table,
        row: &[Value],
    ) -> Result<(), String> {
        let Some(layout) = self.layout(&table.name)? else {
            return Ok(());
        };
        let name_of = |i: usize| table.columns.get(i).map(|c| c.name.clone());
        for i in layout.destinations(&self.spec.to, row, name_of)? {
            let target = self.target(i, &table.name).await?;
            let statements = self
                .applier
                .statements(change, &target)
                .map_err(|e| format!("{}: {e}", self.spec.to[i].shard))?;
            let d = &mut self.dests[i];
            for sql in statements {
                d.statements.push_str(&sql);
                d.statements.push(';');
            }
            if d.statements.len() > MAX_BATCH {
                // A large transaction goes in parts, after those before it.
                let begin = if d.open { "" } else { "BEGIN;" };
                let sql = format!(
                    "{}{begin}{}DO 0",
                    std::mem::take(&mut d.ready),
                    std::mem::take(&mut d.statements)
                );
                d.conn
                    .query_drop(sql)
                    .await
                    .map_err(failed(&self.spec.to[i].shard, "applying a transaction"))?;
                d.open = true;
            }
        }
        Ok(())
    }

    async fn target(&mut self, i: usize, table: &str) -> Result<Target, String> {
        let key = (i, table.to_string());
        if let Some(t) = self.targets.get(&key) {
            return Ok(t.clone());
        }
        let e = &self.spec.to[i];
        let t = Target::read(&mut self.dests[i].conn, &e.db, table)
            .await
            .map_err(|err| format!("{}: {err}", e.shard))?;
        self.targets.insert(key, t.clone());
        Ok(t)
    }

    /// Copies the next chunk of the first table not copied yet.
    async fn copy_chunk(&mut self) -> Result<(), String> {
        let state = self.spec.live.mover(self.spec.index);
        let Some(t) = state.tables.iter().position(|t| !t.done) else {
            self.copy = None;
            return Ok(());
        };
        let copy: &TableCopy = &state.tables[t];
        let layout = self
            .spec
            .tables
            .iter()
            .find(|l| l.name == copy.name)
            .cloned()
            .ok_or_else(|| format!("no layout for {}", copy.name))?;
        let shard = self.spec.from.shard.clone();
        let sql = format!(
            "SELECT * FROM {}.{}{} LIMIT {CHUNK}",
            ident(&self.spec.from.db),
            ident(&layout.name),
            layout.after(copy.last_key.as_deref())
        );
        let conn = self.copy.as_mut().expect("copying");
        let rows: Vec<Row> = conn
            .exec(sql, ())
            .await
            .map_err(failed(&shard, "reading a chunk"))?;
        let done = rows.len() < CHUNK;
        let last_key = match rows.last() {
            Some(last) => Some(key_literals(&layout, last)?),
            None => copy.last_key.clone(),
        };
        let count = rows.len() as u64;
        let mut per_dest: Vec<Vec<Vec<Value>>> = vec![Vec::new(); self.spec.to.len()];
        let mut columns: Vec<String> = Vec::new();
        for row in rows {
            if columns.is_empty() {
                columns = row
                    .columns_ref()
                    .iter()
                    .map(|c| c.name_str().into_owned())
                    .collect();
            }
            let values = row.unwrap();
            let name_of = |i: usize| columns.get(i).cloned();
            for i in layout.destinations(&self.spec.to, &values, name_of)? {
                per_dest[i].push(values.clone());
            }
        }
        for (i, rows) in per_dest.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let e = &self.spec.to[i];
            write_rows(&mut self.dests[i].conn, e, &layout.name, &columns, rows).await?;
        }
        if let Some(rate) = self.spec.max_rows_per_sec {
            let pause = Duration::from_secs_f64(count as f64 / rate.max(1) as f64);
            tokio::time::sleep(pause).await;
        }
        self.spec.live.update_mover(self.spec.index, |m| {
            m.copied += count;
            let table = &mut m.tables[t];
            table.last_key = last_key;
            table.done = done;
        });
        Ok(())
    }
}

/// The row's primary key as literals for the next chunk's `WHERE`.
fn key_literals(layout: &TableLayout, row: &Row) -> Result<Vec<String>, String> {
    let columns = row.columns_ref();
    layout
        .key
        .iter()
        .map(|k| {
            let i = columns
                .iter()
                .position(|c| c.name_str().eq_ignore_ascii_case(k))
                .ok_or_else(|| format!("{}: no key column {k} in a chunk", layout.name))?;
            let value = row.as_ref(i).cloned().unwrap_or(Value::NULL);
            Ok(literal(&value, columns[i].character_set()))
        })
        .collect()
}

/// `REPLACE`s rows into `table` on `e`, as many per statement as placeholders allow.
pub(super) async fn write_rows(
    conn: &mut Conn,
    e: &Endpoint,
    table: &str,
    columns: &[String],
    rows: Vec<Vec<Value>>,
) -> Result<(), String> {
    let per_statement = (u16::MAX as usize / columns.len().max(1)).clamp(1, CHUNK);
    let names: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    for part in rows.chunks(per_statement) {
        let sql = format!(
            "REPLACE INTO {}.{} ({}) VALUES {}",
            ident(&e.db),
            ident(table),
            names.join(", "),
            vec![one.as_str(); part.len()].join(", ")
        );
        let params: Vec<Value> = part.iter().flatten().cloned().collect();
        conn.exec_drop(sql, Params::Positional(params))
            .await
            .map_err(failed(&e.shard, "writing a chunk"))?;
    }
    Ok(())
}
