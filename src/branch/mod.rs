//! Schema branches: a copy of every keyspace's tables in databases of their own beside main's
//! on each shard's primary (`<database>__<branch>`), served through the same proxy to users
//! issued for the branch. Their sessions see the branch's databases under the keyspaces' usual
//! names, with main's VSchema or the branch's own ([`fragment`]), and run DDL directly (nobody
//! serves traffic from a branch). A deploy request ([`deploy`]) brings a branch's schema and
//! VSchema changes to main, the schema's as online migrations.
//!
//! Main can be marked production: then DDL sent to main directly is refused, and deploy
//! requests are the way to change its schema.

mod copy;
pub mod deploy;
pub mod fragment;
mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use engine::Executor as _;
use engine::{Collected, EngineError};
use schemadiff::Schema;
use serde::Serialize;

use crate::gate::Gate;
use crate::plan_cache::PlanCache;
use crate::sidecar::text;
use crate::topology::Topology;

pub use copy::Data;

/// The name main goes by in deploy requests.
pub const MAIN: &str = "main";

/// A branch served here: its topology (main's keyspaces on the branch's databases) and plans.
pub struct Serving {
    pub name: String,
    pub topology: Arc<Topology>,
    pub plans: PlanCache,
    /// The keyspace VSchemas the branch changed, that `topology` serves.
    vschemas: BTreeMap<String, String>,
}

/// A user issued for a branch.
struct BranchUser {
    branch: String,
    credential: frontend::Credential,
}

/// The branches this proxy serves and their users.
pub struct Branches {
    serving: DashMap<String, Arc<Serving>>,
    users: DashMap<String, BranchUser>,
    production: AtomicBool,
    /// One creation, deletion or VSchema change at a time (deploys: [`deploy::Deploys`]).
    busy: tokio::sync::Mutex<()>,
    plan_cache_size: usize,
    pub(crate) deploys: deploy::Deploys,
}

/// A user and password for a branch, as `branch create` and `branch password` print them.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Credentials {
    pub branch: String,
    pub user: String,
    pub password: String,
}

/// A branch as `branch list` and `branch show` report it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Info {
    pub name: String,
    pub parent: String,
    pub data: String,
    pub age_secs: u64,
    pub users: Vec<String>,
    /// Per keyspace, the branch's tables.
    pub tables: BTreeMap<String, Vec<String>>,
}

fn refused(why: impl std::fmt::Display) -> EngineError {
    EngineError::Unsupported(why.to_string())
}

/// A branch name: lower-case letters, digits, `-` and `_`, starting with a letter, at most 32.
fn check_name(name: &str) -> Result<(), EngineError> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name != MAIN;
    match ok {
        true => Ok(()),
        false => Err(refused(format!(
            "{name:?} as a branch name (lower-case letters, digits, - and _, starting with a \
             letter, at most 32; not {MAIN})"
        ))),
    }
}

/// `name` as a quoted identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The tables of `keyspace` as its first shard describes them (the proxy's own and migrations'
/// shadow tables left out).
pub(crate) async fn schema_of(topo: &Topology, keyspace: &str) -> Result<Schema, EngineError> {
    let ks = topo
        .vschema
        .keyspace(keyspace)
        .ok_or_else(|| EngineError::UnknownKeyspace(keyspace.to_string()))?;
    let shard = &ks.shards[0].name;
    let mut tables = Collected::default();
    let list = "SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'";
    topo.backends
        .execute(keyspace, shard, list, &mut tables)
        .await?;
    let mut texts = Vec::new();
    for row in &tables.rows {
        let name = text(&row[0]);
        if name.starts_with("shardgate_") || name.starts_with("_sg_") {
            continue;
        }
        let mut create = Collected::default();
        let sql = format!("SHOW CREATE TABLE {}", ident(&name));
        topo.backends
            .execute(keyspace, shard, &sql, &mut create)
            .await?;
        if let Some(row) = create.rows.first() {
            texts.push(text(&row[1]));
        }
    }
    Schema::parse(texts.iter().map(String::as_str)).map_err(|e| refused(e.to_string()))
}

