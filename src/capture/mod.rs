//! Capture input through libpcap: a saved pcap or pcapng file, standard input, or a live
//! device, with an optional BPF filter; for live capture also the kernel's drop counts, a
//! `-w` copy of what was captured, and interface listing. Hands out numbered frames with
//! nanosecond packet time.

mod merge;
mod pcapfile;
mod sigbus;

pub use merge::MergedFiles;
pub use pcapfile::Mapped;
use pcapfile::PcapFile;

use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
pub use pcap::Savefile;
use pcap::{Activated, Capture, Device, Precision};

use crate::decode::LinkType;
use crate::time::Timestamp;

/// One captured frame. `frame` is its 1-based number in the capture, as Wireshark shows it
/// (for a file read with a BPF filter, frames the filter drops still take their number).
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

/// What the kernel says of a live capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub received: u64,
    /// Dropped because staleconn did not read them fast enough.
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// How to open a live device.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub device: String,
    pub snaplen: i32,
    pub promiscuous: bool,
}

/// Packets from a file, standard input or a device, for one pass.
pub struct Source {
    /// libpcap's handle: the reader, or for a classic pcap file read by `file`, a dead
    /// handle of its link type that compiles filters and opens savefiles.
    capture: Capture<dyn Activated>,
    /// A classic pcap file, mapped and parsed in place instead of read by libpcap.
    file: Option<PcapFile>,
    link: LinkType,
    name: String,
    frames_seen: u64,
    /// A filter run here rather than in libpcap, so that a file's filtered frames still
    /// take their number: frame numbers must match what Wireshark shows for the same file.
    filter: Option<pcap::BpfProgram>,
    /// Live only: what `poll` waits on.
    poll_fd: Option<RawFd>,
    savefile: Option<Savefile>,
    /// Copy every packet to `savefile` (`-w`), rather than only those `read_batch`'s
    /// reader picks.
    copy_all: bool,
}

/// How a `read_batch` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// `max` frames were read; there may be more.
    Full,
    /// A live capture has nothing to read right now.
    Idle,
    /// The end of a file.
    End,
    /// The reader said stop.
    Stopped,
}

/// What `read_batch` does after handing a frame to its reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Next,
    /// Copy this frame to the file of `write_selected_to`, then go on.
    Copy,
    Stop,
}

impl Source {
    /// Opens a saved capture, `-` for standard input, and compiles `bpf` against its link type.
    pub fn open_file(path: &str, bpf: Option<&str>) -> Result<Source> {
        let name = if path == "-" {
            "standard input".to_string()
        } else {
            path.to_string()
        };
        // A regular file may be ours to map; standard input, a FIFO or a device
        // is libpcap's, which hands on each packet as it comes.
        if path != "-" && check_readable_file(Path::new(path))?.is_file() {
            let pcap_file = PcapFile::open(Path::new(path))
                .map_err(|e| anyhow::anyhow!("{name}: cannot read ({e})"))?;
            if let Some(file) = pcap_file {
                let linktype = pcap::Linktype(file.linktype);
                let link = supported_link(&name, linktype)?;
                let dead = Capture::dead_with_precision(linktype, Precision::Nano)
                    .map_err(|e| anyhow::anyhow!("{name}: {}", pcap_text(&e)))?;
                let filter = match bpf {
                    Some(expr) => Some(dead.compile(expr, true).map_err(|e| bpf_error(expr, &e))?),
                    None => None,
                };
                let mut source = Source::new(dead.into(), link, name, filter, None);
                source.file = Some(file);
                return Ok(source);
            }
        }
        let capture = Capture::from_file_with_precision(path, Precision::Nano)
            .map_err(|e| open_error(&name, e))?;
        let link = supported_link(&name, capture.get_datalink())?;
        let filter = match bpf {
            Some(expr) => Some(
                capture
                    .compile(expr, true)
                    .map_err(|e| bpf_error(expr, &e))?,
            ),
            None => None,
        };
        Ok(Source::new(capture.into(), link, name, filter, None))
    }

