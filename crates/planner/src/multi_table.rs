//! Multi-table UPDATE and DELETE in a sharded keyspace (`UPDATE a JOIN b ON ... SET a.x = ...
//! WHERE ...`, `DELETE a FROM a JOIN b ...`): written as the one-table statement over the
//! target's rows that the join selects, by primary key,
//!
//! ```sql
//! UPDATE a AS a SET <SET as written> WHERE (a.pk) IN (SELECT a.pk FROM <tables> WHERE <where>)
//! ```
//!
//! which is then planned like any: the subquery runs first (a join across shards, or one that
//! each shard answers), and the write goes to the shards of the keys it returns. Each target row
//! changes once, however many rows it joins, as MySQL does; SET may read the target only.

use sqlparser::ast::{
    AssignmentTarget, Delete, Expr, FromTable, ObjectName, TableFactor, TableWithJoins, Update,
    Visit, Visitor,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::ops::ControlFlow;

use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

/// The one-table statement to plan in place of a multi-table UPDATE.
pub(crate) fn update_text(
    update: &Update,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<String, PlanError> {
    let refuse = |what: &str| unsupported(format!("a multi-table UPDATE {what} across shards"));
    if update.from.is_some() || update.returning.is_some() {
        return Err(refuse("with FROM or RETURNING"));
    }
    let tables = tables_of(std::slice::from_ref(&update.table))?;
    // The target: the table every SET column names.
    let mut target: Option<&str> = None;
    for a in &update.assignments {
        let AssignmentTarget::ColumnName(name) = &a.target else {
            return Err(refuse("that sets a tuple"));
        };
        let qualifier = match name.0.as_slice() {
            [q, _] => q.as_ident().map(|i| i.value.as_str()),
            _ => None,
        }
        .ok_or_else(|| refuse("with a SET column not qualified by its table"))?;
        match target {
            Some(t) if !t.eq_ignore_ascii_case(qualifier) => {
                return Err(refuse("that sets columns of several tables"))
            }
            _ => target = Some(qualifier),
        }
    }
    let target = target.ok_or_else(|| refuse("without SET"))?;
    let table = tables
        .iter()
        .find(|t| t.qualifier.eq_ignore_ascii_case(target))
        .ok_or_else(|| {
            refuse(&format!(
                "setting columns of {target}, which it does not join"
            ))
        })?;
    // SET values read the target's row only: they are computed by the one-table UPDATE.
    for a in &update.assignments {
        if let Some(other) = foreign_column(&a.value, &table.qualifier, &tables, ctx)? {
            return Err(refuse(&format!(
                "whose SET reads {other}, another table's column,"
            )));
        }
    }
    let clauses = clauses(source.sql(), Keyword::UPDATE, &[Keyword::SET])?;
    let [(_, refs), (_, set)] = clauses.parts.as_slice() else {
        return Err(refuse("written this way"));
    };
    let first = refs.split_whitespace().next().unwrap_or_default();
    if ["LOW_PRIORITY", "IGNORE"]
        .iter()
        .any(|m| first.eq_ignore_ascii_case(m))
    {
        return Err(refuse("with LOW_PRIORITY or IGNORE"));
    }
    let key = primary_key(table, ctx)?;
    Ok(format!(
        "UPDATE {} AS `{}` SET {set} WHERE {}",
        source_name(table, source)?,
        table.qualifier.replace('`', "``"),
        membership(Some(&table.qualifier), table, &key, refs, clauses.filter)
    ))
}

/// The one-table statement to plan in place of a multi-table DELETE.
pub(crate) fn delete_text(
    delete: &Delete,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<String, PlanError> {
    let refuse = |what: &str| unsupported(format!("a multi-table DELETE {what} across shards"));
    if delete.returning.is_some() || !delete.order_by.is_empty() || delete.limit.is_some() {
        return Err(refuse("with RETURNING, ORDER BY or LIMIT"));
    }
    // `DELETE t FROM <tables>` or `DELETE FROM t USING <tables>`.
    match (&delete.from, &delete.using) {
        (FromTable::WithFromKeyword(from), None) if !delete.tables.is_empty() => {
            delete_from(&delete.tables, from, false, source, ctx)
        }
        (FromTable::WithFromKeyword(from), Some(using)) if delete.tables.is_empty() => {
            let names: Option<Vec<ObjectName>> = from
                .iter()
                .map(|t| match &t.relation {
                    TableFactor::Table { name, .. } if t.joins.is_empty() => Some(name.clone()),
                    _ => None,
                })
                .collect();
            let names = names.ok_or_else(|| refuse("written this way"))?;
            delete_from(&names, using, true, source, ctx)
        }
        _ => Err(refuse("written this way")),
    }
}

fn delete_from(
    targets: &[ObjectName],
    refs: &[TableWithJoins],
    using: bool,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<String, PlanError> {
    let refuse = |what: &str| unsupported(format!("a multi-table DELETE {what} across shards"));
    let [target] = targets else {
        return Err(refuse("from several tables"));
    };
    let target = target
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .ok_or_else(|| refuse("written this way"))?;
    let tables = tables_of(refs)?;
    let table = tables
        .iter()
        .find(|t| t.qualifier.eq_ignore_ascii_case(&target))
        .ok_or_else(|| refuse(&format!("from {target}, which it does not join")))?;
    let keywords: &[Keyword] = if using {
        &[Keyword::FROM, Keyword::USING]
    } else {
        &[Keyword::FROM]
    };
    let clauses = clauses(source.sql(), Keyword::DELETE, keywords)?;
    let Some((_, refs)) = clauses.parts.last() else {
        return Err(refuse("written this way"));
    };
    let key = primary_key(table, ctx)?;
    // A one-table DELETE takes no alias: its key columns go unqualified.
    Ok(format!(
        "DELETE FROM {} WHERE {}",
        source_name(table, source)?,
        membership(None, table, &key, refs, clauses.filter)
    ))
}

/// A table of the statement: its name as written, the name that qualifies its columns.
type Joined<'a> = crate::join::Operand<'a>;

fn tables_of(refs: &[TableWithJoins]) -> Result<Vec<Joined<'_>>, PlanError> {
    let mut out = Vec::new();
    for twj in refs {
        for factor in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            match crate::join::operand(factor) {
                Some(table) => out.push(table),
                None => {
                    return Err(unsupported(
                        "a multi-table UPDATE or DELETE over a derived table or nested join across shards",
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// A column `value` reads that is not the target's: qualified by another table, or unqualified
/// and a column of another table the statement joins.
fn foreign_column(
    value: &Expr,
    target: &str,
    tables: &[Joined<'_>],
    ctx: &Context<'_>,
) -> Result<Option<String>, PlanError> {
    struct Columns(Vec<Vec<String>>);
    impl Visitor for Columns {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(i) => self.0.push(vec![i.value.clone()]),
                Expr::CompoundIdentifier(p) => {
                    self.0.push(p.iter().map(|i| i.value.clone()).collect())
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, _: &sqlparser::ast::Query) -> ControlFlow<()> {
            self.0.push(vec!["(subquery)".into(), String::new()]);
            ControlFlow::Break(())
        }
    }
    let mut columns = Columns(Vec::new());
    let _ = value.visit(&mut columns);
    for parts in columns.0 {
        match parts.as_slice() {
            [q, _] if q.eq_ignore_ascii_case(target) => {}
            [column] => {
                for t in tables
                    .iter()
                    .filter(|t| !t.qualifier.eq_ignore_ascii_case(target))
                {
                    let resolved = crate::tables::resolve(t.name, ctx)?;
                    let listed = ctx
                        .catalog
                        .columns(&resolved.keyspace.name, &resolved.name)?
                        .is_some_and(|c| c.all.iter().any(|x| x.eq_ignore_ascii_case(column)));
                    if listed {
                        return Ok(Some(column.clone()));
                    }
                }
            }
            other => return Ok(Some(other.join("."))),
        }
    }
    Ok(None)
}

/// The target table's primary key columns.
fn primary_key(table: &Joined<'_>, ctx: &Context<'_>) -> Result<Vec<String>, PlanError> {
    let resolved = crate::tables::resolve(table.name, ctx)?;
    let key = ctx
        .catalog
        .columns(&resolved.keyspace.name, &resolved.name)?
        .map(|c| c.primary.clone())
        .unwrap_or_default();
    if key.is_empty() {
        return Err(unsupported(format!(
            "a multi-table UPDATE or DELETE of {}, a table without a primary key, across shards",
            table.qualifier
        )));
    }
    Ok(key)
}

/// The target table's name as the client wrote it.
fn source_name(table: &Joined<'_>, source: &SourceText<'_>) -> Result<String, PlanError> {
    use sqlparser::ast::Spanned;
    source
        .slice(table.name.span())
        .map(str::to_string)
        .ok_or_else(|| unsupported("a multi-table UPDATE or DELETE written this way"))
}

/// `(k1, k2) IN (SELECT t.k1, t.k2 FROM <refs> [WHERE <filter>])`, the outer key columns
/// qualified by `outer` if given.
fn membership(
    outer: Option<&str>,
    table: &Joined<'_>,
    key: &[String],
    refs: &str,
    filter: Option<&str>,
) -> String {
    let quote = |s: &str| format!("`{}`", s.replace('`', "``"));
    let list = |qualifier: Option<&str>| -> Vec<String> {
        key.iter()
            .map(|k| match qualifier {
                Some(q) => format!("{}.{}", quote(q), quote(k)),
                None => quote(k),
            })
            .collect()
    };
    let outer = list(outer);
    let tuple = match outer.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", outer.join(", ")),
    };
    let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    format!(
        "{tuple} IN (SELECT {} FROM {refs}{filter})",
        list(Some(&table.qualifier)).join(", ")
    )
}

/// The statement's text cut at its top-level keywords: after `verb`, each of `keywords` in turn
/// starts a part (the text up to the next), and WHERE starts the filter.
struct Clauses<'s> {
    /// (keyword, text after it), the first one's keyword being the verb.
    parts: Vec<(Keyword, &'s str)>,
    filter: Option<&'s str>,
}

fn clauses<'s>(
    sql: &'s str,
    verb: Keyword,
    keywords: &[Keyword],
) -> Result<Clauses<'s>, PlanError> {
    let refuse = || unsupported("a multi-table UPDATE or DELETE written this way across shards");
    let source = SourceText::new(sql);
    let tokens = Tokenizer::new(&MySqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|_| refuse())?;
    let mut depth = 0i32;
    // (keyword, where its text starts, where the keyword itself starts)
    let mut marks: Vec<(Keyword, usize, usize)> = Vec::new();
    let mut expected = std::iter::once(verb)
        .chain(keywords.iter().copied())
        .peekable();
    let mut filter_at: Option<(usize, usize)> = None;
    for t in &tokens {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.quote_style.is_none() => {
                let range = source.range(t.span).ok_or_else(refuse)?;
                if expected.peek() == Some(&w.keyword) {
                    expected.next();
                    marks.push((w.keyword, range.end, range.start));
                } else if w.keyword == Keyword::WHERE && expected.peek().is_none() {
                    filter_at = Some((range.start, range.end));
                    break;
                }
            }
            _ => {}
        }
    }
    if expected.next().is_some() {
        return Err(refuse());
    }
    let end = sql.trim_end().trim_end_matches(';').trim_end().len();
    let body_end = filter_at.map_or(end, |(start, _)| start);
    let mut parts = Vec::new();
    for (i, (keyword, start, _)) in marks.iter().enumerate() {
        let stop = marks.get(i + 1).map_or(body_end, |(_, _, at)| *at);
        let text = sql[*start..stop].trim();
        parts.push((*keyword, text));
    }
    Ok(Clauses {
        parts,
        filter: filter_at.map(|(_, after)| sql[after..end].trim()),
    })
}
