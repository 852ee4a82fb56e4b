//! A branch's changes laid over a main that changed since the branch was made: a three-way
//! comparison of the branch's base, main now, and the branch. Each side's changes are counted
//! per part (a table made or dropped, a column, an index, a foreign key, a check, a table
//! option); a part both sides changed, unless to the same thing, is a conflict, as is a change
//! on one side to a table the other side made or dropped.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::{same_name, Column, Named, Schema, Table};

/// A part of a table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The table itself: made or dropped.
    Table,
    Column(String),
    Key(String),
    ForeignKey(String),
    Check(String),
    Option(String),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Table => write!(f, "the table"),
            Part::Column(c) => write!(f, "column {c}"),
            Part::Key(k) => write!(f, "index {k}"),
            Part::ForeignKey(k) => write!(f, "foreign key {k}"),
            Part::Check(c) => write!(f, "check {c}"),
            Part::Option(o) => write!(f, "table option {o}"),
        }
    }
}

/// What one side did to one part: what it is now, `None` when that side removed it.
type Changes = BTreeMap<(String, Part), Option<String>>;

/// A part that main and the branch both changed, each its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub table: String,
    pub part: Part,
    /// What main has now (`None`: dropped).
    pub main: Option<String>,
    /// What the branch has (`None`: dropped).
    pub branch: Option<String>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let said = |s: &Option<String>| match s {
            Some(s) => format!("made it {s}"),
            None => "dropped it".to_string(),
        };
        write!(
            f,
            "table {}: {} changed on main since the branch was made ({}) and on the branch ({})",
            self.table,
            self.part,
            said(&self.main),
            said(&self.branch)
        )
    }
}

