//! A SELECT whose rows come from several shards: whether the shards' results can simply be
//! concatenated, or what needs merging at the proxy ([`NeedsMerge`]), and the plan either way.

use std::fmt;

use engine::{Opcode, Plan, Route};
use sqlparser::ast::{GroupByExpr, Query, Select};

use crate::aggregates::{find_call, AGGREGATES};
use crate::{unsupported, Context, PlanError};

/// The first construct of a SELECT whose result across shards is more than the shards' results
/// concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NeedsMerge {
    /// `SELECT ... INTO`: cannot be merged.
    Into,
    /// A window function, by name: cannot be merged (unless each shard computes it whole).
    Window(String),
    Distinct,
    GroupBy,
    Having,
    /// An aggregate function, by name.
    Aggregate(String),
    OrderBy,
    Fetch,
    Limit,
}

impl NeedsMerge {
    /// Whether no merge at the proxy can give the right result.
    fn unmergeable(&self) -> bool {
        matches!(self, NeedsMerge::Into | NeedsMerge::Window(_))
    }
}

impl fmt::Display for NeedsMerge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NeedsMerge::Into => f.write_str("SELECT ... INTO"),
            NeedsMerge::Window(name) => write!(f, "window function {name}"),
            NeedsMerge::Distinct => f.write_str("DISTINCT"),
            NeedsMerge::GroupBy => f.write_str("GROUP BY"),
            NeedsMerge::Having => f.write_str("HAVING"),
            NeedsMerge::Aggregate(name) => write!(f, "aggregate function {name}"),
            NeedsMerge::OrderBy => f.write_str("ORDER BY"),
            NeedsMerge::Fetch => f.write_str("FETCH"),
            NeedsMerge::Limit => f.write_str("LIMIT"),
        }
    }
}

pub(crate) fn route(keyspace: &str, opcode: Opcode, query: String) -> Plan {
    Plan::Route(Route {
        keyspace: keyspace.to_string(),
        opcode,
        query,
        elsewhere: None,
    })
}

/// A route over the shards `opcode` selects, merged at the proxy when the result needs it.
/// `local_windows`: each shard computes the select's window functions whole. `ctx`, when the
/// select's tables are the catalog's, tells a merge how their columns order.
pub(crate) fn route_or_merge(
    query: &Query,
    select: &Select,
    keyspace: &str,
    opcode: Opcode,
    query_text: String,
    local_windows: bool,
    ctx: Option<&Context<'_>>,
) -> Result<Plan, PlanError> {
    if opcode.is_single_shard() {
        return Ok(route(keyspace, opcode, query_text));
    }
    if local_windows {
        // Only ORDER BY and LIMIT are left to merge.
        return match needs_merge(query, select, false) {
            None => Ok(route(keyspace, opcode, query_text)),
            Some(NeedsMerge::OrderBy | NeedsMerge::Limit) => {
                crate::merge::plan_merge(query, select, &query_text, keyspace, opcode, ctx)
            }
            Some(c) => Err(unsupported(format!(
                "{c} with window functions on a query that spans several shards"
            ))),
        };
    }
    if let Some(construct) = needs_merge(query, select, true) {
        if construct.unmergeable() || construct == NeedsMerge::Fetch || query.with.is_some() {
            let construct = if query.with.is_some() {
                format!("{construct} with WITH (common table expression)")
            } else {
                construct.to_string()
            };
            return Err(unsupported(format!(
                "{construct} on a query that spans several shards"
            )));
        }
        return crate::merge::plan_merge(query, select, &query_text, keyspace, opcode, ctx);
    }
    Ok(route(keyspace, opcode, query_text))
}

/// What needs merging in the query (the unmergeable first), window functions left out unless
/// `windows`.
fn needs_merge(query: &Query, select: &Select, windows: bool) -> Option<NeedsMerge> {
    let own = select_needs_merge_with(select, windows);
    if own.as_ref().is_some_and(NeedsMerge::unmergeable) {
        return own;
    }
    if query.order_by.is_some() {
        return Some(NeedsMerge::OrderBy);
    }
    if query.fetch.is_some() {
        return Some(NeedsMerge::Fetch);
    }
    if query.limit_clause.is_some() {
        return Some(NeedsMerge::Limit);
    }
    own
}

/// What needs merging in one SELECT (its ORDER BY and LIMIT aside), the unmergeable first.
pub(crate) fn select_needs_merge(select: &Select) -> Option<NeedsMerge> {
    select_needs_merge_with(select, true)
}

fn select_needs_merge_with(select: &Select, windows: bool) -> Option<NeedsMerge> {
    if select.into.is_some() {
        return Some(NeedsMerge::Into);
    }
    let window = find_call(&select.projection, |f| {
        f.over.is_some().then(|| f.name.to_string().to_uppercase())
    });
    if let (true, Some(name)) = (windows, window) {
        return Some(NeedsMerge::Window(name));
    }
    if select.distinct.is_some() {
        return Some(NeedsMerge::Distinct);
    }
    match &select.group_by {
        GroupByExpr::All(_) => return Some(NeedsMerge::GroupBy),
        GroupByExpr::Expressions(exprs, _) if !exprs.is_empty() => {
            return Some(NeedsMerge::GroupBy)
        }
        _ => {}
    }
    if select.having.is_some() {
        return Some(NeedsMerge::Having);
    }
    find_call(&select.projection, |f| {
        let name = f.name.to_string().to_ascii_lowercase();
        (AGGREGATES.contains(&name.as_str()) && f.over.is_none()).then(|| name.to_uppercase())
    })
    .map(NeedsMerge::Aggregate)
}
