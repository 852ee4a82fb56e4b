//! transaction_mode twopc: atomic commit across shards with XA and a decision record, and
//! recovery after a crash between prepare and commit.

mod common;

use common::*;

async fn committed(table: &str, ids: &[i64]) -> Vec<i64> {
    committed_rows(table, ids)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

/// Prepared XA branches left on the servers with ids starting with `prefix`.
async fn prepared(prefix: &str) -> usize {
    let mut n = 0;
    for server in &cluster().servers {
        let mut c = Conn::new(Opts::from_url(&server.url("two")).unwrap())
            .await
            .unwrap();
        let rows: Vec<(i64, i64, i64, Vec<u8>)> = c.query("XA RECOVER").await.unwrap();
        n += rows
            .iter()
            .filter(|r| r.3.starts_with(prefix.as_bytes()))
            .count();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twopc_commits_and_rolls_back_atomically() {
    let proxy = proxy().await;
    let t = "txt_twopc";
    let mut c = client(&proxy, Some("two")).await;
    create_id_v(&mut c, t).await;
    let (a, b) = ids_on_two_shards(5000);
    c.query_drop(format!("DELETE FROM {t} WHERE id IN ({a}, {b})"))
        .await
        .unwrap();
    c.query_drop("SET transaction_mode = 'twopc'")
        .await
        .unwrap();
    let mode: Option<String> = c.query_first("SELECT @@transaction_mode").await.unwrap();
    assert_eq!(mode.as_deref(), Some("twopc"));

    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!(
        "INSERT INTO {t} (id, v) VALUES ({a}, 'a'), ({b}, 'b')"
    ))
    .await
    .unwrap();
    assert!(committed(t, &[a, b]).await.is_empty());
    c.query_drop("COMMIT").await.unwrap();
    assert_eq!(committed(t, &[a, b]).await, [a.min(b), a.max(b)]);

    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!("DELETE FROM {t} WHERE id IN ({a}, {b})"))
        .await
        .unwrap();
    c.query_drop("ROLLBACK").await.unwrap();
    assert_eq!(committed(t, &[a, b]).await.len(), 2);

    // One shard: a one-phase XA commit.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!("UPDATE {t} SET v = 'one' WHERE id = {a}"))
        .await
        .unwrap();
    c.query_drop("COMMIT").await.unwrap();
    let err = {
        c.query_drop("BEGIN").await.unwrap();
        let e = c.query_drop("SAVEPOINT sp").await.unwrap_err();
        c.query_drop("ROLLBACK").await.unwrap();
        e
    };
    assert_eq!(server_code(&err), Some(1235), "XA has no savepoints");
    assert_eq!(
        prepared(&proxy.gate.xid_prefix).await,
        0,
        "nothing left prepared"
    );
    proxy.stop().await;
}

/// How the prepared transactions of a crashed shardgate are finished.
#[derive(Clone, Copy, PartialEq)]
enum Recovery {
    /// A new shardgate on the same port resolves them before serving.
    Restart,
    /// `shardgate resolve --config F --prefix sg-<port>-`.
    Command,
}

/// Kills shardgate at `point` of a two-shard twopc COMMIT, recovers, and returns the rows that
/// ended up committed. Each test has a table `t` of its own: the branches a crash leaves prepared
/// keep their locks until recovery, and must not hold up another test's statements meanwhile.
async fn crash_and_restart(
    t: &str,
    point: &str,
    from: i64,
    recovery: Recovery,
) -> (Vec<i64>, (i64, i64)) {
    let port = free_port();
    let prefix = format!("sg-{port}-");
    let mut crashing = proxy_process_on(port, &[("SHARDGATE_TWOPC_CRASH", point)]).await;
    let url = format!("mysql://app:secret@127.0.0.1:{port}/two");
    let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    create_id_v(&mut c, t).await;
    let (a, b) = ids_on_two_shards(from);
    c.query_drop(format!("DELETE FROM {t} WHERE id IN ({a}, {b})"))
        .await
        .unwrap();
    c.query_drop("SET transaction_mode = 'twopc'")
        .await
        .unwrap();
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!(
        "INSERT INTO {t} (id, v) VALUES ({a}, 'a'), ({b}, 'b')"
    ))
    .await
    .unwrap();
    // The process died during COMMIT.
    expect_closed(c.query_drop("COMMIT").await);
    assert!(!crashing.wait().success());
    drop(crashing);
    // Both branches are prepared and waiting: neither committed nor gone.
    assert_eq!(
        prepared(&prefix).await,
        2,
        "{point}: both branches prepared"
    );
    assert!(committed(t, &[a, b]).await.is_empty());

    match recovery {
        Recovery::Restart => {
            // The restarted shardgate resolves them before serving.
            let restarted = proxy_process_on(port, &[]).await;
            assert_eq!(prepared(&prefix).await, 0, "{point}: resolved on restart");
            drop(restarted);
        }
        Recovery::Command => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("shardgate.toml");
            std::fs::write(&path, &cluster().config_text).unwrap();
            let out = testkit::output_within(
                std::process::Command::new(env!("CARGO_BIN_EXE_shardgate"))
                    .args(["resolve", "--prefix", &prefix, "--config"])
                    .arg(&path),
                std::time::Duration::from_secs(60),
                "shardgate resolve",
            )
            .unwrap();
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{printed}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let expected = if point == "after_decision" {
                format!("committed: 1\n  {prefix}")
            } else {
                format!("committed: 0\nrolled back: 1\n  {prefix}")
            };
            assert!(printed.starts_with(&expected), "{printed}");
            assert_eq!(
                prepared(&prefix).await,
                0,
                "{point}: resolved by the command"
            );
        }
    }
    (committed(t, &[a, b]).await, (a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_decision_rolls_back_everywhere() {
    let (rows, _) =
        crash_and_restart("txt_crash_before", "after_prepare", 6000, Recovery::Restart).await;
    assert!(
        rows.is_empty(),
        "no decision recorded: rolled back on every shard, got {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_decision_commits_everywhere() {
    let (rows, (a, b)) =
        crash_and_restart("txt_crash_after", "after_decision", 7000, Recovery::Restart).await;
    assert_eq!(
        rows,
        [a.min(b), a.max(b)],
        "decision recorded: committed on every shard"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shardgate_resolve_finishes_what_a_crash_left_prepared() {
    let (rows, (a, b)) =
        crash_and_restart("txt_resolve", "after_decision", 8000, Recovery::Command).await;
    assert_eq!(rows, [a.min(b), a.max(b)], "decision recorded: committed");
    let (rows, _) =
        crash_and_restart("txt_resolve", "after_prepare", 8100, Recovery::Command).await;
    assert!(rows.is_empty(), "no decision: rolled back, got {rows:?}");
}
