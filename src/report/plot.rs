//! `--plot FILE.svg`: per server, every reuse of an idle connection as a point (x: the
//! idle before the request, log scale; y: the flow), coloured by outcome, with the
//! measured timeouts and the products they fit drawn as vertical lines (plotters, SVG).

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::Analysis;
use crate::advice::{Outcome, ServerAdvice};

/// Panels drawn at most, busiest failure first (the order of `Analysis::servers`).
const MAX_PANELS: usize = 6;
const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 420;

const OUTCOMES: [(Outcome, &str, RGBColor); 5] = [
    (Outcome::Answered, "answered", RGBColor(46, 139, 87)),
    (Outcome::Race, "keep-alive race", RGBColor(214, 39, 40)),
    (Outcome::Reset, "reset (NAT idle)", RGBColor(255, 127, 14)),
    (
        Outcome::Blackhole,
        "no answer at all (idle blackhole)",
        RGBColor(140, 86, 75),
    ),
    (Outcome::Unanswered, "unanswered", RGBColor(127, 127, 127)),
];

/// A vertical line: a measured value, or a bound, with what it means.
struct Marker {
    seconds: f64,
    label: String,
    color: RGBColor,
}

pub fn write_svg(path: &Path, analysis: &Analysis) -> Result<()> {
    let servers: Vec<&ServerAdvice> = analysis
        .servers
        .iter()
        .filter(|s| !s.reuse.is_empty())
        .take(MAX_PANELS)
        .collect();
    let panels = servers.len().max(1);
    let root = SVGBackend::new(path, (WIDTH, PANEL_HEIGHT * panels as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    if servers.is_empty() {
        root.draw(&Text::new(
            "No request reused an idle connection in this capture.",
            (40, 60),
            ("sans-serif", 20),
        ))?;
    }
    for (area, server) in root.split_evenly((panels, 1)).iter().zip(&servers) {
        draw_server(area, server)?;
    }
    root.present()
        .with_context(|| format!("--plot {}", path.display()))?;
    Ok(())
}

fn markers(server: &ServerAdvice) -> Vec<Marker> {
    let mut markers = Vec::new();
    if let Some(k) = &server.keepalive {
        let names: Vec<&str> = server
            .keepalive_candidates
            .iter()
            .map(|c| short(c.name))
            .collect();
        let fits = if names.is_empty() {
            String::new()
        } else {
            format!(": {}", names.join(", "))
        };
        markers.push(Marker {
            seconds: k.median_s,
            label: format!(
                "server closes idle after {:.2} s (n={}){fits}",
                k.median_s, k.n
            ),
            color: RGBColor(31, 119, 180),
        });
    }
    // The reset bracket and the silent-drop bracket, each with the defaults inside it.
    let reset = server.middlebox.as_ref().map(|b| {
        let failed = Marker {
            seconds: b.reset_s,
            label: format!("shortest silence reset: {:.1} s", b.reset_s),
            color: RGBColor(255, 127, 14),
        };
        (b.survived_s, failed, &server.middlebox_candidates)
    });
    let dropped = server.blackhole.as_ref().map(|b| {
        let failed = Marker {
            seconds: b.dropped_s,
            label: format!("shortest silence dropped: {:.1} s", b.dropped_s),
            color: RGBColor(140, 86, 75),
        };
        (b.survived_s, failed, &server.blackhole_candidates)
    });
    let mut survived_drawn = false;
    for (survived, failed, candidates) in reset.into_iter().chain(dropped) {
        if let Some(s) = survived.filter(|_| !survived_drawn) {
            markers.push(Marker {
                seconds: s,
                label: format!("longest silence survived: {s:.1} s"),
                color: RGBColor(46, 139, 87),
            });
            survived_drawn = true;
        }
        markers.push(failed);
        let mut defaults: Vec<(f64, Vec<&str>)> = Vec::new();
        for c in candidates.iter().filter(|c| c.verified) {
            match defaults.iter_mut().find(|(s, _)| *s == c.default_s) {
                Some((_, names)) => names.push(short(c.name)),
                None => defaults.push((c.default_s, vec![short(c.name)])),
            }
        }
        for (seconds, names) in defaults {
            markers.push(Marker {
                seconds,
                label: format!("{seconds} s default: {}", names.join(", ")),
                color: RGBColor(148, 103, 189),
            });
        }
    }
    markers
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

fn draw_server(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    server: &ServerAdvice,
) -> Result<()> {
    let markers = markers(server);
    let values = server
        .reuse
        .iter()
        .map(|p| p.idle_s)
        .chain(markers.iter().map(|m| m.seconds));
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (x_min, x_max) = ((low / 2.0).max(0.01), (high * 2.0).max(1.0));
    let (first, last) = server.reuse.iter().fold((u64::MAX, 0), |(lo, hi), p| {
        (lo.min(p.flow), hi.max(p.flow))
    });
    // Headroom above the points for the legend.
    let span = (last - first) as f64 + 2.0;
    let (y_min, y_max) = (first as f64 - 1.0, last as f64 + 1.0 + 0.7 * span);

    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: idle before each reuse of a pooled connection, by outcome",
                server.server
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((x_min..x_max).log_scale(), y_min..y_max)?;
    chart
        .configure_mesh()
        .x_desc("idle before the request (seconds, log scale)")
        .y_desc("flow")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;

    for (outcome, name, color) in OUTCOMES {
        let points: Vec<(f64, f64)> = server
            .reuse
            .iter()
            .filter(|p| p.outcome == outcome)
            .map(|p| (p.idle_s, p.flow as f64))
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|xy| Circle::new(xy, 5, color.filled())),
            )?
            .label(format!(
                "{name} ({})",
                server.reuse.iter().filter(|p| p.outcome == outcome).count()
            ))
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
    }
    for marker in markers {
        let color = marker.color;
        chart
            .draw_series(LineSeries::new(
                vec![(marker.seconds, y_min), (marker.seconds, y_max)],
                color.stroke_width(2),
            ))?
            .label(marker.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::short;

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
}
