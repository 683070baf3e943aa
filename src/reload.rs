//! The configuration in force, and replacing it whole while the service runs (SIGHUP or
//! `POST /admin/reload`): the templates directory and `PUSHJET_BRIDGE_ENV_FILE` are read again,
//! everything is validated, and only then swapped in. An invalid new configuration leaves the old
//! one working and says why.
//!
//! Routes, templates and the body and message limits reload; the listen address, the data
//! directory, the Pushjet API URL and the delivery settings take effect at the next start.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;

use crate::config::{ConfigError, Settings};
use crate::delivery::RouteSecrets;
use crate::metrics::Metrics;
use crate::pipeline::Bridge;
use crate::pushjet::SecretKey;
use crate::render::{LoadError, Renderer};
use crate::routes::{Route, RouteName};

/// The bridge in force, swapped whole on reload: the one source of the routes for the webhook
/// handlers and the dispatcher alike.
pub type SharedBridge = ArcSwap<Bridge>;

impl RouteSecrets for SharedBridge {
    fn secret(&self, route: &RouteName) -> Option<SecretKey> {
        self.load()
            .routes
            .get(route.as_str())
            .map(|found| found.secret.clone())
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The templates do not load.
    #[error(transparent)]
    Templates(#[from] LoadError),
}

/// Builds the bridge for these settings: loads and checks the templates, and adds the demo route
/// when no route is configured and there is one.
pub fn build_bridge(settings: &Settings, demo: Option<&Route>) -> Result<Bridge, ReloadError> {
    let renderer = Renderer::load(settings.templates_dir.as_deref())?;
    check_route_templates(settings, &renderer)?;
    let mut routes = settings.routes.clone();
    if routes.is_empty()
        && let Some(demo) = demo
    {
        routes.insert(demo.clone());
    }
    Ok(Bridge {
        routes,
        renderer,
        max_body_bytes: settings.limits.max_body_bytes,
        max_message_bytes: settings.limits.max_message_bytes,
    })
}

/// Re-reads and swaps the configuration.
pub struct Reloader {
    settings: Settings,
    demo: Option<Route>,
    bridge: Arc<SharedBridge>,
    metrics: Arc<Metrics>,
    generation: AtomicI64,
}

impl Reloader {
    /// A reloader for the service started with `settings`.
    pub fn new(
        settings: Settings,
        demo: Option<Route>,
        bridge: Arc<SharedBridge>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            settings,
            demo,
            bridge,
            metrics,
            generation: AtomicI64::new(1),
        }
    }

    /// Reads everything again and swaps it in; returns the new generation. On error nothing
    /// changes. Blocking (reads files): call it off the async workers.
    pub fn reload(&self) -> Result<i64, ReloadError> {
        let outcome = self
            .settings
            .reread()
            .map_err(ReloadError::from)
            .and_then(|settings| build_bridge(&settings, self.demo.as_ref()));
        match outcome {
            Ok(bridge) => {
                self.bridge.store(Arc::new(bridge));
                let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                self.metrics.config_generation.set(generation);
                self.metrics.config_last_reload_success.set(1);
                tracing::info!(generation, "configuration reloaded");
                Ok(generation)
            }
            Err(error) => {
                self.metrics.config_last_reload_success.set(0);
                tracing::error!(
                    "configuration reload refused, the previous one stays in force: {error}"
                );
                Err(error)
            }
        }
    }
}

/// Every route's `TEMPLATE` must name a template that exists.
pub fn check_route_templates(settings: &Settings, renderer: &Renderer) -> Result<(), ConfigError> {
    let problems: Vec<String> = settings
        .routes
        .iter()
        .filter_map(|route| {
            let template = route.template.as_deref()?;
            (!renderer.contains(template)).then(|| {
                format!(
                    "{}TEMPLATE: no template named `{template}` (built-in or in PUSHJET_BRIDGE_TEMPLATES_DIR)",
                    route.name.env_prefix()
                )
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(problems))
    }
}
