//! Real client libraries and tools through shardgate, unmodified: Python (PyMySQL,
//! mysql-connector-python prepared, SQLAlchemy Core), Node.js (mysql2 `execute()` and `query()`),
//! Rust (mysql_async `exec`, sqlx) and the `mysql` command-line client in batch mode and in an
//! interactive session on a pty. The scripts under `tests/clients/` check their own results and
//! fail loudly; these tests also check what they wrote on the shards directly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mysql_async::prelude::Queryable;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs a client program against the proxy; panics with its output unless it succeeds.
fn run_client(program: &Path, args: &[&str]) -> String {
    testkit::run_client(
        Command::new(program).args(args).current_dir(clients_dir()),
        "scripts/setup.sh installs the client libraries",
    )
}

fn python() -> PathBuf {
    clients_dir().join(".venv/bin/python")
}

/// Rows of `table` in keyspace `two` read from both shards directly, each checked to be on the
/// shard its id hashes to.
async fn rows_on_shards(table: &str) -> Vec<(i64, String)> {
    let mut all = Vec::new();
    for shard in ["-80", "80-"] {
        let mut c = shard_conn("two", shard).await;
        let rows: Vec<(i64, String)> = c
            .query(format!("SELECT id, name FROM {table}"))
            .await
            .unwrap();
        for (id, _) in &rows {
            assert_eq!(owner("two", *id), shard, "{table} id {id}");
        }
        all.extend(rows);
    }
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drivers() {
    let proxy = proxy().await;
    let port = proxy.addr.port().to_string();
    let out = run_client(&python(), &["python_clients.py", "127.0.0.1", &port]);
    for driver in ["PyMySQL", "mysql-connector-python", "SQLAlchemy Core"] {
        assert!(out.contains(&format!("ok {driver}")), "{out}");
    }
    let rows = rows_on_shards("py_people").await;
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let want: Vec<i64> = (1..=35).chain(103..110).chain(200..205).collect();
    assert_eq!(ids, want);
    assert!(rows.contains(&(201, "core renamed".to_string())));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_mysql2() {
    let proxy = proxy().await;
    let port = proxy.addr.port().to_string();
    let out = run_client(Path::new("node"), &["node_mysql2.js", "127.0.0.1", &port]);
    assert!(out.contains("ok mysql2"), "{out}");
    let rows = rows_on_shards("node_people").await;
    assert_eq!(rows.len(), 35);
    assert!(rows.contains(&(25, "changed".to_string())));
    proxy.stop().await;
}

/// sqlx: every query is a prepared statement; rows decoded from the binary protocol by type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sqlx() {
    use sqlx::{Connection, Row};
    let proxy = proxy().await;
    let url = format!("mysql://app:secret@{}/two", proxy.addr);
    let mut c = sqlx::MySqlConnection::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE IF EXISTS rs_people")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE rs_people (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL, \
         score DOUBLE NULL, active BOOL NOT NULL)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    for id in 1..=30i64 {
        let done =
            sqlx::query("INSERT INTO rs_people (id, name, score, active) VALUES (?, ?, ?, ?)")
                .bind(id)
                .bind(format!("sqlx {id}"))
                .bind(id as f64 * 0.5)
                .bind(id % 2 == 0)
                .execute(&mut c)
                .await
                .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }
    let row = sqlx::query("SELECT name, score, active FROM rs_people WHERE id = ?")
        .bind(12i64)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("name"), "sqlx 12");
    assert_eq!(row.get::<f64, _>("score"), 6.0);
    assert!(row.get::<bool, _>("active"));
    let (n, total): (i64, f64) =
        sqlx::query_as("SELECT COUNT(*), SUM(score) FROM rs_people WHERE active = ?")
            .bind(true)
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!((n, total), (15, 120.0));
    let ids: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM rs_people WHERE id > ? ORDER BY id DESC LIMIT 3")
            .bind(5i64)
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(ids, [(30,), (29,), (28,)]);
    let mut tx = c.begin().await.unwrap();
    sqlx::query("UPDATE rs_people SET name = ? WHERE id = ?")
        .bind("sqlx renamed")
        .bind(4i64)
        .execute(&mut *tx)
        .await
        .unwrap();
    let gone = sqlx::query("DELETE FROM rs_people WHERE id > ?")
        .bind(25i64)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(gone.rows_affected(), 5);
    tx.commit().await.unwrap();
    c.close().await.unwrap();
    let rows = rows_on_shards("rs_people").await;
    assert_eq!(rows.len(), 25);
    assert!(rows.contains(&(4, "sqlx renamed".to_string())));
    proxy.stop().await;
}

