//! Unqualified column names in a statement over several tables, qualified with their tables.
//! The join planner splits a statement by table and must know whose each column is; MySQL knows
//! from the tables' definitions, so this asks the shards for them ([`Catalog`]) and rewrites
//! `name` as `` `c`.name `` before planning again. Column titles stay as the client would see
//! them: a select item that was an expression gets its text as its alias.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use sqlparser::ast::{
    Expr, GroupByExpr, JoinConstraint, JoinOperator, ObjectName, OrderByKind, Query, Select,
    SelectItem, SetExpr, TableFactor, Visit, Visitor,
};

use crate::tables::resolve;
use crate::text::SourceText;
use crate::{Context, PlanError};

/// Column lists older than this are asked for again: a column added or dropped behind the
/// proxy's back changes which table a name belongs to.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// The columns of each keyspace's tables, as a shard of the keyspace lists them.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    keyspaces: HashMap<String, KeyspaceColumns>,
}

#[derive(Debug, Clone)]
struct KeyspaceColumns {
    loaded: Instant,
    /// Lower-cased table name → its columns.
    tables: HashMap<String, TableColumns>,
}

/// A table's column names, lower-cased, in table order.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableColumns {
    /// Every column, for resolving names.
    pub all: Vec<String>,
    /// The columns a row of `INSERT ... VALUES` without a column list fills (not MariaDB's
    /// INVISIBLE ones).
    pub row: Vec<String>,
    /// The primary key's columns (none: the table has none).
    pub primary: Vec<String>,
    /// How each of `all` orders.
    pub order: Vec<KeyOrder>,
}

/// How the proxy can order a column's values when merging shards' rows, by the column's type
/// and collation in the catalog (a result's metadata names neither the collation nor, for
/// MariaDB, anything but the connection's character set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyOrder {
    /// Not known here: the shards send collation weights.
    #[default]
    Unknown,
    /// Numbers, temporals and binary strings, which the engine orders by the result's type.
    Typed,
    /// Text in a collation the engine weighs itself.
    Collated(engine::Collation),
}

impl KeyOrder {
    /// From `information_schema.COLUMNS`' DATA_TYPE and COLLATION_NAME.
    pub fn of(data_type: &str, collation: Option<&str>) -> Self {
        const TYPED: &[&str] = &[
            "tinyint",
            "smallint",
            "mediumint",
            "int",
            "bigint",
            "decimal",
            "float",
            "double",
            "year",
            "date",
            "datetime",
            "timestamp",
            "time",
            "binary",
            "varbinary",
            "tinyblob",
            "blob",
            "mediumblob",
            "longblob",
        ];
        let data_type = data_type.to_ascii_lowercase();
        match collation {
            None if TYPED.contains(&data_type.as_str()) => KeyOrder::Typed,
            Some(name)
                if matches!(
                    data_type.as_str(),
                    "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
                ) =>
            {
                engine::Collation::named(name).map_or(KeyOrder::Unknown, KeyOrder::Collated)
            }
            _ => KeyOrder::Unknown,
        }
    }
}

/// A column as a shard lists it.
#[derive(Debug, Clone)]
pub struct CatalogColumn {
    pub table: String,
    pub column: String,
    /// MariaDB's INVISIBLE: left out of `SELECT *` and of a column-less INSERT.
    pub invisible: bool,
    /// Part of the primary key (listed in key order).
    pub primary: bool,
    pub order: KeyOrder,
}

impl CatalogColumn {
    /// A visible column outside the primary key, of a type not known here.
    pub fn plain(table: &str, column: &str) -> Self {
        CatalogColumn {
            table: table.to_string(),
            column: column.to_string(),
            invisible: false,
            primary: false,
            order: KeyOrder::Unknown,
        }
    }
}

impl TableColumns {
    /// `row`, each name quoted, for a statement's text.
    pub fn quoted_row(&self) -> Vec<String> {
        self.row
            .iter()
            .map(|c| format!("`{}`", c.replace('`', "``")))
            .collect()
    }
}

