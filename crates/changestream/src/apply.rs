//! Row changes as SQL for a target table: a copy, a shadow table with another schema, a
//! table on another shard. Values are rendered from the binlog's types, never re-parsed text,
//! so that they arrive as they were: text under its own character set, timestamps as instants.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use mysql_common::constants::ColumnType;
use mysql_common::value::Value;

use crate::table::{ColumnMeta, Table};
use crate::{Change, ChangeStreamError};

/// The table changes are applied to, and its columns: a source column it lacks is left out
/// (a dropped column), one it has beyond the source's takes its default (an added column).
#[derive(Debug, Clone)]
pub struct Target {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
}

impl Target {
    /// `schema.table`'s columns as the server at `conn` lists them.
    pub async fn read(
        conn: &mut Conn,
        schema: &str,
        table: &str,
    ) -> Result<Target, ChangeStreamError> {
        let columns: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (schema, table),
            )
            .await?;
        if columns.is_empty() {
            return Err(ChangeStreamError::Event(format!(
                "no table {schema}.{table} to apply changes to"
            )));
        }
        Ok(Target {
            schema: schema.to_string(),
            table: table.to_string(),
            columns,
        })
    }

    fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c.eq_ignore_ascii_case(column))
    }
}

/// Renders changes as statements. Inserts and updates are `REPLACE`s and deletes go by the
/// primary key, so a change applied twice (a copy that overlaps the stream) does no harm.
pub struct Applier {
    /// Each collation id's character set, for text literals' introducers.
    charsets: HashMap<u16, String>,
}

impl Applier {
    /// Reads the collations of the server changes go to. The connection that applies them
    /// must use `time_zone = '+00:00'` (see [`Applier::session`]): timestamps go as instants.
    pub async fn new(conn: &mut Conn) -> Result<Applier, ChangeStreamError> {
        // MariaDB lists some collations more than once, once without an id.
        let rows: Vec<(u16, String)> = conn
            .query(
                "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS \
                 WHERE ID IS NOT NULL AND CHARACTER_SET_NAME IS NOT NULL",
            )
            .await?;
        Ok(Applier {
            charsets: rows.into_iter().collect(),
        })
    }

