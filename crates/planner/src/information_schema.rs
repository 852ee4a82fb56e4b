//! Queries on `information_schema`, answered for the keyspaces as the client sees them.
//!
//! Each keyspace the query asks about is answered by one shard's database (a sharded keyspace's
//! tables are read from one shard: `TABLE_ROWS` and `DATA_LENGTH` are that shard's figures),
//! plus, when it names a keyspace for its unlisted tables, that keyspace's database (its tables
//! the VSchema does not list elsewhere). Each `information_schema` table in the query becomes a
//! derived table of its rows for that one database, with the database's name replaced by the
//! keyspace's wherever a schema column holds it, so rows of the server's other databases never
//! show and the query's own filters see keyspace names. `DATABASE()` is the session's keyspace.
//!
//! The keyspaces are the ones the query names (a string equal to a keyspace's name, or
//! `DATABASE()`), or every keyspace when it names none. When several databases answer, each
//! runs the query and the rows are concatenated, then sorted and limited at the proxy (ORDER BY
//! and LIMIT, by each key's collation weight); a query whose rows combine (DISTINCT, GROUP BY,
//! aggregates, UNION) is refused then (1235), unless its filter on `TABLE_NAME` picks tables of
//! one database only.

use std::ops::ControlFlow;

use engine::{Opcode, Plan, Route};
use sqlparser::ast::{
    BinaryOperator, Expr, ObjectName, Query, SetExpr, Statement, TableAlias, TableFactor, Value,
    VisitMut, VisitorMut,
};
use vschema::Keyspace;

use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

/// The `information_schema` tables with rows per database: their schema column, and the column
/// naming the table a row is about (if rows are about tables).
const SCHEMA_COLUMNS: &[(&str, &str, Option<&str>)] = &[
    ("SCHEMATA", "SCHEMA_NAME", None),
    ("TABLES", "TABLE_SCHEMA", Some("TABLE_NAME")),
    ("COLUMNS", "TABLE_SCHEMA", Some("TABLE_NAME")),
    ("STATISTICS", "TABLE_SCHEMA", Some("TABLE_NAME")),
    ("KEY_COLUMN_USAGE", "TABLE_SCHEMA", Some("TABLE_NAME")),
    (
        "REFERENTIAL_CONSTRAINTS",
        "CONSTRAINT_SCHEMA",
        Some("TABLE_NAME"),
    ),
    ("TABLE_CONSTRAINTS", "TABLE_SCHEMA", Some("TABLE_NAME")),
    // MySQL 8's has no table column.
    ("CHECK_CONSTRAINTS", "CONSTRAINT_SCHEMA", None),
    ("VIEWS", "TABLE_SCHEMA", Some("TABLE_NAME")),
    ("ROUTINES", "ROUTINE_SCHEMA", None),
    ("PARAMETERS", "SPECIFIC_SCHEMA", None),
    ("TRIGGERS", "TRIGGER_SCHEMA", Some("EVENT_OBJECT_TABLE")),
    ("EVENTS", "EVENT_SCHEMA", None),
    ("PARTITIONS", "TABLE_SCHEMA", Some("TABLE_NAME")),
    ("FILES", "TABLE_SCHEMA", None),
    ("COLUMN_PRIVILEGES", "TABLE_SCHEMA", Some("TABLE_NAME")),
    ("TABLE_PRIVILEGES", "TABLE_SCHEMA", Some("TABLE_NAME")),
    ("SCHEMA_PRIVILEGES", "TABLE_SCHEMA", None),
];

