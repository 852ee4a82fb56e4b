//! Joins of two tables whose rows do not live together (not joined on a shared vindex, or in
//! different keyspaces): a nested-loop [`engine::Join`]. The left table's query returns its
//! select items and join keys; the right table's query, run per batch of left rows, returns its
//! items and, for each row, which of the batch's keys it matched.
//!
//! Supported: `a [INNER | LEFT] JOIN b ON ...` or `FROM a, b WHERE ...`, with at least one
//! equality between an expression of each table; every column qualified (`qualify` does that
//! first for unqualified ones, from the shards' column lists); select items, WHERE
//! and ON conjuncts each over one table; `*` and `t.*`; ORDER BY and LIMIT (sorted at the proxy,
//! bounded); GROUP BY, HAVING and the aggregates COUNT, SUM, MIN, MAX and AVG (COUNT and SUM
//! also DISTINCT), combined at the proxy from per-row partials (`aggregates`).
//! Refused (1235): SELECT DISTINCT, other aggregates, expressions over an aggregate, GROUP BY a
//! position, conditions over both tables other than equalities, and for LEFT JOIN, conditions
//! that are not on the right table in ON.

use std::ops::ControlFlow;

use engine::{
    EvalExpr, Hole, Join, JoinColumn, JoinKind, JoinRight, Opcode, OutputColumn, Plan, SortKey,
    SqlTemplate, Stage,
};
use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, JoinConstraint, JoinOperator, ObjectName, Query, Select,
    SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Spanned, TableFactor, TableWithJoins,
    Visit, Visitor,
};
use vschema::Table;

use crate::aggregates::aggregate;
use crate::aggregates::{
    contains_aggregate, distinct_key, find_call, grouped_tail, AggCall, AggFn, GroupedItem,
    AGGREGATES,
};
use crate::clauses::{expr_text, order_by, query_text, sort_limit_drop};
use crate::routing::conjuncts;
use crate::tables::resolve;
use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// A table of the join: its name as written, the name that qualifies its columns.
pub(crate) struct Operand<'q> {
    pub(crate) name: &'q ObjectName,
    pub(crate) qualifier: String,
}

/// The plan of a join across shards, or `None` when the statement is not such a join (the
/// caller's reason to refuse it stands).
pub(crate) fn plan_join(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<Plan, PlanError>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let (left, right, outer, on) = shape(select, source)?;
    let kind = if outer {
        JoinKind::LeftOuter
    } else {
        JoinKind::Inner
    };
    Some(plan(query, select, source, ctx, left, right, kind, on))
}

/// A join a rewrite produced, planned from the parser's printing of it: as `kind` when given
/// (see [`plan_join_of_kind`]), else as its JOIN says.
pub(crate) fn plan_printed(
    query: &Query,
    ctx: &Context<'_>,
    kind: Option<JoinKind>,
) -> Option<Result<Plan, PlanError>> {
    use sqlparser::{ast::Statement, dialect::MySqlDialect, parser::Parser};
    let text = query.to_string();
    let mut parsed = Parser::parse_sql(&MySqlDialect {}, &text).ok()?;
    let Some(Statement::Query(parsed)) = parsed.pop() else {
        return None;
    };
    let source = SourceText::new(&text);
    match kind {
        Some(kind) => plan_join_of_kind(&parsed, &source, ctx, kind),
        None => plan_join(&parsed, &source, ctx),
    }
}

/// A join planned as `kind` whatever its JOIN says: a semi-join or an anti-join written as an
/// inner join (`semi_join`), whose select list reads the left table only.
pub(crate) fn plan_join_of_kind(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
    kind: JoinKind,
) -> Option<Result<Plan, PlanError>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let (left, right, _, on) = shape(select, source)?;
    Some(plan(query, select, source, ctx, left, right, kind, on))
}

/// What the left query reads: its FROM text and the names that qualify its columns.
struct Left {
    from: String,
    qualifiers: Vec<String>,
}

pub(crate) fn operand(factor: &TableFactor) -> Option<Operand<'_>> {
    match factor {
        TableFactor::Table {
            name, alias, args, ..
        } if args.is_none() => {
            let last = name.0.last()?.as_ident()?.value.clone();
            Some(Operand {
                name,
                qualifier: alias.as_ref().map_or(last, |a| a.name.value.clone()),
            })
        }
        _ => None,
    }
}

/// The names a FROM item defines for qualifying columns; `None` for items not understood.
fn qualifiers_of(factor: &TableFactor, out: &mut Vec<String>) -> Option<()> {
    match factor {
        TableFactor::Table { .. } => out.push(operand(factor)?.qualifier),
        TableFactor::Derived { alias: Some(a), .. } => out.push(a.name.value.clone()),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            qualifiers_of(&table_with_joins.relation, out)?;
            for j in &table_with_joins.joins {
                qualifiers_of(&j.relation, out)?;
            }
        }
        _ => return None,
    }
    Some(())
}

