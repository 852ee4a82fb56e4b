//! The command line: `check` prints the topology or a located error and exits non-zero.

use std::process::Command;

fn shardgate(args: &[&str]) -> (bool, String, String) {
    let out = testkit::output_within(
        Command::new(env!("CARGO_BIN_EXE_shardgate"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
        std::time::Duration::from_secs(60),
        "shardgate",
    )
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_topology() {
    let (ok, stdout, _) = shardgate(&["check", "--config", "config/2shards.toml"]);
    assert!(ok);
    assert!(stdout.contains("keyspace commerce (sharded)"), "{stdout}");
    assert!(
        stdout.contains("shard -80      mysql://root@127.0.0.1:17100/commerce"),
        "{stdout}"
    );
    assert!(stdout.contains("table products: reference"), "{stdout}");

    let (ok, stdout, _) = shardgate(&["check", "--config", "config/4shards.toml"]);
    assert!(ok);
    assert!(
        stdout.contains("table tags: sharded by tag (xxhash vindex xxhash)"),
        "{stdout}"
    );
}

#[test]
fn check_reports_a_located_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/2shards.toml"))
        .unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace(
            "vindex = \"hash\" } }\ntables.orders",
            "vindex = \"hsh\" } }\ntables.orders",
        ),
    )
    .unwrap();
    let (ok, _, stderr) = shardgate(&["check", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("bad.toml:17: keyspaces.commerce.tables.customers.primary_vindex.vindex: unknown vindex \"hsh\""), "{stderr}");

    let (ok, _, stderr) = shardgate(&["check", "--config", "/nonexistent.toml"]);
    assert!(!ok);
    assert!(stderr.contains("cannot read config"), "{stderr}");
}

#[test]
fn check_reads_a_vitess_vschema_json() {
    let (ok, stdout, _) = shardgate(&["check", "--vschema-json", "config/commerce-vschema.json"]);
    assert!(ok);
    assert!(stdout.contains("sharded keyspace"), "{stdout}");
    assert!(
        stdout.contains("table customers: sharded by customer_id (hash vindex hash)"),
        "{stdout}"
    );
}

#[test]
fn explain_prints_the_plan() {
    let (ok, stdout, _) = shardgate(&[
        "explain",
        "--config",
        "config/2shards.toml",
        "--keyspace",
        "commerce",
        "select * from orders where customer_id = 4",
    ]);
    assert!(ok);
    assert!(
        stdout.starts_with("Route EqualUnique commerce vindex=hash value=4"),
        "{stdout}"
    );
}

/// `check --vschema-json` on the forms Vitess writes: a keyspace map (vtexplain's
/// `sample_vschema.json` shape) is described keyspace by keyspace, never as one unsharded
/// keyspace; a lone keyspace's unqualified sequence says where it resolves.
#[test]
fn check_describes_a_vitess_keyspace_map() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("sample_vschema.json");
    std::fs::write(
        &map,
        r#"{"ks1": {"sharded": true, "vindexes": {"hash": {"type": "hash"}, "md5": {"type": "binary_md5"}},
                   "tables": {"user": {"columnVindexes": [{"column": "id", "name": "hash"}],
                                       "autoIncrement": {"column": "id", "sequence": "user_seq"}},
                              "music": {"column_vindexes": [{"column": "name", "name": "md5"}]}}},
            "main": {"tables": {"user_seq": {"type": "sequence"}}}}"#,
    )
    .unwrap();
    let (ok, stdout, stderr) = shardgate(&["check", "--vschema-json", map.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("keyspace ks1 (sharded)"), "{stdout}");
    assert!(stdout.contains("keyspace main (unsharded)"), "{stdout}");
    assert!(
        stdout.contains(
            "table user: sharded by id (hash vindex hash), id from sequence main.user_seq"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("table music: sharded by name (binary_md5 vindex md5)"),
        "{stdout}"
    );

    let one = dir.path().join("customer.json");
    std::fs::write(
        &one,
        r#"{"sharded": true, "vindexes": {"hash": {"type": "hash"}},
            "tables": {"customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}],
                                    "auto_increment": {"column": "customer_id", "sequence": "customer_seq"}}}}"#,
    )
    .unwrap();
    let (ok, stdout, stderr) = shardgate(&["check", "--vschema-json", one.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout
            .contains("customer_id from sequence customer_seq (the unsharded keyspace holding it)"),
        "{stdout}"
    );
}

/// What `shardgate check` says of Vitess's example VSchemas (tests/vitess): each lookup with its
/// type, table and whether the table writes it; multi-column vindexes with their columns.
#[test]
fn check_describes_vitess_examples() {
    let (ok, stdout, stderr) =
        shardgate(&["check", "--vschema-json", "tests/vitess/demo_customer.json"]);
    assert!(ok, "{stderr}");
    for line in [
        "table corder: sharded by customer_id (xxhash vindex hash), corder_id via consistent_lookup_unique corder_keyspace_idx (product.corder_keyspace_idx), (oname, corder_id) via consistent_lookup oname_keyspace_idx (customer.oname_keyspace_idx), corder_id from sequence product.corder_seq",
        "table corder_event: sharded by keyspace_id (binary vindex binary), corder_id via consistent_lookup_unique corder_keyspace_idx (product.corder_keyspace_idx, read only), corder_event_id from sequence product.corder_event_seq",
        "table oname_keyspace_idx: sharded by oname (unicode_loose_md5 vindex unicode_loose_md5)",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    let (ok, stdout, stderr) = shardgate(&[
        "check",
        "--vschema-json",
        "tests/vitess/compose_test_keyspace.json",
    ]);
    assert!(ok, "{stderr}");
    let line = "table messages: sharded by page (xxhash vindex hash), message via lookup_hash messages_message_lookup (lookup_keyspace.messages_message_lookup, autocommit)";
    assert!(stdout.contains(line), "{line}\n{stdout}");
    let (ok, stdout, stderr) = shardgate(&["check", "--vschema-json", "tests/vitess/regions.json"]);
    assert!(ok, "{stderr}");
    for line in [
        "table customer: sharded by id, country (region_json vindex region_vdx)",
        "table visits: sharded by site, id (multicol vindex mc)",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
}