    /// Compiles a BPF filter for this capture's link type.
    pub fn compile(&self, expr: &str) -> Result<pcap::BpfProgram> {
        self.capture
            .compile(expr, true)
            .map_err(|e| bpf_error(expr, &e))
    }

    /// Opens a live device in immediate, non-blocking mode, with the filter in the kernel.
    pub fn open_live(options: &LiveOptions, bpf: Option<&str>) -> Result<Source> {
        let device = &options.device;
        let capture = Capture::from_device(device.as_str())
            .and_then(|c| {
                c.snaplen(options.snaplen)
                    .promisc(options.promiscuous)
                    .immediate_mode(true)
                    .precision(Precision::Nano)
                    .buffer_size(8 << 20)
                    .open()
            })
            .map_err(|e| live_open_error(device, &e))?;
        let mut capture = capture
            .setnonblock()
            .map_err(|e| live_open_error(device, &e))?;
        let link = supported_link(device, capture.get_datalink())?;
        if let Some(expr) = bpf {
            capture
                .filter(expr, true)
                .map_err(|e| bpf_error(expr, &e))?;
        }
        let poll_fd = Some(capture.as_raw_fd());
        Ok(Source::new(
            capture.into(),
            link,
            device.clone(),
            None,
            poll_fd,
        ))
    }

