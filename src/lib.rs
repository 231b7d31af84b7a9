//! staleconn: reads a packet capture and says, flow by flow, why requests on pooled HTTP
//! keep-alive connections died. The stages are wired here and only here: `Pipeline` runs
//! decode -> flow -> detect (and advice) for a file and a live device alike, and `run`
//! puts capture in front of it and report behind it.

pub mod advice;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod detect;
pub mod flow;
pub mod generate;
pub mod live;
mod prefetch;
pub mod privileges;
pub mod progress;
pub mod report;
pub mod target;
pub mod time;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;

use anyhow::Result;

use advice::{Advisor, ServerAdvice};

use capture::{Batch, Files, KernelStats, Packet, Take};
use cli::{Config, Input};
use decode::{LinkType, Segment, Skip};
use detect::{Finding, Thresholds, Verdict};
use flow::{Flow, FlowKey, FlowTable, Stamp};
use target::Target;
use time::{Nanos, Timestamp};

/// One flow as the report shows it: who, when, how much, and the finding.
#[derive(Debug, Clone)]
pub struct FlowReport {
    pub id: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub first_seen: Timestamp,
    /// The flow's last packet when it was judged.
    pub last_seen: Timestamp,
    /// Its first and last frame numbers, and how many packets it had.
    pub first_frame: u64,
    pub last_frame: u64,
    pub packets: u64,
    pub requests: u32,
    pub responses: u32,
    pub longest_idle: Nanos,
    pub finding: Finding,
    /// Flagged flows: their last packets, the failure among them.
    pub timeline: Vec<TimelineEntry>,
}

/// One packet of a flagged flow's timeline, sequence numbers relative as Wireshark shows them.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    pub frame: u64,
    pub ts: Timestamp,
    pub from_client: bool,
    pub flags: decode::TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
    pub carried: flow::Carried,
    /// A plaintext HTTP request or status line this packet carried.
    pub http_line: Option<String>,
}

impl FlowReport {
    fn new(flow: &Flow, finding: Finding) -> FlowReport {
        FlowReport {
            id: flow.id,
            client: flow.client,
            server: flow.server,
            first_seen: flow.first.ts,
            last_seen: flow.last.ts,
            first_frame: flow.first.frame,
            last_frame: flow.last.frame,
            packets: flow.from_client.packets + flow.from_server.packets,
            requests: flow.requests,
            responses: flow.responses,
            longest_idle: flow.longest_idle,
            timeline: if finding.verdict.flagged() {
                timeline(flow)
            } else {
                Vec::new()
            },
            finding,
        }
    }
}

fn timeline(flow: &Flow) -> Vec<TimelineEntry> {
    let relative =
        |value: u32, base: Option<flow::seq::Seq>| value.wrapping_sub(base.map_or(0, |b| b.0));
    flow.recent
        .iter()
        .map(|p| {
            let (own, other) = if p.from_client {
                (flow.from_client.base, flow.from_server.base)
            } else {
                (flow.from_server.base, flow.from_client.base)
            };
            TimelineEntry {
                frame: p.frame,
                ts: p.ts,
                from_client: p.from_client,
                flags: p.flags,
                seq: relative(p.seq, own),
                ack: if p.flags.ack() {
                    relative(p.ack, other)
                } else {
                    0
                },
                len: p.len,
                carried: p.carried,
                http_line: flow.http_lines.as_ref().and_then(|lines| {
                    [&lines.request, &lines.status]
                        .into_iter()
                        .flatten()
                        .find(|(frame, _)| *frame == p.frame)
                        .map(|(_, line)| line.clone())
                }),
            }
        })
        .collect()
}

/// Every packet read is used in a flow or counted under the reason it was skipped.
#[derive(Debug, Clone, Default)]
pub struct PacketCounts {
    pub read: u64,
    pub used: u64,
    pub skipped: BTreeMap<Skip, u64>,
    /// Packets stamped earlier than a packet read before them: two interfaces or unsorted
    /// files merged. They are analysed all the same; each flow's own order is what counts.
    pub backwards: u64,
}

