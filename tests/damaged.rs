//! Damaged capture files, made by cutting and corrupting the committed lab captures: each
//! is analysed as far as it could be read and then warned about in one line that says
//! where it broke, or refused in one error line with exit 2. Never a panic, never silence.
//! (Missing, empty, directory and random-byte inputs are in tests/cli.rs.)

use assert_cmd::Command;
use serde_json::Value;
use std::io::Write;

const RACE: &str = "testdata/race-tls12-client.pcap";
const RACE_NG: &str = "testdata/race-tls12-client.pcapng";

fn temp_capture(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file
}

/// Byte offsets of each classic pcap record (its 16-byte header), little-endian files.
fn pcap_records(bytes: &[u8]) -> Vec<usize> {
    let mut at = 24;
    let mut records = Vec::new();
    while at + 16 <= bytes.len() {
        records.push(at);
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    records
}

/// Byte offsets of each pcapng block, with its type; little-endian files.
fn pcapng_blocks(bytes: &[u8]) -> Vec<(usize, u32)> {
    let mut at = 0;
    let mut blocks = Vec::new();
    while at + 12 <= bytes.len() {
        let kind = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        blocks.push((at, kind));
        at += len;
    }
    blocks
}

/// Runs `-r file --format json`; the JSON document and the lines on stderr.
fn analyse(file: &tempfile::NamedTempFile) -> (Option<i32>, Value, Vec<String>) {
    let out = Command::cargo_bin("staleconn")
        .unwrap()
        .arg("-r")
        .arg(file.path())
        .args(["--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        doc,
        stderr.lines().map(str::to_owned).collect(),
    )
}

/// What every damaged-but-readable file must give: the frames before the damage analysed,
/// a verdict exit code, and one warning naming the last good frame.
fn assert_read_up_to(file: &tempfile::NamedTempFile, good_frames: u64, words: &str) {
    let (code, doc, stderr) = analyse(file);
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {stderr:?}");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    let warning = &stderr[0];
    assert!(
        warning.starts_with("staleconn: warning:")
            && warning.contains(&format!("after frame {good_frames}"))
            && warning.contains(words),
        "{warning}"
    );
    assert_eq!(doc["summary"]["packets"]["read"], good_frames, "{warning}");
    assert_eq!(doc["summary"]["warnings"].as_array().unwrap().len(), 1);
}

#[test]
fn pcap_cut_inside_a_record_header() {
    let bytes = std::fs::read(RACE).unwrap();
    let records = pcap_records(&bytes);
    let file = temp_capture(&bytes[..records[100] + 9]);
    assert_read_up_to(&file, 100, "header bytes");
}

#[test]
fn pcap_record_longer_than_the_rest_of_the_file() {
    let mut bytes = std::fs::read(RACE).unwrap();
    let records = pcap_records(&bytes);
    let last = *records.last().unwrap();
    bytes[last + 8..last + 12].copy_from_slice(&200_000u32.to_le_bytes());
    let file = temp_capture(&bytes);
    assert_read_up_to(&file, records.len() as u64 - 1, "captured bytes");
}

#[test]
fn pcap_record_longer_than_any_snapshot_length() {
    let mut bytes = std::fs::read(RACE).unwrap();
    let records = pcap_records(&bytes);
    let at = records[50];
    bytes[at + 8..at + 12].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    let file = temp_capture(&bytes);
    assert_read_up_to(&file, 50, "bigger than maximum");
}

#[test]
fn pcap_record_length_that_swallows_the_next_records() {
    // A length a little too long: the reader lands inside the next record, reads garbage
    // as a header, and must stop at the first impossible one rather than loop or panic.
    let mut bytes = std::fs::read(RACE).unwrap();
    let records = pcap_records(&bytes);
    let at = records[30];
    let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
    bytes[at + 8..at + 12].copy_from_slice(&(caplen + 3).to_le_bytes());
    let file = temp_capture(&bytes);
    let (code, doc, stderr) = analyse(&file);
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {stderr:?}");
    // The garbage read as headers may also carry a time from the past: counted, warned.
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("capture ends early after frame 3")),
        "{stderr:?}"
    );
    assert!(doc["summary"]["packets"]["read"].as_u64().unwrap() >= 30);
}

#[test]
fn pcapng_with_a_corrupt_block_length() {
    let mut bytes = std::fs::read(RACE_NG).unwrap();
    let packets: Vec<usize> = pcapng_blocks(&bytes)
        .into_iter()
        .filter(|&(_, kind)| kind == 6)
        .map(|(at, _)| at)
        .collect();
    let at = packets[40];
    bytes[at + 4..at + 8].copy_from_slice(&0x0fff_fff3u32.to_le_bytes());
    let file = temp_capture(&bytes);
    assert_read_up_to(&file, 40, "");
}

#[test]
fn pcapng_cut_inside_a_block() {
    let bytes = std::fs::read(RACE_NG).unwrap();
    let packets: Vec<usize> = pcapng_blocks(&bytes)
        .into_iter()
        .filter(|&(_, kind)| kind == 6)
        .map(|(at, _)| at)
        .collect();
    let file = temp_capture(&bytes[..packets[70] + 20]);
    assert_read_up_to(&file, 70, "");
}

#[test]
fn pcapng_cut_inside_its_section_header_is_an_error() {
    let bytes = std::fs::read(RACE_NG).unwrap();
    let file = temp_capture(&bytes[..14]);
    let (code, _, stderr) = analyse(&file);
    assert_eq!(code, Some(2), "{stderr:?}");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].contains("capture header is cut off"),
        "{stderr:?}"
    );
}
