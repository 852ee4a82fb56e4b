//! Two shardgate proxies sharing one topology through etcd (a real etcd server). The second
//! proxy's config file lists a keyspace the first did not: it serves etcd's keyspaces, not its
//! file's. Writers on both proxies insert while shard `-80`'s primary is killed: exactly one
//! proxy fails over, the other follows, both keep serving, and no acknowledged insert is lost.
//! Ids from a sequence, taken through both proxies at once, never repeat. A third proxy that
//! dies in the middle of a two-phase commit has it finished by the others once its etcd lease
//! expires.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::groups;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

type ShardRow = (String, String, String, String, String, String);

/// `-80`'s row of SHOW SHARDGATE SHARDS through `conn`.
async fn first_shard(conn: &mut Conn) -> ShardRow {
    let rows: Vec<ShardRow> = conn.query("SHOW SHARDGATE SHARDS").await.unwrap();
    rows.into_iter().find(|r| r.1 == "-80").unwrap()
}

/// The count of `kind` changes that ended `ok` in a proxy's metrics.
fn changes(proxy: &shardgate::Running, kind: &str) -> u64 {
    proxy
        .gate
        .metrics_text()
        .lines()
        .filter(|l| {
            l.starts_with("shardgate_primary_changes_total")
                && l.contains(&format!("kind=\"{kind}\""))
                && l.contains("result=\"ok\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_share_the_topology_and_one_fails_over() {
    let etcd = tokio::task::spawn_blocking(|| testkit::start_etcd().unwrap())
        .await
        .unwrap();
    let shared = format!(
        r#"[keyspaces.main]
sharded = false
shards = [{{ name = "0", primary = "{{single}}main" }}]
tables.order_seq = {{ type = "sequence" }}

[topology]
etcd = ["{}"]
prefix = "/test"
"#,
        etcd.endpoint()
    );
    let groups::Setup {
        mut group,
        single: _single,
        proxy: first,
        config_path,
        dir,
        url,
    } = groups::setup(
        "auto_failover = true\nfailover_buffer_ms = 10000\n\
         tables.orders = { primary_vindex = { column = \"id\", vindex = \"hash\" }, \
         auto_increment = { column = \"id\", sequence = \"main.order_seq\" } }",
        &shared,
    )
    .await;

    // The second proxy's file adds a keyspace: etcd's keyspaces win.
    let text = std::fs::read_to_string(&config_path).unwrap();
    let admin = first.admin.unwrap().to_string();
    let text = text.replacen(&format!("admin = \"{admin}\""), "admin = \"127.0.0.1:0\"", 1)
        + "\n[keyspaces.only_here]\nsharded = false\nshards = [{ name = \"0\", primary = \"mysql://root@127.0.0.1:1/x\" }]\n";
    let second_path = dir.path().join("second.toml");
    std::fs::write(&second_path, &text).unwrap();
    let config = vschema::load_config(&second_path).unwrap();
    assert!(config.vschema.keyspace("only_here").is_some());
    let second = shardgate::start_from(&config, "127.0.0.1:0", Some(second_path))
        .await
        .unwrap();
    let second_url = format!("mysql://app:secret@{}/shop", second.addr);
    let mut a = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let mut b = Conn::new(Opts::from_url(&second_url).unwrap())
        .await
        .unwrap();
    let databases: Vec<String> = b.query("SHOW DATABASES").await.unwrap();
    assert!(databases.contains(&"shop".to_string()), "{databases:?}");
    assert!(
        !databases.contains(&"only_here".to_string()),
        "{databases:?}"
    );

    a.query_drop("CREATE TABLE orders (id BIGINT PRIMARY KEY, proxy INT NOT NULL)")
        .await
        .unwrap();
    a.query_drop("CREATE TABLE main.order_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)")
        .await
        .unwrap();
    // A small cache: both proxies come back for blocks often.
    a.query_drop("INSERT INTO main.order_seq VALUES (0, 1, 7)")
        .await
        .unwrap();
    // One proxy's cut-over cannot hold the other's writes: online ALTERs are refused.
    a.query_drop("SET @@ddl_strategy = 'online'").await.unwrap();
    let refused = a
        .query_drop("ALTER TABLE orders ADD COLUMN never INT")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("several proxies"), "{refused}");
    a.query_drop("SET @@ddl_strategy = 'direct'").await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = groups::writers(&url, &stop, 1..=4);
    writers.extend(groups::writers(&second_url, &stop, 5..=8));
    tokio::time::sleep(Duration::from_millis(700)).await;

    let killed = Instant::now();
    tokio::task::block_in_place(|| group[0].kill_hard());
    let old = format!(":{}/", group[0].port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut on_a, mut on_b) = (None, None);
    while on_a.is_none() || on_b.is_none() {
        assert!(Instant::now() < deadline, "the proxies did not both switch");
        if on_a.is_none() && !first_shard(&mut a).await.3.contains(&old) {
            on_a = Some(killed.elapsed());
        }
        if on_b.is_none() && !first_shard(&mut b).await.3.contains(&old) {
            on_b = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (primary_a, primary_b) = (first_shard(&mut a).await.3, first_shard(&mut b).await.3);
    assert_eq!(primary_a, primary_b);
    println!(
        "new primary {primary_a}: the first proxy shows it {} ms after the kill, the second {} ms",
        on_a.unwrap().as_millis(),
        on_b.unwrap().as_millis()
    );
    // Exactly one of them did it; the other followed.
    let (failovers, followed) = (
        changes(&first, "failover") + changes(&second, "failover"),
        changes(&first, "followed") + changes(&second, "followed"),
    );
    assert_eq!((failovers, followed), (1, 1));

    // Sequence ids through both proxies at once: none repeats.
    let inserts = |url: String, proxy: i64| async move {
        let mut conn = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
        for _ in 0..50 {
            conn.exec_drop("INSERT INTO orders (proxy) VALUES (?)", (proxy,))
                .await
                .unwrap();
        }
    };
    let (x, y) = tokio::join!(
        tokio::spawn(inserts(url.clone(), 1)),
        tokio::spawn(inserts(second_url.clone(), 2))
    );
    x.unwrap();
    y.unwrap();
    let (count, distinct): (i64, i64) = a
        .query_first("SELECT COUNT(*), COUNT(DISTINCT id) FROM orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((count, distinct), (100, 100));

    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = groups::stop(&stop, writers).await;
    let errors: Vec<&String> = written
        .iter()
        .flat_map(|w| &w.errors)
        .map(|(_, e)| e)
        .collect();
    println!("{} inserts failed: {errors:?}", errors.len());
    // Those caught by the crash: at most two per writer.
    assert!(errors.len() <= 16, "{errors:?}");
    let mut acknowledged: Vec<i64> = written
        .iter()
        .flat_map(|w| w.acknowledged.iter().copied())
        .collect();
    acknowledged.sort_unstable();
    let stored = groups::stored_ids(&mut b).await;
    let missing: Vec<&i64> = acknowledged
        .iter()
        .filter(|id| stored.binary_search(id).is_err())
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");

    // A third proxy, a process of its own, dies in the middle of a two-phase commit, after its
    // decision. Once its lease expires, another proxy commits what it left prepared.
    let port = common::free_port();
    let listen = format!("listen = \"127.0.0.1:{port}\"");
    let third_text = text.replacen("listen = \"127.0.0.1:0\"", &listen, 1);
    let crash = [("SHARDGATE_TWOPC_CRASH", "after_decision")];
    let mut third = common::proxy_process_serving(&third_text, port, &crash).await;
    // One id on each shard.
    let x = groups::id_on_first_shard(800_000_001);
    let y = (800_000_001..)
        .find(|id| groups::id_on_first_shard(*id) != *id)
        .unwrap();
    let mut c =
        Conn::new(Opts::from_url(&format!("mysql://app:secret@127.0.0.1:{port}/shop")).unwrap())
            .await
            .unwrap();
    c.query_drop("SET transaction_mode = 'twopc'")
        .await
        .unwrap();
    c.query_drop("BEGIN").await.unwrap();
    c.exec_drop("INSERT INTO items (id, v) VALUES (?, 0), (?, 0)", (x, y))
        .await
        .unwrap();
    assert!(
        c.query_drop("COMMIT").await.is_err(),
        "the proxy died in COMMIT"
    );
    tokio::task::block_in_place(|| third.wait());
    let prefix = shardgate::gate::xid_prefix(port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (n,): (i64,) = a
            .exec_first("SELECT COUNT(*) FROM items WHERE id IN (?, ?)", (x, y))
            .await
            .unwrap()
            .unwrap();
        if n == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gone proxy's commit ({prefix}) was not finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second.stop().await;
    first.stop().await;
    drop(etcd);
}
