//! A progress bar on stderr for a large saved capture read from a terminal: bytes done of
//! the total, packets/s, time left. None when stderr is piped or the input is small.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Inputs smaller than this finish before a bar is worth drawing.
const MIN_BYTES: u64 = 256 << 20;
/// Packets between two updates: the bar costs nothing per packet.
const EVERY: u64 = 1 << 16;
/// pcap's per-record header; pcapng's blocks cost a little more, so the bar is an estimate.
const RECORD_OVERHEAD: u64 = 16;

pub struct Progress {
    bar: Option<ProgressBar>,
    bytes: u64,
    packets: u64,
}

impl Progress {
    /// A bar for `paths` when stderr is a terminal and they add up to a few hundred MB.
    pub fn for_files(paths: &[String]) -> Progress {
        let total: u64 = paths
            .iter()
            .filter(|p| *p != "-")
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let bar = (total >= MIN_BYTES && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress {
            bar,
            bytes: 24,
            packets: 0,
        }
    }

    /// One more frame of `caplen` bytes.
    #[inline]
    pub fn frame(&mut self, caplen: usize) {
        self.bytes += RECORD_OVERHEAD + caplen as u64;
        self.packets += 1;
        if self.packets.is_multiple_of(EVERY)
            && let Some(bar) = &self.bar
        {
            bar.set_position(self.bytes);
            let per_second = self.packets as f64 / bar.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!("{:.2} Mpkt/s", per_second / 1e6));
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
