//! Lookup vindexes end to end: `users.email` maps to a keyspace ID through `main.email_lookup`.

mod common;

use std::collections::BTreeMap;

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use vschema::{KeyValue, VindexKind};

fn ksid(id: i64) -> Vec<u8> {
    VindexKind::Hash.map(&KeyValue::Int(id)).unwrap().0
}

async fn lookup_rows(main: &mut Conn) -> BTreeMap<String, Vec<u8>> {
    let rows: Vec<(String, Vec<u8>)> = main
        .query("SELECT email, keyspace_id FROM email_lookup")
        .await
        .unwrap();
    rows.into_iter().collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sql` finds row `id` of keyspace `two`, reaching only the shard that holds it.
async fn found_on_its_shard(proxy: &shardgate::Running, c: &mut Conn, sql: &str, id: i64) {
    let before = counters(proxy);
    let found: Option<i64> = c.query_first(sql).await.unwrap();
    assert_eq!(found, Some(id), "{sql}");
    let after = counters(proxy);
    let reached: Vec<&String> = after
        .iter()
        .filter(|(k, v)| k.starts_with("two/") && before.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(reached, [&format!("two/{}", owner("two", id))], "{sql}");
}

fn code(e: mysql_async::Error) -> (u16, String) {
    match e {
        mysql_async::Error::Server(s) => (s.code, s.state),
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_vindex_routes_and_stays_consistent() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("main")).await;
    c.query_drop("DROP TABLE IF EXISTS email_lookup")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE email_lookup (email VARCHAR(100) PRIMARY KEY, keyspace_id VARBINARY(16) NOT NULL)").await.unwrap();
    c.query_drop("USE two").await.unwrap();
    c.query_drop("DROP TABLE IF EXISTS users").await.unwrap();
    c.query_drop("CREATE TABLE users (user_id BIGINT PRIMARY KEY, email VARCHAR(100) NULL, name VARCHAR(50) NOT NULL, UNIQUE KEY (email))").await.unwrap();
    let mut main = shard_conn("main", "0").await;

    // Inserts write one lookup row per non-NULL email, pointing at the row's keyspace ID.
    let rows: Vec<String> = (1..=20)
        .map(|i| format!("({i}, 'user{i}@example.com', 'name {i}')"))
        .collect();
    c.query_drop(format!(
        "INSERT INTO users (user_id, email, name) VALUES {}, (21, NULL, 'no email')",
        rows.join(", ")
    ))
    .await
    .unwrap();
    let lookup = lookup_rows(&mut main).await;
    assert_eq!(lookup.len(), 20);
    for i in 1..=20 {
        assert_eq!(lookup[&format!("user{i}@example.com")], ksid(i));
    }

    // A duplicate whose owner lives on another shard is still a duplicate.
    let other = (22..100)
        .find(|i| owner("two", *i) != owner("two", 1))
        .unwrap();
    let err = c
        .query_drop(format!(
            "INSERT INTO users (user_id, email, name) VALUES ({other}, 'user1@example.com', 'dup')"
        ))
        .await
        .unwrap_err();
    assert_eq!(code(err), (1062, "23000".into()));
    let n: Option<i64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM users WHERE user_id = {other}"
        ))
        .await
        .unwrap();
    assert_eq!(n, Some(0));
    assert_eq!(
        lookup_rows(&mut main).await["user1@example.com"],
        ksid(1),
        "the lookup still points at the owner"
    );
    // Two rows of one statement with the same email: refused before anything is written.
    let err = c.query_drop("INSERT INTO users (user_id, email, name) VALUES (90, 'same@x', 'a'), (91, 'SAME@x', 'b')").await.unwrap_err();
    assert_eq!(code(err).0, 1062);

    // WHERE email = ... reaches exactly the owning shard (plus the lookup table).
    let before = counters(&proxy);
    let name: Option<String> = c
        .query_first("SELECT name FROM users WHERE email = 'USER7@example.com'")
        .await
        .unwrap();
    assert_eq!(
        name.as_deref(),
        Some("name 7"),
        "found case-insensitively, like the column"
    );
    let after = counters(&proxy);
    let touched: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before[*k] != **v)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        touched,
        [&"main/0".to_string(), &format!("two/{}", owner("two", 7))]
    );
    let none: Option<String> = c
        .query_first("SELECT name FROM users WHERE email = 'nobody@example.com'")
        .await
        .unwrap();
    assert_eq!(none, None);

    // DELETE removes the lookup row; the email can then be used again by another user.
    c.query_drop("DELETE FROM users WHERE email = 'user3@example.com'")
        .await
        .unwrap();
    assert!(!lookup_rows(&mut main)
        .await
        .contains_key("user3@example.com"));
    c.query_drop(format!(
        "INSERT INTO users (user_id, email, name) VALUES ({other}, 'user3@example.com', 'reuse')"
    ))
    .await
    .unwrap();
    assert_eq!(
        lookup_rows(&mut main).await["user3@example.com"],
        ksid(other)
    );
    // A scatter delete removes every touched row's lookup rows.
    c.query_drop("DELETE FROM users WHERE name IN ('name 4', 'name 5')")
        .await
        .unwrap();
    let lookup = lookup_rows(&mut main).await;
    assert!(!lookup.contains_key("user4@example.com") && !lookup.contains_key("user5@example.com"));

    // An insert that fails after its lookup row was written takes the lookup row back with
    // it: the statement ran as one transaction.
    let err = c
        .query_drop(
            "INSERT INTO users (user_id, email, name) VALUES (40, 'ghost@example.com', NULL)",
        )
        .await
        .unwrap_err();
    assert_eq!(code(err).0, 1048, "NOT NULL name");
    assert!(!lookup_rows(&mut main)
        .await
        .contains_key("ghost@example.com"));
    // A lookup row without its owner (as a crash between the two commits leaves it)...
    main.query_drop(format!(
        "INSERT INTO email_lookup (email, keyspace_id) VALUES ('ghost@example.com', X'{}')",
        hex(&ksid(40))
    ))
    .await
    .unwrap();
    // ...is taken over by a later insert of the same email (the consistent part).
    let taker = (41..200)
        .find(|i| owner("two", *i) != owner("two", 40))
        .unwrap();
    c.query_drop(format!(
        "INSERT INTO users (user_id, email, name) VALUES ({taker}, 'ghost@example.com', 'real')"
    ))
    .await
    .unwrap();
    assert_eq!(
        lookup_rows(&mut main).await["ghost@example.com"],
        ksid(taker)
    );
    let name: Option<String> = c
        .query_first("SELECT name FROM users WHERE email = 'ghost@example.com'")
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("real"));

    // UPDATE of the email moves its lookup row; an email another user holds is refused.
    c.query_drop("UPDATE users SET email = 'renamed@example.com' WHERE user_id = 2")
        .await
        .unwrap();
    let lookup = lookup_rows(&mut main).await;
    assert!(!lookup.contains_key("user2@example.com"));
    assert_eq!(lookup["renamed@example.com"], ksid(2));
    let id: Option<i64> = c
        .query_first("SELECT user_id FROM users WHERE email = 'renamed@example.com'")
        .await
        .unwrap();
    assert_eq!(id, Some(2));
    let err = c
        .query_drop("UPDATE users SET email = 'user6@example.com' WHERE user_id = 8")
        .await
        .unwrap_err();
    assert_eq!(code(err), (1062, "23000".into()));
    assert_eq!(
        lookup_rows(&mut main).await["user8@example.com"],
        ksid(8),
        "unchanged after the refusal"
    );
    // Changing only the case keeps the lookup row (same key under the column's collation).
    c.query_drop("UPDATE users SET email = 'USER9@example.com' WHERE user_id = 9")
        .await
        .unwrap();
    let lookup = lookup_rows(&mut main).await;
    assert_eq!(
        lookup
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("user9@example.com"))
            .count(),
        1
    );
    // Setting it to NULL releases it.
    c.query_drop("UPDATE users SET email = NULL WHERE user_id = 10")
        .await
        .unwrap();
    assert!(!lookup_rows(&mut main)
        .await
        .contains_key("user10@example.com"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_table_in_a_sharded_keyspace() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    c.query_drop("DROP TABLE IF EXISTS handle_lookup")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE handle_lookup (handle VARCHAR(50) PRIMARY KEY, keyspace_id VARBINARY(16) NOT NULL)").await.unwrap();
    c.query_drop("USE four").await.unwrap();
    c.query_drop("DROP TABLE IF EXISTS accounts").await.unwrap();
    c.query_drop(
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, handle VARCHAR(50) NOT NULL UNIQUE)",
    )
    .await
    .unwrap();
    let rows: Vec<String> = (1..=12).map(|i| format!("({i}, 'Handle{i}')")).collect();
    c.query_drop(format!(
        "INSERT INTO accounts (id, handle) VALUES {}",
        rows.join(", ")
    ))
    .await
    .unwrap();
    // Each lookup row is on the `two` shard its own vindex (unicode_loose_xxhash) picks.
    let two = cluster().config.vschema.keyspace("two").unwrap();
    let mut found = 0;
    for shard in &two.shards {
        let mut direct = shard_conn("two", &shard.name).await;
        let rows: Vec<(String, Vec<u8>)> = direct
            .query("SELECT handle, keyspace_id FROM handle_lookup")
            .await
            .unwrap();
        for (handle, k) in rows {
            let own = VindexKind::UnicodeLooseXxhash
                .map(&KeyValue::Text(handle.clone().into_bytes()))
                .unwrap();
            assert_eq!(two.shards[two.shard_for(&own)].name, shard.name, "{handle}");
            let id: i64 = handle.trim_start_matches("Handle").parse().unwrap();
            assert_eq!(k, ksid(id));
            found += 1;
        }
    }
    assert_eq!(found, 12);
    let id: Option<i64> = c
        .query_first("SELECT id FROM accounts WHERE handle = 'Handle5'")
        .await
        .unwrap();
    assert_eq!(id, Some(5));
    let err = c
        .query_drop("INSERT INTO accounts (id, handle) VALUES (99, 'Handle5')")
        .await
        .unwrap_err();
    assert_eq!(code(err), (1062, "23000".into()));
    c.query_drop("DELETE FROM accounts WHERE handle = 'Handle5'")
        .await
        .unwrap();
    c.query_drop("INSERT INTO accounts (id, handle) VALUES (99, 'Handle5')")
        .await
        .unwrap();
    let id: Option<i64> = c
        .query_first("SELECT id FROM accounts WHERE handle = 'Handle5'")
        .await
        .unwrap();
    assert_eq!(id, Some(99));
    proxy.stop().await;
}

/// Two inserts of one email whose lookup row is an orphan (its owner row is gone), at the same
/// moment: exactly one takes the orphan over, the other gets 1062. Repeated so that the race is
/// really run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_race_for_an_orphan() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("main")).await;
    c.query_drop("CREATE TABLE IF NOT EXISTS race_lookup (email VARCHAR(100) PRIMARY KEY, keyspace_id VARBINARY(16) NOT NULL)").await.unwrap();
    c.query_drop("USE four").await.unwrap();
    c.query_drop("DROP TABLE IF EXISTS racers").await.unwrap();
    c.query_drop("CREATE TABLE racers (id BIGINT PRIMARY KEY, email VARCHAR(100))")
        .await
        .unwrap();
    let mut a = client(&proxy, Some("four")).await;
    let mut b = client(&proxy, Some("four")).await;
    let mut main = shard_conn("main", "0").await;
    let shard_of = |id: i64| owner("four", id);
    const ROUNDS: i64 = 200;
    let mut winners = [0; 2];
    for round in 0..ROUNDS {
        let email = format!("race{round}@example.com");
        // The orphan points at an id whose row does not exist.
        main.query_drop(format!(
            "INSERT INTO race_lookup (email, keyspace_id) VALUES ('{email}', X'{}')",
            hex(&ksid(1_000_000 + round))
        ))
        .await
        .unwrap();
        // Two ids on different shards, so that the owner rows cannot collide by primary key.
        let ida = 10 * round + 1;
        let idb = (10 * round + 2..10 * round + 10)
            .find(|i| shard_of(*i) != shard_of(ida))
            .unwrap();
        let insert = |id: i64| format!("INSERT INTO racers (id, email) VALUES ({id}, '{email}')");
        let (ra, rb) = tokio::join!(a.query_drop(insert(ida)), b.query_drop(insert(idb)));
        let outcome = match (ra, rb) {
            (Ok(()), Err(e)) => {
                assert_eq!(code(e), (1062, "23000".into()), "round {round}");
                0
            }
            (Err(e), Ok(())) => {
                assert_eq!(code(e), (1062, "23000".into()), "round {round}");
                1
            }
            other => panic!("round {round}: exactly one insert must win: {other:?}"),
        };
        winners[outcome] += 1;
        let winner = [ida, idb][outcome];
        let holders: Vec<i64> = c
            .query(format!("SELECT id FROM racers WHERE email = '{email}'"))
            .await
            .unwrap();
        assert_eq!(holders, [winner], "round {round}");
        let (k,): (Vec<u8>,) = main
            .query_first(format!(
                "SELECT keyspace_id FROM race_lookup WHERE email = '{email}'"
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            k,
            ksid(winner),
            "round {round}: the lookup row points at the winner"
        );
    }
    eprintln!("winners: first {}, second {}", winners[0], winners[1]);
    proxy.stop().await;
}

/// A `lookup_unique` vindex (not consistent): lookup rows are written with their owners and
/// removed with them, queries by the column go to the one shard the lookup names, a taken
/// value is refused, and, unlike the consistent kind, a lookup row whose owner is gone is not
/// taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_unique_lookup_vindex() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("main")).await;
    c.query_drop("DROP TABLE IF EXISTS code_lookup")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE code_lookup (code VARCHAR(20) PRIMARY KEY, keyspace_id VARBINARY(16) NOT NULL)").await.unwrap();
    c.query_drop("USE two").await.unwrap();
    c.query_drop("DROP TABLE IF EXISTS coded").await.unwrap();
    c.query_drop("CREATE TABLE coded (id BIGINT PRIMARY KEY, code VARCHAR(20))")
        .await
        .unwrap();
    let rows: Vec<String> = (1..=8).map(|i| format!("({i}, 'c{i}')")).collect();
    c.query_drop(format!(
        "INSERT INTO coded (id, code) VALUES {}",
        rows.join(", ")
    ))
    .await
    .unwrap();
    let mut main = shard_conn("main", "0").await;
    let lookup: BTreeMap<String, Vec<u8>> = main
        .query::<(String, Vec<u8>), _>("SELECT code, keyspace_id FROM code_lookup")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(lookup.len(), 8);
    for i in 1..=8 {
        assert_eq!(lookup[&format!("c{i}")], ksid(i), "c{i}");
    }
    // A query by code reaches one shard: the one holding the row.
    for i in [1, 5] {
        found_on_its_shard(
            &proxy,
            &mut c,
            &format!("SELECT id FROM coded WHERE code = 'c{i}'"),
            i,
        )
        .await;
    }
    let (code_, _) = code(
        c.query_drop("INSERT INTO coded (id, code) VALUES (20, 'c3')")
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, 1062);
    c.query_drop("DELETE FROM coded WHERE id = 4")
        .await
        .unwrap();
    let gone: Option<String> = main
        .query_first("SELECT code FROM code_lookup WHERE code = 'c4'")
        .await
        .unwrap();
    assert_eq!(gone, None);
    // A lookup row without its owner is not reclaimed by this kind of vindex.
    main.query_drop(format!(
        "INSERT INTO code_lookup (code, keyspace_id) VALUES ('orphan', X'{}')",
        hex(&ksid(77))
    ))
    .await
    .unwrap();
    let (code_, _) = code(
        c.query_drop("INSERT INTO coded (id, code) VALUES (21, 'orphan')")
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, 1062);
    proxy.stop().await;
}

/// `lookup_hash_unique`, as in Vitess's compose example: the lookup row holds the owner's id
/// (the integer the hash vindex maps to its keyspace ID), not the keyspace ID's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_hash_unique_vindex() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("main")).await;
    c.query_drop("DROP TABLE IF EXISTS nick_lookup")
        .await
        .unwrap();
    c.query_drop(
        "CREATE TABLE nick_lookup (nick VARCHAR(20) PRIMARY KEY, id BIGINT UNSIGNED NOT NULL)",
    )
    .await
    .unwrap();
    c.query_drop("USE two").await.unwrap();
    c.query_drop("DROP TABLE IF EXISTS nicked").await.unwrap();
    c.query_drop("CREATE TABLE nicked (id BIGINT PRIMARY KEY, nick VARCHAR(20))")
        .await
        .unwrap();
    let rows: Vec<String> = (1..=8).map(|i| format!("({i}, 'n{i}')")).collect();
    c.query_drop(format!(
        "INSERT INTO nicked (id, nick) VALUES {}",
        rows.join(", ")
    ))
    .await
    .unwrap();
    let mut main = shard_conn("main", "0").await;
    let lookup: BTreeMap<String, u64> = main
        .query::<(String, u64), _>("SELECT nick, id FROM nick_lookup")
        .await
        .unwrap()
        .into_iter()
        .collect();
    let want: BTreeMap<String, u64> = (1..=8).map(|i| (format!("n{i}"), i)).collect();
    assert_eq!(lookup, want);
    // Found through the lookup, on the one shard that holds the row.
    for i in [2, 7] {
        found_on_its_shard(
            &proxy,
            &mut c,
            &format!("SELECT id FROM nicked WHERE nick = 'n{i}'"),
            i,
        )
        .await;
    }
    let (code_, _) = code(
        c.query_drop("INSERT INTO nicked (id, nick) VALUES (20, 'n3')")
            .await
            .unwrap_err(),
    );
    assert_eq!(code_, 1062);
    // Changing and deleting the owner row moves and removes its lookup row.
    c.query_drop("UPDATE nicked SET nick = 'renamed' WHERE id = 5")
        .await
        .unwrap();
    c.query_drop("DELETE FROM nicked WHERE id = 4")
        .await
        .unwrap();
    let left: Vec<(String, u64)> = main
        .query("SELECT nick, id FROM nick_lookup WHERE id IN (4, 5) ORDER BY id")
        .await
        .unwrap();
    assert_eq!(left, [("renamed".to_string(), 5)]);
    let id: Option<i64> = c
        .query_first("SELECT id FROM nicked WHERE nick = 'renamed'")
        .await
        .unwrap();
    assert_eq!(id, Some(5));
    proxy.stop().await;
}

/// Under sql_mode NO_BACKSLASH_ESCAPES a backslash in a string is itself. A value bound as a
/// parameter writes the lookup row its owner row holds and is found through it; statement text
/// with a backslash, which the planner would read with escapes, is refused rather than routed
/// by another value than the shards store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_rows_under_no_backslash_escapes() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("main")).await;
    c.query_drop("DROP TABLE IF EXISTS code_lookup")
        .await
        .unwrap();
    c.query_drop(
        "CREATE TABLE code_lookup (code VARCHAR(50) PRIMARY KEY, keyspace_id VARBINARY(16) NOT NULL)",
    )
    .await
    .unwrap();
    c.query_drop("USE four").await.unwrap();
    c.query_drop("DROP TABLE IF EXISTS coded").await.unwrap();
    c.query_drop("CREATE TABLE coded (id BIGINT PRIMARY KEY, code VARCHAR(50) NOT NULL)")
        .await
        .unwrap();
    c.query_drop("SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
        .await
        .unwrap();
    let value = r"a\b'c\";
    c.exec_drop("INSERT INTO coded (id, code) VALUES (?, ?)", (7, value))
        .await
        .unwrap();
    let mut main = shard_conn("main", "0").await;
    let lookup: Vec<(String, Vec<u8>)> = main
        .query("SELECT code, keyspace_id FROM code_lookup")
        .await
        .unwrap();
    assert_eq!(lookup, [(value.to_string(), ksid(7))]);
    let found: Option<(i64, String)> = c
        .exec_first("SELECT id, code FROM coded WHERE code = ?", (value,))
        .await
        .unwrap();
    assert_eq!(found, Some((7, value.to_string())));
    let (refused, _) = code(
        c.query_drop(r"SELECT id FROM coded WHERE code = 'a\b''c\'")
            .await
            .unwrap_err(),
    );
    assert_eq!(refused, 1235);
    // In the default mode the same value is written with escapes, and found.
    c.query_drop("SET sql_mode = ''").await.unwrap();
    let found: Option<i64> = c
        .query_first(r"SELECT id FROM coded WHERE code = 'a\\b\'c\\'")
        .await
        .unwrap();
    assert_eq!(found, Some(7));
    proxy.stop().await;
}
