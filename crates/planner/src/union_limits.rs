//! UNION ALL over several shards whose branches have their own LIMIT (`(SELECT ... ORDER BY b
//! LIMIT 3) UNION ALL (SELECT ...)`): each shard's first n rows of a branch are not the branch's
//! first n. Each limited branch is merged on its own, from a statement that keeps the whole
//! UNION (so its columns are typed as the UNION types them) with every other branch silenced
//! (`... LIMIT 0`); the branches without a LIMIT come together from one more such statement.
//! Their rows are appended, then the UNION's own ORDER BY / LIMIT apply at the proxy.
//!
//! A branch's ORDER BY keys ride in hidden columns that every branch has (NULL in the others),
//! with their collation weights, so the merge orders text as the shards do.

use engine::{MergedSelect, Opcode, Plan, Route, SortKey, Stage};
use sqlparser::ast::{OrderByKind, Query, Select, SelectItem, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use vschema::Keyspace;

use crate::clauses::{limit_of, position_of, select_clauses, without_alias};
use crate::derived::with_items;
use crate::text::SourceText;
use crate::union::{branch_ranges, column_names, split_tail};
use crate::{unsupported, PlanError};

fn refuse(what: &str) -> PlanError {
    unsupported(format!(
        "{what} in a UNION whose branches have their own LIMIT, over several shards"
    ))
}

/// One branch: its SELECT without ORDER BY / LIMIT; with a LIMIT, its ORDER BY keys as written
/// (with DESC) and the LIMIT's (offset, count).
struct Part<'s> {
    core: &'s str,
    order: Vec<String>,
    limit: Option<(u64, u64)>,
}

