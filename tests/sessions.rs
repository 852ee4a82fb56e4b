//! Session settings follow the session onto whichever pooled backend connection serves it.

mod common;

use common::*;
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_survive_pooling_and_do_not_leak() {
    let proxy = proxy().await;
    let mut utc = client(&proxy, Some("two")).await;
    let mut plus5 = client(&proxy, Some("two")).await;
    let mut plain = client(&proxy, Some("two")).await;
    plain
        .query_drop(
            "CREATE TABLE IF NOT EXISTS txt (id BIGINT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
        )
        .await
        .unwrap();
    plain
        .query_drop("REPLACE INTO txt (id, v) VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        .await
        .unwrap();
    utc.query_drop("SET time_zone = '+00:00', sql_mode = 'ANSI_QUOTES'")
        .await
        .unwrap();
    plus5
        .query_drop("SET SESSION time_zone = '+05:00'")
        .await
        .unwrap();
    plus5
        .query_drop("SET @@session.sql_mode = 'NO_ZERO_DATE'")
        .await
        .unwrap();
    for _ in 0..20 {
        // Interleaved on the same pools, each sees its own settings, on table-less selects and
        // on routed and scattered statements alike.
        let tz: Option<String> = utc.query_first("SELECT @@time_zone").await.unwrap();
        assert_eq!(tz.as_deref(), Some("+00:00"));
        let tz: Option<String> = plus5
            .query_first("SELECT @@session.time_zone")
            .await
            .unwrap();
        assert_eq!(tz.as_deref(), Some("+05:00"));
        let mode: Option<String> = utc
            .query_first("SELECT @@sql_mode FROM txt LIMIT 1")
            .await
            .unwrap();
        assert_eq!(mode.as_deref(), Some("ANSI_QUOTES"));
        let mode: Option<String> = plus5.query_first("SELECT @@sql_mode").await.unwrap();
        assert_eq!(mode.as_deref(), Some("NO_ZERO_DATE"));
        let offset: Option<i64> = plus5
            .query_first("SELECT TIMESTAMPDIFF(HOUR, UTC_TIMESTAMP(), NOW())")
            .await
            .unwrap();
        assert_eq!(offset, Some(5));
        // A session that set nothing gets the server's defaults: nothing leaked into the pool.
        let tz: Option<String> = plain.query_first("SELECT @@time_zone").await.unwrap();
        assert_eq!(tz.as_deref(), Some("SYSTEM"));
    }
    // ANSI_QUOTES really applies: "x" is an identifier there, a string elsewhere.
    expect_code(
        utc.query_drop("SELECT \"no_such_column\" FROM txt").await,
        1054,
    );
    let s: Option<String> = plain.query_first("SELECT \"a string\"").await.unwrap();
    assert_eq!(s.as_deref(), Some("a string"));

    // User variables are evaluated once and carried.
    utc.query_drop("SET @answer = 41, @greeting = CONCAT('hi', ' there')")
        .await
        .unwrap();
    let v: Option<i64> = utc.query_first("SELECT @answer + 1").await.unwrap();
    assert_eq!(v, Some(42));
    let g: Option<String> = utc.query_first("SELECT @greeting").await.unwrap();
    assert_eq!(g.as_deref(), Some("hi there"));
    let none: Option<Option<i64>> = plain.query_first("SELECT @answer").await.unwrap();
    assert_eq!(none, Some(None), "user variables stay in their session");

    // Several statements in one query: one result each, in order.
    let mut results = utc
        .query_iter("SET @a = 41; SELECT @a + 1; SELECT id FROM txt WHERE id IN (1, 2) ORDER BY id")
        .await
        .unwrap();
    let set: Vec<i64> = results.collect().await.unwrap();
    let answer: Vec<i64> = results.collect().await.unwrap();
    let ids: Vec<i64> = results.collect().await.unwrap();
    drop(results);
    assert_eq!((set, answer, ids), (vec![], vec![42], vec![1, 2]));
    let mut results = utc.query_iter("SELECT 1; SELEC 2; SELECT 3").await.unwrap();
    let one: Vec<i64> = results.collect().await.unwrap();
    assert_eq!(one, [1]);
    // It stops at the first error.
    expect_code(results.collect::<i64>().await, 1064);
    drop(results);
    let after: Option<i64> = utc.query_first("SELECT 4").await.unwrap();
    assert_eq!(after, Some(4));

    // COM_RESET_CONNECTION forgets the session's variables.
    plain
        .query_drop("SET @mine = 1, time_zone = '+07:00'")
        .await
        .unwrap();
    plain.reset().await.unwrap();
    let none: Option<Option<i64>> = plain.query_first("SELECT @mine").await.unwrap();
    assert_eq!(none, Some(None));
    let tz: Option<String> = plain.query_first("SELECT @@time_zone").await.unwrap();
    assert_eq!(tz.as_deref(), Some("SYSTEM"));

    // Settings apply inside transactions too.
    plus5.query_drop("BEGIN").await.unwrap();
    let tz: Option<String> = plus5
        .query_first("SELECT @@time_zone FROM txt WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(tz.as_deref(), Some("+05:00"));
    plus5.query_drop("COMMIT").await.unwrap();

    // Unknown variables get MySQL's own error; GLOBAL is refused.
    let err = utc
        .query_drop("SET no_such_variable = 1")
        .await
        .unwrap_err();
    assert_eq!(server_code(&err), Some(1193), "{err}");
    let err = utc
        .query_drop("SET GLOBAL max_connections = 10")
        .await
        .unwrap_err();
    assert_eq!(server_code(&err), Some(1235), "{err}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeting_a_shard_and_show_commands() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    c.query_drop("CREATE TABLE IF NOT EXISTS txt (id BIGINT PRIMARY KEY, v VARCHAR(20) NOT NULL)")
        .await
        .unwrap();
    c.query_drop(
        "REPLACE INTO txt (id, v) VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four')",
    )
    .await
    .unwrap();

    // USE ks:shard sends everything to that shard as written (no routing).
    c.query_drop("USE `two:80-`").await.unwrap();
    let mut here: Vec<i64> = c.query("SELECT id FROM txt WHERE id <= 4").await.unwrap();
    here.sort();
    let mut direct = shard_conn("two", "80-").await;
    let mut want: Vec<i64> = direct
        .query("SELECT id FROM txt WHERE id <= 4")
        .await
        .unwrap();
    want.sort();
    assert_eq!(here, want, "only the targeted shard's rows");
    let db: Option<String> = c.query_first("SELECT DATABASE()").await.unwrap();
    assert_eq!(db.as_deref(), Some("two"));
    c.query_drop("USE two").await.unwrap();
    let all: Vec<i64> = c.query("SELECT id FROM txt WHERE id <= 4").await.unwrap();
    assert_eq!(all.len(), 4, "back to routing over every shard");
    // A keyspace without replicas: its reads under @replica go to the primaries.
    c.query_drop("USE two@replica").await.unwrap();
    let all: Vec<i64> = c.query("SELECT id FROM txt WHERE id <= 4").await.unwrap();
    assert_eq!(all.len(), 4, "@replica without replicas");
    let err = c.query_drop("USE two@rdonly").await.unwrap_err();
    assert_eq!(server_code(&err), Some(1235));
    c.query_drop("USE two").await.unwrap();
    let err = c.query_drop("USE `two:90-`").await.unwrap_err();
    assert_eq!(server_code(&err), Some(1049));

    let shards: Vec<(String, String, String, String, String, String)> =
        c.query("SHOW SHARDGATE SHARDS").await.unwrap();
    assert_eq!(shards.len(), 9);
    assert!(shards.iter().all(|s| s.4 == "serving"), "{shards:?}");
    assert!(
        shards.iter().all(|s| s.5.is_empty()),
        "no replicas: {shards:?}"
    );
    assert!(shards
        .iter()
        .any(|s| s.0 == "four" && s.1 == "40-80" && s.2 == "40-80"));
    let vschema: Vec<(String, String, String, String, String)> =
        c.query("SHOW SHARDGATE VSCHEMA").await.unwrap();
    assert!(vschema
        .iter()
        .any(|r| r.0 == "two" && r.1 == "users" && r.2 == "sharded" && r.3 == "user_id"));
    let port: Vec<(String, String)> = c.query("SHOW VARIABLES LIKE 'port'").await.unwrap();
    assert_eq!(
        port,
        [("port".to_string(), proxy.addr.port().to_string())],
        "the proxy's port, not a shard's"
    );
    let mode: Vec<(String, String)> = c
        .query("SHOW SESSION VARIABLES LIKE 'sql_mode'")
        .await
        .unwrap();
    assert_eq!(mode.len(), 1);
    proxy.stop().await;
}

/// Id, User, Host, db, Command, Time, State, Info.
type ProcessRow = (
    u32,
    String,
    String,
    Option<String>,
    String,
    i64,
    String,
    Option<String>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processlist_and_kill() {
    let proxy = proxy().await;
    let mut admin = client(&proxy, Some("two")).await;
    admin
        .query_drop(
            "CREATE TABLE IF NOT EXISTS txt (id BIGINT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
        )
        .await
        .unwrap();
    admin
        .query_drop("REPLACE INTO txt (id, v) VALUES (7, 'seven')")
        .await
        .unwrap();

    // KILL QUERY stops a running statement on the backend; the session goes on.
    let mut sleeper = client(&proxy, Some("two")).await;
    let sleeper_id: Option<u32> = sleeper.query_first("SELECT CONNECTION_ID()").await.unwrap();
    let sleeper_id = sleeper_id.unwrap();
    let started = std::time::Instant::now();
    let task = tokio::spawn(async move {
        let r: Result<Option<i64>, _> = sleeper.query_first("SELECT SLEEP(30)").await;
        (r, sleeper)
    });
    loop {
        let list: Vec<ProcessRow> = admin.query("SHOW PROCESSLIST").await.unwrap();
        if list.iter().any(|p| {
            p.0 == sleeper_id && p.4 == "Query" && p.7.as_deref() == Some("SELECT SLEEP(30)")
        }) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the sleeper never showed up: {list:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Give the statement time to reach its backend before killing it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    admin
        .query_drop(format!("KILL QUERY {sleeper_id}"))
        .await
        .unwrap();
    let (result, mut sleeper) = task.await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "killed early"
    );
    // SLEEP() interrupted returns 1 (MariaDB may report the interruption as 1317 instead).
    match result {
        Ok(Some(1)) => {}
        other => {
            expect_code(other, 1317);
        }
    }
    // The shard's query is gone from its processlist, not merely abandoned by the proxy.
    for shard in ["-80", "80-"] {
        let mut direct = shard_conn("two", shard).await;
        let sleeping: Option<u64> = direct
            .query_first(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(30)'",
            )
            .await
            .unwrap();
        assert_eq!(sleeping, Some(0), "shard {shard} still runs SLEEP(30)");
    }
    let one: Option<i64> = sleeper.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1), "KILL QUERY keeps the connection");

    // KILL closes the connection and rolls its transaction back at once, even while idle.
    let mut victim = client(&proxy, Some("two")).await;
    let victim_id: Option<u32> = victim.query_first("SELECT CONNECTION_ID()").await.unwrap();
    victim.query_drop("BEGIN").await.unwrap();
    victim
        .query_drop("UPDATE txt SET v = 'victim' WHERE id = 7")
        .await
        .unwrap();
    admin
        .query_drop(format!("KILL {}", victim_id.unwrap()))
        .await
        .unwrap();
    admin
        .query_drop("UPDATE txt SET v = 'after kill' WHERE id = 7")
        .await
        .unwrap();
    let v: Option<String> = admin
        .query_first("SELECT v FROM txt WHERE id = 7")
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("after kill"));
    // The killed connection is closed, after an unsolicited 1927 (Connection was killed)
    // that the driver reads as the answer to its next statement, or as the end.
    match victim.query_drop("SELECT 1").await {
        Err(e) if server_code(&e) == Some(1927) => {}
        other => expect_closed(other),
    }

    let err = admin.query_drop("KILL 999999").await.unwrap_err();
    assert_eq!(server_code(&err), Some(1094));
    proxy.stop().await;
}

/// Whether a transaction of `c` sees a row change that another client commits while it runs.
async fn sees_commits_within(c: &mut mysql_async::Conn, writer: &mut mysql_async::Conn) -> bool {
    c.query_drop("BEGIN").await.unwrap();
    let before: Option<i64> = c.query_first("SELECT SUM(v) FROM iso").await.unwrap();
    writer.query_drop("UPDATE iso SET v = v + 1").await.unwrap();
    let after: Option<i64> = c.query_first("SELECT SUM(v) FROM iso").await.unwrap();
    c.query_drop("COMMIT").await.unwrap();
    before != after
}

/// Isolation level and access mode as tools set them (Django sends `SET SESSION TRANSACTION
/// ISOLATION LEVEL READ COMMITTED` when it connects): with SESSION for every transaction, on
/// whichever pooled connections serve them; without a scope, for the next transaction only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_isolation_and_access_mode() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("four")).await;
    let mut writer = client(&proxy, Some("four")).await;
    let mut plain = client(&proxy, Some("four")).await;
    c.query_drop("DROP TABLE IF EXISTS iso").await.unwrap();
    c.query_drop("CREATE TABLE iso (id BIGINT PRIMARY KEY, v INT NOT NULL)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO iso VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0)")
        .await
        .unwrap();
    assert!(
        !sees_commits_within(&mut c, &mut writer).await,
        "REPEATABLE READ by default"
    );

    c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(
            sees_commits_within(&mut c, &mut writer).await,
            "READ COMMITTED"
        );
        // Another session on the same pools keeps the default.
        assert!(!sees_commits_within(&mut plain, &mut writer).await);
    }
    let level: Option<(String, String)> = c
        .query_first("SELECT @@transaction_isolation, @@tx_isolation")
        .await
        .unwrap();
    assert_eq!(
        level,
        Some(("READ-COMMITTED".to_string(), "READ-COMMITTED".to_string()))
    );

    // The variable form, and the next transaction alone.
    c.query_drop("SET @@session.transaction_isolation = 'REPEATABLE-READ'")
        .await
        .unwrap();
    assert!(!sees_commits_within(&mut c, &mut writer).await);
    c.query_drop("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    assert!(
        sees_commits_within(&mut c, &mut writer).await,
        "the next transaction"
    );
    assert!(
        !sees_commits_within(&mut c, &mut writer).await,
        "only the next one"
    );
    let e = c
        .query_drop("SET tx_isolation = 'SOMETIMES'")
        .await
        .unwrap_err();
    assert_eq!(server_code(&e), Some(1231), "{e}");

    // READ ONLY, for the next transaction, then for the session.
    c.query_drop("SET TRANSACTION READ ONLY").await.unwrap();
    c.query_drop("BEGIN").await.unwrap();
    let e = c.query_drop("UPDATE iso SET v = 0").await.unwrap_err();
    assert_eq!(server_code(&e), Some(1792), "{e}");
    c.query_drop("ROLLBACK").await.unwrap();
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("UPDATE iso SET v = 0").await.unwrap();
    // Characteristics cannot change inside a transaction.
    let e = c.query_drop("SET TRANSACTION READ ONLY").await.unwrap_err();
    assert_eq!(server_code(&e), Some(1568), "{e}");
    c.query_drop("COMMIT").await.unwrap();
    c.query_drop("SET SESSION TRANSACTION READ ONLY")
        .await
        .unwrap();
    let read_only: Option<i64> = c
        .query_first("SELECT @@transaction_read_only")
        .await
        .unwrap();
    assert_eq!(read_only, Some(1));
    let e = c
        .query_drop("UPDATE iso SET v = 1 WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(server_code(&e), Some(1792), "{e}");
    let total: Option<i64> = plain.query_first("SELECT SUM(v) FROM iso").await.unwrap();
    assert_eq!(total, Some(0));

    // START TRANSACTION WITH CONSISTENT SNAPSHOT, which the parser does not know.
    plain
        .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .unwrap();
    plain.query_drop("COMMIT").await.unwrap();
    proxy.stop().await;
}

/// Session functions mixed with expressions a shard evaluates (`SELECT DATABASE(),
/// CONNECTION_ID() > 0`, as drivers and ORMs send): the session's values go in as literals, and
/// each column is named by the client's text, as MySQL names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_functions_inside_expressions() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    let sql = "SELECT DATABASE(), CONNECTION_ID() > 0, VERSION() LIKE '%shardgate%', \
               IFNULL(DATABASE(), 'none') AS db, CONCAT(DATABASE(), '!')";
    let mut result = c.query_iter(sql).await.unwrap();
    let names: Vec<String> = result
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "DATABASE()",
            "CONNECTION_ID() > 0",
            "VERSION() LIKE '%shardgate%'",
            "db",
            "CONCAT(DATABASE(), '!')"
        ]
    );
    let rows: Vec<(String, i64, i64, String, String)> = result.collect().await.unwrap();
    drop(result);
    assert_eq!(
        rows,
        [(
            "two".to_string(),
            1,
            1,
            "two".to_string(),
            "two!".to_string()
        )]
    );
    // No database selected: DATABASE() is NULL, here and in FROM DUAL.
    let mut none = client(&proxy, None).await;
    let row: Option<(String, i64)> = none
        .query_first("SELECT IFNULL(DATABASE(), 'none'), 1 FROM DUAL")
        .await
        .unwrap();
    assert_eq!(row, Some(("none".to_string(), 1)));
    proxy.stop().await;
}

