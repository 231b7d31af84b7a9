//! Connections built packet by packet for the detectors' unit tests: one server, clients
//! by port, frames numbered from 1.

use crate::decode::{Segment, TcpFlags};
use crate::flow::{DEFAULT_MAX_FLOWS, Flow, Stamp, Tracker};
use crate::time::Timestamp;

pub const SYN: u8 = TcpFlags::SYN;
pub const SYN_ACK: u8 = TcpFlags::SYN | TcpFlags::ACK;
pub const ACK: u8 = TcpFlags::ACK;
pub const PSH_ACK: u8 = TcpFlags::PSH | TcpFlags::ACK;
pub const FIN_ACK: u8 = TcpFlags::FIN | TcpFlags::ACK;
pub const RST: u8 = TcpFlags::RST;
pub const RST_ACK: u8 = TcpFlags::RST | TcpFlags::ACK;
pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
pub const C: bool = true;
pub const S: bool = false;

/// A MariaDB server's greeting, a client's login, its OK and a one-row result.
pub const MARIADB_GREETING: &[u8] = b"\x0f\0\0\0\x0a10.11.6-Maria\0";
pub const MARIADB_LOGIN: &[u8] = b"\x05\0\0\x01\x85\xa6\x3f\x20\0";
pub const MARIADB_LOGIN_OK: &[u8] = b"\x07\0\0\x02\0\0\0\x02\0\0\0";
pub const MARIADB_RESULT: &[u8] = b"\x01\0\0\x01\x01";

/// A MariaDB connection up to its login's OK (0.15 s): the client's next byte is
/// `1 + MARIADB_LOGIN.len()`, the server's `1 + MARIADB_GREETING.len() + MARIADB_LOGIN_OK.len()`.
pub fn mariadb_logged_in() -> Vec<Packet> {
    let (g, l) = (MARIADB_GREETING.len() as u32, MARIADB_LOGIN.len() as u32);
    vec![
        (0.00, C, SYN, 0, 0, b""),
        (0.05, S, SYN_ACK, 0, 1, b""),
        (0.05, C, ACK, 1, 1, b""),
        (0.10, S, PSH_ACK, 1, 1, MARIADB_GREETING),
        (0.10, C, PSH_ACK, 1, 1 + g, MARIADB_LOGIN),
        (0.15, S, PSH_ACK, 1 + g, 1 + l, MARIADB_LOGIN_OK),
    ]
}

/// A packet as (seconds, from the client?, flags, seq, ack, payload), sequence numbers
/// relative to ISNs 100 (client) and 500 (server). Seconds beyond i64's nanoseconds
/// saturate to its ends.
pub type Packet = (f64, bool, u8, u32, u32, &'static [u8]);

/// One connection, its packets numbered from frame 1.
pub fn flow(packets: &[Packet]) -> Flow {
    let on_one: Vec<(u16, Packet)> = packets.iter().map(|&p| (51001, p)).collect();
    flows(&on_one).pop().unwrap()
}

/// Connections to one server from the given client ports, in order of first packet.
pub fn flows(packets: &[(u16, Packet)]) -> Vec<Flow> {
    let server: std::net::SocketAddr = "198.19.8.2:8090".parse().unwrap();
    let mut table = Tracker::new(Vec::new(), DEFAULT_MAX_FLOWS);
    let mut done = Vec::new();
    for (i, &(port, (t, from_client, flags, seq, ack, payload))) in packets.iter().enumerate() {
        let client = std::net::SocketAddr::new([198, 18, 8, 2].into(), port);
        let (src, dst, seq, ack) = if from_client {
            (client, server, 100 + seq, 500 + ack)
        } else {
            (server, client, 500 + seq, 100 + ack)
        };
        let segment = Segment::built(src, dst, flags, seq, ack, payload);
        let at = Stamp {
            frame: i as u64 + 1,
            ts: Timestamp((t * 1e9) as i64),
        };
        table.observe(&segment, at, &mut |f| done.push(f));
    }
    table.finish_all(&mut |f| done.push(f));
    let mut done: Vec<Flow> = done.into_iter().map(|f| *f).collect();
    done.sort_by_key(|f| f.id);
    done
}