impl Catalog {
    /// A copy with `keyspace`'s columns replaced by `columns` (each table's in their order in
    /// the table).
    pub fn with_keyspace(
        &self,
        keyspace: &str,
        columns: impl IntoIterator<Item = CatalogColumn>,
    ) -> Catalog {
        let mut tables: HashMap<String, TableColumns> = HashMap::new();
        for c in columns {
            let entry = tables.entry(c.table.to_lowercase()).or_default();
            let column = c.column.to_lowercase();
            if !c.invisible {
                entry.row.push(column.clone());
            }
            if c.primary {
                entry.primary.push(column.clone());
            }
            entry.all.push(column);
            entry.order.push(c.order);
        }
        let mut next = self.clone();
        next.keyspaces.insert(
            keyspace.to_string(),
            KeyspaceColumns {
                loaded: Instant::now(),
                tables,
            },
        );
        next
    }

    /// A copy without `keyspace`'s columns (after DDL on it), if it had them.
    pub fn without_keyspace(&self, keyspace: &str) -> Option<Catalog> {
        let mut next = self.clone();
        next.keyspaces.remove(keyspace)?;
        Some(next)
    }

    /// A table's columns; [`PlanError::NeedColumns`] when the keyspace's are not loaded (or
    /// stale), `None` for a table the shard did not list.
    pub(crate) fn columns(
        &self,
        keyspace: &str,
        table: &str,
    ) -> Result<Option<&TableColumns>, PlanError> {
        match self.keyspaces.get(keyspace) {
            Some(k) if k.loaded.elapsed() < STALE_AFTER => Ok(k.tables.get(&table.to_lowercase())),
            _ => Err(PlanError::NeedColumns(keyspace.to_string())),
        }
    }
}

/// The catalog's columns of a SELECT's FROM tables: how a merge of its rows can order them.
#[derive(Default)]
pub(crate) struct FromColumns<'a> {
    /// Each plain table the catalog lists: the name that qualifies its columns (lower-cased),
    /// and its columns.
    tables: Vec<(String, &'a TableColumns)>,
    /// Every FROM item is one of `tables`: a bare name that none of them has belongs to no
    /// other source.
    complete: bool,
}

impl<'a> FromColumns<'a> {
    /// [`PlanError::NeedColumns`] when a table's keyspace has no columns loaded.
    pub(crate) fn of(select: &Select, ctx: &Context<'a>) -> Result<Self, PlanError> {
        let mut from = FromColumns {
            tables: Vec::new(),
            complete: true,
        };
        let factors = select.from.iter().flat_map(|twj| {
            std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation))
        });
        for factor in factors {
            let found = match factor {
                TableFactor::Table {
                    name,
                    alias,
                    args: None,
                    ..
                } => table_columns(name, ctx)?.map(|(table, columns)| {
                    let qualifier = alias.as_ref().map_or(table, |a| a.name.value.clone());
                    (qualifier.to_lowercase(), columns)
                }),
                _ => None,
            };
            match found {
                Some(table) => from.tables.push(table),
                None => from.complete = false,
            }
        }
        Ok(from)
    }

    /// How the value of `text` orders when it names one column of these tables (`c` or
    /// `t.c`); [`KeyOrder::Unknown`] for anything else.
    pub(crate) fn order(&self, text: &str) -> KeyOrder {
        let (qualifier, name) = match crate::clauses::parse_expr(text) {
            Some(Expr::Identifier(c)) if self.complete => (None, c.value),
            Some(Expr::CompoundIdentifier(mut parts)) if parts.len() == 2 => {
                let c = parts.pop().expect("two parts").value;
                (Some(parts.pop().expect("two parts").value), c)
            }
            _ => return KeyOrder::Unknown,
        };
        let name = name.to_lowercase();
        let mut found = self
            .tables
            .iter()
            .filter(|(q, _)| qualifier.as_ref().is_none_or(|x| x.eq_ignore_ascii_case(q)))
            .filter_map(|(_, columns)| {
                let i = columns.all.iter().position(|c| *c == name)?;
                columns.order.get(i).copied()
            });
        match (found.next(), found.next()) {
            (Some(order), None) => order,
            _ => KeyOrder::Unknown,
        }
    }
}

