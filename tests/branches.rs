//! Schema branches and deploy requests on real shards writing row binlogs: a branch made with
//! sample rows is changed through its own user, a deploy request shows the diff and its lint,
//! and deploying it changes main's schema on every shard as online migrations while writers
//! keep writing, none of their writes failing or lost; reverting brings the old schema back
//! with every row. A change main made meanwhile that overlaps the branch's is a conflict, and a
//! drop of data is flagged. A deploy whose proxy is killed goes on when it starts again.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use shardgate::branch::{deploy, Data};

const ROWS: i64 = 2000;

/// Keyspace `app`'s VSchema on the branch: the config's, and table `orders`.
const ORDERS_VSCHEMA: &str = r#"vindexes.hash = { type = "hash" }
tables.items = { primary_vindex = { column = "id", vindex = "hash" } }
tables.orders = { primary_vindex = { column = "item_id", vindex = "hash" } }
"#;

struct Setup {
    servers: Vec<testkit::MariaDb>,
    proxy: shardgate::Running,
    /// The config, with the proxy's admin address, for the CLI.
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Keyspace `app` (table `items` sharded by id) on two servers, `main` (the proxy's records)
/// on a third; `items` filled with [`ROWS`] rows.
async fn setup() -> Setup {
    let servers =
        tokio::task::spawn_blocking(|| testkit::start_binlogged(3, &["app", "main"]).unwrap())
            .await
            .unwrap();
    // The addresses the proxy serves on, once it does, for the CLI.
    let text = |listen: &str, admin: &str| {
        config_text(
            &servers,
            &format!("listen = \"{listen}\"\nadmin = \"{admin}\"\nmigration_retention_s = 3600"),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shardgate.toml");
    std::fs::write(&config, text("127.0.0.1:0", "127.0.0.1:0")).unwrap();
    let loaded = vschema::load_config(&config).unwrap();
    let proxy = shardgate::start_from(&loaded, "127.0.0.1:0", Some(config.clone()))
        .await
        .unwrap();
    let (listen, admin) = (proxy.addr.to_string(), proxy.admin.unwrap().to_string());
    std::fs::write(&config, text(&listen, &admin)).unwrap();
    let mut app = connect(&proxy, "app", "secret").await;
    app.query_drop(
        "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL DEFAULT 0, \
         note VARCHAR(40) NOT NULL DEFAULT '', KEY kn (n))",
    )
    .await
    .unwrap();
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|id| format!("({id}, {}, 'row {id}')", id % 97))
            .collect();
        app.query_drop(format!(
            "INSERT INTO items (id, n, note) VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();
    }
    Setup {
        servers,
        proxy,
        config,
        _dir: dir,
    }
}

/// Runs the CLI on the setup's config: its standard output, or its error.
fn cli(s: &Setup, args: &[&str]) -> Result<String, String> {
    cli_on(&s.config, args)
}

use common::cli_on;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A config with `server` settings, user `app`, and [`common::app_and_main`]'s keyspaces.
fn config_text(servers: &[testkit::MariaDb], server: &str) -> String {
    format!(
        "[server]\n{server}\n\n[[users]]\nname = \"app\"\npassword = \"secret\"\n{}",
        common::app_and_main(servers)
    )
}

async fn connect(proxy: &shardgate::Running, user: &str, password: &str) -> Conn {
    let url = format!("mysql://{user}:{password}@{}/app", proxy.addr);
    Conn::new(Opts::from_url(&url).unwrap()).await.unwrap()
}

/// `items` as each shard of main (or of `database`) describes it, AUTO_INCREMENT aside.
async fn described(s: &Setup, database: &str) -> Vec<schemadiff::Schema> {
    let mut out = Vec::new();
    for server in &s.servers[..2] {
        let mut conn = Conn::new(Opts::from_url(&server.url(database)).unwrap())
            .await
            .unwrap();
        let row: Option<(String, String)> =
            conn.query_first("SHOW CREATE TABLE items").await.unwrap();
        out.push(schemadiff::Schema::parse([row.unwrap().1.as_str()]).unwrap());
    }
    out
}

async fn ids(conn: &mut Conn) -> Vec<i64> {
    conn.query("SELECT id FROM items ORDER BY id")
        .await
        .unwrap()
}

/// The request once it is no longer deploying (within three minutes).
async fn deployed(s: &Setup, id: u64) -> deploy::Request {
    for _ in 0..1800 {
        let request = deploy::show(&s.proxy.gate, id).await.unwrap();
        if request.state != "deploying" {
            return request;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deploy request {id} still deploying after three minutes");
}

/// Writers inserting and updating through main's user until told to stop: the ids whose
/// inserts were acknowledged, and the writes that failed.
fn writers(
    s: &Setup,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Vec<i64>, Vec<String>)>> {
    (0..4)
        .map(|w| {
            let (stop, addr) = (stop.clone(), s.proxy.addr);
            tokio::spawn(async move {
                let url = format!("mysql://app:secret@{addr}/app");
                let mut app = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
                let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
                let mut id = 1_000_000 + w;
                while !stop.load(Ordering::Relaxed) {
                    id += 4;
                    let insert = format!("INSERT INTO items (id, n, note) VALUES ({id}, 1, 'w')");
                    match app.query_drop(&insert).await {
                        Ok(()) => acknowledged.push(id),
                        Err(e) => failed.push(format!("{insert}: {e}")),
                    }
                    let update = format!("UPDATE items SET n = n + 1 WHERE id = {}", id % ROWS + 1);
                    if let Err(e) = app.query_drop(&update).await {
                        failed.push(format!("{update}: {e}"));
                    }
                }
                (acknowledged, failed)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_is_changed_deployed_under_writes_and_reverted() {
    let s = setup().await;
    let gate = &s.proxy.gate;
    let before = described(&s, "app").await;

    // 1. A branch with sample rows: at most 100, all of them main's.
    let dev = gate
        .branches
        .create(gate, "dev", Data::Sample(100))
        .await
        .unwrap();
    assert!(
        dev.user.starts_with("dev-") && dev.password.len() > 20,
        "{dev:?}"
    );
    let mut branch = connect(&s.proxy, &dev.user, &dev.password).await;
    let sampled = ids(&mut branch).await;
    assert!(
        !sampled.is_empty() && sampled.len() <= 100,
        "{}",
        sampled.len()
    );
    assert!(sampled.iter().all(|id| (1..=ROWS).contains(id)));
    let mut app = connect(&s.proxy, "app", "secret").await;

    // 2. Its schema changed through its own user, directly; main's stays.
    branch
        .query_drop(
            "ALTER TABLE items ADD COLUMN email VARCHAR(100) NOT NULL DEFAULT '' AFTER n, \
             ADD INDEX kemail (email), DROP INDEX kn",
        )
        .await
        .unwrap();
    let changed = described(&s, "app__dev").await;
    assert!(changed[0].tables["items"].column("email").is_some());
    assert_eq!(described(&s, "app").await, before);

    // A new table, sharded through the branch's own VSchema by a column of its own.
    branch
        .query_drop(
            "CREATE TABLE orders (id BIGINT NOT NULL PRIMARY KEY, item_id BIGINT NOT NULL, \
             qty INT NOT NULL)",
        )
        .await
        .unwrap();
    let vschema = gate.branches.vschema(gate, "dev", "app").await.unwrap();
    assert!(
        vschema.contains("items") && !vschema.contains("orders"),
        "{vschema}"
    );
    let wrong = ORDERS_VSCHEMA.replace("vindex = \"hash\" } }\n", "vindex = \"nope\" } }\n");
    let refused = gate.branches.set_vschema(gate, "dev", "app", &wrong).await;
    assert!(refused.unwrap_err().to_string().contains("nope"));
    gate.branches
        .set_vschema(gate, "dev", "app", ORDERS_VSCHEMA)
        .await
        .unwrap();
    branch
        .query_drop("INSERT INTO orders (id, item_id, qty) VALUES (1, 7, 3), (2, 8, 1)")
        .await
        .unwrap();
    let qty: Option<i64> = branch
        .query_first("SELECT qty FROM orders WHERE item_id = 7")
        .await
        .unwrap();
    assert_eq!(qty, Some(3));

    // Main in production: DDL sent to it is refused, a branch's is not.
    gate.branches.set_production(gate, true).await.unwrap();
    let refused = app
        .query_drop("ALTER TABLE items ADD COLUMN x INT")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("1235") && refused.contains("deploy-request"),
        "{refused}"
    );
    branch
        .query_drop("CREATE TABLE scratch (id INT PRIMARY KEY)")
        .await
        .unwrap();
    branch.query_drop("DROP TABLE scratch").await.unwrap();

    // 3. The deploy request: the diff and its lint.
    let request = deploy::create(gate, "dev").await.unwrap();
    assert_eq!(request.state, "open");
    assert!(request.conflicts.is_empty(), "{:?}", request.conflicts);
    let kinds: Vec<&str> = request.statements.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["vschema", "create", "alter"],
        "{:?}",
        request.statements
    );
    assert!(request.statements[0].sql.contains("tables.orders = "));
    assert!(request.statements[1]
        .sql
        .starts_with("CREATE TABLE `orders`"));
    let sql = [request.statements[2].sql.as_str()];
    for part in [
        "DROP INDEX `kn`",
        "ADD COLUMN `email` VARCHAR(100)",
        "AFTER `n`",
        "ADD KEY `kemail`",
    ] {
        assert!(sql[0].contains(part), "{part}: {sql:?}");
    }
    assert!(
        request.lint.iter().all(|l| l.severity != "error"),
        "{:?}",
        request.lint
    );

    // 4. Deployed under writers: main has the branch's schema on every shard, no write failed.
    let stop = Arc::new(AtomicBool::new(false));
    let running = writers(&s, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    deploy::deploy(gate, request.id).await.unwrap();
    let done = deployed(&s, request.id).await;
    assert_eq!(done.state, "complete", "{}", done.message);
    // Through an online migration, cut over.
    assert_eq!(done.migrations.len(), 1, "{done:?}");
    assert_eq!(done.progress.len(), 1, "{done:?}");
    assert_eq!(done.progress[0].state, "complete", "{done:?}");
    assert_eq!(done.progress[0].table, "items", "{done:?}");
    println!("{}; sampled {} rows", done.message, sampled.len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for w in running {
        let (ok, failed) = w.await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        acknowledged.extend(ok);
    }
    assert!(!acknowledged.is_empty());
    let after = described(&s, "app").await;
    for shard in &after {
        assert!(schemadiff::diff(shard, &changed[0]).is_empty(), "{shard:?}");
    }
    let stored = ids(&mut app).await;
    for id in (1..=ROWS).chain(acknowledged.iter().copied()) {
        assert!(
            stored.binary_search(&id).is_ok(),
            "row {id} is missing after the deploy"
        );
    }
    // Main routes orders by item_id now: an order lands where item 7 is.
    app.query_drop("INSERT INTO orders (id, item_id, qty) VALUES (10, 7, 5)")
        .await
        .unwrap();
    for server in &s.servers[..2] {
        let mut direct = Conn::new(Opts::from_url(&server.url("app")).unwrap())
            .await
            .unwrap();
        let item: Option<i64> = direct
            .query_first("SELECT COUNT(*) FROM items WHERE id = 7")
            .await
            .unwrap();
        let order: Option<i64> = direct
            .query_first("SELECT COUNT(*) FROM orders WHERE id = 10")
            .await
            .unwrap();
        assert_eq!(item, order, "port {}", server.port);
    }

    // 5. Reverted: the old schema, with every row, those written since included.
    app.query_drop("INSERT INTO items (id, n, note, email) VALUES (5000001, 1, 'after', 'a@b')")
        .await
        .unwrap();
    let reverted = deploy::revert(gate, request.id).await.unwrap();
    assert_eq!(reverted.state, "reverted");
    // orders is set aside, and the VSchema no longer names it.
    assert!(app
        .query_drop("INSERT INTO orders (id, item_id, qty) VALUES (11, 7, 5)")
        .await
        .is_err());
    let vschema = vschema::current_vschema(&s.config, "app").unwrap();
    assert!(!vschema.contains("orders"), "{vschema}");
    let back = described(&s, "app").await;
    for (shard, old) in back.iter().zip(&before) {
        assert!(schemadiff::diff(shard, old).is_empty(), "{shard:?}");
    }
    let stored = ids(&mut app).await;
    for id in (1..=ROWS).chain(acknowledged).chain([5000001]) {
        assert!(
            stored.binary_search(&id).is_ok(),
            "row {id} is missing after the revert"
        );
    }
    s.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_drops_of_data_are_reported() {
    let s = setup().await;
    let gate = &s.proxy.gate;
    let mut app = connect(&s.proxy, "app", "secret").await;

    // The branch and main change the same column, each its own way.
    let made = json(&cli(&s, &["branch", "create", "one", "--format", "json"]).unwrap());
    let (user, password) = (
        made["user"].as_str().unwrap(),
        made["password"].as_str().unwrap(),
    );
    let mut branch = connect(&s.proxy, user, password).await;
    // Another proxy on the same records.
    let mut loaded = vschema::load_config(&s.config).unwrap();
    loaded.server.admin = None;
    let other = shardgate::start_from(&loaded, "127.0.0.1:0", None)
        .await
        .unwrap();
    assert!(ids(&mut branch).await.is_empty());
    branch
        .query_drop("ALTER TABLE items MODIFY note VARCHAR(50) NOT NULL DEFAULT ''")
        .await
        .unwrap();
    app.query_drop("ALTER TABLE items MODIFY note VARCHAR(80) NOT NULL DEFAULT ''")
        .await
        .unwrap();
    let request = json(&cli(&s, &["deploy-request", "create", "one", "--format", "json"]).unwrap());
    let conflicts = request["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{request}");
    assert!(
        conflicts[0].as_str().unwrap().contains("column note"),
        "{request}"
    );
    let id = request["id"].as_u64().unwrap().to_string();
    let refused = cli(&s, &["deploy-request", "deploy", &id]).unwrap_err();
    assert!(refused.contains("conflicts with main"), "{refused}");
    let shown = cli(&s, &["deploy-request", "show", &id]).unwrap();
    assert!(
        shown.contains("open") && shown.contains("conflicts (it cannot deploy)"),
        "{shown}"
    );
    cli(&s, &["deploy-request", "close", &id]).unwrap();
    let listed = json(&cli(&s, &["deploy-request", "list", "--format", "json"]).unwrap());
    assert_eq!(listed[0]["state"], "closed", "{listed}");

    // A branch made now, with every row, drops a column: flagged, as the rows lose it.
    let two = gate.branches.create(gate, "two", Data::Full).await.unwrap();
    let mut branch = connect(&s.proxy, &two.user, &two.password).await;
    assert_eq!(ids(&mut branch).await.len(), ROWS as usize);
    // The other proxy serves it too, within a few seconds.
    let url = format!("mysql://{}:{}@{}/app", two.user, two.password, other.addr);
    let mut elsewhere = None;
    for _ in 0..100 {
        if let Ok(conn) = Conn::new(Opts::from_url(&url).unwrap()).await {
            elsewhere = Some(conn);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut elsewhere = elsewhere.expect("the other proxy serves branch two within 10 s");
    assert_eq!(ids(&mut elsewhere).await.len(), ROWS as usize);
    branch
        .query_drop("ALTER TABLE items DROP COLUMN note")
        .await
        .unwrap();
    let request = deploy::create(gate, "two").await.unwrap();
    assert!(request.conflicts.is_empty(), "{:?}", request.conflicts);
    let lint: Vec<&str> = request.lint.iter().map(|l| l.rule.as_str()).collect();
    assert!(
        lint.contains(&"drop-column-with-rows"),
        "{:?}",
        request.lint
    );
    assert!(
        request
            .lint
            .iter()
            .any(|l| l.message.contains(&format!("{ROWS} rows"))),
        "{:?}",
        request.lint
    );
    // Moving a table with rows to another vindex column is an error: the deploy is refused.
    let moved = ORDERS_VSCHEMA.replace("column = \"id\"", "column = \"n\"");
    gate.branches
        .set_vschema(gate, "two", "app", &moved)
        .await
        .unwrap();
    let request = deploy::create(gate, "two").await.unwrap();
    let error = request.lint.iter().find(|l| l.severity == "error");
    assert_eq!(
        error.map(|l| l.rule.as_str()),
        Some("vindex-change"),
        "{:?}",
        request.lint
    );
    let refused = deploy::deploy(gate, request.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("primary vindex"), "{refused}");

    // Deleted, a branch's databases and users are gone.
    let listed = json(&cli(&s, &["branch", "list", "--format", "json"]).unwrap());
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["tables"]["app"][0], "items", "{listed}");
    cli(&s, &["branch", "delete", "one"]).unwrap();
    // `shardgate shell` opens the mariadb client on a branch (here reading from a pipe).
    let shell = tokio::task::block_in_place(|| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shardgate"))
            .args(["shell", "two", "--keyspace", "app", "--config"])
            .arg(&s.config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"SELECT COUNT(*) FROM items;\n").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    });
    let said = String::from_utf8_lossy(&shell.stdout);
    assert!(
        shell.status.success() && said.contains(&ROWS.to_string()),
        "{said}"
    );
    let url = format!("mysql://{user}:{password}@{}/app", s.proxy.addr);
    assert!(Conn::new(Opts::from_url(&url).unwrap()).await.is_err());
    let mut direct = Conn::new(Opts::from_url(&s.servers[0].url("app")).unwrap())
        .await
        .unwrap();
    let databases: Vec<String> = direct.query("SHOW DATABASES").await.unwrap();
    assert!(
        !databases.contains(&"app__one".to_string()),
        "{databases:?}"
    );
    assert!(databases.contains(&"app__two".to_string()), "{databases:?}");
    other.stop().await;
    s.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_goes_on_after_its_proxy_is_killed() {
    let servers =
        tokio::task::spawn_blocking(|| testkit::start_binlogged(3, &["app", "main"]).unwrap())
            .await
            .unwrap();
    let (port, admin) = (common::free_port(), common::free_port());
    // A copy slow enough (500 rows/s on each shard) to be caught in the middle.
    let text = config_text(
        &servers,
        &format!(
            "listen = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{admin}\"\nmigration_copy_rate = 500"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shardgate.toml");
    std::fs::write(&config, &text).unwrap();
    let run = |args: &[&str]| -> serde_json::Value {
        let args: Vec<&str> = args.iter().copied().chain(["--format", "json"]).collect();
        json(&cli_on(&config, &args).unwrap_or_else(|e| panic!("{args:?}: {e}")))
    };
    let proxy = common::proxy_process_serving(&text, port, &[]).await;
    let url =
        |user: &str, password: &str| format!("mysql://{user}:{password}@127.0.0.1:{port}/app");
    let mut app = Conn::new(Opts::from_url(&url("app", "secret")).unwrap())
        .await
        .unwrap();
    app.query_drop("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL)")
        .await
        .unwrap();
    for start in (0..5000).step_by(500) {
        let values: Vec<String> = (start..start + 500)
            .map(|id| format!("({id}, 1)"))
            .collect();
        app.query_drop(format!(
            "INSERT INTO items (id, n) VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();
    }
    let made = run(&["branch", "create", "extra"]);
    let (user, password) = (
        made["user"].as_str().unwrap(),
        made["password"].as_str().unwrap(),
    );
    let mut branch = Conn::new(Opts::from_url(&url(user, password)).unwrap())
        .await
        .unwrap();
    branch
        .query_drop("ALTER TABLE items ADD COLUMN extra INT NOT NULL DEFAULT 7")
        .await
        .unwrap();
    drop(branch);
    let id = run(&["deploy-request", "create", "extra"])["id"]
        .as_u64()
        .unwrap()
        .to_string();
    cli_on(&config, &["deploy-request", "deploy", &id]).unwrap();
    // Killed while the migration copies.
    let copying = |r: &serde_json::Value| r["progress"][0]["rows_copied"].as_u64().unwrap_or(0) > 0;
    for _ in 0..300 {
        if copying(&run(&["deploy-request", "show", &id])) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = run(&["deploy-request", "show", &id]);
    assert!(copying(&shown) && shown["state"] == "deploying", "{shown}");
    drop(app);
    drop(proxy);

    // Started again, the proxy finishes the deploy.
    let _proxy = common::proxy_process_serving(&text, port, &[]).await;
    let mut ended = serde_json::Value::Null;
    for _ in 0..1800 {
        ended = run(&["deploy-request", "show", &id]);
        if ended["state"] != "deploying" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ended["state"], "complete", "{ended}");
    let mut app = Conn::new(Opts::from_url(&url("app", "secret")).unwrap())
        .await
        .unwrap();
    let (rows, extra): (i64, i64) = app
        .query_first("SELECT COUNT(*), CAST(SUM(extra) AS SIGNED) FROM items")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rows, extra), (5000, 35000));
}
