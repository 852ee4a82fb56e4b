//! Shared by the end-to-end tests: one set of real MariaDB servers per test binary, a proxy per
//! test (each test has its own runtime), and clients.

#![allow(dead_code)]

use std::path::Path;

pub mod groups;
use std::sync::OnceLock;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// sysbench tables `sbtest1..N` in keyspace `sbtest`.
pub const SBTEST_TABLES: usize = 2;

pub struct Cluster {
    pub servers: Vec<testkit::MariaDb>,
    pub config: vschema::Config,
    /// The config as TOML, for shardgate processes (`listen` says port 0: replace it).
    pub config_text: String,
}

/// Four MariaDB servers: keyspace `two` (2 shards), keyspace `four` (4 shards), unsharded `main`,
/// and `ref_two` / `ref_four` databases holding all rows for the differential tests.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let servers = testkit::start(
            4,
            &["two", "four", "main", "ref_two", "ref_four", "sbtest"],
        )
            .expect("start MariaDB");
        let url = |i: usize, db: &str| servers[i].url(db);
        let tables = r#"vindexes.hash = { type = "hash" }
vindexes.xxhash = { type = "xxhash" }
tables.placed = { primary_vindex = { column = "id", vindex = "hash" } }
tables.placed_xx = { primary_vindex = { column = "name", vindex = "xxhash" } }
vindexes.md5 = { type = "binary_md5" }
vindexes.reversed = { type = "reverse_bits" }
tables.placed_md5 = { primary_vindex = { column = "name", vindex = "md5" } }
tables.placed_rb = { primary_vindex = { column = "id", vindex = "reversed" } }
tables.vitess_placed = { primary_vindex = { column = "id", vindex = "hash" } }
tables.probe = { primary_vindex = { column = "id", vindex = "hash" } }
tables.ddl_probe = { primary_vindex = { column = "id", vindex = "hash" } }
tables.catalog_a = { primary_vindex = { column = "id", vindex = "hash" } }
tables.catalog_b = { primary_vindex = { column = "id", vindex = "hash" } }
tables.customers = { primary_vindex = { column = "id", vindex = "hash" } }
tables.orders = { primary_vindex = { column = "customer_id", vindex = "hash" } }
tables.products = { type = "reference" }
tables.misc = { primary_vindex = { column = "id", vindex = "hash" } }
tables.words = { primary_vindex = { column = "id", vindex = "hash" } }
tables.warned = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_commit = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_flags = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_single = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_disconnect = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_deadlock = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_prepared = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_cycle2 = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_cycle3 = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_wait = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_twopc = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_crash_before = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_crash_after = { primary_vindex = { column = "id", vindex = "hash" } }
tables.txt_resolve = { primary_vindex = { column = "id", vindex = "hash" } }
tables.iso = { primary_vindex = { column = "id", vindex = "hash" } }
tables.meta = { primary_vindex = { column = "id", vindex = "hash" } }
tables.counted = { primary_vindex = { column = "id", vindex = "hash" } }
tables.schema_probe = { primary_vindex = { column = "id", vindex = "hash" } }
tables.locked = { primary_vindex = { column = "id", vindex = "hash" } }
tables.dumped = { primary_vindex = { column = "id", vindex = "hash" } }
tables.typed = { primary_vindex = { column = "id", vindex = "hash" } }
tables.py_people = { primary_vindex = { column = "id", vindex = "hash" } }
tables.node_people = { primary_vindex = { column = "id", vindex = "hash" } }
tables.rs_people = { primary_vindex = { column = "id", vindex = "hash" } }
tables.cli_people = { primary_vindex = { column = "id", vindex = "hash" } }
tables.zstd_people = { primary_vindex = { column = "id", vindex = "hash" } }
vindexes.email_lookup = { type = "consistent_lookup_unique", table = "main.email_lookup", from = "email", to = "keyspace_id" }
vindexes.loose = { type = "unicode_loose_xxhash" }
vindexes.handle_lookup = { type = "consistent_lookup_unique", table = "two.handle_lookup", from = "handle", to = "keyspace_id" }
tables.handle_lookup = { primary_vindex = { column = "handle", vindex = "loose" } }
tables.accounts = { primary_vindex = { column = "id", vindex = "hash" }, secondary_vindexes = [{ column = "handle", vindex = "handle_lookup" }] }
tables.users = { primary_vindex = { column = "user_id", vindex = "hash" }, secondary_vindexes = [{ column = "email", vindex = "email_lookup" }] }
vindexes.code_lookup = { type = "lookup_unique", table = "main.code_lookup", from = "code", to = "keyspace_id" }
tables.coded = { primary_vindex = { column = "id", vindex = "hash" }, secondary_vindexes = [{ column = "code", vindex = "code_lookup" }] }
vindexes.nick_lookup = { type = "lookup_hash_unique", table = "main.nick_lookup", from = "nick", to = "id" }
tables.nicked = { primary_vindex = { column = "id", vindex = "hash" }, secondary_vindexes = [{ column = "nick", vindex = "nick_lookup" }] }
vindexes.race_lookup = { type = "consistent_lookup_unique", table = "main.race_lookup", from = "email", to = "keyspace_id" }
tables.racers = { primary_vindex = { column = "id", vindex = "hash" }, secondary_vindexes = [{ column = "email", vindex = "race_lookup" }] }
tables.events = { primary_vindex = { column = "id", vindex = "hash" }, auto_increment = { column = "id", sequence = "event_seq" } }
"#;
        let text = format!(
            r#"[server]
listen = "127.0.0.1:0"

[[users]]
name = "app"
password = "secret"

[[users]]
name = "other"
password = "pw2"

# Password h4sh, known to shardgate only as its mysql_native_password hash.
[[users]]
name = "hashed"
password_hash = "*5FBEDD0A011760CD2CDDE6720E3A251FE906BEC5"

[keyspaces.two]
sharded = true
shards = [{{ name = "-80", primary = "{t0}" }}, {{ name = "80-", primary = "{t1}" }}]
{tables}
[keyspaces.four]
sharded = true
shards = [
  {{ name = "-40", primary = "{f0}" }}, {{ name = "40-80", primary = "{f1}" }},
  {{ name = "80-c0", primary = "{f2}" }}, {{ name = "c0-", primary = "{f3}" }},
]
{tables}
[keyspaces.main]
sharded = false
shards = [{{ name = "0", primary = "{m}" }}]
tables.event_seq = {{ type = "sequence" }}
{sequences}
# sysbench's tables, created by `sysbench prepare` through the proxy.
[keyspaces.sbtest]
sharded = true
shards = [{{ name = "-80", primary = "{s0}" }}, {{ name = "80-", primary = "{s1}" }}]
vindexes.hash = {{ type = "hash" }}
{sbtables}
"#,
            t0 = url(0, "two"),
            t1 = url(1, "two"),
            f0 = url(0, "four"),
            f1 = url(1, "four"),
            f2 = url(2, "four"),
            f3 = url(3, "four"),
            m = url(2, "main"),
            s0 = url(0, "sbtest"),
            s1 = url(1, "sbtest"),
            sequences = (1..=SBTEST_TABLES)
                .map(|i| format!("tables.sbtest{i}_seq = {{ type = \"sequence\" }}\n"))
                .collect::<String>(),
            sbtables = (1..=SBTEST_TABLES)
                .map(|i| format!("tables.sbtest{i} = {{ primary_vindex = {{ column = \"id\", vindex = \"hash\" }}, auto_increment = {{ column = \"id\", sequence = \"main.sbtest{i}_seq\" }} }}\n"))
                .collect::<String>(),
        );
        let config = vschema::parse_config(&text, Path::new("e2e.toml")).expect("test config");
        Cluster { servers, config, config_text: text }
    })
}

