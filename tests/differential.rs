//! Differential: the same rows in one reference MariaDB database and behind the proxy (4 shards);
//! every statement of `corpus/differential.sql` must give the same result on both.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

const SCHEMA: &[&str] = &[
    "DROP TABLE IF EXISTS customers",
    "DROP TABLE IF EXISTS orders",
    "DROP TABLE IF EXISTS products",
    "DROP TABLE IF EXISTS misc",
    "DROP TABLE IF EXISTS words",
    "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL, city VARCHAR(50) NULL, \
     balance DECIMAL(12,2) NOT NULL, created DATE NOT NULL, note TEXT NULL, score INT NULL)",
    "CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, product_id BIGINT NOT NULL, \
     qty INT NOT NULL, price DECIMAL(8,2) NOT NULL, placed DATETIME NOT NULL, KEY (customer_id))",
    "CREATE TABLE products (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL, price DECIMAL(8,2) NOT NULL)",
    "CREATE TABLE misc (id BIGINT PRIMARY KEY, v INT NULL, s VARCHAR(20) NULL)",
    "CREATE TABLE words (id BIGINT PRIMARY KEY, ci VARCHAR(20) NULL, bin VARCHAR(20) COLLATE utf8mb4_bin NULL, \
     fixed CHAR(8) NULL, mb3 VARCHAR(20) CHARACTER SET utf8mb3 NULL)",
];

/// Text that general_ci and _bin order and equate in their own ways: case, accents, ß, Greek
/// mu and micro sign, trailing spaces and tabs, characters beyond the BMP (which general_ci
/// weighs all alike), punctuation, the empty string.
const WORDS: &[&str] = &[
    "a", "A", "a ", "a\\t", "ab", "Ab", "ß", "s", "ss", "S", "é", "E", "e", "😀", "😁", "🍕 pie",
    "Z", "_", "", "µ", "Μ", "μ", "Ä", "æ", "AE", "ǅ", "-", "z  ", "Ω", "中", "Zoë", "zoe",
];

/// Deterministic sample data, as INSERT statements of several rows each: names repeat across
/// shards in several cases and accents, with Korean and emoji; NULLs in most columns.
fn data() -> Vec<String> {
    const NAMES: &[&str] = &[
        "Ana",
        "ana",
        "ANA",
        "Ben",
        "bén",
        "Cleo",
        "Dev",
        "Eve",
        "김민준",
        "이서연",
        "🍕 lover",
        "🎉 party",
        "Zoë",
        "zoe",
        "ZOE",
        "Chen",
    ];
    const CITIES: &[&str] = &[
        "'Lyon'", "'Oslo'", "'Rome'", "'Porto'", "'Cork'", "'서울'", "NULL",
    ];
    let mut stmts = Vec::new();
    let products: Vec<String> = (1..=20)
        .map(|i| format!("({i}, 'product {i}', {}.{:02})", i * 3, i % 100))
        .collect();
    stmts.push(format!(
        "INSERT INTO products (id, name, price) VALUES {}",
        products.join(", ")
    ));
    let customers: Vec<i64> = (-10..190).collect();
    for chunk in customers.chunks(50) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let note = if i % 4 == 0 {
                    "NULL".to_string()
                } else {
                    format!("'note {i}'")
                };
                let score = if i % 5 == 0 {
                    "NULL".to_string()
                } else {
                    (i.rem_euclid(13) * 7 - 20).to_string()
                };
                format!(
                    "({i}, '{}', {}, {}.{:02}, '2024-{:02}-{:02}', {note}, {score})",
                    NAMES[i.rem_euclid(NAMES.len() as i64) as usize],
                    CITIES[i.rem_euclid(CITIES.len() as i64) as usize],
                    i.rem_euclid(997),
                    i.rem_euclid(100),
                    i.rem_euclid(12) + 1,
                    i.rem_euclid(28) + 1
                )
            })
            .collect();
        stmts.push(format!(
            "INSERT INTO customers (id, name, city, balance, created, note, score) VALUES {}",
            rows.join(", ")
        ));
    }
    let orders: Vec<String> = (1..=600i64)
        .map(|o| {
            format!(
                "({o}, {}, {}, {}, {}.{:02}, '2024-{:02}-{:02} {:02}:{:02}:00')",
                (o * 7) % 200 - 10,
                o % 20 + 1,
                o % 6 + 1,
                o % 50,
                o % 100,
                o % 12 + 1,
                o % 28 + 1,
                o % 24,
                o % 60
            )
        })
        .collect();
    for chunk in orders.chunks(100) {
        stmts.push(format!(
            "INSERT INTO orders (order_id, customer_id, product_id, qty, price, placed) VALUES {}",
            chunk.join(", ")
        ));
    }
    let words: Vec<String> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| {
            // utf8mb3 holds no character beyond the BMP.
            let mb3 = match w.chars().any(|c| u32::from(c) > 0xFFFF) {
                true => "NULL".to_string(),
                false => format!("'{w}'"),
            };
            format!("({}, '{w}', '{w}', '{w}', {mb3})", i as i64 * 37 - 300)
        })
        .chain(["(500, NULL, NULL, NULL, NULL)".to_string()])
        .collect();
    stmts.push(format!(
        "INSERT INTO words (id, ci, bin, fixed, mb3) VALUES {}",
        words.join(", ")
    ));
    stmts
}

