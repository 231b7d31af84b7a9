//! The idle blackhole: a middlebox forgot a connection that sat idle too long and drops
//! its packets without a word (no RST). The client's next request got nothing back, not
//! even an ACK; the client retransmitted it with growing back-off until it gave up (FIN or
//! RST) or the capture ended. Applications report a hang or a read timeout.

use super::{
    Evidence, Finding, Thresholds, Verdict, idle_for_a_middlebox, request_noun, setting_owner,
};
use crate::flow::{End, Flow, Stamp};
use crate::time::{human, secs};

pub fn idle_blackhole(flow: &Flow, thresholds: &Thresholds) -> Option<Finding> {
    let request = flow.last_request?;
    if request.answered.is_some() {
        return None;
    }
    // The client waited for an acknowledgment that never came.
    let last_retransmission = request.last_retransmission?;
    // Nothing at all from the server side after the request: no ACK, no data, no RST, no
    // FIN. A server that acknowledged the request and is slow to answer is alive.
    let server_last = flow.last_from_server?;
    if server_last.frame > request.at.frame {
        return None;
    }
    // An established connection: neither side had begun to close before the request (a
    // request after the server's FIN is the keep-alive race's story).
    let before_request = |s: Option<Stamp>| s.is_some_and(|s| s.frame < request.at.frame);
    if before_request(flow.from_server.fin) || before_request(flow.from_client.fin) {
        return None;
    }

    // How it ended: the client's first FIN or RST after the request, else the capture end.
    let client_fin = flow
        .from_client
        .fin
        .filter(|f| f.frame > request.at.frame)
        .map(|f| ("client_fin", f, "FIN"));
    let client_rst = flow
        .from_client
        .rst
        .filter(|r| r.at.frame > request.at.frame)
        .map(|r| ("client_rst", r.at, "RST"));
    let gave_up = match (client_fin, client_rst) {
        (Some(fin), Some(rst)) => Some(if fin.1.frame < rst.1.frame { fin } else { rst }),
        (fin, rst) => fin.or(rst),
    };
    let (ended_by, end, ending) = match gave_up {
        Some((ended_by, at, flag)) => (
            ended_by,
            at,
            format!(
                "the client gave up {} after the request ({flag} #{})",
                human(at.ts.since(request.at.ts)),
                at.frame
            ),
        ),
        None => {
            let (ended_by, when) = match flow.end {
                End::Evicted => ("evicted", "when it was evicted from the full flow table"),
                End::Closed | End::CaptureEnd => ("capture_end", "by the end of the capture"),
            };
            (
                ended_by,
                flow.last,
                format!(
                    "no FIN or RST from the client {when} (last packet #{}, {} after the request)",
                    flow.last.frame,
                    human(flow.last.ts.since(request.at.ts))
                ),
            )
        }
    };
    // Another connection to the same server was answered while this request waited: the
    // path worked, so what dropped it had forgotten this connection's idle state, though
    // the silence was shorter.
    let peer = flow
        .peer_answer
        .filter(|p| p.at.ts > request.at.ts && p.at.ts <= end.ts);
    let silence = request.silence_before;
    let long_enough = silence > thresholds.blackhole_idle
        || (peer.is_some()
            && idle_for_a_middlebox(flow, silence, thresholds.corroborated_blackhole_idle));
    if !long_enough {
        return None;
    }
    let span = last_retransmission.ts.since(request.at.ts);
    let server_quiet = request.at.ts.since(server_last.ts);

    let mut evidence = Evidence::for_flow(flow);
    evidence.answer = Some("nothing");
    evidence.retransmission_span_s = Some(secs(span));
    evidence.last_retransmission_frame = Some(last_retransmission.frame);
    evidence.ended_by = Some(ended_by);
    evidence.end_frame = Some(end.frame);
    evidence.request_to_end_s = Some(secs(end.ts.since(request.at.ts)));
    evidence.server_last_frame = Some(server_last.frame);
    evidence.server_last_before_request_s = Some(secs(server_quiet));
    evidence.server_ttl = flow.from_server.ttl;
    evidence.peer_answer_flow = peer.map(|p| p.flow);
    evidence.peer_answer_frame = peer.map(|p| p.at.frame);

    let retransmissions = match request.retransmissions {
        1 => "retransmitted once".to_string(),
        n => format!("retransmitted {n} times"),
    };
    let sentence = format!(
        "{} #{} after {} of silence got nothing back (no ACK, no data, no RST): {retransmissions} over {} (last #{}); {ending}; the server was last heard from at #{}, {} before the request",
        request_noun(flow, &request),
        request.at.frame,
        human(request.silence_before),
        human(span),
        last_retransmission.frame,
        server_last.frame,
        human(server_quiet),
    );
    let sentence = match peer {
        Some(p) => format!(
            "{sentence}; meanwhile flow {} to the same server was answered (#{}, {} after this request): the path worked, this connection's state was forgotten",
            p.flow,
            p.at.frame,
            human(p.at.ts.since(request.at.ts))
        ),
        None => sentence,
    };
    let fix = format!(
        "set the {}'s max idle time, or TCP keepalive, below the middlebox's idle timeout (it dropped this connection after {} of silence; Azure Load Balancer drops silently after 4 min by default), and a read timeout so that a hang fails fast",
        setting_owner(flow),
        human(request.silence_before)
    );
    Some(Finding {
        verdict: Verdict::IdleBlackhole,
        evidence,
        sentence,
        fix: Some(fix),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::built::{
        ACK, C, FIN_ACK, GET, OK, PSH_ACK, Packet, RST, S, SYN, SYN_ACK, flow, flows,
    };

    /// A request and its answer, then `idle` seconds of nothing: the frames 1-7 every
    /// case below starts with (the request after the idle is frame 8).
    fn answered_then_idle() -> Vec<Packet> {
        let (get, ok) = (GET.len() as u32, OK.len() as u32);
        vec![
            (0.00, C, SYN, 0, 0, b""),
            (0.05, S, SYN_ACK, 0, 1, b""),
            (0.05, C, ACK, 1, 1, b""),
            (0.06, C, PSH_ACK, 1, 1, GET),
            (0.11, S, ACK, 1, 1 + get, b""),
            (0.11, S, PSH_ACK, 1, 1 + get, OK),
            (0.11, C, ACK, 1 + get, 1 + ok, b""),
        ]
    }

    fn second_request(at: f64) -> Packet {
        let (get, ok) = (GET.len() as u32, OK.len() as u32);
        (at, C, PSH_ACK, 1 + get, 1 + ok, GET)
    }

    fn judge(flow: &Flow) -> Option<Finding> {
        idle_blackhole(flow, &Thresholds::default())
    }

    #[test]
    fn a_request_retransmitted_into_silence_until_the_client_gives_up() {
        let (get, ok) = (GET.len() as u32, OK.len() as u32);
        let mut packets = answered_then_idle();
        packets.extend([
            second_request(100.11),
            second_request(100.37),
            second_request(100.89),
            (120.11, C, FIN_ACK, 1 + 2 * get, 1 + ok, b""),
            second_request(121.93),
        ]);
        let finding = judge(&flow(&packets)).expect("an idle blackhole");
        let e = &finding.evidence;
        assert_eq!(e.request_frame, Some(8));
        assert_eq!(e.request_retransmissions, Some(3));
        assert_eq!(e.last_retransmission_frame, Some(12));
        assert!((e.retransmission_span_s.unwrap() - 21.82).abs() < 1e-6);
        assert_eq!((e.ended_by, e.end_frame), (Some("client_fin"), Some(11)));
        assert!((e.request_to_end_s.unwrap() - 20.0).abs() < 1e-6);
        assert_eq!(e.server_last_frame, Some(6));
        assert!((e.server_last_before_request_s.unwrap() - 100.0).abs() < 1e-6);
        assert!(
            finding
                .sentence
                .contains("retransmitted 3 times over 21.820 s (last #12)"),
            "{}",
            finding.sentence
        );
        assert!(
            finding
                .sentence
                .contains("the client gave up 20.000 s after the request (FIN #11)")
        );
    }

    #[test]
    fn a_client_reset_or_the_capture_end_ends_it_too() {
        let mut packets = answered_then_idle();
        packets.extend([second_request(100.11), second_request(100.37)]);
        let e = judge(&flow(&packets)).unwrap().evidence;
        assert_eq!((e.ended_by, e.end_frame), (Some("capture_end"), Some(9)));

        packets.push((120.11, C, RST, 200, 0, b""));
        let e = judge(&flow(&packets)).unwrap().evidence;
        assert_eq!((e.ended_by, e.end_frame), (Some("client_rst"), Some(10)));
    }

    #[test]
    fn a_slow_server_acknowledged_the_request_and_is_alive() {
        let (get, ok) = (GET.len() as u32, OK.len() as u32);
        let mut packets = answered_then_idle();
        packets.extend([
            second_request(100.11),
            // A lost ACK: the client retransmits once, the server acknowledges again.
            second_request(100.37),
            (100.42, S, ACK, 1 + ok, 1 + 2 * get, b""),
            (120.11, C, FIN_ACK, 1 + 2 * get, 1 + ok, b""),
        ]);
        assert!(judge(&flow(&packets)).is_none());
    }

    #[test]
    fn a_short_silence_is_not_an_idle_timer() {
        let mut packets = answered_then_idle();
        packets.extend([second_request(30.11), second_request(30.37)]);
        assert!(judge(&flow(&packets)).is_none());
        let lower = Thresholds::default().with_blackhole_idle(20 * crate::time::NANOS_PER_SEC);
        assert!(idle_blackhole(&flow(&packets), &lower).is_some());
    }

    #[test]
    fn a_short_silence_while_another_connection_is_answered_is_lost_state() {
        let (get, ok) = (GET.len() as u32, OK.len() as u32);
        let mut packets: Vec<(u16, Packet)> = answered_then_idle()
            .into_iter()
            .map(|p| (51001, p))
            .collect();
        packets.extend([
            (51001, second_request(30.11)),
            (51001, second_request(30.37)),
        ]);
        let other = [
            (30.50, C, SYN, 0, 0, b"" as &[u8]),
            (30.55, S, SYN_ACK, 0, 1, b""),
            (30.55, C, ACK, 1, 1, b""),
            (30.56, C, PSH_ACK, 1, 1, GET),
            (30.61, S, PSH_ACK, 1, 1 + get, OK),
        ];
        packets.extend(other.into_iter().map(|p| (51002, p)));
        packets.extend([
            (51001, second_request(30.89)),
            (
                51001,
                (40.11, C, FIN_ACK, 1 + 2 * get, 1 + ok, b"" as &[u8]),
            ),
        ]);
        let all = flows(&packets);
        let finding = judge(&all[0]).expect("lost state, though 30 s is under --blackhole-idle");
        // Flow 10: the other connection, named by its first frame.
        assert_eq!(finding.evidence.peer_answer_flow, Some(10));
        assert_eq!(finding.evidence.peer_answer_frame, Some(14));
        assert!(
            finding.sentence.contains(
                "meanwhile flow 10 to the same server was answered (#14, 500 ms after this request)"
            ),
            "{}",
            finding.sentence
        );
        // The other connection goes on being answered after this one gave up: the answer
        // that came while it waited still counts.
        let mut longer = packets.clone();
        longer.extend([
            (51002, (50.0, C, PSH_ACK, 1 + get, 1 + ok, GET)),
            (51002, (50.05, S, PSH_ACK, 1 + ok, 1 + 2 * get, OK)),
        ]);
        let finding = judge(&flows(&longer)[0]).expect("still lost state");
        assert_eq!(finding.evidence.peer_answer_frame, Some(14));
        // Alone, the same 30 s proves nothing: the path itself may have been down.
        let alone: Vec<(u16, Packet)> = packets.into_iter().filter(|p| p.0 == 51001).collect();
        assert!(judge(&flows(&alone)[0]).is_none());
    }

    #[test]
    fn a_request_never_retransmitted_proves_nothing() {
        let mut packets = answered_then_idle();
        packets.push(second_request(100.11));
        assert!(judge(&flow(&packets)).is_none());
    }
}
