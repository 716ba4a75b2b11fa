//! Reading key parts from the body: one pass over it for every pointer a provider needs.

use std::sync::LazyLock;

use super::delivery::{Delivery, ProviderError};
use super::pointer::{self, Found, Pointer};

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
    body_value(found, pointer, what, false)?.ok_or_else(|| ProviderError::MissingField {
        what,
        pointer: pointer.to_owned(),
    })
}

/// A key part found in the body: `None` when absent or null; integers only where
/// `allow_integer` (some senders number their events), in decimal form.
pub(crate) fn body_value(
    found: Found,
    pointer: &str,
    what: &'static str,
    allow_integer: bool,
) -> Result<Option<String>, ProviderError> {
    match found {
        Found::Missing | Found::Null => Ok(None),
        Found::String(s) => Ok(Some(s)),
        Found::Integer(n) if allow_integer => Ok(Some(n)),
        Found::Integer(_) | Found::Other => Err(ProviderError::WrongType {
            what,
            pointer: pointer.to_owned(),
            expected: if allow_integer {
                "string or an integer"
            } else {
                "string"
            },
        }),
    }
}

/// The pointers the hosted providers read their key from: `/type`, and `/id`.
pub(crate) static TYPE_POINTER: LazyLock<Pointer> = LazyLock::new(|| Pointer::new("/type"));
pub(crate) static ID_POINTER: LazyLock<Pointer> = LazyLock::new(|| Pointer::new("/id"));
