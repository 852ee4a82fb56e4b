//! UNION and UNION ALL over sharded tables. When every branch's rows are spread over the shards
//! (each row produced by exactly one shard), the whole UNION runs on every shard and the shards'
//! results together are the UNION ALL. UNION (distinct) is deduplicated once more at the proxy,
//! and ORDER BY / LIMIT apply after: the shards get the UNION as a derived table,
//! `SELECT [DISTINCT] ... FROM (<union>) AS sg_union <ORDER BY/LIMIT>`, merged like a one-table
//! scatter. Under UNION ALL, a branch that reads no sharded table gives its rows on the first
//! shard only: the others get the text with that branch as `(... LIMIT 0)`.

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
use crate::scatter::{route_or_merge, select_needs_merge, NeedsMerge};
use crate::text::SourceText;
use crate::{unsupported, PlanError};

pub(crate) fn plan_union(
    query: &Query,
    analysis: &Colocation,
    keyspace: &Keyspace,
    query_text: &str,
) -> Result<Plan, PlanError> {
    let mut selects = Vec::new();
    let mut operators = Vec::new();
    let mut own = Vec::new();
    branches(&query.body, &mut selects, &mut own, &mut operators)?;
    // A branch's own LIMIT (its ORDER BY alone changes nothing in a UNION).
    let limited = own
        .iter()
        .any(|q| q.is_some_and(|q: &Query| q.limit_clause.is_some()));
    // The outermost operator decides: a UNION (distinct) removes the duplicates of everything
    // before it, whatever those operators were. A UNION ALL after one would keep its own
    // duplicates while the earlier branches lose theirs.
    let distinct = operators.first().copied().unwrap_or(true);
    if !distinct && operators.contains(&true) {
        return Err(unsupported(
            "UNION ALL after a UNION (distinct) over several shards",
        ));
    }
    let placed = analysis.branches(&selects, keyspace)?;
    for (select, branch) in selects.iter().zip(&placed) {
        if let Branch::Unplaceable = branch {
            return Err(unsupported(
                "a UNION branch whose sharded tables are not joined on their vindex columns",
            ));
        }
        match select_needs_merge(select) {
            None => {}
            Some(NeedsMerge::Distinct) if distinct => {}
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
            elsewhere: None,
        }));
    }
    if limited {
        // A branch that reads no sharded table gives its rows on every shard: under UNION
        // (distinct) they are one row each in the end, but its own LIMIT would count copies.
        let everywhere = |i: usize| matches!(placed[i], Branch::Everywhere);
        let has_limit = |i: usize| own[i].is_some_and(|q: &Query| q.limit_clause.is_some());
        if (0..placed.len()).any(|i| everywhere(i) && (!distinct || has_limit(i))) {
            return Err(unsupported(
                "LIMIT inside a UNION branch, with a branch that reads no sharded table, over several shards",
            ));
        }
        return crate::union_limits::plan(query_text, &selects, &own, distinct, keyspace, opcode);
    }
    let (body, tail) =
        split_tail(query_text).ok_or_else(|| unsupported("this UNION text over several shards"))?;
    // UNION ALL: a branch that reads no sharded table gives its rows on the first shard only;
    // the others run it with LIMIT 0, which keeps the result's column types.
    let everywhere: Vec<usize> = (0..placed.len())
        .filter(|&i| !distinct && matches!(placed[i], Branch::Everywhere))
        .collect();
    let elsewhere = if everywhere.is_empty() {
        None
    } else {
        Some(silenced(body, &selects, &everywhere).ok_or_else(|| {
            unsupported("UNION ALL with a branch that reads no sharded table, written this way")
        })?)
    };
    if !distinct && tail.trim().is_empty() {
        return Ok(Plan::Route(engine::Route {
            keyspace: keyspace.name.clone(),
            opcode,
            query: query_text.to_string(),
            elsewhere,
        }));
    }
    let columns = if distinct {
        format!(
            "DISTINCT {}",
            column_names(selects[0], &SourceText::new(query_text))?
        )
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
    let mut plan = route_or_merge(
        wrapped_query,
        select,
        &keyspace.name,
        opcode,
        wrapped,
        false,
        None,
    )?;
    if let Some(silent) = elsewhere {
        // The shards' statement holds the UNION's text as it is: the others get it silenced.
        let route = match &mut plan {
            Plan::Route(r) => r,
            Plan::Merge(s) => &mut s.route,
            _ => return Err(unsupported("this UNION ALL over several shards")),
        };
        let inner = format!("({body}) AS sg_union");
        if route.query.matches(&inner).count() != 1 {
            return Err(unsupported("this UNION ALL over several shards"));
        }
        route.elsewhere = Some(
            route
                .query
                .replacen(&inner, &format!("({silent}) AS sg_union"), 1),
        );
    }
    Ok(plan)
}

