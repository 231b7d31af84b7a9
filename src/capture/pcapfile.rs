//! Classic pcap files mapped into memory and parsed in place: the common case of a big
//! saved capture, without libpcap's small stdio buffer, its copy of every record, or the
//! kernel's copy of every byte that `read` makes. Anything else (pcapng, standard input, a
//! FIFO, a header this does not know, a file that cannot be mapped) is left to libpcap.
//! A second thread maps the file window by window ahead of the parser, so page faults and
//! disk reads overlap the parsing, and no more than a few windows are mapped at once.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use super::sigbus::{self, Watch};
use crate::prefetch;
use crate::time::Timestamp;

/// The size of a huge page, and of the page cache's largest folios, on x86_64 and arm64.
const HUGE_PAGE: usize = 2 << 20;
/// Bytes of file between the starts of two windows.
const STRIDE: usize = if cfg!(test) { 1 << 20 } else { 2 << 20 };
/// libpcap's largest snapshot length; a longer record is damage, not a packet.
pub const MAX_RECORD: usize = 262_144;
const RECORD_HEADER: usize = 16;
/// Each window maps this much past its stride, so a record that starts in it ends in it:
/// no record is ever copied to be made contiguous.
const OVERLAP: usize = RECORD_HEADER + MAX_RECORD;
const FILE_HEADER: usize = 24;

/// An open classic pcap file, positioned after its file header.
pub struct PcapFile {
    windows: Windows,
    /// The window being parsed: bytes `start..` of it are not yet consumed.
    window: Mapped,
    start: usize,
    /// The mapper has said the file ends after `window`.
    at_eof: bool,
    /// The file was written on a host of the other byte order.
    swapped: bool,
    /// Fractions are nanoseconds (magic a1b23c4d), not microseconds.
    nanos: bool,
    /// LINKTYPE from the file header, without its FCS bits.
    pub linktype: i32,
}

/// One record, borrowed from the mapped file.
pub struct Record<'a> {
    pub ts: Timestamp,
    pub wire_len: u32,
    pub data: &'a [u8],
    /// The window `data` lies in: a clone of it keeps `data` mapped.
    pub mapped: &'a Mapped,
}

/// A window of the mapped file, shared: whoever holds a clone keeps the bytes of the
/// records read from it mapped, after the reader has moved on.
#[derive(Clone)]
pub struct Mapped(Arc<Window>);

