# syntax=docker/dockerfile:1
# Image of the web UI: the React app built by Vite, served by nginx, /api proxied to the gateway.
# Build from the repository root:
#   docker build -f Dockerfiles/frontend.Dockerfile -t frontend .
# nginx renders frontend/nginx.conf (copied as a template) with envsubst at every start, from
# LISTEN_PORT, STATIC_ROOT, GATEWAY_UPSTREAM and MAX_UPLOAD_SIZE (the official image's
# /etc/nginx/templates mechanism). It runs unprivileged (uid 101), so it listens on 8080.

FROM node:22-bookworm-slim AS build
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lockfile changes.
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM nginxinc/nginx-unprivileged:1.28-alpine AS runtime
# Only our site: the image's default server would also listen on 8080.
RUN rm -f /etc/nginx/conf.d/default.conf
COPY --chown=101:101 frontend/nginx.conf /etc/nginx/templates/default.conf.template
COPY --from=build --chown=101:101 /app/dist /usr/share/nginx/html
USER 101
# Defaults for docker compose and a plain docker run; Kubernetes sets them from
# k8s/frontend/configmap.yaml. No secret is involved.
ENV LISTEN_PORT=8080 \
    STATIC_ROOT=/usr/share/nginx/html \
    GATEWAY_UPSTREAM=gateway:8080 \
    MAX_UPLOAD_SIZE=210m
EXPOSE 8080
# Kubernetes probes /healthz (answered by nginx itself) and /; this is for docker and docker compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["sh", "-c", "wget -q -O /dev/null http://127.0.0.1:${LISTEN_PORT}/healthz || exit 1"]
