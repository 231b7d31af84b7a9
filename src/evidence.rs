//! Evidence kept from a live capture (`--keep-flagged DIR`): each open flow's handshake and
//! last packets in a ring bounded in bytes and flows, a small pcap per flagged flow written
//! from it, and the rotation that bounds the directory by total size and file count. Live
//! has no second pass over a file, so the packets are kept while the flow may still fail.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fs;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::FlowReport;
use crate::capture::Packet;
use crate::decode::{self, LinkType};
use crate::flow::{self, FlowKey, TIMELINE_PACKETS};
use crate::target::Target;
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};

/// Packets kept from a flow's start: SYN, SYN-ACK, ACK.
const HANDSHAKE_PACKETS: usize = 3;
/// Packets kept from a flow's end: the timeline's and a few before them.
const LAST_PACKETS: usize = TIMELINE_PACKETS + 8;
/// A closed flow's packets are kept this long after its close (packet time), for the
/// announcement that may follow the close.
const KEEP_AFTER_CLOSE: Nanos = 30 * NANOS_PER_SEC;
/// Rough bytes a kept flow costs besides its packets' bytes.
const FLOW_OVERHEAD: usize = 160;
/// Rough bytes a kept packet costs besides its bytes.
const PACKET_OVERHEAD: usize = 48;
/// File names this module writes, so that rotation never touches another file.
const FILE_PREFIX: &str = "staleconn-";

/// The defaults of `--keep-flagged-size`, `--keep-flagged-files` and the ring's bytes.
pub const DEFAULT_DIR_BYTES: u64 = 100 << 20;
pub const DEFAULT_DIR_FILES: usize = 1000;
pub const DEFAULT_RING_BYTES: usize = 64 << 20;

/// One packet as captured.
struct RawPacket {
    frame: u64,
    ts: Timestamp,
    wire_len: u32,
    data: Box<[u8]>,
}

/// What is kept of one open flow: its packets (if bytes are kept) and what the warning
/// before a timer needs.
struct FlowPackets {
    first: Vec<RawPacket>,
    last: VecDeque<RawPacket>,
    bytes: usize,
    /// The client, known from the SYN; `None` when the handshake was not seen.
    client: Option<SocketAddr>,
    server: Option<SocketAddr>,
    syn_at: Option<Timestamp>,
    rtt: Option<Nanos>,
    last_packet: Timestamp,
    last_payload: Option<Timestamp>,
    /// Payload packets the server sent: a connection that answered once may be pooled.
    server_payloads: u32,
    closed_at: Option<Timestamp>,
}

/// An open flow as the warning before a timer sees it.
#[derive(Debug, Clone, Copy)]
pub struct OpenFlow {
    pub server: SocketAddr,
    /// Idle since the last payload either way (what a keep-alive timer counts).
    pub idle_since_payload: Nanos,
    /// Idle since the last packet of any kind (what a middlebox's timer counts).
    pub silence: Nanos,
    pub rtt: Option<Nanos>,
}

/// The recent packets of every open flow, bounded: at most `max_flows` flows and
/// `max_bytes` bytes; past either, the flows silent longest are forgotten first.
pub struct RecentPackets {
    link: LinkType,
    targets: Vec<Target>,
    keep_bytes: bool,
    flows: HashMap<FlowKey, FlowPackets>,
    bytes: usize,
    max_bytes: usize,
    max_flows: usize,
    /// Flows forgotten to stay within the bounds while still open.
    pub forgotten: u64,
}