/// The statement's text with its unqualified columns qualified; `None` when there is nothing
/// to qualify, or the statement is not a SELECT over plain tables joined with ON (or listed in
/// FROM) whose columns are known. Names of several tables are ambiguous (1052), as in MySQL.
pub(crate) fn qualify(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<String, PlanError>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    // The FROM clause's tables, each with the name that qualifies its columns.
    let mut factors = Vec::new();
    let mut on = Vec::new();
    for twj in &select.from {
        factors.push(&twj.relation);
        for j in &twj.joins {
            factors.push(&j.relation);
            match &j.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::CrossJoin(c) => match c {
                    JoinConstraint::On(e) => on.push(e),
                    JoinConstraint::None => {}
                    // USING and NATURAL make the shared names unambiguous.
                    _ => return None,
                },
                _ => return None,
            }
        }
    }
    let aliases: Vec<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
            _ => None,
        })
        .collect();
    if factors.len() < 2 || !has_bare_names(query, &on, &aliases) {
        return None;
    }
    let mut tables = Vec::new();
    for factor in factors {
        let TableFactor::Table {
            name, alias, args, ..
        } = factor
        else {
            return None;
        };
        if args.is_some() {
            return None;
        }
        let (table, columns) = match table_columns(name, ctx) {
            Ok(found) => found?,
            Err(e) => return Some(Err(e)),
        };
        let qualifier = alias.as_ref().map_or(table, |a| a.name.value.clone());
        tables.push((qualifier, columns.all.as_slice()));
    }
    let scope = Scope {
        tables,
        aliases,
        source,
    };
    let edits = (|| -> Result<Vec<Edit>, PlanError> {
        let mut edits = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let qualified = scope.edits(e, "field list", false)?;
                    // An expression's column title is its text: kept as its alias.
                    if !qualified.is_empty() && !matches!(e, Expr::Identifier(_)) {
                        let range = crate::clauses::expr_range(e, source).ok_or_else(|| {
                            crate::unsupported(format!("the column title of {e} in a join"))
                        })?;
                        let title = &source.sql()[range.clone()];
                        edits.push((
                            range.end..range.end,
                            format!(" AS `{}`", title.replace('`', "``")),
                        ));
                    }
                    edits.extend(qualified);
                }
                SelectItem::ExprWithAlias { expr, .. } => {
                    edits.extend(scope.edits(expr, "field list", false)?);
                }
                _ => {}
            }
        }
        for e in on {
            edits.extend(scope.edits(e, "on clause", false)?);
        }
        if let Some(e) = &select.selection {
            edits.extend(scope.edits(e, "where clause", false)?);
        }
        if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
            for e in exprs {
                edits.extend(scope.edits(e, "group statement", true)?);
            }
        }
        if let Some(e) = &select.having {
            edits.extend(scope.edits(e, "having clause", true)?);
        }
        if let Some(order) = &query.order_by {
            if let OrderByKind::Expressions(exprs) = &order.kind {
                for o in exprs {
                    edits.extend(scope.edits(&o.expr, "order clause", true)?);
                }
            }
        }
        Ok(edits)
    })();
    match edits {
        Ok(edits) if edits.is_empty() => None,
        Ok(edits) => Some(Ok(source.with_edits(edits))),
        Err(e) => Some(Err(e)),
    }
}

type Edit = (std::ops::Range<usize>, String);

/// A FROM table's name and its columns; `None` for a table the VSchema or its shard does not
/// know.
fn table_columns<'a>(
    name: &ObjectName,
    ctx: &Context<'a>,
) -> Result<Option<(String, &'a TableColumns)>, PlanError> {
    let Ok(resolved) = resolve(name, ctx) else {
        return Ok(None);
    };
    let columns = ctx
        .catalog
        .columns(&resolved.keyspace.name, &resolved.name)?;
    Ok(columns.map(|c| (resolved.name, c)))
}

