//! Our own backend connection against a real MariaDB: login (with and without a password, and a
//! wrong one), text results with NULLs, a statement's several results, errors that leave the
//! connection usable, a row longer than one packet, COM_STMT_PREPARE's columns, and the session
//! state that COM_RESET_CONNECTION clears.

use backend::wire::{Conn, ConnOpts, Response, WireError};
use mysql_common::constants::ColumnType;
use mysql_common::value::Value;

fn opts(port: u16, user: &str, password: &str) -> ConnOpts {
    ConnOpts {
        host: "127.0.0.1".into(),
        port,
        user: user.into(),
        password: password.into(),
        database: "w".into(),
        tls: Ok(None),
    }
}

fn text(rows: &[Vec<Value>]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| match v {
                    Value::NULL => None,
                    Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    other => panic!("a text row holds bytes, not {other:?}"),
                })
                .collect()
        })
        .collect()
}

fn server_code(e: WireError) -> u16 {
    match e {
        WireError::Server { code, .. } => code,
        other => panic!("expected a server error, got {other}"),
    }
}

/// One MariaDB with database `w`.
async fn server() -> Vec<testkit::MariaDb> {
    tokio::task::spawn_blocking(|| testkit::start(1, &["w"]))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn speaks_to_mariadb() {
    let servers = server().await;
    let port = servers[0].port;
    let mut c = Conn::connect(&opts(port, "root", "")).await.unwrap();
    assert!(c.id() > 0);
    assert!(c.server_version().0 >= 10);

    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    c.query_drop("INSERT INTO t VALUES (1, 'one'), (2, NULL), (3, '')")
        .await
        .unwrap();
    assert_eq!(c.summary().affected_rows, 3);
    assert_eq!(c.summary().info, "Records: 3  Duplicates: 0  Warnings: 0");
    assert_eq!(c.in_transaction(), Some(false));
    let rows = c
        .query_rows("SELECT id, v FROM t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        text(&rows),
        [
            [Some("1".into()), Some("one".into())],
            [Some("2".into()), None],
            [Some("3".into()), Some("".into())]
        ]
    );

    // Streaming: each row is the packet's payload, decoded on demand.
    let Response::Rows(columns) = c
        .query("SELECT v, id FROM t WHERE id < 3 ORDER BY id")
        .await
        .unwrap()
    else {
        panic!("a result set")
    };
    assert_eq!(columns.len(), 2);
    assert_eq!(columns[0].name_str(), "v");
    let first = c.next_row().await.unwrap().unwrap().to_vec();
    assert_eq!(first, b"\x03one\x011");
    let second = engine::decode_text_row(c.next_row().await.unwrap().unwrap(), 2).unwrap();
    assert_eq!(second, [Value::NULL, Value::Bytes(b"2".to_vec())]);
    assert!(c.next_row().await.unwrap().is_none());

    // The same shape again: its columns are the ones parsed last time.
    let Response::Rows(again) = c.query("SELECT v, id FROM t WHERE id = 3").await.unwrap() else {
        panic!("a result set")
    };
    assert!(std::sync::Arc::ptr_eq(&columns, &again));
    c.finish().await.unwrap();

    // Errors leave the connection fit for the next statement.
    assert_eq!(
        server_code(c.query_drop("SELECT * FROM nope").await.unwrap_err()),
        1146
    );
    assert_eq!(c.in_transaction(), None);
    assert_eq!(
        server_code(
            c.query_drop("INSERT INTO t VALUES (1, 'dup')")
                .await
                .unwrap_err()
        ),
        1062
    );
    assert!(!c.is_broken());

    // A procedure's results: the first is read, the rest and the status are drained.
    c.query_drop("CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2, 3; END")
        .await
        .unwrap();
    assert_eq!(
        text(&c.query_rows("CALL p()").await.unwrap()),
        [[Some("1".into())]]
    );
    assert_eq!(
        text(&c.query_rows("SELECT 4").await.unwrap()),
        [[Some("4".into())]]
    );

    // Transactions show in the status flags.
    c.query_drop("BEGIN").await.unwrap();
    assert_eq!(c.in_transaction(), Some(true));
    c.query_drop("UPDATE t SET v = 'uno' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(c.summary().affected_rows, 1);
    c.query_drop("ROLLBACK").await.unwrap();
    assert_eq!(c.in_transaction(), Some(false));

    // Warnings are counted.
    c.query_drop("SELECT CAST('x' AS SIGNED)").await.unwrap();
    assert_eq!(c.summary().warnings, 1);

    // The columns of a statement that is not run.
    let described = c
        .describe("SELECT id, v, id + ? AS n FROM t")
        .await
        .unwrap();
    let names: Vec<_> = described
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    assert_eq!(names, ["id", "v", "n"]);
    assert_eq!(
        server_code(c.describe("SELECT nope FROM t").await.unwrap_err()),
        1054
    );

    // COM_RESET_CONNECTION clears the session.
    c.query_drop("SET @x = 5").await.unwrap();
    c.ping().await.unwrap();
    assert_eq!(
        text(&c.query_rows("SELECT @x").await.unwrap()),
        [[Some("5".into())]]
    );
    c.reset().await.unwrap();
    assert_eq!(text(&c.query_rows("SELECT @x").await.unwrap()), [[None]]);

    // A row longer than 16 MiB comes in several packets; a statement too.
    c.query_drop("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
        .await
        .unwrap();
    let mut big = Conn::connect(&opts(port, "root", "")).await.unwrap();
    let len = 17 * 1024 * 1024 + 3;
    let rows = big
        .query_rows(&format!(
            "SELECT LENGTH(REPEAT('y', {len})), REPEAT('z', {len}), 7"
        ))
        .await
        .unwrap();
    assert_eq!(rows[0][0], Value::Bytes(len.to_string().into_bytes()));
    assert_eq!(rows[0][1], Value::Bytes(vec![b'z'; len]));
    assert_eq!(rows[0][2], Value::Bytes(b"7".to_vec()));
    let literal = "a".repeat(len);
    let rows = big
        .query_rows(&format!("SELECT LENGTH('{literal}')"))
        .await
        .unwrap();
    assert_eq!(rows[0][0], Value::Bytes(len.to_string().into_bytes()));

    // Passwords: right, wrong.
    c.query_drop("CREATE USER 'pw'@'127.0.0.1' IDENTIFIED BY 's3cret'")
        .await
        .unwrap();
    c.query_drop("GRANT ALL ON w.* TO 'pw'@'127.0.0.1'")
        .await
        .unwrap();
    let mut pw = Conn::connect(&opts(port, "pw", "s3cret")).await.unwrap();
    assert_eq!(
        text(&pw.query_rows("SELECT CURRENT_USER()").await.unwrap()),
        [[Some("pw@127.0.0.1".into())]]
    );
    let wrong = Conn::connect(&opts(port, "pw", "nope"))
        .await
        .err()
        .unwrap();
    assert_eq!(server_code(wrong), 1045);
    pw.quit().await;
}

/// Deferred statements ride in front of the next one, in one COM_QUERY: the transaction they
/// start holds the statement. One that fails stops the statement behind it, and the connection
/// refuses further work (what it was to start never started). A prepared statement sends them
/// alone first.
#[tokio::test]
async fn deferred_statements_go_with_the_next_or_stop_it() {
    let servers = server().await;
    let port = servers[0].port;
    let mut c = Conn::connect(&opts(port, "root", "")).await.unwrap();
    c.query_drop("CREATE TABLE d (id INT PRIMARY KEY)")
        .await
        .unwrap();

    // A comment at the end of a deferred statement does not swallow what follows it.
    c.defer("SET @a = 1 -- the session's setting");
    c.defer("START TRANSACTION");
    c.query_drop("INSERT INTO d VALUES (1)").await.unwrap();
    assert_eq!(c.in_transaction(), Some(true));
    assert_eq!(
        text(&c.query_rows("SELECT @a").await.unwrap()),
        [[Some("1".into())]]
    );
    c.query_drop("ROLLBACK").await.unwrap();
    assert_eq!(count(&mut c).await, Some("0".into()));

    // Before a prepared statement they go alone; its rows are the statement's.
    c.defer("START TRANSACTION");
    let Some(Response::Rows(_)) = c
        .execute(
            "SELECT COUNT(*) FROM d WHERE id > ?",
            &[(Value::Int(0), ColumnType::MYSQL_TYPE_LONGLONG)],
        )
        .await
        .unwrap()
    else {
        panic!("a prepared result")
    };
    assert!(c.next_row().await.unwrap().is_some());
    c.finish().await.unwrap();
    assert_eq!(c.in_transaction(), Some(true));
    c.query_drop("COMMIT").await.unwrap();

    // Discarded, they never run.
    c.defer("INSERT INTO d VALUES (9)");
    c.discard_deferred();
    assert_eq!(count(&mut c).await, Some("0".into()));

    // A failing one: its error is the statement's, the INSERT behind it never ran, and the
    // connection takes nothing more.
    c.defer("SET @@session.no_such_variable = 1");
    c.defer("START TRANSACTION");
    let failed = c.query_drop("INSERT INTO d VALUES (2)").await.unwrap_err();
    assert_eq!(server_code(failed), 1193);
    assert!(c.is_broken());
    assert!(c.query_drop("SELECT 1").await.is_err());
    let mut other = Conn::connect(&opts(port, "root", "")).await.unwrap();
    assert_eq!(count(&mut other).await, Some("0".into()));
}

/// Each `backend_tls` mode against a server whose certificate (from a test CA) names another
/// host: `required` and `verify_ca` connect, `verify_identity` and another CA do not.
#[tokio::test]
async fn tls_modes_check_what_they_promise() {
    use backend::tls::client_config;
    use vschema::BackendTls;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    testkit::self_signed(d, "/CN=wire CA", "ca.key", "ca.pem", None);
    testkit::self_signed(d, "/CN=other CA", "other.key", "other.pem", None);
    testkit::ca_signed_server(d, "/CN=elsewhere.test", "DNS:elsewhere.test");
    let path = |f: &str| d.join(f).display().to_string();
    let extra = vec![
        format!("--ssl-ca={}", path("ca.pem")),
        format!("--ssl-cert={}", path("server.pem")),
        format!("--ssl-key={}", path("server.key")),
    ];
    let servers = tokio::task::spawn_blocking(move || testkit::start_with(1, &["w"], &extra))
        .await
        .unwrap()
        .unwrap();
    let port = servers[0].port;
    let mut root = Conn::connect(&opts(port, "root", "")).await.unwrap();
    root.query_drop("CREATE USER 'tls'@'127.0.0.1' IDENTIFIED BY 'pw' REQUIRE SSL")
        .await
        .unwrap();
    root.query_drop("GRANT ALL ON w.* TO 'tls'@'127.0.0.1'")
        .await
        .unwrap();
    let tls_opts = |mode: BackendTls| ConnOpts {
        tls: client_config(&mode),
        ..opts(port, "tls", "pw")
    };
    // In the clear, the REQUIRE SSL user is refused by the server.
    let clear = Conn::connect(&opts(port, "tls", "pw")).await.err().unwrap();
    assert_eq!(server_code(clear), 1045);
    for mode in [BackendTls::Required, BackendTls::VerifyCa(d.join("ca.pem"))] {
        let mut c = Conn::connect(&tls_opts(mode.clone())).await.unwrap();
        let cipher = c.query_rows("SHOW STATUS LIKE 'Ssl_cipher'").await.unwrap();
        assert!(
            matches!(&cipher[0][1], Value::Bytes(b) if !b.is_empty()),
            "{mode:?}: {cipher:?}"
        );
    }
    for mode in [
        BackendTls::VerifyIdentity(d.join("ca.pem")),
        BackendTls::VerifyCa(d.join("other.pem")),
    ] {
        let refused = Conn::connect(&tls_opts(mode.clone())).await.err();
        assert!(
            matches!(refused, Some(WireError::Io(_))),
            "{mode:?}: {refused:?}"
        );
    }
    // A CA file that cannot be read fails every connection with its name.
    let missing = Conn::connect(&tls_opts(BackendTls::VerifyCa(d.join("nope.pem"))))
        .await
        .err()
        .unwrap();
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
}

/// A status variable's value; `name` may be qualified (`GLOBAL x`), the session's otherwise.
async fn status(c: &mut Conn, name: &str) -> u64 {
    let (scope, name) = name.split_once(' ').unwrap_or(("SESSION", name));
    let rows = c
        .query_rows(&format!("SHOW {scope} STATUS LIKE '{name}'"))
        .await
        .unwrap();
    match &rows[0][1] {
        Value::Bytes(b) => String::from_utf8_lossy(b).parse().unwrap(),
        other => panic!("{name} is {other:?}"),
    }
}

/// The binary row of `sql` run prepared with `params`, decoded.
async fn execute_one(c: &mut Conn, sql: &str, params: &[(Value, ColumnType)]) -> Vec<Value> {
    let Some(Response::Rows(columns)) = c.execute(sql, params).await.unwrap() else {
        panic!("{sql}: a result set")
    };
    let row = engine::decode_binary_row(c.next_row().await.unwrap().unwrap(), &columns).unwrap();
    assert!(c.next_row().await.unwrap().is_none(), "{sql}: one row");
    row
}

#[tokio::test]
async fn runs_prepared_statements() {
    let servers = server().await;
    let mut c = Conn::connect(&opts(servers[0].port, "root", ""))
        .await
        .unwrap();
    c.query_drop(
        "CREATE TABLE p (id INT PRIMARY KEY, n DECIMAL(10,3), d DATE, dt DATETIME(6), \
         t TIME(6), s VARCHAR(20), b VARBINARY(10), u BIGINT UNSIGNED, f DOUBLE, z INT)",
    )
    .await
    .unwrap();
    use ColumnType::*;
    // Each parameter as the client declared it: a DECIMAL's digits, a DATE, text that would
    // need escaping in a statement's text, bytes that are not text.
    let params = [
        (Value::Int(1), MYSQL_TYPE_LONGLONG),
        (Value::Bytes(b"12.5".to_vec()), MYSQL_TYPE_NEWDECIMAL),
        (Value::Date(2024, 2, 29, 0, 0, 0, 0), MYSQL_TYPE_DATE),
        (
            Value::Date(2024, 2, 29, 13, 14, 15, 123_456),
            MYSQL_TYPE_DATETIME,
        ),
        (Value::Time(true, 1, 2, 3, 4, 5), MYSQL_TYPE_TIME),
        (
            Value::Bytes(b"it's \\ \xc3\xbc".to_vec()),
            MYSQL_TYPE_VAR_STRING,
        ),
        (Value::Bytes(vec![0, 0xff, b'\'']), MYSQL_TYPE_BLOB),
        (Value::UInt(u64::MAX), MYSQL_TYPE_LONGLONG),
        (Value::Double(-2.5e-3), MYSQL_TYPE_DOUBLE),
        (Value::NULL, MYSQL_TYPE_NULL),
    ];
    let insert = "INSERT INTO p VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    assert!(matches!(
        c.execute(insert, &params).await.unwrap(),
        Some(Response::Done)
    ));
    assert_eq!(c.summary().affected_rows, 1);
    assert_eq!(
        text(
            &c.query_rows("SELECT n, d, dt, t, s, HEX(b), u, f, z FROM p")
                .await
                .unwrap()
        ),
        [[
            Some("12.500".into()),
            Some("2024-02-29".into()),
            Some("2024-02-29 13:14:15.123456".into()),
            Some("-26:03:04.000005".into()),
            Some("it's \\ ü".into()),
            Some("00FF27".into()),
            Some(u64::MAX.to_string()),
            Some("-0.0025".into()),
            None
        ]]
    );

    // Rows come in the binary protocol; the statement is prepared once per connection.
    let select = "SELECT * FROM p WHERE id = ?";
    let before = status(&mut c, "Com_stmt_prepare").await;
    for _ in 0..3 {
        let row = execute_one(&mut c, select, &[(Value::Int(1), MYSQL_TYPE_LONGLONG)]).await;
        assert_eq!(
            row,
            [
                Value::Int(1),
                Value::Bytes(b"12.500".to_vec()),
                Value::Date(2024, 2, 29, 0, 0, 0, 0),
                Value::Date(2024, 2, 29, 13, 14, 15, 123_456),
                Value::Time(true, 1, 2, 3, 4, 5),
                Value::Bytes("it's \\ ü".as_bytes().to_vec()),
                Value::Bytes(vec![0, 0xff, b'\'']),
                Value::UInt(u64::MAX),
                Value::Double(-2.5e-3),
                Value::NULL,
            ]
        );
    }
    assert_eq!(status(&mut c, "Com_stmt_prepare").await - before, 1);
    assert_eq!(status(&mut c, "Com_stmt_execute").await, 4);

    // A DECIMAL parameter compares exactly, as its digits.
    let row = execute_one(
        &mut c,
        "SELECT COUNT(*) FROM p WHERE n = ?",
        &[(Value::Bytes(b"12.5000".to_vec()), MYSQL_TYPE_NEWDECIMAL)],
    )
    .await;
    assert_eq!(row, [Value::Int(1)]);

    // COM_RESET_CONNECTION drops the server's statements: prepared again.
    c.reset().await.unwrap();
    execute_one(&mut c, select, &[(Value::Int(1), MYSQL_TYPE_LONGLONG)]).await;
    assert_eq!(status(&mut c, "Com_stmt_prepare").await, 1);

    // What the server will not prepare, or prepares with another parameter count, is left to
    // the caller's text; errors of a run leave the connection usable.
    assert!(c
        .execute("SELEC ?", &[(Value::Int(1), MYSQL_TYPE_LONGLONG)])
        .await
        .unwrap()
        .is_none());
    assert!(c
        .execute("SELECT ?, ?", &[(Value::Int(1), MYSQL_TYPE_LONGLONG)])
        .await
        .unwrap()
        .is_none());
    let duplicate = c
        .execute(
            "INSERT INTO p (id) VALUES (?)",
            &[(Value::Int(1), MYSQL_TYPE_LONGLONG)],
        )
        .await;
    assert_eq!(server_code(duplicate.err().unwrap()), 1062);
    assert!(!c.is_broken());

    // The statements kept prepared are bounded; the oldest are closed on the server.
    for i in 0..100 {
        let sql = format!("SELECT ? + {i}");
        let row = execute_one(&mut c, &sql, &[(Value::Int(1), MYSQL_TYPE_LONGLONG)]).await;
        assert_eq!(row, [Value::Int(1 + i)]);
    }
    let held = status(&mut c, "GLOBAL Prepared_stmt_count").await;
    assert!((1..=64).contains(&held), "{held} statements held");
}

async fn count(c: &mut Conn) -> Option<String> {
    text(&c.query_rows("SELECT COUNT(*) FROM d").await.unwrap())[0][0].clone()
}
