//! How a key part is read from a delivery: from a header when one is configured and sent,
//! else from the body at a JSON pointer, with the types a key part may have. The providers
//! give the header values; this decides what they mean, so the rules can be fuzzed without
//! an HTTP stack.

use crate::pointer::{self, Found, Pointer};

/// Why a key part could not be read. The service adds the header and pointer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The body is not JSON and the `what` part must be read from it.
    NotJson { what: &'static str },
    /// The body holds the `what` part as something other than `expected`.
    WrongType {
        what: &'static str,
        expected: &'static str,
    },
    /// A header names the `what` part differently from the (signed) body.
    Contradicts { what: &'static str },
}

/// A key part found in the body: `None` when absent or null; integers only where
/// `allow_integer` (some senders number their events), in decimal form.
pub fn body_value(
    found: Found,
    what: &'static str,
    allow_integer: bool,
) -> Result<Option<String>, KeyError> {
    match found {
        Found::Missing | Found::Null => Ok(None),
        Found::String(s) => Ok(Some(s)),
        Found::Integer(n) if allow_integer => Ok(Some(n)),
        Found::Integer(_) | Found::Other => Err(KeyError::WrongType {
            what,
            expected: if allow_integer {
                "string or an integer"
            } else {
                "string"
            },
        }),
    }
}

/// Where a configurable (generic) source finds its key: the header values as sent (`None`
/// when the header is not configured or absent) and the body pointers (empty: not read).
pub struct Places<'a> {
    pub type_header: Option<&'a str>,
    pub id_header: Option<&'a str>,
    pub type_pointer: &'a Pointer,
    pub id_pointer: &'a Pointer,
}

/// The key parts, type first: a header, when sent, wins over the body (even empty: the key
/// check refuses that). With no type, the id is not read (`(None, None)`), so that a missing
/// type is the error reported. The body is read at most once, for both pointers.
pub fn read(
    places: &Places<'_>,
    body: &[u8],
) -> Result<(Option<String>, Option<String>), KeyError> {
    // The id as the body has it, when the body was read for the type.
    let mut id_in_body = None;
    let event_type = match places.type_header {
        Some(t) => Some(t.to_owned()),
        None if places.type_pointer.is_empty() => None,
        None => {
            let [type_found, id_found] =
                pointer::find(body, [places.type_pointer, places.id_pointer])
                    .map_err(|_| KeyError::NotJson { what: "type" })?;
            id_in_body = Some(id_found);
            body_value(type_found, "type", false)?
        }
    };
    if event_type.is_none() {
        return Ok((None, None));
    }
    let event_id = match places.id_header {
        Some(id) => Some(id.to_owned()),
        None if places.id_pointer.is_empty() => None,
        None => {
            let found = match id_in_body {
                Some(found) => found,
                None => {
                    let [found] = pointer::find(body, [places.id_pointer])
                        .map_err(|_| KeyError::NotJson { what: "id" })?;
                    found
                }
            };
            body_value(found, "id", true)?
        }
    };
    Ok((event_type, event_id))
}

/// On a signed source the signature covers the body, not the headers: a header that names
/// a key part differently from the signed body would let anyone who captured a delivery
/// change what it means (a `payment_failed` body replayed as `payment_succeeded`). So where
/// the body has the part, the key must say the same. A body that is not JSON says nothing a
/// header could contradict.
pub fn agrees(
    places: &Places<'_>,
    body: &[u8],
    event_type: &str,
    event_id: &str,
) -> Result<(), KeyError> {
    let Ok([type_found, id_found]) = pointer::find(body, [places.type_pointer, places.id_pointer])
    else {
        return Ok(());
    };
    for (found, value, what, pointer) in [
        (type_found, event_type, "type", places.type_pointer),
        (id_found, event_id, "id", places.id_pointer),
    ] {
        let in_body = match found {
            Found::String(s) | Found::Integer(s) => s,
            Found::Missing | Found::Null | Found::Other => continue,
        };
        if !pointer.is_empty() && in_body != value {
            return Err(KeyError::Contradicts { what });
        }
    }
    Ok(())
}
