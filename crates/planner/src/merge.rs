//! SELECTs over several shards whose results need merging: the shards get a rewritten query
//! (hidden helper columns, GROUP BY/ORDER BY by position, LIMIT offset+count, AVG as SUM and
//! COUNT), and the proxy merges with the engine's stages. Three shapes:
//!
//! - plain rows: shards sort by the ORDER BY, the proxy merges k-way, then LIMIT;
//! - aggregates/GROUP BY: shards group and sort by the group keys, the proxy merges the partial
//!   aggregates group by group, then HAVING, ORDER BY (in memory, bounded), LIMIT;
//! - DISTINCT: like a GROUP BY of every column without aggregates.
//!
//! Text keys of a column whose collation the catalog names and the engine knows are weighed at
//! the proxy; numbers and temporals need no weight. Other text keys sort by hidden
//! `WEIGHT_STRING(RTRIM(expr))` columns: the shards compute collation weights, so the merge
//! orders strings as the backend does.

use engine::{
    Aggregate, AggregateKind, ArithOp, ComputedKind, EvalExpr, MergedSelect, OutputColumn, Plan,
    Route, SortKey, Stage, Weight,
};
use sqlparser::ast::{
    DuplicateTreatment, Expr, FunctionArguments, GroupByExpr, OrderByKind, Query, Select,
    SelectItem,
};

use crate::aggregates::{classify, has_aggregate, AggFn, Refusal};
use crate::clauses::{limit_of, position_of, select_clauses, to_eval, without_alias, Clauses};
use crate::qualify::{FromColumns, KeyOrder};
use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

/// An aggregate call found in the query.
struct AggCall {
    func: AggFn,
    /// The function's name as written, upper case.
    name: String,
    /// COUNT(DISTINCT x, y, ...)'s expressions, as the parser renders them (empty otherwise).
    tuple: Vec<String>,
    /// The argument's text (`*` for COUNT(*)), without DISTINCT.
    arg: String,
    concat: Option<Concat>,
}

/// A GROUP_CONCAT call's clauses, expressions as the parser renders them.
#[derive(Clone, PartialEq)]
struct Concat {
    distinct: bool,
    /// Its ORDER BY (expression, descending); with DISTINCT and none, its arguments.
    order: Vec<(String, bool)>,
    separator: Vec<u8>,
}

/// GROUP_CONCAT's clauses, or why they cannot be merged across shards.
fn concat_call(f: &sqlparser::ast::Function) -> Result<Concat, PlanError> {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArgumentClause, Value};
    let refuse = |what: &str| unsupported(format!("GROUP_CONCAT {what} across shards"));
    let FunctionArguments::List(list) = &f.args else {
        return Err(refuse("without arguments"));
    };
    if f.filter.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
        return Err(refuse("with this clause"));
    }
    let mut args = Vec::new();
    for a in &list.args {
        match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e.to_string()),
            _ => return Err(refuse("of this argument")),
        }
    }
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    let mut order = Vec::new();
    let mut separator = b",".to_vec();
    for clause in &list.clauses {
        match clause {
            FunctionArgumentClause::OrderBy(keys) => {
                for k in keys {
                    if position_of(&k.expr).is_some() {
                        return Err(refuse("ordered by a position"));
                    }
                    order.push((
                        k.expr.to_string(),
                        matches!(k.options.sort, Some(sqlparser::ast::OrderBySort::Desc)),
                    ));
                }
            }
            FunctionArgumentClause::Separator(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                    separator = s.clone().into_bytes()
                }
                _ => return Err(refuse("with this SEPARATOR")),
            },
            _ => return Err(refuse("with this clause")),
        }
    }
    if distinct {
        // Equal values must arrive together to be told apart: ordered by the arguments only.
        if order.is_empty() {
            order = args.iter().map(|a| (a.clone(), false)).collect();
        }
        let covers = |a: &String| order.iter().any(|(o, _)| o == a);
        if !args.iter().all(covers) || !order.iter().all(|(o, _)| args.contains(o)) {
            return Err(refuse("(DISTINCT ...) ordered by other than its arguments"));
        }
    }
    Ok(Concat {
        distinct,
        order,
        separator,
    })
}

fn agg_call(expr: &Expr, text: Option<&str>) -> Result<Option<AggCall>, PlanError> {
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    let name = f.name.to_string().to_uppercase();
    if name == "GROUP_CONCAT" && f.over.is_none() {
        let concat = concat_call(f)?;
        return Ok(Some(AggCall {
            func: AggFn::GroupConcat,
            name,
            tuple: Vec::new(),
            arg: String::new(),
            concat: Some(concat),
        }));
    }
    let call = match classify(f) {
        None => return Ok(None),
        Some(Err(Refusal::SeveralArguments)) if f.over.is_none() => {
            if let Some(tuple) = distinct_tuple(f) {
                return Ok(Some(AggCall {
                    func: AggFn::CountDistinct,
                    name,
                    arg: tuple.join(", "),
                    tuple,
                    concat: None,
                }));
            }
            return Err(unsupported(format!(
                "{name} of several arguments across shards"
            )));
        }
        Some(Err(Refusal::Function)) => {
            return Err(unsupported(format!(
                "aggregate function {name} across shards"
            )));
        }
        // Only windows each shard computes whole get here (`select::windows_are_local`): a
        // value of the row like any other.
        Some(_) if f.over.is_some() => return Ok(None),
        Some(Ok(call)) => call,
        Some(Err(refusal)) => {
            return Err(unsupported(match refusal {
                Refusal::NoArguments => format!("{} without arguments", name.to_lowercase()),
                Refusal::Clauses => format!("{name} with clauses across shards"),
                Refusal::SeveralArguments => {
                    format!("{name} of several arguments across shards")
                }
                Refusal::Argument => format!("{name} of this argument across shards"),
                Refusal::Distinct | Refusal::Function => {
                    format!("{name}(DISTINCT ...) across shards")
                }
            }))
        }
    };
    // MariaDB adds up a quotient's values with the digits it keeps (9 per word), but a shard
    // shows its sum with the type's (4 more than the dividend's).
    if matches!(call.func, AggFn::Sum | AggFn::Avg)
        && call.arg.is_some_and(crate::clauses::carries_quotient)
    {
        return Err(unsupported(format!(
            "{name} of a quotient (/) across shards"
        )));
    }
    let arg = match call.arg {
        None => "*".to_string(),
        Some(e) => {
            // The client's text between the parentheses, DISTINCT removed; the parser's otherwise.
            let inner =
                text.and_then(|t| Some(t[t.find('(')? + 1..t.rfind(')')?].trim().to_string()));
            let distinct = matches!(
                &f.args,
                FunctionArguments::List(l)
                    if matches!(l.duplicate_treatment, Some(DuplicateTreatment::Distinct))
            );
            // DISTINCT goes from the text even for MIN and MAX, where it changes nothing.
            match inner {
                Some(inner) if distinct => inner
                    .get(8..)
                    .filter(|_| inner[..8].eq_ignore_ascii_case("distinct"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|| e.to_string()),
                Some(inner) => inner,
                None => e.to_string(),
            }
        }
    };
    Ok(Some(AggCall {
        func: call.func,
        name,
        arg,
        tuple: Vec::new(),
        concat: None,
    }))
}

/// The expressions of `COUNT(DISTINCT x, y, ...)`; `None` for any other call.
fn distinct_tuple(f: &sqlparser::ast::Function) -> Option<Vec<String>> {
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if !f.name.to_string().eq_ignore_ascii_case("count")
        || !matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct))
    {
        return None;
    }
    list.args
        .iter()
        .map(|a| match a {
            sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e)) => {
                Some(e.to_string())
            }
            _ => None,
        })
        .collect()
}

