//! The change stream against real MariaDB servers writing row binlogs: every column type goes
//! through the stream into a copy that then equals its source; a stream resumes from a stored
//! position, and across a lost connection, yielding each transaction once.

use std::time::Duration;

use changestream::{
    current_position, Applier, Change, ChangeStream, ChangeStreamError, Position, StreamOptions,
    Tables, Target,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};

const TABLE: &str = "CREATE TABLE {db}.everything (
    id INT NOT NULL,
    tiny TINYINT, small SMALLINT UNSIGNED, medium MEDIUMINT, big BIGINT UNSIGNED, signed_big BIGINT,
    dec_col DECIMAL(30,10), flt FLOAT, dbl DOUBLE, bits BIT(10),
    latin CHAR(10) CHARACTER SET latin1, utf VARCHAR(300) CHARACTER SET utf8mb4,
    mb3 VARCHAR(40) CHARACTER SET utf8mb3, ucs TEXT CHARACTER SET ucs2,
    cyr VARCHAR(20) CHARACTER SET cp1251, bin BINARY(4), varbin VARBINARY(20), blob_col BLOB,
    medium_blob MEDIUMBLOB, day DATE, moment DATETIME(6), stamp TIMESTAMP(3) NULL DEFAULT NULL,
    span TIME(4), yr YEAR, doc JSON, kind ENUM('small','medium','large'),
    flags SET('a','b','c','d'),
    PRIMARY KEY (id)
)";

const ROWS: &[&str] = &[
    "(1, -128, 65535, -8388608, 18446744073709551615, -9223372036854775808, \
      -12345678901234567890.0123456789, 1.5, -2.718281828459045, b'1010101010', \
      'caf\\xe9', 'emoji 😀 and ñ', 'ünïcödé', 'wide ✓', 'привет', X'00FF0102', X'', \
      X'DEADBEEF', REPEAT('x', 70000), '2024-02-29', '2024-02-29 23:59:59.999999', \
      '2038-01-19 03:14:07.999', '-838:59:59.0000', 2155, '{\"a\": [1, 2.5, null]}', \
      'large', 'a,d')",
    "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(3, 0, 0, 0, 0, 0, 0, 0, 0, b'0', '', '', '', '', '', X'00000000', X'00', X'', '', \
      '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01', '00:00:00', 0, '{}', \
      'small', '')",
    "(4, 127, 1, 8388607, 1, 9223372036854775807, 0.0000000001, 3.4e38, 1e-300, b'1111111111', \
      'it''s', 'quote '' and \\\\ backslash', 'tab\\there', 'x', 'ё', X'61620000', X'0A0D', \
      X'00', 'm', '9999-12-31', '9999-12-31 23:59:59.000001', '2001-02-03 04:05:06.789', \
      '12:34:56.7891', 1901, '[\"ü\", {\"k\": true}]', 'medium', 'a,b,c,d')",
];

fn opts(server: &testkit::MariaDb) -> Opts {
    Opts::from_url(&server.url("src")).expect("a server url")
}

async fn setup(server: &testkit::MariaDb) -> Conn {
    let mut conn = Conn::new(opts(server)).await.unwrap();
    for db in ["src", "copy"] {
        conn.query_drop(TABLE.replace("{db}", db)).await.unwrap();
    }
    conn
}

