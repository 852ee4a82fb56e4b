//! Expressions evaluated at the proxy over merged or joined rows (HAVING, conditions over both
//! tables of a join, WHERE over a derived table), with MySQL's semantics for NULL and numbers:
//! integers stay exact, DECIMAL stays exact, division gives 4 more decimals. Text compares under
//! [`TextOrder`], dates and times as instants.

use std::cmp::Ordering;
use std::fmt;

use mysql_common::constants::{ColumnFlags, ColumnType};

use crate::collation::TextOrder;
use crate::compare::ColumnKind;
use crate::decimal::Decimal;
use crate::decimal::{DIV_PRECISION, MAX_SCALE};
use crate::{Column, EngineError, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum EvalExpr {
    Column(usize),
    Literal(Literal),
    Compare {
        op: CompareOp,
        left: Box<EvalExpr>,
        right: Box<EvalExpr>,
    },
    Arith {
        op: ArithOp,
        left: Box<EvalExpr>,
        right: Box<EvalExpr>,
    },
    And(Box<EvalExpr>, Box<EvalExpr>),
    Or(Box<EvalExpr>, Box<EvalExpr>),
    Not(Box<EvalExpr>),
    Neg(Box<EvalExpr>),
    IsNull {
        expr: Box<EvalExpr>,
        negated: bool,
    },
    /// `ROUND(expr, digits)` of an exact value, half away from zero. Of a quotient, the exact
    /// quotient is rounded once, as MySQL rounds its quotient carried with more digits than
    /// it shows.
    Round {
        expr: Box<EvalExpr>,
        digits: i32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Int(i128),
    Decimal(Decimal),
    Float(f64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Int(i128),
    /// An exact value as the server carries it, and the decimals it shows (and compares):
    /// a quotient keeps more digits than its type says, and arithmetic uses them all.
    Dec(Decimal, u32),
    Float(f64),
    /// Text and how it compares; `None` for a literal, which takes the other side's collation.
    Text(Vec<u8>, Option<TextOrder>),
    /// A DATE, DATETIME or TIMESTAMP value, as the server writes it.
    Moment(Vec<u8>),
}

impl Val {
    fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Val::Int(i) => Some(Decimal::new(*i, 0)),
            Val::Dec(d, _) => Some(*d),
            _ => None,
        }
    }

    /// The value as it is shown and compared: a quotient rounded to its type's decimals.
    fn shown_decimal(&self) -> Option<Decimal> {
        match self {
            Val::Dec(d, shown) if d.scale() > *shown => d.round(*shown as i32),
            other => other.as_decimal(),
        }
    }

    fn as_f64(&self) -> f64 {
        match self {
            Val::Null => 0.0,
            Val::Int(i) => *i as f64,
            Val::Dec(d, _) => d.to_f64(),
            Val::Float(f) => *f,
            // MySQL reads the longest numeric prefix of a string.
            Val::Text(t, _) | Val::Moment(t) => {
                let s = String::from_utf8_lossy(t);
                let s = s.trim_start();
                let end = s
                    .char_indices()
                    .take_while(|(i, c)| {
                        c.is_ascii_digit()
                            || *c == '.'
                            || ((*c == '-' || *c == '+') && *i == 0)
                            || *c == 'e'
                            || *c == 'E'
                    })
                    .map(|(i, c)| i + c.len_utf8())
                    .last()
                    .unwrap_or(0);
                (0..=end)
                    .rev()
                    .find_map(|e| s[..e].parse::<f64>().ok())
                    .unwrap_or(0.0)
            }
        }
    }

    fn truthy(&self) -> Option<bool> {
        match self {
            Val::Null => None,
            Val::Int(i) => Some(*i != 0),
            other => Some(other.as_f64() != 0.0),
        }
    }
}

/// Evaluates expressions over rows of one shape.
pub(crate) struct Evaluator {
    kinds: Vec<Option<(ColumnKind, TextOrder)>>,
}

impl Evaluator {
    pub fn new(columns: &[Column]) -> Self {
        Evaluator {
            kinds: columns
                .iter()
                .map(|c| Some((ColumnKind::of(c).ok()?, TextOrder::of(c))))
                .collect(),
        }
    }

    /// Whether the row passes (NULL does not).
    pub fn matches(&self, expr: &EvalExpr, row: &[Value]) -> Result<bool, EngineError> {
        Ok(self.eval(expr, row)?.truthy().unwrap_or(false))
    }

    /// The expression's value as MySQL sends it in a text result, for a column of `ty`.
    pub fn value(
        &self,
        expr: &EvalExpr,
        ty: ResultType,
        row: &[Value],
    ) -> Result<Value, EngineError> {
        let text = match (self.eval(expr, row)?, ty) {
            (Val::Null, _) => return Ok(Value::NULL),
            (Val::Int(i), ResultType::Int { .. }) => {
                if i < i128::from(i64::MIN) || i > i128::from(u64::MAX) {
                    return Err(EngineError::OutOfRange(format!("BIGINT value of {expr}")));
                }
                i.to_string()
            }
            (Val::Int(i), ResultType::Decimal { .. }) => i.to_string(),
            (Val::Dec(d, _), ResultType::Decimal { scale, .. }) => d
                .round(scale as i32)
                .ok_or_else(|| EngineError::OutOfRange(format!("DECIMAL value of {expr}")))?
                .to_string(),
            (other, _) => {
                return Err(EngineError::Bug(format!(
                    "{expr} gave {other:?}, typed {ty:?}"
                )))
            }
        };
        Ok(Value::Bytes(text.into_bytes()))
    }

    fn column(&self, i: usize, row: &[Value]) -> Result<Val, EngineError> {
        let v = row.get(i).ok_or_else(|| {
            EngineError::Bug(format!("HAVING refers to column {i} of {}", row.len()))
        })?;
        let text = match v {
            Value::NULL => return Ok(Val::Null),
            Value::Bytes(b) => b.clone(),
            Value::Int(i) => return Ok(Val::Int(i128::from(*i))),
            Value::UInt(u) => return Ok(Val::Int(i128::from(*u))),
            Value::Float(f) => return Ok(Val::Float(f64::from(*f))),
            Value::Double(f) => return Ok(Val::Float(*f)),
            other => other.as_sql(true).trim_matches('\'').as_bytes().to_vec(),
        };
        let s = String::from_utf8_lossy(&text);
        let kind = self.kinds.get(i).copied().flatten();
        let order = kind.map(|(_, o)| o).unwrap_or(TextOrder::Bytes);
        let as_text = |text| Val::Text(text, Some(order));
        Ok(match kind.map(|(k, _)| k) {
            Some(ColumnKind::Int) => s.trim().parse().map(Val::Int).unwrap_or(as_text(text)),
            Some(ColumnKind::Decimal) => Decimal::parse(&text)
                .map(|d| Val::Dec(d, d.scale()))
                .unwrap_or_else(|| as_text(text)),
            Some(ColumnKind::Float) => s.trim().parse().map(Val::Float).unwrap_or(as_text(text)),
            Some(ColumnKind::DateTime) => Val::Moment(text),
            Some(ColumnKind::Text | ColumnKind::Binary) => as_text(text),
            Some(ColumnKind::Time) | None => {
                return Err(EngineError::Unsupported(
                    "evaluating a TIME, ENUM, SET, BIT or JSON column at the proxy".into(),
                ))
            }
        })
    }

    fn eval(&self, expr: &EvalExpr, row: &[Value]) -> Result<Val, EngineError> {
        Ok(match expr {
            EvalExpr::Column(i) => self.column(*i, row)?,
            EvalExpr::Literal(l) => match l {
                Literal::Null => Val::Null,
                Literal::Int(i) => Val::Int(*i),
                Literal::Decimal(d) => Val::Dec(*d, d.scale()),
                Literal::Float(f) => Val::Float(*f),
                Literal::Text(t) => Val::Text(t.clone().into_bytes(), None),
            },
            EvalExpr::Compare { op, left, right } => {
                let (l, r) = (self.eval(left, row)?, self.eval(right, row)?);
                match compare(&l, &r)? {
                    None => Val::Null,
                    Some(ord) => Val::Int(i128::from(match op {
                        CompareOp::Eq => ord == Ordering::Equal,
                        CompareOp::NotEq => ord != Ordering::Equal,
                        CompareOp::Lt => ord == Ordering::Less,
                        CompareOp::LtEq => ord != Ordering::Greater,
                        CompareOp::Gt => ord == Ordering::Greater,
                        CompareOp::GtEq => ord != Ordering::Less,
                    })),
                }
            }
            EvalExpr::Arith { op, left, right } => {
                arith(*op, self.eval(left, row)?, self.eval(right, row)?)?
            }
            EvalExpr::And(a, b) => match (self.eval(a, row)?.truthy(), self.eval(b, row)?.truthy())
            {
                (Some(false), _) | (_, Some(false)) => Val::Int(0),
                (Some(true), Some(true)) => Val::Int(1),
                _ => Val::Null,
            },
            EvalExpr::Or(a, b) => {
                match (self.eval(a, row)?.truthy(), self.eval(b, row)?.truthy()) {
                    (Some(true), _) | (_, Some(true)) => Val::Int(1),
                    (Some(false), Some(false)) => Val::Int(0),
                    _ => Val::Null,
                }
            }
            EvalExpr::Not(a) => match self.eval(a, row)?.truthy() {
                Some(b) => Val::Int(i128::from(!b)),
                None => Val::Null,
            },
            EvalExpr::Neg(a) => arith(ArithOp::Sub, Val::Int(0), self.eval(a, row)?)?,
            EvalExpr::IsNull { expr, negated } => {
                Val::Int(i128::from((self.eval(expr, row)? == Val::Null) != *negated))
            }
            EvalExpr::Round { expr, digits } => self.round(expr, *digits, row)?,
        })
    }

    /// ROUND of the value as the server carries it: a quotient's hidden digits count, so
    /// `ROUND(2/3, 9)` is 0.666666666.
    fn round(&self, expr: &EvalExpr, digits: i32, row: &[Value]) -> Result<Val, EngineError> {
        let overflow = || EngineError::OutOfRange(format!("DECIMAL value of ROUND({expr})"));
        Ok(match self.eval(expr, row)? {
            Val::Null => Val::Null,
            Val::Int(i) if digits >= 0 => Val::Int(i),
            Val::Int(i) => {
                let d = Decimal::new(i, 0).round(digits).ok_or_else(overflow)?;
                Val::Int(d.mantissa())
            }
            Val::Dec(d, _) => {
                let d = d.round(digits).ok_or_else(overflow)?;
                Val::Dec(d, d.scale())
            }
            other => {
                return Err(EngineError::Unsupported(format!(
                    "ROUND of {other:?} at the proxy"
                )))
            }
        })
    }
}

/// The type MariaDB gives a computed column: integers as INT or BIGINT by their display width,
/// exact numbers as DECIMAL with MySQL's scale rules. Doubles, text and dates are not computed at
/// the proxy (their text forms are MySQL's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultType {
    Int { length: u32 },
    Decimal { scale: u32, length: u32 },
}

