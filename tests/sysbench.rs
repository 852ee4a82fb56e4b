//! sysbench 1.0's OLTP workloads through shardgate, unmodified: tables created by a plain
//! `sysbench prepare` through the proxy (ids from sequences), every workload in the default
//! prepared-statement mode and with `--db-ps-mode=disable`, then the data checked against the
//! shards read directly. No errors but InnoDB deadlocks, which sysbench retries as it does against
//! a single MySQL, and those under 1% of transactions.

mod common;

use common::*;
use mysql_async::prelude::Queryable;

const WORKLOADS: &[&str] = &[
    "oltp_read_write",
    "oltp_point_select",
    "oltp_read_only",
    "oltp_write_only",
    "oltp_insert",
    "oltp_update_index",
    "oltp_delete",
];

const TABLE_SIZE: usize = 10_000;

fn sysbench(port: u16, workload: &str, extra: &[&str], command: &str) -> String {
    let port = format!("--mysql-port={port}");
    let tables = format!("--tables={SBTEST_TABLES}");
    let size = format!("--table-size={TABLE_SIZE}");
    let out = testkit::output_within(
        std::process::Command::new("sysbench")
            .args([
                workload,
                "--db-driver=mysql",
                "--mysql-host=127.0.0.1",
                &port,
                "--mysql-user=app",
                "--mysql-password=secret",
                "--mysql-db=sbtest",
                &tables,
                &size,
            ])
            .args(extra)
            .arg(command),
        std::time::Duration::from_secs(600),
        &format!("sysbench {workload} {command}"),
    )
    .expect("sysbench is installed (Debian package sysbench)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("FATAL"),
        "sysbench {workload} {extra:?} {command} failed:\n{text}"
    );
    text
}

/// The count after `label:` in sysbench's report, e.g. `errors:    0  (0.00 per sec.)`.
fn reported(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label} in sysbench output:\n{text}"))
}

