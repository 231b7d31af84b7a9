//! Every committed capture, made by real TCP stacks in the lab (testdata/lab/run.sh and
//! blackhole.sh), gets the verdict testdata/expected.tsv gives each of its flows, with the
//! measured idle times and, for an idle blackhole, the retransmissions and their span.

use std::collections::BTreeSet;
use std::path::Path;

use staleconn::{Analysis, FlowReport, Settings, analyze_file};

/// Idle figures must match the lab's own measurement to within this many seconds.
const TOLERANCE_S: f64 = 0.002;

struct Expected {
    capture: String,
    client: String,
    server: String,
    verdict: String,
    request_idle_s: Option<f64>,
    server_close_idle_s: Option<f64>,
    retransmissions: Option<u32>,
    retransmission_span_s: Option<f64>,
    scenario: String,
}

fn expected() -> Vec<Expected> {
    let text = std::fs::read_to_string("testdata/expected.tsv").expect("testdata/expected.tsv");
    let figure = |s: &str| (s != "-").then(|| s.parse::<f64>().expect("a number or -"));
    text.lines()
        .skip(1)
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            assert!(c.len() >= 9, "short row: {line}");
            Expected {
                capture: c[0].to_string(),
                client: c[1].to_string(),
                server: c[2].to_string(),
                verdict: c[3].to_string(),
                request_idle_s: figure(c[4]),
                server_close_idle_s: figure(c[5]),
                retransmissions: figure(c[6]).map(|n| n as u32),
                retransmission_span_s: figure(c[7]),
                scenario: c[8].to_string(),
            }
        })
        .collect()
}

fn analyse(capture: &str) -> Analysis {
    let path = format!("testdata/{capture}");
    analyze_file(&path, &Settings::default()).unwrap_or_else(|e| panic!("{path}: {e:#}"))
}

fn close_to(what: &str, actual: Option<f64>, expected: f64, row: &Expected) {
    let actual = actual.unwrap_or_else(|| {
        panic!(
            "{}: no {what} for {} ({})",
            row.capture, row.client, row.scenario
        )
    });
    assert!(
        (actual - expected).abs() <= TOLERANCE_S,
        "{}: {} {what} is {actual:.6}, expected {expected:.6} ({})",
        row.capture,
        row.client,
        row.scenario
    );
}

fn check(flow: &FlowReport, row: &Expected) {
    let verdict = flow.finding.verdict.name();
    assert_eq!(
        verdict, row.verdict,
        "{}: flow {} {} -> {} ({}): {}",
        row.capture, flow.id, row.client, row.server, row.scenario, flow.finding.sentence
    );
    let evidence = &flow.finding.evidence;
    if let Some(idle) = row.request_idle_s {
        close_to("request idle", evidence.request_idle_s, idle, row);
    }
    if let Some(idle) = row.server_close_idle_s {
        close_to("server close idle", evidence.server_close_idle_s, idle, row);
    }
    if let Some(n) = row.retransmissions {
        assert_eq!(
            evidence.request_retransmissions,
            Some(n),
            "{}: {} retransmissions ({})",
            row.capture,
            row.client,
            row.scenario
        );
    }
    if let Some(span) = row.retransmission_span_s {
        close_to(
            "retransmission span",
            evidence.retransmission_span_s,
            span,
            row,
        );
    }
}

#[test]
fn every_flow_of_every_capture_gets_its_expected_verdict() {
    let rows = expected();
    let captures: BTreeSet<&str> = rows.iter().map(|r| r.capture.as_str()).collect();
    assert!(
        captures.len() >= 10,
        "expected.tsv names only {} captures",
        captures.len()
    );
    for capture in &captures {
        let analysis = analyse(capture);
        let mut flows: Vec<&FlowReport> = analysis.flows.iter().collect();
        for row in rows.iter().filter(|r| r.capture == *capture) {
            let at = flows
                .iter()
                .position(|f| {
                    f.client.to_string() == row.client && f.server.to_string() == row.server
                })
                .unwrap_or_else(|| panic!("{capture}: no flow {} -> {}", row.client, row.server));
            check(flows.remove(at), row);
        }
        assert!(
            flows.is_empty(),
            "{capture}: flows not in expected.tsv: {:?}",
            flows
                .iter()
                .map(|f| (f.client, f.server, f.finding.verdict.name()))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn every_committed_capture_is_listed_in_expected() {
    let rows = expected();
    for entry in std::fs::read_dir("testdata").unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".pcap") || name.ends_with(".pcapng") {
            assert!(
                rows.iter().any(|r| r.capture == name),
                "{name} has no rows in expected.tsv"
            );
            assert!(
                Path::new("testdata").join(&name).metadata().unwrap().len() < 1 << 20,
                "{name} is over 1 MB"
            );
        }
    }
}

/// The analysis of `capture` as JSON, read by path (a classic pcap file is mapped and its
/// flow table kept on a second thread) or from standard input (libpcap, one thread), with
/// the name of the source taken out.
fn json_of(capture: &Path, stdin: bool, extra: &[&str]) -> serde_json::Value {
    let mut command = assert_cmd::Command::cargo_bin("staleconn").unwrap();
    command.args(["--format", "json"]).args(extra);
    if stdin {
        command
            .args(["-r", "-"])
            .pipe_stdin(capture)
            .expect("the capture");
    } else {
        command.arg("-r").arg(capture);
    }
    let out = command.output().unwrap();
    assert!(out.status.code().is_some_and(|c| c < 2), "{out:?}");
    let mut json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["source"].take();
    json
}

/// Reading a file in place on two threads must change nothing but the speed: every
/// committed classic pcap capture gets the same analysis, to the last figure, as libpcap's
/// one-thread reading of the same bytes from standard input; with `-c`, and with flows
/// evicted as it goes, too.
#[test]
fn two_threads_and_one_give_the_same_analysis() {
    let mut compared = 0;
    for entry in std::fs::read_dir("testdata").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pcap") {
            continue;
        }
        // --max-flows 1 evicts flows mid-capture: flows handed on while reading, not only
        // at the end.
        for extra in [&[][..], &["-c", "7"][..], &["--max-flows", "1"][..]] {
            let two = json_of(&path, false, extra);
            let one = json_of(&path, true, extra);
            assert_eq!(two, one, "{} {extra:?}", path.display());
        }
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} captures compared");
}
