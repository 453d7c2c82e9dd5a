//! `cdf-provisioning`: see `cdf-provisioning --help` and the README.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cdf_provisioning::cli::Cli::parse();
    match cdf_provisioning::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
