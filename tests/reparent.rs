//! Planned reparent on real replication groups (see `common::groups`). Eight writers insert
//! through shardgate and record every insert it acknowledged, while `shardgate reparent` hands
//! shard `-80` to a replica and later back. The writers see no error and lose no row. A
//! transaction open on the old primary commits if it ends within the grace period, and is
//! killed (its COMMIT fails, nothing of it stays) if it does not.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::groups::{self, id_on_first_shard, longest, source_port};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_reparent_holds_writes_and_loses_none() {
    let groups::Setup {
        group,
        single,
        proxy,
        config_path,
        dir,
        url,
    } = groups::setup("failover_buffer_ms = 8000", "").await;
    let mut conn = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = groups::writers(&url, &stop, 1..=8);
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
    let (ok, said) = reparent(&config_path, "shop/-80", single.port).await;
    assert!(!ok);
    assert!(
        said.contains("is not a serving replica of shop/-80"),
        "{said}"
    );

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
    let written = groups::stop(&stop, writers).await;
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
    acknowledged.sort_unstable();
    assert_eq!(groups::stored_ids(&mut conn).await, acknowledged);
    // The demoted server catches up with the primary again.
    tokio::task::block_in_place(|| {
        let on_primary = group[0].sql("SELECT COUNT(*) FROM shop.items").unwrap();
        for replica in &group[1..] {
            groups::wait_for(
                replica,
                "SELECT COUNT(*) FROM shop.items",
                on_primary.trim(),
            );
        }
    });
    proxy.stop().await;
}
