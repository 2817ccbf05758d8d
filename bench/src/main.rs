//! `strait-bench`: Strait's benchmark harness. Runs Strait, NGINX and HAProxy (and any other
//! proxy given on the command line) behind a built-in origin under wrk, h2load and iperf3 on
//! loopback, pinned with taskset, and writes tables and charts (see bench/README.md).
//!
//! Owns: the entry point and exit codes (0 ok, 1 failed, 2 bad usage, 130 interrupted).
//! Must not: contain logic beyond dispatching to the modules below.

mod charts;
mod cli;
mod client;
mod cores;
mod gate;
mod idle;
mod install;
mod machine;
mod measure;
mod origin;
mod parse;
mod peers;
mod plan;
mod procfs;
mod procs;
mod progress;
mod publish;
mod report;
mod rows;
mod run;
mod stats;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Run(args) => match cli::settings(&args) {
            Ok((settings, targets)) => run::run(settings, targets, args.plan),
            Err(e) => {
                eprintln!("strait-bench: {e}");
                ExitCode::from(2)
            }
        },
        cli::Command::Origin { h1, h2c, threads } => match origin::serve(h1, h2c, threads) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("strait-bench origin: {e}");
                ExitCode::from(1)
            }
        },
        cli::Command::Report { dir } => done(run::report_cmd(&dir)),
        cli::Command::Publish {
            dir,
            doc,
            charts_dir,
        } => done(run::publish_cmd(&dir, &doc, &charts_dir)),
    }
}

fn done(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strait-bench: {e}");
            ExitCode::from(1)
        }
    }
}