/// The catalog's name for the columns of `information_schema`'s own tables.
pub const INFORMATION_SCHEMA: &str = "information_schema";

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
            Some(t) if SCHEMA_COLUMNS.iter().any(|(name, ..)| name == t) => per_database = true,
            Some(t) if SERVER_TABLES.contains(&t.as_str()) => {}
            Some(t) => return Err(unsupported(format!("information_schema.{t}"))),
        }
    }
    let mut query = query.clone();
    crate::clauses::name_items(&mut query, source);
    let _ = query.visit(&mut SessionDatabase(ctx.keyspace));
    if !per_database {
        let keyspace = ctx.default_keyspace()?;
        return Ok(Plan::Route(any_shard(keyspace, query.to_string())));
    }
    let keyspaces = match named_keyspaces(&query, ctx) {
        named if named.is_empty() => ctx.vschema.keyspaces().collect(),
        named => named,
    };
    let bound = body_bound(&query.body);
    let mut databases: Vec<(&Keyspace, Database<'_>)> = Vec::new();
    for keyspace in keyspaces {
        for database in self::databases(keyspace, ctx) {
            if bound
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| database.holds(keyspace, n)))
            {
                databases.push((keyspace, database));
            }
        }
    }
    let routes = |query: &Query| -> Result<Vec<Route>, PlanError> {
        databases
            .iter()
            .map(|(_, database)| {
                let mut narrowed = query.clone();
                let mut narrow = Narrow {
                    database,
                    ctx,
                    failed: None,
                };
                let _ = narrowed.visit(&mut narrow);
                match narrow.failed {
                    Some(e) => Err(e),
                    None => Ok(any_shard(database.runs_in, narrowed.to_string())),
                }
            })
            .collect()
    };
    match databases.len() {
        0 => Err(unsupported("information_schema for no keyspace")),
        1 => Ok(Plan::Route(routes(&query)?.remove(0))),
        _ => match combining(&query) {
            None => Ok(Plan::Concat(routes(&query)?)),
            Some("ORDER BY" | "LIMIT") => {
                let (sorted, stages) = sorted_at_the_proxy(&query)?;
                Ok(Plan::Derived(engine::Derived {
                    inner: Box::new(Plan::Concat(routes(&sorted)?)),
                    stages,
                }))
            }
            Some(what) => Err(unsupported(format!(
                "information_schema over several databases with {what}"
            ))),
        },
    }
}

/// For rows concatenated from several databases, ORDER BY and LIMIT applied at the proxy: the
/// query without them, each sort key and its collation weight added after the select items,
/// and the stages that sort, limit and drop those.
fn sorted_at_the_proxy(query: &Query) -> Result<(Query, Vec<engine::Stage>), PlanError> {
    let mut sorted = query.clone();
    sorted.order_by = None;
    sorted.limit_clause = None;
    let SetExpr::Select(select) = sorted.body.as_mut() else {
        return Err(unsupported(
            "information_schema over several databases with UNION",
        ));
    };
    let items: Vec<(Expr, Option<String>)> = select
        .projection
        .iter()
        .map(|item| match item {
            sqlparser::ast::SelectItem::UnnamedExpr(e) => Ok((e.clone(), None)),
            sqlparser::ast::SelectItem::ExprWithAlias { expr, alias } => {
                Ok((expr.clone(), Some(alias.value.clone())))
            }
            _ => Err(unsupported(
                "information_schema over several databases with * and ORDER BY or LIMIT",
            )),
        })
        .collect::<Result<_, _>>()?;
    let mut keys = Vec::new();
    for by in crate::clauses::order_by(query)? {
        // A position or an alias names a select item; anything else is an expression.
        let expr = match &by.expr {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| items.get(n.checked_sub(1)?))
                    .map(|(e, _)| e.clone())
                    .ok_or_else(|| unsupported(format!("ORDER BY {n}")))?,
                _ => by.expr.clone(),
            },
            Expr::Identifier(i) => items
                .iter()
                .find(|(_, alias)| {
                    alias
                        .as_ref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(&i.value))
                })
                .map_or_else(|| by.expr.clone(), |(e, _)| e.clone()),
            other => other.clone(),
        };
        let column = select.projection.len();
        let weight = crate::clauses::parse_expr(&format!("WEIGHT_STRING({expr})"))
            .ok_or_else(|| unsupported(format!("ORDER BY {expr}")))?;
        select
            .projection
            .push(sqlparser::ast::SelectItem::UnnamedExpr(expr));
        select
            .projection
            .push(sqlparser::ast::SelectItem::UnnamedExpr(weight));
        keys.push(engine::SortKey {
            column,
            weight: engine::Weight::Column(column + 1),
            desc: matches!(by.options.sort, Some(sqlparser::ast::OrderBySort::Desc)),
        });
    }
    let mut stages = Vec::new();
    crate::clauses::sort_limit_drop(&mut stages, query, keys.clone(), 2 * keys.len())?;
    Ok((sorted, stages))
}

fn any_shard(keyspace: &Keyspace, query: String) -> Route {
    Route {
        keyspace: keyspace.name.clone(),
        opcode: if keyspace.sharded {
            Opcode::Reference
        } else {
            Opcode::Unsharded
        },
        query,
        elsewhere: None,
    }
}