/// FOUND_ROWS() after SQL_CALC_FOUND_ROWS (counted over every shard) and after a plain SELECT;
/// LAST_INSERT_ID(expr) sets the session's value; SELECT ... INTO @v sets user variables from
/// one row, warns on none and fails on several, as MySQL does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_rows_last_insert_id_and_select_into() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("four")).await;
    c.query_drop("DROP TABLE IF EXISTS counted").await.unwrap();
    c.query_drop("CREATE TABLE counted (id INT PRIMARY KEY, grp INT, name VARCHAR(10))")
        .await
        .unwrap();
    let values: Vec<String> = (1..=30)
        .map(|i| format!("({i}, {}, 'n{i}')", i % 3))
        .collect();
    c.query_drop(format!("INSERT INTO counted VALUES {}", values.join(", ")))
        .await
        .unwrap();
    let page: Vec<i64> = c
        .query("SELECT SQL_CALC_FOUND_ROWS id FROM counted WHERE grp = 1 ORDER BY id LIMIT 3")
        .await
        .unwrap();
    assert_eq!(page, [1, 4, 7]);
    assert_eq!(ask(&mut c, "SELECT FOUND_ROWS()").await, Some(10));
    // Twice the same text: the second is not served a plan that skips the count.
    let _: Vec<i64> = c
        .query("SELECT SQL_CALC_FOUND_ROWS id FROM counted WHERE grp = 2 ORDER BY id LIMIT 3")
        .await
        .unwrap();
    assert_eq!(ask(&mut c, "SELECT FOUND_ROWS()").await, Some(10));
    let _: Vec<i64> = c
        .query("SELECT SQL_CALC_FOUND_ROWS grp FROM counted GROUP BY grp LIMIT 1")
        .await
        .unwrap();
    assert_eq!(ask(&mut c, "SELECT FOUND_ROWS()").await, Some(3));
    let _: Vec<i64> = c
        .query("SELECT id FROM counted WHERE id < 6")
        .await
        .unwrap();
    assert_eq!(ask(&mut c, "SELECT FOUND_ROWS() + 0").await, Some(5));

    assert_eq!(ask(&mut c, "SELECT LAST_INSERT_ID(40 + 2)").await, Some(42));
    assert_eq!(ask(&mut c, "SELECT LAST_INSERT_ID()").await, Some(42));

    c.query_drop("SELECT name, grp INTO @name, @grp FROM counted WHERE id = 14")
        .await
        .unwrap();
    let vars: Option<(String, i64)> = c.query_first("SELECT @name, @grp").await.unwrap();
    assert_eq!(vars, Some(("n14".to_string(), 2)));
    // The variables reach every shard's statements.
    assert_eq!(
        ask(&mut c, "SELECT COUNT(*) FROM counted WHERE grp = @grp").await,
        Some(10)
    );
    c.query_drop("SELECT name INTO @name FROM counted WHERE id = 99")
        .await
        .unwrap();
    let warnings: Vec<(String, i64, String)> = c.query("SHOW WARNINGS").await.unwrap();
    assert_eq!(warnings.first().map(|w| w.1), Some(1329), "{warnings:?}");
    let kept: Option<String> = c.query_first("SELECT @name").await.unwrap();
    assert_eq!(kept.as_deref(), Some("n14"));
    let e = c
        .query_drop("SELECT name INTO @name FROM counted WHERE grp = 0")
        .await
        .unwrap_err();
    assert_eq!(server_code(&e), Some(1172), "{e}");
    proxy.stop().await;
}

