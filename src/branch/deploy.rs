//! Deploy requests: a branch's schema changes, brought to main.
//!
//! Opening one compares, per keyspace, the branch's schema with main's and with main's when the
//! branch was made (three-way, [`schemadiff::three_way`]): the branch's changes laid over main
//! as it is now, as DDL ([`schemadiff::diff`]), with what they risk ([`schemadiff::lint`]), or
//! the changes of both sides that overlap, which keep it from deploying.
//!
//! Deploying runs new tables' `CREATE TABLE` on every shard, each `ALTER TABLE` as an online
//! migration (all of them copy and follow their tables, then cut over one after another once
//! all are ready), and then sets dropped tables aside under a name of the request's, so that a
//! revert can bring them back. Reverting, while the migrations keep their old tables, swaps
//! those back, restores dropped tables, and sets created ones aside.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::Executor as _;
use engine::{Collected, EngineError};
use schemadiff::{DdlKind, Schema, Severity};
use serde::{Deserialize, Serialize};

use super::{ident, refused, schema_of, store, MAIN};
use crate::gate::Gate;
use crate::sidecar::text;
use crate::topology::Topology;

/// One statement of a deploy request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Statement {
    pub keyspace: String,
    pub table: String,
    /// `create`, `alter` or `drop`.
    pub kind: String,
    pub sql: String,
}

/// One lint finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lint {
    /// `error` (the request cannot deploy) or `warning`.
    pub severity: String,
    pub keyspace: String,
    pub table: String,
    pub rule: String,
    pub message: String,
}

/// A deploy request, as recorded and as `deploy-request show` reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub id: u64,
    pub branch: String,
    pub into: String,
    /// `open`, `deploying`, `complete`, `reverted`, `closed` or `failed`.
    pub state: String,
    pub statements: Vec<Statement>,
    pub lint: Vec<Lint>,
    /// Changes made on main since the branch was made that overlap the branch's.
    pub conflicts: Vec<String>,
    /// The keyspaces' VSchemas it changes.
    #[serde(default)]
    pub vschema: Vec<super::fragment::Change>,
    /// The migrations that ran its ALTERs.
    #[serde(default)]
    pub migrations: Vec<String>,
    /// Tables it dropped or, reverted, created, kept aside: (keyspace, table, kept as).
    #[serde(default)]
    pub kept: Vec<(String, String, String)>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub age_secs: u64,
    /// Its migrations as they stand (filled in when it is shown, never recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<crate::migration::Summary>,
}

/// The deploys running here, by request number, with their branches.
#[derive(Default)]
pub(crate) struct Deploys(Mutex<BTreeMap<u64, String>>);

impl Deploys {
    pub(crate) fn running(&self, branch: &str) -> bool {
        self.0
            .lock()
            .expect("deploys")
            .values()
            .any(|b| b == branch)
    }
}

/// What a deploy would do now.
struct Plan {
    statements: Vec<Statement>,
    lint: Vec<Lint>,
    /// What keeps it from deploying.
    conflicts: Vec<String>,
    vschema: Vec<super::fragment::Change>,
}

impl Request {
    fn adopt(&mut self, plan: Plan) {
        self.statements = plan.statements;
        self.lint = plan.lint;
        self.conflicts = plan.conflicts;
        self.vschema = plan.vschema;
    }
}

