//! Changes of a shard's primary as the gate sees them: reparents and failovers run here (alone,
//! or as the one proxy of those sharing a topology through etcd), the ones another proxy made
//! followed, the topology and the state file updated, and each change counted and remembered.

use std::sync::Arc;

use super::Gate;

/// A change of a shard's primary (SHOW SHARDGATE FAILOVERS, the status page).
#[derive(Debug, Clone)]
pub struct PrimaryChange {
    pub at: std::time::SystemTime,
    /// `keyspace/shard`.
    pub shard: String,
    /// `reparent` or `failover` (done here), or `followed` (done by another proxy).
    pub kind: &'static str,
    pub why: String,
    pub from: String,
    pub to: String,
    /// How long the shard's statements were held here.
    pub held: std::time::Duration,
    /// `ok`, or why it failed.
    pub result: String,
}

/// Primary changes remembered.
const CHANGES_KEPT: usize = 50;

impl Gate {
    /// The config file the proxy was started from, if any.
    pub fn config_path(&self) -> Option<&std::path::Path> {
        self.config_path.get().map(|p| p.as_path())
    }

    /// The file the config came from, for the state file beside it.
    pub fn set_config_path(&self, path: std::path::PathBuf) {
        let _ = self.config_path.set(path);
    }

    /// Whether other proxies serve the same topology (through etcd).
    pub fn shares_topology(&self) -> bool {
        self.shared.get().is_some()
    }

    /// The topology shared with other proxies, when it is.
    pub(crate) fn shared(&self) -> Option<&Arc<crate::etcd::Shared>> {
        self.shared.get()
    }

    pub fn set_shared(&self, shared: Arc<crate::etcd::Shared>) {
        let _ = self.shared.set(shared);
    }

    /// Runs a change of `keyspace/shard`'s primary: alone, or as the one proxy of those sharing
    /// the topology (see [`crate::etcd::Shared::change_primary`]).
    async fn change_primary<F, Fut>(
        &self,
        keyspace: &str,
        shard: &str,
        once: bool,
        change: F,
    ) -> Result<Option<backend::reparent::Report>, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<backend::reparent::Report>, String>>,
    {
        let Some(shared) = self.shared.get() else {
            return change().await;
        };
        let buffer = self
            .topology()
            .vschema
            .keyspace(keyspace)
            .map_or(vschema::FAILOVER_BUFFER, |k| k.failover_buffer);
        shared
            .change_primary(self, keyspace, shard, buffer / 2, once, change)
            .await
    }

    /// The last primary changes, oldest first.
    pub fn primary_changes(&self) -> Vec<PrimaryChange> {
        self.changes
            .lock()
            .expect("changes")
            .iter()
            .cloned()
            .collect()
    }

    /// Counts and remembers a primary change (or an attempt).
    fn record_change(&self, keyspace: &str, shard: &str, change: PrimaryChange) {
        let ok = if change.result == "ok" {
            "ok"
        } else {
            "failed"
        };
        self.metrics
            .primary_changes
            .with_label_values(&[keyspace, shard, change.kind, ok])
            .inc();
        if ok == "ok" {
            self.metrics
                .primary_change_held_seconds
                .with_label_values(&[keyspace, shard])
                .observe(change.held.as_secs_f64());
        }
        let mut changes = self.changes.lock().expect("changes");
        if changes.len() == CHANGES_KEPT {
            changes.pop_front();
        }
        changes.push_back(change);
    }

    /// Records what a reparent or failover done here came to.
    fn record_outcome(
        &self,
        keyspace: &str,
        shard: &str,
        kind: &'static str,
        why: &str,
        outcome: &Result<backend::reparent::Report, String>,
    ) {
        let change = PrimaryChange {
            at: std::time::SystemTime::now(),
            shard: format!("{keyspace}/{shard}"),
            kind,
            why: why.to_string(),
            from: String::new(),
            to: String::new(),
            held: Default::default(),
            result: String::new(),
        };
        let change = match outcome {
            Ok(r) => PrimaryChange {
                from: r.from.to_string(),
                to: r.to.to_string(),
                held: r.held,
                result: "ok".into(),
                ..change
            },
            Err(e) => PrimaryChange {
                result: e.clone(),
                ..change
            },
        };
        self.record_change(keyspace, shard, change);
    }

