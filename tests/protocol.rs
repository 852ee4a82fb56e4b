//! The binary protocol (prepared statements), COM_CHANGE_USER, compression and
//! caching_sha2_password, through real clients and raw packets.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Value};

const TYPED: &str = "CREATE TABLE typed (id BIGINT PRIMARY KEY, u BIGINT UNSIGNED NULL, \
    f FLOAT NULL, d DOUBLE NULL, dec3 DECIMAL(10,3) NULL, s VARCHAR(50) NULL, \
    b VARBINARY(50) NULL, dt DATETIME(6) NULL, da DATE NULL, t TIME(6) NULL, y YEAR NULL, \
    ti TINYINT NULL, sm SMALLINT UNSIGNED NULL, j JSON NULL)";

fn row(id: i64) -> Vec<Value> {
    vec![
        Value::Int(id),
        Value::UInt(u64::MAX - id as u64),
        Value::Float(1.5),
        Value::Double(-2.25e-3 * id as f64),
        Value::Bytes(format!("{id}.125").into_bytes()),
        Value::Bytes(format!("it's \\ {id} ü 🍕").into_bytes()),
        Value::Bytes(vec![0, 0xff, b'\'', b'\\', id as u8]),
        Value::Date(2024, 2, 29, 13, 14, 15, 123_456),
        Value::Date(1999, 12, 31, 0, 0, 0, 0),
        Value::Time(true, 1, 2, 3, 4, 5),
        Value::Int(2024),
        Value::Int(-128),
        Value::UInt(65535),
        Value::Bytes(format!("{{\"id\": {id}}}").into_bytes()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_route_by_values_and_return_binary_rows() {
    let proxy = proxy().await;
    let mut c = client(&proxy, Some("two")).await;
    c.query_drop("DROP TABLE IF EXISTS typed").await.unwrap();
    c.query_drop(TYPED).await.unwrap();
    let insert = c
        .prep(
            "INSERT INTO typed (id, u, f, d, dec3, s, b, dt, da, t, y, ti, sm, j) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .await
        .unwrap();
    assert_eq!(insert.num_params(), 14);
    for id in 1..=20 {
        c.exec_drop(&insert, row(id)).await.unwrap();
    }
    // A row of NULLs but the key.
    let mut nulls = vec![Value::NULL; 14];
    nulls[0] = Value::Int(21);
    c.exec_drop(&insert, nulls).await.unwrap();

    // Each row reads back exactly as its shard returns it through its own binary protocol.
    let select = c.prep("SELECT * FROM typed WHERE id = ?").await.unwrap();
    assert_eq!(select.num_columns(), 14, "columns described at prepare");
    for id in 1..=21i64 {
        let shard = owner("two", id);
        let before = counters(&proxy);
        let got: Vec<mysql_async::Row> = c.exec(&select, (id,)).await.unwrap();
        let after = counters(&proxy);
        // Routed by the bound value: one statement, to the owning shard only.
        for (name, n) in &after {
            let want = u64::from(*name == format!("two/{shard}"));
            assert_eq!(n - before[name], want, "id {id} on {name}");
        }
        let mut direct = shard_conn("two", &shard).await;
        let want: Vec<mysql_async::Row> = direct
            .exec("SELECT * FROM typed WHERE id = ?", (id,))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].clone().unwrap(),
            want[0].clone().unwrap(),
            "row {id}"
        );
        let cols: Vec<_> = got[0]
            .columns_ref()
            .iter()
            .map(|c| (c.name_str().into_owned(), c.column_type()))
            .collect();
        let want_cols: Vec<_> = want[0]
            .columns_ref()
            .iter()
            .map(|c| (c.name_str().into_owned(), c.column_type()))
            .collect();
        assert_eq!(cols, want_cols);
    }

    // With its plan cached, an execution runs prepared on its shard, its binary rows passed on
    // as they are (compared above): the shards count a COM_STMT_EXECUTE for each.
    let before = stmt_executes("two").await;
    for id in 1..=20i64 {
        let got: Vec<mysql_async::Row> = c.exec(&select, (id,)).await.unwrap();
        assert_eq!(got.len(), 1);
    }
    // Also in a transaction, on its connection.
    c.query_drop("BEGIN").await.unwrap();
    let got: Option<i64> = c
        .exec_first("SELECT y FROM typed WHERE id = ?", (3,))
        .await
        .unwrap();
    let got_again: Option<i64> = c
        .exec_first("SELECT y FROM typed WHERE id = ?", (4,))
        .await
        .unwrap();
    c.query_drop("COMMIT").await.unwrap();
    assert_eq!((got, got_again), (Some(2024), Some(2024)));
    let executed = stmt_executes("two").await - before;
    assert!(
        executed >= 21,
        "{executed} executions prepared on the shards"
    );

    // Scatter and merge with parameters; string and NULL parameters.
    let n: Option<i64> = c
        .exec_first(
            "SELECT COUNT(*) FROM typed WHERE s LIKE ? AND id > ?",
            ("it's%", 5),
        )
        .await
        .unwrap();
    assert_eq!(n, Some(15));
    let ids: Vec<i64> = c
        .exec(
            "SELECT id FROM typed WHERE id IN (?, ?, ?) ORDER BY id DESC",
            (3, 17, 99),
        )
        .await
        .unwrap();
    assert_eq!(ids, [17, 3]);
    let none: Vec<i64> = c
        .exec("SELECT id FROM typed WHERE id = ?", (Value::NULL,))
        .await
        .unwrap();
    assert!(none.is_empty());
    let sum: Option<String> = c
        .exec_first("SELECT SUM(dec3) FROM typed WHERE id <= ?", (4,))
        .await
        .unwrap();
    assert_eq!(sum.as_deref(), Some("10.500"));

    // Updates and deletes by bound key, checked on the shards.
    let affected = c
        .exec_iter("UPDATE typed SET s = ? WHERE id = ?", ("changed", 7))
        .await
        .unwrap()
        .affected_rows();
    assert_eq!(affected, 1);
    c.exec_drop("DELETE FROM typed WHERE id = ?", (8,))
        .await
        .unwrap();
    let mut direct = shard_conn("two", &owner("two", 7)).await;
    let s: Option<String> = direct
        .query_first("SELECT s FROM typed WHERE id = 7")
        .await
        .unwrap();
    assert_eq!(s.as_deref(), Some("changed"));
    let mut direct = shard_conn("two", &owner("two", 8)).await;
    let gone: Option<i64> = direct
        .query_first("SELECT id FROM typed WHERE id = 8")
        .await
        .unwrap();
    assert_eq!(gone, None);

    // The plan of `SELECT * FROM typed WHERE id = ?` was made once and reused.
    let stats: Vec<(String, u64)> = c.query("SHOW SHARDGATE STATUS").await.unwrap();
    let hits = stats
        .iter()
        .find(|(k, _)| k == "Plan_cache_hits")
        .unwrap()
        .1;
    assert!(hits >= 20, "{stats:?}");

    // Errors keep the connection usable.
    let err = c
        .exec_drop("SELECT * FROM no_such_table WHERE id = ?", (1,))
        .await
        .unwrap_err();
    assert_eq!(server_code(&err), Some(1146));
    let one: Option<i64> = c.exec_first("SELECT ?", (1,)).await.unwrap();
    assert_eq!(one, Some(1));
    drop(c);
    proxy.stop().await;
}

/// COM_STMT_EXECUTE commands the shards of `keyspace` have run.
async fn stmt_executes(keyspace: &str) -> u64 {
    let mut total = 0;
    let ks = cluster().config.vschema.keyspace(keyspace).unwrap();
    for shard in &ks.shards {
        let mut direct = shard_conn(keyspace, &shard.name).await;
        let (_, n): (String, u64) = direct
            .query_first("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")
            .await
            .unwrap()
            .unwrap();
        total += n;
    }
    total
}

/// COM_STMT_* over raw packets: ids, long data, reset, close, and the errors for bad ids and
/// bad parameter blocks. The client here does not use CLIENT_DEPRECATE_EOF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_commands_and_their_errors() {
    let proxy = proxy().await;
    let mut s = login_raw(&proxy).await;
    let use_two = command(&mut s, b"\x02two").await;
    assert_eq!(use_two[0], 0x00);

    // PREPARE: OK header, one parameter definition + EOF, one column definition + EOF.
    write_packet(&mut s, 0, b"\x16SELECT CONCAT('<', ?, '>') AS v").await;
    let head = read_packet(&mut s).await;
    assert_eq!(head[0], 0x00, "{head:?}");
    let id = u32::from_le_bytes(head[1..5].try_into().unwrap());
    assert_eq!(u16::from_le_bytes([head[5], head[6]]), 1, "columns");
    assert_eq!(u16::from_le_bytes([head[7], head[8]]), 1, "params");
    for _ in 0..4 {
        read_packet(&mut s).await;
    }

    // A syntax error fails the prepare, as in MySQL.
    let err = command(&mut s, b"\x16SELECT FROM WHERE ?").await;
    assert_eq!(err[0], 0xff);
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1064);

    let execute = |types: bool, value: &[u8]| {
        let mut p = vec![0x17];
        p.extend_from_slice(&id.to_le_bytes());
        p.push(0);
        p.extend_from_slice(&1u32.to_le_bytes());
        p.push(0); // NULL bitmap
        p.push(u8::from(types));
        if types {
            p.extend_from_slice(&[253, 0]);
        }
        p.extend_from_slice(value);
        p
    };
    // Types never sent: the parameter block cannot be read.
    let err = command(&mut s, &execute(false, b"\x01x")).await;
    assert_eq!(err[0], 0xff);
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1210);

    // Long data replaces the value in the packet.
    let mut long = vec![0x18];
    long.extend_from_slice(&id.to_le_bytes());
    long.extend_from_slice(&0u16.to_le_bytes());
    long.extend_from_slice(b"from long data");
    write_packet(&mut s, 0, &long).await;
    write_packet(&mut s, 0, &execute(true, b"")).await;
    let rows = read_result(&mut s).await;
    assert_eq!(rows, [b"\x00\x00\x10<from long data>".to_vec()]);
    // Long data is used once; the next execution carries its value.
    write_packet(&mut s, 0, &execute(true, b"\x03abc")).await;
    assert_eq!(read_result(&mut s).await, [b"\x00\x00\x05<abc>".to_vec()]);

    // RESET of an unknown statement; CLOSE, then EXECUTE of the closed statement.
    let mut reset = vec![0x1a];
    reset.extend_from_slice(&999u32.to_le_bytes());
    let err = command(&mut s, &reset).await;
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1243);
    let mut close = vec![0x19];
    close.extend_from_slice(&id.to_le_bytes());
    write_packet(&mut s, 0, &close).await;
    let err = command(&mut s, &execute(true, b"\x01x")).await;
    assert_eq!(err[0], 0xff);
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1243);
    // COM_RESET_CONNECTION drops the session's prepared statements.
    write_packet(&mut s, 0, b"\x16SELECT ?").await;
    let head = read_packet(&mut s).await;
    assert_eq!(head[0], 0x00);
    let kept = u32::from_le_bytes(head[1..5].try_into().unwrap());
    for _ in 0..4 {
        read_packet(&mut s).await;
    }
    assert_eq!(command(&mut s, &[0x1f]).await[0], 0x00);
    let mut p = vec![0x17];
    p.extend_from_slice(&kept.to_le_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 253, 0, 1, b'x']);
    let err = command(&mut s, &p).await;
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1243, "{err:?}");
    // A truncated EXECUTE, then the connection still answers.
    let err = command(&mut s, &[0x17, 1]).await;
    assert_eq!(err[0], 0xff);
    let pong = command(&mut s, &[0x0e]).await;
    assert_eq!(pong[0], 0x00);
    proxy.stop().await;
}

