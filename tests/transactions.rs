//! Transactions across shards on reserved connections.

mod common;

use common::*;
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_rollback_across_shards() {
    let proxy = proxy().await;
    let t = "txt_commit";
    let mut c = client(&proxy, Some("two")).await;
    create_id_v(&mut c, t).await;
    let (a, b) = ids_on_two_shards(1000);

    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!(
        "INSERT INTO {t} (id, v) VALUES ({a}, 'a'), ({b}, 'b')"
    ))
    .await
    .unwrap();
    let seen: Vec<i64> = c
        .query(format!(
            "SELECT id FROM {t} WHERE id IN ({a}, {b}) ORDER BY id"
        ))
        .await
        .unwrap();
    assert_eq!(
        seen,
        [a.min(b), a.max(b)],
        "the transaction sees its own rows"
    );
    assert!(
        committed_rows(t, &[a, b]).await.is_empty(),
        "nothing visible outside before COMMIT"
    );
    c.query_drop("COMMIT").await.unwrap();
    assert_eq!(committed_rows(t, &[a, b]).await.len(), 2);

    c.query_drop("START TRANSACTION").await.unwrap();
    c.query_drop(format!(
        "UPDATE {t} SET v = 'changed' WHERE id IN ({a}, {b})"
    ))
    .await
    .unwrap();
    c.query_drop(format!("DELETE FROM {t} WHERE id = {a}"))
        .await
        .unwrap();
    c.query_drop("ROLLBACK").await.unwrap();
    let rows = committed_rows(t, &[a, b]).await;
    assert!(
        rows.iter().all(|r| r.1 == "a" || r.1 == "b") && rows.len() == 2,
        "rolled back: {rows:?}"
    );

    // autocommit=0: statements open a transaction that COMMIT ends; turning autocommit back on
    // commits too.
    c.query_drop("SET autocommit = 0").await.unwrap();
    c.query_drop(format!("UPDATE {t} SET v = 'ac0' WHERE id = {a}"))
        .await
        .unwrap();
    assert_eq!(committed_rows(t, &[a]).await[0].1, "a");
    c.query_drop("COMMIT").await.unwrap();
    assert_eq!(committed_rows(t, &[a]).await[0].1, "ac0");
    c.query_drop(format!("UPDATE {t} SET v = 'ac1' WHERE id = {b}"))
        .await
        .unwrap();
    c.query_drop("SET autocommit = 1").await.unwrap();
    assert_eq!(committed_rows(t, &[b]).await[0].1, "ac1");
    let ac: Option<i64> = c.query_first("SELECT @@autocommit").await.unwrap();
    assert_eq!(ac, Some(1));

    // DDL commits the open transaction, as in MySQL.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!("UPDATE {t} SET v = 'ddl' WHERE id = {a}"))
        .await
        .unwrap();
    c.query_drop("CREATE TABLE IF NOT EXISTS misc (id BIGINT PRIMARY KEY, label VARCHAR(10))")
        .await
        .unwrap();
    assert_eq!(committed_rows(t, &[a]).await[0].1, "ddl");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_flags_follow_the_transaction() {
    let proxy = proxy().await;
    let t = "txt_flags";
    // The table must exist whichever test of this file runs first.
    create_id_v(&mut client(&proxy, Some("two")).await, t).await;
    let mut raw = login_raw(&proxy).await;
    const AUTOCOMMIT: u16 = 0x0002;
    const IN_TRANS: u16 = 0x0001;
    let status = |ok: &[u8]| -> u16 {
        assert_eq!(ok[0], 0x00, "OK packet: {ok:?}");
        // header, affected rows (1 byte here), insert id (1 byte here), then status flags.
        u16::from_le_bytes([ok[3], ok[4]])
    };
    let q = |sql: &str| [&[0x03u8][..], sql.as_bytes()].concat();
    assert_eq!(
        status(&command(&mut raw, &q("SET autocommit = 1")).await),
        AUTOCOMMIT
    );
    assert_eq!(
        status(&command(&mut raw, &q("BEGIN")).await),
        AUTOCOMMIT | IN_TRANS
    );
    assert_eq!(status(&command(&mut raw, &q("COMMIT")).await), AUTOCOMMIT);
    assert_eq!(
        status(&command(&mut raw, &q("SET autocommit = 0")).await),
        0
    );
    assert_eq!(status(&command(&mut raw, &q("USE two")).await), 0);
    assert_eq!(
        status(&command(&mut raw, &q(&format!("DELETE FROM {t} WHERE id = -424242"))).await),
        IN_TRANS,
        "autocommit=0 opened one"
    );
    assert_eq!(status(&command(&mut raw, &q("ROLLBACK")).await), 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_mode_refuses_a_second_shard_and_savepoints_span_shards() {
    let proxy = proxy().await;
    let t = "txt_single";
    let mut c = client(&proxy, Some("two")).await;
    create_id_v(&mut c, t).await;
    let (a, b) = ids_on_two_shards(2000);
    c.query_drop(format!("DELETE FROM {t} WHERE id IN ({a}, {b})"))
        .await
        .unwrap();

    c.query_drop("SET transaction_mode = 'single'")
        .await
        .unwrap();
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!("INSERT INTO {t} (id, v) VALUES ({a}, 'one')"))
        .await
        .unwrap();
    let err = c
        .query_drop(format!("INSERT INTO {t} (id, v) VALUES ({b}, 'two')"))
        .await
        .unwrap_err();
    let mysql_async::Error::Server(e) = err else {
        panic!()
    };
    assert_eq!(e.code, 1235, "{}", e.message);
    assert!(
        e.message.contains("transaction_mode single"),
        "{}",
        e.message
    );
    // Still usable on its first shard.
    c.query_drop(format!("UPDATE {t} SET v = 'one!' WHERE id = {a}"))
        .await
        .unwrap();
    c.query_drop("COMMIT").await.unwrap();
    assert_eq!(committed_rows(t, &[a, b]).await, [(a, "one!".to_string())]);

    // Savepoints: a shard that joins after SAVEPOINT is rolled back to it as well.
    c.query_drop("SET transaction_mode = 'multi'")
        .await
        .unwrap();
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!("UPDATE {t} SET v = 'before' WHERE id = {a}"))
        .await
        .unwrap();
    c.query_drop("SAVEPOINT sp1").await.unwrap();
    c.query_drop(format!("UPDATE {t} SET v = 'after' WHERE id = {a}"))
        .await
        .unwrap();
    c.query_drop(format!("INSERT INTO {t} (id, v) VALUES ({b}, 'late')"))
        .await
        .unwrap();
    c.query_drop("ROLLBACK TO SAVEPOINT sp1").await.unwrap();
    c.query_drop("RELEASE SAVEPOINT sp1").await.unwrap();
    c.query_drop("COMMIT").await.unwrap();
    assert_eq!(
        committed_rows(t, &[a, b]).await,
        [(a, "before".to_string())]
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_rolls_back_and_releases_locks() {
    let proxy = proxy().await;
    let t = "txt_disconnect";
    let mut c = client(&proxy, Some("two")).await;
    create_id_v(&mut c, t).await;
    let (a, b) = ids_on_two_shards(3000);
    c.query_drop(format!(
        "REPLACE INTO {t} (id, v) VALUES ({a}, 'orig'), ({b}, 'orig')"
    ))
    .await
    .unwrap();

    let mut doomed = client(&proxy, Some("two")).await;
    doomed.query_drop("BEGIN").await.unwrap();
    doomed
        .query_drop(format!(
            "UPDATE {t} SET v = 'doomed' WHERE id IN ({a}, {b})"
        ))
        .await
        .unwrap();
    // Row locks are held on both shards until the client goes away without COMMIT.
    drop(doomed);

    // A second client gets the locks quickly (the backends would wait 50 s otherwise).
    let mut other = client(&proxy, Some("two")).await;
    let started = std::time::Instant::now();
    loop {
        match other
            .query_drop(format!(
                "UPDATE {t} SET v = 'second' WHERE id IN ({a}, {b})"
            ))
            .await
        {
            Ok(()) => break,
            // Well before the 50 s the backends would wait.
            Err(e) if started.elapsed() < std::time::Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("locks still held: {e}"),
        }
    }
    let rows = committed_rows(t, &[a, b]).await;
    assert_eq!(
        rows,
        [
            (a.min(b), "second".to_string()),
            (a.max(b), "second".to_string())
        ]
    );
    proxy.stop().await;
}

/// The victim of an InnoDB deadlock loses its whole transaction, as with one MySQL: its part on
/// the shard that chose it is rolled back there, and shardgate rolls back its parts on the other
/// shards, so the client's next COMMIT cannot commit half a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_rolls_back_the_whole_transaction() {
    let proxy = proxy().await;
    let t = "txt_deadlock";
    let mut victim = client(&proxy, Some("two")).await;
    let mut other = client(&proxy, Some("two")).await;
    create_id_v(&mut victim, t).await;
    // x, y, w1, w2 on one shard; z on the other.
    let (x, z) = ids_on_two_shards(4000);
    let same: Vec<i64> = (x + 1..x + 200)
        .filter(|i| owner("two", *i) == owner("two", x))
        .take(3)
        .collect();
    let (y, w1, w2) = (same[0], same[1], same[2]);
    let all = [x, y, z, w1, w2];
    let list = all.map(|i| i.to_string()).join(", ");
    victim
        .query_drop(format!("DELETE FROM {t} WHERE id IN ({list})"))
        .await
        .unwrap();
    let values: Vec<String> = all.iter().map(|i| format!("({i}, 'init')")).collect();
    victim
        .query_drop(format!(
            "INSERT INTO {t} (id, v) VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();

    // The victim holds z (other shard) and x; the other session holds y, w1, w2, so InnoDB
    // picks the victim as the smaller transaction.
    victim.query_drop("BEGIN").await.unwrap();
    for id in [z, x] {
        victim
            .query_drop(format!("UPDATE {t} SET v = 'victim' WHERE id = {id}"))
            .await
            .unwrap();
    }
    other.query_drop("BEGIN").await.unwrap();
    for id in [y, w1, w2] {
        other
            .query_drop(format!("UPDATE {t} SET v = 'other' WHERE id = {id}"))
            .await
            .unwrap();
    }
    let waiting = tokio::spawn(async move {
        let r = victim
            .query_drop(format!("UPDATE {t} SET v = 'victim' WHERE id = {y}"))
            .await;
        (victim, r)
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    other
        .query_drop(format!("UPDATE {t} SET v = 'other' WHERE id = {x}"))
        .await
        .expect("the other session wins the deadlock");
    let (mut victim, r) = waiting.await.unwrap();
    match r {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1213, "{e:?}"),
        other => panic!("expected a deadlock, got {other:?}"),
    }
    // The victim is out of its transaction; COMMIT has nothing to commit.
    victim.query_drop("COMMIT").await.unwrap();
    other.query_drop("COMMIT").await.unwrap();
    let expected: Vec<(i64, String)> = {
        let mut rows: Vec<(i64, String)> = all
            .iter()
            .map(|&i| (i, if i == z { "init" } else { "other" }.to_string()))
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(committed_rows(t, &all).await, expected);
}

/// A prepared read that opens a transaction's part on a shard goes out in one write with the
/// transaction's start (`Conn::execute_behind_deferred`): it must still read in the
/// transaction, so later reads in it see the same snapshot whatever others commit meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_reads_open_a_transaction_and_keep_its_snapshot() {
    let proxy = proxy().await;
    let t = "txt_prepared";
    let mut c = client(&proxy, Some("two")).await;
    let mut other = client(&proxy, Some("two")).await;
    create_id_v(&mut c, t).await;
    let (a, b) = ids_on_two_shards(77_000);
    c.query_drop(format!(
        "REPLACE INTO {t} (id, v) VALUES ({a}, 'first'), ({b}, 'first')"
    ))
    .await
    .unwrap();
    let read = format!("SELECT v FROM {t} WHERE id = ?");
    // Prepared on the shards' connections before the transaction.
    for id in [a, b] {
        let v: Option<String> = c.exec_first(read.as_str(), (id,)).await.unwrap();
        assert_eq!(v.as_deref(), Some("first"));
    }
    for round in 0..3 {
        c.query_drop("BEGIN").await.unwrap();
        for id in [a, b] {
            let v: Option<String> = c.exec_first(read.as_str(), (id,)).await.unwrap();
            assert_eq!(v.as_deref(), Some("first"), "round {round}");
        }
        other
            .query_drop(format!(
                "UPDATE {t} SET v = 'second' WHERE id IN ({a}, {b})"
            ))
            .await
            .unwrap();
        for id in [a, b] {
            let v: Option<String> = c.exec_first(read.as_str(), (id,)).await.unwrap();
            assert_eq!(v.as_deref(), Some("first"), "the snapshot, round {round}");
        }
        c.query_drop("COMMIT").await.unwrap();
        for id in [a, b] {
            let v: Option<String> = c.exec_first(read.as_str(), (id,)).await.unwrap();
            assert_eq!(v.as_deref(), Some("second"), "after COMMIT, round {round}");
        }
        other
            .query_drop(format!("UPDATE {t} SET v = 'first' WHERE id IN ({a}, {b})"))
            .await
            .unwrap();
    }
    proxy.stop().await;
}
