//! Queries on `information_schema`, answered for the keyspaces as the client sees them. One
//! shard of the keyspace the query asks about answers it, with each `information_schema` table
//! narrowed to that keyspace (a derived table filtered on its schema column), so rows of the
//! server's other databases never show, whatever the query's own filters. A sharded keyspace's
//! tables are read from one shard: `TABLE_ROWS` and `DATA_LENGTH` are that shard's figures.
//!
//! The keyspace is the one the query names: a string equal to a keyspace's name, or
//! `DATABASE()`. A query over tables with a schema column that names no keyspace, or several,
//! is refused (1235). So is a keyspace whose shards' databases are named otherwise than the
//! keyspace, since the shard would answer under its own name.

use std::ops::ControlFlow;

use engine::{Opcode, Plan, Route};
use sqlparser::ast::{
    Expr, ObjectName, Query, Statement, TableAlias, TableFactor, Value, VisitMut, VisitorMut,
};

use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

/// The `information_schema` tables with rows per database, and their schema column.
const SCHEMA_COLUMNS: &[(&str, &str)] = &[
    ("SCHEMATA", "SCHEMA_NAME"),
    ("TABLES", "TABLE_SCHEMA"),
    ("COLUMNS", "TABLE_SCHEMA"),
    ("STATISTICS", "TABLE_SCHEMA"),
    ("KEY_COLUMN_USAGE", "TABLE_SCHEMA"),
    ("REFERENTIAL_CONSTRAINTS", "CONSTRAINT_SCHEMA"),
    ("TABLE_CONSTRAINTS", "TABLE_SCHEMA"),
    ("CHECK_CONSTRAINTS", "CONSTRAINT_SCHEMA"),
    ("VIEWS", "TABLE_SCHEMA"),
    ("ROUTINES", "ROUTINE_SCHEMA"),
    ("PARAMETERS", "SPECIFIC_SCHEMA"),
    ("TRIGGERS", "TRIGGER_SCHEMA"),
    ("EVENTS", "EVENT_SCHEMA"),
    ("PARTITIONS", "TABLE_SCHEMA"),
    ("FILES", "TABLE_SCHEMA"),
    ("COLUMN_PRIVILEGES", "TABLE_SCHEMA"),
    ("TABLE_PRIVILEGES", "TABLE_SCHEMA"),
    ("SCHEMA_PRIVILEGES", "TABLE_SCHEMA"),
];

/// `information_schema` tables that describe the server, not its databases.
const SERVER_TABLES: &[&str] = &[
    "CHARACTER_SETS",
    "COLLATIONS",
    "COLLATION_CHARACTER_SET_APPLICABILITY",
    "ENGINES",
    "PLUGINS",
    "KEYWORDS",
];

/// The `information_schema` table `name` names, if it does.
fn information_schema_table(name: &ObjectName) -> Option<String> {
    let parts: Vec<&str> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(|i| i.value.as_str()))
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [schema, table] if schema.eq_ignore_ascii_case("information_schema") => {
            Some(table.to_ascii_uppercase())
        }
        _ => None,
    }
}

/// The plan of a query on `information_schema` tables; `None` when it reads none.
pub(crate) fn plan(
    stmt: &Statement,
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<Plan, PlanError>> {
    let mut names = Vec::new();
    let _ = sqlparser::ast::visit_relations(stmt, |name: &ObjectName| {
        names.push(name.clone());
        ControlFlow::<()>::Continue(())
    });
    let tables: Vec<Option<String>> = names.iter().map(information_schema_table).collect();
    if !tables.iter().any(Option::is_some) {
        return None;
    }
    Some(plan_on_shard(query, &tables, source, ctx))
}

fn plan_on_shard(
    query: &Query,
    tables: &[Option<String>],
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    let mut per_database = false;
    for table in tables {
        match table {
            None => {
                return Err(unsupported(
                    "information_schema joined with tables of a keyspace",
                ))
            }
            Some(t) if SCHEMA_COLUMNS.iter().any(|(name, _)| name == t) => per_database = true,
            Some(t) if SERVER_TABLES.contains(&t.as_str()) => {}
            Some(t) => return Err(unsupported(format!("information_schema.{t}"))),
        }
    }
    // The keyspaces the query names: strings equal to a keyspace's name, and DATABASE().
    let mut named: Vec<String> = Vec::new();
    let _ = sqlparser::ast::visit_expressions(query, |e: &Expr| {
        let name = match e {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                    ctx.vschema.keyspace(s).map(|k| k.name.clone())
                }
                _ => None,
            },
            Expr::Function(f)
                if ["database", "schema"]
                    .contains(&f.name.to_string().to_ascii_lowercase().as_str()) =>
            {
                ctx.keyspace.map(str::to_string)
            }
            _ => None,
        };
        if let Some(name) = name.filter(|n| !named.contains(n)) {
            named.push(name);
        }
        ControlFlow::<()>::Continue(())
    });
    let keyspace = match named.as_slice() {
        [one] => ctx
            .vschema
            .keyspace(one)
            .ok_or_else(|| PlanError::UnknownKeyspace(one.clone()))?,
        [] if !per_database => ctx.default_keyspace()?,
        [] => {
            return Err(unsupported(
                "information_schema without a filter on one keyspace (TABLE_SCHEMA = DATABASE() or a keyspace's name)",
            ))
        }
        _ => return Err(unsupported("information_schema over several keyspaces")),
    };
    if let Some(shard) = keyspace
        .shards
        .iter()
        .find(|s| s.primary.database != keyspace.name)
    {
        return Err(unsupported(format!(
            "information_schema for keyspace {} (its shard {} has database {})",
            keyspace.name, shard.name, shard.primary.database
        )));
    }
    let mut query = query.clone();
    crate::clauses::name_items(&mut query, source);
    let _ = query.visit(&mut Narrow {
        database: &keyspace.name,
    });
    Ok(Plan::Route(Route {
        keyspace: keyspace.name.clone(),
        opcode: if keyspace.sharded {
            Opcode::Reference
        } else {
            Opcode::Unsharded
        },
        query: query.to_string(),
        elsewhere: None,
    }))
}

/// Replaces each per-database `information_schema` table with a derived table of its rows for
/// `database`, under the name the query knows it by.
struct Narrow<'d> {
    database: &'d str,
}

impl VisitorMut for Narrow<'_> {
    type Break = ();

    // After the factor's own parts: the derived table put in its place is not visited again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, alias, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let Some(table) = information_schema_table(name) else {
            return ControlFlow::Continue(());
        };
        let Some((_, column)) = SCHEMA_COLUMNS.iter().find(|(t, _)| *t == table) else {
            return ControlFlow::Continue(());
        };
        let sql = format!(
            "SELECT * FROM information_schema.{table} WHERE {column} = '{}'",
            self.database.replace('\'', "''")
        );
        let Ok(subquery) = sqlparser::parser::Parser::new(&sqlparser::dialect::MySqlDialect {})
            .try_with_sql(&sql)
            .and_then(|mut p| p.parse_query())
        else {
            return ControlFlow::Continue(());
        };
        let alias = alias.clone().unwrap_or_else(|| TableAlias {
            explicit: true,
            name: sqlparser::ast::Ident::new(
                name.0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map_or(table.clone(), |i| i.value.clone()),
            ),
            columns: Vec::new(),
            at: None,
        });
        *factor = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(alias),
            sample: None,
        };
        ControlFlow::Continue(())
    }
}