/// The last table joined (`... JOIN b ON ...`, `... LEFT JOIN b ON ...` or `..., b`) against
/// everything before it, whether it is a LEFT JOIN, and its ON condition.
fn shape<'s>(
    select: &'s Select,
    source: &SourceText<'_>,
) -> Option<(Left, Operand<'s>, bool, Option<&'s Expr>)> {
    let left_of = |from: Vec<TableWithJoins>| -> Option<Left> {
        let mut qualifiers = Vec::new();
        for twj in &from {
            qualifiers_of(&twj.relation, &mut qualifiers)?;
            for j in &twj.joins {
                qualifiers_of(&j.relation, &mut qualifiers)?;
            }
        }
        // One table: the client's text. Several: the parser's printer, which would double a
        // string's backslashes away, so only for statements without any.
        let text = match from.as_slice() {
            [one] if one.joins.is_empty() => match &one.relation {
                // A derived table: its query is planned on its own.
                TableFactor::Derived {
                    lateral: false,
                    subquery,
                    alias: Some(alias),
                    ..
                } if alias.columns.is_empty() => format!(
                    "({}) AS `{}`",
                    query_text(subquery, source)?,
                    alias.name.value.replace('`', "``")
                ),
                relation => {
                    let t = operand(relation)?;
                    format!(
                        "{} AS `{}`",
                        source.slice(t.name.span())?,
                        t.qualifier.replace('`', "``")
                    )
                }
            },
            _ if source.sql().contains('\\') => return None,
            _ => from
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        Some(Left {
            from: text,
            qualifiers,
        })
    };
    match select.from.as_slice() {
        [one] => {
            let (join, rest) = one.joins.split_last()?;
            let (outer, constraint) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (false, c),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (true, c),
                _ => return None,
            };
            let JoinConstraint::On(on) = constraint else {
                return None;
            };
            // `t JOIN (subquery) d`: an inner join is the same with the sides swapped, and the
            // derived table can only be the left side (its rows are not looked up by key).
            if let (true, false, TableFactor::Derived { .. }) =
                (rest.is_empty(), outer, &join.relation)
            {
                let left = left_of(vec![TableWithJoins {
                    relation: join.relation.clone(),
                    joins: Vec::new(),
                }])?;
                return Some((left, operand(&one.relation)?, false, Some(on)));
            }
            let left = left_of(vec![TableWithJoins {
                relation: one.relation.clone(),
                joins: rest.to_vec(),
            }])?;
            Some((left, operand(&join.relation)?, outer, Some(on)))
        }
        [rest @ .., last] if !rest.is_empty() && last.joins.is_empty() => Some((
            left_of(rest.to_vec())?,
            operand(&last.relation)?,
            false,
            None,
        )),
        _ => None,
    }
}

/// Accumulates the text of one side's query.
#[derive(Default)]
struct SideQuery {
    items: Vec<String>,
    conditions: Vec<String>,
    keys: Vec<String>,
    /// `q.*` items, which go last (their width is known only when the query runs).
    star: Vec<String>,
}

impl SideQuery {
    /// Adds a column, or finds the same one; returns its index.
    fn item(&mut self, sql: String) -> usize {
        if let Some(i) = self.items.iter().position(|i| *i == sql) {
            return i;
        }
        self.items.push(sql);
        self.items.len() - 1
    }
}

