//! The primitives a plan is made of, and `describe`, the one way a plan is printed (golden tests,
//! `shardgate explain`).

use std::fmt::Write;
use std::sync::Arc;

use vschema::{KeyValue, LookupVindex, SequenceRef, Vindex};

use crate::compare::{SortKey, Weight};
use crate::eval::EvalExpr;

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Route(Route),
    Insert(Insert),
    Send(Send),
    Merge(MergedSelect),
    OwnedWrite(OwnedWrite),
    PullOut(PullOut),
    Join(Join),
    Derived(Derived),
    /// Routes run one after the other, their rows concatenated under the first one's columns
    /// (each returns the same columns): a catalog query answered by several databases.
    Concat(Vec<Route>),
    /// `INSERT ... SELECT` into a sharded table: the SELECT runs first, then its rows go in as
    /// one INSERT ... VALUES, planned like any (routed by the target's vindexes, ids from its
    /// sequence). The caller runs it, as it runs a [`PullOut`].
    InsertSelect(InsertSelect),
    OrderedWrite(OrderedWrite),
    ShardEval(ShardEval),
    /// Plans run one after the other, their rows appended under the first one's columns (each
    /// returns the same columns): a UNION ALL whose branches merge on their own.
    Append(Vec<Plan>),
}

/// Select items a shard computes, over values the proxy merged: the input plan's rows are the
/// client's `visible` columns (an item's is a placeholder) and then the items' inputs; in
/// batches, one shard runs `SELECT <select> FROM ((<typing>) UNION ALL SELECT <a row's inputs
/// as literals>, <n> ...) AS sg_in ORDER BY sg_in.sg_n`, and its columns replace the items'.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardEval {
    pub input: Box<Plan>,
    pub keyspace: String,
    /// One shard of it.
    pub opcode: Opcode,
    pub visible: usize,
    /// The items' positions among the visible columns, in the order `select` computes them.
    pub items: Vec<usize>,
    /// The items over `sg_in.a0`, `sg_in.a1`, ..., each with its alias.
    pub select: String,
    /// `SELECT <input 0> AS a0, ..., 0 AS sg_n FROM ... LIMIT 0`: no row, the inputs' types.
    pub typing: String,
    /// Applied to the evaluated rows: the visible columns, then what `select` computes beyond
    /// the items (sort weights); ORDER BY an item computed here, LIMIT, DropHidden.
    pub stages: Vec<Stage>,
}

/// UPDATE or DELETE ... [ORDER BY ...] LIMIT n over several shards. Each shard reads (and locks)
/// the ORDER BY keys of its first n rows; merged, the first n of them say how many rows each
/// shard changes, and each shard runs the statement with that LIMIT: exactly n rows change, the
/// first n by the order, as on one server.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedWrite {
    /// The shards to ask; `query` reads each one's first n rows' keys (and their collation
    /// weights), `FOR UPDATE`.
    pub route: Route,
    /// The keys, over the probe's columns (none: any n rows).
    pub keys: Vec<SortKey>,
    pub limit: u64,
    /// The statement, with [`Hole::Limit`] for its LIMIT count.
    pub write: SqlTemplate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InsertSelect {
    pub select: Box<Plan>,
    /// `INSERT [IGNORE] INTO t (a, b) VALUES `
    pub prefix: String,
    /// ` ON DUPLICATE KEY UPDATE ...`, or empty.
    pub suffix: String,
}

/// A derived table (`FROM (SELECT ...) t`) whose rows span shards: its plan's rows flow through
/// the outer query's stages at the proxy (Filter, MemorySort, Limit, Projection, DropHidden).
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub inner: Box<Plan>,
    pub stages: Vec<Stage>,
}

/// A join whose tables' rows do not live together (nested loop, batched): the left side runs
/// first; for each batch of its rows, the right side runs once with their distinct join keys,
/// and the proxy pairs the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub left: Box<Plan>,
    /// The left row's columns that hold the join keys, in key order.
    pub left_keys: Vec<usize>,
    pub kind: JoinKind,
    /// An ON condition the keys do not cover (a LEFT JOIN's, over both tables or the left one),
    /// over the joined row: a pair that fails it is no match.
    pub on: Option<EvalExpr>,
    pub right: JoinRight,
    /// The joined row, column by column.
    pub columns: Vec<JoinColumn>,
    /// Applied to the joined rows, in order (MemorySort, Limit, DropHidden).
    pub stages: Vec<Stage>,
}

/// What a left row gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// One joined row per matching right row.
    Inner,
    /// LEFT JOIN: as `Inner`, and a left row without a match comes out once, with NULLs on the
    /// right.
    LeftOuter,
    /// `EXISTS (...)`, `IN (...)`: the left row once if some right row matches (its columns are
    /// the left row's only).
    Semi,
    /// `NOT EXISTS (...)`: the left row once if no right row matches.
    Anti,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinColumn {
    Left(usize),
    Right(usize),
    /// `*`: the side's columns from this one on (the right side's last, its matches, aside).
    LeftFrom(usize),
    RightFrom(usize),
}

