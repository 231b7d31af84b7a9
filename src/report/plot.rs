//! `--plot FILE.svg`: per server, how long connections sat idle before each reuse, one
//! histogram row per outcome on a shared log time axis, with the measured keep-alive
//! timer, the middlebox brackets and the known defaults marked. Drawn from the counts the
//! Advisor keeps (`ServerAdvice::reuse_histogram`), so the picture, and its size, are the
//! same for ten reuses and for millions. Plain SVG, written here.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::Analysis;
use crate::advice::histogram::IdleHistogram;
use crate::advice::{Candidate, Outcome, ServerAdvice, known};

/// Panels drawn at most, busiest failure first (the order of `Analysis::servers`).
const MAX_PANELS: usize = 6;
const WIDTH: f64 = 1000.0;
/// The histogram rows' left and right ends; row labels sit left of `LEFT`.
const LEFT: f64 = 200.0;
const RIGHT: f64 = 970.0;
const ROW_HEIGHT: f64 = 52.0;
const ROW_GAP: f64 = 8.0;
/// Rows of marker tags above the histogram, so that close markers keep legible tags.
const TAG_LEVELS: usize = 4;
const TAG_HEIGHT: f64 = 14.0;
const KEY_LINE: f64 = 17.0;
/// Characters of a key line before it wraps (12 px text across the panel).
const KEY_WRAP: usize = 135;

const MEASURED: &str = "#1F77B4";
const SURVIVED: &str = "#2E8B57";
const DEFAULT_FITS: &str = "#9467BD";
const OTHER_DEFAULT: &str = "#9A9A9A";

/// How each outcome is named and coloured.
fn style(outcome: Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::Answered => ("answered", "#2E8B57"),
        Outcome::Race => ("keep-alive race", "#D62728"),
        Outcome::Reset => ("reset (NAT idle)", "#FF7F0E"),
        Outcome::Blackhole => ("no answer (blackhole)", "#8C564B"),
        Outcome::Unanswered => ("unanswered", "#7F7F7F"),
    }
}

/// A vertical line: a measured value or a known default, with what it means.
struct Marker {
    seconds: f64,
    text: String,
    color: &'static str,
    dashed: bool,
}

/// A shaded stretch of the time axis: where a middlebox's timer must lie.
struct Bracket {
    from: Option<f64>,
    to: f64,
    text: String,
    color: &'static str,
}

pub fn write_svg(path: &Path, analysis: &Analysis) -> Result<()> {
    std::fs::write(path, render(analysis)).with_context(|| format!("--plot {}", path.display()))
}

/// The whole SVG document.
pub fn render(analysis: &Analysis) -> String {
    let drawn: Vec<&ServerAdvice> = analysis
        .servers
        .iter()
        .filter(|s| !s.reuse_histogram.is_empty())
        .collect();
    let mut body = String::new();
    let mut height = 0.0;
    for server in drawn.iter().take(MAX_PANELS) {
        height += panel(&mut body, height, server);
    }
    let mut notes = Vec::new();
    if drawn.is_empty() {
        notes.push("No request reused an idle connection in this capture.".to_string());
    } else if drawn.len() > MAX_PANELS {
        notes.push(format!(
            "{} more servers with reuses are not drawn; choose one with --target.",
            drawn.len() - MAX_PANELS
        ));
    }
    for note in notes {
        height += 30.0;
        text(&mut body, 40.0, height, 15.0, "start", "#000", &note);
    }
    height += 20.0;
    let mut svg = String::with_capacity(body.len() + 400);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#FFFFFF"/>"##
    );
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

