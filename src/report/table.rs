//! The verdict table for people (comfy-table): flagged flows (or all with `--all`), their
//! packet timelines (`--explain`), per server what was measured and what to change, and a
//! summary of every flow by verdict and every packet by what became of it.

use std::fmt::Write;

use comfy_table::{Attribute, Cell, Color, ContentArrangement, Table, presets};

use super::{Render, utc};
use crate::detect::Verdict;
use crate::time::human;
use crate::{Analysis, FlowReport};

pub struct TableReport {
    pub all: bool,
    pub color: bool,
    pub explain: bool,
}

impl Render for TableReport {
    fn render(&self, analysis: &Analysis) -> String {
        let mut out = String::new();
        let listed: Vec<&FlowReport> = analysis
            .flows
            .iter()
            .filter(|f| self.all || f.finding.verdict.flagged())
            .collect();
        if listed.is_empty() {
            let _ = writeln!(out, "No flow matches a failure pattern.\n");
        } else {
            let _ = writeln!(out, "{}\n", self.flows_table(&listed));
        }
        if self.explain {
            self.write_timelines(&mut out, analysis);
        }
        self.write_servers(&mut out, analysis);
        self.write_summary(&mut out, analysis);
        out
    }

    fn render_flagged(&self, flow: &FlowReport) -> String {
        let verdict = flow.finding.verdict.name();
        let verdict = if self.color {
            format!("\x1b[1;31m{verdict}\x1b[0m")
        } else {
            verdict.to_string()
        };
        format!(
            "{} flow {} {} -> {} {verdict}: {}\n",
            utc(flow.last_seen),
            flow.id,
            flow.client,
            flow.server,
            flow.finding.sentence
        )
    }
}

