//! Statements with several sharded tables (joins, subqueries, derived tables, CTEs, unions) that
//! can still run as one statement per shard, because the rows that meet always live together.
//!
//! Every sharded table reference (an *occurrence*) is found with its scope (the SELECT it is in).
//! Then two kinds of facts are read from the join conditions and WHERE clauses:
//!
//! - a *pin*: `t.col = literal` on an occurrence's vindex column, in a place where it filters that
//!   occurrence's rows (WHERE, an inner join's ON, or the ON of an outer join whose optional side
//!   the occurrence is on). Only the rows with that value matter, so only one shard's rows do.
//! - an *edge* `a → b`: the rows of `b` that matter for a row of `a` have `a`'s vindex value
//!   (an equality between their vindex columns under the same vindex). Equalities that filter
//!   both sides go both ways; an outer join's ON goes from the kept side to the optional side; a
//!   correlated subquery's equality and `a.col IN (SELECT b.col ...)` go from outer to inner.
//!
//! If some pin reaches every occurrence along the edges, the statement goes whole to that pin's
//! shard. If an occurrence of the top-level SELECT reaches every occurrence, each shard can
//! produce the result rows that own its rows of that table (the *anchor*): the statement runs on
//! the shards the anchor's WHERE selects, and is merged like a one-table scatter.

use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, InTarget, JoinConstraint, JoinOperator, Query, Select,
    SelectItem, SetExpr, Statement, TableFactor, TableWithJoins, Visit, Visitor,
};
use vschema::{KeyValue, Keyspace, LookupColumn, Table, Vindex};

use crate::routing::{conjuncts, mappable, opcode_for, Target};
use crate::tables::resolve;
use crate::{unsupported, Context, PlanError};

/// A sharded table reference.
struct Occurrence {
    scope: usize,
    /// The alias, or the table's name: what qualifies its columns.
    qualifier: String,
    column: String,
    /// A multi-column vindex's columns (`column` is then empty).
    columns: Vec<String>,
    vindex: Arc<Vindex>,
    lookups: Vec<LookupColumn>,
    /// On the optional side of an outer join (its rows may be NULL-extended).
    optional: bool,
}

/// One SELECT.
struct Scope {
    parent: Option<usize>,
    select: Select,
    /// Every name that qualifies columns here: tables, aliases, derived tables, CTE references.
    qualifiers: Vec<String>,
    /// Set when the FROM clause holds something this analysis does not understand.
    opaque: Option<String>,
}

pub(crate) struct Colocation {
    scopes: Vec<Scope>,
    occurrences: Vec<Occurrence>,
    /// Derived tables that stand for a table of their subquery (see [`Self::derived_column`]):
    /// the derived table's occurrence, the subquery's SELECT, the table's qualifier there.
    derived: Vec<(usize, Select, String)>,
    /// How many occurrences are derived tables.
    stand_ins: usize,
    pins: Vec<(usize, KeyValue)>,
    edges: Vec<(usize, usize)>,
    /// The top-level SELECT, when the statement's body is one (not a UNION).
    top: Option<usize>,
}

/// Collects a clone of every SELECT with the SELECT it is nested in.
struct Selects {
    stack: Vec<usize>,
    found: Vec<(Option<usize>, Select)>,
}

impl Visitor for Selects {
    type Break = ();

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.found
            .push((self.stack.last().copied(), select.clone()));
        self.stack.push(self.found.len() - 1);
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _: &Select) -> ControlFlow<()> {
        self.stack.pop();
        ControlFlow::Continue(())
    }
}

