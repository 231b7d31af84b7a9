//! The report as a person reads it, at the widths terminals have: the diagnosis before any
//! table, the table fitted to 80, 120 and 200 columns (snapshots, `cargo insta review` to
//! accept a change), no word broken, colour independent of the width, and the full-width
//! form when standard output is not a terminal.

use assert_cmd::Command;

const RACE: &str = "testdata/race-tls12-client.pcap";
const NAT: &str = "testdata/nat-client.pcap";
/// The server's side of the NAT run: every flow answered.
const HEALTHY: &str = "testdata/nat-server.pcap";

const WIDTHS: [usize; 3] = [80, 120, 200];

/// stdout of staleconn on `capture` with `args`, never a terminal, no COLUMNS.
fn report(capture: &str, args: &[&str]) -> String {
    let out = Command::cargo_bin("staleconn")
        .unwrap()
        .env_remove("COLUMNS")
        .env("NO_COLOR", "1")
        .args(["-r", capture])
        .args(args)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn at_width(capture: &str, width: usize) -> String {
    report(capture, &["--width", &width.to_string()])
}

/// Every line fits, except a single word longer than the room left for it.
fn assert_fits(text: &str, width: usize) {
    for line in text.lines() {
        let len = line.chars().count();
        if len > width {
            let words = line.split_whitespace().count();
            assert_eq!(words, 1, "line of {len} > {width} columns: {line}\n{text}");
        }
    }
}

#[test]
fn race_capture_at_three_widths() {
    for width in WIDTHS {
        let text = at_width(RACE, width);
        assert_fits(&text, width);
        insta::assert_snapshot!(format!("race_tls12_client_{width}"), text);
    }
}

#[test]
fn nat_capture_at_three_widths() {
    for width in WIDTHS {
        let text = at_width(NAT, width);
        assert_fits(&text, width);
        insta::assert_snapshot!(format!("nat_client_{width}"), text);
    }
}

#[test]
fn healthy_capture_at_three_widths() {
    for width in WIDTHS {
        let text = at_width(HEALTHY, width);
        assert_fits(&text, width);
        assert!(
            text.starts_with("No flow matches a failure pattern (3 flows analysed).\n\n"),
            "{text}"
        );
        insta::assert_snapshot!(format!("nat_server_healthy_{width}"), text);
    }
}

/// No flow failed, but one reuse came within a round trip of the server's close: the
/// healthy line is followed by the near miss, which says the race is coming.
#[test]
fn a_healthy_capture_still_names_its_near_misses() {
    let out = Command::cargo_bin("staleconn")
        .unwrap()
        .env_remove("COLUMNS")
        .args([
            "-r",
            RACE,
            "tcp port 44556 or tcp port 44564 or tcp port 44580",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().take(2).collect();
    assert_eq!(
        lines,
        [
            "No flow matches a failure pattern (3 flows analysed).",
            "198.19.2.2:443: 1 reuse was within 13 ms of the 5.00 s close and got lucky (flow 50); keep the client's max idle time below 5.00 s",
        ],
        "{text}"
    );
}

#[test]
fn the_diagnosis_and_its_one_change_come_within_the_first_ten_lines() {
    for width in [80, 120] {
        let text = at_width(RACE, width);
        let head: Vec<&str> = text.lines().take(10).collect();
        let head = head.join("\n");
        assert!(
            head.starts_with("198.19.2.2:443: 8 of 11 reuses of an idle connection"),
            "{head}"
        );
        assert!(head.contains("after 5.00 s (n=9, 5.000-5.004 s)"), "{head}");
        assert!(head.contains("max idle time to 4 s"), "{head}");
        assert!(head.contains("2 more reuses were within 49 ms"), "{head}");
        let table = text.find("Flows to").unwrap();
        assert!(text.find("near miss").unwrap() < table, "{text}");
    }
}

#[test]
fn verdict_names_and_addresses_never_break() {
    for width in [40, 80] {
        let text = at_width(RACE, width);
        assert_eq!(text.matches("keepalive_race").count(), 9, "{text}");
        assert!(!text.contains("keepaliv\n"), "{text}");
        let text = at_width(NAT, width);
        assert!(text.contains("198.19.2.2:8080"), "{text}");
        assert!(text.contains("nat_idle_reset  "), "{text}");
    }
}

#[test]
fn no_color_drops_colour_only_never_the_width() {
    let run = |no_color: bool, color: &str| {
        let mut cmd = Command::cargo_bin("staleconn").unwrap();
        cmd.env("COLUMNS", "80")
            .args(["-r", RACE, "--color", color]);
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        String::from_utf8(cmd.output().unwrap().stdout).unwrap()
    };
    let plain = run(true, "auto");
    assert_fits(&plain, 80);
    assert!(!plain.contains('\x1b'), "{plain}");
    assert_eq!(plain, run(false, "never"));
    // Coloured, the same text and the same line breaks once the escapes are taken out.
    let coloured = run(true, "always");
    assert!(coloured.contains("\x1b[1;31mkeepalive_race"), "{coloured}");
    assert_eq!(strip_escapes(&coloured), plain);
}

#[test]
fn columns_sets_the_width_and_width_overrides_it() {
    let mut cmd = Command::cargo_bin("staleconn").unwrap();
    let out = cmd
        .env("COLUMNS", "80")
        .env("NO_COLOR", "1")
        .args(["-r", RACE])
        .output()
        .unwrap();
    let by_columns = String::from_utf8(out.stdout).unwrap();
    assert_eq!(by_columns, at_width(RACE, 80));
    let mut cmd = Command::cargo_bin("staleconn").unwrap();
    let out = cmd
        .env("COLUMNS", "80")
        .env("NO_COLOR", "1")
        .args(["-r", RACE, "--width", "120"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), at_width(RACE, 120));
}

#[test]
fn not_a_terminal_gets_the_full_width_form() {
    // Each evidence sentence whole on its own line, for grep and CI logs.
    let text = report(RACE, &[]);
    assert!(
        text.lines().any(|l| l.trim_start()
            == "request #186 after 4.961 s idle crossed the server's FIN #189 in flight (40 ms before the FIN at the client); server closed after 5.001 s idle, close_notify #187; answered by RST #191"),
        "{text}"
    );
    assert!(text.contains("\nFlows: 15 analysed, 8 flagged\n"), "{text}");
}

#[test]
fn explain_adds_every_client_librarys_setting() {
    let plain = report(RACE, &[]);
    assert!(
        plain.contains("(--explain: the setting in each client library)"),
        "{plain}"
    );
    assert!(!plain.contains("Go net/http:"), "{plain}");
    let explained = report(RACE, &["--explain"]);
    for client in ["Reactor Netty:", "OkHttp:", "Go net/http:", ".NET:"] {
        assert!(explained.contains(client), "{client}: {explained}");
    }
    assert!(
        explained.contains("near misses: 2 more reuses were within 49 ms"),
        "{explained}"
    );
}

#[test]
fn a_width_too_narrow_is_one_clear_error() {
    let out = Command::cargo_bin("staleconn")
        .unwrap()
        .args(["-r", RACE, "--width", "20"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--width 20: the table needs at least 40 columns"));
}

fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn all_marks_the_near_misses_among_the_answered_flows() {
    let text = report(RACE, &["--all"]);
    for (flow, port) in [(41, 44564), (50, 44580)] {
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{flow}  {port}")))
            .unwrap_or_else(|| panic!("no row for flow {flow}: {text}"));
        assert!(
            row.ends_with("completed              near miss of the timer"),
            "{row}"
        );
    }
    assert!(
        text.contains("Flows to 198.19.2.2:443 from 198.18.1.2: 14 flows, 8 flagged"),
        "{text}"
    );
}
