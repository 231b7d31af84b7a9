//! The report for people: per server with a failure, the diagnosis first (what happened,
//! the timer measured, the likely culprit, the one change, the near misses); then the
//! flagged flows (or all with `--all`) in short columns with each evidence sentence on its
//! own lines, fitted to a width; with `--explain`, the packet timelines and per server every
//! fitting product and every client library's setting; last a summary of every flow by
//! verdict and every packet by what became of it.

use std::fmt::Write;

use super::{Render, utc};
use crate::advice::ServerAdvice;
use crate::detect::{Evidence, Verdict};
use crate::time::human;
use crate::{Analysis, FlowReport};

pub struct TableReport {
    pub all: bool,
    pub color: bool,
    pub explain: bool,
    /// The columns to fit; None: no limit, each sentence on one line.
    pub width: Option<usize>,
}

impl Render for TableReport {
    fn render(&self, analysis: &Analysis) -> String {
        let mut out = String::new();
        self.write_diagnosis(&mut out, analysis);
        let listed: Vec<&FlowReport> = analysis
            .flows
            .iter()
            .filter(|f| self.all || f.finding.verdict.flagged())
            .collect();
        self.write_flows(&mut out, analysis, &listed);
        if self.explain {
            self.write_timelines(&mut out, analysis);
            self.write_servers(&mut out, analysis);
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

/// The labels of a diagnosis block's lines are this wide, so their text lines up.
const LABEL: usize = 9;

/// Spaces between the table's columns.
const GAP: &str = "  ";

impl TableReport {
    /// Text broken at spaces into lines of at most the width (no limit: one line), the
    /// first begun with `first`, the others with `rest`. A word longer than a line stays
    /// whole: an address or a verdict name never breaks.
    fn wrap(&self, out: &mut String, first: &str, rest: &str, text: &str) {
        let Some(width) = self.width else {
            let _ = writeln!(out, "{first}{text}");
            return;
        };
        let mut line = first.to_string();
        let mut line_len = visible_len(first);
        let mut empty = true;
        for word in unbreakable_words(text) {
            let word = word.as_str();
            let word_len = visible_len(word);
            if !empty && line_len + 1 + word_len > width {
                let _ = writeln!(out, "{line}");
                line = rest.to_string();
                line_len = visible_len(rest);
                empty = true;
            }
            if !empty {
                line.push(' ');
                line_len += 1;
            }
            line.push_str(word);
            line_len += word_len;
            empty = false;
        }
        let _ = writeln!(out, "{line}");
    }

    /// One labelled line of a diagnosis block, wrapped under its own text.
    fn labelled(&self, out: &mut String, label: &str, text: &str) {
        let first = format!("  {label:<LABEL$} ");
        let rest = " ".repeat(first.len());
        self.wrap(out, &first, &rest, text);
    }

    fn bold(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Per server with a failure (every measured server with `--all`), before any table:
    /// what happened, the timer measured, the likely culprit, the one change to make, and
    /// the reuses that got lucky. A capture without failures says so in one line, and names
    /// the servers whose reuses came close.
    fn write_diagnosis(&self, out: &mut String, analysis: &Analysis) {
        if analysis.flagged() == 0 {
            let flows = analysis.total_flows();
            let _ = writeln!(
                out,
                "No flow matches a failure pattern ({flows} flow{} analysed).",
                if flows == 1 { "" } else { "s" }
            );
            for server in &analysis.servers {
                if let (Some(near), Some(k)) = (&server.near_misses, &server.keepalive) {
                    // No failure yet, but the race is a round trip away.
                    let text = format!(
                        "{}: {}; keep the {}'s max idle time below {:.2} s",
                        server.server,
                        near_miss_sentence(near, k.median_s, false),
                        if server.protocol.is_some() {
                            "pool"
                        } else {
                            "client"
                        },
                        k.median_s
                    );
                    self.wrap(out, "", "  ", &text);
                }
            }
            let _ = writeln!(out);
            return;
        }
        for server in &analysis.servers {
            if server.failures() == 0 && !self.all {
                continue;
            }
            self.diagnose(out, server);
            let _ = writeln!(out);
        }
    }

    fn diagnose(&self, out: &mut String, server: &ServerAdvice) {
        let heading = format!("{}: {}", server.server, self.bold(&what_happened(server)));
        self.wrap(out, "", "  ", &heading);
        if let Some(k) = &server.keepalive {
            let mut timer = format!(
                "the server closes idle connections after {:.2} s (n={}, {:.3}-{:.3} s)",
                k.median_s, k.n, k.min_s, k.max_s
            );
            if let Some(n) = server.announced_keepalive_s {
                let _ = write!(timer, "; it announces Keep-Alive: timeout={n}");
            }
            self.labelled(out, "timer", &timer);
        }
        if let Some(b) = &server.middlebox {
            let range = bracket(b.survived_s, b.reset_s);
            let who = match (b.rst_sent_by, b.rst_ttl, b.server_ttl) {
                (Some("middlebox"), Some(r), Some(s)) if r != s => {
                    format!("; the RST came from a middlebox (TTL {r}, the server's {s})")
                }
                (Some("middlebox"), _, _) => {
                    "; the RST came from a middlebox (sooner than a round trip)".to_string()
                }
                (Some("server"), _, _) => "; the server itself sent the RST".to_string(),
                _ => String::new(),
            };
            self.labelled(
                out,
                "timer",
                &format!("a middlebox forgets connections after a silence of {range}{who}"),
            );
        }
        if let Some(b) = &server.blackhole {
            let range = bracket(b.survived_s, b.dropped_s);
            self.labelled(
                out,
                "timer",
                &format!(
                    "a middlebox drops connections silently after a silence of {range}; a request hung for up to {:.1} s",
                    b.longest_unanswered_s
                ),
            );
        }
        if let (Some(p), Some(_), true) = (
            server.protocol,
            &server.keepalive,
            server.keepalive_candidates.is_empty(),
        ) {
            // No default fits: the server's idle timeout was set on purpose.
            self.labelled(
                out,
                "likely",
                &format!(
                    "the server's own idle timeout, configured ({})",
                    crate::advice::idle_timer_names(p)
                ),
            );
        }
        for candidates in [
            &server.keepalive_candidates,
            &server.middlebox_candidates,
            &server.blackhole_candidates,
        ] {
            if !candidates.is_empty() {
                self.labelled(out, "likely", &likely(candidates));
            }
        }
        if let Some(change) = the_change(server) {
            self.labelled(out, "change", &change);
        } else if let Some(advice) = server.advice.first() {
            self.labelled(out, "change", advice);
        }
        if let (Some(near), Some(k)) = (&server.near_misses, &server.keepalive) {
            self.labelled(
                out,
                "near miss",
                &near_miss_sentence(near, k.median_s, server.races > 0),
            );
        }
        if server.sent_after_fin > 0 {
            let text = match server.protocol {
                Some(_) => format!(
                    "{} of {} {} were sent after the server's close had arrived: the pool lends connections without checking them",
                    server.sent_after_fin,
                    server.races,
                    nouns(server).1
                ),
                None => format!(
                    "{} of {} requests were sent after the server's FIN had arrived: the pool reuses connections without checking them",
                    server.sent_after_fin, server.races
                ),
            };
            self.labelled(out, "also", &text);
        }
    }

    /// The listed flows, per server: a heading naming the server (and the client host, when
    /// every row shares it), short columns, and each flow's evidence on its own lines.
    fn write_flows(&self, out: &mut String, analysis: &Analysis, listed: &[&FlowReport]) {
        let mut servers: Vec<std::net::SocketAddr> =
            analysis.servers.iter().map(|s| s.server).collect();
        for flow in listed {
            if !servers.contains(&flow.server) {
                servers.push(flow.server);
            }
        }
        for server in servers {
            let rows: Vec<&FlowReport> = listed
                .iter()
                .copied()
                .filter(|f| f.server == server)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let one_host = rows.iter().all(|f| f.client.ip() == rows[0].client.ip());
            let flagged = rows.iter().filter(|f| f.finding.verdict.flagged()).count();
            let mut heading = format!("Flows to {server}");
            if one_host {
                let _ = write!(heading, " from {}", rows[0].client.ip());
            }
            if rows.len() > flagged {
                let _ = write!(heading, ": {} flows, {flagged} flagged", rows.len());
            } else {
                let _ = write!(heading, ": {flagged} flagged");
            }
            self.wrap(out, "", "  ", &heading);
            let near_misses = analysis
                .servers
                .iter()
                .find(|s| s.server == server)
                .and_then(|s| s.near_misses.as_ref())
                .map_or(&[][..], |n| &n.flows[..]);
            self.write_rows(out, &rows, one_host, near_misses);
            let _ = writeln!(out);
        }
    }

    /// `near_misses`: flows (`--all` lists them) whose reuse came within a round trip of
    /// the server's timer, said in their deciding figure.
    fn write_rows(
        &self,
        out: &mut String,
        rows: &[&FlowReport],
        one_host: bool,
        near_misses: &[u64],
    ) {
        let cells: Vec<[String; 5]> = rows
            .iter()
            .map(|f| {
                [
                    f.id.to_string(),
                    if one_host {
                        f.client.port().to_string()
                    } else {
                        f.client.to_string()
                    },
                    request_idle(&f.finding.evidence, f.finding.verdict),
                    f.finding.verdict.name().to_string(),
                    if near_misses.contains(&f.id) {
                        "near miss of the timer".to_string()
                    } else {
                        deciding_figure(&f.finding.evidence, f.finding.verdict)
                    },
                ]
            })
            .collect();
        let header = [
            "Flow",
            if one_host { "Port" } else { "Client" },
            "Idle",
            "Verdict",
            "Deciding figure",
        ];
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 5], verdict: Option<Verdict>| {
            let mut line = format!("  {:>w$}", cells[0], w = widths[0]);
            for (i, cell) in cells.iter().enumerate().skip(1) {
                line.push_str(GAP);
                let padded = if i == 4 {
                    cell.to_string()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                };
                match verdict {
                    Some(v) if i == 3 && self.color => {
                        let code = if v.flagged() { "1;31" } else { "32" };
                        let _ = write!(line, "\x1b[{code}m{padded}\x1b[0m");
                    }
                    _ => line.push_str(&padded),
                }
            }
            line.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", self.bold(&line(header, None)));
        // The evidence lines up under the second column, clear of the flow numbers.
        let indent = " ".repeat(2 + widths[0] + GAP.len());
        for (flow, row) in rows.iter().zip(&cells) {
            let row = [&row[0], &row[1], &row[2], &row[3], &row[4]].map(String::as_str);
            let _ = writeln!(out, "{}", line(row, Some(flow.finding.verdict)));
            self.wrap(out, &indent, &indent, &flow.finding.sentence);
        }
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

    /// `--explain`, per server with flagged flows (every measured server with `--all`):
    /// everything measured, every product that fits with its source, every piece of advice,
    /// and the setting in each common client library.
    fn write_servers(&self, out: &mut String, analysis: &Analysis) {
        for server in &analysis.servers {
            if server.failures() == 0 && !self.all {
                continue;
            }
            let count = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            let mut failures = Vec::new();
            if server.races > 0 {
                let race = match server.protocol {
                    Some(_) => "idle-timeout race",
                    None => "keep-alive race",
                };
                failures.push(count(server.races, race));
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
            let item = |out: &mut String, text: &str| self.wrap(out, "  ", "      ", text);
            if let Some(k) = &server.keepalive {
                let mut announced = server
                    .announced_keepalive_s
                    .map(|n| format!("; announces Keep-Alive: timeout={n}"))
                    .unwrap_or_default();
                if server.announced_connection_close {
                    announced.push_str("; sent Connection: close on some responses");
                }
                item(
                    out,
                    &format!(
                        "{}: closes idle connections after {:.2} s (n={}, {:.3}-{:.3} s){announced}",
                        if server.protocol.is_some() {
                            "idle timeout"
                        } else {
                            "keep-alive"
                        },
                        k.median_s,
                        k.n,
                        k.min_s,
                        k.max_s
                    ),
                );
            }
            // Both brackets start at the longest silence that still worked, when one did.
            let survived = |s: Option<f64>| {
                s.map(|s| format!("survived {s:.1} s, "))
                    .unwrap_or_default()
            };
            if let Some(b) = &server.middlebox {
                let survived = survived(b.survived_s);
                item(
                    out,
                    &format!(
                        "middlebox: forgets idle connections: {survived}reset after {:.1} s",
                        b.reset_s
                    ),
                );
            }
            if let Some(b) = &server.blackhole {
                let survived = survived(b.survived_s);
                item(
                    out,
                    &format!(
                        "middlebox: drops idle connections silently: {survived}no answer after {:.1} s (a request went unanswered for up to {:.1} s)",
                        b.dropped_s, b.longest_unanswered_s
                    ),
                );
            }
            for candidates in [
                &server.keepalive_candidates,
                &server.middlebox_candidates,
                &server.blackhole_candidates,
            ] {
                for c in candidates {
                    item(
                        out,
                        &format!(
                            "likely: {}, default {} s ({}); source: {}",
                            c.name, c.default_s, c.fit, c.source
                        ),
                    );
                }
            }
            if let (Some(near), Some(k)) = (&server.near_misses, &server.keepalive) {
                item(
                    out,
                    &format!(
                        "near misses: {}",
                        near_miss_sentence(near, k.median_s, server.races > 0)
                    ),
                );
            }
            for advice in &server.advice {
                item(out, &format!("fix: {advice}"));
            }
            let setting = |out: &mut String, s: &crate::advice::clients::Setting| {
                self.wrap(
                    out,
                    "    ",
                    "        ",
                    &format!("{}: {}", s.client, s.setting),
                );
            };
            for s in &server.client_settings {
                setting(out, s);
            }
            if let (Some(r), false) = (
                server.read_timeout_s,
                server.read_timeout_settings.is_empty(),
            ) {
                let _ = writeln!(out, "  read timeout of {r} s, per client:");
                for s in &server.read_timeout_settings {
                    setting(out, s);
                }
            }
            let _ = writeln!(out);
        }
    }

    fn write_summary(&self, out: &mut String, analysis: &Analysis) {
        let span = match (analysis.first_packet, analysis.last_packet) {
            (Some(first), Some(last)) => {
                let (from, to) = (utc(first), utc(last));
                // The same day is said once.
                let to = match (from.split_once(' '), to.split_once(' ')) {
                    (Some((day, _)), Some((last_day, time))) if day == last_day => time.to_string(),
                    _ => to,
                };
                format!(", {from} to {to} UTC ({})", human(last.since(first)))
            }
            _ => String::new(),
        };
        self.wrap(
            out,
            "",
            "  ",
            &format!(
                "Capture: {} ({}){span}",
                analysis.source, analysis.link_type
            ),
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

/// Units a figure keeps on its line: "380.0 s" never ends one line and begins the next.
const UNITS: &[&str] = &["s", "ms", "min", "h", "bytes"];

/// The words of `text` as the wrap may break between them: a unit stays with its number.
fn unbreakable_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let core = word.trim_end_matches(|c: char| c.is_ascii_punctuation());
        let after_number = words
            .last()
            .and_then(|w| w.chars().last())
            .is_some_and(|c| c.is_ascii_digit());
        match words.last_mut() {
            Some(previous) if after_number && UNITS.contains(&core) => {
                previous.push(' ');
                previous.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
    }
    words
}

/// The columns text takes on a terminal: its characters less colour escapes (`ESC [ ... m`).
fn visible_len(text: &str) -> usize {
    let mut len = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (false, _) => len += 1,
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    len
}

/// What happened on a server, in one sentence: how many reuses of an idle connection met
/// each failure.
fn what_happened(server: &ServerAdvice) -> String {
    let mut parts = Vec::new();
    let of_reuses = |n: u64| {
        if server.reuses >= n && server.reuses > 0 {
            let s = if server.reuses == 1 { "" } else { "s" };
            format!("{n} of {} reuse{s}", server.reuses)
        } else {
            format!("{n} request{}", if n == 1 { "" } else { "s" })
        }
    };
    if server.races > 0 {
        let n = if server.reuses_raced == server.races {
            of_reuses(server.races)
        } else {
            format!(
                "{} request{}",
                server.races,
                if server.races == 1 { "" } else { "s" }
            )
        };
        let close = match server.protocol {
            Some(_) => "idle-timeout close",
            None => "keep-alive close",
        };
        parts.push(format!(
            "{n} of an idle connection met the server's {close}"
        ));
    }
    if server.nat_resets > 0 {
        parts.push(format!(
            "{} after a long silence {} answered by RST: a middlebox had forgotten the connection",
            of_reuses(server.nat_resets),
            if server.nat_resets == 1 {
                "was"
            } else {
                "were"
            }
        ));
    }
    if server.idle_blackholes > 0 {
        parts.push(format!(
            "{} after a long silence got nothing back, not even an ACK: a middlebox dropped {}",
            of_reuses(server.idle_blackholes),
            if server.idle_blackholes == 1 {
                "it"
            } else {
                "them"
            }
        ));
    }
    if parts.is_empty() {
        return "no failures".to_string();
    }
    parts.join("; ")
}

/// A middlebox's timer as the capture brackets it.
fn bracket(survived: Option<f64>, failed: f64) -> String {
    match survived {
        Some(s) => format!("between {s:.1} s and {failed:.1} s"),
        None => format!("at most {failed:.1} s"),
    }
}

/// The products whose default fits, by name, with the defaults they have.
fn likely(candidates: &[crate::advice::Candidate]) -> String {
    let names: Vec<&str> = candidates.iter().map(|c| c.name).collect();
    let names = match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    let min = candidates
        .iter()
        .map(|c| c.default_s)
        .fold(f64::INFINITY, f64::min);
    let max = candidates.iter().map(|c| c.default_s).fold(0.0, f64::max);
    let defaults = if min == max {
        format!("default {min} s")
    } else {
        format!("defaults {min}-{max} s")
    };
    format!("{names}; {defaults}")
}

/// The one change to make: the identified client's own setting when the client is known,
/// else the generic setting and where the per-library list is. For a database or cache, the
/// pool's max idle below the server's idle timeout or the middlebox's timer, led by the
/// identified client's pool or driver (the first of its settings listed: HikariCP's for the
/// JDBC drivers).
fn the_change(server: &ServerAdvice) -> Option<String> {
    let max_idle = server.max_idle_s?;
    let db = server.protocol.is_some();
    let (owner, timer) = if db {
        ("pool", "idle timeout")
    } else {
        ("client", "keep-alive")
    };
    let mut change = format!("set the {owner}'s max idle time to {max_idle} s");
    if let (Some(k), true) = (&server.keepalive, server.races > 0) {
        let _ = write!(change, ", below the server's {:.2} s {timer}", k.median_s);
    } else {
        change.push_str(", below the middlebox's idle timer");
    }
    if let Some(k) = server.tcp_keepalive_s {
        let _ = write!(
            change,
            ", or enable TCP keepalive with an idle of at most {k} s"
        );
    }
    if let Some(r) = server.read_timeout_s {
        let _ = write!(
            change,
            "; and a read timeout of {r} s, so that a dropped {} fails instead of hanging",
            nouns(server).0
        );
    }
    let identified = server.identified_client().and_then(|client| {
        let wanted = crate::identify::settings_for(client);
        server
            .client_settings
            .iter()
            .find(|s| {
                if db {
                    wanted.contains(&s.client)
                } else {
                    s.client == client
                }
            })
            .map(|s| format!("{}: {}", s.client, s.setting))
    });
    let list = if db {
        "the setting in each pool and driver, and the server's"
    } else {
        "the setting in each client library"
    };
    Some(match identified {
        Some(setting) => format!("{setting} ({change})"),
        None => format!("{change} (--explain: {list})"),
    })
}

/// What a server's requests are called, one and many: a database's queries, a cache's
/// commands.
fn nouns(server: &ServerAdvice) -> (&'static str, &'static str) {
    server
        .protocol
        .map_or(("request", "requests"), crate::advice::request_nouns)
}

/// "2 more reuses were within 49 ms of the 5.00 s close and got lucky (flows 6, 5)".
fn near_miss_sentence(near: &crate::advice::NearMiss, timer_s: f64, more: bool) -> String {
    let n = near.count;
    let within = human((near.within_s * 1e9).round() as crate::time::Nanos);
    let flows: Vec<String> = near.flows.iter().map(u64::to_string).collect();
    let named = if flows.len() as u64 == n {
        String::new()
    } else {
        ", among them".to_string()
    };
    format!(
        "{}{n} {}reuse{} {} within {within} of the {timer_s:.2} s close and got lucky (flow{}{named} {})",
        if near.lower_bound { "at least " } else { "" },
        if more { "more " } else { "" },
        if n == 1 { "" } else { "s" },
        if n == 1 { "was" } else { "were" },
        if flows.len() == 1 { "" } else { "s" },
        flows.join(", ")
    )
}

/// The idle before the flow's last request, as its verdict judged it: since the last
/// payload for a race (what the server's keep-alive timer counts), since the last packet
/// for a middlebox's timer.
fn request_idle(evidence: &Evidence, verdict: Verdict) -> String {
    let seconds = match verdict {
        Verdict::NatIdleReset | Verdict::IdleBlackhole => evidence.request_silence_s,
        _ => evidence.request_idle_s,
    };
    seconds.map_or_else(
        || "-".to_string(),
        |s| human((s * 1e9).round() as crate::time::Nanos),
    )
}

/// The figure that decided the verdict, short: how the request met the FIN, how soon the
/// RST came and with which TTL, how often a dropped request was sent again.
fn deciding_figure(evidence: &Evidence, verdict: Verdict) -> String {
    let ms = |s: f64| human((s * 1e9).round() as crate::time::Nanos);
    match verdict {
        Verdict::KeepaliveRace => match (evidence.crossing, evidence.request_minus_fin_s) {
            (Some("crossed_in_flight"), Some(d)) => format!("{} before the FIN", ms(d.abs())),
            (Some("sent_after_fin"), Some(d)) => format!("{} after the FIN", ms(d.abs())),
            (Some(c), _) => c.replace('_', " "),
            _ => "-".to_string(),
        },
        Verdict::NatIdleReset => {
            let mut figure = evidence
                .request_to_rst_s
                .map_or_else(|| "RST".to_string(), |s| format!("RST in {}", ms(s)));
            match (evidence.rst_ttl, evidence.server_ttl) {
                (Some(r), Some(s)) => {
                    let _ = write!(figure, ", TTL {r} (server {s})");
                }
                (Some(r), None) => {
                    let _ = write!(figure, ", TTL {r}");
                }
                _ => {}
            }
            figure
        }
        Verdict::IdleBlackhole => {
            let n = evidence.request_retransmissions.unwrap_or(0);
            let mut figure = format!("{n} retransmission{}", if n == 1 { "" } else { "s" });
            if let Some(span) = evidence.retransmission_span_s {
                let _ = write!(figure, " in {}", ms(span));
            }
            figure
        }
        Verdict::IdleClosed => evidence
            .server_close_idle_s
            .map_or_else(|| "-".to_string(), |s| format!("closed after {}", ms(s))),
        _ => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_keeps_its_unit_and_escapes_take_no_room() {
        assert_eq!(
            unbreakable_words("after 380.0 s, then 25 ms (TTL 64) s"),
            ["after", "380.0 s,", "then", "25 ms", "(TTL", "64)", "s"]
        );
        assert_eq!(visible_len("\x1b[1;31mkeepalive_race\x1b[0m"), 14);
    }

    #[test]
    fn wrapping_breaks_at_spaces_only() {
        let report = TableReport {
            all: false,
            color: false,
            explain: false,
            width: Some(20),
        };
        let mut out = String::new();
        report.wrap(
            &mut out,
            "",
            "  ",
            "a 198.19.2.2:8080 keepalive_race after 380.0 s",
        );
        assert_eq!(
            out,
            "a 198.19.2.2:8080\n  keepalive_race\n  after 380.0 s\n"
        );
    }

    fn diagnosis(server: &ServerAdvice) -> String {
        let report = TableReport {
            all: false,
            color: false,
            explain: false,
            width: Some(1000),
        };
        let mut out = String::new();
        report.diagnose(&mut out, server);
        out
    }

    /// A database's diagnosis speaks of its idle timeout and the pool, never keep-alive.
    #[test]
    fn a_postgres_race_is_diagnosed_as_the_servers_idle_timeout_and_the_pools_max_idle() {
        use crate::flow::Protocol;
        let out = diagnosis(&crate::advice::example(Protocol::Postgres, 5.004, 2));
        assert!(
            out.contains("2 of 2 reuses of an idle connection met the server's idle-timeout close"),
            "{out}"
        );
        assert!(
            out.contains("likely    the server's own idle timeout, configured (PostgreSQL idle_session_timeout"),
            "{out}"
        );
        assert!(
            out.contains("change    HikariCP: maxLifetime=4000 "),
            "{out}"
        );
        assert!(
            out.contains(
                "(set the pool's max idle time to 4 s, below the server's 5.00 s idle timeout)"
            ),
            "{out}"
        );
        assert!(!out.contains("keep-alive"), "{out}");
        let http = diagnosis(&crate::advice::example(Protocol::Http, 5.004, 2));
        assert!(http.contains("met the server's keep-alive close"), "{http}");
        assert!(
            http.contains(
                "set the client's max idle time to 4 s, below the server's 5.00 s keep-alive"
            ),
            "{http}"
        );
    }

    /// `--explain` on a database server: the idle timeout, the pools' settings and the
    /// server's own, and no HTTP client's.
    #[test]
    fn explain_lists_the_pools_and_the_servers_settings_for_a_database() {
        use crate::flow::Protocol;
        let analysis = crate::analysis::Analysis {
            source: "made up".to_string(),
            link_type: "EN10MB",
            first_packet: None,
            last_packet: None,
            flows: Vec::new(),
            verdicts: Default::default(),
            servers: vec![crate::advice::example(Protocol::Postgres, 5.004, 2)],
            packets: Default::default(),
            evicted: 0,
            kernel: None,
            warnings: Vec::new(),
        };
        let report = TableReport {
            all: false,
            color: false,
            explain: true,
            width: Some(1000),
        };
        let mut out = String::new();
        report.write_servers(&mut out, &analysis);
        assert!(
            out.starts_with("Server 198.19.2.2:5432: 2 idle-timeout races\n"),
            "{out}"
        );
        assert!(
            out.contains("  idle timeout: closes idle connections after 5.00 s"),
            "{out}"
        );
        assert!(
            out.contains("  fix: set the pool's max idle time to 4 s"),
            "{out}"
        );
        assert!(out.contains("    HikariCP: maxLifetime=4000 "), "{out}");
        assert!(
            out.contains("    SQLAlchemy: create_engine(url, pool_recycle=4, pool_pre_ping=True)"),
            "{out}"
        );
        assert!(
            out.contains("    PostgreSQL server: idle_session_timeout (off by default)"),
            "{out}"
        );
        assert!(out.contains("    PgBouncer: client_idle_timeout"), "{out}");
        assert!(
            !out.contains("Reactor Netty") && !out.contains("keep-alive"),
            "{out}"
        );
    }
}
