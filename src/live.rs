//! The live loop: a device feeds the same pipeline as a file. Packet time drives every
//! verdict; the wall clock only ticks, so that closed flows are judged on a quiet interface.
//! Flagged flows are announced as they happen (with `--format json`, as event lines with a
//! periodic summary: see `report::EventLines`), their packets kept from a bounded ring
//! (`--keep-flagged`, evidence.rs); Ctrl-C, SIGTERM, `-c` and `--duration` end the capture
//! with the report (JSON: a final summary line) and the kernel's counts. Nothing kept here
//! grows with the length of the run.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::advice::MeasuredTimers;
use crate::capture::{Batch, KernelStats, Savefile, Source, Take};
use crate::cli::{Config, LiveConfig};
use crate::evidence::{self, KeptFiles, OpenFlow, RecentPackets};
use crate::metrics::{Metrics, MetricsListener, PipelineCounts};
use crate::report::{EventLines, Output};
use crate::time::{Nanos, Timestamp, secs};
use crate::{Analysis, Pipeline, privileges};

/// How long a quiet interface is waited on before the clock ticks.
const TICK: Duration = Duration::from_millis(200);
/// Packets read between two ticks at most, so a busy interface still ticks.
const BATCH: usize = 4096;
/// How often the status line and the `-w` file are refreshed.
const REFRESH: Duration = Duration::from_secs(1);

/// What a live capture ends with.
pub struct Captured {
    pub analysis: Analysis,
    /// The `--write-flagged` file, opened before root was dropped.
    pub flagged_file: Option<Savefile>,
    /// `--format json`: the final event line, written instead of a report.
    pub last_line: Option<String>,
}