/// What one pass over a capture found.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub source: String,
    pub link_type: &'static str,
    pub first_packet: Option<Timestamp>,
    pub last_packet: Option<Timestamp>,
    /// The flows kept for the report, in order of first appearance: every flow, or only
    /// the flagged ones (see `Settings::keep_benign`).
    pub flows: Vec<FlowReport>,
    /// Every flow, kept or not, counted by verdict.
    pub verdicts: BTreeMap<Verdict, usize>,
    /// Per server: measured timeouts, likely culprits, what to change.
    pub servers: Vec<ServerAdvice>,
    pub packets: PacketCounts,
    /// Flows handed on early because the flow table was full.
    pub evicted: u64,
    /// Live capture only: what the kernel received and dropped.
    pub kernel: Option<KernelStats>,
    /// Problems that did not stop the analysis (a capture cut off mid-record, say).
    pub warnings: Vec<String>,
}

impl Analysis {
    pub fn total_flows(&self) -> usize {
        self.verdicts.values().sum()
    }

    pub fn flagged(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|(v, _)| v.flagged())
            .map(|(_, n)| n)
            .sum()
    }
}

/// What the analysis needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A BPF filter expression, compiled by libpcap.
    pub bpf: Option<String>,
    /// Server sides to analyse; empty for all.
    pub targets: Vec<Target>,
    pub thresholds: Thresholds,
    /// Keep the report of every benign flow too. Without it memory grows with the
    /// concurrent and the flagged flows only, not with the length of the capture.
    pub keep_benign: bool,
    /// Stop after this many packets (`-c`).
    pub count: Option<u64>,
    /// The most flows tracked at once; the one idle longest is evicted to make room.
    pub max_flows: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bpf: None,
            targets: Vec::new(),
            thresholds: Thresholds::default(),
            keep_benign: true,
            count: None,
            max_flows: flow::DEFAULT_MAX_FLOWS,
        }
    }
}

/// Receives each flow as it is judged: an output that lists every flow writes it at once,
/// so nothing is kept per flow to the end (as ripgrep's printers receive matches).
pub trait FlowSink {
    /// `start`: the capture's first packet so far, for times relative to it.
    fn flow(&mut self, report: &FlowReport, start: Timestamp) -> std::io::Result<()>;
}

/// The stages from decode on, fed one packet at a time: the same for a file and a live
/// device, so both reach the same verdicts from the same packets. In parts, so that a big
/// file can run the flow table on a second thread (`analyze_files`).
pub struct Pipeline<'s> {
    settings: &'s Settings,
    decoder: Decoder<'s>,
    table: FlowTable,
    judged: Judged<'s>,
}

/// Counts every packet and decodes it into the segment the tracker needs, or counts why
/// not.
struct Decoder<'s> {
    link: LinkType,
    targets: &'s [Target],
    packets: PacketCounts,
    first_packet: Option<Timestamp>,
    last_packet: Option<Timestamp>,
}

/// What became of the flows handed on by the flow table.
#[derive(Default)]
struct Judged<'s> {
    /// Reports kept for the output (see `Settings::keep_benign`); with a sink, the flagged
    /// ones only (for `--write-flagged`).
    flows: Vec<FlowReport>,
    /// Where every judged flow goes at once, if the output streams.
    sink: Option<&'s mut dyn FlowSink>,
    /// The sink's first failure (a closed pipe): reading stops, `finish` reports it.
    sink_error: Option<std::io::Error>,
    verdicts: BTreeMap<Verdict, usize>,
    /// Live: flagged flows announced and not yet handed on, so each is announced once.
    announced: HashSet<u64>,
    /// Per-server measurements, from every flow.
    advisor: Advisor,
}

