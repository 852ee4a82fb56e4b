//! The proxy's text comparisons agree with MariaDB's on random strings over a mixed alphabet:
//! - `engine::TextOrder` (used where the shards cannot weigh text), for every collation whose
//!   metadata maps to it; whatever it cannot decide it refuses;
//! - `engine::Collation` (the collations the proxy weighs itself when merging), on every pair;
//!   and its general_ci table gives every character of the Basic Multilingual Plane the weight
//!   MariaDB gives it.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};

const COLLATIONS: &[&str] = &[
    "utf8mb4_general_ci",
    "utf8mb4_unicode_ci",
    "utf8mb4_unicode_520_ci",
    "utf8mb4_general_nopad_ci",
    "utf8mb4_bin",
    "utf8mb4_nopad_bin",
    "latin1_swedish_ci",
    "latin1_bin",
];
const ALPHABET: &[&str] = &[
    "a", "A", "b", "Z", "z", "0", "9", " ", " ", "_", "-", ".", "@", "\t", "é", "E", "ß", "s",
];
/// For the collations the proxy weighs: more than latin1 holds.
const WIDE_ALPHABET: &[&str] = &[
    "a", "A", "z", " ", " ", "_", "\t", "\u{1}", "é", "E", "ß", "s", "µ", "Μ", "μ", "😀", "😁",
    "中",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_text_comparisons_match_mariadb() {
    let servers = tokio::task::spawn_blocking(|| testkit::start(1, &["c"]))
        .await
        .unwrap()
        .unwrap();
    let mut conn = Conn::new(Opts::from_url(&servers[0].url("c")).unwrap())
        .await
        .unwrap();
    let columns: Vec<String> = COLLATIONS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let charset = c.split('_').next().unwrap();
            format!("c{i} VARCHAR(8) CHARACTER SET {charset} COLLATE {c}")
        })
        .collect();
    conn.query_drop(format!(
        "CREATE TABLE strs (id INT PRIMARY KEY, {})",
        columns.join(", ")
    ))
    .await
    .unwrap();
    // A small linear congruential generator: the same strings on every run.
    let mut seed: u64 = 7;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize % n
    };
    let strings: Vec<String> = (0..60)
        .map(|_| {
            (0..next(5))
                .map(|_| ALPHABET[next(ALPHABET.len())])
                .collect()
        })
        .collect();
    for (id, s) in strings.iter().enumerate() {
        let values = vec![s.as_str(); COLLATIONS.len()];
        let marks = vec!["?"; COLLATIONS.len()].join(", ");
        let mut params: Vec<mysql_async::Value> = vec![id.into()];
        params.extend(values.iter().map(|v| (*v).into()));
        conn.exec_drop(format!("INSERT INTO strs VALUES (?, {marks})"), params)
            .await
            .unwrap();
    }
    let (mut decided, mut refused) = (0, 0);
    for (i, collation) in COLLATIONS.iter().enumerate() {
        // MariaDB's verdict for every pair, and the column definition the proxy would see.
        let result = conn
            .query_iter(format!(
                "SELECT a.c{i}, b.c{i}, STRCMP(a.c{i}, b.c{i}) FROM strs a, strs b"
            ))
            .await
            .unwrap();
        let column = result.columns().unwrap()[0].clone();
        let rows: Vec<Row> = result.collect_and_drop().await.unwrap();
        let order = engine::TextOrder::of(&column);
        for row in rows {
            let (a, b, cmp): (Vec<u8>, Vec<u8>, i64) = mysql_async::from_row(row);
            match order.compare(&a, &b) {
                Ok(ord) => {
                    decided += 1;
                    assert_eq!(
                        ord,
                        cmp.cmp(&0),
                        "{collation}: {:?} vs {:?}",
                        String::from_utf8_lossy(&a),
                        String::from_utf8_lossy(&b)
                    );
                }
                Err(_) => refused += 1,
            }
        }
    }
    // Both outcomes occur: the check compares a real share of the pairs.
    assert!(
        decided > 5_000 && refused > 5_000,
        "{decided} decided, {refused} refused"
    );
    weighed_collations_match_mariadb(&mut conn, &mut next).await;
    general_ci_table_matches_mariadb(&mut conn).await;
}

/// Every pair of random strings compares under `engine::Collation` as under MariaDB's.
async fn weighed_collations_match_mariadb(conn: &mut Conn, next: &mut impl FnMut(usize) -> usize) {
    conn.query_drop(
        "CREATE TABLE wide (id INT PRIMARY KEY, g VARCHAR(8) COLLATE utf8mb4_general_ci, \
         b VARCHAR(8) COLLATE utf8mb4_bin)",
    )
    .await
    .unwrap();
    // Half the strings are ASCII, which general_ci compares without decoding.
    let ascii: Vec<String> = (b'\t'..=b'~')
        .filter(|c| *c == b'\t' || *c >= b' ')
        .map(|c| char::from(c).to_string())
        .collect();
    for id in 0..60 {
        let alphabet: Vec<&str> = match id % 2 {
            0 => WIDE_ALPHABET.to_vec(),
            _ => ascii.iter().map(String::as_str).collect(),
        };
        let s: String = (0..next(5))
            .map(|_| alphabet[next(alphabet.len())])
            .collect();
        conn.exec_drop("INSERT INTO wide VALUES (?, ?, ?)", (id, &s, &s))
            .await
            .unwrap();
    }
    for (column, collation) in [
        ("g", engine::Collation::GeneralCi),
        ("b", engine::Collation::Bin),
    ] {
        let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = conn
            .query(format!(
                "SELECT x.{column}, y.{column}, STRCMP(x.{column}, y.{column}) FROM wide x, wide y"
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 3600);
        for (a, b, cmp) in rows {
            assert_eq!(
                collation.compare(&a, &b),
                cmp.cmp(&0),
                "{collation:?}: {:?} vs {:?}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            );
        }
    }
}

/// The weight of every BMP character but the surrogates, as MariaDB computes it and as the
/// proxy does.
async fn general_ci_table_matches_mariadb(conn: &mut Conn) {
    let chars: String = (0u32..0x10000).filter_map(char::from_u32).collect();
    let utf16: String = chars.encode_utf16().map(|u| format!("{u:04X}")).collect();
    let mariadb: Vec<u8> = conn
        .query_first(format!(
            "SELECT WEIGHT_STRING(CONVERT(_utf16 X'{utf16}' USING utf8mb4) \
             COLLATE utf8mb4_general_ci)"
        ))
        .await
        .unwrap()
        .unwrap();
    let mut proxy = Vec::new();
    engine::Collation::GeneralCi.weigh(chars.as_bytes(), &mut proxy);
    assert_eq!(mariadb.len(), 2 * chars.chars().count());
    for ((c, m), p) in chars.chars().zip(mariadb.chunks(2)).zip(proxy.chunks(2)) {
        assert_eq!(m, p, "the weight of U+{:04X}", u32::from(c));
    }
}
