//! A sharded keyspace of one shard (before its first split) runs every SELECT whole on its shard:
//! the answers are the shard's own, including shapes that over two shards would be merged,
//! joined at the proxy, or refused. The shard's database holds every row, so it is the
//! reference each answer is compared with.

mod common;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};

use common::text_rows;

/// Statements whose answers through the proxy must equal the shard's own.
const QUERIES: &[&str] = &[
    // Merged by the helper weight column over several shards; 'b' and 'B' tie.
    "SELECT c, id FROM ledger WHERE id BETWEEN 5 AND 60 ORDER BY c, id",
    "SELECT DISTINCT c FROM ledger WHERE id BETWEEN 1 AND 80 ORDER BY c",
    "SELECT k, COUNT(*), AVG(n), SUM(n) FROM ledger GROUP BY k ORDER BY 2 DESC, k LIMIT 3",
    "SELECT COUNT(DISTINCT c), GROUP_CONCAT(DISTINCT c ORDER BY c) FROM ledger",
    // A join off both tables' vindex columns: joined at the proxy over several shards.
    "SELECT l.id, e.amount FROM ledger l JOIN entries e ON e.note = l.c WHERE l.k = 3 ORDER BY l.id, e.id",
    // A correlated subquery off the vindex column.
    "SELECT l.id, (SELECT COUNT(*) FROM entries e WHERE e.note = l.c) AS uses FROM ledger l ORDER BY l.id LIMIT 7",
    "SELECT c FROM ledger WHERE id = 17",
    "SELECT id FROM ledger WHERE n IS NULL ORDER BY id DESC LIMIT 4 OFFSET 2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shard_keyspace_answers_as_its_shard() {
    let servers = testkit::start(1, &["solo"]).unwrap();
    let mut direct = Conn::new(Opts::from_url(&servers[0].url("solo")).unwrap())
        .await
        .unwrap();
    direct
        .query_drop(
            "CREATE TABLE ledger (id BIGINT PRIMARY KEY, k INT NOT NULL, \
             c VARCHAR(20) COLLATE utf8mb4_general_ci NOT NULL, n INT NULL);
             CREATE TABLE entries (id BIGINT PRIMARY KEY, ledger_id BIGINT NOT NULL, \
             note VARCHAR(20) NOT NULL, amount DECIMAL(10,2) NOT NULL)",
        )
        .await
        .unwrap();
    let config = common::config_serving(&format!(
        r#"[keyspaces.solo]
sharded = true
shards = [{{ name = "-", primary = "{}" }}]
vindexes.hash = {{ type = "hash" }}
tables.ledger = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}
tables.entries = {{ primary_vindex = {{ column = "ledger_id", vindex = "hash" }} }}
"#,
        servers[0].url("solo")
    ));
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let url = format!("mysql://app:secret@{}/solo", proxy.addr);
    let mut client = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();

    // Written through the proxy, so the rows went where its vindex sends them.
    let words = ["a", "b", "B", "c", "a ", "d"];
    for id in 1..=90i64 {
        let n = if id % 7 == 0 { None } else { Some(id % 11) };
        client
            .exec_drop(
                "INSERT INTO ledger (id, k, c, n) VALUES (?, ?, ?, ?)",
                (id, id % 5, words[id as usize % words.len()], n),
            )
            .await
            .unwrap();
        client
            .exec_drop(
                "INSERT INTO entries (id, ledger_id, note, amount) VALUES (?, ?, ?, ?)",
                (
                    id,
                    (id * 13) % 90 + 1,
                    words[(id as usize / 3) % words.len()],
                    format!("{id}.25"),
                ),
            )
            .await
            .unwrap();
    }

    for sql in QUERIES {
        let want: Vec<Row> = direct.query(*sql).await.unwrap();
        let want = text_rows(want);
        assert!(!want.is_empty(), "{sql}: the reference has rows");
        let got: Vec<Row> = client.query(*sql).await.unwrap();
        assert_eq!(text_rows(got), want, "{sql} (text protocol)");
        // Prepared: run prepared on the shard, rows in the binary protocol.
        let got: Vec<Row> = client.exec(*sql, ()).await.unwrap();
        let direct_rows: Vec<Row> = direct.exec(*sql, ()).await.unwrap();
        assert_eq!(text_rows(got), text_rows(direct_rows), "{sql} (prepared)");
    }
    drop(client);
    proxy.shutdown(std::time::Duration::from_secs(5)).await;
}
