//! Vitess's own example VSchemas, loaded as they are, on real shards: rows written through
//! shardgate land where Vitess's hashing puts them and are found again through every vindex.
//!
//! - The demo (vitessio/vitess examples/demo/schema): keyspace `customer` (2 shards) with
//!   `corder` (xxhash on customer_id, a consistent_lookup_unique on corder_id, a two-column
//!   consistent_lookup on (oname, corder_id) whose table is sharded by unicode_loose_md5) and
//!   `corder_event`, which routes through corder's lookup without owning it; keyspace `product`
//!   (unsharded) with the sequences and corder_keyspace_idx.
//! - The compose example (examples/compose/test_keyspace_vschema.json): `messages` and `tokens`
//!   with `lookup_hash` autocommit vindexes. Its lookup keyspace is unsharded here: the example's
//!   shards its lookup tables by an `id` column the lookup never writes.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::{counters, expect_code};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use vschema::{Config, KeyValue, KeyspaceId, VindexKind};

/// The example files (see tests/vitess/README.md).
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vitess");

struct Cluster {
    _servers: Vec<testkit::MariaDb>,
    config: Config,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dbs = ["customer", "product", "test_keyspace", "lookup_keyspace", "regions", "region_main"];
        let servers = testkit::start(3, &dbs).expect("start MariaDB");
        let sharded = |ks: &str, file: &str| {
            format!(
                "[keyspaces.{ks}]\nvschema_json = \"{file}.json\"\nshards = [{{ name = \"-80\", primary = \"{}\" }}, {{ name = \"80-\", primary = \"{}\" }}]\n",
                servers[0].url(ks),
                servers[1].url(ks)
            )
        };
        let unsharded = |ks: &str, file: &str| {
            format!(
                "[keyspaces.{ks}]\nvschema_json = \"{file}.json\"\nshards = [{{ name = \"0\", primary = \"{}\" }}]\n",
                servers[2].url(ks)
            )
        };
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[[users]]\nname = \"app\"\npassword = \"secret\"\n\n{}{}{}{}{}{}",
            sharded("customer", "demo_customer"),
            unsharded("product", "demo_product"),
            sharded("test_keyspace", "compose_test_keyspace"),
            unsharded("lookup_keyspace", "compose_lookup_keyspace"),
            sharded("regions", "regions"),
            sharded("region_main", "region_lookup"),
        );
        let config =
            vschema::parse_config(&text, &Path::new(EXAMPLES).join("shardgate.toml")).expect("the examples load");
        Cluster {
            _servers: servers,
            config,
        }
    })
}

async fn proxy() -> shardgate::Running {
    shardgate::start(&cluster().config, "127.0.0.1:0")
        .await
        .expect("start proxy")
}

async fn client(proxy: &shardgate::Running, db: &str) -> Conn {
    Conn::new(Opts::from_url(&format!("mysql://app:secret@{}/{db}", proxy.addr)).unwrap())
        .await
        .expect("connect to proxy")
}

async fn shard(keyspace: &str, name: &str) -> Conn {
    let ks = cluster().config.vschema.keyspace(keyspace).unwrap();
    let s = ks.shards.iter().find(|s| s.name == name).unwrap();
    let url = format!(
        "mysql://root@{}:{}/{}",
        s.primary.host, s.primary.port, keyspace
    );
    Conn::new(Opts::from_url(&url).unwrap()).await.unwrap()
}

/// The shard Vitess's placement gives a keyspace ID.
fn shard_of(keyspace: &str, ksid: &KeyspaceId) -> String {
    let ks = cluster().config.vschema.keyspace(keyspace).unwrap();
    ks.shards[ks.shard_for(ksid)].name.clone()
}

fn xxhash(v: i64) -> KeyspaceId {
    VindexKind::Xxhash.map(&KeyValue::Int(v)).unwrap()
}