async fn status(c: &mut mysql_async::Conn) -> std::collections::HashMap<String, u64> {
    let rows: Vec<(String, u64)> = c.query("SHOW SHARDGATE STATUS").await.unwrap();
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysbench_workloads_run_without_errors() {
    let proxy = proxy().await;
    let port = proxy.addr.port();
    let mut admin = client(&proxy, Some("main")).await;
    for i in 1..=SBTEST_TABLES {
        admin
            .query_drop(format!("DROP TABLE IF EXISTS sbtest{i}_seq"))
            .await
            .unwrap();
        admin
            .query_drop(format!(
                "CREATE TABLE sbtest{i}_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)"
            ))
            .await
            .unwrap();
        admin
            .query_drop(format!(
                "INSERT INTO sbtest{i}_seq (id, next_id, cache) VALUES (0, 1, 100)"
            ))
            .await
            .unwrap();
    }
    sysbench(port, "oltp_read_write", &[], "cleanup");
    let started = std::time::Instant::now();
    sysbench(port, "oltp_read_write", &[], "prepare");
    eprintln!("prepare: {:?}", started.elapsed());

    let mut stats = Vec::new();
    let mut c = client(&proxy, Some("sbtest")).await;
    for mode in ["auto", "disable"] {
        let before = status(&mut c).await;
        for workload in WORKLOADS {
            let started = std::time::Instant::now();
            let text = sysbench(
                port,
                workload,
                &[
                    &format!("--db-ps-mode={mode}"),
                    "--threads=4",
                    "--events=400",
                    "--time=0",
                    // Deadlocks are retried, as sysbench does against one MySQL (its delete +
                    // re-insert of neighbouring ids deadlocks on gap locks there too); any
                    // other error ends the run.
                    "--mysql-ignore-errors=1213",
                ],
                "run",
            );
            let retried = reported(&text, "ignored errors:");
            let queries = reported(&text, "total:");
            let transactions = reported(&text, "transactions:");
            assert!(queries > 0, "{workload} {mode} ran no queries:\n{text}");
            assert_eq!(
                text.lines()
                    .find_map(|l| l.trim().strip_prefix("errors:"))
                    .and_then(|r| r.split_whitespace().next()),
                None,
                "sysbench 1.0 reports errors as 'ignored errors'"
            );
            assert!(
                retried * 100 <= transactions,
                "{workload} --db-ps-mode={mode}: {retried} deadlocks retried:\n{text}"
            );
            stats.push(format!(
                "{workload}/{mode}: {queries} queries in {:?}",
                started.elapsed()
            ));
        }
        // Prepared mode really used the binary protocol, and the plan cache served it; the
        // text mode did not prepare anything.
        let after = status(&mut c).await;
        let executions = after["Prepared_executions"] - before["Prepared_executions"];
        let hits = after["Plan_cache_hits"] - before["Plan_cache_hits"];
        stats.push(format!(
            "{mode}: {executions} executions, {hits} plan cache hits"
        ));
        if mode == "auto" {
            assert!(executions > 10_000, "{executions} prepared executions");
        } else {
            assert_eq!(executions, 0);
        }
        assert!(hits > 10_000, "{hits} plan cache hits in {mode} mode");
    }
    // Contention: every transaction picks its rows among the first 1000 ids of each table
    // (sysbench's default distribution favours a few of them), so transactions lock rows on
    // both shards in every order. Deadlocks across shards are broken by shardgate with 1213,
    // which sysbench retries; any other error (1205 after waiting out
    // innodb_lock_wait_timeout, say) ends the run.
    for (threads, events) in [(8, 800), (32, 400)] {
        for workload in ["oltp_write_only", "oltp_read_write"] {
            let started = std::time::Instant::now();
            let text = sysbench(
                port,
                workload,
                &[
                    &format!("--threads={threads}"),
                    &format!("--events={events}"),
                    "--time=0",
                    "--table-size=1000",
                    "--mysql-ignore-errors=1213",
                ],
                "run",
            );
            let transactions = reported(&text, "transactions:");
            assert_eq!(
                transactions, events,
                "{workload} at {threads} threads:\n{text}"
            );
            stats.push(format!(
                "{workload}, {threads} threads on 1000 rows per table: {transactions} transactions, {} deadlocks retried, in {:?}",
                reported(&text, "ignored errors:"),
                started.elapsed()
            ));
        }
    }
    let deadlocks: Vec<(u64, String, u32, String, String, u64, String)> =
        c.query("SHOW SHARDGATE DEADLOCKS").await.unwrap();
    assert!(
        !deadlocks.is_empty(),
        "the contended runs met deadlocks across shards"
    );
    stats.push(format!(
        "deadlocks across shards broken: {}",
        deadlocks.iter().map(|d| d.0).max().unwrap_or(0)
    ));
    eprintln!("{}", stats.join("\n"));

    // Consistency: what the proxy reports equals what the shards hold.
    for i in 1..=SBTEST_TABLES {
        let via_proxy: (u64, Option<String>) = c
            .query_first(format!("SELECT COUNT(*), SUM(k) FROM sbtest{i}"))
            .await
            .unwrap()
            .unwrap();
        let (mut count, mut sum) = (0u64, 0i128);
        for shard in ["-80", "80-"] {
            let mut direct = shard_conn("sbtest", shard).await;
            let (n, s): (u64, Option<String>) = direct
                .query_first(format!("SELECT COUNT(*), SUM(k) FROM sbtest{i}"))
                .await
                .unwrap()
                .unwrap();
            count += n;
            sum += s.map_or(0, |s| s.parse::<i128>().unwrap());
            // Every row is on the shard its id hashes to.
            let ids: Vec<i64> = direct
                .query(format!("SELECT id FROM sbtest{i}"))
                .await
                .unwrap();
            for id in ids {
                assert_eq!(owner("sbtest", id), shard, "sbtest{i} id {id}");
            }
        }
        assert!(count > 0);
        assert_eq!(via_proxy.0, count, "sbtest{i} row count");
        assert_eq!(
            via_proxy.1.map_or(0, |s| s.parse::<i128>().unwrap()),
            sum,
            "sbtest{i} SUM(k)"
        );
    }
    sysbench(port, "oltp_read_write", &[], "cleanup");
    proxy.stop().await;
}
