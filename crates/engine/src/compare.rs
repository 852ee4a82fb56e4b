//! Ordering rows the way MySQL does: by the column's type for numbers, decimals and temporals, and
//! by collation weights for text. The weights come from the shards themselves: the planner adds a
//! hidden `WEIGHT_STRING(RTRIM(expr))` column next to each text sort key, so every collation the
//! backend knows sorts here exactly as it sorts there (RTRIM gives PAD SPACE semantics).

use std::cmp::Ordering;

use mysql_common::constants::{ColumnFlags, ColumnType};

use crate::decimal::Decimal;
use crate::{Column, EngineError, Value};

/// How values of a result column compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Decimal,
    Float,
    /// DATE, DATETIME, TIMESTAMP: fixed-width text that sorts as it reads.
    DateTime,
    /// TIME: signed, hours may exceed 99.
    Time,
    /// Collated text: compared by its weight column.
    Text,
    /// Binary strings: compared bytewise.
    Binary,
}

impl ColumnKind {
    pub fn of(column: &Column) -> Result<Self, EngineError> {
        use ColumnType::*;
        let unsupported = |what: &str| {
            Err(EngineError::Unsupported(format!(
                "ordering or grouping a {what} column across shards"
            )))
        };
        let flags = column.flags();
        Ok(match column.column_type() {
            MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_INT24 | MYSQL_TYPE_YEAR => ColumnKind::Int,
            MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => ColumnKind::Decimal,
            MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => ColumnKind::Float,
            MYSQL_TYPE_DATE
            | MYSQL_TYPE_NEWDATE
            | MYSQL_TYPE_DATETIME
            | MYSQL_TYPE_DATETIME2
            | MYSQL_TYPE_TIMESTAMP
            | MYSQL_TYPE_TIMESTAMP2 => ColumnKind::DateTime,
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => ColumnKind::Time,
            MYSQL_TYPE_NULL => ColumnKind::Binary,
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB => {
                if flags.intersects(ColumnFlags::ENUM_FLAG | ColumnFlags::SET_FLAG) {
                    return unsupported("ENUM or SET");
                }
                match column.character_set() {
                    63 => ColumnKind::Binary,
                    // MySQL 8's 0900 collations and MariaDB's _nopad_ ones do not ignore
                    // trailing spaces; the RTRIM'd weights would be wrong for them.
                    id if id >= 255 => return unsupported(&format!("NO PAD collation (id {id})")),
                    _ => ColumnKind::Text,
                }
            }
            MYSQL_TYPE_BIT => return unsupported("BIT"),
            MYSQL_TYPE_JSON => return unsupported("JSON"),
            MYSQL_TYPE_GEOMETRY => return unsupported("geometry"),
            MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => return unsupported("ENUM or SET"),
            other => return unsupported(&format!("{other:?}")),
        })
    }
}

fn bytes(v: &Value) -> Option<std::borrow::Cow<'_, [u8]>> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(std::borrow::Cow::Borrowed(b)),
        other => Some(std::borrow::Cow::Owned(
            other.as_sql(true).trim_matches('\'').as_bytes().to_vec(),
        )),
    }
}

fn int_of(v: &[u8]) -> Option<i128> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

