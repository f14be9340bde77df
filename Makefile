# Two commands for a newcomer: `make up` and `make test`. See README.md.
SHELL := /bin/bash
# A fixed target directory outside the clone, so later runs (and CI) reuse the build.
export CARGO_TARGET_DIR ?= /var/tmp/vidconv-target

.PHONY: up down status logs clean test test-rust test-fuzz test-deploy test-frontend test-e2e lint fmt bench loadtest

up: ## Install what is missing, build, start the whole stack under .stack/, print the URLs
	@bash scripts/stack.sh up

down: ## Stop everything `make up` started
	@bash scripts/stack.sh down

status: ## What is running, and whether it answers
	@bash scripts/stack.sh status

logs: ## Follow the services' logs
	@bash scripts/stack.sh logs

clean: down ## Stop and wipe the stack's data, logs and secrets under .stack/
	@bash scripts/stack.sh clean

test: test-rust test-fuzz test-deploy test-frontend test-e2e ## Every test, installing what it needs

test-rust: ## Format, unused dependencies, lint, unit and integration tests against real Postgres, RabbitMQ, Mongo stand-in
	@bash scripts/test-rust.sh

test-fuzz: ## Schemathesis against the gateway's and auth's OpenAPI: no 5xx, no answer off its schema
	@bash scripts/test-schemathesis.sh

test-deploy: ## Lint and validate Dockerfiles, Helm charts, k8s manifests, Jenkinsfile
	@bash scripts/test-deploy.sh

test-frontend: ## ESLint and component tests of the frontend
	@bash scripts/test-frontend.sh

test-e2e: ## End-to-end tests (API and browser) against a stack started by scripts/stack.sh
	@bash scripts/test-e2e.sh

lint: ## rustfmt, unused dependencies and clippy
	cargo fmt --all -- --check
	@bash scripts/check-unused-deps.sh
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

bench: ## Converter vs the ffmpeg CLI (alone and end to end through the queue and GridFS), memory vs file size, gateway throughput, event streams vs MongoDB reads
	@bash scripts/bench.sh

loadtest: ## locust against a stack of its own for LOADTEST_DURATION (2m): uploads/min, latencies, zero errors
	@bash scripts/loadtest.sh