/// Applies what the stream yields to `copy.everything` until it has passed `until`, each
/// transaction in one; the changes seen.
async fn follow(
    stream: &mut ChangeStream,
    applier: &Applier,
    conn: &mut Conn,
    until: &Position,
) -> Vec<Change> {
    let target = Target::read(conn, "copy", "everything").await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !stream.position().covers(until) {
        let change = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the stream reaches the position within a minute")
            .unwrap();
        match &change {
            Change::Begin { .. } => conn.query_drop("BEGIN").await.unwrap(),
            Change::Commit { .. } => conn.query_drop("COMMIT").await.unwrap(),
            Change::Rollback => conn.query_drop("ROLLBACK").await.unwrap(),
            Change::Statement { .. } | Change::Heartbeat { .. } => {}
            row => {
                for sql in applier.statements(row, &target).unwrap() {
                    conn.query_drop(&sql)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
            }
        }
        seen.push(change);
    }
    seen
}

async fn contents(conn: &mut Conn, db: &str) -> Vec<Vec<mysql_async::Value>> {
    let rows: Vec<Row> = conn
        .query(format!("SELECT * FROM {db}.everything ORDER BY id"))
        .await
        .unwrap();
    rows.into_iter().map(Row::unwrap).collect()
}

async fn applier_conn(server: &testkit::MariaDb) -> (Applier, Conn) {
    let mut conn = Conn::new(opts(server)).await.unwrap();
    conn.query_drop(Applier::session()).await.unwrap();
    (Applier::new(&mut conn).await.unwrap(), conn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_round_trips_into_a_copy() {
    let servers = testkit::start_binlogged(1, &["src", "copy"]).unwrap();
    let server = &servers[0];
    let mut conn = setup(server).await;
    let from = current_position(&mut conn).await.unwrap();
    let options = StreamOptions {
        tables: Tables::of_schema("src"),
        ..StreamOptions::default()
    };
    let mut stream = ChangeStream::start(opts(server), from, options)
        .await
        .unwrap();

    // Inserts, in one transaction and alone; updates of values and of the key; deletes.
    conn.query_drop(format!(
        "INSERT INTO src.everything VALUES {}, {}",
        ROWS[0], ROWS[1]
    ))
    .await
    .unwrap();
    for row in &ROWS[2..] {
        conn.query_drop(format!("INSERT INTO src.everything VALUES {row}"))
            .await
            .unwrap();
    }
    conn.query_drop(
        "UPDATE src.everything SET utf = CONCAT(utf, '!'), tiny = NULL, kind = 'small', \
         stamp = '2020-06-01 12:00:00.5' WHERE id IN (1, 3)",
    )
    .await
    .unwrap();
    conn.query_drop("UPDATE src.everything SET id = 10 WHERE id = 2")
        .await
        .unwrap();
    conn.query_drop("DELETE FROM src.everything WHERE id = 3")
        .await
        .unwrap();
    // Another schema's writes are not followed.
    conn.query_drop("CREATE TABLE copy.other (x INT)")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO copy.other VALUES (1)")
        .await
        .unwrap();
    let until = current_position(&mut conn).await.unwrap();

    let (applier, mut apply) = applier_conn(server).await;
    let seen = follow(&mut stream, &applier, &mut apply, &until).await;
    assert_eq!(
        contents(&mut conn, "copy").await,
        contents(&mut conn, "src").await
    );
    let checksum = |db: &str| format!("CHECKSUM TABLE {db}.everything");
    let a: Option<(String, i64)> = conn.query_first(checksum("src")).await.unwrap();
    let b: Option<(String, i64)> = conn.query_first(checksum("copy")).await.unwrap();
    assert_eq!(a.unwrap().1, b.unwrap().1);

    let count = |f: fn(&Change) -> bool| seen.iter().filter(|c| f(c)).count();
    assert_eq!(count(|c| matches!(c, Change::Begin { .. })), 6);
    assert_eq!(count(|c| matches!(c, Change::Commit { .. })), 6);
    assert_eq!(count(|c| matches!(c, Change::Insert { .. })), 4);
    assert_eq!(count(|c| matches!(c, Change::Update { .. })), 3);
    assert_eq!(count(|c| matches!(c, Change::Delete { .. })), 1);
    let Some(Change::Insert { table, row }) = seen.get(1) else {
        panic!("the first change after Begin is an insert: {seen:?}")
    };
    assert_eq!(
        (table.schema.as_str(), table.name.as_str()),
        ("src", "everything")
    );
    assert_eq!(table.primary_key, [0]);
    assert_eq!(
        table.columns[26].members.len(),
        4,
        "SET members from the metadata"
    );
    assert_eq!(
        row[4],
        mysql_async::Value::UInt(u64::MAX),
        "unsigned from the metadata"
    );

    // DDL on a followed schema comes as a statement.
    conn.query_drop("ALTER TABLE src.everything ADD COLUMN extra INT")
        .await
        .unwrap();
    let change = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .unwrap()
        .unwrap();
    let Change::Statement { schema, sql, .. } = change else {
        panic!("{change:?}")
    };
    assert_eq!(schema, "src");
    assert!(sql.contains("ADD COLUMN extra"), "{sql}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumes_from_a_stored_position_and_across_a_lost_server() {
    let mut servers = testkit::start_binlogged(1, &["src", "copy"]).unwrap();
    let mut conn = setup(&servers[0]).await;
    let start = current_position(&mut conn).await.unwrap();
    let options = || StreamOptions {
        tables: Tables::of_schema("src"),
        reconnect_for: Duration::from_secs(8),
        ..StreamOptions::default()
    };
    let insert =
        |id: i32| format!("INSERT INTO src.everything (id, utf) VALUES ({id}, 'row {id}')");
    for id in 1..=3 {
        conn.query_drop(insert(id)).await.unwrap();
    }
    let mid = current_position(&mut conn).await.unwrap();
    let (applier, mut apply) = applier_conn(&servers[0]).await;
    let mut stream = ChangeStream::start(opts(&servers[0]), start, options())
        .await
        .unwrap();
    follow(&mut stream, &applier, &mut apply, &mid).await;
    let stored = stream.position().clone();
    drop(stream);

    // Written while no stream ran: a stream from the stored position yields exactly these.
    for id in 4..=5 {
        conn.query_drop(insert(id)).await.unwrap();
    }
    let mut stream = ChangeStream::start(opts(&servers[0]), stored, options())
        .await
        .unwrap();
    let until = current_position(&mut conn).await.unwrap();
    let seen = follow(&mut stream, &applier, &mut apply, &until).await;
    let inserted: Vec<_> = seen
        .iter()
        .filter_map(|c| match c {
            Change::Insert { row, .. } => Some(row[0].clone()),
            _ => None,
        })
        .collect();
    assert_eq!(inserted, [4, 5].map(mysql_async::Value::Int));

    // The server restarts under the stream: it resumes from its last commit.
    drop(conn);
    drop(apply);
    servers[0].restart().unwrap();
    let mut conn = Conn::new(opts(&servers[0])).await.unwrap();
    for id in 6..=8 {
        conn.query_drop(insert(id)).await.unwrap();
    }
    let until = current_position(&mut conn).await.unwrap();
    let (applier, mut apply) = applier_conn(&servers[0]).await;
    follow(&mut stream, &applier, &mut apply, &until).await;
    assert_eq!(
        contents(&mut conn, "copy").await,
        contents(&mut conn, "src").await
    );
    assert_eq!(contents(&mut conn, "copy").await.len(), 8);

    // A server gone for longer than the stream waits: an error naming it.
    servers[0].kill_hard();
    let error = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            if let Err(e) = stream.next().await {
                return e;
            }
        }
    })
    .await
    .expect("the stream gives up within its reconnect window");
    assert!(matches!(error, ChangeStreamError::Lost { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_row_binlogs_is_refused_with_what_to_set() {
    let servers = testkit::start(1, &["src"]).unwrap();
    let mut conn = Conn::new(opts(&servers[0])).await.unwrap();
    let from = current_position(&mut conn).await.unwrap();
    let error = ChangeStream::start(opts(&servers[0]), from, StreamOptions::default())
        .await
        .err()
        .expect("refused");
    let text = error.to_string();
    assert!(matches!(error, ChangeStreamError::Settings(_)), "{text}");
    assert!(text.contains("log_bin = ON"), "{text}");
    assert!(text.contains("binlog_row_metadata = FULL"), "{text}");
}
