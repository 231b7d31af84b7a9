//! Bugs found once, pinned on the captures that showed them.

use staleconn::{Settings, analyze_file};

/// A request answered by RST, with the server's FIN arriving only afterwards (its process
/// exited), was called a keep-alive race: the race detector took the late FIN as the close
/// the request met. It is a NAT-style reset. Captured on loopback by tests/live.rs's
/// traffic (tests/live_traffic.py): iptables REJECT answers the request after 2.6 s idle.
#[test]
fn reset_before_a_late_server_fin_is_not_a_keepalive_race() {
    let mut settings = Settings::default();
    settings.thresholds.nat_idle = 2_000_000_000;
    let analysis =
        analyze_file("testdata/regression/reset-before-late-fin.pcap", &settings).unwrap();
    let verdicts: Vec<(u16, &str)> = analysis
        .flows
        .iter()
        .map(|f| (f.server.port(), f.finding.verdict.name()))
        .collect();
    assert_eq!(
        verdicts,
        [
            (18080, "completed"),
            (18081, "nat_idle_reset"),
            (18080, "keepalive_race")
        ]
    );
}
