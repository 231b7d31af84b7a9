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
    payload: &'static [u8],
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
            payload,
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
                payload: b"",
                ttl: 255,
            });
        }
    }
    segs
}

/// A packet ready for the pipeline: capture time and Ethernet bytes.
#[derive(Debug, Clone)]
struct Frame {
    at: i64,
    bytes: Vec<u8>,
}

fn encode(segs: &[Seg], port: u16, client_isn: u32, server_isn: u32) -> Vec<Frame> {
    let (client, server) = ([198, 18, 1, 2], [198, 19, 2, 2]);
    segs.iter()
        .map(|seg| {
            let (src, dst, sport, dport, own, other) = if seg.from_client {
                (client, server, port, 80, client_isn, server_isn)
            } else {
                (server, client, 80, port, server_isn, client_isn)
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
            tcp.write(&mut bytes, seg.payload)
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
    pipeline.finish("built".into(), Vec::new())
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
