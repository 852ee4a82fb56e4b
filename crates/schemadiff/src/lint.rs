//! What a schema change risks, told before it is deployed: data it drops, rows it would send to
//! other shards, uniqueness a sharded table cannot keep, tables the online copy cannot handle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{same_name, KeyKind, Schema, Table};

/// What the linter knows of the keyspace beyond the two schemas.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Rows per table (summed over the shards), where known.
    pub rows: BTreeMap<String, u64>,
    /// Tables spread over shards.
    pub sharded: BTreeSet<String>,
    /// Per table, the columns its vindexes map to shards (primary first).
    pub vindex_columns: BTreeMap<String, Vec<String>>,
    /// Per table, the column sets a unique lookup vindex keeps unique across shards.
    pub unique_lookups: BTreeMap<String, Vec<Vec<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The deploy is refused until the change is changed.
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub table: String,
    /// A short, stable name for the rule.
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{level} [{}] {}: {}",
            self.rule, self.table, self.message
        )
    }
}

/// The findings for changing `from` into `to`, errors first.
pub fn lint(from: &Schema, to: &Schema, context: &Context) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut find = |severity, table: &str, rule, message: String| {
        findings.push(Finding {
            severity,
            table: table.to_string(),
            rule,
            message,
        })
    };
    let rows = |table: &str| context.rows.get(table).copied().unwrap_or(0);
    for (name, old) in &from.tables {
        match to.tables.get(name) {
            None if rows(name) > 0 => find(
                Severity::Warning,
                name,
                "drop-table-with-rows",
                format!("drops the table and its {} rows", rows(name)),
            ),
            None => {}
            Some(new) => {
                for column in &old.columns {
                    let now = new.column(&column.name);
                    let vindex = context
                        .vindex_columns
                        .get(name)
                        .is_some_and(|cols| cols.iter().any(|c| same_name(c, &column.name)));
                    if now.is_none() && rows(name) > 0 {
                        find(
                            Severity::Warning,
                            name,
                            "drop-column-with-rows",
                            format!(
                                "drops column {} and its values in {} rows",
                                column.name,
                                rows(name)
                            ),
                        );
                    }
                    if vindex && now.is_none_or(|c| c.definition != column.definition) {
                        find(
                            Severity::Error,
                            name,
                            "vindex-column",
                            format!(
                                "changes column {}, which a vindex maps to shards: rows would \
                                 no longer be where the vindex says",
                                column.name
                            ),
                        );
                    }
                }
                if old.primary_key().map(|k| &k.definition)
                    != new.primary_key().map(|k| &k.definition)
                    && old.primary_key().is_some()
                {
                    find(
                        Severity::Error,
                        name,
                        "primary-key-change",
                        "changes the primary key: an online migration copies and follows rows \
                         by it, so this change cannot run online"
                            .into(),
                    );
                }
                for key in &new.keys {
                    let added = old
                        .key(&key.name)
                        .is_none_or(|k| k.definition != key.definition);
                    if added && key.kind == KeyKind::Unique && rows(name) > 0 {
                        find(
                            Severity::Warning,
                            name,
                            "unique-on-existing-rows",
                            format!(
                                "adds unique key {}: if existing rows repeat it, the migration fails",
                                key.name
                            ),
                        );
                    }
                }
            }
        }
    }
    for (name, table) in &to.tables {
        let old = from.tables.get(name);
        if table.primary_key().is_none() && old.is_none_or(|o| o.primary_key().is_some()) {
            find(
                Severity::Warning,
                name,
                "no-primary-key",
                "has no primary key: online migrations and resharding copy rows by it".into(),
            );
        }
        if context.sharded.contains(name) {
            unique_across_shards(table, old, context, &mut find);
        }
    }
    findings.sort_by(|a, b| (a.severity, &a.table).cmp(&(b.severity, &b.table)));
    findings
}

/// A new unique key on a sharded table is only unique within each shard, unless it includes
/// the column the table is sharded by, or a unique lookup vindex keeps it.
fn unique_across_shards(
    table: &Table,
    old: Option<&Table>,
    context: &Context,
    find: &mut impl FnMut(Severity, &str, &'static str, String),
) {
    let sharded_by = context
        .vindex_columns
        .get(&table.name)
        .and_then(|cols| cols.first());
    let lookups = context.unique_lookups.get(&table.name);
    for key in &table.keys {
        if !matches!(key.kind, KeyKind::Unique | KeyKind::Primary) {
            continue;
        }
        if old
            .and_then(|o| o.key(&key.name))
            .is_some_and(|k| k.definition == key.definition)
        {
            continue;
        }
        let covered = sharded_by.is_some_and(|s| key.columns.iter().any(|c| same_name(c, s)));
        let looked_up = lookups.is_some_and(|sets| {
            sets.iter().any(|set| {
                set.len() == key.columns.len()
                    && set.iter().zip(&key.columns).all(|(a, b)| same_name(a, b))
            })
        });
        if !covered && !looked_up {
            find(
                Severity::Warning,
                &table.name,
                "unique-per-shard",
                format!(
                    "{} does not include the sharding column{}, and no unique lookup vindex \
                     covers it: it is unique within each shard only",
                    match key.kind {
                        KeyKind::Primary => "the primary key".to_string(),
                        _ => format!("unique key {}", key.name),
                    },
                    sharded_by.map(|s| format!(" {s}")).unwrap_or_default()
                ),
            );
        }
    }
}
