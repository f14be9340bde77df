//! `gateway --print-config-keys`, which the stack script asks for the variables to pass through.

use std::process::Command;

#[test]
fn print_config_keys_lists_the_variables_read_without_reading_them() {
    // No variable at all: the gateway could not start (MongoDB is required), yet it answers.
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--print-config-keys")
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), gateway::Config::keys());
    assert!(stdout.lines().any(|key| key == "MONGODB_URI"), "{stdout}");
}
