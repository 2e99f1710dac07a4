//! `executor`: the front door for people — dev server, run, demo. Parses the command line
//! and runs the command ([`executor_cli::commands`]); exits with the command's code, 2 on a
//! usage or runtime error.

use clap::Parser;
use executor_cli::commands::{Cli, refusal};

#[tokio::main]
async fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match refusal(&e) {
            Some(line) => {
                eprintln!("error: {line}");
                std::process::exit(2);
            }
            None => e.exit(),
        },
    };
    let code = match cli.run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
