//! A select item that is an aggregate subquery correlated off the vindex column (`SELECT c.id,
//! (SELECT COUNT(*) FROM orders o WHERE o.product_id = c.id) FROM customers c`): a lookup per
//! outer row, done as the LEFT JOIN grouped by the outer table's primary key,
//!
//! ```sql
//! SELECT c.id, COUNT(o.<key>) AS `(SELECT COUNT(*) ...)` FROM customers c
//!   LEFT JOIN orders o ON o.product_id = c.id GROUP BY c.<key>, c.id
//! ```
//!
//! which `join` runs as a nested loop: each outer row once, its aggregate over its matches (COUNT
//! 0 and the others NULL without any, as the subquery gives).
//!
//! In WHERE (`WHERE c.score > (SELECT COUNT(*) ...)`), the condition that holds it goes to the
//! HAVING of the same grouping, the subquery's aggregate in its place.
//!
//! Taken: a one-table SELECT without grouping whose one subquery is a whole select item or in one
//! of WHERE's AND-ed conditions, over one table, selecting COUNT, SUM, MIN, MAX or AVG, its
//! columns qualified.

use engine::Plan;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Join,
    JoinConstraint, JoinOperator, OrderByKind, Query, SelectItem, SetExpr,
};

use crate::aggregates::{aggregate, has_aggregate, AggFn};
use crate::semi_join::{columns_qualified_by, has_subquery, qualifier, qualify};
use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

