//! What one pass over a capture found: each flow's report and timeline, the packet counts,
//! and the settings the analysis ran with.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::advice::ServerAdvice;
use crate::capture::KernelStats;
use crate::decode::{self, Skip};
use crate::detect::{Finding, Thresholds, Verdict};
use crate::flow::{self, Flow};
use crate::identify;
use crate::target::Target;
use crate::time::{Nanos, Timestamp};

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
    /// The client software and the server software, as far as the capture shows them.
    pub client_software: identify::Software,
    pub server_software: identify::Software,
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
    pub(crate) fn new(flow: &Flow, finding: Finding) -> FlowReport {
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
            client_software: identify::client_software(flow),
            server_software: identify::server_software(flow),
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
    /// The most flow reports kept for the output (a live capture's table): past it, the
    /// oldest give way, so memory stays flat over days. `None`: every one.
    pub max_reports: Option<usize>,
    /// Stop after this many packets (`-c`).
    pub count: Option<u64>,
    /// The most flows tracked at once; the one idle longest is evicted to make room.
    pub max_flows: usize,
    /// Threads that run the flow tables of a file read in place, besides the one reading
    /// it. The verdicts and the output are the same for any number.
    pub threads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bpf: None,
            targets: Vec::new(),
            thresholds: Thresholds::default(),
            keep_benign: true,
            max_reports: None,
            count: None,
            max_flows: flow::DEFAULT_MAX_FLOWS,
            threads: 1,
        }
    }
}
