//! Many clients at once, against a shardgate process of its own (so its memory and connections
//! are measured alone): idle connections cost little memory, and busy ones share a bounded
//! number of backend connections per shard without errors.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

/// A `shardgate serve` process on the test cluster's config; killed when dropped.
struct Process {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn start(edit: impl Fn(String) -> String) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let text = edit(cluster().config_text.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardgate.toml");
        std::fs::write(&path, text).unwrap();
        let child = testkit::die_with_parent(&mut Command::new(env!("CARGO_BIN_EXE_shardgate")))
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "shardgate did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Process {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Resident memory of the process, in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib / 1024.0
    }
}

/// The tests of this file run one at a time: each loads the machine, and every shardgate
/// process keeps a backend connection of its own (from its startup check for prepared
/// transactions), which would blur the other test's count.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process opens thousands of sockets too.
fn raise_fd_limit() {
    let limit = shardgate::raise_fd_limit();
    assert!(
        limit >= 12_000,
        "the open-files limit ({limit}) is too low for this test"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_clients_stay_under_200_mib() {
    let _alone = ONE_AT_A_TIME.lock().await;
    raise_fd_limit();
    let proxy = Process::start(|t| t);
    const CLIENTS: usize = 10_000;
    let mut clients = Vec::with_capacity(CLIENTS);
    // Logged in in waves, so the listen backlog is never what limits the test.
    for _ in 0..CLIENTS / 250 {
        let mut wave = tokio::task::JoinSet::new();
        for _ in 0..250 {
            wave.spawn(login_at(
                proxy.addr,
                "app",
                "mysql_native_password",
                b"secret",
            ));
        }
        while let Some(joined) = wave.join_next().await {
            let (stream, reply) = joined.unwrap();
            assert_eq!(reply[0], 0x00, "login OK: {reply:?}");
            clients.push(stream);
        }
    }
    let rss = proxy.rss_mib();
    eprintln!("{CLIENTS} idle clients: shardgate RSS {rss:.1} MiB");
    assert!(rss < 200.0, "{CLIENTS} idle clients take {rss:.1} MiB");

    // They are all served: the server counts them, and any of them still answers.
    let stats = command(&mut clients[0], &[0x09]).await;
    let stats = String::from_utf8_lossy(&stats);
    let threads: usize = stats
        .split("Threads: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("COM_STATISTICS: {stats}"));
    assert_eq!(threads, CLIENTS);
    // (COM_PING: answered by shardgate itself, so the other test's count of backend
    // connections is not disturbed.)
    for i in (0..CLIENTS).step_by(997).chain([CLIENTS - 1]) {
        let reply = command(&mut clients[i], &[0x0e]).await;
        assert_eq!(reply[0], 0x00, "client {i}: {reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_busy_clients_share_32_backend_connections_per_shard() {
    let _alone = ONE_AT_A_TIME.lock().await;
    raise_fd_limit();
    let proxy = Process::start(|t| {
        let two = "[keyspaces.two]\nsharded = true\n";
        assert!(t.contains(two));
        t.replace(two, &format!("{two}pool = {{ max = 32 }}\n"))
    });
    let url = format!("mysql://app:secret@{}/two", proxy.addr);
    let opts = Opts::from_url(&url).unwrap();
    let mut admin = Conn::new(opts.clone()).await.unwrap();
    admin
        .query_drop("CREATE TABLE IF NOT EXISTS probe (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
        .await
        .unwrap();
    admin.query_drop("DELETE FROM probe").await.unwrap();
    let rows: Vec<String> = (1..=200).map(|i| format!("({i}, {})", i * 7)).collect();
    admin
        .query_drop(format!(
            "INSERT INTO probe (id, v) VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();

    // The shards' own view of the connections to database `two`, polled while the clients run.
    let done = Arc::new(tokio::sync::Notify::new());
    let peak = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let monitor = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            let mut shards = Vec::new();
            for i in 0..2 {
                let url = cluster().servers[i].url("");
                shards.push(Conn::new(Opts::from_url(&url).unwrap()).await.unwrap());
            }
            loop {
                for (i, shard) in shards.iter_mut().enumerate() {
                    let n: Option<usize> = shard
                        .query_first(
                            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = 'two'",
                        )
                        .await
                        .unwrap();
                    peak[i].fetch_max(n.unwrap(), Ordering::Relaxed);
                }
                tokio::select! {
                    () = done.notified() => break,
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
        })
    };

    const CLIENTS: usize = 2_000;
    let connecting = Arc::new(tokio::sync::Semaphore::new(200));
    let all_in = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (opts, connecting, all_in) = (opts.clone(), connecting.clone(), all_in.clone());
        tasks.spawn(async move {
            let permit = connecting.acquire().await.unwrap();
            let mut c = Conn::new(opts).await.unwrap();
            drop(permit);
            // Every client is connected before any starts: 2,000 sessions compete at once.
            all_in.wait().await;
            for q in 0..10 {
                let id = (client * 10 + q) % 200 + 1;
                let v: Option<i64> = c
                    .query_first(format!("SELECT v FROM probe WHERE id = {id}"))
                    .await
                    .unwrap();
                assert_eq!(v, Some(id as i64 * 7));
            }
            let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM probe").await.unwrap();
            assert_eq!(n, Some(200));
            c.disconnect().await.unwrap();
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a client failed");
    }
    done.notify_one();
    monitor.await.unwrap();
    let peak = [0, 1].map(|i| peak[i].load(Ordering::Relaxed));
    eprintln!("backend connections to `two` at most: {peak:?}");
    for p in peak {
        // The pool's 32, and the health check's own probe connection.
        assert!(p <= 33, "a shard saw {p} connections: {peak:?}");
        assert!(
            p > 1,
            "the shards' connection counts were not observed: {peak:?}"
        );
    }
}
