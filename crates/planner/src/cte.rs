//! Common table expressions over several shards. A non-recursive CTE named once in the query is
//! the derived table its body would be there, so `WITH t AS (body) SELECT ... FROM t` is planned
//! as `SELECT ... FROM (body) AS t`, which the derived-table and join planners know.

use std::ops::ControlFlow;

use sqlparser::ast::{Query, Spanned, TableFactor, Visit, Visitor};

use crate::text::SourceText;

/// The statement's text with its CTEs written in where they are named; `None` when the query
/// has none, or one is recursive, named more (or less) than once, or named by another CTE.
pub(crate) fn inline(query: &Query, source: &SourceText<'_>) -> Option<String> {
    let with = query.with.as_ref()?;
    if with.recursive {
        return None;
    }
    let start = source.range(with.with_token.0.span)?.start;
    let end = source
        .range(with.cte_tables.last()?.closing_paren_token.0.span)?
        .end;
    let mut body = query.clone();
    body.with = None;
    let mut edits = vec![(start..end, String::new())];
    for (i, cte) in with.cte_tables.iter().enumerate() {
        if !cte.alias.columns.is_empty() || cte.materialized.is_some() || cte.from.is_some() {
            return None;
        }
        let name = &cte.alias.name.value;
        // Another CTE naming it would need it inlined there too.
        let elsewhere = with
            .cte_tables
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .any(|(_, other)| Named::find(&other.query, name).is_none_or(|f| !f.is_empty()));
        if elsewhere {
            return None;
        }
        let [(range, aliased)] = Named::find(&body, name)?[..] else {
            return None;
        };
        let text = crate::clauses::query_text(&cte.query, source)?;
        let range = source.range(range)?;
        edits.push((
            range,
            if aliased {
                format!("({text})")
            } else {
                format!("({text}) AS `{}`", name.replace('`', "``"))
            },
        ));
    }
    Some(source.with_edits(edits).trim_start().to_string())
}

/// Where a query names a table `name` (one identifier, as CTEs are named), and whether each
/// has an alias; `None` when a WITH inside the query could define the name again.
struct Named<'n> {
    name: &'n str,
    found: Vec<(sqlparser::tokenizer::Span, bool)>,
}

impl Named<'_> {
    fn find(query: &Query, name: &str) -> Option<Vec<(sqlparser::tokenizer::Span, bool)>> {
        let mut v = Named {
            name,
            found: Vec::new(),
        };
        match query.visit(&mut v) {
            ControlFlow::Continue(()) => Some(v.found),
            ControlFlow::Break(()) => None,
        }
    }
}

impl Visitor for Named<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if query.with.is_some() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name, alias, args, ..
        } = factor
        {
            if let [part] = name.0.as_slice() {
                if part.as_ident().is_some_and(|i| i.value == self.name) && args.is_none() {
                    self.found.push((name.span(), alias.is_some()));
                }
            }
        }
        ControlFlow::Continue(())
    }
}