/// Captures until told to stop; flagged flows are written to `out` as they happen.
pub fn capture(
    config: &Config,
    live: &LiveConfig,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Captured> {
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
    let mut kept_files = match &live.keep_flagged {
        Some(keep) => {
            // Only a directory made here is handed over: never chown one that was there
            // (`--keep-flagged /tmp`).
            let made = !keep.dir.exists();
            let files = KeptFiles::open(&keep.dir, keep.max_bytes, keep.max_files)?;
            if made {
                privileges::hand_over(&keep.dir, live.user.as_deref())?;
            }
            Some(files)
        }
        None => None,
    };
    let user = privileges::drop_root(live.user.as_deref())?;
    if let Some(keep) = &live.keep_flagged
        && !evidence::writable(&keep.dir)
    {
        anyhow::bail!(
            "--keep-flagged {}: {} cannot write in it; name a directory it can (or a new one, which staleconn makes and hands over), or keep root with -Z root",
            keep.dir.display(),
            user.as_deref().unwrap_or("this user")
        );
    }
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
    let mut events =
        (config.output == Output::Json).then(|| EventLines::new(node_name(), wall_clock()));
    let status_line = std::io::stderr().is_terminal();
    let mut pipeline = Pipeline::new(&config.settings, source.link());
    if let Some((metrics, _)) = &metrics {
        pipeline.observe_with(&**metrics);
    }
    let mut recent = RecentPackets::new(
        source.link(),
        config.settings.targets.clone(),
        kept_files.is_some(),
        evidence::DEFAULT_RING_BYTES,
        config.settings.max_flows,
    );
    let started = Instant::now();
    let mut last_refresh = Instant::now();
    let mut last_summary = Instant::now();
    let mut warnings = Vec::new();
    loop {
        source.wait(TICK);
        let count = config.settings.count;
        let mut flagged = Vec::new();
        let batch = source.read_batch(BATCH, |packet| {
            recent.packet(packet);
            flagged.extend(pipeline.packet(packet, true));
            match count {
                Some(c) if pipeline.packets_read() >= c => Take::Stop,
                _ => Take::Next,
            }
        });
        if !flagged.is_empty() {
            clear_status(err, status_line);
            for report in &flagged {
                let kept = kept_files.as_mut().and_then(|k| k.keep(&recent, report));
                match &events {
                    Some(events) => {
                        let line =
                            events.flagged(report, Timestamp(0), kept.as_ref(), wall_clock());
                        out.write_all(line.as_bytes())?;
                    }
                    None => {
                        out.write_all(renderer.render_flagged(report).as_bytes())?;
                        if let Some(kept) = &kept {
                            writeln!(
                                err,
                                "staleconn: kept flow {}'s {} packets in {}",
                                report.id,
                                kept.packets,
                                kept.path.display()
                            )?;
                        }
                    }
                }
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
        if let Some(events) = events.as_mut()
            && last_summary.elapsed() >= live.summary_every
        {
            last_summary = Instant::now();
            let now = wall_clock();
            let status = Status::now(
                &pipeline,
                &recent,
                kept_files.as_ref(),
                source.kernel_stats(),
                started,
                now,
            );
            out.write_all(events.summary(&status, now).as_bytes())?;
            out.flush()?;
        }
        if last_refresh.elapsed() >= REFRESH {
            last_refresh = Instant::now();
            recent.tick(wall_clock());
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
    let now = wall_clock();
    let status = events.is_some().then(|| {
        Status::now(
            &pipeline,
            &recent,
            kept_files.as_ref(),
            kernel,
            started,
            now,
        )
    });
    if kept_files.as_ref().is_some_and(|k| k.skipped > 0) {
        warnings.push(format!(
            "{} flagged flows' packets were not kept (--keep-flagged: no packets left in the ring, bigger than --keep-flagged-size, or the disk refused)",
            kept_files.as_ref().map_or(0, |k| k.skipped)
        ));
    }
    let mut analysis = pipeline.finish(source.name().to_string(), warnings)?;
    analysis.kernel = kernel;
    let last_line = events.zip(status).map(|(events, mut status)| {
        // Every flow still open was judged at the end.
        status.flows_tracked = 0;
        status.flows_judged = analysis.total_flows();
        status.flagged = analysis.flagged();
        status.verdicts = analysis
            .verdicts
            .iter()
            .map(|(v, n)| (v.name(), *n))
            .collect();
        events.last(&status, &analysis, now)
    });
    Ok(Captured {
        analysis,
        flagged_file,
        last_line,
    })
}

/// A live capture's counters at one moment, for the event lines' summaries (and a metrics
/// endpoint): each is a count or a small list, whatever the length of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub uptime_s: f64,
    pub packets_read: u64,
    pub flows_tracked: usize,
    pub flows_judged: usize,
    pub flagged: usize,
    pub verdicts: BTreeMap<&'static str, usize>,
    /// Flows handed on early because the flow table was full.
    pub evicted: u64,
    pub kernel_received: u64,
    /// Dropped by the kernel and by the interface.
    pub kernel_dropped: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_pcaps: Option<KeptStatus>,
    /// The warning before a request dies: per server with a measured timer, the pooled
    /// connections open now and idle close to it.
    pub near_timer: Vec<NearTimer>,
}

/// `--keep-flagged`: the directory and the ring.
#[derive(Debug, Clone, Serialize)]
pub struct KeptStatus {
    pub files: usize,
    pub bytes: u64,
    /// Flagged flows whose pcap could not be written.
    pub skipped: u64,
    pub ring_flows: usize,
    pub ring_bytes: usize,
    /// Open flows the ring forgot to stay within its bounds.
    pub ring_forgotten: u64,
}

/// One server's measured timer and the pooled connections open now whose idle is close
/// to it: within a tenth of it or one round trip, whichever is more. A keep-alive timer
/// counts the idle since the last payload; a middlebox's, the silence since any packet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NearTimer {
    pub server: SocketAddr,
    /// `keepalive` (the server's measured idle close) or `middlebox` (the shortest silence
    /// a reset or drop ended).
    pub timer: &'static str,
    pub timer_s: f64,
    pub within_s: f64,
    /// Open pooled connections idle within `within_s` of the timer.
    pub idle_near: u64,
}

impl Status {
    fn now(
        pipeline: &Pipeline,
        recent: &RecentPackets,
        kept: Option<&KeptFiles>,
        kernel: Option<KernelStats>,
        started: Instant,
        now: Timestamp,
    ) -> Status {
        let verdicts = pipeline.verdicts();
        Status {
            uptime_s: started.elapsed().as_secs_f64(),
            packets_read: pipeline.packets_read(),
            flows_tracked: pipeline.flows_tracked(),
            flows_judged: verdicts.values().sum(),
            flagged: pipeline.flagged_so_far(),
            verdicts: verdicts.iter().map(|(v, n)| (v.name(), *n)).collect(),
            evicted: pipeline.evicted(),
            kernel_received: kernel.map_or(0, |k| k.received),
            kernel_dropped: kernel.map_or(0, |k| k.dropped + k.if_dropped),
            kept_pcaps: kept.map(|k| KeptStatus {
                files: k.files(),
                bytes: k.total_bytes(),
                skipped: k.skipped,
                ring_flows: recent.flows(),
                ring_bytes: recent.bytes(),
                ring_forgotten: recent.forgotten,
            }),
            near_timer: near_timers(pipeline, recent, now),
        }
    }
}

/// The warning before a request dies: for each server whose keep-alive timer or middlebox
/// bracket is measured, how many pooled connections open at `now` are idle close to it.
/// For a metrics endpoint too: call it with the live loop's pipeline and ring.
pub fn near_timers(pipeline: &Pipeline, recent: &RecentPackets, now: Timestamp) -> Vec<NearTimer> {
    let timers: Vec<MeasuredTimers> = pipeline.measured_timers().collect();
    count_near(&timers, recent.open_pooled(now))
}

/// Counts the open flows idle near each measured timer. Servers with a timer and none near
/// are listed with 0; most near first.
fn count_near(timers: &[MeasuredTimers], open: impl Iterator<Item = OpenFlow>) -> Vec<NearTimer> {
    let mut near: HashMap<(SocketAddr, &'static str), (Nanos, u64)> = HashMap::new();
    for t in timers {
        for (kind, timer) in [("keepalive", t.keepalive), ("middlebox", t.middlebox)] {
            if let Some(timer) = timer {
                near.insert((t.server, kind), (timer, 0));
            }
        }
    }
    for open in open {
        for (kind, idle) in [
            ("keepalive", open.idle_since_payload),
            ("middlebox", open.silence),
        ] {
            if let Some((timer, count)) = near.get_mut(&(open.server, kind))
                && (idle - *timer).abs() <= margin(*timer, open.rtt)
            {
                *count += 1;
            }
        }
    }
    let mut list: Vec<NearTimer> = near
        .into_iter()
        .map(|((server, timer_kind), (timer, idle_near))| NearTimer {
            server,
            timer: timer_kind,
            timer_s: secs(timer),
            within_s: secs(margin(timer, None)),
            idle_near,
        })
        .collect();
    list.sort_by(|a, b| {
        b.idle_near
            .cmp(&a.idle_near)
            .then(a.server.cmp(&b.server))
            .then(a.timer.cmp(b.timer))
    });
    list
}

/// How close to a timer an idle counts as near: a tenth of it, or one round trip if longer.
fn margin(timer: Nanos, rtt: Option<Nanos>) -> Nanos {
    (timer / 10).max(rtt.unwrap_or(0))
}

/// The node an event line names: `NODE_NAME` (Kubernetes' downward API), else the host name.
pub fn node_name() -> String {
    if let Some(name) = std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()) {
        return name;
    }
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer it is given.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    match std::str::from_utf8(&buffer[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "unknown".to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NANOS_PER_SEC;

    const S: Nanos = NANOS_PER_SEC;

    fn open(server: &str, idle_since_payload: Nanos, silence: Nanos, rtt: Nanos) -> OpenFlow {
        OpenFlow {
            server: server.parse().unwrap(),
            idle_since_payload,
            silence,
            rtt: Some(rtt),
        }
    }

    #[test]
    fn pooled_connections_idle_within_a_tenth_or_a_round_trip_of_a_timer_are_counted() {
        let timers = [
            MeasuredTimers {
                server: "198.18.0.1:443".parse().unwrap(),
                keepalive: Some(60 * S),
                middlebox: None,
            },
            MeasuredTimers {
                server: "198.18.0.2:80".parse().unwrap(),
                keepalive: None,
                middlebox: Some(350 * S),
            },
        ];
        let flows = [
            open("198.18.0.1:443", 55 * S, 55 * S, S / 1000), // within 6 s of 60 s
            open("198.18.0.1:443", 53 * S, 53 * S, S / 1000), // 7 s short: not near
            open("198.18.0.1:443", 52 * S, 52 * S, 9 * S),    // one round trip (9 s) away
            open("198.18.0.1:443", 10 * S, 10 * S, S / 1000),
            open("198.18.0.2:80", 5 * S, 320 * S, S / 1000), // silence counts for a NAT
            open("198.18.0.3:80", 60 * S, 60 * S, S / 1000), // no timer measured
        ];
        let near = count_near(&timers, flows.into_iter());
        assert_eq!(near.len(), 2, "{near:?}");
        assert_eq!(near[0].server, "198.18.0.1:443".parse().unwrap());
        assert_eq!((near[0].timer, near[0].idle_near), ("keepalive", 2));
        assert_eq!(near[0].within_s, 6.0);
        assert_eq!((near[1].timer, near[1].idle_near), ("middlebox", 1));
    }
}