impl JoinColumn {
    /// The columns with `*` expanded, given how many columns each side returned (the right
    /// side's without its matches column).
    pub fn expand(columns: &[JoinColumn], left: usize, right: usize) -> Vec<JoinColumn> {
        columns
            .iter()
            .flat_map(|c| match *c {
                JoinColumn::LeftFrom(i) => (i..left).map(JoinColumn::Left).collect(),
                JoinColumn::RightFrom(i) => (i..right).map(JoinColumn::Right).collect(),
                other => vec![other],
            })
            .collect()
    }
}

/// SQL with typed holes that execution fills: a pulled-out subquery's values, a join batch's
/// keys. The text around the holes is never searched for markers, so whatever a client's
/// strings hold stays as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTemplate {
    /// The text before each hole, then the text after the last: one more than `holes`.
    texts: Vec<String>,
    holes: Vec<Hole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hole {
    /// The values of [`PullOut`] subquery `i`, inside its parentheses.
    Subquery(usize),
    /// A join's per-key match tests ([`JoinRight`]).
    Matches,
    /// The key list of a join's `IN` ([`JoinRight`]).
    Keys,
    /// An [`OrderedWrite`]'s LIMIT count for one shard.
    Limit,
}

impl SqlTemplate {
    pub fn push_str(&mut self, text: &str) {
        self.texts
            .last_mut()
            .expect("a template has a text after its last hole")
            .push_str(text);
    }

    pub fn push_hole(&mut self, hole: Hole) {
        self.holes.push(hole);
        self.texts.push(String::new());
    }

    /// The SQL with each hole filled by `fill`.
    pub fn render<S: AsRef<str>>(&self, mut fill: impl FnMut(Hole) -> S) -> String {
        let mut out = String::with_capacity(self.texts.iter().map(String::len).sum::<usize>());
        for (i, text) in self.texts.iter().enumerate() {
            out.push_str(text);
            if let Some(hole) = self.holes.get(i) {
                out.push_str(fill(*hole).as_ref());
            }
        }
        out
    }

    /// The template with each text between holes rewritten by `f` (`None` if any fails).
    pub fn map_texts(&self, f: impl FnMut(&str) -> Option<String>) -> Option<SqlTemplate> {
        Some(SqlTemplate {
            texts: self
                .texts
                .iter()
                .map(|t| t.as_str())
                .map(f)
                .collect::<Option<_>>()?,
            holes: self.holes.clone(),
        })
    }
}

impl Default for SqlTemplate {
    fn default() -> Self {
        SqlTemplate {
            texts: vec![String::new()],
            holes: Vec::new(),
        }
    }
}

impl From<&str> for SqlTemplate {
    fn from(text: &str) -> Self {
        SqlTemplate {
            texts: vec![text.to_string()],
            holes: Vec::new(),
        }
    }
}

impl std::fmt::Display for SqlTemplate {
    /// With its holes named (`<subquery 0>`, `<matches>`, `<keys>`), as plans are printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(|hole| match hole {
            Hole::Subquery(i) => format!("<subquery {i}>"),
            Hole::Matches => "<matches>".to_string(),
            Hole::Keys => "<keys>".to_string(),
            Hole::Limit => "<limit>".to_string(),
        }))
    }
}

/// The right side of a [`Join`]: one query per batch of keys. Its last column lists, for each row,
/// the batch's keys it matched (MySQL compares them, under the column's collation).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinRight {
    pub keyspace: String,
    /// The query, with the holes [`Hole::Matches`] (where the per-key match tests go) and
    /// [`Hole::Keys`] (the key list of its `IN`).
    pub query: SqlTemplate,
    /// The right table's join key expressions, as SQL, in key order.
    pub keys: Vec<String>,
    /// The shards to ask: the owners of the first key's values under this vindex (when it is the
    /// right table's vindex column), else the shards of `opcode`.
    pub vindex: Option<Arc<Vindex>>,
    pub opcode: Opcode,
}

/// Uncorrelated subqueries that run before the statement using them: each result fills its
/// [`Hole::Subquery`] of `template` as literals, and the statement is then planned and run like
/// any other (so an `IN` list it yields routes by its values).
#[derive(Debug, Clone, PartialEq)]
pub struct PullOut {
    pub subqueries: Vec<Pulled>,
    pub template: SqlTemplate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pulled {
    pub plan: Plan,
    pub kind: PulledKind,
}

/// How a subquery's rows become SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PulledKind {
    /// `x IN (...)`: a list of values (or of row tuples).
    In,
    /// `EXISTS (...)`: a query with one row or none.
    Exists,
    /// `(...)` as a value: its one value, NULL without rows, an error with several.
    Scalar,
}

