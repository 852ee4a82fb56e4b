//! INSERT, UPDATE and DELETE.

use engine::{
    Generate, Hole, Insert as InsertPlan, InsertRow, NewLookupValue, Opcode, OwnedLookup,
    OwnedWrite, Plan, Route, Send, SendKind, SqlTemplate,
};
use sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, Expr, FromTable, Insert, OnInsert, OrderByExpr, SetExpr,
    Spanned, Statement, TableFactor, Update, Value,
};
use vschema::{AutoIncrement, KeyValue, LookupColumn, Table};

use crate::routing::{literal, opcode_for, Target};
use crate::tables::{relations, shard_text, single_keyspace, Resolved};
use crate::text::{split_values, values_rows, SourceText};
use crate::{unsupported, Context, PlanError};

pub(crate) fn plan_insert(
    stmt: &Statement,
    insert: &Insert,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    let tables = relations(stmt, ctx, &[])?;
    let target = tables
        .first()
        .ok_or_else(|| unsupported("INSERT without a table"))?;
    let from_query = !matches!(
        insert.source.as_ref().map(|q| q.body.as_ref()),
        Some(SetExpr::Values(_)) | None
    );
    // Into a sharded table, the SELECT runs on its own: it may read any keyspace.
    if from_query && matches!(target.table, Table::Sharded { .. }) {
        return insert_select(insert, target, source, ctx);
    }
    let keyspace =
        single_keyspace(&tables)?.ok_or_else(|| unsupported("INSERT without a table"))?;
    let text = shard_text(source, &tables)?;
    let (column, vindex, auto_increment, lookups) = match &target.table {
        Table::Unsharded | Table::Sequence => {
            return Ok(Plan::Route(Route {
                keyspace: keyspace.name.clone(),
                opcode: Opcode::Unsharded,
                query: text,
                elsewhere: None,
            }))
        }
        Table::Reference if tables.len() == 1 => {
            return Ok(Plan::Send(Send {
                keyspace: keyspace.name.clone(),
                query: text,
                kind: SendKind::Write,
            }))
        }
        Table::Reference => return Err(unsupported("INSERT ... SELECT into a reference table")),
        Table::Sharded {
            vindex,
            auto_increment,
            lookups,
            ..
        } => (
            target.table.vindex_columns(),
            vindex,
            auto_increment,
            lookups,
        ),
    };
    if !insert.assignments.is_empty() {
        return crate::plan_text(&set_as_values(insert, source)?, ctx);
    }
    // The lookups an insert writes, and those it checks (a table that does not own them).
    let used: Vec<&LookupColumn> = lookups
        .iter()
        .filter(|l| l.owned || !(l.vindex.no_verify || l.vindex.write_only))
        .collect();
    let owns = used.iter().any(|l| l.owned);
    let Some(SetExpr::Values(values)) = insert.source.as_ref().map(|q| q.body.as_ref()) else {
        return Err(unsupported("this INSERT into a sharded table"));
    };
    let mut columns = column_list(insert, target, ctx)?;
    let given = columns.len();
    let find = |name: &str, columns: &[String]| {
        columns
            .iter()
            .position(|c| c.trim_matches('`').eq_ignore_ascii_case(name))
    };
    // The AUTO_INCREMENT column, appended when the client left it out.
    let generate = match auto_increment {
        None => None,
        Some(ai) => {
            let (position, appended) = match find(&ai.column, &columns) {
                Some(p) => (p, false),
                None => {
                    columns.push(ai.column.clone());
                    (columns.len() - 1, true)
                }
            };
            Some((ai, position, appended))
        }
    };
    let positions = column
        .iter()
        .map(|c| {
            find(c, &columns).ok_or_else(|| PlanError::MissingVindexColumn {
                table: target.name.clone(),
                column: c.to_string(),
            })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let position = positions[0];
    if owns && (insert.ignore || insert.replace_into || insert.on.is_some()) {
        return Err(unsupported(format!(
            "INSERT IGNORE, REPLACE or ON DUPLICATE KEY UPDATE into {}, which owns lookup vindexes",
            target.name
        )));
    }
    // Each owned lookup's columns' positions in the row (None: not given, so NULL).
    let lookup_positions: Vec<Vec<Option<usize>>> = used
        .iter()
        .map(|l| l.columns.iter().map(|c| find(c, &columns)).collect())
        .collect();
    match &insert.on {
        Some(OnInsert::DuplicateKeyUpdate(assignments))
            if column.iter().any(|c| assigns_column(assignments, c)) =>
        {
            return Err(unsupported(format!(
                "ON DUPLICATE KEY UPDATE that changes the primary vindex column {}",
                column.join(", ")
            )));
        }
        Some(OnInsert::OnConflict(_)) => return Err(unsupported("INSERT ... ON CONFLICT")),
        _ => {}
    }
    let (row_ranges, rest) = values_rows(source)
        .filter(|(r, _)| r.len() == values.rows.len())
        .ok_or_else(|| unsupported("rewriting this INSERT"))?;
    // Whatever follows the last row (`ON DUPLICATE KEY UPDATE ...`) goes to every shard as written.
    let suffix = source.sql()[rest..].trim_end().trim_end_matches(';');
    let suffix = if suffix.is_empty() {
        String::new()
    } else {
        format!(" {suffix}")
    };
    // Rows of several shards would come back in shard order, not in the statement's.
    if insert.returning.is_some() && values.rows.len() > 1 {
        return Err(unsupported(
            "INSERT ... RETURNING of several rows into a sharded table",
        ));
    }

    let mut rows = Vec::with_capacity(values.rows.len());
    for (i, (row, range)) in values.rows.iter().zip(row_ranges).enumerate() {
        if row.len() != given && insert.columns.is_empty() {
            return Err(PlanError::WrongValueCount(i + 1));
        }
        if row.len() != given {
            // Let a shard report the column-count mismatch in its own words.
            return Ok(Plan::Route(Route {
                keyspace: keyspace.name.clone(),
                opcode: Opcode::Reference,
                query: text,
                elsewhere: None,
            }));
        }
        let inner = &source.sql()[range.start + 1..range.end - 1];
        let mut texts: Vec<String> =
            split_values(inner).ok_or_else(|| unsupported("rewriting this INSERT row"))?;
        if texts.len() != row.len() {
            return Err(unsupported("rewriting this INSERT row"));
        }
        // A missing, NULL or 0 AUTO_INCREMENT value is generated from the sequence.
        let generated = match &generate {
            Some((_, _, true)) => {
                texts.push("NULL".into());
                true
            }
            Some((_, p, false)) => match &row[*p] {
                // Whether the id is generated depends on the value (NULL or 0): a template's
                // bind variable is decided when it is bound (`template::bind`).
                Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => false,
                Expr::Value(v) => {
                    v.value == Value::Null
                        || matches!(&v.value, Value::Number(n, _) if n.parse::<f64>() == Ok(0.0))
                }
                // `DEFAULT`, as Sequelize writes a missing id.
                Expr::Identifier(i) => {
                    i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default")
                }
                _ => false,
            },
            None => false,
        };
        let value = if generated && generate.as_ref().is_some_and(|(_, p, _)| *p == position) {
            None
        } else {
            let mut values = Vec::with_capacity(positions.len());
            for (&p, c) in positions.iter().zip(&column) {
                let expr = &row[p];
                if matches!(expr, Expr::Value(v) if v.value == Value::Null) {
                    return Err(PlanError::NullVindexValue(c.to_string()));
                }
                values.push(literal(expr).ok_or_else(|| {
                    unsupported(format!(
                        "a non-literal value for primary vindex column {c}: {expr}"
                    ))
                })?);
            }
            let value = match values.len() {
                1 => values.remove(0),
                _ => KeyValue::Tuple(values),
            };
            if !value.waits_for_binding() {
                vindex.map(&value)?;
            }
            Some(value)
        };
        let mut lookup_values = Vec::with_capacity(used.len());
        for (l, positions) in used.iter().zip(&lookup_positions) {
            let mut values = Vec::with_capacity(positions.len());
            for (c, p) in l.columns.iter().zip(positions) {
                let generated_here = generated
                    && generate
                        .as_ref()
                        .is_some_and(|(ai, _, _)| ai.column.eq_ignore_ascii_case(c));
                // The appended AUTO_INCREMENT column is not in the row.
                values.push(match p.and_then(|p| row.get(p)) {
                    _ if generated_here => None,
                    None => None,
                    Some(Expr::Value(v)) if v.value == Value::Null => None,
                    Some(e) => Some(literal(e).ok_or_else(|| {
                        unsupported(format!("a non-literal value for lookup column {c}: {e}"))
                    })?),
                });
            }
            lookup_values.push(values);
        }
        rows.push(InsertRow {
            value,
            values: texts,
            generate: generated,
            lookup_values,
        });
    }
    let prefix = insert_prefix(insert, &columns, target, source)?;
    let generate = generate.map(|(ai, column, _)| Generate {
        sequence: ai.sequence.clone(),
        column,
    });
    Ok(Plan::Insert(InsertPlan {
        keyspace: keyspace.name.clone(),
        table: target.name.clone(),
        vindex: vindex.clone(),
        prefix,
        rows,
        suffix,
        generate,
        lookups: owned_lookups(&target.name, &column, auto_increment.as_ref(), &used),
        returning: insert.returning.is_some(),
        from_select: false,
    }))
}

/// The columns an INSERT fills: its list, or without one every column in table order, as the
/// shards list them (the shards get the list written out).
fn column_list(
    insert: &Insert,
    target: &Resolved<'_>,
    ctx: &Context<'_>,
) -> Result<Vec<String>, PlanError> {
    if !insert.columns.is_empty() {
        return Ok(insert.columns.iter().map(|c| c.to_string()).collect());
    }
    let all = ctx
        .catalog
        .columns(&target.keyspace.name, &target.name)?
        .ok_or_else(|| {
            unsupported(format!(
                "INSERT into sharded table {} without a column list (the shard does not list its columns)",
                target.name
            ))
        })?;
    Ok(all.quoted_row())
}

/// `INSERT ... SELECT` into a sharded table: the SELECT planned on its own (whatever tables it
/// reads), its rows to go in as the VALUES of the same INSERT.
fn insert_select(
    insert: &Insert,
    target: &Resolved<'_>,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    let query = insert
        .source
        .as_ref()
        .ok_or_else(|| unsupported("this INSERT into a sharded table"))?;
    let text = crate::clauses::query_text(query, source)
        .ok_or_else(|| unsupported("rewriting this INSERT ... SELECT"))?;
    let select = crate::plan_text(&text, ctx)?;
    let end = source
        .range(query.span())
        .ok_or_else(|| unsupported("rewriting this INSERT ... SELECT"))?
        .end;
    // The rows go in as VALUES: the assignments may read the existing row (columns qualified
    // by the table's name) and the new one (VALUES(col)), not the SELECT's columns.
    match &insert.on {
        None => {}
        Some(OnInsert::DuplicateKeyUpdate(assignments)) => {
            let table = insert.table.to_string();
            let table = table.rsplit('.').next().unwrap_or_default();
            for a in assignments {
                if let Some(c) = column_outside_values(&a.value, table) {
                    return Err(unsupported(format!(
                        "INSERT ... SELECT ... ON DUPLICATE KEY UPDATE reading {c} (write \
                         {table}.column for the existing row, VALUES(column) for the new one) \
                         into a sharded table"
                    )));
                }
            }
        }
        Some(_) => {
            return Err(unsupported(
                "INSERT ... SELECT with this ON clause into a sharded table",
            ))
        }
    }
    let suffix = source.sql()[end..].trim_end().trim_end_matches(';');
    Ok(Plan::InsertSelect(engine::InsertSelect {
        select: Box::new(select),
        prefix: insert_prefix(insert, &column_list(insert, target, ctx)?, target, source)?,
        suffix: suffix.to_string(),
    }))
}

/// A column `value` reads other than inside VALUES(...) or qualified by `table`.
fn column_outside_values(value: &Expr, table: &str) -> Option<String> {
    use sqlparser::ast::{Visit, Visitor};
    use std::ops::ControlFlow;
    struct Columns<'t> {
        table: &'t str,
        in_values: usize,
    }
    impl Visitor for Columns<'_> {
        type Break = String;
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<String> {
            match e {
                Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("values") => {
                    self.in_values += 1
                }
                Expr::Identifier(i) if self.in_values == 0 => {
                    return ControlFlow::Break(i.value.clone())
                }
                Expr::CompoundIdentifier(p) if self.in_values == 0 => {
                    let ours = p.len() >= 2
                        && p[p.len() - 2]
                            .value
                            .trim_matches('`')
                            .eq_ignore_ascii_case(self.table.trim_matches('`'));
                    if !ours {
                        let parts: Vec<&str> = p.iter().map(|i| i.value.as_str()).collect();
                        return ControlFlow::Break(parts.join("."));
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<String> {
            if matches!(e, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("values")) {
                self.in_values -= 1;
            }
            ControlFlow::Continue(())
        }
    }
    match value.visit(&mut Columns {
        table,
        in_values: 0,
    }) {
        ControlFlow::Break(c) => Some(c),
        ControlFlow::Continue(()) => None,
    }
}

/// `INSERT INTO t SET a = 1, b = x` written as `INSERT INTO t (a, b) VALUES (1, x)`: the
/// client's text before SET and after the last value, the column names rendered from the
/// parsed statement, each value as the client wrote it.
fn set_as_values(insert: &Insert, source: &SourceText<'_>) -> Result<String, PlanError> {
    let refuse = || unsupported("rewriting this INSERT ... SET");
    let mut columns = Vec::with_capacity(insert.assignments.len());
    let mut values = Vec::with_capacity(insert.assignments.len());
    let mut end = 0;
    for a in &insert.assignments {
        let AssignmentTarget::ColumnName(name) = &a.target else {
            return Err(refuse());
        };
        columns.push(name.to_string());
        let range = crate::clauses::expr_range(&a.value, source).ok_or_else(refuse)?;
        values.push(source.sql()[range.clone()].to_string());
        end = range.end;
    }
    let first = insert.assignments.first().ok_or_else(refuse)?;
    let start = source.range(first.span()).ok_or_else(refuse)?.start;
    let before = source.sql()[..start].trim_end();
    let keyword = before.len().checked_sub(3).ok_or_else(refuse)?;
    if !before
        .get(keyword..)
        .is_some_and(|k| k.eq_ignore_ascii_case("set"))
        || !before[..keyword].ends_with(char::is_whitespace)
    {
        return Err(refuse());
    }
    Ok(format!(
        "{} ({}) VALUES ({}){}",
        before[..keyword].trim_end(),
        columns.join(", "),
        values.join(", "),
        &source.sql()[end..]
    ))
}

fn owned_lookups(
    table: &str,
    primary: &[&str],
    auto_increment: Option<&AutoIncrement>,
    lookups: &[&LookupColumn],
) -> Vec<OwnedLookup> {
    lookups
        .iter()
        .map(|l| OwnedLookup {
            vindex: l.vindex.clone(),
            owned: l.owned,
            table: table.to_string(),
            primary: primary.iter().map(|c| c.to_string()).collect(),
            columns: l.columns.clone(),
            generated: auto_increment.and_then(|ai| {
                l.columns
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(&ai.column))
            }),
        })
        .collect()
}

/// `INSERT [IGNORE] INTO t (a, b) VALUES `, from the client's text up to the first row.
fn insert_prefix(
    insert: &Insert,
    cols: &[String],
    target: &Resolved<'_>,
    source: &SourceText<'_>,
) -> Result<String, PlanError> {
    let verb = if insert.replace_into {
        "REPLACE"
    } else {
        "INSERT"
    };
    let ignore = if insert.ignore { " IGNORE" } else { "" };
    let table = target
        .object
        .0
        .last()
        .and_then(|p| source.slice(p.span()))
        .ok_or_else(|| unsupported("rewriting this INSERT"))?;
    Ok(format!(
        "{verb}{ignore} INTO {table} ({}) VALUES ",
        cols.join(", ")
    ))
}

fn assigns_column(assignments: &[Assignment], column: &str) -> bool {
    assignments.iter().any(|a| match &a.target {
        AssignmentTarget::ColumnName(name) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value.eq_ignore_ascii_case(column)),
        AssignmentTarget::Tuple(names) => names.iter().any(|n| {
            n.0.last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case(column))
        }),
    })
}

pub(crate) fn plan_update(
    stmt: &Statement,
    update: &Update,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    if !update.table.joins.is_empty() || update.from.is_some() {
        return plan_multi_table(stmt, source, ctx, "multi-table UPDATE", &[], || {
            crate::multi_table::update_text(update, source, ctx)
        });
    }
    let alias = match &update.table.relation {
        TableFactor::Table { alias, .. } => alias.as_ref().map(|a| a.name.value.clone()),
        _ => return Err(unsupported("UPDATE of a derived table")),
    };
    for column in vindex_columns(stmt, ctx)? {
        if assigns_column(&update.assignments, &column) {
            return Err(unsupported(format!("changing the primary vindex column {column} (the row would have to move to another shard)")));
        }
    }
    plan_write(
        stmt,
        source,
        ctx,
        Write {
            relation: &update.table.relation,
            selection: update.selection.as_ref(),
            alias,
            order_by: &update.order_by,
            limit: update.limit.as_ref(),
            verb: "UPDATE",
            assignments: Some(&update.assignments),
        },
    )
}

pub(crate) fn plan_delete(
    stmt: &Statement,
    delete: &Delete,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    let from = match &delete.from {
        FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
    };
    if !delete.tables.is_empty()
        || delete.using.is_some()
        || from.len() != 1
        || !from[0].joins.is_empty()
    {
        // `DELETE FROM a USING t AS a ...`: `a` names USING's table, not one of its own.
        let aliases: Vec<String> = delete
            .using
            .iter()
            .flatten()
            .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
            .filter_map(|f| match f {
                TableFactor::Table { alias: Some(a), .. } => Some(a.name.value.clone()),
                _ => None,
            })
            .collect();
        return plan_multi_table(stmt, source, ctx, "multi-table DELETE", &aliases, || {
            crate::multi_table::delete_text(delete, source, ctx)
        });
    }
    let alias = match &from[0].relation {
        TableFactor::Table { alias, .. } => alias.as_ref().map(|a| a.name.value.clone()),
        _ => return Err(unsupported("DELETE from a derived table")),
    };
    plan_write(
        stmt,
        source,
        ctx,
        Write {
            relation: &from[0].relation,
            selection: delete.selection.as_ref(),
            alias,
            order_by: &delete.order_by,
            limit: delete.limit.as_ref(),
            verb: "DELETE",
            assignments: None,
        },
    )
}

/// The primary vindex column of the statement's first table, if it is sharded.
/// The primary vindex columns of the statement's first table (none unless it is sharded).
fn vindex_columns(stmt: &Statement, ctx: &Context<'_>) -> Result<Vec<String>, PlanError> {
    let tables = relations(stmt, ctx, &[])?;
    Ok(tables
        .first()
        .map(|t| {
            t.table
                .vindex_columns()
                .into_iter()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default())
}

/// The parts of an UPDATE or DELETE of one table.
struct Write<'s> {
    relation: &'s TableFactor,
    selection: Option<&'s Expr>,
    alias: Option<String>,
    order_by: &'s [OrderByExpr],
    limit: Option<&'s Expr>,
    verb: &'static str,
    /// UPDATE's SET list.
    assignments: Option<&'s [Assignment]>,
}

/// UPDATE and DELETE of one table: routed like a SELECT on it.
fn plan_write(
    stmt: &Statement,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
    write: Write<'_>,
) -> Result<Plan, PlanError> {
    let Write {
        selection,
        ref alias,
        verb,
        assignments,
        ..
    } = write;
    let ordered_or_limited = !write.order_by.is_empty() || write.limit.is_some();
    let tables = relations(stmt, ctx, &[])?;
    let keyspace =
        single_keyspace(&tables)?.ok_or_else(|| unsupported(format!("{verb} without a table")))?;
    let text = shard_text(source, &tables)?;
    let target = &tables[0];
    let others_are_reference = tables[1..].iter().all(|t| t.table == Table::Reference);
    let route = |opcode, query| Route {
        keyspace: keyspace.name.clone(),
        opcode,
        query,
        elsewhere: None,
    };
    match &target.table {
        Table::Unsharded | Table::Sequence => Ok(Plan::Route(route(Opcode::Unsharded, text))),
        Table::Reference if tables.len() == 1 => Ok(Plan::Send(Send {
            keyspace: keyspace.name.clone(),
            query: text,
            kind: SendKind::Write,
        })),
        Table::Reference => Err(unsupported(format!(
            "{verb} of a reference table with a subquery on another table"
        ))),
        Table::Sharded { .. } if !others_are_reference => {
            let mut exprs: Vec<&Expr> = selection.into_iter().collect();
            exprs.extend(assignments.unwrap_or_default().iter().map(|a| &a.value));
            crate::pullout::plan_write_pull_out(&exprs, source, ctx).unwrap_or_else(|| {
                Err(unsupported(format!(
                    "{verb} with a subquery on a sharded table that depends on the written row"
                )))
            })
        }
        Table::Sharded {
            column,
            columns: multi_columns,
            vindex,
            lookups,
            auto_increment,
        } => {
            let qualifiers = vec![alias.as_deref().unwrap_or(target.name.as_str())];
            let opcode = opcode_for(
                selection,
                &Target {
                    qualifiers,
                    column,
                    vindex,
                    lookups,
                    columns: multi_columns,
                },
                keyspace,
            );
            let owned: Vec<&LookupColumn> = lookups.iter().filter(|l| l.owned).collect();
            for l in lookups.iter().filter(|l| !l.owned) {
                let set = l
                    .columns
                    .iter()
                    .find(|c| assignments.is_some_and(|a| assignment_to(a, c).is_some()));
                if let Some(c) = set {
                    return Err(unsupported(format!(
                        "changing {c}, a column of lookup vindex {} that {} does not own (its rows would no longer be found through it)",
                        l.vindex.name, target.name
                    )));
                }
            }
            if let Some(limit) = write.limit.filter(|_| !opcode.is_single_shard()) {
                if !owned.is_empty() {
                    return Err(unsupported(format!(
                        "{verb} with ORDER BY or LIMIT on {}, which owns lookup vindexes",
                        target.name
                    )));
                }
                if text != source.sql() {
                    return Err(unsupported(format!(
                        "{verb} ... LIMIT over several shards with a qualified table name"
                    )));
                }
                return ordered_write(&write, limit, route(opcode, String::new()), source);
            }
            // Which owned lookup an UPDATE changes, and to what.
            let new_value = match assignments {
                None => None,
                Some(assignments) => {
                    let changed: Vec<(usize, usize, &Expr)> = owned
                        .iter()
                        .enumerate()
                        .flat_map(|(i, l)| {
                            l.columns.iter().enumerate().filter_map(move |(j, c)| {
                                assignment_to(assignments, c).map(|e| (i, j, e))
                            })
                        })
                        .collect();
                    match changed.as_slice() {
                        [] => return Ok(Plan::Route(route(opcode, text))),
                        [(i, j, e)] => Some(NewLookupValue {
                            lookup: *i,
                            column: *j,
                            value: match e {
                                Expr::Value(v) if v.value == Value::Null => None,
                                e => Some(literal(e).ok_or_else(|| {
                                    unsupported(format!(
                                        "setting lookup column {} to a non-literal value",
                                        owned[*i].columns[*j]
                                    ))
                                })?),
                            },
                        }),
                        _ => {
                            return Err(unsupported("an UPDATE of several lookup columns at once"))
                        }
                    }
                }
            };
            if owned.is_empty() {
                return Ok(Plan::Route(route(opcode, text)));
            }
            if ordered_or_limited {
                return Err(unsupported(format!(
                    "{verb} with ORDER BY or LIMIT on {}, which owns lookup vindexes",
                    target.name
                )));
            }
            let primary = target.table.vindex_columns();
            let mut columns = primary.clone();
            columns.extend(
                owned
                    .iter()
                    .flat_map(|l| l.columns.iter().map(String::as_str)),
            );
            let select = touched_rows(&text, &columns).ok_or_else(|| {
                unsupported(format!("this {verb} on a table that owns lookup vindexes"))
            })?;
            Ok(Plan::OwnedWrite(OwnedWrite {
                route: route(opcode, text),
                select,
                vindex: vindex.clone(),
                lookups: owned_lookups(&target.name, &primary, auto_increment.as_ref(), &owned),
                new_value,
            }))
        }
    }
}

/// UPDATE or DELETE ... [ORDER BY ...] LIMIT n over several shards: a probe reads (and locks)
/// each shard's first n rows' keys, and each shard then runs the statement with its share of
/// the first n as its LIMIT (see [`engine::OrderedWrite`]).
fn ordered_write(
    write: &Write<'_>,
    limit: &Expr,
    mut route: Route,
    source: &SourceText<'_>,
) -> Result<Plan, PlanError> {
    let verb = write.verb;
    let count = match limit {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| unsupported(format!("{verb} ... LIMIT {limit} over several shards")))?;
    let refuse = || {
        unsupported(format!(
            "rewriting this {verb} ... LIMIT over several shards"
        ))
    };
    let sql = source.sql();
    let table = source.slice(write.relation.span()).ok_or_else(refuse)?;
    let filter = match write.selection {
        Some(e) => format!(" WHERE {}", crate::clauses::expr_text(e, source)?),
        None => String::new(),
    };
    let mut items = Vec::new();
    let mut order = Vec::new();
    let mut keys = Vec::new();
    for (i, o) in write.order_by.iter().enumerate() {
        let key = crate::clauses::expr_text(&o.expr, source)?;
        let desc = matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
        items.push(format!("{key}, WEIGHT_STRING(RTRIM({key}))"));
        order.push(format!("{key} {}", if desc { "DESC" } else { "ASC" }));
        keys.push(engine::SortKey {
            column: 2 * i,
            weight: engine::Weight::Column(2 * i + 1),
            desc,
        });
    }
    if items.is_empty() {
        items.push("1".to_string());
    }
    let order = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    route.query = format!(
        "SELECT {} FROM {table}{filter}{order} LIMIT {count} FOR UPDATE",
        items.join(", ")
    );
    let at = source.range(limit.span()).ok_or_else(refuse)?;
    let mut template = SqlTemplate::from(&sql[..at.start]);
    template.push_hole(Hole::Limit);
    template.push_str(&sql[at.end..]);
    Ok(Plan::OrderedWrite(engine::OrderedWrite {
        route,
        keys,
        limit: count,
        write: template,
    }))
}

/// The value an UPDATE's SET list gives a column.
fn assignment_to<'a>(assignments: &'a [Assignment], column: &str) -> Option<&'a Expr> {
    assignments.iter().find_map(|a| match &a.target {
        AssignmentTarget::ColumnName(name)
            if name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case(column)) =>
        {
            Some(&a.value)
        }
        _ => None,
    })
}

