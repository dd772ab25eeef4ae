//! Start-up fails with one clear line for a broken environment.
shared::start_up_tests!("inventory-service");
