//! What the fuzz targets assert, as plain functions of bytes, so that the same checks run
//! on stable in `cargo test` over the checked-in seeds and every input a fuzzer ever
//! crashed on (`fuzz/seeds/`, `fuzz/regressions/`; see `tests/seeds.rs`). Each panics on a
//! finding. Not part of the service's API.

use crate::key::{self, Places};
use crate::pointer::{find, Found, Pointer};
use crate::signature::{self, Encoding};

/// The body reader against the reference it must equal: `Value::pointer` on the parsed
/// document. Input: a pointer on the first line, the body after it.
pub fn pointer(data: &[u8]) {
    let (pointer, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"/id"[..], data),
    };
    let pointer = String::from_utf8_lossy(pointer);
    let pointers = [Pointer::new(&pointer), Pointer::new("/type")];
    let ours = find(body, [&pointers[0], &pointers[1]]);
    match (ours, serde_json::from_slice::<serde_json::Value>(body)) {
        (Ok(found), Ok(value)) => {
            let expected = pointers
                .each_ref()
                .map(|p| Found::of(value.pointer(p.as_str())));
            assert_eq!(found, expected, "pointer {pointer:?}");
        }
        (Err(_), Err(_)) => {}
        (ours, reference) => panic!(
            "the reader and Value disagree on whether this is JSON: {:?} vs {:?}",
            ours.err(),
            reference.err()
        ),
    }
}

/// Every provider's signature-header parser on arbitrary text: no panic, and what a parser
/// accepts is what it claims.
pub fn signature_headers(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    if let Ok(h) = signature::stripe_header(&value) {
        assert!(!h.signatures.is_empty());
        assert_eq!(h.timestamp_text.parse::<i64>().ok(), Some(h.timestamp));
    }
    if let Ok(sigs) = signature::standard_signatures(&value) {
        assert!(!sigs.is_empty() && value.contains("v1,"));
    }
    if let Ok(t) = signature::parse_timestamp(&value, "t") {
        assert!(t >= 0 && value.bytes().all(|b| b.is_ascii_digit()));
    }
    if let Ok(sig) = signature::github_signature(&value) {
        assert!(value.eq_ignore_ascii_case(&format!("sha256={}", hex::encode(sig))));
    }
    let _ = signature::shopify_signature(&value);
    let _ = signature::standard_secret(&value);
    for encoding in [Encoding::Hex, Encoding::Base64] {
        let _ = signature::generic_signature(&value, "sha256=", encoding, "sig");
        let _ = signature::generic_signature(&value, "", encoding, "sig");
    }
}

/// The generic provider's key rules. Input: a flags byte (bit 0: a type header is sent,
/// bit 1: an id header), then `type header \n id header \n type pointer \n id pointer \n body`.
/// No panic; a sent header is the part; with no headers the parts are exactly what
/// `Value::pointer` finds; a key read from the body agrees with the body.
pub fn generic_key(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(5, |&b| b == b'\n');
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (type_header, id_header) = (next(), next());
    let (type_pointer, id_pointer) = (Pointer::new(&next()), Pointer::new(&next()));
    let body = next().into_bytes();
    let type_header = (flags & 1 != 0).then_some(type_header);
    let id_header = (flags & 2 != 0).then_some(id_header);
    let places = Places {
        type_header: type_header.as_deref(),
        id_header: id_header.as_deref(),
        type_pointer: &type_pointer,
        id_pointer: &id_pointer,
    };
    if let Ok((Some(t), id)) = key::read(&places, &body) {
        if let Some(h) = &type_header {
            assert_eq!(h, &t);
        }
        if let (Some(h), Some(id)) = (&id_header, id) {
            assert_eq!(h, &id);
        }
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return;
    };
    if type_pointer.is_empty() || id_pointer.is_empty() {
        return;
    }
    let part = |p: &Pointer, integer: bool| match Found::of(value.pointer(p.as_str())) {
        Found::Missing | Found::Null => Ok(None),
        Found::String(s) => Ok(Some(s)),
        Found::Integer(n) if integer => Ok(Some(n)),
        Found::Integer(_) | Found::Other => Err(()),
    };
    let expected = part(&type_pointer, false).and_then(|t| match t {
        None => Ok((None, None)),
        Some(t) => part(&id_pointer, true).map(|id| (Some(t), id)),
    });
    let bare = Places {
        type_header: None,
        id_header: None,
        ..places
    };
    let got = key::read(&bare, &body);
    assert_eq!(got.clone().map_err(|_| ()), expected);
    if let Ok((Some(t), Some(id))) = got {
        assert_eq!(key::agrees(&bare, &body, &t, &id), Ok(()));
    }
}
