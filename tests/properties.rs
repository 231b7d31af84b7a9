//! Property tests: what a capture cannot control must not change a verdict. Sequence
//! numbers anywhere across the 2^32 wrap, segments reordered, duplicated (the same packet
//! seen twice on `-i any`) or retransmitted, and captures merged with timestamps that go
//! backwards. The conversations are built packet by packet with etherparse; the detectors
//! themselves are proven on the lab's real captures (tests/captures.rs), these only vary
//! what must not matter.

use etherparse::PacketBuilder;
use proptest::prelude::*;
use staleconn::capture::Packet;
use staleconn::decode::LinkType;
use staleconn::detect::Verdict;
use staleconn::time::Timestamp;
use staleconn::{Analysis, Pipeline, Settings};

const MS: i64 = 1_000_000;
const SEC: i64 = 1_000 * MS;
const REQUEST: &[u8] = b"GET /orders HTTP/1.1\r\nHost: api\r\n\r\n";
const RESPONSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n";
const RESPONSE_BODY: &[u8] = b"[1,2]\n";

/// The stories a built conversation tells, each with the verdict it must get.
#[derive(Debug, Clone, Copy)]
enum Story {
    /// Two requests answered, then the client closes.
    Completed,
    /// The server's keep-alive timer closes the idle connection; no request follows.
    IdleClosed,
    /// The client's request crosses the server's FIN in flight and is reset.
    RaceCrossed,
    /// After 400 s of silence the first request is reset by a middlebox (its own TTL,
    /// sooner than a round trip).
    NatReset,
}

impl Story {
    fn verdict(self) -> Verdict {
        match self {
            Story::Completed => Verdict::Completed,
            Story::IdleClosed => Verdict::IdleClosed,
            Story::RaceCrossed => Verdict::KeepaliveRace,
            Story::NatReset => Verdict::NatIdleReset,
        }
    }
}

fn story() -> impl Strategy<Value = Story> {
    prop_oneof![
        Just(Story::Completed),
        Just(Story::IdleClosed),
        Just(Story::RaceCrossed),
        Just(Story::NatReset),
    ]
}

/// One segment of a built conversation, before it is turned into bytes.
#[derive(Debug, Clone)]
struct Seg {
    at: i64,
    from_client: bool,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    /// Relative sequence and acknowledgement numbers; the ISNs are added when encoding.
    seq: u32,
    ack_no: u32,
    payload: Vec<u8>,
    ttl: u8,
}

