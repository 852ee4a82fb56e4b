//! Aggregate functions, the vocabulary that merging across shards, joins at the proxy and
//! derived tables share: which calls are aggregates ([`AGGREGATES`], [`find_call`]), the typed
//! classification of the ones the proxy combines from partial results ([`AggFn`],
//! [`classify`]), and the grouped stages that combine them.

use std::ops::ControlFlow;

use engine::{AggregateKind, EvalExpr, SortKey, Stage};
use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Query,
    Visit, Visitor,
};

use crate::clauses::{order_by, sort_limit_drop};
use crate::PlanError;

/// An aggregate the proxy combines from the shards' partial results. MIN and MAX of the
/// distinct values are MIN and MAX: they have no DISTINCT form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggFn {
    Count,
    CountDistinct,
    Sum,
    SumDistinct,
    Min,
    Max,
    Avg,
    /// AVG(DISTINCT x): SUM(DISTINCT x) / COUNT(DISTINCT x) at the proxy.
    AvgDistinct,
    /// BIT_AND, BIT_OR, BIT_XOR: the shards' results combined bit by bit.
    Bit(engine::BitOp),
    /// The variance family (STD, VAR_SAMP, ...): from the shards' counts, sums and variances.
    Spread(engine::Spread),
    /// GROUP_CONCAT: the shards' strings joined (merge.rs only; [`classify`] refuses it).
    GroupConcat,
}

impl AggFn {
    /// Its name in messages, lower case (`count_distinct` for COUNT(DISTINCT)).
    pub(crate) fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::CountDistinct => "count_distinct",
            AggFn::Sum => "sum",
            AggFn::SumDistinct => "sum_distinct",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::Avg => "avg",
            AggFn::AvgDistinct => "avg_distinct",
            AggFn::Bit(engine::BitOp::And) => "bit_and",
            AggFn::Bit(engine::BitOp::Or) => "bit_or",
            AggFn::Bit(engine::BitOp::Xor) => "bit_xor",
            AggFn::GroupConcat => "group_concat",
            AggFn::Spread(s) => match (s.root, s.sample) {
                (false, false) => "var_pop",
                (false, true) => "var_samp",
                (true, false) => "stddev_pop",
                (true, true) => "stddev_samp",
            },
        }
    }

    pub(crate) fn is_distinct(self) -> bool {
        matches!(
            self,
            AggFn::CountDistinct | AggFn::SumDistinct | AggFn::AvgDistinct
        )
    }

    /// The engine's aggregate for MIN, MAX and the DISTINCT ones, comparing text by the
    /// `weight` column; `None` for the others, which need no weight.
    pub(crate) fn weighted(self, weight: Option<usize>) -> Option<AggregateKind> {
        Some(match self {
            AggFn::Min => AggregateKind::Min { weight },
            AggFn::Max => AggregateKind::Max { weight },
            AggFn::CountDistinct => AggregateKind::CountDistinct { weight },
            AggFn::SumDistinct => AggregateKind::SumDistinct { weight },
            AggFn::Count
            | AggFn::Sum
            | AggFn::Avg
            | AggFn::AvgDistinct
            | AggFn::Bit(_)
            | AggFn::Spread(_)
            | AggFn::GroupConcat => return None,
        })
    }
}

/// An aggregate call the proxy can combine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AggCall<'e> {
    pub(crate) func: AggFn,
    /// `None` for `*`.
    pub(crate) arg: Option<&'e Expr>,
}

/// Why an aggregate call cannot be combined across shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An aggregate the proxy cannot combine (GROUP_CONCAT, JSON_ARRAYAGG, ...).
    Function,
    NoArguments,
    /// ORDER BY, SEPARATOR, LIMIT or FILTER inside the call.
    Clauses,
    /// AVG(DISTINCT ...).
    Distinct,
    SeveralArguments,
    /// An argument that is neither an expression nor `*`.
    Argument,
}

