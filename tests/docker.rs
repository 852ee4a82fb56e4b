//! docker-compose.yml, checked without Docker (it does not run on the CI machines): the file
//! parses, every service has a healthcheck, every port is published on 127.0.0.1 only, the files
//! it mounts exist; and the config it mounts, with its service names replaced by local MariaDB
//! servers given the same init scripts, serves the README's statements.

use std::path::Path;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn compose_file_is_valid() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let services = docs[0]["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    assert_eq!(names, ["shard1", "shard2", "unsharded", "shardgate"]);
    for (name, service) in services {
        let name = name.as_str().unwrap();
        assert!(
            !service["healthcheck"]["test"].is_badvalue(),
            "{name} has no healthcheck"
        );
        let ports = service["ports"].as_vec().expect("published ports");
        for port in ports {
            let port = port.as_str().unwrap();
            assert!(port.starts_with("127.0.0.1:"), "{name} publishes {port}");
        }
        for volume in service["volumes"].as_vec().into_iter().flatten() {
            let host = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(root().join(host).exists(), "{name} mounts missing {host}");
        }
        if name != "shardgate" {
            assert_eq!(service["image"].as_str(), Some("mysql:8.0"), "{name}");
        }
    }
    let gate = &docs[0]["services"]["shardgate"];
    let dockerfile = gate["build"]["dockerfile"].as_str().unwrap();
    let dockerfile = std::fs::read_to_string(root().join(dockerfile)).unwrap();
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert_eq!(stages, 2, "a two-stage build");
    for dependency in ["shard1", "shard2", "unsharded"] {
        assert_eq!(
            gate["depends_on"][dependency]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    // The mounted config is valid as it is.
    vschema::load_config(&root().join("config/docker.toml")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_config_serves_the_readme_statements() {
    let servers = tokio::task::spawn_blocking(|| testkit::start(3, &["commerce", "main"]))
        .await
        .unwrap()
        .unwrap();
    let script = |name: &str| std::fs::read_to_string(root().join("docker").join(name)).unwrap();
    for (i, (db, file)) in [
        ("commerce", "shard.sql"),
        ("commerce", "shard.sql"),
        ("main", "unsharded.sql"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = Conn::new(Opts::from_url(&servers[i].url(db)).unwrap())
            .await
            .unwrap();
        c.query_drop(script(file)).await.unwrap();
    }
    let text = std::fs::read_to_string(root().join("config/docker.toml"))
        .unwrap()
        .replace("0.0.0.0:15306", "127.0.0.1:0")
        .replace("0.0.0.0:15000", "127.0.0.1:0")
        .replace(
            "mysql://root@shard1:3306/commerce",
            &servers[0].url("commerce"),
        )
        .replace(
            "mysql://root@shard2:3306/commerce",
            &servers[1].url("commerce"),
        )
        .replace("mysql://root@unsharded:3306/main", &servers[2].url("main"));
    let config = vschema::parse_config(&text, Path::new("docker.toml")).unwrap();
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let url = format!("mysql://app:app@127.0.0.1:{}/commerce", proxy.addr.port());
    let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    for id in 1..=6 {
        c.query_drop(format!(
            "INSERT INTO customers (customer_id, name, email) VALUES ({id}, 'c{id}', 'c{id}@example.com')"
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "INSERT INTO orders (customer_id, product_id, quantity, amount) VALUES ({id}, {}, 1, 10.00)",
            id % 3 + 1
        ))
        .await
        .unwrap();
    }
    let last: u64 = c
        .query_first("SELECT LAST_INSERT_ID()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last, 6, "order ids come from main.order_seq");
    let rows: Vec<(i64, String)> = c
        .query(
            "SELECT o.order_id, p.name FROM orders o JOIN products p ON p.product_id = o.product_id \
             WHERE o.customer_id IN (1, 5) ORDER BY o.order_id",
        )
        .await
        .unwrap();
    assert_eq!(rows, [(1, "mouse".to_string()), (5, "monitor".to_string())]);
    let total: String = c
        .query_first("SELECT SUM(amount) FROM orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(total, "60.00");
    // Both shards hold some of the rows.
    for server in &servers[..2] {
        let mut d = Conn::new(Opts::from_url(&server.url("commerce")).unwrap())
            .await
            .unwrap();
        let n: i64 = d
            .query_first("SELECT COUNT(*) FROM orders")
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
    }
    drop(c);
    proxy.stop().await;
}