/// The statement's text with each derived table of its FROM clause that is `SELECT * FROM table
/// ...` given the table's columns instead of `*` (the columns `*` stands for: the visible ones,
/// in table order), so that the outer query can name them; `None` when there is none.
pub(crate) fn expand_derived_stars(
    query: &Query,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Option<Result<String, PlanError>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let mut edits = Vec::new();
    let factors = select.from.iter().flat_map(|twj| {
        std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation))
    });
    for factor in factors {
        let TableFactor::Derived { subquery, .. } = factor else {
            continue;
        };
        let SetExpr::Select(inner) = subquery.body.as_ref() else {
            continue;
        };
        let ([SelectItem::Wildcard(star)], [from]) =
            (inner.projection.as_slice(), inner.from.as_slice())
        else {
            continue;
        };
        let TableFactor::Table {
            name, args: None, ..
        } = &from.relation
        else {
            continue;
        };
        if !from.joins.is_empty() || star.opt_exclude.is_some() || star.opt_except.is_some() {
            continue;
        }
        let columns = match table_columns(name, ctx) {
            Ok(Some((_, columns))) => columns,
            Ok(None) => continue,
            Err(e) => return Some(Err(e)),
        };
        let Some(range) = source.range(star.wildcard_token.0.span) else {
            continue;
        };
        let list = columns.quoted_row().join(", ");
        edits.push((range, list));
    }
    (!edits.is_empty()).then(|| Ok(source.with_edits(edits)))
}

/// Whether the statement's own clauses name any column without its table (other than select
/// items' aliases).
fn has_bare_names(query: &Query, on: &[&Expr], aliases: &[String]) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let mut found = Unqualified::default();
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            let _ = e.visit(&mut found);
        }
    }
    for e in on.iter().copied().chain(&select.selection) {
        let _ = e.visit(&mut found);
    }
    if !found.idents.is_empty() {
        return true;
    }
    let _ = select.having.as_ref().map(|e| e.visit(&mut found));
    if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
        for e in exprs {
            let _ = e.visit(&mut found);
        }
    }
    if let Some(OrderByKind::Expressions(exprs)) = query.order_by.as_ref().map(|o| &o.kind) {
        for o in exprs {
            let _ = o.expr.visit(&mut found);
        }
    }
    found
        .idents
        .iter()
        .any(|i| !aliases.contains(&i.value.to_lowercase()))
}

/// The tables a statement reads, by the names that qualify their columns.
struct Scope<'s, 'c> {
    tables: Vec<(String, &'c [String])>,
    /// The select items' aliases (lower-cased), which GROUP BY, HAVING and ORDER BY may name.
    aliases: Vec<String>,
    source: &'s SourceText<'s>,
}

impl Scope<'_, '_> {
    /// The insertions that qualify the bare column names of `expr`, in `clause` (for MySQL's
    /// message); names that are aliases where `aliases_count`, or no table's, are left alone.
    fn edits(
        &self,
        expr: &Expr,
        clause: &str,
        aliases_count: bool,
    ) -> Result<Vec<Edit>, PlanError> {
        let mut found = Unqualified::default();
        let _ = expr.visit(&mut found);
        let mut edits = Vec::new();
        for ident in found.idents {
            let name = ident.value.to_lowercase();
            if aliases_count && self.aliases.contains(&name) {
                continue;
            }
            let mut owners = self
                .tables
                .iter()
                .filter(|(_, columns)| columns.contains(&name));
            let Some((qualifier, _)) = owners.next() else {
                // Not a column of these tables: left for the planner to refuse.
                continue;
            };
            if owners.next().is_some() {
                return Err(PlanError::AmbiguousColumn {
                    column: ident.value.clone(),
                    clause: clause.to_string(),
                });
            }
            if let Some(at) = self.source.range(ident.span).map(|r| r.start) {
                edits.push((at..at, format!("`{}`.", qualifier.replace('`', "``"))));
            }
        }
        Ok(edits)
    }
}

/// The bare identifiers of an expression, outside its subqueries (which have scopes of their
/// own).
#[derive(Default)]
struct Unqualified {
    idents: Vec<sqlparser::ast::Ident>,
    depth: usize,
}

impl Visitor for Unqualified {
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
        if let (0, Expr::Identifier(ident)) = (self.depth, expr) {
            self.idents.push(ident.clone());
        }
        ControlFlow::Continue(())
    }
}
