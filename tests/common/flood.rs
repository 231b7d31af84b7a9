//! A SYN flood written as a classic pcap, shared by tests/bounds.rs and the benchmark:
//! `syns` SYNs from distinct spoofed sources to one server, 1 µs apart, each answered by a
//! SYN-ACK that nobody acknowledges. Every SYN is a new flow.

use std::io::Write;

use etherparse::PacketBuilder;

/// Writes the flood to `out`; the bytes written.
pub fn write_syn_flood(out: &mut impl Write, syns: u32) -> std::io::Result<u64> {
    out.write_all(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
    out.write_all(&262_144u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;
    let server = [198, 19, 0, 1];
    let mut frame = Vec::with_capacity(128);
    let mut bytes = 24;
    for i in 0..syns {
        // Distinct for 16 million SYNs: address from the high bits, port from the low.
        let client = [198, 18, (i >> 16) as u8, (i >> 8) as u8];
        let port = 1024 + (i & 0xff) as u16;
        let isn = i.wrapping_mul(2_654_435_761);
        for from_client in [true, false] {
            frame.clear();
            let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            let tcp = if from_client {
                eth.ipv4(client, server, 64)
                    .tcp(port, 443, isn, 64240)
                    .syn()
            } else {
                eth.ipv4(server, client, 64)
                    .tcp(443, port, !isn, 65160)
                    .syn()
                    .ack(isn.wrapping_add(1))
            };
            tcp.write(&mut frame, &[]).map_err(std::io::Error::other)?;
            let usec = 2 * u64::from(i) + u64::from(!from_client);
            out.write_all(&((1_790_000_000 + usec / 1_000_000) as u32).to_le_bytes())?;
            out.write_all(&((usec % 1_000_000) as u32).to_le_bytes())?;
            out.write_all(&(frame.len() as u32).to_le_bytes())?;
            out.write_all(&(frame.len() as u32).to_le_bytes())?;
            out.write_all(&frame)?;
            bytes += 16 + frame.len() as u64;
        }
    }
    out.flush()?;
    Ok(bytes)
}
