//! `generic`: any sender. The id and type come from a header if present, else from a JSON
//! pointer into the body; an event without an id can be identified by its payload's SHA-256.
//!
//! Signing is optional and configurable: an HMAC (SHA-256 or SHA-512) of the raw body, hex or
//! base64, in `signature_header`, after an optional `signature_prefix`. With a
//! `timestamp_header`, what is signed is `<timestamp>.<raw body>` and the tolerance applies.

use wire::key::{KeyError, Places};
use wire::pointer::Pointer;
use wire::signature::{generic_signature, Encoding};

use super::body::key_error;
use super::delivery::{Delivery, ProviderError};
use super::signature::Verifier;
use super::signature::{check_timestamp, parse_timestamp, signed_digest, SignatureError, Signed};
use crate::config::{OnMissingId, SignatureAlgorithm, SignatureEncoding, SourceConfig};
use crate::event::key::payload_hash_id;

/// Names as they appear in error messages, which need `'static` strings.
const SIGNATURE: &str = "signature";
const TIMESTAMP: &str = "timestamp";

pub struct Generic {
    id_header: String,
    id_pointer: Pointer,
    type_header: String,
    type_pointer: Pointer,
    on_missing_id: OnMissingId,
    signature_header: String,
    signature_algorithm: SignatureAlgorithm,
    signature_encoding: SignatureEncoding,
    signature_prefix: String,
    timestamp_header: String,
    verifier: Verifier,
}

impl Generic {
    pub fn from_config(cfg: &SourceConfig, verifier: Verifier) -> Self {
        Self {
            id_header: cfg.id_header.clone(),
            id_pointer: Pointer::new(&cfg.id_pointer),
            type_header: cfg.type_header.clone(),
            type_pointer: Pointer::new(&cfg.type_pointer),
            on_missing_id: cfg.on_missing_id,
            signature_header: cfg.signature_header.clone(),
            signature_algorithm: cfg.signature_algorithm,
            signature_encoding: cfg.signature_encoding,
            signature_prefix: cfg.signature_prefix.clone(),
            timestamp_header: cfg.timestamp_header.clone(),
            verifier,
        }
    }

    pub fn verify(&self, d: &Delivery<'_>, now: i64) -> Result<Signed, SignatureError> {
        let Some(secrets) = &self.verifier.secrets else {
            return Ok(None);
        };
        let value = d
            .header(&self.signature_header)
            .ok_or(SignatureError::Missing(SIGNATURE))?;
        let encoding = match self.signature_encoding {
            SignatureEncoding::Hex => Encoding::Hex,
            SignatureEncoding::Base64 => Encoding::Base64,
        };
        let signature = generic_signature(value, &self.signature_prefix, encoding, SIGNATURE)?;
        let timestamp = if self.timestamp_header.is_empty() {
            None
        } else {
            let text = d
                .header(&self.timestamp_header)
                .ok_or(SignatureError::Missing(TIMESTAMP))?;
            Some((text, parse_timestamp(text, TIMESTAMP)?))
        };
        let signed: Vec<&[u8]> = match timestamp {
            Some((text, _)) => vec![text.as_bytes(), b".", d.body],
            None => vec![d.body],
        };
        if !secrets.matches(self.signature_algorithm, &signed, &[signature]) {
            return Err(SignatureError::Mismatch);
        }
        if let Some((_, t)) = timestamp {
            check_timestamp(t, now, self.verifier.tolerance_secs)?;
        }
        Ok(Some(signed_digest(&signed)))
    }

    /// The key by `wire::key`'s rules (a header, when present, wins over the body; the type is
    /// settled before the id), then this source's answer to a missing id. On a signed source
    /// a header may not contradict the body (`wire::key::agrees`).
    pub fn extract(&self, d: &Delivery<'_>) -> Result<(String, String), ProviderError> {
        // An ambiguous id header is reported once the type is settled, and the body is not
        // read for an id in its place.
        let id_header = header(d, &self.id_header);
        let no_pointer = Pointer::new("");
        let places = Places {
            type_header: header(d, &self.type_header)?,
            id_header: id_header.as_ref().ok().copied().flatten(),
            type_pointer: &self.type_pointer,
            id_pointer: if id_header.is_ok() {
                &self.id_pointer
            } else {
                &no_pointer
            },
        };
        let named = |e: KeyError| match e {
            KeyError::NotJson { what: "id" }
            | KeyError::WrongType { what: "id", .. }
            | KeyError::Contradicts { what: "id" } => {
                key_error(e, &self.id_header, self.id_pointer.as_str())
            }
            _ => key_error(e, &self.type_header, self.type_pointer.as_str()),
        };
        let (event_type, event_id) = wire::key::read(&places, d.body).map_err(named)?;
        let event_type = event_type.ok_or_else(|| ProviderError::MissingType {
            header: self.type_header.clone(),
            pointer: self.type_pointer.as_str().to_owned(),
        })?;
        id_header?;
        let event_id = match (event_id, self.on_missing_id) {
            (Some(id), _) => id,
            (None, OnMissingId::PayloadHash) => payload_hash_id(d.payload_sha256),
            (None, OnMissingId::Reject) => {
                return Err(ProviderError::MissingId {
                    header: self.id_header.clone(),
                    pointer: self.id_pointer.as_str().to_owned(),
                })
            }
        };
        if self.verifier.secrets.is_some() {
            wire::key::agrees(&places, d.body, &event_type, &event_id).map_err(named)?;
        }
        Ok((event_type, event_id))
    }
}

