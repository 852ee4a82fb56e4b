//! Comparing the sources with the targets while the streams run, as Vitess's VDiff does: each
//! source table is read in primary-key chunks, and the same key range is read on the shards its
//! rows go to, once the stream has applied everything the source had when the chunk was read.
//! Keys that differ (a row changed between the two reads, or a real difference) are read again
//! with the source's rows share-locked, so that they cannot change while the stream catches up:
//! what still differs then is a difference.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use changestream::current_position;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::mover::{failed, ident, literal, Endpoint, Mover, Place, TableLayout, CHUNK};

/// How long a chunk's comparison waits for the stream.
const STREAM_WAIT: Duration = Duration::from_secs(30);
/// Differences listed at most (all are counted).
const LISTED: usize = 20;

/// What a verify found.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub rows: u64,
    pub differences: u64,
    pub listed: Vec<String>,
}

impl Report {
    fn add(&mut self, what: String) {
        self.differences += 1;
        if self.listed.len() < LISTED {
            self.listed.push(what);
        }
    }
}

/// A chunk's rows on one side, each by its key's literals, and its column names.
#[derive(Default)]
struct Chunk {
    names: Vec<String>,
    rows: BTreeMap<Vec<String>, Vec<Value>>,
}

impl Chunk {
    fn name_of(&self) -> impl Fn(usize) -> Option<String> + '_ {
        |i| self.names.get(i).cloned()
    }
}

/// Compares what `source` streams to `targets` through `mover`, table by table.
pub(super) async fn source(
    source: &Endpoint,
    mover: &mut Mover,
    targets: &[Endpoint],
    tables: &[TableLayout],
    references: bool,
    report: &mut Report,
) -> Result<(), String> {
    let mut src = source.connect().await?;
    let mut dst = Vec::new();
    for t in targets {
        dst.push(t.connect().await?);
    }
    for layout in tables {
        if matches!(layout.place, Place::Reference) && !references {
            continue;
        }
        let mut last: Option<Vec<String>> = None;
        loop {
            let sql = format!(
                "SELECT * FROM {}.{}{} LIMIT {CHUNK}",
                ident(&source.db),
                ident(&layout.name),
                layout.after(last.as_deref())
            );
            let rows: Vec<Row> = src
                .exec(sql, ())
                .await
                .map_err(failed(&source.shard, "reading a chunk to verify"))?;
            let full = rows.len() == CHUNK;
            let source_rows = keyed(layout, rows)?;
            report.rows += source_rows.rows.len() as u64;
            let upper = full
                .then(|| source_rows.rows.keys().next_back().cloned())
                .flatten();
            let range = bounds(layout, last.as_deref(), upper.as_deref());
            catch_up(&mut src, source, mover).await?;
            let target_rows = read_targets(source, targets, &mut dst, layout, &range).await?;
            let differing = compare(source, targets, layout, &source_rows, &target_rows)?;
            if !differing.is_empty() {
                recheck(
                    source, mover, targets, &mut src, &mut dst, layout, differing, report,
                )
                .await?;
            }
            match upper {
                Some(u) => last = Some(u),
                None => break,
            }
        }
    }
    Ok(())
}

/// Waits until the stream has applied everything the source holds now.
async fn catch_up(src: &mut Conn, source: &Endpoint, mover: &mut Mover) -> Result<(), String> {
    let now = current_position(src)
        .await
        .map_err(|e| format!("{}: {e}", source.shard))?;
    mover
        .reach(&now, Instant::now() + STREAM_WAIT)
        .await
        .map_err(|why| format!("{}: {why}", source.shard))
}

/// A `WHERE` for the keys after `last` up to `upper` (either open).
fn bounds(layout: &TableLayout, last: Option<&[String]>, upper: Option<&[String]>) -> String {
    let key: Vec<String> = layout.key.iter().map(|c| ident(c)).collect();
    let key = key.join(", ");
    let mut conditions = Vec::new();
    if let Some(l) = last {
        conditions.push(format!("({key}) > ({})", l.join(", ")));
    }
    if let Some(u) = upper {
        conditions.push(format!("({key}) <= ({})", u.join(", ")));
    }
    match conditions.is_empty() {
        true => String::new(),
        false => format!(" WHERE {}", conditions.join(" AND ")),
    }
}

