//! Logging set-up: `RUST_LOG` filter, JSON lines when `LOG_FORMAT=json`.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global tracing subscriber for `service`; safe to call more than once (tests).
pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{service}=info,tower_http=info")));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(true)).try_init()
    };
    // A subscriber already installed (several apps in one test process) is fine.
    drop(result);
}
