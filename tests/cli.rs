//! The binary as a user meets it: exit codes, output formats, standard input, BPF filters,
//! and one clear line (never a panic) for each kind of bad input.

use std::io::Write;

use assert_cmd::Command;
use serde_json::Value;

const RACE: &str = "testdata/race-tls12-client.pcap";

fn staleconn() -> Command {
    let mut cmd = Command::cargo_bin("staleconn").unwrap();
    cmd.env("NO_COLOR", "1");
    // Not a terminal and no COLUMNS: the full-width form, each evidence sentence whole.
    cmd.env_remove("COLUMNS");
    cmd
}

fn json_of(output: &[u8]) -> Value {
    serde_json::from_slice(output).expect("stdout is one JSON document")
}

/// stderr of a failed run: exactly one line, naming the problem.
fn one_error_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected one line, got: {stderr}"
    );
    assert!(stderr.starts_with("staleconn: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn temp_capture(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file
}

#[test]
fn flagged_flows_exit_1_and_show_in_the_table() {
    let out = staleconn().args(["-r", RACE]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("keepalive_race"), "{table}");
    assert!(table.contains("server closed after 5.00"), "{table}");
    assert!(table.contains("crossed the server's FIN"), "{table}");
    // The diagnosis comes first, before any table.
    assert!(
        table.starts_with(
            "198.19.2.2:443: 8 of 11 reuses of an idle connection met the server's keep-alive close"
        ),
        "{table}"
    );
    assert!(
        table.contains("change    set the client's max idle time to 4 s"),
        "{table}"
    );
    assert!(
        table.contains("likely    Apache httpd KeepAliveTimeout"),
        "{table}"
    );
    // Every client library's setting only with --explain.
    assert!(!table.contains("OkHttp: new ConnectionPool"), "{table}");
    assert!(
        table.contains("Packets: 262 read, 262 used in flows"),
        "{table}"
    );
    // Benign flows are counted in the summary, not listed, without --all.
    assert!(!table.contains("nothing listening on port 444"), "{table}");
    assert!(table.contains("refused"), "{table}");
}

#[test]
fn all_lists_benign_flows_too() {
    let out = staleconn().args(["-r", RACE, "--all"]).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("nothing listening on port 444"), "{table}");
    assert!(table.contains("the client did not reuse it"), "{table}");
}

