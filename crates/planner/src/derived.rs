//! A derived table whose rows span shards (`SELECT ... FROM (SELECT ...) AS t ...`): the inner
//! query is planned on its own, and the outer query's WHERE, select list, ORDER BY and LIMIT run
//! at the proxy over its rows ([`engine::Derived`]).
//!
//! Supported outer queries: `*`, `t.*` or the derived table's columns (by name, renamed with
//! AS), and expressions over them that a shard computes ([`engine::ShardEval`]); WHERE
//! conditions the proxy evaluates (comparisons, arithmetic, AND/OR/NOT, IS NULL), or a shard
//! when they hold functions or strings (whose collation the rows do not name); GROUP BY,
//! aggregates and HAVING; ORDER BY the derived table's columns (text keys need the inner query
//! to be a plain SELECT, to which their collation weights are added); LIMIT.
//! Refused: joins with the derived table, DISTINCT.

use engine::{EvalExpr, OutputColumn, Plan, SortKey, Stage};
use sqlparser::ast::{
    Expr, GroupByExpr, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    Spanned, TableFactor,
};

use crate::aggregates::{AggCall, AggFn, GroupedItem};
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
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        || select.having.is_some()
        || crate::aggregates::find_call(&select.projection, |f| {
            let name = f.name.to_string().to_ascii_lowercase();
            crate::aggregates::AGGREGATES
                .contains(&name.as_str())
                .then_some(name)
        })
        .is_some();
    if select.distinct.is_some() || select.into.is_some() {
        return Err(outer("DISTINCT or INTO"));
    }
    if let Some(w) = crate::aggregates::find_call(&select.projection, |f| {
        f.over.is_some().then(|| f.name.to_string())
    }) {
        return Err(outer(&format!("the window function {w}")));
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
    if let Some(q) = inner_select.and_then(|s| hidden_digits(query, select, inner, s, alias)) {
        return Err(outer(&format!(
            "arithmetic or an aggregate over {q}, a quotient (/) in a derived table MariaDB \
             would merge,"
        )));
    }
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
    let mut evaluated: Option<Evaluated> = None;
    // A condition the proxy cannot evaluate (functions, CASE, ...), or one with a string (the
    // rows do not say which collation compares it), a shard evaluates; the proxy filters on its
    // answer. Not with a backslash: the evaluation is printed by the parser, which would lose it.
    let can_shard = !has_wildcard && !sql.contains('\\');
    let mut shard_where = None;
    if let Some(w) = &select.selection {
        let at_proxy = if can_shard && has_string(w) {
            Err(unsupported("text compared at the proxy"))
        } else {
            crate::clauses::to_eval(w, &mut |e: &Expr| Ok(EvalExpr::Column(column(e)?)))
        };
        match at_proxy {
            Ok(predicate) => stages.push(Stage::Filter { predicate }),
            Err(PlanError::Unsupported(_)) if can_shard => shard_where = Some(w),
            Err(e) => return Err(e),
        }
    }

    // Text keys sort by collation weights added to a plain inner SELECT's select list.
    let mut weights = Weights {
        texts: inner_select
            .map(|s| {
                s.projection
                    .iter()
                    .map(|item| match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }
                            if !crate::aggregates::contains_aggregate(e) =>
                        {
                            crate::clauses::expr_text(e, source).ok()
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        added: Vec::new(),
        width,
    };
    if grouped {
        stages.extend(grouped_stages(
            query,
            select,
            &mut weights,
            &column,
            &outer,
            source,
        )?);
    } else {
        let mut keys = Vec::new();
        for o in crate::clauses::order_by(query)? {
            // A position counts the outer select list (the derived table's columns under `*`).
            let starred = select.projection.iter().any(|i| {
                !matches!(
                    i,
                    SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                )
            });
            let c = match crate::clauses::position_of(&o.expr) {
                Some(p) if starred => p - 1,
                Some(p) => match select.projection.get(p - 1) {
                    Some(
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. },
                    ) => column(e)?,
                    _ => return Err(outer(&format!("ORDER BY position {p}"))),
                },
                None => column(&o.expr)?,
            };
            keys.push(SortKey {
                column: c,
                weight: weights.of(c).into(),
                desc: matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Desc)),
            });
        }
        if !keys.is_empty() {
            stages.push(Stage::MemorySort { keys });
        }
        if let Some((offset, count)) = crate::clauses::limit_of(query)? {
            stages.push(Stage::Limit { offset, count });
        }
        // The outer select list.
        let mut output = Vec::new();
        let mut pass_through = false;
        // Items over the derived table's columns that a shard computes: (position, expression,
        // name).
        let mut at_shard: Vec<(usize, &Expr, String)> = Vec::new();
        let is_column = |e: &Expr| matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(_) => pass_through = true,
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) if n.to_string() == alias => pass_through = true,
                // A join across shards that reads this derived table asks for sort weights.
                SelectItem::UnnamedExpr(e) if weight_of(e).is_some() => {
                    let c = column(weight_of(e).expect("checked"))?;
                    let w = weights
                        .of(c)
                        .ok_or_else(|| outer(&format!("sorting by {e}")))?;
                    output.push(OutputColumn::Column(w));
                }
                SelectItem::UnnamedExpr(e) if !is_column(e) => {
                    let name = crate::clauses::expr_text(e, source)?;
                    at_shard.push((output.len(), e, name));
                    output.push(OutputColumn::Column(0));
                }
                SelectItem::ExprWithAlias { expr, alias } if !is_column(expr) => {
                    at_shard.push((output.len(), expr, alias.value.clone()));
                    output.push(OutputColumn::Column(0));
                }
                SelectItem::UnnamedExpr(e) => output.push(OutputColumn::Column(column(e)?)),
                SelectItem::ExprWithAlias { expr, alias } => output.push(OutputColumn::Named {
                    column: column(expr)?,
                    name: alias.value.clone(),
                }),
                other => return Err(outer(&other.to_string())),
            }
        }
        if !at_shard.is_empty() {
            // The evaluation is printed by the parser, which would lose a string's backslashes.
            if source.sql().contains('\\') {
                return Err(outer("an expression, in a statement with a backslash,"));
            }
            let visible = output.len();
            let (select, leaves) = shard_items(&at_shard, &column)?;
            output.extend(leaves.iter().map(|(c, _)| OutputColumn::Column(*c)));
            evaluated = Some(Evaluated {
                visible,
                items: at_shard.iter().map(|(at, _, _)| *at).collect(),
                select,
                leaves,
            });
        }
        // Under `*`, the sort weights and a shard's WHERE answer trail the derived table's row.
        let trailing = weights.added.len() + usize::from(shard_where.is_some());
        match (pass_through, output.is_empty()) {
            (true, true) if trailing > 0 => stages.push(Stage::DropHidden { count: trailing }),
            (true, true) => {}
            (false, false) => stages.push(Stage::Projection { columns: output }),
            _ => return Err(outer("* with other columns")),
        }
    }
    let inner_sql = if weights.added.is_empty() {
        inner_sql.to_string()
    } else {
        let items: Vec<String> = weights.added.iter().map(|(_, w)| w.clone()).collect();
        with_items(inner_sql, &items).ok_or_else(|| outer("ORDER BY this derived table"))?
    };
    let inner_plan = crate::plan_text(&inner_sql, ctx)?;
    if matches!(inner_plan, Plan::PullOut(_)) {
        return Err(outer("a subquery that runs first inside a derived table"));
    }
    let typing = |leaves: &[(usize, String)]| {
        let typing: Vec<String> = leaves
            .iter()
            .enumerate()
            .map(|(k, (_, leaf))| format!("{leaf} AS a{k}"))
            .collect();
        format!(
            "SELECT {}, 0 AS sg_n FROM ({inner_sql}) AS `{}` LIMIT 0",
            typing.join(", "),
            alias.replace('`', "``")
        )
    };
    let derived = match shard_where {
        None => Plan::Derived(engine::Derived {
            inner: Box::new(inner_plan),
            stages,
        }),
        Some(w) => {
            // The derived table's row (with any sort weights), the condition's answer, then
            // its inputs; filtered on the answer, the outer query's stages follow.
            let row = width + weights.added.len();
            let (select, leaves) = shard_items(&[(row, w, "sg_where".to_string())], &column)?;
            let mut inputs: Vec<OutputColumn> = (0..row).map(OutputColumn::Column).collect();
            inputs.push(OutputColumn::Column(0));
            inputs.extend(leaves.iter().map(|(c, _)| OutputColumn::Column(*c)));
            let mut after = vec![Stage::Filter {
                predicate: EvalExpr::Column(row),
            }];
            after.extend(stages);
            shard_eval(
                Plan::Derived(engine::Derived {
                    inner: Box::new(inner_plan),
                    stages: vec![Stage::Projection { columns: inputs }],
                }),
                row + 1,
                vec![row],
                select,
                typing(&leaves),
                after,
                ctx,
            )?
        }
    };
    let Some(e) = evaluated else {
        return Ok(derived);
    };
    shard_eval(
        derived,
        e.visible,
        e.items,
        e.select,
        typing(&e.leaves),
        Vec::new(),
        ctx,
    )
}