/// Main with the branch's changes since `base`: the schema a deploy should give main. The
/// conflicts instead, when the two overlap.
pub fn three_way(base: &Schema, main: &Schema, branch: &Schema) -> Result<Schema, Vec<Conflict>> {
    let ours = changes(base, main);
    let theirs = changes(base, branch);
    let mut conflicts = Vec::new();
    for ((table, part), mine) in &theirs {
        let clash = |other: &Option<String>| Conflict {
            table: table.clone(),
            part: part.clone(),
            main: other.clone(),
            branch: mine.clone(),
        };
        match ours.get(&(table.clone(), part.clone())) {
            Some(other) if other != mine => conflicts.push(clash(other)),
            Some(_) => {}
            None => {
                // A table made or dropped on one side and changed on the other.
                let whole = (table.clone(), Part::Table);
                if *part == Part::Table {
                    if let Some(((_, p), other)) =
                        ours.range(whole.clone()..).find(|((t, _), _)| t == table)
                    {
                        conflicts.push(Conflict {
                            part: p.clone(),
                            ..clash(other)
                        });
                    }
                } else if let Some(other) = ours.get(&whole) {
                    conflicts.push(Conflict {
                        part: Part::Table,
                        ..clash(other)
                    });
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut merged = main.clone();
    for ((table, part), change) in &theirs {
        apply(&mut merged, branch, table, part, change.is_some());
    }
    let dangling = dangling(&merged, &theirs);
    if dangling.is_empty() {
        Ok(merged)
    } else {
        Err(dangling)
    }
}

/// Every part that differs between `from` and `to`, with what `to` has.
fn changes(from: &Schema, to: &Schema) -> Changes {
    let mut changes = Changes::new();
    for (name, table) in &to.tables {
        match from.tables.get(name) {
            None => {
                changes.insert((name.clone(), Part::Table), Some(table.create.clone()));
            }
            Some(old) => parts(old, table, &mut changes),
        }
    }
    for name in from.tables.keys() {
        if !to.tables.contains_key(name) {
            changes.insert((name.clone(), Part::Table), None);
        }
    }
    changes
}

/// A column as compared: its definition, and which of the older table's columns it follows.
/// A column added elsewhere in the table does not move it.
fn placed(column: &Column, table: &Table, old: &Table) -> String {
    let before = table
        .columns
        .iter()
        .take_while(|c| !same_name(&c.name, &column.name))
        .filter(|c| old.column(&c.name).is_some())
        .last()
        .map_or("FIRST".to_string(), |c| format!("AFTER {}", c.name));
    format!("{} {before}", column.definition)
}

fn parts(old: &Table, new: &Table, changes: &mut Changes) {
    let table = &new.name;
    let mut note = |part: Part, was: Option<String>, now: Option<String>| {
        if was != now {
            changes.insert((table.clone(), part), now);
        }
    };
    for column in &old.columns {
        let now = new.column(&column.name).map(|c| placed(c, new, old));
        note(
            Part::Column(column.name.to_ascii_lowercase()),
            Some(placed(column, old, old)),
            now,
        );
    }
    for column in &new.columns {
        if old.column(&column.name).is_none() {
            let part = Part::Column(column.name.to_ascii_lowercase());
            note(part, None, Some(placed(column, new, old)));
        }
    }
    let definitions = |table: &Table| -> Vec<(Part, String)> {
        let named = |part: fn(String) -> Part, list: &[Named]| -> Vec<(Part, String)> {
            list.iter()
                .map(|n| (part(n.name.to_ascii_lowercase()), n.definition.clone()))
                .collect()
        };
        let keys = table
            .keys
            .iter()
            .map(|k| (Part::Key(k.name.to_ascii_lowercase()), k.definition.clone()));
        let options = table
            .options
            .iter()
            .map(|(name, option)| (Part::Option(name.clone()), option.clone()));
        keys.chain(named(Part::ForeignKey, &table.foreign_keys))
            .chain(named(Part::Check, &table.checks))
            .chain(options)
            .collect()
    };
    let (was, now) = (definitions(old), definitions(new));
    let find = |list: &[(Part, String)], part: &Part| {
        list.iter().find(|(p, _)| p == part).map(|(_, d)| d.clone())
    };
    for (part, definition) in &was {
        note(part.clone(), Some(definition.clone()), find(&now, part));
    }
    for (part, definition) in &now {
        if find(&was, part).is_none() {
            note(part.clone(), None, Some(definition.clone()));
        }
    }
}

/// Makes `merged`'s `table` agree with `branch` on `part` (`present`: the branch has it).
fn apply(merged: &mut Schema, branch: &Schema, table: &str, part: &Part, present: bool) {
    if *part == Part::Table {
        match branch.tables.get(table).filter(|_| present) {
            Some(t) => merged.tables.insert(table.to_string(), t.clone()),
            None => merged.tables.remove(table),
        };
        return;
    }
    let (Some(target), Some(source)) = (merged.tables.get_mut(table), branch.tables.get(table))
    else {
        return;
    };
    match part {
        Part::Table => {}
        Part::Column(name) => {
            target.columns.retain(|c| !same_name(&c.name, name));
            let Some(at) = source.columns.iter().position(|c| same_name(&c.name, name)) else {
                return;
            };
            // After the nearest column before it on the branch that main has too.
            let place = source.columns[..at]
                .iter()
                .rev()
                .find_map(|c| {
                    target
                        .columns
                        .iter()
                        .position(|t| same_name(&t.name, &c.name))
                })
                .map_or(0, |i| i + 1);
            target.columns.insert(place, source.columns[at].clone());
        }
        Part::Key(name) => {
            target.keys.retain(|k| !same_name(&k.name, name));
            target.keys.extend(
                source
                    .keys
                    .iter()
                    .filter(|k| same_name(&k.name, name))
                    .cloned(),
            );
        }
        Part::ForeignKey(name) => replace(&mut target.foreign_keys, &source.foreign_keys, name),
        Part::Check(name) => replace(&mut target.checks, &source.checks, name),
        Part::Option(name) => {
            target.options.retain(|(n, _)| n != name);
            target
                .options
                .extend(source.options.iter().filter(|(n, _)| n == name).cloned());
        }
    }
}

fn replace(target: &mut Vec<Named>, source: &[Named], name: &str) {
    target.retain(|n| !same_name(&n.name, name));
    target.extend(source.iter().filter(|n| same_name(&n.name, name)).cloned());
}

/// The branch's indexes that name a column main dropped meanwhile.
fn dangling(merged: &Schema, theirs: &Changes) -> Vec<Conflict> {
    let mut conflicts = Vec::new();
    for ((table, part), change) in theirs {
        let (Part::Key(name), Some(definition)) = (part, change) else {
            continue;
        };
        let Some(target) = merged.tables.get(table) else {
            continue;
        };
        let Some(key) = target.key(name) else {
            continue;
        };
        for column in &key.columns {
            if target.column(column).is_none() {
                conflicts.push(Conflict {
                    table: table.clone(),
                    part: Part::Column(column.clone()),
                    main: None,
                    branch: Some(format!("used by {definition}")),
                });
            }
        }
    }
    conflicts
}
