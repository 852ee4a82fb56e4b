//! Known answers from Vitess's own vindex tests (vitessio/vitess, go/vt/vtgate/vindexes:
//! hash_test.go, xxhash_test.go, unicodeloosexxhash_test.go, unicodeloosemd5_test.go,
//! numeric_test.go, binary_test.go, binarymd5_test.go, reverse_bits_test.go, null.go,
//! numeric_static_map_test.go, multicol_test.go, and region_json.go's layout), written out here
//! as hex. They are the oracle for "a Vitess user's rows land on the same shards": our
//! implementation is checked against them, never against itself.

use std::collections::BTreeMap;

use vschema::{KeyValue, MultiColumn, Vindex, VindexKind};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn map(kind: VindexKind, value: KeyValue) -> String {
    hex(&kind.map(&value).unwrap().0)
}

fn text(s: &str) -> KeyValue {
    KeyValue::Text(s.as_bytes().to_vec())
}

/// hash_test.go, TestHashMap.
pub const HASH: &[(i64, &str)] = &[
    (1, "166b40b44aba4bd6"),
    (2, "06e7ea22ce92708f"),
    (3, "4eb190c9a2fa169c"),
    (4, "d2fd8867d50d2dfe"),
    (5, "70bb023c810ca87a"),
    (6, "f098480ac4c4be71"),
];

#[test]
fn hash() {
    for &(v, want) in HASH {
        assert_eq!(map(VindexKind::Hash, KeyValue::Int(v)), want, "hash({v})");
    }
}

#[test]
fn xxhash() {
    // xxhash_test.go, TestXXHashMap.
    let text_cases = [
        ("test1", "d01ab7e4d6978f0b"),
        ("test2", "87eb11714c0a0e89"),
        ("testaverylongvaluetomakesurethisworks", "81d8c38e0d850e6a"),
    ];
    for (v, want) in text_cases {
        assert_eq!(map(VindexKind::Xxhash, text(v)), want, "xxhash({v:?})");
    }
    let int_cases = [
        (KeyValue::Int(1), "d46405367612b4b7"),
        (KeyValue::Int(-1), "d8e2a6a7c8c7623d"),
        (KeyValue::UInt(u64::MAX), "477cfa8d6d8f1f8d"),
        (KeyValue::Int(i64::MAX), "b37eb01f7bffafd8"),
        (KeyValue::UInt(i64::MAX as u64), "b37eb01f7bffafd8"),
        (KeyValue::Int(i64::MIN), "102c27ddb26a609e"),
    ];
    for (v, want) in int_cases {
        assert_eq!(map(VindexKind::Xxhash, v.clone()), want, "xxhash({v:?})");
    }
}

#[test]
fn unicode_loose_xxhash() {
    // unicodeloosexxhash_test.go, TestUnicodeLooseXXHashMap.
    let cases = [
        ("Test", "42d21361087a4c07"),
        ("TEst", "42d21361087a4c07"),
        ("Te\u{0301}st", "42d21361087a4c07"),
        ("Tést", "42d21361087a4c07"),
        ("Bést", "926975b9ce2ec316"),
        ("Test ", "42d21361087a4c07"),
        (" Test", "4fcb8be34ec05775"),
        ("Test\t", "20af87fc36e3fd51"),
        ("TéstLooong", "d3ea873942b484a7"),
        ("T", "f81c3be2d501fe18"),
    ];
    for (v, want) in cases {
        assert_eq!(
            map(VindexKind::UnicodeLooseXxhash, text(v)),
            want,
            "unicode_loose_xxhash({v:?})"
        );
    }
}

#[test]
fn unicode_loose_md5() {
    // unicodeloosemd5_test.go, TestUnicodeLooseMD5Map (its Go string literals as hex).
    let cases = [
        ("Test", "0b5edbb401fd7524393690491d64f1f5"),
        ("TEST", "0b5edbb401fd7524393690491d64f1f5"),
        ("Te\u{0301}st", "0b5edbb401fd7524393690491d64f1f5"),
        ("Tést", "0b5edbb401fd7524393690491d64f1f5"),
        ("Bést", "c2b2332e4f73d00741026249706f2fb6"),
        ("Test ", "0b5edbb401fd7524393690491d64f1f5"),
        (" Test", "a2e3515c7e8df1ffd2ccfc11c6b19dd1"),
        ("Test\t", "82456dd87a9c7a02b1c2056b5abaa272"),
        ("TéstLooong", "9683e12b80430cd453f5dfdfba81c9a5"),
        ("T", "ac0f9179f51db87fe8ecc0cf40cab97a"),
    ];
    for (v, want) in cases {
        assert_eq!(
            map(VindexKind::UnicodeLooseMd5, text(v)),
            want,
            "unicode_loose_md5({v:?})"
        );
    }
}

#[test]
fn numeric() {
    // numeric_test.go, TestNumericMap: the integer as 8 big-endian bytes; 1.1 maps nowhere.
    for v in 1..=8 {
        assert_eq!(
            map(VindexKind::Numeric, KeyValue::Int(v)),
            format!("{v:016x}"),
            "numeric({v})"
        );
    }
    assert!(VindexKind::Numeric
        .map(&KeyValue::Decimal("1.1".into()))
        .is_err());
}

