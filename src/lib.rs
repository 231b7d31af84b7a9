//! staleconn: reads a packet capture and says, flow by flow, why requests on pooled HTTP
//! keep-alive connections died. `run` is the one place the stages are wired:
//! capture -> decode -> flow -> detect -> report.

pub mod capture;
pub mod cli;
pub mod decode;
pub mod detect;
pub mod flow;
pub mod report;
pub mod target;
pub mod time;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;

use anyhow::Result;

use capture::FileSource;
use cli::Config;
use decode::Skip;
use detect::{Finding, Thresholds, Verdict};
use flow::{Flow, FlowTable, Stamp};
use target::Target;
use time::{Nanos, Timestamp};

/// One flow as the report shows it: who, when, how much, and the finding.
#[derive(Debug, Clone)]
pub struct FlowReport {
    pub id: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub first_seen: Timestamp,
    pub requests: u32,
    pub responses: u32,
    pub longest_idle: Nanos,
    pub finding: Finding,
}

impl FlowReport {
    fn new(flow: &Flow, finding: Finding) -> FlowReport {
        FlowReport {
            id: flow.id,
            client: flow.client,
            server: flow.server,
            first_seen: flow.first.ts,
            requests: flow.requests,
            responses: flow.responses,
            longest_idle: flow.longest_idle,
            finding,
        }
    }
}

/// Every packet read is used in a flow or counted under the reason it was skipped.
#[derive(Debug, Clone, Default)]
pub struct PacketCounts {
    pub read: u64,
    pub used: u64,
    pub skipped: BTreeMap<Skip, u64>,
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
    pub packets: PacketCounts,
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bpf: None,
            targets: Vec::new(),
            thresholds: Thresholds::default(),
            keep_benign: true,
        }
    }
}

/// Reads a saved capture in one pass and judges every flow.
pub fn analyze_file(path: &str, settings: &Settings) -> Result<Analysis> {
    let mut source = FileSource::open(path, settings.bpf.as_deref())?;
    let link = source.link();
    let mut table = FlowTable::new(settings.targets.clone());
    let mut flows = Vec::new();
    let mut verdicts = BTreeMap::new();
    let mut packets = PacketCounts::default();
    let mut warnings = Vec::new();
    let (mut first_packet, mut last_packet) = (None, None);
    let mut judge = |flow: Flow| {
        let finding = detect::judge(&flow, &settings.thresholds);
        *verdicts.entry(finding.verdict).or_default() += 1;
        if settings.keep_benign || finding.verdict.flagged() {
            flows.push(FlowReport::new(&flow, finding));
        }
    };

    loop {
        let packet = match source.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(damage) => {
                warnings.push(format!(
                    "{}: capture ends early after frame {} ({}); analysed the frames before it",
                    source.name(),
                    damage.after_frame,
                    damage.message
                ));
                break;
            }
        };
        packets.read += 1;
        first_packet.get_or_insert(packet.ts);
        last_packet = Some(packet.ts);
        let at = Stamp {
            frame: packet.frame,
            ts: packet.ts,
        };
        match decode::decode(link, packet.data) {
            Err(skip) => *packets.skipped.entry(skip).or_default() += 1,
            Ok(segment) if !table.is_targeted(&segment) => {
                *packets.skipped.entry(Skip::NotTarget).or_default() += 1;
            }
            Ok(segment) => {
                packets.used += 1;
                table.observe(&segment, at, &mut judge);
            }
        }
    }
    table.finish_all(&mut judge);
    flows.sort_by_key(|f| f.id);

    if let Some(&cut) = packets.skipped.get(&Skip::Truncated) {
        warnings.push(format!(
            "{cut} packets were cut inside their headers by the snapshot length; capture with a larger -s (e.g. -s 128)"
        ));
    }
    Ok(Analysis {
        source: source.name().to_string(),
        link_type: link.name(),
        first_packet,
        last_packet,
        flows,
        verdicts,
        packets,
        warnings,
    })
}

/// What the program's exit code is made from.
pub struct Outcome {
    pub flagged: usize,
}

/// Analyses the configured input and writes the report to `out`; warnings go to `err`.
pub fn run(config: &Config, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome> {
    let analysis = analyze_file(&config.input, &config.settings)?;
    for warning in &analysis.warnings {
        writeln!(err, "staleconn: warning: {warning}")?;
    }
    let rendered = config.output.renderer().render(&analysis);
    out.write_all(rendered.as_bytes())?;
    out.flush()?;
    Ok(Outcome {
        flagged: analysis.flagged(),
    })
}
