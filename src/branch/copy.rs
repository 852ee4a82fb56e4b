//! Rows for a new branch: none, all of main's, or a sample. A sample takes, in every table of a
//! sharded keyspace placed by a one-column vindex, the rows whose keyspace ids fall below one
//! cut-off shared by those tables, chosen so that no table gets more than the sample size: a
//! customer sampled has its orders sampled too, so joins still find their rows. Other tables
//! take their first rows by primary key.

use std::collections::BTreeMap;

use engine::Executor as _;
use engine::{Collected, EngineError, Value};
use schemadiff::{Schema, Table};

use super::ident;
use crate::topology::Topology;

/// Rows per copying statement.
const CHUNK: usize = 1000;

/// What rows a new branch gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    None,
    /// At most this many rows per table.
    Sample(usize),
    Full,
}

impl Data {
    /// `none`, `sample` (with `rows` per table) or `full`.
    pub fn parse(name: &str, rows: usize) -> Option<Data> {
        match name {
            "none" => Some(Data::None),
            "sample" => Some(Data::Sample(rows)),
            "full" => Some(Data::Full),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Data::None => "none",
            Data::Sample(_) => "sample",
            Data::Full => "full",
        }
    }
}

/// Which of a table's rows on one shard to copy.
enum Rows {
    All,
    /// Those with these primary keys (as SQL literals).
    Keys(Vec<Vec<String>>),
    First(usize),
}

/// Copies main's rows into branch `branch`'s tables, as `data` says.
pub(super) async fn rows(
    main: &Topology,
    branch: &str,
    base: &BTreeMap<String, Schema>,
    data: Data,
) -> Result<(), EngineError> {
    for ks in main.vschema.keyspaces() {
        let schema = &base[&ks.name];
        let sampled = match data {
            Data::None => return Ok(()),
            Data::Sample(n) if ks.sharded => sample(main, &ks.name, schema, n).await?,
            _ => BTreeMap::new(),
        };
        let per_shard = match data {
            Data::Sample(n) => n.div_ceil(ks.shards.len()),
            _ => 0,
        };
        for (i, shard) in ks.shards.iter().enumerate() {
            let target = vschema::branch_database(&shard.primary.database, branch);
            for table in schema.tables.values() {
                let rows = match (data, sampled.get(&table.name)) {
                    (Data::Full, _) => Rows::All,
                    (_, Some(keys)) => Rows::Keys(keys[i].clone()),
                    _ => Rows::First(per_shard),
                };
                copy_table(main, &ks.name, &shard.name, &target, table, rows).await?;
            }
        }
    }
    Ok(())
}

fn tuple(values: &[String]) -> String {
    match values.len() {
        1 => values[0].clone(),
        _ => format!("({})", values.join(", ")),
    }
}

async fn query(
    topo: &Topology,
    keyspace: &str,
    shard: &str,
    sql: &str,
) -> Result<Vec<Vec<Value>>, EngineError> {
    let mut rows = Collected::default();
    topo.backends
        .execute(keyspace, shard, sql, &mut rows)
        .await?;
    Ok(rows.rows)
}

