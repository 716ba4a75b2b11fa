//! `find` against `Value::pointer` on the parsed document, case by case and by property.

use super::*;

/// What `Value::pointer` answers, in `Found`'s terms: the reference `find` must match.
fn reference(body: &[u8], pointer: &str) -> Option<Found> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(Found::of(value.pointer(pointer)))
}

fn find_str<const N: usize>(
    body: &str,
    pointers: [&str; N],
) -> Result<[Found; N], serde_json::Error> {
    let pointers = pointers.map(Pointer::new);
    find(body.as_bytes(), std::array::from_fn(|i| &pointers[i]))
}

fn check(body: &str, pointers: [&str; 2]) {
    let ours = find_str(body, pointers).ok();
    let theirs = reference(body.as_bytes(), pointers[0])
        .zip(reference(body.as_bytes(), pointers[1]))
        .map(|(a, b)| [a, b]);
    assert_eq!(ours, theirs, "body {body:?}, pointers {pointers:?}");
}

#[test]
fn reads_top_level_and_nested_values() {
    let body = r#"{"id":"evt_1","type":"payment.succeeded","data":{"object":{"id":"pi_1","n":[1,{"k":"v"}]}}}"#;
    assert_eq!(
        find_str(body, ["/type", "/id"]).unwrap(),
        [
            Found::String("payment.succeeded".into()),
            Found::String("evt_1".into())
        ]
    );
    assert_eq!(
        find_str(body, ["/data/object/id", "/data/object/n/1/k"]).unwrap(),
        [Found::String("pi_1".into()), Found::String("v".into())]
    );
    for pointers in [
        ["/data", "/data/object"],
        ["/data/object/n/0", "/data/object/n/2"],
        ["/missing", "/id/0"],
        ["", "id"],
    ] {
        check(body, pointers);
    }
}

#[test]
fn agrees_with_value_pointer_on_the_awkward_cases() {
    let cases = [
        // Duplicate keys: the last wins, even when the first held the target.
        r#"{"id":"a","id":"b"}"#,
        r#"{"d":{"id":"a"},"d":"flat"}"#,
        r#"{"d":"flat","d":{"id":"a"}}"#,
        // Escaped keys and pointer escapes.
        r#"{"a/b":"slash","m~n":"tilde","\u0069d":"escaped"}"#,
        // Numbers, null, booleans, floats, huge integers.
        r#"{"id":42,"type":-7}"#,
        r#"{"id":1.0,"type":true}"#,
        r#"{"id":null,"type":12345678901234567890123}"#,
        // Arrays: indexes, leading zeros, signs.
        r#"{"id":["x","y"],"type":[{"a":"b"}]}"#,
        r#"["first",{"id":"in-array"}]"#,
        // Not one document.
        r#"{"id":"a"} trailing"#,
        "not json",
        "",
        r#"{"id":"a""#,
        // serde_json's raw-value marker, as the first key (at the top or nested), later,
        // escaped, and with a value that is not JSON.
        r#"{"$serde_json::private::RawValue":"{\"id\":\"evt_1\",\"type\":\"t\"}"}"#,
        r#"{"d":{"$serde_json::private::RawValue":"{\"id\":\"n\"}"},"id":"x"}"#,
        r#"{"id":"a","$serde_json::private::RawValue":"{}"}"#,
        r#"{"\u0024serde_json::private::RawValue":"{\"id\":\"e\"}"}"#,
        r#"{"$serde_json::private::RawValue":1}"#,
        r#"{"$serde_json::private::RawValue":"not json","id":"a"}"#,
    ];
    let pointers = [
        ["/id", "/type"],
        ["/d/id", "/d"],
        ["/a~1b", "/m~0n"],
        ["/id/1", "/type/0/a"],
        ["/id/01", "/id/+1"],
        ["/0", "/1/id"],
        ["", "/"],
    ];
    for body in cases {
        for p in pointers {
            check(body, p);
        }
    }
}

#[test]
fn deep_documents_are_refused_like_serde_json_refuses_them() {
    for depth in [127, 128, 129, 200] {
        let deep = format!(
            r#"{{"id":"a","x":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        check(&deep, ["/id", "/type"]);
    }
}

proptest::proptest! {
    /// On any JSON document built from a few keys, and on arbitrary bytes, `find` answers
    /// what parsing the whole document and asking `Value::pointer` answers.
    #[test]
    fn matches_value_pointer(
        body in "\\{(\"(id|type|d|0)\":(\"[a-z]{0,3}\"|-?[0-9]{1,22}|null|true|1\\.5|\\[(\"x\",?)?\\]|\\{\"id\":\"n\"\\}),?){0,5}\\}",
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
    ) {
        for p in [["/id", "/type"], ["/d/id", "/d/0"], ["/0", "/d"]] {
            check(&body, p);
            check(&String::from_utf8_lossy(&bytes), p);
        }
    }
}
