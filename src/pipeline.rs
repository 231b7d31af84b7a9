//! The stages from decode on, wired for one packet at a time: decode -> flow tracking ->
//! detectors and advice, and where each judged flow goes (kept for the report, or a sink).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use anyhow::Result;

use crate::advice::{Advisor, MeasuredTimers, ServerAdvice};
use crate::analysis::{Analysis, FlowReport, PacketCounts, Settings};
use crate::capture::Packet;
use crate::decode::{self, LinkType, Segment, Skip};
use crate::detect::{self, Finding, Thresholds, Verdict};
use crate::flow::{self, Flow, Stamp, Tracker};
use crate::target::Target;
use crate::time::Timestamp;

/// Receives each flow as it is judged: an output that lists every flow writes it at once,
/// so nothing is kept per flow to the end (as ripgrep's printers receive matches).
pub trait FlowSink {
    /// `start`: the capture's first packet so far, for times relative to it.
    fn flow(&mut self, report: &FlowReport, start: Timestamp) -> std::io::Result<()>;
}

/// Told of each flow as it is judged, benign or not, with its finding: for outputs that
/// count (the metrics) rather than list. A live flagged flow is told twice: when it is
/// announced, and when it is handed on (`announced` set) after its grace period.
pub trait FlowObserver {
    fn announced(&self, report: &FlowReport);
    fn judged(&self, flow: &Flow, finding: &Finding, announced: bool);
}

/// The stages from decode on, fed one packet at a time: the same for a file and a live
/// device, so both reach the same verdicts from the same packets. In parts, so that a big
/// file can run the flow tables on other threads (`analyze_files`).
pub struct Pipeline<'s> {
    pub(crate) settings: &'s Settings,
    pub(crate) decoder: Decoder<'s>,
    pub(crate) table: Tracker,
    pub(crate) judged: Judged<'s>,
}

/// Counts every packet and decodes it into the segment the tracker needs, or counts why
/// not.
pub(crate) struct Decoder<'s> {
    pub(crate) link: LinkType,
    pub(crate) targets: &'s [Target],
    pub(crate) packets: PacketCounts,
    pub(crate) first_packet: Option<Timestamp>,
    pub(crate) last_packet: Option<Timestamp>,
}

/// What became of the flows handed on by the flow table.
#[derive(Default)]
pub(crate) struct Judged<'s> {
    /// Reports kept for the output (see `Settings::keep_benign`); with a sink, the flagged
    /// ones only (for `--write-flagged`).
    flows: Vec<FlowReport>,
    /// Where every judged flow goes at once, if the output streams.
    sink: Option<&'s mut dyn FlowSink>,
    /// Told of every judged flow, if something counts them.
    observer: Option<&'s dyn FlowObserver>,
    /// With an observer: the flows announced and not yet handed on, so that the per-server
    /// results so far include them (a closed flow waits `CLOSED_GRACE` to be handed on).
    pending: Vec<Flow>,
    /// The sink's first failure (a closed pipe): reading stops, `finish` reports it.
    pub(crate) sink_error: Option<std::io::Error>,
    verdicts: BTreeMap<Verdict, usize>,
    /// Live: flagged flows announced and not yet handed on, so each is announced once.
    announced: HashSet<u64>,
    /// Per-server measurements, from every flow.
    advisor: Advisor,
    /// `Settings::max_reports`, and the reports that gave way to newer ones.
    max_reports: Option<usize>,
    reports_dropped: u64,
}

/// A finished flow's finding, and its report if it will be shown (see `Judged::reports_all`).
// Held for a moment (and boxed where it waits in a handoff): the variants' sizes matter little.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Judgement {
    Finding(Finding),
    Report(FlowReport),
}

impl Judgement {
    /// Judges a finished flow, settled (see `flow::peers`). Needs nothing but the flow, so
    /// it runs on whichever thread holds it.
    pub(crate) fn of(flow: &Flow, thresholds: &Thresholds, report_benign: bool) -> Judgement {
        let finding = detect::judge_worded(flow, thresholds, report_benign);
        if report_benign || finding.verdict.flagged() {
            Judgement::Report(FlowReport::new(flow, finding))
        } else {
            Judgement::Finding(finding)
        }
    }

    fn finding(&self) -> &Finding {
        match self {
            Judgement::Finding(finding) => finding,
            Judgement::Report(report) => &report.finding,
        }
    }
}

