//! Plans run against a fake executor that logs each statement it is asked to run.

use std::sync::{Arc, Mutex};

use vschema::{
    BackendAddr, KeyRange, KeyValue, Keyspace, PoolSize, Shard, VSchema, Vindex, VindexKind,
};

use super::*;

#[derive(Default)]
struct LoggingExecutor {
    log: Mutex<Vec<String>>,
}

impl Executor for LoggingExecutor {
    async fn reserve_ids(
        &self,
        sequence: &vschema::SequenceRef,
        count: u64,
    ) -> Result<u64, EngineError> {
        self.log.lock().unwrap().push(format!(
            "reserve {}.{} {count}",
            sequence.keyspace, sequence.table
        ));
        Ok(100)
    }

    async fn execute<S: RowSink>(
        &self,
        keyspace: &str,
        shard: &str,
        sql: &str,
        sink: &mut S,
    ) -> Result<Outcome, EngineError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("execute {keyspace}/{shard}: {sql}"));
        if sql.starts_with("select") {
            sink.columns(Arc::from(vec![Column::new(
                mysql_common::constants::ColumnType::MYSQL_TYPE_VAR_STRING,
            )
            .with_name(b"shard")]))
                .await?;
            sink.row(vec![Value::Bytes(shard.as_bytes().to_vec())])
                .await?;
        }
        Ok(Outcome {
            affected_rows: 1,
            ..Default::default()
        })
    }
}

#[derive(Default)]
struct Collect {
    columns: usize,
    rows: Vec<Vec<Value>>,
}

impl RowSink for Collect {
    async fn columns(&mut self, _: Arc<[Column]>) -> Result<(), EngineError> {
        self.columns += 1;
        Ok(())
    }
    async fn row(&mut self, row: Vec<Value>) -> Result<(), EngineError> {
        self.rows.push(row);
        Ok(())
    }
}

fn vschema() -> VSchema {
    let addr = BackendAddr::parse("mysql://root@127.0.0.1:1/db").unwrap();
    let shard = |name: &str| Shard {
        name: name.into(),
        range: KeyRange::parse(name).unwrap(),
        primary: addr.clone(),
        replicas: Vec::new(),
    };
    VSchema::new([Keyspace {
        unlisted_tables: None,
        name: "ks".into(),
        sharded: true,
        shards: vec![shard("-80"), shard("80-")],
        spare_shards: Vec::new(),
        tables: Default::default(),
        pool: PoolSize::default(),
        transaction_mode: None,
        max_replica_lag: vschema::MAX_REPLICA_LAG,
        failover_buffer: vschema::FAILOVER_BUFFER,
        auto_failover: false,
        backend_tls: Default::default(),
    }])
}

fn hash() -> Arc<Vindex> {
    Arc::new(Vindex::new("hash", VindexKind::Hash))
}

async fn run(plan: Plan) -> (Vec<String>, Collect, Outcome) {
    let exec = LoggingExecutor::default();
    let mut sink = Collect::default();
    let outcome = execute(&plan, &vschema(), &exec, &mut sink, &ExecOptions::default())
        .await
        .unwrap();
    let mut log = exec.log.into_inner().unwrap();
    log.sort();
    (log, sink, outcome)
}

fn route(opcode: Opcode, query: &str) -> Plan {
    Plan::Route(Route {
        keyspace: "ks".into(),
        opcode,
        query: query.into(),
        elsewhere: None,
    })
}

// hash(1) = 166b.. lives on -80, hash(4) = d2fd.. on 80-, hash(2) = 06e7.. on -80.

#[tokio::test]
async fn equal_unique_reaches_one_shard() {
    let (log, sink, _) = run(route(
        Opcode::EqualUnique {
            vindex: hash(),
            value: KeyValue::Int(4),
        },
        "select 4",
    ))
    .await;
    assert_eq!(log, ["execute ks/80-: select 4"]);
    assert_eq!(sink.rows, [vec![Value::Bytes(b"80-".to_vec())]]);
}