/// A config that serves `keyspaces` (their TOML) to user `app` (password `secret`) on a free
/// loopback port: for tests with servers of their own.
pub fn config_serving(keyspaces: &str) -> vschema::Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[users]]\nname = \"app\"\npassword = \"secret\"\n\n{keyspaces}"
    );
    vschema::parse_config(&text, Path::new("test.toml")).expect("test config")
}

pub async fn proxy() -> shardgate::Running {
    shardgate::start(&cluster().config, "127.0.0.1:0")
        .await
        .expect("start proxy")
}

pub async fn client(proxy: &shardgate::Running, db: Option<&str>) -> Conn {
    let url = format!("mysql://app:secret@{}/{}", proxy.addr, db.unwrap_or(""));
    Conn::new(Opts::from_url(&url).unwrap())
        .await
        .expect("connect to proxy")
}

/// A direct connection to one shard of a keyspace.
pub async fn shard_conn(keyspace: &str, shard: &str) -> Conn {
    let ks = cluster().config.vschema.keyspace(keyspace).unwrap();
    let s = ks.shards.iter().find(|s| s.name == shard).unwrap();
    let url = format!(
        "mysql://root@{}:{}/{}",
        s.primary.host, s.primary.port, s.primary.database
    );
    Conn::new(Opts::from_url(&url).unwrap()).await.unwrap()
}

