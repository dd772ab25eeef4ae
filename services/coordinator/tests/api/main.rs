//! API tests of the coordinator binary on its own (the protocol is tested end to end in `tests/`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod recovery;
mod start_up;