/// A table of the unsharded keyspace `main`, one per differential run (they share `main`); the
/// corpus names it `MAIN.vip`.
const VIP: &[&str] = &[
    "DROP TABLE IF EXISTS MAIN.vip",
    "CREATE TABLE MAIN.vip (cid BIGINT PRIMARY KEY, level INT NOT NULL, tag VARCHAR(20) NULL)",
    "INSERT INTO MAIN.vip (cid, level, tag) VALUES (3, 1, 'gold'), (5, 2, 'silver'), (17, 1, NULL), \
     (150, 3, 'gold'), (-4, 2, 'Zoë'), (999, 1, 'ghost')",
];

/// A corpus statement as the proxy gets it: `KS.` is the keyspace, `MAIN.vip` this run's table
/// in keyspace `main`.
fn for_proxy(sql: &str, keyspace: &str) -> String {
    sql.replace("KS.", &format!("{keyspace}."))
        .replace("MAIN.vip", &format!("main.vip_{keyspace}"))
}

/// The same statement for the reference database, which holds every table.
fn for_reference(sql: &str, keyspace: &str, reference_db: &str) -> String {
    sql.replace("KS.", &format!("{reference_db}."))
        .replace("MAIN.vip", &format!("vip_{keyspace}"))
}

type Rows = Vec<Vec<Option<String>>>;

#[derive(Debug, PartialEq)]
enum Answer {
    Rows {
        columns: Vec<String>,
        rows: Rows,
    },
    /// Affected rows, the info string (`Rows matched: ...`) and the warning count.
    Affected(u64, String, u16),
    Error(u16),
}

/// An error as the corpus compares it: its code (the message too on stderr with `DIFF_VERBOSE`).
fn error(sql: &str, e: &mysql_async::Error) -> Answer {
    if std::env::var_os("DIFF_VERBOSE").is_some() {
        eprintln!("{sql}\n  -> {e}");
    }
    Answer::Error(server_code(e).unwrap_or(0))
}

async fn run(conn: &mut Conn, sql: &str) -> Answer {
    let mut result = match conn.query_iter(sql).await {
        Ok(r) => r,
        Err(e) => return error(sql, &e),
    };
    let columns: Vec<String> = result
        .columns_ref()
        .iter()
        .map(|c| format!("{} {:?}/{}", c.name_str(), c.column_type(), c.decimals()))
        .collect();
    if columns.is_empty() {
        let affected = (
            result.affected_rows(),
            result.info().into_owned(),
            result.warnings(),
        );
        drop(result);
        return Answer::Affected(affected.0, affected.1, affected.2);
    }
    match result.collect::<mysql_async::Row>().await {
        Ok(rows) => Answer::Rows {
            columns,
            rows: text_rows(rows),
        },
        Err(e) => error(sql, &e),
    }
}

/// Whether two cells hold the same value; with `approx`, numbers that differ in their last
/// bits only (a variance's value depends on the order its rows were added in, on one server too).
fn cells_match(a: &str, b: &str, approx: bool) -> bool {
    let number = |s: &str| {
        s.strip_prefix("Double(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or(s)
            .parse::<f64>()
            .ok()
    };
    a == b
        || approx
            && matches!((number(a), number(b)), (Some(x), Some(y))
                if (x - y).abs() <= 1e-12 * x.abs().max(y.abs()))
}

/// Rows (cells as text: a text-protocol value, or a binary one's Debug form) that match cell
/// by cell.
fn rows_match(want: &[Vec<Option<String>>], got: &[Vec<Option<String>>], approx: bool) -> bool {
    want.len() == got.len()
        && want.iter().zip(got).all(|(w, g)| {
            w.len() == g.len()
                && w.iter().zip(g).all(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => cells_match(a, b, approx),
                    _ => a == b,
                })
        })
}

