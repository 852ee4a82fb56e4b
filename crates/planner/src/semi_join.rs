//! `[NOT] EXISTS (SELECT ... FROM b WHERE b.x = a.y ...)` and `a.z IN (SELECT b.w FROM b WHERE
//! b.x = a.y ...)` where the subquery's rows are not on the outer row's shard (correlated off the
//! vindex column, or in another keyspace): a semi-join (anti-join for NOT EXISTS) at the proxy.
//!
//! The statement is rewritten as the join `SELECT ... FROM a JOIN b ON <the subquery's WHERE>
//! [AND a.z = b.w] WHERE <the rest>` and planned by `join` as a nested loop whose right side is
//! asked, per batch of outer rows, which of their keys have a matching row: an outer row comes
//! out once if one does (none does, for NOT EXISTS), with the outer table's columns only.
//!
//! `a.z NOT IN (...)` is the anti-join whose candidate pairs match when `a.z = b.w`, `b.w IS NULL`
//! or `a.z IS NULL` (SQL's NULL rules for NOT IN), compared at the proxy.
//!
//! Taken: one such conjunct of the WHERE of a one-table SELECT, a subquery over one table without
//! GROUP BY, HAVING or aggregates, every column in it qualified.

use std::ops::ControlFlow;

use engine::{JoinKind, Plan};
use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Ident, InTarget, Join, JoinConstraint, JoinOperator,
    ObjectName, OrderByKind, Query, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    TableFactor, UnaryOperator, Visit, VisitMut, Visitor, VisitorMut,
};

use crate::aggregates::has_aggregate;
use crate::routing::conjuncts;
use crate::text::SourceText;
use crate::{Context, PlanError};

/// The plan of a SELECT filtered by one correlated `[NOT] EXISTS` or `IN` subquery whose rows
/// live elsewhere, or `None` when the statement is not one (the caller's reason to refuse it
/// stands).
pub(crate) fn plan_semi_join(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<Plan, PlanError>> {
    // The rewrite is printed by the parser, which would lose a string's backslash escapes.
    if source.sql().contains('\\') {
        return None;
    }
    let (rewritten, kind) = rewrite(query)?;
    crate::join::plan_printed(&rewritten, ctx, Some(kind))
}

/// The query as a join, and the kind of join.
fn rewrite(query: &Query) -> Option<(Query, JoinKind)> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let outer = qualifier(&from.relation)?;
    if !from.joins.is_empty() || query.with.is_some() {
        return None;
    }
    let mut parts = Vec::new();
    conjuncts(select.selection.as_ref()?, &mut parts);
    let with_subquery: Vec<usize> = (0..parts.len())
        .filter(|&i| has_subquery(parts[i]))
        .collect();
    let &[at] = with_subquery.as_slice() else {
        return None;
    };
    let (kind, subquery, compared) = match parts[at] {
        Expr::Exists { subquery, negated } => (exists_kind(*negated), subquery, None),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => match expr.as_ref() {
            Expr::Exists {
                subquery,
                negated: false,
            } => (JoinKind::Anti, subquery, None),
            _ => return None,
        },
        Expr::In {
            expr,
            target: InTarget::Subquery(subquery),
            negated,
            ..
        } => (exists_kind(*negated), subquery, Some(expr.as_ref())),
        _ => return None,
    };
    // The subquery: one table, no grouping (an aggregate always gives a row), no LIMIT 0.
    let SetExpr::Select(inner) = subquery.body.as_ref() else {
        return None;
    };
    let [inner_from] = inner.from.as_slice() else {
        return None;
    };
    let inner_name = qualifier(&inner_from.relation)?;
    let limited = match &subquery.limit_clause {
        None => false,
        Some(sqlparser::ast::LimitClause::LimitOffset {
            limit: Some(Expr::Value(v)),
            offset: None,
            limit_by,
        }) if limit_by.is_empty() && compared.is_none() => {
            !matches!(&v.value, sqlparser::ast::Value::Number(n, _) if n != "0")
        }
        Some(_) => true,
    };
    if limited
        || subquery.with.is_some()
        || !inner_from.joins.is_empty()
        || inner.having.is_some()
        || !matches!(&inner.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        || inner.projection.iter().any(|i| match i {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                has_aggregate(e)
            }
            _ => false,
        })
        || inner_name.eq_ignore_ascii_case(&outer)
    {
        return None;
    }
    // Every column of the subquery names its table: the outer one's or its own.
    let qualified = |e: &Expr| {
        columns_qualified_by(e, &[outer.as_str(), inner_name.as_str()]) && !has_subquery(e)
    };
    let mut on = inner.selection.clone()?;
    if !qualified(&on) {
        return None;
    }
    if let Some(compared) = compared {
        let [SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }] =
            inner.projection.as_slice()
        else {
            return None;
        };
        if !qualified(item) {
            return None;
        }
        let mut compared = compared.clone();
        qualify(&mut compared, &outer, &[])?;
        let equal = Expr::BinaryOp {
            left: Box::new(compared.clone()),
            op: BinaryOperator::Eq,
            right: Box::new(item.clone()),
        };
        // `x NOT IN (S)` holds when S is empty, or when x and every value of S are not NULL
        // and differ: no row of S may be equal to x, be NULL, or meet an x that is NULL.
        let matching = match kind {
            JoinKind::Anti => {
                let or = |a: Expr, b: Expr| Expr::BinaryOp {
                    left: Box::new(a),
                    op: BinaryOperator::Or,
                    right: Box::new(b),
                };
                Expr::Nested(Box::new(or(
                    or(equal, Expr::IsNull(Box::new(item.clone()))),
                    Expr::IsNull(Box::new(compared)),
                )))
            }
            _ => equal,
        };
        on = Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(on))),
            op: BinaryOperator::And,
            right: Box::new(matching),
        };
    }

    let mut joined = query.clone();
    let SetExpr::Select(select) = joined.body.as_mut() else {
        return None;
    };
    let rest: Vec<Expr> = parts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != at)
        .map(|(_, e)| (*e).clone())
        .collect();
    select.selection = rest.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    });
    // The outer query's columns: its table's (the subquery's table is not in its scope), so
    // qualified as such; ORDER BY, GROUP BY and HAVING may also name select aliases.
    let aliases: Vec<String> = select
        .projection
        .iter()
        .filter_map(|i| match i {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    for item in &mut select.projection {
        match item {
            SelectItem::Wildcard(options) => {
                *item = SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![
                        Ident::with_quote('`', outer.clone()),
                    ])),
                    options.clone(),
                )
            }
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                qualify(e, &outer, &[])?
            }
            SelectItem::QualifiedWildcard(..) => {}
            SelectItem::ExprWithAliases { .. } => return None,
        }
    }
    if let Some(w) = &mut select.selection {
        qualify(w, &outer, &[])?;
    }
    if let GroupByExpr::Expressions(keys, _) = &mut select.group_by {
        for k in keys {
            qualify(k, &outer, &aliases)?;
        }
    }
    if let Some(h) = &mut select.having {
        qualify(h, &outer, &aliases)?;
    }
    select.from[0].joins.push(Join {
        relation: inner_from.relation.clone(),
        global: false,
        join_operator: JoinOperator::Join(JoinConstraint::On(on)),
    });
    if let Some(order) = &mut joined.order_by {
        if let OrderByKind::Expressions(keys) = &mut order.kind {
            for k in keys {
                qualify(&mut k.expr, &outer, &aliases)?;
            }
        }
    }
    Some((joined, kind))
}