impl Colocation {
    pub(crate) fn analyse(
        stmt: &Statement,
        query: &Query,
        ctx: &Context<'_>,
        ctes: &[String],
    ) -> Result<Self, PlanError> {
        let mut selects = Selects {
            stack: Vec::new(),
            found: Vec::new(),
        };
        let _ = stmt.visit(&mut selects);
        // The top-level SELECT is visited after the CTEs' and before anything nested in it, and is
        // the last one without a parent (a subquery in the outer ORDER BY has none either, but is
        // then unreachable, which only makes the analysis refuse).
        let top = match query.body.as_ref() {
            SetExpr::Select(s) => selects
                .found
                .iter()
                .rposition(|(parent, sel)| parent.is_none() && sel == s.as_ref()),
            _ => None,
        };
        let mut this = Colocation {
            scopes: selects
                .found
                .into_iter()
                .map(|(parent, select)| Scope {
                    parent,
                    select,
                    qualifiers: Vec::new(),
                    opaque: None,
                })
                .collect(),
            occurrences: Vec::new(),
            derived: Vec::new(),
            stand_ins: 0,
            pins: Vec::new(),
            edges: Vec::new(),
            top,
        };
        for s in 0..this.scopes.len() {
            let from = this.scopes[s].select.from.clone();
            for twj in &from {
                this.joined(s, twj, false, ctx, ctes)?;
            }
        }
        // A derived table's rows live with the rows of the table it stands for, and the other
        // way round.
        for (o, select, qualifier) in std::mem::take(&mut this.derived) {
            let scope = this.occurrences[o].scope;
            let inner = this
                .scopes
                .iter()
                .position(|s| s.parent == Some(scope) && s.select == select)
                .and_then(|inner| {
                    this.occurrences.iter().position(|x| {
                        x.scope == inner
                            && !x.optional
                            && x.qualifier == qualifier
                            && x.vindex == this.occurrences[o].vindex
                    })
                });
            if let Some(i) = inner {
                this.edge(o, i);
                this.edge(i, o);
            }
        }
        for s in 0..this.scopes.len() {
            if let Some(selection) = this.scopes[s].select.selection.clone() {
                this.filter(s, &selection, None);
            }
        }
        Ok(this)
    }

