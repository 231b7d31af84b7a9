//! Several saved captures read as one, in timestamp order, as `tcpdump -C`/`-G` rotation
//! leaves them: frames are numbered in the merged order, as in `mergecap -w merged.pcap`.

use std::path::Path;

use anyhow::{Result, bail};

use super::{Batch, Damage, Packet, Savefile, Source, Take};
use crate::decode::LinkType;
use crate::time::Timestamp;

/// The next frame of one file, copied so the heads of all files can be compared.
struct Head {
    ts: Timestamp,
    wire_len: u32,
    data: Vec<u8>,
}

pub struct MergedFiles {
    sources: Vec<Source>,
    heads: Vec<Option<Head>>,
    /// Run here, after numbering, so filtered frames keep their number in the merge.
    filter: Option<pcap::BpfProgram>,
    link: LinkType,
    name: String,
    frames_seen: u64,
    savefile: Option<Savefile>,
    /// Files that ended early, each said once.
    pub warnings: Vec<String>,
}

impl MergedFiles {
    pub fn open(paths: &[String], bpf: Option<&str>) -> Result<MergedFiles> {
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            if path == "-" {
                bail!("standard input (-r -) cannot be merged with other files: read it alone");
            }
            sources.push(Source::open_file(path, None)?);
        }
        let link = sources[0].link();
        if let Some(other) = sources.iter().find(|s| s.link() != link) {
            bail!(
                "{} is {} but {} is {}: files merged into one capture need the same link type",
                other.name(),
                other.link().name(),
                sources[0].name(),
                link.name()
            );
        }
        let filter = match bpf {
            Some(expr) => Some(sources[0].compile(expr)?),
            None => None,
        };
        let name = format!(
            "{} files ({} .. {})",
            paths.len(),
            paths[0],
            paths[paths.len() - 1]
        );
        let mut merged = MergedFiles {
            heads: (0..sources.len()).map(|_| None).collect(),
            sources,
            filter,
            link,
            name,
            frames_seen: 0,
            savefile: None,
            warnings: Vec::new(),
        };
        for i in 0..merged.sources.len() {
            merged.refill(i);
        }
        Ok(merged)
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pcap file with the first file's link type, for the frames `read_batch` copies.
    pub fn savefile(&self, path: &Path) -> Result<Savefile> {
        self.sources[0].savefile(path)
    }

    pub fn write_selected_to(&mut self, savefile: Savefile) {
        self.savefile = Some(savefile);
    }

    pub fn flush_written(&mut self) -> Result<()> {
        if let Some(savefile) = self.savefile.as_mut() {
            savefile
                .flush()
                .map_err(|e| anyhow::anyhow!("--write-flagged: {}", super::pcap_text(&e)))?;
        }
        Ok(())
    }

    /// Reads file `i`'s next frame into its head; a file cut off ends with a warning.
    fn refill(&mut self, i: usize) {
        let mut head = self.heads[i].take().map(|h| h.data).unwrap_or_default();
        head.clear();
        let mut taken = None;
        let batch = self.sources[i].read_batch(1, |p| {
            head.extend_from_slice(p.data);
            taken = Some((p.ts, p.wire_len));
            Take::Next
        });
        if let Err(Damage {
            after_frame,
            message,
        }) = batch
        {
            self.warnings.push(format!(
                "{}: capture ends early after its frame {after_frame} ({message}); merged the frames before it",
                self.sources[i].name()
            ));
        }
        self.heads[i] = taken.map(|(ts, wire_len)| Head {
            ts,
            wire_len,
            data: head,
        });
    }

    /// As `Source::read_batch`, over the files merged by timestamp (the earlier file first
    /// on a tie).
    pub fn read_batch(
        &mut self,
        max: usize,
        mut take: impl FnMut(&Packet) -> Take,
    ) -> Result<Batch, Damage> {
        let mut read = 0;
        while read < max {
            let Some(i) = (0..self.heads.len())
                .filter(|&i| self.heads[i].is_some())
                .min_by_key(|&i| self.heads[i].as_ref().map(|h| h.ts))
            else {
                return Ok(Batch::End);
            };
            self.frames_seen += 1;
            let head = self.heads[i]
                .as_ref()
                .expect("chosen among the filled heads");
            let passes = self.filter.as_ref().is_none_or(|f| f.filter(&head.data));
            if passes {
                read += 1;
                let packet = Packet {
                    frame: self.frames_seen,
                    ts: head.ts,
                    wire_len: head.wire_len,
                    data: &head.data,
                };
                match take(&packet) {
                    Take::Next => {}
                    Take::Copy => {
                        if let Some(savefile) = self.savefile.as_mut() {
                            let header = super::packet_header(&packet);
                            savefile.write(&pcap::Packet::new(&header, packet.data));
                        }
                    }
                    Take::Stop => {
                        self.refill(i);
                        return Ok(Batch::Stopped);
                    }
                }
            }
            self.refill(i);
        }
        Ok(Batch::Full)
    }
}
