mod charges;
mod helpers;
mod idempotency;
