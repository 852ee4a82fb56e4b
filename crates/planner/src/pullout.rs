//! Uncorrelated subqueries that cannot run inside their statement (their rows are on other shards
//! or in another keyspace) run first, on their own: `IN (...)`, `EXISTS (...)` and scalar
//! subqueries of the top-level SELECT's select list, WHERE and HAVING. Their results are spliced
//! into the statement as literals at execution time (see [`engine::PullOut`]), and the statement
//! is then planned with them, so an `IN` list that feeds a vindex column routes by its values.

use std::ops::ControlFlow;

use engine::{Hole, Plan, PullOut, Pulled, PulledKind, SqlTemplate};
use sqlparser::ast::{
    Expr, InTarget, ObjectName, Query, SelectItem, SetExpr, Spanned, TableFactor, Visit, Visitor,
};
use sqlparser::tokenizer::Span;
use vschema::Table;

use crate::tables::resolve;
use crate::text::SourceText;
use crate::{Context, PlanError};

/// A subquery to run first: how its rows become SQL, its text's byte range (inside its
/// parentheses), and for an unaliased select item, the column name MySQL would give it.
struct Found {
    kind: PulledKind,
    range: std::ops::Range<usize>,
    name: Option<(usize, String)>,
}

/// The statement with its uncorrelated subqueries over sharded tables pulled out, or `None` when
/// it has none (the caller's reason to refuse it stands).
pub(crate) fn plan_pull_out(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<Plan, PlanError>> {
    let found = match find(query, source, ctx)? {
        Ok(found) => found,
        Err(e) => return Some(Err(e)),
    };
    Some(build(&found, source, ctx))
}

/// The statement as it will be once its pulled-out subqueries returned no rows: what a shard can
/// describe (COM_STMT_PREPARE) before the values are known.
pub(crate) fn stand_in(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<String> {
    let found = find(query, source, ctx)?.ok()?;
    Some(source.with_edits(stand_ins(&found)))
}

fn find(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<Vec<Found>, PlanError>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let unnamed: Vec<Span> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(Expr::Subquery(q)) => Some(q.span()),
            _ => None,
        })
        .collect();
    // A select item that is a subquery shows its value as it is.
    let items = select.projection.iter().filter_map(|item| match item {
        SelectItem::UnnamedExpr(Expr::Subquery(q))
        | SelectItem::ExprWithAlias {
            expr: Expr::Subquery(q),
            ..
        } => Some(q.span()),
        _ => None,
    });
    let compared = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        })
        .chain(&select.selection)
        .chain(&select.having)
        .flat_map(crate::clauses::compared_operands);
    let mut visitor = Subqueries {
        depth: 0,
        found: Vec::new(),
        as_shown: items.chain(compared).collect(),
    };
    let _ = select.projection.visit(&mut visitor);
    let _ = select.selection.visit(&mut visitor);
    let _ = select.having.visit(&mut visitor);
    located(visitor, &unnamed, source, ctx)
}

