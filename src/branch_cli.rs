//! `shardgate branch`, `shardgate deploy-request` and `shardgate shell`: the branch workflow
//! against a running proxy, through its admin address. Output for people by default, JSON for
//! scripts with `--format json`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use shardgate::branch::deploy::Request;
use shardgate::branch::{Credentials, Info};

use crate::{admin_address, admin_request, url_encode, AnyError};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Subcommand)]
pub enum BranchAction {
    /// A new branch of main: every keyspace's tables (and rows, with --data) in databases of
    /// its own on the same servers, and a user and password that reach it.
    #[command(
        after_help = "Examples:\n  shardgate branch create add-email --config shardgate.toml\n  shardgate branch create add-email --data sample --sample-rows 500 --format json --config shardgate.toml"
    )]
    Create {
        name: String,
        /// The branch it starts from (only main).
        #[arg(long, default_value = "main")]
        from: String,
        /// none: the schema only; sample: a few rows per table, the same keyspace ids in
        /// every table so that joins find their rows; full: every row.
        #[arg(long, default_value = "none", value_parser = ["none", "sample", "full"])]
        data: String,
        /// Rows per table at most with --data sample.
        #[arg(long, default_value_t = 1000)]
        sample_rows: usize,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Every branch.
    List {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// One branch: its data, users and tables.
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Another user and password for a branch.
    Password {
        name: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// A keyspace's VSchema on the branch (its vindexes and tables, as in the config); with
    /// --file, set it from that file (- for standard input).
    #[command(
        after_help = "Examples:\n  shardgate branch vschema dev --keyspace commerce --config shardgate.toml > vschema.toml\n  shardgate branch vschema dev --keyspace commerce --file vschema.toml --config shardgate.toml"
    )]
    Vschema {
        name: String,
        #[arg(long)]
        keyspace: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Drop a branch's databases and users.
    Delete { name: String },
    /// Mark main production (DDL sent to it refused: deploy requests change it), or not.
    #[command(after_help = "Example:\n  shardgate branch production on --config shardgate.toml")]
    Production {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Subcommand)]
pub enum RequestAction {
    /// Open a deploy request: the branch's schema changes as DDL against main now, with lint
    /// and conflicts.
    #[command(
        after_help = "Example:\n  shardgate deploy-request create add-email --config shardgate.toml"
    )]
    Create {
        branch: String,
        /// Where it deploys (only main).
        #[arg(long, default_value = "main")]
        into: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Every deploy request.
    List {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// One deploy request: its diff (colored in a terminal), lint and state; with --watch,
    /// until it is no longer deploying.
    Show {
        id: u64,
        #[arg(long)]
        watch: bool,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Deploy it: new tables made, ALTERs as online migrations cut over once all are ready,
    /// dropped tables set aside. With --wait, until it ends.
    #[command(
        after_help = "Example:\n  shardgate deploy-request deploy 3 --wait --config shardgate.toml"
    )]
    Deploy {
        id: u64,
        #[arg(long)]
        wait: bool,
    },
    /// Bring main's schema back to before the deploy, keeping every row.
    Revert { id: u64 },
    /// Set an open deploy request aside.
    Close { id: u64 },
}

