//! The options of a node agent's output, as a user meets them without root: `--keep-flagged`
//! and its bounds, and `--summary-every`, refused in one line when they cannot work. The
//! event lines and kept pcaps themselves are tested live, in tests/live.rs.

use assert_cmd::Command;

fn staleconn() -> Command {
    let mut cmd = Command::cargo_bin("staleconn").unwrap();
    cmd.env("NO_COLOR", "1");
    cmd
}

/// stderr of a failed run: exactly one line, naming the problem; exit status 2.
fn one_error_line(args: &[&str]) -> String {
    let output = staleconn().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("staleconn: "), "{stderr}");
    stderr
}

/// A file has a second pass: --write-flagged is the option for it.
#[test]
fn keep_flagged_with_a_file_names_write_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let line = one_error_line(&[
        "-r",
        "testdata/race-tls12-client.pcap",
        "--keep-flagged",
        dir.path().to_str().unwrap(),
    ]);
    assert!(line.contains("--write-flagged FILE"), "{line}");
}

#[test]
fn a_keep_flagged_size_that_is_not_a_size_says_what_one_looks_like() {
    for size in ["lots", "0", "12X"] {
        let line = one_error_line(&[
            "-i",
            "lo",
            "--keep-flagged",
            "/tmp",
            "--keep-flagged-size",
            size,
        ]);
        assert!(line.contains("--keep-flagged-size"), "{line}");
    }
}

#[test]
fn no_kept_files_at_all_is_refused() {
    let line = one_error_line(&[
        "-i",
        "lo",
        "--keep-flagged",
        "/tmp",
        "--keep-flagged-files",
        "0",
    ]);
    assert!(line.contains("--keep-flagged-files 0"), "{line}");
}

#[test]
fn a_summary_period_that_is_not_a_duration_says_what_one_looks_like() {
    let line = one_error_line(&["-i", "lo", "--summary-every", "often"]);
    assert!(line.contains("--summary-every 'often'"), "{line}");
}

/// A live capture keeps at most `cli::LIVE_REPORTS` flow reports for its final table (the
/// last judged); the counts still cover every flow, and a warning says what gave way.
#[test]
fn the_reports_kept_are_capped_and_every_flow_still_counted() {
    use staleconn::{Settings, analyze_file};
    let capture = "testdata/race-tls12-client.pcap";
    let all = analyze_file(capture, &Settings::default()).unwrap();
    assert!(all.flows.len() >= 3, "{} flows", all.flows.len());
    let capped = analyze_file(
        capture,
        &Settings {
            max_reports: Some(2),
            ..Settings::default()
        },
    )
    .unwrap();
    assert_eq!(capped.flows.len(), 2);
    assert_eq!(capped.verdicts, all.verdicts);
    let kept: Vec<u64> = capped.flows.iter().map(|f| f.id).collect();
    assert!(kept.iter().all(|id| all.flows.iter().any(|f| f.id == *id)));
    let gave_way = all.flows.len() - 2;
    assert!(
        capped
            .warnings
            .iter()
            .any(|w| w.starts_with(&format!("{gave_way} flow reports gave way"))),
        "{:?}",
        capped.warnings
    );
}
