//! Prepared statements on the gate's side: the statement as normalised once at COM_STMT_PREPARE,
//! and each execution's bound values as SQL literals.
//!
//! An execution is the statement's template bound to the values: routed by them through the plan
//! cache like any text statement with the same shape, and planned from the text with the values
//! spliced in when the cache cannot bind it. A statement that goes to one shard as it is runs
//! there prepared, with the client's values, and its binary rows go back as the shard sent them.

use engine::{Plan, Value};
use frontend::{ColumnType, SqlError};
use planner::{Literal, LiteralKind, Normalized};

pub struct PreparedStatement {
    pub sql: String,
    /// `None` for statements the plan cache does not take (the values are spliced into `sql`).
    pub normalized: Option<Normalized>,
    pub params: usize,
}

impl PreparedStatement {
    pub fn new(sql: &str) -> Self {
        let normalized = planner::normalize(sql, true);
        let params = match &normalized {
            Some(n) => n
                .slots
                .iter()
                .filter(|s| matches!(s, planner::Slot::Param(_)))
                .count(),
            None => planner::parameter_markers(sql).len(),
        };
        PreparedStatement {
            sql: sql.to_string(),
            normalized,
            params,
        }
    }

    /// The statement's text with these values in place of its markers.
    pub fn text_with(&self, params: &[Literal]) -> Result<String, SqlError> {
        planner::bind_markers(&self.sql, params).ok_or_else(crate::error::wrong_arguments)
    }
}

/// A prepared execution's statement as its shard runs it prepared: the route's text with `?` for
/// the client's parameters, and those parameters in the order that text takes them. It stands
/// in for `bound`, the route's text with this execution's values, and for nothing else.
pub struct ShardPrepared {
    pub bound: String,
    pub sql: String,
    pub params: Vec<(Value, ColumnType)>,
}

impl ShardPrepared {
    /// For a plan that is one route (`plan`, its template bound to these literals); `None` for
    /// other plans.
    pub fn new(
        plan: &Plan,
        template: &Plan,
        normalized: &Normalized,
        literals: &[Literal],
        params: Vec<frontend::Param>,
    ) -> Option<Self> {
        let (Plan::Route(bound), Plan::Route(route)) = (plan, template) else {
            return None;
        };
        if route.elsewhere.is_some() {
            return None;
        }
        let (sql, order) = planner::prepared_text(&route.query, &normalized.slots, literals)?;
        let params = if order.iter().copied().eq(0..params.len()) {
            params
                .into_iter()
                .map(|p| (p.value, p.column_type))
                .collect()
        } else {
            // Reordered or repeated by the planner.
            order
                .iter()
                .map(|&i| params.get(i).map(|p| (p.value.clone(), p.column_type)))
                .collect::<Option<_>>()?
        };
        Some(ShardPrepared {
            bound: bound.query.clone(),
            sql,
            params,
        })
    }
}

/// A bound value as a SQL literal that means the same to the shards. Strings are quoted with
/// quotes doubled (no backslash escapes, so the session's sql_mode does not matter); text with a
/// backslash or NUL goes as a hex string with a utf8mb4 introducer, other bytes as a binary
/// hex string. DECIMAL parameters stay exact.
pub fn literal(param: &frontend::Param) -> Literal {
    let decimal = matches!(
        param.column_type,
        ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL
    );
    match &param.value {
        Value::NULL => Literal {
            sql: "NULL".into(),
            kind: LiteralKind::Null,
        },
        Value::Int(i) => Literal::number(i.to_string()),
        Value::UInt(u) => Literal::number(u.to_string()),
        Value::Float(f) => float(f64::from(*f)),
        Value::Double(d) => float(*d),
        Value::Bytes(b) if decimal && is_decimal(b) => {
            Literal::number(String::from_utf8_lossy(b).into_owned())
        }
        Value::Bytes(b) => text(b),
        Value::Date(y, mo, d, ..) if param.column_type == ColumnType::MYSQL_TYPE_DATE => {
            text(format!("{y:04}-{mo:02}-{d:02}").as_bytes())
        }
        Value::Date(y, mo, d, h, mi, s, us) => {
            let t = if *us > 0 {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
            } else {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
            };
            text(t.as_bytes())
        }
        Value::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *neg { "-" } else { "" };
            let t = if *us > 0 {
                format!("{sign}{hours:02}:{mi:02}:{s:02}.{us:06}")
            } else {
                format!("{sign}{hours:02}:{mi:02}:{s:02}")
            };
            text(t.as_bytes())
        }
    }
}

/// Integral values (JavaScript drivers send every number as a double) go as integers, so that
/// they route and insert like the integers they are; others in exponent form, so they stay
/// doubles.
fn float(f: f64) -> Literal {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Literal::number(format!("{}", f as i64))
    } else if f.is_finite() {
        Literal::number(format!("{f:e}"))
    } else {
        // MySQL has no infinities; such a parameter compares as NULL would.
        Literal {
            sql: "NULL".into(),
            kind: LiteralKind::Null,
        }
    }
}

fn is_decimal(b: &[u8]) -> bool {
    let s = b.strip_prefix(b"-").unwrap_or(b);
    !s.is_empty()
        && s.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        && s.iter().filter(|c| **c == b'.').count() <= 1
        && s.iter().any(u8::is_ascii_digit)
}

fn text(b: &[u8]) -> Literal {
    Literal {
        sql: engine::literal::text(b),
        kind: if engine::literal::is_text(b) {
            LiteralKind::Text(b.to_vec())
        } else {
            LiteralKind::Other
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(value: &Value, decimal: bool) -> Literal {
        super::literal(&frontend::Param {
            value: value.clone(),
            column_type: if decimal {
                ColumnType::MYSQL_TYPE_NEWDECIMAL
            } else {
                ColumnType::MYSQL_TYPE_VAR_STRING
            },
        })
    }

    #[test]
    fn literals() {
        assert_eq!(literal(&Value::Int(-3), false).sql, "-3");
        assert_eq!(literal(&Value::Double(0.1), false).sql, "1e-1");
        assert_eq!(literal(&Value::Double(21.0), false).sql, "21");
        assert_eq!(literal(&Value::Double(-1e300), false).sql, "-1e300");
        assert_eq!(
            literal(&Value::Bytes(b"it's".to_vec()), false).sql,
            "'it''s'"
        );
        assert_eq!(
            literal(&Value::Bytes(b"a\\b".to_vec()), false).sql,
            "_utf8mb4 X'615C62'"
        );
        assert_eq!(literal(&Value::Bytes(vec![0xff]), false).sql, "X'FF'");
        assert_eq!(literal(&Value::Bytes(b"12.50".to_vec()), true).sql, "12.50");
        assert_eq!(
            literal(&Value::Bytes(b"1; DROP".to_vec()), true).sql,
            "'1; DROP'"
        );
        assert_eq!(
            literal(&Value::Date(2024, 1, 2, 0, 0, 0, 0), false).sql,
            "'2024-01-02 00:00:00'"
        );
        assert_eq!(
            literal(&Value::Time(true, 1, 2, 3, 4, 5), false).sql,
            "'-26:03:04.000005'"
        );
    }
}
