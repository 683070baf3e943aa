//! The HTTP layer: thin handlers that turn requests into domain calls and results into answers.

pub mod admin;
pub mod health;