    /// Another proxy made `to` (`host:port`) the primary of `keyspace/shard`; the pools
    /// follow already (see [`backend::Backends::follow`]).
    pub fn follow_primary(&self, keyspace: &str, shard: &str, to: &str) {
        let from = self
            .topology()
            .vschema
            .keyspace(keyspace)
            .and_then(|k| k.shards.iter().find(|s| s.name == shard))
            .map(|s| s.primary.to_string())
            .unwrap_or_default();
        self.follow(keyspace, shard, to);
        let change = PrimaryChange {
            at: std::time::SystemTime::now(),
            shard: format!("{keyspace}/{shard}"),
            kind: "followed",
            why: "another proxy changed it".into(),
            from,
            to: to.to_string(),
            held: Default::default(),
            result: "ok".into(),
        };
        self.record_change(keyspace, shard, change);
    }

    /// The topology names `to` (`host:port`) as the primary of `keyspace/shard`, whose pools
    /// have swapped already.
    fn follow(&self, keyspace: &str, shard: &str, to: &str) {
        match self.topology().vschema.with_primary(keyspace, shard, to) {
            Ok(vschema) => self.replace_topology(Arc::new(vschema)),
            Err(e) => tracing::error!(error = %e, "the new primary is not in the topology"),
        }
        if let Some(meter) = self.topology().meter(keyspace, shard) {
            meter.checked(true);
        }
    }

    /// Hands the primary of `shard` (`keyspace/shard`) over to its replica `to` (`host:port`),
    /// holding the shard's statements meanwhile (see [`backend::reparent`]).
    pub async fn reparent(
        &self,
        shard: &str,
        to: &str,
    ) -> Result<backend::reparent::Report, String> {
        let Some((ks, name)) = shard.split_once('/') else {
            return Err(format!("{shard:?}: name the shard as keyspace/shard"));
        };
        let report = self
            .change_primary(ks, name, false, || async {
                let topo = self.topology();
                let report = topo.backends.reparent(ks, name, to).await;
                report.map(Some).map_err(|e| e.to_string())
            })
            .await
            .and_then(|r| r.ok_or_else(|| "[BUG] a reparent without a report".to_string()));
        self.record_outcome(ks, name, "reparent", "requested", &report);
        self.adopt(ks, name, report?)
    }

    /// Replaces the primary of `keyspace/shard`, which stopped answering, with its most
    /// advanced replica (see [`backend::Backends::fail_over`]). `None` when there was nothing
    /// to do: the primary answers (another proxy replaced it meanwhile), or a change is running.
    pub async fn fail_over(
        &self,
        keyspace: &str,
        shard: &str,
    ) -> Result<Option<backend::reparent::Report>, String> {
        if self.topology().backends.is_held(keyspace, shard) {
            return Ok(None);
        }
        let report = self
            .change_primary(keyspace, shard, true, || async {
                use backend::reparent::ReparentError;
                match self.topology().backends.fail_over(keyspace, shard).await {
                    Ok(report) => Ok(Some(report)),
                    // Nothing to do: the primary answers, or a change is running.
                    Err(ReparentError::Answers(_) | ReparentError::Busy(_)) => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
        let report = match report {
            Ok(None) => return Ok(None),
            Ok(Some(r)) => Ok(r),
            Err(e) => Err(e),
        };
        self.record_outcome(
            keyspace,
            shard,
            "failover",
            "the primary missed its health checks",
            &report,
        );
        self.adopt(keyspace, shard, report?).map(Some)
    }

    /// After a new primary took over: the topology names it, and so does the state file beside
    /// the config, if there is one.
    fn adopt(
        &self,
        ks: &str,
        name: &str,
        report: backend::reparent::Report,
    ) -> Result<backend::reparent::Report, String> {
        // The new primary serves now; the health checks need not miss again to say so.
        self.follow(ks, name, &format!("{}:{}", report.to.host, report.to.port));
        if self.shared.get().is_some() {
            // Published in etcd already.
            return Ok(report);
        }
        if let Some(path) = self.config_path.get() {
            if let Err(e) = vschema::record_primary(path, ks, name, &report.to) {
                // Serving goes on; a restart would read the config's primary.
                tracing::error!(error = %e, "could not record the new primary");
                return Err(format!("{report}; but {e}"));
            }
        }
        Ok(report)
    }
}