/// The header's value, if the header name is configured and the header was sent.
fn header<'a>(d: &'a Delivery<'_>, name: &str) -> Result<Option<&'a str>, ProviderError> {
    if name.is_empty() {
        return Ok(None);
    }
    d.key_header(name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::key::sha256;

    fn generic(on_missing_id: OnMissingId) -> Generic {
        Generic::from_config(
            &SourceConfig {
                on_missing_id,
                ..SourceConfig::default()
            },
            Verifier {
                secrets: None,
                tolerance_secs: 300,
            },
        )
    }

    fn extract(
        g: &Generic,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(String, String), ProviderError> {
        let headers = crate::providers::delivery::header_map(headers);
        let digest = sha256(body.as_bytes());
        g.extract(&Delivery {
            headers: &headers,
            body: body.as_bytes(),
            payload_sha256: &digest,
        })
    }

    #[test]
    fn headers_win_over_the_body() {
        let g = generic(OnMissingId::Reject);
        let body = json!({"id": "body-id", "type": "body.type"}).to_string();
        assert_eq!(
            extract(
                &g,
                &[("Webhook-Id", "h-id"), ("webhook-type", "h.type")],
                &body
            ),
            Ok(("h.type".into(), "h-id".into()))
        );
        assert_eq!(
            extract(&g, &[], &body),
            Ok(("body.type".into(), "body-id".into()))
        );
    }

    #[test]
    fn ids_are_kept_exactly_and_integers_accepted() {
        let g = generic(OnMissingId::Reject);
        let body = json!({"id": " Évt_A ", "type": "t"}).to_string();
        assert_eq!(extract(&g, &[], &body).unwrap().1, " Évt_A ");
        let body = json!({"id": 42, "type": "t"}).to_string();
        assert_eq!(extract(&g, &[], &body).unwrap().1, "42");
        let body = json!({"id": {"x": 1}, "type": "t"}).to_string();
        assert!(matches!(
            extract(&g, &[], &body),
            Err(ProviderError::WrongType { what: "id", .. })
        ));
    }

    #[test]
    fn missing_id_uses_the_payload_hash_or_rejects() {
        let body = json!({"type": "t"}).to_string();
        let (_, id) = extract(&generic(OnMissingId::PayloadHash), &[], &body).unwrap();
        assert_eq!(id, payload_hash_id(&sha256(body.as_bytes())));
        assert!(matches!(
            extract(&generic(OnMissingId::Reject), &[], &body),
            Err(ProviderError::MissingId { .. })
        ));
    }

    #[test]
    fn a_key_header_sent_twice_with_different_values_is_refused() {
        let g = generic(OnMissingId::Reject);
        let body = r#"{"type":"t"}"#;
        assert_eq!(
            extract(&g, &[("Webhook-Id", "a"), ("webhook-id", "b")], body),
            Err(ProviderError::AmbiguousHeader("Webhook-Id".into()))
        );
        assert_eq!(
            extract(&g, &[("Webhook-Id", "a"), ("webhook-id", "a")], body),
            Ok(("t".into(), "a".into()))
        );
    }

    proptest::proptest! {
        /// Whatever the headers and body, extraction answers Ok or Err, never panics, and an
        /// Ok id is never empty or NUL-laden once it has been through `EventKey::new`.
        #[test]
        fn extraction_never_panics(
            headers in proptest::collection::vec(
                (proptest::sample::select(vec!["webhook-id", "Webhook-Type", "x-other"]), "\\PC{0,40}"),
                0..4,
            ),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            json_body in "\\{\"(id|type)\":(\"[^\"]{0,20}\"|[0-9]{1,25}|null|\\[\\]|\\{\\})\\}",
        ) {
            for g in [generic(OnMissingId::Reject), generic(OnMissingId::PayloadHash)] {
                for raw in [body.clone(), json_body.clone().into_bytes()] {
                    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                    let headers = crate::providers::delivery::header_map(&pairs);
                    let digest = sha256(&raw);
                    let d = Delivery { headers: &headers, body: &raw, payload_sha256: &digest };
                    if let Ok((t, id)) = g.extract(&d) {
                        if let Ok(key) = crate::event::key::EventKey::new("s", t, id) {
                            proptest::prop_assert!(!key.event_id.is_empty() && !key.event_id.contains('\0'));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_type_is_settled_before_the_id() {
        let g = generic(OnMissingId::Reject);
        // A bad type and an ambiguous id header: the type's problem is the one reported.
        assert!(matches!(
            extract(
                &g,
                &[("Webhook-Id", "a"), ("webhook-id", "b")],
                r#"{"type":5}"#
            ),
            Err(ProviderError::WrongType { what: "type", .. })
        ));
        // The type from its header and a body that is not JSON: the id's read fails.
        assert!(matches!(
            extract(&g, &[("Webhook-Type", "t")], "not json"),
            Err(ProviderError::NotJson { what: "id", .. })
        ));
    }

    #[test]
    fn missing_type_and_non_json_bodies_are_refused() {
        let g = generic(OnMissingId::PayloadHash);
        assert!(matches!(
            extract(&g, &[], r#"{"id":"x"}"#),
            Err(ProviderError::MissingType { .. })
        ));
        assert!(matches!(
            extract(&g, &[], "not json"),
            Err(ProviderError::NotJson { .. })
        ));
        assert!(matches!(
            extract(&g, &[], r#"{"id":"x","type":5}"#),
            Err(ProviderError::WrongType { what: "type", .. })
        ));
        // Both parts in headers: the body need not be JSON.
        assert_eq!(
            extract(&g, &[("Webhook-Id", "a"), ("Webhook-Type", "t")], "\x01raw"),
            Ok(("t".into(), "a".into()))
        );
    }
}
