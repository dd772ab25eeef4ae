//! The console's pages.
//!
//! - [`overview`]: `/`, saga and 2PC side by side.
//! - [`xray`]: `/checkouts/{order_id}`, one checkout of either protocol.

pub mod overview;
pub mod xray;
