# syntax=docker/dockerfile:1
# Image of the converter (queue consumer, MP3 encoding in-process with FFmpeg); port 9090 serves only /healthz, /readyz and /metrics.
# Build from the repository root (the context needs Cargo.toml, Cargo.lock and crates/):
#   docker build -f Dockerfiles/converter.Dockerfile -t converter .
# Stages: cargo-chef plans the dependency graph, "cook" builds only the dependencies (a layer
# rebuilt only when Cargo.toml/Cargo.lock change), then the converter binary is built in release
# mode and copied into a slim Debian 12 image that runs it as a non-root user.

FROM rust:1-bookworm AS chef
# ffmpeg-next builds against Debian 12's FFmpeg 5.1 (bindgen needs clang).
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang libclang-dev pkg-config \
       libavcodec-dev libavformat-dev libavutil-dev libswresample-dev \
       libavfilter-dev libavdevice-dev libswscale-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --package converter --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# Queries are checked at run time; should compile-time checked sqlx macros appear, their
# offline data (.sqlx/) is used instead of a live database.
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked --package converter --bin converter

FROM debian:bookworm-slim AS runtime
# ca-certificates for TLS connections (e.g. mongodb+srv:// or amqps://); curl for HEALTHCHECK.
# The FFmpeg 5.1 runtime libraries matching the build stage's -dev packages, nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
       libavcodec59 libavformat59 libavutil57 libswresample4 \
       libavfilter8 libavdevice59 libswscale6 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /src/target/release/converter /usr/local/bin/converter
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# Defaults only; configuration comes from the environment (k8s ConfigMap and Secret). No
# secret is baked into the image.
ENV CONVERTER_ADDR=0.0.0.0:9090 \
    RUST_LOG=info \
    LOG_FORMAT=json \
    CONVERTER_TMP_DIR=/tmp
EXPOSE 9090
# Kubernetes uses the Deployment's probes on the same endpoints (/healthz liveness, /readyz
# readiness); this is for docker and docker compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9090/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/converter"]
