//! Unplanned failover on real replication groups (see `common::groups`), with `auto_failover`.
//! Eight writers insert through shardgate while shard `-80`'s primary is killed (SIGKILL). The
//! health checks find it gone, the most advanced replica is promoted, and writes go on: no
//! acknowledged insert is lost, and only inserts caught by the crash fail, as does a
//! transaction that was open on the dead primary. The old primary, started again, rejoins as a
//! replica, or is fenced if the crash left it an insert no replica received (whose client got
//! an error). A primary killed with nothing in flight always rejoins. Then a primary is killed
//! holding a transaction no replica received: started again, it is fenced (read-only, out of
//! rotation, reported) instead of rejoining.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::groups::{self, id_on_first_shard, source_port};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

type ShardRow = (String, String, String, String, String, String);

/// Waits (at most 30 s) until SHOW SHARDGATE SHARDS shows `-80`'s row as `done` says.
async fn wait_for_shard(conn: &mut Conn, done: impl Fn(&ShardRow) -> bool) -> ShardRow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: Vec<ShardRow> = conn.query("SHOW SHARDGATE SHARDS").await.unwrap();
        let row = rows.into_iter().find(|r| r.1 == "-80").unwrap();
        if done(&row) {
            return row;
        }
        assert!(Instant::now() < deadline, "{row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which of `group` is `-80`'s primary now.
async fn primary_of(conn: &mut Conn, group: &[testkit::MariaDb]) -> usize {
    let row = wait_for_shard(conn, |_| true).await;
    group
        .iter()
        .position(|s| row.3.contains(&format!(":{}/", s.port)))
        .unwrap_or_else(|| panic!("{row:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_no_acknowledged_write_is_lost() {
    let groups::Setup {
        mut group,
        single: _single,
        proxy,
        config_path: _,
        dir,
        url,
    } = groups::setup("auto_failover = true\nfailover_buffer_ms = 10000", "").await;
    let mut conn = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = groups::writers(&url, &stop, 1..=8);
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Open on the primary at the crash: its COMMIT fails, and nothing of it stays.
    let lost = id_on_first_shard(900_000_001);
    let mut tx = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    tx.query_drop("BEGIN").await.unwrap();
    tx.exec_drop("INSERT INTO items (id, v) VALUES (?, 0)", (lost,))
        .await
        .unwrap();

    let killed = Instant::now();
    tokio::task::block_in_place(|| group[0].kill_hard());
    // A writer of its own measures when `-80` takes writes again.
    let mut probe = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let mut probed = Vec::new();
    let mut id = lost;
    let recovered = loop {
        id = id_on_first_shard(id + 1);
        match probe
            .exec_drop("INSERT INTO items (id, v) VALUES (?, 0)", (id,))
            .await
        {
            Ok(()) => {
                probed.push(id);
                break Instant::now();
            }
            Err(_) => assert!(killed.elapsed() < Duration::from_secs(30)),
        }
    };
    assert!(tx.query_drop("COMMIT").await.is_err());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let written = groups::stop(&stop, writers).await;

    let promoted = wait_for_shard(&mut conn, |r| {
        !r.3.contains(&format!(":{}/", group[0].port))
    })
    .await;
    let (new, other) = if promoted.3.contains(&format!(":{}/", group[1].port)) {
        (1, 2)
    } else {
        (2, 1)
    };
    // Reported: SHOW SHARDGATE FAILOVERS and the metrics.
    type Change = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let changes: Vec<Change> = conn.query("SHOW SHARDGATE FAILOVERS").await.unwrap();
    assert!(
        changes.iter().any(|c| c.1 == "shop/-80"
            && c.2 == "failover"
            && c.7 == "ok"
            && c.5.contains(&format!(":{}/", group[new].port))),
        "{changes:?}"
    );
    let metrics = proxy.gate.metrics_text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("shardgate_primary_changes_total")
                && l.contains("kind=\"failover\"")
                && l.contains("result=\"ok\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    let state = std::fs::read_to_string(dir.path().join("shardgate.state.toml")).unwrap();
    assert!(
        state.contains(&format!("\"shop/-80\" = \"127.0.0.1:{}\"", group[new].port)),
        "{state}"
    );
    let errors: Vec<&(Instant, String)> = written.iter().flat_map(|w| &w.errors).collect();
    println!(
        "writes to -80 succeeded again {} ms after the kill; {} inserts failed: {:?}",
        (recovered - killed).as_millis(),
        errors.len(),
        errors.iter().map(|(_, e)| e).collect::<Vec<_>>()
    );
    // Only inserts caught by the crash fail: those sent before the new primary took over, at
    // most two per writer (the one in flight, and one on a pooled connection to the dead
    // server found broken only when used).
    assert!(errors.len() <= 16, "{errors:?}");
    for (at, error) in &errors {
        assert!(*at < recovered, "{error} failed after the failover");
    }

    // Every acknowledged insert is there; the open transaction's is not.
    let mut acknowledged: Vec<i64> = written
        .iter()
        .flat_map(|w| w.acknowledged.iter().copied())
        .chain(probed)
        .collect();
    acknowledged.sort_unstable();
    let stored = groups::stored_ids(&mut conn).await;
    let missing: Vec<&i64> = acknowledged
        .iter()
        .filter(|id| stored.binary_search(id).is_err())
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(stored.binary_search(&lost).is_err());
    // Failed inserts may have committed (their outcome is unknown); nothing else is there.
    assert!(stored.len() <= acknowledged.len() + errors.len());

    // The other replica follows the new primary. The old one, started again, rejoins, unless
    // the crash left it a transaction no replica received (semi-sync AFTER_SYNC writes the
    // binlog before the replica's acknowledgement): then it is fenced, and what it holds
    // beyond the new primary is only inserts whose clients got an error.
    tokio::task::block_in_place(|| {
        assert_eq!(source_port(&group[other]), group[new].port.to_string());
        group[0].start_again().unwrap();
    });
    let back = format!(":{}/shop ", group[0].port);
    let came_back = wait_for_shard(&mut conn, |r| {
        r.5.contains(&format!("{back}serving")) || r.5.contains(&format!("{back}fenced"))
    })
    .await;
    println!("after the old primary came back: {came_back:?}");
    let failed: Vec<i64> = errors
        .iter()
        .filter_map(|(_, e)| e.strip_prefix("insert ")?.split(':').next()?.parse().ok())
        .collect();
    tokio::task::block_in_place(|| {
        assert_eq!(group[0].sql("SELECT @@read_only").unwrap().trim(), "1");
        if came_back.5.contains(&format!("{back}fenced")) {
            let ids = |server: &testkit::MariaDb| -> Vec<i64> {
                let out = server.sql("SELECT id FROM shop.items").unwrap();
                out.lines().filter_map(|l| l.trim().parse().ok()).collect()
            };
            let on_new = ids(&group[new]);
            for id in ids(&group[0]) {
                assert!(
                    on_new.contains(&id) || failed.contains(&id),
                    "the fenced server holds {id}, neither on the new primary nor failed"
                );
            }
        } else {
            assert_eq!(source_port(&group[0]), group[new].port.to_string());
        }
    });

    // Killed with nothing in flight, a primary always rejoins once it is back.
    let primary = primary_of(&mut conn, &group).await;
    tokio::task::block_in_place(|| group[primary].kill_hard());
    let gone = format!(":{}/", group[primary].port);
    wait_for_shard(&mut conn, |r| !r.3.contains(&gone)).await;
    let next = primary_of(&mut conn, &group).await;
    tokio::task::block_in_place(|| group[primary].start_again().unwrap());
    let back = format!(":{}/shop serving", group[primary].port);
    wait_for_shard(&mut conn, |r| r.5.contains(&back)).await;
    let fenced_first = came_back
        .5
        .contains(&format!(":{}/shop fenced", group[0].port));
    tokio::task::block_in_place(|| {
        // A fenced server is neither promoted nor pointed at the new primary.
        if fenced_first {
            assert_eq!(source_port(&group[0]), "");
        }
        assert_eq!(source_port(&group[primary]), group[next].port.to_string());
        assert_eq!(
            group[primary].sql("SELECT @@read_only").unwrap().trim(),
            "1"
        );
        let on_next = group[next].sql("SELECT COUNT(*) FROM shop.items").unwrap();
        groups::wait_for(
            &group[primary],
            "SELECT COUNT(*) FROM shop.items",
            on_next.trim(),
        );
    });

    // A primary with a transaction that no replica received (they stopped replicating, so
    // semi-sync gave up waiting): killed, replaced, and started again, it is fenced.
    let fencing = next;
    tokio::task::block_in_place(|| {
        for (i, server) in group.iter().enumerate() {
            if i != fencing {
                let _ = server.sql("STOP SLAVE");
            }
        }
        group[fencing]
            .sql("INSERT INTO shop.items (id, v) VALUES (999999999, 0)")
            .unwrap();
        group[fencing].kill_hard();
    });
    let gone = format!(":{}/", group[fencing].port);
    let after = wait_for_shard(&mut conn, |r| !r.3.contains(&gone)).await;
    println!("after the third failover: {after:?}");
    let last = primary_of(&mut conn, &group).await;
    tokio::task::block_in_place(|| {
        // The replicas that were stopped replicate again, from the new primary.
        for (i, server) in group.iter().enumerate() {
            if i != fencing && i != last && !(i == 0 && fenced_first) {
                assert_eq!(source_port(server), group[last].port.to_string(), "{i}");
            }
        }
        group[fencing].start_again().unwrap()
    });
    let fenced = format!(":{}/shop fenced", group[fencing].port);
    let row = wait_for_shard(&mut conn, |r| r.5.contains(&fenced)).await;
    println!("fenced: {row:?}");
    tokio::task::block_in_place(|| {
        assert_eq!(
            group[fencing].sql("SELECT @@read_only").unwrap().trim(),
            "1"
        );
        assert_eq!(source_port(&group[fencing]), "");
    });
    // The fenced server's row is not served.
    let stored_after = groups::stored_ids(&mut conn).await;
    assert!(stored_after.binary_search(&999_999_999).is_err());
    proxy.stop().await;
}
