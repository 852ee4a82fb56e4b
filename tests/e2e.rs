//! End to end over real MariaDB shards, through real clients.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn load_and_check_placement(keyspace: &str) {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some(keyspace)).await;
    c.query_drop("DROP TABLE IF EXISTS placed").await.unwrap();
    c.query_drop("CREATE TABLE placed (id BIGINT PRIMARY KEY, label VARCHAR(40))")
        .await
        .unwrap();
    // Ids include negatives and values near the ends of the range.
    let ids: Vec<i64> = (-500..500).map(|i| i * 7919 + (i % 3)).collect();
    for chunk in ids.chunks(100) {
        let values: Vec<String> = chunk
            .iter()
            .map(|id| format!("({id}, 'row {id}')"))
            .collect();
        let result = c
            .query_iter(format!(
                "INSERT INTO placed (id, label) VALUES {}",
                values.join(", ")
            ))
            .await
            .unwrap();
        assert_eq!(result.affected_rows(), chunk.len() as u64);
        drop(result);
    }
    let ks = cluster().config.vschema.keyspace(keyspace).unwrap();
    let mut seen = BTreeSet::new();
    for shard in &ks.shards {
        let mut direct = shard_conn(keyspace, &shard.name).await;
        let rows: Vec<(i64, String)> = direct.query("SELECT id, label FROM placed").await.unwrap();
        assert!(!rows.is_empty(), "shard {} got no rows", shard.name);
        for (id, label) in rows {
            assert_eq!(
                owner(keyspace, id),
                shard.name,
                "row {id} is on the wrong shard"
            );
            assert_eq!(label, format!("row {id}"));
            assert!(seen.insert(id), "row {id} is on two shards");
        }
    }
    assert_eq!(
        seen,
        ids.iter().copied().collect::<BTreeSet<_>>(),
        "every row is on exactly one shard"
    );
    // And the proxy sees all of them.
    let count: Vec<i64> = c.query("SELECT id FROM placed").await.unwrap();
    assert_eq!(count.len(), ids.len());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_land_on_their_vindex_shard_with_two_shards() {
    load_and_check_placement("two").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_land_on_their_vindex_shard_with_four_shards() {
    load_and_check_placement("four").await;
}

/// Shards whose counter moved between two snapshots.
fn touched(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| before[*k] != **v)
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_select_and_in_list_reach_only_owning_shards_and_ddl_reaches_all() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("four")).await;
    let before = counters(&proxy);
    c.query_drop("DROP TABLE IF EXISTS probe").await.unwrap();
    c.query_drop("CREATE TABLE probe (id BIGINT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    let after = counters(&proxy);
    assert_eq!(
        touched(&before, &after),
        ["four/-40", "four/40-80", "four/80-c0", "four/c0-"],
        "DDL reaches every shard"
    );
    for shard in ["-40", "40-80", "80-c0", "c0-"] {
        let mut direct = shard_conn("four", shard).await;
        let tables: Vec<String> = direct.query("SHOW TABLES LIKE 'probe'").await.unwrap();
        assert_eq!(tables, ["probe"], "table created on shard {shard}");
    }
    c.query_drop(
        "INSERT INTO probe (id, v) VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50), (6, 60)",
    )
    .await
    .unwrap();

    for id in 1..=6i64 {
        let before = counters(&proxy);
        let v: Option<i64> = c
            .query_first(format!("SELECT v FROM probe WHERE id = {id}"))
            .await
            .unwrap();
        assert_eq!(v, Some(id * 10));
        assert_eq!(
            touched(&before, &counters(&proxy)),
            [format!("four/{}", owner("four", id))],
            "point select on id {id}"
        );
    }

    let before = counters(&proxy);
    let mut vs: Vec<i64> = c
        .query("SELECT v FROM probe WHERE id IN (1, 4)")
        .await
        .unwrap();
    vs.sort();
    assert_eq!(vs, [10, 40]);
    let mut want: Vec<String> = [owner("four", 1), owner("four", 4)]
        .iter()
        .map(|s| format!("four/{s}"))
        .collect();
    want.sort();
    want.dedup();
    assert_eq!(
        touched(&before, &counters(&proxy)),
        want,
        "IN list reaches only the owning shards"
    );

    let before = counters(&proxy);
    let all: Vec<i64> = c.query("SELECT v FROM probe").await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(
        touched(&before, &counters(&proxy)).len(),
        4,
        "scatter reaches every shard"
    );
    proxy.stop().await;
}

