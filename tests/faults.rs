//! Shard faults: a shard that stops answering (its mariadbd stopped with SIGSTOP) or is not
//! there at all fails fast with an error naming it, the other shard keeps serving, the health
//! check marks it down and up again on its own, and a backend connection killed mid-query is
//! discarded, never reused.

use std::path::Path;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to our own child server.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// Stops the server, and returns once every one of its threads has stopped (the signal
/// reaches them one by one; a thread still running could answer a query sent just after).
fn stop(server: &testkit::MariaDb) -> Continue {
    let pid = server.pid();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    let stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .all(|task| {
                let stat =
                    std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
                // The state follows the command name's closing parenthesis.
                stat.rsplit_once(") ")
                    .is_none_or(|(_, rest)| rest.starts_with('T'))
            })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stopped() {
        assert!(
            Instant::now() < deadline,
            "mariadbd {pid}: its threads did not all stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    Continue(pid)
}

fn config_text(shards: [&str; 2]) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"

[[users]]
name = "app"
password = "pw"

[keyspaces.f]
sharded = true
shards = [{{ name = "-80", primary = "{}" }}, {{ name = "80-", primary = "{}" }}]
vindexes.hash = {{ type = "hash" }}
tables.t = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}
tables.r = {{ type = "reference" }}
"#,
        shards[0], shards[1]
    )
}

/// An id on each shard: 1 hashes below 0x80, 4 above.
const LOW: i64 = 1;
const HIGH: i64 = 4;

async fn value(c: &mut Conn, id: i64) -> Result<Option<i64>, mysql_async::Error> {
    c.query_first(format!("SELECT v FROM t WHERE id = {id}"))
        .await
}

