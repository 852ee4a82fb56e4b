//! Online resharding on real shards writing row binlogs: keyspace `app` split from 2 shards to
//! 4 while writers keep writing through the proxy, switched, switched back (reverse
//! replication carried the writes made meanwhile), and cancelled; then merged from 4 shards to
//! 2, its proxy killed in the middle of the copy and started again, a difference injected on a
//! target found by verify and blocking the switch, and completed. Every acknowledged write is
//! checked against what the writers were told, on the shards read directly, each row on the
//! shard that owns its keyspace id.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use vschema::{KeyRange, KeyValue, Vindex, VindexKind};

/// A row of `items`: `n` and `note`.
type Row = (i64, String);

const SPLIT: &str = "-40,40-80,80-c0,c0-";

/// `app`'s shards on the two servers: the halves in database `app`, the quarters in `app_a`
/// (first and second quarter) and `app_b`. `halves` says which serve; the others are spare.
/// `main` (the proxy's records) is on the third server.
/// `app_tables` and `main_tables` are more lines of those keyspaces (VSchema entries).
fn config_text(
    servers: &[testkit::MariaDb],
    server: &str,
    halves: bool,
    (app_tables, main_tables): (&str, &str),
) -> String {
    let halves_list = halves_of(servers);
    let quarters_list = format!(
        r#"[{{ name = "-40", primary = "{}" }}, {{ name = "40-80", primary = "{}" }}, {{ name = "80-c0", primary = "{}" }}, {{ name = "c0-", primary = "{}" }}]"#,
        servers[0].url("app_a"),
        servers[1].url("app_a"),
        servers[0].url("app_b"),
        servers[1].url("app_b")
    );
    let (serving, spare) = match halves {
        true => (halves_list, quarters_list),
        false => (quarters_list, halves_list),
    };
    format!(
        r#"{preamble}
[keyspaces.app]
sharded = true
shards = {serving}
spare_shards = {spare}
vindexes.hash = {{ type = "hash" }}
tables.items = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}
tables.colors = {{ type = "reference" }}
vindexes.loose = {{ type = "unicode_loose_xxhash" }}
vindexes.email_lookup = {{ type = "consistent_lookup_unique", table = "app.email_lookup", from = "email", to = "keyspace_id" }}
tables.email_lookup = {{ primary_vindex = {{ column = "email", vindex = "loose" }} }}
tables.users = {{ primary_vindex = {{ column = "user_id", vindex = "hash" }}, secondary_vindexes = [{{ column = "email", vindex = "email_lookup" }}] }}
{app_tables}
[keyspaces.main]
sharded = false
shards = [{{ name = "0", primary = "{m}" }}]
{main_tables}"#,
        m = servers[2].url("main"),
        preamble = preamble(server),
    )
}

/// The config's `[server]` lines and its user.
fn preamble(server: &str) -> String {
    format!("[server]\n{server}\n\n[[users]]\nname = \"app\"\npassword = \"secret\"\n")
}

/// The halves of `app` (`-80`, `80-`) as a TOML list of shards.
fn halves_of(servers: &[testkit::MariaDb]) -> String {
    format!(
        r#"[{{ name = "-80", primary = "{}" }}, {{ name = "80-", primary = "{}" }}]"#,
        servers[0].url("app"),
        servers[1].url("app")
    )
}

/// Three servers writing row binlogs and the config of a proxy in front of them (see
/// [`config_text`]), on free ports.
struct Cluster {
    servers: Vec<testkit::MariaDb>,
    port: u16,
    admin: u16,
    /// The config file (the proxy's state file goes beside it).
    config: std::path::PathBuf,
    text: String,
    _dir: tempfile::TempDir,
}

