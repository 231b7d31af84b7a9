//! Saved captures read through the pipeline: libpcap's loop on one thread (stdin, FIFOs,
//! pcapng, several files merged), or a classic pcap file mapped in place and read on one
//! thread, its flow tables run on others.

use anyhow::Result;

use crate::analysis::{Analysis, Settings};
use crate::capture::{self, Batch, Files, Take};
use crate::decode::Segment;
use crate::detect::Thresholds;
use crate::flow::peers::{self, PeerNote};
use crate::flow::tracker::part_of;
use crate::flow::{Flow, FlowTable, SegmentHasher, Stamp, TableEvent};
use crate::pipeline::{FlowSink, Judgement, Pipeline};
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
        Some(file) => read_on_threads(
            file,
            &mut pipeline,
            &mut progress,
            settings.count,
            settings.threads,
        )?,
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

/// A decoded segment on its way to a flow table's thread, with its flow's hash.
struct Handed {
    segment: Segment<'static>,
    hash: u64,
    at: Stamp,
    /// Which of the thread's tables holds the flow.
    table: usize,
}

/// A flow a table's thread handed on, judged there unless it needs the answers of other
/// tables (`peers::needs_peer_answer`).
struct Finished {
    flow: Box<Flow>,
    /// Boxed: a judgement is 640 bytes, and a flow handed back is moved three times.
    judgement: Option<Box<Judgement>>,
}

/// Segments on their way from the reading thread to one flow table thread, with the mapped
/// windows of the file their payloads lie in; on the way back, empty, with what its tables
/// handed on meanwhile, in packet order, to be taken on the reading thread. The flows'
/// boxes ride back with later segments and are reused on the thread that allocated them:
/// freed on another thread, they made the threads fight over malloc's arena lock.
#[derive(Default)]
struct Handoff {
    segments: Vec<Handed>,
    /// Keeps the bytes `segments` borrow mapped until the table's thread has dropped them.
    windows: Vec<capture::Mapped>,
    /// The capture has ended: after the segments, every flow left is handed on.
    last: bool,
    /// Back, in packet order, each with the frame it came at (`u64::MAX` at the end): the
    /// flows handed on, and the notes for the answers that cross tables. Apart, as the
    /// notes are many and small.
    finished: Vec<(u64, Finished)>,
    notes: Vec<(u64, PeerNote)>,
    /// Forth: boxes of flows judged, for new flows.
    #[allow(clippy::vec_box)]
    recycled: Vec<Box<Flow>>,
}

/// Segments handed out between two takings of what came back: enough that passing them
/// costs little a packet.
const HANDOFF_SEGMENTS: usize = 1024;
/// Handoffs each table thread may have waiting, so reading runs ahead of a slow table.
const HANDOFFS_IN_FLIGHT: usize = 4;
/// How far ahead in a handoff the table's thread asks for the next segments: the reading
/// thread wrote them on another core.
const HANDED_AHEAD: usize = 4;