impl RecentPackets {
    /// `keep_bytes`: keep the packets themselves (for `--keep-flagged`), not only the
    /// figures the warning before a timer needs.
    pub fn new(
        link: LinkType,
        targets: Vec<Target>,
        keep_bytes: bool,
        max_bytes: usize,
        max_flows: usize,
    ) -> RecentPackets {
        RecentPackets {
            link,
            targets,
            keep_bytes,
            flows: HashMap::new(),
            bytes: 0,
            max_bytes,
            max_flows: max_flows.max(1),
            forgotten: 0,
        }
    }

    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps one captured packet, if it is TCP of a targeted flow.
    pub fn packet(&mut self, packet: &Packet) {
        let Ok(segment) = decode::decode(self.link, packet.data) else {
            return;
        };
        if !flow::is_targeted(&self.targets, &segment) {
            return;
        }
        let key = FlowKey::of_segment(&segment);
        let src = SocketAddr::new(segment.src, segment.src_port);
        let dst = SocketAddr::new(segment.dst, segment.dst_port);
        let flags = segment.flags;
        let opening = flags.syn() && !flags.ack();
        // A new SYN on a closed flow's ports is a new flow.
        if opening
            && self
                .flows
                .get(&key)
                .is_some_and(|f| f.closed_at.is_some() || f.client != Some(src))
            && let Some(old) = self.flows.remove(&key)
        {
            self.bytes -= old.bytes;
        }
        let entry = match self.flows.entry(key) {
            Entry::Occupied(kept) => kept.into_mut(),
            Entry::Vacant(new) => {
                self.bytes += FLOW_OVERHEAD;
                new.insert(FlowPackets {
                    first: Vec::new(),
                    last: VecDeque::new(),
                    bytes: FLOW_OVERHEAD,
                    client: None,
                    server: None,
                    syn_at: None,
                    rtt: None,
                    last_packet: packet.ts,
                    last_payload: None,
                    server_payloads: 0,
                    closed_at: None,
                })
            }
        };
        if opening {
            entry.client = Some(src);
            entry.server = Some(dst);
            entry.syn_at = Some(packet.ts);
        } else if flags.syn() && entry.rtt.is_none() {
            // The SYN-ACK: the round trip as seen from where the capture is.
            entry.rtt = entry.syn_at.map(|syn| packet.ts.since(syn));
        }
        if segment.payload_len > 0 {
            entry.last_payload = Some(packet.ts);
            if entry.server == Some(src) {
                entry.server_payloads += 1;
            }
        }
        if (flags.fin() || flags.rst()) && entry.closed_at.is_none() {
            entry.closed_at = Some(packet.ts);
        }
        entry.last_packet = packet.ts;
        if self.keep_bytes {
            let raw = RawPacket {
                frame: packet.frame,
                ts: packet.ts,
                wire_len: packet.wire_len,
                data: packet.data.into(),
            };
            let cost = raw.data.len() + PACKET_OVERHEAD;
            if entry.first.len() < HANDSHAKE_PACKETS && entry.last.is_empty() {
                entry.first.push(raw);
            } else {
                if entry.last.len() == LAST_PACKETS
                    && let Some(old) = entry.last.pop_front()
                {
                    let freed = old.data.len() + PACKET_OVERHEAD;
                    entry.bytes -= freed;
                    self.bytes -= freed;
                }
                entry.last.push_back(raw);
            }
            entry.bytes += cost;
            self.bytes += cost;
        }
        if self.bytes > self.max_bytes || self.flows.len() > self.max_flows {
            self.forget_silent_longest();
        }
    }

    /// Forgets flows closed long enough ago that no announcement can still need them.
    pub fn tick(&mut self, now: Timestamp) {
        let mut freed = 0;
        self.flows.retain(|_, f| {
            let keep = f
                .closed_at
                .is_none_or(|closed| now.since(closed) < KEEP_AFTER_CLOSE);
            if !keep {
                freed += f.bytes;
            }
            keep
        });
        self.bytes -= freed;
    }