/// The rows of `table` on every shard of `keyspace`.
async fn rows_of(main: &Topology, keyspace: &str, table: &str) -> Result<u64, EngineError> {
    let ks = main.vschema.keyspace(keyspace).expect("a keyspace of main");
    let mut total = 0;
    for shard in &ks.shards {
        let mut rows = Collected::default();
        let sql = format!("SELECT COUNT(*) FROM {}", ident(table));
        main.backends
            .execute(keyspace, &shard.name, &sql, &mut rows)
            .await?;
        total += rows
            .rows
            .first()
            .and_then(|r| text(&r[0]).parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

/// What a deploy of `branch` into main would do now: the statements and VSchema changes,
/// their lint, and the conflicts that keep it from deploying.
async fn plan(gate: &Gate, branch: &str) -> Result<Plan, EngineError> {
    let main = gate.topology();
    let record = store::branches(&main)
        .await?
        .into_iter()
        .find(|b| b.name == branch)
        .ok_or_else(|| refused(format!("no branch {branch}")))?;
    let serving = gate
        .branches
        .serving(branch)
        .ok_or_else(|| refused(format!("branch {branch} is not served here")))?;
    let (mut statements, mut lints, mut conflicts) = (Vec::new(), Vec::new(), Vec::new());
    let mut vschemas = Vec::new();
    for (keyspace, fragment) in &record.vschema.changed {
        let base = record
            .vschema
            .base
            .get(keyspace)
            .cloned()
            .unwrap_or_default();
        let now = super::fragment::main_vschema(gate.config_path(), keyspace)?;
        match super::fragment::three_way(keyspace, &base, &now, fragment) {
            Err(found) => conflicts.extend(found),
            Ok(None) => {}
            Ok(Some(change)) => {
                for table in &change.moved {
                    let rows = rows_of(&main, keyspace, table).await.unwrap_or(0);
                    if rows > 0 {
                        lints.push(Lint {
                            severity: "error".into(),
                            keyspace: keyspace.clone(),
                            table: table.clone(),
                            rule: "vindex-change".into(),
                            message: format!(
                                "changes the primary vindex of a table with {rows} rows: they \
                                 would no longer be on the shards it names (reshard instead)"
                            ),
                        });
                    }
                }
                statements.push(Statement {
                    keyspace: keyspace.clone(),
                    table: String::new(),
                    kind: "vschema".into(),
                    sql: change.lines.join("\n"),
                });
                vschemas.push(change);
            }
        }
    }
    for ks in main.vschema.keyspaces() {
        let texts = record.base.get(&ks.name).cloned().unwrap_or_default();
        let base = Schema::parse(texts.iter().map(String::as_str))
            .map_err(|e| refused(format!("the branch's recorded base: {e}")))?;
        let now = schema_of(&main, &ks.name).await?;
        let wanted = schema_of(&serving.topology, &ks.name).await?;
        let target = match schemadiff::three_way(&base, &now, &wanted) {
            Ok(target) => target,
            Err(found) => {
                conflicts.extend(found.iter().map(|c| format!("{}: {c}", ks.name)));
                continue;
            }
        };
        let ddl = schemadiff::diff(&now, &target);
        let context = lint_context(&main, &ks.name, &now, &ddl).await?;
        for finding in schemadiff::lint(&now, &target, &context) {
            lints.push(Lint {
                severity: match finding.severity {
                    Severity::Error => "error".into(),
                    Severity::Warning => "warning".into(),
                },
                keyspace: ks.name.clone(),
                table: finding.table,
                rule: finding.rule.into(),
                message: finding.message,
            });
        }
        statements.extend(ddl.into_iter().map(|d| {
            Statement {
                keyspace: ks.name.clone(),
                table: d.table,
                kind: match d.kind {
                    DdlKind::Create => "create",
                    DdlKind::Alter => "alter",
                    DdlKind::Drop => "drop",
                }
                .into(),
                sql: d.sql,
            }
        }));
    }
    Ok(Plan {
        statements,
        lint: lints,
        conflicts,
        vschema: vschemas,
    })
}

/// What the linter needs of keyspace `keyspace`: its vindexes, and the rows of the tables the
/// statements change or drop.
async fn lint_context(
    main: &Topology,
    keyspace: &str,
    now: &Schema,
    ddl: &[schemadiff::Ddl],
) -> Result<schemadiff::Context, EngineError> {
    let ks = main.vschema.keyspace(keyspace).expect("a keyspace of main");
    let mut context = schemadiff::Context::default();
    for (name, table) in &ks.tables {
        if let vschema::Table::Sharded { lookups, .. } = table {
            context.sharded.insert(name.clone());
            let columns = table.vindex_columns().into_iter().map(String::from);
            context
                .vindex_columns
                .insert(name.clone(), columns.collect());
            let unique = lookups
                .iter()
                .filter(|l| l.vindex.unique)
                .map(|l| l.columns.clone())
                .collect();
            context.unique_lookups.insert(name.clone(), unique);
        }
    }
    let changed: BTreeSet<&str> = ddl
        .iter()
        .filter(|d| d.kind != DdlKind::Create && now.tables.contains_key(&d.table))
        .map(|d| d.table.as_str())
        .collect();
    for table in changed {
        let rows = rows_of(main, keyspace, table).await?;
        context.rows.insert(table.to_string(), rows);
    }
    Ok(context)
}

async fn load(main: &Topology, id: u64) -> Result<Request, EngineError> {
    let record = store::requests(main, Some(id))
        .await?
        .pop()
        .ok_or_else(|| refused(format!("no deploy request {id}")))?;
    let mut request: Request = serde_json::from_str(&record.body)
        .map_err(|e| refused(format!("deploy request {id} as recorded: {e}")))?;
    request.id = record.id;
    request.age_secs = record.age_secs;
    Ok(request)
}

async fn save(main: &Topology, request: &Request) -> Result<(), EngineError> {
    let mut request = request.clone();
    request.progress.clear();
    let body = serde_json::to_string(&request).expect("a request serialises");
    store::save_request(main, request.id, &body).await
}

/// `deploy-request create <branch>`: the diff, lint and conflicts, recorded.
pub async fn create(gate: &Gate, branch: &str) -> Result<Request, EngineError> {
    let plan = plan(gate, branch).await?;
    if plan.statements.is_empty() && plan.conflicts.is_empty() {
        return Err(refused(format!(
            "branch {branch} has no schema changes to deploy"
        )));
    }
    let main = gate.topology();
    let mut request = Request {
        id: 0,
        branch: branch.to_string(),
        into: MAIN.into(),
        state: "open".into(),
        statements: Vec::new(),
        lint: Vec::new(),
        conflicts: Vec::new(),
        vschema: Vec::new(),
        migrations: Vec::new(),
        kept: Vec::new(),
        message: String::new(),
        age_secs: 0,
        progress: Vec::new(),
    };
    request.adopt(plan);
    let body = serde_json::to_string(&request).expect("a request serialises");
    request.id = store::new_request(&main, &body).await?;
    Ok(request)
}

/// Every deploy request, oldest first, with its migrations' progress.
pub async fn list(gate: &Gate) -> Result<Vec<Request>, EngineError> {
    let main = gate.topology();
    let migrations = gate.migrations.list(&main, None).await?;
    let mut out = Vec::new();
    for record in store::requests(&main, None).await? {
        if let Ok(mut request) = serde_json::from_str::<Request>(&record.body) {
            request.id = record.id;
            request.age_secs = record.age_secs;
            request.progress = migrations
                .iter()
                .filter(|m| request.migrations.contains(&m.id))
                .map(|m| m.summary())
                .collect();
            out.push(request);
        }
    }
    Ok(out)
}

pub async fn show(gate: &Gate, id: u64) -> Result<Request, EngineError> {
    list(gate)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| refused(format!("no deploy request {id}")))
}

/// `deploy-request close <n>`: an open request is set aside.
pub async fn close(gate: &Gate, id: u64) -> Result<Request, EngineError> {
    let main = gate.topology();
    let mut request = load(&main, id).await?;
    if request.state != "open" {
        return Err(refused(format!(
            "closing deploy request {id}, which is {}",
            request.state
        )));
    }
    request.state = "closed".into();
    save(&main, &request).await?;
    Ok(request)
}

/// `deploy <n>`: checks the request again against main as it is now and starts deploying it;
/// `deploy-request show` follows it.
pub async fn deploy(gate: &Arc<Gate>, id: u64) -> Result<Request, EngineError> {
    let main = gate.topology();
    let mut request = load(&main, id).await?;
    if request.state != "open" {
        return Err(refused(format!(
            "deploying deploy request {id}, which is {}",
            request.state
        )));
    }
    // Main may have changed since the request was opened.
    request.adopt(plan(gate, &request.branch).await?);
    if !request.conflicts.is_empty() {
        save(&main, &request).await?;
        return Err(refused(format!(
            "deploy request {id} conflicts with main: {}",
            request.conflicts.join("; ")
        )));
    }
    if !request.vschema.is_empty() && gate.shares_topology() {
        // The state file is one proxy's; etcd's keyspaces come from the config.
        return Err(refused(
            "a VSchema change in a deploy with several proxies ([topology] etcd)",
        ));
    }
    if let Some(error) = request.lint.iter().find(|l| l.severity == "error") {
        save(&main, &request).await?;
        return Err(refused(format!(
            "deploy request {id}: {}.{}: {}",
            error.keyspace, error.table, error.message
        )));
    }
    {
        let mut running = gate.branches.deploys.0.lock().expect("deploys");
        if !running.is_empty() {
            return Err(refused("a deploy while another one runs"));
        }
        running.insert(id, request.branch.clone());
    }
    request.state = "deploying".into();
    save(&main, &request).await?;
    let shown = request.clone();
    drive(gate.clone(), request, false);
    Ok(shown)
}

/// The migrations of the deploys a stopped proxy left running: they resume without cutting
/// over, as the deploy's own (see [`resume`]).
pub async fn deploying_migrations(gate: &Gate) -> Result<HashSet<String>, EngineError> {
    Ok(list(gate)
        .await?
        .into_iter()
        .filter(|r| r.state == "deploying")
        .flat_map(|r| r.migrations)
        .collect())
}

/// Goes on with the deploys a stopped proxy left running (at start-up, after the migrations
/// resumed).
pub async fn resume(gate: &Arc<Gate>) -> Result<usize, EngineError> {
    let mut resumed = 0;
    for request in list(gate)
        .await?
        .into_iter()
        .filter(|r| r.state == "deploying")
    {
        let running = gate
            .branches
            .deploys
            .0
            .lock()
            .expect("deploys")
            .contains_key(&request.id);
        if running {
            continue;
        }
        tracing::info!(
            id = request.id,
            branch = request.branch,
            "resuming a deploy"
        );
        gate.branches
            .deploys
            .0
            .lock()
            .expect("deploys")
            .insert(request.id, request.branch.clone());
        drive(gate.clone(), request, true);
        resumed += 1;
    }
    Ok(resumed)
}

/// Runs a deploy (registered in [`Deploys`]) to its end in a task of its own, and records how
/// it ended. `resumed`: a stopped proxy began it.
fn drive(gate: Arc<Gate>, mut request: Request, resumed: bool) {
    let id = request.id;
    tokio::spawn(async move {
        let started = Instant::now();
        let outcome = run(&gate, &mut request, resumed).await;
        match outcome {
            Ok(()) => {
                request.state = "complete".into();
                request.message = format!("deployed in {} ms", started.elapsed().as_millis());
            }
            Err(why) => {
                tracing::warn!(id, why, "a deploy failed");
                request.state = "failed".into();
                request.message = why;
            }
        }
        let main = gate.topology();
        main.forget_columns(main.vschema.keyspaces().map(|k| k.name.as_str()));
        gate.plans.clear();
        if let Err(e) = save(&main, &request).await {
            tracing::error!(id, error = %e, "could not record how a deploy ended");
        }
        gate.branches.deploys.0.lock().expect("deploys").remove(&id);
    });
}

/// How often a deploy looks at its migrations.
const POLL: Duration = Duration::from_millis(200);

/// Runs `sql` on every shard of keyspace `keyspace` of main.
async fn on_every_shard(main: &Topology, keyspace: &str, sql: &str) -> Result<(), String> {
    let ks = main
        .vschema
        .keyspace(keyspace)
        .ok_or_else(|| format!("no keyspace {keyspace}"))?;
    for shard in &ks.shards {
        main.backends
            .execute(keyspace, &shard.name, sql, &mut engine::NoRows)
            .await
            .map_err(|e| format!("{keyspace}/{}: {sql}: {e}", shard.name))?;
    }
    Ok(())
}

/// The name a table of request `id` is set aside under (dropped, or created and reverted).
fn aside(id: u64, table: &str) -> String {
    format!("_sg_dr{id}_{table}")
}

/// Runs a request's statements on main. When it fails, the tables it made are set aside. A
/// resumed deploy makes only the tables not made yet, and submits only the ALTERs it has no
/// migration for.
async fn run(gate: &Arc<Gate>, request: &mut Request, resumed: bool) -> Result<(), String> {
    let main = gate.topology();
    let statements = request.statements.clone();
    let creates: Vec<&Statement> = statements.iter().filter(|s| s.kind == "create").collect();
    let mut made = Vec::new();
    let mut outcome = Ok(());
    for s in &creates {
        let sql = match resumed {
            true => if_not_exists(&s.sql)?,
            false => s.sql.clone(),
        };
        outcome = on_every_shard(&main, &s.keyspace, &sql).await;
        if outcome.is_err() {
            break;
        }
        made.push(*s);
    }
    if outcome.is_ok() {
        outcome = migrate(gate, &main, request).await;
    }
    if outcome.is_err() {
        for s in made {
            let sql = format!(
                "RENAME TABLE {} TO {}",
                ident(&s.table),
                ident(&aside(request.id, &s.table))
            );
            if let Err(e) = on_every_shard(&main, &s.keyspace, &sql).await {
                tracing::error!(
                    error = e,
                    "a failed deploy could not set a table it made aside"
                );
            }
        }
    }
    outcome
}

/// `CREATE TABLE` text as `CREATE TABLE IF NOT EXISTS`, rendered from the AST.
fn if_not_exists(sql: &str) -> Result<String, String> {
    use sqlparser::ast::Statement as Sql;
    let mut parsed =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, sql)
            .map_err(|e| format!("{sql}: {e}"))?;
    match parsed.pop() {
        Some(Sql::CreateTable(mut create)) => {
            create.if_not_exists = true;
            Ok(Sql::CreateTable(create).to_string())
        }
        _ => Err(format!("not a CREATE TABLE: {sql}")),
    }
}

/// A request's ALTERs as migrations cut over once all are ready, then its drops and VSchemas.
async fn migrate(gate: &Arc<Gate>, main: &Topology, request: &mut Request) -> Result<(), String> {
    let statements = request.statements.clone();
    // A resumed deploy has migrations for its first ALTERs, in order.
    let submitted = request.migrations.len();
    for s in statements
        .iter()
        .filter(|s| s.kind == "alter")
        .skip(submitted)
    {
        let parsed =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, &s.sql)
                .map_err(|e| format!("{}: {e}", s.sql))?;
        let migration = gate
            .migrations
            .submit_with(gate, &s.keyspace, &parsed[0], &s.sql, false)
            .await
            .map_err(|e| format!("{}: {e}", s.sql))?;
        request.migrations.push(migration);
    }
    let _ = save(main, request).await;
    // Every migration ready before any cuts over.
    let ids = request.migrations.clone();
    let ended = |state: &str| matches!(state, "failed" | "cancelled" | "gone");
    loop {
        let mut ready = 0;
        for id in &ids {
            let state = gate
                .migrations
                .state(main, id)
                .await
                .map_err(|e| e.to_string())?;
            if ended(&state) {
                for other in &ids {
                    let _ = gate.migrations.cancel(gate, other).await;
                }
                return Err(format!("migration {id} {state}; the others were cancelled"));
            }
            ready += usize::from(gate.migrations.waiting(id) || state == "complete");
        }
        if ready == ids.len() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    for id in &ids {
        gate.migrations.cut_over_now(id);
    }
    for id in &ids {
        loop {
            let state = gate
                .migrations
                .state(main, id)
                .await
                .map_err(|e| e.to_string())?;
            if state == "complete" {
                break;
            }
            if ended(&state) {
                return Err(format!("migration {id} {state} at its cut-over"));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    for s in statements.iter().filter(|s| s.kind == "drop") {
        let kept = aside(request.id, &s.table);
        let sql = format!("RENAME TABLE {} TO {}", ident(&s.table), ident(&kept));
        on_every_shard(main, &s.keyspace, &sql).await?;
        request
            .kept
            .push((s.keyspace.clone(), s.table.clone(), kept));
    }
    let vschemas: Vec<(String, String)> = request
        .vschema
        .iter()
        .map(|c| (c.keyspace.clone(), c.after.clone()))
        .collect();
    set_vschemas(gate, &vschemas).map_err(|e| e.to_string())
}

/// Records keyspaces' VSchemas beside the config and serves them.
fn set_vschemas(gate: &Gate, vschemas: &[(String, String)]) -> Result<(), EngineError> {
    if vschemas.is_empty() {
        return Ok(());
    }
    let config = gate
        .config_path()
        .ok_or_else(|| refused("VSchema changes on a proxy started without a config file"))?;
    for (keyspace, fragment) in vschemas {
        vschema::record_vschema(config, keyspace, Some(fragment))
            .map_err(|e| refused(e.to_string()))?;
    }
    gate.reload(config).map_err(|e| refused(e.to_string()))
}

/// `deploy-request revert <n>`: main's schema as before the deploy, its rows kept.
pub async fn revert(gate: &Arc<Gate>, id: u64) -> Result<Request, EngineError> {
    let main = gate.topology();
    let mut request = load(&main, id).await?;
    if request.state != "complete" {
        return Err(refused(format!(
            "reverting deploy request {id}, which is {}",
            request.state
        )));
    }
    // The migrations first: a revert past a migration's retention fails before anything moved.
    for (i, migration) in request.migrations.iter().enumerate().rev() {
        if let Err(e) = gate.migrations.revert(migration).await {
            let done = &request.migrations[i + 1..];
            request.message = format!(
                "revert: migration {migration}: {e}{}",
                match done.is_empty() {
                    true => String::new(),
                    false => format!(" (reverted already: {})", done.join(", ")),
                }
            );
            save(&main, &request).await?;
            return Err(refused(format!("deploy request {id}: {}", request.message)));
        }
    }
    let vschemas: Vec<(String, String)> = request
        .vschema
        .iter()
        .map(|c| (c.keyspace.clone(), c.before.clone()))
        .collect();
    set_vschemas(gate, &vschemas)?;
    let mut renames = Vec::new();
    for (keyspace, table, kept) in &request.kept {
        renames.push((keyspace.clone(), kept.clone(), table.clone()));
    }
    let mut kept = Vec::new();
    for s in request.statements.iter().filter(|s| s.kind == "create") {
        renames.push((s.keyspace.clone(), s.table.clone(), aside(id, &s.table)));
        kept.push((s.keyspace.clone(), s.table.clone(), aside(id, &s.table)));
    }
    for (keyspace, from, to) in renames {
        let sql = format!("RENAME TABLE {} TO {}", ident(&from), ident(&to));
        on_every_shard(&main, &keyspace, &sql)
            .await
            .map_err(refused)?;
    }
    main.forget_columns(main.vschema.keyspaces().map(|k| k.name.as_str()));
    gate.plans.clear();
    request.kept = kept;
    request.state = "reverted".into();
    save(&main, &request).await?;
    Ok(request)
}
