//! UNION and UNION ALL over sharded tables. When every branch's rows are spread over the shards
//! (each row produced by exactly one shard), the whole UNION runs on every shard and the shards'
//! results together are the UNION ALL. UNION (distinct) is deduplicated once more at the proxy,
//! and ORDER BY / LIMIT apply after: the shards get the UNION as a derived table,
//! `SELECT [DISTINCT] ... FROM (<union>) AS sg_union <ORDER BY/LIMIT>`, merged like a one-table
//! scatter.

use engine::{Opcode, Plan};
use sqlparser::ast::{
    Expr, Query, Select, SelectItem, SetExpr, SetOperator, SetQuantifier, Statement,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use vschema::Keyspace;

use crate::colocate::{Branch, Colocation};
use crate::routing::narrow_in;
use crate::select::{select_needs_merge, spread};
use crate::text::SourceText;
use crate::{unsupported, PlanError};

pub(crate) fn plan_union(
    query: &Query,
    analysis: &Colocation,
    keyspace: &Keyspace,
    query_text: &str,
) -> Result<Plan, PlanError> {
    let mut selects = Vec::new();
    let mut distinct = None;
    branches(&query.body, &mut selects, &mut distinct)?;
    let distinct = distinct.unwrap_or(true);
    let placed = analysis.branches(&selects, keyspace)?;
    for (select, branch) in selects.iter().zip(&placed) {
        match branch {
            Branch::Unplaceable => {
                return Err(unsupported(
                    "a UNION branch whose sharded tables are not joined on their vindex columns",
                ))
            }
            Branch::Everywhere if !distinct => {
                return Err(unsupported(
                    "UNION ALL with a branch that reads no sharded table, over several shards",
                ))
            }
            _ => {}
        }
        match select_needs_merge(select) {
            None => {}
            Some(c) if distinct && c == "DISTINCT" => {}
            Some(construct) => {
                return Err(unsupported(format!(
                    "{construct} inside a UNION over several shards"
                )))
            }
        }
    }
    let opcode = opcode(&placed, keyspace);
    if opcode.is_single_shard() {
        return Ok(Plan::Route(engine::Route {
            keyspace: keyspace.name.clone(),
            opcode,
            query: query_text.to_string(),
        }));
    }
    let (body, tail) =
        split_tail(query_text).ok_or_else(|| unsupported("this UNION text over several shards"))?;
    if !distinct && tail.trim().is_empty() {
        return Ok(Plan::Route(engine::Route {
            keyspace: keyspace.name.clone(),
            opcode,
            query: query_text.to_string(),
        }));
    }
    let columns = if distinct {
        format!("DISTINCT {}", column_names(selects[0])?)
    } else {
        "*".to_string()
    };
    let wrapped = format!("SELECT {columns} FROM ({body}) AS sg_union {tail}");
    let stmt = Parser::parse_sql(&MySqlDialect {}, &wrapped)
        .ok()
        .and_then(|mut s| (s.len() == 1).then(|| s.remove(0)))
        .ok_or_else(|| unsupported("this UNION text over several shards"))?;
    let Statement::Query(wrapped_query) = &stmt else {
        return Err(unsupported("this UNION text over several shards"));
    };
    let SetExpr::Select(select) = wrapped_query.body.as_ref() else {
        return Err(unsupported("this UNION text over several shards"));
    };
    spread(wrapped_query, select, &keyspace.name, opcode, wrapped)
}

/// The branches of a UNION in order, and whether it is distinct (every operator alike).
fn branches<'q>(
    body: &'q SetExpr,
    out: &mut Vec<&'q Select>,
    distinct: &mut Option<bool>,
) -> Result<(), PlanError> {
    match body {
        SetExpr::Select(s) => out.push(s),
        SetExpr::Query(q)
            if q.with.is_none() && q.order_by.is_none() && q.limit_clause.is_none() =>
        {
            branches(&q.body, out, distinct)?
        }
        SetExpr::SetOperation {
            op: SetOperator::Union,
            set_quantifier,
            left,
            right,
        } => {
            let this = match set_quantifier {
                SetQuantifier::All => false,
                SetQuantifier::None | SetQuantifier::Distinct => true,
                other => return Err(unsupported(format!("UNION {other} over several shards"))),
            };
            if distinct.is_some_and(|d| d != this) {
                return Err(unsupported(
                    "UNION mixed with UNION ALL over several shards",
                ));
            }
            *distinct = Some(this);
            branches(left, out, distinct)?;
            branches(right, out, distinct)?;
        }
        SetExpr::SetOperation { op, .. } => {
            return Err(unsupported(format!("{op} over several shards")))
        }
        SetExpr::Query(_) => {
            return Err(unsupported(
                "ORDER BY, LIMIT or WITH inside a UNION branch over several shards",
            ))
        }
        _ => return Err(unsupported("this UNION branch over several shards")),
    }
    Ok(())
}

/// Every branch pinned under one vindex (or reading no sharded table): the shards of the pins.
fn opcode(placed: &[Branch], keyspace: &Keyspace) -> Opcode {
    let mut vindex = None;
    let mut values = Vec::new();
    for branch in placed {
        match branch {
            Branch::Everywhere => {}
            Branch::Pinned(v, value) if vindex.as_ref().is_none_or(|x| x == v) => {
                vindex = Some(v.clone());
                values.push(value.clone());
            }
            _ => return Opcode::Scatter,
        }
    }
    match vindex {
        Some(v) => narrow_in(&v, values, keyspace),
        None => Opcode::Scatter,
    }
}

/// The UNION's column names (the first branch's), quoted, for the DISTINCT wrapper.
fn column_names(first: &Select) -> Result<String, PlanError> {
    let mut names: Vec<String> = Vec::new();
    for item in &first.projection {
        let name = match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => i.value.clone(),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                parts.last().map(|p| p.value.clone()).unwrap_or_default()
            }
            _ => {
                return Err(unsupported(
                    "UNION over several shards whose first SELECT has a column without a name (give it an alias)",
                ))
            }
        };
        if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            return Err(unsupported(format!(
                "UNION over several shards with two columns named {name}"
            )));
        }
        names.push(name);
    }
    Ok(names
        .iter()
        .map(|n| format!("`{}`", n.replace('`', "``")))
        .collect::<Vec<_>>()
        .join(", "))
}

/// The UNION's text and what follows it (its own ORDER BY / LIMIT): split at the first ORDER or
/// LIMIT keyword outside parentheses after the last UNION.
fn split_tail(sql: &str) -> Option<(&str, &str)> {
    let source = SourceText::new(sql);
    let tokens = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let mut depth = 0i32;
    let mut last_union = None;
    let mut cut = None;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.keyword == Keyword::UNION => {
                last_union = Some(i);
                cut = None;
            }
            Token::Word(w)
                if depth == 0
                    && last_union.is_some()
                    && cut.is_none()
                    && matches!(w.keyword, Keyword::ORDER | Keyword::LIMIT) =>
            {
                cut = Some(source.range(t.span)?.start);
            }
            _ => {}
        }
    }
    last_union?;
    let cut = cut.unwrap_or(sql.len());
    let body = sql[..cut].trim_end().trim_end_matches(';').trim_end();
    Some((body, &sql[cut..]))
}
