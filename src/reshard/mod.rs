//! Online resharding: a keyspace moves from the shards serving it to others (2 → 4, 4 → 2)
//! while it keeps serving.
//!
//! 1. **Create** the tables on the target shards (from a source's `SHOW CREATE TABLE`).
//! 2. **Copy and catch up.** Each source shard streams its binlog and copies its rows by
//!    primary-key chunks to the target that owns each row's keyspace id ([`mover`]).
//! 3. **Verify** source against targets, chunk by chunk ([`verify`]); any difference blocks
//!    the switch.
//! 4. **Switch reads** (optional, as Vitess switches replica traffic first): reads sent to
//!    replicas (`USE ks@replica`) go to the targets, which the streams keep as close behind the
//!    sources as a replica is. Reads on the primaries stay with the writes.
//! 5. **Switch**: new statements wait, transactions on the sources end, the streams drain,
//!    the state file names the targets as serving and the topology swaps; the held statements
//!    then run on the targets. Primary reads and writes switch in the same step, so that a
//!    client never reads from shards behind its own writes.
//! 6. **Reverse replication**: from then on the targets' changes stream back to the sources,
//!    so that `reverse` switches back without losing a write.
//! 7. **Complete** drops the sources' tables; **cancel** (before the switch, or after a
//!    reverse) drops the targets'.
//!
//! A reshard's record lives in the sidecar keyspace; a restarted proxy resumes it.

mod mover;
pub mod store;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use changestream::current_position;
use mysql_async::prelude::Queryable;
use mysql_async::OptsBuilder;
use tokio::sync::{mpsc, oneshot, Notify};
use vschema::Shard;

use crate::gate::Gate;
use crate::topology::Topology;
use mover::{failed, ident, Endpoint, Mover, Place, Spec, TableLayout};
pub use store::{MoverState, Record, State, TableCopy};

/// How long the switch waits for the sources' transactions to end and the streams to drain.
const SWITCH_WAIT: Duration = Duration::from_secs(5);
/// Tries of a switch whose transactions did not end in time.
const SWITCH_ATTEMPTS: u32 = 3;
/// How long a statement waits for a switch.
const HOLD_LIMIT: Duration = Duration::from_secs(10);
/// A stream this far behind or less counts as caught up.
const CAUGHT_UP_MS: u64 = 1000;

/// The reshards this proxy runs, and the hold of the switch.
#[derive(Default)]
pub struct Reshards {
    running: Mutex<HashMap<String, Handle>>,
    /// The switches swapping routing now (this proxy's, and other proxies' through etcd):
    /// while there is one, statements outside transactions wait.
    switching: AtomicUsize,
    switched: Notify,
    /// Other proxies' switches holding this one, by keyspace.
    others: Mutex<HashMap<String, OtherSwitch>>,
    /// Keyspaces whose reshard another proxy runs (their claims in etcd).
    elsewhere: Mutex<std::collections::HashSet<String>>,
    /// Keyspaces whose replica reads their reshard's targets serve, and the routing of
    /// replica reads built from them (none while there is none).
    read_serving: Mutex<BTreeMap<String, Vec<String>>>,
    reads: ArcSwapOption<ReadRouting>,
}

/// Where replica reads are planned and run while a reshard's reads are switched: the topology
/// with the targets serving those keyspaces, and plans of its own.
pub struct ReadRouting {
    pub topology: Arc<Topology>,
    pub plans: crate::plan_cache::PlanCache,
}

/// Plans kept for replica reads of keyspaces whose reads are switched.
const READ_PLANS: usize = 1000;

/// Another proxy's switch of a keyspace, as this proxy holds for it: the topology it held
/// in, and the shards held there.
struct OtherSwitch {
    topo: Arc<Topology>,
    held: Vec<String>,
}

/// A reshard's record as it runs, and where its commands go.
pub(crate) struct Live {
    record: Mutex<Record>,
}

impl Live {
    fn record(&self) -> Record {
        self.record.lock().expect("reshard lock").clone()
    }

    fn update(&self, f: impl FnOnce(&mut Record)) {
        f(&mut self.record.lock().expect("reshard lock"));
    }

    pub(crate) fn mover(&self, i: usize) -> MoverState {
        self.record.lock().expect("reshard lock").movers[i].clone()
    }

    pub(crate) fn update_mover(&self, i: usize, f: impl FnOnce(&mut MoverState)) {
        f(&mut self.record.lock().expect("reshard lock").movers[i]);
    }
}

struct Handle {
    live: Arc<Live>,
    commands: mpsc::UnboundedSender<(Command, oneshot::Sender<Result<(), String>>)>,
}

/// What an operator asks of a running reshard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Verify,
    /// Replica reads to the targets, before the switch.
    SwitchReads,
    /// Replica reads back to the sources.
    ReverseReads,
    Switch,
    Reverse,
    Complete,
    Cancel,
}

impl Command {
    pub fn parse(name: &str) -> Option<Command> {
        Some(match name {
            "verify" => Command::Verify,
            "switch-reads" => Command::SwitchReads,
            "reverse-reads" => Command::ReverseReads,
            "switch" => Command::Switch,
            "reverse" => Command::Reverse,
            "complete" => Command::Complete,
            "cancel" => Command::Cancel,
            _ => return None,
        })
    }
}