/// Draws one server's panel from `top`; its height.
fn panel(out: &mut String, top: f64, server: &ServerAdvice) -> f64 {
    let histogram = &server.reuse_histogram;
    let (markers, brackets) = markers(server);
    let axis = Axis::fitting(histogram, &markers, &brackets);
    let others = other_defaults(&axis, &markers, server);

    let mut y = top + 26.0;
    let reuses = histogram.reuses();
    text(
        out,
        20.0,
        y,
        16.0,
        "start",
        "#000",
        &format!(
            "{}: idle before each reuse of a pooled connection ({} {})",
            server.server,
            thousands(reuses),
            if reuses == 1 { "reuse" } else { "reuses" }
        ),
    );
    y += 18.0;
    text(
        out,
        20.0,
        y,
        12.0,
        "start",
        "#555",
        "one reuse per flow (its last request); bars count reuses per bin of idle time; each row has its own scale",
    );
    let tags_top = y + 8.0;
    let rows_top = tags_top + TAG_HEIGHT * TAG_LEVELS as f64 + 4.0;
    let outcomes: Vec<Outcome> = Outcome::ALL
        .into_iter()
        .filter(|o| histogram.total(*o) > 0)
        .collect();
    let rows_bottom = rows_top + outcomes.len() as f64 * (ROW_HEIGHT + ROW_GAP) - ROW_GAP;

    // Behind everything: the brackets, then the grid.
    for bracket in &brackets {
        let x0 = bracket.from.map_or(LEFT, |s| axis.x(s));
        let x1 = axis.x(bracket.to);
        let _ = writeln!(
            out,
            r#"<rect x="{x0:.1}" y="{rows_top:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.14"/>"#,
            (x1 - x0).max(1.0),
            rows_bottom - rows_top,
            bracket.color
        );
    }
    axis.draw_grid(out, rows_top, rows_bottom);

    for seconds in &others {
        let x = axis.x(*seconds);
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{rows_top:.1}" x2="{x:.1}" y2="{rows_bottom:.1}" stroke="{OTHER_DEFAULT}" stroke-width="1" stroke-dasharray="1 3"/>"#
        );
    }
    let mut level_ends = [f64::MIN; TAG_LEVELS];
    for marker in &markers {
        let x = axis.x(marker.seconds);
        let tag = seconds_figure(marker.seconds);
        let half = tag.len() as f64 * 3.3 + 2.0;
        // The first level with room for the tag; with none, the line goes untagged (the
        // key still names it) rather than under another tag.
        let level = (0..TAG_LEVELS).find(|l| level_ends[*l] < x - half);
        if let Some(level) = level {
            level_ends[level] = x + half;
        }
        let tag_y = tags_top + TAG_HEIGHT * (level.unwrap_or(TAG_LEVELS - 1) as f64 + 1.0) - 3.0;
        let dash = if marker.dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{rows_bottom:.1}" stroke="{}" stroke-width="1.6"{dash}/>"#,
            tag_y + 2.0,
            marker.color
        );
        if level.is_some() {
            // A white outline keeps the tag legible where another marker's line crosses it.
            let _ = writeln!(
                out,
                r##"<text x="{x:.1}" y="{tag_y:.1}" font-size="11" text-anchor="middle" fill="{}" stroke="#FFFFFF" stroke-width="3" paint-order="stroke">{}</text>"##,
                marker.color,
                escape(&tag)
            );
        }
    }

    // The bars over the lines: a race bar sits right on the timer it met.
    for (row, outcome) in outcomes.iter().enumerate() {
        let row_top = rows_top + row as f64 * (ROW_HEIGHT + ROW_GAP);
        draw_row(out, &axis, histogram, *outcome, row_top);
    }

    let mut y = axis.draw_ticks(out, rows_bottom);
    text(
        out,
        (LEFT + RIGHT) / 2.0,
        y + 16.0,
        12.0,
        "middle",
        "#000",
        "idle before the request (log scale)",
    );
    y += 26.0;

    // The key: what each line and shade means.
    for marker in &markers {
        let line = format!("{}: {}", seconds_figure(marker.seconds), marker.text);
        y = key_entry(out, y, &line, |out, y| {
            let dash = if marker.dashed {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            };
            let _ = writeln!(
                out,
                r#"<line x1="24" y1="{y:.1}" x2="44" y2="{y:.1}" stroke="{}" stroke-width="2"{dash}/>"#,
                marker.color
            );
        });
    }
    for bracket in &brackets {
        y = key_entry(out, y, &bracket.text, |out, y| {
            let _ = writeln!(
                out,
                r#"<rect x="24" y="{:.1}" width="20" height="10" fill="{}" fill-opacity="0.3"/>"#,
                y - 5.0,
                bracket.color
            );
        });
    }
    if !others.is_empty() {
        let names: Vec<String> = others
            .iter()
            .map(|s| {
                let mut names = known_for(server)
                    .filter(|k| k.verified && k.seconds == *s)
                    .map(|k| short(k.name));
                let first = names.next().unwrap_or_default();
                match names.count() {
                    0 => format!("{} {first}", seconds_figure(*s)),
                    more => format!("{} {first} +{more}", seconds_figure(*s)),
                }
            })
            .collect();
        let line = format!("other known defaults in view: {}", names.join("; "));
        y = key_entry(out, y, &line, |out, y| {
            let _ = writeln!(
                out,
                r#"<line x1="24" y1="{y:.1}" x2="44" y2="{y:.1}" stroke="{OTHER_DEFAULT}" stroke-width="1.5" stroke-dasharray="1 3"/>"#
            );
        });
    }
    y + 24.0 - top
}