impl Judged<'_> {
    /// Judges a finished flow, counts its verdict, and keeps its report if it will be shown,
    /// or hands it to the sink. `start`: the capture's first packet so far.
    fn record(&mut self, settings: &Settings, flow: Box<Flow>, start: Option<Timestamp>) {
        self.announced.remove(&flow.id);
        let finding = detect::judge(&flow, &settings.thresholds);
        self.advisor.observe(&flow, &finding);
        *self.verdicts.entry(finding.verdict).or_default() += 1;
        let flagged = finding.verdict.flagged();
        match self.sink.as_deref_mut() {
            Some(sink) => {
                let report = FlowReport::new(&flow, finding);
                if self.sink_error.is_none()
                    && let Err(e) = sink.flow(&report, start.unwrap_or_default())
                {
                    self.sink_error = Some(e);
                }
                if flagged {
                    self.flows.push(report);
                }
            }
            None if settings.keep_benign || flagged => {
                self.flows.push(FlowReport::new(&flow, finding));
            }
            None => {}
        }
    }

    fn flagged(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|(v, _)| v.flagged())
            .map(|(_, n)| n)
            .sum()
    }
}

impl<'s> Pipeline<'s> {
    /// A pipeline whose judged flows all go to `sink` as they are judged; the analysis it
    /// finishes with keeps the flagged ones only.
    pub fn with_sink(
        settings: &'s Settings,
        link: LinkType,
        sink: &'s mut dyn FlowSink,
    ) -> Pipeline<'s> {
        let mut pipeline = Pipeline::new(settings, link);
        pipeline.judged.sink = Some(sink);
        pipeline
    }

    /// The sink failed (its reader went away): nothing more is worth reading.
    pub fn sink_failed(&self) -> bool {
        self.judged.sink_error.is_some()
    }

    pub fn new(settings: &'s Settings, link: LinkType) -> Pipeline<'s> {
        Pipeline {
            decoder: Decoder {
                link,
                targets: &settings.targets,
                packets: PacketCounts::default(),
                first_packet: None,
                last_packet: None,
            },
            settings,
            table: FlowTable::with_capacity_limit(settings.targets.clone(), settings.max_flows),
            judged: Judged::default(),
        }
    }

    /// Feeds one packet. When `announce` is set and this packet closed a flow whose verdict
    /// is flagged, that flow's report is returned: the moment its story is certain.
    pub fn packet(&mut self, packet: &Packet, announce: bool) -> Option<FlowReport> {
        let segment = self.decoder.decode(packet)?;
        let start = self.decoder.first_packet;
        let Pipeline {
            settings,
            table,
            judged,
            ..
        } = self;
        let at = Stamp {
            frame: packet.frame,
            ts: packet.ts,
        };
        let closed = table.observe(&segment, at, &mut |flow| {
            judged.record(settings, flow, start)
        })?;
        if !announce {
            return None;
        }
        let finding = detect::judge(closed, &settings.thresholds);
        (finding.verdict.flagged() && judged.announced.insert(closed.id))
            .then(|| FlowReport::new(closed, finding))
    }

    /// A clock tick from a live capture: closed flows whose grace period is over by `now`
    /// are judged without waiting for the next packet.
    pub fn tick(&mut self, now: Timestamp) {
        let start = self.decoder.first_packet;
        let Pipeline {
            settings,
            table,
            judged,
            ..
        } = self;
        table.release_closed(now, &mut |flow| judged.record(settings, flow, start));
    }

    pub fn flows_tracked(&self) -> usize {
        self.table.len()
    }

    pub fn packets_read(&self) -> u64 {
        self.decoder.packets.read
    }

    /// Flagged so far: judged flows plus those announced and not yet handed on.
    pub fn flagged_so_far(&self) -> usize {
        self.judged.flagged() + self.judged.announced.len()
    }

    /// The capture ended: every flow still open is judged. A sink's failure is the error.
    pub fn finish(self, source: String, mut warnings: Vec<String>) -> Result<Analysis> {
        let Pipeline {
            settings,
            decoder,
            mut table,
            mut judged,
        } = self;
        let start = decoder.first_packet;
        table.finish_all(&mut |flow| judged.record(settings, flow, start));
        if let Some(e) = judged.sink_error {
            return Err(e.into());
        }
        judged.flows.sort_by_key(|f| f.id);
        if let Some(&cut) = decoder.packets.skipped.get(&Skip::Truncated) {
            warnings.push(format!(
                "{cut} packets were cut inside their headers by the snapshot length; capture with a larger -s (e.g. -s 128)"
            ));
        }
        if decoder.packets.backwards > 0 {
            warnings.push(format!(
                "{} packets were stamped earlier than a packet before them (interfaces or files merged unsorted?); each flow was analysed in its own order",
                decoder.packets.backwards
            ));
        }
        let evicted = table.evicted();
        if evicted > 0 {
            warnings.push(format!(
                "{evicted} flows were evicted from the full flow table (--max-flows {}) while still open",
                settings.max_flows
            ));
        }
        Ok(Analysis {
            source,
            link_type: decoder.link.name(),
            first_packet: decoder.first_packet,
            last_packet: decoder.last_packet,
            servers: judged.advisor.finish(),
            flows: judged.flows,
            verdicts: judged.verdicts,
            packets: decoder.packets,
            evicted,
            kernel: None,
            warnings,
        })
    }
}

