//! `outpostctl`: the control plane's API from a shell. See `control_plane::ctl`.

use std::process::ExitCode;

use clap::Parser;
use control_plane::ctl::{self, Cli, CtlError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("outpostctl: start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ctl::run(cli)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("outpostctl: {e}");
            // 2 for a request that could not be made (like clap's usage errors), 1 otherwise.
            ExitCode::from(if matches!(e, CtlError::Usage(_)) { 2 } else { 1 })
        }
    }
}
