//! API tests: the service in-process on port 0, a fresh database each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod orders;
mod recovery;
mod start_up;
