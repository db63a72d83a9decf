//! End-to-end tests of sluice's SCRAM client against sluice's SCRAM server,
//! through the public API only, covering the attacks the exchange exists to
//! stop: wrong tokens, forged server signatures, nonce splicing, channel
//! binding relays and mechanism downgrades.

use proptest::prelude::*;
use sluice::auth::scram::{
    advertised_mechanisms, select_mechanism, ChannelBinding, ScramClient, ScramError, ScramServer,
    SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use sluice::auth::token::{
    generate_token, hash_token, mock_verifier, ScramVerifier, DEFAULT_ITERATIONS,
};

fn cert_hash(byte: u8) -> ChannelBinding {
    ChannelBinding::TlsServerEndPoint(vec![byte; 32])
}

/// Runs a full exchange and returns the first error from either side.
fn exchange(
    verifier: &ScramVerifier,
    password: &str,
    server_mech: &str,
    server_cb: ChannelBinding,
    client_mech: &str,
    client_cb: ChannelBinding,
) -> Result<(), ScramError> {
    let mut server = ScramServer::new(verifier.clone(), server_mech, server_cb)?;
    let mut client = ScramClient::new(password, client_mech, client_cb)?;
    let server_first = server.handle_client_first(&client.client_first())?;
    let client_final = client.handle_server_first(&server_first)?;
    let server_final = server.handle_client_final(&client_final)?;
    assert!(server.is_authenticated());
    client.handle_server_final(&server_final)?;
    assert!(client.is_authenticated());
    Ok(())
}

#[test]
fn plain_scram_success_and_wrong_token() {
    let token = generate_token();
    let v = hash_token(&token, DEFAULT_ITERATIONS);
    exchange(
        &v,
        &token,
        SCRAM_SHA_256,
        ChannelBinding::None,
        SCRAM_SHA_256,
        ChannelBinding::None,
    )
    .unwrap();

    let wrong = generate_token();
    let err = exchange(
        &v,
        &wrong,
        SCRAM_SHA_256,
        ChannelBinding::None,
        SCRAM_SHA_256,
        ChannelBinding::None,
    )
    .unwrap_err();
    assert_eq!(err, ScramError::InvalidProof);
    assert_eq!(err.sqlstate(), "28P01");
}

#[test]
fn verifier_survives_text_round_trip() {
    let token = generate_token();
    let stored = hash_token(&token, DEFAULT_ITERATIONS).to_string();
    let v: ScramVerifier = stored.parse().unwrap();
    exchange(
        &v,
        &token,
        SCRAM_SHA_256,
        ChannelBinding::None,
        SCRAM_SHA_256,
        ChannelBinding::None,
    )
    .unwrap();
}

#[test]
fn channel_binding_match() {
    let v = hash_token("tok", DEFAULT_ITERATIONS);
    let mech = select_mechanism(
        advertised_mechanisms(&cert_hash(1)).iter().copied(),
        &cert_hash(1),
    )
    .unwrap();
    assert_eq!(mech, SCRAM_SHA_256_PLUS);
    exchange(&v, "tok", mech, cert_hash(1), mech, cert_hash(1)).unwrap();
}

#[test]
fn channel_binding_mismatch_detects_relay() {
    // A man in the middle terminating TLS with its own certificate relays the
    // SCRAM messages: the client binds to the attacker's certificate hash,
    // the real server to its own, and the exchange must fail even though the
    // token is right.
    let v = hash_token("tok", DEFAULT_ITERATIONS);
    let err = exchange(
        &v,
        "tok",
        SCRAM_SHA_256_PLUS,
        cert_hash(1),
        SCRAM_SHA_256_PLUS,
        cert_hash(2),
    )
    .unwrap_err();
    assert_eq!(err, ScramError::ChannelBindingMismatch);
    assert_eq!(err.sqlstate(), "08P01");
}

#[test]
fn downgrade_is_detected() {
    // The server offered PLUS, an attacker stripped it from the list, and the
    // binding-capable client fell back to SCRAM-SHA-256 with the "y" flag.
    let v = hash_token("tok", DEFAULT_ITERATIONS);
    let err = exchange(
        &v,
        "tok",
        SCRAM_SHA_256,
        cert_hash(1),
        SCRAM_SHA_256,
        cert_hash(1),
    )
    .unwrap_err();
    assert_eq!(err, ScramError::ClientRequiresChannelBinding);

    // The same "y" flag is legitimate when the server cannot bind.
    exchange(
        &v,
        "tok",
        SCRAM_SHA_256,
        ChannelBinding::None,
        SCRAM_SHA_256,
        cert_hash(1),
    )
    .unwrap();
}

#[test]
fn mechanism_and_flag_must_agree() {
    let v = hash_token("tok", DEFAULT_ITERATIONS);
    // Client claims PLUS in its gs2 header while the server runs plain SCRAM.
    let err = exchange(
        &v,
        "tok",
        SCRAM_SHA_256,
        ChannelBinding::None,
        SCRAM_SHA_256_PLUS,
        cert_hash(1),
    )
    .unwrap_err();
    assert_eq!(err, ScramError::ChannelBindingMismatch);
    // Client selected PLUS in SASLInitialResponse but sends "n".
    let err = exchange(
        &v,
        "tok",
        SCRAM_SHA_256_PLUS,
        cert_hash(1),
        SCRAM_SHA_256,
        ChannelBinding::None,
    )
    .unwrap_err();
    assert_eq!(err, ScramError::ChannelBindingMismatch);
}

#[test]
fn tampered_server_signature_is_rejected() {
    let v = hash_token("tok", DEFAULT_ITERATIONS);
    let mut server = ScramServer::new(v, SCRAM_SHA_256, ChannelBinding::None).unwrap();
    let mut client = ScramClient::new("tok", SCRAM_SHA_256, ChannelBinding::None).unwrap();
    let sf = server.handle_client_first(&client.client_first()).unwrap();
    let cf = client.handle_server_first(&sf).unwrap();
    let mut fin = server.handle_client_final(&cf).unwrap();
    // Flip one base64 character of the signature (keeping it valid base64).
    fin[2] = if fin[2] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        client.handle_server_final(&fin),
        Err(ScramError::InvalidServerSignature)
    );
    assert!(!client.is_authenticated());
}