#[tokio::test]
async fn in_reaches_only_owning_shards() {
    let values = vec![KeyValue::Int(1), KeyValue::Int(2)];
    let (log, _, _) = run(route(
        Opcode::In {
            vindex: hash(),
            values,
        },
        "select in",
    ))
    .await;
    assert_eq!(log, ["execute ks/-80: select in"]);
}

#[tokio::test]
async fn scatter_concatenates_rows_with_one_header() {
    let (log, sink, _) = run(route(Opcode::Scatter, "select all")).await;
    assert_eq!(
        log,
        ["execute ks/-80: select all", "execute ks/80-: select all"]
    );
    assert_eq!(sink.columns, 1);
    assert_eq!(
        sink.rows,
        [
            vec![Value::Bytes(b"-80".to_vec())],
            vec![Value::Bytes(b"80-".to_vec())]
        ]
    );
}

#[tokio::test]
async fn scatter_dml_sums_affected_rows() {
    let (_, _, outcome) = run(route(Opcode::Scatter, "delete from t")).await;
    assert_eq!(outcome.affected_rows, 2);
}

#[tokio::test]
async fn insert_splits_rows_by_shard() {
    let row = |v: i64| InsertRow {
        value: Some(KeyValue::Int(v)),
        values: vec![v.to_string()],
        generate: false,
        lookup_values: vec![],
    };
    let plan = Plan::Insert(Insert {
        keyspace: "ks".into(),
        table: "t".into(),
        vindex: hash(),
        prefix: "insert into t (id) values ".into(),
        rows: vec![row(1), row(4), row(2)],
        suffix: String::new(),
        generate: None,
        lookups: vec![],
        returning: false,
        from_select: false,
    });
    let (log, _, outcome) = run(plan).await;
    assert_eq!(
        log,
        [
            "execute ks/-80: insert into t (id) values (1), (2)",
            "execute ks/80-: insert into t (id) values (4)"
        ]
    );
    assert_eq!(outcome.affected_rows, 2);
}

#[tokio::test]
async fn send_reaches_every_shard_and_reports_one() {
    let (log, _, outcome) = run(Plan::Send(Send {
        keyspace: "ks".into(),
        query: "create table t (id int)".into(),
        kind: SendKind::Ddl,
    }))
    .await;
    assert_eq!(log.len(), 2);
    assert_eq!(outcome.affected_rows, 1);
}

#[tokio::test]
async fn insert_with_unmappable_value_is_an_error() {
    let plan = Plan::Insert(Insert {
        keyspace: "ks".into(),
        table: "t".into(),
        vindex: hash(),
        prefix: "insert into t (id) values ".into(),
        rows: vec![InsertRow {
            value: Some(KeyValue::Text(b"abc".to_vec())),
            values: vec!["'abc'".into()],
            generate: false,
            lookup_values: vec![],
        }],
        suffix: String::new(),
        generate: None,
        lookups: vec![],
        returning: false,
        from_select: false,
    });
    let err = execute(
        &plan,
        &vschema(),
        &LoggingExecutor::default(),
        &mut Collect::default(),
        &ExecOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::Vindex(_)), "{err}");
}

