//! sysbench through three doors to the same data, interleaved: a direct connection to one MariaDB,
//! a `socat` relay in front of it, and shardgate over two shards (sbtest tables sharded by `id`
//! with `hash`). Prints median tps, p95 latency, ratios and the CPU the relay and shardgate spent
//! per query. Run it with `benches/load/run.sh` (which is `cargo bench --bench load -- ARGS`).
//!
//! Options (`--name=value`): rounds (3), time (seconds per run, 10), threads (8,32), workloads
//! (point_select,read_only,read_write,scatter,insert), modes (auto,disable), tables (4),
//! table-size (10000), and:
//! - `one-shard=true`: also shardgate over a keyspace of one shard (`shardgate-1`), for
//!   comparing with a proxy in front of one server;
//! - `two-servers=true`: also sysbench straight to the two shards' servers, each holding all the
//!   rows and taking half the threads (`direct-2`): what the database side of a two-server
//!   setup can do on this machine, with no proxy at all;
//! - `endpoint=NAME=HOST:PORT[:USER:PASSWORD]` (repeatable): a server or proxy someone started
//!   (a peer proxy), run in the same interleaved rounds; its sbtest tables are recreated first;
//! - `profile=DIR`: `perf record -g` of shardgate during each workload's first round, one file
//!   per workload, threads and mode (`PERF_CALL_GRAPH=dwarf` for callers through inlined code).
//!
//! Everything runs on loopback and everything started is stopped at the end.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Options {
    rounds: usize,
    time: u64,
    threads: Vec<u32>,
    workloads: Vec<String>,
    modes: Vec<String>,
    tables: usize,
    table_size: usize,
    one_shard: bool,
    two_servers: bool,
    endpoints: Vec<Endpoint>,
    profile: Option<std::path::PathBuf>,
}

/// A way in given on the command line.
struct Endpoint {
    name: String,
    host: String,
    port: u16,
    user: String,
    password: String,
}

impl Endpoint {
    /// `NAME=HOST:PORT[:USER:PASSWORD]`; the user is `root` without a password when not given.
    fn parse(text: &str) -> Endpoint {
        let usage = "--endpoint=NAME=HOST:PORT[:USER:PASSWORD]";
        let (name, rest) = text.split_once('=').expect(usage);
        let parts: Vec<&str> = rest.splitn(4, ':').collect();
        let (host, port, user, password) = match parts.as_slice() {
            [h, p] => (*h, *p, "root", ""),
            [h, p, u] => (*h, *p, *u, ""),
            [h, p, u, pw] => (*h, *p, *u, *pw),
            _ => panic!("{usage}"),
        };
        // A load test never leaves this machine.
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        assert!(
            loopback,
            "--endpoint {name}: {host} is not a loopback address"
        );
        Endpoint {
            name: name.to_string(),
            host: host.to_string(),
            port: port.parse().expect(usage),
            user: user.to_string(),
            password: password.to_string(),
        }
    }
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            rounds: 3,
            time: 10,
            threads: vec![8, 32],
            // insert last: it grows the tables, the direct server's more than the shards'.
            workloads: [
                "point_select",
                "read_only",
                "read_write",
                "scatter",
                "insert",
            ]
            .map(String::from)
            .to_vec(),
            modes: vec!["auto".into(), "disable".into()],
            tables: 4,
            table_size: 10_000,
            one_shard: false,
            two_servers: false,
            endpoints: Vec::new(),
            profile: None,
        };
        let list = |v: &str| v.split(',').map(str::to_string).collect::<Vec<_>>();
        for arg in std::env::args().skip(1) {
            let Some((name, value)) = arg.trim_start_matches("--").split_once('=') else {
                continue; // `--bench` and the like, from cargo
            };
            let number = || {
                value
                    .parse::<usize>()
                    .unwrap_or_else(|_| panic!("--{name} wants a number"))
            };
            match name {
                "rounds" => o.rounds = number(),
                "time" => o.time = number() as u64,
                "threads" => {
                    o.threads = list(value)
                        .iter()
                        .map(|t| t.parse().expect("--threads=8,32"))
                        .collect()
                }
                "workloads" => o.workloads = list(value),
                "modes" => o.modes = list(value),
                "tables" => o.tables = number(),
                "table-size" => o.table_size = number(),
                "one-shard" => o.one_shard = value == "true",
                "two-servers" => o.two_servers = value == "true",
                "endpoint" => o.endpoints.push(Endpoint::parse(value)),
                "profile" => o.profile = Some(value.into()),
                other => panic!("unknown option --{other}"),
            }
        }
        o
    }
}