/// Registers a partial aggregate on a column once (a helper column may be asked for twice).
fn register(aggregates: &mut Vec<Aggregate>, column: usize, kind: AggregateKind) {
    if !aggregates.iter().any(|a| a.column == column) {
        aggregates.push(Aggregate { column, kind });
    }
}

/// A select item as parsed and as written.
struct Item<'q> {
    expr: &'q Expr,
    alias: Option<String>,
    /// The whole item as written (alias included).
    text: String,
    /// The expression as written.
    expr_text: String,
}

impl Item<'_> {
    /// The name MySQL gives the column: the alias, else the text.
    fn name(&self) -> String {
        self.alias.clone().unwrap_or_else(|| self.text.clone())
    }
}

/// The shard query's select list: the client's items (some rewritten), then hidden helpers.
struct Columns {
    texts: Vec<String>,
    /// How many leading columns are the client's items; helpers are never shared with them (an
    /// item's column may be rewritten by the merge, e.g. into a distinct count).
    visible: usize,
}

impl Columns {
    fn new(items: Vec<String>) -> Self {
        Columns {
            visible: items.len(),
            texts: items,
        }
    }

    fn hidden(&mut self, text: String) -> usize {
        if let Some(i) = self.texts[self.visible..].iter().position(|t| *t == text) {
            return self.visible + i;
        }
        self.texts.push(text);
        self.texts.len() - 1
    }

    /// The column of the shards' collation weight of `expr_text`.
    fn shard_weight(&mut self, expr_text: &str) -> usize {
        self.hidden(format!("WEIGHT_STRING(RTRIM({expr_text}))"))
    }
}

/// The item an ORDER BY / GROUP BY expression names: by position, by alias, or by being the same
/// expression.
fn find_item(expr: &Expr, items: &[Item<'_>], aliases: bool) -> Result<Option<usize>, PlanError> {
    if let Some(p) = position_of(expr) {
        return if p <= items.len() {
            Ok(Some(p - 1))
        } else {
            Err(unsupported(format!("position {p} beyond the select list")))
        };
    }
    if aliases {
        if let Expr::Identifier(id) = expr {
            if let Some(i) = items.iter().position(|it| {
                it.alias
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(&id.value))
            }) {
                return Ok(Some(i));
            }
        }
    }
    Ok(items.iter().position(|it| it.expr == expr))
}

pub(crate) fn plan_merge(
    query: &Query,
    select: &Select,
    shard_sql: &str,
    keyspace: &str,
    opcode: engine::Opcode,
    catalog: Option<&Context<'_>>,
) -> Result<Plan, PlanError> {
    let source = SourceText::new(shard_sql);
    let clauses =
        select_clauses(&source).ok_or_else(|| unsupported("this SELECT shape across shards"))?;
    if let Some(other) = clauses.other.first() {
        return Err(unsupported(format!(
            "{other} in a query that spans several shards"
        )));
    }
    // SQL_CALC_FOUND_ROWS goes along: the shards' counts are partial, so the gate counts the
    // rows with a statement of its own, and the shards' are never read.
    if clauses.items.len() != select.projection.len() {
        return Err(unsupported("this select list across shards"));
    }
    let mut wildcard = false;
    let mut items = Vec::new();
    for (item, text) in select.projection.iter().zip(&clauses.items) {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => {
                wildcard = true;
                continue;
            }
        };
        let expr_text = if alias.is_some() {
            without_alias(text).to_string()
        } else {
            text.to_string()
        };
        items.push(Item {
            expr,
            alias,
            text: text.to_string(),
            expr_text,
        });
    }
    if wildcard && !items.is_empty() {
        return Err(unsupported(
            "a select list mixing * with other columns across shards",
        ));
    }
    let distinct = select.distinct.is_some();
    let group_exprs: &[Expr] = match &select.group_by {
        GroupByExpr::Expressions(e, m)
            if m.is_empty() || m.as_slice() == [sqlparser::ast::GroupByWithModifier::Rollup] =>
        {
            e
        }
        _ => return Err(unsupported("this GROUP BY across shards")),
    };
    let has_aggregates = items.iter().any(|i| has_aggregate(i.expr))
        || select.having.as_ref().is_some_and(has_aggregate);
    let limit = limit_of(query)?;
    let order: Vec<(&Expr, bool, &str)> = match &query.order_by {
        None => Vec::new(),
        Some(ob) => match &ob.kind {
            OrderByKind::Expressions(exprs) if exprs.len() == clauses.order_by.len() => exprs
                .iter()
                .zip(&clauses.order_by)
                .map(|(o, (text, desc))| (&o.expr, *desc, *text))
                .collect(),
            _ => return Err(unsupported("this ORDER BY across shards")),
        },
    };
    let from = match catalog {
        Some(catalog) => FromColumns::of(select, catalog)?,
        None => FromColumns::default(),
    };
    let ctx = Ctx {
        sql: shard_sql,
        clauses: &clauses,
        keyspace,
        opcode,
        from,
    };
    if !has_aggregates && group_exprs.is_empty() && !distinct {
        return ctx.plain(&items, wildcard, &order, limit);
    }
    if wildcard {
        return Err(unsupported(
            "SELECT * with GROUP BY, DISTINCT or aggregates across shards",
        ));
    }
    if distinct && (has_aggregates || !group_exprs.is_empty()) {
        return Err(unsupported(
            "SELECT DISTINCT with aggregates or GROUP BY across shards",
        ));
    }
    ctx.grouped(
        &items,
        group_exprs,
        distinct,
        select.having.as_ref(),
        &order,
        limit,
    )
}