/// `analyze_files`'s loop over a file read in place. This thread reads, counts and
/// decodes the packets, sends each to the thread of its flow's table (`Tracker`'s parts,
/// dealt over `threads`), and takes what they hand back in packet order, as one thread
/// would have handed it on: the verdicts, the advice and the output are the same for any
/// number of threads. With more than one table thread, they judge the flows they hand on.
fn read_on_threads(
    file: &mut capture::Source,
    pipeline: &mut Pipeline,
    progress: &mut progress::Progress,
    count: Option<u64>,
    threads: usize,
) -> Result<Result<(), capture::Damage>> {
    let Pipeline {
        settings,
        decoder,
        table,
        judged,
    } = pipeline;
    let settings: &Settings = settings;
    let hasher = table.hasher();
    let report_benign = judged.reports_all(settings);
    let (parts, peers) = table.split();
    let part_count = parts.len();
    let threads = threads.clamp(1, part_count);
    // With one table thread, this thread judges: the work is then shared about evenly
    // between the two (judging on the tables' thread made it the slower one by half).
    let judge_on_tables = threads > 1;
    // Table `p` runs on thread `p % threads`, as its `p / threads`th.
    let mut dealt: Vec<Vec<&mut FlowTable>> = (0..threads).map(|_| Vec::new()).collect();
    for (p, part) in parts.iter_mut().enumerate() {
        dealt[p % threads].push(part);
    }
    std::thread::scope(|scope| {
        let mut to_tables = Vec::new();
        let mut from_tables = Vec::new();
        let mut workers = Vec::new();
        for (t, mut tables) in dealt.into_iter().enumerate() {
            let (full, full_rx) = std::sync::mpsc::sync_channel::<Handoff>(HANDOFFS_IN_FLIGHT);
            let (back, back_rx) = std::sync::mpsc::channel::<Handoff>();
            let worker = std::thread::Builder::new()
                .name(format!("flow table {t}"))
                .spawn_scoped(scope, move || {
                    for mut handoff in full_rx {
                        observe_handed(
                            &mut tables,
                            &mut handoff,
                            judge_on_tables.then_some((&settings.thresholds, report_benign)),
                        );
                        if back.send(handoff).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| anyhow::anyhow!("cannot start a flow table's thread ({e})"))?;
            to_tables.push(full);
            from_tables.push(back_rx);
            workers.push(worker);
        }
        let mut merge = Merge::new(threads);
        // Takes what came back, in packet order, as far as every thread has returned;
        // `wait`: until all handed out is back. Says whether the sink failed.
        let mut take_returned = |merge: &mut Merge, wait: bool, start: Option<Timestamp>| {
            for (t, back) in from_tables.iter().enumerate() {
                loop {
                    let handoff = if wait && merge.out[t] > 0 {
                        back.recv().ok()
                    } else {
                        back.try_recv().ok()
                    };
                    let Some(handoff) = handoff else { break };
                    merge.out[t] -= 1;
                    merge.back[t].push_back(handoff);
                }
            }
            merge.take_ready(|taken| match taken {
                Taken::Note(note) => {
                    peers.note(note);
                    None
                }
                Taken::Flow(Finished {
                    mut flow,
                    judgement,
                }) => {
                    peers.settle(&mut flow);
                    let judgement = match judgement {
                        Some(judgement) => *judgement,
                        None => Judgement::of(&flow, &settings.thresholds, report_benign),
                    };
                    judged.take(&flow, judgement, start);
                    // What only some flows have is freed here; the table's thread, the
                    // busier one with many flows open, only gets the box back.
                    flow.http_lines = None;
                    flow.tls = None;
                    Some(flow)
                }
            });
            judged.sink_error.is_some()
        };
        let mut sink_failed = false;
        let mut outgoing: Vec<Handoff> = (0..threads).map(|t| merge.fresh(t)).collect();
        let mut handed_out = 0;
        let ended = file.read_mapped(usize::MAX, |packet, mapped| {
            progress.frame(packet.data.len());
            if let Some(segment) = decoder.decode(packet) {
                let part = part_of(SegmentHasher::part_hash(&segment), part_count);
                let handoff = &mut outgoing[part % threads];
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
                    table: part / threads,
                    segment,
                    at: Stamp {
                        frame: packet.frame,
                        ts: packet.ts,
                    },
                });
                handed_out += 1;
                if handed_out == HANDOFF_SEGMENTS {
                    handed_out = 0;
                    sink_failed |= take_returned(&mut merge, false, decoder.first_packet);
                    for (t, to_table) in to_tables.iter().enumerate() {
                        let next = merge.fresh(t);
                        merge.out[t] += 1;
                        if to_table
                            .send(std::mem::replace(&mut outgoing[t], next))
                            .is_err()
                        {
                            return Take::Stop; // the table's thread panicked; its join says so
                        }
                    }
                }
            }
            match count {
                Some(c) if decoder.packets.read >= c => Take::Stop,
                _ if sink_failed => Take::Stop,
                _ => Take::Next,
            }
        });
        for (t, to_table) in to_tables.iter().enumerate() {
            let mut last = std::mem::take(&mut outgoing[t]);
            last.last = true;
            if to_table.send(last).is_ok() {
                merge.out[t] += 1;
            }
        }
        drop(to_tables);
        take_returned(&mut merge, true, decoder.first_packet);
        for worker in workers {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Ok(ended.map(|_| ()))
    })
}

/// One thing a table's thread handed back, taken in packet order.
enum Taken {
    Note(PeerNote),
    Flow(Finished),
}

/// What came back from the table threads, put back in packet order.
struct Merge {
    /// Per thread, the handoffs it returned not yet taken, in the order handed out.
    back: Vec<std::collections::VecDeque<Handoff>>,
    /// Per thread, handoffs handed out and not yet returned.
    out: Vec<usize>,
    /// Per thread, emptied handoffs to reuse, with the boxes to send it back.
    spare: Vec<Vec<Handoff>>,
}

impl Merge {
    fn new(threads: usize) -> Merge {
        Merge {
            back: (0..threads).map(|_| Default::default()).collect(),
            out: vec![0; threads],
            spare: (0..threads).map(|_| Vec::new()).collect(),
        }
    }

    /// An empty handoff for thread `t`.
    fn fresh(&mut self, t: usize) -> Handoff {
        self.spare[t].pop().unwrap_or_else(|| Handoff {
            segments: Vec::with_capacity(HANDOFF_SEGMENTS),
            ..Handoff::default()
        })
    }

    /// Every round of handoffs that all threads have returned, merged in the order each
    /// thing came: each packet went to one thread, so frames tie only within a thread (in
    /// its order) and at the end, where the flows left come in order of first appearance.
    /// `take` gives back the box of a flow it took.
    fn take_ready(&mut self, mut take: impl FnMut(Taken) -> Option<Box<Flow>>) {
        while self.back.iter().all(|b| !b.is_empty()) {
            let mut round: Vec<Handoff> =
                self.back.iter_mut().filter_map(|b| b.pop_front()).collect();
            let mut recycled: Vec<Vec<Box<Flow>>> = round
                .iter_mut()
                .map(|h| std::mem::take(&mut h.recycled))
                .collect();
            // Taken out to be drained side by side, and put back for their capacity.
            let mut lists: Vec<_> = round
                .iter_mut()
                .map(|h| {
                    (
                        std::mem::take(&mut h.notes),
                        std::mem::take(&mut h.finished),
                    )
                })
                .collect();
            let mut notes: Vec<_> = Vec::with_capacity(lists.len());
            let mut finished: Vec<_> = Vec::with_capacity(lists.len());
            for (n, f) in &mut lists {
                notes.push(n.drain(..).peekable());
                finished.push(f.drain(..).peekable());
            }
            loop {
                // A thread's flow handed on at a frame came before its note at that frame
                // (a table hands on before it takes the packet).
                let next_finished = (0..finished.len())
                    .filter_map(|t| {
                        finished[t]
                            .peek()
                            .map(|(frame, f)| ((*frame, f.flow.id), t))
                    })
                    .min();
                let next_note = (0..notes.len())
                    .filter_map(|t| notes[t].peek().map(|(frame, _)| (*frame, t)))
                    .min();
                let taken = match (next_finished, next_note) {
                    (Some(((frame, _), t)), Some((at, _))) if frame <= at => {
                        finished[t].next().map(|(_, f)| (t, Taken::Flow(f)))
                    }
                    (Some((_, t)), None) => finished[t].next().map(|(_, f)| (t, Taken::Flow(f))),
                    (_, Some((_, t))) => notes[t].next().map(|(_, n)| (t, Taken::Note(n))),
                    (None, None) => None,
                };
                let Some((t, taken)) = taken else { break };
                if let Some(flow) = take(taken) {
                    recycled[t].push(flow);
                }
            }
            drop((notes, finished));
            for (t, ((mut handoff, boxes), (n, f))) in
                round.into_iter().zip(recycled).zip(lists).enumerate()
            {
                handoff.recycled = boxes;
                handoff.notes = n;
                handoff.finished = f;
                handoff.last = false;
                self.spare[t].push(handoff);
            }
        }
    }
}

/// On a table's thread: adds a handoff's segments to their flows, in order, judges the
/// flows handed on that need nothing from other tables if `judge` says how, and leaves all
/// of it in the handoff, which is left without segments.
fn observe_handed(
    tables: &mut [&mut FlowTable],
    handoff: &mut Handoff,
    judge: Option<(&Thresholds, bool)>,
) {
    let Handoff {
        segments,
        windows,
        last,
        finished,
        notes,
        recycled,
    } = handoff;
    // Judged on the reading thread: their boxes back to the tables, which allocated them.
    for (i, flow) in recycled.drain(..).enumerate() {
        tables[i % tables.len()].recycle(std::iter::once(flow));
    }
    let mut hand_back = |frame: u64, event: TableEvent| match event {
        TableEvent::Peer(note) => notes.push((frame, note)),
        TableEvent::Finished(flow) => {
            let judgement = judge.filter(|_| !peers::needs_peer_answer(&flow)).map(
                |(thresholds, report_benign)| {
                    Box::new(Judgement::of(&flow, thresholds, report_benign))
                },
            );
            finished.push((frame, Finished { flow, judgement }));
        }
    };
    for (i, handed) in segments.iter().enumerate() {
        if let Some(ahead) = segments.get(i + HANDED_AHEAD) {
            // Written on the other core, as was the start of its payload.
            prefetch::all(ahead);
            prefetch::line(ahead.segment.payload.as_ptr());
        }
        let table = &mut tables[handed.table];
        let frame = handed.at.frame;
        table.observe(&handed.segment, handed.hash, handed.at, &mut |event| {
            hand_back(frame, event)
        });
    }
    segments.clear();
    windows.clear();
    if *last {
        let mut rest = Vec::new();
        for table in tables.iter_mut() {
            table.finish_all(&mut |event| rest.push(event));
        }
        // In order of first appearance across this thread's tables, as `order` merges them.
        rest.sort_by_key(|event| match event {
            TableEvent::Finished(flow) => flow.id,
            TableEvent::Peer(_) => 0,
        });
        for event in rest {
            hand_back(u64::MAX, event);
        }
    }
}
