//! Capture input through libpcap: a saved pcap or pcapng file, or standard input, with an
//! optional BPF filter. Hands out numbered frames with nanosecond packet time.

use std::path::Path;

use anyhow::{Result, bail};
use pcap::{Capture, Offline, Precision};

use crate::decode::LinkType;
use crate::time::Timestamp;

/// One captured frame. `frame` is its 1-based number in the capture, as Wireshark shows it
/// (before any BPF filter: frames the filter drops still take their number).
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub frame: u64,
    pub ts: Timestamp,
    /// Length on the wire; `data.len()` is what the snapshot length kept.
    pub wire_len: u32,
    pub data: &'a [u8],
}

/// Why reading stopped before the end of the file: the capture was cut off or damaged.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The last frame read intact.
    pub after_frame: u64,
    pub message: String,
}

/// A saved capture opened for one pass.
pub struct FileSource {
    capture: Capture<Offline>,
    link: LinkType,
    name: String,
    frames_seen: u64,
    filter: Option<pcap::BpfProgram>,
    /// The current frame's bytes, reused from frame to frame.
    buffer: Vec<u8>,
}

impl FileSource {
    /// Opens `path` (`-` is standard input) and compiles `bpf` against its link type.
    pub fn open(path: &str, bpf: Option<&str>) -> Result<FileSource> {
        let name = if path == "-" {
            "standard input".to_string()
        } else {
            path.to_string()
        };
        if path != "-" {
            check_readable_file(Path::new(path))?;
        }
        let capture = Capture::from_file_with_precision(path, Precision::Nano)
            .map_err(|e| open_error(&name, e))?;
        let linktype = capture.get_datalink();
        let Some(link) = LinkType::from_linktype(linktype.0) else {
            bail!(
                "{name}: unsupported link type {} ({}); staleconn reads Ethernet, Linux cooked \
                 (SLL, SLL2), raw IP and BSD loopback captures",
                linktype.0,
                linktype.get_name().unwrap_or_else(|_| "unknown".into())
            );
        };
        // Compiled here and run per packet so that filtered frames still take their
        // number: frame numbers must match what Wireshark shows for the same file.
        let filter = match bpf {
            Some(expr) if !expr.trim().is_empty() => {
                Some(capture.compile(expr, true).map_err(|e| {
                    anyhow::anyhow!("bad BPF expression '{expr}': {}", pcap_text(&e))
                })?)
            }
            _ => None,
        };
        Ok(FileSource {
            capture,
            link,
            name,
            frames_seen: 0,
            filter,
            buffer: Vec::with_capacity(65536),
        })
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next frame that passes the filter; `Ok(None)` at a clean end of file.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Damage> {
        loop {
            match self.capture.next_packet() {
                Ok(packet) => {
                    self.frames_seen += 1;
                    if let Some(filter) = &self.filter
                        && !filter.filter(packet.data)
                    {
                        continue;
                    }
                    let header = *packet.header;
                    self.buffer.clear();
                    self.buffer.extend_from_slice(packet.data);
                    // With nanosecond precision libpcap puts nanoseconds in tv_usec.
                    let ts = Timestamp::from_parts(header.ts.tv_sec, header.ts.tv_usec);
                    return Ok(Some(Packet {
                        frame: self.frames_seen,
                        ts,
                        wire_len: header.len,
                        data: &self.buffer,
                    }));
                }
                Err(pcap::Error::NoMorePackets) => return Ok(None),
                Err(e) => {
                    return Err(Damage {
                        after_frame: self.frames_seen,
                        message: pcap_text(&e),
                    });
                }
            }
        }
    }
}

fn check_readable_file(path: &Path) -> Result<()> {
    let shown = path.display();
    let explain = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{shown}: no such file"),
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "{shown}: permission denied (run as a user that can read it, or with sudo)"
        ),
        _ => anyhow::anyhow!("{shown}: cannot read ({e})"),
    };
    let meta = std::fs::metadata(path).map_err(explain)?;
    if meta.is_dir() {
        bail!("{shown}: is a directory, not a capture file");
    }
    if meta.is_file() && meta.len() == 0 {
        bail!("{shown}: empty file, not a capture (was tcpdump stopped before it wrote anything?)");
    }
    std::fs::File::open(path).map_err(explain)?;
    Ok(())
}

fn open_error(name: &str, e: pcap::Error) -> anyhow::Error {
    let text = pcap_text(&e);
    if text.contains("unknown file format") || text.contains("bad dump file format") {
        anyhow::anyhow!("{name}: not a pcap or pcapng capture ({text})")
    } else if text.contains("truncated") {
        anyhow::anyhow!("{name}: capture header is cut off, nothing to read ({text})")
    } else {
        anyhow::anyhow!("{name}: cannot read capture ({text})")
    }
}

/// libpcap's own message, without the Debug wrapping.
pub fn pcap_text(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}
