//! Start-up fails with one clear line for a broken environment.
testing::start_up_tests!("email-service");