    /// The occurrences of one FROM item (a table and its joins), reading the join conditions.
    fn joined(
        &mut self,
        scope: usize,
        twj: &TableWithJoins,
        optional: bool,
        ctx: &Context<'_>,
        ctes: &[String],
    ) -> Result<Vec<usize>, PlanError> {
        let mut left = self.factor(scope, &twj.relation, optional, ctx, ctes)?;
        for join in &twj.joins {
            let (constraint, kind) = match &join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::CrossJoin(c)
                | JoinOperator::StraightJoin(c) => (Some(c), JoinKind::Inner),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (Some(c), JoinKind::Left),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (Some(c), JoinKind::Right),
                _ => {
                    self.scopes[scope].opaque = Some("this kind of join".into());
                    (None, JoinKind::Inner)
                }
            };
            let right_optional = optional || kind == JoinKind::Left;
            let right = self.factor(scope, &join.relation, right_optional, ctx, ctes)?;
            if kind == JoinKind::Right {
                for &o in &left {
                    self.occurrences[o].optional = true;
                }
            }
            // Which occurrences the condition filters, and which side's rows are kept whole.
            let (kept, filtered): (Vec<usize>, Vec<usize>) = match kind {
                JoinKind::Inner => (Vec::new(), left.iter().chain(&right).copied().collect()),
                JoinKind::Left => (left.clone(), right.clone()),
                JoinKind::Right => (right.clone(), left.clone()),
            };
            match constraint {
                Some(JoinConstraint::On(on)) => {
                    self.filter(scope, on, Some((&kept, &filtered)));
                }
                Some(JoinConstraint::Using(columns)) => {
                    for column in columns {
                        let Some(name) = column.0.last().and_then(|p| p.as_ident()) else {
                            continue;
                        };
                        let named = |side: &[usize]| -> Option<usize> {
                            let mut it = side.iter().copied().filter(|&o| {
                                self.occurrences[o].column.eq_ignore_ascii_case(&name.value)
                            });
                            let first = it.next()?;
                            it.next().is_none().then_some(first)
                        };
                        if let (Some(a), Some(b)) = (named(&left), named(&right)) {
                            self.equal(scope, a, b, Some((&kept, &filtered)));
                        }
                    }
                }
                _ => {}
            }
            left.extend(right);
        }
        Ok(left)
    }

    fn factor(
        &mut self,
        scope: usize,
        factor: &TableFactor,
        optional: bool,
        ctx: &Context<'_>,
        ctes: &[String],
    ) -> Result<Vec<usize>, PlanError> {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } if args.is_none() => {
                let last = name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.clone())
                    .unwrap_or_default();
                let qualifier = alias.as_ref().map_or(last, |a| a.name.value.clone());
                self.scopes[scope].qualifiers.push(qualifier.clone());
                let is_cte = name.0.len() == 1
                    && name.0[0]
                        .as_ident()
                        .is_some_and(|i| ctes.iter().any(|c| c == &i.value));
                if is_cte {
                    return Ok(Vec::new());
                }
                let resolved = resolve(name, ctx)?;
                let Table::Sharded {
                    column,
                    columns,
                    vindex,
                    lookups,
                    ..
                } = resolved.table
                else {
                    return Ok(Vec::new());
                };
                self.occurrences.push(Occurrence {
                    scope,
                    qualifier,
                    column,
                    columns,
                    vindex,
                    lookups,
                    optional,
                });
                Ok(vec![self.occurrences.len() - 1])
            }
            TableFactor::Derived {
                alias,
                subquery,
                lateral,
                ..
            } => {
                let Some(alias) = alias else {
                    return Ok(Vec::new());
                };
                self.scopes[scope].qualifiers.push(alias.name.value.clone());
                let found = match (lateral, alias.columns.is_empty()) {
                    (false, true) => derived_column(subquery, ctx),
                    _ => None,
                };
                let Some((name, select, qualifier, vindex)) = found else {
                    return Ok(Vec::new());
                };
                self.occurrences.push(Occurrence {
                    scope,
                    qualifier: alias.name.value.clone(),
                    column: name,
                    columns: Vec::new(),
                    vindex,
                    lookups: Vec::new(),
                    optional,
                });
                let o = self.occurrences.len() - 1;
                self.derived.push((o, select, qualifier));
                self.stand_ins += 1;
                Ok(vec![o])
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if let Some(a) = alias {
                    self.scopes[scope].qualifiers.push(a.name.value.clone());
                }
                self.joined(scope, table_with_joins, optional, ctx, ctes)
            }
            other => {
                self.scopes[scope].opaque = Some(other.to_string());
                Ok(Vec::new())
            }
        }
    }

    /// Reads a condition's conjuncts. `join`: for an ON clause, the occurrences whose rows the
    /// join keeps whole and those it filters (all of the join's occurrences for an inner join);
    /// `None` for WHERE, which filters every occurrence of its scope.
    fn filter(&mut self, scope: usize, condition: &Expr, join: Option<(&[usize], &[usize])>) {
        let mut parts = Vec::new();
        conjuncts(condition, &mut parts);
        for part in parts {
            match part {
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } => {
                    let (a, b) = (self.column(scope, left), self.column(scope, right));
                    match (a, b) {
                        (Some(a), Some(b)) => self.equal(scope, a, b, join),
                        (Some(a), None) => self.pin(scope, a, right, join),
                        (None, Some(b)) => self.pin(scope, b, left, join),
                        (None, None) => {}
                    }
                }
                Expr::In {
                    expr,
                    target: InTarget::Subquery(subquery),
                    negated: false,
                    ..
                } if join.is_none() => {
                    let (Some(outer), Some(inner)) =
                        (self.column(scope, expr), self.projected(scope, subquery))
                    else {
                        continue;
                    };
                    if self.occurrences[outer].scope == scope {
                        self.edge(outer, inner);
                    }
                }
                _ => {}
            }
        }
    }

    /// The occurrence of the single column a subquery of `scope` selects, if it is a vindex
    /// column of a table of the subquery's own SELECT.
    fn projected(&self, scope: usize, subquery: &Query) -> Option<usize> {
        let SetExpr::Select(select) = subquery.body.as_ref() else {
            return None;
        };
        let [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] =
            select.projection.as_slice()
        else {
            return None;
        };
        let inner = self
            .scopes
            .iter()
            .position(|s| s.parent == Some(scope) && &s.select == select.as_ref())?;
        self.column(inner, e)
            .filter(|&o| self.occurrences[o].scope == inner)
    }

    /// `a = b` between two vindex columns, in a condition of `scope`.
    fn equal(&mut self, scope: usize, a: usize, b: usize, join: Option<(&[usize], &[usize])>) {
        if self.occurrences[a].vindex != self.occurrences[b].vindex {
            return;
        }
        let (sa, sb) = (self.occurrences[a].scope, self.occurrences[b].scope);
        if sa != sb {
            // Correlated: the rows of the inner occurrence (of this scope) that matter match the
            // outer row. Nothing is learned about the outer rows.
            let (outer, inner) = if sb == scope { (a, b) } else { (b, a) };
            let filtered = join.is_none_or(|(_, filtered)| filtered.contains(&inner));
            if self.occurrences[inner].scope == scope && filtered {
                self.edge(outer, inner);
            }
            return;
        }
        if sa != scope {
            // Two outer columns compared inside a subquery: that filters no outer row.
            return;
        }
        match join {
            None => {
                self.edge(a, b);
                self.edge(b, a);
            }
            Some((kept, filtered)) => {
                let (ka, kb) = (kept.contains(&a), kept.contains(&b));
                let (fa, fb) = (filtered.contains(&a), filtered.contains(&b));
                if fa && fb {
                    self.edge(a, b);
                    self.edge(b, a);
                } else if ka && fb {
                    self.edge(a, b);
                } else if kb && fa {
                    self.edge(b, a);
                }
            }
        }
    }

    /// `occurrence.column = value`, when the condition filters that occurrence's rows.
    fn pin(
        &mut self,
        scope: usize,
        occurrence: usize,
        value: &Expr,
        join: Option<(&[usize], &[usize])>,
    ) {
        let o = &self.occurrences[occurrence];
        if o.scope != scope || join.is_some_and(|(_, filtered)| !filtered.contains(&occurrence)) {
            return;
        }
        if let Some(v) = mappable(&o.vindex, value) {
            self.pins.push((occurrence, v));
        }
    }

    fn edge(&mut self, from: usize, to: usize) {
        if !self.edges.contains(&(from, to)) {
            self.edges.push((from, to));
        }
    }

    /// The occurrence whose vindex column `expr` names, seen from `scope`: a qualified name is
    /// looked up from the innermost SELECT outwards (the first that has the qualifier decides); an
    /// unqualified one only in `scope` itself, where a sharded table with that vindex column
    /// decides (if another table had the column too, the name would be ambiguous: MySQL refuses
    /// it).
    fn column(&self, scope: usize, expr: &Expr) -> Option<usize> {
        match expr {
            Expr::Nested(inner) => self.column(scope, inner),
            Expr::Identifier(id) => {
                let mut found =
                    self.occurrences.iter().enumerate().filter(|(_, o)| {
                        o.scope == scope && o.column.eq_ignore_ascii_case(&id.value)
                    });
                let (i, _) = found.next()?;
                found.next().is_none().then_some(i)
            }
            Expr::CompoundIdentifier(parts) => {
                let [q, col] = parts.as_slice() else {
                    return None;
                };
                let mut s = Some(scope);
                while let Some(i) = s {
                    if self.scopes[i].qualifiers.iter().any(|x| x == &q.value) {
                        let mut found = self
                            .occurrences
                            .iter()
                            .enumerate()
                            .filter(|(_, o)| o.scope == i && o.qualifier == q.value);
                        let (i, o) = found.next()?;
                        return (found.next().is_none()
                            && o.column.eq_ignore_ascii_case(&col.value))
                        .then_some(i);
                    }
                    s = self.scopes[i].parent;
                }
                None
            }
            _ => None,
        }
    }

    /// The occurrences reachable from `start` along edges (`start` included).
    fn reach(&self, start: usize) -> Vec<bool> {
        let mut seen = vec![false; self.occurrences.len()];
        let mut todo = vec![start];
        seen[start] = true;
        while let Some(o) = todo.pop() {
            for &(from, to) in &self.edges {
                if from == o && !seen[to] {
                    seen[to] = true;
                    todo.push(to);
                }
            }
        }
        seen
    }

    /// How many sharded table references the statement has (derived tables not counted).
    pub(crate) fn occurrence_count(&self) -> usize {
        self.occurrences.len() - self.stand_ins
    }

    /// Refuses a statement with a FROM clause this analysis does not understand.
    pub(crate) fn check_understood(&self) -> Result<(), PlanError> {
        match self.scopes.iter().find_map(|s| s.opaque.as_ref()) {
            Some(what) => Err(unsupported(format!(
                "{what} in a statement over several sharded tables"
            ))),
            None => Ok(()),
        }
    }

    /// A pin whose shard holds every row that matters, of every occurrence.
    pub(crate) fn pinned(&self) -> Option<(Arc<Vindex>, KeyValue)> {
        self.pins.iter().find_map(|(o, value)| {
            self.reach(*o)
                .iter()
                .all(|&r| r)
                .then(|| (self.occurrences[*o].vindex.clone(), value.clone()))
        })
    }

    /// The top-level SELECT, when one of its occurrences can anchor the statement (each shard
    /// then produces the result rows of the anchor rows it holds), with the narrowest opcode the
    /// anchors' WHERE gives.
    pub(crate) fn anchored(
        &self,
        keyspace: &Keyspace,
    ) -> Result<(engine::Opcode, &Select), PlanError> {
        let Some(top) = self.top else {
            return Err(unsupported(
                "a set operation over sharded tables on different shards",
            ));
        };
        let select = &self.scopes[top].select;
        let all = vec![true; self.occurrences.len()];
        match self.anchor(top, keyspace, &all) {
            Some(opcode) => Ok((opcode, select)),
            None => {
                let in_subquery = self.occurrences.iter().any(|o| o.scope != top);
                Err(unsupported(if in_subquery {
                    "a subquery on a sharded table that is neither pinned to one shard nor correlated on its vindex column"
                } else {
                    "a join between sharded tables that is not on their vindex columns"
                }))
            }
        }
    }

    /// Whether `expr` is the vindex column of a table of the top-level SELECT whose rows are never
    /// NULL-extended: the joined rows with one value of it then all come from one shard.
    pub(crate) fn is_row_vindex_column(&self, expr: &Expr) -> bool {
        let Some(top) = self.top else {
            return false;
        };
        self.occurrences.iter().any(|o| {
            o.scope == top
                && !o.optional
                && Target {
                    qualifiers: vec![o.qualifier.as_str()],
                    column: &o.column,
                    vindex: &o.vindex,
                    lookups: &o.lookups,
                    columns: &o.columns,
                }
                .is_vindex_column(expr)
        })
    }

    /// The narrowest opcode of an occurrence of `scope` (not on an outer join's optional side)
    /// that reaches every occurrence in `needed`.
    fn anchor(&self, scope: usize, keyspace: &Keyspace, needed: &[bool]) -> Option<engine::Opcode> {
        let select = &self.scopes[scope].select;
        let mut best: Option<engine::Opcode> = None;
        for (i, o) in self.occurrences.iter().enumerate() {
            if o.scope != scope || o.optional || !outer_joins_keep(select, &o.qualifier) {
                continue;
            }
            let reached = self.reach(i);
            if needed.iter().zip(&reached).any(|(&n, &r)| n && !r) {
                continue;
            }
            let target = Target {
                qualifiers: vec![o.qualifier.as_str()],
                column: &o.column,
                vindex: &o.vindex,
                lookups: &o.lookups,
                columns: &o.columns,
            };
            let opcode = opcode_for(select.selection.as_ref(), &target, keyspace);
            if best.as_ref().is_none_or(|b| rank(&opcode) < rank(b)) {
                best = Some(opcode);
            }
        }
        best
    }

    /// For a UNION: how each branch (a top-level SELECT, in order) spreads over the shards.
    pub(crate) fn branches(
        &self,
        branches: &[&Select],
        keyspace: &Keyspace,
    ) -> Result<Vec<Branch>, PlanError> {
        let root = |mut s: usize| {
            while let Some(p) = self.scopes[s].parent {
                s = p;
            }
            s
        };
        // Branches are visited in order (identical branches are told apart by that order).
        let mut scopes: Vec<usize> = Vec::with_capacity(branches.len());
        for branch in branches {
            let from = scopes.last().map_or(0, |&s| s + 1);
            let found = (from..self.scopes.len())
                .find(|&s| self.scopes[s].parent.is_none() && &self.scopes[s].select == *branch)
                .ok_or_else(|| unsupported("this UNION shape over sharded tables"))?;
            scopes.push(found);
        }
        if self
            .occurrences
            .iter()
            .any(|o| !scopes.contains(&root(o.scope)))
        {
            return Err(unsupported(
                "a sharded table in a WITH clause or ORDER BY of a UNION",
            ));
        }
        Ok(scopes
            .iter()
            .map(|&scope| {
                let needed: Vec<bool> = self
                    .occurrences
                    .iter()
                    .map(|o| root(o.scope) == scope)
                    .collect();
                if !needed.contains(&true) {
                    return Branch::Everywhere;
                }
                let pin = self.pins.iter().find(|(o, _)| {
                    needed[*o] && needed.iter().zip(self.reach(*o)).all(|(&n, r)| !n || r)
                });
                match (pin, self.anchor(scope, keyspace, &needed)) {
                    (Some((o, value)), _) => {
                        Branch::Pinned(self.occurrences[*o].vindex.clone(), value.clone())
                    }
                    (None, Some(_)) => Branch::Spread,
                    (None, None) => Branch::Unplaceable,
                }
            })
            .collect())
    }
}