impl Decoder<'_> {
    /// Counts a packet read, and decodes it: its segment if it is one to track, or `None`
    /// with the reason counted.
    fn decode<'p>(&mut self, packet: &Packet<'p>) -> Option<Segment<'p>> {
        self.packets.read += 1;
        match self.last_packet {
            Some(latest) if packet.ts < latest => {
                self.packets.backwards += 1;
                if self.first_packet.is_some_and(|first| packet.ts < first) {
                    self.first_packet = Some(packet.ts);
                }
            }
            _ => {
                self.first_packet.get_or_insert(packet.ts);
                self.last_packet = Some(packet.ts);
            }
        }
        let segment = match decode::decode(self.link, packet.data) {
            Ok(segment) if flow::is_targeted(self.targets, &segment) => segment,
            Ok(_) => {
                *self.packets.skipped.entry(Skip::NotTarget).or_default() += 1;
                return None;
            }
            Err(skip) => {
                *self.packets.skipped.entry(skip).or_default() += 1;
                return None;
            }
        };
        self.packets.used += 1;
        Some(segment)
    }
}

/// Reads a saved capture in one pass and judges every flow.
pub fn analyze_file(path: &str, settings: &Settings) -> Result<Analysis> {
    analyze_files(&[path.to_string()], settings)
}

/// Reads saved captures in one pass as one capture (several files merged by timestamp)
/// and judges every flow.
pub fn analyze_files(paths: &[String], settings: &Settings) -> Result<Analysis> {
    analyze_files_into(paths, settings, None)
}

/// `analyze_files`, every judged flow handed to `sink` as it is judged (the analysis then
/// keeps the flagged flows only).
pub fn analyze_files_into(
    paths: &[String],
    settings: &Settings,
    sink: Option<&mut dyn FlowSink>,
) -> Result<Analysis> {
    let mut source = Files::open(paths, settings.bpf.as_deref())?;
    let mut pipeline = match sink {
        Some(sink) => Pipeline::with_sink(settings, source.link(), sink),
        None => Pipeline::new(settings, source.link()),
    };
    let mut progress = progress::Progress::for_files(paths);
    let mut warnings = Vec::new();
    let ended = match source.mapped() {
        Some(file) => read_on_two_threads(file, &mut pipeline, &mut progress, settings.count)?,
        None => read_on_this_thread(&mut source, &mut pipeline, &mut progress, settings.count),
    };
    if let Err(damage) = ended {
        warnings.push(format!(
            "{}: capture ends early after frame {} ({}); analysed the frames before it",
            source.name(),
            damage.after_frame,
            damage.message
        ));
    }
    progress.finish();
    warnings.extend(source.take_warnings());
    pipeline.finish(source.name().to_string(), warnings)
}

