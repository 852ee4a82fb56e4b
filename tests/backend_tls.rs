//! TLS from shardgate to a shard: a MariaDB server with a certificate from a test CA, and a user
//! that must connect over TLS (`REQUIRE SSL`). `required` and `verify_identity` (against the CA)
//! reach it; `disabled` is refused by the server; `verify_ca` against another CA is refused by
//! shardgate.

use std::path::Path;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

/// A CA, and a server certificate it signed for 127.0.0.1; and another, unrelated CA.
fn certificates(dir: &Path) {
    testkit::self_signed(dir, "/CN=test CA", "ca.key", "ca.pem", None);
    testkit::ca_signed_server(dir, "/CN=127.0.0.1", "IP:127.0.0.1,DNS:localhost");
    testkit::self_signed(dir, "/CN=other CA", "other.key", "other.pem", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_reached_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let path = |f: &str| dir.path().join(f).display().to_string();
    let extra = vec![
        format!("--ssl-ca={}", path("ca.pem")),
        format!("--ssl-cert={}", path("server.pem")),
        format!("--ssl-key={}", path("server.key")),
    ];
    let servers = tokio::task::spawn_blocking(move || testkit::start_with(1, &["btls"], &extra))
        .await
        .unwrap()
        .unwrap();
    let mut root = Conn::new(Opts::from_url(&servers[0].url("btls")).unwrap())
        .await
        .unwrap();
    for sql in [
        "CREATE USER 'secure'@'127.0.0.1' REQUIRE SSL",
        "GRANT ALL ON btls.* TO 'secure'@'127.0.0.1'",
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO t VALUES (1, 'over tls')",
    ] {
        root.query_drop(sql).await.unwrap();
    }

    let run = |mode: &str, ca: &str| {
        let text = format!(
            r#"[server]
listen = "127.0.0.1:0"

[[users]]
name = "app"
password = "pw"

[keyspaces.btls]
sharded = false
backend_tls = "{mode}"
backend_ca = "{ca}"
shards = [{{ name = "0", primary = "mysql://secure@127.0.0.1:{port}/btls" }}]
"#,
            port = servers[0].port
        );
        vschema::parse_config(&text, &dir.path().join("shardgate.toml")).unwrap()
    };
    // The error when it does not work: the shard refuses the plain-text login of a REQUIRE SSL
    // user (1045, passed through), or the TLS handshake fails on a certificate of another CA
    // (1429: the statement never reached the shard).
    for (mode, ca, works) in [
        ("required", "ca.pem", None),
        ("verify_identity", "ca.pem", None),
        ("verify_ca", "ca.pem", None),
        ("disabled", "ca.pem", Some(1045)),
        ("verify_ca", "other.pem", Some(1429)),
    ] {
        let config = run(mode, ca);
        let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
        let url = format!("mysql://app:pw@127.0.0.1:{}/btls", proxy.addr.port());
        let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
        let got: Result<Option<String>, _> = c.query_first("SELECT v FROM t WHERE id = 1").await;
        match (works, got) {
            (None, Ok(v)) => assert_eq!(v.as_deref(), Some("over tls"), "{mode}"),
            (Some(code), Err(mysql_async::Error::Server(e))) if e.code == code => {
                assert!(e.message.contains("shard 0"), "{mode} {ca}: {e}")
            }
            (works, got) => panic!("{mode} with {ca}: expected {works:?}, got {got:?}"),
        }
        drop(c);
        proxy.stop().await;
    }
}
