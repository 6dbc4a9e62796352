//! The `imagegate` command: one file per subcommand. Errors become a message on
//! stderr and exit status 2; decisions become exit status 0 or 1.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod audit;
mod certs;
mod check;
mod policy;
mod scan;
mod serve;
mod style;

/// Every image allowed, every test passed.
pub const EXIT_OK: u8 = 0;
/// Some image refused, or some policy test failed.
pub const EXIT_DENIED: u8 = 1;
/// Bad usage, or a policy file that cannot be read or loaded.
pub const EXIT_USAGE: u8 = 2;
/// Standard output was closed before everything was written (`imagegate
/// scan . | head`): the status a shell shows for a command SIGPIPE ended
/// (128 + 13), never 0, so a cut-off report does not pass for a clean one
/// under `set -o pipefail`.
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// One image policy, enforced at every door a container image comes through.
#[derive(Parser)]
#[command(name = "imagegate", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decide image references against a policy.
    Check(check::Args),
    /// Find the images Dockerfiles, Compose files and Kubernetes manifests name, and decide them.
    Scan(scan::Args),
    /// Validate and test policy files.
    #[command(subcommand)]
    Policy(policy::Command),
    /// Serve the registry gateway and the Kubernetes admission doors.
    Serve(serve::Args),
    /// Generate a CA and a serving certificate for the webhook; print the caBundle.
    Certs(certs::Args),
    /// Manage organisations, users, memberships and access tokens in the store.
    Admin(admin::Args),
    /// Print and filter the audit log: every decision at every door.
    Audit(audit::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Audit(args) => audit::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`| head`): nothing to say, and nobody to say it to.
        Err(err) if is_broken_pipe(&err) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(err) => {
            style::error(&format!("{err:#}"));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Whether writing failed because the other end of a pipe was closed.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == BrokenPipe)
            // serde_json keeps the io::Error out of the source chain.
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(BrokenPipe)
    })
}