/// A client-side capture of one connection telling `story`, with a round trip of
/// `rtt_ms` and the client on `port`.
fn conversation(story: Story, rtt_ms: i64, start: i64) -> Vec<Seg> {
    let rtt = rtt_ms * MS;
    let mut segs = Vec::new();
    let (mut c, mut s) = (0u32, 0u32); // next relative seq of client and server
    let mut t = start;
    let push = |segs: &mut Vec<Seg>,
                at: i64,
                from_client: bool,
                flags: &str,
                seq: u32,
                ack_no: u32,
                payload: &'static [u8]| {
        segs.push(Seg {
            at,
            from_client,
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            seq,
            ack_no,
            payload: payload.to_vec(),
            ttl: if from_client { 64 } else { 62 },
        });
    };
    push(&mut segs, t, true, "S", c, 0, b"");
    c += 1;
    t += rtt;
    push(&mut segs, t, false, "SA", s, c, b"");
    s += 1;
    push(&mut segs, t + 50_000, true, "A", c, s, b"");
    // One request answered in two segments, so they can be reordered.
    let exchange = |segs: &mut Vec<Seg>, t: &mut i64, c: &mut u32, s: &mut u32| {
        push(segs, *t, true, "PA", *c, *s, REQUEST);
        *c += REQUEST.len() as u32;
        *t += rtt;
        push(segs, *t, false, "A", *s, *c, RESPONSE_HEAD);
        *s += RESPONSE_HEAD.len() as u32;
        push(segs, *t + 20_000, false, "PA", *s, *c, RESPONSE_BODY);
        *s += RESPONSE_BODY.len() as u32;
        push(segs, *t + 60_000, true, "A", *c, *s, b"");
        *t += 60_000;
    };
    t += MS;
    exchange(&mut segs, &mut t, &mut c, &mut s);
    match story {
        Story::Completed => {
            t += 2 * SEC;
            exchange(&mut segs, &mut t, &mut c, &mut s);
            t += SEC;
            push(&mut segs, t, true, "FA", c, s, b"");
            c += 1;
            t += rtt;
            push(&mut segs, t, false, "FA", s, c, b"");
            s += 1;
            push(&mut segs, t + 50_000, true, "A", c, s, b"");
        }
        Story::IdleClosed => {
            // The server's FIN reaches the client half a round trip after it left.
            t += 5 * SEC + rtt / 2;
            push(&mut segs, t, false, "FA", s, c, b"");
            s += 1;
            push(&mut segs, t + 80_000, true, "FA", c, s, b"");
            c += 1;
            push(&mut segs, t + rtt, false, "A", s, c, b"");
        }
        Story::RaceCrossed => {
            // The server closes at 5 s; its FIN arrives at the client rtt/2 later. The
            // client sent its request rtt/4 before that, so the two crossed.
            let fin_arrives = t + 5 * SEC + rtt / 2;
            push(&mut segs, fin_arrives - rtt / 4, true, "PA", c, s, REQUEST);
            c += REQUEST.len() as u32;
            push(
                &mut segs,
                fin_arrives,
                false,
                "FA",
                s,
                c - REQUEST.len() as u32,
                b"",
            );
            s += 1;
            push(&mut segs, fin_arrives + 40_000, true, "A", c, s, b"");
            // The request reached a closed socket: RST, a round trip after it left.
            push(
                &mut segs,
                fin_arrives - rtt / 4 + rtt,
                false,
                "R",
                s,
                0,
                b"",
            );
        }
        Story::NatReset => {
            t += 400 * SEC;
            push(&mut segs, t, true, "PA", c, s, REQUEST);
            // The middlebox answers at once, with its own TTL and no ACK.
            segs.push(Seg {
                at: t + rtt / 10,
                from_client: false,
                syn: false,
                ack: false,
                fin: false,
                rst: true,
                seq: s,
                ack_no: 0,
                payload: Vec::new(),
                ttl: 255,
            });
        }
    }
    segs
}

/// A TLS record of `length` body bytes (ciphertext stand-in).
fn record(content_type: u8, length: u16) -> Vec<u8> {
    let mut r = vec![content_type, 3, 3];
    r.extend_from_slice(&length.to_be_bytes());
    r.extend(std::iter::repeat_n(0x5a, usize::from(length)));
    r
}

const HANDSHAKE: u8 = 22;
const CCS: u8 = 20;
const APP: u8 = 23;

/// Builds one TLS 1.3 connection segment by segment, tracking both sequence numbers.
struct TlsBuilder {
    segs: Vec<Seg>,
    c: u32,
    s: u32,
}

impl TlsBuilder {
    fn send(&mut self, at: i64, from_client: bool, flags: &str, payload: Vec<u8>) {
        let (seq, ack_no) = if from_client {
            (self.c, self.s)
        } else {
            (self.s, self.c)
        };
        let advance =
            payload.len() as u32 + u32::from(flags.contains('S')) + u32::from(flags.contains('F'));
        self.segs.push(Seg {
            at,
            from_client,
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            seq,
            ack_no: if flags.contains('A') { ack_no } else { 0 },
            payload,
            ttl: if from_client { 64 } else { 62 },
        });
        if from_client {
            self.c += advance;
        } else {
            self.s += advance;
        }
    }
}