fn message(e: &mysql_async::Error) -> (u16, String) {
    match e {
        mysql_async::Error::Server(s) => (s.code, s.message.clone()),
        other => (0, other.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_faults_fail_fast_and_heal() {
    let servers = tokio::task::spawn_blocking(|| testkit::start(2, &["f"]))
        .await
        .unwrap()
        .unwrap();
    for s in &servers {
        let mut d = Conn::new(Opts::from_url(&s.url("f")).unwrap())
            .await
            .unwrap();
        d.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT)")
            .await
            .unwrap();
        d.query_drop("INSERT INTO t SELECT seq, seq * 10 FROM seq_1_to_10")
            .await
            .unwrap();
        d.query_drop("CREATE TABLE r (id BIGINT PRIMARY KEY, v BIGINT)")
            .await
            .unwrap();
        d.query_drop("INSERT INTO r VALUES (1, 10)").await.unwrap();
    }
    let text = config_text([&servers[0].url("f"), &servers[1].url("f")]);
    let config = vschema::parse_config(&text, Path::new("f.toml")).unwrap();
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let url = format!("mysql://app:pw@127.0.0.1:{}/f", proxy.addr.port());
    let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    assert_eq!(value(&mut c, LOW).await.unwrap(), Some(10));
    assert_eq!(value(&mut c, HIGH).await.unwrap(), Some(40));

    // A backend connection killed mid-query: the statement fails, the connection is not reused.
    let mut slow = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let sleeping = tokio::spawn(async move {
        let r: Result<Option<i64>, _> = slow
            .query_first(format!("SELECT SLEEP(5) FROM t WHERE id = {HIGH}"))
            .await;
        (r, slow)
    });
    let mut direct = Conn::new(Opts::from_url(&servers[1].url("f")).unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let thread: u64 = loop {
        let found: Option<u64> = direct
            .query_first(
                "SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(5)%'",
            )
            .await
            .unwrap();
        if let Some(id) = found {
            break id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "SELECT SLEEP(5) never reached 80-"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    direct
        .query_drop(format!("KILL CONNECTION {thread}"))
        .await
        .unwrap();
    let (r, mut slow) = sleeping.await.unwrap();
    let e = r.unwrap_err();
    assert!(message(&e).1.contains("80-"), "{e}");
    for _ in 0..5 {
        assert_eq!(value(&mut slow, HIGH).await.unwrap(), Some(40));
    }
    drop(slow);

    // A transaction holding a connection on 80- (id 6 hashes there too).
    let mut tx = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    tx.query_drop("BEGIN").await.unwrap();
    tx.query_drop("UPDATE t SET v = v + 1 WHERE id = 6")
        .await
        .unwrap();

    // A statement that is running on 80- when it stops.
    let mut running = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let reached = tokio::spawn(async move {
        let r: Result<Option<i64>, _> = running
            .query_first(format!("SELECT SLEEP(3) FROM t WHERE id = {HIGH}"))
            .await;
        (r, running)
    });
    let started = Instant::now();
    while direct
        .query_first::<u64, _>(
            "SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(3)%'",
        )
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "SLEEP(3) never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Shard 80- stops answering.
    let paused = stop(&servers[1]);
    // Its COMMIT does not leave the client waiting either: it is abandoned with the shard.
    let committing = tokio::spawn(async move {
        let r = tx.query_drop("COMMIT").await;
        (r, tx)
    });
    // The other shard serves meanwhile (bounds here are loose, for a loaded machine: what they
    // tell apart is an answer from a wait of tens of seconds or for ever).
    let started = Instant::now();
    assert_eq!(value(&mut c, LOW).await.unwrap(), Some(10));
    assert!(started.elapsed() < Duration::from_secs(5));
    // A statement waiting on it gives up once the health check marks it down. The one that
    // was running there had reached the shard, so what it did there is unknown, and the error
    // says so; 1429, "unable to connect", is for statements that never reached it.
    let (r, running) = tokio::time::timeout(Duration::from_secs(60), reached)
        .await
        .expect("a statement on a stopped shard is abandoned, not left waiting")
        .unwrap();
    let (code, text) = message(&r.unwrap_err());
    assert_eq!(code, 1105, "{text}");
    assert!(text.contains("80-"), "{text}");
    assert!(text.contains("outcome on that shard is unknown"), "{text}");
    drop(running);
    let started = Instant::now();
    let e = value(&mut c, HIGH).await.unwrap_err();
    let (code, text) = message(&e);
    // This one may have found an open connection to the shard (and be given up there) or
    // waited for a new one (and never reached it).
    match code {
        1105 => assert!(text.contains("outcome on that shard is unknown"), "{text}"),
        1429 => assert!(text.contains("Unable to connect"), "{text}"),
        other => panic!("{other}: {text}"),
    }
    assert!(text.contains("80-"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let (r, mut tx) = tokio::time::timeout(Duration::from_secs(60), committing)
        .await
        .expect("COMMIT on a stopped shard is abandoned, not left waiting")
        .unwrap();
    let (code, text) = message(&r.unwrap_err());
    assert_eq!(code, 1180, "{text}");
    assert!(text.contains("80-"), "{text}");
    assert!(text.contains("may or may not have committed"), "{text}");
    // The session goes on, outside any transaction.
    assert_eq!(value(&mut tx, LOW).await.unwrap(), Some(10));
    drop(tx);

    // From then on, statements to it fail at once; the other shard serves.
    for sql in [
        format!("SELECT v FROM t WHERE id = {HIGH}"),
        "SELECT COUNT(*) FROM t".to_string(),
    ] {
        let started = Instant::now();
        let e = c.query_drop(&sql).await.unwrap_err();
        assert_eq!(message(&e).0, 1429, "{sql}: never sent: {e}");
        assert!(message(&e).1.contains("80-"), "{sql}: {e}");
        // At once: not after the 5 s a connection may take.
        assert!(started.elapsed() < Duration::from_secs(3), "{sql}");
    }
    assert_eq!(value(&mut c, LOW).await.unwrap(), Some(10));
    let metrics = proxy.gate.metrics_text();
    assert!(
        metrics.contains("shardgate_errors_total{code=\"1429\"}"),
        "{metrics}"
    );

    // It comes back: the next health check that gets an answer marks it up.
    drop(paused);
    let started = Instant::now();
    loop {
        match value(&mut c, HIGH).await {
            Ok(v) => {
                assert_eq!(v, Some(40));
                break;
            }
            Err(e) => {
                assert!(message(&e).1.contains("80-"), "{e}");
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "did not recover"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(20));

    // A write to the reference table that is running on -80 (the first shard it goes to)
    // when -80 stops: it is given up, and nothing of it is kept on any shard, even once -80
    // runs again and finishes the statement it had received.
    let mut writer = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let writing = tokio::spawn(async move {
        let r = writer
            .query_drop("UPDATE r SET v = 20 WHERE id = 1 AND SLEEP(2) = 0")
            .await;
        (r, writer)
    });
    let mut first = Conn::new(Opts::from_url(&servers[0].url("f")).unwrap())
        .await
        .unwrap();
    let running = "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'UPDATE r SET v = 20%'";
    let started = Instant::now();
    while first.query_first::<u64, _>(running).await.unwrap() != Some(1) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the UPDATE never reached -80"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paused = stop(&servers[0]);
    let (r, writer) = tokio::time::timeout(Duration::from_secs(60), writing)
        .await
        .expect("a write on a stopped shard is abandoned, not left waiting")
        .unwrap();
    let (code, text) = message(&r.unwrap_err());
    assert_eq!(code, 1317, "{text}");
    assert!(
        text.contains("-80") && text.contains("rolled back on every shard"),
        "{text}"
    );
    drop(writer);
    drop(paused);
    // -80 finishes the UPDATE it had, then finds its client gone and rolls it back.
    let started = Instant::now();
    while first.query_first::<u64, _>(running).await.unwrap() != Some(0) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the UPDATE never ended on -80"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for server in &servers {
        let mut d = Conn::new(Opts::from_url(&server.url("f")).unwrap())
            .await
            .unwrap();
        let v: Option<i64> = d.query_first("SELECT v FROM r WHERE id = 1").await.unwrap();
        assert_eq!(v, Some(10), "port {}", server.port);
    }
    drop(c);
    proxy.stop().await;

    // A shard with nothing listening: a clear error at once, naming it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("mysql://root@127.0.0.1:{port}/f");
    let config = vschema::parse_config(
        &config_text([&servers[0].url("f"), &dead]),
        Path::new("f.toml"),
    )
    .unwrap();
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let url = format!("mysql://app:pw@127.0.0.1:{}/f", proxy.addr.port());
    let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let started = Instant::now();
    let e = value(&mut c, HIGH).await.unwrap_err();
    let (code, text) = message(&e);
    assert_eq!(code, 1429, "{text}");
    assert!(text.contains("80-"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "refused at once, not after 5 s"
    );
    assert_eq!(value(&mut c, LOW).await.unwrap(), Some(10));
    drop(c);
    proxy.stop().await;
}