#[tokio::test]
async fn insert_fills_ids_from_the_sequence_and_routes_by_them() {
    // The sequence hands out 100, 101, 102 (the fake reserves at 100): hash(100) and hash(102)
    // decide the shards; the explicit id 4 stays as written.
    let generated = |name: &str| InsertRow {
        value: None,
        values: vec!["NULL".into(), format!("'{name}'")],
        generate: true,
        lookup_values: vec![],
    };
    let plan = Plan::Insert(Insert {
        keyspace: "ks".into(),
        table: "t".into(),
        vindex: hash(),
        prefix: "insert into t (id, name) values ".into(),
        rows: vec![
            generated("a"),
            InsertRow {
                value: Some(KeyValue::Int(4)),
                values: vec!["4".into(), "'b'".into()],
                generate: false,
                lookup_values: vec![],
            },
            generated("c"),
            generated("d"),
        ],
        suffix: String::new(),
        generate: Some(Generate {
            sequence: vschema::SequenceRef {
                keyspace: "main".into(),
                table: "seq".into(),
            },
            column: 0,
        }),
        lookups: vec![],
        returning: false,
        from_select: false,
    });
    let (log, _, outcome) = run(plan).await;
    assert_eq!(log[log.len() - 1], "reserve main.seq 3");
    let shard_of = |id: i64| {
        let ks = vschema();
        let k = ks.keyspace("ks").unwrap();
        k.shards[k.shard_for(&VindexKind::Hash.map(&KeyValue::Int(id)).unwrap())]
            .name
            .clone()
    };
    let mut want: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (id, name) in [(100, "a"), (4, "b"), (101, "c"), (102, "d")] {
        want.entry(shard_of(id))
            .or_default()
            .push(format!("({id}, '{name}')"));
    }
    for (shard, rows) in want {
        let line = format!(
            "execute ks/{shard}: insert into t (id, name) values {}",
            rows.join(", ")
        );
        assert!(log.contains(&line), "{line} not in {log:?}");
    }
    assert_eq!(outcome.last_insert_id, 100, "the first generated id");
}

/// Shards that answer with text rows, as the backend connections hand them over: one column of
/// utf8mb4_general_ci text per row.
struct TextShards(Vec<(&'static str, Vec<&'static str>)>);

impl Executor for TextShards {
    async fn reserve_ids(&self, _: &vschema::SequenceRef, _: u64) -> Result<u64, EngineError> {
        unreachable!("no sequences here")
    }

    async fn execute<S: RowSink>(
        &self,
        _keyspace: &str,
        shard: &str,
        _sql: &str,
        sink: &mut S,
    ) -> Result<Outcome, EngineError> {
        let column = Column::new(mysql_common::constants::ColumnType::MYSQL_TYPE_VAR_STRING)
            .with_name(b"c")
            .with_character_set(45);
        sink.columns(Arc::from(vec![column])).await?;
        let (_, rows) = self.0.iter().find(|(s, _)| *s == shard).unwrap();
        for text in rows {
            let mut payload = vec![u8::try_from(text.len()).unwrap()];
            payload.extend_from_slice(text.as_bytes());
            sink.text_row(&payload, 1).await?;
        }
        Ok(Outcome::default())
    }
}

#[tokio::test]
async fn distinct_over_a_merge_keeps_the_first_row_of_each_group() {
    use crate::collation::Collation;
    let key = vec![SortKey {
        column: 0,
        weight: Weight::Collation(Collation::GeneralCi),
        desc: false,
    }];
    let plan = |stages: Vec<Stage>| {
        Plan::Merge(MergedSelect {
            route: Route {
                keyspace: "ks".into(),
                opcode: Opcode::Scatter,
                query: "SELECT DISTINCT c FROM t ORDER BY 1".into(),
                elsewhere: None,
            },
            merge: key.clone(),
            stages,
            wildcard: None,
        })
    };
    let shards = TextShards(vec![
        ("-80", vec!["a", "b", "b ", "d"]),
        ("80-", vec!["A", "B", "c", "c", "D"]),
    ]);
    let distinct = vec![
        Stage::OrderedAggregate {
            group: key.clone(),
            aggregates: vec![],
            rollup: false,
        },
        Stage::Projection {
            columns: vec![OutputColumn::Column(0)],
        },
    ];
    // Relayed (the groups are all there is) and through the stages (a filter in between):
    // the same rows, the first of each group in shard order.
    let always = Stage::Filter {
        predicate: EvalExpr::Literal(Literal::Int(1)),
    };
    let mut filtered = distinct.clone();
    filtered.insert(1, always);
    for stages in [distinct, filtered] {
        let mut sink = Collect::default();
        execute(
            &plan(stages),
            &vschema(),
            &shards,
            &mut sink,
            &ExecOptions::default(),
        )
        .await
        .unwrap();
        let got: Vec<Value> = sink.rows.into_iter().flatten().collect();
        let want = ["a", "b", "c", "d"].map(|s| Value::Bytes(s.into()));
        assert_eq!(got, want);
    }
}