/// One outcome's histogram row: its label on the left, its bars scaled to its tallest.
fn draw_row(out: &mut String, axis: &Axis, histogram: &IdleHistogram, outcome: Outcome, top: f64) {
    let (name, color) = style(outcome);
    let bottom = top + ROW_HEIGHT;
    let total = histogram.total(outcome);
    let tallest = histogram.bins(outcome).map(|b| b.2).max().unwrap_or(1);
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top:.1}" width="{:.1}" height="{ROW_HEIGHT}" fill="none" stroke="#D0D0D0"/>"##,
        RIGHT - LEFT
    );
    text(out, LEFT - 10.0, top + 17.0, 13.0, "end", color, name);
    text(
        out,
        LEFT - 10.0,
        top + 32.0,
        11.0,
        "end",
        "#333",
        &format!(
            "{} {}",
            thousands(total),
            if total == 1 { "reuse" } else { "reuses" }
        ),
    );
    text(
        out,
        LEFT - 10.0,
        top + 46.0,
        10.0,
        "end",
        "#777",
        &format!("tallest bar: {}", thousands(tallest)),
    );
    // One path for the whole row: a bar per bin in use, at least 2 px tall so that a
    // single reuse shows beside a bin of thousands.
    let mut path = String::new();
    for (low, high, count) in histogram.bins(outcome) {
        let (x0, x1) = (axis.x(low), axis.x(high));
        let width = (x1 - x0 - 0.6).max(1.0);
        let height = (count as f64 / tallest as f64 * (ROW_HEIGHT - 4.0)).max(2.0);
        let _ = write!(
            path,
            "M{x0:.1} {bottom:.1}v-{height:.1}h{width:.1}v{height:.1}z"
        );
    }
    let _ = writeln!(out, r#"<path d="{path}" fill="{color}"/>"#);
}

/// The measured lines and the brackets of one server, with what each means.
fn markers(server: &ServerAdvice) -> (Vec<Marker>, Vec<Bracket>) {
    let mut markers = Vec::new();
    let mut brackets = Vec::new();
    if let Some(k) = &server.keepalive {
        let names: Vec<&str> = server
            .keepalive_candidates
            .iter()
            .map(|c| short(c.name))
            .collect();
        let fits = if names.is_empty() {
            String::new()
        } else {
            format!("; fits the default of {}", names.join(", "))
        };
        markers.push(Marker {
            seconds: k.median_s,
            text: format!(
                "the server closes idle connections after {:.2} s (median of {}, {:.2} to {:.2} s){fits}",
                k.median_s, k.n, k.min_s, k.max_s
            ),
            color: MEASURED,
            dashed: false,
        });
    }
    let reset = server.middlebox.as_ref().map(|b| {
        let failed = Marker {
            seconds: b.reset_s,
            text: "the shortest silence answered by a middlebox's RST".to_string(),
            color: style(Outcome::Reset).1,
            dashed: false,
        };
        let what = "the middlebox's idle timer (reset) lies in here";
        (b.survived_s, failed, what, &server.middlebox_candidates)
    });
    let dropped = server.blackhole.as_ref().map(|b| {
        let failed = Marker {
            seconds: b.dropped_s,
            text: "the shortest silence after which nothing came back".to_string(),
            color: style(Outcome::Blackhole).1,
            dashed: false,
        };
        let what = "the idle timer of the middlebox that drops silently lies in here";
        (b.survived_s, failed, what, &server.blackhole_candidates)
    });
    let mut survived_drawn = false;
    for (survived, failed, what, candidates) in reset.into_iter().chain(dropped) {
        if let Some(s) = survived.filter(|_| !survived_drawn) {
            markers.push(Marker {
                seconds: s,
                text: "the longest silence after which a request was still answered".to_string(),
                color: SURVIVED,
                dashed: true,
            });
            survived_drawn = true;
        }
        brackets.push(Bracket {
            from: survived,
            to: failed.seconds,
            text: match survived {
                Some(s) => format!("{what}: between {s:.1} s and {:.1} s", failed.seconds),
                None => format!("{what}: at most {:.1} s", failed.seconds),
            },
            color: failed.color,
        });
        markers.push(failed);
        for (seconds, names) in defaults_by_value(candidates) {
            markers.push(Marker {
                seconds,
                text: format!("a known default inside the bracket: {}", names.join(", ")),
                color: DEFAULT_FITS,
                dashed: true,
            });
        }
    }
    markers.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    (markers, brackets)
}