/// Whether an expression holds a string literal.
fn has_string(e: &Expr) -> bool {
    use sqlparser::ast::Value;
    sqlparser::ast::visit_expressions(e, |x: &Expr| match x {
        Expr::Value(v)
            if matches!(
                v.value,
                Value::SingleQuotedString(_)
                    | Value::DoubleQuotedString(_)
                    | Value::NationalStringLiteral(_)
                    | Value::HexStringLiteral(_)
                    | Value::SingleQuotedByteStringLiteral(_)
                    | Value::DoubleQuotedByteStringLiteral(_)
            ) =>
        {
            std::ops::ControlFlow::Break(())
        }
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break()
}

/// Items a shard of the rows' keyspace computes over `input`'s rows.
fn shard_eval(
    input: Plan,
    visible: usize,
    items: Vec<usize>,
    select: String,
    typing: String,
    stages: Vec<Stage>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    let keyspace = ctx
        .vschema
        .keyspace(input.keyspaces().first().copied().unwrap_or_default())
        .ok_or_else(|| {
            unsupported("an expression over a derived table read from several keyspaces")
        })?;
    Ok(Plan::ShardEval(engine::ShardEval {
        input: Box::new(input),
        keyspace: keyspace.name.clone(),
        opcode: engine::any_shard(keyspace.sharded),
        visible,
        items,
        select,
        typing,
        stages,
    }))
}

/// A column of the derived table that holds a quotient and that the outer query does more with
/// than show, sort or compare. MariaDB merges a plain derived table into the outer query, so
/// `t.q * 7` uses all the digits `q = a / 7` keeps, where its rows show only 4 more decimals.
/// (A grouped, distinct or limited one is materialized: its rows hold the shown value.)
fn hidden_digits(
    query: &Query,
    select: &Select,
    inner: &Query,
    inner_select: &Select,
    alias: &str,
) -> Option<String> {
    use sqlparser::ast::{Visit, Visitor};
    use sqlparser::tokenizer::Span;
    use std::ops::ControlFlow;
    let materialized = inner.limit_clause.is_some()
        || inner_select.distinct.is_some()
        || inner_select.having.is_some()
        || !matches!(&inner_select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        || inner_select.projection.iter().any(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                crate::aggregates::contains_aggregate(e)
            }
            _ => false,
        });
    if materialized {
        return None;
    }
    let quotients: Vec<String> = inner_select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } if crate::clauses::carries_quotient(expr) => {
                Some(alias.value.to_ascii_lowercase())
            }
            _ => None,
        })
        .collect();
    if quotients.is_empty() {
        return None;
    }
    // Where a value counts as shown: compared, a select item of its own, an ORDER BY key.
    let mut shown: Vec<Span> = Vec::new();
    let mut exprs: Vec<&Expr> = Vec::new();
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            shown.push(e.span());
            exprs.push(e);
        }
    }
    exprs.extend(&select.selection);
    exprs.extend(&select.having);
    if let GroupByExpr::Expressions(keys, _) = &select.group_by {
        exprs.extend(keys);
    }
    if let Some(order) = &query.order_by {
        if let sqlparser::ast::OrderByKind::Expressions(keys) = &order.kind {
            shown.extend(keys.iter().map(|k| k.expr.span()));
        }
    }
    for e in &exprs {
        shown.extend(crate::clauses::compared_operands(e));
    }
    struct Uses<'a> {
        quotients: &'a [String],
        alias: &'a str,
        shown: &'a [Span],
    }
    impl Visitor for Uses<'_> {
        type Break = String;
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<String> {
            let name = match e {
                Expr::Identifier(i) => &i.value,
                Expr::CompoundIdentifier(p) if p.len() == 2 && p[0].value == self.alias => {
                    &p[1].value
                }
                _ => return ControlFlow::Continue(()),
            };
            if self.quotients.contains(&name.to_ascii_lowercase())
                && !self.shown.contains(&e.span())
            {
                return ControlFlow::Break(e.to_string());
            }
            ControlFlow::Continue(())
        }
    }
    let mut uses = Uses {
        quotients: &quotients,
        alias,
        shown: &shown,
    };
    exprs.iter().find_map(|e| e.visit(&mut uses).break_value())
}