/// `analyze_files`'s loop over packets libpcap reads, or several files merged.
fn read_on_this_thread(
    source: &mut Files,
    pipeline: &mut Pipeline,
    progress: &mut progress::Progress,
    count: Option<u64>,
) -> Result<(), capture::Damage> {
    loop {
        let batch = source.read_batch(usize::MAX, |packet| {
            progress.frame(packet.data.len());
            pipeline.packet(packet, false);
            match count {
                Some(c) if pipeline.packets_read() >= c => Take::Stop,
                _ if pipeline.sink_failed() => Take::Stop,
                _ => Take::Next,
            }
        })?;
        if batch != Batch::Full {
            return Ok(());
        }
    }
}

/// A decoded segment on its way to the flow table's thread, with its flow's hash.
struct Handed {
    segment: Segment<'static>,
    hash: u64,
    at: Stamp,
}

/// Segments on their way from the reading thread to the flow table's thread, with the
/// mapped windows of the file their payloads lie in; on the way back, empty, with the flows
/// the table handed on meanwhile, to be judged on the reading thread.
#[derive(Default)]
struct Handoff {
    segments: Vec<Handed>,
    /// Keeps the bytes `segments` borrow mapped until the table's thread has dropped them.
    windows: Vec<capture::Mapped>,
    /// Boxed as the table held them: moving a flow out of its box is a 760-byte copy.
    #[allow(clippy::vec_box)]
    finished: Vec<Box<Flow>>,
}

/// Segments a handoff carries: enough that passing one costs little a packet.
const HANDOFF_SEGMENTS: usize = 1024;
const HANDOFFS_IN_FLIGHT: usize = 4;
/// How far ahead in a handoff the table's thread asks for the next segments: the reading
/// thread wrote them on another core.
const HANDED_AHEAD: usize = 4;

