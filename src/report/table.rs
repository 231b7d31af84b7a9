//! The verdict table for people (comfy-table): flagged flows (or all with `--all`), what to
//! change, and a summary of every flow by verdict and every packet by what became of it.

use std::collections::BTreeMap;
use std::fmt::Write;

use comfy_table::{Attribute, Cell, Color, ContentArrangement, Table, presets};

use super::{Render, utc};
use crate::detect::Verdict;
use crate::time::human;
use crate::{Analysis, FlowReport};

pub struct TableReport {
    pub all: bool,
    pub color: bool,
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
            self.write_fixes(&mut out, analysis);
        }
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
        if !self.color {
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

    /// One line per distinct fix, naming the flows it is for.
    fn write_fixes(&self, out: &mut String, analysis: &Analysis) {
        let mut fixes: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for flow in &analysis.flows {
            if let Some(fix) = &flow.finding.fix {
                fixes.entry(fix).or_default().push(flow.id);
            }
        }
        if fixes.is_empty() {
            return;
        }
        let _ = writeln!(out, "What to change:");
        for (fix, ids) in fixes {
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "  flow {}: {fix}", ids.join(", "));
        }
        let _ = writeln!(out);
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