#[test]
fn binary() {
    // binary_test.go, TestBinary: the bytes themselves.
    for v in ["test", "test2", "test3"] {
        assert_eq!(
            map(VindexKind::Binary, text(v)),
            hex(v.as_bytes()),
            "binary({v:?})"
        );
    }
}

#[test]
fn binary_md5() {
    // binarymd5_test.go, TestBinaryMD5Map: MD5 of the bytes, case kept.
    assert_eq!(
        map(VindexKind::BinaryMd5, text("Test")),
        "0cbc6611f5540bd0809a388dc95a615b"
    );
    assert_eq!(
        map(VindexKind::BinaryMd5, text("TEST")),
        "033bd94b1168d7e4f0d644c3c95e35bf"
    );
}

#[test]
fn reverse_bits() {
    // reverse_bits_test.go, TestReverseBitsMap.
    let cases = [
        (1, "8000000000000000"),
        (2, "4000000000000000"),
        (3, "c000000000000000"),
        (4, "2000000000000000"),
        (5, "a000000000000000"),
        (6, "6000000000000000"),
    ];
    for (v, want) in cases {
        assert_eq!(
            map(VindexKind::ReverseBits, KeyValue::Int(v)),
            want,
            "reverse_bits({v})"
        );
    }
}

#[test]
fn null() {
    // null.go: every value to keyspace ID 00.
    for v in [KeyValue::Int(1), KeyValue::Int(-7), text("x")] {
        assert_eq!(map(VindexKind::Null, v), "00");
    }
}

#[test]
fn numeric_static_map() {
    // numeric_static_map_test.go, TestNumericStaticMapMap, with its testdata map ("3" -> 2):
    // a mapped value takes its entry, the others stay themselves, as 8 big-endian bytes.
    let vindex = vschema::Vindex {
        static_map: vschema::parse_static_map(r#"{"3": 2}"#).unwrap(),
        ..vschema::Vindex::new("numericStaticMap", VindexKind::NumericStaticMap)
    };
    for (v, want) in [(1, 1), (2, 2), (3, 2), (4, 4), (8, 8)] {
        assert_eq!(
            hex(&vindex.map(&KeyValue::Int(v)).unwrap().0),
            format!("{want:016x}"),
            "numeric_static_map({v})"
        );
    }
    assert!(vindex.map(&KeyValue::Decimal("1.1".into())).is_err());
    assert!(vschema::parse_static_map(r#"{"x": 2}"#).is_err());
}

#[test]
fn multicol() {
    // multicol_test.go, TestMultiColMap: column_count 3, each column `hash`, 3 + 3 + 2 bytes.
    let vindex = Vindex {
        multi: Some(MultiColumn::hashed("3", None, None).unwrap()),
        ..Vindex::new("multicol_map", VindexKind::Multicol)
    };
    for (first, want) in [
        (1, "166b40166b40166b"),
        (255, "254e88166b40166b"),
        (256, "dd7c0b166b40166b"),
    ] {
        let v = KeyValue::Tuple(vec![
            KeyValue::Int(first),
            KeyValue::Int(1),
            KeyValue::Int(1),
        ]);
        assert_eq!(
            hex(&vindex.map(&v).unwrap().0),
            want,
            "multicol({first}, 1, 1)"
        );
    }
    // A value the column's vindex cannot map, and too few columns, map nowhere.
    let bad = KeyValue::Tuple(vec![
        KeyValue::Text(b"abcd".to_vec()),
        KeyValue::Int(256),
        KeyValue::Int(256),
    ]);
    assert!(vindex.map(&bad).is_err());
    assert!(vindex
        .map(&KeyValue::Tuple(vec![KeyValue::Int(1)]))
        .is_err());
    // multicol_test.go, TestMulticolCreateVindex: byte and vindex lists are checked.
    assert!(MultiColumn::hashed("9", None, None).is_err());
    assert!(MultiColumn::hashed("3", None, Some("100,200,300")).is_err());
    assert!(MultiColumn::hashed("3", Some("binary,binary,null"), Some("1,2,3")).is_err());
    assert_eq!(
        MultiColumn::hashed("3", Some("binary,binary,binary"), Some("1,2,3")).unwrap(),
        MultiColumn::Hashed(vec![
            (VindexKind::Binary, 1),
            (VindexKind::Binary, 2),
            (VindexKind::Binary, 3)
        ])
    );
}

#[test]
fn region_json() {
    // region_json.go: the region (from the map) in `region_bytes` bytes, then `hash` of the id.
    let map = [("France".to_string(), 64u64), ("Japan".to_string(), 129)].into();
    let vindex = |bytes| Vindex {
        multi: Some(MultiColumn::Region {
            bytes,
            map: BTreeMap::clone(&map),
        }),
        ..Vindex::new("region_vdx", VindexKind::RegionJson)
    };
    let row = |id: i64, country: &str| {
        KeyValue::Tuple(vec![
            KeyValue::Int(id),
            KeyValue::Text(country.as_bytes().to_vec()),
        ])
    };
    // hash(1) = 166b40b44aba4bd6 (hash_test.go).
    assert_eq!(
        hex(&vindex(1).map(&row(1, "France")).unwrap().0),
        "40166b40b44aba4bd6"
    );
    assert_eq!(
        hex(&vindex(2).map(&row(1, "Japan")).unwrap().0),
        "0081166b40b44aba4bd6"
    );
    assert!(vindex(1).map(&row(1, "Atlantis")).is_err());
}