impl Reshards {
    /// Whether statements must wait for a switch.
    #[inline]
    pub fn holding(&self) -> bool {
        self.switching.load(Ordering::SeqCst) > 0
    }

    /// Waits until the switch ends (at most [`HOLD_LIMIT`]).
    pub async fn wait_switch(&self) {
        let deadline = tokio::time::Instant::now() + HOLD_LIMIT;
        loop {
            let released = self.switched.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !self.holding() {
                return;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return;
            }
        }
    }

    fn hold(&self) -> HoldGuard<'_> {
        // Ordered with the sessions' marks (see `GateSession::one_query`).
        self.switching.fetch_add(1, Ordering::SeqCst);
        HoldGuard(self)
    }

    fn let_go(&self) {
        self.switching.fetch_sub(1, Ordering::SeqCst);
        self.switched.notify_waiters();
    }

    /// Whether `keyspace` is being resharded, here or by another proxy: its DDL is refused
    /// (the streams copy rows, not schema changes).
    pub(crate) fn moving(&self, keyspace: &str) -> bool {
        self.running
            .lock()
            .expect("reshard lock")
            .contains_key(keyspace)
            || self
                .elsewhere
                .lock()
                .expect("reshard lock")
                .contains(keyspace)
    }

    /// Another proxy claimed `keyspace`'s reshard (`true`), or let it go.
    pub(crate) fn run_elsewhere(&self, keyspace: &str, claimed: bool) {
        let mut elsewhere = self.elsewhere.lock().expect("reshard lock");
        match claimed {
            true => elsewhere.insert(keyspace.to_string()),
            false => elsewhere.remove(keyspace),
        };
    }

    /// Where replica reads go while a reshard's reads are switched (none otherwise).
    #[inline]
    pub fn read_routing(&self) -> Option<Arc<ReadRouting>> {
        self.reads.load_full()
    }

    /// Replica reads of `keyspace` go to `shards` (none: where its other statements go), on
    /// this proxy.
    pub(crate) fn serve_reads(&self, gate: &Gate, keyspace: &str, shards: Option<Vec<String>>) {
        let mut serving = self.read_serving.lock().expect("reshard lock");
        match shards {
            Some(shards) => serving.insert(keyspace.to_string(), shards),
            None => serving.remove(keyspace),
        };
        self.route_reads(gate, &serving);
    }

    /// The topology changed: the replica reads' routing is built again from it.
    pub(crate) fn topology_replaced(&self, gate: &Gate) {
        let serving = self.read_serving.lock().expect("reshard lock");
        if !serving.is_empty() {
            self.route_reads(gate, &serving);
        }
    }

    fn route_reads(&self, gate: &Gate, serving: &BTreeMap<String, Vec<String>>) {
        if serving.is_empty() {
            self.reads.store(None);
            return;
        }
        let main = gate.topology();
        let mut vschema = (*main.vschema).clone();
        for (keyspace, shards) in serving {
            match vschema.with_serving(keyspace, shards) {
                Ok(v) => vschema = v,
                Err(e) => {
                    tracing::error!(keyspace, error = %e, "replica reads stay where the keyspace is served")
                }
            }
        }
        let backends = backend::Backends::reusing(&vschema, &main.backends);
        let metrics = &gate.metrics;
        let topology = Topology::new(
            Arc::new(vschema),
            backends,
            &metrics.shard_queries,
            &metrics.shard_seconds,
        );
        self.reads.store(Some(Arc::new(ReadRouting {
            topology: Arc::new(topology),
            plans: crate::plan_cache::PlanCache::new(READ_PLANS),
        })));
    }

    /// Another proxy switches `keyspace` (through etcd): statements here are held as for a
    /// switch of this proxy's own. False when they are held for it already.
    pub(crate) fn hold_for_other(&self, gate: &Gate, keyspace: &str) -> bool {
        let mut others = self.others.lock().expect("reshard lock");
        if others.contains_key(keyspace) {
            return false;
        }
        self.switching.fetch_add(1, Ordering::SeqCst);
        let topo = gate.topology();
        others.insert(
            keyspace.to_string(),
            OtherSwitch {
                topo,
                held: Vec::new(),
            },
        );
        true
    }

    /// For another proxy's switch: waits until nothing of this proxy runs on the shards that
    /// serve `keyspace`, holding them meanwhile. Whether that happened within [`SWITCH_WAIT`]
    /// (the other proxy's switch waits for it, and gives up without it).
    pub(crate) async fn quiesce_for_other(&self, gate: &Gate, keyspace: &str) -> bool {
        let topo = match self.others.lock().expect("reshard lock").get(keyspace) {
            Some(o) => o.topo.clone(),
            None => return false,
        };
        let shards = topo.vschema.serving(keyspace);
        let deadline = Instant::now() + SWITCH_WAIT;
        let in_use = || (shards.iter()).any(|s| topo.backends.primary_in_use(keyspace, s) > 0);
        let busy = || gate.unheld_statements() > 0 || in_use();
        // As in `switch`: the statements that began before the hold end first.
        while busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        {
            let mut others = self.others.lock().expect("reshard lock");
            let Some(other) = others.get_mut(keyspace) else {
                return false;
            };
            for s in &shards {
                if topo.backends.hold_remote(keyspace, s) {
                    other.held.push(s.clone());
                }
            }
            if other.held.len() < shards.len() {
                // A shard's primary is changing.
                return false;
            }
        }
        while in_use() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        !busy()
    }

    /// Another proxy's switch made `serving` serve `keyspace`: the shards held for it that
    /// no longer do are retired, so that statements still waiting for them fail rather than
    /// run there.
    pub(crate) fn retire_for_other(&self, keyspace: &str, serving: &[String]) {
        let others = self.others.lock().expect("reshard lock");
        if let Some(other) = others.get(keyspace) {
            for s in other.held.iter().filter(|s| !serving.contains(s)) {
                other.topo.backends.retire(keyspace, s);
            }
        }
    }

    /// Another proxy's switch of `keyspace` ended (done or given up): the statements go.
    pub(crate) fn release_for_other(&self, keyspace: &str) {
        let other = self.others.lock().expect("reshard lock").remove(keyspace);
        if let Some(other) = other {
            for s in &other.held {
                other.topo.backends.release_remote(keyspace, s);
            }
            self.let_go();
        }
    }

    /// The reshards running on this proxy, as they stand.
    pub fn running_records(&self) -> Vec<Record> {
        let running = self.running.lock().expect("reshard lock");
        running.values().map(|h| h.live.record()).collect()
    }

    /// Every reshard: running here, or recorded by any proxy.
    pub async fn list(&self, gate: &Gate) -> Result<Vec<Record>, String> {
        let mut records = store::load(&gate.topology(), None)
            .await
            .map_err(|e| e.to_string())?;
        let running = self.running.lock().expect("reshard lock");
        for r in &mut records {
            if let Some(h) = running.get(&r.keyspace) {
                let age = r.age_secs;
                *r = h.live.record();
                r.age_secs = age;
            }
        }
        Ok(records)
    }

    /// Starts moving `keyspace` to the shards named in `to` (comma-separated key ranges).
    pub async fn start(
        &self,
        gate: &Arc<Gate>,
        keyspace: &str,
        to: &str,
        max_rows_per_sec: Option<u64>,
    ) -> Result<Record, String> {
        if gate.config_path().is_none() && !gate.shares_topology() {
            return Err(
                "resharding needs the proxy started from a config file (the serving \
                        shards are recorded beside it)"
                    .into(),
            );
        }
        let topo = gate.topology();
        let ks = topo
            .vschema
            .keyspace(keyspace)
            .ok_or_else(|| format!("no keyspace {keyspace}"))?;
        if !ks.sharded {
            return Err(format!(
                "{keyspace} is unsharded: declare it `sharded = true` on its one shard, with \
                 each table's vindex and the target shards in its spare_shards, reload, and \
                 reshard it then (see the README's Resharding)"
            ));
        }
        if self
            .running
            .lock()
            .expect("reshard lock")
            .contains_key(keyspace)
        {
            return Err(format!("{keyspace} is being resharded already"));
        }
        // An online schema change's renames would reach the reshard's streams.
        let migrations = (gate.migrations.list(&topo, None).await).map_err(|e| e.to_string())?;
        if let Some(m) = (migrations.iter()).find(|m| m.keyspace == keyspace && m.streaming()) {
            return Err(format!(
                "{keyspace} has an online schema change {} ({}) whose streams still run \
                 (copying, or revertible after its cut-over): reshard it once they end",
                m.id, m.statement
            ));
        }
        let existing = store::load(&topo, Some(keyspace))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(r) = existing.iter().find(|r| r.state.active()) {
            return Err(format!(
                "{keyspace} has a reshard {} already (to {})",
                r.state.name(),
                r.targets.join(",")
            ));
        }
        let targets: Vec<String> = to
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for t in &targets {
            if ks.shards.iter().any(|s| &s.name == t) {
                return Err(format!(
                    "{keyspace}/{t} serves the keyspace now: the target shards must be others \
                     (listed in its spare_shards)"
                ));
            }
            if !ks.spare_shards.iter().any(|s| &s.name == t) {
                return Err(format!(
                    "no shard {keyspace}/{t} in the keyspace's spare_shards: add the target \
                     shards there, with their servers, and reload"
                ));
            }
        }
        topo.vschema
            .with_serving(keyspace, &targets)
            .map_err(|e| format!("--to {to}: {e}"))?;
        let sources = topo.vschema.serving(keyspace);
        let setup = Setup::new(gate, keyspace, &sources, &targets).await?;
        setup.check_targets_empty().await?;
        let mut movers = Vec::new();
        let mut total = 0;
        for (i, s) in setup.sources.iter().enumerate() {
            let mut conn = s.connect().await?;
            let mut tables = Vec::new();
            for t in setup.tables.iter() {
                if matches!(t.place, Place::Reference) && i > 0 {
                    continue;
                }
                let n: Option<u64> = conn
                    .query_first(format!(
                        "SELECT COUNT(*) FROM {}.{}",
                        ident(&s.db),
                        ident(&t.name)
                    ))
                    .await
                    .map_err(failed(&s.shard, "counting rows"))?;
                total += n.unwrap_or(0);
                tables.push(TableCopy {
                    name: t.name.clone(),
                    last_key: None,
                    done: false,
                });
            }
            movers.push(MoverState {
                shard: s.shard.clone(),
                tables,
                ..MoverState::default()
            });
        }
        let record = Record {
            keyspace: keyspace.to_string(),
            sources,
            targets,
            state: State::Copying,
            message: "creating the tables on the targets".into(),
            movers,
            rows_total: total,
            max_rows_per_sec,
            ..Record::default()
        };
        // With proxies sharing the topology, one runs the reshard: the one holding its claim.
        if let Some(shared) = gate.shared() {
            shared.claim_reshard(keyspace).await?;
        }
        let begun = async {
            setup.create_tables().await?;
            store::restart(&topo, &record)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = begun.await {
            if let Some(shared) = gate.shared() {
                shared.release_reshard(keyspace).await;
            }
            return Err(e);
        }
        self.launch(gate, record.clone());
        Ok(record)
    }

    /// Runs a reshard's steps in a task of its own.
    fn launch(&self, gate: &Arc<Gate>, record: Record) {
        let keyspace = record.keyspace.clone();
        let live = Arc::new(Live {
            record: Mutex::new(record),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        self.running.lock().expect("reshard lock").insert(
            keyspace.clone(),
            Handle {
                live: live.clone(),
                commands,
            },
        );
        let gate = gate.clone();
        tokio::spawn(async move {
            let result = drive(&gate, &live, rx).await;
            if let Err(e) = result {
                tracing::error!(keyspace = %keyspace, error = %e, "reshard failed");
                live.update(|r| {
                    r.state = State::Failed;
                    r.message = e;
                });
            }
            // Ended without a switch (failed, cancelled): replica reads go back.
            if live.record().reads_switched {
                if let Err(e) = route_reads(&gate, &live, false).await {
                    tracing::error!(keyspace = %keyspace, error = %e, "replica reads could not be sent back");
                }
            }
            save(&gate, &live).await;
            gate.reshards
                .running
                .lock()
                .expect("reshard lock")
                .remove(&keyspace);
            if let Some(shared) = gate.shared() {
                shared.release_reshard(&keyspace).await;
            }
        });
    }

    /// Sends `command` to the keyspace's running reshard and waits for it to be done.
    pub async fn command(
        &self,
        gate: &Gate,
        keyspace: &str,
        command: Command,
    ) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let sent = {
            let running = self.running.lock().expect("reshard lock");
            running
                .get(keyspace)
                .map(|handle| handle.commands.send((command, tx)).is_ok())
        };
        match sent {
            Some(true) => {}
            Some(false) => return Err(format!("the reshard of {keyspace} has ended")),
            None => {
                if let Some(owner) = match gate.shared() {
                    Some(shared) => shared.reshard_owner(keyspace).await?,
                    None => None,
                } {
                    return Err(format!(
                        "the reshard of {keyspace} runs on proxy {owner}: send it the command"
                    ));
                }
                return self.cancel_stopped(gate, keyspace, command).await;
            }
        }
        rx.await
            .map_err(|_| format!("the reshard of {keyspace} ended"))?
    }

    /// A reshard switched back, or failed while the sources served, has no streams left: only
    /// its targets' tables to drop.
    async fn cancel_stopped(
        &self,
        gate: &Gate,
        keyspace: &str,
        command: Command,
    ) -> Result<(), String> {
        let topo = gate.topology();
        let records = store::load(&topo, Some(keyspace))
            .await
            .map_err(|e| e.to_string())?;
        let mut record = records
            .into_iter()
            .next()
            .ok_or_else(|| format!("no reshard of {keyspace}"))?;
        let serving = topo.vschema.serving(keyspace);
        let stopped = matches!(record.state, State::Reversed | State::Failed);
        if command != Command::Cancel || !stopped || serving != record.sources {
            return Err(format!(
                "{command:?} is not possible while the reshard of {keyspace} is {} (serving: {})",
                record.state.name(),
                serving.join(",")
            ));
        }
        let setup = Setup::new(gate, keyspace, &record.sources, &record.targets).await?;
        setup.drop_tables(&setup.targets).await?;
        record.state = State::Cancelled;
        record.message = "the targets' tables are dropped".into();
        store::save(&topo, &record).await.map_err(|e| e.to_string())
    }

    /// At start-up: takes up the reshards that were running when the proxy stopped (with
    /// proxies sharing the topology: those no live proxy runs).
    pub async fn resume(&self, gate: &Arc<Gate>) -> Result<(), String> {
        let records = store::load(&gate.topology(), None)
            .await
            .map_err(|e| e.to_string())?;
        for record in records.into_iter().filter(|r| r.state.active()) {
            // Wherever the reshard runs, replica reads go where it sent them.
            if record.reads_switched && record.state.forward() {
                self.serve_reads(gate, &record.keyspace, Some(record.targets.clone()));
            }
            self.resume_one(gate, &record.keyspace).await;
        }
        Ok(())
    }

    /// The proxy running `keyspace`'s reshard is gone (its etcd lease expired): this one
    /// takes it up, unless another proxy was quicker.
    pub(crate) async fn take_over(&self, gate: &Arc<Gate>, keyspace: &str) {
        self.resume_one(gate, keyspace).await;
    }

    /// Resumes `keyspace`'s reshard when it is still active and no other proxy runs it.
    async fn resume_one(&self, gate: &Arc<Gate>, keyspace: &str) {
        if (self.running.lock().expect("reshard lock")).contains_key(keyspace) {
            return;
        }
        if let Some(shared) = gate.shared() {
            if let Err(e) = shared.claim_reshard(keyspace).await {
                tracing::info!(keyspace, "not resuming a reshard: {e}");
                self.run_elsewhere(keyspace, true);
                return;
            }
        }
        // Read under the claim: the proxy that ran it may have moved it on before it went.
        let record = match store::load(&gate.topology(), Some(keyspace)).await {
            Ok(records) => records.into_iter().find(|r| r.state.active()),
            Err(e) => {
                tracing::warn!(keyspace, error = %e, "could not read a reshard to resume it");
                None
            }
        };
        match record {
            None => {
                if let Some(shared) = gate.shared() {
                    shared.release_reshard(keyspace).await;
                }
            }
            Some(mut record) => {
                let serving = gate.topology().vschema.serving(keyspace);
                // A verify cut short runs again once the streams catch up.
                if record.state == State::Verifying {
                    record.state = State::Copying;
                }
                // A switch cut short: the state file says which side serves.
                if record.state == State::Switching {
                    if serving == record.targets {
                        record.state = State::Switched;
                        record.movers = std::mem::take(&mut record.next_movers);
                    } else {
                        record.state = State::Ready;
                        record.next_movers.clear();
                    }
                }
                tracing::info!(keyspace, state = record.state.name(), "resuming a reshard");
                self.launch(gate, record);
            }
        }
    }
}

/// Lets the statements held for a switch go when dropped.
struct HoldGuard<'a>(&'a Reshards);

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        self.0.let_go();
    }
}

