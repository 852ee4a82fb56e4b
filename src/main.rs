use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// shardgate: many MySQL/MariaDB servers behind one MySQL endpoint.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the keyspaces of a config file.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start local MariaDB shards with sample data and serve them on 127.0.0.1:15306.
    Demo {
        #[arg(long, default_value = "127.0.0.1:15306")]
        listen: String,
    },
    /// Validate a config (or a Vitess vschema.json) and print the topology.
    Check {
        #[arg(long, required_unless_present = "vschema_json")]
        config: Option<PathBuf>,
        #[arg(long)]
        vschema_json: Option<PathBuf>,
    },
    /// Finish twopc transactions left prepared by a crash: commit those with a recorded decision,
    /// roll back the others.
    Resolve {
        #[arg(long)]
        config: PathBuf,
        /// Only transaction ids starting with this (one instance's are `sg-<port>-`).
        #[arg(long, default_value = "sg-")]
        prefix: String,
    },
    /// Print the plan of a statement.
    Explain {
        #[arg(long)]
        config: PathBuf,
        /// The keyspace the statement runs in (as after `USE`).
        #[arg(long)]
        keyspace: Option<String>,
        sql: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
    let config = vschema::load_config(&path)?;
    shardgate::raise_fd_limit();
    runtime()?.block_on(async {
        let running = shardgate::start(&config, &config.server.listen).await?;
        tracing::info!(addr = %running.addr, "serving");
        tokio::signal::ctrl_c().await?;
        tracing::info!("stopping");
        running.stop().await;
        Ok(())
    })
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
        let (sharded, tables) = vschema::load_vitess_json(&json)?;
        println!(
            "{}: {} keyspace",
            json.display(),
            if sharded { "sharded" } else { "unsharded" }
        );
        for (name, table) in tables {
            println!("  table {name}: {}", describe_table(&table));
        }
    }
    if let Some(path) = config {
        let config = vschema::load_config(&path)?;
        println!(
            "{}: ok, listening on {}",
            path.display(),
            config.server.listen
        );
        for ks in config.vschema.keyspaces() {
            println!(
                "keyspace {} ({})",
                ks.name,
                if ks.sharded { "sharded" } else { "unsharded" }
            );
            for s in &ks.shards {
                println!("  shard {:<8} {}", s.name, s.primary);
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
            column,
            vindex,
            auto_increment,
            lookups,
        } => {
            let mut s = format!(
                "sharded by {column} ({} vindex {})",
                vindex.kind.name(),
                vindex.name
            );
            for l in lookups {
                s.push_str(&format!(
                    ", {} via lookup {} ({}.{})",
                    l.column, l.vindex.name, l.vindex.keyspace, l.vindex.table
                ));
            }
            if let Some(ai) = auto_increment {
                s.push_str(&format!(
                    ", {} from sequence {}.{}",
                    ai.column, ai.sequence.keyspace, ai.sequence.table
                ));
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
    };
    let plan = planner::plan(&stmts.remove(0), sql, &ctx)?;
    println!("{}", plan.describe());
    Ok(())
}
