//! Signature verification never panics on hostile headers, accepts what the signer produced,
//! and rejects any change of the body.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webhooks::{SigningSecret, axie_signature, verify};

#[derive(Arbitrary, Debug)]
struct Input {
    secret: Vec<u8>,
    timestamp_header: String,
    signature_header: String,
    body: Vec<u8>,
    flip: usize,
}

fuzz_target!(|input: Input| {
    let now = 1_764_000_000;
    let Ok(secret) = SigningSecret::from_bytes(input.secret.clone()) else {
        return;
    };
    let secrets = [secret];
    // Hostile headers: any answer, no panic.
    let _ = verify(&secrets, &input.timestamp_header, &input.signature_header, &input.body, now);
    // The signer's own output verifies; a flipped body byte does not.
    let sig = axie_signature(&secrets[0], now, &input.body);
    verify(&secrets, &now.to_string(), &sig, &input.body, now).expect("own signature verifies");
    if !input.body.is_empty() {
        let mut body = input.body.clone();
        let i = input.flip % body.len();
        body[i] ^= 0x01;
        assert!(verify(&secrets, &now.to_string(), &sig, &body, now).is_err());
    }
});
