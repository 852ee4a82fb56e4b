use super::*;
use crate::KeyValue;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:15306"

[[users]]
name = "app"
password = "secret"

[keyspaces.commerce]
sharded = true
shards = [
  { name = "80-", primary = "mysql://root@127.0.0.1:17101/commerce" },
  { name = "-80", primary = "mysql://root:pw@127.0.0.1:17100/commerce" },
]
vindexes.hash = { type = "hash" }
tables.customers = { primary_vindex = { column = "customer_id", vindex = "hash" } }
tables.products = { type = "reference" }

[keyspaces.lookup]
sharded = false
shards = [{ name = "0", primary = "mysql://root@127.0.0.1:17102/lookup" }]
tables.seq = {}
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_config(text, Path::new("shardgate.toml"))
}

/// Replaces `from` with `to` in the good config and returns the error it produces.
fn mistake(from: &str, to: &str) -> ConfigError {
    assert!(GOOD.contains(from), "{from}");
    parse(&GOOD.replacen(from, to, 1)).expect_err("config should be rejected")
}

#[test]
fn good_config_loads() {
    let config = parse(GOOD).unwrap();
    let ks = config.vschema.keyspace("commerce").unwrap();
    assert!(ks.sharded);
    assert_eq!(
        ks.shards
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["-80", "80-"]
    );
    assert_eq!(ks.shards[0].primary.password.as_deref(), Some("pw"));
    assert_eq!(
        ks.shards[0].primary.to_string(),
        "mysql://root@127.0.0.1:17100/commerce"
    );
    assert!(
        matches!(ks.table("customers"), Some(Table::Sharded { column, .. }) if column == "customer_id")
    );
    assert_eq!(ks.table("products"), Some(&Table::Reference));
    assert_eq!(
        config.vschema.keyspace("lookup").unwrap().table("seq"),
        Some(&Table::Unsharded)
    );
    assert_eq!(
        config.users,
        vec![User {
            name: "app".into(),
            secret: Secret::Password("secret".into()),
            keyspaces: None,
            read_only: false,
            max_connections: 0,
            require_tls: false,
            read_target: crate::ReadTarget::Primary,
        }]
    );
}

#[test]
fn users_with_hashed_passwords() {
    let text = GOOD.replace(
        "password = \"secret\"",
        "password_hash = \"*14E65567ABDB5135D0CFD9A70B3032C179A49EE7\"",
    );
    let config = parse(&text).unwrap();
    assert!(
        matches!(config.users[0].secret, Secret::NativeHash(h) if h[0] == 0x14 && h[19] == 0xe7)
    );
    let e = mistake("password = \"secret\"", "password_hash = \"14E6\"");
    assert!(e.to_string().contains("users[0].password_hash"), "{e}");
    assert_eq!(parse_native_hash("*14E6"), None);
    assert_eq!(
        parse_native_hash("14E65567ABDB5135D0CFD9A70B3032C179A49EE7"),
        None
    );
    assert_eq!(
        parse_native_hash("*14E65567ABDB5135D0CFD9A70B3032C179A49EZZ"),
        None
    );
    let e = mistake(
        "password = \"secret\"",
        "password = \"x\"\npassword_hash = \"*14E65567ABDB5135D0CFD9A70B3032C179A49EE7\"",
    );
    assert!(
        e.to_string()
            .contains("give one of password, password_hash and password_sha2"),
        "{e}"
    );
}

#[test]
fn unknown_key_names_line() {
    let e = mistake("sharded = true", "sharded = true\nshardz = 3");
    assert_eq!(e.line, Some(11), "{e}");
    assert!(e.to_string().starts_with("shardgate.toml:11"), "{e}");
    assert!(e.message.contains("shardz"), "{e}");
}