/// The keyspaces the query names: strings equal to a keyspace's name (`DATABASE()` is one by
/// now).
fn named_keyspaces<'a>(query: &Query, ctx: &Context<'a>) -> Vec<&'a Keyspace> {
    let mut named: Vec<&'a Keyspace> = Vec::new();
    let vschema: &'a vschema::VSchema = ctx.vschema;
    let _ = sqlparser::ast::visit_expressions(query, |e: &Expr| {
        if let Expr::Value(v) = e {
            if let Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) = &v.value {
                if let Some(k) = vschema.keyspace(s) {
                    if !named.iter().any(|n| n.name == k.name) {
                        named.push(k);
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    named
}

/// One database answering for a keyspace.
struct Database<'a> {
    /// The keyspace whose shard holds it.
    runs_in: &'a Keyspace,
    /// Its name on that shard.
    name: &'a str,
    /// The keyspace its rows are shown under.
    shown_as: &'a str,
    /// For a keyspace's unlisted tables: the tables of the database not shown (those the
    /// VSchema lists); the database's own row, routines and events are not shown either.
    hidden: Option<Vec<&'a str>>,
}

impl Database<'_> {
    /// Whether rows about table `name` of `keyspace` come from this database.
    fn holds(&self, keyspace: &Keyspace, name: &str) -> bool {
        let unlisted = keyspace.unlisted_tables.is_some()
            && keyspace.sharded
            && !keyspace.tables.contains_key(name);
        unlisted == self.hidden.is_some()
    }
}

fn databases<'a>(keyspace: &'a Keyspace, ctx: &Context<'a>) -> Vec<Database<'a>> {
    let mut out = vec![Database {
        runs_in: keyspace,
        name: &keyspace.shards[0].primary.database,
        shown_as: &keyspace.name,
        hidden: None,
    }];
    let vschema: &'a vschema::VSchema = ctx.vschema;
    if let Some(unlisted) = keyspace
        .unlisted_tables
        .as_ref()
        .and_then(|u| vschema.keyspace(u))
    {
        out.push(Database {
            runs_in: unlisted,
            name: &unlisted.shards[0].primary.database,
            shown_as: &keyspace.name,
            hidden: Some(
                unlisted
                    .tables
                    .keys()
                    .chain(keyspace.tables.keys())
                    .map(String::as_str)
                    .collect(),
            ),
        });
    }
    out
}

/// The table names every row of the query is about, when its filter says: `TABLE_NAME = 'x'`
/// or `TABLE_NAME IN (...)` under ANDs, or on every side of an OR.
fn table_bound(filter: &Expr) -> Option<Vec<String>> {
    let is_table_column = |e: &Expr| {
        let name = match e {
            Expr::Identifier(i) => &i.value,
            Expr::CompoundIdentifier(parts) => &parts.last()?.value,
            _ => return None,
        };
        ["TABLE_NAME", "EVENT_OBJECT_TABLE"]
            .iter()
            .any(|c| name.eq_ignore_ascii_case(c))
            .then_some(())
    };
    let string = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    match filter {
        Expr::Nested(e) => table_bound(e),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => table_bound(left).or_else(|| table_bound(right)),
            BinaryOperator::Or => {
                let mut names = table_bound(left)?;
                names.extend(table_bound(right)?);
                Some(names)
            }
            BinaryOperator::Eq => match (is_table_column(left), is_table_column(right)) {
                (Some(()), _) => Some(vec![string(right)?]),
                (_, Some(())) => Some(vec![string(left)?]),
                _ => None,
            },
            _ => None,
        },
        Expr::In {
            expr,
            target: sqlparser::ast::InTarget::List(list),
            negated: false,
            ..
        } => {
            is_table_column(expr)?;
            list.iter().map(string).collect()
        }
        _ => None,
    }
}

/// [`table_bound`] of a query body: of its filter, or of every branch of a UNION.
fn body_bound(body: &SetExpr) -> Option<Vec<String>> {
    match body {
        SetExpr::Select(s) => s.selection.as_ref().and_then(table_bound),
        SetExpr::Query(q) => body_bound(&q.body),
        SetExpr::SetOperation {
            op: sqlparser::ast::SetOperator::Union,
            left,
            right,
            ..
        } => {
            let mut names = body_bound(left)?;
            names.extend(body_bound(right)?);
            Some(names)
        }
        _ => None,
    }
}

/// What makes a query's rows depend on each other, so that concatenating its results from
/// several databases would be wrong.
fn combining(query: &Query) -> Option<&'static str> {
    if query.order_by.is_some() {
        return Some("ORDER BY");
    }
    if query.limit_clause.is_some() {
        return Some("LIMIT");
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Some("UNION");
    };
    if select.distinct.is_some() {
        return Some("DISTINCT");
    }
    if !matches!(&select.group_by, sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty()) {
        return Some("GROUP BY");
    }
    if select.having.is_some() {
        return Some("HAVING");
    }
    crate::aggregates::find_call(&select.projection, |f| {
        let name = f.name.to_string().to_ascii_lowercase();
        crate::aggregates::AGGREGATES
            .contains(&name.as_str())
            .then_some(name)
    })
    .map(|_| "aggregates")
}