/// The items a shard computes over a derived table's rows: their positions, the evaluation's
/// select list and its inputs (the derived table's column, and its text).
struct Evaluated {
    visible: usize,
    items: Vec<usize>,
    select: String,
    leaves: Vec<(usize, String)>,
}

/// The evaluation's select list (each item over `sg_in.a0, a1, ...`, with its name), and its
/// inputs: the derived table's columns each reads (column, text).
fn shard_items(
    items: &[(usize, &Expr, String)],
    column: &dyn Fn(&Expr) -> Result<usize, PlanError>,
) -> Result<(String, Vec<(usize, String)>), PlanError> {
    use sqlparser::ast::{Ident, VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct Inputs<'c> {
        column: &'c dyn Fn(&Expr) -> Result<usize, PlanError>,
        leaves: Vec<(usize, String)>,
        error: Option<PlanError>,
    }
    impl VisitorMut for Inputs<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.error = Some(unsupported(
                "a subquery in an expression over a derived table that spans shards",
            ));
            ControlFlow::Break(())
        }
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                return ControlFlow::Continue(());
            }
            let c = match (self.column)(e) {
                Ok(c) => c,
                Err(err) => {
                    self.error = Some(err);
                    return ControlFlow::Break(());
                }
            };
            let k = self
                .leaves
                .iter()
                .position(|(x, _)| *x == c)
                .unwrap_or_else(|| {
                    self.leaves.push((c, e.to_string()));
                    self.leaves.len() - 1
                });
            *e = Expr::CompoundIdentifier(vec![Ident::new("sg_in"), Ident::new(format!("a{k}"))]);
            ControlFlow::Continue(())
        }
    }
    let mut inputs = Inputs {
        column,
        leaves: Vec::new(),
        error: None,
    };
    let mut select = Vec::new();
    for (_, e, name) in items {
        let mut e = (*e).clone();
        let _ = e.visit(&mut inputs);
        if let Some(err) = inputs.error.take() {
            return Err(err);
        }
        select.push(format!("{e} AS `{}`", name.replace('`', "``")));
    }
    Ok((select.join(", "), inputs.leaves))
}