    /// Over a bound: forgets the flows silent longest until a tenth below it.
    fn forget_silent_longest(&mut self) {
        let mut by_silence: Vec<(Timestamp, FlowKey)> = self
            .flows
            .iter()
            .map(|(k, f)| (f.last_packet, *k))
            .collect();
        by_silence.sort_unstable_by_key(|(ts, _)| *ts);
        let bytes_goal = self.max_bytes - self.max_bytes / 10;
        let flows_goal = self.max_flows - self.max_flows / 10;
        for (_, key) in by_silence {
            if self.bytes <= bytes_goal && self.flows.len() <= flows_goal {
                break;
            }
            if let Some(old) = self.flows.remove(&key) {
                self.bytes -= old.bytes;
                self.forgotten += u64::from(old.closed_at.is_none());
            }
        }
    }

    /// The open flows that a server answered at least once (pooled), with their idle at
    /// `now`.
    pub fn open_pooled(&self, now: Timestamp) -> impl Iterator<Item = OpenFlow> + '_ {
        self.flows.values().filter_map(move |f| {
            if f.closed_at.is_some() || f.server_payloads == 0 {
                return None;
            }
            Some(OpenFlow {
                server: f.server?,
                idle_since_payload: now.since(f.last_payload?),
                silence: now.since(f.last_packet),
                rtt: f.rtt,
            })
        })
    }

    /// The packets kept of the flow between `client` and `server`, in capture order: its
    /// handshake and its last packets, within `frames` (ports reused later are another flow).
    fn packets_between(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        frames: RangeInclusive<u64>,
    ) -> Vec<&RawPacket> {
        let Some(kept) = self.flows.get(&FlowKey::new(client, server)) else {
            return Vec::new();
        };
        let mut packets: Vec<&RawPacket> = kept
            .first
            .iter()
            .chain(kept.last.iter())
            .filter(|p| frames.contains(&p.frame))
            .collect();
        packets.sort_by_key(|p| p.frame);
        packets.dedup_by_key(|p| p.frame);
        packets
    }

    /// A flagged flow's kept packets as a pcap file's bytes (nanosecond classic pcap), how
    /// many packets, and how many of its timeline's frames are in it.
    pub fn pcap_of(&self, report: &FlowReport) -> (Vec<u8>, usize, usize) {
        let timeline: Vec<u64> = report.timeline.iter().map(|t| t.frame).collect();
        self.pcap_between(
            report.client,
            report.server,
            report.first_frame..=report.last_frame,
            &timeline,
        )
    }

    fn pcap_between(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        frames: RangeInclusive<u64>,
        timeline: &[u64],
    ) -> (Vec<u8>, usize, usize) {
        let packets = self.packets_between(client, server, frames);
        let timeline_in = timeline
            .iter()
            .filter(|frame| packets.iter().any(|p| p.frame == **frame))
            .count();
        let mut bytes = pcap_header(self.link);
        for p in &packets {
            pcap_record(&mut bytes, p);
        }
        (bytes, packets.len(), timeline_in)
    }
}

/// The link-layer header type a pcap file names for each link staleconn decodes.
fn linktype(link: LinkType) -> u32 {
    match link {
        LinkType::Null => 0,
        LinkType::Ethernet => 1,
        LinkType::RawIp => 101,
        LinkType::Loop => 108,
        LinkType::LinuxSll => 113,
        LinkType::Ipv4 => 228,
        LinkType::Ipv6 => 229,
        LinkType::LinuxSll2 => 276,
    }
}

/// A classic pcap header with nanosecond timestamps.
fn pcap_header(link: LinkType) -> Vec<u8> {
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&0xa1b2_3c4d_u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&262_144u32.to_le_bytes());
    header.extend_from_slice(&linktype(link).to_le_bytes());
    header
}

fn pcap_record(out: &mut Vec<u8>, packet: &RawPacket) {
    let secs = packet.ts.0.div_euclid(NANOS_PER_SEC);
    let nanos = packet.ts.0.rem_euclid(NANOS_PER_SEC);
    out.extend_from_slice(&u32::try_from(secs).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&u32::try_from(nanos).unwrap_or(0).to_le_bytes());
    let captured = u32::try_from(packet.data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&captured.to_le_bytes());
    out.extend_from_slice(&packet.wire_len.max(captured).to_le_bytes());
    out.extend_from_slice(&packet.data);
}