/// EXPLAIN is a shard's own: the owning shard's for a statement on one shard, any one shard's for
/// a statement that runs whole on each; a plan of several steps is refused, naming VEXPLAIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_asks_a_shard() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    c.query_drop("DROP TABLE IF EXISTS iso").await.unwrap();
    c.query_drop("CREATE TABLE iso (id BIGINT PRIMARY KEY, v INT NOT NULL)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO iso VALUES (1, 1), (2, 2), (3, 3), (4, 4)")
        .await
        .unwrap();
    for sql in [
        "EXPLAIN SELECT * FROM iso WHERE id = 3",
        "EXPLAIN SELECT v FROM iso ORDER BY v",
        "DESCRIBE UPDATE iso SET v = 0 WHERE id = 1",
    ] {
        let rows: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
        let table: Option<String> = rows.first().and_then(|r| r.get("table"));
        assert_eq!(table.as_deref(), Some("iso"), "{sql}");
    }
    let json: Option<String> = c
        .query_first("EXPLAIN FORMAT=JSON SELECT * FROM iso WHERE id = 3")
        .await
        .unwrap();
    assert!(
        json.as_deref()
            .is_some_and(|j| j.contains("\"table_name\": \"iso\"")),
        "{json:?}"
    );
    let e = c
        .query_drop("EXPLAIN SELECT a.v FROM iso a JOIN iso b ON b.v = a.id")
        .await
        .unwrap_err();
    assert_eq!(server_code(&e), Some(1235), "{e}");
    assert!(e.to_string().contains("VEXPLAIN"), "{e}");
    // Over several shards: one shard's EXPLAIN, with a note that the plan is shardgate's.
    let rows: Vec<mysql_async::Row> = c
        .query("EXPLAIN SELECT v FROM iso ORDER BY v")
        .await
        .unwrap();
    assert!(!rows.is_empty());
    let notes: Vec<(String, i64, String)> = c.query("SHOW WARNINGS").await.unwrap();
    assert!(
        notes.len() == 1 && notes[0].0 == "Note" && notes[0].2.contains("VEXPLAIN"),
        "{notes:?}"
    );
    let _: Vec<mysql_async::Row> = c
        .query("EXPLAIN SELECT * FROM iso WHERE id = 3")
        .await
        .unwrap();
    let notes: Vec<(String, i64, String)> = c.query("SHOW WARNINGS").await.unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    // VEXPLAIN ALL: shardgate's plan, then each shard statement with a shard's EXPLAIN of it.
    let lines: Vec<String> = c
        .query("VEXPLAIN ALL SELECT a.v FROM iso a JOIN iso b ON b.v = a.id")
        .await
        .unwrap();
    assert!(lines[0].starts_with("Join"), "{lines:#?}");
    let explained: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("EXPLAIN on two: "))
        .collect();
    assert_eq!(explained.len(), 2, "{lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("table=a") || l.contains("table=b"))
            .count(),
        2,
        "{lines:#?}"
    );
    proxy.stop().await;
}

