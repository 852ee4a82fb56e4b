//! transaction_mode multi: a COMMIT that fails part way names the shards that did commit.
//! (Its own test binary: it kills backend connections on a shared test server.)

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use vschema::{KeyValue, VindexKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_names_the_committed_shards() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    create_id_v(&mut c, "txt").await;
    let ks = cluster().config.vschema.keyspace("two").unwrap();
    let owner = |id: i64| {
        ks.shards[ks.shard_for(&VindexKind::Hash.map(&KeyValue::Int(id)).unwrap())]
            .name
            .clone()
    };
    let a = 8000;
    let b = (8001..8100).find(|i| owner(*i) != owner(a)).unwrap();
    c.query_drop(format!("DELETE FROM txt WHERE id IN ({a}, {b})"))
        .await
        .unwrap();

    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!("INSERT INTO txt (id, v) VALUES ({a}, 'first')"))
        .await
        .unwrap();
    c.query_drop(format!("INSERT INTO txt (id, v) VALUES ({b}, 'second')"))
        .await
        .unwrap();
    // The second shard's server loses every client connection, the reserved one included.
    let second = &ks
        .shards
        .iter()
        .find(|s| s.name == owner(b))
        .unwrap()
        .primary;
    let mut killer = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&format!("mysql://root@{}:{}/two", second.host, second.port))
            .unwrap(),
    )
    .await
    .unwrap();
    let ids: Vec<u64> = killer
        .query("SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND command <> 'Daemon' AND user = 'root'")
        .await
        .unwrap();
    for id in ids {
        let _ = killer.query_drop(format!("KILL {id}")).await;
    }
    let err = c.query_drop("COMMIT").await.unwrap_err();
    let mysql_async::Error::Server(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.code, 1180, "{}", e.message);
    assert!(
        e.message
            .contains(&format!("committed on: two/{}", owner(a))),
        "{}",
        e.message
    );
    // What the error says is what happened.
    let mut first = shard_conn("two", &owner(a)).await;
    let got: Vec<String> = first
        .query(format!("SELECT v FROM txt WHERE id = {a}"))
        .await
        .unwrap();
    assert_eq!(got, ["first"]);
    let mut other = shard_conn("two", &owner(b)).await;
    let got: Vec<String> = other
        .query(format!("SELECT v FROM txt WHERE id = {b}"))
        .await
        .unwrap();
    assert!(got.is_empty());
    // The session goes on.
    let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
    proxy.stop().await;
}