#[test]
fn impostor_server_without_verifier_is_rejected() {
    // An upstream impostor that does not know the verifier can let any proof
    // through, but it cannot produce the server signature.
    let real = hash_token("tok", DEFAULT_ITERATIONS);
    let mut impostor_view = real.clone();
    impostor_view.server_key = [0u8; 32];
    let err = exchange(
        &impostor_view,
        "tok",
        SCRAM_SHA_256,
        ChannelBinding::None,
        SCRAM_SHA_256,
        ChannelBinding::None,
    )
    .unwrap_err();
    assert_eq!(err, ScramError::InvalidServerSignature);
}

#[test]
fn nonce_tampering() {
    let v = hash_token("tok", DEFAULT_ITERATIONS);

    // Server side: the client-final nonce must be the combined nonce.
    let mut server = ScramServer::new(v.clone(), SCRAM_SHA_256, ChannelBinding::None).unwrap();
    let mut client = ScramClient::new("tok", SCRAM_SHA_256, ChannelBinding::None).unwrap();
    let sf = server.handle_client_first(&client.client_first()).unwrap();
    let cf = String::from_utf8(client.handle_server_first(&sf).unwrap()).unwrap();
    let (before, after) = cf.split_once(",p=").unwrap();
    let spliced = format!("{before}X,p={after}");
    assert_eq!(
        server.handle_client_final(spliced.as_bytes()),
        Err(ScramError::NonceMismatch)
    );

    // Client side: the server nonce must extend the client nonce.
    let mut server = ScramServer::new(v, SCRAM_SHA_256, ChannelBinding::None).unwrap();
    let mut client = ScramClient::new("tok", SCRAM_SHA_256, ChannelBinding::None).unwrap();
    let sf =
        String::from_utf8(server.handle_client_first(&client.client_first()).unwrap()).unwrap();
    let tampered = sf.replacen("r=", "r=Z", 1);
    assert_eq!(
        client.handle_server_first(tampered.as_bytes()),
        Err(ScramError::NonceMismatch)
    );
}

