//! SQL text → normalisation, statement splitting, parsing, planning and the plan's description,
//! over a keyspace map with sharded, reference, lookup and unsharded tables, and their columns
//! (for unqualified names and INSERT without a column list).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

static CONFIG: LazyLock<vschema::Config> = LazyLock::new(|| {
    vschema::parse_config(
        r#"[server]
listen = "127.0.0.1:0"

[keyspaces.ks]
sharded = true
shards = [{ name = "-80", primary = "mysql://root@127.0.0.1:1/ks" }, { name = "80-", primary = "mysql://root@127.0.0.1:2/ks" }]
vindexes.hash = { type = "hash" }
vindexes.xx = { type = "xxhash" }
vindexes.email = { type = "consistent_lookup_unique", table = "main.email_lookup", from = "email", to = "keyspace_id" }
tables.t = { primary_vindex = { column = "id", vindex = "hash" } }
tables.u = { primary_vindex = { column = "id", vindex = "hash" }, secondary_vindexes = [{ column = "email", vindex = "email" }], auto_increment = { column = "id", sequence = "main.seq" } }
tables.s = { primary_vindex = { column = "name", vindex = "xx" } }
tables.r = { type = "reference" }

[keyspaces.main]
sharded = false
shards = [{ name = "0", primary = "mysql://root@127.0.0.1:3/main" }]
tables.seq = { type = "sequence" }
"#,
        std::path::Path::new("fuzz.toml"),
    )
    .expect("the fuzz config is valid")
});

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    // Made for each input: the catalog's lists go stale after a minute.
    let catalog = planner::Catalog::default().with_keyspace(
        "ks",
        [
            ("t", "id"),
            ("t", "v"),
            ("t", "name"),
            ("u", "id"),
            ("u", "email"),
            ("u", "v"),
            ("s", "name"),
            ("s", "score"),
            ("r", "id"),
            ("r", "label"),
        ]
        .map(|(t, c)| planner::CatalogColumn::plain(t, c)),
    );
    let ctx = planner::Context {
        vschema: &CONFIG.vschema,
        keyspace: Some("ks"),
        catalog: &catalog,
    };
    if let Some(n) = planner::normalize(sql, false) {
        let _ = n.literals(sql, &[]);
    }
    let _ = planner::split_statements(sql);
    if let Ok(statements) = Parser::parse_sql(&MySqlDialect {}, sql) {
        for statement in &statements {
            if let Ok(plan) = planner::plan(statement, sql, &ctx) {
                let _ = plan.describe();
            }
        }
    }
});
