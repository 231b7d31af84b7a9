//! The `staleconn` binary: parse arguments, run, map the outcome to an exit code
//! (0 nothing flagged, 1 flagged flows, 2 error; a closed pipe is not an error).

use std::io::{self, BufWriter};
use std::process::ExitCode;

use clap::Parser;
use staleconn::Outcome;
use staleconn::cli::{Args, Config};

fn main() -> ExitCode {
    let args = Args::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match args.generate {
        // Made from the argument definitions alone: nothing to configure or analyse.
        Some(what) => staleconn::generate::write(what, &mut out).map(|()| Outcome { flagged: 0 }),
        None => Config::from_args(args)
            .and_then(|config| staleconn::run(&config, &mut out, &mut io::stderr())),
    };
    match result {
        Ok(outcome) if outcome.flagged > 0 => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("staleconn: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