#[test]
fn no_flagged_flow_exits_0() {
    // Only the refused connection to port 444 passes this filter.
    let out = staleconn()
        .args(["-r", RACE, "tcp", "port", "444"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.starts_with("No flow matches a failure pattern (1 flow analysed).\n"),
        "{table}"
    );
    assert!(table.contains("refused"), "{table}");
}

#[test]
fn json_lists_every_flow_with_verdict_and_evidence() {
    let out = staleconn()
        .args(["-r", RACE, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out.stdout);
    let flows = doc["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 15);
    for flow in flows {
        for key in [
            "client",
            "server",
            "verdict",
            "evidence",
            "first_seen",
            "requests",
        ] {
            assert!(flow.get(key).is_some(), "flow lacks {key}: {flow}");
        }
    }
    let race = flows
        .iter()
        .find(|f| f["verdict"] == "keepalive_race")
        .unwrap();
    let evidence = &race["evidence"];
    assert_eq!(evidence["capture_side"], "client");
    assert_eq!(evidence["close_notify"], true);
    assert!(evidence["server_close_idle_s"].as_f64().unwrap() > 4.99);
    assert!(evidence["request_minus_fin_s"].is_number());
    assert_eq!(evidence["answer"], "rst");
    assert_eq!(doc["summary"]["flows"], 15);
    assert_eq!(doc["summary"]["flagged"], 8);
    assert_eq!(doc["summary"]["verdicts"]["keepalive_race"], 8);
    assert_eq!(doc["summary"]["packets"]["read"], 262);
    let server = &doc["servers"][0];
    assert_eq!(server["server"], "198.19.2.2:443");
    assert!((server["keepalive"]["median_s"].as_f64().unwrap() - 5.0).abs() < 0.05);
    assert_eq!(server["max_idle_s"], 4);
    assert!(server["keepalive_candidates"][0]["source"].is_string());
}

#[test]
fn json_writes_ipv6_endpoints_in_brackets() {
    let out = staleconn()
        .args([
            "-r",
            "testdata/race-plain-client.pcap",
            "--format",
            "json",
            "ip6",
        ])
        .output()
        .unwrap();
    let doc = json_of(&out.stdout);
    let client = doc["flows"][0]["client"].as_str().unwrap();
    assert!(client.starts_with("[fd00:198:18:1::2]:"), "{client}");
}

#[test]
fn reads_standard_input() {
    let bytes = std::fs::read(RACE).unwrap();
    let out = staleconn()
        .args(["-r", "-", "--format", "json"])
        .write_stdin(bytes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out.stdout);
    assert_eq!(doc["summary"]["flagged"], 8);
    assert_eq!(doc["source"]["file"], "standard input");
}

#[test]
fn bpf_filter_keeps_frame_numbers() {
    let all = json_of(
        &staleconn()
            .args(["-r", RACE, "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    );
    let out = staleconn()
        .args(["-r", RACE, "--format", "json", "tcp", "port", "443"])
        .output()
        .unwrap();
    let filtered = json_of(&out.stdout);
    // The refused flow to port 444 is filtered out; the races keep their frame numbers.
    assert_eq!(filtered["flows"].as_array().unwrap().len(), 14);
    let frames = |doc: &Value| -> Vec<Value> {
        doc["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["verdict"] == "keepalive_race")
            .map(|f| f["evidence"]["request_frame"].clone())
            .collect()
    };
    assert_eq!(frames(&all).len(), 8);
    assert_eq!(frames(&all), frames(&filtered));
}

#[test]
fn target_selects_the_server_side() {
    let out = staleconn()
        .args(["-r", RACE, "--format", "json", "--target", "198.19.2.2:444"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc = json_of(&out.stdout);
    assert_eq!(doc["flows"].as_array().unwrap().len(), 1);
    assert_eq!(doc["summary"]["packets"]["used"], 2);
    assert_eq!(doc["summary"]["packets"]["skipped"]["not_target"], 260);
}

#[test]
fn broken_pipe_is_not_an_error() {
    // The table, and JSON, which is written while the capture is read.
    for format in ["table", "json"] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("staleconn"))
            .args(["-r", RACE, "--all", "--format", format])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_ne!(out.status.code(), Some(2), "{format}: {:?}", out.status);
        assert!(
            out.stderr.is_empty(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn missing_file_is_one_line_and_exit_2() {
    let out = staleconn()
        .args(["-r", "testdata/no-such.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_error_line(&out).contains("testdata/no-such.pcap: no such file"));
}

#[test]
fn directory_is_not_a_capture() {
    let out = staleconn().args(["-r", "testdata"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_error_line(&out).contains("is a directory"));
}

#[test]
fn empty_file_is_an_error() {
    let file = temp_capture(&[]);
    let out = staleconn().arg("-r").arg(file.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_error_line(&out).contains("empty file"));
}

#[test]
fn random_bytes_are_not_a_capture() {
    // A fixed pseudo-random sequence (xorshift), the same every run.
    let mut x: u32 = 0x9e37_79b9;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let file = temp_capture(&bytes);
    let out = staleconn().arg("-r").arg(file.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_error_line(&out).contains("not a pcap or pcapng capture"));
}

#[test]
fn bad_bpf_expression_is_named() {
    let out = staleconn()
        .args(["-r", RACE, "tcp", "prot", "443"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_error_line(&out).contains("bad BPF expression 'tcp prot 443'"));
}

#[test]
fn unsupported_link_type_is_named() {
    // A pcap file header for link type 105 (IEEE 802.11), and no packets.
    let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&105u32.to_le_bytes());
    let file = temp_capture(&header);
    let out = staleconn().arg("-r").arg(file.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_error_line(&out).contains("unsupported link type 105"));
}

#[test]
fn capture_cut_mid_record_is_analysed_then_warned() {
    let bytes = std::fs::read(RACE).unwrap();
    // Cut inside a record two thirds in, as a killed tcpdump leaves it.
    let file = temp_capture(&bytes[..bytes.len() * 2 / 3 + 7]);
    let out = staleconn()
        .arg("-r")
        .arg(file.path())
        .args(["--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("capture ends early after frame"),
        "{stderr}"
    );
    assert_ne!(out.status.code(), Some(2));
    let doc = json_of(&out.stdout);
    assert!(doc["summary"]["packets"]["read"].as_u64().unwrap() > 100);
    assert_eq!(doc["summary"]["warnings"].as_array().unwrap().len(), 1);
}

/// Requests dropped after 280 s of silence are flagged, with the silent-drop advice; a
/// --blackhole-idle above that silence flags nothing.
#[test]
fn idle_blackholes_exit_1_unless_the_threshold_is_above_their_silence() {
    let blackhole = "testdata/blackhole-client.pcap";
    let out = staleconn().args(["-r", blackhole]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("! idle_blackhole              3"), "{table}");
    assert!(
        table.contains("got nothing back (no ACK, no data, no RST)"),
        "{table}"
    );
    assert!(
        table.contains(
            "a middlebox drops connections silently after a silence of between 200.0 s and 280.0 s"
        ),
        "{table}"
    );
    assert!(table.contains("likely    Azure Load Balancer"), "{table}");
    assert!(table.contains("and a read timeout of 10 s"), "{table}");
    // Each client's read timeout only with --explain.
    assert!(
        !table.contains("read timeout of 10 s, per client:"),
        "{table}"
    );
    let out = staleconn()
        .args(["-r", blackhole, "--explain"])
        .output()
        .unwrap();
    let explained = String::from_utf8(out.stdout).unwrap();
    assert!(
        explained.contains("middlebox: drops idle connections silently: survived 200.0 s"),
        "{explained}"
    );
    assert!(
        explained.contains("likely: Azure Load Balancer"),
        "{explained}"
    );
    assert!(
        explained.contains("read timeout of 10 s, per client:"),
        "{explained}"
    );

    let out = staleconn()
        .args(["-r", blackhole, "--blackhole-idle", "5m"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn capture_cut_inside_its_file_header_is_an_error() {
    let bytes = std::fs::read(RACE).unwrap();
    let file = temp_capture(&bytes[..10]);
    let out = staleconn().arg("-r").arg(file.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    one_error_line(&out);
}

#[test]
fn bad_options_exit_2() {
    for (option, value, says) in [
        ("--nat-idle", "soon", "--nat-idle 'soon'"),
        (
            "--blackhole-idle",
            "0s",
            "--blackhole-idle must be longer than zero",
        ),
        ("--target", "example.com", "not an address or CIDR"),
    ] {
        let out = staleconn()
            .args(["-r", RACE, option, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(one_error_line(&out).contains(says), "{option} {value}");
    }
    let out = staleconn().args(["--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn version_names_the_package_version() {
    let version = String::from_utf8(staleconn().arg("--version").output().unwrap().stdout).unwrap();
    let expected = format!("staleconn {}", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    // Built from a checkout of this repository, it names the commit:
    // `staleconn 0.1.0 (git 1a2b3c4)`; elsewhere (a crates tarball) the bare version.
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The binary was built by whoever built it; the test may run as another user (root's
    // build, run by a user), whom git would refuse this checkout as not theirs.
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(["-c", "safe.directory=*"])
            .args(args)
            .current_dir(manifest_dir)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8(out.stdout).unwrap().trim().to_string())
    };
    let top =
        git(&["rev-parse", "--show-toplevel"]).and_then(|top| std::fs::canonicalize(top).ok());
    if top.as_deref() == manifest_dir.canonicalize().ok().as_deref() {
        let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap();
        assert_eq!(version.trim(), format!("{expected} (git {commit})"));
    } else {
        assert_eq!(version.trim(), expected);
    }
}

#[test]
fn errors_name_the_flag_to_fix() {
    let cases: [(&[&str], &str); 4] = [
        (&["-r", RACE, "--max-flows", "0"], "--max-flows 0"),
        (
            &["-r", RACE, "--plot", "no-such-dir/race.svg"],
            "--plot no-such-dir/race.svg: no directory no-such-dir",
        ),
        (
            &["-r", RACE, "--write-flagged", "no-such-dir/flagged.pcap"],
            "--write-flagged no-such-dir/flagged.pcap: no directory no-such-dir",
        ),
        (&["-r", RACE, "-s", "0"], "-s 0"),
    ];
    for (args, named) in cases {
        let out = staleconn().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let line = one_error_line(&out);
        assert!(line.contains(named), "{args:?}: {line}");
        // Said before the capture is read: no table.
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn color_always_colours_the_verdicts_even_into_a_pipe() {
    let coloured = |args: &[&str]| {
        let out = staleconn().args(["-r", RACE]).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stdout).unwrap().contains("\x1b[")
    };
    // NO_COLOR is set for every test here: `always` overrides it, `auto` obeys it.
    assert!(coloured(&["--color", "always"]));
    assert!(!coloured(&["--color", "never"]));
    assert!(!coloured(&["--color", "auto"]));
    assert!(!coloured(&[]));
    let out = staleconn()
        .args(["-r", RACE, "--color", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--color"));
}

#[test]
fn explain_timeline_matches_what_wireshark_shows() {
    // tshark's frame numbers, relative times and TCP flags for the flow from port 44594,
    // made by the command at the top of the fixture.
    let fixture =
        std::fs::read_to_string("testdata/wireshark/race-tls12-client-port44594.tsv").unwrap();
    let wireshark: Vec<(u64, f64, u8)> = fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("frame"))
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let flags = u16::from_str_radix(c[2].trim_start_matches("0x"), 16).unwrap() as u8;
            (c[0].parse().unwrap(), c[1].parse().unwrap(), flags)
        })
        .collect();
    let out = staleconn()
        .args(["-r", RACE, "--format", "json"])
        .output()
        .unwrap();
    let doc = json_of(&out.stdout);
    let flow = doc["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["client"] == "198.18.1.2:44594")
        .unwrap();
    let timeline = flow["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 12);
    for packet in timeline {
        let frame = packet["frame"].as_u64().unwrap();
        let (_, time, flags) = wireshark
            .iter()
            .find(|w| w.0 == frame)
            .expect("frame in the flow");
        assert!(
            (packet["time_s"].as_f64().unwrap() - time).abs() < 1e-6,
            "frame {frame}"
        );
        assert_eq!(
            packet["flags"],
            staleconn::decode::TcpFlags(*flags).names(),
            "frame {frame}"
        );
    }
    // The table shows the same, with the idle gap on its own line.
    let out = staleconn()
        .args(["-r", RACE, "--explain"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("... 4.918 s idle ..."), "{table}");
    assert!(
        table.contains("TLS Encrypted Alert (close_notify), record 26 bytes"),
        "{table}"
    );
}

#[test]
fn write_flagged_holds_exactly_the_flagged_flows_packets() {
    let dir = tempfile::tempdir().unwrap();
    let flagged = dir.path().join("flagged.pcap");
    let out = staleconn()
        .args(["-r", RACE, "--format", "json", "--write-flagged"])
        .arg(&flagged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wrote 160 packets of 8 flagged flows"),
        "{stderr}"
    );
    let doc = json_of(&out.stdout);
    let expected: Vec<(Value, Value, Value)> = doc["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["flagged"] == true)
        .map(|f| {
            (
                f["client"].clone(),
                f["verdict"].clone(),
                f["packets"].clone(),
            )
        })
        .collect();
    let again = json_of(
        &staleconn()
            .arg("-r")
            .arg(&flagged)
            .args(["--format", "json"])
            .output()
            .unwrap()
            .stdout,
    );
    let found: Vec<(Value, Value, Value)> = again["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["client"].clone(),
                f["verdict"].clone(),
                f["packets"].clone(),
            )
        })
        .collect();
    assert_eq!(found, expected);
    assert_eq!(again["source"]["link_type"], "Ethernet");
    assert_eq!(again["summary"]["packets"]["read"], 160);
}

#[test]
fn write_flagged_refuses_standard_input() {
    let out = staleconn()
        .args(["-r", "-", "--write-flagged", "x.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_error_line(&out).contains("standard input cannot do"));
}

#[test]
fn plot_counts_reuses_by_outcome_and_marks_the_measured_lines() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("race.svg");
    staleconn()
        .args(["-r", RACE, "--plot"])
        .arg(&svg)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
    assert!(
        text.contains("198.19.2.2:443: idle before each reuse of a pooled connection (11 reuses)")
    );
    assert!(text.contains(">keep-alive race</text>") && text.contains(">8 reuses</text>"));
    assert!(text.contains(">answered</text>") && text.contains(">3 reuses</text>"));
    assert!(text.contains(
        "5.00 s: the server closes idle connections after 5.00 s (median of 9, 5.00 to 5.00 s); fits the default of Apache httpd"
    ));

    let nat = dir.path().join("nat.svg");
    staleconn()
        .args(["-r", "testdata/nat-client.pcap", "--plot"])
        .arg(&nat)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&nat).unwrap();
    assert!(text.contains("300.0 s: the longest silence after which a request was still answered"));
    assert!(text.contains("380.0 s: the shortest silence answered by a middlebox's RST"));
    assert!(text.contains("lies in here: between 300.0 s and 380.0 s"));
    assert!(text.contains("350 s: a known default inside the bracket: AWS NAT Gateway"));
}

#[test]
fn explain_shows_plaintext_request_and_status_lines() {
    let out = staleconn()
        .args(["-r", "testdata/nat-client.pcap", "--explain"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("... 380.0 s idle ..."), "{table}");
    assert!(
        table.contains("HTTP: GET /nat/B/second HTTP/1.1"),
        "{table}"
    );
    assert!(table.contains("HTTP: HTTP/1.1 200 OK"), "{table}");
}

/// Splits a pcap file into `parts` files of consecutive records, as tcpdump -C leaves them.
fn split_pcap(path: &str, dir: &std::path::Path, parts: usize) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let (header, mut rest) = bytes.split_at(24);
    let mut records = Vec::new();
    while rest.len() >= 16 {
        let caplen = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let (record, tail) = rest.split_at(16 + caplen);
        records.push(record);
        rest = tail;
    }
    let per_part = records.len().div_ceil(parts);
    records
        .chunks(per_part)
        .enumerate()
        .map(|(i, chunk)| {
            let file = dir.join(format!("part{i}.pcap"));
            let mut data = header.to_vec();
            chunk.iter().for_each(|r| data.extend_from_slice(r));
            std::fs::write(&file, data).unwrap();
            file.display().to_string()
        })
        .collect()
}

#[test]
fn rotated_files_read_as_one_capture_give_the_same_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let parts = split_pcap(RACE, dir.path(), 3);
    let whole = json_of(
        &staleconn()
            .args(["-r", RACE, "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    );
    let flows = |doc: &Value| -> Vec<(Value, Value, Value, Value)> {
        doc["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["client"].clone(),
                    f["verdict"].clone(),
                    f["evidence"].clone(),
                    f["timeline"].clone(),
                )
            })
            .collect()
    };
    let mut repeated = staleconn();
    for part in &parts {
        repeated.args(["-r", part]);
    }
    let out = repeated.args(["--format", "json"]).output().unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = json_of(&out.stdout);
    assert_eq!(flows(&merged), flows(&whole));
    assert_eq!(merged["summary"]["packets"], whole["summary"]["packets"]);

    // A quoted glob, and the files an unquoted one leaves in front of the expression.
    let pattern = format!("{}/part*.pcap", dir.path().display());
    let globbed = json_of(
        &staleconn()
            .args(["-r", &pattern, "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    );
    assert_eq!(flows(&globbed), flows(&whole));
    // As tcpdump: options first, then -r with the files, then the filter.
    let mut expanded = staleconn();
    expanded
        .args(["--format", "json", "-r", &parts[0]])
        .args(&parts[1..])
        .args(["tcp", "port", "443"]);
    let expanded = json_of(&expanded.output().unwrap().stdout);
    assert_eq!(expanded["summary"]["flows"], 14, "the filter still applies");
}

/// A named pipe (`-r` on a FIFO that tcpdump or zcat writes into) is read as it comes,
/// by libpcap, not by the read-ahead reader meant for regular files.
#[test]
fn reads_a_named_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("capture.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let bytes = std::fs::read(RACE).unwrap();
            std::fs::write(fifo, bytes).unwrap();
        })
    };
    let out = staleconn()
        .arg("-r")
        .arg(&fifo)
        .args(["--format", "json"])
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out.stdout)["summary"]["packets"]["read"], 262);
}
