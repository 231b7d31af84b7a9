//! Classic pcap files read with large reads and parsed in place: the common case of a big
//! saved capture, without libpcap's small stdio buffer and its copy of every record.
//! Anything else (pcapng, standard input, a header this does not know) is left to libpcap.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::time::Timestamp;

/// Bytes read at a time: large reads are what make this faster than libpcap's stdio.
const BUFFER: usize = 4 << 20;
/// libpcap's largest snapshot length; a longer record is damage, not a packet.
pub const MAX_RECORD: usize = 262_144;
const RECORD_HEADER: usize = 16;

/// An open classic pcap file, positioned after its file header.
pub struct PcapFile {
    file: File,
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
    /// Opens `path` if it is a classic pcap file; `Ok(None)` for anything else.
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
            file,
            buffer: vec![0; BUFFER],
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
    fn fill(&mut self, n: usize) -> Result<bool, String> {
        while self.end - self.start < n {
            if self.at_eof {
                return Ok(false);
            }
            if self.start > 0 {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.file.read(&mut self.buffer[self.end..]) {
                Ok(0) => self.at_eof = true,
                Ok(got) => self.end += got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(true)
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

    #[test]
    fn pcapng_and_short_files_are_left_to_libpcap() {
        use std::io::Write;
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0])
            .unwrap();
        assert!(PcapFile::open(tmp.path()).unwrap().is_none());
    }
}
