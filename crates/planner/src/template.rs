//! Plans of normalised statements (with bind variables `?N`) and binding them to values.
//!
//! A template plan is the plan of the normalised text: its queries carry `?N`, and vindex values
//! that came from bind variables are [`KeyValue::Param`]. Binding splices the literals back into
//! the queries and redoes, with the real values, the routing decisions the planner takes on
//! values (which shards an `IN` list reaches). Whatever the binder cannot decide the way the
//! planner would (a NULL or unmappable vindex value) makes it give up, and the statement is
//! planned from scratch.

use engine::{InsertRow, Opcode, Plan, Route};
use vschema::{KeyValue, VSchema};

use crate::normalize::{substitute, Literal, LiteralKind};
use crate::routing::narrow_in;

/// The plan of `template` for these literals (one per bind variable), or `None` when the
/// statement must be planned from its text instead.
pub fn bind(template: &Plan, literals: &[Literal], vschema: &VSchema) -> Option<Plan> {
    let text = |q: &str| substitute(q, literals);
    let value = |v: &KeyValue| bound(v, literals);
    Some(match template {
        Plan::Route(r) => Plan::Route(bind_route(r, literals, vschema)?),
        Plan::Merge(s) => {
            let mut s = s.clone();
            s.route = bind_route(&s.route, literals, vschema)?;
            Plan::Merge(s)
        }
        Plan::Send(s) => {
            let mut s = s.clone();
            s.query = text(&s.query)?;
            Plan::Send(s)
        }
        Plan::Insert(i) => {
            let mut i = i.clone();
            i.prefix = text(&i.prefix)?;
            i.suffix = text(&i.suffix)?;
            for row in &mut i.rows {
                if let Some(generate) = &i.generate {
                    decide_generated(row, generate.column, literals)?;
                }
                for v in &mut row.values {
                    *v = text(v)?;
                }
                if let Some(v) = &mut row.value {
                    *v = value(v)?;
                    i.vindex.map(v).ok()?;
                }
                // A lookup value bound to NULL is a NULL.
                for v in row.lookup_values.iter_mut().flatten() {
                    *v = v.as_ref().and_then(value);
                }
            }
            Plan::Insert(i)
        }
        Plan::Join(j) => {
            let mut j = j.clone();
            j.left = Box::new(bind(&j.left, literals, vschema)?);
            j.right.query = j.right.query.map_texts(text)?;
            for k in &mut j.right.keys {
                *k = text(k)?;
            }
            Plan::Join(j)
        }
        Plan::Derived(d) => {
            let mut d = d.clone();
            d.inner = Box::new(bind(&d.inner, literals, vschema)?);
            Plan::Derived(d)
        }
        // Its column names are the items' texts, literals and all.
        Plan::ShardEval(_) => return None,
        Plan::Append(plans) => Plan::Append(
            plans
                .iter()
                .map(|p| bind(p, literals, vschema))
                .collect::<Option<_>>()?,
        ),
        // Which databases answer depends on the literals.
        Plan::Concat(_) => return None,
        Plan::OrderedWrite(w) => {
            let mut w = w.clone();
            w.route = bind_route(&w.route, literals, vschema)?;
            w.write = w.write.map_texts(text)?;
            Plan::OrderedWrite(w)
        }
        Plan::InsertSelect(i) => {
            let mut i = i.clone();
            i.select = Box::new(bind(&i.select, literals, vschema)?);
            i.prefix = text(&i.prefix)?;
            i.suffix = text(&i.suffix)?;
            Plan::InsertSelect(i)
        }
        Plan::PullOut(p) => {
            let mut p = p.clone();
            p.template = p.template.map_texts(text)?;
            for s in &mut p.subqueries {
                s.plan = bind(&s.plan, literals, vschema)?;
            }
            Plan::PullOut(p)
        }
        Plan::OwnedWrite(w) => {
            let mut w = w.clone();
            w.route = bind_route(&w.route, literals, vschema)?;
            w.select = text(&w.select)?;
            if let Some(engine::NewLookupValue { value: Some(v), .. }) = &mut w.new_value {
                *v = value(v)?;
            }
            Plan::OwnedWrite(w)
        }
    })
}

/// A row whose AUTO_INCREMENT value is a bind variable gets its id from the sequence when the
/// bound value is NULL or 0, as the planner decides for a literal.
fn decide_generated(row: &mut InsertRow, column: usize, literals: &[Literal]) -> Option<()> {
    let Some(n) = row
        .values
        .get(column)
        .and_then(|v| v.strip_prefix('?'))
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return Some(());
    };
    let literal = literals.get(n.checked_sub(1)?)?;
    row.generate = match literal.kind {
        LiteralKind::Null => true,
        LiteralKind::Number => literal.sql.parse::<f64>() == Ok(0.0),
        LiteralKind::Text(_) | LiteralKind::Other => false,
    };
    // When the generated column is the primary vindex column, the row is placed by its new id.
    if row.generate && row.value == Some(KeyValue::Param(n - 1)) {
        row.value = None;
    }
    Some(())
}

/// A vindex value with its bind variable (if it is one) replaced; `None` for NULL.
fn bound(v: &KeyValue, literals: &[Literal]) -> Option<KeyValue> {
    match v {
        KeyValue::Param(i) => literals.get(*i)?.key_value(),
        KeyValue::Tuple(values) => Some(KeyValue::Tuple(
            values
                .iter()
                .map(|v| bound(v, literals))
                .collect::<Option<_>>()?,
        )),
        other => Some(other.clone()),
    }
}

fn bind_route(route: &Route, literals: &[Literal], vschema: &VSchema) -> Option<Route> {
    let value = |v: &KeyValue| bound(v, literals);
    let opcode = match &route.opcode {
        Opcode::EqualUnique { vindex, value: v } => {
            let v = value(v)?;
            vindex.map(&v).ok()?;
            Opcode::EqualUnique {
                vindex: vindex.clone(),
                value: v,
            }
        }
        Opcode::In { vindex, values } => {
            let values = values
                .iter()
                .map(|v| value(v).filter(|v| vindex.map(v).is_ok()))
                .collect::<Option<Vec<_>>>()?;
            narrow_in(vindex, values, vschema.keyspace(&route.keyspace)?)
        }
        Opcode::Prefix { vindex, values } => Opcode::Prefix {
            vindex: vindex.clone(),
            values: values.iter().map(value).collect::<Option<_>>()?,
        },
        Opcode::Lookup { vindex, value: v } => Opcode::Lookup {
            vindex: vindex.clone(),
            value: value(v)?,
        },
        other => other.clone(),
    };
    Some(Route {
        keyspace: route.keyspace.clone(),
        opcode,
        query: substitute(&route.query, literals)?,
        elsewhere: match &route.elsewhere {
            Some(text) => Some(substitute(text, literals)?),
            None => None,
        },
    })
}
