//! One JSON document for scripts: every flow with its verdict and evidence, and the summary.
//! Field names are a contract: add fields, never rename them. Read from a file, the
//! document is streamed (`JsonStream`): each flow is written as it is judged, the servers
//! and the summary after the last.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use super::Render;
use crate::decode::Skip;
use crate::detect::{Evidence, Verdict};
use crate::identify::Software;
use crate::time::{Timestamp, secs};
use crate::{Analysis, FlowReport, FlowSink};

pub struct JsonReport {
    /// One line per document, for a stream of JSON lines.
    pub one_line: bool,
}

#[derive(Serialize)]
struct Document<'a> {
    source: Source<'a>,
    flows: Vec<JsonFlow<'a>>,
    /// Per server: measured timeouts, likely culprits, what to change.
    servers: &'a [crate::advice::ServerAdvice],
    summary: Summary<'a>,
}

/// What follows the flows in a streamed document: the same fields as `Document`.
#[derive(Serialize)]
struct Tail<'a> {
    source: Source<'a>,
    servers: &'a [crate::advice::ServerAdvice],
    summary: Summary<'a>,
}

#[derive(Serialize)]
struct Source<'a> {
    file: &'a str,
    link_type: &'a str,
    first_packet: Option<String>,
    last_packet: Option<String>,
}

#[derive(Serialize)]
struct JsonFlow<'a> {
    id: u64,
    client: String,
    server: String,
    first_seen: String,
    packets: u64,
    requests: u32,
    responses: u32,
    longest_idle_s: f64,
    verdict: Verdict,
    flagged: bool,
    summary: &'a str,
    evidence: &'a Evidence,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<&'a str>,
    /// The software at each end: a name or "unknown", the evidence, a confidence.
    client_software: &'a Software,
    server_software: &'a Software,
    /// Flagged flows: their last packets, frames numbered as in Wireshark.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    timeline: Vec<JsonPacket>,
}

#[derive(Serialize)]
struct JsonPacket {
    frame: u64,
    /// Seconds since the capture's first packet, Wireshark's default time column.
    time_s: f64,
    /// Seconds since the timeline's previous packet.
    delta_s: f64,
    direction: &'static str,
    flags: String,
    seq: u32,
    ack: u32,
    len: u32,
    payload: String,
}

#[derive(Serialize)]
struct Summary<'a> {
    flows: usize,
    flagged: usize,
    verdicts: BTreeMap<&'static str, usize>,
    packets: Packets,
    /// Flows handed on early because the flow table was full.
    evicted: u64,
    /// Live capture only.
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel: Option<Kernel>,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct Kernel {
    received: u64,
    dropped: u64,
    if_dropped: u64,
}

#[derive(Serialize)]
struct Packets {
    read: u64,
    used: u64,
    skipped: BTreeMap<Skip, u64>,
    /// Packets stamped earlier than one read before them (merged interfaces or files).
    backwards: u64,
}

impl Render for JsonReport {
    fn render(&self, analysis: &Analysis) -> String {
        let document = Document {
            source: source(analysis),
            flows: analysis
                .flows
                .iter()
                .map(|f| json_flow(f, analysis.first_packet.unwrap_or_default()))
                .collect(),
            servers: &analysis.servers,
            summary: summary(analysis),
        };
        self.to_text(&document)
    }

    fn render_flagged(&self, flow: &FlowReport) -> String {
        let mut line = serde_json::to_string(&json_flow(flow, Timestamp(0))).unwrap_or_default();
        line.push('\n');
        line
    }
}

impl JsonReport {
    fn to_text(&self, value: &impl Serialize) -> String {
        let text = if self.one_line {
            serde_json::to_string(value)
        } else {
            serde_json::to_string_pretty(value)
        };
        let mut text =
            text.unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the report: {e}\"}}"));
        text.push('\n');
        text
    }
}

fn source(analysis: &Analysis) -> Source<'_> {
    Source {
        file: &analysis.source,
        link_type: analysis.link_type,
        first_packet: analysis.first_packet.map(rfc3339),
        last_packet: analysis.last_packet.map(rfc3339),
    }
}

