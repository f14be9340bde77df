//! JWT claims as the original auth service issues them, and their HS256-only verification.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How long an issued token stays valid, as in the original (one day).
pub const TOKEN_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// The claims of the original (`username`, `exp`, `iat`, `admin`); `/validate` answers them.
// The one claims type: auth's OpenAPI schema for `/validate` is derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Claims {
    /// The user's email, as registered.
    pub username: String,
    /// Expiry, seconds since the Unix epoch (issue time + 1 day for the tokens auth issues).
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Always `true` for tokens issued by auth, as in the original.
    pub admin: bool,
}

/// Why a token was refused. Callers answer 401 for every variant.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token has expired.
    #[error("token has expired")]
    Expired,
    /// Bad signature, wrong algorithm, missing claims or not a JWT at all.
    #[error("token is invalid")]
    Invalid(#[source] jsonwebtoken::errors::Error),
}

/// HS256 keys built once from `JWT_SECRET`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    /// Keys for `secret`. Only HS256 is ever accepted, whatever a token's header says.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Claims for `username` issued at `now` (Unix seconds), valid for one day.
    pub fn claims_for(username: &str, now: i64) -> Claims {
        Claims {
            username: username.to_owned(),
            exp: now + TOKEN_LIFETIME_SECS,
            iat: now,
            admin: true,
        }
    }

    /// Signs `claims` with HS256.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// A fresh token for `username`, valid for one day from now.
    pub fn issue(&self, username: &str) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign(&Self::claims_for(username, now_unix()))
    }

    /// Verifies signature, algorithm and expiry, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e),
            })
    }
}

/// Extracts the token from an `Authorization: Bearer <jwt>` header value.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    #[test]
    fn round_trip_has_original_claims() {
        let keys = JwtKeys::new(b"secret");
        let token = keys.issue("a@b.c").unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.username, "a@b.c");
        assert!(claims.admin);
        assert_eq!(claims.exp - claims.iat, TOKEN_LIFETIME_SECS);
    }

    #[test]
    fn wrong_secret_is_invalid() {
        let token = JwtKeys::new(b"one").issue("a@b.c").unwrap();
        assert!(matches!(
            JwtKeys::new(b"two").verify(&token),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn expired_is_refused() {
        let keys = JwtKeys::new(b"secret");
        let token = keys
            .sign(&JwtKeys::claims_for(
                "a@b.c",
                now_unix() - TOKEN_LIFETIME_SECS - 60,
            ))
            .unwrap();
        assert!(matches!(keys.verify(&token), Err(TokenError::Expired)));
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = JwtKeys::new(b"secret");
        let claims = serde_json::to_vec(&JwtKeys::claims_for("a@b.c", now_unix())).unwrap();
        let token = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(&claims)
        );
        assert!(keys.verify(&token).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        let keys = JwtKeys::new(b"secret");
        for t in ["", "abc", "a.b.c", "...."] {
            assert!(keys.verify(t).is_err(), "{t}");
        }
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
