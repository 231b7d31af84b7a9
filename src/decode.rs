//! Bytes to meaning: link headers (Ethernet/VLAN, Linux SLL and SLL2, raw IP, BSD null and
//! loop), IPv4/IPv6 and TCP, turned into a `Segment`, or a typed `Skip` that says why not.

use std::net::IpAddr;

use etherparse::{LaxIpSlice, TcpSlice, ip_number};
use serde::Serialize;

/// The link-layer header types staleconn reads, by their pcap LINKTYPE number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// BSD loopback: 4-byte address family in the capturing host's byte order (0).
    Null,
    /// Ethernet II, with any number of 802.1Q / 802.1ad tags (1).
    Ethernet,
    /// Raw IPv4 or IPv6, version read from the first nibble (12, 14, 101).
    RawIp,
    /// OpenBSD loopback: 4-byte address family in network byte order (108).
    Loop,
    /// Linux cooked capture v1, `tcpdump -i any -y LINUX_SLL` (113).
    LinuxSll,
    /// Raw IPv4 (228).
    Ipv4,
    /// Raw IPv6 (229).
    Ipv6,
    /// Linux cooked capture v2, what `tcpdump -i any` writes (276).
    LinuxSll2,
}

impl LinkType {
    pub fn from_linktype(value: i32) -> Option<LinkType> {
        Some(match value {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LinkType::Null => "BSD loopback",
            LinkType::Ethernet => "Ethernet",
            LinkType::RawIp => "raw IP",
            LinkType::Loop => "OpenBSD loopback",
            LinkType::LinuxSll => "Linux cooked (SLL)",
            LinkType::Ipv4 => "raw IPv4",
            LinkType::Ipv6 => "raw IPv6",
            LinkType::LinuxSll2 => "Linux cooked v2 (SLL2)",
        }
    }
}

/// Why a packet was not used. Every skipped packet is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// The link header names a protocol that is not IPv4 or IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP, but not TCP (UDP, ICMP, ...).
    NotTcp,
    /// An IP fragment: TCP headers are only in the first fragment and are not reassembled.
    Fragment,
    /// The snapshot length cut the packet inside the link, IP or TCP header.
    Truncated,
    /// A header field is impossible (IP version, header length, TCP data offset).
    Malformed,
    /// A TCP packet whose endpoints match no `--target`.
    NotTarget,
}

impl Skip {
    pub fn name(self) -> &'static str {
        match self {
            Skip::NotIp => "not IP",
            Skip::NotTcp => "not TCP",
            Skip::Fragment => "IP fragment",
            Skip::Truncated => "truncated header",
            Skip::Malformed => "malformed header",
            Skip::NotTarget => "not a target",
        }
    }
}

/// TCP flag bits as on the wire (byte 13 of the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    /// As Wireshark's Info column lists them: "SYN, ACK", "FIN, ACK", "RST".
    pub fn names(self) -> String {
        const NAMES: [(u8, &str); 8] = [
            (TcpFlags::FIN, "FIN"),
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::ACK, "ACK"),
            (TcpFlags::URG, "URG"),
            (TcpFlags::ECE, "ECE"),
            (TcpFlags::CWR, "CWR"),
        ];
        let names: Vec<&str> = NAMES
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, n)| *n)
            .collect();
        names.join(", ")
    }

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// One TCP segment as the flow stage needs it. `payload` is what the capture holds of the
/// payload; `payload_len` is its true length from the IP header, even when snaplen cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The advertised receive window, unscaled (zero is zero at any scale).
    pub window: u16,
    pub payload_len: u32,
    pub payload: &'a [u8],
}

