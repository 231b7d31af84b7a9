//! Classic pcap files read with large reads and parsed in place: the common case of a big
//! saved capture, without libpcap's small stdio buffer and its copy of every record.
//! Anything else (pcapng, standard input, a header this does not know) is left to libpcap.
//! A second thread reads ahead, so the kernel's copy of the next chunk overlaps the
//! parsing of this one.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use crate::time::Timestamp;

/// Bytes read at a time: large reads are what make this faster than libpcap's stdio.
const CHUNK: usize = 256 << 10;
/// libpcap's largest snapshot length; a longer record is damage, not a packet.
pub const MAX_RECORD: usize = 262_144;
const RECORD_HEADER: usize = 16;
/// Room before each chunk's bytes for the unread tail of the chunk before it, so a record
/// that spans two chunks is contiguous. The tail is always shorter than one record.
const HEADROOM: usize = RECORD_HEADER + MAX_RECORD;
/// Chunk buffers in all: one being parsed, the others being filled or waiting.
const BUFFERS: usize = 4;

/// An open classic pcap file, positioned after its file header.
pub struct PcapFile {
    chunks: ReadAhead,
    /// The chunk being parsed: bytes `start..end` are not yet consumed.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    at_eof: bool,
    /// The file was written on a host of the other byte order.
    swapped: bool,
    /// Fractions are nanoseconds (magic a1b23c4d), not microseconds.
    nanos: bool,
    /// LINKTYPE from the file header, without its FCS bits.
    pub linktype: i32,
}

/// One record, borrowed from the read buffer.
pub struct Record<'a> {
    pub ts: Timestamp,
    pub wire_len: u32,
    pub data: &'a [u8],
}

impl PcapFile {
    /// Opens `path` if it is a classic pcap file; `Ok(None)` for anything else. For
    /// regular files only (the caller checks): the read-ahead waits for whole chunks,
    /// where a FIFO's packets should be handed on as they come.
    pub fn open(path: &Path) -> std::io::Result<Option<PcapFile>> {
        let mut file = File::open(path)?;
        let mut header = [0u8; 24];
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
        Ok(Some(PcapFile {
            chunks: ReadAhead::start(file)?,
            buffer: Vec::new(),
            start: 0,
            end: 0,
            at_eof: false,
            swapped,
            nanos,
            linktype: (field(20) & 0xffff) as i32,
        }))
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = &self.buffer[at..at + 4];
        let value = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if self.swapped {
            value.swap_bytes()
        } else {
            value
        }
    }

    /// The next record; `Ok(None)` at a clean end of file; `Err` with libpcap's words when
    /// the file is cut off or a record is impossible.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, String> {
        if !self.fill(RECORD_HEADER)? {
            let left = self.end - self.start;
            return if left == 0 {
                Ok(None)
            } else {
                Err(format!(
                    "truncated dump file; tried to read {RECORD_HEADER} header bytes, only got {left}"
                ))
            };
        }
        let at = self.start;
        let (secs, fraction) = (self.u32_at(at), self.u32_at(at + 4));
        let (caplen, wire_len) = (self.u32_at(at + 8) as usize, self.u32_at(at + 12));
        if caplen > MAX_RECORD {
            return Err(format!(
                "invalid packet capture length {caplen}, bigger than maximum of {MAX_RECORD}"
            ));
        }
        if !self.fill(RECORD_HEADER + caplen)? {
            let got = self.end - self.start - RECORD_HEADER;
            return Err(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {got}"
            ));
        }
        let data_at = self.start + RECORD_HEADER;
        self.start = data_at + caplen;
        prefetch(&self.buffer[self.start.min(self.end)..self.end]);
        let nanos = if self.nanos {
            i64::from(fraction)
        } else {
            i64::from(fraction) * 1000
        };
        Ok(Some(Record {
            ts: Timestamp::from_parts(i64::from(secs), nanos),
            wire_len,
            data: &self.buffer[data_at..data_at + caplen],
        }))
    }

    /// Makes `n` bytes available from `start`; false when the file ends first.
    /// `n` is at most one record, so the unread tail always fits in the next chunk's
    /// headroom.
    #[inline]
    fn fill(&mut self, n: usize) -> Result<bool, String> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        self.refill(n)
    }

    #[cold]
    fn refill(&mut self, n: usize) -> Result<bool, String> {
        debug_assert!(n <= HEADROOM);
        while self.end - self.start < n {
            if self.at_eof {
                return Ok(false);
            }
            let Some(mut next) = self.chunks.next().map_err(|e| e.to_string())? else {
                self.at_eof = true;
                continue;
            };
            let tail = self.end - self.start;
            next[HEADROOM - tail..HEADROOM].copy_from_slice(&self.buffer[self.start..self.end]);
            let filled = next.len();
            let done = std::mem::replace(&mut self.buffer, next);
            self.chunks.recycle(done);
            (self.start, self.end) = (HEADROOM - tail, filled);
        }
        Ok(true)
    }
}

