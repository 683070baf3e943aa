//! The `pushjet-bridge` binary: parses the command line and runs the chosen command.

use std::fmt::Display;
use std::process::ExitCode;

use clap::Parser;
use pushjet_bridge::app::Application;
use pushjet_bridge::cli::{
    Cli, Command, check, client, dead_letters, healthcheck, history, render,
};
use pushjet_bridge::config::Settings;
use pushjet_bridge::telemetry;

/// mimalloc instead of the system allocator: glibc's arenas were a third of the HTTP workers'
/// time under load (and a lock the committer waited on); the musl build gets the same one.
/// Built without transparent huge pages, which would otherwise double the idle RSS (see
/// BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Client(args) => print_json(actix_rt::System::new().block_on(client::run(args))),
        Command::Render(args) => print_json(render::run(args)),
        Command::DeadLetters(args) => {
            print_json(actix_rt::System::new().block_on(dead_letters::run(args)))
        }
        Command::History(args) => print_json(actix_rt::System::new().block_on(history::run(args))),
        Command::Check => {
            let report = check::run();
            print!("{}", report.text);
            if report.problems == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Healthcheck(args) => {
            match actix_rt::System::new().block_on(healthcheck::run(args)) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("unhealthy: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints a command's JSON on standard output, or its error as one sentence on standard error.
fn print_json(outcome: Result<serde_json::Value, impl Display>) -> ExitCode {
    match outcome {
        Ok(serde_json::Value::Null) => ExitCode::SUCCESS,
        Ok(value) => {
            println!("{value:#}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let _log_writer = telemetry::init(settings.server.log_format);
    let outcome = actix_rt::System::new().block_on(async {
        let application = Application::build(settings).await?;
        application.run_until_stopped().await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
