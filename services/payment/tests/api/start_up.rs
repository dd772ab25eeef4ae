use shared::testing::assert_start_up_fails_naming;

const BINARY: &str = env!("CARGO_BIN_EXE_payment-service");

#[test]
fn a_missing_database_url_is_named() {
    assert_start_up_fails_naming(BINARY, &[("BIND_ADDR", "127.0.0.1:0")], "DATABASE_URL");
}

#[test]
fn an_unreachable_database_url_is_named() {
    let env = [
        ("BIND_ADDR", "127.0.0.1:0"),
        ("DATABASE_URL", "postgres://txlab:secret@127.0.0.1:1/nowhere"),
    ];
    assert_start_up_fails_naming(BINARY, &env, "DATABASE_URL");
}

#[test]
fn a_database_url_that_is_not_postgres_is_named() {
    let env = [("BIND_ADDR", "127.0.0.1:0"), ("DATABASE_URL", "mysql://localhost/shop")];
    assert_start_up_fails_naming(BINARY, &env, "DATABASE_URL");
}

#[test]
fn an_invalid_setting_is_named() {
    let env = [
        ("DATABASE_URL", "postgres://localhost/x"),
        ("FAULT_INJECTION", "sometimes"),
    ];
    assert_start_up_fails_naming(BINARY, &env, "FAULT_INJECTION");
}
