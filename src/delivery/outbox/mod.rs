//! The outbox's shared vocabulary: what every backend stores and answers with.

pub(super) mod records;

pub use records::{DeadLetter, Enqueued, OutboxError, RetriedDeadLetters};