/// A client-side capture of one TLS 1.3 connection telling `story`. `coalesced` writes
/// the client's change_cipher_spec, Finished and first request in one segment, as Node
/// does; otherwise each goes alone, as Python does.
fn tls_conversation(story: Story, rtt_ms: i64, start: i64, coalesced: bool) -> Vec<Seg> {
    let rtt = rtt_ms * MS;
    let mut b = TlsBuilder {
        segs: Vec::new(),
        c: 0,
        s: 0,
    };
    let mut t = start;
    b.send(t, true, "S", Vec::new());
    t += rtt;
    b.send(t, false, "SA", Vec::new());
    b.send(t + 50_000, true, "A", Vec::new());
    b.send(t + 60_000, true, "PA", record(HANDSHAKE, 250));
    t += 60_000 + rtt;
    let mut flight = record(HANDSHAKE, 90);
    flight.extend(record(CCS, 1));
    flight.extend(record(APP, 900));
    b.send(t, false, "PA", flight);
    t += 100_000;
    let finished = [record(CCS, 1), record(APP, 53), record(APP, 60)];
    if coalesced {
        b.send(t, true, "PA", finished.concat());
    } else {
        for (i, r) in finished.into_iter().enumerate() {
            b.send(t + i as i64 * 10_000, true, "PA", r);
        }
    }
    t += rtt;
    // NewSessionTicket, then the answer to the first request, in two records.
    b.send(t, false, "PA", record(APP, 250));
    b.send(t + 20_000, false, "PA", record(APP, 40));
    b.send(t + 30_000, false, "PA", record(APP, 300));
    b.send(t + 90_000, true, "A", Vec::new());
    t += 90_000;
    match story {
        Story::Completed => {
            t += 2 * SEC;
            b.send(t, true, "PA", record(APP, 70));
            t += rtt;
            b.send(t, false, "PA", record(APP, 300));
            b.send(t + 60_000, true, "A", Vec::new());
            t += SEC;
            b.send(t, true, "PA", record(APP, 19));
            b.send(t + 10_000, true, "FA", Vec::new());
            t += rtt;
            b.send(t, false, "PA", record(APP, 19));
            b.send(t + 10_000, false, "FA", Vec::new());
            b.send(t + 60_000, true, "A", Vec::new());
        }
        Story::IdleClosed => {
            t += 5 * SEC + rtt / 2;
            b.send(t, false, "PA", record(APP, 19));
            b.send(t + 30_000, false, "FA", Vec::new());
            b.send(t + 80_000, true, "A", Vec::new());
            b.send(t + 90_000, true, "FA", Vec::new());
            b.send(t + 90_000 + rtt, false, "R", Vec::new());
        }
        Story::RaceCrossed => {
            let close_arrives = t + 5 * SEC + rtt / 2;
            // The request leaves rtt/4 before the close_notify arrives: they cross.
            let acked = b.s;
            b.send(close_arrives - rtt / 4, true, "PA", record(APP, 70));
            let sent = b.c;
            b.c = b.c.wrapping_sub(75);
            b.send(close_arrives, false, "PA", record(APP, 19));
            b.send(close_arrives + 30_000, false, "FA", Vec::new());
            b.c = sent;
            b.send(close_arrives + 70_000, true, "A", Vec::new());
            let _ = acked;
            b.send(close_arrives - rtt / 4 + rtt, false, "R", Vec::new());
        }
        Story::NatReset => {
            t += 400 * SEC;
            b.send(t, true, "PA", record(APP, 70));
            b.segs.push(Seg {
                at: t + rtt / 10,
                from_client: false,
                syn: false,
                ack: false,
                fin: false,
                rst: true,
                seq: b.s,
                ack_no: 0,
                payload: Vec::new(),
                ttl: 255,
            });
        }
    }
    b.segs
}

