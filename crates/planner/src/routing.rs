//! Finding the shards a statement needs from its WHERE clause: equality or `IN` on the primary
//! vindex column of the sharded table, alone or inside `AND`.

use std::sync::Arc;

use engine::Opcode;
use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value};
use vschema::{KeyValue, Keyspace, LookupColumn, LookupVindex, Vindex};

/// The sharded table a WHERE clause is searched for.
pub(crate) struct Target<'a> {
    /// The names that may qualify its columns: the table name and its alias.
    pub qualifiers: Vec<&'a str>,
    pub column: &'a str,
    pub vindex: &'a Arc<Vindex>,
    /// Secondary columns with lookup vindexes (the `write_only` ones are not read).
    pub lookups: &'a [LookupColumn],
    /// A multi-column vindex's columns (`column` is then empty): equalities on all of them
    /// reach one shard.
    pub columns: &'a [String],
}

impl Target<'_> {
    pub(crate) fn is_vindex_column(&self, expr: &Expr) -> bool {
        self.is_column(expr, self.column)
    }

    fn is_column(&self, expr: &Expr, column: &str) -> bool {
        match expr {
            Expr::Identifier(id) => id.value.eq_ignore_ascii_case(column),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [table, col] => {
                    self.qualifiers.contains(&table.value.as_str())
                        && col.value.eq_ignore_ascii_case(column)
                }
                _ => false,
            },
            Expr::Nested(inner) => self.is_column(inner, column),
            _ => false,
        }
    }

    /// `lookup_column = literal` (either way round): the lookup vindex and the value.
    fn lookup_equality(&self, left: &Expr, right: &Expr) -> Option<(Arc<LookupVindex>, KeyValue)> {
        self.lookups
            .iter()
            .filter(|l| !l.vindex.write_only)
            .find_map(|l| {
                if self.is_column(left, l.first()) {
                    literal(right).map(|v| (l.vindex.clone(), v))
                } else if self.is_column(right, l.first()) {
                    literal(left).map(|v| (l.vindex.clone(), v))
                } else {
                    None
                }
            })
    }

    fn mappable(&self, expr: &Expr) -> Option<KeyValue> {
        mappable(self.vindex, expr)
    }
}

/// The literal's value, if it is one `vindex` can map. A bind variable is taken on trust: binding
/// checks its value.
pub(crate) fn mappable(vindex: &Vindex, expr: &Expr) -> Option<KeyValue> {
    let value = literal(expr)?;
    if matches!(value, KeyValue::Param(_)) {
        return Some(value);
    }
    vindex.map(&value).ok().map(|_| value)
}