#[allow(clippy::too_many_arguments)]
fn plan(
    query: &Query,
    select: &Select,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
    left: Left,
    right: Operand<'_>,
    kind: JoinKind,
    on: Option<&Expr>,
) -> Result<Plan, PlanError> {
    // ON conditions hold per candidate pair in a LEFT JOIN, a semi-join and an anti-join alike.
    let outer = kind != JoinKind::Inner;
    let across = |what: &str| unsupported(format!("{what} in a join across shards"));
    if left.qualifiers.contains(&right.qualifier) {
        return Err(across("two tables named alike"));
    }
    if query.with.is_some() {
        return Err(across("a CTE named more than once, or recursive (WITH)"));
    }
    if query.fetch.is_some() || !query.locks.is_empty() {
        return Err(across("FETCH or FOR UPDATE / LOCK IN SHARE MODE"));
    }
    if select.distinct.is_some() || select.into.is_some() {
        return Err(across("DISTINCT or INTO"));
    }
    if let Some(f) = find_call(&select.projection, |f| {
        f.over.is_some().then(|| f.name.to_string().to_uppercase())
    }) {
        return Err(across(&format!("the window function {f}")));
    }
    let right_table = resolve(right.name, ctx)?;
    let sides = Sides {
        left: &left.qualifiers,
        right: &right.qualifier,
    };
    let text = |e: &Expr| expr_text(e, source);
    let mut q = [SideQuery::default(), SideQuery::default()];
    let idx = |s: Side| s as usize;

    // Conditions: ON (for a LEFT JOIN, it may only restrict the right table) and WHERE.
    let mut parts: Vec<(&Expr, bool)> = Vec::new();
    if let Some(on) = on {
        let mut c = Vec::new();
        conjuncts(on, &mut c);
        parts.extend(c.into_iter().map(|e| (e, true)));
    }
    if let Some(w) = &select.selection {
        let mut c = Vec::new();
        conjuncts(w, &mut c);
        parts.extend(c.into_iter().map(|e| (e, false)));
    }
    let mut key_pairs: Vec<(String, String, &Expr)> = Vec::new();
    // Conditions over the joined rows, evaluated at the proxy after the join: over both tables
    // (other than the join keys), and a LEFT JOIN's WHERE on its right table (NULL-extended
    // rows included, as `... WHERE r.id IS NULL` needs).
    let mut after: Vec<&Expr> = Vec::new();
    // A LEFT JOIN's ON conditions over both tables or on the left one: per candidate pair.
    let mut on_pair: Vec<&Expr> = Vec::new();
    for (part, in_on) in parts {
        if let Expr::BinaryOp {
            left: a,
            op: BinaryOperator::Eq,
            right: b,
        } = part
        {
            let (sa, sb) = (sides.of(a)?, sides.of(b)?);
            let pair = match (sa, sb) {
                (Some(Side::Left), Some(Side::Right)) => Some((a, b)),
                (Some(Side::Right), Some(Side::Left)) => Some((b, a)),
                _ => None,
            };
            if let Some((l, r)) = pair {
                if outer && !in_on {
                    after.push(part);
                } else {
                    key_pairs.push((text(l)?, text(r)?, r.as_ref()));
                }
                continue;
            }
        }
        let side = match sides.of_condition(part)? {
            Reach::Both if outer && in_on => {
                on_pair.push(part);
                continue;
            }
            Reach::Both => {
                after.push(part);
                continue;
            }
            Reach::One(s) => s,
            Reach::None if outer && in_on => Side::Right,
            Reach::None => Side::Left,
        };
        if outer && in_on && side == Side::Left {
            on_pair.push(part);
            continue;
        }
        if outer && !in_on && side == Side::Right {
            after.push(part);
            continue;
        }
        q[idx(side)].conditions.push(text(part)?);
    }
    if key_pairs.is_empty() {
        return Err(across("a join without an equality between the two tables"));
    }

    // The right table's vindex column first among the keys: then only its owners are asked.
    let vindex = match &right_table.table {
        Table::Sharded { column, vindex, .. } => {
            let is_vindex = |e: &Expr| match e {
                Expr::CompoundIdentifier(p) => p
                    .last()
                    .is_some_and(|c| c.value.eq_ignore_ascii_case(column)),
                _ => false,
            };
            match key_pairs.iter().position(|(_, _, r)| is_vindex(r)) {
                Some(i) => {
                    key_pairs.swap(0, i);
                    Some(vindex.clone())
                }
                None => None,
            }
        }
        _ => None,
    };
    let opcode = match (&right_table.table, right_table.keyspace.sharded) {
        (Table::Sequence, _) => return Err(across("a sequence table")),
        (_, false) => Opcode::Unsharded,
        (Table::Reference, true) => Opcode::Reference,
        _ => Opcode::Scatter,
    };

    let grouped = find_call(&select.projection, |f| {
        let name = f.name.to_string().to_ascii_lowercase();
        AGGREGATES.contains(&name.as_str()).then_some(name)
    })
    .is_some()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    let (mut columns, mut stages) = if grouped {
        grouped_rows(query, select, &sides, &mut q, source)?
    } else {
        rows(query, select, &sides, &mut q, source)?
    };
    let starred = columns
        .iter()
        .any(|c| matches!(c, JoinColumn::LeftFrom(_) | JoinColumn::RightFrom(_)));
    if starred && !(after.is_empty() && on_pair.is_empty()) {
        return Err(across("SELECT * with conditions over both tables"));
    }
    // The columns the conditions read go last in the joined row; a projection (grouped or
    // computed items) or DropHidden takes them away again.
    let first = columns.len();
    let mut predicate = |conditions: Vec<&Expr>| -> Result<Option<EvalExpr>, PlanError> {
        let mut all: Option<EvalExpr> = None;
        for part in conditions {
            // A condition on the left table alone (LEFT JOIN ON) is the left shard's to compute;
            // the left row is always there. Others are computed here from the columns they read.
            let e = if sides.of_condition(part)? == Reach::One(Side::Left) {
                columns.push(at(Side::Left, q[0].item(text(part)?)));
                EvalExpr::Column(columns.len() - 1)
            } else {
                crate::clauses::to_eval(part, &mut |leaf: &Expr| {
                    let side = match sides.of_condition(leaf)? {
                        Reach::One(s) => s,
                        _ => return Err(across(&format!("{leaf} in a condition"))),
                    };
                    columns.push(at(side, q[idx(side)].item(text(leaf)?)));
                    Ok(EvalExpr::Column(columns.len() - 1))
                })?
            };
            all = Some(match all {
                None => e,
                Some(p) => EvalExpr::And(Box::new(p), Box::new(e)),
            });
        }
        Ok(all)
    };
    let on = predicate(on_pair)?;
    if let Some(predicate) = predicate(after)? {
        stages.insert(0, Stage::Filter { predicate });
    }
    let added = columns.len() - first;
    if added > 0 {
        let projected = stages.iter().any(|s| matches!(s, Stage::Projection { .. }));
        if !projected {
            match stages.iter_mut().find_map(|s| match s {
                Stage::DropHidden { count } => Some(count),
                _ => None,
            }) {
                Some(count) => *count += added,
                None => stages.push(Stage::DropHidden { count: added }),
            }
        }
    }

    // The left query: its items, then the keys.
    let mut left_query = std::mem::take(&mut q[0]);
    let left_keys: Vec<usize> = key_pairs
        .iter()
        .map(|(l, _, _)| left_query.item(l.clone()))
        .collect();
    let left_star = left_query.items.len();
    left_query.items.append(&mut left_query.star);
    let left_plan = crate::plan_text(&side_sql(&left_query, &left.from), ctx)?;

    // The right query: its items, then which keys each row matched.
    let mut right_query = std::mem::take(&mut q[1]);
    right_query.keys = key_pairs.iter().map(|(_, r, _)| r.clone()).collect();
    let right_star = right_query.items.len();
    right_query.items.append(&mut right_query.star);
    for c in &mut columns {
        match c {
            JoinColumn::LeftFrom(i) => *i = left_star,
            JoinColumn::RightFrom(i) => *i = right_star,
            _ => {}
        }
    }
    let from = format!(
        "{} AS `{}`",
        right_table.name,
        right.qualifier.replace('`', "``")
    );
    // Its items, then which of the batch's keys each row matched; its conditions, then the
    // batch's keys.
    let mut right_sql = SqlTemplate::default();
    right_sql.push_str(match kind {
        // Which keys have a match is all it tells.
        JoinKind::Semi | JoinKind::Anti => "SELECT DISTINCT ",
        JoinKind::Inner | JoinKind::LeftOuter => "SELECT ",
    });
    for item in &right_query.items {
        right_sql.push_str(item);
        right_sql.push_str(", ");
    }
    right_sql.push_str("CONCAT_WS(',', ");
    right_sql.push_hole(Hole::Matches);
    right_sql.push_str(&format!(") FROM {from} WHERE "));
    for c in &right_query.conditions {
        right_sql.push_str(&format!("({c}) AND "));
    }
    right_sql.push_str(&format!("(({}) IN (", right_query.keys.join(", ")));
    right_sql.push_hole(Hole::Keys);
    right_sql.push_str("))");
    Ok(Plan::Join(Join {
        left: Box::new(left_plan),
        left_keys,
        kind,
        on,
        right: JoinRight {
            keyspace: right_table.keyspace.name.clone(),
            query: right_sql,
            keys: right_query.keys,
            vindex,
            opcode,
        },
        columns,
        stages,
    }))
}

