//! Signing what the host sends: pure functions over the exact body bytes.
//!
//! Two schemes on every message:
//! - `X-Wasmhook-Signature`: hex HMAC-SHA256 keyed with the secret string as the user sees
//!   it, as the reference product's Node snippet computes it.
//! - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//!   `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the secret's decoded bytes;
//!   during a rotation's grace period one signature per secret, space-separated.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `X-Wasmhook-Signature`: hex HMAC-SHA256 of the body, keyed with the secret's text.
pub fn wasmhook_signature(secret: &Secret, body: &[u8]) -> String {
    hex::encode(hmac(secret.expose().as_bytes(), &[body]))
}

/// `webhook-signature`: `v1,<base64>` for each secret, space-separated.
pub fn standard_signature(secrets: &[&Secret], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    secrets
        .iter()
        .map(|secret| {
            let mac =
                hmac(&secret.key_bytes(), &[message_id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
            format!("v1,{}", STANDARD.encode(mac))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification.
    #[test]
    fn standard_webhooks_spec_vector() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = standard_signature(
            &[&secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    /// The reference snippet, run with Node.js:
    /// `crypto.createHmac('sha256', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw').update('{"a":1}').digest('hex')`.
    #[test]
    fn wasmhook_signature_matches_the_reference_node_snippet() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            wasmhook_signature(&secret, br#"{"a":1}"#),
            "45ec03b2b33403c8043a90de06bedad0827183927115fd7e448ef97eeb13c5be"
        );
    }

    #[test]
    fn rotation_signs_with_both_secrets() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let both = standard_signature(&[&new, &old], "msg_1", 1, b"x");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(
            parts,
            [standard_signature(&[&new], "msg_1", 1, b"x"), standard_signature(&[&old], "msg_1", 1, b"x")]
        );
    }
}