fn float_of(v: &[u8]) -> Option<f64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// TIME text (`-838:59:59.000000`) as signed microseconds.
fn time_of(v: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (neg, s) = s.strip_prefix('-').map(|r| (true, r)).unwrap_or((false, s));
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut parts = hms.split(':').map(|p| p.parse::<i128>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    let micros: i128 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    let total = ((h * 60 + m) * 60 + sec) * 1_000_000 + micros;
    Some(if neg { -total } else { total })
}

/// Compares two non-NULL values of one kind. Values that do not parse as their kind compare as
/// bytes (they cannot occur in a well-typed column).
fn compare_present(kind: ColumnKind, a: &[u8], b: &[u8]) -> Ordering {
    let fallback = || a.cmp(b);
    match kind {
        ColumnKind::Int => match (int_of(a), int_of(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => fallback(),
        },
        ColumnKind::Decimal => match (Decimal::parse(a), Decimal::parse(b)) {
            (Some(x), Some(y)) => x.cmp_value(&y),
            _ => fallback(),
        },
        ColumnKind::Float => match (float_of(a), float_of(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => fallback(),
        },
        ColumnKind::Time => match (time_of(a), time_of(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => fallback(),
        },
        ColumnKind::DateTime | ColumnKind::Text | ColumnKind::Binary => fallback(),
    }
}

/// One ORDER BY / GROUP BY key: the value's column, the column holding its collation weight (for
/// text), and the direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub column: usize,
    pub weight: Option<usize>,
    pub desc: bool,
}

/// Compares rows by a list of keys, resolved against the result's columns.
#[derive(Debug, Clone)]
pub(crate) struct Comparator {
    keys: Vec<(SortKey, ColumnKind)>,
}

impl Comparator {
    pub fn new(keys: &[SortKey], columns: &[Column]) -> Result<Self, EngineError> {
        let mut resolved = Vec::with_capacity(keys.len());
        for key in keys {
            let column = columns.get(key.column).ok_or_else(|| {
                EngineError::Bug(format!(
                    "sort key column {} of {}",
                    key.column,
                    columns.len()
                ))
            })?;
            let kind = ColumnKind::of(column)?;
            if kind == ColumnKind::Text && key.weight.is_none_or(|w| w >= columns.len()) {
                // A key the planner could not ask the shards to weigh (a derived table's column
                // from a UNION, say): refused rather than sorted by bytes.
                return Err(EngineError::Unsupported(format!(
                    "sorting or grouping the text column {} without its collation weights",
                    key.column + 1
                )));
            }
            resolved.push((key.clone(), kind));
        }
        Ok(Comparator { keys: resolved })
    }

    pub fn compare(&self, a: &[Value], b: &[Value]) -> Ordering {
        for (key, kind) in &self.keys {
            let (va, vb) = match kind {
                ColumnKind::Text => {
                    // A NULL value has a NULL weight; compare presence on the value itself.
                    let w = key.weight.unwrap_or(key.column);
                    match (bytes(&a[key.column]), bytes(&b[key.column])) {
                        (None, None) => (None, None),
                        (None, Some(_)) => (None, Some(std::borrow::Cow::Borrowed(&[][..]))),
                        (Some(_), None) => (Some(std::borrow::Cow::Borrowed(&[][..])), None),
                        (Some(_), Some(_)) => (
                            Some(bytes(&a[w]).unwrap_or_default()),
                            Some(bytes(&b[w]).unwrap_or_default()),
                        ),
                    }
                }
                _ => (bytes(&a[key.column]), bytes(&b[key.column])),
            };
            let ord = match (va, vb) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => match kind {
                    ColumnKind::Text => x.cmp(&y),
                    k => compare_present(*k, &x, &y),
                },
            };
            let ord = if key.desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: ColumnType, charset: u16) -> Column {
        Column::new(t).with_character_set(charset)
    }

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    fn cmp(t: ColumnType, x: &str, y: &str) -> Ordering {
        let c = Comparator::new(
            &[SortKey {
                column: 0,
                weight: None,
                desc: false,
            }],
            &[col(t, 63)],
        )
        .unwrap();
        c.compare(&[b(x)], &[b(y)])
    }

    #[test]
    fn numbers_compare_by_value_not_text() {
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_LONGLONG, "9", "10"),
            Ordering::Less
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_LONGLONG, "-10", "-9"),
            Ordering::Less
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_LONGLONG, "18446744073709551615", "1"),
            Ordering::Greater
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_NEWDECIMAL, "10.50", "9.999"),
            Ordering::Greater
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_NEWDECIMAL, "1.10", "1.1"),
            Ordering::Equal
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_DOUBLE, "1e3", "999.5"),
            Ordering::Greater
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_TIME, "-01:00:00", "00:59:59"),
            Ordering::Less
        );
        assert_eq!(
            cmp(ColumnType::MYSQL_TYPE_TIME, "100:00:00", "99:59:59.5"),
            Ordering::Greater
        );
        assert_eq!(
            cmp(
                ColumnType::MYSQL_TYPE_DATETIME,
                "2024-01-02 00:00:00",
                "2023-12-31 23:59:59"
            ),
            Ordering::Greater
        );
    }

    #[test]
    fn nulls_first_ascending_last_descending() {
        let asc = Comparator::new(
            &[SortKey {
                column: 0,
                weight: None,
                desc: false,
            }],
            &[col(ColumnType::MYSQL_TYPE_LONG, 63)],
        )
        .unwrap();
        assert_eq!(asc.compare(&[Value::NULL], &[b("-5")]), Ordering::Less);
        let desc = Comparator::new(
            &[SortKey {
                column: 0,
                weight: None,
                desc: true,
            }],
            &[col(ColumnType::MYSQL_TYPE_LONG, 63)],
        )
        .unwrap();
        assert_eq!(desc.compare(&[Value::NULL], &[b("-5")]), Ordering::Greater);
    }

    #[test]
    fn text_compares_by_weight_and_ties_fall_through() {
        let columns = [
            col(ColumnType::MYSQL_TYPE_VAR_STRING, 45),
            col(ColumnType::MYSQL_TYPE_LONG, 63),
            col(ColumnType::MYSQL_TYPE_VAR_STRING, 63),
        ];
        let keys = [
            SortKey {
                column: 0,
                weight: Some(2),
                desc: false,
            },
            SortKey {
                column: 1,
                weight: None,
                desc: false,
            },
        ];
        let c = Comparator::new(&keys, &columns).unwrap();
        // 'a' and 'A' have the same weight: the second key decides.
        assert_eq!(
            c.compare(&[b("a"), b("2"), b("\x00A")], &[b("A"), b("1"), b("\x00A")]),
            Ordering::Greater
        );
        assert_eq!(
            c.compare(&[b("b"), b("1"), b("\x00B")], &[b("A"), b("9"), b("\x00A")]),
            Ordering::Greater
        );
        // A text key without a weight column is refused, never sorted by bytes.
        assert!(Comparator::new(
            &keys[..1]
                .iter()
                .map(|k| SortKey {
                    weight: None,
                    ..k.clone()
                })
                .collect::<Vec<_>>(),
            &columns
        )
        .is_err());
    }

    #[test]
    fn enum_and_nopad_collations_are_refused() {
        let e = Column::new(ColumnType::MYSQL_TYPE_STRING)
            .with_flags(ColumnFlags::ENUM_FLAG)
            .with_character_set(45);
        assert!(ColumnKind::of(&e).is_err());
        assert!(ColumnKind::of(&col(ColumnType::MYSQL_TYPE_VAR_STRING, 255)).is_err());
    }
}