/// SHOW STATUS counts the proxy's own clients and statements under MySQL's names; SHOW ENGINES,
/// PLUGINS, CHARSET and COLLATION describe the servers behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_server_descriptions() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    let _others = [
        client(&proxy, Some("two")).await,
        client(&proxy, None).await,
    ];
    let status = |rows: Vec<(String, String)>, name: &str| -> u64 {
        rows.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} in {rows:?}"))
            .1
            .parse()
            .unwrap()
    };
    let rows: Vec<(String, String)> = c
        .query("SHOW STATUS LIKE 'Threads_connected'")
        .await
        .unwrap();
    assert_eq!(status(rows, "Threads_connected"), 3);
    let questions = |rows| status(rows, "Questions");
    let before = questions(c.query("SHOW GLOBAL STATUS").await.unwrap());
    for _ in 0..5 {
        c.query_drop("SELECT 1").await.unwrap();
    }
    let after = questions(c.query("SHOW GLOBAL STATUS").await.unwrap());
    assert_eq!(after, before + 6, "five selects and one SHOW STATUS");

    let engines: Vec<mysql_async::Row> = c.query("SHOW ENGINES").await.unwrap();
    assert!(engines
        .iter()
        .any(|r| r.get::<String, _>(0).as_deref() == Some("InnoDB")));
    let charsets: Vec<mysql_async::Row> = c.query("SHOW CHARSET LIKE 'utf8mb4'").await.unwrap();
    assert_eq!(charsets.len(), 1);
    let collations: Vec<mysql_async::Row> =
        c.query("SHOW COLLATION LIKE 'utf8mb4_bin'").await.unwrap();
    assert_eq!(collations.len(), 1);
    let plugins: Vec<mysql_async::Row> = c.query("SHOW PLUGINS").await.unwrap();
    assert!(!plugins.is_empty());
    proxy.stop().await;
}

