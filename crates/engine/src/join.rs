//! Running a [`Join`]: the left side's rows (bounded), then for each batch of them the right side
//! once, asked for the batch's distinct keys; joined rows flow through the join's stages.

use std::collections::HashMap;
use std::sync::Arc;

use vschema::VSchema;

use crate::eval::Evaluator;
use crate::lookup::key_value;
use crate::plan::{Hole, Join, JoinColumn, JoinKind, JoinRight, Opcode, Route};
use crate::pullout::{collect_at_most, literal};
use crate::select::{build, finish, push, Flow};
use crate::{Collected, Column, EngineError, ExecOptions, Executor, Outcome, RowSink, Value};

/// Left rows per right query: bounds the right query's text and the rows held per batch.
const BATCH: usize = 256;

pub(crate) async fn execute<E: Executor, S: RowSink>(
    join: &Join,
    vschema: &VSchema,
    executor: &E,
    sink: &mut S,
    options: &ExecOptions,
) -> Result<Outcome, EngineError> {
    let max = options.max_buffered_rows;
    let (left, more) = collect_at_most(&join.left, vschema, executor, options, max).await?;
    if more {
        return Err(EngineError::TooManyRows(max));
    }
    if join.left_keys.iter().any(|&k| k >= left.columns.len()) {
        return Err(EngineError::Bug(
            "a join key past the left side's columns".into(),
        ));
    }
    let mut stages = None;
    let mut on = None;
    let mut expanded = Vec::new();
    let mut out = Vec::new();
    let mut batches = left.rows.chunks(BATCH).peekable();
    // An empty left side still asks the right side once, for its columns.
    let empty: &[Vec<Value>] = &[];
    let first = batches.peek().is_none().then_some(empty);
    for batch in first.into_iter().chain(batches) {
        let keyed = Keys::of(batch, &join.left_keys, &left.columns);
        let right = run_right(&join.right, &keyed, vschema, executor, options).await?;
        let width = right.columns.len().saturating_sub(1);
        if stages.is_none() {
            expanded = JoinColumn::expand(&join.columns, left.columns.len(), width);
            let columns: Vec<Column> = expanded
                .iter()
                .map(|c| match c {
                    JoinColumn::Left(i) => left.columns.get(*i).cloned(),
                    JoinColumn::Right(i) => right.columns.get(*i).filter(|_| *i < width).cloned(),
                    _ => None,
                })
                .collect::<Option<_>>()
                .ok_or_else(|| EngineError::Bug("a join column out of range".into()))?;
            on = join.on.as_ref().map(|e| (Evaluator::new(&columns), e));
            let (runs, output) = build(&join.stages, columns, options)?;
            sink.columns(Arc::from(output)).await?;
            stages = Some(runs);
        }
        let runs = stages.as_mut().expect("built above");
        // Right rows by the keys they matched (the last column: "0,3").
        let mut matched: Vec<Vec<usize>> = vec![Vec::new(); keyed.keys.len()];
        for (r, row) in right.rows.iter().enumerate() {
            let list = match row.last() {
                Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => continue,
            };
            for k in list
                .split(',')
                .filter_map(|k| k.trim().parse::<usize>().ok())
            {
                if let Some(m) = matched.get_mut(k) {
                    m.push(r);
                }
            }
        }
        for (row, key) in batch.iter().zip(&keyed.of_row) {
            let rights = key.map(|k| matched[k].as_slice()).unwrap_or_default();
            let joined = |right: Option<&Vec<Value>>| -> Vec<Value> {
                expanded
                    .iter()
                    .map(|c| match (c, right) {
                        (JoinColumn::Left(i), _) => row[*i].clone(),
                        (JoinColumn::Right(i), Some(r)) => r[*i].clone(),
                        _ => Value::NULL,
                    })
                    .collect()
            };
            let mut flow = Flow::Continue;
            let mut any = false;
            let each = matches!(join.kind, JoinKind::Inner | JoinKind::LeftOuter);
            for &r in rights {
                let pair = joined(Some(&right.rows[r]));
                if let Some((eval, predicate)) = &on {
                    if !eval.matches(predicate, &pair)? {
                        continue;
                    }
                }
                any = true;
                if !each {
                    break;
                }
                flow = push(runs, 0, pair, &mut out)?;
                if flow == Flow::Stop {
                    break;
                }
            }
            let alone = match join.kind {
                JoinKind::LeftOuter | JoinKind::Anti => !any,
                JoinKind::Semi => any,
                JoinKind::Inner => false,
            };
            if alone {
                flow = push(runs, 0, joined(None), &mut out)?;
            }
            for r in out.drain(..) {
                sink.row(r).await?;
            }
            if flow == Flow::Stop {
                return Ok(Outcome::default());
            }
        }
    }
    if let Some(runs) = stages.as_mut() {
        finish(runs, 0, &mut out)?;
    }
    for r in out.drain(..) {
        sink.row(r).await?;
    }
    Ok(Outcome::default())
}

