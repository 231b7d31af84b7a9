//! Odd but legal traffic, one test per case with the verdict staleconn states for it
//! (the table "Odd traffic" in README.md lists the same cases). Where a committed lab
//! capture shows the case it is used; otherwise the conversation is built packet by packet
//! with etherparse, sequence numbers kept as a real stack would.

use assert_cmd::Command;
use etherparse::PacketBuilder;
use serde_json::Value;
use staleconn::capture::Packet;
use staleconn::decode::{LinkType, Skip};
use staleconn::detect::Verdict;
use staleconn::time::Timestamp;
use staleconn::{Analysis, Pipeline, Settings};

const MS: i64 = 1_000_000;
const SEC: i64 = 1_000 * MS;
const REQUEST: &[u8] = b"GET /orders HTTP/1.1\r\nHost: api\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n[1,2]\n";

/// A connection built packet by packet: each side's next sequence number advances with
/// what it sends, and each segment acknowledges all the other side has sent.
struct Talk {
    frames: Vec<Vec<u8>>,
    times: Vec<i64>,
    t: i64,
    client_next: u32,
    server_next: u32,
    port: u16,
    ipv6: bool,
}

#[derive(Clone, Copy)]
enum From {
    Client,
    Server,
}

impl Talk {
    fn new(port: u16) -> Talk {
        Talk {
            frames: Vec::new(),
            times: Vec::new(),
            t: 1_790_000_000 * SEC,
            client_next: 0xffff_ff80, // the wrap falls inside every conversation
            server_next: 0x4000_0000,
            port,
            ipv6: false,
        }
    }

    /// Sends after `wait_ms`, from its next sequence number, acknowledging everything.
    fn send(&mut self, wait_ms: i64, from: From, flags: &str, payload: &[u8]) -> &mut Talk {
        let seq = match from {
            From::Client => self.client_next,
            From::Server => self.server_next,
        };
        self.send_at(wait_ms, from, flags, seq, 64240, payload);
        let used = payload.len() as u32 + u32::from(flags.contains('S') || flags.contains('F'));
        match from {
            From::Client => self.client_next = self.client_next.wrapping_add(used),
            From::Server => self.server_next = self.server_next.wrapping_add(used),
        }
        self
    }

    /// A segment with a chosen sequence number and window (probes, zero windows).
    fn send_at(
        &mut self,
        wait_ms: i64,
        from: From,
        flags: &str,
        seq: u32,
        window: u16,
        payload: &[u8],
    ) -> &mut Talk {
        self.t += wait_ms * MS;
        let (c4, s4) = ([198, 18, 1, 2], [198, 19, 2, 2]);
        let (c6, s6) = (v6(c4), v6(s4));
        let client_side = matches!(from, From::Client);
        let (sport, dport) = if client_side {
            (self.port, 80)
        } else {
            (80, self.port)
        };
        let ack = if client_side {
            self.server_next
        } else {
            self.client_next
        };
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = match (self.ipv6, client_side) {
            (false, true) => eth.ipv4(c4, s4, 64),
            (false, false) => eth.ipv4(s4, c4, 62),
            (true, true) => eth.ipv6(c6, s6, 64),
            (true, false) => eth.ipv6(s6, c6, 62),
        };
        let mut tcp = ip.tcp(sport, dport, seq, window);
        if flags.contains('A') {
            tcp = tcp.ack(ack);
        }
        if flags.contains('S') {
            tcp = tcp.syn();
        }
        if flags.contains('F') {
            tcp = tcp.fin();
        }
        if flags.contains('R') {
            tcp = tcp.rst();
        }
        if flags.contains('P') {
            tcp = tcp.psh();
        }
        let mut bytes = Vec::new();
        tcp.write(&mut bytes, payload).unwrap();
        self.frames.push(bytes);
        self.times.push(self.t);
        self
    }

    fn handshake(&mut self) -> &mut Talk {
        self.send(0, From::Client, "S", b"")
            .send(50, From::Server, "SA", b"")
            .send(0, From::Client, "A", b"")
    }

    fn exchange(&mut self, wait_ms: i64) -> &mut Talk {
        self.send(wait_ms, From::Client, "PA", REQUEST)
            .send(50, From::Server, "PA", RESPONSE)
            .send(0, From::Client, "A", b"")
    }

    fn client_closes(&mut self, wait_ms: i64) -> &mut Talk {
        self.send(wait_ms, From::Client, "FA", b"")
            .send(50, From::Server, "FA", b"")
            .send(0, From::Client, "A", b"")
    }
}

fn v6(v4: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0xfd, 0, 1, 98]);
    a[12..].copy_from_slice(&v4);
    a
}

fn analyse(frames: &[Vec<u8>], times: &[i64]) -> Analysis {
    let settings = Settings::default();
    let mut pipeline = Pipeline::new(&settings, LinkType::Ethernet);
    for (i, (bytes, &t)) in frames.iter().zip(times).enumerate() {
        pipeline.packet(
            &Packet {
                frame: i as u64 + 1,
                ts: Timestamp(t),
                wire_len: bytes.len() as u32,
                data: bytes,
            },
            false,
        );
    }
    pipeline
        .finish("built".into(), Vec::new())
        .expect("a pipeline without a sink does not fail")
}

