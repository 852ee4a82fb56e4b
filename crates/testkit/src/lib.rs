//! Real MariaDB servers for tests and the demo: each instance gets a fresh data directory in a
//! temp dir, a free loopback port, and is stopped and removed when dropped. A watchdog process
//! also removes it if the owning process dies without dropping it (e.g. a `static` shared by the
//! tests of one binary).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("{0} not found: install Debian's mariadb-server package (`apt-get install -y mariadb-server`)")]
    Missing(&'static str),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
    let what = what.into();
    move |source| TestkitError::Io { what, source }
}

/// One running `mariadbd`.
pub struct MariaDb {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    /// Options beyond the usual ones (kept for restarts).
    extra: Vec<String>,
}

impl MariaDb {
    /// The server's process id (tests stop and continue it to play a shard that hangs).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `mysql://root@127.0.0.1:PORT/db`
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (SIGTERM, a clean shutdown; SIGKILL after 30 s) and starts it again on
    /// the same port and data, waiting until it accepts connections.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .child
            .try_wait()
            .map_err(io_err("waiting for mariadbd"))?
            .is_none()
        {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.start_again()
    }

    /// Kills the server at once (SIGKILL: a crash, nothing flushed but what was durable).
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a stopped server again on the same port and data, waiting until it accepts
    /// connections.
    pub fn start_again(&mut self) -> Result<(), TestkitError> {
        // The watchdog started with the first server reads the pid file when it acts, so it
        // covers this one too.
        self.child = spawn_server(
            &find_binary("mariadbd")?,
            self.dir.path(),
            self.port,
            is_root(),
            &self.extra,
        )?;
        wait_ready(self)
    }
}

