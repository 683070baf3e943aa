//! The command line: `serve` (the default) and the Pushjet client commands.

pub mod check;
pub mod client;
pub mod dead_letters;
pub mod healthcheck;
pub mod history;
pub mod listen;
pub mod render;

use clap::{Parser, Subcommand};

/// Turns webhooks into Pushjet push notifications.
#[derive(Debug, Parser)]
#[command(name = "pushjet-bridge", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (settings from the environment).
    Serve,
    /// Talk to a Pushjet API: services, devices, subscriptions, messages.
    Client(client::ClientArgs),
    /// Validate the configuration and compile and render every template; exit 1 on any problem.
    Check,
    /// Print what a payload file would become, without sending.
    Render(render::RenderArgs),
    /// List, retry or purge dead letters in the data directory's outbox.
    DeadLetters(dead_letters::DeadLettersArgs),
    /// List, show or replay the delivery history of a running service (admin token from
    /// PUSHJET_BRIDGE_ADMIN_TOKEN).
    History(history::HistoryArgs),
    /// Exit 0 when the running service answers 200 on /healthz, 1 otherwise.
    Healthcheck(healthcheck::HealthcheckArgs),
}