/// The aggregate `f` is, classified; `None` when it is no aggregate. Windows are the caller's
/// to tell apart (`f.over`).
pub(crate) fn classify(f: &Function) -> Option<Result<AggCall<'_>, Refusal>> {
    let spread = |sample, root| AggFn::Spread(engine::Spread { sample, root });
    let name = f.name.to_string().to_ascii_lowercase();
    let plain = match name.as_str() {
        "count" => AggFn::Count,
        "sum" => AggFn::Sum,
        "min" => AggFn::Min,
        "max" => AggFn::Max,
        "avg" => AggFn::Avg,
        "bit_and" => AggFn::Bit(engine::BitOp::And),
        "bit_or" => AggFn::Bit(engine::BitOp::Or),
        "bit_xor" => AggFn::Bit(engine::BitOp::Xor),
        "std" | "stddev" | "stddev_pop" => spread(false, true),
        "stddev_samp" => spread(true, true),
        "variance" | "var_pop" => spread(false, false),
        "var_samp" => spread(true, false),
        other => {
            return AGGREGATES
                .contains(&other)
                .then_some(Err(Refusal::Function))
        }
    };
    let FunctionArguments::List(list) = &f.args else {
        return Some(Err(Refusal::NoArguments));
    };
    if f.filter.is_some() || !list.clauses.is_empty() {
        return Some(Err(Refusal::Clauses));
    }
    let func = match (plain, &list.duplicate_treatment) {
        (_, None | Some(DuplicateTreatment::All)) | (AggFn::Min | AggFn::Max, _) => plain,
        (AggFn::Count, _) => AggFn::CountDistinct,
        (AggFn::Sum, _) => AggFn::SumDistinct,
        (AggFn::Avg, _) => AggFn::AvgDistinct,
        _ => return Some(Err(Refusal::Distinct)),
    };
    Some(match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => Ok(AggCall { func, arg: None }),
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Ok(AggCall { func, arg: Some(e) }),
        [_] => Err(Refusal::Argument),
        _ => Err(Refusal::SeveralArguments),
    })
}

/// An aggregate call outside any window, classified for a plan that combines aggregates: an
/// error names what cannot be combined (`NAME()`, `NAME(DISTINCT ...)`, ...).
pub(crate) fn aggregate(expr: &Expr) -> Option<Result<AggCall<'_>, String>> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = f.name.to_string().to_uppercase();
    Some(match classify(f)? {
        Ok(AggCall { func, arg: None }) if func != AggFn::Count => {
            Err(format!("this {name}() call"))
        }
        // Combined only over shards' results (merge.rs), not over joined or derived rows.
        Ok(AggCall {
            func: AggFn::Bit(_) | AggFn::Spread(_),
            ..
        }) => Err(format!("{name}()")),
        Ok(AggCall {
            func: AggFn::AvgDistinct,
            ..
        }) => Err(format!("{name}(DISTINCT ...)")),
        Ok(call) => Ok(call),
        Err(Refusal::Function) => Err(format!("{name}()")),
        Err(Refusal::NoArguments) => Err(format!("{name}() without arguments")),
        Err(Refusal::Clauses) => Err(format!("{name}(... ORDER BY/LIMIT)")),
        Err(Refusal::Distinct) => Err(format!("{name}(DISTINCT ...)")),
        Err(Refusal::SeveralArguments | Refusal::Argument) => Err(format!("this {name}() call")),
    })
}

pub(crate) const AGGREGATES: &[&str] = &[
    "avg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "count",
    "group_concat",
    "json_arrayagg",
    "json_objectagg",
    "max",
    "min",
    "std",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "sum",
    "var_pop",
    "var_samp",
    "variance",
];

/// The first function call, outside subqueries (they are evaluated by the shards), that `pick`
/// describes.
pub(crate) fn find_call<V: Visit + ?Sized>(
    node: &V,
    pick: impl FnMut(&Function) -> Option<String>,
) -> Option<String> {
    struct Calls<F> {
        depth: usize,
        pick: F,
    }
    impl<F: FnMut(&Function) -> Option<String>> Visitor for Calls<F> {
        type Break = String;
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<String> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<String> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
            match expr {
                Expr::Function(f) if self.depth == 0 => match (self.pick)(f) {
                    Some(found) => ControlFlow::Break(found),
                    None => ControlFlow::Continue(()),
                },
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match node.visit(&mut Calls { depth: 0, pick }) {
        ControlFlow::Break(found) => Some(found),
        ControlFlow::Continue(()) => None,
    }
}

pub(crate) fn contains_aggregate(expr: &Expr) -> bool {
    find_call(expr, |f| {
        let name = f.name.to_string().to_ascii_lowercase();
        (AGGREGATES.contains(&name.as_str()) || f.over.is_some()).then_some(name)
    })
    .is_some()
}

/// An aggregate outside any window. The windows a merged select may hold are computed whole
/// by each shard (`select::windows_are_local`), so they are values of the row.
pub(crate) fn has_aggregate(expr: &Expr) -> bool {
    find_call(expr, |f| {
        let name = f.name.to_string().to_ascii_lowercase();
        (AGGREGATES.contains(&name.as_str()) && f.over.is_none()).then_some(name)
    })
    .is_some()
}

/// A select item of a SELECT grouped at the proxy: its alias, expression, combined value (for
/// HAVING) and the column of its collation weight (for ORDER BY).
pub(crate) struct GroupedItem<'e> {
    pub alias: Option<String>,
    pub expr: &'e Expr,
    pub value: EvalExpr,
    pub weight: Option<usize>,
}

impl GroupedItem<'_> {
    /// The item `e` names: by alias (a bare identifier) or by being the same expression.
    pub(crate) fn find<'a, 'e>(items: &'a [GroupedItem<'e>], e: &Expr) -> Option<usize> {
        items.iter().position(|i| {
            i.expr == e
                || matches!(e, Expr::Identifier(id)
                    if i.alias.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(&id.value)))
        })
    }
}

