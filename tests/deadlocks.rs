//! Deadlocks that span shards, with the shards at MySQL's default innodb_lock_wait_timeout
//! (50 s): shardgate finds the cycle, rolls one transaction back on every shard with 1213, and
//! the others go on. A long wait that is not a cycle is left alone.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// How long a statement in a cycle may wait for shardgate to break it. InnoDB alone would wait
/// 50 s; the detector takes about `deadlock_check_ms` (100 ms). The bound is loose so that a
/// loaded machine does not fail the test.
const BROKEN_WITHIN: Duration = Duration::from_secs(10);

/// A table of its own for the test (see `create_id_v`) with `rows`, each `init`.
async fn setup(c: &mut Conn, table: &str, rows: &[i64]) {
    create_id_v(c, table).await;
    let list: Vec<String> = rows.iter().map(|i| i.to_string()).collect();
    c.query_drop(format!(
        "DELETE FROM {table} WHERE id IN ({})",
        list.join(", ")
    ))
    .await
    .unwrap();
    let values: Vec<String> = rows.iter().map(|i| format!("({i}, 'init')")).collect();
    c.query_drop(format!(
        "INSERT INTO {table} (id, v) VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();
}

async fn lock(c: &mut Conn, table: &str, id: i64, who: &str) {
    c.query_drop(format!("UPDATE {table} SET v = '{who}' WHERE id = {id}"))
        .await
        .unwrap();
}

/// Starts `UPDATE table ... WHERE id = id` in a task: it waits for the row's lock.
fn wait_for(
    mut c: Conn,
    table: &'static str,
    id: i64,
    who: &'static str,
) -> tokio::task::JoinHandle<(Conn, Result<(), mysql_async::Error>, Duration)> {
    tokio::spawn(async move {
        let started = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(45),
            c.query_drop(format!("UPDATE {table} SET v = '{who}' WHERE id = {id}")),
        )
        .await
        .unwrap_or_else(|_| panic!("{who}: UPDATE of {id} still waiting after 45 s"));
        (c, r, started.elapsed())
    })
}

/// Ids of `keyspace` on `n` different shards, from `from` on.
fn ids_on_shards(keyspace: &str, from: i64, n: usize) -> Vec<i64> {
    let mut ids: Vec<i64> = Vec::new();
    let mut shards = Vec::new();
    for id in from.. {
        let shard = owner(keyspace, id);
        if !shards.contains(&shard) {
            shards.push(shard);
            ids.push(id);
            if ids.len() == n {
                return ids;
            }
        }
    }
    unreachable!()
}

fn deadlock_count(proxy: &shardgate::Running, kind: &str) -> u64 {
    let text = proxy.gate.metrics_text();
    let prefix = format!("shardgate_deadlocks_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_locking_two_shards_in_opposite_orders() {
    let proxy = proxy().await;
    let t = "txt_cycle2";
    let mut s1 = client(&proxy, Some("two")).await;
    let mut s2 = client(&proxy, Some("two")).await;
    let (a, b) = ids_on_two_shards(7000);
    setup(&mut s1, t, &[a, b]).await;

    s1.query_drop("BEGIN").await.unwrap();
    lock(&mut s1, t, a, "s1").await;
    s2.query_drop("BEGIN").await.unwrap();
    lock(&mut s2, t, b, "s2").await;
    // s1 waits for s2 on b's shard; then s2 waits for s1 on a's shard: a cycle that neither
    // shard sees.
    let first = wait_for(s1, t, b, "s1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = wait_for(s2, t, a, "s2");
    let (r1, r2) = (first.await.unwrap(), second.await.unwrap());
    let ((mut victim, verr, waited), (mut winner, werr, _), victim_name) = match (&r1.1, &r2.1) {
        (Err(_), Ok(())) => (r1, r2, "s1"),
        (Ok(()), Err(_)) => (r2, r1, "s2"),
        _ => panic!(
            "exactly one deadlock victim expected: {:?} / {:?}",
            r1.1, r2.1
        ),
    };
    assert!(werr.is_ok());
    match verr {
        Err(mysql_async::Error::Server(e)) => {
            assert_eq!((e.code, e.state.as_str()), (1213, "40001"), "{e:?}");
            assert_eq!(
                e.message,
                "Deadlock found when trying to get lock; try restarting transaction"
            );
        }
        other => panic!("expected 1213, got {other:?}"),
    }
    eprintln!("{victim_name} got 1213 after waiting {waited:?}");
    assert!(waited < BROKEN_WITHIN, "broken after {waited:?}");
    // The victim's transaction is gone on both shards: its COMMIT commits nothing.
    victim.query_drop("COMMIT").await.unwrap();
    winner.query_drop("COMMIT").await.unwrap();
    let winner_name = if victim_name == "s1" { "s2" } else { "s1" };
    let mut expected = vec![(a, winner_name.to_string()), (b, winner_name.to_string())];
    expected.sort();
    assert_eq!(committed_in("two", t, &[a, b]).await, expected);

    assert_eq!(deadlock_count(&proxy, "distributed"), 1);
    let rows: Vec<(u64, String, u32, String, String, u64, String)> =
        winner.query("SHOW SHARDGATE DEADLOCKS").await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.3 == "yes").count(), 1, "{rows:?}");
    for r in &rows {
        assert_eq!(r.0, 1);
        assert!(r.4.contains("two/-80") && r.4.contains("two/80-"), "{r:?}");
        assert!(r.6.starts_with("UPDATE txt_cycle2 SET v"), "{r:?}");
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_of_three_sessions_over_three_shards() {
    let proxy = proxy().await;
    let t = "txt_cycle3";
    let ids = ids_on_shards("four", 9000, 3);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(client(&proxy, Some("four")).await);
    }
    setup(&mut sessions[0], t, &ids).await;
    let names = ["s0", "s1", "s2"];
    for (i, s) in sessions.iter_mut().enumerate() {
        s.query_drop("BEGIN").await.unwrap();
        lock(s, t, ids[i], names[i]).await;
    }
    // s0 waits for s1, s1 for s2, s2 for s0. Once the victim is gone, each survivor's wait
    // ends when the one it waits for commits, so each commits as soon as its statement ends.
    let mut waits = tokio::task::JoinSet::new();
    for (i, s) in sessions.into_iter().enumerate() {
        let handle = wait_for(s, t, ids[(i + 1) % 3], names[i]);
        waits.spawn(async move { (i, handle.await.unwrap()) });
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut victims = Vec::new();
    while let Some(done) = waits.join_next().await {
        let (i, (mut c, r, waited)) = done.unwrap();
        match r {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if e.code == 1213 => {
                assert!(waited < BROKEN_WITHIN, "broken after {waited:?}");
                victims.push(i);
            }
            Err(e) => panic!("{}: {e:?}", names[i]),
        }
        c.query_drop("COMMIT").await.unwrap();
    }
    assert_eq!(victims.len(), 1, "one victim: {victims:?}");
    let v = victims[0];
    // Each row ends with the session that waited for it, unless that was the victim: then it
    // keeps the value of the session that locked it first.
    let mut expected: Vec<(i64, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let waited_for_it = (i + 2) % 3;
            let who = if waited_for_it == v { i } else { waited_for_it };
            (id, names[who].to_string())
        })
        .collect();
    expected.sort();
    assert_eq!(committed_in("four", t, &ids).await, expected);
    assert_eq!(deadlock_count(&proxy, "distributed"), 1);
    proxy.stop().await;
}

/// A transaction on two shards waits for a row that another holds while that one waits for
/// nothing: not a deadlock. The wait lasts many check periods and ends when the holder commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_that_is_not_a_cycle_is_not_broken() {
    let proxy = proxy().await;
    let t = "txt_wait";
    let mut waiter = client(&proxy, Some("two")).await;
    let mut holder = client(&proxy, Some("two")).await;
    let (a, b) = ids_on_two_shards(8000);
    let (a2, b2) = ids_on_two_shards(8100);
    setup(&mut waiter, t, &[a, b, a2, b2]).await;

    // Both transactions hold rows on both shards.
    holder.query_drop("BEGIN").await.unwrap();
    lock(&mut holder, t, a2, "holder").await;
    lock(&mut holder, t, b2, "holder").await;
    waiter.query_drop("BEGIN").await.unwrap();
    lock(&mut waiter, t, a, "waiter").await;
    lock(&mut waiter, t, b, "waiter").await;
    let waiting = wait_for(waiter, t, b2, "waiter");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished(), "the waiter waits for the holder");
    holder.query_drop("COMMIT").await.unwrap();
    // Still waiting after the sleep (asserted above) is the proof it waited: its own clock
    // starts when its task runs, which a loaded machine may delay.
    let (mut waiter, r, _) = waiting.await.unwrap();
    r.expect("a wait that is not a cycle ends normally");
    waiter.query_drop("COMMIT").await.unwrap();
    let mut expected = vec![
        (a, "waiter".to_string()),
        (b, "waiter".to_string()),
        (a2, "holder".to_string()),
        (b2, "waiter".to_string()),
    ];
    expected.sort();
    assert_eq!(committed_in("two", t, &[a, b, a2, b2]).await, expected);
    assert_eq!(deadlock_count(&proxy, "distributed"), 0);
    let rows: Vec<mysql_async::Row> = waiter.query("SHOW SHARDGATE DEADLOCKS").await.unwrap();
    assert!(rows.is_empty());
    proxy.stop().await;
}
