//! Statements other than SELECT and DML: DDL goes to every shard of its keyspace; table metadata
//! (`SHOW CREATE TABLE`, `DESCRIBE`) comes from any one shard; the rest is refused by name.

use engine::{Opcode, Plan, Route, Send, SendKind};
use sqlparser::ast::{ObjectName, ShowStatementFilterPosition, Statement};

use crate::tables::{resolve, shard_text};
use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

pub(crate) fn plan_other(
    stmt: &Statement,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    let (names, every_shard): (Vec<&ObjectName>, bool) = match stmt {
        Statement::CreateTable(c) => (vec![&c.name], true),
        Statement::AlterTable(a) => (vec![&a.name], true),
        Statement::Drop {
            names, object_type, ..
        } if object_type.to_string() == "TABLE" => (names.iter().collect(), true),
        Statement::Drop {
            object_type,
            table: Some(table),
            ..
        } if object_type.to_string() == "INDEX" => (vec![table], true),
        Statement::Truncate(t) => (t.table_names.iter().map(|t| &t.name).collect(), true),
        Statement::CreateIndex(c) => (vec![&c.table_name], true),
        Statement::RenameTable(renames) => (
            renames
                .iter()
                .flat_map(|r| [&r.old_name, &r.new_name])
                .collect(),
            true,
        ),
        Statement::ShowCreate { obj_name, .. } => (vec![obj_name], false),
        Statement::ShowColumns { show_options, .. } => match &show_options.show_in {
            Some(show_in) => match &show_in.parent_name {
                Some(name) => (vec![name], false),
                None => return Err(unsupported("SHOW COLUMNS without a table")),
            },
            None => return Err(unsupported("SHOW COLUMNS without a table")),
        },
        Statement::ExplainTable { table_name, .. } => (vec![table_name], false),
        other => return Err(unsupported(format!("statement {}", statement_kind(other)))),
    };
    if let Statement::ShowColumns { show_options, .. } = stmt {
        if show_options
            .filter_position
            .as_ref()
            .is_some_and(|p| matches!(p, ShowStatementFilterPosition::Infix(_)))
        {
            return Err(unsupported("SHOW COLUMNS with a filter before the table"));
        }
    }
    let tables = names
        .iter()
        .map(|n| resolve_for_ddl(n, ctx))
        .collect::<Result<Vec<_>, _>>()?;
    let keyspace = crate::tables::single_keyspace(&tables)?
        .ok_or_else(|| unsupported("DDL without a table"))?;
    let query = shard_text(source, &tables)?;
    if every_shard {
        Ok(Plan::Send(Send {
            keyspace: keyspace.name.clone(),
            query,
            kind: SendKind::Ddl,
        }))
    } else {
        Ok(Plan::Route(Route {
            keyspace: keyspace.name.clone(),
            opcode: any_shard(keyspace),
            query,
            elsewhere: None,
        }))
    }
}

/// Any one shard: each holds every table's definition.
fn any_shard(keyspace: &vschema::Keyspace) -> Opcode {
    if keyspace.sharded {
        Opcode::Reference
    } else {
        Opcode::Unsharded
    }
}

/// A statement about a table's definition that any one shard of its keyspace answers (SHOW
/// INDEX, COM_FIELD_LIST): `shard_query` writes it around the table's name on the shards,
/// rendered from the name's last part.
pub fn definition_route(
    table: &ObjectName,
    ctx: &Context<'_>,
    shard_query: impl FnOnce(&str) -> String,
) -> Result<Plan, PlanError> {
    let resolved = resolve_for_ddl(table, ctx)?;
    let name = table
        .0
        .last()
        .ok_or_else(|| unsupported("an empty table name"))?
        .to_string();
    Ok(Plan::Route(Route {
        keyspace: resolved.keyspace.name.clone(),
        opcode: any_shard(resolved.keyspace),
        query: shard_query(&name),
        elsewhere: None,
    }))
}

/// DDL may name tables the VSchema does not declare yet (creating them is how they come to be).
fn resolve_for_ddl<'a>(
    name: &ObjectName,
    ctx: &Context<'a>,
) -> Result<crate::tables::Resolved<'a>, PlanError> {
    match resolve(name, ctx) {
        Err(PlanError::UnknownTable { keyspace, table }) => {
            let keyspace = ctx
                .vschema
                .keyspace(&keyspace)
                .ok_or(PlanError::UnknownKeyspace(keyspace.clone()))?;
            Ok(crate::tables::Resolved {
                keyspace,
                name: table,
                table: vschema::Table::Unsharded,
                qualified: name.0.len() == 2,
                object: name.clone(),
            })
        }
        other => other,
    }
}

