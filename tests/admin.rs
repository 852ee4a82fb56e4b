//! Operating the proxy: the metrics after a known workload, health and readiness, the status
//! page rendered in headless Chromium, live reload of a shard split (SIGHUP and `shardgate
//! reload`), the query log, and graceful shutdown. Real MariaDB servers, real clients, and a real
//! shardgate process where signals are involved.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{expect_closed, expect_code};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Three servers; each test has its own database on them.
fn servers() -> &'static [testkit::MariaDb] {
    static SERVERS: OnceLock<Vec<testkit::MariaDb>> = OnceLock::new();
    SERVERS.get_or_init(|| testkit::start(3, &["m", "r", "g", "s", "q"]).expect("start MariaDB"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config: `shards` as (name, server index), table `t` hashed on `id`.
fn config(db: &str, listen: &str, admin: &str, shards: &[(&str, usize)], extra: &str) -> String {
    let shards: Vec<String> = shards
        .iter()
        .map(|(name, i)| {
            format!(
                "{{ name = \"{name}\", primary = \"{}\" }}",
                servers()[*i].url(db)
            )
        })
        .collect();
    format!(
        r#"[server]
listen = "{listen}"
admin = "{admin}"
{extra}

[[users]]
name = "app"
password = "secret"

[keyspaces.{db}]
sharded = true
shards = [{}]
vindexes.hash = {{ type = "hash" }}
tables.t = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}
"#,
        shards.join(", ")
    )
}

async fn direct(server: usize, db: &str) -> Conn {
    Conn::new(Opts::from_url(&servers()[server].url(db)).unwrap())
        .await
        .unwrap()
}

async fn client(port: u16, db: &str) -> Conn {
    let url = format!("mysql://app:secret@127.0.0.1:{port}/{db}");
    Conn::new(Opts::from_url(&url).unwrap()).await.unwrap()
}

/// An HTTP request to the admin listener: (status, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {path} within 30 s"));
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The samples of a Prometheus text page, by `name{labels}`.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// The shard of keyspace `ks` that holds `id`.
fn shard_of(config: &vschema::Config, ks: &str, id: i64) -> String {
    let ks = config.vschema.keyspace(ks).unwrap();
    let vschema::Table::Sharded { vindex, .. } = ks.table("t").unwrap() else {
        panic!("t is sharded")
    };
    let kid = vindex.map(&vschema::KeyValue::Int(id)).unwrap();
    ks.shards[ks.shard_for(&kid)].name.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_workload() {
    let servers = servers();
    for i in 0..2 {
        direct(i, "m")
            .await
            .query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10))")
            .await
            .unwrap();
    }
    let text = config(
        "m",
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[("-80", 0), ("80-", 1)],
        "",
    );
    let config = vschema::parse_config(&text, Path::new("m.toml")).unwrap();
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let admin = proxy.admin.expect("admin listener");
    let mut c = client(proxy.addr.port(), "m").await;

    assert_eq!(http(admin, "GET", "/healthz").await, (200, "ok\n".into()));
    assert_eq!(http(admin, "GET", "/readyz").await, (200, "ready\n".into()));

    let (_, page) = http(admin, "GET", "/metrics").await;
    let before = samples(&page);
    let mut want: HashMap<String, u64> = HashMap::new();
    for id in 1..=20 {
        let _: Option<String> = c
            .query_first(format!("SELECT v FROM t WHERE id = {id}"))
            .await
            .unwrap();
        *want.entry(shard_of(&config, "m", id)).or_default() += 1;
    }
    expect_code(c.query_drop("SELECT * FROM nosuch").await, 1146);
    let (_, page) = http(admin, "GET", "/metrics").await;
    let after = samples(&page);
    // Both shards got some of the ids, and each exactly its own.
    assert_eq!(want.len(), 2, "{want:?}");
    for (shard, n) in &want {
        let key = format!("shardgate_shard_queries_total{{keyspace=\"m\",shard=\"{shard}\"}}");
        assert_eq!(delta(&before, &after, &key), *n as f64, "{key}");
        let count = format!(
            "shardgate_shard_query_duration_seconds_count{{keyspace=\"m\",shard=\"{shard}\"}}"
        );
        assert_eq!(delta(&before, &after, &count), *n as f64, "{count}");
    }
    let routed =
        "shardgate_statements_total{keyspace=\"m\",kind=\"select\",opcode=\"EqualUnique\"}";
    assert_eq!(delta(&before, &after, routed), 20.0);
    assert_eq!(
        delta(&before, &after, "shardgate_errors_total{code=\"1146\"}"),
        1.0
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "shardgate_statement_duration_seconds_count{kind=\"select\"}"
        ),
        21.0
    );
    // The same statement 20 times: planned once, then found in the cache.
    assert!(
        delta(
            &before,
            &after,
            "shardgate_plan_cache_lookups_total{result=\"hit\"}"
        ) >= 19.0
    );

    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO t (id, v) VALUES (100, 'x')")
        .await
        .unwrap();
    c.query_drop("COMMIT").await.unwrap();
    let (_, page) = http(admin, "GET", "/metrics").await;
    let end = samples(&page);
    let commits: f64 = end
        .iter()
        .filter(|(k, _)| k.starts_with("shardgate_transactions_total") && k.contains("commit"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(commits, 1.0, "{page}");
    assert_eq!(end["shardgate_client_connections"], 1.0);
    assert!(end["shardgate_client_bytes_received_total"] > 500.0);
    assert!(end["shardgate_client_bytes_sent_total"] > 500.0);
    let idle: f64 = end
        .iter()
        .filter(|(k, _)| k.starts_with("shardgate_pool_connections") && k.contains("idle"))
        .map(|(_, v)| v)
        .sum();
    assert!(idle >= 2.0, "{page}");
    drop(c);
    proxy.stop().await;

    // A shard that does not answer makes the proxy not ready, and names the shard.
    let dead = format!("mysql://root@127.0.0.1:{}/m", free_port());
    let text = text.replacen(&servers[1].url("m"), &dead, 1);
    let config = vschema::parse_config(&text, Path::new("m.toml")).unwrap();
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let (status, body) = http(proxy.admin.unwrap(), "GET", "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("m/80-"), "{body}");
    assert_eq!(http(proxy.admin.unwrap(), "GET", "/healthz").await.0, 200);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_in_headless_chromium() {
    for i in 0..2 {
        direct(i, "s")
            .await
            .query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10))")
            .await
            .unwrap();
    }
    let text = config(
        "s",
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[("-80", 0), ("80-", 1)],
        "",
    );
    let config = vschema::parse_config(&text, Path::new("s.toml")).unwrap();
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let admin = proxy.admin.unwrap();
    let mut c = client(proxy.addr.port(), "s").await;
    // Two samples around a workload: the charts and rates have points.
    proxy.gate.activity.sample(&proxy.gate.topology()).await;
    for id in 1..=50 {
        let _: Option<String> = c
            .query_first(format!("SELECT v FROM t WHERE id = {id}"))
            .await
            .unwrap();
    }
    proxy.gate.activity.sample(&proxy.gate.topology()).await;

    let (status, html) = http(admin, "GET", "/status").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("select v from t where id = ?")
            || html.contains("SELECT v FROM t WHERE id = ?"),
        "{html}"
    );

    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("status.png");
    let url = format!("http://{admin}/status");
    let chromium = |extra: &[&str]| {
        // Offline: no background networking, component updates, sync or first-run checks
        // (this machine's network is closed, and a test must not depend on one).
        let out = testkit::output_within(
            Command::new("chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-default-apps",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    "--window-size=1400,900",
                    &format!("--user-data-dir={}", dir.path().join("profile").display()),
                ])
                .args(extra)
                .arg(&url),
            Duration::from_secs(120),
            "headless chromium",
        )
        .expect("chromium runs (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The DOM Chromium built: the shard table has a row per shard, both healthy.
    let dom = chromium(&["--dump-dom"]);
    let table = &dom[dom.find("id=\"shards\"").expect("shard table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr>").count(), 3, "{table}");
    for shard in ["-80", "80-"] {
        assert!(table.contains(&format!("<td>{shard}</td>")), "{table}");
    }
    assert_eq!(table.matches("class=\"up\"").count(), 2, "{table}");
    assert_eq!(table.matches("<svg").count(), 4, "{table}");

    // The screenshot: the table's header row is painted in its colour across the page.
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let header = buf
        .chunks(channels)
        .filter(|p| p[0] == 0x1f && p[1] == 0x4e && p[2] == 0x79)
        .count();
    // Three header rows (shards, statements, sessions) of about 30 px by several hundred.
    assert!(
        header > 20_000,
        "{header} header pixels in a {}x{} shot",
        info.width,
        info.height
    );
    let blank = buf
        .chunks(channels)
        .filter(|p| p[..3] == [255, 255, 255])
        .count();
    assert!(blank < buf.len() / channels, "the shot is not blank");
    drop(c);
    proxy.stop().await;
}

/// A shardgate process; killed if the test ends without stopping it.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config_path: &Path, log: &Path) -> Process {
    let log = std::fs::File::create(log).unwrap();
    Process(
        testkit::die_with_parent(&mut Command::new(env!("CARGO_BIN_EXE_shardgate")))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// A shardgate process serving `db` over two shards with `extra` server settings, logging (as
/// JSON) to `log` in its temp dir; its port.
fn serve(db: &str, extra: &str) -> (Process, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shardgate.toml");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &path,
        config(db, &listen, &admin, &[("-80", 0), ("80-", 1)], extra),
    )
    .unwrap();
    let proxy = spawn(&path, &dir.path().join("log"));
    (proxy, port, dir)
}

async fn connect_when_up(port: u16, db: &str) -> Conn {
    let url = format!("mysql://app:secret@127.0.0.1:{port}/{db}");
    for _ in 0..200 {
        if let Ok(c) = Conn::new(Opts::from_url(&url).unwrap()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("shardgate did not start");
}

/// `shardgate reload --config path`, run to its end.
fn reload_command(path: &Path) -> std::process::Output {
    testkit::output_within(
        Command::new(env!("CARGO_BIN_EXE_shardgate"))
            .args(["reload", "--config"])
            .arg(path),
        Duration::from_secs(60),
        "shardgate reload",
    )
    .unwrap()
}

fn signal(p: &Process, sig: i32) {
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(p.0.id() as i32, sig) }, 0);
}

async fn value_of(c: &mut Conn, id: i64) -> Option<String> {
    c.query_first(format!("SELECT v FROM t WHERE id = {id}"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_splits_a_shard_and_keeps_the_old_map_on_a_bad_file() {
    servers();
    // Ids 1 and 2 hash below 0x40, 3 and 5 into 40-80, 4 above 0x80. Server 2 holds the copy of
    // 40-80 that a resharding would have made, told apart by its values.
    let rows: [(usize, &str); 3] = [
        (0, "(1, 'a'), (2, 'a'), (3, 'a'), (5, 'a')"),
        (1, "(4, 'b')"),
        (2, "(3, 'c'), (5, 'c')"),
    ];
    for (server, values) in rows {
        let mut d = direct(server, "r").await;
        d.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10))")
            .await
            .unwrap();
        d.query_drop(format!("INSERT INTO t VALUES {values}"))
            .await
            .unwrap();
    }
    let (port, admin) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{admin}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shardgate.toml");
    let write = |shards: &[(&str, usize)]| {
        std::fs::write(
            &path,
            config("r", &listen, &admin, shards, "query_log = true"),
        )
        .unwrap()
    };
    write(&[("-80", 0), ("80-", 1)]);
    let log = dir.path().join("shardgate.log");
    let proxy = spawn(&path, &log);
    let mut c = connect_when_up(port, "r").await;
    assert_eq!(value_of(&mut c, 3).await.as_deref(), Some("a"));
    assert_eq!(value_of(&mut c, 4).await.as_deref(), Some("b"));
    // The backend connection that serves 80- (server 1), whose shard the reload leaves as it
    // is: its thread id, as the shard reports it to a statement routed there.
    let serving = "SELECT CONNECTION_ID() FROM t WHERE id = 4";
    let kept: Option<u64> = c.query_first(serving).await.unwrap();

    // A statement that is running when the map changes finishes on the map it started with.
    let mut slow = client(port, "r").await;
    let running = tokio::spawn(async move {
        let v: Option<(String, i64)> = slow
            .query_first("SELECT v, SLEEP(1) FROM t WHERE id = 3")
            .await
            .unwrap();
        v
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // -80 becomes -40 and 40-80, on SIGHUP; the same session sees the new map.
    write(&[("-40", 0), ("40-80", 2), ("80-", 1)]);
    signal(&proxy, libc::SIGHUP);
    let started = Instant::now();
    while value_of(&mut c, 3).await.as_deref() != Some("c") {
        assert!(started.elapsed() < Duration::from_secs(10), "no reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let old_map = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the running statement finishes")
        .unwrap();
    assert_eq!(
        old_map,
        Some(("a".to_string(), 0)),
        "answered by the old -80"
    );
    // 80- kept its pool: the same backend connection serves it.
    assert_eq!(value_of(&mut c, 4).await.as_deref(), Some("b"));
    let now: Option<u64> = c.query_first(serving).await.unwrap();
    assert_eq!(
        now, kept,
        "the connection to 80- before and after the reload"
    );
    // The split is complete once the old shard drops the rows it handed over.
    direct(0, "r")
        .await
        .query_drop("DELETE FROM t WHERE id IN (3, 5)")
        .await
        .unwrap();
    let mut values: Vec<(i64, String)> = c
        .query("SELECT id, v FROM t WHERE id IN (1, 3, 4, 5)")
        .await
        .unwrap();
    values.sort();
    let want = [(1, "a"), (3, "c"), (4, "b"), (5, "c")].map(|(i, v)| (i, v.to_string()));
    assert_eq!(values, want);

    // An invalid file (40-80 missing: the ranges do not tile) changes nothing, by either way in.
    write(&[("-40", 0), ("80-", 1)]);
    let out = reload_command(&path);
    assert!(!out.status.success());
    signal(&proxy, libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(value_of(&mut c, 3).await.as_deref(), Some("c"));
    assert_eq!(value_of(&mut c, 1).await.as_deref(), Some("a"));

    // `shardgate reload` applies a valid file through the admin endpoint: back to two shards.
    write(&[("-80", 0), ("80-", 1)]);
    let out = reload_command(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "reloaded\n");
    assert_eq!(value_of(&mut c, 3).await, None);
    assert_eq!(value_of(&mut c, 1).await.as_deref(), Some("a"));

    // The query log: one JSON object per statement, with its normalised text and routing.
    drop(c);
    signal(&proxy, libc::SIGTERM);
    let mut proxy = proxy;
    let status = testkit::wait_within(
        &mut proxy.0,
        Duration::from_secs(60),
        "shardgate to exit on SIGTERM",
    );
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&log).unwrap();
    let statement = log
        .lines()
        .filter(|l| l.contains("\"target\":\"shardgate::query\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["opcode"] == "EqualUnique")
        .unwrap_or_else(|| panic!("no routed statement in the query log:\n{log}"));
    assert!(
        statement["sql"].as_str().unwrap().contains("where id = ?")
            || statement["sql"].as_str().unwrap().contains("WHERE id = ?"),
        "{statement}"
    );
    assert_eq!(statement["shards"], 1);
    assert_eq!(statement["rows"], 1);
    assert_eq!(statement["keyspace"], "r");
    assert!(statement["duration_us"].as_u64().unwrap() > 0);
    assert!(log.contains("reload refused"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_statements_and_transactions_finish() {
    for i in 0..2 {
        direct(i, "g")
            .await
            .query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10))")
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shardgate.toml");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &path,
        config(
            "g",
            &listen,
            &admin,
            &[("-80", 0), ("80-", 1)],
            "shutdown_timeout_ms = 20000",
        ),
    )
    .unwrap();
    let proxy = spawn(&path, &dir.path().join("log"));
    let mut tx = connect_when_up(port, "g").await;
    let mut idle = client(port, "g").await;
    let mut busy = client(port, "g").await;
    tx.query_drop("BEGIN").await.unwrap();
    tx.query_drop("INSERT INTO t (id, v) VALUES (1, 'tx')")
        .await
        .unwrap();
    let running = tokio::spawn(async move {
        let slept: Option<i64> = busy.query_first("SELECT SLEEP(1)").await.unwrap();
        (slept, busy)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&proxy, libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // No new clients; the running statement completes; the idle client is told why it goes.
    expect_closed(
        Conn::new(Opts::from_url(&format!("mysql://app:secret@127.0.0.1:{port}/g")).unwrap()).await,
    );
    let (slept, busy) = running.await.unwrap();
    assert_eq!(slept, Some(0));
    drop(busy);
    match idle.query_drop("SELECT 1").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1053, "{e}"),
        Err(_) => {} // the socket closed before the error packet was read
        Ok(()) => panic!("an idle client kept being served while draining"),
    }

    // The open transaction goes on to its end, then the process exits cleanly.
    tx.query_drop("INSERT INTO t (id, v) VALUES (4, 'tx')")
        .await
        .unwrap();
    tx.query_drop("COMMIT").await.unwrap();
    let mut proxy = proxy;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = proxy.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let mut rows = Vec::new();
    for i in 0..2 {
        let ids: Vec<i64> = direct(i, "g")
            .await
            .query("SELECT id FROM t")
            .await
            .unwrap();
        rows.extend(ids);
    }
    rows.sort();
    assert_eq!(rows, [1, 4]);

    // Past the deadline, a transaction left open is rolled back and the process still exits 0.
    std::fs::write(
        &path,
        config(
            "g",
            &listen,
            &admin,
            &[("-80", 0), ("80-", 1)],
            "shutdown_timeout_ms = 500",
        ),
    )
    .unwrap();
    let mut proxy = spawn(&path, &dir.path().join("log2"));
    let mut tx = connect_when_up(port, "g").await;
    tx.query_drop("BEGIN").await.unwrap();
    tx.query_drop("INSERT INTO t (id, v) VALUES (2, 'lost')")
        .await
        .unwrap();
    signal(&proxy, libc::SIGTERM);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = proxy.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    // The process is gone: its open transaction was rolled back, the client's link closed.
    expect_closed(tx.query_drop("COMMIT").await);
    let mut rows = Vec::new();
    for i in 0..2 {
        let ids: Vec<i64> = direct(i, "g")
            .await
            .query("SELECT id FROM t")
            .await
            .unwrap();
        rows.extend(ids);
    }
    rows.sort();
    assert_eq!(rows, [1, 4]);
}

/// SIGINT (Ctrl-C) shuts down as SIGTERM does: no new clients, and a clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_shuts_down() {
    let (mut proxy, port, _dir) = serve("q", "");
    let mut c = connect_when_up(port, "q").await;
    let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
    signal(&proxy, libc::SIGINT);
    let status = testkit::wait_within(
        &mut proxy.0,
        Duration::from_secs(60),
        "shardgate to exit on SIGINT",
    );
    assert!(status.success(), "{status}");
    expect_closed(
        Conn::new(Opts::from_url(&format!("mysql://app:secret@127.0.0.1:{port}/q")).unwrap()).await,
    );
}

/// Statements slower than `slow_query_ms` are logged, as JSON, with `slow: true`; faster ones
/// are not (the query log is off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_queries_are_logged() {
    let (mut proxy, port, dir) = serve("q", "slow_query_ms = 300");
    let log = dir.path().join("log");
    let mut c = connect_when_up(port, "q").await;
    let fast: Option<i64> = c.query_first("SELECT 11 + 1").await.unwrap();
    assert_eq!(fast, Some(12));
    let slept: Option<i64> = c.query_first("SELECT SLEEP(0.6)").await.unwrap();
    assert_eq!(slept, Some(0));
    drop(c);
    signal(&proxy, libc::SIGTERM);
    let status = testkit::wait_within(&mut proxy.0, Duration::from_secs(60), "shardgate to exit");
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&log).unwrap();
    let logged: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.contains("\"target\":\"shardgate::query\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(logged.len(), 1, "only the slow statement: {log}");
    let slow = &logged[0];
    assert_eq!(slow["slow"], true, "{slow}");
    assert!(slow["sql"].as_str().unwrap().contains("SLEEP"), "{slow}");
    assert!(slow["duration_us"].as_u64().unwrap() >= 600_000, "{slow}");
}