/// A literal as a vindex input. `NULL` and non-literals give `None`.
pub(crate) fn literal(expr: &Expr) -> Option<KeyValue> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(number(n, false)),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                Some(KeyValue::Text(s.as_bytes().to_vec()))
            }
            Value::Placeholder(p) => bind_variable(p).map(KeyValue::Param),
            // `x'…'`: bytes, as a binary vindex's keyspace ID is written.
            Value::HexStringLiteral(hex) => hex_bytes(hex).map(KeyValue::Text),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => Some(number(n, true)),
                _ => None,
            },
            _ => None,
        },
        Expr::Nested(inner) => literal(inner),
        // `_utf8mb4 X'…'`: how text that holds a backslash is written for the shards
        // (`engine::literal`), e.g. a prepared statement's parameter.
        Expr::Prefixed { prefix, value } if prefix.value.eq_ignore_ascii_case("_utf8mb4") => {
            match value.as_ref() {
                Expr::Value(v) => match &v.value {
                    Value::HexStringLiteral(hex) => hex_bytes(hex).map(KeyValue::Text),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `?N` of a normalised statement: its index (N - 1).
pub(crate) fn bind_variable(placeholder: &str) -> Option<usize> {
    placeholder
        .strip_prefix('?')?
        .parse::<usize>()
        .ok()?
        .checked_sub(1)
}

pub(crate) fn number(text: &str, negative: bool) -> KeyValue {
    if negative {
        return match format!("-{text}").parse::<i64>() {
            Ok(v) => KeyValue::Int(v),
            Err(_) => KeyValue::Decimal(format!("-{text}")),
        };
    }
    if let Ok(v) = text.parse::<i64>() {
        KeyValue::Int(v)
    } else if let Ok(v) = text.parse::<u64>() {
        KeyValue::UInt(v)
    } else {
        KeyValue::Decimal(text.to_string())
    }
}

pub(crate) fn conjuncts<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// The narrowest opcode the WHERE clause allows for `target`. Values the vindex cannot map are
/// ignored (a scatter is always correct for them).
pub(crate) fn opcode_for(
    selection: Option<&Expr>,
    target: &Target<'_>,
    keyspace: &Keyspace,
) -> Opcode {
    let Some(selection) = selection else {
        return Opcode::Scatter;
    };
    let mut parts = Vec::new();
    conjuncts(selection, &mut parts);
    let mut in_values: Option<Vec<KeyValue>> = None;
    let mut lookup = None;
    let mut multi: Vec<Option<KeyValue>> = vec![None; target.columns.len()];
    for part in parts {
        match part {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                for (slot, c) in multi.iter_mut().zip(target.columns) {
                    if slot.is_none() {
                        if target.is_column(left, c) {
                            *slot = literal(right);
                        } else if target.is_column(right, c) {
                            *slot = literal(left);
                        }
                    }
                }
                let value = if target.is_vindex_column(left) {
                    target.mappable(right)
                } else if target.is_vindex_column(right) {
                    target.mappable(left)
                } else {
                    None
                };
                if let Some(value) = value {
                    return Opcode::EqualUnique {
                        vindex: target.vindex.clone(),
                        value,
                    };
                }
                // A unique lookup reaches one shard; a non-unique one may reach several.
                let narrower =
                    |l: &Option<(Arc<LookupVindex>, KeyValue)>| l.as_ref().map(|(v, _)| v.unique);
                if narrower(&lookup) != Some(true) {
                    let found = target.lookup_equality(left, right);
                    if narrower(&found) > narrower(&lookup) {
                        lookup = found;
                    }
                }
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated: false,
                ..
            } if in_values.is_none() && target.is_vindex_column(expr) => {
                in_values = list.iter().map(|e| target.mappable(e)).collect();
            }
            _ => {}
        }
    }
    // A multi-column vindex: all its columns give one shard; a `multicol`'s first ones, the
    // shards of a key range.
    let given: Vec<KeyValue> = multi.into_iter().map_while(|v| v).collect();
    let waits = given.iter().any(KeyValue::waits_for_binding);
    if !given.is_empty() && given.len() == target.columns.len() {
        let value = KeyValue::Tuple(given.clone());
        if waits || target.vindex.map(&value).is_ok() {
            return Opcode::EqualUnique {
                vindex: target.vindex.clone(),
                value,
            };
        }
    }
    // A unique lookup finds one shard; a key range or a non-unique lookup maybe several.
    match lookup {
        Some((vindex, value)) if vindex.unique => return Opcode::Lookup { vindex, value },
        _ if !given.is_empty() && given.len() < target.columns.len() => {
            let ranged = target
                .vindex
                .multi
                .as_ref()
                .is_some_and(|m| waits || m.prefix(&given).is_ok());
            if ranged {
                return Opcode::Prefix {
                    vindex: target.vindex.clone(),
                    values: given,
                };
            }
        }
        _ => {}
    }
    if let Some((vindex, value)) = lookup {
        return Opcode::Lookup { vindex, value };
    }
    match in_values {
        Some(values) if !values.is_empty() => narrow_in(target.vindex, values, keyspace),
        _ => Opcode::Scatter,
    }
}

/// An `IN` whose values all live on one shard needs only one of them to find it.
pub(crate) fn narrow_in(
    vindex: &Arc<Vindex>,
    values: Vec<KeyValue>,
    keyspace: &Keyspace,
) -> Opcode {
    let shard_of = |v: &KeyValue| vindex.map(v).map(|id| keyspace.shard_for(&id)).ok();
    let first = shard_of(&values[0]);
    if first.is_some() && values.iter().all(|v| shard_of(v) == first) {
        Opcode::EqualUnique {
            vindex: vindex.clone(),
            value: values[0].clone(),
        }
    } else {
        Opcode::In {
            vindex: vindex.clone(),
            values,
        }
    }
}
