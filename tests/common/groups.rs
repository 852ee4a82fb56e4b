//! Replication groups behind a proxy started from a config file: shard `-80` of keyspace `shop`
//! is a primary and two GTID replicas (semi-synchronous), shard `80-` one server. Writers that
//! record every insert the proxy acknowledged.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

/// Waits (at most 60 s) until `sql` answers `want` on `server`.
pub fn wait_for(server: &testkit::MariaDb, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = server.sql(sql).unwrap_or_default();
        if got.trim() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} on port {}: {got:?}, not {want}",
            server.port
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The port of the server that `server` replicates from (empty when none).
pub fn source_port(server: &testkit::MariaDb) -> String {
    let status = server.sql("SHOW SLAVE STATUS").unwrap();
    // Master_Port is the fourth column.
    status
        .split('\t')
        .nth(3)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// An id of shard `-80` (hash vindex) from `from` on.
pub fn id_on_first_shard(from: i64) -> i64 {
    (from..)
        .find(|id| {
            let ksid = vschema::VindexKind::Hash
                .map(&vschema::KeyValue::Int(*id))
                .unwrap();
            ksid.0.first().is_some_and(|b| *b < 0x80)
        })
        .unwrap()
}

pub struct Setup {
    /// `-80`'s primary, then its replicas.
    pub group: Vec<testkit::MariaDb>,
    /// `80-`.
    pub single: testkit::MariaDb,
    pub proxy: shardgate::Running,
    pub config_path: PathBuf,
    /// Holds the config and the state file.
    pub dir: tempfile::TempDir,
    /// The proxy's URL for user `app`, database `shop`.
    pub url: String,
}

/// The servers, a config file with `options` for keyspace `shop` and `extra` sections after
/// it (`{single}` there is the URL of `80-`'s server without a database), the proxy started
/// from it (admin address written back into the file, for the CLI), and table `items` created
/// and replicated.
pub async fn setup(options: &str, extra: &str) -> Setup {
    let (group, mut single) = tokio::task::spawn_blocking(|| {
        (
            testkit::start_replicated(2, &["shop"]).unwrap(),
            testkit::start(1, &["shop", "main"]).unwrap(),
        )
    })
    .await
    .unwrap();
    let single = single.remove(0);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("shardgate.toml");
    let config = |admin: &str| {
        format!(
            r#"[server]
listen = "127.0.0.1:0"
admin = "{admin}"

[[users]]
name = "app"
password = "secret"

[keyspaces.shop]
sharded = true
{options}
shards = [
  {{ name = "-80", primary = "{}", replicas = ["{}", "{}"] }},
  {{ name = "80-", primary = "{}" }},
]
vindexes.hash = {{ type = "hash" }}
tables.items = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}

{}
"#,
            group[0].url("shop"),
            group[1].url("shop"),
            group[2].url("shop"),
            single.url("shop"),
            extra.replace("{single}", &single.url("")),
        )
    };
    std::fs::write(&config_path, config("127.0.0.1:0")).unwrap();
    let loaded = vschema::load_config(&config_path).unwrap();
    let proxy = shardgate::start_from(&loaded, "127.0.0.1:0", Some(config_path.clone()))
        .await
        .unwrap();
    std::fs::write(&config_path, config(&proxy.admin.unwrap().to_string())).unwrap();

    let url = format!("mysql://app:secret@{}/shop", proxy.addr);
    let mut conn = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    conn.query_drop("CREATE TABLE items (id BIGINT PRIMARY KEY, v INT NOT NULL)")
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        for replica in &group[1..] {
            wait_for(
                replica,
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'items'",
                "1",
            );
        }
        wait_for(
            &group[0],
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'Rpl_semi_sync_master_clients'",
            "2",
        );
    });
    Setup {
        group,
        single,
        proxy,
        config_path,
        dir,
        url,
    }
}

/// What a writer saw.
#[derive(Default)]
pub struct Written {
    pub acknowledged: Vec<i64>,
    /// When each failed insert started, and its error.
    pub errors: Vec<(Instant, String)>,
    /// When each insert that took over 20 ms started, and how long it took.
    pub slow: Vec<(Instant, Duration)>,
}

/// The longest insert that started between `from` and `to`.
pub fn longest(written: &[Written], from: Instant, to: Instant) -> Duration {
    written
        .iter()
        .flat_map(|w| &w.slow)
        .filter(|(at, _)| (from..to).contains(at))
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default()
}

/// Writers (numbered `ids`) inserting rows `writer * 1_000_000 + n`, one by one, until `stop`.
pub fn writers(
    url: &str,
    stop: &Arc<AtomicBool>,
    ids: std::ops::RangeInclusive<i64>,
) -> Vec<tokio::task::JoinHandle<Written>> {
    ids.map(|w| tokio::spawn(writer(url.to_string(), w, stop.clone())))
        .collect()
}

async fn writer(url: String, writer: i64, stop: Arc<AtomicBool>) -> Written {
    let mut conn = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let mut out = Written::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = writer * 1_000_000 + n;
        let started = Instant::now();
        match conn
            .exec_drop("INSERT INTO items (id, v) VALUES (?, ?)", (id, n))
            .await
        {
            Ok(()) => out.acknowledged.push(id),
            Err(e) => out.errors.push((started, format!("insert {id}: {e}"))),
        }
        if started.elapsed() > Duration::from_millis(20) {
            out.slow.push((started, started.elapsed()));
        }
    }
    out
}

/// Stops the writers and collects what they saw.
pub async fn stop(
    stop: &Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<Written>>,
) -> Vec<Written> {
    stop.store(true, Ordering::Relaxed);
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.unwrap());
    }
    written
}

/// The ids of `items`, in order, through `conn`.
pub async fn stored_ids(conn: &mut Conn) -> Vec<i64> {
    conn.query("SELECT id FROM items ORDER BY id")
        .await
        .unwrap()
}
