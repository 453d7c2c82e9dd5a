//! The service's binary, started by the tests that need a real process (to signal or kill it).
#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command, Output};

/// Starts `cdf-provisioning <args>` with `env` on top of the test's environment; the caller
/// waits for it or kills it.
pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cdf-provisioning"))
        .args(args)
        .envs(env.iter().copied())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start cdf-provisioning {}: {e}", args.join(" ")))
}

/// Runs `cdf-provisioning <args>` with `env` on top of the test's environment to its end, its
/// output captured.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cdf-provisioning"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cdf-provisioning {}: {e}", args.join(" ")))
}