/// The UNION's text with the branches `silence` written as `(branch LIMIT 0)`; `None` unless
/// every branch's text is found and parses back to its SELECT.
fn silenced(body: &str, selects: &[&Select], silence: &[usize]) -> Option<String> {
    let ranges = branch_ranges(body)?;
    if ranges.len() != selects.len() {
        return None;
    }
    let source = SourceText::new(body);
    let mut edits = Vec::new();
    for &i in silence {
        let text = body[ranges[i].clone()].trim();
        let parsed = Parser::new(&MySqlDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_query())
            .ok()?;
        if !matches!(parsed.body.as_ref(), SetExpr::Select(s) if s.as_ref() == selects[i])
            || text.starts_with('(')
        {
            return None;
        }
        edits.push((ranges[i].clone(), format!(" ({text} LIMIT 0) ")));
    }
    Some(source.with_edits(edits))
}

/// The byte ranges of a UNION's branches: the text between its top-level UNION [ALL|DISTINCT]
/// keywords.
pub(crate) fn branch_ranges(body: &str) -> Option<Vec<std::ops::Range<usize>>> {
    let source = SourceText::new(body);
    let tokens = Tokenizer::new(&MySqlDialect {}, body)
        .tokenize_with_location()
        .ok()?;
    let mut ranges = Vec::new();
    let (mut depth, mut start, mut after_union) = (0i32, 0usize, false);
    for t in &tokens {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.keyword == Keyword::UNION => {
                ranges.push(start..source.range(t.span)?.start);
                after_union = true;
                start = source.range(t.span)?.end;
                continue;
            }
            Token::Word(w)
                if after_union && matches!(w.keyword, Keyword::ALL | Keyword::DISTINCT) =>
            {
                start = source.range(t.span)?.end;
            }
            Token::Whitespace(_) => continue,
            _ => {}
        }
        after_union = false;
    }
    ranges.push(start..body.len());
    Some(ranges)
}

/// The branches of a UNION in order, with the parenthesised query holding a branch's own ORDER
/// BY / LIMIT, and whether each operator is distinct, outermost first.
fn branches<'q>(
    body: &'q SetExpr,
    out: &mut Vec<&'q Select>,
    own: &mut Vec<Option<&'q Query>>,
    distinct: &mut Vec<bool>,
) -> Result<(), PlanError> {
    match body {
        SetExpr::Select(s) => {
            out.push(s);
            own.push(None);
        }
        SetExpr::Query(q)
            if q.with.is_none() && q.order_by.is_none() && q.limit_clause.is_none() =>
        {
            branches(&q.body, out, own, distinct)?
        }
        SetExpr::Query(q) if q.with.is_none() && q.fetch.is_none() && q.locks.is_empty() => {
            match q.body.as_ref() {
                SetExpr::Select(s) => {
                    out.push(s);
                    own.push(Some(q));
                }
                _ => {
                    return Err(unsupported(
                        "ORDER BY or LIMIT on a nested set operation over several shards",
                    ))
                }
            }
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
            distinct.push(this);
            branches(left, out, own, distinct)?;
            branches(right, out, own, distinct)?;
        }
        SetExpr::SetOperation { op, .. } => {
            return Err(unsupported(format!("{op} over several shards")))
        }
        SetExpr::Query(_) => {
            return Err(unsupported(
                "WITH, FETCH or locking inside a UNION branch over several shards",
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

/// The UNION's column names (the first branch's), quoted, for the DISTINCT wrapper: as MySQL
/// names them, an unaliased expression by its text (a string literal by its value).
pub(crate) fn column_names(first: &Select, source: &SourceText<'_>) -> Result<String, PlanError> {
    let mut names: Vec<String> = Vec::new();
    for item in &first.projection {
        let unnamed = || {
            unsupported(
                "UNION over several shards whose first SELECT has a column without a name (give it an alias)",
            )
        };
        let name = match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => i.value.clone(),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                parts.last().map(|p| p.value.clone()).unwrap_or_default()
            }
            SelectItem::UnnamedExpr(Expr::Value(v)) => match &v.value {
                sqlparser::ast::Value::SingleQuotedString(s) if !s.is_empty() => s.clone(),
                sqlparser::ast::Value::Number(n, _) => n.clone(),
                _ => return Err(unnamed()),
            },
            SelectItem::UnnamedExpr(e) => crate::clauses::expr_range(e, source)
                .map(|r| source.sql()[r].to_string())
                .filter(|text| text.len() <= 64)
                .ok_or_else(unnamed)?,
            _ => return Err(unnamed()),
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
pub(crate) fn split_tail(sql: &str) -> Option<(&str, &str)> {
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
