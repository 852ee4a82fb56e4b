//! SELECT: pushed whole to one shard when it can be, scattered when its result needs no merging,
//! refused (1235, naming the construct) when it would need merging the engine cannot do yet.

use engine::{Opcode, Plan};
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, JoinOperator, OrderByKind, Query, Select, SetExpr, Statement,
    TableFactor, WindowType,
};
use vschema::Table;

use crate::aggregates::{find_call, AGGREGATES};
use crate::clauses::item_expr;
use crate::colocate::Colocation;
use crate::routing::{opcode_for, Target};
use crate::scatter::{route, route_or_merge};
use crate::tables::{relations, shard_text, single_keyspace, Resolved};
use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

pub(crate) fn plan_select(
    stmt: &Statement,
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    if let Some(plan) = crate::information_schema::plan(stmt, query, source, ctx) {
        return plan;
    }
    match plan_in_place(stmt, query, source, ctx) {
        // Subqueries that cannot run inside the statement may run before it; tables whose rows do
        // not live together may be joined at the proxy.
        Err(e @ PlanError::Unsupported(_)) => {
            // The whole statement rewritten, then planned again: CTEs as derived tables,
            // unqualified columns over several tables qualified, `SELECT *` derived tables
            // given their columns.
            if matches!(stmt, Statement::Query(q) if std::ptr::eq(q.as_ref(), query)) {
                if let Some(inlined) = crate::cte::inline(query, source) {
                    return crate::plan_text(&inlined, ctx);
                }
                if let Some(qualified) = crate::qualify::qualify(query, source, ctx) {
                    return crate::plan_text(&qualified?, ctx);
                }
                if let Some(expanded) = crate::qualify::expand_derived_stars(query, source, ctx) {
                    return crate::plan_text(&expanded?, ctx);
                }
            }
            let grouped = distinct_as_grouping(query);
            let at_proxy = grouped.as_ref().unwrap_or(query);
            crate::pullout::plan_pull_out(query, source, ctx)
                .or_else(|| crate::semi_join::plan_semi_join(at_proxy, source, ctx))
                .or_else(|| crate::scalar_subquery::plan_scalar_subquery(at_proxy, source, ctx))
                .or_else(|| crate::join::plan_join(at_proxy, source, ctx))
                .or_else(|| crate::derived::plan_derived(at_proxy, source, ctx))
                .unwrap_or(Err(e))
        }
        other => other,
    }
}

/// `SELECT DISTINCT items ...` without aggregates as `SELECT items ... GROUP BY items`: the same
/// rows, for the planners that group at the proxy. `None` when it is not that shape, or when
/// ORDER BY names something other than a select item.
fn distinct_as_grouping(query: &Query) -> Option<Query> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let no_grouping =
        matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if !matches!(select.distinct, Some(Distinct::Distinct))
        || !no_grouping
        || select.having.is_some()
        || find_call(&select.projection, |f| {
            let name = f.name.to_string().to_ascii_lowercase();
            AGGREGATES.contains(&name.as_str()).then_some(name)
        })
        .is_some()
    {
        return None;
    }
    let items: Vec<(&Expr, Option<String>)> = select
        .projection
        .iter()
        .map(item_expr)
        .collect::<Option<_>>()?;
    if let Some(order) = &query.order_by {
        let OrderByKind::Expressions(keys) = &order.kind else {
            return None;
        };
        let selected = |e: &Expr| {
            crate::clauses::position_of(e).is_some_and(|p| p >= 1 && p <= items.len())
                || items.iter().any(|(i, alias)| {
                    *i == e
                        || matches!(e, Expr::Identifier(id) if alias.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(&id.value)))
                })
        };
        if !keys.iter().all(|k| selected(&k.expr)) {
            return None;
        }
    }
    let mut grouped = query.clone();
    let SetExpr::Select(select) = grouped.body.as_mut() else {
        return None;
    };
    select.distinct = None;
    select.group_by =
        GroupByExpr::Expressions(items.iter().map(|(e, _)| (*e).clone()).collect(), vec![]);
    Some(grouped)
}

/// The SELECT as statements that the shards run whole (merged at the proxy where needed).
fn plan_in_place(
    stmt: &Statement,
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    let ctes = cte_names(query);
    let tables = relations(stmt, ctx, &ctes)?;
    let Some(keyspace) = single_keyspace(&tables)? else {
        // No table at all (`SELECT 1 + 1`, `SELECT NOW()`): any backend evaluates it alike.
        let keyspace = ctx.default_keyspace()?;
        let opcode = if keyspace.sharded {
            Opcode::Reference
        } else {
            Opcode::Unsharded
        };
        return Ok(route(&keyspace.name, opcode, source.sql().to_string()));
    };
    let query_text = shard_text(source, &tables)?;
    // A sharded keyspace of one shard (before its first split) holds every row there: the
    // statement runs whole on it, with nothing to merge and no helper columns to compute.
    if !keyspace.sharded || keyspace.shards.len() == 1 {
        return Ok(route(&keyspace.name, Opcode::Unsharded, query_text));
    }
    let sharded: Vec<_> = tables
        .iter()
        .filter_map(|t| match &t.table {
            Table::Sharded {
                column,
                columns,
                vindex,
                lookups,
                ..
            } => Some((t, column, columns, vindex, lookups)),
            _ => None,
        })
        .collect();
    let (sharded_table, column, columns, vindex, lookups, select, alias) = match (
        sharded.as_slice(),
        query.with.is_none(),
        query.body.as_ref(),
    ) {
        ([], ..) => return Ok(route(&keyspace.name, Opcode::Reference, query_text)),
        ([(table, column, columns, vindex, lookups)], true, SetExpr::Select(select)) => {
            match top_level_alias(select, table) {
                Some(alias) => (*table, *column, *columns, *vindex, *lookups, select, alias),
                None => return plan_colocated(stmt, query, ctx, keyspace, &ctes, 1, query_text),
            }
        }
        _ => {
            let count = sharded.len();
            return plan_colocated(stmt, query, ctx, keyspace, &ctes, count, query_text);
        }
    };
    let mut qualifiers = vec![sharded_table.name.as_str()];
    if let Some(alias) = &alias {
        qualifiers = vec![alias.as_str()];
    }
    let target = Target {
        qualifiers,
        column,
        vindex,
        lookups,
        columns,
    };
    let opcode = opcode_for(select.selection.as_ref(), &target, keyspace);
    if !opcode.is_single_shard() && !scatter_join_is_safe(select, sharded_table) {
        return Err(unsupported("an outer join that preserves a reference table's rows, on a query that spans several shards"));
    }
    let windows = windows_are_local(query, select, |e| target.is_vindex_column(e));
    route_or_merge(
        query,
        select,
        &keyspace.name,
        opcode,
        query_text,
        windows,
        Some(ctx),
    )
}

