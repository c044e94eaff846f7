//! Webhook signing secrets: their format, generation, redaction and encryption at rest.
//!
//! A secret is `whsec_` + base64 of 24–64 random bytes (the Standard Webhooks form). It is
//! shown to its owner once, when created or rotated; everywhere else — `Debug`, logs, list
//! responses — it prints as `whsec_…redacted`. On disk it is sealed with XChaCha20-Poly1305
//! under a key from configuration or generated into the data directory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const PREFIX: &str = "whsec_";
const GENERATED_BYTES: usize = 32;

/// A webhook's signing secret. Its text never leaks through `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A new random secret (32 bytes).
    pub fn generate() -> Self {
        let mut bytes = [0u8; GENERATED_BYTES];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        Secret(format!("{PREFIX}{}", STANDARD.encode(bytes)))
    }

    /// Checks a secret a user supplied; the error says how to make a valid one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let how =
            "make one with `echo whsec_$(openssl rand -base64 32)`, or leave it out to get one generated";
        let Some(encoded) = text.strip_prefix(PREFIX) else {
            return Err(format!("a secret starts with \"{PREFIX}\"; {how}"));
        };
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| format!("after \"{PREFIX}\" a secret is standard base64; {how}"))?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!("a secret encodes 24 to 64 random bytes, this one {}; {how}", bytes.len()));
        }
        Ok(Secret(text.to_owned()))
    }

    /// The secret as the user sees it: what `X-Wasmhook-Signature` is keyed with.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The decoded key bytes: what Standard Webhooks signatures are keyed with.
    pub fn key_bytes(&self) -> Vec<u8> {
        STANDARD.decode(&self.0[PREFIX.len()..]).expect("checked when the secret was made")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("whsec_…redacted")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("whsec_…redacted")
    }
}

/// Seals and opens secrets for storage.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// Secrets opened before, by their sealed text. A sealed text opens to the same secret
    /// for as long as the key is this one, and a new or rotated secret is a new sealed
    /// text: nothing here is ever stale, so nothing needs invalidating.
    opened: Arc<Mutex<HashMap<String, Secret>>>,
}

/// Opened secrets kept at most (the webhooks with traffic); past it the cache starts over.
const OPENED: usize = 4_096;

/// Why the encryption key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the secret key must be 32 bytes of standard base64")]
    Malformed,
    #[error("cannot read or write the secret key file {path}: {source}")]
    File { path: String, source: std::io::Error },
}

impl SecretBox {
    /// From a configured key (base64 of 32 bytes).
    pub fn from_base64(key: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| KeyError::Malformed)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| KeyError::Malformed)?;
        Ok(SecretBox { cipher, opened: Arc::default() })
    }

    /// From `path`, generating the key there (mode 0600) the first time.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let file_error = |source| KeyError::File { path: path.display().to_string(), source };
        if !path.exists() {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).expect("the OS random source is available");
            crate::private_file::write(path, STANDARD.encode(key).as_bytes()).map_err(file_error)?;
        }
        let text = std::fs::read_to_string(path).map_err(file_error)?;
        SecretBox::from_base64(&text)
    }

    /// Seals a secret for storage: base64 of nonce + ciphertext.
    pub fn seal(&self, secret: &Secret) -> String {
        self.seal_bytes(secret.expose().as_bytes())
    }

    /// `None` when the text was not sealed with this key (or was damaged). Every attempt
    /// signs with its webhook's secret: each is decrypted once, not per attempt.
    pub fn open(&self, sealed: &str) -> Option<Secret> {
        let opened = || self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(secret) = opened().get(sealed) {
            return Some(secret.clone());
        }
        let secret = Secret(String::from_utf8(self.open_bytes(sealed)?).ok()?);
        let mut opened = opened();
        if opened.len() >= OPENED {
            opened.clear();
        }
        opened.insert(sealed.to_owned(), secret.clone());
        Some(secret)
    }

    /// Seals any bytes (write-only connector config, a message that carries it).
    pub fn seal_bytes(&self, plain: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let sealed =
            self.cipher.encrypt(XNonce::from_slice(&nonce), plain).expect("encrypting in memory cannot fail");
        STANDARD.encode([nonce.as_slice(), &sealed].concat())
    }

    pub fn open_bytes(&self, sealed: &str) -> Option<Vec<u8>> {
        let sealed = STANDARD.decode(sealed).ok()?;
        let (nonce, ciphertext) = sealed.split_at_checked(24)?;
        self.cipher.decrypt(XNonce::from_slice(nonce), ciphertext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_valid_and_distinct() {
        let a = Secret::generate();
        assert_eq!(Secret::parse(a.expose()).unwrap(), a);
        assert_eq!(a.key_bytes().len(), 32);
        assert_ne!(a, Secret::generate());
    }

    #[test]
    fn malformed_secrets_are_refused_with_advice() {
        for bad in ["abc", "whsec_!!!", "whsec_AAAA", &format!("whsec_{}", STANDARD.encode([0u8; 65]))] {
            let error = Secret::parse(bad).unwrap_err();
            assert!(error.contains("openssl rand -base64 32"), "{bad}: {error}");
        }
        assert!(Secret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 24]))).is_ok());
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::generate();
        assert_eq!(format!("{secret:?} {secret}"), "whsec_…redacted whsec_…redacted");
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret-key");
        let one = SecretBox::from_file(&path).unwrap();
        let again = SecretBox::from_file(&path).unwrap();
        let secret = Secret::generate();
        let sealed = one.seal(&secret);
        assert!(!sealed.contains(secret.expose()));
        assert_eq!(again.open(&sealed), Some(secret.clone()));
        assert_eq!(again.open(&sealed), Some(secret), "opened again, from memory");
        assert_eq!(again.opened.lock().unwrap().len(), 1, "kept once, by its sealed text");
        let other = SecretBox::from_base64(&STANDARD.encode([1u8; 32])).unwrap();
        assert_eq!(other.open(&sealed), None);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
