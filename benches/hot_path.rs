//! Criterion micro-benchmarks of the pieces every query pays for: a plan-cache hit (normalise,
//! look up, bind), vindex hashing, the k-way merge of a sorted scatter query, and row encoding.
//! `cargo bench --bench hot_path`.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::{Column, EngineError, Executor, Outcome, RowSink, Value};
use frontend::ColumnType;
use mysql_common::constants::ColumnFlags;
use shardgate::plan_cache::{Cached, PlanCache};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use vschema::{KeyValue, VSchema, VindexKind};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[keyspaces.sbtest]
sharded = true
shards = [
  { name = "-40", primary = "mysql://root@127.0.0.1:1/s" }, { name = "40-80", primary = "mysql://root@127.0.0.1:2/s" },
  { name = "80-c0", primary = "mysql://root@127.0.0.1:3/s" }, { name = "c0-", primary = "mysql://root@127.0.0.1:4/s" },
]
vindexes.hash = { type = "hash" }
tables.sbtest1 = { primary_vindex = { column = "id", vindex = "hash" } }
"#;

fn vschema() -> Arc<VSchema> {
    vschema::parse_config(CONFIG, Path::new("bench.toml"))
        .expect("bench config")
        .vschema
}

/// What the gate does for a text statement whose plan is cached: normalise, look the template up,
/// bind this statement's literals.
fn plan_cache_hit(c: &mut Criterion) {
    let vschema = vschema();
    let template = "SELECT c FROM sbtest1 WHERE id=?1";
    let stmt = &Parser::parse_sql(&MySqlDialect {}, template).unwrap()[0];
    let ctx = planner::Context {
        vschema: &vschema,
        keyspace: Some("sbtest"),
        catalog: &planner::Catalog::default(),
    };
    let plan = planner::plan(stmt, template, &ctx).unwrap();
    let cache = PlanCache::new(10_000);
    let sql = "SELECT c FROM sbtest1 WHERE id=5021";
    let n = planner::normalize(sql, false).expect("normalisable");
    let key = format!("{}\0sbtest", n.text);
    cache.insert(key, Cached::Template(Box::new(plan)));

    c.bench_function("plan_cache_hit/point_select", |b| {
        b.iter(|| {
            let n = planner::normalize(sql, false).unwrap();
            let literals = n.literals(sql, &[]).unwrap();
            let mut key = String::with_capacity(n.text.len() + 7);
            key.push_str(&n.text);
            key.push_str("\0sbtest");
            let cached = cache.get(&key).unwrap();
            let Cached::Template(t) = &*cached else {
                panic!("cached as a template")
            };
            planner::bind(t, &literals, &vschema).unwrap()
        })
    });
}

fn vindex_hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("vindex");
    let mut id = 0i64;
    g.bench_function("hash", |b| {
        b.iter(|| {
            id += 1;
            VindexKind::Hash.map(&KeyValue::Int(id)).unwrap()
        })
    });
    let text = KeyValue::Text(b"some-customer@example.com".to_vec());
    g.bench_function("xxhash", |b| {
        b.iter(|| VindexKind::Xxhash.map(&text).unwrap())
    });
    g.finish();
}

/// Four shards answering `ORDER BY id` with 10,000 rows each, merged into one sorted stream.
/// Each shard hands over text rows (the payloads of row packets, as the backend connections
/// hand them over), encoded before the timed run: what is timed is the merge.
struct SortedShards {
    columns: Arc<[Column]>,
    rows: Vec<Vec<Vec<u8>>>,
}

impl Executor for SortedShards {
    async fn execute<S: RowSink>(
        &self,
        _keyspace: &str,
        shard: &str,
        _sql: &str,
        sink: &mut S,
    ) -> Result<Outcome, EngineError> {
        let i = ["-40", "40-80", "80-c0", "c0-"]
            .iter()
            .position(|s| *s == shard)
            .expect("a bench shard");
        sink.columns(self.columns.clone()).await?;
        for row in &self.rows[i] {
            sink.text_row(row, self.columns.len()).await?;
        }
        Ok(Outcome::default())
    }

    async fn reserve_ids(
        &self,
        _sequence: &vschema::SequenceRef,
        _count: u64,
    ) -> Result<u64, EngineError> {
        unreachable!("no sequences here")
    }
}

#[derive(Default)]
struct Count(usize);

