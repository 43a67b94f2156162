//! Per-run secrets: the key that signs IMDSv2 session tokens, and the obviously fake credentials
//! handed out (AWS `ASIAEXAMPLE…` keys, GCP `ya29.EXAMPLE…` tokens, Azure `eyJ…EXAMPLE` JWTs).
//!
//! Tokens are stateless (no table that grows with the number of PUTs): 40 bytes =
//! version, expiry (Unix seconds), TTL, a random nonce and a truncated SHA-256 MAC under the
//! per-run key, base64url-encoded to the 56 characters a real IMDSv2 token has.
//! Credentials rotate every hour like the real ones: window `k` derives its keys from the per-run
//! seed and `k`, and expires six hours after it started.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

/// How often credentials rotate, in seconds.
pub const ROTATION_SECS: i64 = 3600;
/// How long after its issue a credential set expires, in seconds.
pub const LIFETIME_SECS: i64 = 6 * 3600;

const TOKEN_LEN: usize = 40;
const MAC_LEN: usize = 20;

/// The per-run random material.
#[derive(Clone)]
pub struct Secrets {
    key: [u8; 32],
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    Invalid,
    Expired,
}

/// One rotation window's AWS credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    /// Unix seconds.
    pub last_updated: i64,
    /// Unix seconds.
    pub expiration: i64,
}

