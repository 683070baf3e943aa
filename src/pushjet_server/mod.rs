//! The embedded Pushjet-compatible API server (see `shared/pushjet-api.md`): its storage.

mod fields;
mod store;

pub use fields::{Icon, Link, NAME_MAX_CHARS, ServiceName, TEXT_COLUMN_MAX_BYTES, TooLong};
pub use store::{DATABASE_FILE_NAME, NewMessage, SendOutcome, Store, StoreError};
