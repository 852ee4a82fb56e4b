//! Planned reparent on real replication groups. Shard `-80` is a primary and two GTID replicas
//! (semi-synchronous); shard `80-` is one server. Eight writers insert through shardgate and
//! record every insert it acknowledged, while `shardgate reparent` hands `-80` to a replica and
//! later back. The writers see no error and lose no row. A transaction open on the old primary
//! commits if it ends within the grace period, and is killed (its COMMIT fails, nothing of it
//! stays) if it does not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

/// Waits (at most 60 s) until `sql` answers `want` on `server`.
fn wait_for(server: &testkit::MariaDb, sql: &str, want: &str) {
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

/// The source port a server replicates from (empty when it replicates from none).
fn source_port(server: &testkit::MariaDb) -> String {
    let status = server.sql("SHOW SLAVE STATUS").unwrap();
    // Master_Port is the fourth column.
    status
        .split('\t')
        .nth(3)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Runs `shardgate reparent` against the proxy's admin address (within 60 s): its exit
/// success and what it printed.
async fn reparent(config: &std::path::Path, shard: &str, to: u16) -> (bool, String) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_shardgate"))
        .args([
            "reparent",
            shard,
            "--to",
            &format!("127.0.0.1:{to}"),
            "--config",
        ])
        .arg(config)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("shardgate reparent answers within 60 s")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// What the writers saw.
#[derive(Default)]
struct Written {
    acknowledged: Vec<i64>,
    errors: Vec<String>,
    /// When each insert that took over 20 ms started, and how long it took.
    slow: Vec<(Instant, Duration)>,
}

/// The longest insert that started between `from` and `to`.
fn longest(written: &[Written], from: Instant, to: Instant) -> Duration {
    written
        .iter()
        .flat_map(|w| &w.slow)
        .filter(|(at, _)| (from..to).contains(at))
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default()
}

/// Inserts rows `writer * 1_000_000 + n` one by one until `stop`.
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
            Err(e) => out.errors.push(format!("insert {id}: {e}")),
        }
        if started.elapsed() > Duration::from_millis(20) {
            out.slow.push((started, started.elapsed()));
        }
    }
    out
}