/// A process we started, killed when dropped.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One way in: where sysbench connects, as whom, and which process to charge CPU to.
struct Target {
    name: String,
    host: String,
    port: u16,
    user: String,
    password: String,
    /// (pid, whether its CPU is in children it reaps: socat forks one per connection)
    cpu_of: Option<(u32, bool)>,
    /// Its sbtest tables are made by sysbench through it (not another way in to the same data).
    prepare: bool,
    /// A shardgate process: profiled with `profile=DIR`.
    shardgate: bool,
    /// The MariaDB processes that do its work, whose CPU per query is reported too: the
    /// database's own share, which a proxy over two servers can raise.
    databases: Vec<u32>,
    /// The database sysbench uses.
    db: &'static str,
    /// More servers holding the same tables: sysbench runs against each side by side, the
    /// threads shared out, and the figures are summed. Clients that pick their server, with no
    /// proxy: the most any proxy over that many servers could do on this machine.
    also: Vec<u16>,
}

impl Target {
    fn local(name: &str, port: u16, user: &str, password: &str) -> Target {
        Target {
            name: name.into(),
            host: "127.0.0.1".into(),
            port,
            user: user.into(),
            password: password.into(),
            cpu_of: None,
            prepare: false,
            shardgate: false,
            databases: Vec::new(),
            db: "sbtest",
            also: Vec::new(),
        }
    }

    fn ports(&self) -> Vec<u16> {
        std::iter::once(self.port)
            .chain(self.also.iter().copied())
            .collect()
    }
}