/// A SELECT of `columns` from the rows an UPDATE or DELETE touches, from the statement's text:
/// `DELETE FROM t WHERE c` → `SELECT cols FROM t WHERE c`; `UPDATE t SET .. WHERE c` → the same.
fn touched_rows(sql: &str, columns: &[&str]) -> Option<String> {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("`{}`", c.replace('`', "``")))
        .collect();
    let (table, filter) = crate::clauses::write_target(sql)?;
    Some(format!(
        "SELECT {} FROM {table}{}",
        cols.join(", "),
        filter.map(|w| format!(" {w}")).unwrap_or_default()
    ))
}

/// Multi-table writes run only where every table lives on the same single shard.
/// A multi-table UPDATE or DELETE: whole to an unsharded keyspace; in a sharded one, as the
/// one-table statement `one_table` writes (see `multi_table`).
fn plan_multi_table(
    stmt: &Statement,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
    what: &str,
    aliases: &[String],
    one_table: impl FnOnce() -> Result<String, PlanError>,
) -> Result<Plan, PlanError> {
    let tables = relations(stmt, ctx, aliases)?;
    let keyspace = single_keyspace(&tables)?.ok_or_else(|| unsupported(what.to_string()))?;
    if keyspace.sharded {
        return crate::plan_text(&one_table()?, ctx);
    }
    Ok(Plan::Route(Route {
        keyspace: keyspace.name.clone(),
        opcode: Opcode::Unsharded,
        query: shard_text(source, &tables)?,
        elsewhere: None,
    }))
}
