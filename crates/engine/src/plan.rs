//! The primitives a plan is made of, and `describe`, the one way a plan is printed (golden tests,
//! `shardgate explain`).

use std::fmt::Write;
use std::sync::Arc;

use vschema::{KeyValue, Vindex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Route(Route),
    Insert(Insert),
    Send(Send),
}

/// Sends one statement to the shards its opcode selects, unchanged on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub keyspace: String,
    pub opcode: Opcode,
    pub query: String,
}

/// Which shards a [`Route`] reaches. Shards are resolved at execution time from the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opcode {
    /// The keyspace's only shard. Requires an unsharded keyspace.
    Unsharded,
    /// Any one shard. Requires that every table read is a reference table (a full copy per shard).
    Reference,
    /// Exactly one shard. Requires a unique vindex and one value for its column.
    EqualUnique {
        vindex: Arc<Vindex>,
        value: KeyValue,
    },
    /// The shards owning these values. Requires a unique vindex; the statement itself keeps the
    /// whole list, each shard filtering its own rows.
    In {
        vindex: Arc<Vindex>,
        values: Vec<KeyValue>,
    },
    /// Every shard; rows are concatenated, affected rows summed. Requires a statement whose result
    /// needs no merging (no ORDER BY, LIMIT, aggregates, GROUP BY, DISTINCT or HAVING).
    Scatter,
}

impl Opcode {
    pub fn name(&self) -> &'static str {
        match self {
            Opcode::Unsharded => "Unsharded",
            Opcode::Reference => "Reference",
            Opcode::EqualUnique { .. } => "EqualUnique",
            Opcode::In { .. } => "In",
            Opcode::Scatter => "Scatter",
        }
    }

    /// Whether the opcode always reaches exactly one shard.
    pub fn is_single_shard(&self) -> bool {
        matches!(
            self,
            Opcode::Unsharded | Opcode::Reference | Opcode::EqualUnique { .. }
        )
    }
}

/// A multi-row INSERT into a sharded table, split by target shard: each shard gets one INSERT with
/// `prefix`, its own rows joined by `,`, and `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    pub keyspace: String,
    pub table: String,
    pub vindex: Arc<Vindex>,
    /// `INSERT INTO t (a, b) VALUES `
    pub prefix: String,
    pub rows: Vec<InsertRow>,
    /// ` ON DUPLICATE KEY UPDATE ...`, or empty.
    pub suffix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertRow {
    /// The row's value for the primary vindex column.
    pub value: KeyValue,
    /// The row as SQL: `(1, 'x')`.
    pub sql: String,
}

/// Sends one statement to every shard of a keyspace and reports the first shard's outcome: DDL,
/// and writes to reference tables (every copy changes the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub keyspace: String,
    pub query: String,
}

impl Plan {
    /// The plan as an indented tree, one primitive per line.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        match self {
            Plan::Route(r) => {
                let _ = write!(out, "Route {} {}", r.opcode.name(), r.keyspace);
                match &r.opcode {
                    Opcode::EqualUnique { vindex, value } => {
                        let _ = write!(out, " vindex={} value={}", vindex.name, value);
                    }
                    Opcode::In { vindex, values } => {
                        let vals: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                        let _ = write!(out, " vindex={} values=[{}]", vindex.name, vals.join(", "));
                    }
                    _ => {}
                }
                let _ = write!(out, "\n  query: {}", r.query);
            }
            Plan::Insert(i) => {
                let _ = write!(
                    out,
                    "Insert {} table={} vindex={}",
                    i.keyspace, i.table, i.vindex.name
                );
                for row in &i.rows {
                    let _ = write!(out, "\n  row value={}: {}", row.value, row.sql);
                }
                let _ = write!(out, "\n  query: {}…{}", i.prefix, i.suffix);
            }
            Plan::Send(s) => {
                let _ = write!(out, "Send AllShards {}\n  query: {}", s.keyspace, s.query);
            }
        }
        out
    }
}
