//! The live loop: a device feeds the same pipeline as a file. Packet time drives every
//! verdict; the wall clock only ticks, so that closed flows are judged on a quiet interface.
//! Flagged flows are announced as they happen; Ctrl-C, SIGTERM, `-c` and `--duration` end
//! the capture with the full report and the kernel's counts.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::capture::{Batch, Savefile, Source, Take};
use crate::cli::{Config, LiveConfig};
use crate::metrics::{Metrics, MetricsListener, PipelineCounts};
use crate::time::Timestamp;
use crate::{Analysis, Pipeline, privileges};

/// How long a quiet interface is waited on before the clock ticks.
const TICK: Duration = Duration::from_millis(200);
/// Packets read between two ticks at most, so a busy interface still ticks.
const BATCH: usize = 4096;
/// How often the status line and the `-w` file are refreshed.
const REFRESH: Duration = Duration::from_secs(1);

/// Captures until told to stop; flagged flows are written to `out` as they happen.
/// Also returns the `--write-flagged` file, opened before root was dropped.
pub fn capture(
    config: &Config,
    live: &LiveConfig,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(Analysis, Option<Savefile>)> {
    let mut source = Source::open_live(&live.options, config.settings.bpf.as_deref())?;
    if let Some(path) = &live.write {
        source.write_to(path)?;
    }
    // Every file is opened while still privileged, as tcpdump does.
    let flagged_file = config
        .write_flagged
        .as_deref()
        .map(|p| source.savefile(p))
        .transpose()?;
    // Bound before root is dropped, as the files are; served, from a thread of its own,
    // after (the process is single-threaded until then) and until the capture ends.
    let listener = live
        .metrics
        .as_ref()
        .map(|m| MetricsListener::bind(m.listen))
        .transpose()?;
    let user = privileges::drop_root(live.user.as_deref())?;
    let metrics = match (listener, &live.metrics) {
        (Some(listener), Some(m)) => {
            let metrics = Arc::new(Metrics::new(m.targets.clone()));
            let server = listener.serve(Arc::clone(&metrics))?;
            Some((metrics, server))
        }
        _ => None,
    };
    let stop = stop_on_signals()?;
    let promisc = if live.options.promiscuous {
        "promiscuous"
    } else {
        "not promiscuous"
    };
    let running_as = user
        .map(|u| format!(", running as {u}"))
        .unwrap_or_default();
    writeln!(
        err,
        "staleconn: listening on {}, link-type {}, snapshot length {} bytes, {promisc}{running_as}",
        source.name(),
        source.link().name(),
        live.options.snaplen
    )?;
    if let Some((_, server)) = &metrics {
        writeln!(
            err,
            "staleconn: serving metrics on http://{}/metrics",
            server.address()
        )?;
    }

    let renderer = config.output.renderer(true);
    let status_line = std::io::stderr().is_terminal();
    let mut pipeline = Pipeline::new(&config.settings, source.link());
    if let Some((metrics, _)) = &metrics {
        pipeline.observe_with(&**metrics);
    }
    let started = Instant::now();
    let mut last_refresh = Instant::now();
    let mut warnings = Vec::new();
    loop {
        source.wait(TICK);
        let count = config.settings.count;
        let mut flagged = Vec::new();
        let batch = source.read_batch(BATCH, |packet| {
            flagged.extend(pipeline.packet(packet, true));
            match count {
                Some(c) if pipeline.packets_read() >= c => Take::Stop,
                _ => Take::Next,
            }
        });
        if !flagged.is_empty() {
            clear_status(err, status_line);
            for report in &flagged {
                out.write_all(renderer.render_flagged(report).as_bytes())?;
            }
            out.flush()?;
        }
        match batch {
            Ok(Batch::Stopped) => break,
            Ok(Batch::Full | Batch::Idle | Batch::End) => {}
            Err(damage) => {
                warnings.push(format!(
                    "{}: capture failed: {}",
                    source.name(),
                    damage.message
                ));
                break;
            }
        }
        pipeline.tick(wall_clock());
        if stop.load(Ordering::SeqCst) || live.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if last_refresh.elapsed() >= REFRESH {
            last_refresh = Instant::now();
            source.flush_written()?;
            if let Some((metrics, _)) = &metrics {
                update_metrics(metrics, &pipeline, &mut source);
            }
            if status_line {
                let dropped = source
                    .kernel_stats()
                    .map_or(0, |k| k.dropped + k.if_dropped);
                let _ = write!(
                    err,
                    "\r\x1b[K{} packets, {} flows tracked, {} flagged, {dropped} dropped by the kernel",
                    pipeline.packets_read(),
                    pipeline.flows_tracked(),
                    pipeline.flagged_so_far()
                );
                let _ = err.flush();
            }
        }
    }
    clear_status(err, status_line);
    source.flush_written()?;
    let kernel = source.kernel_stats();
    if let Some(k) = kernel.filter(|k| k.dropped + k.if_dropped > 0) {
        warnings.push(format!(
            "the kernel dropped {} packets ({} by the interface); a missing packet can hide a pattern",
            k.dropped + k.if_dropped,
            k.if_dropped
        ));
    }
    if let Some((metrics, _)) = &metrics {
        update_metrics(metrics, &pipeline, &mut source);
    }
    let mut analysis = pipeline.finish(source.name().to_string(), warnings)?;
    analysis.kernel = kernel;
    Ok((analysis, flagged_file))
}

/// The metrics the pipeline does not count itself: its totals, the kernel's drops and the
/// per-server timers so far. Once a second: the timers are worked out from every server.
fn update_metrics(metrics: &Metrics, pipeline: &Pipeline, source: &mut Source) {
    metrics.counts(PipelineCounts {
        packets: pipeline.packets_read(),
        kernel_dropped: source
            .kernel_stats()
            .map_or(0, |k| k.dropped + k.if_dropped),
        flows_tracked: pipeline.flows_tracked(),
        evictions: pipeline.evicted(),
    });
    metrics.servers(&pipeline.servers_so_far(&|server| metrics.wants_server(server)));
}

/// Ctrl-C, SIGTERM and SIGHUP set the returned flag; the loop sees it within one tick.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C/SIGTERM handler")?;
    Ok(stop)
}

fn clear_status(err: &mut dyn Write, status_line: bool) {
    if status_line {
        let _ = write!(err, "\r\x1b[K");
    }
}

/// Now, on the clock packet timestamps come from.
fn wall_clock() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX))
}
