//! Shards as replication groups (a primary and a GTID replica each, semi-synchronous): a session
//! that says `USE ks@replica` reads from the replicas outside transactions; transactions,
//! locking reads and writes stay on the primaries. The replicas are made to lag behind (a global
//! read lock held on them stops them applying), so where an answer came from shows in the answer
//! itself. A replica that stops replicating, or lags past the keyspace's bound, is skipped.

mod common;

use common::groups::wait_for;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

/// Waits until `replica` holds as many rows of `shop.items` as `primary`.
fn wait_for_rows(primary: &testkit::MariaDb, replica: &testkit::MariaDb) {
    let sql = "SELECT COUNT(*) FROM shop.items";
    let on_primary = primary.sql(sql).unwrap();
    wait_for(replica, sql, on_primary.trim());
}

async fn connect(url: &str) -> Conn {
    Conn::new(Opts::from_url(url).unwrap()).await.unwrap()
}

/// Holds a global read lock on `replica` (until the connection returned unlocks or closes): it
/// stops applying what it receives, and lags while it still replicates.
async fn hold_back(replica: &testkit::MariaDb) -> Conn {
    let mut lock = connect(&replica.url("shop")).await;
    lock.query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .unwrap();
    lock
}

/// Waits (at most 30 s) until `conn` counts `rows` rows.
async fn wait_for_count(conn: &mut Conn, rows: i64, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(conn).await != rows {
        assert!(Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(conn: &mut Conn) -> i64 {
    conn.query_first("SELECT COUNT(*) FROM items")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_reads_lag_and_everything_else_stays_on_the_primary() {
    let groups = tokio::task::spawn_blocking(|| {
        [0, 1].map(|_| testkit::start_replicated(1, &["shop"]).unwrap())
    })
    .await
    .unwrap();
    let shards: Vec<String> = ["-80", "80-"]
        .iter()
        .zip(&groups)
        .map(|(name, g)| {
            format!(
                r#"{{ name = "{name}", primary = "{}", replicas = ["{}"] }}"#,
                g[0].url("shop"),
                g[1].url("shop")
            )
        })
        .collect();
    // `fresh`: the same servers, with replicas more than 2 s behind skipped.
    let config = common::config_serving(&format!(
        r#"[keyspaces.shop]
sharded = true
shards = [{shards}]
vindexes.hash = {{ type = "hash" }}
tables.items = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}

[keyspaces.fresh]
sharded = true
max_replica_lag_ms = 2000
shards = [{shards}]
vindexes.hash = {{ type = "hash" }}
tables.items = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}

[[users]]
name = "reader"
password = "secret"
read_target = "replica"
"#,
        shards = shards.join(", ")
    ));
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let url = format!("mysql://app:secret@{}/shop", proxy.addr);
    let mut conn = connect(&url).await;
    conn.query_drop("CREATE TABLE items (id BIGINT PRIMARY KEY, v INT NOT NULL)")
        .await
        .unwrap();
    for id in 1..=20 {
        conn.exec_drop("INSERT INTO items (id, v) VALUES (?, ?)", (id, id * 10))
            .await
            .unwrap();
    }
    // Each shard's rows, replicated, semi-synchronously.
    tokio::task::block_in_place(|| {
        for g in &groups {
            wait_for(
                &g[0],
                "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                 WHERE VARIABLE_NAME = 'Rpl_semi_sync_master_clients'",
                "1",
            );
            assert_ne!(
                g[0].sql("SELECT COUNT(*) FROM shop.items").unwrap().trim(),
                "0"
            );
            wait_for_rows(&g[0], &g[1]);
        }
    });
    // Held, the lock keeps each replica from applying what follows: it lags but still
    // replicates.
    let mut locks = Vec::new();
    for g in &groups {
        locks.push(hold_back(&g[1]).await);
    }

    // Written while the replicas do not follow: only the primaries have these.
    for id in 21..=30 {
        conn.exec_drop("INSERT INTO items (id, v) VALUES (?, ?)", (id, id * 10))
            .await
            .unwrap();
    }
    assert_eq!(count(&mut conn).await, 30);

    conn.query_drop("USE shop@replica").await.unwrap();
    assert_eq!(
        count(&mut conn).await,
        20,
        "a scatter read from the replicas"
    );
    // A user whose sessions read from replicas from the start, and after `USE ks` too.
    let mut reader = connect(&format!("mysql://reader:secret@{}/shop", proxy.addr)).await;
    assert_eq!(count(&mut reader).await, 20, "the user's default");
    reader.query_drop("USE shop").await.unwrap();
    assert_eq!(count(&mut reader).await, 20);
    reader.query_drop("USE shop@primary").await.unwrap();
    assert_eq!(count(&mut reader).await, 30);
    // The same by a session variable: `USE ks` goes back to the primaries.
    conn.query_drop("USE shop").await.unwrap();
    assert_eq!(count(&mut conn).await, 30);
    conn.query_drop("SET read_target = 'replica'")
        .await
        .unwrap();
    assert_eq!(count(&mut conn).await, 20);
    let target: Option<String> = conn.query_first("SELECT @@read_target").await.unwrap();
    assert_eq!(target.as_deref(), Some("replica"));
    let e = conn
        .query_drop("SET read_target = 'rdonly'")
        .await
        .unwrap_err();
    assert_eq!(common::server_code(&e), Some(1231));
    let lagging: Option<i64> = conn
        .query_first("SELECT v FROM items WHERE id = 25")
        .await
        .unwrap();
    assert_eq!(lagging, None, "a point read from a replica");
    let old: Option<i64> = conn
        .query_first("SELECT v FROM items WHERE id = 5")
        .await
        .unwrap();
    assert_eq!(old, Some(50));
    // Prepared statements too.
    let prepared: Option<i64> = conn
        .exec_first("SELECT v FROM items WHERE id = ?", (25,))
        .await
        .unwrap();
    assert_eq!(prepared, None);

    // What must see the primary does, under @replica too.
    let locked: Vec<i64> = conn
        .query("SELECT id FROM items WHERE id > 20 FOR UPDATE")
        .await
        .unwrap();
    assert_eq!(locked.len(), 10, "a locking read");
    conn.query_drop("START TRANSACTION").await.unwrap();
    assert_eq!(count(&mut conn).await, 30, "a read in a transaction");
    conn.query_drop("COMMIT").await.unwrap();
    // Writes: the primaries hold them (the count from the primaries below includes the
    // INSERT; the replicas' read_only would not stop root).
    conn.query_drop("INSERT INTO items (id, v) VALUES (31, 310)")
        .await
        .unwrap();
    conn.query_drop("UPDATE items SET v = v + 1 WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(count(&mut conn).await, 20, "still from the replicas");

    conn.query_drop("USE shop@primary").await.unwrap();
    assert_eq!(count(&mut conn).await, 31);
    conn.query_drop("USE shop@replica").await.unwrap();
    for mut lock in locks {
        lock.query_drop("UNLOCK TABLES").await.unwrap();
    }
    tokio::task::block_in_place(|| {
        for g in &groups {
            wait_for_rows(&g[0], &g[1]);
        }
    });
    assert_eq!(count(&mut conn).await, 31, "caught up");
    let updated: Option<i64> = conn
        .query_first("SELECT v FROM items WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(updated, Some(31));

    // A replica that stops replicating is skipped within the health checks' second: its
    // shard's reads go to the primary, which has a row the replica does not.
    tokio::task::block_in_place(|| groups[0][1].sql("STOP SLAVE").unwrap());
    conn.query_drop("USE shop@primary").await.unwrap();
    conn.query_drop("INSERT INTO items (id, v) VALUES (32, 320), (33, 330), (34, 340), (35, 350)")
        .await
        .unwrap();
    let on_stopped_shard = tokio::task::block_in_place(|| {
        groups[0][0]
            .sql("SELECT COUNT(*) FROM shop.items WHERE id >= 32")
            .unwrap()
    });
    assert_ne!(
        on_stopped_shard.trim(),
        "0",
        "rows for the stopped replica's shard"
    );
    conn.query_drop("USE shop@replica").await.unwrap();
    wait_for_count(&mut conn, 35, "the stopped replica still answers").await;
    // SHOW SHARDGATE SHARDS says so, and that the other one serves.
    let shown: Vec<(String, String, String, String, String, String)> =
        conn.query("SHOW SHARDGATE SHARDS").await.unwrap();
    let replicas_of = |name: &str| {
        shown
            .iter()
            .find(|s| s.0 == "shop" && s.1 == name)
            .map(|s| s.5.clone())
            .unwrap()
    };
    let stopped = replicas_of("-80");
    assert!(
        stopped.contains(&format!("127.0.0.1:{}", groups[0][1].port))
            && stopped.contains("not serving: not replicating"),
        "{stopped}"
    );
    assert!(replicas_of("80-").contains(" serving, "), "{shown:?}");
    // replica_only: the shard whose replica stopped has none to answer, and says so.
    conn.query_drop("SET read_target = 'replica_only'")
        .await
        .unwrap();
    let e = conn
        .query_drop("SELECT COUNT(*) FROM items")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("shop/-80") && e.to_string().contains("replica_only"),
        "{e}"
    );
    conn.query_drop("SET read_target = 'replica'")
        .await
        .unwrap();

    // A replica further behind than its keyspace allows is skipped: the other shard's replica
    // is held back again, and after 2 s `fresh` reads its primary while `shop` (30 s) still
    // reads the replica.
    let mut lock = hold_back(&groups[1][1]).await;
    conn.query_drop("USE shop@primary").await.unwrap();
    for id in 36..=45 {
        conn.exec_drop("INSERT INTO items (id, v) VALUES (?, ?)", (id, id * 10))
            .await
            .unwrap();
    }
    let mut fresh = connect(&format!("mysql://app:secret@{}/fresh", proxy.addr)).await;
    fresh.query_drop("USE fresh@replica").await.unwrap();
    conn.query_drop("USE shop@replica").await.unwrap();
    wait_for_count(&mut fresh, 45, "the lagging replica still answers `fresh`").await;
    assert!(
        count(&mut conn).await < 45,
        "within `shop`'s bound it still answers"
    );
    lock.query_drop("UNLOCK TABLES").await.unwrap();

    // A role that is not one.
    let e = conn.query_drop("USE shop@rdonly").await.unwrap_err();
    assert_eq!(common::server_code(&e), Some(1235));
}