/// An UPDATE or DELETE with its uncorrelated subqueries over sharded (or unsharded) rows in
/// `exprs` (its WHERE, its SET values) pulled out, as for a SELECT; `None` when it has none.
/// They run before the write, as MariaDB runs a subquery on the written table itself.
pub(crate) fn plan_write_pull_out(
    exprs: &[&Expr],
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<Plan, PlanError>> {
    let mut visitor = Subqueries {
        depth: 0,
        found: Vec::new(),
        as_shown: exprs
            .iter()
            .flat_map(|e| crate::clauses::compared_operands(e))
            .collect(),
    };
    for e in exprs {
        let _ = e.visit(&mut visitor);
    }
    let found = match located(visitor, &[], source, ctx)? {
        Ok(found) => found,
        Err(e) => return Some(Err(e)),
    };
    Some(build(&found, source, ctx))
}

/// The subqueries to pull out, located in the client's text; `unnamed` are the spans of those
/// that are select items without an alias.
fn located(
    visitor: Subqueries,
    unnamed: &[Span],
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<Vec<Found>, PlanError>> {
    let pulled: Vec<(PulledKind, Query)> = visitor
        .found
        .into_iter()
        .filter(|(_, q)| reads_placed_rows(q, ctx) && !is_correlated(q))
        .collect();
    if pulled.is_empty() {
        return None;
    }
    // MariaDB carries a quotient on with more digits than it shows (`(SELECT AVG(x) ...) * 2`
    // uses 9 decimals of the average); the value spliced in has only the shown ones.
    if let Some((_, q)) = pulled.iter().find(|(kind, q)| {
        *kind == PulledKind::Scalar && !visitor.as_shown.contains(&q.span()) && has_quotient(q)
    }) {
        return Some(Err(crate::unsupported(format!(
            "arithmetic or a function over the quotient (AVG or /) of a subquery that runs \
             first, ({q})"
        ))));
    }
    let sql = source.sql();
    let mut found = Vec::with_capacity(pulled.len());
    for (kind, q) in &pulled {
        let Some(range) = source
            .range(q.span())
            .and_then(|r| crate::text::up_to_close(sql, r.start))
        else {
            return Some(Err(crate::unsupported(
                "a subquery whose text cannot be located",
            )));
        };
        // A select item `(SELECT ...)` is named by its text, parentheses included.
        let name = unnamed.contains(&q.span()).then(|| {
            let open = sql[..range.start].trim_end().len().saturating_sub(1);
            (range.end + 1, sql[open..range.end + 1].to_string())
        });
        found.push(Found {
            kind: *kind,
            range,
            name,
        });
    }
    Some(Ok(found))
}

fn build(found: &[Found], source: &SourceText<'_>, ctx: &Context<'_>) -> Result<Plan, PlanError> {
    let mut subqueries = Vec::with_capacity(found.len());
    // The client's text with a hole for each subquery, and a name for each select item that
    // is one (MySQL names it by its text).
    let mut edits: Vec<(std::ops::Range<usize>, Result<Hole, String>)> =
        Vec::with_capacity(found.len());
    for (i, f) in found.iter().enumerate() {
        let plan = crate::plan_text(&source.sql()[f.range.clone()], ctx)?;
        if matches!(plan, Plan::PullOut(_)) {
            return Err(crate::unsupported(
                "a subquery that runs first inside another one",
            ));
        }
        subqueries.push(Pulled { plan, kind: f.kind });
        edits.push((f.range.clone(), Ok(Hole::Subquery(i))));
        if let Some((at, name)) = &f.name {
            edits.push((*at..*at, Err(format!(" AS `{}`", name.replace('`', "``")))));
        }
    }
    edits.sort_by_key(|(range, _)| range.start);
    let sql = source.sql();
    let mut template = SqlTemplate::default();
    let mut at = 0;
    for (range, edit) in edits {
        template.push_str(&sql[at..range.start]);
        match edit {
            Ok(hole) => template.push_hole(hole),
            Err(text) => template.push_str(&text),
        }
        at = range.end;
    }
    template.push_str(&sql[at..]);
    // The statement must be plannable once the values are in: check it with empty results.
    crate::plan_text(&source.with_edits(stand_ins(found)), ctx)?;
    Ok(Plan::PullOut(PullOut {
        subqueries,
        template,
    }))
}

fn stand_ins(found: &[Found]) -> Vec<(std::ops::Range<usize>, String)> {
    found
        .iter()
        .map(|f| {
            let text = match f.kind {
                PulledKind::Scalar => "NULL",
                _ => engine::NO_ROWS,
            };
            (f.range.clone(), text.to_string())
        })
        .collect()
}

/// The subqueries directly in an expression (not those nested in them).
struct Subqueries {
    depth: usize,
    found: Vec<(PulledKind, Query)>,
    /// Scalar subqueries whose value is used as it is shown: compared, or a select item.
    as_shown: Vec<Span>,
}

impl Visitor for Subqueries {
    type Break = ();

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            let found = match expr {
                Expr::In {
                    target: InTarget::Subquery(q),
                    ..
                } => Some((PulledKind::In, q)),
                Expr::Exists { subquery, .. } => Some((PulledKind::Exists, subquery)),
                Expr::Subquery(q) => Some((PulledKind::Scalar, q)),
                _ => None,
            };
            if let Some((kind, q)) = found {
                self.found.push((kind, q.as_ref().clone()));
            }
        }
        ControlFlow::Continue(())
    }
}

/// Whether a subquery reads a table that is not everywhere: a sharded table, or one of an
/// unsharded keyspace (maybe not the statement's).
fn reads_placed_rows(query: &Query, ctx: &Context<'_>) -> bool {
    let mut placed = false;
    let _ = sqlparser::ast::visit_relations(query, |name: &ObjectName| {
        if let Ok(t) = resolve(name, ctx) {
            placed |= !matches!(t.table, Table::Reference);
        }
        ControlFlow::<()>::Continue(())
    });
    placed
}

/// Whether a qualified column names a table the subquery does not define (an outer one). An
/// unqualified outer column cannot be told from the subquery's own: run alone, the shard refuses
/// it as an unknown column, an error rather than a wrong answer.
fn is_correlated(query: &Query) -> bool {
    struct Names {
        defined: Vec<String>,
        used: Vec<String>,
    }
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            match factor {
                TableFactor::Table { name, alias, .. } => {
                    if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                        self.defined.push(last.value.clone());
                    }
                    if let Some(a) = alias {
                        self.defined.push(a.name.value.clone());
                    }
                }
                TableFactor::Derived { alias: Some(a), .. }
                | TableFactor::NestedJoin { alias: Some(a), .. } => {
                    self.defined.push(a.name.value.clone())
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            for cte in q.with.iter().flat_map(|w| &w.cte_tables) {
                self.defined.push(cte.alias.name.value.clone());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = expr {
                if parts.len() >= 2 {
                    self.used.push(parts[parts.len() - 2].value.clone());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names {
        defined: Vec::new(),
        used: Vec::new(),
    };
    let _ = query.visit(&mut names);
    names
        .used
        .iter()
        .any(|u| !names.defined.iter().any(|d| d == u))
}

/// Whether a subquery's select list divides (`/`, AVG): its value may have hidden digits.
fn has_quotient(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return true;
    };
    select.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            crate::clauses::carries_quotient(e)
        }
        _ => false,
    })
}