struct Ctx<'c, 'a> {
    sql: &'c str,
    clauses: &'c Clauses<'a>,
    keyspace: &'c str,
    opcode: engine::Opcode,
    /// The catalog's columns of the FROM tables.
    from: FromColumns<'c>,
}

impl Ctx<'_, '_> {
    /// Where the merge finds the collation weight of sort key `expr_text`: none for a column of
    /// a type the engine orders, the proxy's own for a collation it weighs, else a column the
    /// shards fill.
    fn weight(&self, columns: &mut Columns, expr_text: &str) -> Weight {
        match self.from.order(expr_text) {
            KeyOrder::Typed => Weight::None,
            KeyOrder::Collated(c) => Weight::Collation(c),
            KeyOrder::Unknown => Weight::Column(columns.shard_weight(expr_text)),
        }
    }

    fn query(
        &self,
        columns: &Columns,
        group_by: &[usize],
        having: Option<&str>,
        order_by: &[(String, bool)],
        limit: Option<u64>,
    ) -> String {
        let mut sql = String::from("SELECT ");
        for m in &self.clauses.modifiers {
            sql.push_str(m);
            sql.push(' ');
        }
        sql.push_str(&columns.texts.join(", "));
        if !self.clauses.from.is_empty() {
            sql.push(' ');
            sql.push_str(self.clauses.from);
        }
        let positions = |keys: Vec<String>| keys.join(", ");
        if !group_by.is_empty() {
            sql.push_str(" GROUP BY ");
            sql.push_str(&positions(
                group_by.iter().map(|c| (c + 1).to_string()).collect(),
            ));
        }
        if let Some(having) = having {
            sql.push_str(" HAVING ");
            sql.push_str(having);
        }
        if !order_by.is_empty() {
            sql.push_str(" ORDER BY ");
            sql.push_str(&positions(
                order_by
                    .iter()
                    .map(|(key, desc)| format!("{key}{}", if *desc { " DESC" } else { " ASC" }))
                    .collect(),
            ));
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        if !self.clauses.tail.is_empty() {
            sql.push(' ');
            sql.push_str(self.clauses.tail);
        }
        sql
    }

    fn route(&self, query: String) -> Route {
        Route {
            keyspace: self.keyspace.to_string(),
            opcode: self.opcode.clone(),
            query,
            elsewhere: None,
        }
    }

    /// Rows without aggregation: shards sort and limit, the proxy merges.
    fn plain(
        &self,
        items: &[Item<'_>],
        wildcard: bool,
        order: &[(&Expr, bool, &str)],
        limit: Option<(u64, u64)>,
    ) -> Result<Plan, PlanError> {
        if wildcard && !order.is_empty() && order.iter().any(|(e, _, _)| position_of(e).is_some()) {
            return Err(unsupported(
                "ORDER BY a position with SELECT * across shards",
            ));
        }
        let mut columns = Columns::new(self.clauses.items.iter().map(|s| s.to_string()).collect());
        let visible = columns.visible;
        let mut keys = Vec::new();
        let mut shard_order = Vec::new();
        for (expr, desc, text) in order {
            let (column, expr_text) = match find_item(expr, items, true)? {
                Some(i) => (i, items[i].expr_text.clone()),
                None => (columns.hidden(text.to_string()), text.to_string()),
            };
            keys.push(SortKey {
                column,
                weight: self.weight(&mut columns, &expr_text),
                desc: *desc,
            });
            // Positions count `*` as one column on the shard too; name the expression instead.
            shard_order.push((
                if wildcard {
                    expr_text
                } else {
                    (column + 1).to_string()
                },
                *desc,
            ));
        }
        // With `SELECT *` the helper columns follow the table's columns, whose count is unknown
        // here; the engine drops the last `hidden` columns.
        let hidden = columns.texts.len() - visible;
        let shard_limit = limit.map(|(off, n)| off.saturating_add(n));
        let mut stages = Vec::new();
        if let Some((offset, count)) = limit {
            stages.push(Stage::Limit { offset, count });
        }
        if hidden > 0 {
            stages.push(Stage::DropHidden { count: hidden });
        }
        if keys.is_empty() && stages.is_empty() {
            // Nothing to merge (HAVING alone filters single rows): the client's text as it is.
            return Ok(Plan::Route(self.route(self.sql.to_string())));
        }
        // Without aggregation HAVING filters single rows: each shard applies it to its own.
        let query = self.query(
            &columns,
            &[],
            self.clauses.having,
            &shard_order,
            shard_limit,
        );
        let wildcard = wildcard.then_some(engine::Wildcard {
            items: visible,
            hidden,
        });
        Ok(Plan::Merge(MergedSelect {
            route: self.route(query),
            merge: keys,
            stages,
            wildcard,
        }))
    }

    /// Aggregates, GROUP BY or DISTINCT.
    fn grouped(
        &self,
        items: &[Item<'_>],
        group_exprs: &[Expr],
        distinct: bool,
        having: Option<&Expr>,
        order: &[(&Expr, bool, &str)],
        limit: Option<(u64, u64)>,
    ) -> Result<Plan, PlanError> {
        // Every item keeps its position; aggregates become their shard partials there.
        let mut calls = Vec::with_capacity(items.len());
        let mut texts = Vec::with_capacity(items.len());
        for item in items {
            let call = agg_call(item.expr, Some(&item.expr_text))?;
            if call.is_none() && has_aggregate(item.expr) {
                // Computed here from the merged aggregates; the shards send a placeholder.
                if distinct {
                    return Err(unsupported(format!(
                        "SELECT DISTINCT with an expression over aggregate functions across \
                         shards: {}",
                        item.expr_text
                    )));
                }
                texts.push("NULL".to_string());
                calls.push(None);
                continue;
            }
            texts.push(match &call {
                None => item.text.clone(),
                Some(c) => match c.func {
                    AggFn::Avg => format!("SUM({})", c.arg),
                    // A tuple's count is the proxy's alone: the item holds nothing.
                    AggFn::CountDistinct if !c.tuple.is_empty() => "NULL".to_string(),
                    AggFn::CountDistinct | AggFn::SumDistinct | AggFn::AvgDistinct => c.arg.clone(),
                    _ => item.text.clone(),
                },
            });
            calls.push(call);
        }
        let mut columns = Columns::new(texts);
        let mut aggregates: Vec<Aggregate> = Vec::new();
        let mut outputs = Vec::with_capacity(items.len());
        let mut distinct_arg: Option<String> = None;
        // Items over aggregates a shard computes from the merged values.
        let mut at_shard: Vec<usize> = Vec::new();
        // The DISTINCT aggregates' expressions: one, or COUNT(DISTINCT x, y)'s.
        let mut distinct_exprs: Vec<String> = Vec::new();
        // GROUP_CONCAT's order (and DISTINCT): the shards group by it too, and send one string
        // per group and ORDER BY value.
        let mut concat_order: Option<(Vec<(String, bool)>, bool)> = None;
        let mut item_weights: Vec<Option<Weight>> = vec![None; items.len()];
        let item_columns: Vec<usize> = (0..items.len()).collect();
        for (i, (item, call)) in items.iter().zip(&calls).enumerate() {
            let Some(call) = call else {
                if !has_aggregate(item.expr) {
                    outputs.push(OutputColumn::Column(i));
                    continue;
                }
                let computed = self.eval(
                    item.expr,
                    items,
                    &mut columns,
                    &mut aggregates,
                    &item_columns,
                    Some(i),
                );
                outputs.push(match computed {
                    Ok(expr) => OutputColumn::Eval {
                        expr,
                        name: item.name(),
                    },
                    // Beyond the proxy's evaluator: a shard computes it from the merged values
                    // (its column holds NULL until then).
                    Err(PlanError::Unsupported(_)) if !distinct => {
                        at_shard.push(i);
                        OutputColumn::Column(i)
                    }
                    Err(e) => return Err(e),
                });
                continue;
            };
            if call.func.is_distinct() {
                match &distinct_arg {
                    Some(a) if *a != call.arg => {
                        return Err(unsupported(
                            "DISTINCT aggregates over different expressions across shards",
                        ))
                    }
                    _ => {
                        distinct_arg = Some(call.arg.clone());
                        distinct_exprs = if call.tuple.is_empty() {
                            vec![call.arg.clone()]
                        } else {
                            call.tuple.clone()
                        };
                    }
                }
            }
            let (kind, output) = match call.func {
                AggFn::GroupConcat => {
                    let Some(concat) = &call.concat else {
                        return Err(unsupported("this GROUP_CONCAT across shards"));
                    };
                    let order = (concat.order.clone(), concat.distinct);
                    if concat_order.as_ref().is_some_and(|o| *o != order) {
                        return Err(unsupported(
                            "GROUP_CONCATs with different orders or DISTINCT across shards",
                        ));
                    }
                    concat_order = Some(order);
                    let max_len = columns.hidden("@@group_concat_max_len".to_string());
                    (
                        AggregateKind::GroupConcat {
                            separator: concat.separator.clone(),
                            max_len,
                            distinct: concat.distinct.then(Vec::new),
                        },
                        OutputColumn::Column(i),
                    )
                }
                AggFn::Spread(spread) => {
                    // The item's own column only defines the result's type: the shards' text
                    // shows a few decimals of the variance, `+ 0e0` all of them (and of a sum
                    // of quotients, all the digits the server keeps).
                    let count = columns.hidden(format!("COUNT({})", call.arg));
                    let sum = columns.hidden(format!("SUM({}) + 0e0", call.arg));
                    let variance = columns.hidden(format!("VAR_POP({}) + 0e0", call.arg));
                    register(&mut aggregates, count, AggregateKind::Count);
                    register(&mut aggregates, sum, AggregateKind::Sum);
                    register(
                        &mut aggregates,
                        variance,
                        AggregateKind::Variance { count, sum },
                    );
                    outputs.push(OutputColumn::Spread {
                        def: i,
                        variance,
                        count,
                        spread,
                        name: item.name(),
                    });
                    continue;
                }
                AggFn::Count => (AggregateKind::Count, OutputColumn::Column(i)),
                AggFn::Sum => (AggregateKind::Sum, OutputColumn::Column(i)),
                AggFn::Bit(op) => (AggregateKind::Bit(op), OutputColumn::Column(i)),
                AggFn::Min | AggFn::Max => {
                    let w = columns.shard_weight(&item.expr_text);
                    item_weights[i] = Some(Weight::Column(w));
                    let kind = call.func.weighted(Some(w)).expect("MIN or MAX");
                    (kind, OutputColumn::Column(i))
                }
                AggFn::Avg => {
                    let count = columns.hidden(format!("COUNT({})", call.arg));
                    register(&mut aggregates, count, AggregateKind::Count);
                    (
                        AggregateKind::Sum,
                        OutputColumn::Avg {
                            sum: i,
                            count,
                            name: item.name(),
                        },
                    )
                }
                AggFn::CountDistinct if !call.tuple.is_empty() => (
                    AggregateKind::CountDistinctTuple { keys: Vec::new() },
                    OutputColumn::Computed {
                        column: i,
                        name: item.name(),
                        kind: ComputedKind::Count,
                    },
                ),
                AggFn::CountDistinct => (
                    AggregateKind::CountDistinct { weight: None },
                    OutputColumn::Computed {
                        column: i,
                        name: item.name(),
                        kind: ComputedKind::Count,
                    },
                ),
                AggFn::AvgDistinct => {
                    // The distinct values' sum in the item's column, their count in a copy.
                    let count = columns.hidden(call.arg.clone());
                    register(
                        &mut aggregates,
                        count,
                        AggregateKind::CountDistinct { weight: None },
                    );
                    (
                        AggregateKind::SumDistinct { weight: None },
                        OutputColumn::Avg {
                            sum: i,
                            count,
                            name: item.name(),
                        },
                    )
                }
                AggFn::SumDistinct => (
                    AggregateKind::SumDistinct { weight: None },
                    OutputColumn::Computed {
                        column: i,
                        name: item.name(),
                        kind: ComputedKind::Sum,
                    },
                ),
            };
            register(&mut aggregates, i, kind);
            outputs.push(output);
        }

        // Group keys: the GROUP BY (or every item for DISTINCT), plus the DISTINCT aggregate's
        // argument so each of its values arrives in consecutive rows.
        let mut group_keys: Vec<SortKey> = Vec::new();
        let key_exprs: Vec<(Option<usize>, String)> = if distinct {
            (0..items.len())
                .map(|i| (Some(i), items[i].expr_text.clone()))
                .collect()
        } else {
            let mut v = Vec::new();
            for (e, text) in group_exprs.iter().zip(&self.clauses.group_by) {
                let item = find_item(e, items, true)?;
                if item.is_some_and(|i| agg_call(items[i].expr, None).ok().flatten().is_some()) {
                    return Err(unsupported("GROUP BY an aggregate"));
                }
                v.push((
                    item,
                    item.map(|i| items[i].expr_text.clone())
                        .unwrap_or_else(|| text.to_string()),
                ));
            }
            v
        };
        if self.clauses.rollup {
            let refuse = |what: &str| Err(unsupported(format!("WITH ROLLUP {what} across shards")));
            if distinct || distinct_arg.is_some() {
                return refuse("with DISTINCT");
            }
            if concat_order.is_some() {
                return refuse("with GROUP_CONCAT");
            }
            if !self.clauses.order_by.is_empty() {
                return refuse("with ORDER BY");
            }
            // A rolled-up row has NULL keys: an item computed by the shards from a key would
            // keep the first group's value.
            for (i, item) in items.iter().enumerate() {
                if !has_aggregate(item.expr) && !key_exprs.iter().any(|(k, _)| *k == Some(i)) {
                    return refuse(&format!(
                        "with the select item {}, which is neither a GROUP BY column nor over aggregates,",
                        item.expr_text
                    ));
                }
            }
        }
        for (item, text) in key_exprs {
            let column = match item {
                Some(i) => i,
                None => columns.hidden(text.clone()),
            };
            let weight = match item {
                Some(i) => *item_weights[i].get_or_insert_with(|| self.weight(&mut columns, &text)),
                None => self.weight(&mut columns, &text),
            };
            group_keys.push(SortKey {
                column,
                weight,
                desc: false,
            });
        }
        let mut shard_group: Vec<usize> = group_keys.iter().map(|k| k.column).collect();
        let mut merge_keys = group_keys.clone();
        let distinct_keys: Vec<SortKey> = distinct_exprs
            .iter()
            .map(|e| SortKey {
                column: columns.hidden(e.clone()),
                weight: Weight::Column(columns.shard_weight(e)),
                desc: false,
            })
            .collect();
        for a in aggregates.iter_mut() {
            match &mut a.kind {
                AggregateKind::CountDistinct { weight: w }
                | AggregateKind::SumDistinct { weight: w } => {
                    *w = distinct_keys.first().and_then(|k| k.weight.column())
                }
                AggregateKind::CountDistinctTuple { keys } => *keys = distinct_keys.clone(),
                _ => {}
            }
        }
        shard_group.extend(distinct_keys.iter().map(|k| k.column));
        merge_keys.extend(distinct_keys);
        if let Some((order, _)) = &concat_order {
            if distinct_arg.is_some() {
                return Err(unsupported(
                    "GROUP_CONCAT with a DISTINCT aggregate across shards",
                ));
            }
            let keys: Vec<SortKey> = order
                .iter()
                .map(|(e, desc)| SortKey {
                    column: columns.hidden(e.clone()),
                    weight: self.weight(&mut columns, e),
                    desc: *desc,
                })
                .collect();
            for a in aggregates.iter_mut() {
                if let AggregateKind::GroupConcat {
                    distinct: Some(k), ..
                } = &mut a.kind
                {
                    *k = keys.clone();
                }
            }
            shard_group.extend(keys.iter().map(|k| k.column));
            merge_keys.extend(keys);
        }

        // HAVING, evaluated on the merged groups.
        let filter = match having {
            Some(h) => {
                Some(self.eval(h, items, &mut columns, &mut aggregates, &item_columns, None)?)
            }
            None => None,
        };

        // The inputs of the items a shard computes follow the client's columns.
        // ORDER BY an item a shard computes: the whole ORDER BY and LIMIT apply after the
        // evaluation, over select items, each with a weight the shard computes as well.
        let mut post_order: Vec<(usize, bool)> = Vec::new();
        if order.iter().any(|(e, _, _)| {
            find_item(e, items, true)
                .ok()
                .flatten()
                .is_some_and(|i| at_shard.contains(&i))
        }) {
            for (e, desc, _) in order {
                let i = find_item(e, items, true)?.ok_or_else(|| {
                    unsupported(format!(
                        "ORDER BY {e}, not a select item, with items computed from the merged \
                         aggregates, across shards"
                    ))
                })?;
                if calls[i]
                    .as_ref()
                    .is_some_and(|c| c.func == AggFn::GroupConcat)
                {
                    return Err(unsupported("ORDER BY a GROUP_CONCAT across shards"));
                }
                post_order.push((i, *desc));
            }
        }
        let shard_eval = if at_shard.is_empty() {
            None
        } else {
            Some(self.shard_inputs(
                items,
                &at_shard,
                &post_order,
                &mut columns,
                &mut aggregates,
                &mut outputs,
            )?)
        };
        let limit_after_eval = if post_order.is_empty() { None } else { limit };
        let (order, limit) = if post_order.is_empty() {
            (order, limit)
        } else {
            (&[][..], None)
        };

        // The groups leave the aggregate in their keys' ascending order: an ORDER BY of the
        // leading group keys, ascending, needs no sort (sysbench's `DISTINCT c ORDER BY c`).
        let grouped_order = order.len() <= group_keys.len()
            && order.iter().zip(&group_keys).all(|((expr, desc, _), key)| {
                !*desc
                    && matches!(find_item(expr, items, true), Ok(Some(i))
                        if key.column == i && calls[i].is_none() && !has_aggregate(items[i].expr))
            });
        let order = if grouped_order { &[][..] } else { order };

        // ORDER BY after aggregation, on the projected rows plus carried helper columns.
        let visible = outputs.len();
        let mut carried: Vec<usize> = Vec::new();
        let mut sort_keys = Vec::new();
        for (expr, desc, text) in order {
            let (pre_column, pre_weight, projected) = match find_item(expr, items, true)? {
                Some(i)
                    if calls[i]
                        .as_ref()
                        .is_some_and(|c| c.func == AggFn::GroupConcat) =>
                {
                    // Its collation weight is the shards' to compute, and no shard has it whole.
                    return Err(unsupported("ORDER BY a GROUP_CONCAT across shards"));
                }
                Some(i) => {
                    // Text needs a weight; numbers ignore it. Aggregates other than MIN/MAX are numbers.
                    let needs_weight = calls[i].is_none();
                    let w = if needs_weight {
                        *item_weights[i]
                            .get_or_insert_with(|| self.weight(&mut columns, &items[i].expr_text))
                    } else {
                        item_weights[i].unwrap_or(Weight::None)
                    };
                    (item_columns[i], w, Some(i))
                }
                None => match agg_call(expr, Some(text))? {
                    Some(call) => {
                        if call.func == AggFn::Avg || call.func.is_distinct() {
                            return Err(unsupported("ORDER BY an AVG or DISTINCT aggregate that is not selected, across shards"));
                        }
                        let (c, w) = self.partial(&mut columns, &mut aggregates, &call)?;
                        (c, w.into(), None)
                    }
                    None if has_aggregate(expr) => {
                        return Err(unsupported(
                            "ORDER BY an expression over aggregates across shards",
                        ))
                    }
                    None => {
                        let c = columns.hidden(text.to_string());
                        (c, self.weight(&mut columns, text), None)
                    }
                },
            };
            let mut carry = |c: usize| -> usize {
                let at = carried.iter().position(|x| *x == c).unwrap_or_else(|| {
                    carried.push(c);
                    carried.len() - 1
                });
                visible + at
            };
            let column = match projected {
                Some(i) => i,
                None => carry(pre_column),
            };
            let weight = pre_weight.map_column(&mut carry);
            sort_keys.push(SortKey {
                column,
                weight,
                desc: *desc,
            });
        }

        let mut stages = vec![Stage::OrderedAggregate {
            group: group_keys,
            aggregates,
            rollup: self.clauses.rollup,
        }];
        if let Some(predicate) = filter {
            stages.push(Stage::Filter { predicate });
        }
        let mut projection = outputs;
        projection.extend(carried.iter().map(|c| OutputColumn::Column(*c)));
        stages.push(Stage::Projection {
            columns: projection,
        });
        if !sort_keys.is_empty() {
            stages.push(Stage::MemorySort { keys: sort_keys });
        }
        if let Some((offset, count)) = limit {
            stages.push(Stage::Limit { offset, count });
        }
        if !carried.is_empty() {
            stages.push(Stage::DropHidden {
                count: carried.len(),
            });
        }
        let shard_order: Vec<(String, bool)> = merge_keys
            .iter()
            .map(|k| ((k.column + 1).to_string(), k.desc))
            .collect();
        let shard_group = if distinct && distinct_arg.is_none() {
            Vec::new()
        } else {
            shard_group
        };
        let query = self.query(&columns, &shard_group, None, &shard_order, None);
        let merged = Plan::Merge(MergedSelect {
            route: self.route(query),
            merge: merge_keys,
            stages,
            wildcard: None,
        });
        let Some((select, typing)) = shard_eval else {
            return Ok(merged);
        };
        let mut stages = Vec::new();
        if !post_order.is_empty() {
            let keys = post_order
                .iter()
                .enumerate()
                .map(|(n, &(i, desc))| SortKey {
                    column: i,
                    weight: Weight::Column(items.len() + n),
                    desc,
                })
                .collect();
            stages.push(Stage::MemorySort { keys });
            if let Some((offset, count)) = limit_after_eval {
                stages.push(Stage::Limit { offset, count });
            }
            stages.push(Stage::DropHidden {
                count: post_order.len(),
            });
        }
        Ok(Plan::ShardEval(engine::ShardEval {
            input: Box::new(merged),
            keyspace: self.keyspace.to_string(),
            opcode: engine::any_shard(!matches!(self.opcode, engine::Opcode::Unsharded)),
            visible: items.len(),
            items: at_shard,
            select,
            typing,
            stages,
        }))
    }

    /// For the items a shard computes (`at_shard`): each input (an aggregate's merged value, or
    /// a column's) as an output column after the others, and the evaluation's select list over
    /// `sg_in.a0, a1, ...` and typing query (the inputs as this statement computes them, no row).
    fn shard_inputs(
        &self,
        items: &[Item<'_>],
        at_shard: &[usize],
        order: &[(usize, bool)],
        columns: &mut Columns,
        aggregates: &mut Vec<Aggregate>,
        outputs: &mut Vec<OutputColumn>,
    ) -> Result<(String, String), PlanError> {
        use sqlparser::ast::{Ident, VisitMut, VisitorMut};
        use std::ops::ControlFlow;
        // The evaluation is printed by the parser, which would lose a string's backslashes.
        if self.sql.contains('\\') {
            return Err(unsupported(
                "an expression over aggregates across shards, in a statement with a backslash",
            ));
        }
        struct Inputs {
            leaves: Vec<Expr>,
            subquery: bool,
        }
        impl VisitorMut for Inputs {
            type Break = ();
            fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
                self.subquery = true;
                ControlFlow::Break(())
            }
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let leaf = matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                    || matches!(e, Expr::Function(f) if f.over.is_none()
                        && crate::aggregates::AGGREGATES
                            .contains(&f.name.to_string().to_ascii_lowercase().as_str()));
                if leaf {
                    let n = self.leaves.iter().position(|l| l == e).unwrap_or_else(|| {
                        self.leaves.push(e.clone());
                        self.leaves.len() - 1
                    });
                    *e = Expr::CompoundIdentifier(vec![
                        Ident::new("sg_in"),
                        Ident::new(format!("a{n}")),
                    ]);
                }
                ControlFlow::Continue(())
            }
        }
        let mut inputs = Inputs {
            leaves: Vec::new(),
            subquery: false,
        };
        let mut select = Vec::new();
        let mut rewritten = Vec::new();
        for &i in at_shard {
            if let Some(q) = uncompared_quotient(items[i].expr, |_| true) {
                return Err(unsupported(format!(
                    "{} across shards: a function or arithmetic over {q}, a quotient (AVG or \
                     /), that a shard would see with its shown digits only",
                    items[i].expr_text
                )));
            }
            let mut e = items[i].expr.clone();
            let _ = e.visit(&mut inputs);
            if inputs.subquery {
                return Err(unsupported(format!(
                    "{} across shards: a subquery over aggregates",
                    items[i].expr_text
                )));
            }
            select.push(format!("{e} AS `{}`", items[i].name().replace('`', "``")));
            rewritten.push((i, e));
        }
        // The ORDER BY items' sort weights: of a computed item's expression, or of another
        // item's merged value, given as one more input.
        for (n, &(i, _)) in order.iter().enumerate() {
            let value = match rewritten.iter().find(|(x, _)| *x == i) {
                Some((_, e)) => e.to_string(),
                None => {
                    let mut e = items[i].expr.clone();
                    let _ = e.visit(&mut inputs);
                    e.to_string()
                }
            };
            select.push(format!("WEIGHT_STRING(RTRIM({value})) AS sg_w{n}"));
        }
        let mut typing = Vec::new();
        for (n, leaf) in inputs.leaves.iter().enumerate() {
            let output = match agg_call(leaf, None)? {
                Some(call) if call.func == AggFn::Avg => {
                    let (sum, _) = self.partial(columns, aggregates, &call)?;
                    let count = columns.hidden(format!("COUNT({})", call.arg));
                    register(aggregates, count, AggregateKind::Count);
                    OutputColumn::Avg {
                        sum,
                        count,
                        name: format!("a{n}"),
                    }
                }
                Some(call) => OutputColumn::Column(self.partial(columns, aggregates, &call)?.0),
                None => OutputColumn::Column(columns.hidden(leaf.to_string())),
            };
            outputs.push(output);
            typing.push(format!("{leaf} AS a{n}"));
        }
        let group_by = if self.clauses.group_by.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", self.clauses.group_by.join(", "))
        };
        Ok((
            select.join(", "),
            format!(
                "SELECT {}, 0 AS sg_n {}{group_by} LIMIT 0",
                typing.join(", "),
                self.clauses.from
            ),
        ))
    }

    /// Adds the shard-side partial of an aggregate call; returns its column and, for MIN/MAX, its
    /// weight column.
    fn partial(
        &self,
        columns: &mut Columns,
        aggregates: &mut Vec<Aggregate>,
        call: &AggCall,
    ) -> Result<(usize, Option<usize>), PlanError> {
        Ok(match call.func {
            AggFn::Count => {
                let c = columns.hidden(format!("COUNT({})", call.arg));
                register(aggregates, c, AggregateKind::Count);
                (c, None)
            }
            AggFn::AvgDistinct => {
                return Err(unsupported(
                    "AVG(DISTINCT ...) that is not selected on its own, across shards",
                ))
            }
            AggFn::Spread(_) | AggFn::GroupConcat => {
                return Err(unsupported(format!(
                    "{}() that is not selected on its own, across shards",
                    call.name
                )))
            }
            AggFn::Bit(op) => {
                let name = call.func.name().to_uppercase();
                let c = columns.hidden(format!("{name}({})", call.arg));
                register(aggregates, c, AggregateKind::Bit(op));
                (c, None)
            }
            AggFn::Sum => {
                let c = columns.hidden(format!("SUM({})", call.arg));
                register(aggregates, c, AggregateKind::Sum);
                (c, None)
            }
            AggFn::Min | AggFn::Max => {
                let expr_text = format!("{}({})", call.func.name().to_uppercase(), call.arg);
                let c = columns.hidden(expr_text.clone());
                let w = columns.shard_weight(&expr_text);
                register(
                    aggregates,
                    c,
                    call.func.weighted(Some(w)).expect("MIN or MAX"),
                );
                (c, Some(w))
            }
            AggFn::Avg => {
                let c = columns.hidden(format!("SUM({})", call.arg));
                register(aggregates, c, AggregateKind::Sum);
                (c, None)
            }
            AggFn::CountDistinct if !call.tuple.is_empty() => {
                return Err(unsupported(
                    "COUNT(DISTINCT ...) of several expressions that is not selected on its own, \
                     across shards",
                ))
            }
            AggFn::CountDistinct => {
                let c = columns.hidden(call.arg.clone());
                register(aggregates, c, AggregateKind::CountDistinct { weight: None });
                (c, None)
            }
            AggFn::SumDistinct => {
                let c = columns.hidden(call.arg.clone());
                register(aggregates, c, AggregateKind::SumDistinct { weight: None });
                (c, None)
            }
        })
    }

    /// HAVING, or select item `own` over aggregates → an expression over the merged rows'
    /// columns.
    fn eval(
        &self,
        expr: &Expr,
        items: &[Item<'_>],
        columns: &mut Columns,
        aggregates: &mut Vec<Aggregate>,
        item_columns: &[usize],
        own: Option<usize>,
    ) -> Result<EvalExpr, PlanError> {
        let clause = if own.is_some() {
            "the select list"
        } else {
            "HAVING"
        };
        // A shard shows MIN or MAX of a quotient rounded; only a comparison may use that (an
        // AVG is divided here, with the digits MariaDB keeps).
        let min_max = |f: &sqlparser::ast::Function| {
            let name = f.name.to_string();
            name.eq_ignore_ascii_case("MIN") || name.eq_ignore_ascii_case("MAX")
        };
        if let Some(q) = uncompared_quotient(expr, min_max) {
            return Err(unsupported(format!(
                "arithmetic or a function over {q}, of a quotient (/), across shards"
            )));
        }
        to_eval(expr, &mut |e: &Expr| -> Result<EvalExpr, PlanError> {
            if let Some(i) = find_item(e, items, own.is_none())?
                .filter(|i| position_of(e).is_none() && Some(*i) != own)
            {
                return item_value(i, items, item_columns, columns, aggregates);
            }
            Ok(match agg_call(e, None)? {
                Some(call) if call.func == AggFn::Avg && !call.func.is_distinct() => {
                    let (sum, _) = self.partial(columns, aggregates, &call)?;
                    let count = columns.hidden(format!("COUNT({})", call.arg));
                    register(aggregates, count, AggregateKind::Count);
                    EvalExpr::Arith {
                        op: ArithOp::Div,
                        left: Box::new(EvalExpr::Column(sum)),
                        right: Box::new(EvalExpr::Column(count)),
                    }
                }
                Some(call) => {
                    if call.func.is_distinct() {
                        return Err(unsupported(format!(
                            "a DISTINCT aggregate in {clause} that is not selected on its own, across shards"
                        )));
                    }
                    EvalExpr::Column(self.partial(columns, aggregates, &call)?.0)
                }
                None if has_aggregate(e) => {
                    return Err(unsupported(format!("{e} in {clause} across shards")))
                }
                None => match e {
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                        EvalExpr::Column(columns.hidden(e.to_string()))
                    }
                    other => return Err(unsupported(format!("{other} in {clause} across shards"))),
                },
            })
        })
    }
}

/// An aggregate call in `expr` (one `pick` accepts) whose value has digits a shard does not
/// show (AVG, or over a quotient), used where those digits count: `MAX(a / 7) * 7`. Shown uses
/// are fine, as MariaDB uses the shown value there too: the item itself, compared, tested for
/// NULL, turned into text (CONCAT), or passed through COALESCE, IFNULL, IF or CASE to one.
fn uncompared_quotient(
    expr: &Expr,
    pick: impl Fn(&sqlparser::ast::Function) -> bool,
) -> Option<String> {
    use sqlparser::ast::{
        BinaryOperator as B, FunctionArg, FunctionArgExpr, FunctionArguments, Visit, Visitor,
    };
    use std::ops::ControlFlow;
    let picked = |e: &Expr| match e {
        Expr::Function(f) if f.over.is_none() && pick(f) && crate::clauses::carries_quotient(e) => {
            let name = f.name.to_string().to_ascii_lowercase();
            crate::aggregates::AGGREGATES.contains(&name.as_str())
        }
        _ => false,
    };
    // Anywhere below `e`, whatever the use: the first picked call.
    let any = |e: &Expr| {
        struct Any<'p, P>(&'p P);
        impl<P: Fn(&Expr) -> bool> Visitor for Any<'_, P> {
            type Break = String;
            fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<String> {
                match (self.0)(e) {
                    true => ControlFlow::Break(e.to_string()),
                    false => ControlFlow::Continue(()),
                }
            }
        }
        e.visit(&mut Any(&picked)).break_value()
    };
    fn walk(
        e: &Expr,
        shown: bool,
        picked: &dyn Fn(&Expr) -> bool,
        any: &dyn Fn(&Expr) -> Option<String>,
    ) -> Option<String> {
        if picked(e) {
            return (!shown).then(|| e.to_string());
        }
        let args = |f: &sqlparser::ast::Function| -> Option<Vec<Expr>> {
            let FunctionArguments::List(list) = &f.args else {
                return Some(Vec::new());
            };
            list.args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
                    _ => None,
                })
                .collect()
        };
        match e {
            Expr::Nested(x) => walk(x, shown, picked, any),
            Expr::IsNull(x) | Expr::IsNotNull(x) => walk(x, true, picked, any),
            // Compared, or tested for truth.
            Expr::BinaryOp { left, op, right }
                if crate::clauses::is_comparison(op) || matches!(op, B::And | B::Or | B::Xor) =>
            {
                walk(left, true, picked, any).or_else(|| walk(right, true, picked, any))
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => operand
                .iter()
                .map(|o| walk(o, true, picked, any))
                .chain(conditions.iter().flat_map(|c| {
                    [
                        walk(&c.condition, true, picked, any),
                        walk(&c.result, shown, picked, any),
                    ]
                }))
                .chain(else_result.iter().map(|x| walk(x, shown, picked, any)))
                .flatten()
                .next(),
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_uppercase();
                let inherit = match name.as_str() {
                    "COALESCE" | "IFNULL" | "IF" | "NULLIF" => Some(shown),
                    "CONCAT" | "CONCAT_WS" => Some(true),
                    _ => None,
                };
                match (inherit, args(f)) {
                    (Some(shown), Some(args)) => {
                        args.iter().find_map(|x| walk(x, shown, picked, any))
                    }
                    _ => any(e),
                }
            }
            other => any(other),
        }
    }
    walk(expr, true, &picked, &any)
}