/// What a reshard works with: the shards on both sides and the tables' layout.
struct Setup {
    keyspace: String,
    sources: Vec<Endpoint>,
    targets: Vec<Endpoint>,
    tables: Arc<Vec<TableLayout>>,
}

impl Setup {
    async fn new(
        gate: &Gate,
        keyspace: &str,
        sources: &[String],
        targets: &[String],
    ) -> Result<Setup, String> {
        let topo = gate.topology();
        let ks = topo
            .vschema
            .keyspace(keyspace)
            .ok_or_else(|| format!("no keyspace {keyspace}"))?;
        let endpoint = |name: &String| -> Result<Endpoint, String> {
            let shard: &Shard = ks
                .shards
                .iter()
                .chain(&ks.spare_shards)
                .find(|s| &s.name == name)
                .ok_or_else(|| format!("no shard {keyspace}/{name} in the config"))?;
            // A serving shard's primary may have changed since the config was written.
            let addr = topo
                .backends
                .primary_addr(keyspace, name)
                .unwrap_or_else(|_| shard.primary.clone());
            Ok(Endpoint {
                shard: name.clone(),
                range: shard.range.clone(),
                opts: OptsBuilder::default()
                    .ip_or_hostname(addr.host)
                    .tcp_port(addr.port)
                    .user(Some(addr.user))
                    .pass(addr.password)
                    .prefer_socket(false)
                    .into(),
                db: addr.database,
            })
        };
        let sources: Vec<Endpoint> = sources.iter().map(endpoint).collect::<Result<_, _>>()?;
        let targets: Vec<Endpoint> = targets.iter().map(endpoint).collect::<Result<_, _>>()?;
        // The tables and their primary keys, as the first source has them.
        let first = &sources[0];
        let mut conn = first.connect().await?;
        let keys: Vec<(String, String)> = conn
            .exec(
                "SELECT t.TABLE_NAME, COALESCE(k.COLUMN_NAME, '') FROM information_schema.TABLES t \
                 LEFT JOIN information_schema.KEY_COLUMN_USAGE k ON k.TABLE_SCHEMA = t.TABLE_SCHEMA \
                 AND k.TABLE_NAME = t.TABLE_NAME AND k.CONSTRAINT_NAME = 'PRIMARY' \
                 WHERE t.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' \
                 ORDER BY t.TABLE_NAME, k.ORDINAL_POSITION",
                (first.db.clone(),),
            )
            .await
            .map_err(failed(&first.shard, "reading the tables"))?;
        let mut tables: Vec<TableLayout> = Vec::new();
        for (name, column) in keys {
            // The proxy's own tables (a migration's shadows) stay where they are.
            if name.starts_with('_') {
                continue;
            }
            if let Some(t) = tables.last_mut().filter(|t| t.name == name) {
                t.key.push(column);
                continue;
            }
            if column.is_empty() {
                return Err(format!(
                    "table {name} has no primary key: a reshard copies rows by it"
                ));
            }
            let place = match ks.table(&name) {
                Some(vschema::Table::Sharded { vindex, .. }) => Place::Sharded {
                    vindex: vindex.clone(),
                    columns: ks
                        .table(&name)
                        .expect("listed")
                        .vindex_columns()
                        .into_iter()
                        .map(String::from)
                        .collect(),
                },
                Some(vschema::Table::Reference) => Place::Reference,
                _ => {
                    return Err(format!(
                        "table {name} on {keyspace}'s shards is not in its VSchema: a reshard \
                         cannot tell where its rows go"
                    ))
                }
            };
            tables.push(TableLayout {
                name,
                key: vec![column],
                place,
            });
        }
        Ok(Setup {
            keyspace: keyspace.to_string(),
            sources,
            targets,
            tables: Arc::new(tables),
        })
    }