/// The segments with TCP keep-alive probes every `interval` in each idle stretch of over
/// two intervals before any FIN, as Node's Agent sends them (Linux: no payload; BSD and
/// Windows: one garbage byte), each acknowledged by the peer a round trip later.
fn with_keepalive_probes(segs: &[Seg], interval: i64, rtt: i64, one_byte: bool) -> Vec<Seg> {
    let (mut c_next, mut s_next) = (0u32, 0u32);
    let mut out = Vec::new();
    let mut closing = false;
    for (i, seg) in segs.iter().enumerate() {
        out.push(seg.clone());
        let advance = seg.payload.len() as u32 + u32::from(seg.syn) + u32::from(seg.fin);
        if !seg.rst {
            if seg.from_client {
                c_next = c_next.max(seg.seq + advance);
            } else {
                s_next = s_next.max(seg.seq + advance);
            }
        }
        closing |= seg.fin || seg.rst;
        let Some(next) = segs.get(i + 1) else { break };
        if closing || seg.syn {
            continue;
        }
        let mut at = seg.at + interval;
        while at + rtt + 2 * MS < next.at && at + interval <= next.at {
            out.push(Seg {
                at,
                from_client: true,
                syn: false,
                ack: true,
                fin: false,
                rst: false,
                seq: c_next - 1,
                ack_no: s_next,
                payload: if one_byte { vec![0] } else { Vec::new() },
                ttl: 64,
            });
            out.push(Seg {
                at: at + rtt,
                from_client: false,
                syn: false,
                ack: true,
                fin: false,
                rst: false,
                seq: s_next,
                ack_no: c_next,
                payload: Vec::new(),
                ttl: 62,
            });
            at += interval;
        }
    }
    out
}

/// Segment `index`'s payload split in two at `cut` (a TLS record across two segments).
fn split_segment(segs: &[Seg], index: usize, cut: usize) -> Vec<Seg> {
    let mut out = segs.to_vec();
    let seg = &segs[index];
    let mut first = seg.clone();
    let mut second = seg.clone();
    first.payload.truncate(cut);
    first.fin = false;
    second.payload.drain(..cut);
    second.seq = seg.seq + cut as u32;
    second.at = seg.at + 1_000;
    out[index] = first;
    out.insert(index + 1, second);
    out
}

/// Segments `index` and `index + 1`, one direction, one behind the other, sent as one.
fn coalesce(segs: &[Seg], index: usize) -> Vec<Seg> {
    let mut out = segs.to_vec();
    let second = out.remove(index + 1);
    let first = &mut out[index];
    first.payload.extend_from_slice(&second.payload);
    first.fin |= second.fin;
    first.ack_no = second.ack_no;
    out
}

/// Where `coalesce` applies: two payload segments of one direction within a millisecond,
/// nothing between them.
fn coalescible(segs: &[Seg]) -> Vec<usize> {
    (0..segs.len().saturating_sub(1))
        .filter(|&i| {
            let (a, b) = (&segs[i], &segs[i + 1]);
            a.from_client == b.from_client
                && !a.payload.is_empty()
                && !a.fin
                && !a.rst
                && !b.rst
                && b.at - a.at <= MS
                && b.seq == a.seq + a.payload.len() as u32
        })
        .collect()
}

/// A packet ready for the pipeline: capture time and Ethernet bytes.
#[derive(Debug, Clone)]
struct Frame {
    at: i64,
    bytes: Vec<u8>,
}

fn encode(segs: &[Seg], port: u16, client_isn: u32, server_isn: u32) -> Vec<Frame> {
    encode_to(segs, port, 80, client_isn, server_isn)
}

