//! pushjet-bridge: webhooks in, Pushjet push notifications out.
//!
//! The library's API is the application and its settings ([`app`], [`config`]), the Pushjet
//! client ([`pushjet`]) and the embedded Pushjet-compatible server ([`pushjet_server`]); [`cli`]
//! and [`telemetry`] serve the binary. Everything else is the crate's own; docs/modules.md maps it.

pub mod app;
pub mod cli;
pub mod config;
pub mod pushjet;
pub mod pushjet_server;
pub mod telemetry;

mod console;
mod database;
mod demo;
mod examples;
mod history;
mod http;
mod metrics;
mod reload;
mod secret;
mod streams;

/// Declares modules that are the crate's own, public only with the `internals` feature: the
/// criterion benchmarks in `benches/` measure them directly. Not a stable API.
macro_rules! internal_modules {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        mod $name;
    )*};
}

internal_modules!(
    delivery,
    noise,
    notification,
    pipeline,
    render,
    routes,
    sources,
    verify
);
