//! What a client sends: HTTP Basic credentials, and the rules a new account must meet.

use axum::http::{header::AUTHORIZATION, HeaderMap};
use base64::Engine as _;

/// Longest email the original's `varchar(255)` column holds.
pub const MAX_EMAIL_CHARS: usize = 255;
/// Shortest password a new account may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted at registration; bounds the hashing work per request.
pub const MAX_PASSWORD_CHARS: usize = 1024;

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

/// Checks an email for a new account; the error tells the client what is wrong.
pub fn check_new_email(email: &str) -> Result<(), String> {
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(format!(
            "email must be at most {MAX_EMAIL_CHARS} characters"
        ));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("email must not contain spaces or control characters".to_owned());
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("email must look like name@example.com (it has no @)".to_owned());
    };
    if local.is_empty() || local.contains('@') {
        return Err(
            "email must look like name@example.com (one @, with a name before it)".to_owned(),
        );
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        return Err(
            "email must look like name@example.com (the domain needs a dot between names)"
                .to_owned(),
        );
    }
    Ok(())
}

/// Checks a password for a new account; the error tells the client what is wrong.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "password must be at most {MAX_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
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

    #[test]
    fn email_rules() {
        for ok in ["a@b.c", "first.last+tag@sub.example.org", "Bob@Example.COM"] {
            assert_eq!(check_new_email(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("plainaddress", "no @"),
            ("@example.com", "name before it"),
            ("a@b@example.com", "one @"),
            ("a@localhost", "dot"),
            ("a@.com", "dot"),
            ("a@example.", "dot"),
            ("a b@example.com", "spaces"),
        ] {
            let err = check_new_email(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(check_new_email(&long).unwrap_err().contains("255"));
        let fits = format!("{}@example.com", "a".repeat(255 - 12));
        assert_eq!(check_new_email(&fits), Ok(()));
    }

    #[test]
    fn password_rules() {
        assert!(check_new_password("1234567")
            .unwrap_err()
            .contains("at least 8"));
        assert_eq!(check_new_password("12345678"), Ok(()));
        // Characters, not bytes.
        assert!(check_new_password("äöüäöüä").is_err());
        assert!(check_new_password(&"x".repeat(1025))
            .unwrap_err()
            .contains("at most"));
    }
}