/// The joined rows as they are: select items, then ORDER BY keys and their weights (hidden).
fn rows(
    query: &Query,
    select: &Select,
    sides: &Sides<'_>,
    q: &mut [SideQuery; 2],
    source: &SourceText<'_>,
) -> Result<(Vec<JoinColumn>, Vec<Stage>), PlanError> {
    let across = |what: &str| unsupported(format!("{what} in a join across shards"));
    let text = |e: &Expr| expr_text(e, source);
    let idx = |s: Side| s as usize;
    // Select items, each from one table (a constant from the left).
    struct Item<'e> {
        /// `None` for an item computed at the proxy.
        column: Option<JoinColumn>,
        sql: String,
        alias: Option<String>,
        expr: &'e Expr,
    }
    if select.having.is_some() {
        return Err(across("HAVING without GROUP BY or aggregates"));
    }
    let mut items: Vec<Item<'_>> = Vec::new();
    let mut columns: Vec<JoinColumn> = Vec::new();
    // What the client sees, when some item is computed here; else the leading columns are it.
    let mut projection: Vec<OutputColumn> = Vec::new();
    let mut computed = false;
    let quote = |q: &str| format!("`{}`.*", q.replace('`', "``"));
    for item in &select.projection {
        // `*` and `q.*`: every column of a side, expanded when the side's query has run.
        let stars: Vec<(Side, String)> = match item {
            SelectItem::Wildcard(_) => sides
                .left
                .iter()
                .map(|q| (Side::Left, quote(q)))
                .chain(std::iter::once((Side::Right, quote(sides.right))))
                .collect(),
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _) => {
                let q = match n.0.as_slice() {
                    [q] => q.as_ident().map(|i| i.value.clone()),
                    _ => None,
                }
                .ok_or_else(|| across(&format!("{n}.*")))?;
                let side = if q == sides.right {
                    Side::Right
                } else if sides.left.contains(&q) {
                    Side::Left
                } else {
                    return Err(across(&format!("{q}.*")));
                };
                vec![(side, quote(&q))]
            }
            _ => Vec::new(),
        };
        if !stars.is_empty() {
            for (side, star) in stars {
                let first = q[idx(side)].star.is_empty();
                if !first && columns.last().copied() != Some(star_of(side)) {
                    return Err(across(
                        "a side's columns by * in two places of the select list",
                    ));
                }
                q[idx(side)].star.push(star);
                if first {
                    columns.push(star_of(side));
                }
            }
            continue;
        }
        let (expr, alias) =
            crate::clauses::item_expr(item).ok_or_else(|| across("this select item"))?;
        let side = match sides.of_condition(expr)? {
            Reach::Both => {
                // The parser's spans leave some operators out; the printer's text names it then.
                let sql = text(expr).unwrap_or_else(|_| expr.to_string());
                // Over both tables: computed here from the columns it reads.
                let e = crate::clauses::to_eval(expr, &mut |leaf: &Expr| {
                    let side = match sides.of_condition(leaf)? {
                        Reach::One(s) => s,
                        Reach::None => Side::Left,
                        Reach::Both => return Err(across(&format!("{leaf} in a select item"))),
                    };
                    columns.push(at(side, q[idx(side)].item(text(leaf)?)));
                    Ok(EvalExpr::Column(columns.len() - 1))
                })?;
                projection.push(OutputColumn::Eval {
                    expr: e,
                    name: alias.clone().unwrap_or_else(|| sql.clone()),
                });
                computed = true;
                items.push(Item {
                    column: None,
                    sql,
                    alias,
                    expr,
                });
                continue;
            }
            Reach::One(s) => s,
            Reach::None => Side::Left,
        };
        let sql = text(expr)?;
        let named = match &alias {
            Some(a) => format!("{sql} AS `{}`", a.replace('`', "``")),
            None => sql.clone(),
        };
        let column = at(side, q[idx(side)].item(named));
        columns.push(column);
        projection.push(OutputColumn::Column(columns.len() - 1));
        items.push(Item {
            column: Some(column),
            sql,
            alias,
            expr,
        });
    }
    let starred = q.iter().any(|s| !s.star.is_empty());
    if starred && query.order_by.is_some() {
        return Err(across("ORDER BY with SELECT *"));
    }
    if starred && computed {
        return Err(across("SELECT * with an item over both tables"));
    }

    // ORDER BY, at the proxy: each key's value (unless it is a select item) and its collation
    // weight, as hidden columns.
    let visible = columns.len();
    let mut keys = Vec::new();
    for o in order_by(query)? {
        let e = &o.expr;
        let position = crate::clauses::position_of(e).map(|p| p - 1);
        let item = match (position, e) {
            (Some(p), _) => Some(
                items
                    .get(p)
                    .ok_or_else(|| across("ORDER BY a position past the select list"))?,
            ),
            (None, Expr::Identifier(id)) => items.iter().find(|i| {
                i.alias
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(&id.value))
            }),
            (None, _) => items.iter().find(|i| i.expr == e),
        };
        let (value, side, sql) = match item {
            Some(Item { column: None, .. }) => {
                return Err(across("ORDER BY a select item over both tables"))
            }
            Some(Item {
                column: Some(c),
                sql,
                ..
            }) => (*c, side_of(*c), sql.clone()),
            None => {
                let side = match sides.of_condition(e)? {
                    Reach::One(s) => s,
                    Reach::None => Side::Left,
                    Reach::Both => return Err(across("an ORDER BY over both tables")),
                };
                let sql = text(e)?;
                let c = at(side, q[idx(side)].item(sql.clone()));
                columns.push(c);
                (c, side, sql)
            }
        };
        let weight = at(
            side,
            q[idx(side)].item(format!("WEIGHT_STRING(RTRIM({sql}))")),
        );
        columns.push(weight);
        let column = columns.iter().position(|c| *c == value).unwrap_or(0);
        keys.push(SortKey {
            column,
            weight: engine::Weight::Column(columns.len() - 1),
            desc: matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Desc)),
        });
    }
    let mut stages = Vec::new();
    sort_limit_drop(&mut stages, query, keys, columns.len() - visible)?;
    if computed {
        stages.retain(|s| !matches!(s, Stage::DropHidden { .. }));
        stages.push(Stage::Projection {
            columns: projection,
        });
    }
    Ok((columns, stages))
}