/// A SELECT over several shards whose results are merged at the proxy: shard rows are merged (or
/// concatenated), then flow through each stage in order.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedSelect {
    pub route: Route,
    /// Every shard returns its rows sorted by these keys and the proxy merges the streams (k-way,
    /// one row per shard held). Empty: the streams are concatenated.
    pub merge: Vec<SortKey>,
    pub stages: Vec<Stage>,
    /// Set when the select list has a `*`: the planner cannot know how many columns it expands
    /// to, so its key columns count `*` as one and the engine shifts the helper columns (the last
    /// `hidden`) once the shards' columns are known.
    pub wildcard: Option<Wildcard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wildcard {
    /// Select items as the planner counted them (`*` as one).
    pub items: usize,
    /// Helper columns after them.
    pub hidden: usize,
}

/// One step applied to the merged rows, in plan order.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Combines consecutive rows with equal `group` keys (the input is sorted by them) into one,
    /// merging the shards' partial aggregates. No keys: all rows form one group (exactly one row
    /// comes out, as each shard returns one).
    OrderedAggregate {
        group: Vec<SortKey>,
        aggregates: Vec<Aggregate>,
        /// WITH ROLLUP: after each group, a row for every prefix of the keys that ends there
        /// (its later keys NULL), and one for all rows at the end.
        rollup: bool,
    },
    /// Keeps the rows for which the predicate is true (HAVING, evaluated after the merge).
    Filter { predicate: EvalExpr },
    /// Sorts every row in memory (ORDER BY after aggregation); bounded by the buffered-row limit.
    MemorySort { keys: Vec<SortKey> },
    /// Skips `offset` rows and stops after `count` more; reading from shards stops too.
    Limit { offset: u64, count: u64 },
    /// The client's columns, in order (helper columns the later stages need may follow).
    Projection { columns: Vec<OutputColumn> },
    /// Drops the last `count` columns: helpers the planner added for sorting.
    DropHidden { count: usize },
    /// A scalar subquery's matches per row, in the last column, then dropped: more than one is
    /// MySQL's 1242.
    AtMostOne,
    /// Appends one partial per entry, for aggregating rows that carry no partials of their own
    /// (a derived table's): each aggregate combines its own column.
    Partials { partials: Vec<Partial> },
}

/// One appended partial of [`Stage::Partials`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partial {
    /// 1 per row (`None`: COUNT(*)), or 1 when the column is not NULL and 0 when it is.
    Count(Option<usize>),
    /// A copy of the column (SUM, MIN, MAX combine it).
    Value(usize),
}

/// A shard-computed partial aggregate in `column`, and how partials combine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub column: usize,
    pub kind: AggregateKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggregateKind {
    /// Shards' counts, summed.
    Count,
    /// Shards' sums, summed exactly (integers and DECIMAL) or as doubles. NULL when all are NULL.
    Sum,
    /// The least of the shards' values; `weight` is the collation weight column for text.
    Min {
        weight: Option<usize>,
    },
    Max {
        weight: Option<usize>,
    },
    /// `COUNT(DISTINCT x)`: shards group by x too, so each distinct x arrives in consecutive rows;
    /// counts the distinct non-NULL x of each group.
    CountDistinct {
        weight: Option<usize>,
    },
    /// `COUNT(DISTINCT x, y, ...)`: like `CountDistinct`, over the tuples of the `keys`' columns
    /// (the aggregate's own column only holds the count); a tuple with a NULL counts nothing.
    CountDistinctTuple {
        keys: Vec<SortKey>,
    },
    /// `SUM(DISTINCT x)`, like `CountDistinct`.
    SumDistinct {
        weight: Option<usize>,
    },
    /// BIT_AND / BIT_OR / BIT_XOR: the shards' 64-bit results combined bit by bit.
    Bit(BitOp),
    /// The population variance of x, from each shard's `VAR_POP(x)` (as a full-precision
    /// double), `COUNT(x)` and `SUM(x)` in the `count` and `sum` columns: each group's spread
    /// plus the spread of the groups' means (Chan et al.'s pairwise update). Merged before the
    /// count and sum it reads.
    Variance {
        count: usize,
        sum: usize,
    },
    /// `GROUP_CONCAT(...)`: the shards' strings (one per group and ORDER BY value) joined in the
    /// merged order, cut to the session's `group_concat_max_len` (the `max_len` column) with
    /// warning 1260. With DISTINCT, a string whose `distinct` keys equal the previous one's is
    /// one more copy of the same value.
    GroupConcat {
        separator: Vec<u8>,
        max_len: usize,
        distinct: Option<Vec<SortKey>>,
    },
}

/// What the variance family reports: `VAR_POP`/`VARIANCE` (neither), `VAR_SAMP` (sample),
/// `STD`/`STDDEV`/`STDDEV_POP` (root), `STDDEV_SAMP` (both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// Divides by n - 1 rather than n (NULL for one value).
    pub sample: bool,
    /// The square root: a standard deviation.
    pub root: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
}

