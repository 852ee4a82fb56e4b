//! AUTO_INCREMENT for sharded tables from a sequence table, shared by two shardgate processes.

mod common;

use std::collections::BTreeSet;

use common::*;
use mysql_async::prelude::Queryable;
use vschema::{KeyValue, VindexKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_of_two_proxies_get_unique_ids() {
    let first = proxy().await;
    // A second shardgate, in its own process, with its own id blocks.
    let second = proxy_process().await;
    let second_addr: std::net::SocketAddr = format!("127.0.0.1:{}", second.port).parse().unwrap();
    let mut admin = client(&first, Some("main")).await;
    admin
        .query_drop("DROP TABLE IF EXISTS event_seq")
        .await
        .unwrap();
    admin
        .query_drop("CREATE TABLE event_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)")
        .await
        .unwrap();
    admin.query_drop("USE two").await.unwrap();
    admin
        .query_drop("DROP TABLE IF EXISTS events")
        .await
        .unwrap();
    admin.query_drop("CREATE TABLE events (id BIGINT PRIMARY KEY, client INT NOT NULL, n INT NOT NULL, UNIQUE KEY (client, n))").await.unwrap();
    // A sequence table without its row is a clear error, not a made-up id.
    let err = admin
        .query_drop("INSERT INTO events (client, n) VALUES (-3, 1)")
        .await
        .unwrap_err();
    let mysql_async::Error::Server(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.code, 1467, "{}", e.message);
    assert!(e.message.contains("no row with id = 0"), "{}", e.message);
    admin.query_drop("USE main").await.unwrap();
    // A small cache makes both proxies come back for new blocks many times.
    admin
        .query_drop("INSERT INTO event_seq (id, next_id, cache) VALUES (0, 1, 37)")
        .await
        .unwrap();
    admin.query_drop("USE two").await.unwrap();

    // The OK packet and LAST_INSERT_ID() report the statement's first generated id.
    let result = admin
        .query_iter("INSERT INTO events (client, n) VALUES (-1, 1), (-1, 2), (-1, 3)")
        .await
        .unwrap();
    let first_id = result.last_insert_id().expect("an insert id");
    drop(result);
    let last: Option<u64> = admin.query_first("SELECT LAST_INSERT_ID()").await.unwrap();
    assert_eq!(last, Some(first_id));
    let ids: Vec<u64> = admin
        .query("SELECT id FROM events WHERE client = -1 ORDER BY n")
        .await
        .unwrap();
    assert_eq!(
        ids,
        [first_id, first_id + 1, first_id + 2],
        "a multi-row insert gets consecutive ids"
    );
    // NULL and 0 are generated too; an explicit id is kept.
    admin
        .query_drop(
            "INSERT INTO events (id, client, n) VALUES (NULL, -2, 1), (0, -2, 2), (1000000, -2, 3)",
        )
        .await
        .unwrap();
    let ids: Vec<u64> = admin
        .query("SELECT id FROM events WHERE client = -2 ORDER BY n")
        .await
        .unwrap();
    assert!(
        ids[0] > first_id + 2 && ids[1] == ids[0] + 1 && ids[2] == 1_000_000,
        "{ids:?}"
    );

    // One statement shape with its id as a literal: planned once, then bound from the plan cache
    // each time, and 0 still means a generated id while an explicit id is kept.
    let hits = |rows: Vec<(String, u64)>| {
        rows.into_iter()
            .find(|(k, _)| k == "Plan_cache_hits")
            .map(|(_, v)| v)
            .unwrap()
    };
    let before = hits(admin.query("SHOW SHARDGATE STATUS").await.unwrap());
    for n in 10..20u64 {
        let id = if n % 2 == 0 { 0 } else { 2_000_000 + n };
        admin
            .query_drop(format!(
                "INSERT INTO events (id, client, n) VALUES ({id}, -4, {n})"
            ))
            .await
            .unwrap();
    }
    let after = hits(admin.query("SHOW SHARDGATE STATUS").await.unwrap());
    assert!(after - before >= 8, "{} plan cache hits", after - before);
    let rows: Vec<(u64, u64)> = admin
        .query("SELECT id, n FROM events WHERE client = -4 ORDER BY n")
        .await
        .unwrap();
    assert_eq!(rows.len(), 10, "{rows:?}");
    for (id, n) in rows {
        if n % 2 == 0 {
            assert!(
                id > ids[1] && id < 1_000_000,
                "generated id {id} for n = {n}"
            );
        } else {
            assert_eq!(id, 2_000_000 + n);
        }
        // Each row lives on the shard its id maps to.
        let found: Option<u64> = admin
            .query_first(format!("SELECT n FROM events WHERE id = {id}"))
            .await
            .unwrap();
        assert_eq!(found, Some(n), "row {id} on its shard");
    }

    // 10 clients, five on each proxy, 1,000 rows each in statements of 1 to 4 rows.
    let mut tasks = Vec::new();
    for c in 0..10i64 {
        let addr = if c % 2 == 0 { first.addr } else { second_addr };
        tasks.push(tokio::spawn(async move {
            let url = format!("mysql://app:secret@{addr}/two");
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                .await
                .unwrap();
            let mut n = 0i64;
            while n < 1000 {
                let batch = ((n % 4) + 1).min(1000 - n);
                let rows: Vec<String> = (n..n + batch).map(|i| format!("({c}, {i})")).collect();
                conn.query_drop(format!(
                    "INSERT INTO events (client, n) VALUES {}",
                    rows.join(", ")
                ))
                .await
                .unwrap();
                n += batch;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Every row once, on the shard its id maps to.
    let ks = cluster().config.vschema.keyspace("two").unwrap();
    let mut ids = BTreeSet::new();
    let mut pairs = BTreeSet::new();
    for shard in &ks.shards {
        let mut direct = shard_conn("two", &shard.name).await;
        let rows: Vec<(i64, i64, i64)> = direct
            .query("SELECT id, client, n FROM events WHERE client >= 0")
            .await
            .unwrap();
        for (id, client, n) in rows {
            let owner =
                &ks.shards[ks.shard_for(&VindexKind::Hash.map(&KeyValue::Int(id)).unwrap())].name;
            assert_eq!(owner, &shard.name, "row {id} on the wrong shard");
            assert!(ids.insert(id), "id {id} given twice");
            assert!(pairs.insert((client, n)), "row ({client}, {n}) twice");
        }
    }
    assert_eq!(ids.len(), 10_000, "no row lost");
    assert_eq!(pairs.len(), 10_000);
    let count: Option<i64> = admin
        .query_first("SELECT COUNT(*) FROM events WHERE client >= 0")
        .await
        .unwrap();
    assert_eq!(count, Some(10_000));
    first.stop().await;
    drop(second);
}