/// SHOW TABLE STATUS, SHOW TRIGGERS and SHOW CREATE DATABASE of a keyspace (mysqldump's and
/// IDEs' questions): one shard answers, under the keyspace's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_show_statements() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("four")).await;
    c.query_drop("DROP TABLE IF EXISTS meta").await.unwrap();
    c.query_drop("CREATE TABLE meta (id BIGINT PRIMARY KEY) COMMENT 'described'")
        .await
        .unwrap();
    for sql in [
        "SHOW TABLE STATUS LIKE 'meta'",
        "SHOW TABLE STATUS FROM four WHERE Name = 'meta'",
        "SHOW TABLE STATUS IN `four` LIKE 'me%'",
    ] {
        let rows: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
        let described: Vec<(Option<String>, Option<String>)> = rows
            .iter()
            .map(|r| (r.get("Name"), r.get("Comment")))
            .collect();
        assert_eq!(
            described,
            [(Some("meta".to_string()), Some("described".to_string()))],
            "{sql}"
        );
    }
    let triggers: Vec<mysql_async::Row> = c.query("SHOW TRIGGERS FROM four").await.unwrap();
    assert!(triggers.is_empty());
    let create: Option<(String, String)> = c.query_first("SHOW CREATE DATABASE two").await.unwrap();
    let (name, text) = create.unwrap();
    assert_eq!(name, "two");
    assert!(text.starts_with("CREATE DATABASE `two`"), "{text}");
    let e = c
        .query_drop("SHOW TABLE STATUS FROM nosuch")
        .await
        .unwrap_err();
    assert_eq!(server_code(&e), Some(1049), "{e}");
    let mut none = client(&proxy, None).await;
    let e = none.query_drop("SHOW TABLE STATUS").await.unwrap_err();
    assert_eq!(server_code(&e), Some(1046), "{e}");
    // Without a database, an unqualified table resolves to the one keyspace listing it (as
    // Vitess's global routing does); one listed by several is refused naming them.
    let mut main = client(&proxy, Some("main")).await;
    main.query_drop(
        "CREATE TABLE IF NOT EXISTS event_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)",
    )
    .await
    .unwrap();
    let rows: Option<u64> = none
        .query_first("SELECT COUNT(*) FROM event_seq")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rows.is_some());
    let e = none
        .query_drop("SELECT COUNT(*) FROM customers")
        .await
        .unwrap_err();
    assert_eq!(server_code(&e), Some(1046), "{e}");
    assert!(
        e.to_string()
            .contains("table 'customers' is in several keyspaces (four, two"),
        "{e}"
    );
    proxy.stop().await;
}