fn exists_kind(negated: bool) -> JoinKind {
    if negated {
        JoinKind::Anti
    } else {
        JoinKind::Semi
    }
}

/// The name that qualifies a table's columns: its alias, else its name's last part.
pub(crate) fn qualifier(factor: &TableFactor) -> Option<String> {
    crate::join::operand(factor).map(|o| o.qualifier)
}

pub(crate) fn has_subquery<V: Visit>(node: &V) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    node.visit(&mut Finder).is_break()
}

/// Whether every column of `e` is `q.column` with `q` one of `qualifiers`.
pub(crate) fn columns_qualified_by(e: &Expr, qualifiers: &[&str]) -> bool {
    struct Check<'a>(&'a [&'a str]);
    impl Visitor for Check<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(_) => ControlFlow::Break(()),
                Expr::CompoundIdentifier(parts)
                    if parts.len() != 2
                        || !self
                            .0
                            .iter()
                            .any(|q| parts[0].value.eq_ignore_ascii_case(q)) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut Check(qualifiers)).is_continue()
}

/// Qualifies `e`'s bare columns with `table` (a bare name among `aliases` stays); `None` when a
/// qualified column names another table.
pub(crate) fn qualify(e: &mut Expr, table: &str, aliases: &[String]) -> Option<()> {
    struct Qualify<'a> {
        table: &'a str,
        aliases: &'a [String],
    }
    impl VisitorMut for Qualify<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(id) if !self.aliases.contains(&id.value.to_ascii_lowercase()) => {
                    *e = Expr::CompoundIdentifier(vec![
                        Ident::with_quote('`', self.table),
                        id.clone(),
                    ]);
                }
                Expr::CompoundIdentifier(parts)
                    if parts.len() != 2 || !parts[0].value.eq_ignore_ascii_case(self.table) =>
                {
                    return ControlFlow::Break(());
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    if has_subquery(e) {
        return None;
    }
    e.visit(&mut Qualify { table, aliases })
        .is_continue()
        .then_some(())
}
