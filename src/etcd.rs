//! Several proxies serving one database share its topology through etcd (`[topology] etcd`).
//!
//! Keys under the prefix:
//! - `keyspaces`: the `[keyspaces]` TOML every proxy serves. The first proxy to start puts its
//!   own; `shardgate reload` on any proxy puts that proxy's file's.
//! - `primaries/<keyspace>/<shard>`: `host:port` of a shard's primary after a reparent or a
//!   failover (the config's primary otherwise).
//! - `proxies/<id>`: each live proxy, under its lease.
//! - `holds/<keyspace>/<shard>`: the proxy changing that shard's primary. Every other proxy
//!   holds its statements for the shard while the key exists, and once its own connections
//!   to the old primary are back it says so under `acks/<keyspace>/<shard>/<id>`.
//! - `locks/<keyspace>/<shard>`: etcd's lock, taken under its lease by the one proxy that
//!   changes the primary.
//! - `serving/<keyspace>`: the shards serving a keyspace after a reshard's switch (the
//!   config's `shards` otherwise), comma-separated.
//! - `serving_reads/<keyspace>`: the shards serving a keyspace's replica reads after a
//!   reshard's `switch-reads`, until its switch.
//! - `reshards/<keyspace>`: the proxy running the keyspace's reshard, under its lease. When
//!   that proxy is gone, another takes the reshard up.
//! - `switches/<keyspace>`: the proxy switching a reshard. Every other proxy holds its
//!   statements as the switching one does, and once nothing of its own runs on the shards
//!   that stop serving it says so under `switch_acks/<keyspace>/<id>`. The switch waits for
//!   every live proxy's acknowledgement, or gives up: a proxy still writing to the old shards
//!   would lose those writes.
//!
//! Every proxy watches the prefix and applies what changes at once. A proxy that dies loses its
//! lease: its lock, hold and registration go with it, and the others finish the two-phase
//! commits it left prepared (its registration holds its transaction ids' prefix).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, LockOptions,
    PutOptions, Txn, TxnOp, WatchOptions,
};
use vschema::{Config, SharedTopology};

use crate::Gate;

/// How long a proxy's lease outlives its last keep-alive.
const LEASE_TTL_SECONDS: i64 = 10;

pub struct Shared {
    client: Client,
    prefix: String,
    /// This proxy's name among the others.
    pub id: String,
    lease: i64,
    /// The local config (server, users); its keyspaces come from etcd.
    text: String,
    path: PathBuf,
}

type Error = String;

fn err(what: &str) -> impl Fn(etcd_client::Error) -> Error + '_ {
    move |e| format!("etcd: {what}: {e}")
}

