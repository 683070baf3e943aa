//! `pushjet-bridge dead-letters …`: list, retry and purge dead letters directly in
//! `<data_dir>/outbox.redb`, or in the PostgreSQL database of `PUSHJET_BRIDGE_DATABASE_URL` when
//! it is set. Prints JSON on standard output.
//!
//! The redb file can be open in one process at a time, so this works while the service is
//! stopped; while it runs, use its admin endpoints (`/admin/dead-letters`) instead. Retried dead
//! letters are sent the next time the service runs. A database is shared: the command works on it
//! from anywhere, while the replicas run, and they send what it retries at once.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::delivery::{DeliverySettings, OUTBOX_FILE_NAME, Outbox, OutboxError};

/// `dead-letters` and its options.
#[derive(Debug, Args)]
pub struct DeadLettersArgs {
    /// The data directory holding outbox.redb.
    #[arg(long, env = "PUSHJET_BRIDGE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: DeadLettersCommand,
}

/// What to do with the dead letters.
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List dead letters, oldest first.
    List {
        /// Only dead letters with ids above this one (the previous page's `next_after`).
        #[arg(long)]
        after: Option<u64>,
        /// How many to list.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Queue dead letters for delivery again: one by id, or every one with --all.
    Retry {
        /// The dead letter's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<u64>,
        /// Retry every dead letter (as far as PUSHJET_BRIDGE_MAX_QUEUE leaves room).
        #[arg(long)]
        all: bool,
    },
    /// Delete a dead letter for good.
    Purge {
        /// The dead letter's id.
        id: u64,
    },
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLettersError {
    /// There is no outbox database in the data directory.
    #[error(
        "there is no outbox at {}: nothing was ever queued there (is PUSHJET_BRIDGE_DATA_DIR or --data-dir right?)",
        path.display()
    )]
    NoOutbox {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The delivery settings in the environment are invalid.
    #[error(transparent)]
    Settings(#[from] crate::config::ConfigError),
    /// The outbox refused (locked by the running service, unknown id, full, …).
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// Runs the command against the outbox in the data directory; the JSON to print on success.
pub async fn run(args: DeadLettersArgs) -> Result<Value, DeadLettersError> {
    let settings = DeliverySettings::from_env()?;
    let path = args.data_dir.join(OUTBOX_FILE_NAME);
    if settings.database.is_none() && !path.exists() {
        return Err(DeadLettersError::NoOutbox { path });
    }
    let outbox = Outbox::connect(&args.data_dir, &settings).await?;
    let output = match args.command {
        DeadLettersCommand::List { after, limit } => {
            let letters = outbox.dead_letters(after, limit).await?;
            let total = outbox.dead_letter_count().await?;
            let next_after = (limit > 0 && letters.len() == limit)
                .then(|| letters.last().map(|letter| letter.id))
                .flatten();
            json!({ "dead_letters": letters, "total": total, "next_after": next_after })
        }
        DeadLettersCommand::Retry { id: Some(id), .. } => {
            outbox.retry_dead_letter(id).await?;
            json!({ "retried": id })
        }
        DeadLettersCommand::Retry { id: None, .. } => {
            let retried = outbox.retry_all_dead_letters().await?;
            json!({ "retried": retried.ids, "left": retried.left })
        }
        DeadLettersCommand::Purge { id } => {
            outbox.purge_dead_letter(id).await?;
            json!({ "purged": id })
        }
    };
    Ok(output)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tempfile::TempDir;

    use super::*;
    use crate::delivery::Enqueued;
    use crate::pushjet::{MessageText, NewMessage};
    use crate::routes::RouteName;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        args: DeadLettersArgs,
    }

    fn args(dir: &TempDir, words: &[&str]) -> DeadLettersArgs {
        let data_dir = dir.path().to_str().unwrap();
        let line = ["dead-letters", "--data-dir", data_dir]
            .into_iter()
            .chain(words.iter().copied());
        TestCli::try_parse_from(line).unwrap().args
    }

    /// Leaves an outbox with dead letters 1..=count in the directory, closed.
    async fn bury(dir: &TempDir, count: u64) {
        let outbox = Outbox::open(dir.path(), &DeliverySettings::default()).unwrap();
        let route = RouteName::parse("alerts").unwrap();
        let messages = (1..=count)
            .map(|n| NewMessage::text(MessageText::new(format!("m{n}")).unwrap()))
            .collect();
        let Ok(Enqueued::Queued(ids)) = outbox.enqueue(&route, messages, None).await else {
            panic!("enqueue failed");
        };
        for id in ids {
            outbox
                .dead_letter_for_test(id, &route, "invalid secret")
                .await
                .unwrap();
        }
    }

    #[test]
    fn retry_takes_an_id_or_all_but_not_both_or_neither() {
        let parse = |words: &[&str]| {
            let line = ["dead-letters"].into_iter().chain(words.iter().copied());
            TestCli::try_parse_from(line).map(|cli| cli.args.command)
        };
        assert!(matches!(
            parse(&["retry", "7"]),
            Ok(DeadLettersCommand::Retry {
                id: Some(7),
                all: false
            })
        ));
        assert!(matches!(
            parse(&["retry", "--all"]),
            Ok(DeadLettersCommand::Retry {
                id: None,
                all: true
            })
        ));
        assert!(parse(&["retry"]).is_err());
        assert!(parse(&["retry", "7", "--all"]).is_err());
        assert!(parse(&["purge"]).is_err());
    }

    #[actix_web::test]
    async fn list_retry_and_purge_work_on_the_database_file() {
        let dir = TempDir::new().unwrap();
        bury(&dir, 3).await;

        let listed = run(args(&dir, &["list", "--limit", "2"])).await.unwrap();
        assert_eq!(listed["total"], 3);
        assert_eq!(listed["next_after"], 2);
        assert_eq!(listed["dead_letters"][0]["reason"], "invalid secret");

        let retried = run(args(&dir, &["retry", "1"])).await.unwrap();
        assert_eq!(retried, json!({ "retried": 1 }));
        let purged = run(args(&dir, &["purge", "2"])).await.unwrap();
        assert_eq!(purged, json!({ "purged": 2 }));
        let all = run(args(&dir, &["retry", "--all"])).await.unwrap();
        assert_eq!(all, json!({ "retried": [3], "left": 0 }));

        let outbox = Outbox::open(dir.path(), &DeliverySettings::default()).unwrap();
        assert_eq!(outbox.pending_count(), 2);
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 0);
    }

    #[actix_web::test]
    async fn it_says_when_the_running_service_holds_the_database() {
        let dir = TempDir::new().unwrap();
        let _service = Outbox::open(dir.path(), &DeliverySettings::default()).unwrap();
        let error = run(args(&dir, &["list"])).await.unwrap_err();
        assert!(
            matches!(error, DeadLettersError::Outbox(OutboxError::Locked { .. })),
            "{error}"
        );
        let text = error.to_string();
        assert!(text.contains("running service"), "{text}");
        assert!(text.contains("/admin/dead-letters"), "{text}");
    }

    #[actix_web::test]
    async fn an_unknown_id_and_a_missing_database_are_clear_errors() {
        let empty = TempDir::new().unwrap();
        let error = run(args(&empty, &["list"])).await.unwrap_err();
        assert!(
            matches!(error, DeadLettersError::NoOutbox { .. }),
            "{error}"
        );
        assert!(!empty.path().join(OUTBOX_FILE_NAME).exists());

        let dir = TempDir::new().unwrap();
        bury(&dir, 1).await;
        let error = run(args(&dir, &["purge", "9"])).await.unwrap_err();
        assert_eq!(error.to_string(), "no dead letter has id 9");
    }
}