impl Judged<'_> {
    /// Whether every flow's report is wanted, benign or not: for a sink, or to keep.
    pub(crate) fn reports_all(&self, settings: &Settings) -> bool {
        self.sink.is_some() || settings.keep_benign
    }

    /// Judges a finished flow, settled, and takes the judgement (`take`).
    pub(crate) fn record(&mut self, settings: &Settings, flow: &Flow, start: Option<Timestamp>) {
        let judgement = Judgement::of(flow, &settings.thresholds, self.reports_all(settings));
        self.take(flow, judgement, start);
    }

    /// Counts a judged flow's verdict, and keeps its report if it will be shown, or hands
    /// it to the sink. In the order flows are handed on, whichever thread judged them, so
    /// the advice and the output are the same. `start`: the capture's first packet so far.
    pub(crate) fn take(&mut self, flow: &Flow, judgement: Judgement, start: Option<Timestamp>) {
        let announced = self.announced.remove(&flow.id);
        let finding = judgement.finding();
        self.advisor.observe(flow, finding);
        if let Some(observer) = self.observer {
            if announced {
                self.pending.retain(|p| p.id != flow.id);
            }
            observer.judged(flow, finding, announced);
        }
        *self.verdicts.entry(finding.verdict).or_default() += 1;
        let flagged = finding.verdict.flagged();
        let Judgement::Report(report) = judgement else {
            return;
        };
        if let Some(sink) = self.sink.as_deref_mut()
            && self.sink_error.is_none()
            && let Err(e) = sink.flow(&report, start.unwrap_or_default())
        {
            self.sink_error = Some(e);
        }
        if self.sink.is_none() || flagged {
            if self
                .max_reports
                .is_some_and(|most| self.flows.len() >= most)
            {
                self.flows.remove(0);
                self.reports_dropped += 1;
            }
            self.flows.push(report);
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

    /// Tells `observer` of every flow as it is judged.
    pub fn observe_with(&mut self, observer: &'s dyn FlowObserver) {
        self.judged.observer = Some(observer);
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
            table: Tracker::new(settings.targets.clone(), settings.max_flows),
            judged: Judged {
                max_reports: settings.max_reports,
                ..Judged::default()
            },
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
            judged.record(settings, &flow, start)
        })?;
        if !announce {
            return None;
        }
        let (closed, peer) = closed;
        let mut settled;
        let closed = match peer {
            // Judged as it will be once handed on (rare: a request that waited in vain).
            Some(_) if closed.peer_answer.is_none() => {
                settled = Flow::clone(closed);
                settled.peer_answer = peer;
                &settled
            }
            _ => closed,
        };
        let finding = detect::judge(closed, &settings.thresholds);
        let report = (finding.verdict.flagged() && judged.announced.insert(closed.id))
            .then(|| FlowReport::new(closed, finding))?;
        if let Some(observer) = judged.observer {
            observer.announced(&report);
            judged.pending.push(closed.clone());
        }
        Some(report)
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
        table.release_closed(now, &mut |flow| judged.record(settings, &flow, start));
    }

    /// Every flow judged so far, counted by verdict.
    pub fn verdicts(&self) -> &BTreeMap<Verdict, usize> {
        &self.judged.verdicts
    }

    /// Flows handed on early so far because the flow table was full.
    pub fn evicted(&self) -> u64 {
        self.table.evicted()
    }

    /// Each server's keep-alive timer and middlebox bracket measured so far.
    pub fn measured_timers(&self) -> impl Iterator<Item = MeasuredTimers> + '_ {
        self.judged.advisor.measured_timers()
    }

    pub fn flows_tracked(&self) -> usize {
        self.table.len()
    }

    /// The per-server results from the flows judged and announced so far, for the servers
    /// `wanted` (the metrics' timers, so that their cost follows the peers exported).
    pub fn servers_so_far(&self, wanted: &dyn Fn(SocketAddr) -> bool) -> Vec<ServerAdvice> {
        let mut advisor = self.judged.advisor.subset(wanted);
        for flow in self.judged.pending.iter().filter(|f| wanted(f.server)) {
            advisor.observe(flow, &detect::judge(flow, &self.settings.thresholds));
        }
        advisor.finish()
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
        table.finish_all(&mut |flow| judged.record(settings, &flow, start));
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
        if judged.reports_dropped > 0 {
            warnings.push(format!(
                "{} flow reports gave way to newer ones: the report lists the last {} only (the counts are of every flow)",
                judged.reports_dropped,
                judged.flows.len()
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
    pub(crate) fn decode<'p>(&mut self, packet: &Packet<'p>) -> Option<Segment<'p>> {
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
