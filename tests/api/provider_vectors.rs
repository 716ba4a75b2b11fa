//! Each provider's verifier, through the crate's public API, against signatures produced by
//! the provider's own library (`tests/fixtures/signatures.json` records which library and
//! version made each one), and against every way a delivery can be wrong; and property tests
//! that garbage in a signature header is refused without a panic. No app, no database.

use idemhook::providers::signature::{Secret, Secrets, SignatureError};
use idemhook::providers::{github, shopify, standard, stripe, Delivery, Provider, Verifier};
use rocket::http::HeaderMap;
use serde::Deserialize;

const FIXTURE: &str = include_str!("../fixtures/signatures.json");

#[derive(Deserialize)]
struct Vectors {
    stripe: Vec<StripeVector>,
    standard: Vec<StandardVector>,
    github: Vec<GithubVector>,
    shopify: Vec<ShopifyVector>,
}

#[derive(Deserialize)]
struct StripeVector {
    secret: String,
    timestamp: i64,
    payload: String,
    header: String,
}

#[derive(Deserialize)]
struct StandardVector {
    secret: String,
    msg_id: String,
    timestamp: i64,
    payload: String,
    signature: String,
}

#[derive(Deserialize)]
struct GithubVector {
    secret: String,
    payload: String,
    signature: String,
}

#[derive(Deserialize)]
struct ShopifyVector {
    secret: String,
    payload: String,
    hmac: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(FIXTURE).expect("the fixture parses")
}

fn verifier(secrets: &[&[u8]]) -> Verifier {
    Verifier {
        secrets: Some(Secrets::new(
            secrets.iter().map(|s| Secret::new(s.to_vec())).collect(),
        )),
        tolerance_secs: 300,
    }
}

/// Runs `provider.verify` over a delivery with these headers (names kept in the case given,
/// to prove lookups ignore case) and body.
fn verify(
    provider: &Provider,
    headers: &[(&str, &str)],
    body: &str,
    now: i64,
) -> Result<(), SignatureError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.add_raw(name.to_string(), value.to_string());
    }
    let payload_sha256 = idemhook::event::key::sha256(body.as_bytes());
    let signed = provider.verify(
        &Delivery {
            headers: &map,
            body: body.as_bytes(),
            payload_sha256: &payload_sha256,
        },
        now,
    )?;
    // Every verifier here has a secret: a verified delivery names the bytes it signed.
    assert!(
        signed.is_some(),
        "a verified delivery names what was signed"
    );
    Ok(())
}

#[test]
fn stripe_vectors() {
    for v in vectors().stripe {
        let p = Provider::Stripe(stripe::Stripe {
            verifier: verifier(&[v.secret.as_bytes()]),
        });
        let h = |value: &str| vec![("stripe-SIGNATURE", value.to_owned())];
        let ok = |hs: Vec<(&str, String)>, body: &str, now| {
            let hs: Vec<(&str, &str)> = hs.iter().map(|(n, v)| (*n, v.as_str())).collect();
            verify(&p, &hs, body, now)
        };
        assert_eq!(ok(h(&v.header), &v.payload, v.timestamp), Ok(()));
        // Within the tolerance either way; outside it, refused either way.
        assert_eq!(ok(h(&v.header), &v.payload, v.timestamp + 300), Ok(()));
        assert_eq!(ok(h(&v.header), &v.payload, v.timestamp - 300), Ok(()));
        assert_eq!(
            ok(h(&v.header), &v.payload, v.timestamp + 301),
            Err(SignatureError::TooOld { tolerance: 300 })
        );
        assert_eq!(
            ok(h(&v.header), &v.payload, v.timestamp - 301),
            Err(SignatureError::TooNew { tolerance: 300 })
        );
        assert_eq!(
            ok(h(&v.header), &format!("{} ", v.payload), v.timestamp),
            Err(SignatureError::Mismatch)
        );
        // A replay with the timestamp moved forward breaks the signature.
        let moved = v
            .header
            .replacen(&v.timestamp.to_string(), &(v.timestamp + 1).to_string(), 1);
        assert_eq!(
            ok(h(&moved), &v.payload, v.timestamp),
            Err(SignatureError::Mismatch)
        );
        // Several v1 entries: any may match (Stripe's own secret rolling).
        let rolled = format!(
            "{},v1={}",
            v.header.replace("v1=", "v1=00"),
            &v.header[v.header.find("v1=").unwrap() + 3..]
        );
        assert_eq!(ok(h(&rolled), &v.payload, v.timestamp), Ok(()));
        assert_eq!(
            ok(vec![], &v.payload, v.timestamp),
            Err(SignatureError::Missing(stripe::SIGNATURE_HEADER))
        );
        // Wrong secret; rotation with the right one second.
        let wrong = Provider::Stripe(stripe::Stripe {
            verifier: verifier(&[b"whsec_other"]),
        });
        assert_eq!(
            verify(
                &wrong,
                &[("Stripe-Signature", &v.header)],
                &v.payload,
                v.timestamp
            ),
            Err(SignatureError::Mismatch)
        );
        let rotated = Provider::Stripe(stripe::Stripe {
            verifier: verifier(&[b"whsec_other", v.secret.as_bytes()]),
        });
        assert_eq!(
            verify(
                &rotated,
                &[("Stripe-Signature", &v.header)],
                &v.payload,
                v.timestamp
            ),
            Ok(())
        );
    }
}