fn print_json(body: &str) -> Result<(), AnyError> {
    let value: serde_json::Value = serde_json::from_str(body)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn credentials(body: &str, format: Format) -> Result<(), AnyError> {
    if format == Format::Json {
        return print_json(body);
    }
    let c: Credentials = serde_json::from_str(body)?;
    println!("branch:   {}", c.branch);
    println!("user:     {}", c.user);
    println!("password: {}", c.password);
    println!(
        "(shown once: keep it; `shardgate branch password {}` issues more)",
        c.branch
    );
    Ok(())
}

pub fn branch(path: &Path, action: BranchAction) -> Result<(), AnyError> {
    let admin = admin_address(path)?;
    let list = || -> Result<(String, Vec<Info>), AnyError> {
        let body = admin_request(&admin, "GET", "/branches")?;
        let parsed = serde_json::from_str(&body)?;
        Ok((body, parsed))
    };
    match action {
        BranchAction::Create {
            name,
            from,
            data,
            sample_rows,
            format,
        } => {
            if from != "main" {
                return Err(format!("--from {from}: branches start from main").into());
            }
            let target = format!(
                "/branches?name={}&data={data}&rows={sample_rows}",
                url_encode(&name)
            );
            credentials(&admin_request(&admin, "POST", &target)?, format)
        }
        BranchAction::List { format } => {
            let (body, branches) = list()?;
            if format == Format::Json {
                return print_json(&body);
            }
            println!("{:<24} {:<8} {:>8}  users", "name", "data", "age");
            for b in branches {
                println!(
                    "{:<24} {:<8} {:>7}s  {}",
                    b.name,
                    b.data,
                    b.age_secs,
                    b.users.join(", ")
                );
            }
            Ok(())
        }
        BranchAction::Show { name, format } => {
            let (_, branches) = list()?;
            let b = branches
                .into_iter()
                .find(|b| b.name == name)
                .ok_or_else(|| format!("no branch {name}"))?;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&b)?);
                return Ok(());
            }
            println!("name:   {} (from {})", b.name, b.parent);
            println!("data:   {}", b.data);
            println!("users:  {}", b.users.join(", "));
            for (keyspace, tables) in &b.tables {
                println!("{keyspace}: {}", tables.join(", "));
            }
            Ok(())
        }
        BranchAction::Password { name, format } => {
            let target = format!("/branches/password?name={}", url_encode(&name));
            credentials(&admin_request(&admin, "POST", &target)?, format)
        }
        BranchAction::Vschema {
            name,
            keyspace,
            file,
        } => {
            let args = format!(
                "name={}&keyspace={}",
                url_encode(&name),
                url_encode(&keyspace)
            );
            let Some(file) = file else {
                let body = admin_request(&admin, "GET", &format!("/branches/vschema?{args}"))?;
                print!("{}", serde_json::from_str::<String>(&body)?);
                return Ok(());
            };
            let fragment = match file.to_str() {
                Some("-") => std::io::read_to_string(std::io::stdin())?,
                _ => std::fs::read_to_string(&file)?,
            };
            let target = format!(
                "/branches/vschema?{args}&fragment={}",
                url_encode(&fragment)
            );
            admin_request(&admin, "POST", &target)?;
            println!("branch {name}: the VSchema of {keyspace} is set");
            Ok(())
        }
        BranchAction::Delete { name } => {
            let target = format!("/branches/delete?name={}", url_encode(&name));
            admin_request(&admin, "POST", &target)?;
            println!("deleted branch {name}");
            Ok(())
        }
        BranchAction::Production { state } => {
            let target = format!("/production?on={}", state == "on");
            admin_request(&admin, "POST", &target)?;
            println!("main production: {state}");
            Ok(())
        }
    }
}

