//! The DDL statements that turn one schema into another: `CREATE TABLE` for tables only the
//! target has, one `ALTER TABLE` per table whose parts differ, `DROP TABLE` for tables only the
//! source has. Every statement is rendered from the parsed schemas, never cut from text.

use std::collections::BTreeSet;

use crate::model::{quote, same_name, Key, KeyKind, Named, Schema, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlKind {
    Create,
    Alter,
    Drop,
}

/// One statement of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ddl {
    pub table: String,
    pub kind: DdlKind,
    pub sql: String,
}

/// What turns `from` into `to`, in an order the server accepts: new tables (a table before
/// those whose foreign keys name it), then changed ones, then dropped ones (those naming others
/// first).
pub fn diff(from: &Schema, to: &Schema) -> Vec<Ddl> {
    let mut ddl = Vec::new();
    let created: Vec<&Table> = to
        .tables
        .values()
        .filter(|t| !from.tables.contains_key(&t.name))
        .collect();
    for table in referenced_first(created) {
        ddl.push(Ddl {
            table: table.name.clone(),
            kind: DdlKind::Create,
            sql: table.create.clone(),
        });
    }
    for (name, old) in &from.tables {
        if let Some(new) = to.tables.get(name) {
            for clauses in alter(old, new) {
                ddl.push(Ddl {
                    table: name.clone(),
                    kind: DdlKind::Alter,
                    sql: format!("ALTER TABLE {} {}", quote(name), clauses.join(", ")),
                });
            }
        }
    }
    let dropped: Vec<&Table> = from
        .tables
        .values()
        .filter(|t| !to.tables.contains_key(&t.name))
        .collect();
    for table in referenced_first(dropped).into_iter().rev() {
        ddl.push(Ddl {
            table: table.name.clone(),
            kind: DdlKind::Drop,
            sql: format!("DROP TABLE {}", quote(&table.name)),
        });
    }
    ddl
}

/// `tables` ordered so that a table comes after those of them its foreign keys reference.
fn referenced_first(mut tables: Vec<&Table>) -> Vec<&Table> {
    let mut ordered: Vec<&Table> = Vec::with_capacity(tables.len());
    while !tables.is_empty() {
        let names: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        let ready = tables.iter().position(|t| {
            t.foreign_keys.iter().all(|fk| {
                fk.references
                    .as_deref()
                    .is_none_or(|r| r == t.name || !names.contains(r))
            })
        });
        // A cycle of references: the rest in name order (the server refuses it unless
        // foreign_key_checks is off, and says so).
        let i = ready.unwrap_or(0);
        ordered.push(tables.remove(i));
    }
    ordered
}

/// The clauses of the `ALTER TABLE` statements that turn `old` into `new`: one statement, or
/// none when they agree. Two when a foreign key is replaced by one of the same name, which
/// InnoDB refuses within one statement: the first drops it.
pub(crate) fn alter(old: &Table, new: &Table) -> Vec<Vec<String>> {
    let mut statements = Vec::new();
    let mut clauses = Vec::new();
    // Dropped first, so that what replaces them under the same name can be added.
    for fk in gone(&old.foreign_keys, &new.foreign_keys) {
        clauses.push(format!("DROP FOREIGN KEY {}", quote(&fk.name)));
    }
    let replaced = gone(&new.foreign_keys, &old.foreign_keys).iter().any(|fk| {
        old.foreign_keys
            .iter()
            .any(|o| same_name(&o.name, &fk.name))
    });
    if replaced {
        statements.push(std::mem::take(&mut clauses));
    }
    for check in gone(&old.checks, &new.checks) {
        clauses.push(format!("DROP CONSTRAINT {}", quote(&check.name)));
    }
    for key in &old.keys {
        if new
            .key(&key.name)
            .is_none_or(|k| k.definition != key.definition)
        {
            clauses.push(drop_key(key));
        }
    }
    for column in &old.columns {
        if new.column(&column.name).is_none() {
            clauses.push(format!("DROP COLUMN {}", quote(&column.name)));
        }
    }
    columns(old, new, &mut clauses);
    for key in &new.keys {
        if old
            .key(&key.name)
            .is_none_or(|k| k.definition != key.definition)
        {
            clauses.push(format!("ADD {}", key.definition));
        }
    }
    for named in gone(&new.checks, &old.checks)
        .into_iter()
        .chain(gone(&new.foreign_keys, &old.foreign_keys))
    {
        clauses.push(format!("ADD {}", named.definition));
    }
    options(old, new, &mut clauses);
    if !clauses.is_empty() {
        statements.push(clauses);
    }
    statements
}

