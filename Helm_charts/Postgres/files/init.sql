-- Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d).
-- The original's users table, unchanged: the auth service (Python or Rust) reads and writes it.
CREATE TABLE IF NOT EXISTS auth_user (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    password VARCHAR(255) NOT NULL
);
