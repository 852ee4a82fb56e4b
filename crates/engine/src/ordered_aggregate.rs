//! Merging the shards' partial aggregates, one group at a time. The input is sorted by the group
//! keys (and, for DISTINCT aggregates, by the distinct value), so a group ends when its keys change
//! and only one group is held.

use std::cmp::Ordering;

use crate::compare::{ColumnKind, Comparator, SortKey};
use crate::decimal::Decimal;
use crate::plan::{Aggregate, AggregateKind, BitOp};
use crate::{Column, EngineError, Value};

pub(crate) struct AggregateRun {
    group: Comparator,
    aggregates: Vec<(Aggregate, ColumnKind, Option<Comparator>)>,
    current: Option<Vec<Value>>,
    /// For DISTINCT aggregates: the previous row of the group (its distinct value).
    previous: Option<Vec<Value>>,
    /// Without group keys the result is one row even for no input (COUNT 0, others NULL).
    scalar: Option<usize>,
    seen: bool,
    /// WITH ROLLUP: comparators of the keys' prefixes (1..=n keys), and the running totals of
    /// each prefix (0..n keys).
    rollup: Option<Rollup>,
    /// GROUP_CONCAT: the current group's `group_concat_max_len`, the columns it cut, whether
    /// each column is a binary string (cut anywhere, not at a character's end), how many groups
    /// have ended, and the warnings of those it cut.
    concat_max: usize,
    cut: Vec<usize>,
    binary: Vec<bool>,
    groups: u64,
    warnings: Vec<Vec<Value>>,
}

struct Rollup {
    keys: Vec<SortKey>,
    prefixes: Vec<Comparator>,
    totals: Vec<Option<Vec<Value>>>,
}

fn text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(b.clone()),
        other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}

fn overflow(what: &str) -> EngineError {
    EngineError::OutOfRange(format!("{what} of the shards' results"))
}