fn encode_to(
    segs: &[Seg],
    port: u16,
    server_port: u16,
    client_isn: u32,
    server_isn: u32,
) -> Vec<Frame> {
    let (client, server) = ([198, 18, 1, 2], [198, 19, 2, 2]);
    segs.iter()
        .map(|seg| {
            let (src, dst, sport, dport, own, other) = if seg.from_client {
                (client, server, port, server_port, client_isn, server_isn)
            } else {
                (server, client, server_port, port, server_isn, client_isn)
            };
            let mut tcp = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4(src, dst, seg.ttl)
                .tcp(sport, dport, own.wrapping_add(seg.seq), 64240);
            if seg.ack {
                tcp = tcp.ack(other.wrapping_add(seg.ack_no));
            }
            if seg.syn {
                tcp = tcp.syn();
            }
            if seg.fin {
                tcp = tcp.fin();
            }
            if seg.rst {
                tcp = tcp.rst();
            }
            if !seg.payload.is_empty() {
                tcp = tcp.psh();
            }
            let mut bytes = Vec::new();
            tcp.write(&mut bytes, &seg.payload)
                .expect("a buildable segment");
            Frame { at: seg.at, bytes }
        })
        .collect()
}

fn analyse(frames: &[Frame]) -> Analysis {
    let settings = Settings::default();
    let mut pipeline = Pipeline::new(&settings, LinkType::Ethernet);
    for (i, frame) in frames.iter().enumerate() {
        let packet = Packet {
            frame: i as u64 + 1,
            ts: Timestamp(frame.at),
            wire_len: frame.bytes.len() as u32,
            data: &frame.bytes,
        };
        pipeline.packet(&packet, false);
    }
    pipeline
        .finish("built".into(), Vec::new())
        .expect("a pipeline without a sink does not fail")
}

fn verdicts(analysis: &Analysis) -> Vec<(u16, Verdict)> {
    let mut v: Vec<_> = analysis
        .flows
        .iter()
        .map(|f| (f.client.port(), f.finding.verdict))
        .collect();
    v.sort();
    v
}

const START: i64 = 1_790_000_000 * SEC;