/// How one branch of a UNION lies over the shards.
pub(crate) enum Branch {
    /// No sharded table: the same rows on every shard.
    Everywhere,
    /// Its rows are on the shard of this value.
    Pinned(Arc<Vindex>, KeyValue),
    /// Each of its rows is produced by exactly one shard.
    Spread,
    /// Neither: its tables' rows do not live together.
    Unplaceable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinKind {
    Inner,
    Left,
    Right,
}

/// Narrower opcodes first.
fn rank(opcode: &engine::Opcode) -> u8 {
    match opcode {
        o if o.is_single_shard() => 0,
        engine::Opcode::Lookup { .. } => 1,
        engine::Opcode::In { .. } | engine::Opcode::Prefix { .. } => 2,
        _ => 3,
    }
}

/// Whether every outer join of the top-level SELECT keeps the anchor's rows whole: then each
/// result row comes from exactly one shard (the one holding its anchor row). An outer join that
/// kept another table's unmatched rows would repeat them on every shard.
/// A derived table that stands for a sharded table of its subquery: it selects that table's vindex
/// column as it is, and each of its rows comes from rows of one vindex value (no LIMIT, no window
/// functions; grouped by that column if grouped at all). Returns the column's name outside, the
/// subquery's SELECT, the table's qualifier inside and its vindex.
fn derived_column(
    subquery: &Query,
    ctx: &Context<'_>,
) -> Option<(String, Select, String, Arc<Vindex>)> {
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return None;
    };
    if subquery.limit_clause.is_some()
        || subquery.fetch.is_some()
        || subquery.with.is_some()
        || crate::aggregates::find_call(&select.projection, |f| {
            f.over.as_ref().map(|_| String::new())
        })
        .is_some()
    {
        return None;
    }
    let group: &[Expr] = match &select.group_by {
        GroupByExpr::Expressions(e, m) if m.is_empty() => e,
        _ => return None,
    };
    let aggregated = crate::aggregates::find_call(&select.projection, |f| {
        let name = f.name.to_string().to_ascii_lowercase();
        crate::aggregates::AGGREGATES
            .contains(&name.as_str())
            .then_some(name)
    })
    .is_some()
        || select.having.is_some();
    // The sharded tables of the subquery's FROM, by qualifier.
    let mut tables: Vec<(String, String, Arc<Vindex>)> = Vec::new();
    let mut add = |factor: &TableFactor| {
        if let TableFactor::Table { name, alias, .. } = factor {
            let last = name.0.last().and_then(|p| p.as_ident())?.value.clone();
            let qualifier = alias.as_ref().map_or(last, |a| a.name.value.clone());
            if let Table::Sharded { column, vindex, .. } = resolve(name, ctx).ok()?.table {
                tables.push((qualifier, column, vindex));
            }
        }
        Some(())
    };
    for twj in &select.from {
        add(&twj.relation);
        for j in &twj.joins {
            add(&j.relation);
        }
    }
    select.projection.iter().find_map(|item| {
        let (expr, alias) = crate::clauses::item_expr(item)?;
        let (qualifier, _, vindex) = match expr {
            Expr::CompoundIdentifier(p) => match p.as_slice() {
                [q, c] => tables
                    .iter()
                    .find(|(tq, tc, _)| *tq == q.value && tc.eq_ignore_ascii_case(&c.value))?,
                _ => return None,
            },
            Expr::Identifier(c) => {
                let mut named = tables
                    .iter()
                    .filter(|(_, tc, _)| tc.eq_ignore_ascii_case(&c.value));
                let one = named.next()?;
                if named.next().is_some() {
                    return None;
                }
                one
            }
            _ => return None,
        };
        if (aggregated || !group.is_empty()) && !group.contains(expr) {
            return None;
        }
        let name = alias.unwrap_or_else(|| match expr {
            Expr::CompoundIdentifier(p) => p[1].value.clone(),
            other => other.to_string(),
        });
        Some((
            name,
            select.as_ref().clone(),
            qualifier.clone(),
            vindex.clone(),
        ))
    })
}