fn verdicts_of(talk: &Talk) -> (Vec<Verdict>, Analysis) {
    let analysis = analyse(&talk.frames, &talk.times);
    let verdicts = analysis.flows.iter().map(|f| f.finding.verdict).collect();
    (verdicts, analysis)
}

fn staleconn_json(args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::cargo_bin("staleconn")
        .unwrap()
        .args(["--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        doc,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ipv4_fragments_are_counted_apart_and_the_flow_is_unharmed() {
    let mut talk = Talk::new(40000);
    talk.handshake().exchange(10);
    // Two fragments of one datagram between the exchanges.
    let mut first = talk.frames[3].clone();
    first[20] = 0x20; // more fragments, offset 0
    let mut second = talk.frames[4].clone();
    second[20..22].copy_from_slice(&[0x00, 0x05]); // offset 40 bytes, last fragment
    for (bytes, at) in [(first, talk.t + MS), (second, talk.t + 2 * MS)] {
        talk.frames.push(bytes);
        talk.times.push(at);
    }
    talk.t += 2 * MS;
    talk.exchange(1000).client_closes(500);
    let (verdicts, analysis) = verdicts_of(&talk);
    assert_eq!(verdicts, [Verdict::Completed]);
    assert_eq!(analysis.packets.skipped.get(&Skip::Fragment), Some(&2));
    assert_eq!(analysis.packets.read, analysis.packets.used + 2);
}

#[test]
fn ipv6_extension_headers_before_tcp_are_walked() {
    let mut talk = Talk::new(40000);
    talk.ipv6 = true;
    talk.handshake()
        .exchange(10)
        .exchange(2000)
        .client_closes(500);
    // Insert a hop-by-hop and a destination options header (8 bytes of padding each)
    // before every TCP header.
    for bytes in &mut talk.frames {
        let next_header = bytes[14 + 6];
        bytes[14 + 6] = 0; // hop-by-hop
        let payload_len = u16::from_be_bytes([bytes[18], bytes[19]]) + 16;
        bytes[18..20].copy_from_slice(&payload_len.to_be_bytes());
        let hop_by_hop = [60, 0, 1, 4, 0, 0, 0, 0]; // then destination options; PadN
        let destination = [next_header, 0, 1, 4, 0, 0, 0, 0];
        bytes.splice(54..54, hop_by_hop.into_iter().chain(destination));
    }
    let (verdicts, analysis) = verdicts_of(&talk);
    assert_eq!(verdicts, [Verdict::Completed]);
    assert_eq!(analysis.flows[0].requests, 2);
    assert_eq!(analysis.packets.used, analysis.packets.read);
}

#[test]
fn simultaneous_open_is_one_connection() {
    let mut talk = Talk::new(80);
    // Both ends send SYN, then each answers the other's with SYN-ACK (RFC 9293 3.5).
    let (c_isn, s_isn) = (talk.client_next, talk.server_next);
    talk.send_at(0, From::Client, "S", c_isn, 64240, b"");
    talk.send_at(1, From::Server, "S", s_isn, 64240, b"");
    talk.client_next = c_isn.wrapping_add(1);
    talk.server_next = s_isn.wrapping_add(1);
    talk.send_at(50, From::Client, "SA", c_isn, 64240, b"");
    talk.send_at(1, From::Server, "SA", s_isn, 64240, b"");
    talk.exchange(10).client_closes(500);
    let (verdicts, _) = verdicts_of(&talk);
    assert_eq!(verdicts, [Verdict::Completed]);
}

#[test]
fn port_reused_right_after_time_wait_is_a_new_flow() {
    let mut talk = Talk::new(40000);
    talk.handshake().exchange(10).client_closes(500);
    // The same 4-tuple a second later, with a new initial sequence number.
    talk.client_next = talk.client_next.wrapping_add(1_000_000);
    talk.t += SEC;
    talk.handshake().exchange(10).client_closes(500);
    let (verdicts, analysis) = verdicts_of(&talk);
    assert_eq!(verdicts, [Verdict::Completed, Verdict::Completed]);
    assert_eq!(analysis.flows[1].first_frame, 10);
}

#[test]
fn capture_that_starts_mid_connection_still_finds_the_races() {
    // The same real capture with every SYN filtered out: no flow has its handshake.
    let filter = "tcp[tcpflags] & tcp-syn == 0";
    let (code, doc, stderr) = staleconn_json(&["-r", "testdata/race-tls12-client.pcap", filter]);
    assert_eq!(code, Some(1), "{stderr}");
    let (_, whole, _) = staleconn_json(&["-r", "testdata/race-tls12-client.pcap"]);
    let races = |d: &Value| d["summary"]["verdicts"]["keepalive_race"].as_u64().unwrap();
    assert_eq!(races(&doc), races(&whole));
    // Refused connections were only a SYN and a RST: without the SYN, only the RST is
    // left, which is no flow worth a verdict of refusal.
    assert!(doc["summary"]["verdicts"].get("refused").is_none());
}

#[test]
fn snapshot_length_that_cuts_the_tcp_header_is_warned_with_a_fix() {
    // The real capture with every record cut to 40 bytes: Ethernet, IPv4 and 6 bytes of TCP.
    let bytes = std::fs::read("testdata/race-tls12-client.pcap").unwrap();
    let mut cut = bytes[..24].to_vec();
    cut[16..20].copy_from_slice(&40u32.to_le_bytes());
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let kept = caplen.min(40);
        cut.extend_from_slice(&bytes[at..at + 8]);
        cut.extend_from_slice(&(kept as u32).to_le_bytes());
        cut.extend_from_slice(&bytes[at + 12..at + 16 + kept]);
        at += 16 + caplen;
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, &cut).unwrap();
    let path = file.path().to_str().unwrap();
    let (code, doc, stderr) = staleconn_json(&["-r", path]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("-s 128"), "{stderr}");
    assert_eq!(
        doc["summary"]["packets"]["skipped"]["truncated"],
        doc["summary"]["packets"]["read"]
    );
}

#[test]
fn keepalive_probes_during_a_long_idle_are_traffic_not_requests() {
    // Real: the lab's nat_C client idles 380 s with TCP keepalive every 60 s through a NAT
    // that forgets after 350 s; the probes keep the mapping, and the request works.
    let (_, doc, _) = staleconn_json(&["-r", "testdata/nat-client.pcap", "--all"]);
    let flow = doc["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["client"] == "198.18.1.2:50012")
        .unwrap();
    assert_eq!(flow["verdict"], "completed");
    assert_eq!(flow["requests"], 2);

    // Built: probes every 60 s through 400 s of quiet, then a request reset at once by
    // a stranger. The flow was never silent for 350 s, so no middlebox timed it out.
    let mut talk = Talk::new(40000);
    talk.handshake().exchange(10);
    for _ in 0..6 {
        let probe = talk.client_next.wrapping_sub(1);
        talk.send_at(60_000, From::Client, "A", probe, 64240, b"");
        talk.send(50, From::Server, "A", b"");
    }
    talk.send(40_000, From::Client, "PA", REQUEST);
    talk.send_at(5, From::Server, "R", talk.server_next, 0, b"");
    let (verdicts, analysis) = verdicts_of(&talk);
    assert_eq!(
        verdicts,
        [Verdict::Reset],
        "{}",
        analysis.flows[0].finding.sentence
    );
    assert_eq!(analysis.flows[0].requests, 2);
}

#[test]
fn zero_window_probes_are_not_requests() {
    let mut talk = Talk::new(40000);
    talk.handshake().send(10, From::Client, "PA", REQUEST);
    talk.send(50, From::Server, "A", &RESPONSE[..20]);
    // The client's window is full; the server probes it (one below its next byte).
    talk.send_at(0, From::Client, "A", talk.client_next, 0, b"");
    for wait in [200, 400, 800] {
        let probe = talk.server_next.wrapping_sub(1);
        talk.send_at(wait, From::Server, "A", probe, 64240, b"");
        talk.send_at(0, From::Client, "A", talk.client_next, 0, b"");
    }
    talk.send(300, From::Client, "A", b""); // window open again
    talk.send(1, From::Server, "PA", &RESPONSE[20..]);
    talk.send(0, From::Client, "A", b"");
    talk.client_closes(500);
    let (verdicts, analysis) = verdicts_of(&talk);
    assert_eq!(verdicts, [Verdict::Completed]);
    assert_eq!(analysis.flows[0].requests, 1);
}

#[test]
fn client_reset_of_its_own_idle_connection_is_not_flagged() {
    // A pool evicting an idle connection with SO_LINGER 0 sends RST instead of FIN.
    let mut talk = Talk::new(40000);
    talk.handshake().exchange(10).exchange(1000);
    talk.send(30_000, From::Client, "RA", b"");
    let (verdicts, analysis) = verdicts_of(&talk);
    assert_eq!(verdicts, [Verdict::Reset]);
    assert!(!analysis.flows[0].finding.verdict.flagged());
}

#[test]
fn half_close_with_the_client_fin_first_completes() {
    // The client sends its request and FIN together; the server answers, then closes.
    let mut talk = Talk::new(40000);
    talk.handshake();
    talk.send(10, From::Client, "PA", REQUEST);
    talk.send(0, From::Client, "FA", b"");
    talk.send(50, From::Server, "PA", RESPONSE);
    talk.send(0, From::Client, "A", b"");
    talk.send(1, From::Server, "FA", b"");
    talk.send(0, From::Client, "A", b"");
    let (verdicts, analysis) = verdicts_of(&talk);
    assert_eq!(
        verdicts,
        [Verdict::Completed],
        "{}",
        analysis.flows[0].finding.sentence
    );
}