/// The kept pcaps in their directory, oldest first, within a total size and a file count:
/// a new file removes the oldest ones it would not fit beside.
pub struct KeptFiles {
    dir: PathBuf,
    max_bytes: u64,
    max_files: usize,
    files: VecDeque<(PathBuf, u64)>,
    total: u64,
    /// Files not written: bigger alone than the limit, or the disk refused them.
    pub skipped: u64,
}

/// What became of one flagged flow's evidence.
#[derive(Debug, Clone)]
pub struct Kept {
    pub path: PathBuf,
    pub packets: usize,
    /// The timeline's frames that are in the file (all of them, unless the ring forgot
    /// the flow while it was open).
    pub timeline_frames: usize,
}

impl KeptFiles {
    /// Takes over `dir` (made if missing), counting the files an earlier run left in it
    /// against the limits.
    pub fn open(dir: &Path, max_bytes: u64, max_files: usize) -> Result<KeptFiles> {
        fs::create_dir_all(dir)
            .with_context(|| format!("--keep-flagged {}: cannot make it", dir.display()))?;
        let mut existing: Vec<(PathBuf, u64)> = fs::read_dir(dir)
            .with_context(|| format!("--keep-flagged {}: cannot read it", dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| is_ours(&e.file_name().to_string_lossy()))
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
            .collect();
        // Names begin with the time: by name is by age.
        existing.sort();
        let mut kept = KeptFiles {
            dir: dir.to_path_buf(),
            max_bytes,
            max_files: max_files.max(1),
            total: existing.iter().map(|(_, n)| n).sum(),
            files: existing.into(),
            skipped: 0,
        };
        kept.make_room(0);
        Ok(kept)
    }

    pub fn files(&self) -> usize {
        self.files.len()
    }

    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Removes the oldest files until one of `size` bytes fits.
    fn make_room(&mut self, size: u64) {
        let files_after = |k: &KeptFiles| k.files.len() + usize::from(size > 0);
        while !self.files.is_empty()
            && (files_after(self) > self.max_files || self.total + size > self.max_bytes)
        {
            if let Some((path, len)) = self.files.pop_front() {
                let _ = fs::remove_file(&path);
                self.total -= len;
            }
        }
    }

    /// Writes `bytes` as `name` in the directory, rotating first. `None` when it cannot
    /// be kept (bigger alone than the limit, or the write failed: counted in `skipped`).
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Option<PathBuf> {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            self.skipped += 1;
            return None;
        }
        self.make_room(size);
        let path = self.dir.join(name);
        if fs::write(&path, bytes).is_err() {
            self.skipped += 1;
            return None;
        }
        self.files.push_back((path.clone(), size));
        self.total += size;
        Some(path)
    }
}

/// Whether this process may make and remove files in `dir`.
pub fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access reads the NUL-terminated path it is given and nothing else.
    unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

fn is_ours(name: &str) -> bool {
    name.starts_with(FILE_PREFIX) && name.ends_with(".pcap")
}

/// A kept file's name: the time of the flow's last packet, its server and its verdict,
/// and its id, e.g. `staleconn-20261203T191502.123456789Z-127.0.0.1_18080-keepalive_race-57.pcap`.
pub fn file_name(report: &FlowReport) -> String {
    let time = report
        .last_seen
        .to_utc()
        .format("%Y%m%dT%H%M%S%.9fZ")
        .to_string();
    let server = format!("{}_{}", report.server.ip(), report.server.port()).replace(':', "-");
    format!(
        "{FILE_PREFIX}{time}-{server}-{}-{}.pcap",
        report.finding.verdict.name(),
        report.id
    )
}