fn outer_joins_keep(select: &Select, anchor: &str) -> bool {
    fn names(factor: &TableFactor, out: &mut Vec<String>) -> bool {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let last = name.0.last().and_then(|p| p.as_ident());
                out.push(alias.as_ref().map_or_else(
                    || last.map(|i| i.value.clone()).unwrap_or_default(),
                    |a| a.name.value.clone(),
                ));
                true
            }
            TableFactor::Derived { alias, .. } => {
                out.extend(alias.as_ref().map(|a| a.name.value.clone()));
                true
            }
            // A nested join with outer joins inside is not looked into: refuse it.
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                let plain = table_with_joins.joins.iter().all(|j| {
                    matches!(
                        j.join_operator,
                        JoinOperator::Join(_)
                            | JoinOperator::Inner(_)
                            | JoinOperator::CrossJoin(_)
                            | JoinOperator::StraightJoin(_)
                    )
                });
                plain
                    && names(&table_with_joins.relation, out)
                    && table_with_joins
                        .joins
                        .iter()
                        .all(|j| names(&j.relation, out))
            }
            _ => false,
        }
    }
    select.from.iter().all(|twj| {
        let mut kept = Vec::new();
        if !names(&twj.relation, &mut kept) {
            return false;
        }
        twj.joins.iter().all(|j| {
            let mut right = Vec::new();
            if !names(&j.relation, &mut right) {
                return false;
            }
            let ok = match &j.join_operator {
                JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => {
                    kept.iter().any(|n| n == anchor)
                }
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) => {
                    right.iter().any(|n| n == anchor)
                }
                _ => true,
            };
            kept.extend(right);
            ok
        })
    })
}