/// A random string of `n` letters and digits.
fn random(n: usize) -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Branches {
    pub fn new(plan_cache_size: usize) -> Branches {
        Branches {
            serving: DashMap::new(),
            users: DashMap::new(),
            production: AtomicBool::new(false),
            busy: tokio::sync::Mutex::new(()),
            plan_cache_size,
            deploys: deploy::Deploys::default(),
        }
    }

    /// The password check of a user of a branch served here.
    pub fn credential(&self, user: &str) -> Option<frontend::Credential> {
        let u = self.users.get(user)?;
        self.serving
            .contains_key(&u.branch)
            .then(|| u.credential.clone())
    }

    /// The branch a user's sessions are served from; `None` for main's users.
    pub fn serving_for(&self, user: &str) -> Option<Arc<Serving>> {
        let branch = self.users.get(user)?.branch.clone();
        self.serving.get(&branch).map(|s| s.clone())
    }

    /// Whether main is production: its schema changes only through deploy requests.
    pub fn production(&self) -> bool {
        self.production.load(Ordering::Relaxed)
    }

    /// Marks main production (or not), for every proxy that loads the state.
    pub async fn set_production(&self, gate: &Gate, on: bool) -> Result<(), EngineError> {
        let topo = gate.topology();
        store::ensure_tables(&topo).await?;
        store::set_setting(&topo, "production", if on { "1" } else { "0" }).await?;
        self.production.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Serves the branches and users recorded in the sidecar, as they are now: at start-up,
    /// and every few seconds after, so that branches another proxy made are served here too.
    /// How many branches there are.
    pub async fn load(&self, gate: &Gate) -> Result<usize, EngineError> {
        let topo = gate.topology();
        if crate::sidecar::home(&topo.vschema, "").is_err() {
            return Ok(0);
        }
        let on = store::setting(&topo, "production").await?;
        self.production
            .store(on.as_deref() == Some("1"), Ordering::Relaxed);
        let branches = store::branches(&topo).await?;
        let users = store::users(&topo).await?;
        for branch in &branches {
            let current = self.serving(&branch.name);
            if current.is_some_and(|s| s.vschemas == branch.vschema.changed) {
                continue;
            }
            if let Err(e) = self.serve(gate, &branch.name, &branch.vschema.changed) {
                tracing::warn!(branch = branch.name, error = %e, "a branch's VSchema no longer applies; serving main's");
                self.serve(gate, &branch.name, &BTreeMap::new())?;
            }
        }
        self.serving
            .retain(|name, _| branches.iter().any(|b| b.name == *name));
        self.users
            .retain(|name, _| users.iter().any(|(u, _, _)| u == name));
        for (user, branch, hash) in users {
            if let Some(hash) = vschema::parse_native_hash(&hash) {
                let credential = frontend::Credential::NativeHash(hash);
                self.users.insert(user, BranchUser { branch, credential });
            }
        }
        Ok(branches.len())
    }

    /// Serves branch `name`: main's keyspaces (with the VSchemas the branch `changed`) on the
    /// branch's databases.
    fn serve(
        &self,
        gate: &Gate,
        name: &str,
        changed: &BTreeMap<String, String>,
    ) -> Result<Arc<Serving>, EngineError> {
        let mut vschema = (*gate.topology().vschema).clone();
        for (keyspace, fragment) in changed {
            let config = gate
                .config_path()
                .ok_or_else(|| refused("a branch's VSchema without a config file"))?;
            vschema = fragment::with_fragment(config, &vschema, keyspace, fragment)?;
        }
        let vschema = Arc::new(vschema.for_branch(name));
        let topology = Arc::new(Topology::new(
            vschema.clone(),
            backend::Backends::new(&vschema),
            &gate.metrics.shard_queries,
            &gate.metrics.shard_seconds,
        ));
        let serving = Arc::new(Serving {
            name: name.to_string(),
            topology,
            plans: PlanCache::new(self.plan_cache_size),
            vschemas: changed.clone(),
        });
        self.serving.insert(name.to_string(), serving.clone());
        Ok(serving)
    }

    /// Keyspace `keyspace`'s VSchema on branch `name` (TOML: its `vindexes` and `tables`).
    pub async fn vschema(
        &self,
        gate: &Gate,
        name: &str,
        keyspace: &str,
    ) -> Result<String, EngineError> {
        let branch = self.record(gate, name).await?;
        match branch.vschema.changed.get(keyspace) {
            Some(fragment) => Ok(fragment.clone()),
            None => fragment::main_vschema(gate.config_path(), keyspace),
        }
    }

    /// `branch vschema --file`: keyspace `keyspace`'s VSchema on branch `name` is `fragment`
    /// from now on (validated as the config's `vindexes` and `tables` would be).
    pub async fn set_vschema(
        &self,
        gate: &Gate,
        name: &str,
        keyspace: &str,
        fragment: &str,
    ) -> Result<(), EngineError> {
        let _one = self.busy.lock().await;
        let mut branch = self.record(gate, name).await?;
        fragment::entries(fragment)?;
        branch
            .vschema
            .changed
            .insert(keyspace.to_string(), fragment.to_string());
        // Refused here, before it is recorded, if it does not apply.
        self.serve(gate, name, &branch.vschema.changed)?;
        store::save_vschemas(&gate.topology(), name, &branch.vschema).await
    }

    async fn record(&self, gate: &Gate, name: &str) -> Result<store::BranchRecord, EngineError> {
        store::branches(&gate.topology())
            .await?
            .into_iter()
            .find(|b| b.name == name)
            .ok_or_else(|| refused(format!("no branch {name}")))
    }

    /// `branch create`: the branch's databases on every shard with main's tables (and rows, as
    /// `data` says), and its first user.
    pub async fn create(
        &self,
        gate: &Gate,
        name: &str,
        data: Data,
    ) -> Result<Credentials, EngineError> {
        check_name(name)?;
        let _one = self.busy.lock().await;
        let main = gate.topology();
        store::ensure_tables(&main).await?;
        if store::branches(&main).await?.iter().any(|b| b.name == name) {
            return Err(refused(format!("branch {name} exists already")));
        }
        let mut base = BTreeMap::new();
        let mut vschemas = store::VSchemas::default();
        for ks in main.vschema.keyspaces() {
            base.insert(ks.name.clone(), schema_of(&main, &ks.name).await?);
            // Without a config file, the VSchema cannot change on the branch.
            if let Ok(fragment) = fragment::main_vschema(gate.config_path(), &ks.name) {
                vschemas.base.insert(ks.name.clone(), fragment);
            }
        }
        let made = self.make(gate, &main, name, &base, data).await;
        if let Err(e) = made {
            // Nothing half made stays.
            drop_databases(&main, name).await;
            self.serving.remove(name);
            return Err(e);
        }
        let record = store::BranchRecord {
            name: name.to_string(),
            data: data.name().to_string(),
            base: base
                .iter()
                .map(|(ks, s)| {
                    (
                        ks.clone(),
                        s.tables.values().map(|t| t.create.clone()).collect(),
                    )
                })
                .collect(),
            vschema: vschemas,
            age_secs: 0,
        };
        store::save_branch(&main, &record).await?;
        tracing::info!(branch = name, data = data.name(), "branch created");
        self.issue(&main, name).await
    }

    async fn make(
        &self,
        gate: &Gate,
        main: &Topology,
        name: &str,
        base: &BTreeMap<String, Schema>,
        data: Data,
    ) -> Result<(), EngineError> {
        for ks in main.vschema.keyspaces() {
            for shard in &ks.shards {
                let db = vschema::branch_database(&shard.primary.database, name);
                if db.len() > 64 {
                    return Err(refused(format!("database {db}: longer than 64 characters")));
                }
                let sql = format!("CREATE DATABASE {}", ident(&db));
                main.backends
                    .execute(&ks.name, &shard.name, &sql, &mut engine::NoRows)
                    .await?;
            }
        }
        let serving = self.serve(gate, name, &BTreeMap::new())?;
        let branch = &serving.topology;
        for ks in main.vschema.keyspaces() {
            let creates = schemadiff::diff(&Schema::default(), &base[&ks.name]);
            for shard in &ks.shards {
                for ddl in &creates {
                    branch
                        .backends
                        .execute(&ks.name, &shard.name, &ddl.sql, &mut engine::NoRows)
                        .await?;
                }
            }
        }
        copy::rows(main, name, base, data).await
    }

    /// A new user and password for branch `name`.
    async fn issue(&self, topo: &Topology, name: &str) -> Result<Credentials, EngineError> {
        let user = format!("{name}-{}", random(8).to_ascii_lowercase());
        let password = format!("sgpw_{}", random(32));
        let hash = frontend::native_password_hash(&password);
        store::save_user(topo, &user, name, &hash).await?;
        let credential = frontend::Credential::NativeHash(
            vschema::parse_native_hash(&hash).expect("a hash made here parses"),
        );
        self.users.insert(
            user.clone(),
            BranchUser {
                branch: name.to_string(),
                credential,
            },
        );
        Ok(Credentials {
            branch: name.to_string(),
            user,
            password,
        })
    }

    /// `branch password`: another user for an existing branch.
    pub async fn password(&self, gate: &Gate, name: &str) -> Result<Credentials, EngineError> {
        if !self.serving.contains_key(name) {
            return Err(refused(format!("no branch {name}")));
        }
        self.issue(&gate.topology(), name).await
    }

    /// `branch delete`: its databases dropped on every shard, its users gone.
    pub async fn delete(&self, gate: &Gate, name: &str) -> Result<(), EngineError> {
        let _one = self.busy.lock().await;
        let main = gate.topology();
        if !store::branches(&main).await?.iter().any(|b| b.name == name) {
            return Err(refused(format!("no branch {name}")));
        }
        if self.deploys.running(name) {
            return Err(refused(format!("deleting branch {name} while it deploys")));
        }
        store::delete_branch(&main, name).await?;
        self.users.retain(|_, u| u.branch != name);
        self.serving.remove(name);
        drop_databases(&main, name).await;
        tracing::info!(branch = name, "branch deleted");
        Ok(())
    }

    /// Every branch, oldest first.
    pub async fn list(&self, gate: &Gate) -> Result<Vec<Info>, EngineError> {
        let main = gate.topology();
        let users = store::users(&main).await?;
        let mut out = Vec::new();
        for branch in store::branches(&main).await? {
            let mut tables = BTreeMap::new();
            if let Some(serving) = self.serving.get(&branch.name).map(|s| s.clone()) {
                for ks in main.vschema.keyspaces() {
                    let schema = schema_of(&serving.topology, &ks.name).await?;
                    tables.insert(ks.name.clone(), schema.tables.into_keys().collect());
                }
            }
            out.push(Info {
                users: users
                    .iter()
                    .filter(|(_, b, _)| *b == branch.name)
                    .map(|(u, _, _)| u.clone())
                    .collect(),
                name: branch.name,
                parent: MAIN.into(),
                data: branch.data,
                age_secs: branch.age_secs,
                tables,
            });
        }
        Ok(out)
    }

    pub(crate) fn serving(&self, name: &str) -> Option<Arc<Serving>> {
        self.serving.get(name).map(|s| s.clone())
    }
}

/// Drops branch `name`'s databases on every shard (best effort: what is not there is fine).
async fn drop_databases(main: &Topology, name: &str) {
    for ks in main.vschema.keyspaces() {
        for shard in &ks.shards {
            let db = vschema::branch_database(&shard.primary.database, name);
            let sql = format!("DROP DATABASE IF EXISTS {}", ident(&db));
            if let Err(e) = main
                .backends
                .execute(&ks.name, &shard.name, &sql, &mut engine::NoRows)
                .await
            {
                tracing::warn!(database = db, error = %e, "could not drop a branch's database");
            }
        }
    }
}
