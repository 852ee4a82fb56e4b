//! Running a merged SELECT: shard streams → source (merge or concatenation) → stages → client.
//! Stages are pushed one row at a time; only aggregation (one group) and MemorySort (bounded)
//! hold rows.

use std::sync::Arc;

use vschema::Keyspace;

use crate::compare::{text_prefix, Comparator, SortKey};
use crate::eval::{EvalExpr, Evaluator};
use crate::fanout::{with_streams, Row as StreamRow};
use crate::merge_sort::Source;
use crate::ordered_aggregate::AggregateRun;
use crate::plan::{MergedSelect, OutputColumn, Partial, Stage};
use crate::projection::ProjectionRun;
use crate::route::shards_for;
use crate::{Column, EngineError, ExecOptions, Executor, Outcome, RowSink, Value};

type Row = Vec<Value>;

pub(crate) enum Run<'p> {
    Aggregate(AggregateRun),
    Filter(Evaluator, &'p EvalExpr),
    Sort {
        cmp: Comparator,
        rows: Vec<Row>,
        max: usize,
    },
    Limit {
        skip: u64,
        left: u64,
    },
    Project(ProjectionRun),
    Drop(usize),
    /// The column holding a row's match count.
    AtMostOne(usize),
    Partials(&'p [Partial]),
}

#[derive(PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// Enough rows: stop reading.
    Stop,
}

pub(crate) fn build<'p>(
    stages: &'p [Stage],
    mut columns: Vec<Column>,
    options: &ExecOptions,
) -> Result<(Vec<Run<'p>>, Vec<Column>), EngineError> {
    let mut runs = Vec::with_capacity(stages.len());
    for stage in stages {
        runs.push(match stage {
            Stage::OrderedAggregate {
                group,
                aggregates,
                rollup,
            } => Run::Aggregate(AggregateRun::new(group, aggregates, &columns, *rollup)?),
            Stage::Filter { predicate } => Run::Filter(Evaluator::new(&columns), predicate),
            Stage::MemorySort { keys } => Run::Sort {
                cmp: Comparator::new(keys, &columns)?,
                rows: Vec::new(),
                max: options.max_buffered_rows,
            },
            Stage::Limit { offset, count } => Run::Limit {
                skip: *offset,
                left: *count,
            },
            Stage::DropHidden { count } => {
                let keep = columns.len().checked_sub(*count).ok_or_else(|| {
                    EngineError::Bug(format!("dropping {count} of {} columns", columns.len()))
                })?;
                columns.truncate(keep);
                Run::Drop(keep)
            }
            Stage::AtMostOne => {
                let count = columns
                    .len()
                    .checked_sub(1)
                    .ok_or_else(|| EngineError::Bug("a match count of no column".into()))?;
                columns.truncate(count);
                Run::AtMostOne(count)
            }
            Stage::Partials { partials } => {
                for p in partials {
                    let def = match p {
                        Partial::Count(_) => {
                            Column::new(mysql_common::constants::ColumnType::MYSQL_TYPE_LONGLONG)
                                .with_character_set(63)
                        }
                        Partial::Value(i) => columns
                            .get(*i)
                            .ok_or_else(|| EngineError::Bug(format!("partial of column {i}")))?
                            .clone(),
                    };
                    columns.push(def);
                }
                Run::Partials(partials)
            }
            Stage::Projection { columns: output } => {
                let (run, defs) = ProjectionRun::new(output, &columns)?;
                columns = defs;
                Run::Project(run)
            }
        });
    }
    Ok((runs, columns))
}

