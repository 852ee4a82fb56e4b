//! The merge and the linter on schemas as MariaDB 10.11 describes them.

use crate::*;

fn schema(tables: &[&str]) -> Schema {
    Schema::parse(tables.iter().copied()).unwrap()
}

const BASE: &str = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `a` int(11) DEFAULT NULL,\n  `b` varchar(20) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `ka` (`a`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";

fn with(replace: &[(&str, &str)]) -> String {
    let mut text = BASE.to_string();
    for (old, new) in replace {
        assert!(text.contains(old), "{old}");
        text = text.replace(old, new);
    }
    text
}

#[test]
fn changes_to_different_parts_merge() {
    let base = schema(&[BASE]);
    // Main added column c at the end; the branch added column e after a and an index on b.
    let main = schema(&[&with(&[(
        "  PRIMARY KEY",
        "  `c` int(11) DEFAULT NULL,\n  PRIMARY KEY",
    )])]);
    let branch = schema(&[&with(&[
        ("  `b` varchar", "  `e` date DEFAULT NULL,\n  `b` varchar"),
        ("  KEY `ka` (`a`)", "  KEY `ka` (`a`),\n  KEY `kb` (`b`)"),
    ])]);
    let merged = three_way(&base, &main, &branch).unwrap();
    let t = &merged.tables["t"];
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "a", "e", "b", "c"]);
    assert!(t.key("kb").is_some() && t.key("ka").is_some());
    let ddl = diff(&main, &merged);
    assert_eq!(ddl.len(), 1);
    assert!(
        ddl[0]
            .sql
            .contains("ADD COLUMN `e` DATE DEFAULT NULL AFTER `a`"),
        "{ddl:?}"
    );
    assert!(ddl[0].sql.contains("ADD KEY `kb` (`b`)"), "{ddl:?}");
    assert!(
        !ddl[0].sql.contains("`c`"),
        "main's own change is kept: {ddl:?}"
    );
}

#[test]
fn the_same_change_on_both_sides_is_no_conflict() {
    let base = schema(&[BASE]);
    let changed = schema(&[&with(&[(
        "`a` int(11) DEFAULT NULL",
        "`a` bigint(20) DEFAULT NULL",
    )])]);
    let merged = three_way(&base, &changed, &changed).unwrap();
    assert!(diff(&changed, &merged).is_empty());
}

#[test]
fn overlapping_changes_conflict() {
    let base = schema(&[BASE]);
    let main = schema(&[&with(&[(
        "`a` int(11) DEFAULT NULL",
        "`a` bigint(20) DEFAULT NULL",
    )])]);
    let branch = schema(&[&with(&[(
        "`a` int(11) DEFAULT NULL",
        "`a` int(11) NOT NULL",
    )])]);
    let conflicts = three_way(&base, &main, &branch).unwrap_err();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].part, Part::Column("a".into()));
    let said = conflicts[0].to_string();
    assert!(
        said.contains("column a changed on main") && said.contains("BIGINT(20)"),
        "{said}"
    );

    // Dropped on main, changed on the branch.
    let main = schema(&[&with(&[("  `b` varchar(20) DEFAULT NULL,\n", "")])]);
    let branch = schema(&[&with(&[("`b` varchar(20)", "`b` varchar(50)")])]);
    let conflicts = three_way(&base, &main, &branch).unwrap_err();
    assert_eq!(conflicts[0].part, Part::Column("b".into()));
    assert_eq!(conflicts[0].main, None);

    // A table dropped on main that the branch altered.
    let other = "CREATE TABLE `o` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";
    let base2 = schema(&[BASE, other]);
    let main = schema(&[BASE]);
    let branch = schema(&[
        BASE,
        &other.replace("  PRIMARY", "  `x` int(11) DEFAULT NULL,\n  PRIMARY"),
    ]);
    let conflicts = three_way(&base2, &main, &branch).unwrap_err();
    assert_eq!(
        (conflicts[0].table.as_str(), &conflicts[0].part),
        ("o", &Part::Table)
    );

    // An index on the branch over a column main dropped.
    let main = schema(&[&with(&[("  `b` varchar(20) DEFAULT NULL,\n", "")])]);
    let branch = schema(&[&with(&[(
        "  KEY `ka` (`a`)",
        "  KEY `ka` (`a`),\n  KEY `kb` (`b`)",
    )])]);
    let conflicts = three_way(&base, &main, &branch).unwrap_err();
    assert_eq!(conflicts[0].part, Part::Column("b".into()), "{conflicts:?}");
}

#[test]
fn lint_flags_what_a_change_risks() {
    let from = schema(&[BASE]);
    let to = schema(&[&with(&[
        ("  `b` varchar(20) DEFAULT NULL,\n", ""),
        ("  KEY `ka` (`a`)", "  UNIQUE KEY `ua` (`a`)"),
    ])]);
    let mut context = Context::default();
    context.rows.insert("t".into(), 10);
    context.sharded.insert("t".into());
    context.vindex_columns.insert("t".into(), vec!["id".into()]);
    let findings = lint(&from, &to, &context);
    let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    assert!(rules.contains(&"drop-column-with-rows"), "{findings:?}");
    assert!(rules.contains(&"unique-on-existing-rows"), "{findings:?}");
    assert!(rules.contains(&"unique-per-shard"), "{findings:?}");
    assert!(!rules.contains(&"vindex-column"), "{findings:?}");

    // Covered by a unique lookup vindex: unique across shards.
    context
        .unique_lookups
        .insert("t".into(), vec![vec!["a".into()]]);
    let rules: Vec<&str> = lint(&from, &to, &context).iter().map(|f| f.rule).collect();
    assert!(!rules.contains(&"unique-per-shard"));

    // The vindex column changed, the primary key changed, a table dropped with its rows.
    let to = schema(&[&with(&[
        ("`id` int(11) NOT NULL", "`id` bigint(20) NOT NULL"),
        ("PRIMARY KEY (`id`)", "PRIMARY KEY (`id`,`a`)"),
    ])]);
    let findings = lint(&from, &to, &context);
    assert_eq!(findings[0].severity, Severity::Error);
    let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    assert!(
        rules.contains(&"vindex-column") && rules.contains(&"primary-key-change"),
        "{findings:?}"
    );
    let findings = lint(&from, &Schema::default(), &context);
    assert_eq!(findings[0].rule, "drop-table-with-rows");
    assert!(findings[0].message.contains("10 rows"));

    // A new table without a primary key; no rows, nothing else.
    let bare = "CREATE TABLE `n` (\n  `v` int(11) DEFAULT NULL\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";
    let findings = lint(&from, &schema(&[BASE, bare]), &Context::default());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        (findings[0].rule, findings[0].table.as_str()),
        ("no-primary-key", "n")
    );
}