/// The `mysql` client: batch mode over the compressed protocol, then an interactive session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_command_line_client() {
    let proxy = proxy().await;
    let port = proxy.addr.port().to_string();
    let script = "DROP TABLE IF EXISTS cli_people; \
        CREATE TABLE cli_people (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL); \
        INSERT INTO cli_people (id, name) VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four'); \
        UPDATE cli_people SET name = 'THREE' WHERE id = 3; \
        DELETE FROM cli_people WHERE id = 4; \
        SELECT id, name FROM cli_people ORDER BY id; \
        SELECT COUNT(*) AS n FROM cli_people WHERE id IN (1, 3);";
    // The compressed protocol, in batch mode, on keyspace `two`.
    let mysql = |extra: &[&str], sql: &str| {
        let port = format!("-P{port}");
        let mut args = vec![
            "-h127.0.0.1",
            port.as_str(),
            "-uapp",
            "-psecret",
            "--compress",
            "--batch",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["two", "-e", sql]);
        run_client(Path::new("mysql"), &args)
    };
    let out = mysql(&[], script);
    assert_eq!(out, "id\tname\n1\tone\n2\ttwo\n3\tTHREE\nn\n2\n");
    let rows = rows_on_shards("cli_people").await;
    assert_eq!(rows.len(), 3);
    // Compression was negotiated: 200 kB of text crossed the wire in far fewer bytes.
    let before = bytes_sent(&proxy);
    let out = mysql(&["--skip-column-names"], "SELECT REPEAT('ab', 100000)");
    assert_eq!(out.trim_end().len(), 200_000);
    let on_the_wire = bytes_sent(&proxy) - before;
    assert!(on_the_wire < 20_000, "{on_the_wire} bytes sent");

    let out = run_client(&python(), &["mysql_interactive.py", "127.0.0.1", &port]);
    assert!(out.contains("ok mysql interactive"), "{out}");
    proxy.stop().await;
}

/// MySQL's C client library: zstd and zlib protocol compression, and caching_sha2_password full
/// authentication (RSA) for a user known only by its password hash, after which the fast path
/// serves that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libmysqlclient_compression_and_full_authentication() {
    let proxy = proxy().await;
    let port = proxy.addr.port().to_string();
    // Before any full authentication the hash cannot check a caching_sha2 scramble.
    let (_, reply) = login_as(&proxy, "hashed", "caching_sha2_password", b"h4sh").await;
    assert_eq!(reply, [0x01, 0x04], "perform full authentication");
    // mysql_native_password checks against the stored hash directly.
    let url = format!("mysql://hashed:h4sh@{}/two", proxy.addr);
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
        .await
        .unwrap();
    c.ping().await.unwrap();
    let bad = format!("mysql://hashed:h4sx@{}/two", proxy.addr);
    let err = mysql_async::Conn::new(mysql_async::Opts::from_url(&bad).unwrap())
        .await
        .unwrap_err();
    assert_eq!(server_code(&err), Some(1045), "{err}");

    let out = run_client(&python(), &["libmysqlclient.py", "127.0.0.1", &port]);
    for what in ["zstd", "zlib", "caching_sha2 full authentication"] {
        assert!(out.contains(&format!("ok libmysqlclient {what}")), "{out}");
    }
    assert_eq!(rows_on_shards("zstd_people").await.len(), 500);
    // The full authentication taught the fast path.
    let (mut s, reply) = login_as(&proxy, "hashed", "caching_sha2_password", b"h4sh").await;
    assert_eq!(reply, [0x01, 0x03], "fast authentication");
    assert_eq!(read_packet(&mut s).await[0], 0x00);
    proxy.stop().await;
}