#[test]
fn standard_vectors() {
    for v in vectors().standard {
        let key = wire::signature::standard_secret(&v.secret).unwrap();
        let p = Provider::Standard(standard::Standard {
            verifier: verifier(&[&key]),
        });
        let ts = v.timestamp.to_string();
        let headers = [
            ("Webhook-Id", v.msg_id.as_str()),
            ("WEBHOOK-TIMESTAMP", ts.as_str()),
            ("webhook-signature", v.signature.as_str()),
        ];
        assert_eq!(verify(&p, &headers, &v.payload, v.timestamp), Ok(()));
        let svix = [
            ("svix-id", v.msg_id.as_str()),
            ("svix-timestamp", ts.as_str()),
            ("svix-signature", v.signature.as_str()),
        ];
        assert_eq!(verify(&p, &svix, &v.payload, v.timestamp), Ok(()));
        assert_eq!(
            verify(&p, &headers, &v.payload, v.timestamp + 301),
            Err(SignatureError::TooOld { tolerance: 300 })
        );
        assert_eq!(
            verify(&p, &headers, &v.payload, v.timestamp - 301),
            Err(SignatureError::TooNew { tolerance: 300 })
        );
        assert_eq!(
            verify(&p, &headers, &format!("{}x", v.payload), v.timestamp),
            Err(SignatureError::Mismatch)
        );
        // The id is signed: the same signature under another id is refused.
        let other_id = [("webhook-id", "msg_other"), headers[1], headers[2]];
        assert_eq!(
            verify(&p, &other_id, &v.payload, v.timestamp),
            Err(SignatureError::Mismatch)
        );
        let several = format!("v1,AAAA {} v1a,zzz", v.signature);
        let multi = [
            headers[0],
            headers[1],
            ("webhook-signature", several.as_str()),
        ];
        assert_eq!(verify(&p, &multi, &v.payload, v.timestamp), Ok(()));
        assert_eq!(
            verify(&p, &headers[..2], &v.payload, v.timestamp),
            Err(SignatureError::Missing(standard::SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(&p, &headers[1..], &v.payload, v.timestamp),
            Err(SignatureError::Missing(standard::ID_HEADER))
        );
        let bad_ts = [headers[0], ("webhook-timestamp", "soon"), headers[2]];
        assert!(matches!(
            verify(&p, &bad_ts, &v.payload, v.timestamp),
            Err(SignatureError::Malformed { .. })
        ));
    }
}

#[test]
fn github_vectors() {
    for v in vectors().github {
        let p = Provider::Github(github::Github {
            verifier: verifier(&[v.secret.as_bytes()]),
        });
        assert_eq!(
            verify(&p, &[("x-hub-signature-256", &v.signature)], &v.payload, 0),
            Ok(())
        );
        assert_eq!(
            verify(
                &p,
                &[("X-Hub-Signature-256", &v.signature)],
                &format!("{} ", v.payload),
                0
            ),
            Err(SignatureError::Mismatch)
        );
        let no_prefix = v.signature.trim_start_matches("sha256=");
        assert!(matches!(
            verify(&p, &[("X-Hub-Signature-256", no_prefix)], &v.payload, 0),
            Err(SignatureError::Malformed { .. })
        ));
        assert_eq!(
            verify(&p, &[("X-Hub-Signature", "sha1=00")], &v.payload, 0),
            Err(SignatureError::Missing(github::SIGNATURE_HEADER))
        );
        let rotated = Provider::Github(github::Github {
            verifier: verifier(&[b"new", v.secret.as_bytes()]),
        });
        assert_eq!(
            verify(
                &rotated,
                &[("X-Hub-Signature-256", &v.signature)],
                &v.payload,
                0
            ),
            Ok(())
        );
    }
}

#[test]
fn shopify_vectors() {
    for v in vectors().shopify {
        let p = Provider::Shopify(shopify::Shopify {
            verifier: verifier(&[v.secret.as_bytes()]),
        });
        assert_eq!(
            verify(&p, &[("X-SHOPIFY-HMAC-SHA256", &v.hmac)], &v.payload, 0),
            Ok(())
        );
        assert_eq!(
            verify(
                &p,
                &[("X-Shopify-Hmac-Sha256", &v.hmac)],
                &v.payload.replace("12.00", "0.01"),
                0
            ),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify(&p, &[("X-Shopify-Hmac-Sha256", "%%%")], &v.payload, 0),
            Err(SignatureError::Malformed { .. })
        ));
        let wrong = Provider::Shopify(shopify::Shopify {
            verifier: verifier(&[b"shpss_other"]),
        });
        assert_eq!(
            verify(&wrong, &[("X-Shopify-Hmac-Sha256", &v.hmac)], &v.payload, 0),
            Err(SignatureError::Mismatch)
        );
    }
}

mod garbage {
    //! Whatever arrives in a signature header, the parsers answer `Err` or `Ok`, never panic,
    //! and a random signature never verifies.
    use proptest::prelude::*;

    use super::*;

    fn providers() -> Vec<Provider> {
        vec![
            Provider::Stripe(stripe::Stripe {
                verifier: verifier(&[b"k"]),
            }),
            Provider::Github(github::Github {
                verifier: verifier(&[b"k"]),
            }),
            Provider::Shopify(shopify::Shopify {
                verifier: verifier(&[b"k"]),
            }),
            Provider::Standard(standard::Standard {
                verifier: verifier(&[b"k"]),
            }),
        ]
    }

    proptest! {
        #[test]
        fn header_parsers_never_panic(value in "\\PC{0,200}", raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = wire::signature::stripe_header(&value);
            let _ = wire::signature::github_signature(&value);
            let _ = wire::signature::standard_signatures(&value);
            let _ = wire::signature::standard_secret(&value);
            let lossy = String::from_utf8_lossy(&raw);
            let _ = wire::signature::stripe_header(&lossy);
            let _ = wire::signature::standard_signatures(&lossy);
        }

        #[test]
        fn garbage_never_verifies(value in "\\PC{0,120}", ts in "[0-9]{0,12}", body in "\\PC{0,64}") {
            let names = [
                stripe::SIGNATURE_HEADER, github::SIGNATURE_HEADER, shopify::SIGNATURE_HEADER,
                standard::SIGNATURE_HEADER,
            ];
            for p in providers() {
                for name in names {
                    let headers = [(name, value.as_str()), ("webhook-id", "m"), ("webhook-timestamp", ts.as_str())];
                    prop_assert!(verify(&p, &headers, &body, 1_700_000_000).is_err());
                }
            }
        }

        #[test]
        fn stripe_shaped_garbage_is_refused(t in any::<i64>(), sigs in proptest::collection::vec("[0-9a-f]{0,70}", 0..4)) {
            let mut header = format!("t={t}");
            for s in &sigs { header.push_str(&format!(",v1={s}")); }
            let p = Provider::Stripe(stripe::Stripe { verifier: verifier(&[b"k"]) });
            let refused = verify(&p, &[("Stripe-Signature", &header)], "{}", 1_700_000_000).is_err();
            prop_assert!(refused);
        }
    }
}
