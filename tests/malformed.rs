//! Malformed traffic: random bytes before and after the handshake, truncated packets, wrong
//! sequence ids, a 1-byte COM_QUERY, statements of 20 MiB and over 64 MiB, COM_STMT_EXECUTE with
//! wrong ids and parameter bytes, deeply nested SQL, invalid UTF-8. Each gets an error (or the
//! connection closes), and the proxy keeps serving everyone else.

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A small deterministic generator for the random inputs.
struct Lcg(u64);

impl Lcg {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (self.0 >> 33) as u8
            })
            .collect()
    }
}

/// The proxy still logs clients in and answers them.
async fn still_serving(proxy: &shardgate::Running) {
    let mut c = client(proxy, Some("two")).await;
    let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
}

/// Whatever comes back before the connection closes (bounded wait).
async fn drain(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

/// The first packet of a reply: an ERR's code, if it is one.
fn err_code(reply: &[u8]) -> Option<u16> {
    (reply.first() == Some(&0xff)).then(|| u16::from_le_bytes([reply[1], reply[2]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_traffic_gets_errors_and_the_proxy_keeps_serving() {
    let proxy = proxy().await;
    let mut rng = Lcg(42);

    // Random bytes before the handshake: the client does not even read the greeting.
    for n in [1, 3, 4, 50, 5000] {
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(&rng.bytes(n)).await.unwrap();
        let _ = s.shutdown().await;
        drain(&mut s).await;
    }
    still_serving(&proxy).await;

    // Random command packets after login, of many sizes and first bytes.
    for n in [1, 2, 5, 17, 200, 4096] {
        for _ in 0..5 {
            let mut s = login_raw(&proxy).await;
            write_packet(&mut s, 0, &rng.bytes(n)).await;
            // An answer (ERR or a result) or a closed connection; never a hang.
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_u8())
                .await
                .unwrap();
        }
    }
    still_serving(&proxy).await;

    // A truncated packet: the header promises 100 bytes, 10 come, then the client leaves.
    let mut s = login_raw(&proxy).await;
    s.write_all(&[100, 0, 0, 0, 0x03]).await.unwrap();
    s.write_all(b"SELECT 1 ").await.unwrap();
    drop(s);
    // A packet header cut in the middle.
    let mut s = login_raw(&proxy).await;
    s.write_all(&[7, 0]).await.unwrap();
    drop(s);
    still_serving(&proxy).await;

    // A wrong sequence id: an error, not a misread command.
    let mut s = login_raw(&proxy).await;
    write_packet(&mut s, 5, b"\x03SELECT 1").await;
    let reply = drain(&mut s).await;
    assert!(reply.is_empty() || reply[4] == 0xff, "{reply:?}");
    still_serving(&proxy).await;

    // A 1-byte COM_QUERY: an empty query.
    let mut s = login_raw(&proxy).await;
    let reply = command(&mut s, &[0x03]).await;
    assert_eq!(err_code(&reply), Some(1065), "{reply:?}");
    let reply = command(&mut s, &[0x0e]).await;
    assert_eq!(reply[0], 0x00, "still answering after the empty query");

    // COM_STMT_EXECUTE of an unknown statement, and with parameter bytes that do not fit.
    let reply = command(&mut s, &[0x17, 0x39, 0x05, 0, 0, 0, 1, 0, 0, 0]).await;
    assert_eq!(err_code(&reply), Some(1243), "{reply:?}");
    let mut prepare = vec![0x16];
    prepare.extend_from_slice(b"SELECT ? + ?");
    write_packet(&mut s, 0, &prepare).await;
    let ok = read_packet(&mut s).await;
    assert_eq!(ok[0], 0x00, "{ok:?}");
    let id = [ok[1], ok[2], ok[3], ok[4]];
    // Definitions of the two parameters, then an EOF.
    for _ in 0..3 {
        read_packet(&mut s).await;
    }
    // Column definitions and EOF of the one result column.
    for _ in 0..2 {
        read_packet(&mut s).await;
    }
    for body in [
        // Too few bytes for the NULL bitmap.
        vec![0x17, id[0], id[1], id[2], id[3], 0, 1, 0, 0, 0],
        // Types bound, then values cut short.
        vec![
            0x17, id[0], id[1], id[2], id[3], 0, 1, 0, 0, 0, 0, 1, 8, 0, 8, 0, 1, 2,
        ],
        // A string type whose length runs past the packet.
        vec![
            0x17, id[0], id[1], id[2], id[3], 0, 1, 0, 0, 0, 0, 1, 0xfe, 0, 0xfe, 0, 0xfc, 0xff,
            0xff,
        ],
    ] {
        let reply = command(&mut s, &body).await;
        assert_eq!(reply[0], 0xff, "{body:?}: {reply:?}");
    }
    let reply = command(&mut s, &[0x0e]).await;
    assert_eq!(reply[0], 0x00);

    // Deeply nested SQL: the parser's recursion limit, not the proxy's stack.
    for depth in [100, 10_000, 100_000] {
        let sql = format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth));
        let mut query = vec![0x03];
        query.extend_from_slice(sql.as_bytes());
        let reply = command(&mut s, &query).await;
        assert!(
            reply[0] == 0xff || reply[0] == 0x01,
            "depth {depth}: {:?}",
            &reply[..4]
        );
        if reply[0] != 0xff {
            drain_result(&mut s).await;
        }
    }
    let nested = format!(
        "SELECT * FROM {}misc{}",
        "(SELECT * FROM ".repeat(2_000),
        ") AS t".repeat(2_000)
    );
    let mut query = vec![0x03];
    query.extend_from_slice(nested.as_bytes());
    let reply = command(&mut s, &query).await;
    assert_eq!(reply[0], 0xff, "{:?}", &reply[..4]);

    // Invalid UTF-8 in a string and in an identifier.
    for sql in [
        &b"SELECT '\xff\xfe\x80'"[..],
        &b"SELECT * FROM `t\xc3\x28`"[..],
        &b"SELECT \xf0\x28\x8c\x28 FROM misc"[..],
    ] {
        let mut query = vec![0x03];
        query.extend_from_slice(sql);
        let reply = command(&mut s, &query).await;
        if reply[0] != 0xff {
            drain_result(&mut s).await;
        }
    }
    let reply = command(&mut s, &[0x0e]).await;
    assert_eq!(reply[0], 0x00);
    drop(s);
    still_serving(&proxy).await;

    // A 20 MiB statement (two 16 MiB packets and a bit) is read whole and answered.
    let mut c = client(&proxy, Some("two")).await;
    let big = "x".repeat(20 << 20);
    let len: Option<i64> = c
        .query_first(format!("SELECT LENGTH('{big}')"))
        .await
        .unwrap();
    assert_eq!(len, Some(20 << 20));
    drop(big);
    // Over max_packet_size (64 MiB): 1153, and the connection closes.
    let huge = "y".repeat(65 << 20);
    let r = c.query_drop(format!("SELECT LENGTH('{huge}')")).await;
    drop(huge);
    // The error packet, or the closed connection when the client was still writing.
    match r {
        Err(e) if server_code(&e).is_some() => assert_eq!(server_code(&e), Some(1153), "{e}"),
        other => expect_closed(other),
    }
    still_serving(&proxy).await;
    proxy.stop().await;
}

/// Reads the rest of a text result set (after its first packet) up to its final EOF or OK.
async fn drain_result(s: &mut tokio::net::TcpStream) {
    let mut eofs = 0;
    while eofs < 2 {
        let p = read_packet(s).await;
        if p.first() == Some(&0xfe) && p.len() < 9 {
            eofs += 1;
        }
        if p.first() == Some(&0xff) {
            return;
        }
    }
}