/// A batch's distinct join keys (as SQL literals) and each row's key (none when a key is NULL:
/// NULL matches nothing).
struct Keys {
    keys: Vec<Vec<String>>,
    /// The first key's value of each distinct key, for routing.
    values: Vec<Value>,
    of_row: Vec<Option<usize>>,
}

impl Keys {
    fn of(rows: &[Vec<Value>], key_columns: &[usize], columns: &[Column]) -> Keys {
        let mut index: HashMap<Vec<String>, usize> = HashMap::new();
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut of_row = Vec::with_capacity(rows.len());
        for row in rows {
            if key_columns.iter().any(|&c| matches!(row[c], Value::NULL)) {
                of_row.push(None);
                continue;
            }
            let key: Vec<String> = key_columns
                .iter()
                .map(|&c| literal(&row[c], &columns[c]))
                .collect();
            let next = keys.len();
            let k = *index.entry(key.clone()).or_insert_with(|| {
                keys.push(key);
                values.push(row[key_columns[0]].clone());
                next
            });
            of_row.push(Some(k));
        }
        Keys {
            keys,
            values,
            of_row,
        }
    }
}

/// The right query for these keys, on the shards that can hold their rows.
async fn run_right<E: Executor>(
    right: &JoinRight,
    keyed: &Keys,
    vschema: &VSchema,
    executor: &E,
    options: &ExecOptions,
) -> Result<Collected, EngineError> {
    let tuple = |key: &[String]| {
        if key.len() == 1 {
            key[0].clone()
        } else {
            format!("({})", key.join(", "))
        }
    };
    let (matches, list) = if keyed.keys.is_empty() {
        // No key: a query that returns no row, for the columns.
        ("NULL".to_string(), "NULL".to_string())
    } else {
        let tests: Vec<String> = keyed
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let equal: Vec<String> = right
                    .keys
                    .iter()
                    .zip(key)
                    .map(|(column, value)| format!("{column} = {value}"))
                    .collect();
                format!("IF({}, {i}, NULL)", equal.join(" AND "))
            })
            .collect();
        let list: Vec<String> = keyed.keys.iter().map(|k| tuple(k)).collect();
        (tests.join(", "), list.join(", "))
    };
    let query = right.query.render(|hole| match hole {
        Hole::Matches => matches.as_str(),
        Hole::Keys => list.as_str(),
        Hole::Subquery(_) | Hole::Limit => "NULL",
    });
    let opcode = match &right.vindex {
        _ if keyed.keys.is_empty() => match right.opcode {
            Opcode::Unsharded => Opcode::Unsharded,
            _ => Opcode::Reference,
        },
        Some(vindex) => {
            let values: Option<Vec<_>> = keyed.values.iter().map(key_value).collect();
            match values.filter(|vs| vs.iter().all(|v| vindex.map(v).is_ok())) {
                Some(values) => Opcode::In {
                    vindex: vindex.clone(),
                    values,
                },
                // A key the vindex cannot map (MySQL may still equate it): every shard.
                None => Opcode::Scatter,
            }
        }
        None => right.opcode.clone(),
    };
    let plan = crate::Plan::Route(Route {
        keyspace: right.keyspace.clone(),
        opcode,
        query,
        elsewhere: None,
    });
    let max = options.max_buffered_rows;
    let (rows, more) = collect_at_most(&plan, vschema, executor, options, max).await?;
    if more {
        return Err(EngineError::TooManyRows(max));
    }
    Ok(rows)
}