/// `x` of `WEIGHT_STRING(RTRIM(x))`, the sort weight the other planners ask for.
fn weight_of(e: &Expr) -> Option<&Expr> {
    fn arg<'e>(e: &'e Expr, name: &str) -> Option<&'e Expr> {
        match e {
            Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case(name) => match &f.args {
                sqlparser::ast::FunctionArguments::List(l) => match l.args.as_slice() {
                    [sqlparser::ast::FunctionArg::Unnamed(
                        sqlparser::ast::FunctionArgExpr::Expr(a),
                    )] => Some(a),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }
    arg(arg(e, "WEIGHT_STRING")?, "RTRIM")
}

/// Collation weight columns added to the inner query, after its own `width` columns.
struct Weights {
    /// Each inner item's text, when a weight can be asked for it (a plain SELECT's item that is
    /// not an aggregate).
    texts: Vec<Option<String>>,
    /// (inner column, its `WEIGHT_STRING(...)` item), in order.
    added: Vec<(usize, String)>,
    width: usize,
}

impl Weights {
    /// The column holding inner column `c`'s weight (added on first use), if one can be had.
    fn of(&mut self, c: usize) -> Option<usize> {
        if let Some(i) = self.added.iter().position(|(x, _)| *x == c) {
            return Some(self.width + i);
        }
        let text = self.texts.get(c)?.as_ref()?;
        self.added
            .push((c, format!("WEIGHT_STRING(RTRIM({text}))")));
        Some(self.width + self.added.len() - 1)
    }

    /// The inner row's width with the weights.
    fn end(&self) -> usize {
        self.width + self.added.len()
    }
}

/// GROUP BY and aggregates over the derived table's rows: each aggregate gets its own partial
/// columns (appended by a Partials stage), which the OrderedAggregate combines group by group;
/// then HAVING, the projection, ORDER BY (select items) and LIMIT.
fn grouped_stages(
    query: &Query,
    select: &Select,
    weights: &mut Weights,
    column: &dyn Fn(&Expr) -> Result<usize, PlanError>,
    outer: &dyn Fn(&str) -> PlanError,
    source: &SourceText<'_>,
) -> Result<Vec<Stage>, PlanError> {
    use engine::{Aggregate, AggregateKind, ComputedKind, Partial};
    let GroupByExpr::Expressions(group_exprs, modifiers) = &select.group_by else {
        return Err(outer("GROUP BY ALL"));
    };
    if !modifiers.is_empty() {
        return Err(outer("GROUP BY modifiers"));
    }
    let arg_column = |arg: Option<&Expr>| arg.map(column).transpose();
    // Every weight first (group keys, MIN/MAX arguments): the partials go after them.
    let mut group = Vec::new();
    for g in group_exprs {
        let c = column(g)?;
        group.push(SortKey {
            column: c,
            weight: weights.of(c).into(),
            desc: false,
        });
    }
    let mut calls: Vec<Expr> = Vec::new();
    let mut collect = |e: &Expr| {
        if crate::aggregates::aggregate(e).is_some() {
            calls.push(e.clone());
        }
        std::ops::ControlFlow::<()>::Continue(())
    };
    let _ = sqlparser::ast::visit_expressions(&select.projection, &mut collect);
    if let Some(h) = &select.having {
        let _ = sqlparser::ast::visit_expressions(h, &mut collect);
    }
    for e in &calls {
        if let Some(Ok(AggCall { func, arg })) = crate::aggregates::aggregate(e) {
            if func.weighted(None).is_none() {
                continue;
            }
            if let Some(c) = arg_column(arg)? {
                weights.of(c);
            }
        }
    }
    let weight_of: Vec<(usize, usize)> = weights
        .added
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (*c, weights.width + i))
        .collect();
    let base = weights.end();
    let mut partials: Vec<Partial> = Vec::new();
    let mut aggregates: Vec<Aggregate> = Vec::new();
    // An aggregate's partial columns (registered) and its combined value.
    let mut add = |func: AggFn, arg: Option<usize>| -> Result<(Vec<usize>, EvalExpr), PlanError> {
        let mut push = |p: Partial| {
            partials.push(p);
            base + partials.len() - 1
        };
        let needs = |a: Option<usize>| {
            a.ok_or_else(|| outer(&format!("{}(*)", func.name().to_uppercase())))
        };
        Ok(match func {
            AggFn::Count => {
                let c = push(Partial::Count(arg));
                aggregates.push(Aggregate {
                    column: c,
                    kind: AggregateKind::Count,
                });
                (vec![c], EvalExpr::Column(c))
            }
            AggFn::Sum | AggFn::Avg => {
                let a = needs(arg)?;
                let s = push(Partial::Value(a));
                aggregates.push(Aggregate {
                    column: s,
                    kind: AggregateKind::Sum,
                });
                if func == AggFn::Sum {
                    (vec![s], EvalExpr::Column(s))
                } else {
                    let n = push(Partial::Count(Some(a)));
                    aggregates.push(Aggregate {
                        column: n,
                        kind: AggregateKind::Count,
                    });
                    let avg = EvalExpr::Arith {
                        op: engine::ArithOp::Div,
                        left: Box::new(EvalExpr::Column(s)),
                        right: Box::new(EvalExpr::Column(n)),
                    };
                    (vec![s, n], avg)
                }
            }
            _ => {
                // MIN, MAX and the DISTINCT aggregates: a copy of the value and of its weight
                // (MIN and MAX of one column each move their own).
                let a = needs(arg)?;
                let v = push(Partial::Value(a));
                let w = weight_of
                    .iter()
                    .find(|(c, _)| *c == a)
                    .map(|(_, w)| push(Partial::Value(*w)));
                aggregates.push(Aggregate {
                    column: v,
                    kind: func.weighted(w).expect("MIN, MAX or DISTINCT"),
                });
                (vec![v], EvalExpr::Column(v))
            }
        })
    };
    // The select list.
    let mut output = Vec::new();
    // Each item: its alias, expression, value (for HAVING) and sort weight.
    let mut items: Vec<GroupedItem<'_>> = Vec::new();
    for item in &select.projection {
        let (expr, alias) = crate::clauses::item_expr(item)
            .ok_or_else(|| outer("* with GROUP BY or aggregates"))?;
        let written = crate::clauses::expr_text(expr, source)?;
        let name = || alias.clone().unwrap_or_else(|| written.clone());
        match crate::aggregates::aggregate(expr) {
            None => {
                let c = column(expr)?;
                output.push(match &alias {
                    Some(a) => OutputColumn::Named {
                        column: c,
                        name: a.clone(),
                    },
                    None => OutputColumn::Column(c),
                });
                let w = weight_of.iter().find(|(x, _)| *x == c).map(|(_, w)| *w);
                items.push(GroupedItem {
                    alias: alias.clone(),
                    expr,
                    value: EvalExpr::Column(c),
                    weight: w,
                });
            }
            Some(Err(what)) => return Err(outer(&what)),
            Some(Ok(AggCall { func, arg })) => {
                let (cols, value) = add(func, arg_column(arg)?)?;
                output.push(match func {
                    AggFn::Count | AggFn::CountDistinct => OutputColumn::Computed {
                        column: cols[0],
                        name: name(),
                        kind: ComputedKind::Count,
                    },
                    AggFn::Sum | AggFn::SumDistinct => OutputColumn::Computed {
                        column: cols[0],
                        name: name(),
                        kind: ComputedKind::Sum,
                    },
                    AggFn::Avg => OutputColumn::Avg {
                        sum: cols[0],
                        count: cols[1],
                        name: name(),
                    },
                    _ => OutputColumn::Named {
                        column: cols[0],
                        name: name(),
                    },
                });
                items.push(GroupedItem {
                    alias: alias.clone(),
                    expr,
                    value,
                    weight: None,
                });
            }
        }
    }
    let having = match &select.having {
        None => None,
        Some(h) => Some(crate::clauses::to_eval(h, &mut |e: &Expr| {
            if let Some(i) = GroupedItem::find(&items, e) {
                return Ok(items[i].value.clone());
            }
            match crate::aggregates::aggregate(e) {
                Some(Ok(AggCall { func, arg })) => Ok(add(func, arg_column(arg)?)?.1),
                Some(Err(what)) => Err(outer(&what)),
                None => Ok(EvalExpr::Column(column(e)?)),
            }
        })?),
    };
    // DISTINCT aggregates (of one column) need its equal values together in each group.
    let distinct = crate::aggregates::distinct_key(&aggregates, |c| {
        partials.get(c.checked_sub(base)?).copied()
    })
    .ok_or_else(|| outer("DISTINCT aggregates of different columns"))?;
    let mut stages = vec![Stage::Partials { partials }];
    stages.extend(crate::aggregates::grouped_tail(
        query,
        &items,
        output,
        group,
        &[],
        distinct,
        aggregates,
        having,
        outer,
    )?);
    Ok(stages)
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
pub(crate) fn with_items(sql: &str, items: &[String]) -> Option<String> {
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
