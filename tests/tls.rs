//! TLS for clients, with the `mysql` command-line client: `--ssl` connects encrypted (the
//! client's own status line names the cipher), `--ssl-verify-server-cert` checks the
//! certificate (and refuses one its CA did not sign), a `require_tls` user is refused on a plain connection and let in over TLS, and
//! other users may still connect in plain text; a user known by its caching_sha2_password hash
//! logs in by full authentication (over TLS, or RSA-encrypted) and then by the fast path.

use std::process::Command;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

/// The `mysql` client with password `secret` (`wrong` when `args` holds `--wrong-password`).
fn mysql(port: u16, user: &str, args: &[&str], sql: &str) -> (bool, String) {
    let password = if args.contains(&"--wrong-password") {
        "-pwrong"
    } else {
        "-psecret"
    };
    let mut cmd = Command::new("mysql");
    let out = cmd
        .args([
            "-h127.0.0.1",
            &format!("-P{port}"),
            &format!("-u{user}"),
            password,
        ])
        .args(args.iter().filter(|a| **a != "--wrong-password"))
        .args(["-e", sql]);
    let out = testkit::output_within(out, std::time::Duration::from_secs(60), "mysql")
        .expect("the mysql client runs (scripts/setup.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_mysql_client() {
    let servers = tokio::task::spawn_blocking(|| testkit::start(1, &["tls"]))
        .await
        .unwrap()
        .unwrap();
    let mut d = Conn::new(Opts::from_url(&servers[0].url("tls")).unwrap())
        .await
        .unwrap();
    d.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10))")
        .await
        .unwrap();
    d.query_drop("INSERT INTO t VALUES (1, 'one')")
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    // The proxy's certificate, and an unrelated one that must not verify it.
    for (key, cert) in [("key.pem", "cert.pem"), ("other-key.pem", "other.pem")] {
        let san = Some("DNS:localhost,IP:127.0.0.1");
        testkit::self_signed(dir.path(), "/CN=localhost", key, cert, san);
    }
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
tls_cert = "cert.pem"
tls_key = "key.pem"

[[users]]
name = "app"
password = "secret"

[[users]]
name = "secure"
password_hash = "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
require_tls = true

[[users]]
name = "sha2"
password_sha2 = "{sha2}"

[keyspaces.tls]
sharded = false
shards = [{{ name = "0", primary = "{}" }}]
"#,
        servers[0].url("tls"),
        sha2 = frontend::sha2_password_hash("secret", b"0123456789abcdefghij"),
    );
    // Relative certificate paths are read beside the config file.
    let config = vschema::parse_config(&text, &dir.path().join("shardgate.toml")).unwrap();
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let port = proxy.addr.port();
    let port_blocking = port;
    let ca = dir.path().join("cert.pem");
    let ca = ca.to_str().unwrap().to_string();
    let other = dir.path().join("other.pem");
    let other = other.to_str().unwrap().to_string();

    let results = tokio::task::spawn_blocking({
        let ca = ca.clone();
        move || {
            let port = port_blocking;
            let select = "SELECT v FROM tls.t WHERE id = 1";
            vec![
                // Encrypted: the client's status names the cipher, and the query answers.
                mysql(port, "app", &["--ssl"], &format!("status; {select}")),
                // The certificate checked against its CA (itself) and the address.
                mysql(
                    port,
                    "app",
                    &[
                        "--ssl",
                        &format!("--ssl-ca={ca}"),
                        "--ssl-verify-server-cert",
                    ],
                    select,
                ),
                // Plain text is still allowed for users who do not require TLS.
                mysql(port, "app", &["--skip-ssl"], &format!("status; {select}")),
                // A certificate its CA did not sign is refused by a verifying client.
                {
                    let (ok, out) = mysql(
                        port,
                        "app",
                        &[
                            "--ssl",
                            &format!("--ssl-ca={other}"),
                            "--ssl-verify-server-cert",
                        ],
                        select,
                    );
                    (!ok, out)
                },
                // A require_tls user: refused in plain text, let in over TLS.
                mysql(port, "secure", &["--skip-ssl"], select),
                mysql(port, "secure", &["--ssl"], select),
                // A user known by its caching_sha2_password hash: full authentication over TLS
                // (the password inside the TLS session), then the wrong password is refused.
                mysql(port, "sha2", &["--ssl"], select),
                {
                    let (ok, out) = mysql(port, "sha2", &["--ssl", "--wrong-password"], select);
                    (!ok, out)
                },
            ]
        }
    })
    .await
    .unwrap();
    let (ok, out) = &results[0];
    assert!(ok, "{out}");
    assert!(out.contains("Cipher in use is TLS"), "{out}");
    assert!(out.contains("one"), "{out}");
    let (ok, out) = &results[1];
    assert!(ok, "{out}");
    assert!(out.contains("one"), "{out}");
    let (ok, out) = &results[2];
    assert!(ok, "{out}");
    assert!(out.contains("Not in use"), "{out}");
    let (refused, out) = &results[3];
    assert!(refused, "{out}");
    assert!(
        out.contains("2026"),
        "a TLS error (CR_SSL_CONNECTION_ERROR): {out}"
    );
    let (ok, out) = &results[4];
    assert!(!ok, "{out}");
    assert!(out.contains("1045"), "{out}");
    for (ok, out) in &results[5..8] {
        assert!(*ok, "{out}");
    }
    assert!(results[5].1.contains("one"), "{}", results[5].1);
    assert!(results[6].1.contains("one"), "{}", results[6].1);
    assert!(results[7].1.contains("1045"), "{}", results[7].1);

    // The same user without TLS: the password RSA-encrypted (mysql_async), then the fast path
    // it taught the proxy.
    for _ in 0..2 {
        let url = format!("mysql://sha2:secret@127.0.0.1:{port}/tls");
        let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
        let v: Option<String> = c.query_first("SELECT v FROM t WHERE id = 1").await.unwrap();
        assert_eq!(v.as_deref(), Some("one"));
    }
    proxy.stop().await;

    // A proxy without a certificate: a client that insists on TLS is refused, as by a MySQL
    // server without TLS, rather than quietly sent plain text.
    let plain = text
        .lines()
        .filter(|l| !l.starts_with("tls_"))
        .collect::<Vec<_>>()
        .join("\n");
    let config = vschema::parse_config(&plain, &dir.path().join("shardgate.toml")).unwrap();
    let proxy = shardgate::start(&config, "127.0.0.1:0").await.unwrap();
    let port = proxy.addr.port();
    let (plain_ok, insisting) = tokio::task::spawn_blocking(move || {
        let select = "SELECT v FROM tls.t WHERE id = 1";
        (
            mysql(port, "app", &["--skip-ssl"], select),
            mysql(
                port,
                "app",
                &[
                    "--ssl",
                    &format!("--ssl-ca={ca}"),
                    "--ssl-verify-server-cert",
                ],
                select,
            ),
        )
    })
    .await
    .unwrap();
    assert!(plain_ok.0 && plain_ok.1.contains("one"), "{}", plain_ok.1);
    assert!(!insisting.0, "{}", insisting.1);
    assert!(insisting.1.contains("2026"), "{}", insisting.1);
    proxy.stop().await;
}