    fn new(
        capture: Capture<dyn Activated>,
        link: LinkType,
        name: String,
        filter: Option<pcap::BpfProgram>,
        poll_fd: Option<RawFd>,
    ) -> Source {
        Source {
            capture,
            file: None,
            link,
            name,
            frames_seen: 0,
            filter,
            poll_fd,
            savefile: None,
            copy_all: false,
        }
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Copies every packet captured from now on into a pcap file, as `tcpdump -w` would.
    pub fn write_to(&mut self, path: &Path) -> Result<()> {
        self.open_savefile(path)?;
        self.copy_all = true;
        Ok(())
    }

    /// Sends the packets `read_batch`'s reader picks (`Take::Copy`) to `savefile`.
    pub fn write_selected_to(&mut self, savefile: Savefile) {
        self.savefile = Some(savefile);
    }

    /// Opens a pcap file with this capture's link type and snapshot length. Opened early,
    /// it can be written after root is dropped.
    pub fn savefile(&self, path: &Path) -> Result<Savefile> {
        self.capture
            .savefile(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot write ({})", path.display(), pcap_text(&e)))
    }

    fn open_savefile(&mut self, path: &Path) -> Result<()> {
        self.savefile = Some(self.savefile(path)?);
        Ok(())
    }

    /// Writes what the `-w` file has buffered to disk.
    pub fn flush_written(&mut self) -> Result<()> {
        if let Some(savefile) = self.savefile.as_mut() {
            savefile
                .flush()
                .map_err(|e| anyhow::anyhow!("-w: {}", pcap_text(&e)))?;
        }
        Ok(())
    }

    /// Live only: waits up to `timeout` for packets to read. Returns early on a signal.
    pub fn wait(&self, timeout: Duration) {
        let Some(fd) = self.poll_fd else { return };
        let mut pollfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd, owned by this frame, for the duration of the call.
        unsafe {
            libc::poll(&mut pollfd, 1, ms);
        }
    }

    /// Reads up to `max` frames that pass the filter and hands each to `take` where
    /// libpcap holds it (no copy). `take` says whether to go on, copy the frame to the file
    /// of `write_selected_to`, or stop.
    pub fn read_batch(
        &mut self,
        max: usize,
        mut take: impl FnMut(&Packet) -> Take,
    ) -> Result<Batch, Damage> {
        if self.file.is_some() {
            return self.read_mapped(max, |packet, _| take(packet));
        }
        let mut read = 0;
        while read < max {
            let packet = match self.capture.next_packet() {
                Ok(packet) => packet,
                Err(pcap::Error::NoMorePackets) => return Ok(Batch::End),
                Err(pcap::Error::TimeoutExpired) => return Ok(Batch::Idle),
                Err(e) => {
                    return Err(Damage {
                        after_frame: self.frames_seen,
                        message: pcap_text(&e),
                    });
                }
            };
            self.frames_seen += 1;
            if let Some(filter) = &self.filter
                && !filter.filter(packet.data)
            {
                continue;
            }
            read += 1;
            if self.copy_all
                && let Some(savefile) = self.savefile.as_mut()
            {
                savefile.write(&packet);
            }
            let header = packet.header;
            // With nanosecond precision libpcap puts nanoseconds in tv_usec.
            let view = Packet {
                frame: self.frames_seen,
                ts: Timestamp::from_parts(header.ts.tv_sec, header.ts.tv_usec),
                wire_len: header.len,
                data: packet.data,
            };
            match take(&view) {
                Take::Next => {}
                Take::Copy => {
                    if let Some(savefile) = self.savefile.as_mut() {
                        savefile.write(&packet);
                    }
                }
                Take::Stop => return Ok(Batch::Stopped),
            }
        }
        Ok(Batch::Full)
    }

    /// Whether this is a classic pcap file read in place (by `PcapFile`), which
    /// `read_mapped` reads.
    pub fn is_mapped(&self) -> bool {
        self.file.is_some()
    }

    /// `read_batch` over a classic pcap file read in place: each packet comes with the
    /// mapped window its bytes lie in, whose clone keeps them mapped after this returns.
    /// Nothing to read (`Batch::End`) unless `is_mapped`.
    pub fn read_mapped(
        &mut self,
        max: usize,
        mut take: impl FnMut(&Packet, &Mapped) -> Take,
    ) -> Result<Batch, Damage> {
        let Some(file) = self.file.as_mut() else {
            return Ok(Batch::End);
        };
        let mut read = 0;
        while read < max {
            let record = match file.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return Ok(Batch::End),
                Err(message) => {
                    return Err(Damage {
                        after_frame: self.frames_seen,
                        message,
                    });
                }
            };
            self.frames_seen += 1;
            if let Some(filter) = &self.filter
                && !filter.filter(record.data)
            {
                continue;
            }
            read += 1;
            let packet = Packet {
                frame: self.frames_seen,
                ts: record.ts,
                wire_len: record.wire_len,
                data: record.data,
            };
            match take(&packet, record.mapped) {
                Take::Next => {}
                Take::Copy => {
                    if let Some(savefile) = self.savefile.as_mut() {
                        let header = packet_header(&packet);
                        savefile.write(&pcap::Packet::new(&header, packet.data));
                    }
                }
                Take::Stop => return Ok(Batch::Stopped),
            }
        }
        Ok(Batch::Full)
    }

    /// The kernel's counts for a live capture; `None` for a file.
    pub fn kernel_stats(&mut self) -> Option<KernelStats> {
        self.poll_fd?;
        let stat = self.capture.stats().ok()?;
        Some(KernelStats {
            received: u64::from(stat.received),
            dropped: u64::from(stat.dropped),
            if_dropped: u64::from(stat.if_dropped),
        })
    }
}

/// The interfaces libpcap can capture on, as `tcpdump -D` lists them.
pub fn list_devices() -> Result<Vec<String>> {
    let devices =
        Device::list().map_err(|e| anyhow::anyhow!("cannot list interfaces: {}", pcap_text(&e)))?;
    Ok(devices
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let mut flags = Vec::new();
            if d.flags.is_up() {
                flags.push("Up");
            }
            if d.flags.is_running() {
                flags.push("Running");
            }
            if d.flags.is_loopback() {
                flags.push("Loopback");
            }
            let desc = d.desc.map(|s| format!(" ({s})")).unwrap_or_default();
            format!("{}.{}{desc} [{}]", i + 1, d.name, flags.join(", "))
        })
        .collect())
}

fn supported_link(name: &str, linktype: pcap::Linktype) -> Result<LinkType> {
    match LinkType::from_linktype(linktype.0) {
        Some(link) => Ok(link),
        None => bail!(
            "{name}: unsupported link type {} ({}); staleconn reads Ethernet, Linux cooked \
             (SLL, SLL2), raw IP and BSD loopback captures",
            linktype.0,
            linktype.get_name().unwrap_or_else(|_| "unknown".into())
        ),
    }
}