/// `DATABASE()` and `SCHEMA()` as the client sees them: the session's keyspace, or NULL.
struct SessionDatabase<'k>(Option<&'k str>);

impl VisitorMut for SessionDatabase<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            let name = f.name.to_string();
            if ["database", "schema"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                *expr = Expr::value(match self.0 {
                    Some(ks) => Value::SingleQuotedString(ks.to_string()),
                    None => Value::Null,
                });
            }
        }
        ControlFlow::Continue(())
    }
}

/// A string literal in SQL text (names never hold backslashes: they would read differently
/// under NO_BACKSLASH_ESCAPES).
fn quoted(text: &str) -> Result<String, PlanError> {
    if text.contains('\\') {
        return Err(unsupported(format!(
            "information_schema for the name {text:?}"
        )));
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

/// Replaces each per-database `information_schema` table with a derived table of its rows for
/// one database, shown under its keyspace's name, under the name the query knows it by.
struct Narrow<'d, 'c> {
    database: &'d Database<'d>,
    ctx: &'d Context<'c>,
    failed: Option<PlanError>,
}

impl Narrow<'_, '_> {
    /// The derived table's query: the rows of `table` (whose schema column is `schema`, whose
    /// table column is `about`) for the database.
    fn rows(&self, table: &str, schema: &str, about: Option<&str>) -> Result<String, PlanError> {
        let db = self.database;
        let name = quoted(db.name)?;
        let columns = if db.name == db.shown_as {
            "*".to_string()
        } else {
            // Every schema column holding the database's name shows the keyspace's instead.
            let shown = quoted(db.shown_as)?;
            let columns = self
                .ctx
                .catalog
                .columns(INFORMATION_SCHEMA, table)?
                .ok_or_else(|| unsupported(format!("information_schema.{table} on this server")))?;
            columns
                .all
                .iter()
                .map(|c| {
                    let c = c.to_ascii_uppercase();
                    if c.ends_with("_SCHEMA") || c == "SCHEMA_NAME" {
                        format!("IF(`{c}` = {name}, {shown}, `{c}`) AS `{c}`")
                    } else {
                        format!("`{c}`")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql =
            format!("SELECT {columns} FROM information_schema.{table} WHERE {schema} = {name}");
        match (&db.hidden, about) {
            (None, _) => {}
            (Some(_), None) => sql.push_str(" AND FALSE"),
            (Some(hidden), Some(about)) if !hidden.is_empty() => {
                let names = hidden
                    .iter()
                    .map(|t| quoted(t))
                    .collect::<Result<Vec<_>, _>>()?;
                sql.push_str(&format!(" AND {about} NOT IN ({})", names.join(", ")));
            }
            (Some(_), Some(_)) => {}
        }
        Ok(sql)
    }
}

impl VisitorMut for Narrow<'_, '_> {
    type Break = ();

    // After the factor's own parts: the derived table put in its place is not visited again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, alias, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let Some(table) = information_schema_table(name) else {
            return ControlFlow::Continue(());
        };
        let Some((_, schema, about)) = SCHEMA_COLUMNS.iter().find(|(t, ..)| *t == table) else {
            return ControlFlow::Continue(());
        };
        let sql = match self.rows(&table, schema, *about) {
            Ok(sql) => sql,
            Err(e) => {
                self.failed = Some(e);
                return ControlFlow::Break(());
            }
        };
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
