//! Password hashing (argon2id, OWASP parameters) and verification, including the original's
//! plaintext rows.
//!
//! Hashing costs ~19 MiB and tens of milliseconds of CPU: callers run it on the blocking pool
//! through a [`Hasher`], so the async workers keep serving.

use std::sync::{Arc, OnceLock};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// OWASP's argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// What a stored password says about a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Wrong password (or no such user).
    Invalid,
    /// Right password; the stored value is current.
    Valid,
    /// Right password, but the stored value is plaintext or an older hash: store a new hash.
    ValidNeedsRehash,
}

/// The argon2id hasher with our parameters.
fn argon2() -> Argon2<'static> {
    // The constants are valid parameters; `Params::DEFAULT` has the very same values.
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) for `password`.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks `candidate` against a stored value: an argon2 PHC string, or, in rows written by the
/// original service, the plaintext password itself. `None` (unknown user) costs the same as a
/// wrong password and is always invalid.
pub fn verify(stored: Option<&str>, candidate: &str) -> Verdict {
    match stored {
        Some(stored) if looks_hashed(stored) => match PasswordHash::new(stored) {
            Ok(parsed) => {
                if Argon2::default()
                    .verify_password(candidate.as_bytes(), &parsed)
                    .is_err()
                {
                    Verdict::Invalid
                } else if is_current(&parsed) {
                    Verdict::Valid
                } else {
                    Verdict::ValidNeedsRehash
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "stored password hash cannot be parsed");
                burn_dummy(candidate);
                Verdict::Invalid
            }
        },
        Some(plaintext) => {
            // The original stored passwords as they were typed. Spend the same work as a hashed
            // row, so response times do not tell which accounts are still plaintext, and compare
            // in constant time.
            burn_dummy(candidate);
            if bool::from(plaintext.as_bytes().ct_eq(candidate.as_bytes())) {
                Verdict::ValidNeedsRehash
            } else {
                Verdict::Invalid
            }
        }
        None => {
            burn_dummy(candidate);
            Verdict::Invalid
        }
    }
}

/// Whether a stored value is a hash we wrote rather than an original plaintext password.
/// A plaintext password that happens to start with `$argon2` is not a valid PHC string and
/// would only fail to log in; registration never stores plaintext, so this cannot arise anew.
pub fn looks_hashed(stored: &str) -> bool {
    stored.starts_with("$argon2")
}

/// Whether a hash uses argon2id with at least our parameters.
fn is_current(parsed: &PasswordHash<'_>) -> bool {
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    params.m_cost() >= MEMORY_KIB && params.t_cost() >= PASSES && params.p_cost() >= LANES
}

/// A hash of a random password with our parameters, made once.
fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let random = SaltString::generate(&mut OsRng);
            hash(random.as_str()).ok()
        })
        .as_deref()
}

/// Makes the dummy hash now (blocking), so no request pays for it.
pub fn warm_up() {
    let _ = dummy_hash();
}

/// Verifies `candidate` against the dummy hash, for the cost alone.
fn burn_dummy(candidate: &str) {
    if let Some(parsed) = dummy_hash().and_then(|d| PasswordHash::new(d).ok()) {
        let _ = Argon2::default().verify_password(candidate.as_bytes(), &parsed);
    }
}

/// Runs hashing and verification on the blocking pool, inside the caller's tracing span, at
/// most `max_concurrent` at a time: each one holds 19 MiB, so a flood of logins queues here
/// instead of growing memory by 19 MiB per request.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Hasher {
    /// A hasher running at most `max_concurrent` (at least 1) operations at once.
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// [`verify`] off the async workers.
    pub async fn verify(
        &self,
        stored: Option<String>,
        candidate: String,
    ) -> anyhow::Result<Verdict> {
        self.run(move || verify(stored.as_deref(), &candidate))
            .await
    }

    /// [`hash`] off the async workers.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        self.run(move || hash(&password))
            .await?
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    }

    async fn run<F, R>(&self, f: F) -> anyhow::Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let _permit = self.permits.acquire().await?;
        let span = tracing::Span::current();
        Ok(tokio::task::spawn_blocking(move || span.in_scope(f)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_with_owasp_params() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(h.len() <= 255, "fits the original's varchar(255)");
        assert_eq!(verify(Some(&h), "correct horse"), Verdict::Valid);
        assert_eq!(verify(Some(&h), "wrong horse"), Verdict::Invalid);
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash("same").unwrap(), hash("same").unwrap());
    }

    #[test]
    fn plaintext_rows_log_in_and_ask_for_rehash() {
        assert_eq!(
            verify(Some("Admin123"), "Admin123"),
            Verdict::ValidNeedsRehash
        );
        assert_eq!(verify(Some("Admin123"), "admin123"), Verdict::Invalid);
        assert_eq!(verify(Some("Admin123"), "Admin1234"), Verdict::Invalid);
        assert_eq!(verify(Some(""), "x"), Verdict::Invalid);
    }

    #[test]
    fn unknown_user_is_invalid() {
        assert_eq!(verify(None, "anything"), Verdict::Invalid);
    }

    #[test]
    fn weaker_hashes_ask_for_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw123456", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert_eq!(verify(Some(&weak), "pw123456"), Verdict::ValidNeedsRehash);
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::DEFAULT)
            .hash_password(b"pw123456", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert_eq!(
            verify(Some(&argon2i), "pw123456"),
            Verdict::ValidNeedsRehash
        );
    }

    #[tokio::test]
    async fn hasher_with_one_permit_serves_concurrent_callers() {
        let hasher = Hasher::new(1);
        let stored = hash("pw-12345").unwrap();
        let (a, b, c) = tokio::join!(
            hasher.verify(Some(stored.clone()), "pw-12345".into()),
            hasher.verify(Some(stored), "nope".into()),
            hasher.hash("another-pw".into()),
        );
        assert_eq!(a.unwrap(), Verdict::Valid);
        assert_eq!(b.unwrap(), Verdict::Invalid);
        assert!(c.unwrap().starts_with("$argon2id$"));
    }

    #[test]
    fn corrupt_hash_is_invalid_not_a_panic() {
        assert_eq!(verify(Some("$argon2id$garbage"), "x"), Verdict::Invalid);
    }
}