/// `analyze_files`'s loop over a file read in place, on two threads. This one reads,
/// counts and decodes the packets, and judges the flows handed on; a second keeps the flow
/// table. Each sees the same segments and flows in the same order as on one thread, so
/// the verdicts are the same; the work is shared about evenly.
fn read_on_two_threads(
    file: &mut capture::Source,
    pipeline: &mut Pipeline,
    progress: &mut progress::Progress,
    count: Option<u64>,
) -> Result<Result<(), capture::Damage>> {
    let Pipeline {
        settings,
        decoder,
        table,
        judged,
    } = pipeline;
    let hasher = table.hasher();
    std::thread::scope(|scope| {
        let (full, full_rx) = std::sync::mpsc::sync_channel::<Handoff>(HANDOFFS_IN_FLIGHT);
        let (empty_tx, empty) = std::sync::mpsc::channel::<Handoff>();
        let worker = std::thread::Builder::new()
            .name("flow table".into())
            .spawn_scoped(scope, move || {
                for mut handoff in full_rx {
                    observe_handed(table, &mut handoff);
                    if empty_tx.send(handoff).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| anyhow::anyhow!("cannot start the flow table's thread ({e})"))?;
        // Judges the flows a returned handoff carries; the handoff is then ready for reuse.
        // Also says whether the sink failed, so reading can stop.
        let mut judge = |mut returned: Handoff, start: Option<Timestamp>| {
            for flow in returned.finished.drain(..) {
                judged.record(settings, flow, start);
            }
            (returned, judged.sink_error.is_some())
        };
        let mut sink_failed = false;
        let mut handoff = Handoff::default();
        let mut spare: Option<Handoff> = None;
        let ended = file.read_mapped(usize::MAX, |packet, mapped| {
            progress.frame(packet.data.len());
            if let Some(segment) = decoder.decode(packet) {
                if !handoff.windows.last().is_some_and(|w| w.same(mapped)) {
                    handoff.windows.push(mapped.clone());
                }
                // SAFETY: the segment borrows nothing but `packet.data`, which lies in
                // `mapped`. The handoff holds a clone of `mapped` for as long as it holds
                // the segment, so those bytes stay mapped until the table's thread has
                // dropped both. Only the lifetime changes; the type is the same.
                let segment: Segment<'static> = unsafe { std::mem::transmute(segment) };
                handoff.segments.push(Handed {
                    hash: hasher.hash(&segment),
                    segment,
                    at: Stamp {
                        frame: packet.frame,
                        ts: packet.ts,
                    },
                });
                if handoff.segments.len() == HANDOFF_SEGMENTS {
                    while let Ok(returned) = empty.try_recv() {
                        let (returned, failed) = judge(returned, decoder.first_packet);
                        spare = Some(returned);
                        sink_failed |= failed;
                    }
                    let next = spare.take().unwrap_or_else(|| Handoff {
                        segments: Vec::with_capacity(HANDOFF_SEGMENTS),
                        ..Handoff::default()
                    });
                    if full.send(std::mem::replace(&mut handoff, next)).is_err() {
                        return Take::Stop; // the table's thread panicked; its join says so
                    }
                }
            }
            match count {
                Some(c) if decoder.packets.read >= c => Take::Stop,
                _ if sink_failed => Take::Stop,
                _ => Take::Next,
            }
        });
        let _ = full.send(handoff);
        drop(full);
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
        for returned in empty.try_iter() {
            judge(returned, decoder.first_packet);
        }
        Ok(ended.map(|_| ()))
    })
}

/// Adds a handoff's segments to their flows, in order, and keeps the flows handed on for
/// the reading thread to judge; the handoff is left without segments.
fn observe_handed(table: &mut FlowTable, handoff: &mut Handoff) {
    let Handoff {
        segments,
        windows,
        finished,
    } = handoff;
    for (i, handed) in segments.iter().enumerate() {
        if let Some(ahead) = segments.get(i + HANDED_AHEAD) {
            // Written on the other core, as was the start of its payload.
            prefetch::all(ahead);
            prefetch::line(ahead.segment.payload.as_ptr());
        }
        table.observe_hashed(&handed.segment, handed.hash, handed.at, &mut |flow| {
            finished.push(flow)
        });
    }
    segments.clear();
    windows.clear();
}

/// Where `write_flagged` writes: a path, or a file opened earlier (before dropping root).
pub enum FlaggedOutput<'a> {
    Path(&'a std::path::Path),
    Opened(capture::Savefile),
}

/// Copies every packet of the flagged flows from the capture at `path` into `out`, with the
/// capture's link type: a second pass, picking packets by 4-tuple and frame range.
/// Returns how many packets were written.
pub fn write_flagged(paths: &[String], analysis: &Analysis, out: FlaggedOutput) -> Result<u64> {
    let mut wanted: HashMap<FlowKey, Vec<(u64, u64)>> = HashMap::new();
    for flow in analysis
        .flows
        .iter()
        .filter(|f| f.finding.verdict.flagged())
    {
        wanted
            .entry(FlowKey::new(flow.client, flow.server))
            .or_default()
            .push((flow.first_frame, flow.last_frame));
    }
    let mut source = Files::open(paths, None)?;
    let savefile = match out {
        FlaggedOutput::Path(out) => source.savefile(out)?,
        FlaggedOutput::Opened(savefile) => savefile,
    };
    source.write_selected_to(savefile);
    let link = source.link();
    let mut written = 0;
    let _ = source.read_batch(usize::MAX, |packet| {
        let frame = packet.frame;
        let picked = decode::decode(link, packet.data).is_ok_and(|seg| {
            let endpoints = FlowKey::new(
                SocketAddr::new(seg.src, seg.src_port),
                SocketAddr::new(seg.dst, seg.dst_port),
            );
            wanted.get(&endpoints).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|(first, last)| (*first..=*last).contains(&frame))
            })
        });
        if picked {
            written += 1;
            Take::Copy
        } else {
            Take::Next
        }
    });
    source.flush_written()?;
    Ok(written)
}

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
    let (analysis, flagged_file) = match &config.input {
        Input::File(paths) => (analyze_files(paths, &config.settings)?, None),
        Input::Live(live_config) => live::capture(config, live_config, out, err)?,
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
    let rendered = config.output.renderer(live).render(&analysis);
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