impl KeptFiles {
    /// Writes a flagged flow's kept packets to a file of its own.
    pub fn keep(&mut self, recent: &RecentPackets, report: &FlowReport) -> Option<Kept> {
        let (bytes, packets, timeline_frames) = recent.pcap_of(report);
        if packets == 0 {
            self.skipped += 1;
            return None;
        }
        let path = self.write(&file_name(report), &bytes)?;
        Some(Kept {
            path,
            packets,
            timeline_frames,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "198.18.0.1:40000";
    const SERVER: &str = "198.18.0.2:80";

    /// A raw IPv4 TCP packet: 20-byte IP and TCP headers, then `payload` bytes.
    fn raw_tcp(src: SocketAddr, dst: SocketAddr, flags: u8, payload: usize) -> Vec<u8> {
        let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
            unreachable!()
        };
        let total = 40 + payload;
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ];
        p.extend_from_slice(&src.ip().octets());
        p.extend_from_slice(&dst.ip().octets());
        p.extend_from_slice(&src.port().to_be_bytes());
        p.extend_from_slice(&dst.port().to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.resize(total, b'x');
        p
    }

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH_ACK: u8 = 0x18;
    const RST: u8 = 0x04;

    /// Feeds one flow: handshake, `exchanges` request-response pairs, then `end` (if any).
    fn feed_flow(
        ring: &mut RecentPackets,
        client: SocketAddr,
        server: SocketAddr,
        frame: &mut u64,
        exchanges: usize,
        end: Option<u8>,
    ) {
        let mut send = |ring: &mut RecentPackets, from_client: bool, flags: u8, payload: usize| {
            *frame += 1;
            let (src, dst) = if from_client {
                (client, server)
            } else {
                (server, client)
            };
            let data = raw_tcp(src, dst, flags, payload);
            ring.packet(&Packet {
                frame: *frame,
                ts: Timestamp(*frame as i64 * 1_000_000),
                wire_len: data.len() as u32,
                data: &data,
            });
        };
        send(ring, true, SYN, 0);
        send(ring, false, SYN | ACK, 0);
        send(ring, true, ACK, 0);
        for _ in 0..exchanges {
            send(ring, true, PSH_ACK, 60);
            send(ring, false, PSH_ACK, 200);
        }
        if let Some(flags) = end {
            send(ring, false, flags, 0);
        }
    }

    #[test]
    fn a_flows_kept_pcap_holds_its_handshake_and_its_last_packets() {
        let (client, server) = (CLIENT.parse().unwrap(), SERVER.parse().unwrap());
        let mut ring = RecentPackets::new(LinkType::RawIp, Vec::new(), true, 1 << 20, 100);
        let mut frame = 0;
        feed_flow(&mut ring, client, server, &mut frame, 30, Some(RST));
        assert_eq!(frame, 64);
        let timeline: Vec<u64> = (53..=64).collect();
        let (bytes, packets, timeline_in) = ring.pcap_between(client, server, 1..=64, &timeline);
        assert_eq!(packets, HANDSHAKE_PACKETS + LAST_PACKETS);
        assert_eq!(timeline_in, 12);
        // The pcap: header, then records in frame order: SYN first, the RST last.
        assert_eq!(&bytes[..4], &0xa1b2_3c4d_u32.to_le_bytes());
        assert_eq!(&bytes[20..24], &101u32.to_le_bytes());
        let first_record = &bytes[24..];
        assert_eq!(first_record[16 + 33], SYN, "the SYN's TCP flags");
        let last_len = 40;
        let last = &bytes[bytes.len() - last_len..];
        assert_eq!(last[33], RST, "the RST's TCP flags");
        // Frames outside the flow's own range (a later flow on the same ports) are not its.
        let (_, packets, _) = ring.pcap_between(client, server, 60..=64, &timeline);
        assert_eq!(packets, 5);
    }

    #[test]
    fn the_ring_stays_within_its_bytes_forgetting_the_flows_silent_longest() {
        let server: SocketAddr = SERVER.parse().unwrap();
        let max_bytes = 200_000;
        let mut ring = RecentPackets::new(LinkType::RawIp, Vec::new(), true, max_bytes, 100_000);
        let mut frame = 0;
        for port in 0..2000u16 {
            let client = SocketAddr::from(([198, 18, 1, 1], 10_000 + port));
            feed_flow(&mut ring, client, server, &mut frame, 3, None);
            assert!(ring.bytes() <= max_bytes, "{} bytes", ring.bytes());
        }
        assert!(ring.forgotten > 0);
        // The newest flow is still there, whole; the oldest is gone.
        let newest = SocketAddr::from(([198, 18, 1, 1], 10_000 + 1999));
        let oldest = SocketAddr::from(([198, 18, 1, 1], 10_000));
        assert_eq!(ring.pcap_between(newest, server, 0..=u64::MAX, &[]).1, 9);
        assert_eq!(ring.pcap_between(oldest, server, 0..=u64::MAX, &[]).1, 0);
        // Every flow kept is open and was answered: pooled.
        assert_eq!(
            ring.open_pooled(Timestamp(frame as i64 * 1_000_000))
                .count(),
            ring.flows()
        );
    }

    #[test]
    fn a_closed_flow_is_forgotten_after_its_grace_and_is_not_pooled() {
        let (client, server) = (CLIENT.parse().unwrap(), SERVER.parse().unwrap());
        let mut ring = RecentPackets::new(LinkType::RawIp, Vec::new(), false, 1 << 20, 100);
        let mut frame = 0;
        feed_flow(&mut ring, client, server, &mut frame, 2, Some(RST));
        let closed = Timestamp(frame as i64 * 1_000_000);
        assert_eq!(ring.open_pooled(closed).count(), 0);
        ring.tick(Timestamp(closed.0 + KEEP_AFTER_CLOSE - 1));
        assert_eq!(ring.flows(), 1);
        ring.tick(Timestamp(closed.0 + KEEP_AFTER_CLOSE));
        assert_eq!((ring.flows(), ring.bytes()), (0, 0));
    }

    fn names(kept: &KeptFiles) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&kept.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotation_keeps_the_newest_files_within_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = KeptFiles::open(dir.path(), 1 << 20, 3).unwrap();
        for i in 0..5 {
            kept.write(&format!("staleconn-{i}.pcap"), &[0u8; 100])
                .unwrap();
        }
        assert_eq!(
            names(&kept),
            ["staleconn-2.pcap", "staleconn-3.pcap", "staleconn-4.pcap"]
        );
        assert_eq!(kept.total_bytes(), 300);
    }

    #[test]
    fn rotation_keeps_the_total_size_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = KeptFiles::open(dir.path(), 1000, 100).unwrap();
        for i in 0..10 {
            kept.write(&format!("staleconn-{i}.pcap"), &[0u8; 300])
                .unwrap();
            let on_disk: u64 = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum();
            assert!(on_disk <= 1000, "{on_disk} bytes after file {i}");
        }
        assert_eq!(
            names(&kept),
            ["staleconn-7.pcap", "staleconn-8.pcap", "staleconn-9.pcap"]
        );
        // Bigger alone than the limit: not written, counted.
        assert_eq!(kept.write("staleconn-big.pcap", &[0u8; 1001]), None);
        assert_eq!(kept.skipped, 1);
        assert_eq!(kept.files(), 3);
    }

    #[test]
    fn rotation_counts_an_earlier_runs_files_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        for i in 0..4 {
            fs::write(dir.path().join(format!("staleconn-{i}.pcap")), [0u8; 10]).unwrap();
        }
        let mut kept = KeptFiles::open(dir.path(), 1 << 20, 2).unwrap();
        assert_eq!(kept.files(), 2);
        kept.write("staleconn-9.pcap", &[0u8; 10]).unwrap();
        assert_eq!(
            names(&kept),
            ["notes.txt", "staleconn-3.pcap", "staleconn-9.pcap"]
        );
    }
}