    /// The settings the applying connection needs.
    pub fn session() -> &'static str {
        "SET time_zone = '+00:00', sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')"
    }

    /// The statements that apply `change` to `target` (none for a boundary).
    pub fn statements(
        &self,
        change: &Change,
        target: &Target,
    ) -> Result<Vec<String>, ChangeStreamError> {
        Ok(match change {
            Change::Insert { table, row } => vec![self.replace(table, row, target)?],
            Change::Update {
                table,
                before,
                after,
            } => {
                let mut out = Vec::new();
                let key_moved = key(table).into_iter().any(|i| !same(&before[i], &after[i]));
                if key_moved {
                    out.push(self.delete(table, before, target)?);
                }
                out.push(self.replace(table, after, target)?);
                out
            }
            Change::Delete { table, row } => vec![self.delete(table, row, target)?],
            _ => Vec::new(),
        })
    }

    fn replace(
        &self,
        table: &Table,
        row: &[Value],
        target: &Target,
    ) -> Result<String, ChangeStreamError> {
        let (mut names, mut values) = (Vec::new(), Vec::new());
        for (column, value) in table.columns.iter().zip(row) {
            if target.has(&column.name) {
                names.push(ident(&column.name));
                values.push(self.literal(column, value));
            }
        }
        Ok(format!(
            "REPLACE INTO {}.{} ({}) VALUES ({})",
            ident(&target.schema),
            ident(&target.table),
            names.join(", "),
            values.join(", ")
        ))
    }

    fn delete(
        &self,
        table: &Table,
        row: &[Value],
        target: &Target,
    ) -> Result<String, ChangeStreamError> {
        let keyed = !table.primary_key.is_empty();
        let mut conditions = Vec::new();
        for i in key(table) {
            let column = &table.columns[i];
            if !target.has(&column.name) {
                return Err(ChangeStreamError::Event(format!(
                    "{}.{} lacks the key column {}",
                    target.schema, target.table, column.name
                )));
            }
            conditions.push(format!(
                "{} <=> {}",
                ident(&column.name),
                self.literal(column, &row[i])
            ));
        }
        Ok(format!(
            "DELETE FROM {}.{} WHERE {}{}",
            ident(&target.schema),
            ident(&target.table),
            conditions.join(" AND "),
            if keyed { "" } else { " LIMIT 1" }
        ))
    }

    /// `value` of `column` as SQL.
    pub fn literal(&self, column: &ColumnMeta, value: &Value) -> String {
        use ColumnType::*;
        let bytes = match value {
            Value::NULL => return "NULL".into(),
            // mysql_common reads a signed MEDIUMINT without its sign.
            Value::Int(i)
                if column.kind == MYSQL_TYPE_INT24 && !column.unsigned && *i >= 1 << 23 =>
            {
                return (i - (1 << 24)).to_string()
            }
            Value::Int(i) => {
                return match column.kind {
                    MYSQL_TYPE_ENUM => self.member(column, *i as u64, false),
                    MYSQL_TYPE_TIMESTAMP => instant(&i.to_string()),
                    _ => i.to_string(),
                }
            }
            Value::UInt(u) => return u.to_string(),
            Value::Float(f) => return format!("{f:?}"),
            Value::Double(d) => return format!("{d:?}"),
            Value::Date(y, m, d, h, i, s, us) => {
                return match column.kind {
                    MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => format!("'{y:04}-{m:02}-{d:02}'"),
                    _ => format!("'{y:04}-{m:02}-{d:02} {h:02}:{i:02}:{s:02}.{us:06}'"),
                }
            }
            Value::Time(negative, days, h, m, s, us) => {
                let hours = u64::from(*days) * 24 + u64::from(*h);
                let sign = if *negative { "-" } else { "" };
                return format!("'{sign}{hours}:{m:02}:{s:02}.{us:06}'");
            }
            Value::Bytes(b) => b,
        };
        match column.kind {
            MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => text_as_is(bytes),
            MYSQL_TYPE_TIMESTAMP2 => instant(&String::from_utf8_lossy(bytes)),
            // mysql_common reads the year 0000 (stored as 0) as 1900, a year YEAR cannot hold.
            MYSQL_TYPE_YEAR if bytes == b"1900" => "0".into(),
            MYSQL_TYPE_YEAR => text_as_is(bytes),
            MYSQL_TYPE_SET => {
                let mut bits = [0u8; 8];
                let n = bytes.len().min(8);
                bits[..n].copy_from_slice(&bytes[..n]);
                self.member(column, u64::from_le_bytes(bits), true)
            }
            _ => self.text(column.collation, bytes),
        }
    }

    /// Bytes under a collation's character set: hex, so that nothing in them is read as SQL,
    /// with an introducer so that the server converts them if the target's set differs.
    fn text(&self, collation: u16, bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        let hex = if hex.is_empty() {
            "''".to_string()
        } else {
            format!("X'{hex}'")
        };
        match self.charsets.get(&collation) {
            Some(charset) if collation != 63 => format!("_{charset} {hex}"),
            _ => hex,
        }
    }

    /// An ENUM's index or a SET's bits as member text (the numbers themselves when the binlog
    /// did not list the members).
    fn member(&self, column: &ColumnMeta, n: u64, set: bool) -> String {
        if column.members.is_empty() {
            return n.to_string();
        }
        let chosen: Vec<&[u8]> = match set {
            true => (0..column.members.len().min(64))
                .filter(|bit| n & (1 << bit) != 0)
                .map(|bit| column.members[bit].as_slice())
                .collect(),
            // Index 0 is the error value ''.
            false => match n {
                0 => vec![&b""[..]],
                n => vec![column
                    .members
                    .get(n as usize - 1)
                    .map_or(&b""[..], Vec::as_slice)],
            },
        };
        self.text(column.collation, &chosen.join(&b","[..]))
    }
}

/// The primary key's columns, or every column for a table without one.
fn key(table: &Table) -> Vec<usize> {
    match table.primary_key.is_empty() {
        true => (0..table.columns.len()).collect(),
        false => table.primary_key.clone(),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    a == b
}

/// Seconds since the epoch (with a fraction) as a TIMESTAMP: the instant, under the applying
/// session's UTC. TIMESTAMP's zero value stays zero.
fn instant(seconds: &str) -> String {
    match seconds.trim_end_matches(['0', '.']).is_empty() {
        true => "'0000-00-00 00:00:00'".into(),
        false => format!("FROM_UNIXTIME({seconds})"),
    }
}

/// Digits the binlog decoder wrote (decimals, years): safe as they are.
fn text_as_is(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '.' | '-'))
        .collect()
}

fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