/// A filled buffer, or the error that ended reading.
type Chunk = std::io::Result<Vec<u8>>;

/// A thread that reads the file chunk by chunk, each into the bytes after `HEADROOM` of a
/// buffer it is given back once parsed. Dropping this closes both channels, which ends the
/// thread at its next step, and waits for it: no thread outlives its file.
struct ReadAhead {
    /// `Some` until dropped.
    channels: Option<(Receiver<Chunk>, Sender<Vec<u8>>)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        drop(self.channels.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl ReadAhead {
    fn start(mut file: File) -> std::io::Result<ReadAhead> {
        let (full_tx, full): (SyncSender<Chunk>, _) = sync_channel(BUFFERS);
        let (empty, empty_rx) = channel::<Vec<u8>>();
        for _ in 0..BUFFERS - 1 {
            let _ = empty.send(Vec::new());
        }
        let thread = std::thread::Builder::new()
            .name("pcap read-ahead".into())
            .spawn(move || {
                for mut buffer in empty_rx {
                    buffer.resize(HEADROOM + CHUNK, 0);
                    let read = read_up_to(&mut file, &mut buffer[HEADROOM..]);
                    let last = !matches!(read, Ok(n) if n == CHUNK);
                    let sent = read.map(|n| {
                        buffer.truncate(HEADROOM + n);
                        buffer
                    });
                    if full_tx.send(sent).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(ReadAhead {
            channels: Some((full, empty)),
            thread: Some(thread),
        })
    }

    /// The next chunk, its bytes from `HEADROOM` on; `None` once the file has ended.
    fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let Some((full, _)) = &self.channels else {
            return Ok(None);
        };
        match full.recv() {
            Ok(Ok(chunk)) if chunk.len() == HEADROOM => Ok(None),
            Ok(Ok(chunk)) => Ok(Some(chunk)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None), // the thread has sent its last chunk
        }
    }

    /// Hands a parsed chunk back to be filled again.
    fn recycle(&mut self, buffer: Vec<u8>) {
        if let Some((_, empty)) = &self.channels {
            let _ = empty.send(buffer);
        }
    }
}

/// Asks the CPU to bring the next record's header and first bytes into cache while this
/// record is decoded: the chunk was just written by the read-ahead thread on another core,
/// and that miss was most of the cost of reading a record.
#[inline]
fn prefetch(next: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for line in next.chunks(64).take(2) {
            // SAFETY: a prefetch is only a hint and never faults; SSE is part of x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = next;
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

    #[test]
    fn records_that_span_read_ahead_chunks_arrive_whole() {
        let mut bytes = big_endian_file()[..24].to_vec();
        // Sizes that never line up with a chunk edge, past several chunks, up to the
        // largest record libpcap allows.
        let sizes: Vec<usize> = (0..700)
            .map(|i| (i * 7919) % 4000 + 1)
            .chain([MAX_RECORD])
            .collect();
        for (i, &size) in sizes.iter().enumerate() {
            for v in [i as u32, 0, size as u32, size as u32] {
                bytes.extend_from_slice(&v.to_be_bytes());
            }
            bytes.extend((0..size).map(|b| (b + i) as u8));
        }
        assert!(bytes.len() > 3 * CHUNK);
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

    #[test]
    fn pcapng_and_short_files_are_left_to_libpcap() {
        use std::io::Write;
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0])
            .unwrap();
        assert!(PcapFile::open(tmp.path()).unwrap().is_none());
    }
}