async fn cluster(halves: bool, tables: (&str, &str)) -> Cluster {
    let servers = tokio::task::spawn_blocking(|| {
        testkit::start_binlogged(3, &["app", "app_a", "app_b", "main", "solo"]).unwrap()
    })
    .await
    .unwrap();
    let (port, admin) = (common::free_port(), common::free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shardgate.toml");
    let server = format!("listen = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{admin}\"");
    let text = config_text(&servers, &server, halves, tables);
    std::fs::write(&config, &text).unwrap();
    Cluster {
        servers,
        port,
        admin,
        config,
        text,
        _dir: dir,
    }
}

impl Cluster {
    /// A proxy in this process, serving the config file.
    async fn serve(&self) -> shardgate::Running {
        let loaded = vschema::load_config(&self.config).unwrap();
        let listen = format!("127.0.0.1:{}", self.port);
        shardgate::start_from(&loaded, &listen, Some(self.config.clone()))
            .await
            .unwrap()
    }
}

/// Server and database of each shard of `app`.
fn shard_at(servers: &[testkit::MariaDb], shard: &str) -> String {
    let (server, db) = match shard {
        "-80" => (0, "app"),
        "80-" => (1, "app"),
        "-40" => (0, "app_a"),
        "40-80" => (1, "app_a"),
        "80-c0" => (0, "app_b"),
        "c0-" => (1, "app_b"),
        // `app` while it is unsharded.
        "0" => (2, "solo"),
        other => panic!("no shard {other}"),
    };
    servers[server].url(db)
}

async fn direct(servers: &[testkit::MariaDb], shard: &str) -> Conn {
    Conn::new(Opts::from_url(&shard_at(servers, shard)).unwrap())
        .await
        .unwrap()
}

fn owns(shard: &str, id: i64) -> bool {
    let hash = Vindex::new("hash", VindexKind::Hash);
    let ksid = hash.map(&KeyValue::Int(id)).unwrap();
    KeyRange::parse(shard).unwrap().contains(&ksid.0)
}

/// Every row of `items` on `shards`, checking that each is on the shard that owns it and on no
/// other; and that `colors` is the same on each.
async fn rows_on(servers: &[testkit::MariaDb], shards: &[&str]) -> BTreeMap<i64, Row> {
    let mut all = BTreeMap::new();
    let mut colors = Vec::new();
    for shard in shards {
        let mut c = direct(servers, shard).await;
        let rows: Vec<(i64, i64, String)> = c.query("SELECT id, n, note FROM items").await.unwrap();
        for (id, n, note) in rows {
            assert!(
                owns(shard, id),
                "item {id} is on {shard}, which does not own it"
            );
            assert!(all.insert(id, (n, note)).is_none(), "item {id} twice");
        }
        let these: Vec<(i64, String)> = c
            .query("SELECT id, name FROM colors ORDER BY id")
            .await
            .unwrap();
        colors.push(these);
    }
    assert!(
        colors.windows(2).all(|w| w[0] == w[1]) && colors[0].len() == 3,
        "colors differ between shards: {colors:?}"
    );
    all
}

/// A client of the proxy at `port`, in keyspace `app`.
async fn app_conn(port: u16) -> Conn {
    let url = format!("mysql://app:secret@127.0.0.1:{port}/app");
    Conn::new(Opts::from_url(&url).unwrap()).await.unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

use common::cli_on as cli;

/// The reshard of `app` as `status --format json` shows it.
fn status(config: &std::path::Path) -> serde_json::Value {
    json(&cli(config, &["reshard", "app", "status", "--format", "json"]).unwrap())
}

/// The body of a GET of `path` on the admin listener at port `admin`.
fn admin_get(admin: u16, path: &str) -> String {
    use std::io::{Read, Write};
    tokio::task::block_in_place(|| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_once("\r\n\r\n")
            .map_or(out.clone(), |(_, b)| b.to_string())
    })
}

/// Waits until the reshard leaves the copy and the verify; its status then.
async fn settled(config: &std::path::Path) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..600 {
        last = status(config);
        if !["copying", "verifying"].contains(&last["state"].as_str().unwrap()) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the reshard did not settle: {last}");
}

/// Creates `items` (with `rows` rows) and `colors` through the proxy at `port`.
async fn seed(port: u16, rows: i64) -> BTreeMap<i64, Row> {
    let mut app = app_conn(port).await;
    app.query_drop(
        "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL, \
         note VARCHAR(40) CHARACTER SET latin1 NOT NULL, KEY kn (n))",
    )
    .await
    .unwrap();
    app.query_drop("CREATE TABLE colors (id INT NOT NULL PRIMARY KEY, name VARCHAR(20))")
        .await
        .unwrap();
    app.query_drop("INSERT INTO colors VALUES (1, 'red'), (2, 'grün'), (3, 'blue')")
        .await
        .unwrap();
    let mut expected = BTreeMap::new();
    for start in (1..=rows).step_by(1000) {
        let ids: Vec<i64> = (start..(start + 1000).min(rows + 1)).collect();
        let values: Vec<String> = ids
            .iter()
            .map(|id| format!("({id}, {}, 'café {id}')", id % 97))
            .collect();
        app.query_drop(format!(
            "INSERT INTO items (id, n, note) VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();
        for id in ids {
            expected.insert(id, (id % 97, format!("café {id}")));
        }
    }
    expected
}

/// Users `ids` (email `user<id>@example.com`) inserted through the proxy.
async fn add_users(app: &mut Conn, ids: std::ops::RangeInclusive<i64>) {
    for id in ids {
        app.query_drop(format!(
            "INSERT INTO users (user_id, email, name) VALUES ({id}, 'user{id}@example.com', 'u{id}')"
        ))
        .await
        .unwrap();
    }
}

/// Each of users 1..=`count` is found by its email (through the lookup vindex).
async fn found_by_email(app: &mut Conn, count: i64) {
    for id in 1..=count {
        let found: Option<i64> = app
            .query_first(format!(
                "SELECT user_id FROM users WHERE email = 'user{id}@example.com'"
            ))
            .await
            .unwrap();
        assert_eq!(found, Some(id), "user{id}@example.com");
    }
}

/// Clients writing through the proxy: inserts, updates and deletes, each on ids of its own,
/// each acknowledged write kept as what the row is now.
struct Writers {
    expected: Arc<Mutex<BTreeMap<i64, Option<Row>>>>,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    paused: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

const WRITERS: i64 = 4;

impl Writers {
    /// Writers through the proxies at `ports` in turn, starting from the rows `seeded`.
    fn start(ports: &[u16], seeded: &BTreeMap<i64, Row>) -> Writers {
        // New ids above every id so far, each writer's in its own residue class.
        let top = seeded.keys().max().map_or(0, |m| m + 1).max(1_000_000);
        let base = (top + WRITERS - 1) / WRITERS * WRITERS;
        let w = Writers {
            expected: Arc::new(Mutex::new(
                seeded.iter().map(|(k, v)| (*k, Some(v.clone()))).collect(),
            )),
            stop: Arc::default(),
            pause: Arc::default(),
            paused: Arc::default(),
            done: Arc::default(),
            failed: Arc::default(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for me in 0..WRITERS {
            let (expected, stop, pause, paused, done, failed) = (
                w.expected.clone(),
                w.stop.clone(),
                w.pause.clone(),
                w.paused.clone(),
                w.done.clone(),
                w.failed.clone(),
            );
            let mut mine: Vec<i64> = seeded
                .keys()
                .copied()
                .filter(|id| id % WRITERS == me)
                .collect();
            let port = ports[me as usize % ports.len()];
            tasks.push(tokio::spawn(async move {
                let mut c = app_conn(port).await;
                let mut next = base + me;
                let mut i: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    if pause.load(Ordering::Relaxed) {
                        paused.fetch_add(1, Ordering::Relaxed);
                        while pause.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        paused.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                    i += 1;
                    let pick = mine[(i as usize * 7919) % mine.len()];
                    let (sql, id, after) = match i % 3 {
                        0 => {
                            next += WRITERS;
                            let row = (i as i64 % 1000, format!("new {next}"));
                            let sql = format!(
                                "INSERT INTO items (id, n, note) VALUES ({next}, {}, '{}')",
                                row.0, row.1
                            );
                            (sql, next, Some(row))
                        }
                        1 => {
                            let row = (i as i64, format!("upd {i}"));
                            let sql = format!(
                                "UPDATE items SET n = {}, note = '{}' WHERE id = {pick}",
                                row.0, row.1
                            );
                            let now = expected.lock().unwrap().get(&pick).cloned().flatten();
                            (sql, pick, now.map(|_| row))
                        }
                        _ => (format!("DELETE FROM items WHERE id = {pick}"), pick, None),
                    };
                    match c.query_drop(&sql).await {
                        Ok(()) => {
                            expected.lock().unwrap().insert(id, after.clone());
                            match (after, mine.contains(&id)) {
                                (Some(_), false) => mine.push(id),
                                (None, true) if mine.len() > 10 => mine.retain(|m| *m != id),
                                _ => {}
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failed.lock().unwrap().push(format!("{sql}: {e}")),
                    }
                }
            }));
        }
        Writers { tasks, ..w }
    }

    /// Stops the writes (until [`Writers::resume`]) once each writer's last one is answered.
    async fn hold(&self) {
        self.pause.store(true, Ordering::Relaxed);
        while self.paused.load(Ordering::Relaxed) < WRITERS as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn resume(&self) {
        self.pause.store(false, Ordering::Relaxed);
    }

    fn expected(&self) -> BTreeMap<i64, Row> {
        let all = self.expected.lock().unwrap();
        all.iter()
            .filter_map(|(id, row)| row.clone().map(|r| (*id, r)))
            .collect()
    }

    /// Ends the writes: how many were acknowledged, those that failed, and the rows expected.
    async fn stop(mut self) -> (u64, Vec<String>, BTreeMap<i64, Row>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            t.await.unwrap();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.done.load(Ordering::Relaxed), failed, self.expected())
    }
}

/// Asserts that the shards hold exactly the expected rows, naming the first that differ.
fn same(what: &str, on_shards: &BTreeMap<i64, Row>, expected: &BTreeMap<i64, Row>) {
    if on_shards == expected {
        return;
    }
    let missing: Vec<_> = expected
        .iter()
        .filter(|(id, row)| on_shards.get(id) != Some(row))
        .take(5)
        .map(|(id, row)| (id, row, on_shards.get(id)))
        .collect();
    let extra: Vec<_> = on_shards
        .iter()
        .filter(|(id, _)| !expected.contains_key(id))
        .take(5)
        .collect();
    panic!(
        "{what}: {} rows on the shards, {} expected; expected but not so: {missing:?}; \
         not expected: {extra:?}",
        on_shards.len(),
        expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_under_writes_switches_and_reverses_without_losing_a_write() {
    let c = cluster(true, ("", "")).await;
    let (servers, port, admin, config) = (&c.servers, c.port, c.admin, &c.config);
    let proxy = c.serve().await;
    let seeded = seed(port, 3000).await;
    // Users found by email through a lookup vindex whose table is sharded in `app` too.
    let mut app = app_conn(port).await;
    app.query_drop(
        "CREATE TABLE email_lookup (email VARCHAR(100) PRIMARY KEY, keyspace_id VARBINARY(16) NOT NULL)",
    )
    .await
    .unwrap();
    app.query_drop(
        "CREATE TABLE users (user_id BIGINT PRIMARY KEY, email VARCHAR(100), name VARCHAR(40))",
    )
    .await
    .unwrap();
    add_users(&mut app, 1..=200).await;
    let writers = Writers::start(&[port], &seeded);

    // Targets that serve already, or that are not configured, are refused.
    let refused = cli(
        config,
        &["reshard", "app", "start", "--to", "-80,80-c0,c0-"],
    )
    .unwrap_err();
    assert!(refused.contains("serves the keyspace now"), "{refused}");
    let refused = cli(config, &["reshard", "app", "start", "--to", "-40,40-"]).unwrap_err();
    assert!(refused.contains("spare_shards"), "{refused}");

    let started = json(
        &cli(
            config,
            &["reshard", "app", "start", "--to", SPLIT, "--format", "json"],
        )
        .unwrap(),
    );
    assert_eq!(
        started["sources"],
        serde_json::json!(["-80", "80-"]),
        "{started}"
    );
    add_users(&mut app, 201..=250).await;
    // The streams copy rows, not schema changes: DDL waits for the reshard's end.
    let refused = app
        .query_drop("ALTER TABLE items ADD COLUMN extra INT")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("1235") && refused.to_string().contains("resharded"),
        "{refused}"
    );
    // A reference table's change during the copy reaches every target.
    app.query_drop("UPDATE colors SET name = 'rouge' WHERE id = 1")
        .await
        .unwrap();
    let ready = settled(config).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    assert_eq!(ready["differences"], serde_json::json!([]), "{ready}");
    // The metrics and the status page show it too.
    let metrics = admin_get(admin, "/metrics");
    assert!(
        metrics.contains("shardgate_reshard{keyspace=\"app\",what=\"ready\"} 1")
            && metrics.contains("shardgate_reshard{keyspace=\"app\",what=\"rows_total\"}"),
        "{metrics}"
    );
    let page = admin_get(admin, "/status");
    assert!(
        page.contains("id=\"reshards\"") && page.contains(SPLIT) && page.contains(">ready<"),
        "{page}"
    );
    let copied: u64 = ready["movers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["copied"].as_u64().unwrap())
        .sum();
    assert!(copied >= 3000, "{ready}");

    // Replica reads switch first. A row put on a target behind the streams' back shows where
    // a read went: replica reads see it once switched, primary reads never.
    let marker = put_marker(servers).await;
    assert!(!sees(port, marker, true).await);
    let reads = json(
        &cli(
            config,
            &["reshard", "app", "switch-reads", "--format", "json"],
        )
        .unwrap(),
    );
    assert_eq!(reads["reads_switched"], true, "{reads}");
    assert!(sees(port, marker, true).await);
    assert!(!sees(port, marker, false).await);
    cli(config, &["reshard", "app", "reverse-reads"]).unwrap();
    assert!(!sees(port, marker, true).await);
    cli(config, &["reshard", "app", "switch-reads"]).unwrap();
    assert!(sees(port, marker, true).await);
    take_marker(servers, marker).await;

    // Switched under the writes: every acknowledged write is on the four new shards.
    let switched = json(&cli(config, &["reshard", "app", "switch", "--format", "json"]).unwrap());
    assert_eq!(switched["state"], "switched", "{switched}");
    assert_eq!(switched["reads_switched"], false, "{switched}");
    let stall = switched["stall_ms"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    writers.hold().await;
    let quarters = ["-40", "40-80", "80-c0", "c0-"];
    same(
        "after the switch",
        &rows_on(servers, &quarters).await,
        &writers.expected(),
    );
    // The proxy routes by the new map (reads and writes).
    let counted: i64 = app
        .query_first("SELECT COUNT(*) FROM items")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counted as usize, writers.expected().len());
    let color: String = app
        .query_first("SELECT name FROM colors WHERE id = 1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(color, "rouge");
    add_users(&mut app, 251..=260).await;
    found_by_email(&mut app, 260).await;
    writers.resume();

    // Reversed under the writes: the writes made meanwhile came back to the old shards.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reversed = json(&cli(config, &["reshard", "app", "reverse", "--format", "json"]).unwrap());
    assert_eq!(reversed["state"], "reversed", "{reversed}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (done, failed, expected) = writers.stop().await;
    assert!(
        failed.is_empty(),
        "{} failed writes: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    found_by_email(&mut app, 260).await;
    same(
        "after the reverse",
        &rows_on(servers, &["-80", "80-"]).await,
        &expected,
    );
    assert!(done > 100, "only {done} writes");
    let state = std::fs::read_to_string(vschema::state_path(config)).unwrap();
    assert!(
        state.contains("[serving]") && state.contains("\"-80\""),
        "{state}"
    );

    // Cancelled after the reverse: the targets' tables are gone.
    let cancelled = json(&cli(config, &["reshard", "app", "cancel", "--format", "json"]).unwrap());
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    let mut target = direct(servers, "-40").await;
    let tables: Vec<String> = target.query("SHOW TABLES").await.unwrap();
    assert!(tables.is_empty(), "{tables:?}");
    eprintln!("split: {copied} rows copied; the switch held statements {stall} ms; {done} writes");
    drop(app);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_resumes_after_a_kill_and_a_difference_blocks_its_switch() {
    let c = cluster(false, ("", "")).await;
    let (servers, port, config, text) = (&c.servers, c.port, &c.config, &c.text);
    let proxy = common::proxy_process_serving(text, port, &[]).await;
    let expected = seed(port, 8000).await;

    // Slow enough (1,000 rows/s from each source) to be caught in the middle of the copy.
    cli(
        config,
        &[
            "reshard",
            "app",
            "start",
            "--to",
            "-80,80-",
            "--max-rows-per-sec",
            "1000",
        ],
    )
    .unwrap();
    let copied = |r: &serde_json::Value| -> u64 {
        r["movers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["copied"].as_u64().unwrap())
            .sum()
    };
    // Progress is recorded each second; killed once some of it is.
    let mut main = Conn::new(Opts::from_url(&servers[2].url("main")).unwrap())
        .await
        .unwrap();
    let mut recorded = 0;
    for _ in 0..200 {
        let record: Option<String> = main
            .query_first("SELECT record FROM shardgate_reshards WHERE keyspace_name = 'app'")
            .await
            .unwrap();
        recorded = record.map_or(0, |r| copied(&json(&r)));
        if recorded > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recorded > 0 && recorded < 8000,
        "{recorded} rows recorded copied"
    );
    drop(proxy);

    // Started again, it resumes the copy where the record says and gets ready.
    let _proxy = common::proxy_process_serving(text, port, &[]).await;
    let ready = settled(config).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    same(
        "merged, before the switch",
        &rows_on(servers, &["-80", "80-"]).await,
        &expected,
    );

    // A row changed on a target behind the stream's back is a difference: the switch waits,
    // and the replica reads switched to the targets come back.
    cli(config, &["reshard", "app", "switch-reads"]).unwrap();
    let (victim, _) = expected.iter().find(|(id, _)| owns("80-", **id)).unwrap();
    let tamper = format!("UPDATE items SET note = 'tampered' WHERE id = {victim}");
    on_shard(servers, "80-", &tamper).await;
    let verified = json(&cli(config, &["reshard", "app", "verify", "--format", "json"]).unwrap());
    assert_eq!(verified["state"], "diverged", "{verified}");
    assert_eq!(verified["reads_switched"], false, "{verified}");
    let note = note_seen(port, *victim, true).await;
    assert_eq!(note.as_ref(), Some(&expected[victim].1));
    let listed = verified["differences"].to_string();
    assert!(
        listed.contains(&format!("({victim}) differs on 80-")),
        "{verified}"
    );
    let refused = cli(config, &["reshard", "app", "switch"]).unwrap_err();
    assert!(refused.contains("differences"), "{refused}");
    let (n, note) = &expected[victim];
    let restore = format!("UPDATE items SET n = {n}, note = '{note}' WHERE id = {victim}");
    on_shard(servers, "80-", &restore).await;
    let verified = json(&cli(config, &["reshard", "app", "verify", "--format", "json"]).unwrap());
    assert_eq!(verified["state"], "ready", "{verified}");

    // Switched and completed: two shards serve every row, the four old ones hold none.
    let switched = json(&cli(config, &["reshard", "app", "switch", "--format", "json"]).unwrap());
    assert_eq!(switched["state"], "switched", "{switched}");
    let mut app = app_conn(port).await;
    app.query_drop("INSERT INTO items (id, n, note) VALUES (99999, 1, 'after')")
        .await
        .unwrap();
    let completed =
        json(&cli(config, &["reshard", "app", "complete", "--format", "json"]).unwrap());
    assert_eq!(completed["state"], "completed", "{completed}");
    let mut expected = expected;
    expected.insert(99999, (1, "after".into()));
    same(
        "merged",
        &rows_on(servers, &["-80", "80-"]).await,
        &expected,
    );
    let counted: i64 = app
        .query_first("SELECT COUNT(*) FROM items")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counted, 8001);
    let mut old = direct(servers, "c0-").await;
    let tables: Vec<String> = old.query("SHOW TABLES").await.unwrap();
    assert!(tables.is_empty(), "{tables:?}");
}

/// Puts an item on target `-40` alone (behind the streams' back): its id.
async fn put_marker(servers: &[testkit::MariaDb]) -> i64 {
    let marker = (500_000..).find(|id| owns("-40", *id)).unwrap();
    let put = format!("INSERT INTO items (id, n, note) VALUES ({marker}, 0, 'only on -40')");
    on_shard(servers, "-40", &put).await;
    marker
}

async fn take_marker(servers: &[testkit::MariaDb], marker: i64) {
    on_shard(
        servers,
        "-40",
        &format!("DELETE FROM items WHERE id = {marker}"),
    )
    .await;
}

/// Runs `sql` on `shard` directly, behind the proxy's back.
async fn on_shard(servers: &[testkit::MariaDb], shard: &str, sql: &str) {
    direct(servers, shard).await.query_drop(sql).await.unwrap();
}

/// Item `id`'s note as a read through the proxy at `port` finds it: a replica read (`USE
/// app@replica`), or one on the primaries.
async fn note_seen(port: u16, id: i64, replica: bool) -> Option<String> {
    let mut c = app_conn(port).await;
    if replica {
        c.query_drop("USE app@replica").await.unwrap();
    }
    c.query_first(format!("SELECT note FROM items WHERE id = {id}"))
        .await
        .unwrap()
}

/// Whether a read through the proxy at `port` finds item `id` (see [`note_seen`]).
async fn sees(port: u16, id: i64, replica: bool) -> bool {
    note_seen(port, id, replica).await.is_some()
}

/// The shards serving `app` as the proxy at `port` routes it.
async fn serving(port: u16) -> Vec<String> {
    let mut c = app_conn(port).await;
    let rows: Vec<mysql_async::Row> = c.query("SHOW SHARDGATE SHARDS").await.unwrap();
    let mut shards: Vec<String> = rows
        .into_iter()
        .filter(|r| r.get::<String, _>(0).as_deref() == Some("app"))
        .filter_map(|r| r.get::<String, _>(1))
        .collect();
    shards.sort();
    shards
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_sharing_etcd_switch_together_and_one_takes_over_from_a_dead_runner() {
    let etcd = tokio::task::spawn_blocking(|| testkit::start_etcd().unwrap())
        .await
        .unwrap();
    let topology = format!(
        "[topology]\netcd = [\"{}\"]\nprefix = \"/reshard\"\n",
        etcd.endpoint()
    );
    let c = cluster(true, ("", &topology)).await;
    let (servers, port, config) = (&c.servers, c.port, &c.config);
    // Two proxies: `first` runs the reshard, `second` only shares the topology.
    let first = common::proxy_process_serving(&c.text, port, &[]).await;
    let (second_port, second_admin) = (common::free_port(), common::free_port());
    let second_text = c
        .text
        .replacen(&format!(":{port}\""), &format!(":{second_port}\""), 1)
        .replacen(&format!(":{}\"", c.admin), &format!(":{second_admin}\""), 1);
    let second_config = c._dir.path().join("second.toml");
    std::fs::write(&second_config, &second_text).unwrap();
    let _second = common::proxy_process_serving(&second_text, second_port, &[]).await;
    let seeded = seed(port, 3000).await;
    let writers = Writers::start(&[port, second_port], &seeded);

    cli(config, &["reshard", "app", "start", "--to", SPLIT]).unwrap();
    // One proxy runs it: the other names it.
    let elsewhere = cli(&second_config, &["reshard", "app", "verify"]).unwrap_err();
    assert!(elsewhere.contains("runs on proxy"), "{elsewhere}");
    let refused = cli(&second_config, &["reshard", "app", "start", "--to", SPLIT]).unwrap_err();
    assert!(refused.contains("already"), "{refused}");
    // DDL is refused on the proxy that does not run it too.
    let mut on_second = app_conn(second_port).await;
    let refused = on_second
        .query_drop("CREATE TABLE later (id INT PRIMARY KEY)")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("resharded"), "{refused}");
    drop(on_second);
    let ready = settled(config).await;
    assert_eq!(ready["state"], "ready", "{ready}");

    // Replica reads switch on both proxies.
    let marker = put_marker(servers).await;
    cli(config, &["reshard", "app", "switch-reads"]).unwrap();
    let mut seen = false;
    for _ in 0..100 {
        seen = sees(second_port, marker, true).await;
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the second proxy's replica reads did not switch");
    assert!(!sees(second_port, marker, false).await);
    take_marker(servers, marker).await;

    // The switch holds both proxies' statements and swaps both proxies' routing.
    let switched = json(&cli(config, &["reshard", "app", "switch", "--format", "json"]).unwrap());
    assert_eq!(switched["state"], "switched", "{switched}");
    let quarters: Vec<String> = ["-40", "40-80", "80-c0", "c0-"].map(String::from).to_vec();
    assert_eq!(serving(port).await, quarters);
    assert_eq!(serving(second_port).await, quarters);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (done, failed, expected) = writers.stop().await;
    assert!(
        failed.is_empty(),
        "{} writes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(done > 100, "only {done} writes");
    same(
        "after the switch, through two proxies",
        &rows_on(servers, &["-40", "40-80", "80-c0", "c0-"]).await,
        &expected,
    );
    println!(
        "two proxies: {done} writes, 0 failed; statements held {} ms at the switch",
        switched["stall_ms"]
    );

    // The proxy running it dies: once its etcd lease expires the other takes the reshard up,
    // streams the writes made on the new shards back, and reverses it.
    drop(first);
    let writers = Writers::start(&[second_port], &expected);
    let mut reversed = None;
    for _ in 0..300 {
        match cli(
            &second_config,
            &["reshard", "app", "reverse", "--format", "json"],
        ) {
            Ok(out) => {
                reversed = Some(json(&out));
                break;
            }
            Err(e) if e.contains("runs on proxy") => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("reverse: {e}"),
        }
    }
    let reversed = reversed.expect("the second proxy did not take the reshard over");
    assert_eq!(reversed["state"], "reversed", "{reversed}");
    assert_eq!(serving(second_port).await, ["-80", "80-"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (done, failed, expected) = writers.stop().await;
    assert!(
        failed.is_empty(),
        "{} writes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(done > 0);
    same(
        "reversed by the proxy that took over",
        &rows_on(servers, &["-80", "80-"]).await,
        &expected,
    );
    let cancelled = json(
        &cli(
            &second_config,
            &["reshard", "app", "cancel", "--format", "json"],
        )
        .unwrap(),
    );
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    drop(etcd);
}

/// The config of `app` on its one shard `0`: unsharded, or (`sharded`) declared sharded on that
/// shard, with the halves as spare shards and `items`' ids from a sequence.
fn solo_config(servers: &[testkit::MariaDb], server: &str, sharded: bool) -> String {
    let app = match sharded {
        false => "sharded = false\n".to_string(),
        true => format!(
            r#"sharded = true
spare_shards = {}
vindexes.hash = {{ type = "hash" }}
tables.items = {{ primary_vindex = {{ column = "id", vindex = "hash" }}, auto_increment = {{ column = "id", sequence = "main.items_seq" }} }}
tables.colors = {{ type = "reference" }}
"#,
            halves_of(servers)
        ),
    };
    format!(
        r#"{preamble}
[keyspaces.app]
shards = [{{ name = "0", primary = "{solo}" }}]
{app}
[keyspaces.main]
sharded = false
shards = [{{ name = "0", primary = "{main}" }}]
tables.items_seq = {{ type = "sequence" }}
"#,
        solo = servers[2].url("solo"),
        main = servers[2].url("main"),
        preamble = preamble(server),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsharded_keyspace_moves_to_two_shards_under_writes() {
    let c = cluster(true, ("", "")).await;
    let (servers, port) = (&c.servers, c.port);
    let server = format!(
        "listen = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{}\"",
        c.admin
    );
    let config = &c.config;
    std::fs::write(config, solo_config(servers, &server, false)).unwrap();
    let _proxy = c.serve().await;
    let seeded = seed(port, 3000).await;
    let writers = Writers::start(&[port], &seeded);
    let refused = cli(config, &["reshard", "app", "start", "--to", "-80,80-"]).unwrap_err();
    assert!(refused.contains("unsharded"), "{refused}");

    // As with Vitess: the keyspace is declared sharded on its one shard (which owns every
    // keyspace id), its ids now from a sequence above those it holds, and reloaded while
    // the writers write; then it is resharded like any other.
    let mut app = app_conn(port).await;
    app.query_drop(
        "CREATE TABLE main.items_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)",
    )
    .await
    .unwrap();
    app.query_drop("INSERT INTO main.items_seq VALUES (0, 5000000, 100)")
        .await
        .unwrap();
    std::fs::write(config, solo_config(servers, &server, true)).unwrap();
    cli(config, &["reload"]).unwrap();
    assert_eq!(serving(port).await, ["0"]);
    cli(config, &["reshard", "app", "start", "--to", "-80,80-"]).unwrap();
    let ready = settled(config).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    assert_eq!(ready["sources"], serde_json::json!(["0"]), "{ready}");
    let switched = json(&cli(config, &["reshard", "app", "switch", "--format", "json"]).unwrap());
    assert_eq!(switched["state"], "switched", "{switched}");
    assert_eq!(serving(port).await, ["-80", "80-"]);
    // An id from the sequence, on the shard that owns it.
    app.query_drop("INSERT INTO items (n, note) VALUES (7, 'sequenced')")
        .await
        .unwrap();
    let id: i64 = app
        .query_first("SELECT LAST_INSERT_ID()")
        .await
        .unwrap()
        .unwrap();
    assert!(id >= 5_000_000, "{id}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (done, failed, mut expected) = writers.stop().await;
    assert!(
        failed.is_empty(),
        "{} writes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(done > 100, "only {done} writes");
    expected.insert(id, (7, "sequenced".into()));
    same(
        "sharded",
        &rows_on(servers, &["-80", "80-"]).await,
        &expected,
    );

    let completed =
        json(&cli(config, &["reshard", "app", "complete", "--format", "json"]).unwrap());
    assert_eq!(completed["state"], "completed", "{completed}");
    let mut solo = direct(servers, "0").await;
    let tables: Vec<String> = solo.query("SHOW TABLES").await.unwrap();
    assert!(tables.is_empty(), "{tables:?}");
    // Its DDL goes through again.
    app.query_drop("ALTER TABLE items ADD COLUMN extra INT")
        .await
        .unwrap();
}

const SB_TABLES: usize = 4;
const SB_ROWS: usize = 50_000;

/// One `sysbench oltp_write_only` run through the proxy at `port` (`command` prepare or run).
fn sysbench(port: u16, command: &str, extra: &[&str]) -> String {
    let out = testkit::output_within(
        std::process::Command::new("sysbench")
            .args([
                "oltp_write_only",
                "--db-driver=mysql",
                "--mysql-host=127.0.0.1",
                &format!("--mysql-port={port}"),
                "--mysql-user=app",
                "--mysql-password=secret",
                "--mysql-db=app",
                &format!("--tables={SB_TABLES}"),
                &format!("--table-size={SB_ROWS}"),
            ])
            .args(extra)
            .arg(command),
        Duration::from_secs(600),
        &format!("sysbench oltp_write_only {command}"),
    )
    .expect("sysbench is installed (Debian package sysbench)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("FATAL"),
        "sysbench {command} failed:\n{text}"
    );
    text
}

/// The number after `label` on its line of a sysbench report.
fn reported(text: &str, label: &str) -> f64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label} in sysbench output:\n{text}"))
}

/// Each table's row count and the XOR of its rows' CRCs over `shards`.
async fn checksums(servers: &[testkit::MariaDb], shards: &[&str]) -> Vec<(i64, i64)> {
    let mut out = vec![(0, 0); SB_TABLES];
    for shard in shards {
        let mut c = direct(servers, shard).await;
        for (i, sum) in out.iter_mut().enumerate() {
            let (n, crc): (i64, i64) = c
                .query_first(format!(
                    "SELECT COUNT(*), CAST(COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))), 0) AS SIGNED) FROM sbtest{}",
                    i + 1
                ))
                .await
                .unwrap()
                .unwrap();
            *sum = (sum.0 + n, sum.1 ^ crc);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysbench_oltp_write_only_runs_through_a_split_without_an_error() {
    let (mut sequences, mut app_tables) = (String::new(), String::new());
    for i in 1..=SB_TABLES {
        sequences += &format!("tables.sbtest{i}_seq = {{ type = \"sequence\" }}\n");
        app_tables += &format!(
            "tables.sbtest{i} = {{ primary_vindex = {{ column = \"id\", vindex = \"hash\" }}, \
             auto_increment = {{ column = \"id\", sequence = \"main.sbtest{i}_seq\" }} }}\n"
        );
    }
    let c = cluster(true, (&app_tables, &sequences)).await;
    let (servers, port, config) = (&c.servers, c.port, &c.config);
    let proxy = c.serve().await;
    let mut main =
        Conn::new(Opts::from_url(&format!("mysql://app:secret@127.0.0.1:{port}/main")).unwrap())
            .await
            .unwrap();
    for i in 1..=SB_TABLES {
        main.query_drop(format!(
            "CREATE TABLE sbtest{i}_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)"
        ))
        .await
        .unwrap();
        main.query_drop(format!(
            "INSERT INTO sbtest{i}_seq (id, next_id, cache) VALUES (0, 1, 1000)"
        ))
        .await
        .unwrap();
    }
    let prepared = std::time::Instant::now();
    tokio::task::block_in_place(|| sysbench(port, "prepare", &[]));
    let prepared = prepared.elapsed();

    // sysbench writes in runs of a few seconds until told to stop; errors end a run (FATAL).
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut transactions, mut retried, mut max_ms) = (0.0, 0.0, 0.0f64);
            while !stop.load(Ordering::Relaxed) {
                let text = sysbench(
                    port,
                    "run",
                    &["--threads=4", "--time=3", "--mysql-ignore-errors=1213"],
                );
                transactions += reported(&text, "transactions:");
                retried += reported(&text, "ignored errors:");
                max_ms = max_ms.max(reported(&text, "max:"));
            }
            (transactions, retried, max_ms)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    cli(config, &["reshard", "app", "--to", SPLIT]).unwrap();
    let ready = settled(config).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    let switched = json(&cli(config, &["reshard", "app", "switch", "--format", "json"]).unwrap());
    assert_eq!(switched["state"], "switched", "{switched}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (transactions, retried, max_ms) = tokio::task::block_in_place(|| load.join().unwrap());
    assert!(transactions > 0.0);
    assert!(
        retried * 100.0 <= transactions,
        "{retried} deadlocks retried in {transactions} transactions"
    );

    // Every row once, on the shard that owns it; the old shards, fed back by the reverse
    // stream, hold the same rows.
    let quarters = ["-40", "40-80", "80-c0", "c0-"];
    let mut seen = 0;
    for shard in quarters {
        let mut c = direct(servers, shard).await;
        for i in 1..=SB_TABLES {
            let ids: Vec<i64> = c.query(format!("SELECT id FROM sbtest{i}")).await.unwrap();
            assert!(
                ids.iter().all(|id| owns(shard, *id)),
                "sbtest{i} on {shard}"
            );
            seen += ids.len();
        }
    }
    assert_eq!(seen, SB_TABLES * SB_ROWS, "oltp_write_only keeps every id");
    let mut last = Vec::new();
    for _ in 0..100 {
        let (new, old) = (
            checksums(servers, &quarters).await,
            checksums(servers, &["-80", "80-"]).await,
        );
        if new == old {
            last.clear();
            break;
        }
        last = vec![new, old];
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        last.is_empty(),
        "the old shards differ from the new: {last:?}"
    );
    let status = status(config);
    let (rows, secs) = (
        status["rows_total"].as_f64().unwrap(),
        status["copy_secs"].as_f64().unwrap(),
    );
    eprintln!(
        "sysbench oltp_write_only through a 2->4 split of {} rows (prepared in {prepared:?}): \
         copied in {secs:.1} s ({:.0} rows/s) under load; the switch held statements {} ms; \
         {transactions} transactions, {retried} deadlocks retried, 0 errors; the slowest \
         statement sysbench saw took {max_ms} ms",
        rows,
        rows / secs,
        switched["stall_ms"]
    );
    drop(main);
    proxy.stop().await;
}