#[cfg(test)]
impl<'a> Segment<'a> {
    /// A segment for unit tests: TTL 64, an open window, the payload whole.
    pub fn built(
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: &'a [u8],
    ) -> Segment<'a> {
        Segment {
            src: src.ip(),
            dst: dst.ip(),
            src_port: src.port(),
            dst_port: dst.port(),
            seq,
            ack,
            flags: TcpFlags(flags),
            ttl: 64,
            window: 64240,
            payload_len: payload.len() as u32,
            payload,
        }
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// More stacked VLAN tags than this is not a real frame.
const MAX_VLAN_TAGS: usize = 8;

/// Decodes one captured frame of the given link type.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Segment<'_>, Skip> {
    let ip = match link {
        LinkType::Ethernet => ethernet_payload(frame)?,
        LinkType::LinuxSll => linux_sll_payload(frame)?,
        LinkType::LinuxSll2 => linux_sll2_payload(frame)?,
        LinkType::Null => bsd_null_payload(frame, false)?,
        LinkType::Loop => bsd_null_payload(frame, true)?,
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => frame,
    };
    decode_ip(ip)
}

fn be16(bytes: &[u8], at: usize) -> Result<u16, Skip> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(Skip::Truncated)
}

fn ip_by_ethertype(ethertype: u16, rest: &[u8]) -> Result<&[u8], Skip> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok(rest),
        _ => Err(Skip::NotIp),
    }
}

/// Ethernet II: dst(6) src(6) type(2), with VLAN tags (type(2) TCI(2)) in between.
fn ethernet_payload(frame: &[u8]) -> Result<&[u8], Skip> {
    let mut at = 12;
    let mut ethertype = be16(frame, at)?;
    let mut tags = 0;
    while ETHERTYPE_VLAN.contains(&ethertype) {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Err(Skip::Malformed);
        }
        at += 4;
        ethertype = be16(frame, at)?;
    }
    ip_by_ethertype(ethertype, &frame[at + 2..])
}

/// Linux SLL v1 (16 bytes): packet type(2) ARPHRD(2) address length(2) address(8)
/// protocol(2). The protocol is an Ethertype for every device type that carries IP,
/// loopback (ARPHRD 772) included.
fn linux_sll_payload(frame: &[u8]) -> Result<&[u8], Skip> {
    const HEADER: usize = 16;
    let protocol = be16(frame, 14)?;
    ip_by_ethertype(protocol, &frame[HEADER..])
}

/// Linux SLL v2 (20 bytes): protocol(2) reserved(2) interface index(4) ARPHRD(2)
/// packet type(1) address length(1) address(8).
fn linux_sll2_payload(frame: &[u8]) -> Result<&[u8], Skip> {
    const HEADER: usize = 20;
    if frame.len() < HEADER {
        return Err(Skip::Truncated);
    }
    let protocol = be16(frame, 0)?;
    ip_by_ethertype(protocol, &frame[HEADER..])
}

/// BSD null/loop: a 4-byte address family. DLT_NULL stores it in the byte order of the
/// host that captured, so both orders are tried; AF_INET6 differs between systems.
fn bsd_null_payload(frame: &[u8], network_order: bool) -> Result<&[u8], Skip> {
    let raw: [u8; 4] = frame
        .get(..4)
        .ok_or(Skip::Truncated)?
        .try_into()
        .unwrap_or_default();
    let family = if network_order {
        u32::from_be_bytes(raw)
    } else {
        let le = u32::from_le_bytes(raw);
        if le > 0xffff {
            u32::from_be_bytes(raw)
        } else {
            le
        }
    };
    match family {
        // AF_INET everywhere; AF_INET6 on Linux (10), NetBSD/OpenBSD (24),
        // FreeBSD (28), macOS (30).
        2 | 10 | 24 | 28 | 30 => Ok(&frame[4..]),
        _ => Err(Skip::NotIp),
    }
}

/// IPv4 or IPv6 (with extension headers) and the TCP header.
pub fn decode_ip(bytes: &[u8]) -> Result<Segment<'_>, Skip> {
    match decode_ipv4_tcp(bytes) {
        Some(decoded) => decoded,
        None => decode_ip_etherparse(bytes),
    }
}

