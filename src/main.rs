use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod branch_cli;
mod reshard_cli;

// Every statement allocates blocks of a KiB or more (its boxed command future, a scatter's
// channels); glibc's malloc sweeps its fast bins on each such request, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// shardgate: many MySQL/MariaDB servers behind one MySQL endpoint.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Examples:
  shardgate demo                                   local shards with sample data on 127.0.0.1:15306
  shardgate serve --config shardgate.toml          serve a config (or set SHARDGATE_CONFIG)
  shardgate --log-format json serve --config c.toml
  shardgate check --config shardgate.toml          validate a config and print its topology
  shardgate reload --config shardgate.toml         apply an edited config to a running proxy
  shardgate explain --config c.toml \"SELECT * FROM t WHERE id = 1\"
  shardgate resolve --config shardgate.toml        finish twopc transactions a crash left
  shardgate migration list --config shardgate.toml the online schema changes
  shardgate branch create dev --config c.toml      a schema branch, and a user for it
  shardgate deploy-request create dev --config c.toml
                                                   its changes as DDL for main, with lint"
)]
struct Cli {
    /// Log lines as text for people, or JSON objects for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The least severe level logged (error, warn, info, debug, trace), or a filter such as
    /// `info,shardgate::query=off`. RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the keyspaces of a config file. SIGHUP re-reads it; SIGTERM or SIGINT drain the
    /// sessions (up to server.shutdown_timeout_ms) and exit.
    #[command(after_help = "Example:\n  shardgate serve --config config/demo.toml")]
    Serve {
        #[arg(long, env = "SHARDGATE_CONFIG")]
        config: PathBuf,
    },
    /// Start local MariaDB shards with sample data and serve them on 127.0.0.1:15306.
    #[command(
        after_help = "Example:\n  shardgate demo && mysql -h 127.0.0.1 -P 15306 -u app -papp"
    )]
    Demo {
        #[arg(long, default_value = "127.0.0.1:15306")]
        listen: String,
    },
    /// Validate a config (or a Vitess vschema.json) and print the topology.
    #[command(
        after_help = "Examples:\n  shardgate check --config shardgate.toml\n  shardgate check --vschema-json vschema.json"
    )]
    Check {
        #[arg(
            long,
            env = "SHARDGATE_CONFIG",
            required_unless_present = "vschema_json"
        )]
        config: Option<PathBuf>,
        #[arg(long)]
        vschema_json: Option<PathBuf>,
    },
    /// Ask a running proxy (through its admin address in the config) to re-read its config.
    #[command(after_help = "Example:\n  shardgate reload --config shardgate.toml")]
    Reload {
        #[arg(long, env = "SHARDGATE_CONFIG")]
        config: PathBuf,
    },
    /// Ask a running proxy to hand a shard's primary over to one of its replicas. Statements
    /// for the shard wait meanwhile (up to failover_buffer_ms); the new primary is recorded in
    /// the state file beside the config.
    #[command(
        after_help = "Example:\n  shardgate reparent commerce/-80 --to 127.0.0.1:3307 --config shardgate.toml"
    )]
    Reparent {
        /// keyspace/shard
        shard: String,
        /// The replica to promote: host:port, as in its URL.
        #[arg(long)]
        to: String,
        #[arg(long, env = "SHARDGATE_CONFIG")]
        config: PathBuf,
    },
    /// The online schema changes of a running proxy (`ALTER TABLE` under ddl_strategy online).
    #[command(
        after_help = "Examples:\n  shardgate migration list --config shardgate.toml\n  shardgate migration show 18ee03f5... --watch --config shardgate.toml\n  shardgate migration cancel 18ee03f5... --config shardgate.toml"
    )]
    Migration {
        #[command(subcommand)]
        action: MigrationAction,
        #[arg(long, env = "SHARDGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// Schema branches of a running proxy: main's tables in databases of their own, reached
    /// by users issued per branch.
    #[command(
        after_help = "Examples:\n  shardgate branch create add-email --data sample --config shardgate.toml\n  shardgate branch list --config shardgate.toml\n  shardgate branch password add-email --format json --config shardgate.toml\n  shardgate branch production on --config shardgate.toml\n  shardgate branch delete add-email --config shardgate.toml"
    )]
    Branch {
        #[command(subcommand)]
        action: branch_cli::BranchAction,
        #[arg(long, env = "SHARDGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// Deploy requests: a branch's schema changes brought to main as online migrations.
    #[command(
        after_help = "Examples:\n  shardgate deploy-request create add-email --config shardgate.toml\n  shardgate deploy-request show 1 --config shardgate.toml\n  shardgate deploy-request deploy 1 --wait --config shardgate.toml\n  shardgate deploy-request revert 1 --config shardgate.toml"
    )]
    DeployRequest {
        #[command(subcommand)]
        action: branch_cli::RequestAction,
        #[arg(long, env = "SHARDGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// Move a keyspace to other shards while it serves: split (2 -> 4) or merge (4 -> 2).
    /// The target shards are listed in the keyspace's spare_shards.
    #[command(
        after_help = "Examples:\n  shardgate reshard commerce --to '-40,40-80,80-c0,c0-' --watch --config shardgate.toml\n  shardgate reshard commerce status --config shardgate.toml\n  shardgate reshard commerce switch-reads --config shardgate.toml\n  shardgate reshard commerce switch --config shardgate.toml\n  shardgate reshard commerce reverse --config shardgate.toml\n  shardgate reshard commerce complete --config shardgate.toml"
    )]
    Reshard {
        keyspace: String,
        /// What to do: start with --to (and when only --to is given), status otherwise.
        #[arg(value_enum)]
        step: Option<reshard_cli::Step>,
        /// The target shards, comma-separated (with start).
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        /// The copy's pace per source shard, at most (with start).
        #[arg(long)]
        max_rows_per_sec: Option<u64>,
        /// A progress bar until the copy and the verify end.
        #[arg(long)]
        watch: bool,
        #[arg(long, value_enum, default_value_t = branch_cli::Format::Human)]
        format: branch_cli::Format,
        #[arg(long, env = "SHARDGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The mariadb client on a branch, as a new user of it.
    #[command(after_help = "Example:\n  shardgate shell add-email --config shardgate.toml")]
    Shell {
        branch: String,
        /// The keyspace to start in (the first one otherwise).
        #[arg(long)]
        keyspace: Option<String>,
        #[arg(long, env = "SHARDGATE_CONFIG")]
        config: PathBuf,
    },
    /// Print the mysql_native_password hash of a password (read from standard input), for a
    /// user's `password_hash` in the config.
    #[command(
        after_help = "Example:\n  printf '%s' 's3cret' | shardgate passwd\n  password_hash = \"*...\""
    )]
    Passwd,
    /// Finish twopc transactions left prepared by a crash: commit those with a recorded decision,
    /// roll back the others.
    #[command(
        after_help = "Example:\n  shardgate resolve --config shardgate.toml --prefix sg-15306-"
    )]
    Resolve {
        #[arg(long, env = "SHARDGATE_CONFIG")]
        config: PathBuf,
        /// Only transaction ids starting with this (one instance's are `sg-<port>-`).
        #[arg(long, default_value = "sg-")]
        prefix: String,
    },
    /// Print the plan of a statement.
    #[command(
        after_help = "Example:\n  shardgate explain --config shardgate.toml --keyspace commerce \"SELECT * FROM orders WHERE customer_id = 5\""
    )]
    Explain {
        #[arg(long, env = "SHARDGATE_CONFIG")]
        config: PathBuf,
        /// The keyspace the statement runs in (as after `USE`).
        #[arg(long)]
        keyspace: Option<String>,
        sql: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::Demo { listen } => {
            runtime().and_then(|rt| rt.block_on(shardgate::demo::run(&listen)))
        }
        Command::Check {
            config,
            vschema_json,
        } => check(config, vschema_json),
        Command::Explain {
            config,
            keyspace,
            sql,
        } => explain(config, keyspace, &sql),
        Command::Resolve { config, prefix } => resolve(config, &prefix),
        Command::Reload { config } => post_admin(config, "/reload"),
        Command::Reparent { shard, to, config } => {
            let query = format!(
                "/reparent?shard={}&to={}",
                url_encode(&shard),
                url_encode(&to)
            );
            post_admin(config, &query)
        }
        Command::Migration { action, config } => match config {
            Some(config) => migration(config, action),
            None => Err(
                "give --config (or SHARDGATE_CONFIG): the proxy's admin address is in it".into(),
            ),
        },
        Command::Branch { action, config } => {
            branch_cli::config(config).and_then(|c| branch_cli::branch(&c, action))
        }
        Command::DeployRequest { action, config } => {
            branch_cli::config(config).and_then(|c| branch_cli::deploy_request(&c, action))
        }
        Command::Reshard {
            keyspace,
            step,
            to,
            max_rows_per_sec,
            watch,
            format,
            config,
        } => {
            let step = step.unwrap_or(match to {
                Some(_) => reshard_cli::Step::Start,
                None => reshard_cli::Step::Status,
            });
            let start = reshard_cli::Start {
                to,
                max_rows_per_sec,
            };
            branch_cli::config(config)
                .and_then(|c| reshard_cli::reshard(&c, &keyspace, step, start, watch, format))
        }
        Command::Shell {
            branch,
            keyspace,
            config,
        } => branch_cli::shell(&config, &branch, keyspace),
        Command::Passwd => passwd(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

fn runtime() -> Result<tokio::runtime::Runtime, AnyError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn serve(path: PathBuf) -> Result<(), AnyError> {
    use tokio::signal::unix::{signal, SignalKind};
    let config = vschema::load_config(&path)?;
    shardgate::raise_fd_limit();
    runtime()?.block_on(async {
        let running =
            shardgate::start_from(&config, &config.server.listen, Some(path.clone())).await?;
        tracing::info!(addr = %running.addr, admin = ?running.admin, "serving");
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    // An invalid file is logged and the current config kept.
                    let _ = running.gate.reload(&path);
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        let timeout = Duration::from_millis(config.server.shutdown_timeout_ms);
        tracing::info!(?timeout, "draining sessions");
        let forced = running.shutdown(timeout).await;
        tracing::info!(forced, "stopped");
        Ok(())
    })
}

fn passwd() -> Result<(), AnyError> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    // A printable salt: the hash stays a plain TOML string.
    const SALT: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut salt = [0u8; 20];
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id()) << 32;
    for b in &mut salt {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = SALT[(seed >> 33) as usize % SALT.len()];
    }
    println!(
        "password_hash = \"{}\"",
        frontend::native_password_hash(password)
    );
    println!(
        "# or, for caching_sha2_password only:\n# password_sha2 = \"{}\"",
        frontend::sha2_password_hash(password, &salt)
    );
    Ok(())
}

