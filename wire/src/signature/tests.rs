use super::*;

#[test]
fn timestamps_are_checked_both_ways() {
    assert_eq!(check_timestamp(1000, 1300, 300), Ok(()));
    assert_eq!(check_timestamp(1600, 1300, 300), Ok(()));
    assert_eq!(
        check_timestamp(999, 1300, 300),
        Err(SignatureError::TooOld { tolerance: 300 })
    );
    assert_eq!(
        check_timestamp(1601, 1300, 300),
        Err(SignatureError::TooNew { tolerance: 300 })
    );
    assert!(check_timestamp(i64::MIN, i64::MAX, 300).is_err());
}

#[test]
fn timestamps_must_be_plain_digits() {
    for bad in ["", "-5", "+5", "1e9", " 1", "12345678901234567890", "１２"] {
        assert!(parse_timestamp(bad, "t").is_err(), "{bad:?}");
    }
    assert_eq!(parse_timestamp("1614265330", "t"), Ok(1614265330));
}

#[test]
fn stripe_parses_several_signatures_and_ignores_other_schemes() {
    let h = stripe_header("t=1614265330,v1=00ff,v0=abcd,v1=zz,v1=10").unwrap();
    assert_eq!(h.timestamp, 1614265330);
    assert_eq!(h.signatures, vec![vec![0x00, 0xff], vec![0x10]]);
    // The first timestamp counts.
    assert_eq!(stripe_header("t=1,t=2,v1=00").unwrap().timestamp_text, "1");
}

#[test]
fn stripe_refuses_headers_without_timestamp_or_signature() {
    for bad in [
        "",
        "v1=00ff",
        "t=123",
        "t=abc,v1=00",
        "t=1,v1=zz",
        ",,,",
        "t==,v1==",
    ] {
        assert!(
            matches!(stripe_header(bad), Err(SignatureError::Malformed { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn standard_parses_space_separated_versions() {
    let sigs = standard_signatures("v1a,xxx v1,AAE= v2,AAA= v1,/w==").unwrap();
    assert_eq!(sigs, vec![vec![0, 1], vec![0xff]]);
    assert!(standard_signatures("v1a,AAE=").is_err());
    assert!(standard_signatures("v1,***").is_err());
    assert!(standard_signatures("").is_err());
}

#[test]
fn standard_secrets_are_whsec_base64() {
    assert_eq!(standard_secret("whsec_AAE=").unwrap(), vec![0, 1]);
    assert_eq!(standard_secret("AAE=").unwrap(), vec![0, 1]);
    assert!(standard_secret("whsec_not base64!").is_err());
}

#[test]
fn github_and_shopify_signatures() {
    assert_eq!(github_signature("sha256=00ff").unwrap(), vec![0, 0xff]);
    assert!(github_signature("sha1=00ff").is_err());
    assert!(github_signature("sha256=zz").is_err());
    assert_eq!(shopify_signature(" AAE= ").unwrap(), vec![0, 1]);
    assert!(shopify_signature("AA E=").is_err());
}

#[test]
fn generic_signatures_need_their_prefix_and_encoding() {
    let hex = |v| generic_signature(v, "sha256=", Encoding::Hex, "sig");
    assert_eq!(hex("sha256=00ff").unwrap(), vec![0, 0xff]);
    assert!(hex("00ff").is_err());
    assert!(hex("sha256=AAE=").is_err());
    assert_eq!(
        generic_signature("AAE=", "", Encoding::Base64, "sig").unwrap(),
        vec![0, 1]
    );
}
