//! Who may do what, and how much: per-user keyspaces (1044) and read-only users (1290), the
//! server's and a user's connection limits (1040, 1226), the query timeout (3024, the backend
//! query killed), the idle client timeout (4031), and `shardgate passwd`. Real MariaDB servers and
//! clients.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

fn servers() -> &'static [testkit::MariaDb] {
    static SERVERS: OnceLock<Vec<testkit::MariaDb>> = OnceLock::new();
    // On a thread of its own: the tests' runtimes cannot block on another one.
    SERVERS.get_or_init(|| std::thread::spawn(init).join().unwrap())
}

fn init() -> Vec<testkit::MariaDb> {
    {
        let servers = testkit::start(2, &["a", "b"]).expect("start MariaDB");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for (i, server) in servers.iter().enumerate() {
                let mut c = Conn::new(Opts::from_url(&server.url("a")).unwrap())
                    .await
                    .unwrap();
                c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
                    .await
                    .unwrap();
                c.query_drop("INSERT INTO t SELECT seq, seq FROM seq_1_to_20")
                    .await
                    .unwrap();
                if i == 0 {
                    c.query_drop("CREATE TABLE b.u (id BIGINT PRIMARY KEY)")
                        .await
                        .unwrap();
                }
            }
        });
        servers
    }
}

async fn proxy(server: &str) -> shardgate::Running {
    let s = servers();
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
{server}

[[users]]
name = "admin"
password = "pw"

[[users]]
name = "reader"
password = "pw"
keyspaces = ["b"]
read_only = true

[[users]]
name = "limited"
password = "pw"
max_connections = 2

[keyspaces.a]
sharded = true
shards = [{{ name = "-80", primary = "{a0}" }}, {{ name = "80-", primary = "{a1}" }}]
vindexes.hash = {{ type = "hash" }}
tables.t = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}

[keyspaces.b]
sharded = false
shards = [{{ name = "0", primary = "{b}" }}]
"#,
        a0 = s[0].url("a"),
        a1 = s[1].url("a"),
        b = s[0].url("b"),
    );
    let config = vschema::parse_config(&text, Path::new("limits.toml")).unwrap();
    shardgate::start(&config, "127.0.0.1:0").await.unwrap()
}

async fn connect(p: &shardgate::Running, user: &str, db: &str) -> Result<Conn, mysql_async::Error> {
    let url = format!("mysql://{user}:pw@127.0.0.1:{}/{db}", p.addr.port());
    Conn::new(Opts::from_url(&url).unwrap()).await
}