impl RowSink for Count {
    async fn columns(&mut self, _columns: Arc<[Column]>) -> Result<(), EngineError> {
        Ok(())
    }
    async fn row(&mut self, _row: Vec<Value>) -> Result<(), EngineError> {
        self.0 += 1;
        Ok(())
    }
    // Like the client's sink, which writes a text row out as it is.
    async fn text_row(&mut self, _payload: &[u8], _columns: usize) -> Result<(), EngineError> {
        self.0 += 1;
        Ok(())
    }
}

fn k_way_merge(c: &mut Criterion) {
    const PER_SHARD: usize = 10_000;
    let vschema = vschema();
    let sql = "SELECT id, c FROM sbtest1 ORDER BY id";
    let stmt = &Parser::parse_sql(&MySqlDialect {}, sql).unwrap()[0];
    // The catalog as the shards list sbtest1: an integer id, which the merge orders without a
    // weight column.
    let catalog = planner::Catalog::default().with_keyspace(
        "sbtest",
        [
            ("id", "int", None),
            ("c", "char", Some("utf8mb4_general_ci")),
        ]
        .map(|(column, data_type, collation)| planner::CatalogColumn {
            order: planner::KeyOrder::of(data_type, collation),
            ..planner::CatalogColumn::plain("sbtest1", column)
        }),
    );
    let ctx = planner::Context {
        vschema: &vschema,
        keyspace: Some("sbtest"),
        catalog: &catalog,
    };
    let plan = planner::plan(stmt, sql, &ctx).unwrap();
    let columns: Arc<[Column]> = Arc::from(vec![
        Column::new(ColumnType::MYSQL_TYPE_LONGLONG)
            .with_name(b"id")
            .with_flags(ColumnFlags::NOT_NULL_FLAG | ColumnFlags::PRI_KEY_FLAG),
        Column::new(ColumnType::MYSQL_TYPE_VAR_STRING).with_name(b"c"),
    ]);
    // Shard i holds ids i, i+4, i+8, ...: the merge interleaves all four all the way.
    let rows = (0..4)
        .map(|s| {
            (0..PER_SHARD)
                .map(|r| {
                    let id = (r * 4 + s).to_string();
                    let c = format!("{id:0>60}");
                    let mut payload = vec![id.len() as u8];
                    payload.extend_from_slice(id.as_bytes());
                    payload.push(c.len() as u8);
                    payload.extend_from_slice(c.as_bytes());
                    payload
                })
                .collect()
        })
        .collect();
    let shards = SortedShards { columns, rows };
    let options = engine::ExecOptions {
        max_buffered_rows: 100_000,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("merge");
    g.throughput(Throughput::Elements((4 * PER_SHARD) as u64));
    g.sample_size(20);
    g.bench_function("order_by_4x10k", |b| {
        b.iter(|| {
            let mut sink = Count::default();
            rt.block_on(engine::execute(
                &plan, &vschema, &shards, &mut sink, &options,
            ))
            .unwrap();
            assert_eq!(sink.0, 4 * PER_SHARD);
        })
    });
    g.finish();
}

fn row_encoding(c: &mut Criterion) {
    // sbtest's row: id INT, k INT, c CHAR(120), pad CHAR(60).
    let row = vec![
        Value::Bytes(b"5021".to_vec()),
        Value::Bytes(b"4993".to_vec()),
        Value::Bytes(vec![b'7'; 119]),
        Value::Bytes(vec![b'3'; 59]),
    ];
    let types = [
        (ColumnType::MYSQL_TYPE_LONG, ColumnFlags::NOT_NULL_FLAG),
        (ColumnType::MYSQL_TYPE_LONG, ColumnFlags::NOT_NULL_FLAG),
        (ColumnType::MYSQL_TYPE_STRING, ColumnFlags::NOT_NULL_FLAG),
        (ColumnType::MYSQL_TYPE_STRING, ColumnFlags::NOT_NULL_FLAG),
    ];
    let mut buf = Vec::with_capacity(512);
    let mut g = c.benchmark_group("row_encoding");
    g.bench_function("text", |b| {
        b.iter(|| {
            buf.clear();
            frontend::encode::text_row(&mut buf, &row);
            buf.len()
        })
    });
    g.bench_function("binary", |b| {
        b.iter(|| {
            buf.clear();
            frontend::encode::binary_row(&mut buf, &types, &row).unwrap();
            buf.len()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    plan_cache_hit,
    vindex_hashing,
    k_way_merge,
    row_encoding
);
criterion_main!(benches);
