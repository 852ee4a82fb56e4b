//! Plans: the plan cache (normalised statements bound to cached templates), planning from
//! the text, and the result columns COM_STMT_PREPARE describes.

use std::time::Instant;

use engine::{Column, Plan};
use frontend::{ResultWriter, SqlError};
use planner::{Literal, Normalized};
use sqlparser::ast::{SetExpr, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use tracing::debug;

use crate::error;
use crate::plan_cache::Cached;
use crate::prepared::ShardPrepared;
use crate::session::ReadTarget;

use super::dispatch::{split_share_lock, with_share_lock};
use super::{CacheMiss, GateSession, StatementError};

impl GateSession {
    /// A normalised statement: its cached plan bound to `literals`, or else the statement planned
    /// from its text (`sql`, or the template with the literals spliced in), and the cache taught.
    pub(super) async fn normalized(
        &mut self,
        n: &Normalized,
        literals: Vec<Literal>,
        sql: Option<&str>,
        params: Option<Vec<frontend::Param>>,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let keyspace = self.session.keyspace.as_deref().unwrap_or("");
        let mut key = String::with_capacity(n.text.len() + 1 + keyspace.len());
        key.push_str(&n.text);
        key.push('\0');
        key.push_str(keyspace);
        let started = Instant::now();
        self.replica_read = match self.session.read_target {
            ReadTarget::Primary => None,
            target => (self.tx.is_none() && replica_may_answer(&n.text))
                .then_some(target == ReadTarget::Replica),
        };
        // A reshard may have sent the replica reads of a keyspace to its targets.
        if self.replica_read.is_some() && self.branch.is_none() {
            self.reading = self.gate.reshards.read_routing();
            if let Some(reading) = &self.reading {
                self.topo = reading.topology.clone();
            }
        }
        let result = self.normalized_on(n, key, literals, sql, params, out).await;
        self.replica_read = None;
        if self.reading.take().is_some() {
            self.topo = self.current_topology();
        }
        self.gate
            .activity
            .record_statement(&n.text, started.elapsed());
        result
    }

    async fn normalized_on(
        &mut self,
        n: &Normalized,
        key: String,
        literals: Vec<Literal>,
        sql: Option<&str>,
        params: Option<Vec<frontend::Param>>,
        out: &mut ResultWriter<'_>,
    ) -> Result<(), StatementError> {
        let cached = self.plans().get(&key);
        if let Some(Cached::Template(template)) = cached.as_deref() {
            if let Some(plan) = planner::bind(template, &literals, &self.topo.vschema) {
                self.plans().hit();
                self.ensure_transaction();
                self.shard_prepared = params
                    .and_then(|params| ShardPrepared::new(&plan, template, n, &literals, params));
                let result = self.run(&plan, out, None).await;
                self.shard_prepared = None;
                return result;
            }
        }
        self.plans().miss();
        let text = match sql {
            Some(sql) => std::borrow::Cow::Borrowed(sql),
            None => std::borrow::Cow::Owned(
                planner::substitute(&n.text, &literals).ok_or_else(error::wrong_arguments)?,
            ),
        };
        let learn = cached.is_none().then_some(CacheMiss {
            key,
            template: &n.text,
            literals: &literals,
        });
        Box::pin(self.parsed_statement(&text, out, learn)).await
    }

    /// Teaches the plan cache the template of a statement just planned from its text: kept only
    /// if, bound to this statement's literals, it gives the very plan the text gave.
    pub(super) fn learn(&self, learn: CacheMiss<'_>, stmt: &Statement, plan: &Plan) {
        let cacheable = match stmt {
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => true,
            // SQL_CALC_FOUND_ROWS takes the planned path, which counts the rows.
            Statement::Query(q) => {
                matches!(q.body.as_ref(), SetExpr::Select(s) if !s.from.is_empty())
                    && !super::dispatch::calc_found_rows(stmt)
            }
            _ => false,
        };
        let template = cacheable
            .then(|| {
                let (text, share_lock) = split_share_lock(learn.template);
                let parsed = Parser::parse_sql(&MySqlDialect {}, text).ok()?;
                let [stmt] = parsed.as_slice() else {
                    return None;
                };
                let catalog = self.topo.catalog.load_full();
                let ctx = self.context(&catalog);
                let template = planner::plan(stmt, text, &ctx).ok()?;
                if share_lock {
                    with_share_lock(template).ok()
                } else {
                    Some(template)
                }
            })
            .flatten()
            .filter(|t| {
                planner::bind(t, learn.literals, &self.topo.vschema).as_ref() == Some(plan)
            });
        debug!(
            template = learn.template,
            cached = template.is_some(),
            "plan cache miss"
        );
        self.plans().insert(
            learn.key,
            template.map_or(Cached::Uncacheable, |t| Cached::Template(Box::new(t))),
        );
    }

    /// The result columns of a statement being prepared, as a shard describes them; none for
    /// statements without a result or that cannot be described before they run.
    pub(super) async fn describe(&self, sql: &str) -> Result<Vec<Column>, SqlError> {
        let text = split_share_lock(sql).0;
        let parsed = match Parser::parse_sql(&MySqlDialect {}, text) {
            Ok(parsed) => parsed,
            // A query or write the parser refuses would fail at every execution: fail the
            // prepare, as MySQL does. Other statements are left to their execution.
            Err(e) if planner::normalize(sql, true).is_some() => {
                return Err(error::unparsed(sql, e))
            }
            Err(_) => return Ok(Vec::new()),
        };
        let [stmt] = parsed.as_slice() else {
            return Ok(Vec::new());
        };
        let catalog = self.topo.catalog.load_full();
        let ctx = self.context(&catalog);
        let (keyspace, query) = match planner::metadata_target(stmt, text, &ctx) {
            Ok(Some(target)) => target,
            Ok(None) | Err(planner::PlanError::NoDatabase) => return Ok(Vec::new()),
            Err(e @ planner::PlanError::Unsupported(_)) => {
                let planned = match self.plan_statement(stmt, text).await {
                    Ok(plan) => Ok(plan),
                    // A parameter the proxy itself would evaluate (a join condition across
                    // shards): planned with 0 in its place, since the columns of the result
                    // do not depend on its value.
                    Err(_) => self.plan_text(&with_zeros(text)).await,
                };
                match planned {
                    // A join across shards: each side describes its own columns.
                    Ok(Plan::Join(join)) => return self.describe_join(&join).await,
                    // information_schema: its (first) database's query.
                    Ok(Plan::Route(r)) => (r.keyspace, r.query),
                    Ok(Plan::Concat(mut parts)) if !parts.is_empty() => {
                        let r = parts.swap_remove(0);
                        (r.keyspace, r.query)
                    }
                    _ => return Err(error::from_plan(e)),
                }
            }
            Err(e) => return Err(error::from_plan(e)),
        };
        let shard = match &self.session.target_shard {
            Some(shard) => shard.clone(),
            None => match self.topo.vschema.keyspace(&keyspace) {
                Some(ks) => ks.shards[0].name.clone(),
                None => return Ok(Vec::new()),
            },
        };
        self.topo
            .backends
            .describe(&keyspace, &shard, &query)
            .await
            .map_err(|e| error::from_engine(&e))
    }

    /// The columns of a join across shards: its left query's and its right query's, as their
    /// keyspaces' first shards describe them.
    /// (Boxed: a join's left side may be a join.)
    pub(super) fn describe_join<'a>(
        &'a self,
        join: &'a engine::Join,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<Column>, SqlError>> + Send + 'a>,
    > {
        Box::pin(async move {
            let first_shard = |keyspace: &str| {
                self.topo
                    .vschema
                    .keyspace(keyspace)
                    .map(|k| k.shards[0].name.clone())
                    .ok_or_else(|| error::unknown_database(keyspace))
            };
            let describe = |keyspace: String, query: String| async move {
                let shard = first_shard(&keyspace)?;
                self.topo
                    .backends
                    .describe(&keyspace, &shard, &query)
                    .await
                    .map_err(|e| error::from_engine(&e))
            };
            let left = match join.left.as_ref() {
                Plan::Route(left) => describe(left.keyspace.clone(), left.query.clone()).await?,
                Plan::Join(inner) => self.describe_join(inner).await?,
                _ => return Ok(Vec::new()),
            };
            let right_query = join.right.query.render(|_| "NULL");
            let right = describe(join.right.keyspace.clone(), right_query).await?;
            let width = right.len().saturating_sub(1);
            let joined = engine::JoinColumn::expand(&join.columns, left.len(), width)
                .iter()
                .filter_map(|c| match c {
                    engine::JoinColumn::Left(i) => left.get(*i).cloned(),
                    engine::JoinColumn::Right(i) => right.get(*i).cloned(),
                    _ => None,
                })
                .collect();
            // What the join's stages make of the joined row: projection, hidden columns dropped.
            engine::stage_output(&join.stages, joined).map_err(|e| error::from_engine(&e))
        })
    }

    /// Plans one statement without running it (`VEXPLAIN PLAN`).
    pub(super) async fn plan_text(&self, sql: &str) -> Result<Plan, SqlError> {
        let mut statements =
            Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| error::unparsed(sql, e))?;
        if statements.len() != 1 {
            return Err(error::unsupported("several statements in one query"));
        }
        let stmt = statements.remove(0);
        self.plan_statement(&stmt, sql).await
    }

    /// Plans a statement, loading the column lists it needs first.
    pub(super) async fn plan_statement(
        &self,
        stmt: &Statement,
        sql: &str,
    ) -> Result<Plan, SqlError> {
        let mut loaded = Vec::new();
        loop {
            let catalog = self.topo.catalog.load_full();
            match planner::plan(stmt, sql, &self.context(&catalog)) {
                Err(planner::PlanError::NeedColumns(ks)) if !loaded.contains(&ks) => {
                    self.topo
                        .load_columns(&ks)
                        .await
                        .map_err(|e| error::from_engine(&e))?;
                    loaded.push(ks);
                }
                other => return other.map_err(error::from_plan),
            }
        }
    }

    pub(super) fn context<'c>(&'c self, catalog: &'c planner::Catalog) -> planner::Context<'c> {
        planner::Context {
            vschema: &self.topo.vschema,
            keyspace: self.session.keyspace.as_deref(),
            catalog,
        }
    }
}

/// Whether a replica may answer a statement (normalised text): a SELECT that takes no locks,
/// writes nothing, and reads no session state of the primary's. Anything else goes to the
/// primary.
fn replica_may_answer(text: &str) -> bool {
    const PRIMARY_ONLY: &[&str] = &[
        "for update",
        "for share",
        "lock in share mode",
        " into ",
        "get_lock",
        "release_lock",
        "is_used_lock",
        "is_free_lock",
        "nextval",
        "setval",
        "last_insert_id",
        "found_rows",
        "row_count",
    ];
    let lower = text.trim_start().to_ascii_lowercase();
    lower.starts_with("select") && !PRIMARY_ONLY.iter().any(|w| lower.contains(w))
}

/// `sql` with a `0` in place of each `?` parameter marker (found in `sql` itself).
pub(super) fn with_zeros(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for at in planner::parameter_markers(sql) {
        out.push_str(&sql[copied..at]);
        out.push('0');
        copied = at + 1;
    }
    out.push_str(&sql[copied..]);
    out
}