#[test]
fn server_nonces_are_fresh_and_extend_client_nonce() {
    let v = hash_token("tok", DEFAULT_ITERATIONS);
    let first = |client_first: &[u8]| {
        let mut s = ScramServer::new(v.clone(), SCRAM_SHA_256, ChannelBinding::None).unwrap();
        String::from_utf8(s.handle_client_first(client_first).unwrap()).unwrap()
    };
    let a = first(b"n,,n=,r=clientnonce");
    let b = first(b"n,,n=,r=clientnonce");
    assert!(a.starts_with("r=clientnonce"));
    assert_ne!(a, b);
    let server_part = a["r=clientnonce".len()..].split(',').next().unwrap();
    assert!(
        server_part.len() >= 24,
        "server nonce part has at least 18 random bytes"
    );
}

#[test]
fn mock_verifier_never_verifies_and_looks_real() {
    let secret = [42u8; 32];
    let mock = mock_verifier(&secret, "ghost");
    for pw in ["", "tok", "ghost", &generate_token()] {
        let err = exchange(
            &mock,
            pw,
            SCRAM_SHA_256,
            ChannelBinding::None,
            SCRAM_SHA_256,
            ChannelBinding::None,
        )
        .unwrap_err();
        assert_eq!(err, ScramError::InvalidProof, "same error as a wrong token");
    }
    // The server-first-message has the same shape as for a real agent.
    let real = hash_token("tok", DEFAULT_ITERATIONS);
    let shape = |v: &ScramVerifier| {
        let mut s = ScramServer::new(v.clone(), SCRAM_SHA_256, ChannelBinding::None).unwrap();
        let sf = String::from_utf8(
            s.handle_client_first(b"n,,n=,r=abcdefghijklmnopqrstuvwx")
                .unwrap(),
        )
        .unwrap();
        sf.split(',')
            .map(|p| (p.as_bytes()[0], p.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&mock), shape(&real));
    // And the salt is stable across attempts, like a real agent's.
    assert_eq!(mock.salt, mock_verifier(&secret, "ghost").salt);
}

#[test]
fn errors_and_debug_never_leak_secrets() {
    let token = generate_token();
    let v = hash_token(&token, DEFAULT_ITERATIONS);
    let client = ScramClient::new(&token, SCRAM_SHA_256, ChannelBinding::None).unwrap();
    let server = ScramServer::new(v.clone(), SCRAM_SHA_256, ChannelBinding::None).unwrap();
    let text = format!("{client:?} {server:?} {v:?}");
    assert!(!text.contains(&token));
    let stored = v.to_string();
    let keys = stored.rsplit('$').next().unwrap();
    for key in keys.split(':') {
        assert!(!text.contains(key));
    }
    let err = exchange(
        &v,
        "wrong",
        SCRAM_SHA_256,
        ChannelBinding::None,
        SCRAM_SHA_256,
        ChannelBinding::None,
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("wrong"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes in any server-side step yield an error, never a panic
    /// and never a successful authentication.
    #[test]
    fn server_never_panics(first in proptest::collection::vec(any::<u8>(), 0..1100),
                           fin in proptest::collection::vec(any::<u8>(), 0..1100)) {
        let v = mock_verifier(&[1; 32], "u");
        let mut s = ScramServer::new(v.clone(), SCRAM_SHA_256_PLUS, cert_hash(3)).unwrap();
        let _ = s.handle_client_first(&first);
        prop_assert!(s.handle_client_final(&fin).is_err());
        let mut s = ScramServer::new(v, SCRAM_SHA_256, ChannelBinding::None).unwrap();
        s.handle_client_first(b"n,,n=,r=abc").unwrap();
        prop_assert!(s.handle_client_final(&fin).is_err());
        prop_assert!(!s.is_authenticated());
    }

    /// Structured-but-hostile server-first messages never panic the client.
    #[test]
    fn client_never_panics(nonce_suffix in "[!-+--~]{0,40}", salt in "[A-Za-z0-9+/=]{0,30}",
                           iters in "[0-9]{0,4}", tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut c = ScramClient::new("pw", SCRAM_SHA_256, ChannelBinding::None).unwrap();
        let first = String::from_utf8(c.client_first()).unwrap();
        let cnonce = first.rsplit("r=").next().unwrap().to_owned();
        let mut msg = format!("r={cnonce}{nonce_suffix},s={salt},i={iters}").into_bytes();
        msg.extend_from_slice(&tail);
        if let Ok(fin) = c.handle_server_first(&msg) {
            prop_assert!(fin.starts_with(b"c=biws,r="));
            prop_assert!(c.handle_server_final(&tail).is_err());
        }
    }
}