    /// Targets must not hold rows of the tables already: they would be mixed in.
    async fn check_targets_empty(&self) -> Result<(), String> {
        for t in &self.targets {
            let mut conn = t.connect().await?;
            for table in self.tables.iter() {
                let sql = format!(
                    "SELECT 1 FROM {}.{} LIMIT 1",
                    ident(&t.db),
                    ident(&table.name)
                );
                match conn.query_first::<u8, _>(sql).await {
                    Ok(None) => {}
                    Ok(Some(_)) => {
                        return Err(format!(
                            "{}/{} already holds rows of {}: a reshard's targets start empty",
                            self.keyspace, t.shard, table.name
                        ))
                    }
                    Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => {}
                    Err(e) => return Err(format!("{}: {e}", t.shard)),
                }
            }
        }
        Ok(())
    }

    /// The source's tables on every target (and the database if it is missing).
    async fn create_tables(&self) -> Result<(), String> {
        let first = &self.sources[0];
        let mut conn = first.connect().await?;
        let mut creates = Vec::new();
        for t in self.tables.iter() {
            let row: Option<(String, String)> = conn
                .query_first(format!(
                    "SHOW CREATE TABLE {}.{}",
                    ident(&first.db),
                    ident(&t.name)
                ))
                .await
                .map_err(failed(&first.shard, "reading a table's definition"))?;
            let (_, create) = row.ok_or_else(|| format!("no definition of {}", t.name))?;
            creates.push(create.replacen("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1));
        }
        for t in &self.targets {
            let mut conn = t.connect().await?;
            conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", ident(&t.db)))
                .await
                .map_err(failed(&t.shard, "creating the database"))?;
            conn.query_drop(format!("USE {}", ident(&t.db)))
                .await
                .map_err(failed(&t.shard, "creating the tables"))?;
            for create in &creates {
                conn.query_drop(create)
                    .await
                    .map_err(failed(&t.shard, "creating a table"))?;
            }
        }
        Ok(())
    }

    /// Streams from each of `from` to all of `to`, the first carrying the reference tables.
    async fn movers(
        &self,
        live: &Arc<Live>,
        from: &[Endpoint],
        to: &[Endpoint],
    ) -> Result<Vec<Mover>, String> {
        let to = Arc::new(to.to_vec());
        let max_rows_per_sec = live.record().max_rows_per_sec;
        let mut movers = Vec::new();
        for (index, e) in from.iter().enumerate() {
            movers.push(
                Mover::start(Spec {
                    from: e.clone(),
                    to: to.clone(),
                    tables: self.tables.clone(),
                    references: index == 0,
                    max_rows_per_sec,
                    live: live.clone(),
                    index,
                })
                .await?,
            );
        }
        Ok(movers)
    }

    async fn drop_tables(&self, on: &[Endpoint]) -> Result<(), String> {
        for e in on {
            let mut conn = e.connect().await?;
            for t in self.tables.iter() {
                conn.query_drop(format!(
                    "DROP TABLE IF EXISTS {}.{}",
                    ident(&e.db),
                    ident(&t.name)
                ))
                .await
                .map_err(failed(&e.shard, "dropping a table"))?;
            }
        }
        Ok(())
    }
}

async fn save(gate: &Gate, live: &Live) {
    let record = live.record();
    if let Err(e) = store::save(&gate.topology(), &record).await {
        tracing::warn!(keyspace = %record.keyspace, error = %e, "could not record a reshard's progress");
    }
}

type Commands = mpsc::UnboundedReceiver<(Command, oneshot::Sender<Result<(), String>>)>;

/// A reshard from its current state to its end.
async fn drive(gate: &Arc<Gate>, live: &Arc<Live>, mut commands: Commands) -> Result<(), String> {
    let record = live.record();
    let setup = Setup::new(gate, &record.keyspace, &record.sources, &record.targets).await?;
    let started = Instant::now();
    let copied_before = record.rows_copied();
    let mut movers = match record.state.forward() {
        true => setup.movers(live, &setup.sources, &setup.targets).await?,
        false => setup.movers(live, &setup.targets, &setup.sources).await?,
    };
    live.update(|r| {
        if r.state == State::Copying {
            r.message = "copying rows and streaming changes".into();
        }
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for m in movers.iter_mut() {
                    if let Some(why) = m.failure() {
                        return Err(why);
                    }
                }
                let r = live.record();
                if r.state == State::Copying && r.copied() && r.lag_ms() < CAUGHT_UP_MS {
                    let secs = started.elapsed().as_secs_f64();
                    live.update(|r| {
                        if copied_before == 0 {
                            r.copy_secs = Some(secs);
                        }
                    });
                    run_verify(&setup, live, &mut movers).await;
                }
                save(gate, live).await;
            }
            command = commands.recv() => {
                let Some((command, reply)) = command else { return Ok(()) };
                let state = live.record().state;
                let result = match (command, state) {
                    (Command::Verify, State::Ready | State::Diverged) => {
                        run_verify(&setup, live, &mut movers).await;
                        // Targets that differ serve no reads.
                        let r = live.record();
                        match r.state == State::Diverged && r.reads_switched {
                            true => route_reads(gate, live, false).await,
                            false => Ok(()),
                        }
                    }
                    (Command::SwitchReads, State::Ready) => route_reads(gate, live, true).await,
                    (Command::ReverseReads, s) if s.forward() && live.record().reads_switched => {
                        route_reads(gate, live, false).await
                    }
                    (Command::Switch, State::Ready) => {
                        match switch(gate, live, &setup, &mut movers, true).await {
                            Ok(reverse) => {
                                movers = reverse;
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                    (Command::Switch, State::Diverged) => {
                        let r = live.record();
                        Err(format!(
                            "the switch waits for a verify that finds no differences: {} {}",
                            r.message,
                            r.differences.join("; ")
                        ))
                    }
                    (Command::Reverse, State::Switched) => {
                        switch(gate, live, &setup, &mut movers, false).await.map(|_| ())
                    }
                    (Command::Complete, State::Switched) => {
                        let (on, end) = (&setup.sources, State::Completed);
                        finish(&setup, live, &mut movers, on, end, "the sources'").await
                    }
                    (Command::Cancel, s) if s.forward() => {
                        let (on, end) = (&setup.targets, State::Cancelled);
                        finish(&setup, live, &mut movers, on, end, "the targets'").await
                    }
                    (command, state) => Err(format!(
                        "{command:?} is not possible while the reshard is {}",
                        state.name()
                    )),
                };
                save(gate, live).await;
                let _ = reply.send(result);
                if !live.record().state.active() {
                    return Ok(());
                }
            }
        }
    }
}

/// Ends the streams and drops the tables of the shards `on` (`whose`, for the message).
async fn finish(
    setup: &Setup,
    live: &Live,
    movers: &mut Vec<Mover>,
    on: &[Endpoint],
    end: State,
    whose: &str,
) -> Result<(), String> {
    for m in movers.drain(..) {
        m.stop().await;
    }
    let dropped = setup.drop_tables(on).await;
    live.update(|r| {
        r.state = end;
        r.message = match &dropped {
            Ok(()) => format!("{whose} tables are dropped"),
            Err(e) => format!("the streams stopped, but dropping {whose} tables failed: {e}"),
        };
    });
    dropped
}

/// Sends the keyspace's replica reads to the targets (`to_targets`) or back to where the
/// keyspace is served, on every proxy.
async fn route_reads(gate: &Gate, live: &Live, to_targets: bool) -> Result<(), String> {
    let r = live.record();
    let shards = to_targets.then(|| r.targets.clone());
    if let Some(shared) = gate.shared() {
        shared.publish_reads(&r.keyspace, shards.as_deref()).await?;
    }
    gate.reshards.serve_reads(gate, &r.keyspace, shards);
    live.update(|r| {
        r.reads_switched = to_targets;
        if r.state.forward() {
            r.message = match to_targets {
                true => "replica reads go to the targets; switch moves the rest".into(),
                false => "replica reads go to the sources again".into(),
            };
        }
    });
    Ok(())
}

/// Compares the sources with the targets: the reshard is then ready, or diverged (also when
/// the comparison could not be made: a `verify` tries again).
async fn run_verify(setup: &Setup, live: &Live, movers: &mut [Mover]) {
    live.update(|r| {
        r.state = State::Verifying;
        r.message = "comparing the sources with the targets".into();
    });
    let mut report = verify::Report::default();
    for (i, (source, mover)) in setup.sources.iter().zip(movers.iter_mut()).enumerate() {
        let compared = verify::source(
            source,
            mover,
            &setup.targets,
            &setup.tables,
            i == 0,
            &mut report,
        )
        .await;
        if let Err(e) = compared {
            live.update(|r| {
                r.state = State::Diverged;
                r.message = format!("the verify could not finish: {e}; run verify again");
            });
            return;
        }
    }
    let clean = report.differences == 0;
    live.update(|r| {
        r.differences = report.listed.clone();
        if clean {
            r.state = State::Ready;
            r.message = format!(
                "verified {} rows: no difference; ready to switch",
                report.rows
            );
        } else {
            r.state = State::Diverged;
            r.message = format!(
                "{} difference(s) in {} rows; the switch is refused until a verify finds none",
                report.differences, report.rows
            );
        }
    });
}

/// Switches the keyspace to the targets (`forward`) or back to the sources. Returns the
/// streams that run afterwards: from the new serving shards back to the others.
async fn switch(
    gate: &Arc<Gate>,
    live: &Arc<Live>,
    setup: &Setup,
    movers: &mut Vec<Mover>,
    forward: bool,
) -> Result<Vec<Mover>, String> {
    let (from, to) = match forward {
        true => (&setup.sources, &setup.targets),
        false => (&setup.targets, &setup.sources),
    };
    let keyspace = &setup.keyspace;
    // The serving shards are recorded in etcd for proxies that share it, else in the state
    // file beside the config.
    let shared = gate.shared();
    let config = match shared {
        Some(_) => None,
        None => Some(
            gate.config_path()
                .ok_or("no config file to record the serving shards in")?
                .to_path_buf(),
        ),
    };
    let mut last = String::new();
    for _ in 0..SWITCH_ATTEMPTS {
        let topo = gate.topology();
        let started = Instant::now();
        let hold = gate.reshards.hold();
        let deadline = started + SWITCH_WAIT;
        // The other proxies hold their statements too, each in parallel with this one.
        let attempt = match shared {
            Some(shared) => match shared.begin_switch(keyspace).await {
                Ok(attempt) => attempt,
                Err(e) => {
                    drop(hold);
                    shared.end_switch(keyspace).await;
                    return Err(format!("the switch could not hold the other proxies: {e}"));
                }
            },
            None => 0,
        };
        let in_use = || {
            from.iter()
                .any(|e| topo.backends.primary_in_use(keyspace, &e.shard) > 0)
        };
        // Statements that began before the hold end, and so do the transactions on the
        // shards that stop serving.
        let busy = || gate.unheld_statements() > 0 || in_use();
        while busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Only then are the shards held: a statement that began before the hold may be on
        // its way to one, and would wait for the switch that waits for it. What the hold
        // catches now is a transaction begun elsewhere coming to these shards.
        let held: Vec<&Endpoint> = from
            .iter()
            .filter(|e| topo.backends.hold_remote(keyspace, &e.shard))
            .collect();
        let release = |held: &[&Endpoint]| {
            for e in held {
                topo.backends.release_remote(keyspace, &e.shard);
            }
        };
        while in_use() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let others = match shared {
            Some(shared) => shared.others_switching(keyspace, deadline, attempt).await,
            None => Ok(()),
        };
        if busy() || held.len() < from.len() || others.is_err() {
            release(&held);
            drop(hold);
            if let Some(shared) = shared {
                shared.end_switch(keyspace).await;
            }
            last = match (busy(), others) {
                (true, _) => "statements and transactions on the shards did not end in time".into(),
                (false, Err(e)) => e,
                (false, Ok(())) => "a shard's primary was changing".into(),
            };
            tokio::time::sleep(SWITCH_WAIT).await;
            continue;
        }
        let drained = async {
            for (e, m) in from.iter().zip(movers.iter_mut()) {
                let mut conn = e.connect().await?;
                let now = current_position(&mut conn)
                    .await
                    .map_err(|err| format!("{}: {err}", e.shard))?;
                m.reach(&now, deadline)
                    .await
                    .map_err(|why| format!("{}: {why}", e.shard))?;
            }
            // The streams back start where the new serving shards stand now.
            let mut back = Vec::new();
            for e in to.iter() {
                let mut conn = e.connect().await?;
                let now = current_position(&mut conn)
                    .await
                    .map_err(|err| format!("{}: {err}", e.shard))?;
                back.push(MoverState {
                    shard: e.shard.clone(),
                    position: now.to_string(),
                    ..MoverState::default()
                });
            }
            Ok::<_, String>(back)
        }
        .await;
        let back = match drained {
            Ok(back) => back,
            Err(why) => {
                release(&held);
                drop(hold);
                if let Some(shared) = shared {
                    shared.end_switch(keyspace).await;
                }
                last = why;
                tokio::time::sleep(SWITCH_WAIT).await;
                continue;
            }
        };
        let state = live.record().state;
        live.update(|r| {
            r.state = State::Switching;
            r.message = "switching".into();
            r.next_movers = back.clone();
        });
        save(gate, live).await;
        let serving: Vec<String> = to.iter().map(|e| e.shard.clone()).collect();
        let swapped = match (shared, &config) {
            (Some(shared), _) => shared.publish_serving(gate, keyspace, &serving).await,
            (None, Some(config)) => vschema::record_serving(config, keyspace, Some(&serving))
                .map_err(|e| e.to_string())
                .and_then(|_| gate.reload(config).map_err(|e| e.to_string())),
            (None, None) => Err("no config file to record the serving shards in".into()),
        };
        if let Err(e) = swapped {
            release(&held);
            drop(hold);
            if let Some(shared) = shared {
                shared.end_switch(keyspace).await;
            }
            live.update(|r| {
                r.state = state;
                r.next_movers.clear();
            });
            return Err(format!("the switch failed: {e}"));
        }
        // Replica reads go where everything goes now.
        if live.record().reads_switched {
            if let Err(e) = route_reads(gate, live, false).await {
                tracing::error!(keyspace, error = %e, "replica reads could not follow the switch");
            }
        }
        // Statements that still wait for the old shards (in transactions that began before)
        // must not run there any more.
        for e in &held {
            topo.backends.retire(keyspace, &e.shard);
        }
        release(&held);
        drop(hold);
        // The others have the new routing first: etcd sends its events in order.
        if let Some(shared) = shared {
            shared.end_switch(keyspace).await;
        }
        let stall = started.elapsed();
        for m in movers.drain(..) {
            m.stop().await;
        }
        live.update(|r| {
            r.stall_ms = Some(stall.as_millis() as u64);
            r.movers = back;
            r.next_movers.clear();
            match forward {
                true => {
                    r.state = State::Switched;
                    r.message = format!(
                        "the targets serve (statements held {} ms); their changes stream back \
                         to the sources: reverse goes back, complete drops the sources' tables",
                        stall.as_millis()
                    );
                }
                false => {
                    r.state = State::Reversed;
                    r.message = format!(
                        "the sources serve again (statements held {} ms); cancel drops the \
                         targets' tables",
                        stall.as_millis()
                    );
                }
            }
        });
        save(gate, live).await;
        tracing::warn!(keyspace, to = %serving.join(","), stall_ms = stall.as_millis() as u64, "switched");
        return match forward {
            true => setup.movers(live, to, from).await,
            false => Ok(Vec::new()),
        };
    }
    Err(format!(
        "no switch after {SWITCH_ATTEMPTS} attempts: {last}"
    ))
}