impl TableReport {
    fn flows_table(&self, flows: &[&FlowReport]) -> Table {
        let mut table = Table::new();
        table
            .load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if self.color {
            // `--color always` colours a pipe too; comfy-table would only colour a terminal.
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(vec![
            "Flow",
            "Client",
            "Server",
            "First seen (UTC)",
            "Req",
            "Longest idle",
            "Verdict",
            "Evidence",
        ]);
        for flow in flows {
            let verdict = flow.finding.verdict;
            let mut verdict_cell = Cell::new(verdict.name());
            if self.color {
                verdict_cell = if verdict.flagged() {
                    verdict_cell.fg(Color::Red).add_attribute(Attribute::Bold)
                } else {
                    verdict_cell.fg(Color::Green)
                };
            }
            table.add_row(vec![
                Cell::new(flow.id),
                Cell::new(flow.client),
                Cell::new(flow.server),
                Cell::new(utc(flow.first_seen)),
                Cell::new(flow.requests),
                Cell::new(human(flow.longest_idle)),
                verdict_cell,
                Cell::new(&flow.finding.sentence),
            ]);
        }
        table
    }

    /// Each flagged flow's last packets: frame numbers and times as Wireshark shows them
    /// (time since the capture's first packet), the idle gap on a line of its own.
    fn write_timelines(&self, out: &mut String, analysis: &Analysis) {
        let start = analysis.first_packet.unwrap_or_default();
        for flow in analysis.flows.iter().filter(|f| !f.timeline.is_empty()) {
            let _ = writeln!(
                out,
                "Flow {}  {} -> {}  {}: last {} packets",
                flow.id,
                flow.client,
                flow.server,
                flow.finding.verdict.name(),
                flow.timeline.len()
            );
            let _ = writeln!(
                out,
                "  {:>7} {:>12} {:>10}  {:<4} {:<9} {:>10} {:>10} {:>5}  payload",
                "frame", "time", "delta", "dir", "flags", "seq", "ack", "len"
            );
            let mut previous = None;
            for p in &flow.timeline {
                let delta = previous.map_or(0, |t| p.ts.since(t));
                if delta >= super::IDLE_LINE {
                    let _ = writeln!(out, "  {:>31}", format!("... {} idle ...", human(delta)));
                }
                previous = Some(p.ts);
                let _ = writeln!(
                    out,
                    "  {:>7} {:>12.6} {:>10.6}  {:<4} {:<9} {:>10} {:>10} {:>5}  {}",
                    p.frame,
                    crate::time::secs(p.ts.since(start)),
                    crate::time::secs(delta),
                    if p.from_client { "C>S" } else { "S>C" },
                    p.flags.names().replace(", ", ","),
                    p.seq,
                    p.ack,
                    p.len,
                    super::describe_packet(p)
                );
            }
            let _ = writeln!(out);
        }
    }

    /// Per server with flagged flows (every measured server with `--all`): what was
    /// measured, which products fit, and what to change.
    fn write_servers(&self, out: &mut String, analysis: &Analysis) {
        for server in &analysis.servers {
            let flagged = server.races + server.nat_resets + server.idle_blackholes;
            if flagged == 0 && !self.all {
                continue;
            }
            let count = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            let mut failures = Vec::new();
            if server.races > 0 {
                failures.push(count(server.races, "keep-alive race"));
            }
            if server.nat_resets > 0 {
                failures.push(count(server.nat_resets, "NAT idle reset"));
            }
            if server.idle_blackholes > 0 {
                failures.push(count(server.idle_blackholes, "idle blackhole"));
            }
            let failures = if failures.is_empty() {
                "no failures".to_string()
            } else {
                failures.join(", ")
            };
            let _ = writeln!(out, "Server {}: {failures}", server.server);
            if let Some(k) = &server.keepalive {
                let mut announced = server
                    .announced_keepalive_s
                    .map(|n| format!("; announces Keep-Alive: timeout={n}"))
                    .unwrap_or_default();
                if server.announced_connection_close {
                    announced.push_str("; sent Connection: close on some responses");
                }
                let _ = writeln!(
                    out,
                    "  keep-alive: closes idle connections after {:.2} s (n={}, {:.3}-{:.3} s){announced}",
                    k.median_s, k.n, k.min_s, k.max_s
                );
            }
            // Both brackets start at the longest silence that still worked, when one did.
            let survived = |s: Option<f64>| {
                s.map(|s| format!("survived {s:.1} s, "))
                    .unwrap_or_default()
            };
            if let Some(b) = &server.middlebox {
                let survived = survived(b.survived_s);
                let _ = writeln!(
                    out,
                    "  middlebox: forgets idle connections: {survived}reset after {:.1} s",
                    b.reset_s
                );
            }
            if let Some(b) = &server.blackhole {
                let survived = survived(b.survived_s);
                let _ = writeln!(
                    out,
                    "  middlebox: drops idle connections silently: {survived}no answer after {:.1} s (a request went unanswered for up to {:.1} s)",
                    b.dropped_s, b.longest_unanswered_s
                );
            }
            for (what, candidates) in [
                ("likely", &server.keepalive_candidates),
                ("likely", &server.middlebox_candidates),
                ("likely", &server.blackhole_candidates),
            ] {
                for c in candidates {
                    let _ = writeln!(
                        out,
                        "  {what}: {}, default {} s ({}); source: {}",
                        c.name, c.default_s, c.fit, c.source
                    );
                }
            }
            for advice in &server.advice {
                let _ = writeln!(out, "  fix: {advice}");
            }
            for s in &server.client_settings {
                let _ = writeln!(out, "    {}: {}", s.client, s.setting);
            }
            if let (Some(r), false) = (
                server.read_timeout_s,
                server.read_timeout_settings.is_empty(),
            ) {
                let _ = writeln!(out, "  read timeout of {r} s, per client:");
                for s in &server.read_timeout_settings {
                    let _ = writeln!(out, "    {}: {}", s.client, s.setting);
                }
            }
            let _ = writeln!(out);
        }
    }

    fn write_summary(&self, out: &mut String, analysis: &Analysis) {
        let span = match (analysis.first_packet, analysis.last_packet) {
            (Some(first), Some(last)) => {
                format!(
                    ", {} to {} UTC ({})",
                    utc(first),
                    utc(last),
                    human(last.since(first))
                )
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "Capture: {} ({}){span}",
            analysis.source, analysis.link_type
        );
        let _ = writeln!(
            out,
            "Flows: {} analysed, {} flagged",
            analysis.total_flows(),
            analysis.flagged()
        );
        for verdict in Verdict::ALL {
            if let Some(n) = analysis.verdicts.get(&verdict) {
                let mark = if verdict.flagged() { "!" } else { " " };
                let _ = writeln!(
                    out,
                    "  {mark} {:<22} {n:>6}  {}",
                    verdict.name(),
                    verdict.meaning()
                );
            }
        }
        let p = &analysis.packets;
        let mut line = format!("Packets: {} read, {} used in flows", p.read, p.used);
        for (skip, n) in &p.skipped {
            let _ = write!(line, ", {n} skipped ({})", skip.name());
        }
        let _ = writeln!(out, "{line}");
        if analysis.evicted > 0 {
            let _ = writeln!(
                out,
                "Evicted: {} flows, from a full flow table while still open",
                analysis.evicted
            );
        }
        if let Some(k) = analysis.kernel {
            let _ = writeln!(
                out,
                "Kernel: {} packets received, {} dropped by the kernel, {} by the interface",
                k.received, k.dropped, k.if_dropped
            );
            if k.dropped + k.if_dropped > 0 {
                let _ = writeln!(
                    out,
                    "WARNING: packets were dropped during capture; a missing packet can hide a pattern, so some verdicts may be wrong or missing"
                );
            }
        }
    }
}
