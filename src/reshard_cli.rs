//! `shardgate reshard`: a running proxy's reshards, through its admin address.

use std::path::Path;
use std::time::Duration;

use shardgate::reshard::{Record, State};

use crate::branch_cli::Format;
use crate::{admin_address, admin_request, rows_bar, url_encode, AnyError};

/// What to do with the keyspace's reshard.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    /// Begin: create the tables on the targets, copy, stream (needs --to).
    Start,
    /// Each step, rows copied, lag and an estimate of the time left.
    Status,
    /// Compare the sources with the targets again.
    Verify,
    /// Send replica reads (`USE ks@replica`) to the targets, before the switch.
    SwitchReads,
    /// Send replica reads back to the sources.
    ReverseReads,
    /// Route the keyspace to the targets (reads and writes in one step).
    Switch,
    /// Route it back to the sources, after a switch.
    Reverse,
    /// Drop the sources' tables, after a switch.
    Complete,
    /// Stop before the switch (or after a reverse) and drop the targets' tables.
    Cancel,
}

/// How a reshard starts.
pub struct Start {
    pub to: Option<String>,
    pub max_rows_per_sec: Option<u64>,
}

pub fn reshard(
    path: &Path,
    keyspace: &str,
    step: Step,
    start: Start,
    watch: bool,
    format: Format,
) -> Result<(), AnyError> {
    let admin = admin_address(path)?;
    let ks = url_encode(keyspace);
    let fetch = || -> Result<(String, Record), AnyError> {
        let body = admin_request(&admin, "GET", "/reshards")?;
        let all: Vec<serde_json::Value> = serde_json::from_str(&body)?;
        let one = all
            .into_iter()
            .find(|r| r["keyspace"] == keyspace)
            .ok_or_else(|| format!("no reshard of {keyspace}"))?;
        Ok((one.to_string(), serde_json::from_value(one)?))
    };
    let action = match step {
        Step::Status => None,
        Step::Start => {
            let to = (start.to)
                .ok_or("--to names the target shards, e.g. --to '-40,40-80,80-c0,c0-'")?;
            let rate = (start.max_rows_per_sec)
                .map_or(String::new(), |n| format!("&max_rows_per_sec={n}"));
            admin_request(
                &admin,
                "POST",
                &format!("/reshards?keyspace={ks}&to={}{rate}", url_encode(&to)),
            )?;
            None
        }
        Step::Verify => Some("verify"),
        Step::SwitchReads => Some("switch-reads"),
        Step::ReverseReads => Some("reverse-reads"),
        Step::Switch => Some("switch"),
        Step::Reverse => Some("reverse"),
        Step::Complete => Some("complete"),
        Step::Cancel => Some("cancel"),
    };
    if let Some(action) = action {
        admin_request(&admin, "POST", &format!("/reshards/{action}?keyspace={ks}"))?;
    }
    if watch {
        let bar = rows_bar("")?;
        loop {
            let (_, r) = fetch()?;
            bar.set_length(r.rows_total.max(1));
            bar.set_position(r.rows_copied());
            bar.set_message(format!(
                "{}, lag {} ms{}",
                r.state.name(),
                r.lag_ms(),
                r.eta_secs()
                    .map_or(String::new(), |s| format!(", ETA {s} s"))
            ));
            if !matches!(
                r.state,
                State::Copying | State::Verifying | State::Switching
            ) {
                bar.finish_and_clear();
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let (json, record) = fetch()?;
    match format {
        Format::Json => println!("{json}"),
        Format::Human => show(&record),
    }
    Ok(())
}

fn show(r: &Record) {
    println!(
        "{}: {} -> {}  {}",
        r.keyspace,
        r.sources.join(","),
        r.targets.join(","),
        r.state.name()
    );
    println!("  {}", r.message);
    let percent = match r.rows_total {
        0 => 100.0,
        n => (r.rows_copied() as f64 * 100.0 / n as f64).min(100.0),
    };
    println!(
        "  rows copied {} of {} ({percent:.0}%), lag {} ms{}",
        r.rows_copied(),
        r.rows_total,
        r.lag_ms(),
        r.eta_secs()
            .map_or(String::new(), |s| format!(", ETA {s} s"))
    );
    if let Some(secs) = r.copy_secs {
        println!(
            "  copy took {secs:.1} s ({:.0} rows/s)",
            r.rows_total as f64 / secs.max(0.001)
        );
    }
    if r.reads_switched {
        println!("  replica reads go to the targets");
    }
    if let Some(ms) = r.stall_ms {
        println!("  the switch held statements {ms} ms");
    }
    for m in &r.movers {
        let copied = m.tables.iter().filter(|t| t.done).count();
        println!(
            "  stream from {}: {} rows copied, {copied}/{} tables, at {}",
            m.shard,
            m.copied,
            m.tables.len(),
            m.position
        );
    }
    for d in &r.differences {
        println!("  difference: {d}");
    }
}