pub(crate) fn plan_scalar_subquery(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<Plan, PlanError>> {
    // The rewrite is printed by the parser, which would lose a string's backslash escapes.
    if source.sql().contains('\\') {
        return None;
    }
    let (rewritten, single) = match rewrite(query, source, ctx)? {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    let planned = crate::join::plan_printed(&rewritten, ctx, None)?;
    if !single {
        return Some(planned);
    }
    // Its match count came last: more than one is the subquery's error.
    Some(planned.and_then(|plan| match plan {
        Plan::Join(mut join) => {
            join.stages.push(engine::Stage::AtMostOne);
            Ok(Plan::Join(join))
        }
        _ => Err(unsupported(
            "a correlated subquery of one value planned other than as a join, across shards",
        )),
    }))
}

/// The rewritten query, and whether its last column counts each row's matches (a subquery of
/// one value, not an aggregate, must have at most one).
fn rewrite(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<(Query, bool), PlanError>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    if !from.joins.is_empty()
        || query.with.is_some()
        || grouped
        || select.having.is_some()
        || select.distinct.is_some()
    {
        return None;
    }
    let outer = qualifier(&from.relation)?;
    let exprs: Vec<(&Expr, Option<&Ident>)> = select
        .projection
        .iter()
        .map(|i| match i {
            SelectItem::UnnamedExpr(e) => Some((e, None)),
            SelectItem::ExprWithAlias { expr, alias } => Some((expr, Some(alias))),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let with_subquery: Vec<usize> = (0..exprs.len())
        .filter(|&i| has_subquery(exprs[i].0))
        .collect();
    let (place, sub) = match (with_subquery.as_slice(), &select.selection) {
        (&[at], w) if !w.as_ref().is_some_and(has_subquery) => {
            let (Expr::Subquery(sub), alias) = exprs[at] else {
                return None;
            };
            (Place::Item(at, alias), sub.as_ref())
        }
        ([], Some(w)) => (Place::Where, where_subquery(w)?),
        _ => return None,
    };
    if exprs
        .iter()
        .enumerate()
        .any(|(i, (e, _))| place != Place::Item(i, exprs[i].1) && has_aggregate(e))
    {
        return (place == Place::Where).then(|| {
            Err(unsupported(
                "a correlated subquery in WHERE of a query with aggregates, across shards",
            ))
        });
    }
    let SetExpr::Select(inner) = sub.body.as_ref() else {
        return None;
    };
    let [inner_from] = inner.from.as_slice() else {
        return None;
    };
    let inner_name = qualifier(&inner_from.relation)?;
    let [SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }] =
        inner.projection.as_slice()
    else {
        return None;
    };
    // Not an aggregate: the value of its one match (MIN of one), NULL without any; `LIMIT 1`
    // (without ORDER BY) takes any one.
    let func = match aggregate(value) {
        Some(Ok(call)) => Some(call.func),
        Some(Err(_)) => return None,
        None if has_aggregate(value) => return None,
        None => None,
    };
    let any_one = func.is_none()
        && sub.order_by.is_none()
        && matches!(crate::clauses::limit_of(sub), Ok(Some((0, 1))));
    if func.is_none() && !any_one && place == Place::Where {
        // Its rows would be counted after WHERE dropped some, where MySQL fails first.
        return Some(Err(unsupported(
            "a correlated subquery of one value (not an aggregate, no LIMIT 1) in WHERE, across \
             shards",
        )));
    }
    let on = inner.selection.clone()?;
    if !inner_from.joins.is_empty()
        || sub.with.is_some()
        || (sub.limit_clause.is_some() && !any_one)
        || inner.having.is_some()
        || !matches!(&inner.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        || inner_name.eq_ignore_ascii_case(&outer)
        || !columns_qualified_by(&on, &[outer.as_str(), inner_name.as_str()])
        || !columns_qualified_by(value, &[inner_name.as_str()])
        || has_subquery(&on)
    {
        return None;
    }
    Some(build(
        query,
        select.as_ref(),
        place,
        value,
        func.map_or(Value::One { any: any_one }, Value::Aggregate),
        &outer,
        &inner_name,
        inner_from,
        on,
        source,
        ctx,
    ))
}

#[allow(clippy::too_many_arguments)]
fn build(
    query: &Query,
    select: &sqlparser::ast::Select,
    place: Place<'_>,
    value: &Expr,
    kind: Value,
    outer: &str,
    inner_name: &str,
    inner_from: &sqlparser::ast::TableWithJoins,
    on: Expr,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<(Query, bool), PlanError> {
    let refuse = |what: &str| {
        let clause = match place {
            Place::Item(..) => "the select list",
            Place::Where => "WHERE",
        };
        unsupported(format!(
            "a correlated subquery in {clause} {what}, across shards"
        ))
    };
    let key_of = |factor: &sqlparser::ast::TableFactor| -> Result<Vec<String>, PlanError> {
        let sqlparser::ast::TableFactor::Table { name, .. } = factor else {
            return Err(refuse("over a derived table"));
        };
        let resolved = crate::tables::resolve(name, ctx)?;
        Ok(ctx
            .catalog
            .columns(&resolved.keyspace.name, &resolved.name)?
            .map(|c| c.primary.clone())
            .unwrap_or_default())
    };
    let outer_key = key_of(&select.from[0].relation)?;
    if outer_key.is_empty() {
        return Err(refuse("over a table without a primary key"));
    }
    let inner_key = || -> Result<Expr, PlanError> {
        let inner_key = key_of(&inner_from.relation)?;
        let first = inner_key
            .first()
            .ok_or_else(|| refuse("counting a table without a primary key"))?;
        Ok(column(inner_name, first))
    };
    // COUNT(*) counts the matches: a column of them that is never NULL.
    let mut value = value.clone();
    if kind == Value::Aggregate(AggFn::Count) {
        if let Expr::Function(f) = &mut value {
            if let FunctionArguments::List(list) = &mut f.args {
                if let [FunctionArg::Unnamed(arg @ FunctionArgExpr::Wildcard)] =
                    list.args.as_mut_slice()
                {
                    *arg = FunctionArgExpr::Expr(inner_key()?);
                }
            }
        }
    }
    // Named as the client wrote the item, parentheses included.
    let item_at = match place {
        Place::Where => None,
        Place::Item(at, alias) => Some((at, item_name(at, alias, select, source, &refuse)?)),
    };

    if let Value::One { .. } = kind {
        value = crate::clauses::parse_expr(&format!("MIN({value})"))
            .ok_or_else(|| refuse("whose value cannot be written again"))?;
    }
    let mut joined = query.clone();
    let SetExpr::Select(out) = joined.body.as_mut() else {
        return Err(refuse("written this way"));
    };
    let aliases: Vec<String> = out
        .projection
        .iter()
        .filter_map(|i| match i {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let mut group: Vec<Expr> = outer_key.iter().map(|k| column(outer, k)).collect();
    for (i, item) in out.projection.iter_mut().enumerate() {
        if let Some((_, name)) = item_at.as_ref().filter(|(at, _)| *at == i) {
            *item = SelectItem::ExprWithAlias {
                expr: value.clone(),
                alias: name.clone(),
            };
            continue;
        }
        let e = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return Err(refuse("with *")),
        };
        qualify(e, outer, &[]).ok_or_else(|| refuse("beside another table's column"))?;
        group.push(e.clone());
    }
    let mut having = None;
    if let Some(w) = out.selection.take() {
        let mut parts = Vec::new();
        crate::routing::conjuncts(&w, &mut parts);
        let mut kept: Vec<Expr> = Vec::new();
        for part in parts {
            let mut part = part.clone();
            if !has_subquery(&part) {
                qualify(&mut part, outer, &[]).ok_or_else(|| refuse("with this WHERE"))?;
                kept.push(part);
                continue;
            }
            // The condition over the outer row and the subquery's value is one over the
            // group: its outer columns join the grouping (one row per key, so no change).
            let placeholder = Expr::Identifier(Ident::new("sg_subquery_value"));
            replace_subquery(&mut part, &placeholder);
            qualify(&mut part, outer, &["sg_subquery_value".to_string()])
                .ok_or_else(|| refuse("beside another table's column"))?;
            for_each_column(&part, |c| {
                if !group.contains(c) {
                    group.push(c.clone());
                }
            });
            replace_identifier(&mut part, "sg_subquery_value", &value);
            having = Some(part);
        }
        out.selection = kept.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: sqlparser::ast::BinaryOperator::And,
            right: Box::new(b),
        });
    }
    out.from[0].joins.push(Join {
        relation: inner_from.relation.clone(),
        global: false,
        join_operator: JoinOperator::LeftOuter(JoinConstraint::On(on)),
    });
    if let Some(order) = &mut joined.order_by {
        if let OrderByKind::Expressions(keys) = &mut order.kind {
            for k in keys {
                let named = matches!(&k.expr, Expr::Identifier(id)
                    if aliases.contains(&id.value.to_ascii_lowercase()))
                    || crate::clauses::position_of(&k.expr).is_some();
                qualify(&mut k.expr, outer, &aliases)
                    .ok_or_else(|| refuse("with this ORDER BY"))?;
                if !named && !group.contains(&k.expr) {
                    group.push(k.expr.clone());
                }
            }
        }
    }
    let SetExpr::Select(out) = joined.body.as_mut() else {
        return Err(refuse("written this way"));
    };
    out.group_by = GroupByExpr::Expressions(group, vec![]);
    out.having = having;
    let counted = kind == Value::One { any: false };
    if counted {
        out.projection.push(SelectItem::ExprWithAlias {
            expr: crate::clauses::parse_expr(&format!("COUNT({})", inner_key()?))
                .ok_or_else(|| refuse("whose matches cannot be counted"))?,
            alias: Ident::new("sg_matches"),
        });
    }
    Ok((joined, counted))
}

/// What the subquery gives per outer row.
#[derive(Clone, Copy, PartialEq)]
enum Value {
    /// An aggregate over the matches.
    Aggregate(AggFn),
    /// The one match's value: more than one is an error, unless `any` (`LIMIT 1`).
    One { any: bool },
}

/// A select item subquery's column name: its alias, or its text, parentheses included, as
/// MySQL names it.
fn item_name(
    at: usize,
    alias: Option<&Ident>,
    select: &sqlparser::ast::Select,
    source: &SourceText<'_>,
    refuse: &dyn Fn(&str) -> PlanError,
) -> Result<Ident, PlanError> {
    Ok(match (alias, &select.projection[at]) {
        (Some(a), _) => a.clone(),
        (None, SelectItem::UnnamedExpr(Expr::Subquery(q))) => {
            use sqlparser::ast::Spanned;
            let sql = source.sql();
            let located = || refuse("whose text cannot be located (give it an alias)");
            let inner = source
                .range(q.span())
                .and_then(|r| crate::text::up_to_close(sql, r.start))
                .ok_or_else(located)?;
            let open = sql[..inner.start].trim_end();
            if !open.ends_with('(') {
                return Err(located());
            }
            Ident::with_quote('`', &sql[open.len() - 1..=inner.end])
        }
        _ => return Err(refuse("written this way")),
    })
}

/// Where the subquery stands.
#[derive(Clone, Copy, PartialEq)]
enum Place<'q> {
    /// A select item, with its alias.
    Item(usize, Option<&'q Ident>),
    /// One of WHERE's AND-ed conditions.
    Where,
}

/// The one subquery of WHERE when it is a scalar one, in a comparison, arithmetic or IS NULL.
fn where_subquery(selection: &Expr) -> Option<&Query> {
    fn find(e: &Expr) -> Option<&Query> {
        match e {
            Expr::Subquery(q) => Some(q),
            Expr::BinaryOp { left, right, .. } => find(left).or_else(|| find(right)),
            Expr::Nested(x)
            | Expr::UnaryOp { expr: x, .. }
            | Expr::IsNull(x)
            | Expr::IsNotNull(x) => find(x),
            _ => None,
        }
    }
    // Counted, EXISTS and IN subqueries too: the one found must be the only one.
    (count_subqueries(selection) == 1)
        .then(|| find(selection))
        .flatten()
}

fn count_subqueries(e: &Expr) -> usize {
    struct Count(usize, usize);
    impl sqlparser::ast::Visitor for Count {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
            if self.1 == 0 {
                self.0 += 1;
            }
            self.1 += 1;
            std::ops::ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
            self.1 -= 1;
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut count = Count(0, 0);
    let _ = sqlparser::ast::Visit::visit(e, &mut count);
    count.0
}

/// `e` with each expression `pick` accepts replaced by `with`.
fn replace_where(e: &mut Expr, pick: impl Fn(&Expr) -> bool, with: &Expr) {
    struct Replace<'w, P>(P, &'w Expr);
    impl<P: Fn(&Expr) -> bool> sqlparser::ast::VisitorMut for Replace<'_, P> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            if (self.0)(e) {
                *e = self.1.clone();
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = sqlparser::ast::VisitMut::visit(e, &mut Replace(pick, with));
}

fn replace_subquery(e: &mut Expr, with: &Expr) {
    replace_where(e, |x| matches!(x, Expr::Subquery(_)), with);
}

fn replace_identifier(e: &mut Expr, name: &str, with: &Expr) {
    replace_where(
        e,
        |x| matches!(x, Expr::Identifier(i) if i.value == name),
        with,
    );
}

/// Calls `f` on each qualified column of `e`.
fn for_each_column(e: &Expr, mut f: impl FnMut(&Expr)) {
    let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| {
        if matches!(x, Expr::CompoundIdentifier(_)) {
            f(x);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

fn column(table: &str, name: &str) -> Expr {
    Expr::CompoundIdentifier(vec![
        Ident::with_quote('`', table),
        Ident::with_quote('`', name),
    ])
}
