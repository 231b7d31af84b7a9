//! Throughput benchmark over traffic mixes. For each profile it generates a deterministic
//! capture (Ethernet, IPv4 with some IPv6 and VLAN tags, and planted keep-alive races, NAT
//! resets and idle blackholes with known answers), then reports side by side a bare libpcap
//! read loop over it (the floor), a minimal flow tracker on libpcap (a reference), and
//! staleconn with the table and with `--format json`: wall time, packets/s, ratio to the
//! floor and peak RSS, and whether exactly the planted flows were flagged.
//!
//!   cargo bench --bench throughput                        # every profile, 3 M packets each
//!   cargo bench --bench throughput -- --profile tls --packets 10000000   # issue 5's figure
//!   cargo bench --bench throughput -- --packets 1000000    # a quicker look
//!
//! Profiles: `tls` (TLS records, no HTTP heads: keep-alive reuse, idle closes, resets, about
//! 25 packets a flow over an hour), `api` (plaintext HTTP/1.1 keep-alive, every head
//! visible, 10 to 40 requests a connection, a third closed by the server's 5 s idle timer),
//! `short` (one request a connection, `Connection: close`: SYN and FIN heavy) and `pool`
//! (a large idle pool: about 100 k connections open at once, a few packets each). The
//! captures are written to target/bench/ and reused when they are already there.

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
const PLANTED_BLACKHOLES: usize = 100;

/// A traffic mix: what its flows look like, and how many packets a flow has on average.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Profile {
    Tls,
    Api,
    Short,
    Pool,
}

impl Profile {
    const ALL: [Profile; 4] = [Profile::Tls, Profile::Api, Profile::Short, Profile::Pool];

    fn name(self) -> &'static str {
        match self {
            Profile::Tls => "tls",
            Profile::Api => "api",
            Profile::Short => "short",
            Profile::Pool => "pool",
        }
    }

    fn packets_per_flow(self) -> usize {
        match self {
            Profile::Tls => 25,
            Profile::Api => 80,
            Profile::Short => 10,
            Profile::Pool => 12,
        }
    }

    /// The capture's length, seconds.
    fn span_s(self) -> f64 {
        match self {
            Profile::Pool => 1800.0,
            _ => 3600.0,
        }
    }

    /// Payloads in the clear, with HTTP heads, or TLS records.
    fn plaintext(self) -> bool {
        self != Profile::Tls
    }

    /// A benign flow's kind.
    fn benign(self, rng: &mut Rng) -> Kind {
        match self {
            Profile::Tls => match rng.below(100) {
                0..=79 => Kind::Normal,
                80..=87 => Kind::IdleClose,
                88..=96 => Kind::ClientReset,
                _ => Kind::Refused,
            },
            Profile::Api => Kind::Api,
            Profile::Short => Kind::Short,
            Profile::Pool => Kind::Pooled,
        }
    }
}

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
    /// An HTTP/1.1 request head.
    Request,
    /// An HTTP/1.1 response head; `close`: it says `Connection: close`.
    Response {
        close: bool,
    },
}

