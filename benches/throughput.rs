//! Throughput benchmark: generates a deterministic capture (Ethernet, IPv4 with some IPv6
//! and VLAN tags, ~25 packets a flow over an hour, keep-alive reuse with idle gaps, FIN and
//! RST closes, and planted keep-alive races and NAT resets with known answers), then reports
//! side by side a bare libpcap read loop over it (the floor), staleconn's packets/s and peak
//! RSS, their ratio, and whether exactly the planted flows were flagged.
//!
//!   cargo bench --bench throughput                      # 10 million packets, ~3 GB
//!   cargo bench --bench throughput -- --packets 1000000  # a quicker look
//!
//! The capture is written to target/bench/ and reused when it is already there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use etherparse::{PacketBuilder, VlanId};

#[path = "../tests/common/flood.rs"]
mod flood;

const PLANTED_RACES: usize = 300;
const PLANTED_NAT_RESETS: usize = 200;
const SPAN_S: f64 = 3600.0;
const PACKETS_PER_FLOW: usize = 25;

/// xorshift64*: the same capture on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// What a generated payload starts with.
#[derive(Clone, Copy)]
enum Body {
    None,
    /// A TLS application-data record filling the segment.
    AppData,
    /// nginx's TLS 1.2 close_notify: a 26-byte Alert record.
    CloseNotify,
}

#[derive(Clone, Copy)]
struct Pkt {
    t_ns: u64,
    from_client: bool,
    flags: u8,
    seq: u32,
    ack: u32,
    len: u16,
    ttl: u8,
    body: Body,
}

/// A flow's whole script, built at its start: its packets in time order.
struct Flow {
    client: ([u8; 16], u16),
    server: ([u8; 16], u16),
    v6: bool,
    vlan: Option<u16>,
    packets: Vec<Pkt>,
    next: usize,
}

/// Writes one flow's packets: sequence numbers and times kept per direction.
struct Script {
    packets: Vec<Pkt>,
    t: f64,
    start_ns: u64,
    c: u32,
    s: u32,
}

