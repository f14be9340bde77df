//! The rules a new account must meet. Auth enforces them (`NewEmail`, `NewPassword`); the
//! gateway states them in its OpenAPI document (`NewAccount`), from which the frontend's form
//! takes them (frontend/scripts/gen-api.sh).

/// Longest email the original's `varchar(255)` column holds.
pub const MAX_EMAIL_CHARS: usize = 255;
/// Shortest password a new account may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted at registration; bounds the hashing work per request.
pub const MAX_PASSWORD_CHARS: usize = 1024;