/// Reads a binary result set (column count, definitions, EOF, rows, EOF); returns the rows.
async fn read_result(s: &mut tokio::net::TcpStream) -> Vec<Vec<u8>> {
    let count = read_packet(s).await;
    assert_ne!(count[0], 0xff, "{}", String::from_utf8_lossy(&count));
    for _ in 0..count[0] {
        read_packet(s).await;
    }
    assert_eq!(read_packet(s).await[0], 0xfe);
    let mut rows = Vec::new();
    loop {
        let p = read_packet(s).await;
        if p[0] == 0xfe && p.len() < 9 {
            return rows;
        }
        rows.push(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_user_compression_and_caching_sha2() {
    let proxy = proxy().await;
    // Compressed protocol: a result of many rows arrives whole and equal.
    let url = format!("mysql://app:secret@{}/four", proxy.addr);
    let opts = OptsBuilder::from_opts(Opts::from_url(&url).unwrap())
        .compression(Some(mysql_async::Compression::default()));
    let mut zc = Conn::new(opts).await.unwrap();
    let mut plain = client(&proxy, Some("four")).await;
    zc.query_drop("DROP TABLE IF EXISTS typed").await.unwrap();
    zc.query_drop(TYPED).await.unwrap();
    let values: Vec<String> = (1..=3000)
        .map(|i| format!("({i}, 'row {i} {}')", "x".repeat(i % 40)))
        .collect();
    zc.query_drop(format!(
        "INSERT INTO typed (id, s) VALUES {}",
        values.join(",")
    ))
    .await
    .unwrap();
    let q = "SELECT id, s FROM typed ORDER BY id";
    let sent = || bytes_sent(&proxy);
    let before = sent();
    let compressed: Vec<(i64, String)> = zc.query(q).await.unwrap();
    let on_the_wire_compressed = sent() - before;
    let before = sent();
    let uncompressed: Vec<(i64, String)> = plain.query(q).await.unwrap();
    let on_the_wire_plain = sent() - before;
    // Compression was negotiated: the same rows took far fewer bytes on the wire.
    assert!(
        on_the_wire_compressed * 3 < on_the_wire_plain,
        "compressed {on_the_wire_compressed} bytes, plain {on_the_wire_plain}"
    );
    assert_eq!(compressed.len(), 3000);
    assert_eq!(compressed, uncompressed);
    let prepared: Vec<(i64, String)> = zc
        .exec("SELECT id, s FROM typed WHERE id < ? ORDER BY id", (100,))
        .await
        .unwrap();
    assert_eq!(prepared[..], compressed[..99]);

    // COM_CHANGE_USER: a new user and database; the open transaction is rolled back.
    plain.query_drop("BEGIN").await.unwrap();
    plain
        .query_drop("UPDATE typed SET s = 'uncommitted' WHERE id = 1")
        .await
        .unwrap();
    plain
        .change_user(
            mysql_async::ChangeUserOpts::default()
                .with_user(Some("other".into()))
                .with_pass(Some("pw2".into()))
                .with_db_name(Some("main".into())),
        )
        .await
        .unwrap();
    let (user, db): (String, String) = plain
        .query_first("SELECT USER(), DATABASE()")
        .await
        .unwrap()
        .unwrap();
    assert!(user.starts_with("other@"), "{user}");
    assert_eq!(db, "main");
    let s: Option<String> = zc
        .query_first("SELECT s FROM typed WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(s.as_deref(), Some("row 1 x"));
    let err = plain
        .change_user(
            mysql_async::ChangeUserOpts::default()
                .with_user(Some("app".into()))
                .with_pass(Some("wrong".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(server_code(&err), Some(1045), "{err}");

    // caching_sha2_password: the fast path, and a wrong password refused.
    let (mut s, reply) = login_plugin(&proxy, "caching_sha2_password", b"secret").await;
    assert_eq!(reply, [0x01, 0x03], "fast auth success");
    assert_eq!(read_packet(&mut s).await[0], 0x00);
    assert_eq!(command(&mut s, &[0x0e]).await[0], 0x00);
    let (_, reply) = login_plugin(&proxy, "caching_sha2_password", b"nope").await;
    assert_eq!(reply[0], 0xff);
    assert_eq!(u16::from_le_bytes([reply[1], reply[2]]), 1045);
    proxy.stop().await;
}