/// An etcd server on a free loopback port with a temporary data directory, stopped and
/// removed when dropped (or, through a watchdog, when this process dies).
pub struct Etcd {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// `host:port` for clients.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts etcd (from Debian's `etcd-server`) and waits until it takes connections.
pub fn start_etcd() -> Result<Etcd, TestkitError> {
    let etcd = find_binary("etcd")?;
    let dir = tempfile::tempdir().map_err(io_err("creating a temp dir"))?;
    let d = dir.path();
    let (port, peer) = (free_port()?, free_port()?);
    let log = std::fs::File::create(d.join("etcd.log")).map_err(io_err("creating etcd.log"))?;
    let client_url = format!("http://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut child = Command::new(etcd)
        .arg(format!("--data-dir={}", d.join("data").display()))
        .args(["--name", "test"])
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("test={peer_url}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err("etcd.log"))?)
        .stderr(log)
        .spawn()
        .map_err(io_err("starting etcd"))?;
    watchdog_for(d, "--data-dir");
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(d.join("etcd.log")).unwrap_or_default();
            return Err(TestkitError::Failed(format!(
                "etcd exited with {status}: {log}"
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(TestkitError::Failed("etcd not ready after 60 s".into()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Etcd {
        port,
        child,
        _dir: dir,
    })
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary(name: &'static str) -> Result<PathBuf, TestkitError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(TestkitError::Missing(name))
}

fn free_port() -> Result<u16, TestkitError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("binding a free port"))?;
    Ok(l.local_addr()
        .map_err(io_err("reading a free port"))?
        .port())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Starts `n` instances in parallel, each with the given databases created (and a
/// `root@127.0.0.1` user without password, for TCP logins).
pub fn start(n: usize, databases: &[&str]) -> Result<Vec<MariaDb>, TestkitError> {
    start_with(n, databases, &[])
}

/// [`start`], with more server options (e.g. `--ssl-cert=...`).
pub fn start_with(
    n: usize,
    databases: &[&str],
    extra: &[String],
) -> Result<Vec<MariaDb>, TestkitError> {
    start_each(databases, &vec![extra.to_vec(); n], "")
}

/// The options that make a server write what a change stream reads: row binlogs with full
/// images and metadata, and GTIDs (MariaDB always has them; strict mode keeps each domain's
/// sequence growing).
pub fn binlog_options(server_id: usize) -> Vec<String> {
    [
        "--log-bin=binlog",
        "--binlog-format=ROW",
        "--binlog-row-image=FULL",
        "--binlog-row-metadata=FULL",
        "--gtid-strict-mode=ON",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("--server-id={server_id}")])
    .collect()
}

/// [`start`], the servers writing binlogs a change stream can follow ([`binlog_options`]).
pub fn start_binlogged(n: usize, databases: &[&str]) -> Result<Vec<MariaDb>, TestkitError> {
    let options: Vec<Vec<String>> = (0..n).map(|i| binlog_options(i + 1)).collect();
    // The databases are made before the binlogs begin to matter to anyone.
    start_each(databases, &options, "SET sql_log_bin = 0;\n")
}

/// A replication group: a primary (the first server) and `replicas` servers replicating from
/// it, each with `databases`. GTID-based, semi-synchronous with `AFTER_SYNC` (a commit is
/// acknowledged once a replica has it: lossless), row binlogs; the replicas are `read_only`.
pub fn start_replicated(replicas: usize, databases: &[&str]) -> Result<Vec<MariaDb>, TestkitError> {
    let options: Vec<Vec<String>> = (0..=replicas)
        .map(|i| {
            let mut o = binlog_options(i + 1);
            o.extend(
                [
                    "--log-slave-updates=ON",
                    "--rpl-semi-sync-master-enabled=ON",
                    "--rpl-semi-sync-slave-enabled=ON",
                    "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
                    // A group whose replicas are all stopped goes on asynchronously after this.
                    "--rpl-semi-sync-master-timeout=2000",
                    "--slave-net-timeout=5",
                ]
                .map(String::from),
            );
            if i > 0 {
                o.push("--read-only=ON".into());
            }
            o
        })
        .collect();
    // Every server runs the same init file: none of it goes to the binlog, so the replicas
    // start at the primary's (empty) position with the same databases.
    let servers = start_each(databases, &options, "SET sql_log_bin = 0;\n")?;
    for replica in &servers[1..] {
        replica.sql(&format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', \
             MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1; START SLAVE",
            servers[0].port
        ))?;
    }
    Ok(servers)
}

impl MariaDb {
    /// Runs `sql` with the `mariadb` client over the server's socket, within 60 s; its output
    /// (tab-separated rows, no column names).
    pub fn sql(&self, sql: &str) -> Result<String, TestkitError> {
        let out = output_within(
            Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!(
                    "--socket={}",
                    self.dir().join("mysqld.sock").display()
                ))
                .args(["-uroot", "-N", "-B", "-e", sql]),
            Duration::from_secs(60),
            "the mariadb client",
        )
        .map_err(io_err("running the mariadb client"))?;
        if !out.status.success() {
            return Err(TestkitError::Failed(format!(
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Starts one server per entry of `extra` (its own options), each with `databases`; the init
/// file starts with `init_prefix`.
/// The servers' directories in the temp dir, and the file in each naming the process that
/// made it.
const DIR_PREFIX: &str = "shardgate-mariadb-";
const OWNER: &str = "owner.pid";

/// Removes the servers' directories that a killed test process left (its temp dirs are removed
/// when they drop, which a SIGKILL skips): those whose owner is gone, and those without an
/// owner file older than a day. Left alone, they filled CI machines' disks.
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if !named {
            continue;
        }
        let stale = match std::fs::read_to_string(path.join(OWNER)) {
            Ok(pid) => pid
                .trim()
                .parse::<u32>()
                .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()),
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(24 * 3600)),
        };
        if stale {
            // Its server too, if its watchdog did not get to it (killed with its test).
            kill_naming(&format!("--datadir={}/data", path.display()));
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// SIGKILLs every process whose command line holds `text`.
fn kill_naming(text: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let named = cmdline.split(|b| *b == 0).any(|arg| arg == text.as_bytes());
        if named && pid != std::process::id() as i32 {
            // SAFETY: kill only sends a signal.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn start_each(
    databases: &[&str],
    extra: &[Vec<String>],
    init_prefix: &str,
) -> Result<Vec<MariaDb>, TestkitError> {
    let n = extra.len();
    let mariadbd = find_binary("mariadbd")?;
    let install_db = find_binary("mariadb-install-db")?;
    let root = is_root();
    let user = if root {
        "root".to_string()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "nobody".into())
    };

    sweep_stale_dirs();
    let dirs: Vec<tempfile::TempDir> = (0..n)
        .map(|_| {
            let dir = tempfile::Builder::new()
                .prefix(DIR_PREFIX)
                .tempdir()
                .map_err(io_err("creating a temp dir"))?;
            std::fs::write(dir.path().join(OWNER), std::process::id().to_string())
                .map_err(io_err("writing the owner file"))?;
            Ok(dir)
        })
        .collect::<Result<_, _>>()?;
    let installs: Vec<Child> = dirs
        .iter()
        .map(|d| {
            let log = std::fs::File::create(d.path().join("install.log"))
                .map_err(io_err("creating install.log"))?;
            Command::new(&install_db)
                .arg("--no-defaults")
                .arg(format!("--user={user}"))
                .arg(format!("--datadir={}", d.path().join("data").display()))
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db")
                // Parallel bootstraps sharing /tmp trip over each other's temporary tables.
                .env("TMPDIR", d.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(io_err("install.log"))?)
                .stderr(log)
                .spawn()
                .map_err(io_err("running mariadb-install-db"))
        })
        .collect::<Result<_, _>>()?;
    for (mut child, dir) in installs.into_iter().zip(&dirs) {
        let status = wait_within(&mut child, Duration::from_secs(300), "mariadb-install-db");
        if !status.success() {
            let log = std::fs::read_to_string(dir.path().join("install.log")).unwrap_or_default();
            return Err(TestkitError::Failed(format!(
                "mariadb-install-db failed: {log}"
            )));
        }
    }

    let mut init = String::from(init_prefix);
    init.push_str(
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\nGRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n",
    );
    for db in databases {
        init.push_str(&format!("CREATE DATABASE IF NOT EXISTS `{db}`;\n"));
    }

    let mut servers = Vec::new();
    for (dir, extra) in dirs.into_iter().zip(extra) {
        let port = free_port()?;
        let d = dir.path();
        std::fs::write(d.join("init.sql"), &init).map_err(io_err("writing init.sql"))?;
        let child = spawn_server(&mariadbd, d, port, root, extra)?;
        watchdog(d);
        servers.push(MariaDb {
            port,
            child,
            dir,
            extra: extra.clone(),
        });
    }
    for s in &mut servers {
        // The free port may be taken between asking for it and mariadbd binding it (another
        // test's client, on a busy machine): start again on another.
        let mut attempts = 0;
        loop {
            match wait_ready(s) {
                Err(TestkitError::Failed(log)) if log.contains("error: 98") && attempts < 5 => {
                    attempts += 1;
                    let _ = std::fs::remove_file(s.dir().join("error.log"));
                    s.port = free_port()?;
                    s.child = spawn_server(&mariadbd, s.dir(), s.port, root, &s.extra)?;
                }
                other => break other?,
            }
        }
    }
    Ok(servers)
}

/// Waits for `child` to end; after `limit` it is killed and the caller fails with a message
/// naming `what` it waited for.
#[track_caller]
pub fn wait_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {limit:?}: killed");
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// Runs `cmd` to its end with its output captured, as `Command::output` does, but bounded:
/// after `limit` it is killed and the caller fails with a message naming `what`. The child
/// also dies with the calling thread (see [`die_with_parent`]).
#[track_caller]
pub fn output_within(
    cmd: &mut Command,
    limit: Duration,
    what: &str,
) -> std::io::Result<std::process::Output> {
    let mut child = die_with_parent(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .spawn()?;
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            let _ = tx.send(bytes);
        });
        rx
    };
    let stdout = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_within(&mut child, limit, what);
    // A grandchild that kept the pipes open must not hang the caller either.
    let take = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{what}: its output did not end after it exited"))
    };
    Ok(std::process::Output {
        status,
        stdout: take(stdout),
        stderr: take(stderr),
    })
}

/// Runs a client program (a driver's or an ORM's script) to completion within five minutes and
/// returns what it wrote (stdout, then stderr); panics with that output unless it succeeds.
/// `hint` says where the program comes from when it cannot start.
pub fn run_client(cmd: &mut Command, hint: &str) -> String {
    let what = format!("{:?}", cmd.get_program());
    let out = output_within(cmd, Duration::from_secs(300), &what)
        .unwrap_or_else(|e| panic!("{what}: {e} ({hint})"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} {:?} failed:\n{text}",
        cmd.get_args().collect::<Vec<_>>()
    );
    text
}

/// Runs `openssl` with `args` in `dir`, for test certificates; panics with its error output if
/// it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = output_within(
        Command::new("openssl").args(args).current_dir(dir),
        Duration::from_secs(120),
        "openssl",
    )
    .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate for `subject` (`/CN=...`), valid two days, written to `key` and
/// `cert` in `dir`, with `san` as its subjectAltName if given.
pub fn self_signed(dir: &Path, subject: &str, key: &str, cert: &str, san: Option<&str>) {
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
    ];
    let san = san.map(|s| format!("subjectAltName={s}"));
    if let Some(san) = &san {
        args.extend(["-addext", san.as_str()]);
    }
    args.extend(["-keyout", key, "-out", cert]);
    openssl(dir, &args);
}

/// A server key and certificate (`server.key`, `server.pem`) for `subject`, with the subject
/// alternative names `san` (`IP:127.0.0.1,DNS:localhost`), signed by the CA in `ca.pem` /
/// `ca.key` for two days.
pub fn ca_signed_server(dir: &Path, subject: &str, san: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), format!("subjectAltName={san}\n")).expect("san.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// Makes the process `cmd` starts die with the thread that starts it (for benchmarks and tests
/// whose children must not outlive them, however they end).
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

/// Starts mariadbd on an installed data directory.
fn spawn_server(
    mariadbd: &Path,
    d: &Path,
    port: u16,
    root: bool,
    extra: &[String],
) -> Result<Child, TestkitError> {
    let log =
        std::fs::File::create(d.join("mariadbd.out")).map_err(io_err("creating mariadbd.out"))?;
    let mut cmd = Command::new(mariadbd);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", d.join("data").display()))
        .arg(format!("--socket={}", d.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", d.join("error.log").display()))
        .arg(format!("--init-file={}", d.join("init.sql").display()))
        .arg(format!("--tmpdir={}", d.display()))
        .arg(format!("--port={port}"))
        .args([
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=48M",
            "--innodb-flush-log-at-trx-commit=2",
            "--skip-log-bin",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=1000",
            "--performance-schema=OFF",
            "--max-allowed-packet=256M",
        ]);
    if root {
        cmd.arg("--user=root");
    }
    cmd.args(extra);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err("mariadbd.out"))?)
        .stderr(log)
        .spawn()
        .map_err(io_err("starting mariadbd"))
}

/// Kills the server and removes its directory once this process is gone: every process whose
/// command line names this data directory (a restart changes the pid, and a full disk may have
/// kept the server from writing its pid file: servers left so once filled the memory).
fn watchdog(dir: &Path) {
    watchdog_for(dir, "--datadir");
}

/// [`watchdog`] for a server whose command line says `{data_flag}={dir}/data`.
fn watchdog_for(dir: &Path, data_flag: &str) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
         for p in /proc/[0-9]*; do n=${{p#/proc/}}; [ \"$n\" = \"$$\" ] && continue; \
         if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -qF -- '{data_flag}={dir}/data'; then kill -9 $n; fi; done; \
         sleep 1; rm -rf '{dir}'",
        parent = std::process::id(),
        dir = dir.display()
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// Ready when the server sends its greeting over TCP (after the init file has run).
fn wait_ready(server: &mut MariaDb) -> Result<(), TestkitError> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(server.dir().join("error.log")).unwrap_or_default();
            return Err(TestkitError::Failed(format!(
                "mariadbd exited with {status}: {log}"
            )));
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", server.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut header = [0u8; 5];
            if s.read_exact(&mut header).is_ok() && header[4] == 10 {
                let _ = s.write_all(&[]);
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(server.dir().join("error.log")).unwrap_or_default();
            return Err(TestkitError::Failed(format!(
                "mariadbd on port {} not ready after 90 s: {log}",
                server.port
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