impl Mapped {
    pub fn same(&self, other: &Mapped) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PcapFile {
    /// Opens `path` if it is a classic pcap file that can be mapped; `Ok(None)` for
    /// anything else. For regular files only (the caller checks).
    pub fn open(path: &Path) -> std::io::Result<Option<PcapFile>> {
        let mut file = File::open(path)?;
        let mut header = [0u8; FILE_HEADER];
        if read_up_to(&mut file, &mut header)? < header.len() {
            return Ok(None);
        }
        let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let (swapped, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xd4c3_b2a1 => (true, false),
            0xa1b2_3c4d => (false, true),
            0x4d3c_b2a1 => (true, true),
            _ => return Ok(None),
        };
        let field = |at: usize| {
            let value =
                u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
            if swapped { value.swap_bytes() } else { value }
        };
        let major = u16::from_le_bytes([header[4], header[5]]);
        if (if swapped { major.swap_bytes() } else { major }) != 2 {
            return Ok(None);
        }
        let mut windows = Windows::start(file)?;
        // A file that cannot be mapped (some FUSE and network file systems) is libpcap's.
        let window = match windows.next() {
            Ok(Some(window)) => window,
            Ok(None) | Err(_) => return Ok(None),
        };
        Ok(Some(PcapFile {
            windows,
            window: Mapped(Arc::new(window)),
            start: FILE_HEADER,
            at_eof: false,
            swapped,
            nanos,
            linktype: (field(20) & 0xffff) as i32,
        }))
    }

    /// The four fields of the record header at `at`: seconds, fraction, captured length,
    /// length on the wire.
    #[inline]
    fn header_at(&self, at: usize) -> [u32; 4] {
        let header: &[u8; RECORD_HEADER] = self.window.0.bytes()[at..at + RECORD_HEADER]
            .try_into()
            .expect("a 16-byte slice");
        let mut fields = [0u32; 4];
        let (words, _) = header.as_chunks::<4>();
        for (field, bytes) in fields.iter_mut().zip(words) {
            let value = u32::from_le_bytes(*bytes);
            *field = if self.swapped {
                value.swap_bytes()
            } else {
                value
            };
        }
        fields
    }

    /// The next record; `Ok(None)` at a clean end of file; `Err` with libpcap's words when
    /// the file is cut off or a record is impossible.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, String> {
        if !self.fill(RECORD_HEADER)? {
            let left = self.window.0.len - self.start;
            return if left == 0 {
                Ok(None)
            } else {
                Err(format!(
                    "truncated dump file; tried to read {RECORD_HEADER} header bytes, only got {left}"
                ))
            };
        }
        let at = self.start;
        let [secs, fraction, caplen, wire_len] = self.header_at(at);
        let caplen = caplen as usize;
        if caplen > MAX_RECORD {
            return Err(format!(
                "invalid packet capture length {caplen}, bigger than maximum of {MAX_RECORD}"
            ));
        }
        if !self.fill(RECORD_HEADER + caplen)? {
            let got = self.window.0.len - self.start - RECORD_HEADER;
            return Err(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {got}"
            ));
        }
        let data_at = self.start + RECORD_HEADER;
        // A file cut short under its mapping reads as zeros past its new end (see
        // `sigbus`): the record's last byte is read before the check, so that a record
        // handed on was all in the file when it was read.
        let end = data_at + caplen;
        // SAFETY: `end - 1` is inside the window: `fill` made the whole record available.
        unsafe { std::ptr::read_volatile(self.window.0.base.add(end - 1)) };
        if self.window.0.cut_short() {
            return Err(
                "the file was cut short while it was being read (truncated by another program?)"
                    .into(),
            );
        }
        let bytes = self.window.0.bytes();
        prefetch_ahead(bytes, at, end);
        self.start = end;
        let nanos = if self.nanos {
            i64::from(fraction)
        } else {
            i64::from(fraction) * 1000
        };
        Ok(Some(Record {
            ts: Timestamp::from_parts(i64::from(secs), nanos),
            wire_len,
            data: &bytes[data_at..end],
            mapped: &self.window,
        }))
    }

    /// Makes `n` bytes available from `start`; false when the file ends first.
    /// `n` is at most one record, which the next window holds whole.
    #[inline]
    fn fill(&mut self, n: usize) -> Result<bool, String> {
        if self.window.0.len - self.start >= n {
            return Ok(true);
        }
        self.refill(n)
    }

    #[cold]
    fn refill(&mut self, n: usize) -> Result<bool, String> {
        debug_assert!(n <= OVERLAP);
        while self.window.0.len - self.start < n {
            if self.at_eof {
                return Ok(false);
            }
            let Some(next) = self.windows.next().map_err(|e| e.to_string())? else {
                self.at_eof = true;
                continue;
            };
            let at = self.window.0.offset + self.start as u64;
            debug_assert!(next.offset <= at);
            self.start = (at - next.offset) as usize;
            self.window = Mapped(Arc::new(next));
        }
        Ok(true)
    }
}

/// A read-only mapping of `len` bytes of the file from `offset`.
struct Window {
    base: *const u8,
    len: usize,
    offset: u64,
    /// `Some` until dropped: a SIGBUS in this window means the file was cut short.
    watch: Option<Watch>,
}

// SAFETY: the mapping is owned by the window alone, read-only, and unmapped once, on drop;
// reading it from several threads at once is reading shared immutable bytes.
unsafe impl Send for Window {}
unsafe impl Sync for Window {}

