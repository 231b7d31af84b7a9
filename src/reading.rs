//! Saved captures read through the pipeline: libpcap's loop on one thread (stdin, FIFOs,
//! pcapng, several files merged), or a classic pcap file mapped in place on two threads,
//! the flow table on the second.

use anyhow::Result;

use crate::analysis::{Analysis, Settings};
use crate::capture::{self, Batch, Files, Take};
use crate::decode::Segment;
use crate::flow::{Flow, FlowTable, Stamp};
use crate::pipeline::{FlowSink, Pipeline};
use crate::time::Timestamp;
use crate::{prefetch, progress};

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
/// the table handed on meanwhile, to be judged on the reading thread. The judged flows ride
/// back with the next segments and are freed on the table's thread, which allocated them:
/// freed on the other thread, they made the two threads fight over malloc's arena lock.
#[derive(Default)]
struct Handoff {
    segments: Vec<Handed>,
    /// Keeps the bytes `segments` borrow mapped until the table's thread has dropped them.
    windows: Vec<capture::Mapped>,
    /// Boxed as the table held them: moving a flow out of its box is a 944-byte copy.
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
            for flow in &mut returned.finished {
                judged.record(settings, flow, start);
                // What only some flows have is freed here; the table's thread, the busier
                // one with many flows open, only gets the boxes back.
                flow.http_lines = None;
                flow.tls = None;
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
    // Judged on the reading thread: their boxes back to the table, which allocated them.
    table.recycle(finished.drain(..));
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
