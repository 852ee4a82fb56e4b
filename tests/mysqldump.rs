//! mysqldump through shardgate and back: a keyspace dumped with mysqldump (with and without
//! `--single-transaction`) restores through the `mysql` client into a keyspace of another
//! shard count, with the same rows; `--no-data` and mysqlshow list what they should.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Runs a MariaDB client program against the proxy, bounded in time; its standard output.
async fn client_program(program: &str, port: u16, args: &[&str]) -> Vec<u8> {
    let port = port.to_string();
    let out = tokio::process::Command::new(program)
        .args(["-h127.0.0.1", "-P", &port, "-uapp", "-psecret"])
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), out)
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("{program} is installed: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The table's row count and a checksum of its contents (the sum of each row's CRC32, the same
/// whatever the row order or the shards), through the proxy.
async fn checksum(c: &mut Conn) -> (i64, i64) {
    c.query_first(
        "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, name, IFNULL(note, '<null>'), amount, \
         IFNULL(seen, '<null>')))) FROM dumped",
    )
    .await
    .unwrap()
    .unwrap()
}

async fn rows(c: &mut Conn) -> Vec<mysql_async::Row> {
    c.query("SELECT id, name, note, amount, seen FROM dumped ORDER BY id")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_restores_into_another_layout() {
    let proxy = proxy().await;
    let port = proxy.addr.port();
    let mut two = client(&proxy, Some("two")).await;
    two.query_drop("DROP TABLE IF EXISTS dumped").await.unwrap();
    two.query_drop(
        "CREATE TABLE dumped (id BIGINT PRIMARY KEY, name VARCHAR(40) NOT NULL, note TEXT NULL, \
         amount DECIMAL(10,2) NOT NULL, seen DATETIME NULL, KEY (name))",
    )
    .await
    .unwrap();
    let values: Vec<String> = (1..=300)
        .map(|i| {
            let note = match i % 4 {
                0 => "NULL".to_string(),
                1 => format!("'it''s row {i}'"),
                2 => format!("'back\\\\slash {i}'"),
                _ => format!("'Zoë 🎉 {i}'"),
            };
            format!(
                "({i}, 'name {}', {note}, {}.{:02}, {})",
                i % 17,
                i * 3,
                i % 100,
                if i % 5 == 0 {
                    "NULL".to_string()
                } else {
                    format!("'2024-01-{:02} 10:00:00'", i % 28 + 1)
                }
            )
        })
        .collect();
    two.query_drop(format!("INSERT INTO dumped VALUES {}", values.join(", ")))
        .await
        .unwrap();
    let original = text_rows(rows(&mut two).await);
    assert_eq!(original.len(), 300);
    let original_sum = checksum(&mut two).await;
    eprintln!("keyspace two (2 shards): dumped rows and checksum {original_sum:?}");

    let dir = tempfile_dir();
    for options in [&["--single-transaction"][..], &[][..]] {
        let mut args = options.to_vec();
        args.extend(["two", "dumped"]);
        let dump = client_program("mysqldump", port, &args).await;
        let file = dir.join("dump.sql");
        std::fs::write(&file, &dump).unwrap();
        let text = String::from_utf8_lossy(&dump);
        assert!(text.contains("INSERT INTO `dumped`"), "{text}");

        let mut four = client(&proxy, Some("four")).await;
        four.query_drop("DROP TABLE IF EXISTS dumped")
            .await
            .unwrap();
        let source = format!("source {}", file.display());
        client_program("mysql", port, &["four", "-e", &source]).await;
        assert_eq!(
            text_rows(rows(&mut four).await),
            original,
            "restored from a dump with {options:?}"
        );
        let restored_sum = checksum(&mut four).await;
        eprintln!("keyspace four (4 shards), restored from a dump with {options:?}: rows and checksum {restored_sum:?}");
        assert_eq!(restored_sum, original_sum, "{options:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // The schema alone, and mysqlshow's listings of databases, tables and columns.
    let schema = client_program("mysqldump", port, &["--no-data", "two", "dumped"]).await;
    let schema = String::from_utf8_lossy(&schema);
    assert!(schema.contains("CREATE TABLE `dumped`"), "{schema}");
    assert!(!schema.contains("INSERT"), "{schema}");
    let databases = client_program("mysqlshow", port, &[]).await;
    assert!(String::from_utf8_lossy(&databases).contains("| four"));
    let tables = client_program("mysqlshow", port, &["four"]).await;
    assert!(String::from_utf8_lossy(&tables).contains("| dumped"));
    let columns = client_program("mysqlshow", port, &["four", "dumped"]).await;
    let columns = String::from_utf8_lossy(&columns);
    for column in ["| id ", "| name ", "| note ", "| amount ", "| seen "] {
        assert!(columns.contains(column), "{column} in {columns}");
    }
    proxy.stop().await;
}

/// A directory of this test's own for the dump file.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shardgate-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