/// One column the client sees.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputColumn {
    /// An input column as it is.
    Column(usize),
    /// An input column under a computed definition: `COUNT(DISTINCT)` (BIGINT) or
    /// `SUM(DISTINCT)` (the type of SUM over the column's type).
    Computed {
        column: usize,
        name: String,
        kind: ComputedKind,
    },
    /// An input column under another name (`t.x AS y`).
    Named { column: usize, name: String },
    /// `AVG(x)` = SUM / COUNT, to the sum's scale + 4 as MySQL does (a double for doubles).
    Avg {
        sum: usize,
        count: usize,
        name: String,
    },
    /// An expression over the row's columns, computed here (a select item over both tables of a
    /// join, arithmetic on aggregates), typed as MariaDB types it.
    Eval { expr: EvalExpr, name: String },
    /// A variance or standard deviation from the merged population variance in `variance` and
    /// the count in `count`, under the definition of the shards' own column `def` (a DOUBLE
    /// whose decimals the text protocol shows).
    Spread {
        def: usize,
        variance: usize,
        count: usize,
        spread: Spread,
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputedKind {
    Count,
    Sum,
}

/// Sends one statement to the shards its opcode selects, unchanged on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub keyspace: String,
    pub opcode: Opcode,
    pub query: String,
    /// The text for every shard reached but the first, when it differs (a UNION ALL branch that
    /// reads only reference tables gives its rows on one shard only).
    pub elsewhere: Option<String>,
}

impl Route {
    /// The text for the `nth` shard the route reaches.
    pub fn text_for(&self, nth: usize) -> &str {
        match (&self.elsewhere, nth) {
            (Some(text), 1..) => text,
            _ => &self.query,
        }
    }
}

/// Which shards a [`Route`] reaches. Shards are resolved at execution time from the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opcode {
    /// The keyspace's only shard. Requires an unsharded keyspace, or a sharded one of one shard
    /// for a statement that only reads.
    Unsharded,
    /// Any one shard. Requires that every table read is a reference table (a full copy per shard).
    Reference,
    /// Exactly one shard. Requires a unique vindex and one value for its column.
    EqualUnique {
        vindex: Arc<Vindex>,
        value: KeyValue,
    },
    /// The shards owning these values. Requires a unique vindex; the statement itself keeps the
    /// whole list, each shard filtering its own rows.
    In {
        vindex: Arc<Vindex>,
        values: Vec<KeyValue>,
    },
    /// Every shard; rows are concatenated, affected rows summed. Requires a statement whose result
    /// needs no merging (no ORDER BY, LIMIT, aggregates, GROUP BY, DISTINCT or HAVING).
    Scatter,
    /// The shards holding a lookup value, found by reading the lookup table at execution time
    /// (one for a unique lookup vindex); any one shard when the value has no lookup row (then
    /// no row holds it). Lookup rows are written before their owners and removed after them.
    Lookup {
        vindex: Arc<LookupVindex>,
        value: KeyValue,
    },
    /// The shard the session targeted with `USE keyspace:shard`; the statement goes there as
    /// written, without routing.
    Destination { shard: String },
    /// The shards whose key ranges hold keyspace IDs starting with the prefix that values of a
    /// `multicol` vindex's first columns give.
    Prefix {
        vindex: Arc<Vindex>,
        values: Vec<KeyValue>,
    },
}

impl Opcode {
    pub fn name(&self) -> &'static str {
        match self {
            Opcode::Unsharded => "Unsharded",
            Opcode::Reference => "Reference",
            Opcode::EqualUnique { .. } => "EqualUnique",
            Opcode::In { .. } => "In",
            Opcode::Scatter => "Scatter",
            Opcode::Lookup { .. } => "Lookup",
            Opcode::Destination { .. } => "Destination",
            Opcode::Prefix { .. } => "Prefix",
        }
    }

    /// Whether the opcode always reaches exactly one shard.
    pub fn is_single_shard(&self) -> bool {
        matches!(
            self,
            Opcode::Unsharded | Opcode::Reference | Opcode::EqualUnique { .. }
        )
    }
}

/// A multi-row INSERT into a sharded table, split by target shard: each shard gets one INSERT with
/// `prefix`, its own rows joined by `,`, and `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    pub keyspace: String,
    pub table: String,
    pub vindex: Arc<Vindex>,
    /// `INSERT INTO t (a, b) VALUES `
    pub prefix: String,
    pub rows: Vec<InsertRow>,
    /// ` ON DUPLICATE KEY UPDATE ...`, or empty.
    pub suffix: String,
    /// Fills the AUTO_INCREMENT column from a sequence.
    pub generate: Option<Generate>,
    /// Lookup rows written (and checked for duplicates) before the table's rows, or checked.
    pub lookups: Vec<OwnedLookup>,
    /// The suffix has `RETURNING ...` (MariaDB): the statement has one row, and the rows its
    /// shard returns are the result.
    pub returning: bool,
    /// The rows came from a SELECT: MySQL reports `Records: n  Duplicates: d  Warnings: w`
    /// even for one row.
    pub from_select: bool,
}

