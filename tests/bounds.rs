//! Resource bounds under attack: a SYN flood (every SYN a new flow, answered by a SYN-ACK
//! nobody acknowledges) must keep memory at the flow cap however many SYNs arrive, and
//! hand on the evicted flows counted. Speed under a flood is measured by the benchmark
//! (`cargo bench --bench throughput -- --flood N`), never timed here.
//!
//! One test in this file on purpose: it reads the peak memory of this process's children,
//! which a second test running alongside would disturb.

use std::io::{BufWriter, Write};

use assert_cmd::Command;
use etherparse::PacketBuilder;
use serde_json::Value;

/// `syns` SYNs from distinct spoofed sources to one server, each with its SYN-ACK.
fn flood(syns: u32) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut out = BufWriter::new(file.reopen().unwrap());
    out.write_all(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    out.write_all(&262_144u32.to_le_bytes()).unwrap();
    out.write_all(&1u32.to_le_bytes()).unwrap();
    let server = [198, 19, 0, 1];
    let mut frame = Vec::new();
    for i in 0..syns {
        let client = [198, 18, (i >> 16) as u8, (i >> 8) as u8];
        let port = 1024 + (i & 0xff) as u16;
        let isn = i.wrapping_mul(2_654_435_761);
        for from_client in [true, false] {
            frame.clear();
            let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            let tcp = if from_client {
                eth.ipv4(client, server, 64)
                    .tcp(port, 443, isn, 64240)
                    .syn()
            } else {
                eth.ipv4(server, client, 64)
                    .tcp(443, port, !isn, 65160)
                    .syn()
                    .ack(isn.wrapping_add(1))
            };
            tcp.write(&mut frame, &[]).unwrap();
            let usec = 2 * i + u32::from(!from_client);
            out.write_all(&(1_790_000_000 + usec / 1_000_000).to_le_bytes())
                .unwrap();
            out.write_all(&(usec % 1_000_000).to_le_bytes()).unwrap();
            out.write_all(&(frame.len() as u32).to_le_bytes()).unwrap();
            out.write_all(&(frame.len() as u32).to_le_bytes()).unwrap();
            out.write_all(&frame).unwrap();
        }
    }
    out.flush().unwrap();
    file
}

/// The largest resident set of any child waited for so far, in KB.
fn children_peak_rss_kb() -> i64 {
    // SAFETY: getrusage only fills the struct we own.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    }
}

fn analyse(file: &tempfile::NamedTempFile) -> (Option<i32>, String, String) {
    let out = Command::cargo_bin("staleconn")
        .unwrap()
        .arg("-r")
        .arg(file.path())
        .args(["--max-flows", "2000"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn syn_flood_memory_stops_at_the_flow_cap() {
    let small = flood(20_000);
    let (code, _, stderr) = analyse(&small);
    assert_eq!(code, Some(0), "{stderr}");
    let small_kb = children_peak_rss_kb();

    let big = flood(200_000);
    let (code, stdout, stderr) = analyse(&big);
    assert_eq!(code, Some(0), "{stderr}");
    let big_kb = children_peak_rss_kb(); // the larger of both runs

    // Ten times the flows, the same memory: the cap holds, not the packet count.
    assert!(
        big_kb < small_kb + small_kb / 4 + 4096,
        "20k SYNs: {small_kb} KB, 200k SYNs: {big_kb} KB"
    );
    assert!(
        stderr.contains("198000 flows were evicted from the full flow table (--max-flows 2000)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("Flows: 200000 analysed, 0 flagged"),
        "{stdout}"
    );

    // JSON counts them all the same.
    let out = Command::cargo_bin("staleconn")
        .unwrap()
        .args(["--format", "json", "--max-flows", "2000", "-r"])
        .arg(small.path())
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["evicted"], 18_000);
    assert_eq!(doc["summary"]["flows"], 20_000);
}