fn ordered(sql: &str) -> bool {
    sql.to_ascii_lowercase().contains("order by")
}

/// Loads the same rows through the proxy into `keyspace` and directly into `reference`, then runs
/// the corpus on both.
async fn differential(keyspace: &str, reference_db: &str) {
    let proxy = proxy().await;
    let mut sharded = client(&proxy, Some(keyspace)).await;
    let mut reference = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&cluster().servers[3].url(reference_db)).unwrap(),
    )
    .await
    .unwrap();
    for stmt in SCHEMA
        .iter()
        .chain(VIP)
        .map(|s| s.to_string())
        .chain(data())
    {
        let (proxy_stmt, reference_stmt) = (
            for_proxy(&stmt, keyspace),
            for_reference(&stmt, keyspace, reference_db),
        );
        sharded
            .query_drop(&proxy_stmt)
            .await
            .unwrap_or_else(|e| panic!("proxy: {proxy_stmt}: {e}"));
        reference
            .query_drop(&reference_stmt)
            .await
            .unwrap_or_else(|e| panic!("reference: {reference_stmt}: {e}"));
    }

    let corpus = include_str!("corpus/differential.sql");
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in corpus
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (mode, sql) = match line.split_once(": ") {
            Some((m @ ("refused" | "error" | "approx"), rest)) => (m, rest),
            _ => ("same", line),
        };
        // A refusal names what it refuses: `refused: SQL  # words of its message`.
        let (sql, naming) = match sql.split_once("  # ") {
            Some((sql, naming)) => (sql.trim_end(), Some(naming.trim())),
            None => (sql, None),
        };
        if mode == "refused" {
            let message = match sharded.query_drop(for_proxy(sql, keyspace)).await {
                Err(mysql_async::Error::Server(e)) => e.message,
                other => format!("{other:?}"),
            };
            if !naming.is_some_and(|n| message.contains(n)) {
                failures.push(format!(
                    "refused: {sql}
  message: {message}
  should name: {naming:?}"
                ));
            }
        }
        let proxy_sql = for_proxy(sql, keyspace);
        let reference_sql = for_reference(sql, keyspace, reference_db);
        let want = if mode == "refused" {
            // Proves the statement valid without changing the reference's rows.
            reference.query_drop("START TRANSACTION").await.unwrap();
            let want = run(&mut reference, &reference_sql).await;
            reference.query_drop("ROLLBACK").await.unwrap();
            want
        } else {
            run(&mut reference, &reference_sql).await
        };
        let got = run(&mut sharded, &proxy_sql).await;
        checked += 1;
        let ok = match mode {
            "refused" => !matches!(want, Answer::Error(_)) && got == Answer::Error(1235),
            "error" => matches!(want, Answer::Error(_)) && got == want,
            _ => match (&want, &got) {
                (
                    Answer::Rows {
                        columns: wc,
                        rows: wr,
                    },
                    Answer::Rows {
                        columns: gc,
                        rows: gr,
                    },
                ) => {
                    let (mut wr, mut gr) = (wr.clone(), gr.clone());
                    if !ordered(sql) {
                        wr.sort();
                        gr.sort();
                    }
                    wc == gc && rows_match(&wr, &gr, mode == "approx")
                }
                _ => want == got && !matches!(want, Answer::Error(_)),
            },
        };
        // After a write, every table must hold the same rows on both sides.
        if ok && matches!(want, Answer::Affected(..)) {
            for (table, key) in [
                ("customers", "id"),
                ("orders", "order_id"),
                ("products", "id"),
            ] {
                let all = format!("SELECT * FROM {table} ORDER BY {key}");
                let (w, g) = (
                    run(&mut reference, &all).await,
                    run(&mut sharded, &all).await,
                );
                if w != g {
                    failures.push(format!("after {sql}: table {table} differs"));
                }
            }
        }
        if !ok {
            let show = |a: &Answer| {
                let s = format!("{a:?}");
                if s.len() > 600 {
                    format!(
                        "{}…",
                        &s[..s.char_indices().nth(600).map(|(i, _)| i).unwrap_or(s.len())]
                    )
                } else {
                    s
                }
            };
            failures.push(format!(
                "{mode}: {sql}\n  reference: {}\n  proxy:     {}",
                show(&want),
                show(&got)
            ));
        }
    }
    assert!(checked >= 200, "the corpus has {checked} statements");
    failures
        .extend(prepared_pass(corpus, keyspace, reference_db, &mut sharded, &mut reference).await);
    // COM_STMT_PREPARE describes a join across keyspaces (each side on its own shards) as its
    // result will be: grouped and projected, hidden columns dropped.
    for sql in [
        "SELECT v.level, COUNT(*) AS n FROM MAIN.vip v JOIN orders o ON o.customer_id = v.cid GROUP BY v.level",
        "SELECT c.name, v.tag FROM customers c JOIN MAIN.vip v ON v.cid = c.id ORDER BY c.name",
    ] {
        let names = |stmt: &mysql_async::Statement| -> Vec<String> {
            stmt.columns()
                .iter()
                .map(|c| c.name_str().into_owned())
                .collect()
        };
        let reference_sql = for_reference(sql, keyspace, reference_db);
        let want = names(&reference.prep(reference_sql.as_str()).await.unwrap());
        let got = names(&sharded.prep(for_proxy(sql, keyspace).as_str()).await.unwrap());
        if want != got {
            failures.push(format!(
                "prepare metadata: {sql}\n  reference: {want:?}\n  proxy:     {got:?}"
            ));
        }
    }
    // GROUP_CONCAT cut to group_concat_max_len: one warning 1260 per cut value, as on one server
    // (whose messages number rows as its scan met them, which a merge cannot reproduce).
    for sql in [
        "SELECT product_id, GROUP_CONCAT(order_id ORDER BY order_id) FROM orders GROUP BY product_id",
        "SELECT GROUP_CONCAT(name ORDER BY id SEPARATOR '') FROM customers WHERE id BETWEEN 5 AND 40",
        "SELECT customer_id, GROUP_CONCAT(qty, '-', product_id ORDER BY order_id) FROM orders GROUP BY customer_id",
    ] {
        let mut warnings = Vec::new();
        for (conn, sql) in [
            (&mut reference, for_reference(sql, keyspace, reference_db)),
            (&mut sharded, for_proxy(sql, keyspace)),
        ] {
            conn.query_drop("SET SESSION group_concat_max_len = 12")
                .await
                .unwrap();
            let rows: Vec<mysql_async::Row> = conn.query(&sql).await.unwrap();
            let count = conn.get_warnings();
            let codes: Vec<(String, u32)> = conn
                .query("SHOW WARNINGS")
                .await
                .unwrap()
                .into_iter()
                .map(|(level, code, _): (String, u32, String)| (level, code))
                .collect();
            conn.query_drop("SET SESSION group_concat_max_len = DEFAULT")
                .await
                .unwrap();
            warnings.push((text_rows(rows).len(), count, codes));
        }
        if warnings[0] != warnings[1] || warnings[0].1 == 0 {
            failures.push(format!(
                "GROUP_CONCAT warnings: {sql}\n  reference: {:?}\n  proxy:     {:?}",
                warnings[0], warnings[1]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{keyspace}: {} of {checked} statements differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    proxy.stop().await;
}

/// A result in the binary protocol: column names and types, rows of typed values (as their
/// Debug forms).
type Prepared = (Vec<String>, Vec<Vec<Option<String>>>);

async fn run_prepared(
    conn: &mut Conn,
    sql: &str,
    params: Vec<mysql_async::Value>,
) -> Result<Prepared, u16> {
    let mut result = conn
        .exec_iter(sql, params)
        .await
        .map_err(|e| server_code(&e).unwrap_or(0))?;
    let columns = result
        .columns_ref()
        .iter()
        .map(|c| format!("{} {:?}", c.name_str(), c.column_type()))
        .collect();
    let rows: Vec<mysql_async::Row> = result
        .collect()
        .await
        .map_err(|e| server_code(&e).unwrap_or(0))?;
    let rows = rows
        .into_iter()
        .map(|r| r.unwrap().iter().map(|v| Some(format!("{v:?}"))).collect())
        .collect();
    Ok((columns, rows))
}

/// Every SELECT of the corpus again through the binary protocol: as written (no parameters),
/// where the proxy's binary rows must equal the server's own, types and all; and with its literals
/// as `?` parameters, where the values must be equal (column names and types of bare parameters
/// differ by design: `SELECT ?` is named `?` by the server).
async fn prepared_pass(
    corpus: &str,
    keyspace: &str,
    reference_db: &str,
    sharded: &mut Conn,
    reference: &mut Conn,
) -> Vec<String> {
    let mut failures = Vec::new();
    let (mut selects, mut plain, mut with_literals, mut parameterised) = (0, 0, 0, 0);
    let mut skipped = Vec::new();
    for (approx, sql) in corpus.lines().map(str::trim).filter_map(|l| {
        let (approx, sql) = match l.strip_prefix("approx: ") {
            Some(sql) => (true, sql),
            None => (false, l),
        };
        sql.to_ascii_lowercase()
            .starts_with("select")
            .then_some((approx, sql))
    }) {
        let unordered = !ordered(sql);
        let same = |w: &Prepared, g: &Prepared, columns: bool| {
            let (mut wr, mut gr) = (w.1.clone(), g.1.clone());
            if unordered {
                wr.sort();
                gr.sort();
            }
            rows_match(&wr, &gr, approx) && (!columns || w.0 == g.0)
        };
        let (proxy_sql, reference_sql) = (
            for_proxy(sql, keyspace),
            for_reference(sql, keyspace, reference_db),
        );
        selects += 1;
        match run_prepared(reference, &reference_sql, vec![]).await {
            Ok(want) => {
                plain += 1;
                match run_prepared(sharded, &proxy_sql, vec![]).await {
                    Ok(got) if same(&want, &got, true) => {}
                    got => failures.push(format!(
                        "prepared: {sql}\n  reference: {want:?}\n  proxy:     {got:?}"
                    )),
                }
            }
            Err(code) => skipped.push(format!("{sql}: the reference refuses it ({code})")),
        }
        // As the gate does: executable comments resolved as the servers behind it would.
        let server = planner::ServerKind::new(true, reference.server_version());
        let proxy_sql = planner::resolve_executable_comments(&proxy_sql, server).into_owned();
        let Some(n) = planner::normalize(&proxy_sql, false) else {
            skipped.push(format!("{sql}: not normalised"));
            continue;
        };
        if n.slots.is_empty() {
            // Nothing to make parameters of.
            continue;
        }
        with_literals += 1;
        let Some(params) = n
            .literals(&proxy_sql, &[])
            .unwrap()
            .into_iter()
            .map(|l| match l.kind {
                planner::LiteralKind::Number => Some(match l.sql.parse::<i64>() {
                    Ok(i) => mysql_async::Value::Int(i),
                    Err(_) => mysql_async::Value::Bytes(l.sql.into_bytes()),
                }),
                planner::LiteralKind::Text(t) => Some(mysql_async::Value::Bytes(t)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
        else {
            skipped.push(format!(
                "{sql}: a literal that is neither a number nor a string"
            ));
            continue;
        };
        let mut template = String::new();
        let mut chars = n.text.chars().peekable();
        while let Some(c) = chars.next() {
            template.push(c);
            if c == '?' {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
            }
        }
        let reference_template = template
            .replace(&format!("main.vip_{keyspace}"), &format!("vip_{keyspace}"))
            .replace(&format!("{keyspace}."), &format!("{reference_db}."));
        let want = match run_prepared(reference, &reference_template, params.clone()).await {
            Ok(want) => want,
            Err(code) => {
                skipped.push(format!(
                    "{reference_template}: the reference refuses it with parameters ({code})"
                ));
                continue;
            }
        };
        parameterised += 1;
        // Twice: the second execution is planned from the cache.
        for round in 0..2 {
            match run_prepared(sharded, &template, params.clone()).await {
                Ok(got) if same(&want, &got, false) => {}
                got => failures.push(format!(
                    "parameters (round {round}): {template} {params:?}\n  reference: {want:?}\n  proxy:     {got:?}"
                )),
            }
        }
    }
    // Every SELECT of the corpus runs prepared, and every one with literals runs again with
    // them as parameters; a statement that cannot is a failure to look at, not a silent skip.
    failures.extend(
        skipped
            .into_iter()
            .map(|s| format!("prepared pass skipped {s}")),
    );
    assert!(
        selects >= 400,
        "only {selects} SELECT statements in the corpus"
    );
    assert_eq!(plain, selects, "statements prepared");
    assert_eq!(
        parameterised, with_literals,
        "statements run with parameters"
    );
    assert!(
        parameterised >= 200,
        "only {parameterised} statements with parameters"
    );
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_match_a_single_database() {
    differential("two", "ref_two").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_match_a_single_database() {
    differential("four", "ref_four").await;
}

/// What a dump made by mysqldump opens and closes with: session settings, every one an
/// executable comment. Through the proxy each must set the session as on one server.
const MYSQLDUMP_PREAMBLE: &[&str] = &[
    "/*!40100 SET @@SQL_MODE='' */",
    "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */",
    "/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */",
    "/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */",
    "/*!40101 SET NAMES utf8mb4 */",
    "/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */",
    "/*!40103 SET TIME_ZONE='+00:00' */",
    "/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */",
    "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */",
    "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */",
    "/*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */",
    "/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */",
];

const MYSQLDUMP_EPILOGUE: &[&str] = &[
    "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */",
    "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */",
    "/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */",
    "/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */",
    "/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */",
    "/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */",
    "/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */",
    "/*M!100616 SET NOTE_VERBOSITY=@OLD_NOTE_VERBOSITY */",
    "/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */",
];

/// The session settings that the dump statements change, and a value they change the meaning
/// of (`NOW()` in the session's time zone is compared as an offset from UTC).
const SESSION_STATE: &str = "SELECT @@time_zone, @@unique_checks, @@foreign_key_checks, \
    @@sql_mode, @@sql_notes, @@note_verbosity, @@character_set_client, @@character_set_results, \
    @@collation_connection, @OLD_TIME_ZONE, @OLD_SQL_MODE, @OLD_SQL_NOTES, @OLD_NOTE_VERBOSITY, \
    TIMESTAMPDIFF(HOUR, UTC_TIMESTAMP(), NOW())";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysqldump_session_statements_match_a_single_database() {
    let proxy = proxy().await;
    let mut sharded = client(&proxy, Some("two")).await;
    let mut reference = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&cluster().servers[3].url("ref_two")).unwrap(),
    )
    .await
    .unwrap();
    // Away from the defaults first, so that each statement has something to change.
    for conn in [&mut sharded, &mut reference] {
        conn.query_drop("SET time_zone = '+05:00', sql_mode = 'STRICT_ALL_TABLES'")
            .await
            .unwrap();
    }
    let mut states = Vec::new();
    for (part, stmts) in [
        ("preamble", MYSQLDUMP_PREAMBLE),
        ("epilogue", MYSQLDUMP_EPILOGUE),
    ] {
        for sql in stmts {
            let want = run(&mut reference, sql).await;
            let got = run(&mut sharded, sql).await;
            assert!(matches!(want, Answer::Affected(..)), "{sql}: {want:?}");
            assert_eq!(got, want, "{sql}");
        }
        let want = run(&mut reference, SESSION_STATE).await;
        let got = run(&mut sharded, SESSION_STATE).await;
        assert_eq!(got, want, "the session after the {part}");
        states.push(want);
    }
    assert_ne!(
        states[0], states[1],
        "the dump's statements changed nothing"
    );
    // Around each table's rows a dump has `ALTER TABLE t DISABLE KEYS` (no-ops for InnoDB,
    // with a note), which the parser does not know.
    for conn in [&mut sharded, &mut reference] {
        conn.query_drop("DROP TABLE IF EXISTS meta").await.unwrap();
        conn.query_drop("CREATE TABLE meta (id BIGINT PRIMARY KEY)")
            .await
            .unwrap();
    }
    for sql in [
        "/*!40000 ALTER TABLE `meta` DISABLE KEYS */",
        "/*!40000 ALTER TABLE `meta` ENABLE KEYS */",
    ] {
        let want = run(&mut reference, sql).await;
        let got = run(&mut sharded, sql).await;
        assert!(matches!(want, Answer::Affected(..)), "{sql}: {want:?}");
        assert!(matches!(got, Answer::Affected(..)), "{sql}: {got:?}");
    }
    proxy.stop().await;
}
