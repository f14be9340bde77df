//! Every SQL statement of the auth service, and the users table's set-up.
//!
//! Why not `sqlx::migrate!`: the table's name is configuration (`AUTH_TABLE`, as in the
//! original), while sqlx migrations are fixed SQL files recorded by checksum in one
//! `_sqlx_migrations` table per database. Interpolating the name into migrations would make the
//! recorded checksum depend on the configuration, so changing `AUTH_TABLE` would either fail
//! ("migration was modified") or, worse, skip creating the new table because the version is
//! recorded as applied. The schema is one table and one index, so instead each start runs
//! idempotent statements (`CREATE ... IF NOT EXISTS`, like the original's `init.sql`) under an
//! advisory lock, with the name checked to be a plain identifier ([`TableName`]) and quoted.
//! A database created by the original's `init.sql` already has the table: nothing in it changes.

use sqlx::{postgres::PgPool, Row};

use crate::{config::TableName, credentials::NewEmail};

/// A row of the users table.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The identity column.
    pub id: i32,
    /// The email as registered (its letter case kept).
    pub email: String,
    /// An argon2 PHC string, or a plaintext password in rows written by the original.
    pub password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// What the schema set-up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaReport {
    /// Whether emails are unique regardless of letter case, by index.
    pub unique_email_index: bool,
}

/// The users table, with its statements built once for the configured name.
#[derive(Debug, Clone)]
pub struct UserStore {
    pool: PgPool,
    table: TableName,
    find_by_email: String,
    insert_if_absent: String,
    replace_password: String,
}

impl UserStore {
    /// Statements for `table` on `pool`.
    pub fn new(pool: PgPool, table: TableName) -> Self {
        let t = table.quoted();
        Self {
            // Case-insensitive, since registration treats case-only differences as the same
            // account. Old data may hold such near-duplicates (then the unique index is absent):
            // the exact spelling wins, else the oldest row.
            find_by_email: format!(
                "SELECT id, email, password FROM {t} WHERE lower(email) = lower($1) \
                 ORDER BY (email = $1) DESC, id LIMIT 1"
            ),
            insert_if_absent: format!(
                "INSERT INTO {t} (email, password) SELECT $1, $2 \
                 WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE lower(email) = lower($1)) \
                 RETURNING id"
            ),
            // Compare-and-set: never overwrite a password changed since we read the row.
            replace_password: format!(
                "UPDATE {t} SET password = $2 WHERE id = $1 AND password = $3"
            ),
            pool,
            table,
        }
    }

    /// The pool, for readiness checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the original's table when absent, checks its columns, and adds a unique index on
    /// `lower(email)` when the existing rows allow it (a warning otherwise).
    pub async fn ensure_schema(&self) -> anyhow::Result<SchemaReport> {
        let t = self.table.quoted();
        let name = self.table.as_str();
        // Several replicas may start at once; concurrent CREATE ... IF NOT EXISTS can still
        // collide in the catalog, so set-up is serialised per table.
        let lock_key = format!("auth schema {name}");

        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(&lock_key)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
               id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
               email VARCHAR(255) NOT NULL, \
               password VARCHAR(255) NOT NULL)"
        ))
        .execute(&mut *tx)
        .await?;
        let columns: Vec<String> = sqlx::query(
            "SELECT attname::text FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        )
        .bind(&t)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
        for needed in ["id", "email", "password"] {
            if !columns.iter().any(|c| c == needed) {
                anyhow::bail!(
                    "table {name} exists but has no column {needed}; \
                     point AUTH_TABLE at the users table (columns id, email, password)"
                );
            }
        }
        tx.commit().await?;

        // The index in its own transaction: when old rows hold emails differing only in case,
        // creating it fails and we carry on without it (registration still refuses such
        // duplicates, under an advisory lock).
        let index = format!("\"{name}_email_lower_key\"");
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(&lock_key)
            .execute(&mut *tx)
            .await?;
        let created = sqlx::query(&format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {t} (lower(email))"
        ))
        .execute(&mut *tx)
        .await;
        match created {
            Ok(_) => {
                tx.commit().await?;
                Ok(SchemaReport {
                    unique_email_index: true,
                })
            }
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                tracing::warn!(
                    table = name,
                    "some emails in the users table differ only in letter case; \
                     running without the unique index on lower(email)"
                );
                Ok(SchemaReport {
                    unique_email_index: false,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The user whose email matches, ignoring letter case.
    pub async fn find_by_email(&self, email: &str) -> sqlx::Result<Option<User>> {
        // Postgres text cannot hold NUL, and the query would fail; no stored email has one.
        if email.contains('\0') {
            return Ok(None);
        }
        let row = sqlx::query(&self.find_by_email)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(User {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                password: row.try_get("password")?,
            })
        })
        .transpose()
    }

    /// Adds a user; `None` when an email equal to it up to letter case exists.
    pub async fn insert(&self, email: &NewEmail, password_hash: &str) -> sqlx::Result<Option<i32>> {
        let email = email.as_str();
        let mut tx = self.pool.begin().await?;
        // Serialises registrations of the same email, so that the NOT EXISTS check holds even
        // when the unique index could not be created.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('auth register ' || lower($1)))")
            .bind(email)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(&self.insert_if_absent)
            .bind(email)
            .bind(password_hash)
            .fetch_optional(&mut *tx)
            .await;
        match inserted {
            Ok(Some(row)) => {
                let id: i32 = row.try_get(0)?;
                tx.commit().await?;
                Ok(Some(id))
            }
            Ok(None) => Ok(None),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces user `id`'s password with `new_hash` if it still is `old`; whether it did.
    pub async fn replace_password(&self, id: i32, old: &str, new_hash: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(&self.replace_password)
            .bind(id)
            .bind(new_hash)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether Postgres answers.
    pub async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