/// `a + b` for SUM/COUNT partials of a column kind; NULL is "no value yet".
/// A BIT_* result: an unsigned 64-bit number.
fn bits(v: &Value) -> Option<u64> {
    match v {
        Value::UInt(u) => Some(*u),
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// Cuts `s` to `max` bytes, at a character's end unless `binary`; whether it cut anything.
fn cut_to(s: &mut Vec<u8>, max: usize, binary: bool) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    // A UTF-8 continuation byte (10xxxxxx) is inside a character.
    while !binary && end > 0 && s[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    s.truncate(end);
    true
}

/// Whether none of the `keys`' columns is NULL in `row`.
fn complete(row: &[Value], keys: &[SortKey]) -> bool {
    keys.iter().all(|k| !matches!(row[k.column], Value::NULL))
}

/// A value as a double (NULL: none).
pub(crate) fn float(v: &Value) -> Result<Option<f64>, EngineError> {
    match v {
        Value::NULL => Ok(None),
        Value::Double(d) => Ok(Some(*d)),
        other => text(other)
            .and_then(|t| std::str::from_utf8(&t).ok()?.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| EngineError::Bug(format!("{other:?} is not a number"))),
    }
}

/// The population variance of two parts, each (count, sum, variance), put together.
fn combined_variance(a: (f64, f64, f64), b: (f64, f64, f64)) -> f64 {
    let ((na, sa, va), (nb, sb, vb)) = (a, b);
    let n = na + nb;
    let delta = sb / nb - sa / na;
    (va * na + vb * nb + delta * delta * na * nb / n) / n
}

fn add(kind: ColumnKind, a: &Value, b: &Value) -> Result<Value, EngineError> {
    let (Some(x), Some(y)) = (text(a), text(b)) else {
        return Ok(if matches!(a, Value::NULL) {
            b.clone()
        } else {
            a.clone()
        });
    };
    if kind == ColumnKind::Float {
        let parse = |t: &[u8]| {
            std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
        };
        let (Some(p), Some(q)) = (parse(&x), parse(&y)) else {
            return Err(overflow("sum"));
        };
        return Ok(Value::Bytes((p + q).to_string().into_bytes()));
    }
    let (Some(p), Some(q)) = (Decimal::parse(&x), Decimal::parse(&y)) else {
        return Err(overflow("sum"));
    };
    Ok(Value::Bytes(
        p.checked_add(q)
            .ok_or_else(|| overflow("sum"))?
            .to_string()
            .into_bytes(),
    ))
}

impl AggregateRun {
    pub fn new(
        group: &[SortKey],
        aggregates: &[Aggregate],
        columns: &[Column],
        rollup: bool,
    ) -> Result<Self, EngineError> {
        let rollup = match rollup {
            false => None,
            true => Some(Rollup {
                keys: group.to_vec(),
                prefixes: (1..=group.len())
                    .map(|n| Comparator::new(&group[..n], columns))
                    .collect::<Result<_, _>>()?,
                totals: vec![None; group.len()],
            }),
        };
        let mut resolved = Vec::new();
        for a in aggregates {
            let column = columns
                .get(a.column)
                .ok_or_else(|| EngineError::Bug(format!("aggregate column {}", a.column)))?;
            // The other columns an aggregate reads.
            let reads: &[usize] = match &a.kind {
                AggregateKind::Variance { count, sum } => &[*count, *sum],
                AggregateKind::GroupConcat { max_len, .. } => std::slice::from_ref(max_len),
                _ => &[],
            };
            if let Some(c) = reads.iter().find(|&&c| c >= columns.len()) {
                return Err(EngineError::Bug(format!("aggregate reads column {c}")));
            }
            let kind = match a.kind {
                AggregateKind::Count | AggregateKind::CountDistinctTuple { .. } => ColumnKind::Int,
                _ => ColumnKind::of(column)?,
            };
            let distinct = match &a.kind {
                AggregateKind::CountDistinctTuple { keys }
                | AggregateKind::GroupConcat {
                    distinct: Some(keys),
                    ..
                } => Some(Comparator::new(keys, columns)?),
                &AggregateKind::CountDistinct { weight }
                | &AggregateKind::SumDistinct { weight } => Some(Comparator::new(
                    &[SortKey {
                        column: a.column,
                        weight: weight.into(),
                        desc: false,
                    }],
                    columns,
                )?),
                &AggregateKind::Min { weight } | &AggregateKind::Max { weight } => {
                    Some(Comparator::new(
                        &[SortKey {
                            column: a.column,
                            weight: weight.into(),
                            desc: false,
                        }],
                        columns,
                    )?)
                }
                _ => None,
            };
            resolved.push((a.clone(), kind, distinct));
        }
        // A variance reads the count and sum as they were before this row's.
        resolved.sort_by_key(|(a, _, _)| !matches!(a.kind, AggregateKind::Variance { .. }));
        Ok(AggregateRun {
            group: Comparator::new(group, columns)?,
            aggregates: resolved,
            current: None,
            previous: None,
            scalar: group.is_empty().then_some(columns.len()),
            seen: false,
            rollup,
            concat_max: 0,
            cut: Vec::new(),
            binary: columns.iter().map(|c| c.character_set() == 63).collect(),
            groups: 0,
            warnings: Vec::new(),
        })
    }

    pub fn push(&mut self, row: Vec<Value>, out: &mut Vec<Vec<Value>>) -> Result<(), EngineError> {
        self.seen = true;
        match self.current.take() {
            Some(mut current) if self.group.compare(&current, &row) == Ordering::Equal => {
                self.merge(&mut current, &row)?;
                self.current = Some(current);
            }
            Some(done) => {
                self.done(done, Some(&row), out)?;
                self.start(row);
            }
            None => self.start(row),
        }
        Ok(())
    }

    /// The warnings of the groups whose GROUP_CONCAT was cut, and whether the shards' own cut
    /// warnings are superseded by them (a shard cuts only its part of a group).
    pub fn take_warnings(&mut self) -> Option<Vec<Vec<Value>>> {
        self.aggregates
            .iter()
            .any(|(a, _, _)| matches!(a.kind, AggregateKind::GroupConcat { .. }))
            .then(|| std::mem::take(&mut self.warnings))
    }

    pub fn finish(&mut self, out: &mut Vec<Vec<Value>>) -> Result<(), EngineError> {
        if let Some(done) = self.current.take() {
            self.done(done, None, out)?;
        }
        if let (Some(width), false) = (self.scalar, self.seen) {
            let mut row = vec![Value::NULL; width];
            for (a, _, _) in &self.aggregates {
                if matches!(
                    a.kind,
                    AggregateKind::Count
                        | AggregateKind::CountDistinct { .. }
                        | AggregateKind::CountDistinctTuple { .. }
                ) {
                    row[a.column] = Value::Bytes(b"0".to_vec());
                }
            }
            out.push(row);
        }
        Ok(())
    }

    /// A finished group: out, and with ROLLUP into each prefix's total; the totals of the
    /// prefixes the next row (`None`: the end) does not share come out after it.
    fn done(
        &mut self,
        done: Vec<Value>,
        next: Option<&[Value]>,
        out: &mut Vec<Vec<Value>>,
    ) -> Result<(), EngineError> {
        self.groups += 1;
        for _ in self.cut.drain(..) {
            self.warnings.push(vec![
                Value::Bytes(b"Warning".to_vec()),
                Value::Int(1260),
                Value::Bytes(format!("Row {} was cut by GROUP_CONCAT()", self.groups).into_bytes()),
            ]);
        }
        let Some(mut rollup) = self.rollup.take() else {
            out.push(done);
            return Ok(());
        };
        for k in 0..rollup.totals.len() {
            let total = match rollup.totals[k].take() {
                Some(mut total) => {
                    self.merge(&mut total, &done)?;
                    total
                }
                None => done.clone(),
            };
            rollup.totals[k] = Some(total);
        }
        out.push(done);
        // A prefix of k keys ends where the next row differs within its first k keys; the grand
        // total (k = 0) at the end.
        let ended = match next {
            Some(row) => {
                1 + rollup
                    .prefixes
                    .iter()
                    .take_while(|p| {
                        out.last()
                            .is_some_and(|d| p.compare(d, row) == Ordering::Equal)
                    })
                    .count()
            }
            None => 0,
        };
        for k in (ended..rollup.totals.len()).rev() {
            if let Some(mut total) = rollup.totals[k].take() {
                for key in &rollup.keys[k..] {
                    total[key.column] = Value::NULL;
                    if let Some(w) = key.weight.column() {
                        total[w] = Value::NULL;
                    }
                }
                out.push(total);
            }
        }
        self.rollup = Some(rollup);
        Ok(())
    }

    fn start(&mut self, row: Vec<Value>) {
        let mut first = row.clone();
        for (a, _, _) in &self.aggregates {
            if let AggregateKind::GroupConcat { max_len, .. } = a.kind {
                // The session's value, as every shard reports it (MariaDB's default otherwise).
                self.concat_max = text(&row[max_len])
                    .and_then(|t| std::str::from_utf8(&t).ok()?.trim().parse().ok())
                    .unwrap_or(1 << 20);
                if let Value::Bytes(s) = &mut first[a.column] {
                    if cut_to(s, self.concat_max, self.binary[a.column]) {
                        self.cut.push(a.column);
                    }
                }
            }
            // A count partial of a NULL-extended row (a LEFT JOIN's) counts nothing.
            if a.kind == AggregateKind::Count && matches!(row[a.column], Value::NULL) {
                first[a.column] = Value::Bytes(b"0".to_vec());
            }
            let counted = match &a.kind {
                AggregateKind::CountDistinct { .. } => Some(!matches!(row[a.column], Value::NULL)),
                AggregateKind::CountDistinctTuple { keys } => Some(complete(&row, keys)),
                _ => None,
            };
            if let Some(counted) = counted {
                first[a.column] = Value::Bytes(if counted { b"1" } else { b"0" }.to_vec());
            }
        }
        self.previous = Some(row);
        self.current = Some(first);
    }

    fn merge(&mut self, current: &mut [Value], row: &[Value]) -> Result<(), EngineError> {
        let previous = self.previous.replace(row.to_vec());
        for (a, kind, cmp) in &self.aggregates {
            let c = a.column;
            match &a.kind {
                AggregateKind::Count => current[c] = add(ColumnKind::Int, &current[c], &row[c])?,
                AggregateKind::Sum => current[c] = add(*kind, &current[c], &row[c])?,
                AggregateKind::Variance { count, sum } => {
                    let part = |r: &[Value]| -> Result<Option<(f64, f64, f64)>, EngineError> {
                        Ok(
                            match (float(&r[*count])?, float(&r[*sum])?, float(&r[c])?) {
                                (Some(n), Some(s), Some(v)) if n > 0.0 => Some((n, s, v)),
                                _ => None,
                            },
                        )
                    };
                    match (part(current)?, part(row)?) {
                        (Some(a), Some(b)) => {
                            current[c] = Value::Double(combined_variance(a, b));
                        }
                        (None, Some(_)) => current[c] = row[c].clone(),
                        (_, None) => {}
                    }
                }
                AggregateKind::Bit(op) => {
                    let (Some(a), Some(b)) = (bits(&current[c]), bits(&row[c])) else {
                        return Err(EngineError::Bug(format!(
                            "a shard's {op:?} partial is not a 64-bit number"
                        )));
                    };
                    let v = match op {
                        BitOp::And => a & b,
                        BitOp::Or => a | b,
                        BitOp::Xor => a ^ b,
                    };
                    current[c] = Value::Bytes(v.to_string().into_bytes());
                }
                AggregateKind::Min { weight } | AggregateKind::Max { weight } => {
                    let cmp = cmp
                        .as_ref()
                        .ok_or_else(|| EngineError::Bug("min/max without comparator".into()))?;
                    if matches!(row[c], Value::NULL) {
                        continue;
                    }
                    // The group's first row became `current` unchecked.
                    cmp.check(row)?;
                    cmp.check(current)?;
                    let better = match a.kind {
                        AggregateKind::Min { .. } => Ordering::Less,
                        _ => Ordering::Greater,
                    };
                    if matches!(current[c], Value::NULL) || cmp.compare(row, current) == better {
                        current[c] = row[c].clone();
                        if let Some(w) = weight {
                            current[*w] = row[*w].clone();
                        }
                    }
                }
                AggregateKind::GroupConcat {
                    separator,
                    distinct,
                    ..
                } => {
                    let Value::Bytes(piece) = &row[c] else {
                        continue;
                    };
                    let repeated = distinct.is_some()
                        && previous.as_deref().is_some_and(|p| {
                            !matches!(p[c], Value::NULL)
                                && cmp
                                    .as_ref()
                                    .is_some_and(|cmp| cmp.compare(p, row) == Ordering::Equal)
                        });
                    if repeated || self.cut.contains(&c) {
                        continue;
                    }
                    let first = !matches!(current[c], Value::Bytes(_));
                    if first {
                        current[c] = Value::Bytes(Vec::with_capacity(piece.len()));
                    }
                    if let Value::Bytes(s) = &mut current[c] {
                        if !first {
                            s.extend_from_slice(separator);
                        }
                        s.extend_from_slice(piece);
                        if cut_to(s, self.concat_max, self.binary[c]) {
                            self.cut.push(c);
                        }
                    }
                }
                AggregateKind::CountDistinctTuple { keys } => {
                    let cmp = cmp
                        .as_ref()
                        .ok_or_else(|| EngineError::Bug("distinct without comparator".into()))?;
                    let is_new = complete(row, keys)
                        && previous.as_deref().is_none_or(|p| {
                            !complete(p, keys) || cmp.compare(p, row) != Ordering::Equal
                        });
                    if is_new {
                        current[c] =
                            add(ColumnKind::Int, &current[c], &Value::Bytes(b"1".to_vec()))?;
                    }
                }
                AggregateKind::CountDistinct { .. } | AggregateKind::SumDistinct { .. } => {
                    let cmp = cmp
                        .as_ref()
                        .ok_or_else(|| EngineError::Bug("distinct without comparator".into()))?;
                    let is_new = !matches!(row[c], Value::NULL)
                        && previous.as_deref().is_none_or(|p| {
                            matches!(p[c], Value::NULL) || cmp.compare(p, row) != Ordering::Equal
                        });
                    if !is_new {
                        continue;
                    }
                    current[c] = match a.kind {
                        AggregateKind::CountDistinct { .. } => {
                            add(ColumnKind::Int, &current[c], &Value::Bytes(b"1".to_vec()))?
                        }
                        _ => add(*kind, &current[c], &row[c])?,
                    };
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Weight;
    use mysql_common::constants::ColumnType;

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn merges_partials_per_group() {
        let columns = [
            Column::new(ColumnType::MYSQL_TYPE_LONG).with_character_set(63),
            Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_character_set(63),
            Column::new(ColumnType::MYSQL_TYPE_NEWDECIMAL).with_character_set(63),
            Column::new(ColumnType::MYSQL_TYPE_LONG).with_character_set(63),
        ];
        let aggs = [
            Aggregate {
                column: 1,
                kind: AggregateKind::Count,
            },
            Aggregate {
                column: 2,
                kind: AggregateKind::Sum,
            },
            Aggregate {
                column: 3,
                kind: AggregateKind::Max { weight: None },
            },
        ];
        let mut run = AggregateRun::new(
            &[SortKey {
                column: 0,
                weight: Weight::None,
                desc: false,
            }],
            &aggs,
            &columns,
            false,
        )
        .unwrap();
        let mut out = Vec::new();
        for row in [
            ["1", "2", "1.50", "7"],
            ["1", "3", "0.25", "9"],
            ["2", "1", "1", "1"],
        ] {
            run.push(row.iter().map(|s| b(s)).collect(), &mut out)
                .unwrap();
        }
        run.push(vec![b("2"), b("0"), Value::NULL, Value::NULL], &mut out)
            .unwrap();
        run.finish(&mut out).unwrap();
        assert_eq!(
            out,
            vec![
                vec![b("1"), b("5"), b("1.75"), b("9")],
                vec![b("2"), b("1"), b("1"), b("1")]
            ]
        );
    }

    #[test]
    fn merges_variances_from_counts_sums_and_variances() {
        // Values 1, 2, 3 on one shard, 10 and 20 on another, nothing on a third; the whole
        // population variance is 50.96.
        let columns = [
            Column::new(ColumnType::MYSQL_TYPE_LONGLONG).with_character_set(63),
            Column::new(ColumnType::MYSQL_TYPE_DOUBLE).with_character_set(63),
            Column::new(ColumnType::MYSQL_TYPE_DOUBLE).with_character_set(63),
        ];
        let aggs = [
            Aggregate {
                column: 0,
                kind: AggregateKind::Count,
            },
            Aggregate {
                column: 1,
                kind: AggregateKind::Sum,
            },
            Aggregate {
                column: 2,
                kind: AggregateKind::Variance { count: 0, sum: 1 },
            },
        ];
        let mut run = AggregateRun::new(&[], &aggs, &columns, false).unwrap();
        let mut out = Vec::new();
        for row in [
            vec![b("3"), b("6"), b("0.6666666666666666")],
            vec![b("0"), Value::NULL, Value::NULL],
            vec![b("2"), b("30"), b("25")],
        ] {
            run.push(row, &mut out).unwrap();
        }
        run.finish(&mut out).unwrap();
        let Value::Double(v) = out[0][2] else {
            panic!("{:?}", out[0]);
        };
        assert!((v - 50.96).abs() < 1e-12, "{v}");
        assert_eq!(out[0][0], b("5"));
    }

    #[test]
    fn counts_distinct_values_across_shards() {
        let columns = [
            Column::new(ColumnType::MYSQL_TYPE_LONG).with_character_set(63),
            Column::new(ColumnType::MYSQL_TYPE_LONG).with_character_set(63),
        ];
        let aggs = [Aggregate {
            column: 1,
            kind: AggregateKind::CountDistinct { weight: None },
        }];
        let mut run = AggregateRun::new(
            &[SortKey {
                column: 0,
                weight: Weight::None,
                desc: false,
            }],
            &aggs,
            &columns,
            false,
        )
        .unwrap();
        let mut out = Vec::new();
        // Group 1 sees x = NULL, 5, 5 (two shards), 6; group 2 sees only NULL.
        for (g, x) in [
            ("1", None),
            ("1", Some("5")),
            ("1", Some("5")),
            ("1", Some("6")),
            ("2", None),
        ] {
            run.push(vec![b(g), x.map(b).unwrap_or(Value::NULL)], &mut out)
                .unwrap();
        }
        run.finish(&mut out).unwrap();
        assert_eq!(out, vec![vec![b("1"), b("2")], vec![b("2"), b("0")]]);
    }
}