/// Several sharded tables (`sharded` references), or one inside a subquery, derived table, CTE or
/// UNION: one statement per shard when their rows that meet live together (see `colocate`).
fn plan_colocated(
    stmt: &Statement,
    query: &Query,
    ctx: &Context<'_>,
    keyspace: &vschema::Keyspace,
    ctes: &[String],
    sharded: usize,
    query_text: String,
) -> Result<Plan, PlanError> {
    let analysis = Colocation::analyse(stmt, query, ctx, ctes)?;
    if analysis.occurrence_count() != sharded {
        return Err(unsupported(
            "a sharded table in this position of a statement over several tables",
        ));
    }
    analysis.check_understood()?;
    if let Some((vindex, value)) = analysis.pinned() {
        return Ok(route(
            &keyspace.name,
            Opcode::EqualUnique { vindex, value },
            query_text,
        ));
    }
    if let SetExpr::SetOperation { .. } = query.body.as_ref() {
        return crate::union::plan_union(query, &analysis, keyspace, &query_text);
    }
    let (opcode, select) = analysis.anchored(keyspace)?;
    let windows = windows_are_local(query, select, |e| analysis.is_row_vindex_column(e));
    route_or_merge(
        query,
        select,
        &keyspace.name,
        opcode,
        query_text,
        windows,
        Some(ctx),
    )
}

/// `Some(alias)` when the sharded table is a plain table in the top-level FROM (the alias, if it
/// has one); `None` when it only appears deeper (subquery, derived table).
fn top_level_alias(select: &Select, table: &Resolved<'_>) -> Option<Option<String>> {
    select
        .from
        .iter()
        .flat_map(|twj| std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)))
        .find_map(|factor| match factor {
            TableFactor::Table { name, alias, .. } if name == &table.object => {
                Some(alias.as_ref().map(|a| a.name.value.clone()))
            }
            _ => None,
        })
}

/// Whether the select has window functions and every one is partitioned by an expression
/// `is_key` accepts, a vindex column whose rows live together (and none is in ORDER BY or
/// named): each partition's rows then live on one shard, which computes the window whole.
fn windows_are_local(query: &Query, select: &Select, is_key: impl Fn(&Expr) -> bool) -> bool {
    let mut any = false;
    let other = find_call(&select.projection, |f| {
        let over = f.over.as_ref()?;
        any = true;
        match over {
            WindowType::WindowSpec(spec)
                if spec.window_name.is_none() && spec.partition_by.iter().any(&is_key) =>
            {
                None
            }
            _ => Some(String::new()),
        }
    });
    let in_order = query.order_by.as_ref().and_then(|o| match &o.kind {
        OrderByKind::Expressions(exprs) => exprs
            .iter()
            .find_map(|e| find_call(&e.expr, |f| f.over.is_some().then(String::new))),
        OrderByKind::All(_) => None,
    });
    any && other.is_none() && in_order.is_none() && select.named_window.is_empty()
}

/// Concatenating shard results is right for inner joins with reference tables, and for outer
/// joins that preserve only the sharded table's rows (it must be the leftmost table). An outer join
/// that keeps a reference table's unmatched rows would repeat them once per shard.
fn scatter_join_is_safe(select: &Select, sharded: &Resolved<'_>) -> bool {
    let leftmost_is_sharded = select.from.len() == 1
        && matches!(&select.from[0].relation, TableFactor::Table { name, .. } if name == &sharded.object);
    select.from.iter().all(|twj| {
        twj.joins.iter().all(|j| match &j.join_operator {
            JoinOperator::Join(_)
            | JoinOperator::Inner(_)
            | JoinOperator::CrossJoin(_)
            | JoinOperator::StraightJoin(_) => true,
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => leftmost_is_sharded,
            _ => false,
        })
    })
}

/// Where a SELECT's result columns can be learned without running it (COM_STMT_PREPARE): its
/// keyspace, and its text as any shard of that keyspace takes it.
pub(crate) fn metadata_target(
    stmt: &Statement,
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<(String, String), PlanError> {
    let ctes = cte_names(query);
    let tables = relations(stmt, ctx, &ctes)?;
    let keyspace = match single_keyspace(&tables)? {
        Some(k) => k,
        None => ctx.default_keyspace()?,
    };
    Ok((keyspace.name.clone(), shard_text(source, &tables)?))
}

/// The names a query's WITH clause defines (they are not tables).
fn cte_names(query: &Query) -> Vec<String> {
    query
        .with
        .iter()
        .flat_map(|w| w.cte_tables.iter().map(|c| c.alias.name.value.clone()))
        .collect()
}