impl Body {
    /// A request's payload: an HTTP head in the clear, or a TLS record.
    fn request(plaintext: bool) -> Body {
        if plaintext {
            Body::Request
        } else {
            Body::AppData
        }
    }
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
    /// One HTTP/1.1 request and its response, heads in the clear.
    fn http_exchange(&mut self, rtt: f64, rng: &mut Rng, close: bool) {
        let request = rng.uniform(80.0, 600.0) as u16;
        let response = rng.uniform(160.0, 1400.0) as u16;
        self.client(0.0002, PSH | ACK, request, Body::Request);
        self.server(rtt, PSH | ACK, response, Body::Response { close }, 63);
        self.client(0.0001, ACK, 0, Body::None);
    }
    fn exchange_of(&mut self, plaintext: bool, rtt: f64, rng: &mut Rng) {
        if plaintext {
            self.http_exchange(rtt, rng, false);
        } else {
            self.exchange(rtt, rng);
        }
    }
    fn client_close(&mut self, rtt: f64) {
        self.client(0.01, FIN | ACK, 0, Body::None);
        self.server(rtt, FIN | ACK, 0, Body::None, 63);
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
    Blackhole,
    /// A plaintext keep-alive API connection: many requests, closed by the client or by the
    /// server's idle timer.
    Api,
    /// One request, `Connection: close`.
    Short,
    /// A pooled connection that idles for minutes between two requests.
    Pooled,
}

fn script(kind: Kind, start_s: f64, plaintext: bool, rng: &mut Rng) -> Vec<Pkt> {
    let rtt = rng.uniform(0.0005, 0.02);
    let mut s = Script::new(start_s, rng);
    match kind {
        Kind::Api => {
            s.handshake(rtt);
            for i in 0..10 + rng.below(31) {
                if i > 0 {
                    s.t += rng.uniform(0.02, 2.0);
                }
                s.http_exchange(rtt, rng, false);
            }
            if rng.below(3) == 0 {
                // The server's 5 s idle timer: a bare FIN, as Node's or nginx's in the clear.
                s.server(5.0, FIN | ACK, 0, Body::None, 63);
                s.client(0.0001, ACK, 0, Body::None);
                s.client(0.001, FIN | ACK, 0, Body::None);
                s.server(rtt, ACK, 0, Body::None, 63);
            } else {
                s.client_close(rtt);
            }
        }
        Kind::Short => {
            s.handshake(rtt);
            s.http_exchange(rtt, rng, true);
            s.server(0.0001, FIN | ACK, 0, Body::None, 63);
            s.client(0.0002, FIN | ACK, 0, Body::None);
            s.server(rtt, ACK, 0, Body::None, 63);
        }
        Kind::Pooled => {
            s.handshake(rtt);
            s.http_exchange(rtt, rng, false);
            s.t += rng.uniform(300.0, 1500.0);
            s.http_exchange(rtt, rng, false);
            s.client_close(rtt);
        }
        Kind::Blackhole => {
            // 120 s of silence, then a router that forgot the connection drops the request
            // and its retransmissions; the client gives up with a RST.
            s.handshake(rtt);
            s.exchange_of(plaintext, rtt, rng);
            let body = Body::request(plaintext);
            let request = rng.uniform(80.0, 600.0) as u16;
            s.client(120.0, PSH | ACK, request, body);
            let after = s.c;
            for backoff in [0.2, 0.4, 0.8, 1.6, 3.2] {
                s.c = after.wrapping_sub(u32::from(request));
                s.client(backoff, PSH | ACK, request, body);
            }
            s.c = after;
            s.client(15.0, RST | ACK, 0, Body::None);
        }
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
            s.exchange_of(plaintext, rtt, rng);
            let request = rng.uniform(80.0, 1400.0) as u16;
            let body = Body::request(plaintext);
            s.client(4.99, PSH | ACK, request, body);
            let (c_after_request, c_before) = (s.c, s.c.wrapping_sub(u32::from(request)));
            s.c = c_before; // the server's close does not acknowledge the request
            if plaintext {
                s.server(0.01, FIN | ACK, 0, Body::None, 63);
            } else {
                s.server(0.01, PSH | ACK, 31, Body::CloseNotify, 63);
                s.server(0.00003, FIN | ACK, 0, Body::None, 63);
            }
            s.c = c_after_request;
            s.server(rtt, RST, 0, Body::None, 63);
        }
        Kind::NatReset => {
            // 380 s of silence, then a router that forgot the mapping answers with RST
            // (TTL 64 where the server's packets arrive with 63).
            s.handshake(rtt);
            s.exchange_of(plaintext, rtt, rng);
            let body = Body::request(plaintext);
            s.client(380.0, PSH | ACK, rng.uniform(80.0, 1400.0) as u16, body);
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

fn generate(path: &Path, target_packets: usize, profile: Profile) -> std::io::Result<Generated> {
    let flows_total = target_packets / profile.packets_per_flow();
    let span_s = profile.span_s();
    let mut rng = Rng(0x5eed_5eed_1234_5678);
    // Flow start times, sorted, with planted flows spread among them.
    let mut starts: Vec<(f64, Kind)> = (0..flows_total)
        .map(|i| {
            let kind = if i < PLANTED_RACES {
                Kind::Race
            } else if i < PLANTED_RACES + PLANTED_NAT_RESETS {
                Kind::NatReset
            } else if i < PLANTED_RACES + PLANTED_NAT_RESETS + PLANTED_BLACKHOLES {
                Kind::Blackhole
            } else {
                profile.benign(&mut rng)
            };
            let latest = match kind {
                Kind::NatReset => span_s - 400.0,
                Kind::Pooled => span_s - 1600.0,
                Kind::Blackhole => span_s - 200.0,
                _ => span_s - 60.0,
            };
            (rng.uniform(0.0, latest.max(1.0)), kind)
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
            let port = if profile.plaintext() { 80 } else { 443 };
            let flow = Flow {
                client: (client, 1024 + (id % 60000) as u16),
                server: (server, port),
                v6,
                vlan,
                packets: script(kind, start_s, profile.plaintext(), &mut rng),
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
        Body::Request => head(payload, len, b"GET /v1/orders/1234 HTTP/1.1\r\nHost: api.internal\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"),
        Body::Response { close: false } => head(payload, len, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nKeep-Alive: timeout=5\r\nContent-Length: 64\r\n\r\n"),
        Body::Response { close: true } => head(payload, len, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 64\r\n\r\n"),
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

/// An HTTP head at the start of a payload of `len` bytes (cut if the payload is shorter).
fn head(payload: &mut [u8], len: usize, text: &[u8]) {
    let n = text.len().min(len);
    payload[..n].copy_from_slice(&text[..n]);
    payload[n..len].fill(b'x');
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
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    if let Some(syns) = value("--flood").and_then(|n| n.parse().ok()) {
        flood(&dir, syns);
        return;
    }
    let packets: usize = value("--packets")
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000_000);
    // Each run is repeated, alternating, and the best wall time of each is compared: a
    // shared VM's noise only ever adds time, so the minimum is the steadiest figure.
    let runs: usize = value("--runs")
        .and_then(|n| n.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let profiles: Vec<Profile> = match value("--profile") {
        Some(name) => vec![
            *Profile::ALL
                .iter()
                .find(|p| p.name() == name)
                .unwrap_or_else(|| panic!("--profile {name}: one of tls, api, short, pool")),
        ],
        None => Profile::ALL.to_vec(),
    };
    let mut rows = Vec::new();
    for profile in profiles {
        rows.push(bench_profile(&dir, profile, packets, runs));
    }
    println!();
    println!(
        "{:<6} {:>9} {:>7} {:>9}  {:>13}  {:>13}  {:>22}  {:>22}  {:>22}  verdicts",
        "mix",
        "packets",
        "flows",
        "open max",
        "libpcap loop",
        "min. tracker",
        "table, 1 table thread",
        "table, 2 table threads",
        "json, 1 table thread"
    );
    for row in &rows {
        println!("{row}");
    }
    println!(
        "(wall time best of {runs}, ratio to the libpcap loop, peak RSS; target: ratio <= 1.5)"
    );
}

/// One profile's figures.
struct Row {
    profile: Profile,
    packets: u64,
    flows: usize,
    open_max: usize,
    floor_s: f64,
    tracker_s: f64,
    table: (f64, u64),
    /// The table with two flow-table threads: on a 2-core machine the reading thread then
    /// shares a core with one of them.
    table_2: (f64, u64),
    json: (f64, u64),
    verdicts: String,
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let run =
            |(s, kb): (f64, u64)| format!("{s:.2} s {:.2}x {:>4} MB", s / self.floor_s, kb / 1024);
        write!(
            f,
            "{:<6} {:>9} {:>7} {:>9}  {:>6.2} s {:>3.0}M/s  {:>6.2} s {:.2}x  {:>22}  {:>22}  {:>22}  {}",
            self.profile.name(),
            self.packets,
            self.flows,
            self.open_max,
            self.floor_s,
            self.packets as f64 / self.floor_s / 1e6,
            self.tracker_s,
            self.tracker_s / self.floor_s,
            run(self.table),
            run(self.table_2),
            run(self.json),
            self.verdicts
        )
    }
}

fn bench_profile(dir: &Path, profile: Profile, packets: usize, runs: usize) -> Row {
    let path = dir.join(format!("bench-{}-{packets}.pcap", profile.name()));
    let started = Instant::now();
    let generated = if path.exists() {
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Generated {
            path: path.clone(),
            bytes,
            flows: packets / profile.packets_per_flow(),
        }
    } else {
        let generated = generate(&path, packets, profile).expect("write the capture");
        // The generator's memory back to the system: a child's peak counts what this
        // process held when it started the child.
        // SAFETY: malloc_trim only releases free memory.
        unsafe {
            libc::malloc_trim(0);
        }
        generated
    };
    eprintln!(
        "{}: {} ({:.2} GB, {} flows) ready in {:.1} s",
        profile.name(),
        generated.path.display(),
        generated.bytes as f64 / 1e9,
        generated.flows,
        started.elapsed().as_secs_f64()
    );
    let _ = bare_libpcap_loop(&generated.path); // warm the page cache
    let (mut floor_packets, mut floor_s, mut tracker_s) = (0, f64::MAX, f64::MAX);
    let mut open_max = 0;
    let (mut table, mut table_2, mut json) = ((f64::MAX, 0), (f64::MAX, 0), (f64::MAX, 0));
    let mut report = String::new();
    let mut document_ok = false;
    for _ in 0..runs {
        let (packets, seconds) = bare_libpcap_loop(&generated.path);
        floor_packets = packets;
        floor_s = floor_s.min(seconds);
        let (open, seconds) = minimal_tracker(&generated.path);
        open_max = open;
        tracker_s = tracker_s.min(seconds);
        let (seconds, kb, stdout) = staleconn(&generated.path, &["--threads", "1"]);
        table = (table.0.min(seconds), table.1.max(kb));
        report = stdout;
        let (seconds, kb, stdout) = staleconn(&generated.path, &["--threads", "2"]);
        table_2 = (table_2.0.min(seconds), table_2.1.max(kb));
        if stdout != report {
            report = "the table MISMATCH between --threads 1 and 2".into();
        }
        let (seconds, kb, stdout) =
            staleconn(&generated.path, &["--threads", "1", "--format", "json"]);
        json = (json.0.min(seconds), json.1.max(kb));
        document_ok = stdout.trim_end().ends_with('}')
            && stdout.contains(&format!("\"flows\": {},", generated.flows));
    }
    Row {
        profile,
        packets: floor_packets,
        flows: generated.flows,
        open_max,
        floor_s,
        tracker_s,
        table,
        table_2,
        json,
        verdicts: planted_found(&report, document_ok),
    }
}

/// Runs staleconn on the capture: wall time, its own peak RSS (KB), and what it printed
/// (its last 64 KB: a JSON document can be larger than this process should hold).
// The child is reaped by wait4, which also gives its resource usage.
#[allow(clippy::zombie_processes)]
fn staleconn(path: &Path, args: &[&str]) -> (f64, u64, String) {
    // A child's peak counts this process's own peak when the child was started (Linux
    // records the old address space's at exec): reset ours to what we hold now.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_staleconn"))
        .arg("-r")
        .arg(path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run staleconn");
    const KEEP: usize = 64 << 10;
    let mut tail: Vec<u8> = Vec::with_capacity(2 * KEEP);
    let mut chunk = vec![0u8; KEEP];
    let out = child.stdout.as_mut().expect("piped");
    loop {
        let n = std::io::Read::read(out, &mut chunk).expect("read staleconn's output");
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > KEEP {
            tail.drain(..tail.len() - KEEP);
        }
    }
    let kb = wait_peak_rss_kb(child.id());
    (
        started.elapsed().as_secs_f64(),
        kb,
        String::from_utf8_lossy(&tail).into_owned(),
    )
}

/// Waits for the child and returns its own peak resident set, in KB (Linux: wait4).
fn wait_peak_rss_kb(pid: u32) -> u64 {
    // SAFETY: wait4 fills the status and the struct we own, for our own child.
    unsafe {
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage);
        usage.ru_maxrss.max(0) as u64
    }
}

/// Whether the table's summary found exactly the planted flows, and the JSON document was
/// whole and listed every flow.
fn planted_found(report: &str, document_ok: bool) -> String {
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
    let (races, resets, holes) = (
        count("keepalive_race"),
        count("nat_idle_reset"),
        count("idle_blackhole"),
    );
    let exact = races == PLANTED_RACES as u64
        && resets == PLANTED_NAT_RESETS as u64
        && holes == PLANTED_BLACKHOLES as u64
        && flagged == races + resets + holes;
    format!(
        "{} ({races} races, {resets} resets, {holes} blackholes, {} other flagged){}",
        if exact { "exact" } else { "MISMATCH" },
        flagged.saturating_sub(races + resets + holes),
        if document_ok {
            ""
        } else {
            "; JSON document MISMATCH"
        }
    )
}

/// A reference: the least a flow tracker does on libpcap, a hash map from 4-tuple to a
/// packet count, removed at FIN or RST. Returns the most flows open at once and the time.
fn minimal_tracker(path: &Path) -> (usize, f64) {
    use std::collections::HashMap;
    let started = Instant::now();
    let mut capture = pcap::Capture::from_file(path).expect("open the capture");
    let mut flows: HashMap<([u8; 16], [u8; 16], u16, u16), u64> = HashMap::new();
    let mut open_max = 0;
    while let Ok(packet) = capture.next_packet() {
        let Ok(sliced) = etherparse::SlicedPacket::from_ethernet(packet.data) else {
            continue;
        };
        let (src, dst) = match &sliced.net {
            Some(etherparse::NetSlice::Ipv4(v4)) => {
                let mut a = [0u8; 16];
                let mut b = [0u8; 16];
                a[..4].copy_from_slice(&v4.header().source());
                b[..4].copy_from_slice(&v4.header().destination());
                (a, b)
            }
            Some(etherparse::NetSlice::Ipv6(v6)) => {
                (v6.header().source(), v6.header().destination())
            }
            _ => continue,
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = &sliced.transport else {
            continue;
        };
        let (sp, dp) = (tcp.source_port(), tcp.destination_port());
        let key = if (src, sp) <= (dst, dp) {
            (src, dst, sp, dp)
        } else {
            (dst, src, dp, sp)
        };
        if tcp.fin() || tcp.rst() {
            flows.remove(&key);
        } else {
            *flows.entry(key).or_default() += 1;
            open_max = open_max.max(flows.len());
        }
    }
    std::hint::black_box(&flows);
    (open_max, started.elapsed().as_secs_f64())
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
