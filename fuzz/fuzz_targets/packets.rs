//! Fuzz target for the packet path: a link type and a run of packets, some raw bytes for
//! the decoder, some TCP segments built on one connection so flow tracking, sniffing,
//! detection and both report formats see long, plausible and hostile conversations.
#![no_main]

use etherparse::PacketBuilder;
use libfuzzer_sys::fuzz_target;
use staleconn::capture::Packet;
use staleconn::decode::LinkType;
use staleconn::report::Output;
use staleconn::time::Timestamp;
use staleconn::{Pipeline, Settings};

/// Link types staleconn reads, as LINKTYPE numbers; the fuzzer picks one by index.
const LINKS: [i32; 9] = [1, 0, 12, 101, 108, 113, 228, 229, 276];

const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/// A TLS 1.2 close_notify as an encrypted Alert record (26 bytes).
const ALERT: &[u8] = &[
    0x15, 3, 3, 0, 21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
];
/// A TLS 1.3 record small enough to be a close_notify (19 bytes).
const TLS13_SMALL: &[u8] = &[0x17, 3, 3, 0, 14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken
    }
}

/// Sequence numbers of the built connection, near the 2^32 wrap so it is crossed.
struct Connection {
    client_next: u32,
    server_next: u32,
}

fn build(input: &mut Input, link: LinkType, conn: &mut Connection, tag: u8) -> Option<Vec<u8>> {
    let from_client = tag & 1 == 1;
    let ipv6 = tag & 2 == 2;
    let flags = input.byte()?;
    let seq_shift = input.u16()? as i16;
    let ack_shift = input.u16()? as i16;
    let ttl = input.byte()?;
    let payload: Vec<u8> = match input.byte()? % 8 {
        0 | 1 => Vec::new(),
        2 => REQUEST.to_vec(),
        3 => RESPONSE.to_vec(),
        4 => ALERT.to_vec(),
        5 => TLS13_SMALL.to_vec(),
        _ => {
            let n = usize::from(input.byte()?);
            input.bytes(n).to_vec()
        }
    };
    let (client, server) = (([198, 18, 1, 2], 50000u16), ([198, 19, 2, 2], 443u16));
    let (src, dst) = if from_client { (client, server) } else { (server, client) };
    let (own, other) = if from_client {
        (&mut conn.client_next, conn.server_next)
    } else {
        (&mut conn.server_next, conn.client_next)
    };
    let seq = own.wrapping_add_signed(i32::from(seq_shift));
    let ack = other.wrapping_add_signed(i32::from(ack_shift));
    *own = seq
        .wrapping_add(payload.len() as u32)
        .wrapping_add(u32::from(flags & 0x03 != 0)); // SYN or FIN take one

    let builder = match link {
        LinkType::Ethernet => {
            let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            if ipv6 {
                eth.ipv6(v6(src.0), v6(dst.0), ttl)
            } else {
                eth.ipv4(src.0, dst.0, ttl)
            }
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => {
            if ipv6 {
                PacketBuilder::ipv6(v6(src.0), v6(dst.0), ttl)
            } else {
                PacketBuilder::ipv4(src.0, dst.0, ttl)
            }
        }
        _ => return None,
    };
    let mut tcp = builder.tcp(src.1, dst.1, seq, 64240).ack(ack);
    if flags & 0x01 != 0 {
        tcp = tcp.fin();
    }
    if flags & 0x02 != 0 {
        tcp = tcp.syn();
    }
    if flags & 0x04 != 0 {
        tcp = tcp.rst();
    }
    if flags & 0x08 != 0 {
        tcp = tcp.psh();
    }
    let mut packet = Vec::with_capacity(tcp.size(payload.len()));
    tcp.write(&mut packet, &payload).ok()?;
    if flags & 0x10 == 0 {
        // Clear ACK on some segments (a bare SYN, an ACK-less RST).
        let tcp_flags_at = packet.len() - payload.len() - 20 + 13;
        packet[tcp_flags_at] &= !0x10;
    }
    Some(packet)
}

fn v6(v4: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..2].copy_from_slice(&[0xfd, 0]);
    a[12..].copy_from_slice(&v4);
    a
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(pick) = input.byte() else { return };
    let linktype = LINKS[usize::from(pick) % LINKS.len()];
    let Some(link) = LinkType::from_linktype(linktype) else {
        return;
    };
    let settings = Settings {
        keep_benign: true,
        max_flows: 4,
        ..Settings::default()
    };
    let mut pipeline = Pipeline::new(&settings, link);
    let mut conn = Connection {
        client_next: 0xffff_ff00,
        server_next: 0x7fff_fff0,
    };
    let mut ts = Timestamp::from_parts(1_790_000_000, 0);
    let mut frame = 0u64;
    while let Some(tag) = input.byte() {
        let Some(step) = input.u16() else { break };
        // Mostly milliseconds forward; a set top bit jumps whole seconds, and a tag bit
        // goes back in time (two interfaces merged).
        let step_ns = if step & 0x8000 != 0 {
            i64::from(step & 0x7fff) * 1_000_000_000
        } else {
            i64::from(step) * 1_000_000
        };
        ts = Timestamp(if tag & 0x40 != 0 { ts.0 - step_ns } else { ts.0 + step_ns });
        let data = if tag & 0x80 != 0 {
            match build(&mut input, link, &mut conn, tag) {
                Some(packet) => packet,
                None => continue,
            }
        } else {
            let n = usize::from(input.u16().unwrap_or(0) % 2048);
            input.bytes(n).to_vec()
        };
        frame += 1;
        let packet = Packet {
            frame,
            ts,
            wire_len: data.len() as u32,
            data: &data,
        };
        let _ = pipeline.packet(&packet, tag & 0x20 != 0);
        if tag & 0x10 != 0 {
            pipeline.tick(ts);
        }
    }
    let analysis = pipeline
        .finish("fuzz".into(), Vec::new())
        .expect("a pipeline without a sink does not fail");
    for width in [None, Some(40), Some(80)] {
        let table = Output::Table {
            all: true,
            color: true,
            explain: true,
            width,
        };
        let _ = table.renderer(false).render(&analysis);
    }
    let _ = Output::Json.renderer(true).render(&analysis);
});