impl ResultType {
    pub fn of(expr: &EvalExpr, columns: &[Column]) -> Result<Self, EngineError> {
        let refuse = |what: String| {
            Err(EngineError::Unsupported(format!(
                "computing {what} at the proxy"
            )))
        };
        let digits = |i: &i128| i.to_string().len() as u32;
        Ok(match expr {
            EvalExpr::Compare { .. }
            | EvalExpr::And(..)
            | EvalExpr::Or(..)
            | EvalExpr::Not(_)
            | EvalExpr::IsNull { .. } => ResultType::Int { length: 1 },
            EvalExpr::Literal(Literal::Int(i)) => ResultType::Int { length: digits(i) },
            EvalExpr::Literal(Literal::Decimal(d)) => ResultType::Decimal {
                scale: d.scale(),
                length: digits(&d.mantissa()) + 2,
            },
            EvalExpr::Literal(l) => return refuse(format!("arithmetic on {l:?}")),
            EvalExpr::Column(i) => {
                let c = columns
                    .get(*i)
                    .ok_or_else(|| EngineError::Bug(format!("computed column reads {i}")))?;
                match ColumnKind::of(c)? {
                    ColumnKind::Int => ResultType::Int {
                        length: c.column_length(),
                    },
                    ColumnKind::Decimal => ResultType::Decimal {
                        scale: u32::from(c.decimals()),
                        length: c.column_length(),
                    },
                    other => return refuse(format!("arithmetic on a {other:?} column")),
                }
            }
            EvalExpr::Neg(e) => match Self::of(e, columns)? {
                ResultType::Int { length } => ResultType::Int { length: length + 1 },
                d => d,
            },
            EvalExpr::Round { expr, digits } => match Self::of(expr, columns)? {
                ResultType::Int { length } => ResultType::Int {
                    length: length + u32::from(*digits < 0),
                },
                ResultType::Decimal { scale, length } => {
                    let new = (*digits).clamp(0, 38) as u32;
                    ResultType::Decimal {
                        scale: new,
                        length: (length + new + 1).saturating_sub(scale),
                    }
                }
            },
            EvalExpr::Arith { op, left, right } => {
                let (l, r) = (Self::of(left, columns)?, Self::of(right, columns)?);
                let parts = |t: ResultType| match t {
                    ResultType::Int { length } => (0, length),
                    ResultType::Decimal { scale, length } => (scale, length),
                };
                let ((sl, ll), (sr, lr)) = (parts(l), parts(r));
                match (op, l, r) {
                    (
                        ArithOp::Add | ArithOp::Sub,
                        ResultType::Int { .. },
                        ResultType::Int { .. },
                    ) => ResultType::Int {
                        length: ll.max(lr) + 1,
                    },
                    (ArithOp::Mul, ResultType::Int { .. }, ResultType::Int { .. }) => {
                        ResultType::Int {
                            length: (ll + lr).saturating_sub(1),
                        }
                    }
                    (ArithOp::Add | ArithOp::Sub, ..) => ResultType::Decimal {
                        scale: sl.max(sr),
                        length: ll.max(lr) + 1,
                    },
                    (ArithOp::Mul, ..) => ResultType::Decimal {
                        scale: (sl + sr).min(MAX_SCALE),
                        length: ll + lr,
                    },
                    (ArithOp::Div, ..) => ResultType::Decimal {
                        scale: sl + DIV_PRECISION,
                        length: ll + DIV_PRECISION + 1,
                    },
                }
            }
        })
    }