impl Window {
    fn map(file: &File, offset: u64, len: usize) -> std::io::Result<Window> {
        use std::os::fd::AsRawFd;
        // Placed on a 2 MB boundary, as its offset in the file is: the kernel can then map
        // each 2 MB folio of the page cache with one page-table entry, and the parser
        // takes one TLB miss per 2 MB instead of one per 4 KB page.
        let reserved = len + HUGE_PAGE;
        // SAFETY: reserves address space only (no access, no memory); what is not used
        // of it is given back below.
        let reservation = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if reservation == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let start = reservation as usize;
        let aligned = start.next_multiple_of(HUGE_PAGE);
        // SAFETY: a read-only shared mapping of a file we hold open, over the reserved
        // range (MAP_FIXED replaces only our own reservation). MAP_POPULATE faults it in
        // now, on the mapper's thread.
        let base = unsafe {
            libc::mmap(
                aligned as *mut libc::c_void,
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        // A mapping ends on a page boundary (4 KB on x86_64; up to 64 KB on arm64).
        let mapped_end = aligned + len.next_multiple_of(sigbus::page_size());
        // SAFETY: the parts of our reservation before and after the mapping.
        unsafe {
            if aligned > start {
                libc::munmap(reservation, aligned - start);
            }
            if start + reserved > mapped_end {
                libc::munmap(
                    mapped_end as *mut libc::c_void,
                    start + reserved - mapped_end,
                );
            }
        }
        if base == libc::MAP_FAILED {
            let error = std::io::Error::last_os_error();
            // SAFETY: the reservation's middle, which the failed mmap left as it was.
            unsafe { libc::munmap(aligned as *mut libc::c_void, len) };
            return Err(error);
        }
        let mut window = Window {
            base: base.cast(),
            len,
            offset,
            watch: None,
        };
        window.watch = Some(
            Watch::new(base as usize, len)
                .ok_or_else(|| std::io::Error::other("too many capture files mapped at once"))?,
        );
        Ok(window)
    }

    /// Whether a read of this window found the file cut short underneath it.
    #[inline]
    fn cut_short(&self) -> bool {
        self.watch.as_ref().is_some_and(Watch::hit)
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        // SAFETY: `base` maps `len` readable bytes for as long as the window lives.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // Unwatched first: once unmapped, the addresses may be mapped again by anyone.
        drop(self.watch.take());
        // SAFETY: the mapping made in `map`, unmapped only here.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// A thread that maps the file window by window ahead of the parser, so that the page
/// faults (and, for a file not in the page cache, the disk reads) overlap the parsing.
/// Dropping this ends the thread at its next step and waits for it.
struct Windows {
    /// `Some` until dropped.
    next: Option<Receiver<std::io::Result<Window>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Windows {
    fn drop(&mut self) {
        drop(self.next.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Windows {
    fn start(file: File) -> std::io::Result<Windows> {
        // One window waiting while one is parsed, and one being made. Windows whose
        // records are still on their way to the flow table's thread (`Mapped` clones)
        // stay mapped until it is done with them: a few more.
        let (sender, next) = sync_channel(0);
        let thread = std::thread::Builder::new()
            .name("pcap read-ahead".into())
            .spawn(move || {
                let (mut offset, mut mapped) = (0u64, 0usize);
                loop {
                    // The size is asked again at the end: a file still being written is
                    // read as far as it has got, as a read loop would.
                    let size = match file.metadata() {
                        Ok(meta) => meta.len(),
                        Err(e) => {
                            let _ = sender.send(Err(e));
                            return;
                        }
                    };
                    let want = size.saturating_sub(offset).min((STRIDE + OVERLAP) as u64) as usize;
                    if want <= mapped {
                        return; // nothing new: the end of the file
                    }
                    let window = Window::map(&file, offset, want);
                    let failed = window.is_err();
                    if sender.send(window).is_err() || failed {
                        return;
                    }
                    if want == STRIDE + OVERLAP {
                        (offset, mapped) = (offset + STRIDE as u64, 0);
                    } else {
                        mapped = want;
                    }
                }
            })?;
        Ok(Windows {
            next: Some(next),
            thread: Some(thread),
        })
    }

    /// The next window, which holds the parser's position; `None` once the file has ended.
    fn next(&mut self) -> std::io::Result<Option<Window>> {
        match self.next.as_ref().map(Receiver::recv) {
            Some(Ok(Ok(window))) => Ok(Some(window)),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) | None => Ok(None),
        }
    }
}

/// How far ahead of the parser the file's bytes are asked into cache.
const PREFETCH_DISTANCE: usize = 2048;

/// Asks for the bytes `PREFETCH_DISTANCE` past this record, as the parser moves from
/// `from` to `to`, every line of them: the miss on each record's header was most of the
/// cost of reading it.
#[inline]
fn prefetch_ahead(bytes: &[u8], from: usize, to: usize) {
    let end = (to + PREFETCH_DISTANCE).min(bytes.len());
    let mut line = (from + PREFETCH_DISTANCE) & !63;
    while line < end {
        prefetch::line(bytes[line..].as_ptr());
        line += 64;
    }
}

/// Reads until `buf` is full or the file ends; how many bytes were read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, PcapFile) {
        use std::io::Write;
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(bytes).unwrap();
        let file = PcapFile::open(tmp.path())
            .unwrap()
            .expect("a classic pcap file");
        (tmp, file)
    }

    /// A big-endian, microsecond pcap header for Ethernet, then one record of 4 bytes.
    fn big_endian_file() -> Vec<u8> {
        let mut b = vec![0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&65535u32.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&1_790_000_000u32.to_be_bytes());
        b.extend_from_slice(&250_000u32.to_be_bytes());
        b.extend_from_slice(&4u32.to_be_bytes());
        b.extend_from_slice(&60u32.to_be_bytes());
        b.extend_from_slice(&[1, 2, 3, 4]);
        b
    }

    #[test]
    fn big_endian_microsecond_record() {
        let (_tmp, mut file) = file_with(&big_endian_file());
        assert_eq!(file.linktype, 1);
        let record = file.next_record().unwrap().unwrap();
        assert_eq!(record.ts, Timestamp::from_parts(1_790_000_000, 250_000_000));
        assert_eq!((record.wire_len, record.data), (60, &[1u8, 2, 3, 4][..]));
        assert!(file.next_record().unwrap().is_none());
    }

    #[test]
    fn nanosecond_magic_keeps_nanoseconds() {
        let mut bytes = vec![0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&65535u32.to_le_bytes());
        bytes.extend_from_slice(&276u32.to_le_bytes());
        for v in [7u32, 123_456_789, 0, 0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let (_tmp, mut file) = file_with(&bytes);
        assert_eq!(file.linktype, 276);
        assert_eq!(
            file.next_record().unwrap().unwrap().ts,
            Timestamp::from_parts(7, 123_456_789)
        );
    }

    #[test]
    fn an_impossible_record_length_is_damage() {
        let mut bytes = big_endian_file();
        bytes[32..36].copy_from_slice(&(MAX_RECORD as u32 + 1).to_be_bytes());
        let (_tmp, mut file) = file_with(&bytes);
        let message = file.next_record().err().unwrap();
        assert!(
            message.contains("bigger than maximum of 262144"),
            "{message}"
        );
    }

    #[test]
    fn a_record_cut_short_says_how_short() {
        let bytes = big_endian_file();
        let (_tmp, mut file) = file_with(&bytes[..bytes.len() - 2]);
        let message = file.next_record().err().unwrap();
        assert_eq!(
            message,
            "truncated dump file; tried to read 4 captured bytes, only got 2"
        );
    }

    /// A file of records of odd sizes, which never line up with a window's edge, past
    /// several windows, with records of the largest size libpcap allows on the edges.
    fn many_records() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = big_endian_file()[..24].to_vec();
        let sizes: Vec<usize> = (0..3000)
            .map(|i| {
                if i % 700 == 699 {
                    MAX_RECORD
                } else {
                    (i * 7919) % 4000 + 1
                }
            })
            .collect();
        for (i, &size) in sizes.iter().enumerate() {
            for v in [i as u32, 0, size as u32, size as u32] {
                bytes.extend_from_slice(&v.to_be_bytes());
            }
            bytes.extend((0..size).map(|b| (b + i) as u8));
        }
        assert!(bytes.len() > 4 * STRIDE);
        (bytes, sizes)
    }

    #[test]
    fn records_that_span_windows_arrive_whole() {
        let (bytes, sizes) = many_records();
        let (_tmp, mut file) = file_with(&bytes);
        for (i, &size) in sizes.iter().enumerate() {
            let record = file.next_record().unwrap().expect("every record");
            assert_eq!(record.ts, Timestamp::from_parts(i as i64, 0));
            assert_eq!(record.data.len(), size);
            assert!(
                record
                    .data
                    .iter()
                    .enumerate()
                    .all(|(b, &v)| v == (b + i) as u8)
            );
        }
        assert!(file.next_record().unwrap().is_none());
    }

    /// `tcpdump -C -W` truncates its oldest file to reuse it: a file cut short under its
    /// mapping ends the reading with a message, not a SIGBUS that kills the process.
    #[test]
    fn a_file_cut_short_while_mapped_is_damage_not_a_crash() {
        let (bytes, _) = many_records();
        let (tmp, mut file) = file_with(&bytes);
        for _ in 0..10 {
            file.next_record().unwrap().expect("a record");
        }
        // Cut inside the window being parsed, past the record it is at.
        tmp.as_file().set_len(STRIDE as u64 / 2).unwrap();
        let ended = loop {
            match file.next_record() {
                Ok(Some(_)) => continue,
                other => break other,
            }
        };
        let message = ended.err().expect("an error, not a clean end");
        assert!(message.contains("cut short"), "{message}");
    }

    #[test]
    fn pcapng_and_short_files_are_left_to_libpcap() {
        use std::io::Write;
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0])
            .unwrap();
        assert!(PcapFile::open(tmp.path()).unwrap().is_none());
    }
}