fn loose_md5(text: &str) -> KeyspaceId {
    VindexKind::UnicodeLooseMd5
        .map(&KeyValue::Text(text.as_bytes().to_vec()))
        .unwrap()
}

/// Runs `sql` and returns its rows, sorted, and the shards of `keyspace` it reached.
async fn read(
    proxy: &shardgate::Running,
    c: &mut Conn,
    keyspace: &str,
    sql: &str,
) -> (Vec<i64>, Vec<String>) {
    let before = counters(proxy);
    let mut rows: Vec<i64> = c.query(sql).await.unwrap();
    rows.sort();
    let reached = counters(proxy)
        .into_iter()
        .filter(|(k, v)| before.get(k) != Some(v))
        .filter_map(|(k, _)| k.strip_prefix(&format!("{keyspace}/")).map(String::from))
        .collect();
    (rows, reached)
}

async fn run(c: &mut Conn, statements: &[&str]) {
    for s in statements {
        c.query_drop(*s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_corder_table_and_its_three_vindexes() {
    let proxy = proxy().await;
    let mut product = client(&proxy, "product").await;
    run(&mut product, &[
        "CREATE TABLE customer_seq (id INT, next_id BIGINT, cache BIGINT, PRIMARY KEY (id)) COMMENT 'vitess_sequence'",
        "INSERT INTO customer_seq (id, next_id, cache) VALUES (0, 1, 3)",
        "CREATE TABLE corder_seq (id INT, next_id BIGINT, cache BIGINT, PRIMARY KEY (id)) COMMENT 'vitess_sequence'",
        "INSERT INTO corder_seq (id, next_id, cache) VALUES (0, 1, 3)",
        "CREATE TABLE corder_event_seq (id INT, next_id BIGINT, cache BIGINT, PRIMARY KEY (id)) COMMENT 'vitess_sequence'",
        "INSERT INTO corder_event_seq (id, next_id, cache) VALUES (0, 1, 3)",
        "CREATE TABLE corder_keyspace_idx (corder_id BIGINT, keyspace_id VARBINARY(10), PRIMARY KEY (corder_id))",
    ]).await;
    let mut c = client(&proxy, "customer").await;
    run(&mut c, &[
        "CREATE TABLE customer (customer_id BIGINT, uname VARCHAR(128), PRIMARY KEY (customer_id))",
        "CREATE TABLE corder (corder_id BIGINT, customer_id BIGINT, product_id BIGINT, oname VARCHAR(128), PRIMARY KEY (corder_id)) CHARSET utf8mb4 COLLATE utf8mb4_general_ci",
        "CREATE TABLE corder_event (corder_event_id BIGINT, corder_id BIGINT, ename VARCHAR(128), keyspace_id VARBINARY(10), PRIMARY KEY (corder_id, corder_event_id))",
        "CREATE TABLE oname_keyspace_idx (oname VARCHAR(128), corder_id BIGINT, keyspace_id VARBINARY(10), PRIMARY KEY (oname, corder_id)) CHARSET utf8mb4 COLLATE utf8mb4_general_ci",
        "INSERT INTO customer (uname) VALUES ('alice'), ('bob'), ('carol'), ('dave')",
    ]).await;
    let customers: Vec<(i64, String)> = c
        .query("SELECT customer_id, uname FROM customer ORDER BY customer_id")
        .await
        .unwrap();
    assert_eq!(
        customers.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // Orders get ids 1..=8 from corder_seq; their names repeat across customers.
    let names = ["Book", "Pen", "book", "Lamp", "Bóok", "Pen", "Cup", "Book"];
    for (i, name) in names.iter().enumerate() {
        c.query_drop(format!(
            "INSERT INTO corder (customer_id, product_id, oname) VALUES ({}, {}, '{name}')",
            i % 4 + 1,
            100 + i
        ))
        .await
        .unwrap();
    }
    let orders: Vec<(i64, i64, String)> = c
        .query("SELECT corder_id, customer_id, oname FROM corder ORDER BY corder_id")
        .await
        .unwrap();
    assert_eq!(orders.len(), 8);
    // Each order is on its customer's shard, by xxhash.
    for (id, customer, _) in &orders {
        let mut s = shard("customer", &shard_of("customer", &xxhash(*customer))).await;
        let here: Option<i64> = s
            .query_first(format!(
                "SELECT corder_id FROM corder WHERE corder_id = {id}"
            ))
            .await
            .unwrap();
        assert_eq!(here, Some(*id));
    }
    // corder_keyspace_idx maps each order to its customer's keyspace ID.
    let mut p = shard("product", "0").await;
    let idx: Vec<(i64, Vec<u8>)> = p
        .query("SELECT corder_id, keyspace_id FROM corder_keyspace_idx ORDER BY corder_id")
        .await
        .unwrap();
    let want: Vec<(i64, Vec<u8>)> = orders
        .iter()
        .map(|(id, cu, _)| (*id, xxhash(*cu).0))
        .collect();
    assert_eq!(idx, want);
    // Each oname_keyspace_idx row is on the shard unicode_loose_md5 gives its name, and names
    // that differ only in case or accents share it.
    for (id, customer, name) in &orders {
        let mut s = shard("customer", &shard_of("customer", &loose_md5(name))).await;
        let row: Option<Vec<u8>> = s
            .query_first(format!(
                "SELECT keyspace_id FROM oname_keyspace_idx WHERE oname = '{name}' AND corder_id = {id}"
            ))
            .await
            .unwrap();
        assert_eq!(row, Some(xxhash(*customer).0), "{name} {id}");
    }
    assert_eq!(loose_md5("Book"), loose_md5("bóok"));

    // Found through every vindex. The primary one and the unique lookup reach one shard.
    let (rows, reached) = read(
        &proxy,
        &mut c,
        "customer",
        "SELECT corder_id FROM corder WHERE customer_id = 2",
    )
    .await;
    assert_eq!((rows, reached.len()), (vec![2, 6], 1));
    let (rows, reached) = read(
        &proxy,
        &mut c,
        "customer",
        "SELECT customer_id FROM corder WHERE corder_id = 7",
    )
    .await;
    assert_eq!(rows, [3]);
    assert_eq!(reached, [shard_of("customer", &xxhash(3))]);
    // The non-unique lookup: every order named 'book' in any case or accent, on the shards of
    // their customers (1 and 3, 1 and 4 for Book, book, Bóok, Book) plus the lookup table's.
    let (rows, _) = read(
        &proxy,
        &mut c,
        "customer",
        "SELECT corder_id FROM corder WHERE oname = 'BOOK'",
    )
    .await;
    assert_eq!(rows, [1, 3, 5, 8]);
    let (rows, _) = read(
        &proxy,
        &mut c,
        "customer",
        "SELECT corder_id FROM corder WHERE oname = 'Lamp'",
    )
    .await;
    assert_eq!(rows, [4]);
    let (rows, reached) = read(
        &proxy,
        &mut c,
        "customer",
        "SELECT corder_id FROM corder WHERE oname = 'nothing'",
    )
    .await;
    assert!(rows.is_empty() && reached.len() <= 2);
    // Both lookups named: the unique one is used, so only the order's shard is asked (the
    // non-unique one's table would be read on its name's shard).
    let mut checked = 0;
    for (id, customer, name) in &orders {
        let home = shard_of("customer", &xxhash(*customer));
        if shard_of("customer", &loose_md5(name)) == home {
            continue;
        }
        let sql =
            format!("SELECT corder_id FROM corder WHERE oname = '{name}' AND corder_id = {id}");
        let (rows, reached) = read(&proxy, &mut c, "customer", &sql).await;
        assert_eq!((rows, reached), (vec![*id], vec![home]), "{sql}");
        checked += 1;
    }
    assert!(checked > 0);

    // corder_event: placed by its keyspace_id, found through corder's lookup, which it does
    // not write.
    let ksid = xxhash(3).0;
    let hex: String = ksid.iter().map(|b| format!("{b:02X}")).collect();
    c.query_drop(format!(
        "INSERT INTO corder_event (corder_id, ename, keyspace_id) VALUES (7, 'paid', x'{hex}')"
    ))
    .await
    .unwrap();
    let (rows, reached) = read(
        &proxy,
        &mut c,
        "customer",
        "SELECT corder_event_id FROM corder_event WHERE corder_id = 7",
    )
    .await;
    assert_eq!(rows, [1]);
    assert_eq!(reached, [shard_of("customer", &xxhash(3))]);
    let idx_rows: i64 = p
        .query_first("SELECT COUNT(*) FROM corder_keyspace_idx")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(idx_rows, 8, "corder_event does not own corder_keyspace_idx");
    // Its rows must be where the lookup says: another keyspace ID, or an order that does not
    // exist, is refused (Vitess verifies them too); so is changing corder_id.
    let wrong: String = xxhash(1).0.iter().map(|b| format!("{b:02X}")).collect();
    for (corder, ksid) in [(7, wrong.as_str()), (999, hex.as_str())] {
        let sql = format!(
            "INSERT INTO corder_event (corder_id, ename, keyspace_id) VALUES ({corder}, 'x', x'{ksid}')"
        );
        expect_code(c.query_drop(sql).await, 1452);
    }
    expect_code(
        c.query_drop("UPDATE corder_event SET corder_id = 2 WHERE corder_id = 7")
            .await,
        1235,
    );

    // Renaming and deleting orders move and remove their lookup rows; a name another order at
    // the same keyspace ID still has stays.
    c.query_drop("UPDATE corder SET oname = 'Lamp' WHERE corder_id = 5")
        .await
        .unwrap();
    let (rows, _) = read(
        &proxy,
        &mut c,
        "customer",
        "SELECT corder_id FROM corder WHERE oname = 'lamp'",
    )
    .await;
    assert_eq!(rows, [4, 5]);
    let (rows, _) = read(
        &proxy,
        &mut c,
        "customer",
        "SELECT corder_id FROM corder WHERE oname = 'book'",
    )
    .await;
    assert_eq!(rows, [1, 3, 8]);
    c.query_drop("DELETE FROM corder WHERE corder_id IN (1, 4)")
        .await
        .unwrap();
    let left: Vec<i64> = p
        .query("SELECT corder_id FROM corder_keyspace_idx ORDER BY corder_id")
        .await
        .unwrap();
    assert_eq!(left, [2, 3, 5, 6, 7, 8]);
    let mut onames = Vec::new();
    for s in ["-80", "80-"] {
        let rows: Vec<(String, i64)> = shard("customer", s)
            .await
            .query("SELECT oname, corder_id FROM oname_keyspace_idx")
            .await
            .unwrap();
        onames.extend(rows);
    }
    onames.sort_by_key(|r| r.1);
    let want: Vec<(String, i64)> = [
        ("Pen", 2),
        ("book", 3),
        ("Lamp", 5),
        ("Pen", 6),
        ("Cup", 7),
        ("Book", 8),
    ]
    .iter()
    .map(|(n, i)| (n.to_string(), *i))
    .collect();
    assert_eq!(onames, want);

    // The unique lookup still refuses a taken corder_id.
    expect_code(
        c.query_drop(
            "INSERT INTO corder (corder_id, customer_id, product_id, oname) VALUES (3, 4, 1, 'x')",
        )
        .await,
        1062,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_example_lookup_hash_tables() {
    let proxy = proxy().await;
    let mut l = client(&proxy, "lookup_keyspace").await;
    run(&mut l, &[
        "CREATE TABLE messages_message_lookup (message VARCHAR(100), page BIGINT UNSIGNED, PRIMARY KEY (message, page))",
        "CREATE TABLE tokens_token_lookup (token VARCHAR(100), page BIGINT UNSIGNED, PRIMARY KEY (token, page))",
    ]).await;
    let mut c = client(&proxy, "test_keyspace").await;
    run(&mut c, &[
        "CREATE TABLE messages (page BIGINT UNSIGNED, time_created_ns BIGINT UNSIGNED, message VARCHAR(100), PRIMARY KEY (page, time_created_ns))",
        "CREATE TABLE tokens (page BIGINT UNSIGNED, time_created_ns BIGINT UNSIGNED, token VARCHAR(100), PRIMARY KEY (page, time_created_ns))",
    ]).await;
    // The same message on several pages, so on several shards.
    for page in 1..=10 {
        c.query_drop(format!(
            "INSERT INTO messages (page, time_created_ns, message) VALUES ({page}, 1, 'hello'), ({page}, 2, 'm{page}')"
        ))
        .await
        .unwrap();
    }
    let shards: std::collections::BTreeSet<String> = (1..=10)
        .map(|p| shard_of("test_keyspace", &xxhash(p)))
        .collect();
    assert_eq!(shards.len(), 2, "pages 1..=10 are on both shards");
    // Each lookup row holds what Vitess's lookup_hash writes: the integer whose hash is the
    // row's keyspace ID.
    let mut ls = shard("lookup_keyspace", "0").await;
    let rows: Vec<(String, u64)> = ls
        .query("SELECT message, page FROM messages_message_lookup WHERE message = 'm4'")
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        VindexKind::Hash.map(&KeyValue::UInt(rows[0].1)).unwrap(),
        xxhash(4)
    );
    let (pages, reached) = read(
        &proxy,
        &mut c,
        "test_keyspace",
        "SELECT page FROM messages WHERE message = 'hello'",
    )
    .await;
    assert_eq!(pages, (1..=10).collect::<Vec<_>>());
    assert_eq!(reached.len(), 2);
    let (pages, reached) = read(
        &proxy,
        &mut c,
        "test_keyspace",
        "SELECT page FROM messages WHERE message = 'm5'",
    )
    .await;
    assert_eq!(pages, [5]);
    assert_eq!(reached, [shard_of("test_keyspace", &xxhash(5))]);
    // Aggregates over the rows a non-unique lookup finds are merged.
    let n: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM messages WHERE message = 'hello'")
        .await
        .unwrap();
    assert_eq!(n, Some(10));

    // autocommit: the lookup row is written at once, outside the transaction, and stays after
    // a rollback or a delete (Vitess never deletes them); reads still find only real rows.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO tokens (page, time_created_ns, token) VALUES (9, 1, 't9')")
        .await
        .unwrap();
    let mut other = client(&proxy, "lookup_keyspace").await;
    let seen: Option<u64> = other
        .query_first("SELECT page FROM tokens_token_lookup WHERE token = 't9'")
        .await
        .unwrap();
    assert!(seen.is_some(), "written outside the open transaction");
    c.query_drop("ROLLBACK").await.unwrap();
    let (pages, _) = read(
        &proxy,
        &mut c,
        "test_keyspace",
        "SELECT page FROM tokens WHERE token = 't9'",
    )
    .await;
    assert!(pages.is_empty());
    c.query_drop("INSERT INTO tokens (page, time_created_ns, token) VALUES (9, 1, 't9')")
        .await
        .unwrap();
    c.query_drop("DELETE FROM tokens WHERE page = 9")
        .await
        .unwrap();
    let kept: i64 = ls
        .query_first("SELECT COUNT(*) FROM tokens_token_lookup WHERE token = 't9'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_json_and_multicol_tables() {
    let proxy = proxy().await;
    let mut c = client(&proxy, "regions").await;
    run(&mut c, &[
        "CREATE TABLE customer (id INT NOT NULL, fullname VARCHAR(256), nationalid VARCHAR(256), country VARCHAR(256), PRIMARY KEY (id))",
        "CREATE TABLE visits (site VARCHAR(20), id BIGINT, n INT, PRIMARY KEY (site, id))",
        // The example's insert_customers.sql, in part: regions below 0x80 are on -80.
        "INSERT INTO customer (id, fullname, nationalid, country) VALUES (1, 'Philip Roth', '123-456-789', 'United States'), (2, 'Gary Shteyngart', '234-567-891', 'United States'), (3, 'Margaret Atwood', '345-678-912', 'Canada'), (4, 'Alice Munro', '456-789-123', 'Canada'), (5, 'Albert Camus', '912-345-678', 'France'), (6, 'Colette', '102-345-678', 'France'), (7, 'Hermann Hesse', '304-567-891', 'Germany'), (8, 'Cornelia Funke', '203-456-789', 'Germany'), (9, 'Cixin Liu', '789-123-456', 'China'), (10, 'Jia Pingwa', '891-234-567', 'China'), (11, 'Haruki Murakami', '405-678-912', 'Japan'), (12, 'Banana Yoshimoto', '506-789-123', 'Japan'), (13, 'Arundhati Roy', '567-891-234', 'India'), (14, 'Shashi Tharoor', '678-912-345', 'India'), (15, 'Andrea Hirata', '607-891-234', 'Indonesia'), (16, 'Ayu Utami', '708-912-345', 'Indonesia')",
    ]).await;
    let mut low: Vec<i64> = shard("regions", "-80")
        .await
        .query("SELECT id FROM customer ORDER BY id")
        .await
        .unwrap();
    let mut high: Vec<i64> = shard("regions", "80-")
        .await
        .query("SELECT id FROM customer ORDER BY id")
        .await
        .unwrap();
    low.sort();
    high.sort();
    assert_eq!(low, (1..=8).collect::<Vec<_>>(), "America and Europe");
    assert_eq!(high, (9..=16).collect::<Vec<_>>(), "Asia");
    // Both columns: one shard. One of them: every shard, still right.
    let (rows, reached) = read(
        &proxy,
        &mut c,
        "regions",
        "SELECT id FROM customer WHERE country = 'Japan' AND id = 11",
    )
    .await;
    assert_eq!((rows, reached), (vec![11], vec!["80-".to_string()]));
    let (rows, reached) = read(
        &proxy,
        &mut c,
        "regions",
        "SELECT id FROM customer WHERE id = 5",
    )
    .await;
    assert_eq!((rows, reached.len()), (vec![5], 2));
    let n: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM customer WHERE country = 'France'")
        .await
        .unwrap();
    assert_eq!(n, Some(2));
    // A country outside the map has no keyspace ID; moving a row between regions is refused.
    let e = c
        .query_drop("INSERT INTO customer (id, country) VALUES (17, 'Atlantis')")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("region map"), "{e}");
    expect_code(
        c.query_drop("UPDATE customer SET country = 'India' WHERE id = 1")
            .await,
        1235,
    );
    c.query_drop(
        "UPDATE customer SET fullname = 'P. Roth' WHERE id = 1 AND country = 'United States'",
    )
    .await
    .unwrap();
    c.query_drop("DELETE FROM customer WHERE id = 16 AND country = 'Indonesia'")
        .await
        .unwrap();
    let left: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM customer")
        .await
        .unwrap();
    assert_eq!(left, Some(15));

    // multicol: one byte of xxhash(site), then seven of hash(id): a site's rows share a shard.
    for site in ["a", "b", "c", "d"] {
        c.query_drop(format!("INSERT INTO visits (site, id, n) VALUES ('{site}', 1, 1), ('{site}', 2, 2), ('{site}', 300, 3)")).await.unwrap();
    }
    for site in ["a", "b", "c", "d"] {
        let first = VindexKind::Xxhash
            .map(&KeyValue::Text(site.as_bytes().to_vec()))
            .unwrap()
            .0[0];
        let home = if first < 0x80 { "-80" } else { "80-" };
        let here: Vec<i64> = shard("regions", home)
            .await
            .query(format!(
                "SELECT id FROM visits WHERE site = '{site}' ORDER BY id"
            ))
            .await
            .unwrap();
        assert_eq!(here, [1, 2, 300], "site {site} on {home}");
        let (rows, reached) = read(
            &proxy,
            &mut c,
            "regions",
            &format!("SELECT n FROM visits WHERE id = 300 AND site = '{site}'"),
        )
        .await;
        assert_eq!((rows, reached), (vec![3], vec![home.to_string()]));
        // The first column alone gives the key range of its byte: the same one shard.
        let (rows, reached) = read(
            &proxy,
            &mut c,
            "regions",
            &format!("SELECT n FROM visits WHERE site = '{site}' ORDER BY n"),
        )
        .await;
        assert_eq!((rows, reached), (vec![1, 2, 3], vec![home.to_string()]));
    }
    let total: Option<i64> = c
        .query_first("SELECT SUM(n) FROM visits WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(total, Some(8));
}

/// region_sharding's main_vschema.json: customers placed by (id, country), found by id through a
/// consistent lookup whose table lives beside them, sharded by the keyspace ID it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_json_with_a_lookup_placed_by_keyspace_id() {
    let proxy = proxy().await;
    let mut c = client(&proxy, "region_main").await;
    run(&mut c, &[
        "CREATE TABLE customer (id INT NOT NULL, fullname VARCHAR(256), nationalid VARCHAR(256), country VARCHAR(256), PRIMARY KEY (id))",
        "CREATE TABLE customer_lookup (id INT NOT NULL, keyspace_id VARBINARY(256), PRIMARY KEY (id))",
        "INSERT INTO customer (id, fullname, country) VALUES (1, 'Philip Roth', 'United States'), (5, 'Albert Camus', 'France'), (11, 'Haruki Murakami', 'Japan'), (13, 'Arundhati Roy', 'India')",
    ]).await;
    // Each lookup row is on the shard of the keyspace ID it holds: its customer's.
    for (shard_name, want) in [("-80", vec![1, 5]), ("80-", vec![11, 13])] {
        let mut s = shard("region_main", shard_name).await;
        let customers: Vec<i64> = s
            .query("SELECT id FROM customer ORDER BY id")
            .await
            .unwrap();
        let lookups: Vec<i64> = s
            .query("SELECT id FROM customer_lookup ORDER BY id")
            .await
            .unwrap();
        assert_eq!((&customers, &lookups), (&want, &want), "{shard_name}");
    }
    // By id alone, through the lookup: the customer's shard only.
    let (rows, reached) = read(
        &proxy,
        &mut c,
        "region_main",
        "SELECT id FROM customer WHERE id = 11",
    )
    .await;
    assert_eq!(rows, [11]);
    assert!(reached.contains(&"80-".to_string()));
    let (rows, _) = read(
        &proxy,
        &mut c,
        "region_main",
        "SELECT id FROM customer WHERE id = 12",
    )
    .await;
    assert!(rows.is_empty());
    // The id is unique across regions, though each shard's key sees only its own rows.
    expect_code(
        c.query_drop("INSERT INTO customer (id, fullname, country) VALUES (5, 'Someone', 'Japan')")
            .await,
        1062,
    );
    // Deleting a customer removes its lookup row from its shard.
    c.query_drop("DELETE FROM customer WHERE id = 13")
        .await
        .unwrap();
    let left: Vec<i64> = shard("region_main", "80-")
        .await
        .query("SELECT id FROM customer_lookup")
        .await
        .unwrap();
    assert_eq!(left, [11]);
    let (rows, _) = read(
        &proxy,
        &mut c,
        "region_main",
        "SELECT id FROM customer WHERE id = 13",
    )
    .await;
    assert!(rows.is_empty());
}