/// The shards' column lists: an INSERT without a column list fills the visible columns in
/// table order; unqualified columns of a join across shards are resolved with them, and DDL
/// through the proxy makes the proxy look again: a column added to the other table makes the
/// name ambiguous (1052), as in MySQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_lists_from_the_shards_serve_inserts_and_joins_and_follow_ddl() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("four")).await;
    for sql in [
        "DROP TABLE IF EXISTS catalog_a, catalog_b",
        "CREATE TABLE catalog_a (id BIGINT PRIMARY KEY, label VARCHAR(10), \
         hidden INT INVISIBLE DEFAULT 7)",
        "CREATE TABLE catalog_b (id BIGINT PRIMARY KEY, a_id BIGINT)",
        // Without a column list: the visible columns, in table order.
        "INSERT INTO catalog_a VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        "INSERT INTO catalog_b (id, a_id) VALUES (10, 1), (11, 3), (12, 3)",
    ] {
        c.query_drop(sql).await.unwrap();
    }
    for id in 1..=3i64 {
        let mut direct = shard_conn("four", &owner("four", id)).await;
        let row: Option<(String, i64)> = direct
            .query_first(format!(
                "SELECT label, hidden FROM catalog_a WHERE id = {id}"
            ))
            .await
            .unwrap();
        assert_eq!(row.map(|r| r.1), Some(7), "row {id} on its vindex shard");
    }
    // b's rows live by b.id, not by a_id: a join across shards.
    let join = "SELECT label, b.id FROM catalog_a a JOIN catalog_b b ON a_id = a.id ORDER BY b.id";
    for _ in 0..2 {
        let rows: Vec<(String, i64)> = c.query(join).await.unwrap();
        assert_eq!(
            rows,
            [
                ("one".into(), 10),
                ("three".into(), 11),
                ("three".into(), 12)
            ]
        );
    }
    c.query_drop("ALTER TABLE catalog_b ADD COLUMN label VARCHAR(10)")
        .await
        .unwrap();
    let e = c.query_drop(join).await.unwrap_err();
    assert_eq!(server_code(&e), Some(1052), "{e}");
    assert!(
        e.to_string().contains("'label' in field list is ambiguous"),
        "{e}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_are_refused() {
    let proxy = proxy().await;
    for url in [
        format!("mysql://app:wrong@{}", proxy.addr),
        format!("mysql://nobody:secret@{}", proxy.addr),
    ] {
        let err = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
            .await
            .unwrap_err();
        assert_eq!(server_code(&err), Some(1045), "{err}");
        if let mysql_async::Error::Server(s) = &err {
            assert_eq!(s.state, "28000");
        }
    }
    let err = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&format!("mysql://app:secret@{}/nosuch", proxy.addr)).unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(server_code(&err), Some(1049), "{err}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_the_connection_usable() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    c.query_drop("CREATE TABLE IF NOT EXISTS misc (id BIGINT PRIMARY KEY, label VARCHAR(10))")
        .await
        .unwrap();
    let cases: &[(&str, u16, &str)] = &[
        ("SELEC 1", 1064, "42000"),
        ("SELECT * FROM nosuch", 1146, "42S02"),
        ("SELECT JSON_ARRAYAGG(label) FROM misc", 1235, "42000"),
        (
            "SELECT COUNT(DISTINCT id), COUNT(DISTINCT label) FROM misc",
            1235,
            "42000",
        ),
        ("INSERT INTO misc (label) VALUES ('x')", 1364, "HY000"),
        ("SET GLOBAL max_connections = 5", 1235, "42000"),
        ("USE nosuch", 1049, "42000"),
        ("SELECT nosuchcolumn FROM misc WHERE id = 1", 1054, "42S22"),
    ];
    for (sql, code, state) in cases {
        let err = c.query_drop(*sql).await.unwrap_err();
        let mysql_async::Error::Server(s) = &err else {
            panic!("{sql}: {err}")
        };
        assert_eq!(
            (s.code, s.state.as_str()),
            (*code, *state),
            "{sql}: {}",
            s.message
        );
        let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1), "connection still works after {sql}");
    }
    // A backend error passes through with its code, prefixed by the shard name.
    let err = c
        .query_drop("SELECT nosuchcolumn FROM misc WHERE id = 1")
        .await
        .unwrap_err();
    let mysql_async::Error::Server(s) = &err else {
        panic!()
    };
    assert!(s.message.starts_with("shard "), "{}", s.message);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_chatter_is_answered_as_mysql_would() {
    let proxy = proxy().await;
    let mut c = client(&proxy, None).await;
    let comment: Option<String> = c
        .query_first("SELECT @@version_comment LIMIT 1")
        .await
        .unwrap();
    assert!(comment.unwrap().contains("shardgate"));
    let version: Option<String> = c.query_first("SELECT @@version").await.unwrap();
    assert!(version.unwrap().starts_with("8.0."));
    let db: Option<Option<String>> = c.query_first("SELECT DATABASE()").await.unwrap();
    assert_eq!(db, Some(None));
    c.query_drop("SET NAMES utf8mb4").await.unwrap();
    c.query_drop("SET autocommit=1").await.unwrap();
    c.query_drop("USE four").await.unwrap();
    let db: Option<String> = c.query_first("SELECT DATABASE()").await.unwrap();
    assert_eq!(db.as_deref(), Some("four"));
    let dbs: Vec<String> = c.query("SHOW DATABASES").await.unwrap();
    assert_eq!(dbs, ["four", "main", "sbtest", "two"]);
    let port: Option<u16> = c.query_first("SELECT @@port").await.unwrap();
    assert_eq!(
        port,
        Some(proxy.addr.port()),
        "the proxy answers for itself, not a shard"
    );
    c.query_drop("CREATE TABLE IF NOT EXISTS chatter (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    let tables: Vec<String> = c.query("SHOW TABLES").await.unwrap();
    assert!(tables.iter().any(|t| t == "chatter"), "{tables:?}");
    assert!(tables.iter().all(|t| !t.is_empty()), "{tables:?}");
    c.ping().await.unwrap();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_cli_connects_and_queries() {
    let proxy = proxy().await;
    let port = proxy.addr.port().to_string();
    let out = tokio::process::Command::new("mysql")
        .args([
            "-h127.0.0.1",
            "-P",
            &port,
            "-uapp",
            "-psecret",
            "--batch",
            "two",
            "-e",
            "SELECT 40 + 2 AS answer; SELECT DATABASE(); SHOW DATABASES",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("mysql did not finish within 60 s")
        .expect("the mysql client is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mysql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "answer\n42\nDATABASE()\ntwo\nDatabase\nfour\nmain\nsbtest\ntwo\n"
    );
    let bad = tokio::process::Command::new("mysql")
        .args([
            "-h127.0.0.1",
            "-P",
            &port,
            "-uapp",
            "-pwrong",
            "-e",
            "SELECT 1",
        ])
        .kill_on_drop(true)
        .output();
    let bad = tokio::time::timeout(std::time::Duration::from_secs(60), bad)
        .await
        .expect("mysql did not finish within 60 s")
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ERROR 1045 (28000)"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_over_16_mib_round_trip() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("main")).await;
    c.query_drop("CREATE TABLE IF NOT EXISTS big (id INT PRIMARY KEY, body LONGTEXT)")
        .await
        .unwrap();
    c.query_drop("DELETE FROM big").await.unwrap();
    let body = "x".repeat(17 << 20);
    c.query_drop(format!("INSERT INTO big (id, body) VALUES (1, '{body}')"))
        .await
        .unwrap();
    let got: Option<String> = c
        .query_first("SELECT body FROM big WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(got.map(|b| b.len()), Some(body.len()));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_unknown_commands_do_not_stop_the_proxy() {
    let proxy = proxy().await;
    // Random bytes instead of a handshake response.
    let mut raw = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut greeting = vec![0u8; 256];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), raw.read(&mut greeting))
        .await
        .expect("the greeting within 30 s")
        .unwrap();
    raw.write_all(&[0x05, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, 0x00])
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        raw.read_to_end(&mut reply),
    )
    .await;
    assert!(
        reply.len() > 4 && reply[4] == 0xff,
        "an ERR packet, then close: {reply:?}"
    );

    // An unknown command after login gets 1047 and the connection stays usable.
    let mut raw = login_raw(&proxy).await;
    let reply = command(&mut raw, &[0x0d]).await; // COM_DEBUG
    assert_eq!(reply[0], 0xff);
    assert_eq!(u16::from_le_bytes([reply[1], reply[2]]), 1047);
    let reply = command(&mut raw, &[0x0e]).await; // COM_PING
    assert_eq!(reply[0], 0x00, "still serving after the unknown command");
    // COM_STATISTICS answers with bare text; COM_SET_OPTION with an EOF packet.
    let reply = command(&mut raw, &[0x09]).await;
    assert!(
        String::from_utf8_lossy(&reply).starts_with("Uptime: "),
        "{reply:?}"
    );
    let reply = command(&mut raw, &[0x1b, 0x01, 0x00]).await;
    assert_eq!(reply[0], 0xfe);
    // COM_FIELD_LIST: the table's column definitions, then the end of the list.
    let reply = command(
        &mut raw,
        &[0x03]
            .iter()
            .chain(b"USE two")
            .copied()
            .collect::<Vec<u8>>(),
    )
    .await;
    assert_eq!(reply[0], 0x00);
    command(
        &mut raw,
        &[0x03]
            .iter()
            .chain(b"CREATE TABLE IF NOT EXISTS misc (id BIGINT PRIMARY KEY, label VARCHAR(10))")
            .copied()
            .collect::<Vec<u8>>(),
    )
    .await;
    write_packet(
        &mut raw,
        0,
        &[0x04].iter().chain(b"misc\0").copied().collect::<Vec<u8>>(),
    )
    .await;
    let mut names = Vec::new();
    loop {
        let p = read_packet(&mut raw).await;
        if p[0] == 0xfe && p.len() < 9 {
            break;
        }
        assert_eq!(&p[..4], b"\x03def", "a column definition: {p:?}");
        // catalog, schema, table, org_table, then the name.
        let mut at = 0;
        for _ in 0..4 {
            at += 1 + p[at] as usize;
        }
        names.push(String::from_utf8_lossy(&p[at + 1..at + 1 + p[at] as usize]).into_owned());
    }
    assert!(names.starts_with(&["id".to_string()]), "{names:?}");

    let mut c = client(&proxy, None).await;
    let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
    drop(c);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_over_max_allowed_packet_is_refused() {
    let mut config = cluster().config.clone();
    config.server.max_packet_size = 1 << 20;
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let mut raw = login_raw(&proxy).await;
    let mut packet = vec![0u8; 4 + (2 << 20)];
    packet[..3].copy_from_slice(&(2u32 << 20).to_le_bytes()[..3]);
    packet[4] = 0x03; // COM_QUERY
    let _ = raw.write_all(&packet).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        raw.read_to_end(&mut reply),
    )
    .await;
    assert!(reply.len() > 6 && reply[4] == 0xff, "{reply:?}");
    assert_eq!(u16::from_le_bytes([reply[5], reply[6]]), 1153);
    let mut c = client(&proxy, None).await;
    let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1), "other clients are still served");
    proxy.stop().await;
}

