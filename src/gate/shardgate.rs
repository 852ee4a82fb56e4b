//! `SHOW SHARDGATE ...`: the proxy's own state (status, shards, plans, transactions,
//! deadlocks, primary changes, reference table checksums).

use std::sync::atomic::Ordering;

use engine::{Executor as _, Value};
use frontend::{ResultWriter, SqlError};

use crate::{error, sysvars};

use super::{GateSession, StatementError};

impl GateSession {
    /// `SHOW SHARDGATE SHARDS` (with a live check of each primary, and each replica's last
    /// measured lag) and `SHOW SHARDGATE VSCHEMA`.
    pub(super) async fn show_shardgate(
        &mut self,
        lower: &str,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let what = lower.split_whitespace().nth(2).unwrap_or_default();
        let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        match what {
            "shards" => {
                let mut rows = Vec::new();
                for ks in self.topo.vschema.keyspaces() {
                    for shard in &ks.shards {
                        let health = match tokio::time::timeout(
                            std::time::Duration::from_secs(2),
                            self.topo.backends.execute(
                                &ks.name,
                                &shard.name,
                                "DO 0",
                                &mut engine::NoRows,
                            ),
                        )
                        .await
                        {
                            Ok(Ok(_)) => "serving".to_string(),
                            Ok(Err(e)) => format!("unreachable: {e}"),
                            Err(_) => "unreachable: no answer within 2 s".to_string(),
                        };
                        let replicas: Vec<String> = self
                            .topo
                            .backends
                            .replica_lags(&ks.name, &shard.name)
                            .into_iter()
                            .map(|(addr, lag, serving, standing)| match (lag, serving) {
                                _ if standing.is_some() => {
                                    format!("{addr} {}", standing.unwrap_or_default())
                                }
                                (Some(lag), true) => {
                                    format!("{addr} serving, {}s behind", lag.as_secs())
                                }
                                (Some(lag), false) => {
                                    format!("{addr} not serving: {}s behind", lag.as_secs())
                                }
                                (None, _) => {
                                    format!("{addr} not serving: not replicating or not answering")
                                }
                            })
                            .collect();
                        rows.push(vec![
                            text(&ks.name),
                            text(&shard.name),
                            text(&shard.range.to_string()),
                            text(&shard.primary.to_string()),
                            text(&health),
                            text(&replicas.join("; ")),
                        ]);
                    }
                }
                let columns = [
                    "Keyspace", "Shard", "KeyRange", "Primary", "Health", "Replicas",
                ]
                .map(sysvars::text_column)
                .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "vschema" => {
                let mut rows = Vec::new();
                for ks in self.topo.vschema.keyspaces() {
                    for (name, table) in &ks.tables {
                        let (kind, column, vindex) = match table {
                            vschema::Table::Sharded { vindex, .. } => (
                                "sharded",
                                table.vindex_columns().join(","),
                                format!("{} ({})", vindex.name, vindex.kind.name()),
                            ),
                            vschema::Table::Reference => {
                                ("reference", String::new(), String::new())
                            }
                            vschema::Table::Sequence => ("sequence", String::new(), String::new()),
                            vschema::Table::Unsharded => {
                                ("unsharded", String::new(), String::new())
                            }
                        };
                        rows.push(vec![
                            text(&ks.name),
                            text(name),
                            text(kind),
                            text(&column),
                            text(&vindex),
                        ]);
                    }
                }
                let columns = ["Keyspace", "Table", "Type", "Column", "Vindex"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "migrations" => self.show_migrations(out).await,
            "failovers" => {
                // Newest first.
                let rows = self
                    .gate
                    .primary_changes()
                    .iter()
                    .rev()
                    .map(|c| {
                        let at =
                            c.at.duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs());
                        vec![
                            text(&at.to_string()),
                            text(&c.shard),
                            text(c.kind),
                            text(&c.why),
                            text(&c.from),
                            text(&c.to),
                            text(&c.held.as_millis().to_string()),
                            text(&c.result),
                        ]
                    })
                    .collect();
                let columns = [
                    "Unix_time",
                    "Shard",
                    "Kind",
                    "Why",
                    "From",
                    "To",
                    "Held_ms",
                    "Result",
                ]
                .map(sysvars::text_column)
                .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "checksums" => {
                let table = lower.split_whitespace().nth(3).map(|t| t.trim_matches('`'));
                let rows = self.reference_checksums(table).await?;
                let columns = ["Keyspace", "Table", "Shard", "Checksum", "Differs"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "status" => {
                let (hits, misses, plans) = self.gate.plans.stats();
                let rows = [
                    ("Questions", self.gate.questions.load(Ordering::Relaxed)),
                    (
                        "Prepared_executions",
                        self.gate.executions.load(Ordering::Relaxed),
                    ),
                    ("Plan_cache_hits", hits),
                    ("Plan_cache_misses", misses),
                    ("Plan_cache_plans", plans as u64),
                    ("Sessions", self.gate.sessions.len() as u64),
                ]
                .map(|(name, v)| vec![text(name), text(&v.to_string())])
                .to_vec();
                let columns = ["Variable_name", "Value"]
                    .map(sysvars::text_column)
                    .to_vec();
                self.local_rows(out, columns, rows).await
            }
            "deadlocks" => {
                let mut rows = Vec::new();
                for cycle in self.gate.deadlocks.recent() {
                    let at = cycle
                        .at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or_default();
                    for m in &cycle.members {
                        rows.push(vec![
                            text(&cycle.id.to_string()),
                            text(&format!("{at:.3}")),
                            text(&m.session.to_string()),
                            text(if m.session == cycle.victim {
                                "yes"
                            } else {
                                "no"
                            }),
                            text(&m.shards.join(",")),
                            text(&m.rows_modified.to_string()),
                            text(&m.statement),
                        ]);
                    }
                }
                let columns = [
                    "Deadlock",
                    "Time",
                    "Session",
                    "Victim",
                    "Shards",
                    "Rows_modified",
                    "Statement",
                ]
                .map(sysvars::text_column)
                .to_vec();
                self.local_rows(out, columns, rows).await
            }
            other => {
                Err(error::unsupported(format!("SHOW SHARDGATE {}", other.to_uppercase())).into())
            }
        }
    }

    /// `SHOW SHARDGATE CHECKSUMS [table]`: `CHECKSUM TABLE` of each reference table (or the
    /// one named) on every shard of its keyspace, with the shards whose checksum differs from
    /// the one most shards have marked: every copy of a reference table should be the same.
    pub(super) async fn reference_checksums(
        &self,
        only: Option<&str>,
    ) -> Result<Vec<Vec<Value>>, SqlError> {
        let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let mut rows = Vec::new();
        for ks in self.topo.vschema.keyspaces() {
            if !self.access.allows(&ks.name) {
                continue;
            }
            if self
                .session
                .keyspace
                .as_ref()
                .is_some_and(|k| *k != ks.name)
                && only.is_some()
            {
                continue;
            }
            for (name, table) in &ks.tables {
                if *table != vschema::Table::Reference
                    || only.is_some_and(|t| !t.eq_ignore_ascii_case(name))
                {
                    continue;
                }
                let sql = format!("CHECKSUM TABLE `{}`", name.replace('`', "``"));
                let mut sums = Vec::new();
                for shard in &ks.shards {
                    let mut found = engine::Collected::default();
                    self.topo
                        .backends
                        .execute(&ks.name, &shard.name, &sql, &mut found)
                        .await
                        .map_err(|e| error::from_engine(&e))?;
                    let sum = match found.rows.first().and_then(|r| r.get(1)) {
                        Some(Value::NULL) | None => "NULL".to_string(),
                        Some(v) => v.as_sql(true).trim_matches('\'').to_string(),
                    };
                    sums.push((shard.name.clone(), sum));
                }
                // The checksum most shards have; without a majority every shard is suspect.
                let count = |sum: &String| sums.iter().filter(|(_, s)| s == sum).count();
                let majority = sums
                    .iter()
                    .map(|(_, sum)| sum)
                    .find(|sum| count(sum) * 2 > sums.len())
                    .cloned();
                for (shard, sum) in sums {
                    let differs = if majority.as_ref() == Some(&sum) {
                        "no"
                    } else {
                        "yes"
                    };
                    rows.push(vec![
                        text(&ks.name),
                        text(name),
                        text(&shard),
                        text(&sum),
                        text(differs),
                    ]);
                }
            }
        }
        Ok(rows)
    }
}
