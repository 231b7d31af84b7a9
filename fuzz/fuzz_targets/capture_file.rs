//! Fuzz target for whole capture files: arbitrary bytes written as a file and analysed as
//! `staleconn -r` would, through our classic pcap reader or libpcap's pcapng reader.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use staleconn::{Settings, analyze_file};

fuzz_target!(|data: &[u8]| {
    // One file per fuzzing process, in memory-backed /dev/shm where it exists.
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("staleconn-fuzz-{}.pcap", std::process::id()));
    let Ok(mut file) = std::fs::File::create(&path) else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    drop(file);
    // Half the inputs with a tiny table (evictions), half split into two parts on two
    // table threads (the merge by frame).
    let split = data.len() % 2 == 1;
    let settings = Settings {
        keep_benign: true,
        max_flows: if split { 40_000 } else { 16 },
        threads: if split { 2 } else { 1 },
        ..Settings::default()
    };
    if let Ok(analysis) = analyze_file(path.to_str().expect("utf-8 temp path"), &settings) {
        let _ = staleconn::report::Output::Json.renderer(false).render(&analysis);
    }
});