/// Those of `these` that `those` lacks or defines otherwise.
fn gone<'a>(these: &'a [Named], those: &[Named]) -> Vec<&'a Named> {
    these
        .iter()
        .filter(|n| {
            !those
                .iter()
                .any(|o| same_name(&o.name, &n.name) && o.definition == n.definition)
        })
        .collect()
}

fn drop_key(key: &Key) -> String {
    match key.kind {
        KeyKind::Primary => "DROP PRIMARY KEY".into(),
        _ => format!("DROP INDEX {}", quote(&key.name)),
    }
}

/// Adds and changes columns so that they end in `new`'s order. Walking `new`'s columns in
/// order, the columns before the current one are already in place, so a column is moved only
/// when it is not where `new` has it.
fn columns(old: &Table, new: &Table, clauses: &mut Vec<String>) {
    let mut current: Vec<&str> = old
        .columns
        .iter()
        .filter(|c| new.column(&c.name).is_some())
        .map(|c| c.name.as_str())
        .collect();
    for (i, column) in new.columns.iter().enumerate() {
        let place = match i {
            0 => "FIRST".to_string(),
            _ => format!("AFTER {}", quote(&new.columns[i - 1].name)),
        };
        let Some(was) = old.column(&column.name) else {
            clauses.push(format!("ADD COLUMN {} {place}", column.definition));
            current.insert(i, &column.name);
            continue;
        };
        let at = current
            .iter()
            .position(|c| same_name(c, &column.name))
            .expect("a kept column is in the current order");
        let moved = at != i;
        if !moved && was.definition == column.definition {
            continue;
        }
        // A change of case in the name is a rename to the server.
        let verb = if was.name == column.name {
            format!("MODIFY COLUMN {}", column.definition)
        } else {
            format!("CHANGE COLUMN {} {}", quote(&was.name), column.definition)
        };
        if moved {
            clauses.push(format!("{verb} {place}"));
            let name = current.remove(at);
            current.insert(i, name);
        } else {
            clauses.push(verb);
        }
    }
}

/// The table options `new` sets otherwise than `old`; those it no longer sets go back to the
/// server's default.
fn options(old: &Table, new: &Table, clauses: &mut Vec<String>) {
    const CHARSET: &str = "DEFAULT CHARSET";
    const COLLATE: &str = "COLLATE";
    if old.option(CHARSET) != new.option(CHARSET) || old.option(COLLATE) != new.option(COLLATE) {
        // Setting the character set resets the collation to its default.
        let set: Vec<&str> = [new.option(CHARSET), new.option(COLLATE)]
            .into_iter()
            .flatten()
            .collect();
        if !set.is_empty() {
            clauses.push(set.join(" "));
        }
    }
    for (name, option) in &new.options {
        if name != CHARSET && name != COLLATE && old.option(name) != Some(option.as_str()) {
            clauses.push(option.clone());
        }
    }
    for (name, _) in &old.options {
        if name != CHARSET && name != COLLATE && new.option(name).is_none() {
            let default = match name.as_str() {
                "COMMENT" => "''",
                "KEY_BLOCK_SIZE" | "MAX_ROWS" | "MIN_ROWS" | "AVG_ROW_LENGTH" | "CHECKSUM" => "0",
                _ => "DEFAULT",
            };
            clauses.push(format!("{name} = {default}"));
        }
    }
}