    /// The column definition MariaDB would send.
    pub fn column(self, name: &str) -> Column {
        let (ty, scale, length) = match self {
            // MariaDB's INT holds up to 9 digits whatever the sign.
            ResultType::Int { length } if length <= 9 => (ColumnType::MYSQL_TYPE_LONG, 0, length),
            ResultType::Int { length } => (ColumnType::MYSQL_TYPE_LONGLONG, 0, length),
            ResultType::Decimal { scale, length } => {
                (ColumnType::MYSQL_TYPE_NEWDECIMAL, scale, length)
            }
        };
        Column::new(ty)
            .with_name(name.as_bytes())
            .with_character_set(63)
            .with_column_length(length)
            .with_decimals(scale.min(38) as u8)
            .with_flags(ColumnFlags::BINARY_FLAG | ColumnFlags::NUM_FLAG)
    }
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` as comparable parts; a date alone is at midnight.
fn instant(text: &[u8]) -> Option<[u32; 7]> {
    let s = std::str::from_utf8(text).ok()?;
    let (date, time) = s.split_once(' ').unwrap_or((s, "00:00:00"));
    let (time, frac) = time.split_once('.').unwrap_or((time, ""));
    let digits = |p: &str, len: usize| {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?
    };
    let mut parts = [0u32; 7];
    let fields = date.split('-').chain(time.split(':'));
    let mut n = 0;
    for (i, p) in fields.enumerate() {
        *parts.get_mut(i)? = digits(p, if i == 0 { 4 } else { 2 })?;
        n = i + 1;
    }
    if n != 6 || frac.len() > 6 {
        return None;
    }
    if !frac.is_empty() {
        parts[6] = digits(frac, frac.len())? * 10u32.pow(6 - frac.len() as u32);
    }
    Some(parts)
}

fn compare(l: &Val, r: &Val) -> Result<Option<Ordering>, EngineError> {
    Ok(Some(match (l, r) {
        (Val::Null, _) | (_, Val::Null) => return Ok(None),
        (Val::Text(a, oa), Val::Text(b, ob)) => {
            let order = match (oa, ob) {
                (Some(x), Some(y)) if x != y => None,
                (Some(x), _) | (None, Some(x)) => Some(*x),
                (None, None) => None,
            };
            let order = order.ok_or_else(|| {
                EngineError::Unsupported(
                    "comparing text of two different collations (or two literals) at the proxy"
                        .into(),
                )
            })?;
            order.compare(a, b)?
        }
        (Val::Moment(a), Val::Moment(b) | Val::Text(b, _)) | (Val::Text(a, _), Val::Moment(b)) => {
            match (instant(a), instant(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => {
                    return Err(EngineError::Unsupported(format!(
                        "comparing '{}' with '{}' at the proxy (dates compare only in their \
                     YYYY-MM-DD hh:mm:ss form)",
                        String::from_utf8_lossy(a).escape_debug(),
                        String::from_utf8_lossy(b).escape_debug()
                    )))
                }
            }
        }
        (Val::Moment(_), _) | (_, Val::Moment(_)) => {
            return Err(EngineError::Unsupported(
                "comparing a date with a number at the proxy".into(),
            ))
        }
        (Val::Float(_), _) | (_, Val::Float(_)) | (Val::Text(..), _) | (_, Val::Text(..)) => {
            l.as_f64().total_cmp(&r.as_f64())
        }
        _ => match (l.shown_decimal(), r.shown_decimal()) {
            (Some(a), Some(b)) => a.cmp_value(&b),
            _ => l.as_f64().total_cmp(&r.as_f64()),
        },
    }))
}

fn overflow() -> EngineError {
    EngineError::OutOfRange("arithmetic in HAVING".into())
}

fn arith(op: ArithOp, l: Val, r: Val) -> Result<Val, EngineError> {
    if l == Val::Null || r == Val::Null {
        return Ok(Val::Null);
    }
    if matches!(l, Val::Moment(_)) || matches!(r, Val::Moment(_)) {
        return Err(EngineError::Unsupported(
            "arithmetic on dates at the proxy".into(),
        ));
    }
    if matches!(l, Val::Float(_) | Val::Text(..)) || matches!(r, Val::Float(_) | Val::Text(..)) {
        let (a, b) = (l.as_f64(), r.as_f64());
        return Ok(match op {
            ArithOp::Add => Val::Float(a + b),
            ArithOp::Sub => Val::Float(a - b),
            ArithOp::Mul => Val::Float(a * b),
            ArithOp::Div if b == 0.0 => Val::Null,
            ArithOp::Div => Val::Float(a / b),
        });
    }
    if let (Val::Int(a), Val::Int(b), ArithOp::Add | ArithOp::Sub | ArithOp::Mul) = (&l, &r, op) {
        let v = match op {
            ArithOp::Add => a.checked_add(*b),
            ArithOp::Sub => a.checked_sub(*b),
            _ => a.checked_mul(*b),
        };
        return v.map(Val::Int).ok_or_else(overflow);
    }
    let shown = |v: &Val| match v {
        Val::Dec(_, shown) => *shown,
        _ => 0,
    };
    let (sa, sb) = (shown(&l), shown(&r));
    let (a, b) = (
        l.as_decimal().ok_or_else(overflow)?,
        r.as_decimal().ok_or_else(overflow)?,
    );
    Ok(match op {
        ArithOp::Add => Val::Dec(a.checked_add(b).ok_or_else(overflow)?, sa.max(sb)),
        ArithOp::Sub => Val::Dec(
            a.checked_add(Decimal::new(-b.mantissa(), b.scale()))
                .ok_or_else(overflow)?,
            sa.max(sb),
        ),
        ArithOp::Mul => Val::Dec(
            Decimal::new(
                a.mantissa()
                    .checked_mul(b.mantissa())
                    .ok_or_else(overflow)?,
                a.scale() + b.scale(),
            ),
            (sa + sb).min(MAX_SCALE),
        ),
        ArithOp::Div if b.mantissa() == 0 => Val::Null,
        ArithOp::Div => Val::Dec(a.quotient(b).ok_or_else(overflow)?, sa + DIV_PRECISION),
    })
}

impl fmt::Display for EvalExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalExpr::Column(i) => write!(f, ":{i}"),
            EvalExpr::Literal(Literal::Null) => f.write_str("NULL"),
            EvalExpr::Literal(Literal::Int(i)) => write!(f, "{i}"),
            EvalExpr::Literal(Literal::Decimal(d)) => write!(f, "{d}"),
            EvalExpr::Literal(Literal::Float(x)) => write!(f, "{x:e}"),
            EvalExpr::Literal(Literal::Text(t)) => write!(f, "{t:?}"),
            EvalExpr::Compare { op, left, right } => {
                let op = match op {
                    CompareOp::Eq => "=",
                    CompareOp::NotEq => "!=",
                    CompareOp::Lt => "<",
                    CompareOp::LtEq => "<=",
                    CompareOp::Gt => ">",
                    CompareOp::GtEq => ">=",
                };
                write!(f, "({left} {op} {right})")
            }
            EvalExpr::Arith { op, left, right } => {
                let op = match op {
                    ArithOp::Add => "+",
                    ArithOp::Sub => "-",
                    ArithOp::Mul => "*",
                    ArithOp::Div => "/",
                };
                write!(f, "({left} {op} {right})")
            }
            EvalExpr::And(a, b) => write!(f, "({a} AND {b})"),
            EvalExpr::Or(a, b) => write!(f, "({a} OR {b})"),
            EvalExpr::Not(a) => write!(f, "(NOT {a})"),
            EvalExpr::Neg(a) => write!(f, "(-{a})"),
            EvalExpr::Round { expr, digits } => write!(f, "ROUND({expr}, {digits})"),
            EvalExpr::IsNull {
                expr,
                negated: false,
            } => write!(f, "({expr} IS NULL)"),
            EvalExpr::IsNull {
                expr,
                negated: true,
            } => write!(f, "({expr} IS NOT NULL)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::constants::ColumnType;

    fn lit(i: i128) -> Box<EvalExpr> {
        Box::new(EvalExpr::Literal(Literal::Int(i)))
    }

    fn col(i: usize) -> Box<EvalExpr> {
        Box::new(EvalExpr::Column(i))
    }

    #[test]
    fn having_semantics() {
        let columns = [
            Column::new(ColumnType::MYSQL_TYPE_LONGLONG),
            Column::new(ColumnType::MYSQL_TYPE_NEWDECIMAL),
        ];
        let row = [Value::Bytes(b"3".to_vec()), Value::Bytes(b"7.50".to_vec())];
        let check = |e: EvalExpr| Evaluator::new(&columns).matches(&e, &row).unwrap();
        assert!(check(EvalExpr::Compare {
            op: CompareOp::Gt,
            left: col(0),
            right: lit(2)
        }));
        assert!(!check(EvalExpr::Compare {
            op: CompareOp::Gt,
            left: col(0),
            right: lit(3)
        }));
        // 7.50 / 3 = 2.500000 (scale 2 + 4)
        let avg = EvalExpr::Arith {
            op: ArithOp::Div,
            left: col(1),
            right: col(0),
        };
        let exact = EvalExpr::Literal(Literal::Decimal(Decimal::parse(b"2.5").unwrap()));
        assert!(check(EvalExpr::Compare {
            op: CompareOp::Eq,
            left: Box::new(avg),
            right: Box::new(exact)
        }));
        // NULL comparisons filter the row out; NOT NULL is NULL.
        let null = Box::new(EvalExpr::Literal(Literal::Null));
        assert!(!check(EvalExpr::Compare {
            op: CompareOp::Eq,
            left: col(0),
            right: null.clone()
        }));
        assert!(!check(EvalExpr::Not(Box::new(EvalExpr::Compare {
            op: CompareOp::Eq,
            left: col(0),
            right: null.clone()
        }))));
        assert!(check(EvalExpr::IsNull {
            expr: null,
            negated: false
        }));
        assert!(check(EvalExpr::Or(
            Box::new(EvalExpr::Literal(Literal::Null)),
            lit(1)
        )));
    }

    #[test]
    fn quotients_keep_hidden_digits_for_arithmetic_only() {
        // SUM = 4, COUNT = 3 (AVG 1.3333); figures from MariaDB 10.11.
        let columns = [
            Column::new(ColumnType::MYSQL_TYPE_NEWDECIMAL).with_decimals(0),
            Column::new(ColumnType::MYSQL_TYPE_LONGLONG),
        ];
        let row = [Value::Bytes(b"4".to_vec()), Value::Bytes(b"3".to_vec())];
        let eval = Evaluator::new(&columns);
        let avg = || {
            Box::new(EvalExpr::Arith {
                op: ArithOp::Div,
                left: col(0),
                right: col(1),
            })
        };
        let times = |e: Box<EvalExpr>, k| EvalExpr::Arith {
            op: ArithOp::Mul,
            left: e,
            right: lit(k),
        };
        let shown = |e: &EvalExpr| {
            let ty = ResultType::of(e, &columns).unwrap();
            match eval.value(e, ty, &row).unwrap() {
                Value::Bytes(b) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(shown(&avg()), "1.3333");
        // AVG * 2 uses 1.333333333, not the shown 1.3333.
        assert_eq!(shown(&times(avg(), 2)), "2.6667");
        assert_eq!(shown(&times(avg(), 1_000_000_000)), "1333333333.0000");
        assert_eq!(
            shown(&EvalExpr::Round {
                expr: avg(),
                digits: 12
            }),
            "1.333333333000"
        );
        // Compared, a quotient is its shown value: AVG = 1.3333 holds, AVG * 3 = 4 too.
        let equals = |e: EvalExpr, d: &str| {
            eval.matches(
                &EvalExpr::Compare {
                    op: CompareOp::Eq,
                    left: Box::new(e),
                    right: Box::new(EvalExpr::Literal(Literal::Decimal(
                        Decimal::parse(d.as_bytes()).unwrap(),
                    ))),
                },
                &row,
            )
            .unwrap()
        };
        assert!(equals(*avg(), "1.3333"));
        assert!(!equals(*avg(), "1.333333333"));
        assert!(equals(times(avg(), 3), "4"));
    }
}