/// information_schema for the keyspaces as the client sees them (every ORM's introspection):
/// one shard answers with its tables narrowed to the keyspace the query names, whatever the
/// query's own filters; a query that names no keyspace, or several, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn information_schema_of_a_keyspace() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("four")).await;
    c.query_drop("DROP TABLE IF EXISTS schema_probe")
        .await
        .unwrap();
    c.query_drop(
        "CREATE TABLE schema_probe (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE)",
    )
    .await
    .unwrap();
    let tables: Vec<String> = c
        .query(
            "SELECT TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'schema_probe'",
        )
        .await
        .unwrap();
    assert_eq!(tables, ["schema_probe"]);
    let columns: Vec<(String, String)> = c
        .query(
            "SELECT c.COLUMN_NAME, c.COLUMN_KEY FROM information_schema.COLUMNS c \
             WHERE c.TABLE_SCHEMA = 'four' AND c.TABLE_NAME = 'schema_probe' \
             ORDER BY c.ORDINAL_POSITION",
        )
        .await
        .unwrap();
    assert_eq!(
        columns,
        [
            ("id".to_string(), "PRI".to_string()),
            ("name".to_string(), "UNI".to_string())
        ]
    );
    let schemas: Vec<String> = c
        .query("SELECT DISTINCT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
        .await
        .unwrap();
    assert_eq!(schemas, ["four"]);
    // Rows of the server's other databases never show, whatever the query's filter.
    let four: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'four'")
        .await
        .unwrap();
    let any: Option<i64> = c
        .query_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'four' OR 1 = 1",
        )
        .await
        .unwrap();
    assert!(four.is_some_and(|n| n > 0));
    assert_eq!(any, four);
    // A column is named as the client spelled it.
    let result = c
        .query_iter(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = 'four' AND table_name = 'schema_probe'",
        )
        .await
        .unwrap();
    let name = result.columns_ref()[0].name_str().into_owned();
    drop(result);
    assert_eq!(name, "table_name");
    let charsets: Vec<String> = c
        .query("SELECT CHARACTER_SET_NAME FROM information_schema.CHARACTER_SETS WHERE CHARACTER_SET_NAME = 'utf8mb4'")
        .await
        .unwrap();
    assert_eq!(charsets, ["utf8mb4"]);
    // Several keyspaces, or all of them: each one's database answers, rows concatenated.
    let everywhere: Vec<(String, String)> = c
        .query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES")
        .await
        .unwrap();
    assert!(everywhere.contains(&("four".into(), "schema_probe".into())));
    // Keyspace names only: never a shard's database or the server's own schemas.
    assert!(everywhere
        .iter()
        .all(|(s, _)| ["two", "four", "main", "sbtest"].contains(&s.as_str())));
    let two_and_four: Vec<String> = c
        .query("SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('two', 'four')")
        .await
        .unwrap();
    assert!(two_and_four.iter().any(|s| s == "four"));
    assert!(two_and_four.iter().all(|s| s == "two" || s == "four"));
    for refused in [
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ('two', 'four')",
        "SELECT DISTINCT TABLE_NAME FROM information_schema.TABLES",
        "SELECT t.TABLE_NAME FROM information_schema.TABLES t JOIN schema_probe p ON p.name = t.TABLE_NAME WHERE t.TABLE_SCHEMA = 'four'",
    ] {
        let e = c.query_drop(refused).await.unwrap_err();
        assert_eq!(server_code(&e), Some(1235), "{refused}: {e}");
    }
    proxy.stop().await;
}

