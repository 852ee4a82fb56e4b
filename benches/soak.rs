//! The soak run: a shardgate process over two MariaDB shards, many concurrent clients doing
//! point reads, inserts and two-row transactions for a fixed time, while one shard is restarted
//! twice. Loopback only; stops by itself. Afterwards every acknowledged insert must be on its
//! shard (read directly), errors may only come from statements that touched the restarted shard,
//! and the proxy's RSS is reported at start, peak and end.
//!
//!   benches/soak.sh [--seconds=300] [--clients=500]

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, PoolConstraints, PoolOpts};

fn arg(name: &str, default: u64) -> u64 {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("--{name}="))?.parse().ok())
        .unwrap_or(default)
}

/// (current RSS, peak RSS) of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[derive(Default)]
struct Tally {
    reads: AtomicU64,
    inserts: AtomicU64,
    transactions: AtomicU64,
    /// Errors of statements that touched the restarted shard (expected while it is down).
    expected_errors: AtomicU64,
    /// Errors of statements that did not touch it: must stay zero.
    unexpected_errors: AtomicU64,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` builds and runs benches in test mode: nothing to check here.
        println!("soak run: run it with benches/soak.sh");
        return;
    }
    let seconds = arg("seconds", 300);
    let clients = arg("clients", 500) as usize;
    let mut servers = testkit::start(2, &["soak"]).expect("start MariaDB");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
max_connections = {max}

[[users]]
name = "app"
password = "pw"

[keyspaces.soak]
sharded = true
pool = {{ min = 4, max = 64 }}
shards = [{{ name = "-80", primary = "{a}" }}, {{ name = "80-", primary = "{b}" }}]
vindexes.hash = {{ type = "hash" }}
tables.t = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}
"#,
        max = clients + 100,
        a = servers[0].url("soak"),
        b = servers[1].url("soak"),
    );
    let parsed = vschema::parse_config(&config, std::path::Path::new("soak.toml")).unwrap();
    let ks = parsed.vschema.keyspace("soak").unwrap().clone();
    let vschema::Table::Sharded { vindex, .. } = ks.table("t").unwrap().clone() else {
        unreachable!()
    };
    let shard_of = move |id: i64| {
        let kid = vindex.map(&vschema::KeyValue::Int(id)).unwrap();
        ks.shard_for(&kid)
    };
    let path = config_dir.path().join("soak.toml");
    std::fs::write(&path, &config).unwrap();
    runtime.block_on(async {
        for s in &servers {
            let mut c = Conn::new(Opts::from_url(&s.url("soak")).unwrap())
                .await
                .unwrap();
            c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
                .await
                .unwrap();
            c.query_drop("INSERT INTO t SELECT seq, seq FROM seq_1_to_1000")
                .await
                .unwrap();
        }
    });
    let mut proxy = testkit::die_with_parent(&mut Command::new(env!("CARGO_BIN_EXE_shardgate")))
        .args(["--log-level", "warn", "serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = proxy.id();
    let url = format!("mysql://app:pw@127.0.0.1:{port}/soak");
    runtime.block_on(async {
        for _ in 0..200 {
            if Conn::new(Opts::from_url(&url).unwrap()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("shardgate did not start");
    });
    let (rss_start, _) = rss_kib(pid);

    // The restarted shard is 80- (index 1); it is down twice.
    const RESTARTED: usize = 1;
    let tally = Arc::new(Tally::default());
    let acknowledged: Arc<Mutex<Vec<i64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (tally, acknowledged, stop) = (tally.clone(), acknowledged.clone(), stop.clone());
        let shard_of = shard_of.clone();
        let url = url.clone();
        tasks.push(runtime.spawn(async move {
            let opts = OptsBuilder::from_opts(Opts::from_url(&url).unwrap()).pool_opts(
                PoolOpts::default().with_constraints(PoolConstraints::new(1, 1).unwrap()),
            );
            let pool = mysql_async::Pool::new(opts);
            let mut n: i64 = 0;
            let mut seed = client as u64 * 7919 + 1;
            let mut next = move || {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                seed >> 33
            };
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let op = next() % 10;
                // Unique ids per client: 10^6 + client × 10^6 + n.
                let mut fresh = || {
                    n += 1;
                    1_000_000 + client as i64 * 1_000_000 + n
                };
                let (touched, result): (Vec<usize>, Result<Vec<i64>, mysql_async::Error>) = match op
                {
                    0..=5 => {
                        let id = (next() % 1000 + 1) as i64;
                        let r = async {
                            let mut c = pool.get_conn().await?;
                            let _: Option<i64> =
                                c.exec_first("SELECT v FROM t WHERE id = ?", (id,)).await?;
                            Ok(Vec::new())
                        }
                        .await;
                        tally.reads.fetch_add(r.is_ok() as u64, Ordering::Relaxed);
                        (vec![shard_of(id)], r)
                    }
                    6..=8 => {
                        let id = fresh();
                        let r = async {
                            let mut c = pool.get_conn().await?;
                            c.exec_drop("INSERT INTO t (id, v) VALUES (?, ?)", (id, id))
                                .await?;
                            Ok(vec![id])
                        }
                        .await;
                        tally.inserts.fetch_add(r.is_ok() as u64, Ordering::Relaxed);
                        (vec![shard_of(id)], r)
                    }
                    _ => {
                        let (a, b) = (fresh(), fresh());
                        let r = async {
                            let mut c = pool.get_conn().await?;
                            let mut tx = c.start_transaction(Default::default()).await?;
                            tx.exec_drop("INSERT INTO t (id, v) VALUES (?, ?)", (a, a))
                                .await?;
                            tx.exec_drop("INSERT INTO t (id, v) VALUES (?, ?)", (b, b))
                                .await?;
                            tx.commit().await?;
                            Ok(vec![a, b])
                        }
                        .await;
                        tally
                            .transactions
                            .fetch_add(r.is_ok() as u64, Ordering::Relaxed);
                        (vec![shard_of(a), shard_of(b)], r)
                    }
                };
                match result {
                    Ok(ids) => mine.extend(ids),
                    Err(e) => {
                        if touched.contains(&RESTARTED) {
                            tally.expected_errors.fetch_add(1, Ordering::Relaxed);
                        } else {
                            tally.unexpected_errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("unexpected error (shards {touched:?}): {e}");
                        }
                        // A connection broken by the restart is replaced.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            acknowledged.lock().unwrap().extend(mine);
            let _ = pool.disconnect().await;
        }));
    }

    // Restarts at a fifth and three fifths of the run; RSS sampled each second.
    let mut peak = rss_start;
    let mut restarts = Vec::new();
    let restart_at = [seconds / 5, seconds * 3 / 5];
    let mut sampled = Vec::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        let (rss, hwm) = rss_kib(pid);
        peak = peak.max(hwm);
        let elapsed = started.elapsed().as_secs();
        sampled.push((elapsed, rss));
        if restarts.len() < restart_at.len() && elapsed >= restart_at[restarts.len()] {
            let t = Instant::now();
            servers[RESTARTED].restart().expect("restart the shard");
            restarts.push(t.elapsed());
            eprintln!("restarted shard 80- at {elapsed} s in {:?}", t.elapsed());
        }
    }
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let (rss_end, hwm) = rss_kib(pid);
    peak = peak.max(hwm);

    // Every acknowledged insert is on the shards.
    let acknowledged = acknowledged.lock().unwrap().clone();
    let present: HashSet<i64> = runtime.block_on(async {
        let mut all = HashSet::new();
        for s in &servers {
            let mut c = Conn::new(Opts::from_url(&s.url("soak")).unwrap())
                .await
                .unwrap();
            let ids: Vec<i64> = c
                .query("SELECT id FROM t WHERE id > 1000000")
                .await
                .unwrap();
            all.extend(ids);
        }
        all
    });
    let lost: Vec<i64> = acknowledged
        .iter()
        .filter(|id| !present.contains(id))
        .copied()
        .collect();
    let _ = proxy.kill();
    let _ = proxy.wait();

    let t = &tally;
    let total = started.elapsed().as_secs_f64();
    println!("soak: {clients} clients for {seconds} s, shard 80- restarted at {restart_at:?} s (each took {restarts:?})");
    println!(
        "  ok: {} reads, {} inserts, {} two-row transactions ({:.0} statements/s)",
        t.reads.load(Ordering::Relaxed),
        t.inserts.load(Ordering::Relaxed),
        t.transactions.load(Ordering::Relaxed),
        (t.reads.load(Ordering::Relaxed)
            + t.inserts.load(Ordering::Relaxed)
            + 4 * t.transactions.load(Ordering::Relaxed)) as f64
            / total
    );
    println!(
        "  errors: {} on statements that touched the restarted shard, {} on others",
        t.expected_errors.load(Ordering::Relaxed),
        t.unexpected_errors.load(Ordering::Relaxed)
    );
    println!(
        "  acknowledged inserts: {}, found on the shards: {}, lost: {}",
        acknowledged.len(),
        acknowledged.len() - lost.len(),
        lost.len()
    );
    let mid = sampled.get(sampled.len() / 2).map_or(0, |s| s.1);
    println!(
        "  proxy RSS: start {} MiB, middle {} MiB, peak {} MiB, end {} MiB",
        rss_start / 1024,
        mid / 1024,
        peak / 1024,
        rss_end / 1024
    );
    let ok = lost.is_empty() && t.unexpected_errors.load(Ordering::Relaxed) == 0;
    if !ok {
        eprintln!("SOAK FAILED: lost {lost:?}");
        std::process::exit(1);
    }
}