/// A short name for a statement kind, for error messages: the first words of its SQL.
pub(crate) fn statement_kind(stmt: &Statement) -> String {
    let text = stmt.to_string();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A statement about a keyspace that the parser does not know and one shard answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyspaceStatement {
    /// `SHOW TABLE STATUS` or `SHOW TRIGGERS`, its `FROM ks` left out: `query` for any shard
    /// of `keyspace`.
    OnShard { keyspace: String, query: String },
    /// `SHOW CREATE {DATABASE | SCHEMA} ks`.
    CreateDatabase { keyspace: String },
}

/// `sql` as a [`KeyspaceStatement`]; `None` for other statements.
pub fn keyspace_statement(
    sql: &str,
    ctx: &Context<'_>,
) -> Option<Result<KeyspaceStatement, PlanError>> {
    let words = crate::clauses::leading_words(sql, 4);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let known = |name: &str| match ctx.vschema.keyspace(name) {
        Some(ks) => Ok(ks.name.clone()),
        None => Err(PlanError::UnknownKeyspace(name.to_string())),
    };
    match words.as_slice() {
        ["SHOW", "CREATE", "DATABASE" | "SCHEMA", ..] => {
            let name = crate::clauses::last_word(sql)?;
            Some(known(&name).map(|keyspace| KeyspaceStatement::CreateDatabase { keyspace }))
        }
        ["SHOW", "TABLE", "STATUS", ..] | ["SHOW", "TRIGGERS", ..] => {
            let at = if words[1] == "TABLE" { 3 } else { 2 };
            let (query, named) = crate::clauses::without_from_database(sql, at)?;
            let keyspace = match named {
                Some(name) => known(&name),
                None => ctx.keyspace.ok_or(PlanError::NoDatabase).and_then(known),
            };
            Some(keyspace.map(|keyspace| KeyspaceStatement::OnShard { keyspace, query }))
        }
        _ => None,
    }
}

/// `ALTER TABLE t {DISABLE | ENABLE} KEYS` (in every mysqldump file), which the parser does not
/// know: to every shard of t's keyspace, rendered from the parsed name. `None` for other text.
pub fn alter_keys(sql: &str, ctx: &Context<'_>) -> Option<Result<Plan, PlanError>> {
    use sqlparser::keywords::Keyword;
    let mut parser = sqlparser::parser::Parser::new(&sqlparser::dialect::MySqlDialect {})
        .try_with_sql(sql)
        .ok()?;
    if !parser.parse_keywords(&[Keyword::ALTER, Keyword::TABLE]) {
        return None;
    }
    let name = parser.parse_object_name(false).ok()?;
    let action = parser.parse_one_of_keywords(&[Keyword::DISABLE, Keyword::ENABLE])?;
    if !parser.parse_keyword(Keyword::KEYS)
        || parser.peek_token().token != sqlparser::tokenizer::Token::EOF
    {
        return None;
    }
    let action = if action == Keyword::DISABLE {
        "DISABLE"
    } else {
        "ENABLE"
    };
    Some((|| {
        let table = resolve_for_ddl(&name, ctx)?;
        let last = name
            .0
            .last()
            .ok_or_else(|| unsupported("an empty table name"))?;
        Ok(Plan::Send(Send {
            keyspace: table.keyspace.name.clone(),
            query: format!("ALTER TABLE {last} {action} KEYS"),
            kind: SendKind::Ddl,
        }))
    })())
}

/// `LOCK TABLES t READ, u WRITE`: for each keyspace the tables belong to (in the order they
/// come), the statement each of its shards takes, rendered from the parsed tables.
pub fn lock_tables(
    tables: &[sqlparser::ast::LockTable],
    ctx: &Context<'_>,
) -> Result<Vec<(String, String)>, PlanError> {
    let mut per_keyspace: Vec<(String, Vec<String>)> = Vec::new();
    for lock in tables {
        let name = ObjectName::from(vec![lock.table.clone()]);
        let keyspace = resolve(&name, ctx)?.keyspace.name.clone();
        match per_keyspace.iter_mut().find(|(k, _)| *k == keyspace) {
            Some((_, locks)) => locks.push(lock.to_string()),
            None => per_keyspace.push((keyspace, vec![lock.to_string()])),
        }
    }
    Ok(per_keyspace
        .into_iter()
        .map(|(keyspace, locks)| (keyspace, format!("LOCK TABLES {}", locks.join(", "))))
        .collect())
}