impl Script {
    fn new(start_s: f64, rng: &mut Rng) -> Script {
        Script {
            packets: Vec::with_capacity(48),
            t: 0.0,
            start_ns: (start_s * 1e9) as u64,
            c: rng.next() as u32,
            s: rng.next() as u32,
        }
    }
    fn at(&mut self, dt: f64) -> u64 {
        self.t += dt;
        self.start_ns + (self.t * 1e9) as u64
    }
    fn client(&mut self, dt: f64, flags: u8, len: u16, body: Body) {
        let t_ns = self.at(dt);
        let ack = if flags & ACK != 0 { self.s } else { 0 };
        self.packets.push(Pkt {
            t_ns,
            from_client: true,
            flags,
            seq: self.c,
            ack,
            len,
            ttl: 64,
            body,
        });
        self.c = self
            .c
            .wrapping_add(u32::from(len) + u32::from(flags & (SYN | FIN) != 0));
    }
    fn server(&mut self, dt: f64, flags: u8, len: u16, body: Body, ttl: u8) {
        let t_ns = self.at(dt);
        let ack = if flags & ACK != 0 { self.c } else { 0 };
        self.packets.push(Pkt {
            t_ns,
            from_client: false,
            flags,
            seq: self.s,
            ack,
            len,
            ttl,
            body,
        });
        self.s = self
            .s
            .wrapping_add(u32::from(len) + u32::from(flags & (SYN | FIN) != 0));
    }
    fn handshake(&mut self, rtt: f64) {
        self.client(0.0, SYN, 0, Body::None);
        self.server(rtt, SYN | ACK, 0, Body::None, 63);
        self.client(0.0001, ACK, 0, Body::None);
    }
    fn exchange(&mut self, rtt: f64, rng: &mut Rng) {
        let request = rng.uniform(60.0, 1400.0) as u16;
        let response = rng.uniform(60.0, 1400.0) as u16;
        self.client(0.0002, PSH | ACK, request, Body::AppData);
        self.server(rtt, PSH | ACK, response, Body::AppData, 63);
        self.client(0.0001, ACK, 0, Body::None);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Normal,
    IdleClose,
    ClientReset,
    Refused,
    Race,
    NatReset,
}

fn script(kind: Kind, start_s: f64, rng: &mut Rng) -> Vec<Pkt> {
    let rtt = rng.uniform(0.0005, 0.02);
    let mut s = Script::new(start_s, rng);
    match kind {
        Kind::Refused => {
            s.client(0.0, SYN, 0, Body::None);
            s.server(rtt, RST | ACK, 0, Body::None, 63);
        }
        Kind::Normal | Kind::ClientReset => {
            s.handshake(rtt);
            for i in 0..1 + rng.below(12) {
                if i > 0 {
                    s.t += rng.uniform(0.05, 3.0); // keep-alive reuse after an idle gap
                }
                s.exchange(rtt, rng);
            }
            if kind == Kind::ClientReset {
                s.client(0.01, RST | ACK, 0, Body::None);
            } else {
                s.client(0.01, FIN | ACK, 0, Body::None);
                s.server(rtt, FIN | ACK, 0, Body::None, 63);
                s.client(0.0001, ACK, 0, Body::None);
            }
        }
        Kind::IdleClose => {
            s.handshake(rtt);
            s.exchange(rtt, rng);
            s.server(5.0, PSH | ACK, 31, Body::CloseNotify, 63);
            s.server(0.00003, FIN | ACK, 0, Body::None, 63);
            s.client(0.0001, ACK, 0, Body::None);
            s.client(0.001, FIN | ACK, 0, Body::None);
            s.server(rtt, ACK, 0, Body::None, 63);
        }
        Kind::Race => {
            // Seen on the client: the request leaves 10 ms before the server's close
            // arrives, crosses it, and is answered by RST.
            s.handshake(rtt);
            s.exchange(rtt, rng);
            let request = rng.uniform(60.0, 1400.0) as u16;
            s.client(4.99, PSH | ACK, request, Body::AppData);
            let (c_after_request, c_before) = (s.c, s.c.wrapping_sub(u32::from(request)));
            s.c = c_before; // the server's close does not acknowledge the request
            s.server(0.01, PSH | ACK, 31, Body::CloseNotify, 63);
            s.server(0.00003, FIN | ACK, 0, Body::None, 63);
            s.c = c_after_request;
            s.server(rtt, RST, 0, Body::None, 63);
        }
        Kind::NatReset => {
            // 380 s of silence, then a router that forgot the mapping answers with RST
            // (TTL 64 where the server's packets arrive with 63).
            s.handshake(rtt);
            s.exchange(rtt, rng);
            s.client(
                380.0,
                PSH | ACK,
                rng.uniform(60.0, 1400.0) as u16,
                Body::AppData,
            );
            s.server(0.0005, RST, 0, Body::None, 64);
        }
    }
    s.packets
}

struct Generated {
    path: PathBuf,
    bytes: u64,
    flows: usize,
}

fn generate(path: &Path, target_packets: usize) -> std::io::Result<Generated> {
    let flows_total = target_packets / PACKETS_PER_FLOW;
    let mut rng = Rng(0x5eed_5eed_1234_5678);
    // Flow start times, sorted, with planted flows spread among them.
    let mut starts: Vec<(f64, Kind)> = (0..flows_total)
        .map(|i| {
            let kind = if i < PLANTED_RACES {
                Kind::Race
            } else if i < PLANTED_RACES + PLANTED_NAT_RESETS {
                Kind::NatReset
            } else {
                match rng.below(100) {
                    0..=79 => Kind::Normal,
                    80..=87 => Kind::IdleClose,
                    88..=96 => Kind::ClientReset,
                    _ => Kind::Refused,
                }
            };
            let latest = if kind == Kind::NatReset {
                SPAN_S - 400.0
            } else {
                SPAN_S - 60.0
            };
            (rng.uniform(0.0, latest), kind)
        })
        .collect();
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));

    let mut out = BufWriter::with_capacity(1 << 22, File::create(path)?);
    // pcap header, nanosecond timestamps, Ethernet.
    out.write_all(&0xa1b2_3c4du32.to_le_bytes())?;
    out.write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
    out.write_all(&65535u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;

    let base_ns: u64 = 1_790_000_000 * 1_000_000_000;
    let mut slots: Vec<Option<Flow>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut frame = Vec::with_capacity(2048);
    let mut payload = vec![0u8; 1500];
    let (mut packets, mut bytes) = (0u64, 24u64);
    let mut next_start = 0;
    loop {
        let next_flow_ns = starts.get(next_start).map(|(t, _)| (t * 1e9) as u64);
        let next_packet_ns = heap.peek().map(|Reverse((t, _))| *t);
        let start_one = match (next_flow_ns, next_packet_ns) {
            (Some(f), Some(p)) => f <= p,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if start_one {
            let (start_s, kind) = starts[next_start];
            let id = next_start as u32;
            next_start += 1;
            let v6 = rng.below(10) == 0;
            let vlan = (rng.below(5) == 0).then(|| 100 + (id % 50) as u16);
            let mut client = [0u8; 16];
            let mut server = [0u8; 16];
            if v6 {
                client[..4].copy_from_slice(&[0xfd, 0x00, 0x01, 0x98]);
                client[12..].copy_from_slice(&id.to_be_bytes());
                server[..4].copy_from_slice(&[0xfd, 0x00, 0x01, 0x99]);
                server[15] = (id % 8) as u8 + 1;
            } else {
                client[..4].copy_from_slice(&[198, 18, (id >> 8) as u8, id as u8]);
                server[..4].copy_from_slice(&[198, 19, 0, (id % 8) as u8 + 1]);
            }
            let flow = Flow {
                client: (client, 1024 + (id % 60000) as u16),
                server: (server, 443),
                v6,
                vlan,
                packets: script(kind, start_s, &mut rng),
                next: 0,
            };
            let first = flow.packets[0].t_ns;
            let slot = match free.pop() {
                Some(slot) => {
                    slots[slot] = Some(flow);
                    slot
                }
                None => {
                    slots.push(Some(flow));
                    slots.len() - 1
                }
            };
            heap.push(Reverse((first, slot)));
            continue;
        }
        let Some(Reverse((_, slot))) = heap.pop() else {
            break;
        };
        let flow = slots[slot].as_mut().expect("a live slot");
        let p = flow.packets[flow.next];
        flow.next += 1;
        build(&mut frame, flow, &p, &mut payload);
        let ts = base_ns + p.t_ns;
        out.write_all(&((ts / 1_000_000_000) as u32).to_le_bytes())?;
        out.write_all(&((ts % 1_000_000_000) as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&frame)?;
        packets += 1;
        bytes += 16 + frame.len() as u64;
        if flow.next < flow.packets.len() {
            heap.push(Reverse((flow.packets[flow.next].t_ns, slot)));
        } else {
            slots[slot] = None;
            free.push(slot);
        }
    }
    out.flush()?;
    eprintln!("generated {packets} packets");
    Ok(Generated {
        path: path.to_path_buf(),
        bytes,
        flows: flows_total,
    })
}

fn build(frame: &mut Vec<u8>, flow: &Flow, p: &Pkt, payload: &mut [u8]) {
    frame.clear();
    let len = usize::from(p.len);
    match p.body {
        Body::None => {}
        Body::AppData => {
            payload[..5].copy_from_slice(&[23, 3, 3, ((len - 5) >> 8) as u8, (len - 5) as u8])
        }
        Body::CloseNotify => payload[..5].copy_from_slice(&[21, 3, 3, 0, 26]),
    }
    let ((src, sport), (dst, dport)) = if p.from_client {
        (flow.client, flow.server)
    } else {
        (flow.server, flow.client)
    };
    let (mac_a, mac_b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let ip = match (flow.vlan, flow.v6) {
        (Some(v), false) => PacketBuilder::ethernet2(mac_a, mac_b)
            .single_vlan(VlanId::try_new(v).expect("a VLAN id"))
            .ipv4(
                src[..4].try_into().unwrap(),
                dst[..4].try_into().unwrap(),
                p.ttl,
            ),
        (Some(v), true) => PacketBuilder::ethernet2(mac_a, mac_b)
            .single_vlan(VlanId::try_new(v).expect("a VLAN id"))
            .ipv6(src, dst, p.ttl),
        (None, false) => PacketBuilder::ethernet2(mac_a, mac_b).ipv4(
            src[..4].try_into().unwrap(),
            dst[..4].try_into().unwrap(),
            p.ttl,
        ),
        (None, true) => PacketBuilder::ethernet2(mac_a, mac_b).ipv6(src, dst, p.ttl),
    };
    let mut tcp = ip.tcp(sport, dport, p.seq, 65535);
    if p.flags & SYN != 0 {
        tcp = tcp.syn();
    }
    if p.flags & ACK != 0 {
        tcp = tcp.ack(p.ack);
    }
    if p.flags & PSH != 0 {
        tcp = tcp.psh();
    }
    if p.flags & FIN != 0 {
        tcp = tcp.fin();
    }
    if p.flags & RST != 0 {
        tcp = tcp.rst();
    }
    tcp.write(frame, &payload[..len]).expect("a frame");
}

/// The floor: the fastest a libpcap reader can go over this file.
fn bare_libpcap_loop(path: &Path) -> (u64, f64) {
    let started = Instant::now();
    let mut capture = pcap::Capture::from_file(path).expect("open the capture");
    let (mut packets, mut bytes) = (0u64, 0u64);
    while let Ok(packet) = capture.next_packet() {
        packets += 1;
        bytes += packet.data.len() as u64;
    }
    std::hint::black_box(bytes);
    (packets, started.elapsed().as_secs_f64())
}

/// `--flood N`: N distinct SYN flows, analysed with the default settings and with a small
/// `--max-flows`: time and peak memory for each. Memory must stop at the flow cap.
fn flood(dir: &Path, syns: usize) {
    let path = dir.join(format!("flood-{syns}.pcap"));
    if !path.exists() {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path).expect("target/bench"));
        let bytes = flood::write_syn_flood(&mut out, syns as u32).expect("write the flood capture");
        eprintln!(
            "flood capture: {} ({:.2} GB)",
            path.display(),
            bytes as f64 / 1e9
        );
    }
    println!("SYN flood: {syns} SYNs, each a new flow, 2 packets each");
    // The small cap first: peak RSS is the largest of the runs so far.
    for max_flows in [Some("100000"), None] {
        let started = Instant::now();
        let mut command = Command::new(env!("CARGO_BIN_EXE_staleconn"));
        // The table: the figures issue 5 and 7 measured.
        command.arg("-r").arg(&path);
        if let Some(max) = max_flows {
            command.args(["--max-flows", max]);
        }
        let output = command
            .stderr(Stdio::null())
            .output()
            .expect("run staleconn");
        let seconds = started.elapsed().as_secs_f64();
        let report = String::from_utf8_lossy(&output.stdout);
        let line = |prefix: &str| {
            report
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or("?")
                .to_owned()
        };
        println!(
            "  --max-flows {:>9}: {seconds:>6.2} s  {:>5.2} Mpkt/s  peak RSS {:>5.0} MB  flows {}  evicted {}",
            max_flows.unwrap_or("(default)"),
            2.0 * syns as f64 / seconds / 1e6,
            children_peak_rss_kb() as f64 / 1024.0,
            line("Flows: "),
            line("Evicted: "),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(syns) = args
        .iter()
        .position(|a| a == "--flood")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
    {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        std::fs::create_dir_all(&dir).expect("target/bench");
        flood(&dir, syns);
        return;
    }
    let packets = args
        .iter()
        .position(|a| a == "--packets")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000usize);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let path = dir.join(format!("bench-{packets}.pcap"));

    let started = Instant::now();
    let generated = if path.exists() {
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Generated {
            path: path.clone(),
            bytes,
            flows: packets / PACKETS_PER_FLOW,
        }
    } else {
        generate(&path, packets).expect("write the capture")
    };
    eprintln!(
        "capture: {} ({:.2} GB, {} flows, {PLANTED_RACES} planted races, {PLANTED_NAT_RESETS} planted NAT resets) ready in {:.1} s",
        generated.path.display(),
        generated.bytes as f64 / 1e9,
        generated.flows,
        started.elapsed().as_secs_f64()
    );

    // Warm the page cache so both readers start from memory. Then each is run `--runs`
    // times, alternating, and the best wall time of each is compared: a shared VM's noise
    // only ever adds time, so the minimum is the steadiest figure of what the code costs.
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let _ = bare_libpcap_loop(&generated.path);
    let (mut floor_packets, mut floor_s) = (0, f64::MAX);
    let (mut staleconn_s, mut output) = (f64::MAX, None);
    for _ in 0..runs {
        let (packets, seconds) = bare_libpcap_loop(&generated.path);
        floor_packets = packets;
        floor_s = floor_s.min(seconds);
        let started = Instant::now();
        let run = Command::new(env!("CARGO_BIN_EXE_staleconn"))
            .arg("-r")
            .arg(&generated.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .expect("run staleconn");
        staleconn_s = staleconn_s.min(started.elapsed().as_secs_f64());
        output = Some(run);
    }
    let output = output.expect("at least one run");
    let peak_rss_mb = children_peak_rss_kb() as f64 / 1024.0;
    let report = String::from_utf8_lossy(&output.stdout);

    // The summary's lines: "  ! keepalive_race   300  request met ...".
    let count = |verdict: &str| -> u64 {
        report
            .lines()
            .find_map(|l| {
                let mut words = l.split_whitespace().skip_while(|w| *w == "!");
                (words.next() == Some(verdict)).then(|| words.next()?.parse().ok())?
            })
            .unwrap_or(0)
    };
    let flagged: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("Flows: "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let (races, resets) = (count("keepalive_race"), count("nat_idle_reset"));

    println!("packets:                   {floor_packets}  (best of {runs} runs each)");
    println!(
        "bare libpcap read loop:    {floor_s:>7.2} s  {:>6.2} Mpkt/s",
        floor_packets as f64 / floor_s / 1e6
    );
    println!(
        "staleconn -r:              {staleconn_s:>7.2} s  {:>6.2} Mpkt/s  peak RSS {peak_rss_mb:.0} MB",
        floor_packets as f64 / staleconn_s / 1e6
    );
    println!(
        "ratio staleconn / floor:   {:>7.2}  (target <= 1.5)",
        staleconn_s / floor_s
    );
    println!(
        "planted: {races}/{PLANTED_RACES} races and {resets}/{PLANTED_NAT_RESETS} NAT resets found; {} other flows flagged",
        flagged.saturating_sub(races + resets)
    );
    let exact = races == PLANTED_RACES as u64
        && resets == PLANTED_NAT_RESETS as u64
        && flagged == races + resets;
    println!(
        "{}",
        if exact {
            "verdicts: exactly the planted flows"
        } else {
            "verdicts: MISMATCH"
        }
    );
}

/// The largest resident set of any child process waited for, in KB (Linux).
fn children_peak_rss_kb() -> i64 {
    // SAFETY: getrusage fills the struct we own.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    }
}