/// SHOW WARNINGS after a statement that ran on several shards lists the warnings of every
/// shard, and the statement's warning count adds them up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_warnings_gathers_the_shards_warnings() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    c.query_drop("CREATE TABLE IF NOT EXISTS warned (id BIGINT PRIMARY KEY, v VARCHAR(10))")
        .await
        .unwrap();
    let (a, b) = ids_on_two_shards(500);
    c.query_drop(format!("DELETE FROM warned WHERE id IN ({a}, {b})"))
        .await
        .unwrap();
    c.query_drop(format!(
        "INSERT INTO warned (id, v) VALUES ({a}, 'x{a}'), ({b}, 'x{b}')"
    ))
    .await
    .unwrap();
    let values: Vec<i64> = c
        .query(format!(
            "SELECT CAST(v AS SIGNED) FROM warned WHERE id IN ({a}, {b})"
        ))
        .await
        .unwrap();
    assert_eq!(values, [0, 0]);
    assert_eq!(c.get_warnings(), 2, "one warning from each shard");
    let mut warnings: Vec<(String, u16, String)> = c.query("SHOW WARNINGS").await.unwrap();
    warnings.sort();
    let mut expected: Vec<(String, u16, String)> = [a, b]
        .iter()
        .map(|i| {
            (
                "Warning".to_string(),
                1292,
                format!("Truncated incorrect INTEGER value: 'x{i}'"),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(warnings, expected);
    proxy.stop().await;
}

/// Rows placed as Vitess places them, checked against the keyspace ids Vitess's own tests
/// publish (hash_test.go, xxhash_test.go, binarymd5_test.go, reverse_bits_test.go), not against
/// shardgate's own hash functions: each row is read back from the shard whose key range holds
/// its published keyspace id.
async fn placement_matches_vitess(keyspace: &str) {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some(keyspace)).await;
    c.query_drop(
        "CREATE TABLE IF NOT EXISTS vitess_placed (id BIGINT PRIMARY KEY, label VARCHAR(40))",
    )
    .await
    .unwrap();
    for table in ["placed_xx", "placed_md5"] {
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {table} (name VARCHAR(64) COLLATE utf8mb4_bin PRIMARY KEY)"
        ))
        .await
        .unwrap();
    }
    c.query_drop("CREATE TABLE IF NOT EXISTS placed_rb (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    let hash: [(i64, &str); 6] = [
        (1, "166b40b44aba4bd6"),
        (2, "06e7ea22ce92708f"),
        (3, "4eb190c9a2fa169c"),
        (4, "d2fd8867d50d2dfe"),
        (5, "70bb023c810ca87a"),
        (6, "f098480ac4c4be71"),
    ];
    let xx: [(&str, &str); 3] = [
        ("test1", "d01ab7e4d6978f0b"),
        ("test2", "87eb11714c0a0e89"),
        ("testaverylongvaluetomakesurethisworks", "81d8c38e0d850e6a"),
    ];
    c.query_drop("DELETE FROM vitess_placed WHERE id BETWEEN 1 AND 6")
        .await
        .unwrap();
    c.query_drop(
        "INSERT INTO vitess_placed (id, label) VALUES (1, 'v'), (2, 'v'), (3, 'v'), (4, 'v'), (5, 'v'), (6, 'v')",
    )
    .await
    .unwrap();
    let md5: [(&str, &str); 2] = [
        ("Test", "0cbc6611f5540bd0809a388dc95a615b"),
        ("TEST", "033bd94b1168d7e4f0d644c3c95e35bf"),
    ];
    let rb: [(i64, &str); 6] = [
        (1, "8000000000000000"),
        (2, "4000000000000000"),
        (3, "c000000000000000"),
        (4, "2000000000000000"),
        (5, "a000000000000000"),
        (6, "6000000000000000"),
    ];
    for (name, _) in xx {
        c.query_drop(format!("REPLACE INTO placed_xx (name) VALUES ('{name}')"))
            .await
            .unwrap();
    }
    for (name, _) in md5 {
        c.query_drop(format!("REPLACE INTO placed_md5 (name) VALUES ('{name}')"))
            .await
            .unwrap();
    }
    for (id, _) in rb {
        c.query_drop(format!("REPLACE INTO placed_rb (id) VALUES ({id})"))
            .await
            .unwrap();
    }
    // Found again through the vindex: one shard each.
    let found: Vec<i64> = c
        .query("SELECT id FROM placed_rb WHERE id IN (3, 6) ORDER BY id")
        .await
        .unwrap();
    assert_eq!(found, [3, 6]);
    let found: Vec<String> = c
        .query("SELECT name FROM placed_md5 WHERE name = 'TEST'")
        .await
        .unwrap();
    assert_eq!(found, ["TEST"]);
    let ks = cluster().config.vschema.keyspace(keyspace).unwrap();
    let shard_of = |ksid: &str| {
        let bytes: Vec<u8> = (0..ksid.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&ksid[i..i + 2], 16).unwrap())
            .collect();
        ks.shards[ks.shard_for(&vschema::KeyspaceId(bytes))]
            .name
            .clone()
    };
    // Each vindex's rows (value, published keyspace id), the table and column holding them.
    let strings = |cases: &[(&str, &str)]| -> Vec<(String, String)> {
        cases
            .iter()
            .map(|(v, k)| (v.to_string(), k.to_string()))
            .collect()
    };
    let ints = |cases: &[(i64, &str)]| -> Vec<(String, String)> {
        cases
            .iter()
            .map(|(v, k)| (v.to_string(), k.to_string()))
            .collect()
    };
    let placed = [
        (
            "hash",
            "SELECT id FROM vitess_placed WHERE id BETWEEN 1 AND 6",
            ints(&hash),
        ),
        ("xxhash", "SELECT name FROM placed_xx", strings(&xx)),
        ("binary_md5", "SELECT name FROM placed_md5", strings(&md5)),
        ("reverse_bits", "SELECT id FROM placed_rb", ints(&rb)),
    ];
    for shard in &ks.shards {
        let mut direct = shard_conn(keyspace, &shard.name).await;
        for (vindex, sql, cases) in &placed {
            let rows: Vec<mysql_async::Value> = direct.query(*sql).await.unwrap();
            let mut found: Vec<String> = rows
                .into_iter()
                .map(|v| match v {
                    mysql_async::Value::Bytes(b) => String::from_utf8(b).unwrap(),
                    other => other.as_sql(true),
                })
                .collect();
            found.sort();
            let mut want: Vec<String> = cases
                .iter()
                .filter(|(_, k)| shard_of(k) == shard.name)
                .map(|(v, _)| v.clone())
                .collect();
            want.sort();
            assert_eq!(found, want, "{vindex}: rows on {keyspace}/{}", shard.name);
        }
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_matches_vitess_on_two_and_four_shards() {
    placement_matches_vitess("two").await;
    placement_matches_vitess("four").await;
}