/// An id of shard `-80` (hash vindex) from `from` on.
fn id_on_first_shard(from: i64) -> i64 {
    (from..)
        .find(|id| {
            let ksid = vschema::VindexKind::Hash
                .map(&vschema::KeyValue::Int(*id))
                .unwrap();
            ksid.0.first().is_some_and(|b| *b < 0x80)
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_reparent_holds_writes_and_loses_none() {
    let (group, single) = tokio::task::spawn_blocking(|| {
        (
            testkit::start_replicated(2, &["shop"]).unwrap(),
            testkit::start(1, &["shop"]).unwrap(),
        )
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("shardgate.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"

[[users]]
name = "app"
password = "secret"

[keyspaces.shop]
sharded = true
failover_buffer_ms = 6000
shards = [
  {{ name = "-80", primary = "{}", replicas = ["{}", "{}"] }},
  {{ name = "80-", primary = "{}" }},
]
vindexes.hash = {{ type = "hash" }}
tables.items = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}
"#,
            group[0].url("shop"),
            group[1].url("shop"),
            group[2].url("shop"),
            single[0].url("shop"),
        ),
    )
    .unwrap();
    let config = vschema::load_config(&config_path).unwrap();
    let proxy = shardgate::start_from(&config, "127.0.0.1:0", Some(config_path.clone()))
        .await
        .unwrap();
    // The CLI finds the proxy through the config's admin address.
    let text = std::fs::read_to_string(&config_path).unwrap();
    let text = text.replacen(
        "admin = \"127.0.0.1:0\"",
        &format!("admin = \"{}\"", proxy.admin.unwrap()),
        1,
    );
    std::fs::write(&config_path, text).unwrap();

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

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (1..=8)
        .map(|w| tokio::spawn(writer(url.clone(), w, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A transaction on the old primary that ends within the grace period commits.
    let kept = id_on_first_shard(900_000_001);
    let mut tx = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    tx.query_drop("BEGIN").await.unwrap();
    tx.exec_drop("INSERT INTO items (id, v) VALUES (?, 0)", (kept,))
        .await
        .unwrap();
    let committing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.query_drop("COMMIT").await
    });
    let first_started = Instant::now();
    let (ok, said) = reparent(&config_path, "shop/-80", group[1].port).await;
    let first_ended = Instant::now();
    assert!(ok, "reparent failed: {said}");
    assert!(
        said.contains(&format!("-> mysql://root@127.0.0.1:{}/shop", group[1].port)),
        "{said}"
    );
    assert!(said.contains("0 busy connection(s) killed"), "{said}");
    committing
        .await
        .unwrap()
        .expect("COMMIT within the grace period");
    println!("first reparent: {said}");

    // The new primary takes writes; the old one and the other replica replicate from it.
    let state = std::fs::read_to_string(dir.path().join("shardgate.state.toml")).unwrap();
    assert!(
        state.contains(&format!("\"shop/-80\" = \"127.0.0.1:{}\"", group[1].port)),
        "{state}"
    );
    tokio::task::block_in_place(|| {
        assert_eq!(group[1].sql("SELECT @@read_only").unwrap().trim(), "0");
        assert_eq!(group[0].sql("SELECT @@read_only").unwrap().trim(), "1");
        assert_eq!(source_port(&group[0]), group[1].port.to_string());
        assert_eq!(source_port(&group[2]), group[1].port.to_string());
        assert_eq!(source_port(&group[1]), "");
    });
    let shards: Vec<(String, String, String, String, String, String)> =
        conn.query("SHOW SHARDGATE SHARDS").await.unwrap();
    let first = shards.iter().find(|s| s.1 == "-80").unwrap();
    assert!(
        first.3.contains(&format!(":{}/", group[1].port)),
        "{first:?}"
    );
    assert!(
        first.5.contains(&format!(":{}/", group[0].port)),
        "{first:?}"
    );

    // Not a replica: refused, and nothing changes.
    let (ok, said) = reparent(&config_path, "shop/-80", single[0].port).await;
    assert!(!ok);
    assert!(said.contains("is not a replica of shop/-80"), "{said}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    // Back to the first server, with a transaction that outlives the grace period (half of
    // failover_buffer_ms): it is killed, and its COMMIT fails.
    let lost = id_on_first_shard(kept + 1);
    let mut tx = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    tx.query_drop("BEGIN").await.unwrap();
    tx.exec_drop("INSERT INTO items (id, v) VALUES (?, 0)", (lost,))
        .await
        .unwrap();
    let second_started = Instant::now();
    let (ok, said) = reparent(&config_path, "shop/-80", group[0].port).await;
    let second_ended = Instant::now();
    assert!(ok, "reparent back failed: {said}");
    assert!(!said.contains(" 0 busy connection(s) killed"), "{said}");
    println!("second reparent: {said}");
    assert!(tx.query_drop("COMMIT").await.is_err());

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.unwrap());
    }
    for w in &written {
        assert!(w.errors.is_empty(), "{:?}", w.errors);
    }
    let mut acknowledged = vec![kept];
    acknowledged.extend(written.iter().flat_map(|w| w.acknowledged.iter().copied()));
    println!(
        "{} acknowledged inserts; the longest insert took {} ms during the first reparent, \
         {} ms during the second (which waited out the grace period)",
        acknowledged.len(),
        longest(&written, first_started, first_ended).as_millis(),
        longest(&written, second_started, second_ended).as_millis(),
    );

    // Every acknowledged row is there, and the killed transaction's is not.
    let stored: Vec<i64> = conn
        .query("SELECT id FROM items ORDER BY id")
        .await
        .unwrap();
    acknowledged.sort_unstable();
    assert_eq!(stored, acknowledged);
    // The demoted server catches up with the primary again.
    tokio::task::block_in_place(|| {
        let on_primary = group[0].sql("SELECT COUNT(*) FROM shop.items").unwrap();
        for replica in &group[1..] {
            wait_for(
                replica,
                "SELECT COUNT(*) FROM shop.items",
                on_primary.trim(),
            );
        }
    });
    proxy.stop().await;
}
