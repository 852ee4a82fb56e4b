//! The client's columns: input columns as they are, computed ones (AVG, COUNT/SUM DISTINCT) with
//! the definitions MySQL would send, and no helper columns.

use mysql_common::constants::{ColumnFlags, ColumnType};

use crate::compare::ColumnKind;
use crate::decimal::Decimal;
use crate::decimal::DIV_PRECISION;
use crate::eval::{Evaluator, ResultType};
use crate::ordered_aggregate::float;
use crate::plan::{ComputedKind, OutputColumn, Spread};
use crate::{Column, EngineError, Value};

pub(crate) struct ProjectionRun {
    columns: Vec<OutputColumn>,
    /// For AVG: whether the sum is a double, and the result's scale.
    avg: Vec<Option<(bool, u32)>>,
    /// For computed columns: their types, and the evaluator over the input.
    types: Vec<Option<ResultType>>,
    eval: Evaluator,
}

fn double_column(name: &str) -> Column {
    Column::new(ColumnType::MYSQL_TYPE_DOUBLE)
        .with_name(name.as_bytes())
        .with_character_set(63)
        .with_column_length(23)
        .with_decimals(31)
}

fn decimal_column(name: &str, decimals: u8, length: u32) -> Column {
    Column::new(ColumnType::MYSQL_TYPE_NEWDECIMAL)
        .with_name(name.as_bytes())
        .with_character_set(63)
        .with_decimals(decimals)
        .with_column_length(length)
        .with_flags(ColumnFlags::BINARY_FLAG | ColumnFlags::NUM_FLAG)
}

impl ProjectionRun {
    /// Also returns the client's column definitions.
    pub fn new(
        output: &[OutputColumn],
        input: &[Column],
    ) -> Result<(Self, Vec<Column>), EngineError> {
        let get = |i: usize| {
            input.get(i).ok_or_else(|| {
                EngineError::Bug(format!("projection column {i} of {}", input.len()))
            })
        };
        let mut defs = Vec::with_capacity(output.len());
        let mut avg = Vec::with_capacity(output.len());
        let mut types = vec![None; output.len()];
        for (n, c) in output.iter().enumerate() {
            match c {
                OutputColumn::Eval { expr, name } => {
                    let ty = ResultType::of(expr, input)?;
                    defs.push(ty.column(name));
                    types[n] = Some(ty);
                    avg.push(None);
                }
                OutputColumn::Column(i) => {
                    defs.push(get(*i)?.clone());
                    avg.push(None);
                }
                OutputColumn::Spread {
                    def,
                    variance,
                    count,
                    name,
                    ..
                } => {
                    get(*variance)?;
                    get(*count)?;
                    defs.push(get(*def)?.clone().with_name(name.as_bytes()));
                    avg.push(None);
                }
                OutputColumn::Named { column, name } => {
                    defs.push(get(*column)?.clone().with_name(name.as_bytes()));
                    avg.push(None);
                }
                OutputColumn::Computed {
                    column,
                    name,
                    kind: ComputedKind::Count,
                } => {
                    get(*column)?;
                    defs.push(
                        Column::new(ColumnType::MYSQL_TYPE_LONGLONG)
                            .with_name(name.as_bytes())
                            .with_character_set(63)
                            .with_column_length(21)
                            .with_flags(
                                ColumnFlags::NOT_NULL_FLAG
                                    | ColumnFlags::BINARY_FLAG
                                    | ColumnFlags::NUM_FLAG,
                            ),
                    );
                    avg.push(None);
                }
                OutputColumn::Computed {
                    column,
                    name,
                    kind: ComputedKind::Sum,
                } => {
                    let source = get(*column)?;
                    // SUM of a double is a double; of anything exact, a DECIMAL of its scale.
                    let def = if ColumnKind::of(source)? == ColumnKind::Float {
                        double_column(name)
                    } else {
                        decimal_column(
                            name,
                            source.decimals(),
                            source.column_length().saturating_add(22).min(66),
                        )
                    };
                    defs.push(def);
                    avg.push(None);
                }
                OutputColumn::Avg { sum, count, name } => {
                    let source = get(*sum)?;
                    get(*count)?;
                    let is_double = ColumnKind::of(source)? == ColumnKind::Float;
                    let scale = (u32::from(source.decimals()) + DIV_PRECISION).min(30);
                    defs.push(if is_double {
                        double_column(name)
                    } else {
                        decimal_column(
                            name,
                            scale as u8,
                            source.column_length().saturating_add(DIV_PRECISION),
                        )
                    });
                    avg.push(Some((is_double, scale)));
                }
            }
        }
        Ok((
            ProjectionRun {
                columns: output.to_vec(),
                avg,
                types,
                eval: Evaluator::new(input),
            },
            defs,
        ))
    }

    pub fn apply(&self, row: &[Value]) -> Result<Vec<Value>, EngineError> {
        self.columns
            .iter()
            .zip(&self.avg)
            .zip(&self.types)
            .map(|((c, avg), ty)| match (c, avg) {
                (OutputColumn::Eval { expr, .. }, _) => {
                    let ty =
                        ty.ok_or_else(|| EngineError::Bug("untyped computed column".into()))?;
                    self.eval.value(expr, ty, row)
                }
                (
                    OutputColumn::Column(i)
                    | OutputColumn::Named { column: i, .. }
                    | OutputColumn::Computed { column: i, .. },
                    _,
                ) => Ok(row[*i].clone()),
                (OutputColumn::Avg { sum, count, .. }, Some((is_double, scale))) => {
                    average(&row[*sum], &row[*count], *is_double, *scale)
                }
                (
                    OutputColumn::Spread {
                        variance,
                        count,
                        spread,
                        ..
                    },
                    _,
                ) => spread_value(&row[*variance], &row[*count], *spread),
                (OutputColumn::Avg { .. }, None) => {
                    Err(EngineError::Bug("AVG without its scale".into()))
                }
            })
            .collect()
    }
}

/// A variance or standard deviation from the population variance of `count` values: a double
/// at full precision (the text protocol shows the column's decimals of it).
fn spread_value(variance: &Value, count: &Value, spread: Spread) -> Result<Value, EngineError> {
    let (Some(variance), Some(n)) = (float(variance)?, float(count)?) else {
        return Ok(Value::NULL);
    };
    let divisor = if spread.sample { n - 1.0 } else { n };
    if divisor < 1.0 {
        return Ok(Value::NULL);
    }
    let v = if spread.sample {
        variance * n / divisor
    } else {
        variance
    };
    Ok(Value::Double(if spread.root { v.sqrt() } else { v }))
}

fn average(sum: &Value, count: &Value, is_double: bool, scale: u32) -> Result<Value, EngineError> {
    let (Value::Bytes(sum), Value::Bytes(count)) = (sum, count) else {
        return Ok(Value::NULL);
    };
    let count: i128 = std::str::from_utf8(count)
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| EngineError::Bug("AVG count is not a number".into()))?;
    if count == 0 {
        return Ok(Value::NULL);
    }
    if is_double {
        let s: f64 = std::str::from_utf8(sum)
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .ok_or_else(|| EngineError::Bug("AVG sum is not a number".into()))?;
        return Ok(Value::Bytes((s / count as f64).to_string().into_bytes()));
    }
    let s =
        Decimal::parse(sum).ok_or_else(|| EngineError::Bug("AVG sum is not a decimal".into()))?;
    let avg = s
        .div_round(count, scale)
        .ok_or_else(|| EngineError::OutOfRange("AVG".into()))?;
    Ok(Value::Bytes(avg.to_string().into_bytes()))
}
