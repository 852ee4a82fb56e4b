//! `scripts/demo.sh`, as a new user runs it: it starts local shards with sample data and a
//! proxy that answers; Ctrl-C (SIGINT) stops everything and removes the data.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_script_serves_and_cleans_up_on_ctrl_c() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut demo = testkit::die_with_parent(
        Command::new(format!("{root}/scripts/demo.sh"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("SHARDGATE_BIN", env!("CARGO_BIN_EXE_shardgate"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .spawn()
    .unwrap();
    // Its lines, as they come.
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = demo.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    while !printed
        .iter()
        .any(|l: &String| l.starts_with("Ctrl-C stops"))
    {
        match lines.recv_timeout(Duration::from_secs(180)) {
            Ok(line) => printed.push(line),
            Err(_) => {
                let _ = demo.kill();
                panic!("the demo did not finish starting within 180 s: {printed:?}");
            }
        }
    }
    let text = printed.join("\n");
    assert!(
        text.contains(&format!("shardgate demo is serving on 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("mysql -h127.0.0.1 -P{port} -uapp -papp commerce")),
        "{text}"
    );
    let config = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("config: "))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no config line: {text}"));
    let data = config.parent().unwrap().to_path_buf();
    assert!(data.join("data").is_dir(), "{}", data.display());

    // It answers, from the sample data, on one shard and through the lookup vindex.
    let url = format!("mysql://app:app@127.0.0.1:{port}/commerce");
    let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let name: Option<String> = c
        .query_first("SELECT name FROM customers WHERE customer_id = 4")
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("Dana"));
    let id: Option<i64> = c
        .query_first("SELECT customer_id FROM customers WHERE email = 'emeka@example.com'")
        .await
        .unwrap();
    assert_eq!(id, Some(5));
    // Each shard is a replication group whose replica serves reads.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shards: Vec<(String, String, String, String, String, String)> =
            c.query("SHOW SHARDGATE SHARDS").await.unwrap();
        let commerce: Vec<_> = shards.iter().filter(|s| s.0 == "commerce").collect();
        if commerce.len() == 2 && commerce.iter().all(|s| s.5.contains(" serving, ")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{shards:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(c);

    // Ctrl-C: a clean exit, and the data is gone.
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(demo.id() as i32, libc::SIGINT) }, 0);
    let status = testkit::wait_within(&mut demo, Duration::from_secs(60), "the demo to stop");
    assert!(status.success(), "{status}");
    let mut rest = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l == "stopped; data removed"),
        "{rest:?}"
    );
    assert!(!data.exists(), "{} still exists", data.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
