//! A derived table whose rows span shards (`SELECT ... FROM (SELECT ...) AS t ...`): the inner
//! query is planned on its own, and the outer query's WHERE, select list, ORDER BY and LIMIT run
//! at the proxy over its rows ([`engine::Derived`]).
//!
//! Supported outer queries: `*`, `t.*` or the derived table's columns (by name, renamed with
//! AS); WHERE conditions the proxy can evaluate (comparisons, arithmetic, AND/OR/NOT, IS NULL;
//! strings are refused when compared); ORDER BY the derived table's columns (text keys need the
//! inner query to be a plain SELECT, to which their collation weights are added); LIMIT.
//! Refused: joins with the derived table, aggregates, GROUP BY, HAVING, DISTINCT, expressions in
//! the outer select list.

use engine::{EvalExpr, OutputColumn, Plan, SortKey, Stage};
use sqlparser::ast::{
    Expr, GroupByExpr, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    Spanned, TableFactor,
};

use crate::clauses::select_clauses;
use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

/// The plan of a SELECT over one derived table that spans shards, or `None` when the statement
/// is not one (the caller's reason to refuse it stands).
pub(crate) fn plan_derived(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<Plan, PlanError>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias),
        ..
    } = &from.relation
    else {
        return None;
    };
    if !from.joins.is_empty() {
        return None;
    }
    Some(plan(
        query,
        select,
        subquery,
        &alias.name.value,
        source,
        ctx,
    ))
}

fn plan(
    query: &Query,
    select: &Select,
    inner: &Query,
    alias: &str,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    let outer = |what: &str| unsupported(format!("{what} over a derived table that spans shards"));
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    if grouped
        || select.having.is_some()
        || select.distinct.is_some()
        || select.into.is_some()
        || crate::select::find_call(&select.projection, |f| {
            let name = f.name.to_string().to_ascii_lowercase();
            (crate::select::AGGREGATES.contains(&name.as_str()) || f.over.is_some()).then_some(name)
        })
        .is_some()
    {
        return Err(outer("GROUP BY, HAVING, DISTINCT, INTO or aggregates"));
    }
    if query.with.is_some() || query.fetch.is_some() || !query.locks.is_empty() {
        return Err(outer("WITH, FETCH or locking"));
    }
    let sql = source.sql();
    let range = source
        .range(inner.span())
        .and_then(|r| crate::text::up_to_close(sql, r.start))
        .ok_or_else(|| outer("a derived table whose text cannot be located"))?;
    let inner_sql = &sql[range];
    // The derived table's column names, when its select list says them.
    let inner_select = match inner.body.as_ref() {
        SetExpr::Select(s) => Some(s.as_ref()),
        _ => None,
    };
    let first_select = first_select(inner);
    let names: Option<Vec<Option<String>>> = first_select.map(|s| {
        s.projection
            .iter()
            .map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.clone()),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => {
                    p.last().map(|i| i.value.clone())
                }
                _ => None,
            })
            .collect()
    });
    let has_wildcard = first_select.is_none_or(|s| {
        s.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        })
    });
    let width = names.as_ref().map_or(0, Vec::len);
    let column = |e: &Expr| -> Result<usize, PlanError> {
        let name = match e {
            Expr::Identifier(i) => &i.value,
            Expr::CompoundIdentifier(p) if p.len() == 2 && p[0].value == alias => &p[1].value,
            other => return Err(outer(&format!("{other}"))),
        };
        if has_wildcard {
            return Err(outer(&format!(
                "the column {name} of a derived table with *"
            )));
        }
        names
            .as_ref()
            .and_then(|n| {
                n.iter()
                    .position(|x| x.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(name)))
            })
            .ok_or_else(|| outer(&format!("the column {name}")))
    };

    let mut stages = Vec::new();
    if let Some(w) = &select.selection {
        let predicate = crate::merge::to_eval(w, &mut |e: &Expr| Ok(EvalExpr::Column(column(e)?)))?;
        stages.push(Stage::Filter { predicate });
    }

    // ORDER BY: each key's column, and its collation weight added to a plain inner SELECT.
    let mut weights: Vec<String> = Vec::new();
    let mut keys = Vec::new();
    for o in crate::join::order_by(query)? {
        let c = match crate::merge::position_of(&o.expr) {
            Some(p) => p - 1,
            None => column(&o.expr)?,
        };
        let item_text =
            inner_select
                .and_then(|s| s.projection.get(c))
                .and_then(|item| match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }
                        if !crate::merge::contains_aggregate(e) =>
                    {
                        crate::join::expr_text(e, source).ok()
                    }
                    _ => None,
                });
        let weight = item_text.map(|t| {
            weights.push(format!("WEIGHT_STRING(RTRIM({t}))"));
            width + weights.len() - 1
        });
        keys.push(SortKey {
            column: c,
            weight,
            desc: matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Desc)),
        });
    }
    let inner_sql = if weights.is_empty() {
        inner_sql.to_string()
    } else {
        with_items(inner_sql, &weights).ok_or_else(|| outer("ORDER BY this derived table"))?
    };
    if !keys.is_empty() {
        stages.push(Stage::MemorySort { keys });
    }
    if let Some((offset, count)) = crate::merge::limit_of(query)? {
        stages.push(Stage::Limit { offset, count });
    }

    // The outer select list.
    let mut output = Vec::new();
    let mut pass_through = false;
    for item in &select.projection {
        match item {
            SelectItem::Wildcard(_) => pass_through = true,
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _)
                if n.to_string() == alias =>
            {
                pass_through = true
            }
            SelectItem::UnnamedExpr(e) => output.push(OutputColumn::Column(column(e)?)),
            SelectItem::ExprWithAlias { expr, alias } => output.push(OutputColumn::Named {
                column: column(expr)?,
                name: alias.value.clone(),
            }),
            other => return Err(outer(&other.to_string())),
        }
    }
    match (pass_through, output.is_empty()) {
        (true, true) if !weights.is_empty() => stages.push(Stage::DropHidden {
            count: weights.len(),
        }),
        (true, true) => {}
        (false, false) => stages.push(Stage::Projection { columns: output }),
        _ => return Err(outer("* with other columns")),
    }
    let inner_plan = crate::plan_text(&inner_sql, ctx)?;
    if matches!(inner_plan, Plan::PullOut(_)) {
        return Err(outer("a subquery that runs first inside a derived table"));
    }
    Ok(Plan::Derived(engine::Derived {
        inner: Box::new(inner_plan),
        stages,
    }))
}

/// The first SELECT of a query (of a UNION, the first branch: it names the columns).
fn first_select(query: &Query) -> Option<&Select> {
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::Select(s) => return Some(s),
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(q) => body = q.body.as_ref(),
            _ => return None,
        }
    }
}

/// A plain SELECT's text with more items at the end of its select list.
fn with_items(sql: &str, items: &[String]) -> Option<String> {
    let source = SourceText::new(sql);
    let clauses = select_clauses(&source)?;
    let last = clauses.items.last()?;
    let end = last.as_ptr() as usize - sql.as_ptr() as usize + last.len();
    Some(format!(
        "{}, {}{}",
        &sql[..end],
        items.join(", "),
        &sql[end..]
    ))
}
