//! Reading key parts from the body: one pass over it for every pointer a provider needs. The
//! reading itself is `wire`'s (where it is fuzzed); this names the pointers in errors.

use std::sync::LazyLock;

use wire::key::KeyError;
use wire::pointer::{self, Found, Pointer};

use super::delivery::{Delivery, ProviderError};

/// The values at these body pointers, read in one pass; `fields` are `(pointer, what)`,
/// and a body that is not JSON is refused naming the first.
pub(crate) fn body_fields<const N: usize>(
    d: &Delivery<'_>,
    fields: [(&Pointer, &'static str); N],
) -> Result<[Found; N], ProviderError> {
    pointer::find(d.body, fields.map(|(p, _)| p)).map_err(|_| {
        let (pointer, what) = fields.first().map_or(("", "id"), |(p, w)| (p.as_str(), *w));
        ProviderError::NotJson {
            what,
            pointer: pointer.to_owned(),
        }
    })
}

/// A string the body must hold at `pointer`.
pub(crate) fn required_string(
    found: Found,
    pointer: &str,
    what: &'static str,
) -> Result<String, ProviderError> {
    wire::key::body_value(found, what, false)
        .map_err(|e| key_error(e, "", pointer))?
        .ok_or_else(|| ProviderError::MissingField {
            what,
            pointer: pointer.to_owned(),
        })
}

/// `wire`'s reason, with the header and pointer the source reads that part from.
pub(crate) fn key_error(e: KeyError, header: &str, pointer: &str) -> ProviderError {
    match e {
        KeyError::NotJson { what } => ProviderError::NotJson {
            what,
            pointer: pointer.to_owned(),
        },
        KeyError::WrongType { what, expected } => ProviderError::WrongType {
            what,
            pointer: pointer.to_owned(),
            expected,
        },
        KeyError::Contradicts { what } => ProviderError::Contradicts {
            what,
            header: header.to_owned(),
            pointer: pointer.to_owned(),
        },
    }
}

/// The pointers the hosted providers read their key from: `/type`, and `/id`.
pub(crate) static TYPE_POINTER: LazyLock<Pointer> = LazyLock::new(|| Pointer::new("/type"));
pub(crate) static ID_POINTER: LazyLock<Pointer> = LazyLock::new(|| Pointer::new("/id"));
