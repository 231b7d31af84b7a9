//! `--write-flagged`: the packets of the flagged flows copied into a pcap of their own, by
//! a second pass over the capture.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::Result;

use crate::analysis::Analysis;
use crate::capture::{self, Files, Take};
use crate::decode;
use crate::flow::FlowKey;

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
