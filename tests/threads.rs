//! `--threads`: the flow tables of a file split over threads give the same output as one
//! thread, byte for byte, on every committed capture and on captures with thousands of
//! flows to one server (answers that cross threads) and flows evicted from full tables.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn json(capture: &Path, threads: usize, extra: &[&str]) -> String {
    let out = Command::cargo_bin("staleconn")
        .unwrap()
        .arg("-r")
        .arg(capture)
        .args(["--format", "json", "--threads", &threads.to_string()])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn committed_captures() -> Vec<PathBuf> {
    let mut captures = Vec::new();
    for dir in ["testdata", "testdata/regression"] {
        for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng")
            {
                captures.push(path);
            }
        }
    }
    captures.sort();
    captures
}

#[test]
fn every_committed_capture_reads_the_same_on_one_and_two_threads() {
    let captures = committed_captures();
    assert!(captures.len() >= 30, "{} captures", captures.len());
    for capture in &captures {
        let one = json(capture, 1, &[]);
        assert_eq!(one, json(capture, 2, &[]), "{}", capture.display());
    }
}

/// `source` with its flows copied `copies` times, each copy from its own client address
/// (the endpoint with the higher port), packet by packet: copy k of frame i right after
/// copy k-1, at the same time. Classic pcap over Ethernet and IPv4 only.
fn replicated(source: &str, copies: u16) -> tempfile::NamedTempFile {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(source)).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "{source}: little-endian pcap"
    );
    assert_eq!(
        u32::from_le_bytes(bytes[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut out = bytes[..24].to_vec();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let record = &bytes[at..at + 16 + caplen];
        at += 16 + caplen;
        let frame = &record[16..];
        let ipv4 = frame.len() >= 34 && frame[12..14] == [0x08, 0x00];
        for copy in 0..copies {
            let start = out.len();
            out.extend_from_slice(record);
            if !ipv4 {
                continue;
            }
            let packet = &mut out[start + 16..];
            let ihl = usize::from(packet[14] & 0x0f) * 4;
            if packet.len() < 14 + ihl + 4 {
                continue;
            }
            let port = |p: &[u8], o: usize| u16::from_be_bytes([p[o], p[o + 1]]);
            let (src_port, dst_port) = (port(packet, 14 + ihl), port(packet, 16 + ihl));
            // The client's address, made one of 65536 in 198.18.0.0/15's second half.
            let client = if src_port > dst_port { 26 } else { 30 };
            packet[client + 2..client + 4].copy_from_slice(&copy.to_be_bytes());
        }
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), out).unwrap();
    file
}

#[test]
fn many_flows_to_one_server_read_the_same_on_any_number_of_threads() {
    // The short blackhole's verdict rests on an answer on another connection to the same
    // server: here thousands of them, on every thread.
    for (source, copies) in [
        ("testdata/blackhole-short-client.pcap", 2000),
        ("testdata/race-tls12-client.pcap", 600),
        ("testdata/nat-client.pcap", 1000),
    ] {
        let capture = replicated(source, copies);
        let one = json(capture.path(), 1, &[]);
        assert!(one.contains("\"idle_blackhole\"") || !source.contains("blackhole"));
        for threads in [2, 3] {
            assert_eq!(
                one,
                json(capture.path(), threads, &[]),
                "{source} on {threads}"
            );
        }
    }
}

#[test]
fn flows_evicted_mid_capture_read_the_same_on_one_and_two_threads() {
    // 40,000 flows open at once in two tables of 16,384: thousands are evicted.
    let capture = replicated("testdata/race-tls12-client.pcap", 2667);
    let limit = ["--max-flows", "32768"];
    let one = json(capture.path(), 1, &limit);
    assert!(!one.contains("\"evicted\": 0"), "nothing was evicted");
    assert_eq!(one, json(capture.path(), 2, &limit));
}