/// A statement with one clause per line, colored by what it does when `color`.
fn render(sql: &str, color: bool) -> String {
    let paint = |line: &str| -> String {
        if !color {
            return line.to_string();
        }
        let code = if line.contains("DROP ") {
            "31"
        } else if line.contains("ADD ") || line.starts_with("CREATE") {
            "32"
        } else {
            "33"
        };
        format!("\x1b[{code}m{line}\x1b[0m")
    };
    // ALTER TABLE `t` a, b, c: the clauses come from the differ, which never puts ", " inside
    // one but within parentheses or quotes; split only at depth zero.
    let mut lines = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, None, 0);
    let bytes = sql.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match (quoted, b) {
            (Some(q), _) if b == q => quoted = None,
            (Some(_), _) => {}
            (None, b'\'' | b'`' | b'"') => quoted = Some(b),
            (None, b'(') => depth += 1,
            (None, b')') => depth -= 1,
            (None, b',') if depth == 0 => {
                lines.push(sql[start..=i].to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    lines.push(sql[start..].to_string());
    lines
        .iter()
        .map(|l| format!("  {}", paint(l.trim())))
        .collect::<Vec<_>>()
        .join("\n")
}

fn show_request(r: &Request) {
    let color = std::io::stdout().is_terminal();
    println!(
        "deploy request {}: {} into {}, {}",
        r.id, r.branch, r.into, r.state
    );
    if !r.message.is_empty() {
        println!("  {}", r.message);
    }
    if !r.conflicts.is_empty() {
        println!("conflicts (it cannot deploy):");
        for c in &r.conflicts {
            println!("  {c}");
        }
    }
    println!("diff:");
    for s in &r.statements {
        if s.kind == "vschema" {
            println!("-- {} (VSchema)", s.keyspace);
            for line in s.sql.lines() {
                match (color, line.ends_with("(removed)")) {
                    (true, true) => println!("  \x1b[31m{line}\x1b[0m"),
                    (true, false) => println!("  \x1b[32m{line}\x1b[0m"),
                    (false, _) => println!("  {line}"),
                }
            }
            continue;
        }
        println!("-- {}.{} ({})", s.keyspace, s.table, s.kind);
        println!("{}", render(&s.sql, color));
    }
    if r.lint.is_empty() {
        println!("lint: nothing to report");
    } else {
        println!("lint:");
        for l in &r.lint {
            println!(
                "  {} [{}] {}.{}: {}",
                l.severity, l.rule, l.keyspace, l.table, l.message
            );
        }
    }
    for m in &r.progress {
        println!(
            "migration {} ({}.{}): {}, {:.1}% ({} of {} rows){}",
            m.id,
            m.keyspace,
            m.table,
            m.state,
            m.progress,
            m.rows_copied,
            m.rows_total,
            match m.message.is_empty() {
                true => String::new(),
                false => format!("; {}", m.message),
            }
        );
    }
}

pub fn deploy_request(path: &Path, action: RequestAction) -> Result<(), AnyError> {
    let admin = admin_address(path)?;
    let fetch = |id: u64| -> Result<(String, Request), AnyError> {
        let body = admin_request(&admin, "GET", "/deploy-requests")?;
        let all: Vec<serde_json::Value> = serde_json::from_str(&body)?;
        let one = all
            .into_iter()
            .find(|r| r["id"] == id)
            .ok_or_else(|| format!("no deploy request {id}"))?;
        Ok((one.to_string(), serde_json::from_value(one)?))
    };
    let post = |action: &str, id: u64| {
        admin_request(
            &admin,
            "POST",
            &format!("/deploy-requests/{action}?id={id}"),
        )
    };
    // Until it is no longer deploying, with a bar of the rows its migrations copied.
    let wait = |id: u64| -> Result<Request, AnyError> {
        let bar = crate::rows_bar("")?;
        loop {
            let (_, r) = fetch(id)?;
            if r.state != "deploying" {
                bar.finish_and_clear();
                return Ok(r);
            }
            let total: u64 = r.progress.iter().map(|m| m.rows_total).sum();
            bar.set_length(total.max(1));
            bar.set_position(r.progress.iter().map(|m| m.rows_copied).sum());
            let states: Vec<String> = r
                .progress
                .iter()
                .map(|m| format!("{} {}", m.table, m.state))
                .collect();
            bar.set_message(states.join(", "));
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    match action {
        RequestAction::Create {
            branch,
            into,
            format,
        } => {
            if into != "main" {
                return Err(format!("--into {into}: deploy requests go into main").into());
            }
            let body = admin_request(
                &admin,
                "POST",
                &format!("/deploy-requests?branch={}", url_encode(&branch)),
            )?;
            match format {
                Format::Json => print_json(&body),
                Format::Human => {
                    show_request(&serde_json::from_str(&body)?);
                    Ok(())
                }
            }
        }
        RequestAction::List { format } => {
            let body = admin_request(&admin, "GET", "/deploy-requests")?;
            if format == Format::Json {
                return print_json(&body);
            }
            let all: Vec<Request> = serde_json::from_str(&body)?;
            println!(
                "{:>4}  {:<24} {:<10} {:>10}  conflicts",
                "id", "branch", "state", "statements"
            );
            for r in all {
                println!(
                    "{:>4}  {:<24} {:<10} {:>10}  {}",
                    r.id,
                    r.branch,
                    r.state,
                    r.statements.len(),
                    r.conflicts.len()
                );
            }
            Ok(())
        }
        RequestAction::Show { id, watch, format } => {
            let (body, r) = match watch {
                true => {
                    let r = wait(id)?;
                    (serde_json::to_string(&r)?, r)
                }
                false => fetch(id)?,
            };
            match format {
                Format::Json => print_json(&body),
                Format::Human => {
                    show_request(&r);
                    Ok(())
                }
            }
        }
        RequestAction::Deploy { id, wait: until } => {
            post("deploy", id)?;
            if !until {
                println!("deploying request {id}; `shardgate deploy-request show {id} --watch` follows it");
                return Ok(());
            }
            let r = wait(id)?;
            show_request(&r);
            match r.state.as_str() {
                "complete" => Ok(()),
                state => Err(format!("deploy request {id} is {state}").into()),
            }
        }
        RequestAction::Revert { id } => {
            post("revert", id)?;
            println!("reverted deploy request {id}");
            Ok(())
        }
        RequestAction::Close { id } => {
            post("close", id)?;
            println!("closed deploy request {id}");
            Ok(())
        }
    }
}

/// `shardgate shell <branch>`: the `mariadb` client on the branch, as a new user of it.
pub fn shell(path: &Path, branch: &str, keyspace: Option<String>) -> Result<(), AnyError> {
    let config = vschema::load_config(path)?;
    let admin = admin_address(path)?;
    let target = format!("/branches/password?name={}", url_encode(branch));
    let c: Credentials = serde_json::from_str(&admin_request(&admin, "POST", &target)?)?;
    let listen: std::net::SocketAddr = config.server.listen.parse()?;
    let database = keyspace
        .or_else(|| config.vschema.keyspaces().next().map(|k| k.name.clone()))
        .unwrap_or_default();
    let status = std::process::Command::new("mariadb")
        .arg(format!("--host={}", listen.ip()))
        .arg(format!("--port={}", listen.port()))
        .arg(format!("--user={}", c.user))
        .arg(format!("--password={}", c.password))
        .arg(format!("--prompt={branch}> "))
        .arg(database)
        .status()
        .map_err(|e| format!("mariadb: {e} (install mariadb-client)"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("mariadb exited with {status}").into()),
    }
}

/// The config path of a branch command, from --config or SHARDGATE_CONFIG.
pub fn config(config: Option<PathBuf>) -> Result<PathBuf, AnyError> {
    config.ok_or_else(|| {
        "give --config (or SHARDGATE_CONFIG): the proxy's admin address is in it".into()
    })
}
