//! `shardgate demo`: two local MariaDB shards of a sharded keyspace `commerce`, each a
//! replication group (a primary and a semi-synchronous GTID replica, with automatic failover),
//! one unsharded keyspace `main`, sample data loaded through the proxy itself, served until
//! Ctrl-C.

use std::path::Path;

use mysql_async::prelude::Queryable;

const SCHEMA: &[&str] = &[
    "USE main",
    "CREATE TABLE settings (name VARCHAR(64) NOT NULL PRIMARY KEY, value VARCHAR(255) NOT NULL)",
    "INSERT INTO settings (name, value) VALUES ('currency', 'EUR'), ('support_email', 'help@example.com')",
    // The sequence behind orders.order_id, and the lookup table behind customers.email.
    "CREATE TABLE order_seq (id INT NOT NULL PRIMARY KEY, next_id BIGINT NOT NULL, cache BIGINT NOT NULL)",
    "INSERT INTO order_seq (id, next_id, cache) VALUES (0, 1000, 100)",
    "CREATE TABLE customer_email_lookup (email VARCHAR(100) NOT NULL PRIMARY KEY, keyspace_id VARBINARY(16) NOT NULL)",
    "USE commerce",
    "CREATE TABLE customers (customer_id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(100))",
    "CREATE TABLE orders (order_id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NOT NULL, product_id BIGINT NOT NULL, \
     quantity INT NOT NULL, amount DECIMAL(10,2) NOT NULL, KEY (customer_id))",
    "CREATE TABLE products (product_id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, price DECIMAL(10,2) NOT NULL)",
    "INSERT INTO products (product_id, name, price) VALUES (1, 'keyboard', 49.90), (2, 'mouse', 19.90), (3, 'monitor', 189.00), (4, 'cable', 4.50)",
    "INSERT INTO customers (customer_id, name, email) VALUES (1, 'Ada', 'ada@example.com'), (2, 'Brian', 'brian@example.com'), \
     (3, 'Chandra', 'chandra@example.com'), (4, 'Dana', 'dana@example.com'), (5, 'Emeka', 'emeka@example.com'), (6, 'Fatima', 'fatima@example.com')",
    "INSERT INTO orders (order_id, customer_id, product_id, quantity, amount) VALUES (100, 1, 1, 1, 49.90), (101, 1, 4, 3, 13.50), \
     (102, 2, 3, 1, 189.00), (103, 3, 2, 2, 39.80), (104, 4, 1, 1, 49.90), (105, 5, 3, 2, 378.00), (106, 6, 4, 10, 45.00)",
    "INSERT INTO orders (customer_id, product_id, quantity, amount) VALUES (2, 2, 1, 19.90), (4, 4, 2, 9.00)",
];

/// `commerce`: each shard's primary and replica.
pub fn config_text(listen: &str, commerce: [[&str; 2]; 2], main: &str) -> String {
    format!(
        r#"[server]
listen = "{listen}"
# The status page, metrics and reload, on a free port (printed at start).
admin = "127.0.0.1:0"

[[users]]
name = "app"
password = "app"

[keyspaces.commerce]
sharded = true
auto_failover = true
shards = [
  {{ name = "-80", primary = "{c0}", replicas = ["{r0}"] }},
  {{ name = "80-", primary = "{c1}", replicas = ["{r1}"] }},
]
vindexes.hash = {{ type = "hash" }}
vindexes.customer_email = {{ type = "consistent_lookup_unique", table = "main.customer_email_lookup", from = "email", to = "keyspace_id" }}
tables.customers = {{ primary_vindex = {{ column = "customer_id", vindex = "hash" }}, secondary_vindexes = [{{ column = "email", vindex = "customer_email" }}] }}
tables.orders = {{ primary_vindex = {{ column = "customer_id", vindex = "hash" }}, auto_increment = {{ column = "order_id", sequence = "main.order_seq" }} }}
tables.products = {{ type = "reference" }}

[keyspaces.main]
sharded = false
shards = [{{ name = "0", primary = "{main}" }}]
tables.order_seq = {{ type = "sequence" }}
"#,
        c0 = commerce[0][0],
        r0 = commerce[0][1],
        c1 = commerce[1][0],
        r1 = commerce[1][1],
    )
}

pub async fn run(listen: &str) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("starting 5 local MariaDB servers (two replication groups and one more)...");
    let group = || tokio::task::spawn_blocking(|| testkit::start_replicated(1, &["commerce"]));
    let (first, second, main) = tokio::join!(
        group(),
        group(),
        tokio::task::spawn_blocking(|| testkit::start(1, &["main"]))
    );
    let groups = [first??, second??];
    let main = main??;
    let urls = groups
        .each_ref()
        .map(|g| [g[0].url("commerce"), g[1].url("commerce")]);
    let text = config_text(
        listen,
        urls.each_ref().map(|[p, r]| [p.as_str(), r.as_str()]),
        &main[0].url("main"),
    );
    let config_path = main[0].dir().join("shardgate.toml");
    std::fs::write(&config_path, &text)?;
    let config = vschema::parse_config(&text, Path::new(&config_path))?;
    let running = crate::start_from(&config, listen, Some(config_path.clone())).await?;

    let url = format!("mysql://app:app@{}", running.addr);
    let opts = mysql_async::Opts::from_url(&url)?;
    let mut conn = mysql_async::Conn::new(opts).await?;
    for stmt in SCHEMA {
        conn.query_drop(*stmt).await?;
    }
    conn.disconnect().await?;

    println!("shardgate demo is serving on {}", running.addr);
    for (name, g) in ["-80", "80-"].iter().zip(&groups) {
        println!(
            "  keyspace commerce, shard {name}: primary 127.0.0.1:{}, replica 127.0.0.1:{}",
            g[0].port, g[1].port
        );
    }
    println!("  keyspace main (unsharded): 127.0.0.1:{}", main[0].port);
    println!("  config: {}", config_path.display());
    if let Some(admin) = running.admin {
        println!("  status page: http://{admin}/status   metrics: http://{admin}/metrics");
    }
    println!();
    println!("connect with:");
    println!(
        "  mysql -h127.0.0.1 -P{} -uapp -papp commerce",
        running.addr.port()
    );
    println!();
    println!("try: SELECT * FROM customers WHERE customer_id = 4;");
    println!("     SELECT * FROM customers WHERE email = 'dana@example.com';   (through the lookup vindex)");
    println!("     INSERT INTO orders (customer_id, product_id, quantity, amount) VALUES (3, 1, 1, 49.90);  SELECT LAST_INSERT_ID();");
    println!("     SELECT customer_id, COUNT(*), SUM(amount) FROM orders GROUP BY customer_id ORDER BY 3 DESC;");
    println!("     VEXPLAIN PLAN SELECT * FROM orders ORDER BY amount DESC LIMIT 3;");
    println!("     USE commerce@replica; SELECT COUNT(*) FROM orders;   (read from the replicas)");
    println!("     SHOW SHARDGATE SHARDS;   and, in a shell:");
    println!(
        "     shardgate reparent commerce/-80 --to 127.0.0.1:{} --config {}",
        groups[0][1].port,
        config_path.display()
    );
    println!("Ctrl-C stops everything and removes the data.");
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    drop((groups, main));
    println!("stopped; data removed");
    Ok(())
}