impl Shared {
    /// Connects, registers this proxy, and returns the config it serves: the local file's
    /// server and users with the shared keyspaces and primaries. Also the etcd revision they
    /// were read at, to watch from.
    pub async fn join(
        topology: &SharedTopology,
        path: &Path,
        port: u16,
    ) -> Result<(Arc<Shared>, Config, i64), Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10));
        let mut client = Client::connect(&topology.etcd, Some(options))
            .await
            .map_err(err("connecting"))?;
        let lease = client
            .lease_grant(LEASE_TTL_SECONDS, None)
            .await
            .map_err(err("granting a lease"))?
            .id();
        let (mut keeper, mut answers) = client
            .lease_keep_alive(lease)
            .await
            .map_err(err("keeping the lease"))?;
        tokio::spawn(async move {
            loop {
                if keeper.keep_alive().await.is_err() || answers.message().await.is_err() {
                    tracing::error!("etcd: the lease could not be kept alive; retrying");
                }
                tokio::time::sleep(Duration::from_secs((LEASE_TTL_SECONDS / 3) as u64)).await;
            }
        });
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let id = format!("{}-{}-{port}", host.trim(), std::process::id());
        let shared = Arc::new(Shared {
            client,
            prefix: topology.prefix.clone(),
            id,
            lease,
            text,
            path: path.to_path_buf(),
        });
        let mut client = shared.client.clone();
        let with_lease = PutOptions::new().with_lease(lease);
        let xids = crate::gate::xid_prefix(port);
        client
            .put(shared.key("proxies/", &shared.id), xids, Some(with_lease))
            .await
            .map_err(err("registering"))?;
        // The first proxy's keyspaces are everyone's.
        let keyspaces = shared.key("keyspaces", "");
        let local = vschema::keyspaces_toml(&shared.text, path).map_err(|e| e.to_string())?;
        client
            .txn(
                Txn::new()
                    .when([Compare::create_revision(
                        keyspaces.as_str(),
                        CompareOp::Equal,
                        0,
                    )])
                    .and_then([TxnOp::put(keyspaces.as_str(), local, None)]),
            )
            .await
            .map_err(err("storing the keyspaces"))?;
        let (config, revision) = shared.config().await?;
        Ok((shared, config, revision))
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}/{kind}{rest}", self.prefix)
    }

    /// The config as etcd has it now, and the revision read.
    async fn config(&self) -> Result<(Config, i64), Error> {
        let mut client = self.client.clone();
        let all = client
            .get(self.key("", ""), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(err("reading the topology"))?;
        let revision = all.header().map_or(0, |h| h.revision());
        let mut keyspaces = None;
        let mut primaries = Vec::new();
        let mut serving = Vec::new();
        for kv in all.kvs() {
            let key = kv.key_str().unwrap_or_default();
            let value = kv.value_str().unwrap_or_default().to_string();
            match key.strip_prefix(&self.key("", "")) {
                Some("keyspaces") => keyspaces = Some(value),
                Some(rest) => {
                    if let Some(shard) = rest.strip_prefix("primaries/") {
                        primaries.push((shard.to_string(), value));
                    } else if let Some(keyspace) = rest.strip_prefix("serving/") {
                        serving.push((keyspace.to_string(), value));
                    }
                }
                None => {}
            }
        }
        let keyspaces = keyspaces.ok_or("etcd: no keyspaces stored")?;
        let mut config = vschema::parse_with_keyspaces(&self.text, &keyspaces, &self.path)
            .map_err(|e| format!("the keyspaces in etcd: {e}"))?;
        let mut vschema = (*config.vschema).clone();
        for (keyspace, shards) in serving {
            let names: Vec<String> = shards.split(',').map(String::from).collect();
            match vschema.with_serving(&keyspace, &names) {
                Ok(v) => vschema = v,
                Err(e) => {
                    tracing::error!(keyspace, error = %e, "etcd names serving shards the keyspaces do not have")
                }
            }
        }
        for (shard, primary) in primaries {
            let (ks, name) = shard.split_once('/').unwrap_or((&shard, ""));
            match vschema.with_primary(ks, name, &primary) {
                Ok(v) => vschema = v,
                Err(e) => {
                    tracing::error!(shard, error = %e, "etcd names a primary the keyspaces do not have")
                }
            }
        }
        config.vschema = Arc::new(vschema);
        Ok((config, revision))
    }

    /// Puts the keyspaces of the config file at `path`: every proxy switches to them.
    pub async fn publish_keyspaces(&self, path: &Path) -> Result<(), Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let keyspaces = vschema::keyspaces_toml(&text, path).map_err(|e| e.to_string())?;
        self.client
            .clone()
            .put(self.key("keyspaces", ""), keyspaces, None)
            .await
            .map_err(err("storing the keyspaces"))?;
        Ok(())
    }

    /// Applies what the other proxies change, from `revision` on, while the gate lives.
    pub async fn watch(self: Arc<Self>, gate: Weak<Gate>, revision: i64) {
        let mut client = self.client.clone();
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(revision + 1);
        let (_watcher, mut events) = match client.watch(self.key("", ""), Some(options)).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "etcd: cannot watch the topology");
                return;
            }
        };
        while let Ok(Some(answer)) = events.message().await {
            let Some(gate) = gate.upgrade() else {
                return;
            };
            for event in answer.events() {
                if event.event_type() == EventType::Delete {
                    if let Some(gone) = event.prev_kv() {
                        let key = gone.key_str().unwrap_or_default();
                        if key.starts_with(&self.key("proxies/", "")) {
                            let xids = gone.value_str().unwrap_or_default().to_string();
                            tokio::spawn(self.clone().finish_for(gate.clone(), xids));
                        }
                        // A reshard's runner let it go: ended, or gone with its lease.
                        let runner = gone.value_str().unwrap_or_default();
                        if let Some(keyspace) = key.strip_prefix(&self.key("reshards/", "")) {
                            if runner != self.id {
                                let (gate, keyspace) = (gate.clone(), keyspace.to_string());
                                tokio::spawn(async move {
                                    gate.reshards.take_over(&gate, &keyspace).await
                                });
                            }
                        }
                    }
                }
                let Some(kv) = event.kv() else { continue };
                let key = kv.key_str().unwrap_or_default();
                let Some(rest) = key.strip_prefix(&self.key("", "")) else {
                    continue;
                };
                let value = kv.value_str().unwrap_or_default();
                let put = event.event_type() == EventType::Put;
                self.apply(&gate, rest, value, put, kv.mod_revision()).await;
            }
        }
        tracing::warn!("etcd: the topology watch ended");
    }

    /// A change of `key` (put, or deleted) made at etcd revision `revision`.
    async fn apply(
        self: &Arc<Self>,
        gate: &Arc<Gate>,
        key: &str,
        value: &str,
        put: bool,
        revision: i64,
    ) {
        let topo = gate.topology();
        if key == "keyspaces" && put {
            match self.config().await {
                Ok((config, _)) => {
                    gate.replace_topology(config.vschema);
                    tracing::info!("etcd: switched to the shared keyspaces");
                }
                Err(e) => tracing::error!(error = %e, "etcd: keyspaces refused"),
            }
        } else if let Some(shard) = key.strip_prefix("primaries/") {
            let Some((ks, name)) = shard.split_once('/') else {
                return;
            };
            if put && topo.backends.follow(ks, name, value) {
                gate.follow_primary(ks, name, value);
                tracing::info!(shard, primary = value, "etcd: following the new primary");
            }
        } else if let Some(keyspace) = key.strip_prefix("switches/") {
            if value == self.id {
                return;
            }
            if !put {
                gate.reshards.release_for_other(keyspace);
            } else if gate.reshards.hold_for_other(gate, keyspace) {
                tracing::info!(
                    keyspace,
                    by = value,
                    "etcd: another proxy switches a reshard; holding"
                );
                let (gate, keyspace, me) = (gate.clone(), keyspace.to_string(), self.clone());
                tokio::spawn(async move {
                    if !gate.reshards.quiesce_for_other(&gate, &keyspace).await {
                        tracing::warn!(keyspace, "etcd: statements on the shards a reshard switches did not end in time; its switch gives up");
                        return;
                    }
                    // For this attempt of the switch only: a late acknowledgement of one
                    // given up must not count for the next.
                    me.acknowledge("switch_acks/", &keyspace, revision.to_string())
                        .await;
                });
            }
        } else if let Some(keyspace) = key.strip_prefix("reshards/") {
            if value != self.id {
                gate.reshards.run_elsewhere(keyspace, put);
            }
        } else if let Some(keyspace) = key.strip_prefix("serving_reads/") {
            let shards = put.then(|| value.split(',').map(String::from).collect());
            gate.reshards.serve_reads(gate, keyspace, shards);
        } else if let Some(keyspace) = key.strip_prefix("serving/") {
            match self.config().await {
                Ok((config, _)) => {
                    let serving = config.vschema.serving(keyspace);
                    gate.replace_topology(config.vschema);
                    gate.reshards.retire_for_other(keyspace, &serving);
                    tracing::info!(keyspace, serving = %serving.join(","), "etcd: a reshard switched");
                }
                Err(e) => tracing::error!(error = %e, "etcd: serving shards refused"),
            }
        } else if let Some(shard) = key.strip_prefix("holds/") {
            let Some((ks, name)) = shard.split_once('/') else {
                return;
            };
            if value == self.id {
                return;
            }
            if !put {
                topo.backends.release_remote(ks, name);
            } else if topo.backends.hold_remote(ks, name) {
                tracing::info!(
                    shard,
                    by = value,
                    "etcd: another proxy changes this primary; holding"
                );
                let (ks, name, me) = (ks.to_string(), name.to_string(), self.clone());
                tokio::spawn(async move {
                    // Acknowledged once nothing of ours runs on the old primary.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while topo.backends.primary_in_use(&ks, &name) > 0 && Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    me.acknowledge("acks/", &format!("{ks}/{name}"), String::new())
                        .await;
                });
            }
        }
    }

    /// Puts this proxy's acknowledgement of a hold (`<kind><what>/<id>`, under its lease):
    /// `value` says which attempt it answers.
    async fn acknowledge(&self, kind: &str, what: &str, value: String) {
        let ack = self.key(kind, &format!("{what}/{}", self.id));
        let options = PutOptions::new().with_lease(self.lease);
        if let Err(e) = self.client.clone().put(ack, value, Some(options)).await {
            tracing::error!(error = %e, what, "etcd: could not acknowledge a hold");
        }
    }

    /// A proxy whose transaction ids start with `xids` is gone (its lease expired): its
    /// prepared two-phase commits are finished as its decision records say, unless a live
    /// proxy uses the same prefix (one restarted on the same port finishes them itself).
    async fn finish_for(self: Arc<Self>, gate: Arc<Gate>, xids: String) {
        if xids.is_empty() {
            return;
        }
        let mut client = self.client.clone();
        let live = client
            .get(
                self.key("proxies/", ""),
                Some(GetOptions::new().with_prefix()),
            )
            .await;
        let Ok(live) = live else {
            return;
        };
        if live
            .kvs()
            .iter()
            .any(|kv| kv.value_str().is_ok_and(|v| v == xids))
        {
            return;
        }
        // One proxy at a time: the next finds nothing left.
        let lock = client
            .lock(
                self.key("locks/twopc/", &xids),
                Some(LockOptions::new().with_lease(self.lease)),
            )
            .await;
        let Ok(lock) = lock else {
            return;
        };
        let topo = gate.topology();
        let resolved = crate::twopc::resolve(&topo.backends, &topo.vschema, &xids).await;
        let _ = client.unlock(lock.key()).await;
        match resolved {
            Ok(done) => tracing::info!(
                prefix = %xids,
                committed = ?done.committed,
                rolled_back = ?done.rolled_back,
                "etcd: finished the two-phase commits of a proxy that is gone"
            ),
            Err(e) => {
                tracing::error!(prefix = %xids, error = %e, "etcd: could not finish a gone proxy's two-phase commits")
            }
        }
    }

    /// Runs `change` (a reparent or failover of `keyspace/shard`) as the one proxy allowed to:
    /// under the shard's lock, with every other proxy's statements for the shard held (each
    /// acknowledges once its connections to the old primary are back, or `grace` passes). The
    /// new primary is then published, and the others follow it before they let their
    /// statements go. With `once`, nothing is done when another proxy changed the primary
    /// while this one waited for the lock (a failover they both saw the need for).
    pub async fn change_primary<F, Fut>(
        &self,
        gate: &Gate,
        keyspace: &str,
        shard: &str,
        grace: Duration,
        once: bool,
        change: F,
    ) -> Result<Option<backend::reparent::Report>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<backend::reparent::Report>, Error>>,
    {
        let name = format!("{keyspace}/{shard}");
        let mut client = self.client.clone();
        let lock = tokio::time::timeout(
            Duration::from_secs(60),
            client.lock(
                self.key("locks/", &name),
                Some(LockOptions::new().with_lease(self.lease)),
            ),
        )
        .await
        .map_err(|_| format!("etcd: the lock of {name} was not free within 60 s"))?
        .map_err(err("locking"))?;
        // Another proxy may have changed it just before: start from what etcd says.
        let primary = client
            .get(self.key("primaries/", &name), None)
            .await
            .map_err(err("reading the primary"))?;
        if let Some(now) = primary.kvs().first().and_then(|kv| kv.value_str().ok()) {
            if gate.topology().backends.follow(keyspace, shard, now) {
                gate.follow_primary(keyspace, shard, now);
                if once {
                    let _ = client.unlock(lock.key()).await;
                    return Ok(None);
                }
            }
        }
        let holds = self.key("holds/", &name);
        let acks = self.key("acks/", &format!("{name}/"));
        let result = async {
            let with_lease = PutOptions::new().with_lease(self.lease);
            client
                .put(holds.as_str(), self.id.as_str(), Some(with_lease))
                .await
                .map_err(err("holding the other proxies"))?;
            let missing = self.missing_acks(&acks, Instant::now() + grace, "").await?;
            if !missing.is_empty() {
                tracing::warn!(
                    ?missing,
                    "etcd: proxies did not acknowledge the hold in time; going on"
                );
            }
            let report = change().await?;
            if let Some(report) = &report {
                let at = format!("{}:{}", report.to.host, report.to.port);
                client
                    .put(self.key("primaries/", &name), at, None)
                    .await
                    .map_err(err("publishing the new primary"))?;
            }
            Ok(report)
        }
        .await;
        // The others follow the published primary before the hold goes: etcd sends events in
        // order.
        let _ = client
            .delete(acks.as_str(), Some(DeleteOptions::new().with_prefix()))
            .await;
        let _ = client.delete(holds.as_str(), None).await;
        let _ = client.unlock(lock.key()).await;
        result
    }

    /// Waits until every other live proxy acknowledged under `acks` (with the value `expect`),
    /// or `deadline` passed: those that did not.
    async fn missing_acks(
        &self,
        acks: &str,
        deadline: Instant,
        expect: &str,
    ) -> Result<Vec<String>, Error> {
        let mut client = self.client.clone();
        loop {
            let proxies = client
                .get(
                    self.key("proxies/", ""),
                    Some(GetOptions::new().with_prefix().with_keys_only()),
                )
                .await
                .map_err(err("listing the proxies"))?;
            let acked = client
                .get(acks, Some(GetOptions::new().with_prefix()))
                .await
                .map_err(err("reading acknowledgements"))?;
            let proxy_prefix = self.key("proxies/", "");
            let missing: Vec<&str> = proxies
                .kvs()
                .iter()
                .filter_map(|kv| kv.key_str().ok()?.strip_prefix(&proxy_prefix))
                .filter(|id| *id != self.id)
                .filter(|id| {
                    !acked
                        .kvs()
                        .iter()
                        .filter(|a| a.value_str().is_ok_and(|v| v == expect))
                        .any(|a| a.key_str().is_ok_and(|k| k.ends_with(&format!("/{id}"))))
                })
                .collect();
            if missing.is_empty() || Instant::now() >= deadline {
                return Ok(missing.into_iter().map(String::from).collect());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Makes this proxy the one running `keyspace`'s reshard; the error names the proxy that
    /// runs it already.
    pub async fn claim_reshard(&self, keyspace: &str) -> Result<(), Error> {
        let key = self.key("reshards/", keyspace);
        let claim = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                self.id.as_str(),
                Some(PutOptions::new().with_lease(self.lease)),
            )]);
        let mut client = self.client.clone();
        let done = client.txn(claim).await.map_err(err("claiming a reshard"))?;
        if done.succeeded() {
            return Ok(());
        }
        match self.reshard_owner(keyspace).await? {
            Some(owner) if owner != self.id => {
                Err(format!("proxy {owner} runs the reshard of {keyspace}"))
            }
            _ => Ok(()),
        }
    }

    /// The proxy running `keyspace`'s reshard, if one does.
    pub async fn reshard_owner(&self, keyspace: &str) -> Result<Option<String>, Error> {
        let mut client = self.client.clone();
        let found = client
            .get(self.key("reshards/", keyspace), None)
            .await
            .map_err(err("reading a reshard's runner"))?;
        Ok(found
            .kvs()
            .first()
            .and_then(|kv| kv.value_str().ok())
            .map(String::from))
    }

    /// Lets `keyspace`'s reshard go, if this proxy runs it.
    pub async fn release_reshard(&self, keyspace: &str) {
        let key = self.key("reshards/", keyspace);
        let release = Txn::new()
            .when([Compare::value(
                key.as_str(),
                CompareOp::Equal,
                self.id.as_str(),
            )])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        if let Err(e) = self.client.clone().txn(release).await {
            tracing::warn!(keyspace, error = %e, "etcd: could not let a reshard go");
        }
    }

    /// Asks every other proxy to hold its statements for a switch of `keyspace`'s reshard.
    /// The attempt's etcd revision, which the others acknowledge.
    pub async fn begin_switch(&self, keyspace: &str) -> Result<i64, Error> {
        let with_lease = PutOptions::new().with_lease(self.lease);
        let put = self
            .client
            .clone()
            .put(
                self.key("switches/", keyspace),
                self.id.as_str(),
                Some(with_lease),
            )
            .await
            .map_err(err("holding the other proxies"))?;
        put.header()
            .map(|h| h.revision())
            .ok_or_else(|| "etcd: no revision for the switch".to_string())
    }

    /// Waits until every other live proxy holds for the switch, with nothing of its own
    /// running on the shards that stop serving; an error names those that did not by
    /// `deadline`.
    pub async fn others_switching(
        &self,
        keyspace: &str,
        deadline: Instant,
        attempt: i64,
    ) -> Result<(), Error> {
        let acks = self.key("switch_acks/", &format!("{keyspace}/"));
        let missing = (self.missing_acks(&acks, deadline, &attempt.to_string())).await?;
        match missing.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "proxies {} were still busy on the shards",
                missing.join(", ")
            )),
        }
    }

    /// Names `shards` as serving `keyspace` for every proxy, and serves them here at once.
    pub async fn publish_serving(
        &self,
        gate: &Gate,
        keyspace: &str,
        shards: &[String],
    ) -> Result<(), Error> {
        // Checked before anything is published: after that, nothing here can fail.
        let vschema = gate.topology().vschema.with_serving(keyspace, shards)?;
        self.client
            .clone()
            .put(self.key("serving/", keyspace), shards.join(","), None)
            .await
            .map_err(err("publishing the serving shards"))?;
        gate.replace_topology(Arc::new(vschema));
        Ok(())
    }

    /// Sends the replica reads of `keyspace` to `shards` on every proxy (none: back where its
    /// other statements go).
    pub async fn publish_reads(
        &self,
        keyspace: &str,
        shards: Option<&[String]>,
    ) -> Result<(), Error> {
        let key = self.key("serving_reads/", keyspace);
        let mut client = self.client.clone();
        match shards {
            Some(shards) => client.put(key, shards.join(","), None).await.map(drop),
            None => client.delete(key, None).await.map(drop),
        }
        .map_err(err("publishing where replica reads go"))
    }

    /// Ends a switch (done or given up): the other proxies let their statements go.
    pub async fn end_switch(&self, keyspace: &str) {
        let mut client = self.client.clone();
        let acks = self.key("switch_acks/", &format!("{keyspace}/"));
        let _ = client
            .delete(acks, Some(DeleteOptions::new().with_prefix()))
            .await;
        if let Err(e) = client.delete(self.key("switches/", keyspace), None).await {
            tracing::error!(keyspace, error = %e, "etcd: could not end a switch; the other proxies hold until this proxy's lease expires");
        }
    }
}