/// SHOW DATABASES [LIKE] lists the keyspaces the user may use; SHOW GRANTS gives the user's
/// privileges as the config grants them, and refuses to tell another user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_and_grants() {
    let proxy = proxy().await;
    let mut c = client(&proxy, None).await;
    let all: Vec<String> = c.query("SHOW DATABASES").await.unwrap();
    assert!(
        ["two", "four", "main"]
            .iter()
            .all(|k| all.iter().any(|a| a == k)),
        "{all:?}"
    );
    let some: Vec<String> = c.query("SHOW SCHEMAS LIKE 't_o'").await.unwrap();
    assert_eq!(some, ["two"]);
    let grants: Vec<String> = c.query("SHOW GRANTS").await.unwrap();
    assert_eq!(
        grants,
        [
            "GRANT USAGE ON *.* TO `app`@`%`",
            "GRANT ALL PRIVILEGES ON *.* TO `app`@`%`"
        ]
    );
    let same: Vec<String> = c.query("SHOW GRANTS FOR CURRENT_USER()").await.unwrap();
    assert_eq!(same, grants);
    let e = c
        .query_drop("SHOW GRANTS FOR 'other'@'%'")
        .await
        .unwrap_err();
    assert_eq!(server_code(&e), Some(1044), "{e}");
    proxy.stop().await;
}

