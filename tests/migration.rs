//! Online schema changes through the proxy, on real shards writing row binlogs: a migration
//! under concurrent writes ends with every acknowledged write in the new table, as a reference
//! database that saw the same writes has them; a migration that cannot run fails cleanly.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{client, config_serving};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};

const ROWS: i64 = 5000;
const WRITERS: i64 = 4;

struct Setup {
    servers: Vec<testkit::MariaDb>,
    proxy: shardgate::Running,
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

/// The servers, and a proxy whose `[server]` settings `adjust` changes (old tables kept an
/// hour after a cut-over unless it says otherwise).
async fn setup_with(adjust: impl FnOnce(&mut vschema::ServerConfig)) -> Setup {
    let servers = testkit::start_binlogged(3, &["app", "main", "ref"]).unwrap();
    let mut config = config_serving(&common::app_and_main(&servers));
    config.server.migration_retention_s = 3600;
    adjust(&mut config.server);
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    Setup { servers, proxy }
}

/// A copy slow enough (500 rows/s on each shard) to be caught in the middle.
async fn setup_slow_copy() -> Setup {
    setup_with(|server| server.migration_copy_rate = 500).await
}

async fn reference(s: &Setup) -> Conn {
    Conn::new(Opts::from_url(&s.servers[2].url("ref")).unwrap())
        .await
        .unwrap()
}

/// The same statement through the proxy and, once acknowledged, on the reference.
async fn both(app: &mut Conn, reference: &mut Conn, sql: &str) {
    app.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    reference.query_drop(sql).await.unwrap();
}

/// Writers, each on its own ids (so that the reference sees each row's writes in the proxy's
/// order): inserts, updates and deletes until told to stop. The writes that failed.
fn writers(s: &Setup, stop: Arc<AtomicBool>, round: i64) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..WRITERS)
        .map(|w| {
            let (stop, url) = (stop.clone(), s.servers[2].url("ref"));
            let addr = s.proxy.addr;
            tokio::spawn(async move {
                let mut app =
                    Conn::new(Opts::from_url(&format!("mysql://app:secret@{addr}/app")).unwrap())
                        .await
                        .unwrap();
                let mut reference = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
                let failed = AtomicU64::new(0);
                // New ids of their own in each round.
                let mut next = ROWS + round * 1_000_000 + w;
                let mut step = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    step += 1;
                    let old = (step * 7919 + w) % ROWS / WRITERS * WRITERS + w;
                    let sql = match step % 4 {
                        0 => format!("DELETE FROM items WHERE id = {old}"),
                        1 | 2 => format!(
                            "UPDATE items SET n = n + 1, note = 'w{w} s{step}' WHERE id = {old}"
                        ),
                        _ => {
                            next += WRITERS;
                            format!(
                                "INSERT INTO items (id, n, note) VALUES ({next}, {step}, 'new')"
                            )
                        }
                    };
                    match app.query_drop(&sql).await {
                        Ok(()) => reference.query_drop(&sql).await.unwrap(),
                        Err(e) => {
                            eprintln!("{sql}: {e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                failed.into_inner()
            })
        })
        .collect()
}

/// The migration's row of SHOW SHARDGATE MIGRATIONS once it has ended (within two minutes).
async fn ended(app: &mut Conn, id: &str) -> Vec<String> {
    for _ in 0..1200 {
        let row = listed(app, id).await;
        if !matches!(row[4].as_str(), "queued" | "running") {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("migration {id} did not end within two minutes");
}

/// The migration's row of SHOW SHARDGATE MIGRATIONS, as text.
async fn listed(app: &mut Conn, id: &str) -> Vec<String> {
    let rows: Vec<Row> = app.query("SHOW SHARDGATE MIGRATIONS").await.unwrap();
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| mysql_async::from_value::<Option<String>>(v).unwrap_or_default())
                .collect::<Vec<_>>()
        })
        .find(|r| r[0] == id)
        .expect("the migration is listed")
}

async fn online(app: &mut Conn, sql: &str) -> String {
    app.query_drop("SET @@ddl_strategy = 'online'")
        .await
        .unwrap();
    let id: Option<String> = app.query_first(sql).await.unwrap();
    app.query_drop("SET @@ddl_strategy = 'direct'")
        .await
        .unwrap();
    id.expect("the migration's id")
}

async fn contents(conn: &mut Conn, columns: &str) -> Vec<Row> {
    conn.query(format!("SELECT {columns} FROM items ORDER BY id"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn online_alters_under_writes_keep_every_acknowledged_write() {
    let s = setup().await;
    let (mut app, mut reference) = seeded(&s).await;
    for (round, (alter, on_reference, columns)) in [
        (
            "ALTER TABLE items ADD COLUMN extra INT NOT NULL DEFAULT 7",
            "ALTER TABLE items ADD COLUMN extra INT NOT NULL DEFAULT 7",
            "id, n, note, extra",
        ),
        (
            "ALTER TABLE items MODIFY COLUMN note VARCHAR(200), ADD INDEX by_n (n)",
            "ALTER TABLE items MODIFY COLUMN note VARCHAR(200), ADD INDEX by_n (n)",
            "id, n, note, extra",
        ),
        (
            "ALTER TABLE items DROP COLUMN extra",
            "ALTER TABLE items DROP COLUMN extra",
            "*",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let stop = Arc::new(AtomicBool::new(false));
        let running = writers(&s, stop.clone(), round as i64);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let id = online(&mut app, alter).await;
        let row = ended(&mut app, &id).await;
        stop.store(true, Ordering::Relaxed);
        let mut failed = 0;
        for w in running {
            failed += w.await.unwrap();
        }
        eprintln!("{alter}: {}", row[11]);
        assert_eq!(row[4], "complete", "{alter}: {row:?}");
        assert_eq!(row[8], "100.0", "{row:?}");
        assert_eq!(failed, 0, "{alter}: writes failed during the migration");
        reference.query_drop(on_reference).await.unwrap();
        let through_proxy = contents(&mut app, columns).await;
        let wanted = contents(&mut reference, columns).await;
        assert!(through_proxy.len() > ROWS as usize / 2);
        assert_eq!(
            through_proxy
                .into_iter()
                .map(Row::unwrap)
                .collect::<Vec<_>>(),
            wanted.into_iter().map(Row::unwrap).collect::<Vec<_>>(),
            "{alter}"
        );
        // Each shard has the new schema, and keeps the old table.
        for server in &s.servers[..2] {
            let mut shard = Conn::new(Opts::from_url(&server.url("app")).unwrap())
                .await
                .unwrap();
            let create: Option<(String, String)> =
                shard.query_first("SHOW CREATE TABLE items").await.unwrap();
            let create = create.unwrap().1;
            // Added by the first migration, dropped by the last.
            assert_eq!(create.contains("`extra`"), round < 2, "{create}");
            assert_eq!(create.contains("by_n"), round >= 1, "{create}");
            let old: Vec<String> = shard
                .query(format!("SHOW TABLES LIKE '_sg_{id}_old'"))
                .await
                .unwrap();
            assert_eq!(old.len(), 1, "the old table is kept");
        }
    }
    // A new column is served at once (the plans of the old schema are gone).
    app.query_drop("INSERT INTO items (id, n, note) VALUES (999999, 1, 'after')")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_that_cannot_run_fails_and_leaves_the_table_alone() {
    let s = setup().await;
    let mut app = client(&s.proxy, Some("app")).await;
    app.query_drop("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL)")
        .await
        .unwrap();
    app.query_drop("INSERT INTO items VALUES (1, 1), (2, 2), (3, 3)")
        .await
        .unwrap();
    let id = online(&mut app, "ALTER TABLE items ADD COLUMN n INT").await;
    let row = ended(&mut app, &id).await;
    assert_eq!(row[4], "failed", "{row:?}");
    assert!(row[11].contains("Duplicate column"), "{row:?}");
    for server in &s.servers[..2] {
        let mut shard = Conn::new(Opts::from_url(&server.url("app")).unwrap())
            .await
            .unwrap();
        let tables: Vec<String> = shard.query("SHOW TABLES").await.unwrap();
        assert_eq!(tables, ["items"], "no shadow table is left");
    }
    let rows: Vec<(i64, i64)> = app
        .query("SELECT id, n FROM items ORDER BY id")
        .await
        .unwrap();
    assert_eq!(rows, [(1, 1), (2, 2), (3, 3)]);
    // RETRY runs it again (and it fails again); CANCEL of an ended one is refused.
    app.query_drop(format!("ALTER SHARDGATE MIGRATION '{id}' RETRY"))
        .await
        .unwrap();
    assert_eq!(ended(&mut app, &id).await[4], "failed");
    let refused = app
        .query_drop(format!("ALTER SHARDGATE MIGRATION '{id}' CANCEL"))
        .await
        .unwrap_err();
    assert_eq!(common::server_code(&refused), Some(1235), "{refused}");
    let strategy: Option<String> = app.query_first("SELECT @@ddl_strategy").await.unwrap();
    assert_eq!(strategy.as_deref(), Some("direct"));
    // Unknown strategies are refused as MySQL refuses a wrong value.
    let wrong = app
        .query_drop("SET @@ddl_strategy = 'sometimes'")
        .await
        .unwrap_err();
    assert_eq!(common::server_code(&wrong), Some(1231), "{wrong}");

    // A unique key that rows repeat: the copy would drop rows, so the migration fails.
    app.query_drop("SET @@ddl_strategy = 'online'")
        .await
        .unwrap();
    app.query_drop("INSERT INTO items VALUES (10, 7), (11, 7), (12, 7), (13, 7), (14, 7)")
        .await
        .unwrap();
    let id = online(&mut app, "ALTER TABLE items ADD UNIQUE KEY un (n)").await;
    let row = ended(&mut app, &id).await;
    assert_eq!(row[4], "failed", "{row:?}");
    assert!(
        row[11].contains("repeat a key the new schema makes unique"),
        "{row:?}"
    );
    let count: Option<i64> = app.query_first("SELECT COUNT(*) FROM items").await.unwrap();
    assert_eq!(count, Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_repeat_an_added_unique_key_fail_the_migration_and_lose_nothing() {
    let s = setup_slow_copy().await;
    let mut app = client(&s.proxy, Some("app")).await;
    app.query_drop("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)")
        .await
        .unwrap();
    for start in (0..ROWS).step_by(500) {
        let values: Vec<String> = (start..start + 500)
            .map(|id| format!("({id}, {id})"))
            .collect();
        app.query_drop(format!(
            "INSERT INTO items (id, n) VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();
    }
    let id = online(&mut app, "ALTER TABLE items ADD UNIQUE KEY un (n)").await;
    // Once both shards copied their first chunk (ids 0..9 among them), new rows beyond the
    // copy's end repeat their n: only the stream writes them, and the shadow's unique key
    // makes each replace its twin.
    for _ in 0..600 {
        if listed(&mut app, &id).await[6].parse::<u64>().unwrap_or(0) >= 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let twins: Vec<String> = (0..10).map(|n| format!("({}, {n})", 900_000 + n)).collect();
    app.query_drop(format!(
        "INSERT INTO items (id, n) VALUES {}",
        twins.join(", ")
    ))
    .await
    .unwrap();
    let row = ended(&mut app, &id).await;
    assert_eq!(row[4], "failed", "{row:?}");
    assert!(
        row[11].contains("repeat a key the new schema makes unique"),
        "{row:?}"
    );
    let count: Option<i64> = app.query_first("SELECT COUNT(*) FROM items").await.unwrap();
    println!("{}", row[11]);
    assert_eq!(count, Some(ROWS + 10));
    for server in &s.servers[..2] {
        let mut shard = Conn::new(Opts::from_url(&server.url("app")).unwrap())
            .await
            .unwrap();
        let tables: Vec<String> = shard.query("SHOW TABLES").await.unwrap();
        assert_eq!(tables, ["items"], "no shadow table is left");
    }
}

/// The migrations' table and its rows through the proxy and on the reference.
async fn seeded(s: &Setup) -> (Conn, Conn) {
    let app = client(&s.proxy, Some("app")).await;
    let reference = reference(s).await;
    seed(app, reference).await
}

async fn seed(mut app: Conn, mut reference: Conn) -> (Conn, Conn) {
    both(
        &mut app,
        &mut reference,
        "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL, note VARCHAR(40))",
    )
    .await;
    for start in (0..ROWS).step_by(500) {
        let values: Vec<String> = (start..start + 500)
            .map(|id| format!("({id}, {}, 'row {id}')", id % 97))
            .collect();
        both(
            &mut app,
            &mut reference,
            &format!(
                "INSERT INTO items (id, n, note) VALUES {}",
                values.join(", ")
            ),
        )
        .await;
    }
    (app, reference)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_under_writes_brings_back_the_old_schema_with_every_row_since() {
    let s = setup().await;
    let (mut app, mut reference) = seeded(&s).await;
    let id = online(
        &mut app,
        "ALTER TABLE items ADD COLUMN extra INT NOT NULL DEFAULT 7",
    )
    .await;
    assert_eq!(ended(&mut app, &id).await[4], "complete");
    // Written to the new table after the cut-over, under load while the revert runs.
    let stop = Arc::new(AtomicBool::new(false));
    let running = writers(&s, stop.clone(), 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.query_drop(format!("REVERT MIGRATION '{id}'"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    for w in running {
        failed += w.await.unwrap();
    }
    assert_eq!(failed, 0, "writes failed during the revert");
    let row = ended(&mut app, &id).await;
    assert_eq!(row[4], "reverted", "{row:?}");
    eprintln!("revert: {}", row[11]);
    // The old schema, and every row the reference has (it never had the new column).
    let through_proxy = contents(&mut app, "*").await;
    let wanted = contents(&mut reference, "*").await;
    assert_eq!(through_proxy[0].len(), 3, "the old columns");
    assert_eq!(
        through_proxy
            .into_iter()
            .map(Row::unwrap)
            .collect::<Vec<_>>(),
        wanted.into_iter().map(Row::unwrap).collect::<Vec<_>>()
    );
    // Reverting twice is refused.
    let again = app
        .query_drop(format!("REVERT MIGRATION '{id}'"))
        .await
        .unwrap_err();
    assert_eq!(common::server_code(&again), Some(1235), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_tables_are_dropped_when_the_retention_ends() {
    let s = setup_with(|server| server.migration_retention_s = 2).await;
    let (mut app, _) = seeded(&s).await;
    let id = online(&mut app, "ALTER TABLE items ADD COLUMN extra INT").await;
    assert_eq!(ended(&mut app, &id).await[4], "complete");
    let mut shard = Conn::new(Opts::from_url(&s.servers[0].url("app")).unwrap())
        .await
        .unwrap();
    let mut dropped = false;
    for _ in 0..300 {
        let old: Vec<String> = shard
            .query(format!("SHOW TABLES LIKE '_sg_{id}_old'"))
            .await
            .unwrap();
        if old.is_empty() {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "the old table outlived the retention");
    let row = ended(&mut app, &id).await;
    assert!(row[5].contains("retired"), "{row:?}");
    let refused = app
        .query_drop(format!("REVERT MIGRATION '{id}'"))
        .await
        .unwrap_err();
    assert_eq!(common::server_code(&refused), Some(1235), "{refused}");
}

/// Waits until the migration has copied some rows (and not all).
async fn copying(app: &mut Conn, id: &str) {
    for _ in 0..600 {
        let r = listed(app, id).await;
        if r[6].parse::<u64>().unwrap_or(0) > 0 {
            assert_eq!(r[4], "running", "{r:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("migration {id} copied nothing within 30 s");
}

/// The seeded rows as they must be after `ADD COLUMN extra ... DEFAULT 7`: (count, sum of n,
/// rows with extra = 7).
async fn seeded_rows_with_extra(app: &mut Conn) -> (i64, i64, i64) {
    let row: Option<(i64, i64, i64)> = app
        .query_first("SELECT COUNT(*), SUM(n), SUM(extra = 7) FROM items")
        .await
        .unwrap();
    row.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_resumes_after_the_proxy_is_killed_mid_copy() {
    let servers = testkit::start_binlogged(3, &["app", "main", "ref"]).unwrap();
    let port = common::free_port();
    // Slow enough to be caught mid-copy.
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nmigration_copy_rate = 1000\n\n\
         [[users]]\nname = \"app\"\npassword = \"secret\"\n{}",
        common::app_and_main(&servers)
    );
    let url = format!("mysql://app:secret@127.0.0.1:{port}/app");
    let connect = || async { Conn::new(Opts::from_url(&url).unwrap()).await.unwrap() };
    let proxy = common::proxy_process_serving(&text, port, &[]).await;
    let reference = Conn::new(Opts::from_url(&servers[2].url("ref")).unwrap())
        .await
        .unwrap();
    let (mut app, _) = seed(connect().await, reference).await;
    let id = online(
        &mut app,
        "ALTER TABLE items ADD COLUMN extra INT NOT NULL DEFAULT 7",
    )
    .await;
    copying(&mut app, &id).await;
    drop(app);
    drop(proxy);

    let _proxy = common::proxy_process_serving(&text, port, &[]).await;
    let mut app = connect().await;
    let row = ended(&mut app, &id).await;
    assert_eq!(row[4], "complete", "{row:?}");
    let n: i64 = (0..ROWS).map(|id| id % 97).sum();
    assert_eq!(seeded_rows_with_extra(&mut app).await, (ROWS, n, ROWS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_lost_mid_migration_fails_it_everywhere_and_leaves_the_table() {
    let mut s = setup_slow_copy().await;
    let (mut app, _) = seeded(&s).await;
    let id = online(
        &mut app,
        "ALTER TABLE items ADD COLUMN extra INT NOT NULL DEFAULT 7",
    )
    .await;
    copying(&mut app, &id).await;
    s.servers[1].kill_hard();
    let row = ended(&mut app, &id).await;
    assert_eq!(row[4], "failed", "{row:?}");
    assert!(
        row[11].contains("80-"),
        "the message names the lost shard: {row:?}"
    );
    s.servers[1].start_again().unwrap();
    let mut total = 0;
    for (i, server) in s.servers[..2].iter().enumerate() {
        let mut shard = Conn::new(Opts::from_url(&server.url("app")).unwrap())
            .await
            .unwrap();
        let create: Option<(String, String)> =
            shard.query_first("SHOW CREATE TABLE items").await.unwrap();
        assert!(
            !create.unwrap().1.contains("extra"),
            "the table is untouched"
        );
        let count: Option<i64> = shard
            .query_first("SELECT COUNT(*) FROM items")
            .await
            .unwrap();
        total += count.unwrap();
        if i == 0 {
            let tables: Vec<String> = shard.query("SHOW TABLES").await.unwrap();
            assert_eq!(tables, ["items"], "the shadow table is dropped");
        }
    }
    assert_eq!(total, ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_without_row_binlogs_refuse_an_online_alter_saying_what_to_set() {
    // The shared cluster's servers write no binlog.
    let proxy = common::proxy().await;
    let mut app = client(&proxy, Some("two")).await;
    app.query_drop("SET @@ddl_strategy = 'online'")
        .await
        .unwrap();
    let refused = app
        .query_drop("ALTER TABLE locked ADD COLUMN never INT")
        .await
        .unwrap_err();
    assert_eq!(common::server_code(&refused), Some(1235), "{refused}");
    assert!(refused.to_string().contains("log_bin = ON"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_watches_lists_reverts_and_refuses_as_the_proxy_says() {
    let servers = testkit::start_binlogged(3, &["app", "main", "ref"]).unwrap();
    let (port, admin) = (common::free_port(), common::free_port());
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{admin}\"\n\
         migration_copy_rate = 2000\n\n[[users]]\nname = \"app\"\npassword = \"secret\"\n{}",
        common::app_and_main(&servers)
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shardgate.toml");
    std::fs::write(&config, &text).unwrap();
    let _proxy = common::proxy_process_serving(&text, port, &[]).await;
    let url = format!("mysql://app:secret@127.0.0.1:{port}/app");
    let app = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let reference = Conn::new(Opts::from_url(&servers[2].url("ref")).unwrap())
        .await
        .unwrap();
    let (mut app, _) = seed(app, reference).await;
    let id = online(&mut app, "ALTER TABLE items ADD COLUMN extra INT").await;
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_shardgate"));
        cmd.args(["migration"])
            .args(args)
            .arg("--config")
            .arg(&config);
        testkit::output_within(&mut cmd, Duration::from_secs(120), "shardgate migration").unwrap()
    };
    let text_of = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    // Watched until it ends.
    let shown = tokio::task::block_in_place(|| cli(&["show", &id, "--watch"]));
    assert!(shown.status.success(), "{}", text_of(&shown));
    let out = text_of(&shown);
    assert!(
        out.contains("state:     complete") && out.contains("100.0%"),
        "{out}"
    );
    assert!(
        out.contains("-80") && out.contains("80-"),
        "each shard: {out}"
    );
    let listed = tokio::task::block_in_place(|| cli(&["list"]));
    let out = text_of(&listed);
    assert!(
        out.contains(&id) && out.contains("app.items") && out.contains("complete"),
        "{out}"
    );
    // A completed migration is not cancelled but reverted.
    let cancel = tokio::task::block_in_place(|| cli(&["cancel", &id]));
    assert!(!cancel.status.success());
    assert!(text_of(&cancel).contains("REVERT"), "{}", text_of(&cancel));
    let revert = tokio::task::block_in_place(|| cli(&["revert", &id]));
    assert!(revert.status.success(), "{}", text_of(&revert));
    let out = text_of(&tokio::task::block_in_place(|| cli(&["show", &id])));
    assert!(out.contains("state:     reverted"), "{out}");
    // The status page lists it.
    let page = tokio::task::block_in_place(|| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
        write!(
            s,
            "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).unwrap();
        page
    });
    assert!(
        page.contains("<h2>Migrations</h2>") && page.contains(&id),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ddl_on_the_table_mid_migration_stops_the_migration() {
    let s = setup_slow_copy().await;
    let (mut app, _) = seeded(&s).await;
    let id = online(&mut app, "ALTER TABLE items ADD COLUMN extra INT").await;
    copying(&mut app, &id).await;
    // Direct DDL, which the shadow would never see.
    app.query_drop("ALTER TABLE items ADD COLUMN other INT")
        .await
        .unwrap();
    let row = ended(&mut app, &id).await;
    assert_eq!(row[4], "failed", "{row:?}");
    assert!(row[11].contains("changed during the migration"), "{row:?}");
    let columns: Vec<String> = app
        .query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_NAME = 'items' ORDER BY ORDINAL_POSITION")
        .await
        .unwrap_or_default();
    assert!(!columns.iter().any(|c| c == "extra"), "{columns:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_migration_drops_its_shadows_and_leaves_the_table() {
    let s = setup_slow_copy().await;
    let (mut app, _) = seeded(&s).await;
    let id = online(&mut app, "ALTER TABLE items ADD COLUMN extra INT").await;
    copying(&mut app, &id).await;
    app.query_drop(format!("ALTER SHARDGATE MIGRATION '{id}' CANCEL"))
        .await
        .unwrap();
    assert_eq!(ended(&mut app, &id).await[4], "cancelled");
    for server in &s.servers[..2] {
        let mut shard = Conn::new(Opts::from_url(&server.url("app")).unwrap())
            .await
            .unwrap();
        let tables: Vec<String> = shard.query("SHOW TABLES").await.unwrap();
        assert_eq!(tables, ["items"], "no shadow table is left");
    }
    let count: Option<i64> = app.query_first("SELECT COUNT(*) FROM items").await.unwrap();
    assert_eq!(count, Some(ROWS));
}