/// Verified candidates, grouped by their default.
fn defaults_by_value(candidates: &[Candidate]) -> Vec<(f64, Vec<&'static str>)> {
    let mut defaults: Vec<(f64, Vec<&str>)> = Vec::new();
    for c in candidates.iter().filter(|c| c.verified) {
        match defaults.iter_mut().find(|(s, _)| *s == c.default_s) {
            Some((_, names)) => names.push(short(c.name)),
            None => defaults.push((c.default_s, vec![short(c.name)])),
        }
    }
    defaults
}

/// The known defaults a server's timers may be: its protocol's servers and the middleboxes,
/// never a setting that is only named.
fn known_for(server: &ServerAdvice) -> impl Iterator<Item = &'static known::Known> + '_ {
    let protocol = server.protocol.unwrap_or(crate::flow::Protocol::Http);
    known::KNOWN
        .iter()
        .filter(move |k| k.kind != known::Kind::Setting && k.speaks.serves(protocol))
}

/// The verified known defaults in view that no marker already stands for.
fn other_defaults(axis: &Axis, markers: &[Marker], server: &ServerAdvice) -> Vec<f64> {
    let mut values: Vec<f64> = known_for(server)
        .filter(|k| k.verified && axis.shows(k.seconds))
        .map(|k| k.seconds)
        .filter(|s| !markers.iter().any(|m| (m.seconds - s).abs() <= 0.02 * s))
        .collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    values
}

/// The log time axis: whole decades around the reuses and the markers.
struct Axis {
    low_decade: i32,
    high_decade: i32,
}

impl Axis {
    fn fitting(histogram: &IdleHistogram, markers: &[Marker], brackets: &[Bracket]) -> Axis {
        let (mut low, mut high) = histogram.span().unwrap_or((1.0, 10.0));
        for s in markers.iter().map(|m| m.seconds).chain(
            brackets
                .iter()
                .flat_map(|b| b.from.into_iter().chain([b.to])),
        ) {
            low = low.min(s);
            high = high.max(s);
        }
        let low_decade = (low.max(0.01).log10() + 1e-9).floor() as i32;
        let high_decade = ((high.min(1e6).log10() - 1e-9).ceil() as i32).max(low_decade + 1);
        Axis {
            low_decade,
            high_decade,
        }
    }

    fn x(&self, seconds: f64) -> f64 {
        let span = f64::from(self.high_decade - self.low_decade);
        let at = (seconds.max(1e-9).log10() - f64::from(self.low_decade)) / span;
        LEFT + at.clamp(0.0, 1.0) * (RIGHT - LEFT)
    }

    fn shows(&self, seconds: f64) -> bool {
        let decade = seconds.log10();
        decade >= f64::from(self.low_decade) && decade <= f64::from(self.high_decade)
    }

    /// Values 1, 2 and 5 of each decade get a line; 3, 4 and 6 to 9 a tick.
    fn ticks(&self) -> impl Iterator<Item = (f64, u32)> + '_ {
        (self.low_decade..self.high_decade)
            .flat_map(|d| (1..10).map(move |m| (f64::from(m) * 10f64.powi(d), m)))
            .chain([(10f64.powi(self.high_decade), 1)])
    }

    fn draw_grid(&self, out: &mut String, top: f64, bottom: f64) {
        for (seconds, mantissa) in self.ticks() {
            let x = self.x(seconds);
            let color = if mantissa == 1 { "#BBBBBB" } else { "#E6E6E6" };
            let _ = writeln!(
                out,
                r#"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="{color}" stroke-width="1"/>"#
            );
        }
    }

    /// Tick marks and labels under the rows; the y below them.
    fn draw_ticks(&self, out: &mut String, bottom: f64) -> f64 {
        let few_decades = self.high_decade - self.low_decade <= 3;
        for (seconds, mantissa) in self.ticks() {
            let x = self.x(seconds);
            let long = if mantissa == 1 { 6.0 } else { 3.0 };
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#000" stroke-width="1"/>"##,
                bottom + long
            );
            if mantissa == 1 || (few_decades && matches!(mantissa, 2 | 5)) {
                let color = if mantissa == 1 { "#000" } else { "#555" };
                text(
                    out,
                    x,
                    bottom + 18.0,
                    11.0,
                    "middle",
                    color,
                    &seconds_label(seconds),
                );
                if mantissa == 1 && seconds >= 100.0 {
                    text(
                        out,
                        x,
                        bottom + 31.0,
                        10.0,
                        "middle",
                        "#555",
                        &human(seconds),
                    );
                }
            }
        }
        bottom + 34.0
    }
}