/// Joined rows grouped at the proxy: each joined row carries its group keys (with collation
/// weights) and one partial per aggregate (COUNT(*): 1; COUNT(e): `e IS NOT NULL`; SUM, MIN, MAX:
/// the value; AVG: both), sorted by the keys and combined like the shards' partials of a merged
/// GROUP BY. A plain item that is not grouped keeps its first row's value, as MariaDB does.
fn grouped_rows(
    query: &Query,
    select: &Select,
    sides: &Sides<'_>,
    q: &mut [SideQuery; 2],
    source: &SourceText<'_>,
) -> Result<(Vec<JoinColumn>, Vec<Stage>), PlanError> {
    let across = |what: &str| unsupported(format!("{what} in a join across shards"));
    let text = |e: &Expr| expr_text(e, source);
    let side_of_expr = |e: &Expr| -> Result<Side, PlanError> {
        match sides.of_condition(e)? {
            Reach::One(s) => Ok(s),
            Reach::None => Ok(Side::Left),
            Reach::Both => Err(across("an expression over both tables")),
        }
    };
    let mut columns: Vec<JoinColumn> = Vec::new();
    let mut add =
        |q: &mut [SideQuery; 2], side: Side, sql: String| push(&mut columns, q, side, sql);
    let GroupByExpr::Expressions(group_exprs, modifiers) = &select.group_by else {
        return Err(across("GROUP BY ALL"));
    };
    if !modifiers.is_empty() {
        return Err(across("GROUP BY modifiers"));
    }
    let mut group = Vec::new();
    for g in group_exprs {
        if matches!(g, Expr::Value(_)) {
            return Err(across("GROUP BY a position"));
        }
        let side = side_of_expr(g)?;
        let sql = text(g)?;
        let value = add(q, side, sql.clone());
        let weight = add(q, side, format!("WEIGHT_STRING(RTRIM({sql}))"));
        group.push(SortKey {
            column: value,
            weight: engine::Weight::Column(weight),
            desc: false,
        });
    }
    let mut aggregates = Vec::new();
    let aggregate_partials = |add: &mut dyn FnMut(&mut [SideQuery; 2], Side, String) -> usize,
                              q: &mut [SideQuery; 2],
                              aggregates: &mut Vec<engine::Aggregate>,
                              func: AggFn,
                              arg: Option<&Expr>,
                              name: Option<&str>|
     -> Result<Vec<usize>, PlanError> {
        let side = match arg {
            Some(a) => side_of_expr(a)?,
            None => Side::Left,
        };
        let arg_sql = arg.map(&text).transpose()?;
        let scalar = group_exprs.is_empty();
        Ok(partials(
            add, q, aggregates, side, func, arg_sql, name, scalar,
        ))
    };
    let mut output = Vec::new();
    // Each select item's output column, and the weight to sort it by.
    let mut outputs: Vec<GroupedItem<'_>> = Vec::new();
    for item in &select.projection {
        let (expr, alias) = crate::clauses::item_expr(item)
            .ok_or_else(|| across("SELECT * with GROUP BY or aggregates"))?;
        let written = text(expr)?;
        let name = alias.clone().unwrap_or_else(|| written.clone());
        let quoted = format!("`{}`", name.replace('`', "``"));
        let mut weight = None;
        let value;
        match aggregate(expr) {
            None => {
                if contains_aggregate(expr) {
                    return Err(across("an expression over an aggregate"));
                }
                let side = side_of_expr(expr)?;
                let named = match &alias {
                    Some(_) => format!("{written} AS {quoted}"),
                    None => written.clone(),
                };
                let c = add(q, side, named);
                weight = Some(add(q, side, format!("WEIGHT_STRING(RTRIM({written}))")));
                output.push(engine::OutputColumn::Column(c));
                value = EvalExpr::Column(c);
            }
            Some(Err(what)) => return Err(across(&what)),
            Some(Ok(AggCall { func, arg })) => {
                let cols =
                    aggregate_partials(&mut add, q, &mut aggregates, func, arg, Some(&quoted))?;
                value = partial_value(func, &cols);
                output.push(match (func, cols.as_slice()) {
                    (AggFn::Count | AggFn::CountDistinct, [c]) => engine::OutputColumn::Computed {
                        column: *c,
                        name,
                        kind: engine::ComputedKind::Count,
                    },
                    (AggFn::Sum | AggFn::SumDistinct, [s]) => engine::OutputColumn::Computed {
                        column: *s,
                        name,
                        kind: engine::ComputedKind::Sum,
                    },
                    (AggFn::Avg, [s, n]) => engine::OutputColumn::Avg {
                        sum: *s,
                        count: *n,
                        name,
                    },
                    (_, [v, w]) => {
                        weight = Some(*w);
                        engine::OutputColumn::Column(*v)
                    }
                    _ => return Err(across("this aggregate")),
                });
            }
        }
        outputs.push(GroupedItem {
            alias,
            expr,
            value,
            weight,
        });
    }
    // HAVING over the aggregated rows, before the projection: select items (by alias or
    // expression), group keys, and aggregates (added as hidden partials when not selected).
    let having = match &select.having {
        None => None,
        Some(h) => Some(crate::clauses::to_eval(h, &mut |e: &Expr| {
            if let Some(i) = GroupedItem::find(&outputs, e) {
                return Ok(outputs[i].value.clone());
            }
            if let Some(i) = group_exprs.iter().position(|g| g == e) {
                return Ok(EvalExpr::Column(group[i].column));
            }
            match aggregate(e) {
                Some(Ok(AggCall { func, arg })) => {
                    let cols = aggregate_partials(&mut add, q, &mut aggregates, func, arg, None)?;
                    Ok(partial_value(func, &cols))
                }
                Some(Err(what)) => Err(across(&what)),
                None => Err(across(&format!("{e} in HAVING"))),
            }
        })?),
    };
    // DISTINCT aggregates (of one expression) need its equal values together in each group.
    let distinct = distinct_key(&aggregates, |c| match columns.get(c) {
        Some(JoinColumn::Left(i)) => q[0].items.get(*i).cloned(),
        Some(JoinColumn::Right(i)) => q[1].items.get(*i).cloned(),
        _ => None,
    })
    .ok_or_else(|| across("DISTINCT aggregates of different expressions"))?;
    let stages = grouped_tail(
        query,
        &outputs,
        output,
        group,
        group_exprs,
        distinct,
        aggregates,
        having,
        &across,
    )?;
    Ok((columns, stages))
}

