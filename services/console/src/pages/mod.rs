//! The console's pages.
//!
//! - [`overview`]: `/`, saga and 2PC side by side.
//! - [`xray`]: `/checkouts/{order_id}`, one checkout of either protocol.
//! - [`scenarios`]: `/scenarios`, each failure scenario as a button.
//! - [`blocking`]: `/blocking`, the rows prepared transactions hold, and who waits.
//! - [`faults`]: `/faults`, every service's fault rules (editable) and resilience.
//! - [`signin`]: `/signin`, the admin token for the actions when one is set.

pub mod blocking;
pub mod faults;
pub mod overview;
pub mod scenarios;
pub mod signin;
pub mod xray;