/// A lookup vindex a write keeps or checks: `columns` of `table` map through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedLookup {
    pub vindex: Arc<LookupVindex>,
    /// The table owns it: its inserts write the lookup rows. Otherwise an insert checks that the
    /// lookup maps each row's value to the row's keyspace ID.
    pub owned: bool,
    pub table: String,
    /// The table's primary vindex columns: which rows of a shard share a keyspace ID.
    pub primary: Vec<String>,
    pub columns: Vec<String>,
    /// Which of `columns` is the AUTO_INCREMENT column: a row whose id is generated has it
    /// filled with that id.
    pub generated: Option<usize>,
}

impl OwnedLookup {
    /// The columns as messages name them: `email`, or `oname, corder_id`.
    pub fn display(&self) -> String {
        self.columns.join(", ")
    }
}

/// DELETE or UPDATE of a table that owns lookup vindexes: the rows the statement touches are read
/// first (`select` returns the primary vindex value, then each lookup column), so their lookup
/// rows can be removed after the statement (DELETE), or claimed before and released after it
/// (UPDATE setting a lookup column to `new_value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedWrite {
    pub route: Route,
    pub select: String,
    pub vindex: Arc<Vindex>,
    pub lookups: Vec<OwnedLookup>,
    /// For an UPDATE of a lookup column: which lookup (index), which of its columns, and the
    /// new value (None: NULL).
    pub new_value: Option<NewLookupValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLookupValue {
    pub lookup: usize,
    pub column: usize,
    pub value: Option<KeyValue>,
}

/// Where generated ids come from and which value of each row they replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generate {
    pub sequence: SequenceRef,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertRow {
    /// The row's value for the primary vindex column; `None` when it is the generated id.
    pub value: Option<KeyValue>,
    /// Each value as the client wrote it.
    pub values: Vec<String>,
    /// Whether this row's AUTO_INCREMENT value is generated.
    pub generate: bool,
    /// The row's values for each owned lookup, in `Insert::lookups` order, one per column
    /// (None: NULL, or the id still to be generated).
    pub lookup_values: Vec<Vec<Option<KeyValue>>>,
}

impl InsertRow {
    /// The row as SQL, `(1, 'x')`, with the generated id in place.
    pub fn sql(&self, column: Option<usize>, id: Option<u64>) -> String {
        let mut out = String::from("(");
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match (column, id) {
                (Some(c), Some(id)) if c == i => out.push_str(&id.to_string()),
                _ => out.push_str(v),
            }
        }
        out.push(')');
        out
    }
}

/// Sends one statement to every shard of a keyspace and reports the first shard's outcome: DDL,
/// and writes to reference tables (every copy changes the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub keyspace: String,
    pub query: String,
    pub kind: SendKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// DDL: each shard applies it on its own (DDL commits, so no transaction can hold it).
    Ddl,
    /// A write to a reference table: every copy changes, or none does.
    Write,
}

/// The verb of a statement (`update`, `select`, ...), lower case, after leading spaces,
/// parentheses and comments.
pub fn verb(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else if rest.starts_with("-- ") || rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    &rest[..end]
}

impl Plan {
    /// Whether the plan is a write that may change rows in more than one place (several shards,
    /// or a lookup table and the table that owns it). Such a write must apply everywhere or
    /// nowhere: the gate runs it in a transaction of its own, or, inside a client's
    /// transaction, undoes its parts when one of them fails.
    pub fn may_write_several(&self) -> bool {
        match self {
            Plan::Send(s) => s.kind == SendKind::Write,
            Plan::Insert(i) => i.lookups.iter().any(|l| l.owned) || i.rows.len() > 1,
            Plan::OwnedWrite(_) | Plan::OrderedWrite(_) => true,
            Plan::Route(r) => {
                !r.opcode.is_single_shard()
                    && !matches!(&r.opcode, Opcode::Lookup { vindex, .. } if vindex.unique)
                    && !matches!(r.opcode, Opcode::Destination { .. })
                    && ["insert", "update", "delete", "replace"]
                        .iter()
                        .any(|v| verb(&r.query).eq_ignore_ascii_case(v))
            }
            _ => false,
        }
    }

    /// The statements the plan sends to shards, with their keyspaces, holes filled with NULL
    /// (what `VEXPLAIN ALL` asks the shards to explain). Inserts and DDL have none worth it.
    pub fn shard_queries(&self) -> Vec<(&str, String)> {
        let mut out = Vec::new();
        self.collect_queries(&mut out);
        out
    }

