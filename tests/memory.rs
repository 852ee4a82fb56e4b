//! Memory bounds of cross-shard reads, measured on a separate shardgate process: a scatter over a
//! million rows streams through (the proxy's peak RSS grows by far less than the data), a merge
//! with ORDER BY ... LIMIT holds only the shards' limited rows, and a merge (or an INSERT ...
//! SELECT) that would have to hold more rows than `server.max_buffered_rows` fails with a clear
//! error instead.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};

const ROWS_PER_SHARD: u64 = 500_000;

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (current RSS, peak RSS) of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scatter_streams_and_merges_stay_bounded() {
    let servers = tokio::task::spawn_blocking(|| testkit::start(2, &["big"]))
        .await
        .unwrap()
        .unwrap();
    for (i, server) in servers.iter().enumerate() {
        let mut c = Conn::new(Opts::from_url(&server.url("big")).unwrap())
            .await
            .unwrap();
        c.query_drop(
            "CREATE TABLE big (id BIGINT PRIMARY KEY, v INT NOT NULL, pad CHAR(100) NOT NULL)",
        )
        .await
        .unwrap();
        let offset = i as u64 * ROWS_PER_SHARD;
        c.query_drop(format!("INSERT INTO big SELECT seq + {offset}, seq % 1000, REPEAT('x', 100) FROM seq_1_to_{ROWS_PER_SHARD}")).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
max_buffered_rows = 1000

[[users]]
name = "app"
password = "secret"

[keyspaces.big]
sharded = true
shards = [{{ name = "-80", primary = "{a}" }}, {{ name = "80-", primary = "{b}" }}]
vindexes.hash = {{ type = "hash" }}
tables.big = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}
"#,
        a = servers[0].url("big"),
        b = servers[1].url("big"),
    );
    let path = dir.path().join("shardgate.toml");
    std::fs::write(&path, config).unwrap();
    let child = testkit::die_with_parent(&mut Command::new(env!("CARGO_BIN_EXE_shardgate")))
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proxy = Proxy(child);
    let pid = proxy.0.id();
    let url = format!("mysql://app:secret@127.0.0.1:{port}/big");
    let mut conn = None;
    for _ in 0..100 {
        if let Ok(c) = Conn::new(Opts::from_url(&url).unwrap()).await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = conn.expect("shardgate accepts connections");
    let _: Vec<i64> = c.query("SELECT id FROM big WHERE id = 1").await.unwrap();

    // A million rows (about 110 MB of row data) stream through.
    let (before, _) = rss_kib(pid);
    let mut result = c.query_iter("SELECT * FROM big").await.unwrap();
    let mut rows = 0u64;
    while let Some(row) = result.next().await.unwrap() {
        let _: Row = row;
        rows += 1;
    }
    drop(result);
    let (_, peak) = rss_kib(pid);
    let growth_mib = peak.saturating_sub(before) / 1024;
    eprintln!("scatter of {rows} rows: proxy RSS {before} KiB before, peak {peak} KiB, growth {growth_mib} MiB");
    assert_eq!(rows, 2 * ROWS_PER_SHARD);
    assert!(growth_mib < 64, "peak RSS grew by {growth_mib} MiB");

    // ORDER BY ... LIMIT: each shard sends at most 10 rows; the merge returns the true top 10.
    let plan: Vec<String> = c
        .query("VEXPLAIN PLAN SELECT id, v FROM big ORDER BY v DESC, id LIMIT 10")
        .await
        .unwrap();
    assert!(
        plan.iter()
            .any(|l| l.contains("ORDER BY 2 DESC, 1 ASC LIMIT 10")),
        "{plan:?}"
    );
    let top: Vec<(i64, i32)> = c
        .query("SELECT id, v FROM big ORDER BY v DESC, id LIMIT 10")
        .await
        .unwrap();
    let mut want = Vec::new();
    for server in &servers {
        let mut d = Conn::new(Opts::from_url(&server.url("big")).unwrap())
            .await
            .unwrap();
        let part: Vec<(i64, i32)> = d
            .query("SELECT id, v FROM big ORDER BY v DESC, id LIMIT 10")
            .await
            .unwrap();
        want.extend(part);
    }
    want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    want.truncate(10);
    assert_eq!(top, want);

    // Sorting a million groups would hold a million rows: refused past max_buffered_rows.
    let err = c
        .query_drop("SELECT id, COUNT(*) FROM big GROUP BY id ORDER BY COUNT(*) DESC, id")
        .await
        .unwrap_err();
    let mysql_async::Error::Server(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.code, 1038, "{}", e.message);
    assert!(e.message.contains("max_buffered_rows"), "{}", e.message);
    // The connection survives the refusal.
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM big").await.unwrap();
    assert_eq!(n, Some(2 * ROWS_PER_SHARD as i64));

    // GROUP_CONCAT, COUNT(DISTINCT x, y) and STDDEV hold one group at a time, however many rows
    // the shards send (here 50 groups of 1000).
    let ids: Vec<String> = (1..=1000).rev().map(|k| (k * 1000).to_string()).collect();
    for (sql, want) in [
        (
            "SELECT v, GROUP_CONCAT(id ORDER BY id DESC), STDDEV_POP(id) FROM big WHERE v < 50 GROUP BY v",
            ids.join(","),
        ),
        (
            "SELECT v, COUNT(DISTINCT v, id), STDDEV_POP(id) FROM big WHERE v < 50 GROUP BY v",
            "1000".to_string(),
        ),
    ] {
        let mut result = c.query_iter(sql).await.unwrap();
        let mut groups = 0;
        while let Some(row) = result.next().await.unwrap() {
            groups += 1;
            let (v, got, std): (i64, String, f64) = mysql_async::from_row(row);
            if v == 0 {
                assert_eq!(got, want, "{sql}");
                // 1000 times the spread of 1..=1000, sqrt((1000² - 1) / 12).
                assert!((std - 1000.0 * (999_999f64 / 12.0).sqrt()).abs() < 1e-3, "{std}");
            }
        }
        drop(result);
        assert_eq!(groups, 50, "{sql}");
    }

    // Expressions over merged aggregates go to a shard in batches of rows: 1000 groups here,
    // as many as max_buffered_rows.
    let mut result = c
        .query_iter(
            "SELECT v, CONCAT('n=', COUNT(*)), COALESCE(MAX(id), 0) - MIN(id) \
             FROM big WHERE id <= 2000 OR id > 999000 GROUP BY v",
        )
        .await
        .unwrap();
    let mut groups = 0;
    while let Some(row) = result.next().await.unwrap() {
        groups += 1;
        let (v, n, spread): (i64, String, i64) = mysql_async::from_row(row);
        // v = seq % 1000 on each shard: two of ids 1..=2000 on the first, one of the last 1000.
        assert_eq!(n, "n=3", "group {v}");
        assert!(spread > 990_000, "group {v}: {spread}");
    }
    drop(result);
    assert_eq!(groups, 1000);

    // A WHERE over a derived table that a shard evaluates streams too: 6000 rows (six times
    // max_buffered_rows) go through in batches.
    let mut ids: Vec<i64> = c
        .query(
            "SELECT t.id FROM (SELECT id, v FROM big WHERE id <= 3000 OR id > 997000) t \
             WHERE CONCAT('v', t.v) = 'v7'",
        )
        .await
        .unwrap();
    ids.sort_unstable();
    // v = seq % 1000: ids 7, 1007, 2007 on the first shard, seq 497007... on the second.
    assert_eq!(ids, [7, 1007, 2007, 997007, 998007, 999007]);

    // A UNION branch's own LIMIT n holds n rows of each shard, sorted at the proxy: within
    // max_buffered_rows, the first n overall; past it, refused.
    let top: Vec<i64> = c
        .query(
            "(SELECT id FROM big ORDER BY v DESC, id LIMIT 400) \
             UNION ALL (SELECT id FROM big ORDER BY id LIMIT 1)",
        )
        .await
        .unwrap();
    assert_eq!(top.len(), 401);
    // v = 999 for ids 999, 1999, ... on the first shard and 500999, ... on the second.
    assert_eq!(&top[..2], &[999, 1999]);
    assert_eq!(top[400], 1);
    let err = c
        .query_drop(
            "(SELECT id FROM big ORDER BY v, id LIMIT 600) UNION ALL (SELECT 1 FROM big LIMIT 1)",
        )
        .await
        .unwrap_err();
    let mysql_async::Error::Server(e) = err else {
        panic!("{err}")
    };
    assert!(e.message.contains("max_buffered_rows"), "{}", e.message);

    // An aggregate subquery per outer row is a grouped LEFT JOIN: bounded like one.
    let counts: Vec<(i64, i64)> = c
        .query(
            "SELECT b.id, (SELECT COUNT(*) FROM big x WHERE x.v = b.id AND x.id BETWEEN 499991 AND 500000) AS n \
             FROM big b WHERE b.id <= 12 ORDER BY b.id",
        )
        .await
        .unwrap();
    // Ids 499991..=500000 (v 991..=999 and 0) on the first shard: none of them is v 1..=12.
    assert_eq!(counts.len(), 12);
    assert!(counts.iter().all(|&(_, n)| n == 0), "{counts:?}");
    let counts: Vec<(i64, i64)> = c
        .query(
            "SELECT b.id, (SELECT COUNT(*) FROM big x WHERE x.v = b.id AND x.id < 3000) AS n \
             FROM big b WHERE b.id <= 3 ORDER BY b.id",
        )
        .await
        .unwrap();
    // v = id % 1000 over ids 1..=2999: three of each small v.
    assert_eq!(counts, vec![(1, 3), (2, 3), (3, 3)]);
    // 500 matches of each of 12 outer rows on the second shard: more than max_buffered_rows.
    let err = c
        .query_drop(
            "SELECT b.id, (SELECT COUNT(*) FROM big x WHERE x.v = b.id AND x.id > 500000) \
             FROM big b WHERE b.id <= 12",
        )
        .await
        .unwrap_err();
    let mysql_async::Error::Server(e) = err else {
        panic!("{err}")
    };
    assert!(e.message.contains("max_buffered_rows"), "{}", e.message);

    // A semi-join holds its outer rows (up to max_buffered_rows) and one batch's matches.
    let n: Option<i64> = c
        .query_first(
            "SELECT COUNT(*) FROM big b WHERE b.id <= 1000 \
             AND EXISTS (SELECT 1 FROM big x WHERE x.v = b.id AND x.id > 400000)",
        )
        .await
        .unwrap();
    // v runs over 0..999 on each shard, so ids 1..=999 match and 1000 does not.
    assert_eq!(n, Some(999));
    let err = c
        .query_drop(
            "SELECT COUNT(*) FROM big b WHERE EXISTS (SELECT 1 FROM big x WHERE x.v = b.id)",
        )
        .await
        .unwrap_err();
    let mysql_async::Error::Server(e) = err else {
        panic!("{err}")
    };
    assert!(e.message.contains("max_buffered_rows"), "{}", e.message);

    // INSERT ... SELECT holds the SELECT's rows: up to max_buffered_rows, and none are written
    // past it.
    c.query_drop(
        "INSERT INTO big (id, v, pad) SELECT id + 2000000, v, 'copy' FROM big WHERE id <= 1000",
    )
    .await
    .unwrap();
    let err = c
        .query_drop(
            "INSERT INTO big (id, v, pad) SELECT id + 3000000, v, 'copy' FROM big WHERE id <= 1001",
        )
        .await
        .unwrap_err();
    let mysql_async::Error::Server(e) = err else {
        panic!("{err}")
    };
    assert!(e.message.contains("max_buffered_rows"), "{}", e.message);
    let copies: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM big WHERE pad = 'copy'")
        .await
        .unwrap();
    assert_eq!(copies, Some(1000));
}