fn be16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The common case read by hand, for speed: IPv4 (options allowed, no AH) carrying TCP.
/// `None` leaves every other shape, and every header etherparse would reject, to
/// `decode_ip_etherparse`; a test holds the two to the same answers.
fn decode_ipv4_tcp(bytes: &[u8]) -> Option<Result<Segment<'_>, Skip>> {
    const AUTH: u8 = 51;
    if bytes.len() < 20 || bytes[0] >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(bytes[0] & 0x0f) * 4;
    if header_len < 20 || bytes.len() < header_len || bytes[9] == AUTH {
        return None;
    }
    // As etherparse: a total length shorter than the header means "use the slice"; a
    // longer one than the capture holds means the snapshot length cut the packet.
    let total = usize::from(be16_at(bytes, 2));
    let (end, l4_len) = if total < header_len {
        (bytes.len(), bytes.len() - header_len)
    } else if total > bytes.len() {
        (bytes.len(), total - header_len)
    } else {
        (total, total - header_len)
    };
    let more_fragments = bytes[6] & 0x20 != 0;
    let offset = be16_at(bytes, 6) & 0x1fff;
    if more_fragments || offset != 0 {
        return Some(Err(Skip::Fragment));
    }
    if bytes[9] != ip_number::TCP.0 {
        return Some(Err(Skip::NotTcp));
    }
    let tcp = &bytes[header_len..end];
    if tcp.len() < 20 {
        return Some(Err(Skip::Truncated));
    }
    let tcp_header_len = usize::from(tcp[12] >> 4) * 4;
    if tcp_header_len < 20 {
        return Some(Err(Skip::Malformed));
    }
    if tcp.len() < tcp_header_len {
        return Some(Err(Skip::Truncated));
    }
    let address =
        |at: usize| IpAddr::from([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some(Ok(Segment {
        src: address(12),
        dst: address(16),
        src_port: be16_at(tcp, 0),
        dst_port: be16_at(tcp, 2),
        seq: be32_at(tcp, 4),
        ack: be32_at(tcp, 8),
        flags: TcpFlags(tcp[13]),
        ttl: bytes[8],
        window: be16_at(tcp, 14),
        payload_len: u32::try_from(l4_len.saturating_sub(tcp_header_len)).unwrap_or(u32::MAX),
        payload: &tcp[tcp_header_len..],
    }))
}

/// IPv4 or IPv6 (with extension headers) and the TCP header, by etherparse.
fn decode_ip_etherparse(bytes: &[u8]) -> Result<Segment<'_>, Skip> {
    use etherparse::err::ip::LaxHeaderSliceError;
    let (ip, _ext_error) = LaxIpSlice::from_slice(bytes).map_err(|e| match e {
        LaxHeaderSliceError::Len(_) => Skip::Truncated,
        LaxHeaderSliceError::Content(_) => Skip::Malformed,
    })?;
    let payload = ip.payload();
    if payload.fragmented {
        return Err(Skip::Fragment);
    }
    if payload.ip_number != ip_number::TCP {
        return Err(Skip::NotTcp);
    }
    // The TCP segment's true length, from the IP header when the capture cut it short.
    let (ttl, l4_len) = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let header = v4.header();
            let l4 = if payload.incomplete {
                let before =
                    header.slice().len() + v4.extensions().auth.map_or(0, |a| a.slice().len());
                usize::from(header.total_len()).saturating_sub(before)
            } else {
                payload.payload.len()
            };
            (header.ttl(), l4)
        }
        LaxIpSlice::Ipv6(v6) => {
            let header = v6.header();
            let l4 = if payload.incomplete {
                usize::from(header.payload_length()).saturating_sub(v6.extensions().slice().len())
            } else {
                payload.payload.len()
            };
            (header.hop_limit(), l4)
        }
    };
    let tcp = TcpSlice::from_slice(payload.payload).map_err(|e| match e {
        etherparse::err::tcp::HeaderSliceError::Len(_) => Skip::Truncated,
        etherparse::err::tcp::HeaderSliceError::Content(_) => Skip::Malformed,
    })?;
    let header_len = tcp.header_slice().len();
    // Byte 13 of the TCP header: CWR ECE URG ACK PSH RST SYN FIN, as Wireshark's tcp.flags.
    let flags = tcp.header_slice()[13];
    Ok(Segment {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: TcpFlags(flags),
        ttl,
        window: tcp.window_size(),
        payload_len: u32::try_from(l4_len.saturating_sub(header_len)).unwrap_or(u32::MAX),
        payload: tcp.payload(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 (TTL 63) + TCP 198.18.1.2:40000 -> 198.19.2.10:443, PSH|ACK, 5 payload bytes
    /// "\x17\x03\x03\x00\x13" of which the frame holds all.
    const IPV4_TCP: [u8; 45] = [
        0x45, 0x00, 0x00, 0x2d, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x06, 0x00, 0x00, // ver..proto
        198, 18, 1, 2, 198, 19, 2, 10, // src, dst
        0x9c, 0x40, 0x01, 0xbb, // ports 40000 -> 443
        0xff, 0xff, 0xff, 0xf0, // seq
        0x00, 0x00, 0x10, 0x00, // ack
        0x50, 0x18, 0xff, 0xff, 0x00, 0x00, 0x00,
        0x00, // offset 5, PSH|ACK, window, csum, urg
        0x17, 0x03, 0x03, 0x00, 0x13,
    ];

    fn check_ipv4_tcp(seg: &Segment) {
        assert_eq!(seg.src, "198.18.1.2".parse::<IpAddr>().unwrap());
        assert_eq!(seg.dst, "198.19.2.10".parse::<IpAddr>().unwrap());
        assert_eq!((seg.src_port, seg.dst_port), (40000, 443));
        assert_eq!(seg.seq, 0xffff_fff0);
        assert_eq!(seg.ack, 0x1000);
        assert_eq!(seg.flags.0, TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(seg.ttl, 63);
        assert_eq!(seg.payload_len, 5);
        assert_eq!(seg.flags.names(), "PSH, ACK");
    }

    fn with_prefix(prefix: &[u8]) -> Vec<u8> {
        let mut v = prefix.to_vec();
        v.extend_from_slice(&IPV4_TCP);
        v
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let frame = with_prefix(&[
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, // dst, src
            0x08, 0x00,
        ]);
        let seg = decode(LinkType::Ethernet, &frame).unwrap();
        check_ipv4_tcp(&seg);
        assert_eq!(seg.payload, &[0x17, 0x03, 0x03, 0x00, 0x13]);
    }

    #[test]
    fn ethernet_with_two_vlan_tags() {
        let frame = with_prefix(&[
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, // dst, src
            0x88, 0xa8, 0x00, 0x64, // 802.1ad, VLAN 100
            0x81, 0x00, 0x00, 0xc8, // 802.1Q, VLAN 200
            0x08, 0x00,
        ]);
        check_ipv4_tcp(&decode(LinkType::Ethernet, &frame).unwrap());
    }

    #[test]
    fn ethernet_arp_is_not_ip() {
        let frame = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x06, 0, 1, 8, 0];
        assert_eq!(decode(LinkType::Ethernet, &frame).unwrap_err(), Skip::NotIp);
    }

    #[test]
    fn linux_sll_loopback_packet() {
        // packet type 0 (to us), ARPHRD_LOOPBACK 772, address length 6, address, IPv4.
        let frame = with_prefix(&[
            0x00, 0x00, 0x03, 0x04, 0x00, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00,
        ]);
        check_ipv4_tcp(&decode(LinkType::LinuxSll, &frame).unwrap());
    }

    #[test]
    fn linux_sll2_packet() {
        // protocol IPv4, reserved, ifindex 3, ARPHRD_ETHER, outgoing, address length 6.
        let frame = with_prefix(&[
            0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 0x04, 0x06, 2, 0, 0, 0, 0,
            1, 0, 0,
        ]);
        check_ipv4_tcp(&decode(LinkType::LinuxSll2, &frame).unwrap());
    }

    #[test]
    fn linux_sll2_cut_inside_its_header() {
        assert_eq!(
            decode(LinkType::LinuxSll2, &[0x08, 0x00, 0, 0]).unwrap_err(),
            Skip::Truncated
        );
    }

    #[test]
    fn bsd_null_in_either_byte_order() {
        check_ipv4_tcp(&decode(LinkType::Null, &with_prefix(&[2, 0, 0, 0])).unwrap());
        check_ipv4_tcp(&decode(LinkType::Null, &with_prefix(&[0, 0, 0, 2])).unwrap());
        check_ipv4_tcp(&decode(LinkType::Loop, &with_prefix(&[0, 0, 0, 2])).unwrap());
        assert_eq!(
            decode(LinkType::Null, &with_prefix(&[7, 0, 0, 0])).unwrap_err(),
            Skip::NotIp
        );
    }

    #[test]
    fn raw_ip() {
        check_ipv4_tcp(&decode(LinkType::RawIp, &IPV4_TCP).unwrap());
    }

    #[test]
    fn snaplen_cut_payload_keeps_true_length() {
        // IP total length says 1040 bytes; the capture holds the headers and 5 bytes.
        let mut packet = IPV4_TCP;
        packet[2..4].copy_from_slice(&1040u16.to_be_bytes());
        let seg = decode(LinkType::RawIp, &packet).unwrap();
        assert_eq!(seg.payload_len, 1000);
        assert_eq!(seg.payload.len(), 5);
    }

    #[test]
    fn snaplen_cut_tcp_header_is_truncated() {
        assert_eq!(
            decode(LinkType::RawIp, &IPV4_TCP[..30]).unwrap_err(),
            Skip::Truncated
        );
    }

    #[test]
    fn ipv4_fragment_is_skipped() {
        let mut packet = IPV4_TCP;
        packet[6] = 0x20; // more fragments
        assert_eq!(
            decode(LinkType::RawIp, &packet).unwrap_err(),
            Skip::Fragment
        );
    }

    #[test]
    fn udp_is_not_tcp() {
        let mut packet = IPV4_TCP;
        packet[9] = 17;
        assert_eq!(decode(LinkType::RawIp, &packet).unwrap_err(), Skip::NotTcp);
    }

    #[test]
    fn bad_ip_version_is_malformed() {
        let mut packet = IPV4_TCP;
        packet[0] = 0x75;
        assert_eq!(
            decode(LinkType::RawIp, &packet).unwrap_err(),
            Skip::Malformed
        );
    }

    /// The hand-written IPv4/TCP path and etherparse agree on every variation of a packet:
    /// each total length, each cut, fragment bits, options, AH, UDP, bad header lengths.
    #[test]
    fn ipv4_fast_path_agrees_with_etherparse() {
        let mut base = IPV4_TCP.to_vec();
        base.extend_from_slice(&[0xaa; 40]);
        let total = base.len() as u16;
        base[2..4].copy_from_slice(&total.to_be_bytes());
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for total in 0..=base.len() as u16 + 40 {
            let mut v = base.clone();
            v[2..4].copy_from_slice(&total.to_be_bytes());
            variants.push(v);
        }
        for cut in 0..=base.len() {
            variants.push(base[..cut].to_vec());
        }
        for (at, value) in [
            (0, 0x44),
            (0, 0x46),
            (0, 0x4f),
            (6, 0x20),
            (6, 0x01),
            (7, 0x01),
            (9, 17),
            (9, 51),
            (32, 0x40),
            (32, 0x10),
            (32, 0xf0),
        ] {
            let mut v = base.clone();
            v[at] = value;
            variants.push(v);
        }
        for v in &variants {
            if let Some(fast) = decode_ipv4_tcp(v) {
                assert_eq!(fast, decode_ip_etherparse(v), "{v:02x?}");
            }
        }
        assert!(
            variants
                .iter()
                .filter(|v| decode_ipv4_tcp(v).is_some())
                .count()
                > 100
        );
    }

    #[test]
    fn ipv6_with_hop_by_hop_header() {
        let mut packet = vec![
            0x60, 0, 0, 0, // version, class, flow
            0x00, 0x1c, 0x00, 0x40, // payload length 28, next header hop-by-hop, hop limit 64
        ];
        packet.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        packet.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        packet.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop -> TCP, PadN
        packet.extend_from_slice(&IPV4_TCP[20..40]);
        let seg = decode(LinkType::RawIp, &packet).unwrap();
        assert_eq!(seg.src, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(seg.ttl, 64);
        assert_eq!((seg.src_port, seg.dst_port), (40000, 443));
        assert_eq!(seg.payload_len, 0);
    }
}
