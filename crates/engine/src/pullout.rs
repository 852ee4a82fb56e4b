//! Running a pulled-out subquery and turning its rows into SQL for the statement that uses them.

use std::future::Future;
use std::sync::Arc;

use mysql_common::constants::ColumnType;

use crate::{
    Collected, Column, EngineError, ExecOptions, Executor, Pulled, PulledKind, RowSink, Value,
};

/// An empty result where a query must stand (`IN (...)`, `EXISTS (...)`): a query that returns no
/// row keeps the operator's own semantics for the empty set (`NOT IN` of nothing is true even for
/// NULL), which no literal list can. (No `LIMIT 0`: MySQL refuses LIMIT in an IN subquery; no
/// `FROM DUAL`: it reads as a table to the planner.)
pub const NO_ROWS: &str = "SELECT NULL FROM (SELECT 1) AS sg_empty WHERE 0";

/// Runs the subquery's plan and returns the SQL that replaces its text.
pub async fn splice<E: Executor>(
    pulled: &Pulled,
    vschema: &vschema::VSchema,
    executor: &E,
    options: &ExecOptions,
) -> Result<String, EngineError> {
    // EXISTS needs one row, a scalar two (to tell "several" apart).
    let max = match pulled.kind {
        PulledKind::In => options.max_buffered_rows,
        PulledKind::Exists => 1,
        PulledKind::Scalar => 2,
    };
    let (Collected { columns, rows }, more) =
        collect_at_most(&pulled.plan, vschema, executor, options, max).await?;
    match pulled.kind {
        PulledKind::Exists if rows.is_empty() => Ok(NO_ROWS.into()),
        PulledKind::Exists => Ok("SELECT 1".into()),
        PulledKind::Scalar => {
            if columns.len() != 1 {
                return Err(EngineError::SubqueryColumns(1));
            }
            match rows.as_slice() {
                [] => Ok("NULL".into()),
                [row] => Ok(typed(&row[0], &columns[0])),
                _ => Err(EngineError::SubqueryRows),
            }
        }
        PulledKind::In if more => Err(EngineError::TooManyRows(options.max_buffered_rows)),
        PulledKind::In if rows.is_empty() => {
            let nulls = vec!["NULL"; columns.len().max(1)].join(", ");
            Ok(NO_ROWS.replacen("NULL", &nulls, 1))
        }
        PulledKind::In => {
            let items: Vec<String> = rows
                .iter()
                .map(|row| {
                    let values: Vec<String> = row
                        .iter()
                        .zip(&columns)
                        .map(|(v, c)| literal(v, c))
                        .collect();
                    if values.len() == 1 {
                        values.into_iter().next().unwrap_or_default()
                    } else {
                        format!("({})", values.join(", "))
                    }
                })
                .collect();
            Ok(items.join(", "))
        }
    }
}

/// Runs `plan` and returns its rows as SQL row constructors, `(1, _utf8mb4 X'61')`, for an
/// INSERT ... VALUES; more than `max_buffered_rows` rows is an error.
pub async fn value_rows<E: Executor>(
    plan: &crate::Plan,
    vschema: &vschema::VSchema,
    executor: &E,
    options: &ExecOptions,
) -> Result<Vec<String>, EngineError> {
    let (Collected { columns, rows }, more) =
        collect_at_most(plan, vschema, executor, options, options.max_buffered_rows).await?;
    if more {
        return Err(EngineError::TooManyRows(options.max_buffered_rows));
    }
    Ok(rows
        .iter()
        .map(|row| {
            let values: Vec<String> = row
                .iter()
                .zip(columns.iter())
                .map(|(v, c)| literal(v, c))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect())
}

/// The rows a plan returned, and whether it had more.
type BoxedCollect<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<(Collected, bool), EngineError>> + Send + 'a>>;

/// Runs `plan` and keeps up to `max` of its rows; `true` when it had more (it was stopped).
pub(crate) fn collect_at_most<'a, E: Executor>(
    plan: &'a crate::Plan,
    vschema: &'a vschema::VSchema,
    executor: &'a E,
    options: &'a ExecOptions,
    max: usize,
) -> BoxedCollect<'a> {
    // Boxed: plans nest (a join's sides), so this and `execute` call each other.
    Box::pin(async move {
        let mut sink = AtMost {
            collected: Collected::default(),
            max,
            more: false,
        };
        match crate::execute(plan, vschema, executor, &mut sink, options).await {
            Ok(_) => {}
            Err(EngineError::Abandoned) if sink.more => {}
            Err(e) => return Err(e),
        }
        Ok((sink.collected, sink.more))
    })
}