/// The one value of a statement (NULL as `None`).
async fn ask(c: &mut mysql_async::Conn, sql: &str) -> Option<i64> {
    let v: Option<Option<i64>> = c.query_first(sql).await.unwrap();
    v.flatten()
}

/// Named locks (GET_LOCK and friends, as Rails migrations and job queues use them) exclude
/// each other across clients, belong to the session that took them whatever connections its
/// other statements use, and are released when it disconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_locks_belong_to_their_session() {
    let proxy = proxy().await;
    let mut a = client(&proxy, Some("two")).await;
    let mut b = client(&proxy, Some("two")).await;
    assert_eq!(ask(&mut a, "SELECT GET_LOCK('migrate', 0)").await, Some(1));
    // Other statements in between, on whatever pooled connections.
    for _ in 0..5 {
        a.query_drop("SELECT COUNT(*) FROM txt").await.ok();
        b.query_drop("SELECT 1 + 1").await.unwrap();
    }
    assert_eq!(ask(&mut b, "SELECT GET_LOCK('migrate', 0)").await, Some(0));
    assert_eq!(ask(&mut b, "SELECT IS_FREE_LOCK('migrate')").await, Some(0));
    assert_eq!(
        ask(&mut b, "SELECT RELEASE_LOCK('migrate')").await,
        Some(0),
        "not b's"
    );
    assert_eq!(ask(&mut a, "SELECT RELEASE_LOCK('migrate')").await, Some(1));
    assert_eq!(ask(&mut b, "SELECT GET_LOCK('migrate', 0)").await, Some(1));
    drop(b);
    // b's disconnect released it.
    let mut released = false;
    for _ in 0..50 {
        if ask(&mut a, "SELECT GET_LOCK('migrate', 0)").await == Some(1) {
            released = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(released, "the lock of a client that left is free again");
    proxy.stop().await;
}

/// LOCK TABLES takes the locks on every shard of the tables' keyspace and keeps them until
/// UNLOCK TABLES: another client waits (and times out); the locking session's statements run
/// on the locked connections, and a write over several shards still applies on all or none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_tables_hold_every_shard() {
    let proxy = proxy().await;
    let mut a = client(&proxy, Some("four")).await;
    let mut b = client(&proxy, Some("four")).await;
    a.query_drop("DROP TABLE IF EXISTS locked").await.unwrap();
    a.query_drop("CREATE TABLE locked (id BIGINT PRIMARY KEY, v INT NOT NULL)")
        .await
        .unwrap();
    a.query_drop("INSERT INTO locked VALUES (1, 1)")
        .await
        .unwrap();
    b.query_drop("SET SESSION lock_wait_timeout = 1")
        .await
        .unwrap();

    a.query_drop("LOCK TABLES locked WRITE").await.unwrap();
    let e = b
        .query_drop("INSERT INTO locked VALUES (2, 2)")
        .await
        .unwrap_err();
    assert_eq!(server_code(&e), Some(1205), "{e}");
    // The locking session's writes, several shards at once.
    a.query_drop("INSERT INTO locked VALUES (10, 0), (11, 0), (12, 0), (13, 0), (14, 0)")
        .await
        .unwrap();
    // One of these rows exists: none of the others stays, on any shard.
    let e = a
        .query_drop("INSERT INTO locked VALUES (20, 0), (21, 0), (22, 0), (1, 0), (23, 0)")
        .await
        .unwrap_err();
    assert_eq!(server_code(&e), Some(1062), "{e}");
    let n: Option<i64> = a.query_first("SELECT COUNT(*) FROM locked").await.unwrap();
    assert_eq!(n, Some(6));
    a.query_drop("UNLOCK TABLES").await.unwrap();

    b.query_drop("INSERT INTO locked VALUES (2, 2)")
        .await
        .unwrap();
    let n: Option<i64> = b.query_first("SELECT COUNT(*) FROM locked").await.unwrap();
    assert_eq!(n, Some(7));
    // Another table than the locked ones: the shards refuse it, as MySQL does.
    a.query_drop("LOCK TABLES locked READ").await.unwrap();
    let e = a.query_drop("SELECT * FROM iso").await.unwrap_err();
    assert_eq!(server_code(&e), Some(1100), "{e}");
    // A transaction gives the locks up.
    a.query_drop("BEGIN").await.unwrap();
    a.query_drop("COMMIT").await.unwrap();
    b.query_drop("INSERT INTO locked VALUES (3, 3)")
        .await
        .unwrap();
    proxy.stop().await;
}