#[test]
fn unknown_vindex() {
    let e = mistake(r#"vindex = "hash" }"#, r#"vindex = "hsh" }"#);
    assert_eq!(
        e.key,
        "keyspaces.commerce.tables.customers.primary_vindex.vindex"
    );
    assert_eq!(e.line, Some(16));
    assert!(e.message.contains("unknown vindex \"hsh\""), "{e}");
}

#[test]
fn unknown_vindex_type() {
    let e = mistake(r#"{ type = "hash" }"#, r#"{ type = "md5" }"#);
    assert_eq!(e.key, "keyspaces.commerce.vindexes.hash.type");
    assert_eq!(e.line, Some(15));
}

#[test]
fn table_without_primary_vindex() {
    let e = mistake(
        r#"tables.products = { type = "reference" }"#,
        "tables.products = {}",
    );
    assert_eq!(e.key, "keyspaces.commerce.tables.products");
    assert_eq!(e.line, Some(17));
    assert!(e.message.contains("needs a primary_vindex"), "{e}");
}

#[test]
fn gap_in_shards() {
    let e = mistake(r#"name = "80-""#, r#"name = "90-""#);
    assert_eq!(e.key, "keyspaces.commerce.shards");
    assert!(e.message.contains("gap"), "{e}");
}

#[test]
fn overlapping_shards() {
    let e = mistake(r#"name = "80-""#, r#"name = "70-""#);
    assert!(e.message.contains("overlap"), "{e}");
}

#[test]
fn malformed_shard_name() {
    let e = mistake(r#"name = "80-""#, r#"name = "8g-""#);
    assert_eq!(e.key, "keyspaces.commerce.shards[0].name");
    assert_eq!(e.line, Some(12));
}

#[test]
fn malformed_address() {
    for bad in [
        "mysql://root@127.0.0.1/commerce",
        "postgres://root@h:1/db",
        "mysql://root@127.0.0.1:99999/commerce",
        "mysql://root@127.0.0.1:17101",
    ] {
        let e = mistake("mysql://root@127.0.0.1:17101/commerce", bad);
        assert_eq!(e.key, "keyspaces.commerce.shards[0].primary", "{bad}");
        assert_eq!(e.line, Some(12));
        assert!(e.message.contains("malformed address"), "{e}");
    }
}

#[test]
fn bad_listen_address() {
    let e = mistake("127.0.0.1:15306", "localhost");
    assert_eq!(e.key, "server.listen");
    assert_eq!(e.line, Some(3));
}

#[test]
fn unsharded_keyspace_with_two_shards() {
    let e = mistake(
        r#"shards = [{ name = "0", primary = "mysql://root@127.0.0.1:17102/lookup" }]"#,
        r#"shards = [{ name = "-80", primary = "mysql://root@h:1/l" }, { name = "80-", primary = "mysql://root@h:2/l" }]"#,
    );
    assert!(e.message.contains("exactly one shard"), "{e}");
}

#[test]
fn missing_file_is_an_error() {
    let e = load_config(Path::new("/nonexistent/shardgate.toml")).unwrap_err();
    assert!(e.message.contains("cannot read config"), "{e}");
}

#[test]
fn vitess_vschema_json() {
    let dir = std::env::temp_dir().join(format!("vschema-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("commerce.json"),
        r#"{"sharded": true,
            "vindexes": {"hash": {"type": "hash"}, "xx": {"type": "xxhash"},
                         "email_lookup": {"type": "consistent_lookup_unique", "params": {"table": "lookup.email_lookup", "from": "email", "to": "keyspace_id"}, "owner": "customer"}},
            "tables": {
              "customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}, {"column": "email", "name": "email_lookup"}]},
              "corder": {"column_vindexes": [{"columns": ["sku"], "name": "xx"}], "columns": [{"name": "sku"}]},
              "product": {"type": "reference"}
            },
            "require_explicit_routing": false}"#,
    )
    .unwrap();
    let config_text = GOOD
        .replace("sharded = true\n", "vschema_json = \"commerce.json\"\n")
        .replace("vindexes.hash = { type = \"hash\" }\n", "")
        .replace("tables.customers = { primary_vindex = { column = \"customer_id\", vindex = \"hash\" } }\ntables.products = { type = \"reference\" }\n", "");
    let config = parse_config(&config_text, &dir.join("shardgate.toml")).unwrap();
    let ks = config.vschema.keyspace("commerce").unwrap();
    assert!(ks.sharded);
    assert!(
        matches!(ks.table("corder"), Some(Table::Sharded { column, vindex, .. }) if column == "sku" && vindex.kind == VindexKind::Xxhash)
    );
    assert_eq!(ks.table("product"), Some(&Table::Reference));
    let Some(Table::Sharded { lookups, .. }) = ks.table("customer") else {
        panic!()
    };
    assert_eq!(
        (
            lookups[0].first(),
            lookups[0].vindex.table.as_str(),
            lookups[0].vindex.consistent
        ),
        ("email", "email_lookup", true)
    );

    std::fs::write(
        dir.join("bad.json"),
        r#"{"sharded": true, "vindexes": {"l": {"type": "consistent_lookup"}}}"#,
    )
    .unwrap();
    let e = load_vitess_json(&dir.join("bad.json")).unwrap_err();
    assert!(e.message.contains("needs params.table"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn auto_increment_from_a_sequence() {
    let text = GOOD
        .replace(
            r#"tables.customers = { primary_vindex = { column = "customer_id", vindex = "hash" } }"#,
            r#"tables.customers = { primary_vindex = { column = "customer_id", vindex = "hash" }, auto_increment = { column = "customer_id", sequence = "customer_seq" } }"#,
        )
        .replace("tables.seq = {}", "tables.seq = {}\ntables.customer_seq = { type = \"sequence\" }");
    let config = parse(&text).unwrap();
    let Table::Sharded {
        auto_increment: Some(ai),
        ..
    } = customers(&config)
    else {
        panic!()
    };
    assert_eq!(ai.column, "customer_id");
    assert_eq!(
        ai.sequence,
        crate::SequenceRef {
            keyspace: "lookup".into(),
            table: "customer_seq".into()
        }
    );

    let missing =
        parse(&text.replace("sequence = \"customer_seq\"", "sequence = \"nope\"")).unwrap_err();
    assert_eq!(
        missing.key,
        "keyspaces.commerce.tables.customers.auto_increment"
    );
    assert_eq!(missing.line, Some(16));
    assert!(
        missing.message.contains("no sequence table \"nope\""),
        "{missing}"
    );

    let sharded_seq = parse(&text.replace(
        r#"tables.products = { type = "reference" }"#,
        r#"tables.products = { type = "sequence" }"#,
    ))
    .unwrap_err();
    assert!(
        sharded_seq.message.contains("unsharded keyspace"),
        "{sharded_seq}"
    );
}

#[test]
fn lookup_vindexes() {
    let with_lookup = |table: &str| {
        GOOD.replace(
            r#"vindexes.hash = { type = "hash" }"#,
            &format!(r#"vindexes.hash = {{ type = "hash" }}
vindexes.email = {{ type = "consistent_lookup_unique", table = "{table}", from = "email", to = "keyspace_id" }}"#),
        )
        .replace(
            r#"tables.customers = { primary_vindex = { column = "customer_id", vindex = "hash" } }"#,
            r#"tables.customers = { primary_vindex = { column = "customer_id", vindex = "hash" }, secondary_vindexes = [{ column = "email", vindex = "email" }] }"#,
        )
    };
    let config = parse(&with_lookup("lookup.email_lookup")).unwrap();
    let Table::Sharded { lookups, .. } = customers(&config) else {
        panic!()
    };
    assert_eq!(lookups[0].vindex.keyspace, "lookup");
    assert!(lookups[0].vindex.consistent);

    let sharded = parse(&with_lookup("commerce.email_lookup")).unwrap_err();
    assert!(
        sharded.message.contains("must be in an unsharded keyspace"),
        "{sharded}"
    );
    let unqualified = parse(&with_lookup("email_lookup")).unwrap_err();
    assert!(
        unqualified.message.contains("keyspace.table"),
        "{unqualified}"
    );
}

#[test]
fn transaction_mode_per_keyspace() {
    let text = GOOD.replace(
        "sharded = true\n",
        "sharded = true\ntransaction_mode = \"twopc\"\n",
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config
            .vschema
            .keyspace("commerce")
            .unwrap()
            .transaction_mode
            .as_deref(),
        Some("twopc")
    );
    assert_eq!(
        config.vschema.keyspace("lookup").unwrap().transaction_mode,
        None
    );
    let e = parse(&GOOD.replace(
        "sharded = true\n",
        "sharded = true\ntransaction_mode = \"atomic\"\n",
    ))
    .unwrap_err();
    assert_eq!(e.key, "keyspaces.commerce.transaction_mode");
    assert_eq!(e.line, Some(11));
}

#[test]
fn backend_passwords_come_from_the_environment() {
    // SAFETY (edition 2021: set_var is safe to call): only this test reads the variable.
    std::env::set_var("SHARDGATE_TEST_SHARD_PW", "from env");
    let config = parse(&GOOD.replace("root:pw@", "root:${SHARDGATE_TEST_SHARD_PW}@")).unwrap();
    let ks = config.vschema.keyspace("commerce").unwrap();
    let pw = ks.shards.iter().find_map(|s| s.primary.password.clone());
    assert_eq!(pw.as_deref(), Some("from env"));
    // Never shown, in errors, logs or `check`.
    assert!(!format!("{:?}", ks.shards[1].primary).contains("from env"));
    let e = mistake("root:pw@", "root:${SHARDGATE_TEST_UNSET_PW}@");
    assert_eq!(e.key, "keyspaces.commerce.shards[1].primary");
    assert!(e.message.contains("SHARDGATE_TEST_UNSET_PW"), "{e}");
}

#[test]
fn user_access_is_checked_against_the_keyspaces() {
    let text = GOOD.replace(
        "password = \"secret\"\n",
        "password = \"secret\"\nkeyspaces = [\"lookup\"]\nread_only = true\nmax_connections = 3\n",
    );
    let config = parse(&text).unwrap();
    let user = &config.users[0];
    assert_eq!(user.keyspaces.as_deref(), Some(&["lookup".to_string()][..]));
    assert!(user.read_only);
    assert_eq!(user.max_connections, 3);
    let e = parse(&text.replace("[\"lookup\"]", "[\"nosuch\"]")).unwrap_err();
    assert_eq!(e.key, "users[0].keyspaces");
    assert_eq!(user.read_target, crate::ReadTarget::Primary);
    let replica = text.replace("read_only = true\n", "read_target = \"replica_only\"\n");
    let config = parse(&replica).unwrap();
    assert_eq!(config.users[0].read_target, crate::ReadTarget::ReplicaOnly);
    let e = parse(&replica.replace("replica_only", "rdonly")).unwrap_err();
    assert_eq!(e.key, "users[0].read_target");
}

#[test]
fn shards_list_their_replicas() {
    // The second shard listed, `-80`, first in key order.
    let text = GOOD.replace(
        "primary = \"mysql://root:pw@127.0.0.1:17100/commerce\"",
        "primary = \"mysql://root:pw@127.0.0.1:17100/commerce\", replicas = [\"mysql://root@127.0.0.1:9/commerce\"]",
    );
    assert_ne!(text, GOOD, "the sample config has this shard");
    let config = parse(&text).unwrap();
    let ks = config.vschema.keyspace("commerce").unwrap();
    assert_eq!(ks.shards[0].replicas.len(), 1);
    assert_eq!(ks.shards[0].replicas[0].port, 9);
    assert_eq!(ks.max_replica_lag, crate::MAX_REPLICA_LAG);
    let e = parse(&text.replace("127.0.0.1:9", "127.0.0.1:x")).unwrap_err();
    assert_eq!(e.key, "keyspaces.commerce.shards[1].replicas[0]");
}

/// The forms Vitess writes VSchemas in (shapes from vitess's examples: `vtexplain`'s
/// `sample_vschema.json` is a keyspace map, `local/vschema_customer_sharded.json` names its
/// sequence unqualified and its vindexes as `columnVindexes` in some versions).
#[test]
fn vitess_vschema_forms() {
    let dir = std::env::temp_dir().join(format!("vschema-forms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let load = |name: &str, json: &str| {
        let path = dir.join(name);
        std::fs::write(&path, json).unwrap();
        load_vitess_json(&path)
    };
    let sharded = r#"{"sharded": true, "vindexes": {"hash": {"type": "hash"}},
        "tables": {"customer": {"columnVindexes": [{"column": "customer_id", "name": "hash"}],
                                "autoIncrement": {"column": "customer_id", "sequence": "customer_seq"}}}}"#;
    let unsharded = r#"{"tables": {"customer_seq": {"type": "sequence"}}}"#;

    // A map of keyspaces: each one, the unqualified sequence resolved to the keyspace holding it.
    let map = load(
        "map.json",
        &format!(r#"{{"ks1": {sharded}, "lookup": {unsharded}}}"#),
    )
    .unwrap();
    let names: Vec<_> = map.iter().map(|k| k.name.clone().unwrap()).collect();
    assert_eq!(names, ["ks1", "lookup"]);
    assert!(map[0].sharded && !map[1].sharded);
    let Some(Table::Sharded {
        column,
        auto_increment: Some(ai),
        ..
    }) = map[0].tables.get("customer")
    else {
        panic!("{:?}", map[0].tables)
    };
    assert_eq!(column, "customer_id");
    assert_eq!(
        (ai.sequence.keyspace.as_str(), ai.sequence.table.as_str()),
        ("lookup", "customer_seq")
    );

    // An SrvVSchema, the same keyspaces under "keyspaces".
    let srv = load(
        "srv.json",
        &format!(
            r#"{{"keyspaces": {{"ks1": {sharded}, "lookup": {unsharded}}}, "routing_rules": {{}}}}"#
        ),
    )
    .unwrap();
    assert_eq!(srv.len(), 2);
    // A config's keyspace takes its own entry of a map, by name.
    let config_text = GOOD
        .replace("sharded = true\n", "vschema_json = \"map.json\"\n")
        .replace("vindexes.hash = { type = \"hash\" }\n", "")
        .replace("tables.customers = { primary_vindex = { column = \"customer_id\", vindex = \"hash\" } }\ntables.products = { type = \"reference\" }\n", "");
    let e = parse_config(&config_text, &dir.join("shardgate.toml")).unwrap_err();
    assert!(
        e.message
            .contains("has no keyspace commerce (it has ks1, lookup)"),
        "{e}"
    );
    // (its sequence must then be a keyspace of the config: here, none)
    let plain = r#"{"sharded": true, "vindexes": {"hash": {"type": "hash"}},
        "tables": {"customer": {"columnVindexes": [{"column": "customer_id", "name": "hash"}]}}}"#;
    load(
        "map.json",
        &format!(r#"{{"commerce": {plain}, "lookup": {unsharded}}}"#),
    )
    .unwrap();
    let config = parse_config(&config_text, &dir.join("shardgate.toml")).unwrap();
    let ks = config.vschema.keyspace("commerce").unwrap();
    assert!(ks.sharded && ks.table("customer").is_some());

    // A lookup_hash_unique's `to` column holds the hashed id.
    let lookup = load(
        "lookup.json",
        r#"{"sharded": true, "vindexes": {"hash": {"type": "hash"},
              "nick": {"type": "lookup_hash_unique", "params": {"table": "main.nick_lookup", "from": "nick", "to": "id"}}},
            "tables": {"users": {"column_vindexes": [{"column": "id", "name": "hash"}, {"column": "nick", "name": "nick"}]}}}"#,
    )
    .unwrap();
    let Some(Table::Sharded { lookups, .. }) = lookup[0].tables.get("users") else {
        panic!()
    };
    assert_eq!(lookups[0].vindex.to_holds, crate::LookupTo::HashedId);

    // One keyspace's file: no name.
    let one = load("one.json", sharded).unwrap();
    assert!(one.len() == 1 && one[0].name.is_none() && one[0].sharded);

    // Refused, never ignored: routing rules, explicit routing, an ambiguous sequence, a vindex
    // whose placement differs from Vitess's, a file of no known form.
    let refused = [
        (
            format!(r#"{{"keyspaces": {{"ks1": {sharded}}}, "routing_rules": {{"rules": [{{"from_table": "t", "to_tables": ["ks1.t"]}}]}}}}"#),
            "routing_rules are not supported yet",
        ),
        (
            r#"{"sharded": false, "require_explicit_routing": true}"#.to_string(),
            "require_explicit_routing is not supported yet",
        ),
        (
            format!(r#"{{"ks1": {sharded}, "a": {unsharded}, "b": {unsharded}}}"#),
            "sequence customer_seq is in several keyspaces (a, b)",
        ),
        (
            r#"{"sharded": true, "vindexes": {"u": {"type": "cfc"}}}"#.to_string(),
            "supported: hash, xxhash, numeric, binary, binary_md5, reverse_bits, null, numeric_static_map, unicode_loose_md5, unicode_loose_xxhash, multicol, region_json, lookup, lookup_unique, lookup_hash, lookup_hash_unique, consistent_lookup, consistent_lookup_unique",
        ),
        (
            r#"{"sharded": true, "vindexes": {"u": {"type": "region_json"}}}"#.to_string(),
            "region_json needs params.region_bytes, 1 or 2",
        ),
        (
            r#"{"sharded": true, "vindexes": {"m": {"type": "multicol", "params": {"column_count": "9"}}}}"#.to_string(),
            "column_count must be between 1 and 8",
        ),
        (r#"{"ks1": 3}"#.to_string(), "neither one keyspace's VSchema"),
        (
            r#"{"sharded": true, "vindexes": {"l": {"type": "lookup", "params": {"table": "a.b", "from": "x", "to": "y", "write_only": "yes"}}}}"#.to_string(),
            "write_only must be 'true' or 'false'",
        ),
        (
            r#"{"sharded": true, "vindexes": {"l": {"type": "lookup", "params": {"table": "a.b", "from": "x", "to": "y"}}}, "tables": {"t": {"column_vindexes": [{"column": "x", "name": "l"}]}}}"#.to_string(),
            "table t has only lookup vindexes",
        ),
        (
            r#"{"sharded": true, "vindexes": {"h": {"type": "hash"}}, "tables": {"t": {"column_vindexes": [{"columns": ["a", "b"], "name": "h"}]}}}"#.to_string(),
            "vindex h maps 1 column(s), not 2",
        ),
    ];
    for (json, want) in refused {
        let e = load("bad.json", &json)
            .err()
            .unwrap_or_else(|| panic!("{json} loaded"));
        assert!(e.message.contains(want), "{json}: {e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `customer` keyspace of Vitess's demo (tests/vitess/demo_customer.json): corder has a
/// primary vindex, a unique consistent lookup and a non-unique two-column one that lives in a
/// table of this keyspace sharded by unicode_loose_md5; corder_event routes by corder's lookup
/// without owning it.
#[test]
fn the_demo_customer_keyspace() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vitess/demo_customer.json");
    let ks = load_vitess_json(&file).unwrap().remove(0);
    let Some(Table::Sharded {
        column, lookups, ..
    }) = ks.tables.get("corder")
    else {
        panic!()
    };
    assert_eq!(column, "customer_id");
    let described: Vec<(String, &str, bool, bool)> = lookups
        .iter()
        .map(|l| (l.display(), l.vindex.type_name(), l.owned, l.vindex.unique))
        .collect();
    assert_eq!(
        described,
        [
            (
                "corder_id".to_string(),
                "consistent_lookup_unique",
                true,
                true
            ),
            (
                "(oname, corder_id)".to_string(),
                "consistent_lookup",
                true,
                false
            ),
        ]
    );
    // Placed by its binary vindex (the keyspace id it holds); corder's lookup only read.
    let Some(Table::Sharded {
        column,
        vindex,
        lookups,
        ..
    }) = ks.tables.get("corder_event")
    else {
        panic!()
    };
    assert_eq!(
        (column.as_str(), vindex.kind),
        ("keyspace_id", VindexKind::Binary)
    );
    assert_eq!((lookups[0].first(), lookups[0].owned), ("corder_id", false));
    assert!(matches!(
        ks.tables.get("oname_keyspace_idx"),
        Some(Table::Sharded { vindex, .. }) if vindex.kind == VindexKind::UnicodeLooseMd5
    ));
}

#[test]
fn numeric_static_map_entries_inline_or_from_a_file() {
    let dir = std::env::temp_dir().join(format!("vschema-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("map.json"), r#"{"3": 2, "10": 5}"#).unwrap();
    let with = |vindex: &str| {
        GOOD.replace(
            "vindexes.hash = { type = \"hash\" }\n",
            &format!("vindexes.hash = {vindex}\n"),
        )
    };
    let config = parse_config(
        &with(r#"{ type = "numeric_static_map", json_path = "map.json" }"#),
        &dir.join("shardgate.toml"),
    )
    .unwrap();
    let Table::Sharded { vindex, .. } = customers(&config) else {
        panic!()
    };
    assert_eq!(
        vindex.map(&KeyValue::Int(10)).unwrap().0,
        5u64.to_be_bytes()
    );
    assert_eq!(
        vindex.map(&KeyValue::Int(11)).unwrap().0,
        11u64.to_be_bytes()
    );
    let inline = parse(&with(
        r#"{ type = "numeric_static_map", json = '{"1": 9}' }"#,
    ))
    .unwrap();
    let Table::Sharded { vindex, .. } = customers(&inline) else {
        panic!()
    };
    assert_eq!(vindex.map(&KeyValue::Int(1)).unwrap().0, 9u64.to_be_bytes());
    let e = parse(&with(r#"{ type = "numeric_static_map" }"#)).unwrap_err();
    assert!(e.message.contains("needs json_path"), "{e}");
    let e = parse_config(
        &with(r#"{ type = "numeric_static_map", json_path = "missing.json" }"#),
        &dir.join("shardgate.toml"),
    )
    .unwrap_err();
    assert!(e.message.contains("cannot read"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shards_holding_a_key_prefix() {
    let config = parse(GOOD).unwrap();
    let ks = config.vschema.keyspace("commerce").unwrap();
    let names = |prefix: &[u8]| -> Vec<&str> {
        ks.shards_with_prefix(prefix)
            .into_iter()
            .map(|i| ks.shards[i].name.as_str())
            .collect()
    };
    assert_eq!(names(&[0x16, 0x6b]), ["-80"]);
    assert_eq!(names(&[0x80]), ["80-"]);
    assert_eq!(names(&[0x7f, 0xff]), ["-80"]);
    assert_eq!(names(&[0xff, 0xff]), ["80-"]);
    assert_eq!(names(&[]), ["-80", "80-"]);
}

/// The `customers` table of keyspace `commerce` (GOOD's sharded table).
fn customers(config: &Config) -> &Table {
    config
        .vschema
        .keyspace("commerce")
        .and_then(|k| k.table("customers"))
        .expect("commerce.customers")
}

#[test]
fn read_target_defaults_from_the_server_section() {
    let with = |server: &str, user: &str| {
        let text = GOOD
            .replacen("[server]\n", &format!("[server]\n{server}\n"), 1)
            .replacen("name = \"app\"\n", &format!("name = \"app\"\n{user}\n"), 1);
        parse(&text).map(|c| c.users[0].read_target)
    };
    assert_eq!(with("", "").unwrap(), crate::ReadTarget::Primary);
    assert_eq!(
        with("read_target = \"replica\"", "").unwrap(),
        crate::ReadTarget::Replica
    );
    assert_eq!(
        with("read_target = \"replica\"", "read_target = \"primary\"").unwrap(),
        crate::ReadTarget::Primary
    );
    let e = with("read_target = \"rdonly\"", "").unwrap_err();
    assert_eq!(e.key, "server.read_target");
}
