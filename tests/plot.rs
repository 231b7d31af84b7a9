//! `--plot`: the SVG is well-formed XML that names each outcome's count, and its size does
//! not grow with the number of reuses: it is drawn from per-bin counts, never one mark
//! per reuse (issue 15: 15,811 dots for a 1 M-packet capture).

use staleconn::advice::Outcome;
use staleconn::advice::histogram::IdleHistogram;
use staleconn::report::plot;
use staleconn::{Analysis, Settings, analyze_file};

const RACE: &str = "testdata/race-tls12-client.pcap";

fn analysis(path: &str) -> Analysis {
    analyze_file(path, &Settings::default()).unwrap()
}

/// `n` reuses spread as a busy pool's are: most answered after anything from 50 ms to an
/// hour, one in a thousand a race near the 5 s timer, and a few resets, silent drops and
/// unanswered requests after long silences. Deterministic.
fn reuses(n: u64) -> IdleHistogram {
    let mut histogram = IdleHistogram::default();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
        let (idle, outcome) = match i % 1000 {
            0 => (4.95 + 0.06 * unit, Outcome::Race),
            1 => (350.0 + 30.0 * unit, Outcome::Reset),
            2 => (240.0 + 60.0 * unit, Outcome::Blackhole),
            3 => (0.05 + 10.0 * unit, Outcome::Unanswered),
            _ => (0.05 * 72_000f64.powf(unit), Outcome::Answered),
        };
        histogram.add(idle, outcome);
    }
    histogram
}

/// The race capture's plot with its server's reuses replaced by `n` synthetic ones.
fn plot_of(n: u64) -> String {
    let mut analysis = analysis(RACE);
    analysis.servers[0].reuse_histogram = reuses(n);
    plot::render(&analysis)
}

fn assert_well_formed(svg: &str) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
}

#[test]
fn plot_is_well_formed_svg_for_every_capture() {
    for capture in [
        RACE,
        "testdata/nat-client.pcap",
        "testdata/blackhole-client.pcap",
        "testdata/race-plain-server.pcap",
        "testdata/go-h2-tls13-client.pcap",
    ] {
        let svg = plot::render(&analysis(capture));
        assert_well_formed(&svg);
    }
}

#[test]
fn plot_size_does_not_grow_with_the_number_of_reuses() {
    let ten = plot_of(10);
    let many = plot_of(400_000);
    let more = plot_of(4_000_000);
    for svg in [&ten, &many, &more] {
        assert_well_formed(svg);
    }
    assert!(ten.contains("(10 reuses)"), "{ten}");
    assert!(many.contains("(400,000 reuses)"));
    assert!(more.contains("(4,000,000 reuses)"));
    // The most the plot can draw: a bar in every bin, 10 ms to 11.6 days, for every outcome.
    let mut full = IdleHistogram::default();
    for outcome in Outcome::ALL {
        for bin in 0..400 {
            full.add(0.01 * 10f64.powf((f64::from(bin) + 0.5) / 50.0), outcome);
        }
    }
    let mut analysis = analysis(RACE);
    analysis.servers[0].reuse_histogram = full;
    let most = plot::render(&analysis);
    assert_well_formed(&most);
    assert!(most.len() < 256 * 1024, "{} bytes", most.len());
    for svg in [&ten, &many, &more] {
        assert!(svg.len() <= most.len(), "{} > {}", svg.len(), most.len());
    }
    // Ten times the reuses fill a few more bins of the rare outcomes, no more.
    assert!(
        more.len() < many.len() + many.len() / 10,
        "{} bytes for 400 k reuses, {} for 4 M",
        many.len(),
        more.len()
    );
    assert!(ten.len() < many.len());
}

#[test]
fn each_outcome_row_counts_its_reuses() {
    let svg = plot::render(&analysis(RACE));
    assert!(
        svg.contains("198.19.2.2:443: idle before each reuse of a pooled connection (11 reuses)")
    );
    for (row, count) in [("answered", "3 reuses"), ("keep-alive race", "8 reuses")] {
        let at = svg
            .find(&format!(">{row}</text>"))
            .unwrap_or_else(|| panic!("no {row} row"));
        assert!(svg[at..].contains(&format!(">{count}</text>")), "{row}");
    }
    // The rows drawn are the outcomes seen: no reset or blackhole row for this server.
    assert!(!svg.contains(">reset (NAT idle)</text>"));
    assert!(!svg.contains(">no answer (blackhole)</text>"));
}