    fn collect_queries<'a>(&'a self, out: &mut Vec<(&'a str, String)>) {
        match self {
            Plan::Route(r) => out.push((&r.keyspace, r.query.clone())),
            Plan::Merge(s) => out.push((&s.route.keyspace, s.route.query.clone())),
            Plan::OwnedWrite(w) => out.push((&w.route.keyspace, w.route.query.clone())),
            Plan::Insert(_) | Plan::Send(_) => {}
            Plan::Join(j) => {
                j.left.collect_queries(out);
                out.push((&j.right.keyspace, j.right.query.render(|_| "NULL")));
            }
            Plan::Derived(d) => d.inner.collect_queries(out),
            Plan::ShardEval(e) => e.input.collect_queries(out),
            Plan::Append(plans) => {
                for p in plans {
                    p.collect_queries(out);
                }
            }
            Plan::InsertSelect(i) => i.select.collect_queries(out),
            Plan::OrderedWrite(w) => out.push((&w.route.keyspace, w.route.query.clone())),
            Plan::Concat(parts) => {
                out.extend(parts.iter().map(|r| (r.keyspace.as_str(), r.query.clone())))
            }
            Plan::PullOut(p) => {
                // The statement itself is planned once their values are known.
                for s in &p.subqueries {
                    s.plan.collect_queries(out);
                }
            }
        }
    }

    /// Every keyspace the plan sends statements to (lookup vindexes' own tables aside), each once.
    pub fn keyspaces(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_keyspaces(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn collect_keyspaces<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Plan::Route(r) => out.push(&r.keyspace),
            Plan::Merge(s) => out.push(&s.route.keyspace),
            Plan::OwnedWrite(w) => out.push(&w.route.keyspace),
            Plan::Insert(i) => out.push(&i.keyspace),
            Plan::Send(s) => out.push(&s.keyspace),
            Plan::Join(j) => {
                j.left.collect_keyspaces(out);
                out.push(&j.right.keyspace);
            }
            Plan::Derived(d) => d.inner.collect_keyspaces(out),
            Plan::ShardEval(e) => e.input.collect_keyspaces(out),
            Plan::Append(plans) => {
                for p in plans {
                    p.collect_keyspaces(out);
                }
            }
            Plan::Concat(parts) => out.extend(parts.iter().map(|r| r.keyspace.as_str())),
            Plan::InsertSelect(i) => i.select.collect_keyspaces(out),
            Plan::OrderedWrite(w) => out.push(&w.route.keyspace),
            Plan::PullOut(p) => {
                for s in &p.subqueries {
                    s.plan.collect_keyspaces(out);
                }
            }
        }
    }