/// A select item's merged value: an AVG item's column holds the SUM, divided here by the COUNT.
fn item_value(
    i: usize,
    items: &[Item<'_>],
    item_columns: &[usize],
    columns: &mut Columns,
    aggregates: &mut Vec<Aggregate>,
) -> Result<EvalExpr, PlanError> {
    match agg_call(items[i].expr, None)? {
        Some(call) if call.func == AggFn::Avg && !call.func.is_distinct() => {
            let count = columns.hidden(format!("COUNT({})", call.arg));
            register(aggregates, count, AggregateKind::Count);
            return Ok(EvalExpr::Arith {
                op: ArithOp::Div,
                left: Box::new(EvalExpr::Column(item_columns[i])),
                right: Box::new(EvalExpr::Column(count)),
            });
        }
        Some(call)
            if matches!(call.func, AggFn::Spread(_) | AggFn::GroupConcat)
                || call.func.is_distinct() =>
        {
            return Err(unsupported(format!(
                "{} (AVG(DISTINCT), a variance, GROUP_CONCAT or a DISTINCT aggregate) \
                     again in HAVING or over aggregates across shards",
                items[i].expr
            )));
        }
        None if has_aggregate(items[i].expr) => {
            return Err(unsupported(
                "an alias of an expression over aggregates in HAVING across shards",
            ));
        }
        _ => {}
    }
    Ok(EvalExpr::Column(item_columns[i]))
}