/// Keeps up to `max` rows, then stops the statement.
struct AtMost {
    collected: Collected,
    max: usize,
    more: bool,
}

impl RowSink for AtMost {
    async fn columns(&mut self, columns: Arc<[Column]>) -> Result<(), EngineError> {
        self.collected.columns(columns).await
    }
    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        if self.collected.rows.len() >= self.max {
            self.more = true;
            return Err(EngineError::Abandoned);
        }
        self.collected.rows.push(row);
        Ok(())
    }
}

/// A value as a SQL literal of the same meaning: numbers as written, binary strings in hex,
/// other strings (and dates) as hex-encoded utf8mb4 strings, which need no escaping whatever the
/// session's sql_mode and compare under the other operand's collation, as the column would.
pub(crate) fn literal(value: &Value, column: &Column) -> String {
    let Value::Bytes(bytes) = value else {
        return value.as_sql(true);
    };
    let numeric = matches!(
        column.column_type(),
        ColumnType::MYSQL_TYPE_TINY
            | ColumnType::MYSQL_TYPE_SHORT
            | ColumnType::MYSQL_TYPE_INT24
            | ColumnType::MYSQL_TYPE_LONG
            | ColumnType::MYSQL_TYPE_LONGLONG
            | ColumnType::MYSQL_TYPE_DECIMAL
            | ColumnType::MYSQL_TYPE_NEWDECIMAL
            | ColumnType::MYSQL_TYPE_FLOAT
            | ColumnType::MYSQL_TYPE_DOUBLE
            | ColumnType::MYSQL_TYPE_YEAR
    );
    if numeric
        && !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
    {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    crate::literal::hex(bytes, column.character_set() != 63)
}

/// A scalar subquery's value, typed as its column so that a select item keeps its type.
fn typed(value: &Value, column: &Column) -> String {
    let v = literal(value, column);
    if matches!(value, Value::NULL) {
        return v;
    }
    let decimals = column.decimals();
    match column.column_type() {
        // MariaDB types an integer literal by its length (and a CAST to SIGNED by its value):
        // twenty digits make it a BIGINT, as the column was.
        ColumnType::MYSQL_TYPE_LONGLONG => match v.strip_prefix('-') {
            Some(digits) => format!("-{digits:0>20}"),
            None => format!("{v:0>20}"),
        },
        ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
            format!("CAST({v} AS DECIMAL(65, {decimals}))")
        }
        ColumnType::MYSQL_TYPE_FLOAT | ColumnType::MYSQL_TYPE_DOUBLE => {
            format!("CAST({v} AS DOUBLE)")
        }
        ColumnType::MYSQL_TYPE_DATE => format!("CAST({v} AS DATE)"),
        ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_TIMESTAMP => {
            format!("CAST({v} AS DATETIME({}))", decimals.min(6))
        }
        ColumnType::MYSQL_TYPE_TIME => format!("CAST({v} AS TIME({}))", decimals.min(6)),
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::constants::ColumnType;

    fn column(t: ColumnType, charset: u16) -> Column {
        Column::new(t).with_character_set(charset)
    }

    #[test]
    fn literals_keep_their_meaning() {
        let int = column(ColumnType::MYSQL_TYPE_LONGLONG, 63);
        let text = column(ColumnType::MYSQL_TYPE_VAR_STRING, 45);
        let blob = column(ColumnType::MYSQL_TYPE_BLOB, 63);
        assert_eq!(literal(&Value::Bytes(b"-12".to_vec()), &int), "-12");
        assert_eq!(literal(&Value::Bytes(b"1.50".to_vec()), &int), "1.50");
        assert_eq!(literal(&Value::NULL, &int), "NULL");
        assert_eq!(
            literal(&Value::Bytes(b"a'b\\".to_vec()), &text),
            "_utf8mb4 X'6127625C'"
        );
        assert_eq!(literal(&Value::Bytes(vec![0, 255]), &blob), "X'00FF'");
        // Not a number whatever the column says: quoted, never spliced raw.
        assert_eq!(
            literal(&Value::Bytes(b"1 OR 1".to_vec()), &int),
            "X'31204F522031'"
        );
        assert_eq!(typed(&Value::Int(-600), &int), "-00000000000000000600");
        let decimal = column(ColumnType::MYSQL_TYPE_NEWDECIMAL, 63);
        assert_eq!(
            typed(&Value::Bytes(b"2.50".to_vec()), &decimal),
            "CAST(2.50 AS DECIMAL(65, 0))"
        );
    }
}