/// Rows by their key's literals.
fn keyed(layout: &TableLayout, rows: Vec<Row>) -> Result<Chunk, String> {
    let mut out = Chunk::default();
    for row in rows {
        let columns = row.columns_ref();
        let mut key = Vec::new();
        for k in &layout.key {
            let i = columns
                .iter()
                .position(|c| c.name_str().eq_ignore_ascii_case(k))
                .ok_or_else(|| format!("{}: no key column {k}", layout.name))?;
            key.push(literal(
                row.as_ref(i).unwrap_or(&Value::NULL),
                columns[i].character_set(),
            ));
        }
        if out.names.is_empty() {
            out.names = columns.iter().map(|c| c.name_str().into_owned()).collect();
        }
        out.rows.insert(key, row.unwrap());
    }
    Ok(out)
}

/// Each target's rows in the range that came from `source` (a merge's target holds other
/// sources' rows too).
async fn read_targets(
    source: &Endpoint,
    targets: &[Endpoint],
    dst: &mut [Conn],
    layout: &TableLayout,
    range: &str,
) -> Result<Vec<Chunk>, String> {
    let mut out = Vec::new();
    for (t, conn) in targets.iter().zip(dst.iter_mut()) {
        let key: Vec<String> = layout.key.iter().map(|c| ident(c)).collect();
        let sql = format!(
            "SELECT * FROM {}.{}{range} ORDER BY {}",
            ident(&t.db),
            ident(&layout.name),
            key.join(", ")
        );
        let rows: Vec<Row> = conn
            .exec(sql, ())
            .await
            .map_err(failed(&t.shard, "reading rows to verify"))?;
        let mut rows = keyed(layout, rows)?;
        if let Place::Sharded { vindex, columns } = &layout.place {
            let names = std::mem::take(&mut rows.names);
            rows.rows.retain(|_, values| {
                super::mover::keyspace_id(vindex, columns, values, |i| names.get(i).cloned())
                    .is_ok_and(|id| source.range.contains(&id.0))
            });
            rows.names = names;
        }
        out.push(rows);
    }
    Ok(out)
}

/// The keys whose rows are not where they should be, as they should be.
fn compare(
    source: &Endpoint,
    targets: &[Endpoint],
    layout: &TableLayout,
    source_rows: &Chunk,
    target_rows: &[Chunk],
) -> Result<Vec<(Vec<String>, String)>, String> {
    let mut out = Vec::new();
    for (key, values) in &source_rows.rows {
        let want = layout.destinations(targets, values, source_rows.name_of())?;
        for t in want {
            match target_rows[t].rows.get(key) {
                None => out.push((key.clone(), format!("missing on {}", targets[t].shard))),
                Some(v) if v != values => {
                    out.push((key.clone(), format!("differs on {}", targets[t].shard)))
                }
                Some(_) => {}
            }
        }
    }
    for (t, rows) in target_rows.iter().enumerate() {
        for key in rows.rows.keys() {
            if !source_rows.rows.contains_key(key) {
                out.push((
                    key.clone(),
                    format!("on {} but not on {}", targets[t].shard, source.shard),
                ));
            }
        }
    }
    Ok(out)
}

/// The differing keys again, with the source's rows share-locked while the stream catches up.
#[allow(clippy::too_many_arguments)]
async fn recheck(
    source: &Endpoint,
    mover: &mut Mover,
    targets: &[Endpoint],
    src: &mut Conn,
    dst: &mut [Conn],
    layout: &TableLayout,
    differing: Vec<(Vec<String>, String)>,
    report: &mut Report,
) -> Result<(), String> {
    let key: Vec<String> = layout.key.iter().map(|c| ident(c)).collect();
    let mut keys: Vec<Vec<String>> = differing.iter().map(|(k, _)| k.clone()).collect();
    keys.dedup();
    let list: Vec<String> = keys.iter().map(|k| format!("({})", k.join(", "))).collect();
    let range = format!(" WHERE ({}) IN ({})", key.join(", "), list.join(", "));
    src.query_drop("START TRANSACTION")
        .await
        .map_err(failed(&source.shard, "verifying"))?;
    let checked = async {
        let sql = format!(
            "SELECT * FROM {}.{}{range} LOCK IN SHARE MODE",
            ident(&source.db),
            ident(&layout.name)
        );
        let rows: Vec<Row> = src
            .exec(sql, ())
            .await
            .map_err(failed(&source.shard, "reading rows to verify"))?;
        let source_rows = keyed(layout, rows)?;
        catch_up(src, source, mover).await?;
        let target_rows = read_targets(source, targets, dst, layout, &range).await?;
        compare(source, targets, layout, &source_rows, &target_rows)
    }
    .await;
    let _ = src.query_drop("ROLLBACK").await;
    for (key, what) in checked? {
        report.add(format!("{}: key ({}) {what}", layout.name, key.join(", ")));
    }
    Ok(())
}
