//! Writes to a reference table (a copy on every shard) are atomic over its shards: a shard's
//! error rolls the write back on every shard, in autocommit and inside a transaction, and
//! `SHOW SHARDGATE CHECKSUMS` names the shards whose copy differs.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// The rows `(id, name)` of `products` on one shard of `two`, read directly.
async fn copy(shard: &str) -> Vec<(i64, String)> {
    let mut direct = shard_conn("two", shard).await;
    direct
        .query("SELECT id, name FROM products ORDER BY id")
        .await
        .unwrap()
}

fn code(e: mysql_async::Error) -> (u16, String) {
    match e {
        mysql_async::Error::Server(s) => (s.code, s.message),
        other => panic!("{other}"),
    }
}

async fn checksums(c: &mut Conn) -> Vec<(String, String, String, String, String)> {
    c.query("SHOW SHARDGATE CHECKSUMS products").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_write_applies_on_every_shard_or_none() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    c.query_drop("DROP TABLE IF EXISTS products").await.unwrap();
    c.query_drop("CREATE TABLE products (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO products VALUES (1, 'a'), (2, 'b')")
        .await
        .unwrap();
    assert_eq!(copy("-80").await, copy("80-").await);
    let same = checksums(&mut c).await;
    assert_eq!(same.len(), 2, "{same:?}");
    assert!(
        same.iter().all(|r| r.4 == "no" && r.3 == same[0].3),
        "{same:?}"
    );

    // A row that exists on one shard only (written there directly): the INSERT fails there
    // with 1062, and the shard that took it rolls it back.
    shard_conn("two", "80-")
        .await
        .query_drop("INSERT INTO products VALUES (3, 'stray')")
        .await
        .unwrap();
    let differing = checksums(&mut c).await;
    assert!(differing.iter().all(|r| r.4 == "yes"), "{differing:?}");
    let (code_, message) = code(
        c.query_drop("INSERT INTO products VALUES (3, 'c')")
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, 1062, "{message}");
    assert!(message.contains("shard 80-"), "{message}");
    assert_eq!(
        copy("-80").await,
        [(1, "a".to_string()), (2, "b".to_string())],
        "rolled back on -80"
    );
    assert_eq!(copy("80-").await.len(), 3);

    // The same inside a transaction: the failed statement is undone on every shard, the
    // transaction goes on, and its other writes commit everywhere.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO products VALUES (4, 'd')")
        .await
        .unwrap();
    let (code_, _) = code(
        c.query_drop("INSERT INTO products VALUES (3, 'c')")
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, 1062);
    c.query_drop("UPDATE products SET name = 'B' WHERE id = 2")
        .await
        .unwrap();
    c.query_drop("COMMIT").await.unwrap();
    let expected = [
        (1, "a".to_string()),
        (2, "B".to_string()),
        (4, "d".to_string()),
    ];
    assert_eq!(copy("-80").await, expected);
    let mut with_stray = expected.to_vec();
    with_stray.insert(2, (3, "stray".to_string()));
    assert_eq!(copy("80-").await, with_stray);

    // Removed on the shard that had it, the copies agree again.
    shard_conn("two", "80-")
        .await
        .query_drop("DELETE FROM products WHERE id = 3")
        .await
        .unwrap();
    let same = checksums(&mut c).await;
    assert!(same.iter().all(|r| r.4 == "no"), "{same:?}");
    proxy.stop().await;
}