/// A key line (wrapped) with its sample drawn by `sample` at the first line's middle;
/// the y of the next entry.
fn key_entry(out: &mut String, y: f64, line: &str, sample: impl FnOnce(&mut String, f64)) -> f64 {
    sample(out, y + KEY_LINE / 2.0 - 4.0);
    let mut y = y;
    for part in wrap(line, KEY_WRAP) {
        text(out, 52.0, y + KEY_LINE / 2.0, 12.0, "start", "#000", &part);
        y += KEY_LINE;
    }
    y
}

fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in line.split(' ') {
        let current = lines.last_mut().unwrap();
        if !current.is_empty() && current.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
    }
    lines
}

fn text(out: &mut String, x: f64, y: f64, size: f64, anchor: &str, color: &str, content: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" fill="{color}">{}</text>"#,
        escape(content)
    );
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// A tick's value: `20 ms`, `5 s`, `1000 s`.
fn seconds_label(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.0} s")
    }
}

/// A marker's value, as precise as it was measured: `5.00 s`, `300.0 s`, `350 s`.
fn seconds_figure(seconds: f64) -> String {
    if seconds.fract() == 0.0 {
        format!("{seconds:.0} s")
    } else if seconds < 10.0 {
        format!("{seconds:.2} s")
    } else {
        format!("{seconds:.1} s")
    }
}

/// A decade at or above 100 s in minutes, hours or days.
fn human(seconds: f64) -> String {
    match seconds {
        s if s < 3600.0 => format!("{:.1} min", s / 60.0),
        s if s < 86_400.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

/// 400000 as 400,000.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

/// A product's name without the setting that follows it.
fn short(name: &str) -> &str {
    let end = name.find(['(', '/']).unwrap_or(name.len());
    let cut = name[..end].trim_end();
    match cut.rsplit_once(' ') {
        Some((head, last))
            if last.chars().any(|c| c.is_lowercase()) && last.contains(['_', '-']) =>
        {
            head
        }
        _ => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_names_lose_their_setting() {
        assert_eq!(
            short("Apache httpd KeepAliveTimeout"),
            "Apache httpd KeepAliveTimeout"
        );
        assert_eq!(short("uvicorn --timeout-keep-alive"), "uvicorn");
        assert_eq!(
            short("Node.js server.keepAliveTimeout"),
            "Node.js server.keepAliveTimeout"
        );
        assert_eq!(short("AWS NAT Gateway"), "AWS NAT Gateway");
        assert_eq!(
            short("Azure Load Balancer / Azure NAT Gateway (4 min)"),
            "Azure Load Balancer"
        );
    }

    #[test]
    fn figures_read_as_a_person_writes_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(400_000), "400,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
        assert_eq!(seconds_label(0.02), "20 ms");
        assert_eq!(seconds_label(1000.0), "1000 s");
        assert_eq!(seconds_figure(5.004), "5.00 s");
        assert_eq!(seconds_figure(300.04), "300.0 s");
        assert_eq!(seconds_figure(350.0), "350 s");
        assert_eq!(human(3600.0), "1.0 h");
        assert_eq!(escape("a & <b>"), "a &amp; &lt;b&gt;");
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
    }

    #[test]
    fn the_axis_spans_whole_decades_around_what_it_shows() {
        let mut histogram = IdleHistogram::default();
        histogram.add(4.9, Outcome::Answered);
        histogram.add(5.5, Outcome::Race);
        let axis = Axis::fitting(&histogram, &[], &[]);
        assert_eq!((axis.low_decade, axis.high_decade), (0, 1));
        assert_eq!(axis.x(1.0), LEFT);
        assert_eq!(axis.x(10.0), RIGHT);
        histogram.add(0.2, Outcome::Answered);
        histogram.add(3600.0, Outcome::Blackhole);
        let axis = Axis::fitting(&histogram, &[], &[]);
        assert_eq!((axis.low_decade, axis.high_decade), (-1, 4));
    }
}
