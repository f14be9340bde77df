# syntax=docker/dockerfile:1
# Image of the gateway (the public API), port 8080.
# Build from the repository root (the context needs Cargo.toml, Cargo.lock and crates/):
#   docker build -f Dockerfiles/gateway.Dockerfile -t gateway .
# Stages: cargo-chef plans the dependency graph, "cook" builds only the dependencies (a layer
# rebuilt only when Cargo.toml/Cargo.lock change), then the gateway binary is built in release
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
RUN cargo chef cook --release --locked --package gateway --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# Queries are checked at run time; should compile-time checked sqlx macros appear, their
# offline data (.sqlx/) is used instead of a live database.
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked --package gateway --bin gateway

FROM debian:bookworm-slim AS runtime
# ca-certificates for TLS connections (e.g. mongodb+srv:// or amqps://); curl for HEALTHCHECK.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /src/target/release/gateway /usr/local/bin/gateway
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# Defaults only; configuration comes from the environment (k8s ConfigMap and Secret). No
# secret is baked into the image.
ENV GATEWAY_ADDR=0.0.0.0:8080 \
    GATEWAY_ADMIN_ADDR=0.0.0.0:9102 \
    RUST_LOG=info \
    LOG_FORMAT=json
# 8080: the API; 9102: /metrics, /readyz and /healthz (the admin port, never published publicly).
EXPOSE 8080 9102
# Kubernetes probes the admin port (/healthz liveness, /readyz readiness); this is for docker and
# docker compose, and checks that the public listener answers (/healthz is on both ports).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gateway"]