fn summary(analysis: &Analysis) -> Summary<'_> {
    Summary {
        flows: analysis.total_flows(),
        flagged: analysis.flagged(),
        verdicts: analysis
            .verdicts
            .iter()
            .map(|(v, n)| (v.name(), *n))
            .collect(),
        packets: Packets {
            read: analysis.packets.read,
            used: analysis.packets.used,
            skipped: analysis.packets.skipped.clone(),
            backwards: analysis.packets.backwards,
        },
        evicted: analysis.evicted,
        kernel: analysis.kernel.map(|k| Kernel {
            received: k.received,
            dropped: k.dropped,
            if_dropped: k.if_dropped,
        }),
        warnings: &analysis.warnings,
    }
}

/// The JSON document written as the analysis goes: `{"flows": [` and each flow as it is
/// judged, then (`finish`) the source, the servers and the summary, which only the end
/// knows. Memory holds one flow's text at a time, however many flows the capture has.
pub struct JsonStream<W: Write> {
    out: W,
    flows: usize,
    /// One flow's text, reused.
    buffer: Vec<u8>,
}

/// The indentation of a flow inside the document's `flows` array.
const FLOW_INDENT: &[u8] = b"\n    ";

impl<W: Write> JsonStream<W> {
    pub fn new(out: W) -> JsonStream<W> {
        JsonStream {
            out,
            flows: 0,
            buffer: Vec::new(),
        }
    }

    /// Ends the document with what the whole analysis found.
    pub fn finish(mut self, analysis: &Analysis) -> io::Result<()> {
        self.out.write_all(if self.flows == 0 {
            b"{\n  \"flows\": [],"
        } else {
            b"\n  ],"
        })?;
        let tail = Tail {
            source: source(analysis),
            servers: &analysis.servers,
            summary: summary(analysis),
        };
        let text = serde_json::to_vec_pretty(&tail)?;
        // `{` dropped: the tail's fields go on in the document the flows began.
        self.out.write_all(&text[1..])?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

impl<W: Write> FlowSink for JsonStream<W> {
    fn flow(&mut self, report: &FlowReport, start: Timestamp) -> io::Result<()> {
        self.out.write_all(if self.flows == 0 {
            b"{\n  \"flows\": ["
        } else {
            b","
        })?;
        self.flows += 1;
        self.buffer.clear();
        serde_json::to_writer_pretty(&mut self.buffer, &json_flow(report, start))?;
        // JSON strings hold no raw newline: every one in the text is between tokens.
        self.out.write_all(FLOW_INDENT)?;
        for (i, line) in self.buffer.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                self.out.write_all(FLOW_INDENT)?;
            }
            self.out.write_all(line)?;
        }
        Ok(())
    }
}

/// `start`: the capture's first packet, for times as Wireshark shows them (0: epoch time).
fn json_flow(flow: &FlowReport, start: Timestamp) -> JsonFlow<'_> {
    let mut previous = None;
    let timeline = flow
        .timeline
        .iter()
        .map(|p| {
            let delta = previous.map_or(0, |t| p.ts.since(t));
            previous = Some(p.ts);
            JsonPacket {
                frame: p.frame,
                time_s: secs(p.ts.since(start)),
                delta_s: secs(delta),
                direction: if p.from_client {
                    "client->server"
                } else {
                    "server->client"
                },
                flags: p.flags.names(),
                seq: p.seq,
                ack: p.ack,
                len: p.len,
                payload: super::describe_packet(p),
            }
        })
        .collect();
    JsonFlow {
        id: flow.id,
        client: flow.client.to_string(),
        server: flow.server.to_string(),
        first_seen: rfc3339(flow.first_seen),
        packets: flow.packets,
        requests: flow.requests,
        responses: flow.responses,
        longest_idle_s: secs(flow.longest_idle),
        verdict: flow.finding.verdict,
        flagged: flow.finding.verdict.flagged(),
        summary: &flow.finding.sentence,
        evidence: &flow.finding.evidence,
        fix: flow.finding.fix.as_deref(),
        client_software: &flow.client_software,
        server_software: &flow.server_software,
        timeline,
    }
}