#[test]
fn every_built_story_gets_its_verdict() {
    for story in [
        Story::Completed,
        Story::IdleClosed,
        Story::RaceCrossed,
        Story::NatReset,
    ] {
        let frames = encode(&conversation(story, 50, START), 40000, 1000, 5000);
        let analysis = analyse(&frames);
        assert_eq!(
            verdicts(&analysis),
            vec![(40000, story.verdict())],
            "{story:?}: {}",
            analysis.flows[0].finding.sentence
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Any initial sequence numbers, including ones a few bytes below 2^32 so the wrap
    /// falls inside the conversation: the same verdict and the same evidence.
    #[test]
    fn sequence_numbers_across_the_wrap_change_nothing(
        story in story(),
        rtt in 2i64..200,
        client_isn in prop_oneof![any::<u32>(), (0u32..400).prop_map(|k| u32::MAX - k)],
        server_isn in prop_oneof![any::<u32>(), (0u32..400).prop_map(|k| u32::MAX - k)],
    ) {
        let segs = conversation(story, rtt, START);
        let base = analyse(&encode(&segs, 40000, 1000, 5000));
        let wrapped = analyse(&encode(&segs, 40000, client_isn, server_isn));
        prop_assert_eq!(verdicts(&wrapped), vec![(40000, story.verdict())]);
        prop_assert_eq!(&wrapped.flows[0].finding.sentence, &base.flows[0].finding.sentence);
    }

    /// The same packet seen twice (as `-i any` shows a packet on two interfaces), any
    /// number of them: the verdict stands.
    #[test]
    fn duplicated_packets_change_no_verdict(
        story in story(),
        rtt in 2i64..200,
        twice in proptest::collection::vec(any::<bool>(), 20),
    ) {
        let frames = encode(&conversation(story, rtt, START), 40000, 7, 9);
        let doubled: Vec<Frame> = frames
            .iter()
            .zip(twice.iter().cycle())
            .flat_map(|(f, &again)| {
                let copy = again.then(|| Frame { at: f.at, bytes: f.bytes.clone() });
                std::iter::once(f.clone()).chain(copy)
            })
            .collect();
        prop_assert_eq!(verdicts(&analyse(&doubled)), vec![(40000, story.verdict())]);
    }

    /// A data segment sent again (a spurious retransmission), some time before the next
    /// packet: the verdict stands.
    #[test]
    fn retransmitted_segments_change_no_verdict(
        story in story(),
        rtt in 2i64..200,
        again in proptest::collection::vec(any::<bool>(), 20),
    ) {
        let frames = encode(&conversation(story, rtt, START), 40000, 7, 9);
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            out.push(f.clone());
            let has_payload = f.bytes.len() > 54;
            let gap = frames.get(i + 1).map_or(SEC, |n| n.at - f.at);
            if has_payload && again[i % again.len()] && gap > 2 {
                out.push(Frame { at: f.at + gap / 2, bytes: f.bytes.clone() });
            }
        }
        prop_assert_eq!(verdicts(&analyse(&out)), vec![(40000, story.verdict())]);
    }

    /// Two segments of one direction that arrive in the other order (the later bytes
    /// first), capture times still ascending: the verdict stands.
    #[test]
    fn reordered_segments_change_no_verdict(
        story in story(),
        rtt in 2i64..200,
        pick in any::<prop::sample::Index>(),
    ) {
        let mut frames = encode(&conversation(story, rtt, START), 40000, 7, 9);
        let pairs: Vec<usize> = (0..frames.len() - 1)
            .filter(|&i| frames[i].bytes[26..30] == frames[i + 1].bytes[26..30]) // same source
            .filter(|&i| frames[i].bytes.len() > 54 && frames[i + 1].bytes.len() > 54)
            .collect();
        if let Some(&i) = pairs.get(pick.index(pairs.len().max(1))) {
            let (a, b) = (frames[i].bytes.clone(), frames[i + 1].bytes.clone());
            frames[i].bytes = b;
            frames[i + 1].bytes = a;
        }
        prop_assert_eq!(verdicts(&analyse(&frames)), vec![(40000, story.verdict())]);
    }

    /// Two interfaces whose clocks are up to 3 s apart, read in the order packets arrived
    /// (as `-i any` or a merge of unsorted files gives them): stamps go backwards where the
    /// streams interleave. Each flow keeps its verdict, and every step back is counted.
    #[test]
    fn timestamps_that_go_backwards_are_counted_and_change_no_verdict(
        first in story(),
        second in story(),
        skew_ms in -3_000i64..3_000,
        offset_ms in 0i64..2_000,
    ) {
        let a = encode(&conversation(first, 50, START), 40000, 7, 9);
        let b = encode(&conversation(second, 30, START + offset_ms * MS), 40001, 11, 13);
        // Arrival order is real time; the second interface stamps with its skewed clock.
        let mut arrivals: Vec<(i64, Frame)> = a.into_iter().map(|f| (f.at, f)).collect();
        arrivals.extend(b.into_iter().map(|f| {
            (f.at, Frame { at: f.at + skew_ms * MS, bytes: f.bytes })
        }));
        arrivals.sort_by_key(|(real, _)| *real);
        let merged: Vec<Frame> = arrivals.into_iter().map(|(_, f)| f).collect();
        let mut latest = i64::MIN;
        let backwards = merged
            .iter()
            .filter(|f| {
                let back = f.at < latest;
                latest = latest.max(f.at);
                back
            })
            .count() as u64;
        let analysis = analyse(&merged);
        let mut expected = vec![(40000, first.verdict()), (40001, second.verdict())];
        expected.sort();
        prop_assert_eq!(verdicts(&analysis), expected);
        prop_assert_eq!(analysis.packets.backwards, backwards);
        prop_assert!(analysis.first_packet <= analysis.last_packet);
    }
}

/// Every TLS story, its records alone or coalesced as Node writes them, gets its verdict.
#[test]
fn every_built_tls_story_gets_its_verdict() {
    for story in [
        Story::Completed,
        Story::IdleClosed,
        Story::RaceCrossed,
        Story::NatReset,
    ] {
        for coalesced in [false, true] {
            let segs = tls_conversation(story, 50, START, coalesced);
            let analysis = analyse(&encode_to(&segs, 40000, 443, 1000, 5000));
            assert_eq!(
                verdicts(&analysis),
                vec![(40000, story.verdict())],
                "{story:?} coalesced={coalesced}: {}",
                analysis.flows[0].finding.sentence
            );
            assert_eq!(
                analysis.flows[0].requests,
                1 + u32::from(matches!(
                    story,
                    Story::Completed | Story::RaceCrossed | Story::NatReset
                )),
                "{story:?}"
            );
        }
    }
}

/// The stories keep-alive probes cannot change: a NAT's timer does count them as traffic,
/// so the NAT story keeps its own rule.
fn probe_story() -> impl Strategy<Value = Story> {
    prop_oneof![
        Just(Story::Completed),
        Just(Story::IdleClosed),
        Just(Story::RaceCrossed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// TCP keep-alive probes and their ACKs in the idle stretches (every second, as Node's
    /// Agent sends them, or at any other interval) are traffic, never data, answers or the
    /// last activity of either side: in the clear or over TLS, no verdict changes.
    #[test]
    fn keepalive_probes_in_idle_gaps_change_no_verdict(
        story in probe_story(),
        rtt in 2i64..200,
        interval_ms in 300i64..2_000,
        one_byte in any::<bool>(),
        tls in any::<bool>(),
    ) {
        let (segs, server_port) = if tls {
            (tls_conversation(story, rtt, START, false), 443)
        } else {
            (conversation(story, rtt, START), 80)
        };
        let probed = with_keepalive_probes(&segs, interval_ms * MS, rtt * MS, one_byte);
        prop_assume!(probed.len() > segs.len());
        let base = analyse(&encode_to(&segs, 40000, server_port, 7, 9));
        let analysis = analyse(&encode_to(&probed, 40000, server_port, 7, 9));
        prop_assert_eq!(verdicts(&analysis), vec![(40000, story.verdict())]);
        let (a, b) = (&analysis.flows[0], &base.flows[0]);
        prop_assert_eq!(a.requests, b.requests);
        prop_assert_eq!(a.finding.evidence.request_idle_s, b.finding.evidence.request_idle_s);
        prop_assert_eq!(
            a.finding.evidence.server_close_idle_s,
            b.finding.evidence.server_close_idle_s
        );
    }

    /// A TLS record split across two segments (inside its header or its body), anywhere in
    /// the conversation: no verdict changes.
    #[test]
    fn a_tls_record_split_across_segments_changes_no_verdict(
        story in story(),
        rtt in 2i64..200,
        coalesced in any::<bool>(),
        pick in any::<prop::sample::Index>(),
        cut_at in any::<prop::sample::Index>(),
    ) {
        let segs = tls_conversation(story, rtt, START, coalesced);
        let with_payload: Vec<usize> =
            (0..segs.len()).filter(|&i| segs[i].payload.len() >= 2).collect();
        let index = with_payload[pick.index(with_payload.len())];
        let cut = 1 + cut_at.index(segs[index].payload.len() - 1);
        let split = split_segment(&segs, index, cut);
        let analysis = analyse(&encode_to(&split, 40000, 443, 7, 9));
        prop_assert_eq!(verdicts(&analysis), vec![(40000, story.verdict())]);
    }

    /// Two records written back to back that go out in one segment (Node's Finished and
    /// first request, a response's two records, a close_notify with the FIN): no verdict
    /// changes.
    #[test]
    fn tls_records_coalesced_in_one_segment_change_no_verdict(
        story in story(),
        rtt in 2i64..200,
        pick in any::<prop::sample::Index>(),
    ) {
        let segs = tls_conversation(story, rtt, START, false);
        let pairs = coalescible(&segs);
        let index = pairs[pick.index(pairs.len())];
        let joined = coalesce(&segs, index);
        let analysis = analyse(&encode_to(&joined, 40000, 443, 7, 9));
        prop_assert_eq!(verdicts(&analysis), vec![(40000, story.verdict())]);
    }
}