/// Percent-encodes a query value.
/// The progress bar of the CLI's `--watch`es: rows copied of the total, with `extra` before the
/// message. Its length is set as the rows are counted.
fn rows_bar(extra: &str) -> Result<indicatif::ProgressBar, AnyError> {
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} [{{bar:40}}] {{pos}}/{{len}} rows  {{percent}}%  {extra}{{msg}}"
        ))?
        .progress_chars("=> "),
    );
    Ok(bar)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST target` to the admin address of the config; prints the answer.
fn post_admin(path: PathBuf, target: &str) -> Result<(), AnyError> {
    let admin = admin_address(&path)?;
    print!("{}", admin_request(&admin, "POST", target)?);
    Ok(())
}

fn admin_address(path: &std::path::Path) -> Result<String, AnyError> {
    let config = vschema::load_config(path)?;
    Ok(config
        .server
        .admin
        .ok_or("the config has no server.admin address to reach the proxy at")?)
}

/// One request to the proxy's admin listener: the body of a 200 answer, else an error with
/// the status line and the body.
fn admin_request(admin: &str, method: &str, target: &str) -> Result<String, AnyError> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(admin)?;
    // A reparent may hold statements for failover_buffer_ms before it answers.
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    match head.starts_with("HTTP/1.1 200") {
        true => Ok(body.to_string()),
        false => Err(format!(
            "{}: {}",
            head.lines().next().unwrap_or("no answer"),
            body.trim()
        )
        .into()),
    }
}

#[derive(Subcommand)]
enum MigrationAction {
    /// Every migration: state, progress, shards.
    List,
    /// One migration in full; with --watch, a progress bar until it ends.
    Show {
        id: String,
        #[arg(long)]
        watch: bool,
    },
    /// Stop a running migration and drop its shadow tables.
    Cancel { id: String },
    /// Run a failed or cancelled migration again.
    Retry { id: String },
    /// Swap a completed migration's old table back in.
    Revert { id: String },
}

fn migration(path: PathBuf, action: MigrationAction) -> Result<(), AnyError> {
    use shardgate::migration::Summary;
    let admin = admin_address(&path)?;
    let list = || -> Result<Vec<Summary>, AnyError> {
        Ok(serde_json::from_str(&admin_request(
            &admin,
            "GET",
            "/migrations",
        )?)?)
    };
    let find = |id: &str| -> Result<Summary, AnyError> {
        list()?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| format!("no migration {id}").into())
    };
    match action {
        MigrationAction::List => {
            println!(
                "{:<26} {:<24} {:<10} {:>8}  statement",
                "id", "table", "state", "progress"
            );
            for m in list()? {
                println!(
                    "{:<26} {:<24} {:<10} {:>7.1}%  {}",
                    m.id,
                    format!("{}.{}", m.keyspace, m.table),
                    m.state,
                    m.progress,
                    m.statement
                );
            }
        }
        MigrationAction::Show { id, watch } => {
            let mut m = find(&id)?;
            if watch && matches!(m.state.as_str(), "queued" | "running") {
                let bar = rows_bar("eta {eta}  ")?;
                while matches!(m.state.as_str(), "queued" | "running") {
                    bar.set_length(m.rows_total.max(1));
                    bar.set_position(m.rows_copied);
                    let phases: Vec<String> = m
                        .shards
                        .iter()
                        .map(|p| format!("{} {}", p.shard, p.phase))
                        .collect();
                    bar.set_message(format!("lag {:.1}s  {}", m.lag_secs, phases.join(", ")));
                    std::thread::sleep(Duration::from_millis(500));
                    m = find(&id)?;
                }
                bar.finish_and_clear();
            }
            println!("id:        {}", m.id);
            println!("table:     {}.{}", m.keyspace, m.table);
            println!("statement: {}", m.statement);
            println!("state:     {}", m.state);
            println!(
                "progress:  {:.1}% ({} of {} rows)",
                m.progress, m.rows_copied, m.rows_total
            );
            if !m.message.is_empty() {
                println!("message:   {}", m.message);
            }
            for p in &m.shards {
                println!(
                    "  shard {:<8} {:<12} copied {:>10} of {:<10} lag {:.1}s",
                    p.shard,
                    p.phase,
                    p.copied,
                    p.total,
                    p.lag_ms as f64 / 1000.0
                );
            }
        }
        MigrationAction::Cancel { id } => {
            print!(
                "{}",
                admin_request(
                    &admin,
                    "POST",
                    &format!("/migrations/cancel?id={}", url_encode(&id))
                )?
            )
        }
        MigrationAction::Retry { id } => {
            print!(
                "{}",
                admin_request(
                    &admin,
                    "POST",
                    &format!("/migrations/retry?id={}", url_encode(&id))
                )?
            )
        }
        MigrationAction::Revert { id } => {
            print!(
                "{}",
                admin_request(
                    &admin,
                    "POST",
                    &format!("/migrations/revert?id={}", url_encode(&id))
                )?
            )
        }
    }
    Ok(())
}

fn resolve(path: PathBuf, prefix: &str) -> Result<(), AnyError> {
    let config = vschema::load_config(&path)?;
    runtime()?.block_on(async {
        let backends = backend::Backends::new(&config.vschema);
        let done = shardgate::twopc::resolve(&backends, &config.vschema, prefix).await?;
        println!("committed: {}", done.committed.len());
        for d in &done.committed {
            println!("  {d}");
        }
        println!("rolled back: {}", done.rolled_back.len());
        for d in &done.rolled_back {
            println!("  {d}");
        }
        Ok(())
    })
}

fn check(config: Option<PathBuf>, vschema_json: Option<PathBuf>) -> Result<(), AnyError> {
    if let Some(json) = vschema_json {
        for ks in vschema::load_vitess_json(&json)? {
            let kind = if ks.sharded { "sharded" } else { "unsharded" };
            match &ks.name {
                Some(name) => println!("{}: keyspace {name} ({kind})", json.display()),
                None => println!("{}: {kind} keyspace", json.display()),
            }
            for (name, table) in ks.tables {
                println!("  table {name}: {}", describe_table(&table));
            }
        }
    }
    if let Some(path) = config {
        let config = vschema::load_config(&path)?;
        println!(
            "{}: ok, listening on {}",
            path.display(),
            config.server.listen
        );
        // Where the current primaries come from.
        let state = vschema::state_path(&path);
        if let Some(shared) = &config.topology {
            println!(
                "topology: shared through etcd ({}) under {}: the keyspaces and primaries there \
                 override this file's keyspaces; one proxy at a time changes a primary",
                shared.etcd.join(", "),
                shared.prefix
            );
        } else if state.exists() {
            println!(
                "topology: local; the primaries recorded in {} override the config's",
                state.display()
            );
        } else {
            println!(
                "topology: local; primaries as the config says (a reparent records changes in {})",
                state.display()
            );
        }
        for ks in config.vschema.keyspaces() {
            println!(
                "keyspace {} ({})",
                ks.name,
                if ks.sharded { "sharded" } else { "unsharded" }
            );
            for s in &ks.shards {
                println!("  shard {:<8} {}", s.name, s.primary);
                for r in &s.replicas {
                    println!("    replica  {r}");
                }
            }
            for (name, table) in &ks.tables {
                println!("  table {name}: {}", describe_table(table));
            }
        }
    }
    Ok(())
}

fn describe_table(table: &vschema::Table) -> String {
    match table {
        vschema::Table::Sharded {
            vindex,
            auto_increment,
            lookups,
            ..
        } => {
            let mut s = format!(
                "sharded by {} ({} vindex {})",
                table.vindex_columns().join(", "),
                vindex.kind.name(),
                vindex.name
            );
            for l in lookups {
                let v = &l.vindex;
                // A table named without its keyspace, resolved once all keyspaces are known.
                let table = match v.keyspace.as_str() {
                    "" => v.table.clone(),
                    ks => format!("{ks}.{}", v.table),
                };
                s.push_str(&format!(
                    ", {} via {} {} ({table}{}{}{})",
                    l.display(),
                    v.type_name(),
                    v.name,
                    if l.owned { "" } else { ", read only" },
                    if v.write_only { ", write only" } else { "" },
                    if v.autocommit { ", autocommit" } else { "" },
                ));
            }
            match auto_increment {
                // Resolved by a config, among its unsharded keyspaces.
                Some(ai) if ai.sequence.keyspace.is_empty() => s.push_str(&format!(
                    ", {} from sequence {} (the unsharded keyspace holding it)",
                    ai.column, ai.sequence.table
                )),
                Some(ai) => s.push_str(&format!(
                    ", {} from sequence {}.{}",
                    ai.column, ai.sequence.keyspace, ai.sequence.table
                )),
                None => {}
            }
            s
        }
        vschema::Table::Reference => "reference".into(),
        vschema::Table::Sequence => "sequence".into(),
        vschema::Table::Unsharded => "unsharded".into(),
    }
}

fn explain(path: PathBuf, keyspace: Option<String>, sql: &str) -> Result<(), AnyError> {
    let config = vschema::load_config(&path)?;
    let mut stmts =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, sql)?;
    if stmts.len() != 1 {
        return Err("give exactly one statement".into());
    }
    let ctx = planner::Context {
        vschema: &config.vschema,
        keyspace: keyspace.as_deref(),
        catalog: &planner::Catalog::default(),
    };
    let plan = planner::plan(&stmts.remove(0), sql, &ctx)?;
    println!("{}", plan.describe());
    Ok(())
}