    /// The plan as an indented tree, one primitive per line.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        match self {
            Plan::Route(r) => {
                let _ = write!(out, "Route {} {}", r.opcode.name(), r.keyspace);
                match &r.opcode {
                    Opcode::EqualUnique { vindex, value } => {
                        let _ = write!(out, " vindex={} value={}", vindex.name, value);
                    }
                    Opcode::Destination { shard } => {
                        let _ = write!(out, " shard={shard}");
                    }
                    Opcode::Lookup { vindex, value } => {
                        let _ = write!(out, " vindex={} value={}", vindex.name, value);
                    }
                    Opcode::In { vindex, values } | Opcode::Prefix { vindex, values } => {
                        let vals: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                        let _ = write!(out, " vindex={} values=[{}]", vindex.name, vals.join(", "));
                    }
                    _ => {}
                }
                let _ = write!(out, "\n  query: {}", r.query);
                if let Some(text) = &r.elsewhere {
                    let _ = write!(out, "\n  elsewhere: {text}");
                }
            }
            Plan::Insert(i) => {
                let _ = write!(
                    out,
                    "Insert {} table={} vindex={}",
                    i.keyspace, i.table, i.vindex.name
                );
                for l in &i.lookups {
                    let what = if l.owned { "lookup" } else { "verify" };
                    let _ = write!(out, " {what}={}({})", l.vindex.name, l.display());
                }
                if let Some(g) = &i.generate {
                    let _ = write!(
                        out,
                        " sequence={}.{} column={}",
                        g.sequence.keyspace, g.sequence.table, g.column
                    );
                }
                for row in &i.rows {
                    let value = row
                        .value
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "<generated>".into());
                    let generated = if row.generate { " (id generated)" } else { "" };
                    let _ = write!(
                        out,
                        "\n  row value={value}: {}{generated}",
                        row.sql(None, None)
                    );
                }
                let _ = write!(out, "\n  query: {}…{}", i.prefix, i.suffix);
            }
            Plan::Send(s) => {
                let atomic = match s.kind {
                    SendKind::Ddl => "",
                    SendKind::Write => " (all or none)",
                };
                let _ = write!(
                    out,
                    "Send AllShards {}{atomic}\n  query: {}",
                    s.keyspace, s.query
                );
            }
            Plan::OwnedWrite(w) => {
                let lookups: Vec<&str> = w.lookups.iter().map(|l| l.vindex.name.as_str()).collect();
                let _ = write!(out, "OwnedWrite lookups=[{}]", lookups.join(", "));
                if let Some(n) = &w.new_value {
                    let v = n
                        .value
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "NULL".into());
                    let _ = write!(out, " set {}={v}", w.lookups[n.lookup].columns[n.column]);
                }
                let _ = write!(out, "\n  select: {}", w.select);
                for line in Plan::Route(w.route.clone()).describe().lines() {
                    let _ = write!(out, "\n  {line}");
                }
            }
            Plan::OrderedWrite(w) => {
                let _ = write!(
                    out,
                    "OrderedWrite limit={} keys={}\n  write: {}",
                    w.limit,
                    keys(&w.keys),
                    w.write
                );
                for line in Plan::Route(w.route.clone()).describe().lines() {
                    let _ = write!(out, "\n  probe: {line}");
                }
            }
            Plan::InsertSelect(i) => {
                let _ = write!(
                    out,
                    "InsertSelect\n  insert: {}<rows>{}\n  select:",
                    i.prefix, i.suffix
                );
                for line in i.select.describe().lines() {
                    let _ = write!(out, "\n    {line}");
                }
            }
            Plan::Concat(parts) => {
                out.push_str("Concatenate");
                for part in parts {
                    for line in Plan::Route(part.clone()).describe().lines() {
                        let _ = write!(out, "\n  {line}");
                    }
                }
            }
            Plan::Append(plans) => {
                let _ = write!(out, "Append");
                for p in plans {
                    for line in p.describe().lines() {
                        let _ = write!(out, "\n  {line}");
                    }
                }
            }
            Plan::ShardEval(e) => {
                let mut depth = 0;
                for stage in e.stages.iter().rev() {
                    let _ = writeln!(out, "{}{}", "  ".repeat(depth), describe_stage(stage));
                    depth += 1;
                }
                let indent = "  ".repeat(depth);
                let _ = write!(
                    out,
                    "{indent}ShardEval {} items={:?} select: {}\n{indent}  typing: {}",
                    e.keyspace, e.items, e.select, e.typing
                );
                for line in e.input.describe().lines() {
                    let _ = write!(out, "\n{indent}  {line}");
                }
            }
            Plan::Derived(d) => {
                let mut depth = 0;
                for stage in d.stages.iter().rev() {
                    let _ = writeln!(out, "{}{}", "  ".repeat(depth), describe_stage(stage));
                    depth += 1;
                }
                let indent = "  ".repeat(depth);
                let _ = write!(out, "{indent}Derived");
                for line in d.inner.describe().lines() {
                    let _ = write!(out, "\n{indent}  {line}");
                }
            }
            Plan::Join(j) => {
                let columns: Vec<String> = j
                    .columns
                    .iter()
                    .map(|c| match c {
                        JoinColumn::Left(i) => format!("L{i}"),
                        JoinColumn::Right(i) => format!("R{i}"),
                        JoinColumn::LeftFrom(i) => format!("L{i}.."),
                        JoinColumn::RightFrom(i) => format!("R{i}.."),
                    })
                    .collect();
                let mut depth = 0;
                for stage in j.stages.iter().rev() {
                    let _ = writeln!(out, "{}{}", "  ".repeat(depth), describe_stage(stage));
                    depth += 1;
                }
                let indent = "  ".repeat(depth);
                let _ = write!(
                    out,
                    "{indent}Join {:?} keys={:?}{} columns=[{}]\n{indent}  left:",
                    j.kind,
                    j.left_keys,
                    j.on.as_ref()
                        .map(|e| format!(" on={e}"))
                        .unwrap_or_default(),
                    columns.join(", ")
                );
                for line in j.left.describe().lines() {
                    let _ = write!(out, "\n{indent}    {line}");
                }
                let shards = match &j.right.vindex {
                    Some(v) => format!("In vindex={} (the keys' shards)", v.name),
                    None => j.right.opcode.name().to_string(),
                };
                let query = &j.right.query;
                let _ = write!(
                    out,
                    "\n{indent}  right: {shards} {} keys=[{}]\n{indent}    query: {query}",
                    j.right.keyspace,
                    j.right.keys.join(", ")
                );
            }
            Plan::PullOut(p) => {
                let _ = write!(out, "PullOut");
                for (i, s) in p.subqueries.iter().enumerate() {
                    let _ = write!(out, "\n  subquery {i} ({:?}):", s.kind);
                    for line in s.plan.describe().lines() {
                        let _ = write!(out, "\n    {line}");
                    }
                }
                let _ = write!(out, "\n  then: {}", p.template);
            }
            Plan::Merge(select) => {
                let mut depth = 0;
                for stage in select.stages.iter().rev() {
                    let _ = writeln!(out, "{}{}", "  ".repeat(depth), describe_stage(stage));
                    depth += 1;
                }
                let indent = "  ".repeat(depth);
                if !select.merge.is_empty() {
                    let star = select
                        .wildcard
                        .map(|w| {
                            format!(
                                " (columns after `*` shift; {} helper columns last)",
                                w.hidden
                            )
                        })
                        .unwrap_or_default();
                    let _ = writeln!(out, "{indent}MergeSort {}{star}", keys(&select.merge));
                    depth += 1;
                }
                let route = Plan::Route(select.route.clone()).describe();
                let indent = "  ".repeat(depth);
                let lines: Vec<String> = route.lines().map(|l| format!("{indent}{l}")).collect();
                out.push_str(&lines.join("\n"));
            }
        }
        out
    }
}

