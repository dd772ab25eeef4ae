//! The launcher's command line: help is printed, never the platform started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn txlab(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_txlab")).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn help_is_printed_for_every_way_of_asking() {
    for args in [&["--help"][..], &["help"], &["up", "--help"], &["up", "-h"]] {
        let (code, text) = txlab(args);
        assert_eq!(code, 0, "{args:?}: {text}");
        assert!(text.contains("usage: txlab up"), "{args:?}: {text}");
        assert!(!text.contains("starting PostgreSQL"), "{args:?}: {text}");
    }
    let (code, text) = txlab(&["chaos", "--help"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("--events") && text.contains("--seed"), "{text}");
}

#[test]
fn anything_else_is_a_usage_error() {
    for args in [&[][..], &["down"], &["up", "--keep"], &["chaos", "--events", "many"]] {
        let (code, text) = txlab(args);
        assert_ne!(code, 0, "{args:?}: {text}");
        assert!(!text.contains("starting PostgreSQL"), "{args:?}: {text}");
    }
}
