//! Online schema changes under write load, and the change stream's pace. `cargo bench --bench
//! migration [-- --rows=200000 --writers=8 --write-rate=100]` (writes per second per writer; 0
//! for as fast as they go, which on two cores leaves the copy little).
//!
//! Three MariaDB servers writing row binlogs: two shards of keyspace `app` and one holding the
//! migrations' records and a reference database. A sysbench-like table of `rows` rows is loaded
//! through shardgate and into the reference. For each of ADD COLUMN, ADD INDEX, MODIFY COLUMN
//! (wider) and DROP COLUMN, `writers` clients insert, update and delete through shardgate (each
//! acknowledged write repeated on the reference) while the ALTER runs online. Then a revert
//! under the same load. Reported per change: copy throughput, the write stall at cut-over as
//! the proxy measured it and the slowest write the clients saw, writes done and failed, and
//! whether the shards' checksums add up to the reference's. Last, the change stream alone:
//! row events per second decoded, and decoded and applied to a copy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use changestream::{
    current_position, Applier, Change, ChangeStream, StreamOptions, Tables, Target,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};

struct Args {
    rows: i64,
    writers: i64,
    /// Writes per second each writer issues at most (0: as fast as they go).
    rate: u64,
}

fn args() -> Args {
    let mut args = Args {
        rows: 200_000,
        writers: 8,
        rate: 100,
    };
    for a in std::env::args().skip(1) {
        if let Some(v) = a.strip_prefix("--rows=") {
            args.rows = v.parse().expect("--rows=N");
        } else if let Some(v) = a.strip_prefix("--writers=") {
            args.writers = v.parse().expect("--writers=N");
        } else if let Some(v) = a.strip_prefix("--write-rate=") {
            args.rate = v.parse().expect("--write-rate=N");
        }
    }
    args
}

fn main() {
    // `cargo test --all-targets` runs this binary too: the benchmark only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // The proxy's warnings (a cut-over attempt that gave up, say) on standard error.
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stderr)
        .init();
    let args = args();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(args));
}

async fn conn(url: &str) -> Conn {
    Conn::new(Opts::from_url(url).unwrap()).await.unwrap()
}

/// What the writers did while a change ran.
#[derive(Default)]
struct Writes {
    done: u64,
    failed: u64,
    slowest: Duration,
}

/// `writers` clients on ids of their own: updates, deletes and inserts through the proxy, each
/// acknowledged one repeated on the reference.
fn writers(
    proxy: &str,
    reference: &str,
    args: &Args,
    round: i64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Writes>> {
    let (rows, writers, rate) = (args.rows, args.writers, args.rate);
    (0..writers)
        .map(|w| {
            let (proxy, reference, stop) = (proxy.to_string(), reference.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut app = conn(&proxy).await;
                let mut reference = conn(&reference).await;
                let mut writes = Writes::default();
                let mut next = rows + round * 10_000_000 + w;
                let mut step = 0i64;
                let pace = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
                let mut due = tokio::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(pace) = pace {
                        due += pace;
                        tokio::time::sleep_until(due).await;
                    }
                    step += 1;
                    let old = (step * 7919 + w * 104_729) % rows / writers * writers + w;
                    let sql = match step % 4 {
                        0 => format!("DELETE FROM items WHERE id = {old}"),
                        1 | 2 => format!("UPDATE items SET k = k + 1 WHERE id = {old}"),
                        _ => {
                            next += writers;
                            format!("INSERT INTO items (id, k, c, pad) VALUES ({next}, {step}, 'new-{w}-{step}', 'p')")
                        }
                    };
                    let started = Instant::now();
                    match app.query_drop(&sql).await {
                        Ok(()) => {
                            writes.slowest = writes.slowest.max(started.elapsed());
                            writes.done += 1;
                            reference.query_drop(&sql).await.unwrap();
                        }
                        Err(e) => {
                            eprintln!("{sql}: {e}");
                            writes.failed += 1;
                        }
                    }
                }
                writes
            })
        })
        .collect()
}

