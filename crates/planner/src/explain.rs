//! `EXPLAIN <statement>`: a shard's own EXPLAIN of the statement as shardgate sends it. A
//! statement on one shard is explained by that shard; one over several shards by any one of
//! them, the same text running on each. Plans that run in several steps at the proxy (joins,
//! subqueries run first, writes with lookup rows) have no one shard statement to explain:
//! `VEXPLAIN PLAN` shows them.

use engine::{Opcode, Plan, Route};
use sqlparser::ast::{Spanned, Statement};

use crate::text::SourceText;
use crate::{unsupported, Context, PlanError};

/// For `EXPLAIN` of a statement that runs on several shards, the note that goes with the one
/// shard's EXPLAIN: the plan as a whole is shardgate's.
pub fn explain_note(stmt: &Statement, sql: &str, ctx: &Context<'_>) -> Option<String> {
    let Statement::Explain {
        statement,
        analyze: false,
        ..
    } = stmt
    else {
        return None;
    };
    let source = SourceText::new(sql);
    let start = source.range(statement.span())?.start;
    let several = match crate::plan_text(&sql[start..], ctx).ok()? {
        Plan::Route(route) => {
            !route.opcode.is_single_shard() && !matches!(route.opcode, Opcode::Destination { .. })
        }
        Plan::Merge(_) => true,
        _ => false,
    };
    several.then(|| {
        "shardgate runs this statement on several shards and combines their rows: this is one shard's plan; VEXPLAIN PLAN shows shardgate's".to_string()
    })
}

pub(crate) fn plan_explain(
    explained: &Statement,
    analyze: bool,
    source: &SourceText<'_>,
    ctx: &Context<'_>,
) -> Result<Plan, PlanError> {
    if analyze {
        // It would run the statement, on one shard only.
        return Err(unsupported("EXPLAIN ANALYZE"));
    }
    let start = source
        .range(explained.span())
        .map(|r| r.start)
        .ok_or_else(|| unsupported("EXPLAIN of this statement"))?;
    let sql = source.sql();
    // `EXPLAIN FORMAT=JSON ` as the client wrote it, then the statement as a shard gets it.
    let (prefix, statement) = sql.split_at(start);
    let route =
        match crate::plan_text(statement, ctx)? {
            Plan::Route(route) => route,
            Plan::Merge(merged) => merged.route,
            _ => return Err(unsupported(
                "EXPLAIN of a statement shardgate runs in several steps (VEXPLAIN PLAN shows them)",
            )),
        };
    let opcode =
        if route.opcode.is_single_shard() || matches!(route.opcode, Opcode::Destination { .. }) {
            route.opcode
        } else {
            Opcode::Reference
        };
    Ok(Plan::Route(Route {
        keyspace: route.keyspace,
        opcode,
        query: format!("{prefix}{}", route.query),
        elsewhere: None,
    }))
}