/// Says in one line why `path` cannot be read as a capture; its metadata when it can.
fn check_readable_file(path: &Path) -> Result<std::fs::Metadata> {
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
    // Opening is the honest test of "readable", but only for a regular file: opening a
    // FIFO and closing it would take its writer's data with it.
    if meta.is_file() {
        std::fs::File::open(path).map_err(explain)?;
    }
    Ok(meta)
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

fn bpf_error(expr: &str, e: &pcap::Error) -> anyhow::Error {
    anyhow::anyhow!("bad BPF expression '{expr}': {}", pcap_text(e))
}

/// Says what to do: run as root or grant capabilities; name the devices that exist.
fn live_open_error(device: &str, e: &pcap::Error) -> anyhow::Error {
    let text = pcap_text(e);
    let lower = text.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        anyhow::anyhow!(
            "{device}: no permission to capture ({text}); run as root, or grant the binary \
             capture rights: sudo setcap cap_net_raw,cap_net_admin=eip $(command -v staleconn)"
        )
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        let known = Device::list()
            .map(|list| {
                list.into_iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        anyhow::anyhow!(
            "{device}: no such interface; interfaces here: {known} (staleconn -D lists them)"
        )
    } else {
        anyhow::anyhow!("{device}: cannot capture ({text})")
    }
}

/// libpcap's own message, without the Debug wrapping.
pub fn pcap_text(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A saved capture: one file read in place, or several merged by timestamp.
pub enum Files {
    One(Source),
    Many(MergedFiles),
}

impl Files {
    pub fn open(paths: &[String], bpf: Option<&str>) -> Result<Files> {
        match paths {
            [] => bail!("no capture file given"),
            [path] => Ok(Files::One(Source::open_file(path, bpf)?)),
            _ => Ok(Files::Many(MergedFiles::open(paths, bpf)?)),
        }
    }

    pub fn link(&self) -> LinkType {
        match self {
            Files::One(s) => s.link(),
            Files::Many(m) => m.link(),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Files::One(s) => s.name(),
            Files::Many(m) => m.name(),
        }
    }

    pub fn read_batch(
        &mut self,
        max: usize,
        take: impl FnMut(&Packet) -> Take,
    ) -> Result<Batch, Damage> {
        match self {
            Files::One(s) => s.read_batch(max, take),
            Files::Many(m) => m.read_batch(max, take),
        }
    }

    pub fn savefile(&self, path: &Path) -> Result<Savefile> {
        match self {
            Files::One(s) => s.savefile(path),
            Files::Many(m) => m.savefile(path),
        }
    }

    pub fn write_selected_to(&mut self, savefile: Savefile) {
        match self {
            Files::One(s) => s.write_selected_to(savefile),
            Files::Many(m) => m.write_selected_to(savefile),
        }
    }

    pub fn flush_written(&mut self) -> Result<()> {
        match self {
            Files::One(s) => s.flush_written(),
            Files::Many(m) => m.flush_written(),
        }
    }

    /// The one file, when it is read in place (see `Source::read_mapped`).
    pub fn mapped(&mut self) -> Option<&mut Source> {
        match self {
            Files::One(s) if s.is_mapped() => Some(s),
            _ => None,
        }
    }

    /// Files of a merge that ended early, each said once.
    pub fn take_warnings(&mut self) -> Vec<String> {
        match self {
            Files::One(_) => Vec::new(),
            Files::Many(m) => std::mem::take(&mut m.warnings),
        }
    }
}

/// A frame's pcap header as libpcap's savefile writes it: nanoseconds in `tv_usec`, since
/// every handle here is opened with nanosecond precision.
pub(crate) fn packet_header(packet: &Packet) -> pcap::PacketHeader {
    pcap::PacketHeader {
        ts: libc::timeval {
            tv_sec: packet.ts.0.div_euclid(1_000_000_000),
            tv_usec: packet.ts.0.rem_euclid(1_000_000_000),
        },
        caplen: packet.data.len() as u32,
        len: packet.wire_len,
    }
}
