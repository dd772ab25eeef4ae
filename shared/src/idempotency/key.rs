//! The `Idempotency-Key` header and the request fingerprint.

use sha2::{Digest, Sha256};

use base::{ErrorCode, Problem};

pub const MAX_KEY_LENGTH: usize = 255;

/// A validated key: 1–255 printable ASCII characters (space to tilde).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<IdempotencyKey, Problem> {
        if raw.is_empty() || raw.len() > MAX_KEY_LENGTH {
            return Err(Problem::new(
                ErrorCode::IdempotencyKeyInvalid,
                format!(
                    "the key has {} characters; 1 to {MAX_KEY_LENGTH} are allowed",
                    raw.len()
                ),
            ));
        }
        if let Some(bad) = raw.iter().find(|b| !(0x20..=0x7e).contains(*b)) {
            return Err(Problem::new(
                ErrorCode::IdempotencyKeyInvalid,
                format!("the key contains the non-printable byte 0x{bad:02x}"),
            ));
        }
        // Printable ASCII is valid UTF-8.
        Ok(IdempotencyKey(String::from_utf8_lossy(raw).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests "the same": method, path with query, and the body in a
/// canonical form (JSON re-serialised with sorted keys and no whitespace; other
/// bodies as they are), hashed with SHA-256.
pub fn fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b"\n");
    hasher.update(path_and_query.as_bytes());
    hasher.update(b"\n");
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => hasher.update(json.to_string().as_bytes()),
        Err(_) => hasher.update(body),
    }
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_characters() {
        assert!(IdempotencyKey::parse(b"order-1:reserve").is_ok());
        assert!(IdempotencyKey::parse(b"a key with spaces ~").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 256]).is_err());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(b"tab\there").is_err());
        assert!(IdempotencyKey::parse("caf\u{e9}".as_bytes()).is_err());
    }

    #[test]
    fn json_bodies_are_compared_canonically() {
        let a = fingerprint("POST", "/charges", br#"{"a": 1, "b": [1, 2]}"#);
        let b = fingerprint("POST", "/charges", br#"{"b":[1,2],"a":1}"#);
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("POST", "/charges", br#"{"a":2,"b":[1,2]}"#));
        assert_ne!(a, fingerprint("POST", "/refunds", br#"{"a":1,"b":[1,2]}"#));
        assert_ne!(a, fingerprint("PUT", "/charges", br#"{"a":1,"b":[1,2]}"#));
    }
}
