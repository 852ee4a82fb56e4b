//! Table names → keyspaces and placements.

use std::ops::ControlFlow;

use sqlparser::ast::{visit_relations, ObjectName, Spanned, Statement};
use vschema::{Keyspace, Table};

use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

/// A table reference resolved against the VSchema.
#[derive(Debug, Clone)]
pub(crate) struct Resolved<'a> {
    pub keyspace: &'a Keyspace,
    pub name: String,
    pub table: Table,
    /// Whether the client wrote `keyspace.table`.
    pub qualified: bool,
    pub object: ObjectName,
}

fn ident_parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect()
}

/// Resolves a table name: `ks.t` in keyspace ks; `t` in the session's keyspace, or, with none
/// selected or when the session's sharded keyspace does not list it, in the one keyspace that
/// lists it (Vitess's global routing). A table a sharded keyspace does not list is in the
/// keyspace its `unlisted_tables` names, if it names one.
pub(crate) fn resolve<'a>(name: &ObjectName, ctx: &Context<'a>) -> Result<Resolved<'a>, PlanError> {
    let parts = ident_parts(name).ok_or_else(|| unsupported(format!("table name {name}")))?;
    let (keyspace, table, qualified): (&'a Keyspace, String, bool) = match parts.as_slice() {
        [table] => {
            let keyspace = match ctx.keyspace {
                Some(ks) => {
                    let keyspace = ctx
                        .vschema
                        .keyspace(ks)
                        .ok_or_else(|| PlanError::UnknownKeyspace(ks.to_string()))?;
                    match unlisted(keyspace, table) {
                        true => global(table, ctx)?.unwrap_or(keyspace),
                        false => keyspace,
                    }
                }
                None => global(table, ctx)?.ok_or(PlanError::NoDatabase)?,
            };
            (keyspace, table.clone(), false)
        }
        [ks, table] => {
            if is_system_schema(ks) {
                return Err(unsupported(format!("queries on the {ks} schema")));
            }
            let keyspace = ctx
                .vschema
                .keyspace(ks)
                .ok_or_else(|| PlanError::UnknownKeyspace(ks.clone()))?;
            (keyspace, table.clone(), true)
        }
        _ => return Err(unsupported(format!("table name {name}"))),
    };
    // A sharded keyspace's unlisted tables live in the keyspace it names for them.
    let keyspace = match &keyspace.unlisted_tables {
        Some(target) if unlisted(keyspace, &table) => ctx
            .vschema
            .keyspace(target)
            .ok_or_else(|| PlanError::UnknownKeyspace(target.clone()))?,
        _ => keyspace,
    };
    let placement = match keyspace.table(&table) {
        Some(t) => t.clone(),
        None if !keyspace.sharded => Table::Unsharded,
        None => {
            return Err(PlanError::UnknownTable {
                keyspace: keyspace.name.clone(),
                table,
            })
        }
    };
    Ok(Resolved {
        keyspace,
        name: table,
        table: placement,
        qualified,
        object: name.clone(),
    })
}

/// Whether `table` is one a sharded keyspace's VSchema does not list (an unsharded keyspace
/// holds any table).
fn unlisted(keyspace: &Keyspace, table: &str) -> bool {
    keyspace.sharded && !keyspace.tables.contains_key(table)
}

/// Global routing: the one keyspace whose VSchema lists `table`, if exactly one does.
/// The one keyspace whose VSchema lists `table` (Vitess's global routing); several are an error
/// naming them.
fn global<'a>(table: &str, ctx: &Context<'a>) -> Result<Option<&'a Keyspace>, PlanError> {
    let vschema: &'a vschema::VSchema = ctx.vschema;
    let listing: Vec<&Keyspace> = vschema
        .keyspaces()
        .filter(|k| k.tables.contains_key(table))
        .collect();
    match listing.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        several => Err(PlanError::AmbiguousTable {
            table: table.to_string(),
            keyspaces: several
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

pub(crate) fn is_system_schema(name: &str) -> bool {
    ["information_schema", "mysql", "performance_schema", "sys"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
}

/// Every table the statement reads or writes, in order of appearance, CTE names excluded.
pub(crate) fn relations<'a>(
    stmt: &Statement,
    ctx: &Context<'a>,
    ctes: &[String],
) -> Result<Vec<Resolved<'a>>, PlanError> {
    let mut names = Vec::new();
    let _ = visit_relations(stmt, |name: &ObjectName| {
        names.push(name.clone());
        ControlFlow::<()>::Continue(())
    });
    names
        .iter()
        .filter(|n| {
            let cte = match n.0.as_slice() {
                [part] => part.as_ident().is_some_and(|i| ctes.contains(&i.value)),
                _ => false,
            };
            !is_dual(n) && !cte
        })
        .map(|n| resolve(n, ctx))
        .collect()
}

/// `DUAL`, which names no table (a backquoted `dual` does).
pub(crate) fn is_dual(name: &ObjectName) -> bool {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .is_some_and(|i| i.quote_style.is_none() && i.value.eq_ignore_ascii_case("dual")),
        _ => false,
    }
}

/// A FROM clause of `DUAL` alone.
pub fn from_dual(from: &[sqlparser::ast::TableWithJoins]) -> bool {
    matches!(from, [t] if t.joins.is_empty()
        && matches!(&t.relation, sqlparser::ast::TableFactor::Table { name, .. } if is_dual(name)))
}

/// The one keyspace all tables belong to; a statement spanning keyspaces cannot be sent anywhere.
pub(crate) fn single_keyspace<'a>(
    tables: &[Resolved<'a>],
) -> Result<Option<&'a Keyspace>, PlanError> {
    let mut keyspace: Option<&Keyspace> = None;
    for t in tables {
        match keyspace {
            Some(k) if k.name != t.keyspace.name => {
                return Err(unsupported(format!(
                    "a statement across keyspaces ({} and {})",
                    k.name, t.keyspace.name
                )))
            }
            _ => keyspace = Some(t.keyspace),
        }
    }
    Ok(keyspace)
}

/// The statement text to send to a shard: the client's text, with `keyspace.` qualifiers removed
/// from table names (a shard's database need not be named like its keyspace).
pub(crate) fn shard_text(
    source: &SourceText<'_>,
    tables: &[Resolved<'_>],
) -> Result<String, PlanError> {
    let mut edits = Vec::new();
    for t in tables.iter().filter(|t| t.qualified) {
        let last = t.object.0.last().expect("qualified names have two parts");
        let (Some(range), Some(table_text)) =
            (source.range(t.object.span()), source.slice(last.span()))
        else {
            return Err(unsupported(format!(
                "rewriting the qualified table name {}",
                t.object
            )));
        };
        if !edits
            .iter()
            .any(|(r, _): &(std::ops::Range<usize>, String)| r == &range)
        {
            edits.push((range, table_text.to_string()));
        }
    }
    Ok(if edits.is_empty() {
        source.sql().to_string()
    } else {
        source.with_edits(edits)
    })
}