/// Adds a column to a side's query and the joined row; returns its index in the joined row.
fn push(columns: &mut Vec<JoinColumn>, q: &mut [SideQuery; 2], side: Side, sql: String) -> usize {
    columns.push(at(side, q[side as usize].item(sql)));
    columns.len() - 1
}

/// The per-row partial columns of an aggregate, registered for combining: COUNT: `[count]`;
/// SUM: `[value]`; AVG: `[value, count]`; MIN/MAX: `[value, weight]` (`name` names the value
/// column; `scalar`: no GROUP BY).
#[allow(clippy::too_many_arguments)]
fn partials(
    add: &mut dyn FnMut(&mut [SideQuery; 2], Side, String) -> usize,
    q: &mut [SideQuery; 2],
    aggregates: &mut Vec<engine::Aggregate>,
    side: Side,
    func: AggFn,
    arg: Option<String>,
    name: Option<&str>,
    scalar: bool,
) -> Vec<usize> {
    use engine::{Aggregate, AggregateKind};
    let not_null = match &arg {
        Some(a) => format!("({a}) IS NOT NULL"),
        None => "1".to_string(),
    };
    let a = arg.unwrap_or_default();
    match func {
        AggFn::Count => {
            let c = add(q, side, not_null);
            aggregates.push(Aggregate {
                column: c,
                kind: AggregateKind::Count,
            });
            vec![c]
        }
        AggFn::Sum | AggFn::Avg => {
            let s = add(q, side, a);
            aggregates.push(Aggregate {
                column: s,
                kind: AggregateKind::Sum,
            });
            if func == AggFn::Sum {
                return vec![s];
            }
            let n = add(q, side, not_null);
            aggregates.push(Aggregate {
                column: n,
                kind: AggregateKind::Count,
            });
            vec![s, n]
        }
        _ => {
            // MIN, MAX and the DISTINCT aggregates: the value and its collation weight (the
            // DISTINCT ones' rows are sorted by them within each group).
            let min_max = matches!(func, AggFn::Min | AggFn::Max);
            // COALESCE(x) has the column definition of MIN(x) and MAX(x) without GROUP BY
            // (MariaDB reports a string's decimals as 39 then, 0 with).
            let value = if scalar && min_max {
                format!("COALESCE({a})")
            } else {
                a.clone()
            };
            let value = match name {
                Some(n) if min_max => format!("{value} AS {n}"),
                _ => value,
            };
            let v = add(q, side, value);
            let w = add(q, side, format!("WEIGHT_STRING(RTRIM({a}))"));
            aggregates.push(Aggregate {
                column: v,
                kind: func.weighted(Some(w)).expect("MIN, MAX or DISTINCT"),
            });
            if min_max {
                vec![v, w]
            } else {
                vec![v]
            }
        }
    }
}