/// Packet time for scripts: RFC 3339 in UTC, to the microsecond.
fn rfc3339(ts: Timestamp) -> String {
    ts.to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Live `--format json`: one JSON object per line per event, for a log pipeline, each with
/// its `type`, the wall-clock `time` (RFC 3339, UTC, nanoseconds), the `node` and an `id`
/// that is the same for the same event wherever it is read. Nothing grows with the run:
/// each line is made from one flow or from counters.
pub struct EventLines {
    node: String,
    /// The capture's start on the wall clock, in nanoseconds since the epoch: with the node,
    /// what makes a flow's id (its first frame) unique across runs.
    run: i64,
    summaries: u64,
}

#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    node: &'a str,
    id: String,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct FlaggedEvent<'a> {
    verdict: Verdict,
    client: String,
    server: String,
    /// The kept pcap (`--keep-flagged`), if one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pcap: Option<KeptPcap<'a>>,
    flow: JsonFlow<'a>,
}

#[derive(Serialize)]
struct KeptPcap<'a> {
    path: &'a str,
    packets: usize,
    /// The flow's timeline frames the file holds (all of them unless it was forgotten).
    timeline_frames: usize,
}

#[derive(Serialize)]
struct FinalEvent<'a, S: Serialize> {
    #[serde(flatten)]
    status: &'a S,
    source: Source<'a>,
    servers: &'a [crate::advice::ServerAdvice],
    summary: Summary<'a>,
}

impl EventLines {
    pub fn new(node: String, run: Timestamp) -> EventLines {
        EventLines {
            node,
            run: run.0,
            summaries: 0,
        }
    }

    fn line<T: Serialize>(
        &self,
        kind: &'static str,
        id: String,
        now: Timestamp,
        body: T,
    ) -> String {
        let event = Event {
            kind,
            time: rfc3339_nanos(now),
            node: &self.node,
            id,
            body,
        };
        let mut line = serde_json::to_string(&event)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the event: {e}\"}}"));
        line.push('\n');
        line
    }

    /// A flagged flow, the moment its story is certain; `kept`: its pcap, if written.
    pub fn flagged(
        &self,
        report: &FlowReport,
        start: Timestamp,
        kept: Option<&crate::evidence::Kept>,
        now: Timestamp,
    ) -> String {
        let path = kept.map(|k| k.path.display().to_string());
        let body = FlaggedEvent {
            verdict: report.finding.verdict,
            client: report.client.to_string(),
            server: report.server.to_string(),
            pcap: kept.zip(path.as_deref()).map(|(k, path)| KeptPcap {
                path,
                packets: k.packets,
                timeline_frames: k.timeline_frames,
            }),
            flow: json_flow(report, start),
        };
        let id = format!("{}/{}/flow-{}", self.node, self.run, report.id);
        self.line("flagged", id, now, body)
    }

    /// The periodic summary: the live capture's counters now.
    pub fn summary(&mut self, status: &impl Serialize, now: Timestamp) -> String {
        self.summaries += 1;
        let id = format!("{}/{}/summary-{}", self.node, self.run, self.summaries);
        self.line("summary", id, now, status)
    }

    /// The last line, when the capture ends: the counters and the whole analysis' summary
    /// and per-server advice (flows are not listed: they were lines of their own).
    pub fn last(&self, status: &impl Serialize, analysis: &Analysis, now: Timestamp) -> String {
        let body = FinalEvent {
            status,
            source: source(analysis),
            servers: &analysis.servers,
            summary: summary(analysis),
        };
        let id = format!("{}/{}/final", self.node, self.run);
        self.line("final", id, now, body)
    }
}

/// Wall-clock time for event lines: RFC 3339 in UTC, to the nanosecond.
fn rfc3339_nanos(ts: Timestamp) -> String {
    ts.to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
