//! staleconn: reads a packet capture and says, flow by flow, why requests on pooled HTTP
//! keep-alive connections died. This is the wiring: `Pipeline` (pipeline.rs) runs decode ->
//! flow -> detect (and advice) for a file and a live device alike, reading.rs and live.rs
//! feed it, and `run` puts capture in front of it and a report (or, live, event lines and
//! kept pcaps: evidence.rs) behind it.

pub mod advice;
mod analysis;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod detect;
pub mod evidence;
mod flagged;
pub mod flow;
pub mod generate;
pub mod identify;
pub mod live;
pub mod metrics;
mod pipeline;
mod prefetch;
pub mod privileges;
pub mod progress;
mod reading;
pub mod report;
pub mod target;
pub mod time;

use std::io::Write;

use anyhow::Result;

use cli::{Config, Input};

pub use analysis::{Analysis, FlowReport, PacketCounts, Settings, TimelineEntry};
pub use flagged::{FlaggedOutput, write_flagged};
pub use pipeline::{FlowObserver, FlowSink, Pipeline};
pub use reading::{analyze_file, analyze_files, analyze_files_into};

/// What the program's exit code is made from.
pub struct Outcome {
    pub flagged: usize,
}

/// Runs what the configuration asks: analyses a file or a live device and writes the
/// report to `out` (warnings to `err`), or lists the interfaces.
pub fn run(config: &Config, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome> {
    if let (Input::File(paths), report::Output::Json) = (&config.input, config.output) {
        // Streamed: each flow is written as it is judged, the rest after the last.
        let mut stream = report::JsonStream::new(std::io::BufWriter::with_capacity(1 << 16, out));
        let analysis = analyze_files_into(paths, &config.settings, Some(&mut stream))?;
        after_analysis(config, &analysis, None, err)?;
        stream.finish(&analysis)?;
        return Ok(Outcome {
            flagged: analysis.flagged(),
        });
    }
    let (analysis, flagged_file, last_line) = match &config.input {
        Input::File(paths) => (analyze_files(paths, &config.settings)?, None, None),
        Input::Live(live_config) => {
            let captured = live::capture(config, live_config, out, err)?;
            (captured.analysis, captured.flagged_file, captured.last_line)
        }
        Input::ListInterfaces => {
            for line in capture::list_devices()? {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            return Ok(Outcome { flagged: 0 });
        }
    };
    after_analysis(config, &analysis, flagged_file, err)?;
    let live = matches!(config.input, Input::Live(_));
    // Live JSON ends with a summary line: its flows were event lines as they came.
    let rendered = last_line.unwrap_or_else(|| config.output.renderer(live).render(&analysis));
    out.write_all(rendered.as_bytes())?;
    out.flush()?;
    Ok(Outcome {
        flagged: analysis.flagged(),
    })
}

/// What follows every analysis before its report: the warnings, the flagged flows' packets
/// (`--write-flagged`) and the plot.
fn after_analysis(
    config: &Config,
    analysis: &Analysis,
    flagged_file: Option<capture::Savefile>,
    err: &mut dyn Write,
) -> Result<()> {
    for warning in &analysis.warnings {
        writeln!(err, "staleconn: warning: {warning}")?;
    }
    if let Some(out_path) = &config.write_flagged {
        // A second pass over the file read, or over the -w file of a live capture.
        let capture_paths = match &config.input {
            Input::File(paths) => paths.clone(),
            Input::Live(live) => live.write.iter().map(|p| p.display().to_string()).collect(),
            Input::ListInterfaces => Vec::new(),
        };
        let target = match flagged_file {
            Some(opened) => FlaggedOutput::Opened(opened),
            None => FlaggedOutput::Path(out_path),
        };
        let written = write_flagged(&capture_paths, analysis, target)?;
        writeln!(
            err,
            "staleconn: wrote {written} packets of {} flagged flows to {}",
            analysis.flagged(),
            out_path.display()
        )?;
    }
    if let Some(path) = &config.plot {
        report::plot::write_svg(path, analysis)?;
    }
    Ok(())
}
