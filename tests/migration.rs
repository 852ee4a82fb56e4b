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
    setup_keeping(3600).await
}

/// Old tables kept `retention` seconds after a cut-over.
async fn setup_keeping(retention: u64) -> Setup {
    let servers = testkit::start_binlogged(3, &["app", "main", "ref"]).unwrap();
    let config = config_serving(&format!(
        r#"
[keyspaces.app]
sharded = true
shards = [{{ name = "-80", primary = "{a}" }}, {{ name = "80-", primary = "{b}" }}]
vindexes.hash = {{ type = "hash" }}
tables.items = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}

[keyspaces.main]
sharded = false
shards = [{{ name = "0", primary = "{m}" }}]
"#,
        a = servers[0].url("app"),
        b = servers[1].url("app"),
        m = servers[2].url("main"),
    ));
    let mut config = config;
    config.server.migration_retention_s = retention;
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    Setup { servers, proxy }
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
        let rows: Vec<Row> = app.query("SHOW SHARDGATE MIGRATIONS").await.unwrap();
        let row = rows
            .into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| mysql_async::from_value::<Option<String>>(v).unwrap_or_default())
                    .collect::<Vec<_>>()
            })
            .find(|r| r[0] == id)
            .expect("the migration is listed");
        if !matches!(row[4].as_str(), "queued" | "running") {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("migration {id} did not end within two minutes");
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
    let mut app = client(&s.proxy, Some("app")).await;
    let mut reference = reference(&s).await;
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
    // Unknown strategies are refused as MySQL refuses a wrong value.
    let wrong = app
        .query_drop("SET @@ddl_strategy = 'sometimes'")
        .await
        .unwrap_err();
    assert_eq!(common::server_code(&wrong), Some(1231), "{wrong}");
}

/// The migrations' table and its rows through the proxy and on the reference.
async fn seeded(s: &Setup) -> (Conn, Conn) {
    let mut app = client(&s.proxy, Some("app")).await;
    let mut reference = reference(s).await;
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
    let s = setup_keeping(2).await;
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
