//! Bugs found once, pinned on the captures that showed them.

use std::sync::Mutex;

use staleconn::{Settings, analyze_file};

/// Held by each test that reads a file in this process, so one test's read-ahead thread
/// is never mistaken for another's.
static READING: Mutex<()> = Mutex::new(());

/// A request answered by RST, with the server's FIN arriving only afterwards (its process
/// exited), was called a keep-alive race: the race detector took the late FIN as the close
/// the request met. It is a NAT-style reset. Captured on loopback by tests/live.rs's
/// traffic (tests/live_traffic.py): iptables REJECT answers the request after 2.6 s idle.
#[test]
fn reset_before_a_late_server_fin_is_not_a_keepalive_race() {
    let _reading = READING.lock().unwrap_or_else(|e| e.into_inner());
    let mut settings = Settings::default();
    settings.thresholds = settings.thresholds.with_nat_idle(2_000_000_000);
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

/// The classic pcap reader's read-ahead thread outlived the analysis of its file: it was
/// left detached, still running when the caller went on (the capture_file fuzzer's
/// LeakSanitizer saw it at exit). It is now joined when the file is dropped.
#[test]
fn read_ahead_thread_ends_with_its_file() {
    let _reading = READING.lock().unwrap_or_else(|e| e.into_inner());
    let read_ahead_threads = || {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                    .filter(|name| matches!(name.trim(), "pcap read-ahead" | "flow table"))
                    .count()
            })
            .unwrap_or(0)
    };
    // Larger than the windows the read-ahead maps in flight, and left after one packet (`-c 1`),
    // so the thread is still reading when the file is dropped.
    let capture = std::fs::read("testdata/race-tls12-client.pcap").unwrap();
    let mut big = capture.clone();
    while big.len() < 16 << 20 {
        big.extend_from_slice(&capture[24..]);
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &big).unwrap();
    let settings = Settings {
        count: Some(1),
        ..Settings::default()
    };
    for _ in 0..20 {
        analyze_file(file.path().to_str().unwrap(), &settings).unwrap();
        assert_eq!(read_ahead_threads(), 0);
    }
}

/// Damaged timestamps (the capture_file fuzzer's input: a handshake whose gaps are near
/// i64's ends) made `Flow::capture_side` overflow `4 * gap`: a panic in a debug build, a
/// wrong capture side in a release build. Timestamp differences saturate now.
#[test]
fn damaged_timestamps_do_not_overflow_the_capture_side() {
    let _reading = READING.lock().unwrap_or_else(|e| e.into_inner());
    let analysis = analyze_file(
        "testdata/regression/capture-side-overflow.pcap",
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(analysis.flows.len(), 2);
}
