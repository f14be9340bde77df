//! What a client sends: HTTP Basic credentials, and the rules a new account must meet.

use axum::http::{header::AUTHORIZATION, HeaderMap};
use base64::Engine as _;

pub use common::accounts::{MAX_EMAIL_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

/// An `email:password` pair from `Authorization: Basic ...`.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The user name part: the email.
    pub email: String,
    /// The password part.
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl BasicCredentials {
    /// The credentials in `headers`, `None` when there are none or they cannot be read
    /// (no header, another scheme, bad base64, not UTF-8, no `:`, or an empty email or password).
    /// Like the original (Flask's `request.authorization`), all of these count as "missing".
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        // The password may itself contain ':'; the email cannot.
        let (email, password) = decoded.split_once(':')?;
        if email.is_empty() || password.is_empty() {
            return None;
        }
        Some(Self {
            email: email.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// A registration input that breaks a rule; the message tells the client which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleBroken(String);

/// An email a new account may have: at most 255 characters, no spaces or control characters,
/// and shaped like `name@example.com`. Kept as typed (letter case included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmail(String);

impl NewEmail {
    /// `email` when it meets the rules, else which rule it breaks.
    pub fn parse(email: String) -> Result<Self, RuleBroken> {
        let broken = |why: &str| Err(RuleBroken(why.to_owned()));
        if email.chars().count() > MAX_EMAIL_CHARS {
            return Err(RuleBroken(format!(
                "email must be at most {MAX_EMAIL_CHARS} characters"
            )));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return broken("email must not contain spaces or control characters");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return broken("email must look like name@example.com (it has no @)");
        };
        if local.is_empty() || local.contains('@') {
            return broken("email must look like name@example.com (one @, with a name before it)");
        }
        if domain.split('.').count() < 2 || domain.split('.').any(str::is_empty) {
            return broken(
                "email must look like name@example.com (the domain needs a dot between names)",
            );
        }
        Ok(Self(email))
    }

    /// The email as typed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The email as typed, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for NewEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password a new account may have: 8 to 1024 characters (characters, not bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl NewPassword {
    /// `password` when its length is within the rules, else which bound it breaks.
    pub fn parse(password: String) -> Result<Self, RuleBroken> {
        let chars = password.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(RuleBroken(format!(
                "password must be at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(RuleBroken(format!(
                "password must be at most {MAX_PASSWORD_CHARS} characters"
            )));
        }
        Ok(Self(password))
    }

    /// The password, for hashing.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(raw: &[u8]) -> HeaderMap {
        headers(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    #[test]
    fn parses_basic() {
        let c = BasicCredentials::from_headers(&basic(b"a@b.c:pa:ss")).unwrap();
        assert_eq!(c.email, "a@b.c");
        assert_eq!(c.password, "pa:ss");
        let c = BasicCredentials::from_headers(&headers(&format!(
            "basic  {}",
            base64::engine::general_purpose::STANDARD.encode("x@y.z:p")
        )))
        .unwrap();
        assert_eq!(c.email, "x@y.z");
    }

    #[test]
    fn unusable_credentials_are_missing() {
        assert_eq!(BasicCredentials::from_headers(&HeaderMap::new()), None);
        for bad in [
            headers("Bearer abc"),
            headers("Basic !!!"),
            headers("Basic"),
            basic(b"no-colon"),
            basic(b":password"),
            basic(b"a@b.c:"),
            basic(&[0xff, b':', b'x']),
        ] {
            assert_eq!(BasicCredentials::from_headers(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_password() {
        let c = BasicCredentials::from_headers(&basic(b"a@b.c:hunter22")).unwrap();
        assert!(!format!("{c:?}").contains("hunter22"));
    }

    fn email_error(email: &str) -> String {
        NewEmail::parse(email.to_owned()).unwrap_err().to_string()
    }

    fn password_error(password: &str) -> String {
        NewPassword::parse(password.to_owned())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn email_rules() {
        for ok in ["a@b.c", "first.last+tag@sub.example.org", "Bob@Example.COM"] {
            let parsed = NewEmail::parse(ok.to_owned()).unwrap();
            // Kept exactly as typed: the stored spelling is the token's username.
            assert_eq!(parsed.as_str(), ok);
            assert_eq!(parsed.to_string(), ok);
        }
        for (bad, says) in [
            (
                "plainaddress",
                "email must look like name@example.com (it has no @)",
            ),
            (
                "@example.com",
                "email must look like name@example.com (one @, with a name before it)",
            ),
            (
                "a@b@example.com",
                "email must look like name@example.com (one @, with a name before it)",
            ),
            (
                "a@localhost",
                "email must look like name@example.com (the domain needs a dot between names)",
            ),
            (
                "a@.com",
                "email must look like name@example.com (the domain needs a dot between names)",
            ),
            (
                "a@example.",
                "email must look like name@example.com (the domain needs a dot between names)",
            ),
            (
                "a@b..c",
                "email must look like name@example.com (the domain needs a dot between names)",
            ),
            (
                "a b@example.com",
                "email must not contain spaces or control characters",
            ),
            (
                "a\tb@example.com",
                "email must not contain spaces or control characters",
            ),
            (
                "a\u{7f}@example.com",
                "email must not contain spaces or control characters",
            ),
        ] {
            assert_eq!(email_error(bad), says, "{bad:?}");
        }
    }

    #[test]
    fn email_length_counts_characters() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(email_error(&long), "email must be at most 255 characters");
        let fits = format!("{}@example.com", "a".repeat(255 - 12));
        assert!(NewEmail::parse(fits).is_ok());
        // 255 two-byte characters fit the varchar(255) column.
        let wide = format!("{}@example.com", "ä".repeat(255 - 12));
        assert!(NewEmail::parse(wide).is_ok());
    }

    #[test]
    fn password_rules() {
        assert_eq!(
            password_error("1234567"),
            "password must be at least 8 characters"
        );
        assert!(NewPassword::parse("12345678".to_owned()).is_ok());
        // Characters, not bytes: 7 characters in 14 bytes are too short.
        assert_eq!(
            password_error("äöüäöüä"),
            "password must be at least 8 characters"
        );
        assert!(NewPassword::parse("x".repeat(1024)).is_ok());
        assert_eq!(
            password_error(&"x".repeat(1025)),
            "password must be at most 1024 characters"
        );
        let kept = NewPassword::parse("pa:ss word".to_owned()).unwrap();
        assert_eq!(kept.into_string(), "pa:ss word");
    }

    #[test]
    fn new_password_debug_hides_it() {
        let password = NewPassword::parse("hunter22".to_owned()).unwrap();
        assert!(!format!("{password:?}").contains("hunter22"));
    }
}
