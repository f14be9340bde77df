# syntax=docker/dockerfile:1
# Image of the auth service (users, passwords, JWTs), port 5000.
# Build from the repository root (the context needs Cargo.toml, Cargo.lock and crates/):
#   docker build -f Dockerfiles/auth.Dockerfile -t auth .
# Stages: cargo-chef plans the dependency graph, "cook" builds only the dependencies (a layer
# rebuilt only when Cargo.toml/Cargo.lock change), then the auth binary is built in release
# mode and copied into a slim Debian 12 image that runs it as a non-root user.

FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --package auth --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# Queries are checked at run time; should compile-time checked sqlx macros appear, their
# offline data (.sqlx/) is used instead of a live database.
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked --package auth --bin auth

FROM debian:bookworm-slim AS runtime
# ca-certificates for TLS connections (e.g. mongodb+srv:// or amqps://); curl for HEALTHCHECK.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /src/target/release/auth /usr/local/bin/auth
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# Defaults only; configuration comes from the environment (k8s ConfigMap and Secret). No
# secret is baked into the image.
ENV AUTH_ADDR=0.0.0.0:5000 \
    RUST_LOG=info \
    LOG_FORMAT=json
EXPOSE 5000
# Kubernetes uses the Deployment's probes on the same endpoints (/healthz liveness, /readyz
# readiness); this is for docker and docker compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:5000/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/auth"]