/// Copies `rows` of `table` on one shard into the same table in database `target` (on the
/// same server), in primary-key chunks.
async fn copy_table(
    topo: &Topology,
    keyspace: &str,
    shard: &str,
    target: &str,
    table: &Table,
    rows: Rows,
) -> Result<(), EngineError> {
    let columns: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !c.generated)
        .map(|c| ident(&c.name))
        .collect();
    let columns = columns.join(", ");
    let insert = format!(
        "INSERT INTO {}.{} ({columns}) SELECT {columns} FROM {}",
        ident(target),
        ident(&table.name),
        ident(&table.name)
    );
    let key: Vec<String> = table
        .primary_key()
        .map(|k| k.columns.iter().map(|c| ident(c)).collect())
        .unwrap_or_default();
    let run = |sql: String| async move {
        topo.backends
            .execute(keyspace, shard, &sql, &mut engine::NoRows)
            .await
            .map(drop)
    };
    match rows {
        Rows::First(n) if key.is_empty() => run(format!("{insert} LIMIT {n}")).await,
        Rows::First(n) => run(format!("{insert} ORDER BY {} LIMIT {n}", key.join(", "))).await,
        Rows::All if key.is_empty() => run(insert).await,
        Rows::All => {
            let key_tuple = tuple(&key);
            let mut last: Option<String> = None;
            loop {
                let after = last
                    .as_ref()
                    .map_or(String::new(), |l| format!(" WHERE {key_tuple} > {l}"));
                let boundary = query(
                    topo,
                    keyspace,
                    shard,
                    &format!(
                        "SELECT {} FROM {}{after} ORDER BY {} LIMIT 1 OFFSET {}",
                        key.join(", "),
                        ident(&table.name),
                        key.join(", "),
                        CHUNK - 1
                    ),
                )
                .await?
                .pop()
                .map(|row| tuple(&row.iter().map(|v| v.as_sql(false)).collect::<Vec<_>>()));
                let mut conditions: Vec<String> =
                    last.iter().map(|l| format!("{key_tuple} > {l}")).collect();
                if let Some(b) = &boundary {
                    conditions.push(format!("{key_tuple} <= {b}"));
                }
                let filter = match conditions.is_empty() {
                    true => String::new(),
                    false => format!(" WHERE {}", conditions.join(" AND ")),
                };
                run(format!("{insert}{filter}")).await?;
                match boundary {
                    Some(b) => last = Some(b),
                    None => return Ok(()),
                }
            }
        }
        Rows::Keys(keys) => {
            for chunk in keys.chunks(CHUNK) {
                let listed: Vec<String> = chunk.iter().map(|k| tuple(k)).collect();
                run(format!(
                    "{insert} WHERE {} IN ({})",
                    tuple(&key),
                    listed.join(", ")
                ))
                .await?;
            }
            Ok(())
        }
    }
}

/// The sample of each table of sharded keyspace `keyspace` placed by a one-column vindex: per
/// shard, the primary keys of its rows whose keyspace ids are below the shared cut-off.
async fn sample(
    main: &Topology,
    keyspace: &str,
    schema: &Schema,
    n: usize,
) -> Result<BTreeMap<String, Vec<Vec<Vec<String>>>>, EngineError> {
    let ks = main.vschema.keyspace(keyspace).expect("a keyspace of main");
    // Per table: (keyspace id, shard index, primary key) of every row.
    let mut placed = BTreeMap::new();
    for table in schema.tables.values() {
        let Some(vschema::Table::Sharded { column, vindex, .. }) = ks.table(&table.name) else {
            continue;
        };
        let Some(pk) = table.primary_key() else {
            continue;
        };
        if column.is_empty() || vindex.multi.is_some() {
            continue;
        }
        let key: Vec<String> = pk.columns.iter().map(|c| ident(c)).collect();
        let sql = format!(
            "SELECT {}, {} FROM {}",
            key.join(", "),
            ident(column),
            ident(&table.name)
        );
        let mut rows = Vec::new();
        for (i, shard) in ks.shards.iter().enumerate() {
            for row in query(main, keyspace, &shard.name, &sql).await? {
                let (pk_values, value) = row.split_at(key.len());
                let Some(ksid) = engine::key_value(&value[0]).and_then(|v| vindex.map(&v).ok())
                else {
                    continue;
                };
                let literals = pk_values.iter().map(|v| v.as_sql(false)).collect();
                rows.push((ksid.0, i, literals));
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        placed.insert(table.name.clone(), rows);
    }
    // The cut-off: the lowest keyspace id that would make some table's sample too big.
    let cutoff = placed
        .values()
        .filter_map(|rows| rows.get(n).map(|r| r.0.clone()))
        .min();
    Ok(placed
        .into_iter()
        .map(|(table, rows)| {
            let mut per_shard = vec![Vec::new(); ks.shards.len()];
            for (ksid, shard, key) in rows {
                if cutoff.as_ref().is_none_or(|c| ksid < *c) {
                    per_shard[shard].push(key);
                }
            }
            (table, per_shard)
        })
        .collect())
}