pub(crate) fn plan(
    query_text: &str,
    selects: &[&Select],
    own: &[Option<&Query>],
    distinct: bool,
    keyspace: &Keyspace,
    opcode: Opcode,
) -> Result<Plan, PlanError> {
    let (body, tail) = split_tail(query_text).ok_or_else(|| refuse("this text"))?;
    let ranges = branch_ranges(body).ok_or_else(|| refuse("this text"))?;
    if ranges.len() != selects.len() {
        return Err(refuse("this text"));
    }
    let first = selects[0];
    if first.projection.iter().any(|i| {
        !matches!(
            i,
            SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
        )
    }) {
        return Err(refuse("SELECT *"));
    }
    let visible = first.projection.len();

    // Each branch's text and select items, and the hidden columns: (owning branch, expression)
    // pairs, a key's value then its weight, with each key's direction.
    let mut parts = Vec::new();
    let mut items_of: Vec<Vec<String>> = Vec::new();
    let mut hidden: Vec<(usize, String)> = Vec::new();
    let mut keys: Vec<Vec<(usize, bool)>> = vec![Vec::new(); selects.len()];
    for (b, range) in ranges.iter().enumerate() {
        let text = strip_parens(body[range.clone()].trim());
        let (core, _) = split_order_limit(text).ok_or_else(|| refuse("this text"))?;
        let limit = match own[b] {
            Some(q) => limit_of(q)?,
            None => None,
        };
        let source = SourceText::new(text);
        let clauses = select_clauses(&source).ok_or_else(|| refuse("this branch"))?;
        items_of.push(
            clauses
                .items
                .iter()
                .map(|i| without_alias(i).to_string())
                .collect(),
        );
        if limit.is_some() {
            let aliases: Vec<Option<String>> = selects[b]
                .projection
                .iter()
                .map(|i| match i {
                    SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                    _ => None,
                })
                .collect();
            let exprs = match own[b].and_then(|q| q.order_by.as_ref()).map(|o| &o.kind) {
                Some(OrderByKind::Expressions(e)) => e.as_slice(),
                Some(_) => return Err(refuse("this ORDER BY")),
                None => &[],
            };
            for (key, (written, desc)) in exprs.iter().zip(&clauses.order_by) {
                // A position or an alias names a select item: the key is its expression.
                let item = match position_of(&key.expr) {
                    Some(p) => Some(p - 1),
                    None => match &key.expr {
                        sqlparser::ast::Expr::Identifier(id) => aliases.iter().position(|a| {
                            a.as_deref()
                                .is_some_and(|a| a.eq_ignore_ascii_case(&id.value))
                        }),
                        _ => None,
                    },
                };
                let expr =
                    match item {
                        Some(i) => without_alias(clauses.items.get(i).ok_or_else(|| {
                            refuse("an ORDER BY position beyond the select list")
                        })?)
                        .to_string(),
                        None => written.to_string(),
                    };
                keys[b].push((hidden.len(), *desc));
                hidden.push((b, expr.clone()));
                hidden.push((b, format!("WEIGHT_STRING(RTRIM({expr}))")));
            }
        }
        let order = clauses
            .order_by
            .iter()
            .map(|(key, desc)| format!("{key}{}", if *desc { " DESC" } else { "" }))
            .collect();
        parts.push(Part { core, order, limit });
    }

    // The UNION's own ORDER BY keys: its columns, with each branch's weights of them.
    let names = column_names(first, &SourceText::new(query_text))?;
    let names: Vec<&str> = names.split(", ").collect();
    let wrapped = format!("SELECT * FROM ({body}) AS sg_union {tail}");
    let parsed = Parser::parse_sql(&MySqlDialect {}, &wrapped)
        .ok()
        .and_then(|mut s| (s.len() == 1).then(|| s.remove(0)));
    let Some(Statement::Query(outer)) = parsed else {
        return Err(refuse("this ORDER BY or LIMIT"));
    };
    let mut outer_keys = Vec::new();
    // The UNION's columns whose weights ride along: UNION (distinct) compares every one.
    let mut outer_weights: Vec<usize> = Vec::new();
    let weight_of = |c: usize, weights: &mut Vec<usize>| -> usize {
        let n = weights.iter().position(|&x| x == c).unwrap_or_else(|| {
            weights.push(c);
            weights.len() - 1
        });
        visible + hidden.len() + n
    };
    let all: Vec<SortKey> = match distinct {
        true => (0..visible)
            .map(|c| SortKey {
                column: c,
                weight: engine::Weight::Column(weight_of(c, &mut outer_weights)),
                desc: false,
            })
            .collect(),
        false => Vec::new(),
    };
    if let Some(order) = &outer.order_by {
        let OrderByKind::Expressions(exprs) = &order.kind else {
            return Err(refuse("this ORDER BY"));
        };
        for o in exprs {
            let column = match (&o.expr, position_of(&o.expr)) {
                (_, Some(p)) if p <= visible => p - 1,
                (sqlparser::ast::Expr::Identifier(id), None) => names
                    .iter()
                    .position(|n| n.trim_matches('`').eq_ignore_ascii_case(&id.value))
                    .ok_or_else(|| refuse(&format!("ORDER BY {id}, not a column of the UNION,")))?,
                _ => return Err(refuse("an ORDER BY that is not a column of the UNION")),
            };
            outer_keys.push(SortKey {
                column,
                weight: engine::Weight::Column(weight_of(column, &mut outer_weights)),
                desc: matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Desc)),
            });
        }
    }
    let outer_limit = limit_of(&outer)?;

    // The UNION text with `keep` branches as written and the others silenced.
    let union = |keep: &dyn Fn(usize) -> bool| -> Result<String, PlanError> {
        let mut branches = Vec::with_capacity(parts.len());
        for (b, part) in parts.iter().enumerate() {
            let mut items: Vec<String> = hidden
                .iter()
                .enumerate()
                .map(|(n, (owner, e))| {
                    let value = if *owner == b { e.as_str() } else { "NULL" };
                    format!("{value} AS sg_h{n}")
                })
                .collect();
            for (n, &c) in outer_weights.iter().enumerate() {
                let item = items_of[b]
                    .get(c)
                    .ok_or_else(|| refuse("branches of different widths"))?;
                items.push(format!("WEIGHT_STRING(RTRIM({item})) AS sg_o{n}"));
            }
            let core = if items.is_empty() {
                part.core.to_string()
            } else {
                with_items(part.core, &items).ok_or_else(|| refuse("this branch"))?
            };
            branches.push(match (keep(b), part.limit) {
                // Each shard's first offset + count rows: the offset applies once merged.
                (true, Some((offset, count))) => {
                    let order = match part.order.is_empty() {
                        true => String::new(),
                        false => format!(" ORDER BY {}", part.order.join(", ")),
                    };
                    format!("({core}{order} LIMIT {})", offset.saturating_add(count))
                }
                (true, None) => format!("({core})"),
                (false, _) => format!("({core} LIMIT 0)"),
            });
        }
        Ok(branches.join(if distinct { " UNION " } else { " UNION ALL " }))
    };
    let route = |query: String| Route {
        keyspace: keyspace.name.clone(),
        opcode: opcode.clone(),
        query,
        elsewhere: None,
    };
    // The UNION itself goes to the shards, not a derived table of it: its columns come typed
    // as on one server, which also describes a string column differently when the UNION has an
    // ORDER BY of its own (so the shards' statement gets one when the client's has).
    let ordered = |sql: String| {
        if outer_keys.is_empty() {
            sql
        } else {
            format!("{sql} ORDER BY 1")
        }
    };
    let mut plans = Vec::new();
    for (b, part) in parts.iter().enumerate() {
        let Some((offset, count)) = part.limit else {
            continue;
        };
        // Each shard gives at most its first offset + count rows of the branch: sorted here.
        let keys: Vec<SortKey> = keys[b]
            .iter()
            .map(|&(h, desc)| SortKey {
                column: visible + h,
                weight: engine::Weight::Column(visible + h + 1),
                desc,
            })
            .collect();
        let mut stages = Vec::new();
        if !keys.is_empty() {
            stages.push(Stage::MemorySort { keys });
        }
        stages.push(Stage::Limit { offset, count });
        plans.push(Plan::Merge(MergedSelect {
            route: route(ordered(union(&|x| x == b)?)),
            merge: Vec::new(),
            stages,
            wildcard: None,
        }));
    }
    if parts.iter().any(|p| p.limit.is_none()) {
        plans.push(Plan::Route(route(ordered(union(&|x| {
            parts[x].limit.is_none()
        })?))));
    }

    let mut stages = Vec::new();
    if distinct {
        // Every branch's rows together, each distinct row once.
        stages.push(Stage::MemorySort { keys: all.clone() });
        stages.push(Stage::OrderedAggregate {
            group: all,
            aggregates: Vec::new(),
            rollup: false,
        });
    }
    if !outer_keys.is_empty() {
        stages.push(Stage::MemorySort { keys: outer_keys });
    }
    if let Some((offset, count)) = outer_limit {
        stages.push(Stage::Limit { offset, count });
    }
    stages.push(Stage::DropHidden {
        count: hidden.len() + outer_weights.len(),
    });
    Ok(Plan::Derived(engine::Derived {
        inner: Box::new(Plan::Append(plans)),
        stages,
    }))
}

/// A parenthesised branch's text inside its parentheses.
fn strip_parens(text: &str) -> &str {
    let mut t = text;
    while t.starts_with('(')
        && t.ends_with(')')
        && crate::text::up_to_close(t, 1) == Some(1..t.len() - 1)
    {
        t = t[1..t.len() - 1].trim();
    }
    t
}

/// A SELECT's text cut before its top-level ORDER BY or LIMIT: (the rest, those clauses).
fn split_order_limit(sql: &str) -> Option<(&str, &str)> {
    let source = SourceText::new(sql);
    let tokens = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let mut depth = 0i32;
    for t in &tokens {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w)
                if depth == 0
                    && w.quote_style.is_none()
                    && matches!(w.keyword, Keyword::ORDER | Keyword::LIMIT) =>
            {
                let at = source.range(t.span)?.start;
                return Some((sql[..at].trim_end(), &sql[at..]));
            }
            _ => {}
        }
    }
    Some((sql.trim_end(), ""))
}