fn keys(keys: &[SortKey]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .map(|k| {
            let mut s = format!("{}", k.column);
            match k.weight {
                Weight::None => {}
                Weight::Column(w) => s.push_str(&format!("/weight {w}")),
                Weight::Collation(c) => s.push_str(&format!("/{c:?}")),
            }
            if k.desc {
                s.push_str(" desc");
            }
            s
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn describe_stage(stage: &Stage) -> String {
    match stage {
        Stage::OrderedAggregate {
            group,
            aggregates,
            rollup,
        } => {
            let aggs: Vec<String> = aggregates
                .iter()
                .map(|a| {
                    let kind = match &a.kind {
                        AggregateKind::Count => "count".to_string(),
                        AggregateKind::Sum => "sum".to_string(),
                        AggregateKind::Min { .. } => "min".to_string(),
                        AggregateKind::Max { .. } => "max".to_string(),
                        AggregateKind::CountDistinct { .. } => "count_distinct".to_string(),
                        AggregateKind::CountDistinctTuple { keys: k } => {
                            format!("count_distinct{}", keys(k))
                        }
                        AggregateKind::SumDistinct { .. } => "sum_distinct".to_string(),
                        AggregateKind::Bit(BitOp::And) => "bit_and".to_string(),
                        AggregateKind::Bit(BitOp::Or) => "bit_or".to_string(),
                        AggregateKind::Bit(BitOp::Xor) => "bit_xor".to_string(),
                        AggregateKind::GroupConcat { distinct, .. } => match distinct {
                            Some(k) => format!("group_concat_distinct{}", keys(k)),
                            None => "group_concat".to_string(),
                        },
                        AggregateKind::Variance { count, sum } => {
                            format!("variance[count={count} sum={sum}]")
                        }
                    };
                    format!("{kind}({})", a.column)
                })
                .collect();
            format!(
                "OrderedAggregate group={} aggregates=[{}]{}",
                keys(group),
                aggs.join(", "),
                if *rollup { " rollup" } else { "" }
            )
        }
        Stage::Filter { predicate } => format!("Filter {predicate}"),
        Stage::MemorySort { keys: k } => format!("MemorySort {}", keys(k)),
        Stage::Limit { offset, count } => format!("Limit offset={offset} count={count}"),
        Stage::DropHidden { count } => format!("DropHidden count={count}"),
        Stage::AtMostOne => "AtMostOne".to_string(),
        Stage::Partials { partials } => {
            let p: Vec<String> = partials
                .iter()
                .map(|p| match p {
                    Partial::Count(None) => "count(*)".to_string(),
                    Partial::Count(Some(i)) => format!("count({i})"),
                    Partial::Value(i) => format!("{i}"),
                })
                .collect();
            format!("Partials [{}]", p.join(", "))
        }
        Stage::Projection { columns } => {
            let cols: Vec<String> = columns
                .iter()
                .map(|c| match c {
                    OutputColumn::Column(i) => format!("{i}"),
                    OutputColumn::Named { column, name } => format!("{column} as {name:?}"),
                    OutputColumn::Computed { column, name, .. } => format!("{column} as {name:?}"),
                    OutputColumn::Avg { sum, count, name } => format!("{sum}/{count} as {name:?}"),
                    OutputColumn::Eval { expr, name } => format!("{expr} as {name:?}"),
                    OutputColumn::Spread {
                        variance,
                        count,
                        spread,
                        name,
                        ..
                    } => format!(
                        "{}{}({variance}/{count}) as {name:?}",
                        if spread.root { "stddev" } else { "variance" },
                        if spread.sample { "_samp" } else { "_pop" },
                    ),
                })
                .collect();
            format!("Projection [{}]", cols.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holes are typed: text around them is never searched, whatever a client's string holds
    /// (control characters included, which the markers of old were made of).
    #[test]
    fn templates_fill_holes_only() {
        let mut t = SqlTemplate::from("SELECT '\u{1}0\u{1}' FROM t WHERE a IN (");
        t.push_hole(Hole::Subquery(0));
        t.push_str(") AND b = '?1'");
        assert_eq!(
            t.render(|_| "1, 2"),
            "SELECT '\u{1}0\u{1}' FROM t WHERE a IN (1, 2) AND b = '?1'"
        );
        assert_eq!(
            t.to_string(),
            "SELECT '\u{1}0\u{1}' FROM t WHERE a IN (<subquery 0>) AND b = '?1'"
        );
        let upper = t.map_texts(|s| Some(s.to_uppercase())).unwrap();
        assert_eq!(
            upper.render(|_| "x"),
            "SELECT '\u{1}0\u{1}' FROM T WHERE A IN (x) AND B = '?1'"
        );
    }
}
