//! The `tinyq` binary: clap flags → facade calls, progress bars, tables, JSON. No logic of its own.

mod args;
mod commands;
mod convert;
mod output;
mod quantize;
mod render;
mod train;
mod verify;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Behave like other command-line tools when the reader of stdout goes away
    // (`tinyq … --json | head`): end quietly instead of failing on the write.
    #[cfg(unix)]
    // SAFETY: restores the default SIGPIPE disposition before any thread or I/O exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = args::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes joined by `: `, leaving out causes the message already quotes.
fn chain(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg
}