/// What one sysbench run reported.
#[derive(Clone, Copy, Default)]
struct Run {
    tps: f64,
    qps: f64,
    p95_ms: f64,
    /// CPU microseconds of the charged process per query.
    cpu_us: Option<[f64; 2]>,
    /// CPU microseconds (user+sys) of the target's MariaDB processes per query.
    db_us: Option<f64>,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` builds and runs benches in test mode: nothing to check here.
        println!("load benchmark: run it with benches/load/run.sh");
        return;
    }
    let o = Options::parse();
    let servers = testkit::start(3, &["sbtest", "main", "sbone", "mainone", "sbfull"])
        .expect("start MariaDB");
    let (s0, s1, reference) = (&servers[0], &servers[1], &servers[2]);
    let dir = tempfile::tempdir().expect("temp dir");

    let mut started = Vec::new();
    // Each shardgate has its own sequences: the ids sysbench's rows get must be 1..=table-size.
    let mut start_shardgate =
        |name: &str, main: &str, shards: &[(&str, &testkit::MariaDb, &str)]| {
            let port = free_port();
            let config_path = dir.path().join(format!("{name}.toml"));
            let config = config_text(port, (s0.port, main), shards, o.tables);
            std::fs::write(&config_path, config).expect("write config");
            let child = Started(
                testkit::die_with_parent(&mut Command::new(env!("CARGO_BIN_EXE_shardgate")))
                    .args(["serve", "--config"])
                    .arg(&config_path)
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("start shardgate"),
            );
            wait_port(port);
            let target = Target {
                cpu_of: Some((child.0.id(), false)),
                prepare: true,
                shardgate: true,
                databases: shards.iter().map(|s| s.1.pid()).collect(),
                ..Target::local(name, port, "app", "secret")
            };
            started.push(child);
            target
        };
    let mut targets = vec![Target {
        prepare: true,
        databases: vec![reference.pid()],
        ..Target::local("direct", reference.port, "root", "")
    }];
    let relay_port = free_port();
    let relay = Started(
        testkit::die_with_parent(&mut Command::new("socat"))
            .arg(format!(
                "TCP-LISTEN:{relay_port},bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=512"
            ))
            .arg(format!("TCP:127.0.0.1:{},nodelay", reference.port))
            .stdin(Stdio::null())
            .spawn()
            .expect("start socat (Debian package socat)"),
    );
    wait_port(relay_port);
    targets.push(Target {
        cpu_of: Some((relay.0.id(), true)),
        databases: vec![reference.pid()],
        ..Target::local("relay", relay_port, "root", "")
    });
    targets.push(start_shardgate(
        "shardgate",
        "main",
        &[("-80", s0, "sbtest"), ("80-", s1, "sbtest")],
    ));
    if o.one_shard {
        targets.push(start_shardgate(
            "shardgate-1",
            "mainone",
            &[("-", s1, "sbone")],
        ));
    }
    for e in &o.endpoints {
        targets.push(Target {
            host: e.host.clone(),
            prepare: true,
            ..Target::local(&e.name, e.port, &e.user, &e.password)
        });
    }
    if o.two_servers {
        targets.push(Target {
            prepare: true,
            databases: vec![s0.pid(), s1.pid()],
            db: "sbfull",
            also: vec![s1.port],
            ..Target::local("direct-2", s0.port, "root", "")
        });
    }
    let sg = 2; // shardgate over two shards: the ratios are its

    eprintln!("preparing {} tables x {} rows", o.tables, o.table_size);
    for target in targets.iter().filter(|t| t.shardgate) {
        for t in 1..=o.tables {
            mariadb(
                target.port,
                "main",
                &format!(
                    "DROP TABLE IF EXISTS sbtest{t}_seq; CREATE TABLE sbtest{t}_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT); INSERT INTO sbtest{t}_seq VALUES (0, 1, 1000)"
                ),
            );
        }
    }
    for target in targets.iter().filter(|t| t.prepare) {
        for port in target.ports() {
            sysbench(target, port, &o, "oltp_read_write", &[], "cleanup");
            sysbench(target, port, &o, "oltp_read_write", &[], "prepare");
        }
    }

    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/load/scatter.lua");
    let mut results: BTreeMap<(usize, u32, usize), Vec<Vec<Run>>> = BTreeMap::new();
    let clock = Instant::now();
    for (w, workload) in o.workloads.iter().enumerate() {
        let script = match workload.as_str() {
            "scatter" => lua.display().to_string(),
            w => format!("oltp_{w}"),
        };
        for &threads in &o.threads {
            for (m, mode) in o.modes.iter().enumerate() {
                for round in 0..o.rounds {
                    let runs: Vec<Run> = targets
                        .iter()
                        .map(|t| {
                            let profile = o
                                .profile
                                .as_ref()
                                .filter(|_| round == 0 && t.shardgate)
                                .map(|d| {
                                    let file = d.join(format!(
                                        "{}-{workload}-{threads}-{mode}.data",
                                        t.name
                                    ));
                                    perf_record(t.cpu_of.map_or(0, |c| c.0), &file)
                                });
                            let before = t.cpu_of.map(cpu_ticks);
                            let db_before = database_ticks(t);
                            let mut run = run_sysbench(t, &o, &script, threads, mode);
                            let queries = run.qps * o.time as f64;
                            if !t.databases.is_empty() {
                                let spent = database_ticks(t) - db_before;
                                run.db_us = Some(spent as f64 * 1e6 / clock_ticks() / queries);
                            }
                            if let (Some(before), Some(cpu)) = (before, t.cpu_of) {
                                // socat's children exit when sysbench disconnects; let it reap
                                // them.
                                std::thread::sleep(Duration::from_millis(300));
                                let after = cpu_ticks(cpu);
                                run.cpu_us = Some([0, 1].map(|i| {
                                    (after[i] - before[i]) as f64 * 1e6 / clock_ticks() / queries
                                }));
                            }
                            drop(profile);
                            run
                        })
                        .collect();
                    let each: Vec<String> = targets
                        .iter()
                        .zip(&runs)
                        .map(|(t, r)| format!("{} {:.0}", t.name, r.tps))
                        .collect();
                    let cpu: Vec<String> = targets
                        .iter()
                        .zip(&runs)
                        .filter(|(t, _)| t.cpu_of.is_some())
                        .map(|(t, r)| format!("{} {}", t.name, cpu_text(r.cpu_us)))
                        .collect();
                    let db: Vec<String> = targets
                        .iter()
                        .zip(&runs)
                        .filter_map(|(t, r)| Some(format!("{} {:.0}", t.name, r.db_us?)))
                        .collect();
                    eprintln!(
                        "{workload} threads={threads} ps={mode} round {}: {} tps; CPU µs/query (user+sys) {}; MariaDB CPU µs/query {}",
                        round + 1,
                        each.join(" "),
                        cpu.join(" "),
                        db.join(" "),
                    );
                    results.entry((w, threads, m)).or_default().push(runs);
                }
            }
        }
    }
    print_table(&o, &targets, sg, &results);
    println!(
        "\n{} rounds of {} s each, {:.0} s in all; medians of the rounds; CPU is user+system time of the process per query (relay: socat's exited children included)",
        o.rounds,
        o.time,
        clock.elapsed().as_secs_f64()
    );
    drop(started);
    drop(relay);
}

/// `perf record` of a process until dropped, with call graphs from frame pointers, or as
/// `PERF_CALL_GRAPH` says (`dwarf`: callers through inlined and LTO'd code, bigger files).
fn perf_record(pid: u32, file: &Path) -> Perf {
    let call_graph = std::env::var("PERF_CALL_GRAPH").unwrap_or_else(|_| "fp".into());
    Perf(
        testkit::die_with_parent(&mut Command::new("perf"))
            .args(["record", "--call-graph", &call_graph, "-q", "-p"])
            .args([&pid.to_string(), "-o"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("run perf (Debian package linux-perf)"),
    )
}

/// A running `perf record`: stopped with SIGINT when dropped, so that it writes its file out
/// (killed, it leaves a file `perf report` cannot read).
struct Perf(Child);

impl Drop for Perf {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn print_table(
    o: &Options,
    targets: &[Target],
    sg: usize,
    results: &BTreeMap<(usize, u32, usize), Vec<Vec<Run>>>,
) {
    let others: Vec<usize> = (0..targets.len()).filter(|&i| i != sg).collect();
    let costed: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].cpu_of.is_some())
        .collect();
    let mut header = vec!["workload".to_string(), "threads".into(), "ps-mode".into()];
    header.extend(targets.iter().map(|t| format!("{} tps", t.name)));
    header.extend(others.iter().map(|&i| format!("sg/{}", targets[i].name)));
    let names = targets
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join("/");
    header.push(format!("p95 ms {names}"));
    header.extend(
        costed
            .iter()
            .map(|&i| format!("CPU µs/query {} (user+sys)", targets[i].name)),
    );
    header.push(format!("MariaDB CPU µs/query {names}"));
    println!("\n| {} |", header.join(" | "));
    println!("|---|---:|---|{}", "---:|".repeat(header.len() - 3));
    for ((w, threads, m), rounds) in results {
        let med = |f: &dyn Fn(&[Run]) -> f64| median(rounds.iter().map(|r| f(r)).collect());
        let tps: Vec<f64> = (0..targets.len()).map(|i| med(&|r| r[i].tps)).collect();
        let p95: Vec<String> = (0..targets.len())
            .map(|i| format!("{:.2}", med(&|r| r[i].p95_ms)))
            .collect();
        let mut row = vec![
            o.workloads[*w].clone(),
            threads.to_string(),
            o.modes[*m].clone(),
        ];
        row.extend(tps.iter().map(|t| format!("{t:.0}")));
        row.extend(others.iter().map(|&i| format!("{:.2}", tps[sg] / tps[i])));
        row.push(p95.join(" / "));
        row.extend(costed.iter().map(|&i| {
            let part = |k: usize| med(&|r| r[i].cpu_us.map_or(f64::NAN, |c| c[k]));
            cpu_text(Some([part(0), part(1)]))
        }));
        let db: Vec<String> = (0..targets.len())
            .map(|i| format!("{:.0}", med(&|r| r[i].db_us.unwrap_or(f64::NAN))))
            .collect();
        row.push(db.join(" / "));
        println!("| {} |", row.join(" | "));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One sysbench run through `t`: against each of its servers side by side when it has several,
/// the threads shared out, their figures summed (p95: the worst).
fn run_sysbench(t: &Target, o: &Options, script: &str, threads: u32, mode: &str) -> Run {
    let ports = t.ports();
    let share = (threads as usize / ports.len()).max(1);
    let args = [
        format!("--threads={share}"),
        format!("--time={}", o.time),
        format!("--db-ps-mode={mode}"),
        // Deadlocks are retried as sysbench does against one server; shardgate breaks those
        // across shards with 1213 too, at the servers' default lock wait timeout.
        "--mysql-ignore-errors=1213".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let each: Vec<Run> = std::thread::scope(|scope| {
        let runs: Vec<_> = ports
            .iter()
            .map(|&port| {
                let args = &args;
                scope.spawn(move || parse_run(&sysbench(t, port, o, script, args, "run")))
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("sysbench"))
            .collect()
    });
    Run {
        tps: each.iter().map(|r| r.tps).sum(),
        qps: each.iter().map(|r| r.qps).sum(),
        p95_ms: each.iter().map(|r| r.p95_ms).fold(0.0, f64::max),
        ..Run::default()
    }
}

fn sysbench(
    t: &Target,
    port: u16,
    o: &Options,
    script: &str,
    extra: &[&str],
    command: &str,
) -> String {
    let out = Command::new("sysbench")
        .arg(script)
        .args([
            "--db-driver=mysql".to_string(),
            format!("--mysql-host={}", t.host),
            format!("--mysql-port={port}"),
            format!("--mysql-user={}", t.user),
            format!("--mysql-password={}", t.password),
            format!("--mysql-db={}", t.db),
            format!("--tables={}", o.tables),
            format!("--table-size={}", o.table_size),
            "--percentile=95".to_string(),
        ])
        .args(extra)
        .arg(command)
        .output()
        .expect("run sysbench (Debian package sysbench)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("FATAL"),
        "sysbench {script} {command} via {} failed:\n{text}",
        t.name
    );
    text
}

/// `transactions: 1234 (123.40 per sec.)`, `queries: ...`, `95th percentile: 1.23`.
fn parse_run(text: &str) -> Run {
    let field = |label: &str, per_sec: bool| -> f64 {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` in sysbench output:\n{text}"));
        let rest = &line[label.len()..];
        let number = if per_sec {
            rest.split('(')
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
        } else {
            rest.split_whitespace().next()
        };
        number
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unreadable `{line}`"))
    };
    Run {
        tps: field("transactions:", true),
        qps: field("queries:", true),
        p95_ms: field("95th percentile:", false),
        cpu_us: None,
        db_us: None,
    }
}