/// An aggregate's combined value, from its partial columns (AVG: SUM / COUNT).
fn partial_value(func: AggFn, cols: &[usize]) -> EvalExpr {
    match (func, cols) {
        (AggFn::Avg, [s, n]) => EvalExpr::Arith {
            op: engine::ArithOp::Div,
            left: Box::new(EvalExpr::Column(*s)),
            right: Box::new(EvalExpr::Column(*n)),
        },
        (_, cols) => EvalExpr::Column(cols[0]),
    }
}

fn side_of(c: JoinColumn) -> Side {
    match c {
        JoinColumn::Left(_) | JoinColumn::LeftFrom(_) => Side::Left,
        JoinColumn::Right(_) | JoinColumn::RightFrom(_) => Side::Right,
    }
}

/// A side's `*` columns, before the index where they start is known.
fn star_of(side: Side) -> JoinColumn {
    match side {
        Side::Left => JoinColumn::LeftFrom(usize::MAX),
        Side::Right => JoinColumn::RightFrom(usize::MAX),
    }
}

fn at(side: Side, i: usize) -> JoinColumn {
    match side {
        Side::Left => JoinColumn::Left(i),
        Side::Right => JoinColumn::Right(i),
    }
}

fn side_sql(q: &SideQuery, from: &str) -> String {
    let mut sql = format!("SELECT {} FROM {from}", q.items.join(", "));
    if !q.conditions.is_empty() {
        sql.push_str(" WHERE ");
        let parts: Vec<String> = q.conditions.iter().map(|c| format!("({c})")).collect();
        sql.push_str(&parts.join(" AND "));
    }
    sql
}