/// One migration's row of SHOW SHARDGATE MIGRATIONS.
async fn status(app: &mut Conn, id: &str) -> Vec<String> {
    let rows: Vec<Row> = app.query("SHOW SHARDGATE MIGRATIONS").await.unwrap();
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| mysql_async::from_value::<Option<String>>(v).unwrap_or_default())
                .collect::<Vec<_>>()
        })
        .find(|r| r[0] == id)
        .expect("listed")
}

/// XOR of the rows' CRCs: the shards' add up (by XOR) to the reference's when they hold the
/// same rows.
const CHECKSUM: &str =
    "SELECT COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))), 0) FROM items";

async fn checksum(url: &str) -> u64 {
    let mut c = conn(url).await;
    c.query_first(CHECKSUM).await.unwrap().unwrap()
}

async fn run(args: Args) {
    let servers = testkit::start_binlogged(3, &["app", "main", "ref"]).unwrap();
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"

[[users]]
name = "app"
password = "secret"

[keyspaces.app]
sharded = true
shards = [{{ name = "-80", primary = "{a}" }}, {{ name = "80-", primary = "{b}" }}]
vindexes.hash = {{ type = "hash" }}
tables.items = {{ primary_vindex = {{ column = "id", vindex = "hash" }} }}

[keyspaces.main]
sharded = false
shards = [{{ name = "0", primary = "{m}" }}]
"#,
        a = servers[0].url("app"),
        b = servers[1].url("app"),
        m = servers[2].url("main"),
    );
    let config = vschema::parse_config(&text, std::path::Path::new("bench.toml")).unwrap();
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let proxy_url = format!("mysql://app:secret@{}/app", proxy.addr);
    let reference_url = servers[2].url("ref");
    let mut app = conn(&proxy_url).await;
    let mut reference = conn(&reference_url).await;
    let create = "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, k INT NOT NULL, \
                  c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY k_1 (k))";
    app.query_drop(create).await.unwrap();
    reference.query_drop(create).await.unwrap();
    let loaded = Instant::now();
    for start in (0..args.rows).step_by(1000) {
        let values: Vec<String> = (start..(start + 1000).min(args.rows))
            .map(|id| format!("({id}, {}, '{:0>110}', 'pad-{id}')", id % 1009, id))
            .collect();
        let sql = format!(
            "INSERT INTO items (id, k, c, pad) VALUES {}",
            values.join(", ")
        );
        app.query_drop(&sql).await.unwrap();
        reference.query_drop(&sql).await.unwrap();
    }
    eprintln!(
        "loaded {} rows in {:.1} s",
        args.rows,
        loaded.elapsed().as_secs_f64()
    );

    println!(
        "| change | rows | copy rows/s | total s | writes held at cut-over (proxy) | slowest write | writes | failed | checksums |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let changes = [
        (
            "ADD COLUMN",
            "ALTER TABLE items ADD COLUMN extra INT NOT NULL DEFAULT 0",
        ),
        ("ADD INDEX", "ALTER TABLE items ADD INDEX by_pad (pad)"),
        (
            "MODIFY COLUMN (wider)",
            "ALTER TABLE items MODIFY COLUMN c VARCHAR(255) NOT NULL",
        ),
        ("DROP COLUMN", "ALTER TABLE items DROP COLUMN extra"),
        (
            "ADD COLUMN, then REVERT",
            "ALTER TABLE items ADD COLUMN later INT",
        ),
    ];
    for (round, (name, alter)) in changes.iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let running = writers(
            &proxy_url,
            &reference_url,
            &args,
            round as i64,
            stop.clone(),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        app.query_drop("SET @@ddl_strategy = 'online'")
            .await
            .unwrap();
        let id: String = app.query_first(*alter).await.unwrap().unwrap();
        app.query_drop("SET @@ddl_strategy = 'direct'")
            .await
            .unwrap();
        let mut copied_at = None;
        let row = loop {
            let row = status(&mut app, &id).await;
            if copied_at.is_none()
                && row[5]
                    .split("; ")
                    .all(|p| !p.ends_with("copying") && !p.ends_with("queued"))
            {
                copied_at = Some(started.elapsed());
            }
            if !matches!(row[4].as_str(), "queued" | "running") {
                break row;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(row[4], "complete", "{name}: {row:?}");
        let total: f64 = row[7].parse().unwrap_or(0.0);
        let copy_secs = copied_at.unwrap_or(started.elapsed()).as_secs_f64();
        let mut held = row[11].clone();
        let mut reverted = false;
        if name.contains("REVERT") {
            tokio::time::sleep(Duration::from_secs(2)).await;
            app.query_drop(format!("REVERT MIGRATION '{id}'"))
                .await
                .unwrap();
            held = format!("{held}; {}", status(&mut app, &id).await[11]);
            reverted = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let mut writes = Writes::default();
        for w in running {
            let w = w.await.unwrap();
            writes.done += w.done;
            writes.failed += w.failed;
            writes.slowest = writes.slowest.max(w.slowest);
        }
        if !reverted {
            reference.query_drop(*alter).await.unwrap();
        }
        let shards =
            checksum(&servers[0].url("app")).await ^ checksum(&servers[1].url("app")).await;
        let wanted = checksum(&reference_url).await;
        // "cut over; writes held N ms" (and "reverted; writes held N ms; ...").
        let held: String = held
            .split("writes held ")
            .skip(1)
            .filter_map(|p| p.split(" ms").next())
            .map(|ms| format!("{ms} ms"))
            .collect::<Vec<_>>()
            .join(" + ");
        println!(
            "| {name} | {total} | {:.0} | {:.1} | {held} | {} ms | {} | {} | {} |",
            total / copy_secs,
            started.elapsed().as_secs_f64(),
            writes.slowest.as_millis(),
            writes.done,
            writes.failed,
            if shards == wanted { "equal" } else { "DIFFER" }
        );
    }

    // The change stream alone: events decoded, then decoded and applied.
    let source = servers[2].url("ref");
    let mut c = conn(&source).await;
    c.query_drop("CREATE TABLE stream_src (id BIGINT PRIMARY KEY, k INT, c CHAR(120))")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE stream_copy LIKE stream_src")
        .await
        .unwrap();
    let from = current_position(&mut c).await.unwrap();
    let events: i64 = 100_000;
    for start in (0..events).step_by(1000) {
        let values: Vec<String> = (start..start + 1000)
            .map(|id| format!("({id}, {id}, 'row {id}')"))
            .collect();
        c.query_drop(format!(
            "INSERT INTO stream_src VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();
    }
    let until = current_position(&mut c).await.unwrap();
    let options = || StreamOptions {
        tables: Tables {
            schema: Some("ref".into()),
            names: vec!["stream_src".into()],
        },
        ..StreamOptions::default()
    };
    let opts = Opts::from_url(&source).unwrap();
    for apply in [false, true] {
        let mut stream = ChangeStream::start(opts.clone(), from.clone(), options())
            .await
            .unwrap();
        let mut target_conn = conn(&source).await;
        target_conn.query_drop(Applier::session()).await.unwrap();
        let applier = Applier::new(&mut target_conn).await.unwrap();
        let target = Target::read(&mut target_conn, "ref", "stream_copy")
            .await
            .unwrap();
        let started = Instant::now();
        let mut rows = 0u64;
        while !stream.position().covers(&until) {
            let change = stream.next().await.unwrap();
            match &change {
                Change::Insert { .. } | Change::Update { .. } | Change::Delete { .. } => {
                    rows += 1;
                    if apply {
                        for sql in applier.statements(&change, &target).unwrap() {
                            target_conn.query_drop(sql).await.unwrap();
                        }
                    }
                }
                Change::Begin { .. } if apply => target_conn.query_drop("BEGIN").await.unwrap(),
                Change::Commit { .. } if apply => target_conn.query_drop("COMMIT").await.unwrap(),
                _ => {}
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "change stream, {}: {rows} row events in {secs:.2} s = {:.0} events/s",
            if apply {
                "decoded and applied"
            } else {
                "decoded"
            },
            rows as f64 / secs
        );
    }
    drop(proxy);
}