/// The differential reference: one database holding all rows.
pub async fn reference_conn() -> Conn {
    Conn::new(Opts::from_url(&cluster().servers[3].url("reference")).unwrap())
        .await
        .unwrap()
}

/// Rows as text (what the text protocol carries), NULL as `None`.
pub fn text_rows(rows: Vec<Row>) -> Vec<Vec<Option<String>>> {
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    Value::NULL => None,
                    Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    other => Some(other.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

pub async fn query_text(
    conn: &mut Conn,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, mysql_async::Error> {
    Ok(text_rows(conn.query::<Row, _>(sql).await?))
}

/// The error of a statement that must fail with exactly MySQL error `code`.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(
    result: Result<T, mysql_async::Error>,
    code: u16,
) -> mysql_async::Error {
    match result {
        Err(e) if server_code(&e) == Some(code) => e,
        other => panic!("expected error {code}, got {other:?}"),
    }
}

/// A connection that the other side closed (or refused): an I/O error, or the driver's word
/// for a connection that ended, never a server's error code.
#[track_caller]
pub fn expect_closed<T: std::fmt::Debug>(result: Result<T, mysql_async::Error>) {
    match result {
        Err(mysql_async::Error::Io(_)) | Err(mysql_async::Error::Driver(_)) => {}
        other => panic!("expected a closed connection, got {other:?}"),
    }
}

/// The MySQL error code of a failed statement.
pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// A shardgate process serving the test cluster, killed when dropped.
pub struct ProxyProcess {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl ProxyProcess {
    /// Waits for the process to end by itself (a crash).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        testkit::wait_within(
            &mut self.child,
            std::time::Duration::from_secs(60),
            "the shardgate process to end",
        )
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `shardgate serve` on the test cluster's config and waits until it accepts clients.
pub async fn proxy_process() -> ProxyProcess {
    proxy_process_on(free_port(), &[]).await
}

/// `shardgate serve` on a given port, with extra environment variables.
pub async fn proxy_process_on(port: u16, vars: &[(&str, &str)]) -> ProxyProcess {
    let text = cluster()
        .config_text
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    proxy_process_serving(&text, port, vars).await
}

/// `shardgate serve` of config `text` (listening on `port`), with extra environment variables.
pub async fn proxy_process_serving(text: &str, port: u16, vars: &[(&str, &str)]) -> ProxyProcess {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shardgate.toml");
    std::fs::write(&path, text).unwrap();
    let child = testkit::die_with_parent(&mut std::process::Command::new(env!(
        "CARGO_BIN_EXE_shardgate"
    )))
    .args(["serve", "--config", path.to_str().unwrap()])
    .env("RUST_LOG", "warn")
    .envs(vars.iter().copied())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let process = ProxyProcess {
        child,
        port,
        _dir: dir,
    };
    wait_for_greeting(port).await;
    process
}

/// Waits until a proxy on `port` greets: the port is bound before start-up work (resolving
/// prepared twopc branches) ends, and a connection waits in the backlog until it does.
pub async fn wait_for_greeting(port: u16) {
    for _ in 0..100 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::AsyncReadExt;
            let mut greeting = [0u8; 4];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(30), s.read(&mut greeting));
            if let Ok(Ok(n)) = read.await {
                if n > 0 {
                    return;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("shardgate did not start on port {port}");
}

/// A raw connection logged in as `app` (mysql_native_password computed here), ready for commands.
pub async fn login_raw(proxy: &shardgate::Running) -> tokio::net::TcpStream {
    let (s, reply) = login_plugin(proxy, "mysql_native_password", b"secret").await;
    assert_eq!(reply[0], 0x00, "login OK: {reply:?}");
    s
}

/// Logs in as `app` answering the greeting's scramble with `plugin`'s algorithm; returns the
/// connection and the server's first reply.
pub async fn login_plugin(
    proxy: &shardgate::Running,
    plugin: &str,
    password: &[u8],
) -> (tokio::net::TcpStream, Vec<u8>) {
    login_as(proxy, "app", plugin, password).await
}

/// Like [`login_plugin`], for any user.
pub async fn login_as(
    proxy: &shardgate::Running,
    user: &str,
    plugin: &str,
    password: &[u8],
) -> (tokio::net::TcpStream, Vec<u8>) {
    login_at(proxy.addr, user, plugin, password).await
}

/// Like [`login_as`], for a proxy at any address (e.g. a shardgate process).
pub async fn login_at(
    addr: std::net::SocketAddr,
    user: &str,
    plugin: &str,
    password: &[u8],
) -> (tokio::net::TcpStream, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let greeting = read_packet(&mut s).await;
    // protocol(1) version\0 conn_id(4) salt1(8) filler(1) caps(2) charset(1) status(2) caps(2) len(1) reserved(10) salt2(12)\0
    let version_end = 1 + greeting[1..].iter().position(|b| *b == 0).unwrap();
    let salt1 = &greeting[version_end + 5..version_end + 13];
    let rest = version_end + 13 + 1 + 2 + 1 + 2 + 2 + 1 + 10;
    let salt: Vec<u8> = salt1
        .iter()
        .chain(&greeting[rest..rest + 12])
        .copied()
        .collect();
    let scramble = match plugin {
        "caching_sha2_password" => mysql_common::scramble::scramble_sha256(&salt, password)
            .unwrap()
            .to_vec(),
        _ => mysql_common::scramble::scramble_native(&salt, password)
            .unwrap()
            .to_vec(),
    };
    let caps: u32 = 0x0000_0200 | 0x0000_8000 | 0x0008_0000; // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH
    let mut resp = Vec::new();
    resp.extend_from_slice(&caps.to_le_bytes());
    resp.extend_from_slice(&(16u32 << 20).to_le_bytes());
    resp.push(45);
    resp.extend_from_slice(&[0; 23]);
    resp.extend_from_slice(user.as_bytes());
    resp.push(0);
    resp.push(scramble.len() as u8);
    resp.extend_from_slice(&scramble);
    resp.extend_from_slice(plugin.as_bytes());
    resp.push(0);
    write_packet(&mut s, 1, &resp).await;
    let reply = read_packet(&mut s).await;
    (s, reply)
}

pub async fn command(s: &mut tokio::net::TcpStream, payload: &[u8]) -> Vec<u8> {
    write_packet(s, 0, payload).await;
    read_packet(s).await
}

pub async fn write_packet(s: &mut tokio::net::TcpStream, seq: u8, payload: &[u8]) {
    let mut p = (payload.len() as u32).to_le_bytes();
    p[3] = seq;
    s.write_all(&p).await.unwrap();
    s.write_all(payload).await.unwrap();
}

/// The next packet's payload; fails the test if none comes within 30 s.
pub async fn read_packet(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let read = async {
        let mut header = [0u8; 4];
        s.read_exact(&mut header).await.unwrap();
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        body
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("no packet from the proxy within 30 s")
}

/// The shard (by name) of a keyspace that owns an integer id under the hash vindex.
pub fn owner(keyspace: &str, id: i64) -> String {
    let ks = cluster().config.vschema.keyspace(keyspace).unwrap();
    let ksid = vschema::VindexKind::Hash
        .map(&vschema::KeyValue::Int(id))
        .unwrap();
    ks.shards[ks.shard_for(&ksid)].name.clone()
}

/// Two ids of keyspace `two` that live on different shards, the first being `from`.
pub fn ids_on_two_shards(from: i64) -> (i64, i64) {
    let b = (from + 1..from + 100)
        .find(|i| owner("two", *i) != owner("two", from))
        .unwrap();
    (from, b)
}

/// Bytes the proxy has written to its clients so far, as they went on the wire.
pub fn bytes_sent(proxy: &shardgate::Running) -> u64 {
    proxy
        .gate
        .metrics
        .client_bytes
        .sent
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Statements the proxy has sent to each shard so far (`keyspace/shard` → count).
pub fn counters(proxy: &shardgate::Running) -> std::collections::BTreeMap<String, u64> {
    proxy.gate.shard_query_counts()
}

/// Creates `table` (id, v) as [`committed_rows`] reads it. Tests that run transactions each
/// take a table of their own: tests run at once, each with its own proxy, and two that shared
/// a table could lock its rows in a cycle through both proxies, which no proxy's deadlock
/// detector sees, so both would wait out the lock timeout.
pub async fn create_id_v(c: &mut Conn, table: &str) {
    c.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, v VARCHAR(20) NOT NULL)"
    ))
    .await
    .unwrap();
}

/// The committed rows `(id, v)` of `table` in keyspace `two`, read from the shards directly.
pub async fn committed_rows(table: &str, ids: &[i64]) -> Vec<(i64, String)> {
    committed_in("two", table, ids).await
}

/// The committed rows `(id, v)` of `table` in `keyspace`, read from every shard directly.
pub async fn committed_in(keyspace: &str, table: &str, ids: &[i64]) -> Vec<(i64, String)> {
    let ks = cluster().config.vschema.keyspace(keyspace).unwrap();
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let mut out = Vec::new();
    for shard in &ks.shards {
        let mut direct = shard_conn(keyspace, &shard.name).await;
        let rows: Vec<(i64, String)> = direct
            .query(format!(
                "SELECT id, v FROM {table} WHERE id IN ({})",
                list.join(", ")
            ))
            .await
            .unwrap();
        out.extend(rows);
    }
    out.sort();
    out
}

/// Keyspace `app` (table `items` sharded by id) on the first two servers, `main` (for the
/// proxy's records: migrations, branches) on the third.
pub fn app_and_main(servers: &[testkit::MariaDb]) -> String {
    format!(
        r#"
[keyspaces.app]
sharded = true
shards = [{{ name = "-80", primary = "{a}" }}, {{ name = "80-", primary = "{b}" }}]
vindexes.hash = {{ type = "hash" }}
tables.items = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}

[keyspaces.main]
sharded = false
shards = [{{ name = "0", primary = "{m}" }}]
"#,
        a = servers[0].url("app"),
        b = servers[1].url("app"),
        m = servers[2].url("main"),
    )
}

/// Runs the shardgate CLI on config `config`: its standard output, or its error.
pub fn cli_on(config: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_shardgate"))
            .args(args)
            .arg("--config")
            .arg(config)
            .output()
            .unwrap()
    });
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}