/// User+system clock ticks of a target's MariaDB processes.
fn database_ticks(t: &Target) -> u64 {
    t.databases
        .iter()
        .map(|&pid| cpu_ticks((pid, false)).iter().sum::<u64>())
        .sum()
}

/// [utime, stime] (+ reaped children's) of a process, in clock ticks.
fn cpu_ticks((pid, children): (u32, bool)) -> [u64; 2] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the parenthesised command name: state is field 3; utime is 14.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let (utime, stime, cutime, cstime) = (f[11], f[12], f[13], f[14]);
    if children {
        [utime + cutime, stime + cstime]
    } else {
        [utime, stime]
    }
}

/// "user+sys=total" µs per query.
fn cpu_text(cpu: Option<[f64; 2]>) -> String {
    match cpu {
        Some([user, sys]) => format!("{user:.0}+{sys:.0}={:.0}", user + sys),
        None => "-".into(),
    }
}

fn clock_ticks() -> f64 {
    // Linux has reported USER_HZ = 100 to user space on every architecture for decades.
    100.0
}

fn mariadb(port: u16, db: &str, sql: &str) {
    let out = Command::new("mariadb")
        .args(["-h127.0.0.1", &format!("-P{port}"), "-uapp", "-psecret", db])
        .arg("-e")
        .arg(sql)
        .output()
        .expect("run the mariadb client (Debian package mariadb-client)");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// shardgate's config: keyspace `main` (the sequences) at `main` (server port, database), and
/// keyspace `sbtest` over `shards` (name, server port, database), sharded by `id` with `hash`.
fn config_text(
    port: u16,
    main: (u16, &str),
    shards: &[(&str, &testkit::MariaDb, &str)],
    tables: usize,
) -> String {
    let url = |p: u16, db: &str| format!("mysql://root@127.0.0.1:{p}/{db}");
    let (mut sequences, mut sharded) = (String::new(), String::new());
    for t in 1..=tables {
        sequences.push_str(&format!(
            "tables.sbtest{t}_seq = {{ type = \"sequence\" }}\n"
        ));
        sharded.push_str(&format!(
            "tables.sbtest{t} = {{ primary_vindex = {{ column = \"id\", vindex = \"hash\" }}, auto_increment = {{ column = \"id\", sequence = \"main.sbtest{t}_seq\" }} }}\n"
        ));
    }
    let shards: Vec<String> = shards
        .iter()
        .map(|(name, s, db)| format!("{{ name = \"{name}\", primary = \"{}\" }}", url(s.port, db)))
        .collect();
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"

[[users]]
name = "app"
password = "secret"

[keyspaces.main]
sharded = false
shards = [{{ name = "0", primary = "{main}" }}]
{sequences}
[keyspaces.sbtest]
sharded = true
shards = [{shards}]
vindexes.hash = {{ type = "hash" }}
{sharded}"#,
        main = url(main.0, main.1),
        shards = shards.join(", "),
    )
}