/// The stages of a SELECT grouped at the proxy, once its rows carry their partials: sort (group
/// keys, then a DISTINCT aggregate's value), combine, HAVING, project, then ORDER BY (select
/// items, or GROUP BY expressions `group_exprs` names; their values and weights ride along in
/// the projection), LIMIT and dropping those.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grouped_tail(
    query: &Query,
    items: &[GroupedItem<'_>],
    mut output: Vec<engine::OutputColumn>,
    group: Vec<SortKey>,
    group_exprs: &[Expr],
    distinct: Option<SortKey>,
    aggregates: Vec<engine::Aggregate>,
    having: Option<EvalExpr>,
    refuse: &dyn Fn(&str) -> PlanError,
) -> Result<Vec<Stage>, PlanError> {
    let visible = output.len();
    let mut keys = Vec::new();
    for o in order_by(query)? {
        let e = &o.expr;
        let desc = matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
        let item = crate::clauses::position_of(e)
            .map(|p| p - 1)
            .filter(|&p| p < visible)
            .or_else(|| GroupedItem::find(items, e));
        let mut hidden = |c: usize| {
            output.push(engine::OutputColumn::Column(c));
            output.len() - 1
        };
        if let Some(i) = item {
            let weight = items[i].weight.map(&mut hidden);
            keys.push(SortKey {
                column: i,
                weight: weight.into(),
                desc,
            });
            continue;
        }
        // A group key is one value per group: sort by it though it is not shown.
        let k = group_exprs.iter().position(|g| g == e).ok_or_else(|| {
            refuse("an ORDER BY that is neither a select item nor a GROUP BY key")
        })?;
        let column = hidden(group[k].column);
        let weight = group[k].weight.map_column(&mut hidden);
        keys.push(SortKey {
            column,
            weight,
            desc,
        });
    }
    let mut stages = Vec::new();
    let sort: Vec<SortKey> = group.iter().cloned().chain(distinct).collect();
    if !sort.is_empty() {
        stages.push(Stage::MemorySort { keys: sort });
    }
    stages.push(Stage::OrderedAggregate {
        group,
        aggregates,
        rollup: false,
    });
    if let Some(predicate) = having {
        stages.push(Stage::Filter { predicate });
    }
    let hidden = output.len() - visible;
    stages.push(Stage::Projection { columns: output });
    sort_limit_drop(&mut stages, query, keys, hidden)?;
    Ok(stages)
}

/// The sort key that brings a DISTINCT aggregate's equal values together (`Some(None)`: there
/// is none); `None` when DISTINCT aggregates read different expressions (`source` says what a
/// column holds), which no one order can serve.
pub(crate) fn distinct_key<T: PartialEq>(
    aggregates: &[engine::Aggregate],
    source: impl Fn(usize) -> Option<T>,
) -> Option<Option<SortKey>> {
    use engine::AggregateKind;
    let distinct: Vec<(usize, Option<usize>)> = aggregates
        .iter()
        .filter_map(|a| match a.kind {
            AggregateKind::CountDistinct { weight } | AggregateKind::SumDistinct { weight } => {
                Some((a.column, weight))
            }
            _ => None,
        })
        .collect();
    let Some(&(column, weight)) = distinct.first() else {
        return Some(None);
    };
    let first = source(column);
    distinct
        .iter()
        .all(|(c, _)| source(*c) == first)
        .then_some(Some(SortKey {
            column,
            weight: weight.into(),
            desc: false,
        }))
}