fn code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspaces_read_only_users_and_connection_limits() {
    let p = proxy("max_connections = 5").await;

    // The reader has keyspace b only, and may not write.
    let e = connect(&p, "reader", "a").await.unwrap_err();
    assert_eq!(code(&e), Some(1044), "{e}");
    let mut reader = connect(&p, "reader", "b").await.unwrap();
    let e = reader.query_drop("USE a").await.unwrap_err();
    assert_eq!(code(&e), Some(1044), "{e}");
    let e = reader.query_drop("SELECT * FROM a.t").await.unwrap_err();
    assert_eq!(code(&e), Some(1044), "{e}");
    let dbs: Vec<String> = reader.query("SHOW DATABASES").await.unwrap();
    assert_eq!(dbs, ["b"]);
    let ids: Vec<i64> = reader.query("SELECT id FROM u").await.unwrap();
    assert!(ids.is_empty());
    for write in [
        "INSERT INTO u (id) VALUES (1)",
        "UPDATE u SET id = 2",
        "DELETE FROM u",
        "CREATE TABLE v (id INT)",
        "WITH x AS (SELECT 1) DELETE FROM u",
    ] {
        let e = reader.query_drop(write).await.unwrap_err();
        assert_eq!(code(&e), Some(1290), "{write}: {e}");
    }
    let one: Option<i64> = reader
        .query_first("WITH x AS (SELECT 1 AS n) SELECT n FROM x")
        .await
        .unwrap();
    assert_eq!(one, Some(1));
    // Prepared statements are checked the same way.
    let e = reader
        .exec_drop("INSERT INTO u (id) VALUES (?)", (5,))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(1290), "{e}");

    // The admin may write everywhere.
    let mut admin = connect(&p, "admin", "b").await.unwrap();
    admin
        .query_drop("INSERT INTO u (id) VALUES (7)")
        .await
        .unwrap();
    let ids: Vec<i64> = reader.query("SELECT id FROM u").await.unwrap();
    assert_eq!(ids, [7]);
    admin.query_drop("DELETE FROM u").await.unwrap();

    // A user's own limit: 1226 beyond it, room again once one goes.
    let l1 = connect(&p, "limited", "a").await.unwrap();
    let _l2 = connect(&p, "limited", "a").await.unwrap();
    let e = connect(&p, "limited", "a").await.unwrap_err();
    assert_eq!(code(&e), Some(1226), "{e}");
    l1.disconnect().await.unwrap();
    let started = Instant::now();
    let l3 = loop {
        match connect(&p, "limited", "a").await {
            Ok(c) => break c,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                assert_eq!(code(&e), Some(1226));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };

    // The server's limit (5): reader, admin and two limited are 4; one more, then 1040.
    let _a2 = connect(&p, "admin", "a").await.unwrap();
    let e = connect(&p, "admin", "a").await.unwrap_err();
    assert_eq!(code(&e), Some(1040), "{e}");
    drop((reader, admin, l3));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_kills_the_backend_queries() {
    let p = proxy("query_timeout_ms = 400").await;
    let mut c = connect(&p, "admin", "a").await.unwrap();
    for sql in [
        "SELECT SLEEP(5) FROM t WHERE id = 1",
        // Both shards, each sleeping a second per row.
        "SELECT SLEEP(1) FROM t",
    ] {
        let started = Instant::now();
        let e = c.query_drop(sql).await.unwrap_err();
        assert_eq!(code(&e), Some(3024), "{sql}: {e}");
        // Interrupted: SLEEP(5) alone would take 5 s (loose, for a loaded machine).
        assert!(
            started.elapsed() < Duration::from_millis(4500),
            "{sql} took {:?}",
            started.elapsed()
        );
    }
    // No query of ours is left running on the shards, and the session goes on.
    for server in servers() {
        let mut d = Conn::new(Opts::from_url(&server.url("a")).unwrap())
            .await
            .unwrap();
        let running: Vec<String> = d
            .query(
                "SELECT info FROM information_schema.processlist \
                 WHERE info LIKE 'SELECT SLEEP%' AND command = 'Query'",
            )
            .await
            .unwrap();
        assert!(running.is_empty(), "{running:?}");
    }
    let v: Option<i64> = c.query_first("SELECT v FROM t WHERE id = 3").await.unwrap();
    assert_eq!(v, Some(3));
    drop(c);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_disconnected() {
    let p = proxy("idle_timeout_ms = 600").await;
    let mut busy = connect(&p, "admin", "a").await.unwrap();
    let mut idle = connect(&p, "admin", "a").await.unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        busy.query_drop("SELECT 1").await.unwrap();
    }
    // `idle` said nothing for 1.6 s: it was let go with 4031 (or its socket is already closed).
    match idle.query_drop("SELECT 1").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 4031, "{e}"),
        Err(mysql_async::Error::Io(_)) | Err(mysql_async::Error::Driver(_)) => {}
        other => panic!("expected 4031 or a closed connection: {other:?}"),
    }
    assert_eq!(p.gate.session_count(), 1);
    drop((busy, idle));
    p.stop().await;
}

#[test]
fn passwd_prints_the_native_hash() {
    let mut child = testkit::die_with_parent(&mut Command::new(env!("CARGO_BIN_EXE_shardgate")))
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let status = testkit::wait_within(&mut child, Duration::from_secs(60), "shardgate passwd");
    let mut printed = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut printed).unwrap();
    let out = std::process::Output {
        status,
        stdout: printed,
        stderr: Vec::new(),
    };
    assert!(out.status.success());
    let out = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = out.lines().collect();
    // MySQL's own: SELECT PASSWORD('secret').
    assert_eq!(
        lines[0],
        "password_hash = \"*14E65567ABDB5135D0CFD9A70B3032C179A49EE7\""
    );
    // The caching_sha2 form: a fresh salt each time, checked in tests/tls.rs by logging in.
    let sha2 = lines[2]
        .strip_prefix("# password_sha2 = \"$A$005$")
        .and_then(|h| h.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(sha2.len(), 20 + 43, "{out}");
}