/// Which tables an expression reads.
#[derive(PartialEq)]
enum Reach {
    None,
    One(Side),
    Both,
}

struct Sides<'a> {
    left: &'a [String],
    right: &'a str,
}

impl Sides<'_> {
    /// The side of a plain expression (`None` for a constant); an error for unqualified columns,
    /// unknown qualifiers and subqueries.
    fn of(&self, expr: &Expr) -> Result<Option<Side>, PlanError> {
        Ok(match self.of_condition(expr)? {
            Reach::None => None,
            Reach::One(s) => Some(s),
            Reach::Both => None,
        })
    }

    fn of_condition(&self, expr: &Expr) -> Result<Reach, PlanError> {
        struct Columns<'a> {
            sides: &'a Sides<'a>,
            seen: [bool; 2],
            problem: Option<String>,
        }
        impl Visitor for Columns<'_> {
            type Break = ();
            fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
                self.problem = Some("a subquery".into());
                ControlFlow::Break(())
            }
            fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
                match expr {
                    Expr::Identifier(id) => {
                        self.problem = Some(format!(
                            "the unqualified column {} (qualify it with its table)",
                            id.value
                        ));
                        return ControlFlow::Break(());
                    }
                    Expr::CompoundIdentifier(parts) => {
                        let found = match parts.as_slice() {
                            [q, _] if self.sides.right == q.value => Some(1),
                            [q, _] if self.sides.left.contains(&q.value) => Some(0),
                            _ => None,
                        };
                        match found {
                            Some(i) => self.seen[i] = true,
                            None => {
                                self.problem = Some(format!("the column {expr}"));
                                return ControlFlow::Break(());
                            }
                        }
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }
        }
        let mut c = Columns {
            sides: self,
            seen: [false; 2],
            problem: None,
        };
        let _ = expr.visit(&mut c);
        if let Some(p) = c.problem {
            return Err(unsupported(format!("{p} in a join across shards")));
        }
        Ok(match c.seen {
            [false, false] => Reach::None,
            [true, false] => Reach::One(Side::Left),
            [false, true] => Reach::One(Side::Right),
            [true, true] => Reach::Both,
        })
    }
}
