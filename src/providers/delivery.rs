//! What a provider sees of a delivery, and why it may fail to name an event.

use rocket::http::HeaderMap;

/// What a provider sees of a delivery. The headers are Rocket's own map, borrowed, and the
/// body is raw bytes, read with [`wire::pointer::find`]: most deliveries are duplicates answered
/// from the cache, and those never need a copy of the headers or a parsed document.
pub struct Delivery<'a> {
    pub headers: &'a HeaderMap<'a>,
    pub body: &'a [u8],
    pub payload_sha256: &'a [u8; 32],
}

impl Delivery<'_> {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_one(name)
    }

    /// The header that carries part of the event key. Sent twice with different values, it
    /// is ambiguous (a proxy appended one?), and which one is "the" id decides what counts
    /// as a duplicate, so it is refused rather than guessed.
    pub fn key_header(&self, name: &str) -> Result<Option<&str>, ProviderError> {
        let mut values = self.headers.get(name);
        let first = values.next();
        if values.any(|v| Some(v) != first) {
            return Err(ProviderError::AmbiguousHeader(name.to_owned()));
        }
        Ok(first)
    }
}

/// A header map holding copies of these headers, names in the case given (lookups ignore it).
#[cfg(test)]
pub(crate) fn header_map(headers: &[(&str, &str)]) -> HeaderMap<'static> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.add_raw(name.to_string(), value.to_string());
    }
    map
}

/// Why the event's id or type could not be read. Answered 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("the body is not valid JSON, and the event {what} must be read from it at {pointer}")]
    NotJson { what: &'static str, pointer: String },
    #[error("the event type is missing: send the {header} header or a string at {pointer}")]
    MissingType { header: String, pointer: String },
    #[error("the event id is missing: send the {header} header or a string at {pointer}")]
    MissingId { header: String, pointer: String },
    #[error("the event {what} is missing: the {header} header is required")]
    MissingHeader {
        what: &'static str,
        header: &'static str,
    },
    #[error("the event {what} is missing: the body needs a string at {pointer}")]
    MissingField { what: &'static str, pointer: String },
    /// A signed generic source: a header (which no signature covers) names a key part that the
    /// signed body gives differently. The body wins by refusing the delivery outright.
    #[error(
        "the {header} header contradicts the signed body's event {what} at {pointer}: an \
         unsigned header cannot override what the signature covers"
    )]
    Contradicts {
        what: &'static str,
        header: String,
        pointer: String,
    },
    /// The source's `accept_types` does not list the type: nothing is recorded.
    #[error("the event type {0:?} is not among this source's accept_types")]
    TypeNotAccepted(String),
    #[error("the {0} header is sent more than once with different values")]
    AmbiguousHeader(String),
    #[error("the event {what} at {pointer} must be a {expected}")]
    WrongType {
        what: &'static str,
        pointer: String,
        expected: &'static str,
    },
}

/// A required header's value.
pub(crate) fn required_header(
    d: &Delivery<'_>,
    header: &'static str,
    what: &'static str,
) -> Result<String, ProviderError> {
    d.key_header(header)?
        .map(str::to_owned)
        .ok_or(ProviderError::MissingHeader { what, header })
}