impl Secrets {
    /// Fresh random secrets for this run.
    pub fn generate() -> Result<Secrets, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Secrets { key })
    }

    /// Fixed secrets (tests).
    pub fn from_seed(seed: [u8; 32]) -> Secrets {
        Secrets { key: seed }
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((label.len() as u32).to_be_bytes());
        h.update(label);
        h.update(data);
        h.finalize().into()
    }

    /// Mints an IMDSv2 token valid for `ttl` seconds from `now` (Unix seconds); `nonce` makes
    /// tokens minted in the same second differ.
    pub fn mint_token(&self, now: i64, ttl: u32, nonce: u64) -> String {
        let mut b = [0u8; TOKEN_LEN];
        b[0] = 1;
        b[1..9].copy_from_slice(&(now + i64::from(ttl)).to_be_bytes());
        b[9..13].copy_from_slice(&ttl.to_be_bytes());
        let n = self.mac(b"nonce", &nonce.to_be_bytes());
        b[13..20].copy_from_slice(&n[..7]);
        let m = self.mac(b"token", &b[..TOKEN_LEN - MAC_LEN]);
        b[TOKEN_LEN - MAC_LEN..].copy_from_slice(&m[..MAC_LEN]);
        URL_SAFE.encode(b)
    }

    /// Checks a token; on success returns the seconds it has left (at least 1).
    pub fn verify_token(&self, token: &str, now: i64) -> Result<i64, TokenError> {
        let t = token.trim();
        if t.len() > 64 {
            return Err(TokenError::Invalid);
        }
        let bytes = URL_SAFE.decode(t).or_else(|_| URL_SAFE_NO_PAD.decode(t)).map_err(|_| TokenError::Invalid)?;
        if bytes.len() != TOKEN_LEN || bytes[0] != 1 {
            return Err(TokenError::Invalid);
        }
        let m = self.mac(b"token", &bytes[..TOKEN_LEN - MAC_LEN]);
        if !constant_time_eq(&m[..MAC_LEN], &bytes[TOKEN_LEN - MAC_LEN..]) {
            return Err(TokenError::Invalid);
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&bytes[1..9]);
        let expiry = i64::from_be_bytes(exp);
        if now >= expiry {
            Err(TokenError::Expired)
        } else {
            Ok(expiry - now)
        }
    }

    fn material(&self, label: &str, window: i64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0u32;
        while out.len() < len {
            let mut data = window.to_be_bytes().to_vec();
            data.extend_from_slice(&i.to_be_bytes());
            out.extend_from_slice(&self.mac(label.as_bytes(), &data));
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// The rotation window that `now` falls in, counted from `start` (both Unix seconds).
    pub fn window(start: i64, now: i64) -> i64 {
        (now - start).max(0) / ROTATION_SECS
    }

    /// The AWS credentials of `label` (`"ec2"`, `"ecs"`) valid at `now`.
    pub fn aws_credentials(&self, label: &str, start: i64, now: i64) -> AwsCredentials {
        let w = Secrets::window(start, now);
        let issued = start + w * ROTATION_SECS;
        let id = self.material(&format!("{label}-akid"), w, 9);
        let access_key_id = format!("ASIAEXAMPLE{}", alnum_upper(&id));
        let secret = STANDARD.encode(self.material(&format!("{label}-secret"), w, 24));
        let secret_access_key = format!("EXAMPLE/{}", &secret[..32]);
        let token = format!("IQoJb3JpZ2luX2VjEXAMPLE{}", STANDARD.encode(self.material(&format!("{label}-token"), w, 240)));
        AwsCredentials { access_key_id, secret_access_key, token, last_updated: issued, expiration: issued + LIFETIME_SECS }
    }

    /// A GCP OAuth2 access token for the current window.
    pub fn gcp_access_token(&self, start: i64, now: i64) -> String {
        let w = Secrets::window(start, now);
        format!("ya29.EXAMPLE-{}", URL_SAFE_NO_PAD.encode(self.material("gcp-token", w, 120)))
    }

    /// A fake (unsigned) JWT: header and claims are real JSON, the signature is random bytes.
    pub fn fake_jwt(&self, label: &str, claims: &serde_json::Value, now: i64) -> String {
        let header = serde_json::json!({"alg": "RS256", "kid": "EXAMPLE-not-a-real-key", "typ": "JWT"});
        let sig = self.material(label, now, 64);
        format!(
            "{}.{}.EXAMPLE{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// Random-looking bytes for a signature blob (instance identity signature, pkcs7).
    pub fn signature(&self, label: &str, len: usize) -> String {
        STANDARD.encode(self.material(label, 0, len))
    }
}

fn alnum_upper(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Secrets {
        Secrets::from_seed([7; 32])
    }

    #[test]
    fn tokens_verify_expire_and_reject_tampering() {
        let t = s().mint_token(1000, 60, 1);
        assert_eq!(t.len(), 56, "{t}");
        assert_eq!(s().verify_token(&t, 1000), Ok(60));
        assert_eq!(s().verify_token(&t, 1059), Ok(1));
        assert_eq!(s().verify_token(&t, 1060), Err(TokenError::Expired));
        assert_ne!(t, s().mint_token(1000, 60, 2), "nonce makes tokens differ");
        let other = Secrets::from_seed([8; 32]);
        assert_eq!(other.verify_token(&t, 1000), Err(TokenError::Invalid), "another run's token");
        let mut tampered = t.clone().into_bytes();
        tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        for bad in [tampered.as_str(), "", "not a token", "AQAAAPm_49V6IGWwyABYuQXrWfdP6yrb3-iy6UsOKg5zeol4pFOp_g==", &"A".repeat(500)] {
            assert_eq!(s().verify_token(bad, 1000), Err(TokenError::Invalid), "{bad}");
        }
    }

    #[test]
    fn credentials_are_fake_rotate_hourly_and_differ_per_run() {
        let a = s().aws_credentials("ec2", 0, 10);
        assert!(a.access_key_id.starts_with("ASIAEXAMPLE") && a.access_key_id.len() == 20, "{}", a.access_key_id);
        assert!(a.secret_access_key.starts_with("EXAMPLE/") && a.secret_access_key.len() == 40);
        assert!(a.token.contains("EXAMPLE"));
        assert_eq!((a.last_updated, a.expiration), (0, LIFETIME_SECS));
        assert_eq!(a, s().aws_credentials("ec2", 0, 3599));
        let b = s().aws_credentials("ec2", 0, 3600);
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_eq!(b.last_updated, 3600);
        assert_ne!(a, s().aws_credentials("ecs", 0, 10));
        assert_ne!(a, Secrets::from_seed([9; 32]).aws_credentials("ec2", 0, 10));
    }
}