/// Pushes `row` through `runs[at..]`, collecting what comes out of the last one.
pub(crate) fn push(
    runs: &mut [Run<'_>],
    at: usize,
    row: Row,
    out: &mut Vec<Row>,
) -> Result<Flow, EngineError> {
    let Some(run) = runs.get_mut(at) else {
        out.push(row);
        return Ok(Flow::Continue);
    };
    // Most stages pass on at most the one row (no vector per row); an aggregate may pass on
    // several.
    let mut produced = Vec::new();
    let one = match run {
        Run::Aggregate(a) => {
            a.push(row, &mut produced)?;
            None
        }
        Run::Filter(f, predicate) => f.matches(predicate, &row)?.then_some(row),
        Run::Sort { rows, max, cmp } => {
            if rows.len() >= *max {
                return Err(EngineError::TooManyRows(*max));
            }
            cmp.check(&row)?;
            rows.push(row);
            None
        }
        Run::Limit { skip, left } => {
            let mut one = None;
            if *skip > 0 {
                *skip -= 1;
            } else if *left > 0 {
                *left -= 1;
                one = Some(row);
            }
            if *left == 0 {
                if let Some(r) = one {
                    push(runs, at + 1, r, out)?;
                }
                return Ok(Flow::Stop);
            }
            one
        }
        Run::Project(p) => Some(p.apply(&row)?),
        Run::Drop(keep) => {
            let mut row = row;
            row.truncate(*keep);
            Some(row)
        }
        Run::AtMostOne(count) => {
            let mut row = row;
            let matches = match row.get(*count) {
                Some(Value::Int(n)) => u64::try_from(*n).ok(),
                Some(Value::UInt(n)) => Some(*n),
                Some(Value::Bytes(b)) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.trim().parse().ok()),
                _ => None,
            }
            .ok_or_else(|| EngineError::Bug(format!("a match count of {:?}", row.get(*count))))?;
            if matches > 1 {
                return Err(EngineError::SubqueryRows);
            }
            row.truncate(*count);
            Some(row)
        }
        Run::Partials(partials) => {
            let mut row = row;
            for p in partials.iter() {
                let v = match *p {
                    Partial::Count(c) => {
                        let counts = c.is_none_or(|i| !matches!(row[i], Value::NULL));
                        Value::Bytes(if counts { b"1" } else { b"0" }.to_vec())
                    }
                    Partial::Value(i) => row[i].clone(),
                };
                row.push(v);
            }
            Some(row)
        }
    };
    for r in one.into_iter().chain(produced) {
        if push(runs, at + 1, r, out)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// The input has ended: flushes each stage in order into the ones after it.
pub(crate) fn finish(
    runs: &mut [Run<'_>],
    at: usize,
    out: &mut Vec<Row>,
) -> Result<(), EngineError> {
    if at >= runs.len() {
        return Ok(());
    }
    let mut produced = Vec::new();
    match &mut runs[at] {
        Run::Aggregate(a) => a.finish(&mut produced)?,
        Run::Sort { cmp, rows, .. } => {
            rows.sort_by(|a, b| cmp.compare(a, b));
            produced.append(rows);
        }
        Run::Filter(..)
        | Run::Limit { .. }
        | Run::Project(_)
        | Run::Drop(_)
        | Run::AtMostOne(_)
        | Run::Partials(_) => {}
    }
    for r in produced {
        if push(runs, at + 1, r, out)? == Flow::Stop {
            return Ok(());
        }
    }
    finish(runs, at + 1, out)
}

/// How many columns a row keeps when the stages do no more than a DISTINCT over the merge:
/// group by the merge's own keys without aggregates or HAVING, then project the leading
/// columns as they are.
fn distinct_width(select: &MergedSelect) -> Option<usize> {
    match &select.stages[..] {
        [Stage::OrderedAggregate {
            group,
            aggregates,
            rollup: false,
        }, Stage::Projection { columns }]
            if aggregates.is_empty()
                && !group.is_empty()
                && *group == select.merge
                && select.wildcard.is_none()
                && (0..columns.len()).all(|i| columns[i] == OutputColumn::Column(i)) =>
        {
            Some(columns.len())
        }
        _ => None,
    }
}

pub(crate) async fn execute<E: Executor, S: RowSink>(
    select: &MergedSelect,
    keyspace: &Keyspace,
    vschema: &vschema::VSchema,
    executor: &E,
    sink: &mut S,
    options: &ExecOptions,
) -> Result<Outcome, EngineError> {
    let shards = shards_for(&select.route.opcode, keyspace, vschema, executor).await?;
    let queries: Vec<(usize, &str)> = shards
        .iter()
        .enumerate()
        .map(|(n, &i)| (i, select.route.text_for(n)))
        .collect();
    with_streams(keyspace, &queries, executor, |mut streams| async move {
        let mut columns: Option<Arc<[Column]>> = None;
        for stream in &mut streams {
            let c = stream.columns().await?;
            if columns.is_none() {
                columns = c;
            }
        }
        let columns = columns
            .ok_or_else(|| EngineError::Bug("a merged SELECT returned no columns".into()))?;
        let merge = match select.wildcard {
            None => select.merge.clone(),
            Some(w) => {
                // `*` expanded to `columns.len() - hidden - (items - 1)` columns.
                let shift = columns
                    .len()
                    .checked_sub(w.hidden + w.items)
                    .ok_or_else(|| EngineError::Bug("fewer columns than the select list".into()))?;
                let at = |c: usize| if c >= w.items { c + shift } else { c };
                select
                    .merge
                    .iter()
                    .map(|k| SortKey {
                        column: at(k.column),
                        weight: k.weight.map_column(at),
                        desc: k.desc,
                    })
                    .collect()
            }
        };
        let mut source = if merge.is_empty() {
            Source::concat(streams)
        } else {
            Source::merge(streams, Comparator::new(&merge, &columns)?)
        };
        let width = columns.len();
        let (mut runs, output) = build(&select.stages, columns.to_vec(), options)?;
        sink.columns(Arc::from(output)).await?;
        let mut out = Vec::new();
        let mut stopped = false;
        // Without stages, or with only the helper columns (sort weights) to drop, a text row
        // goes on as the shard sent it, cut short before the helpers. So does the first row of
        // each group when the groups are all there is to it (DISTINCT, GROUP BY without
        // aggregates): the merge's keys tell rows of one group apart from the next.
        let distinct = distinct_width(select);
        let relay = match &runs[..] {
            [] => Some(width),
            [Run::Drop(keep)] => Some(*keep),
            _ => distinct,
        };
        loop {
            if !(source.ready()? || source.advance().await?) {
                break;
            }
            if distinct.is_some() && source.repeats() {
                source.take()?;
                continue;
            }
            let row = match (source.take()?, relay) {
                (StreamRow::Text(payload), Some(keep)) => {
                    sink.text_row(text_prefix(payload, keep)?, keep).await?;
                    continue;
                }
                (row, _) => row.into_values(width)?,
            };
            stopped = push(&mut runs, 0, row, &mut out)? == Flow::Stop;
            for r in out.drain(..) {
                sink.row(r).await?;
            }
            if stopped {
                break;
            }
        }
        if stopped {
            return Ok(Outcome::default());
        }
        finish(&mut runs, 0, &mut out)?;
        for r in out.drain(..) {
            sink.row(r).await?;
        }
        let mut outcome = source.outcome().await?;
        for run in &mut runs {
            if let Run::Aggregate(a) = run {
                if let Some(warnings) = a.take_warnings() {
                    outcome.replace_warnings(1260, warnings);
                }
            }
        }
        Ok(outcome)
    })
    .await
}
