//! The keep-alive race: the server closed an idle connection (close_notify and FIN) while
//! the client reused it; the request crossed the FIN in flight, or was sent after the FIN had
//! arrived, and got no response.

use super::{Evidence, Finding, IMMEDIATE_CLOSE, Verdict};
use crate::flow::{CaptureSide, Flow, ServerClose};
use crate::time::{human, secs};

pub fn keepalive_race(flow: &Flow) -> Option<Finding> {
    let close = flow.server_close?;
    let request = flow.last_request?;
    if request.answered.is_some() {
        return None;
    }
    // The server closed before it had the request: its FIN does not acknowledge it. (A
    // server that received a request and closed without answering is another story.)
    if close.fin_ack.after(request.seq) {
        return None;
    }
    // An idle close, not a close right after a response. A capture that begins with the
    // request shows no idle before the close; the request still met it.
    let close_idle = close.idle_before;
    if close_idle.is_some_and(|idle| idle < IMMEDIATE_CLOSE) || flow.connection_close {
        return None;
    }
    // The close came before any reset of the request: a request reset first (and the
    // connection closed later) met something else, such as a NAT that forgot it.
    let rst = flow
        .from_server
        .rst
        .filter(|r| r.at.frame > request.at.frame);
    if rst.is_some_and(|r| r.at.frame < close.fin.frame) {
        return None;
    }
    // The request acknowledges the FIN: the client had it and sent anyway.
    let sent_after_fin = !request.ack.before(close.fin_seq.plus(1));
    let request_minus_fin = request.at.ts.since(close.fin.ts);

    let mut evidence = Evidence::for_flow(flow);
    evidence.server_fin_frame = Some(close.fin.frame);
    evidence.server_close_idle_s = close_idle.map(secs);
    evidence.close_notify = Some(close.close_notify.is_some());
    evidence.close_notify_frame = close.close_notify.map(|s| s.frame);
    evidence.close_prelude_frame = close.prelude.map(|s| s.frame);
    evidence.close_prelude = close.prelude.map(|_| prelude_kind(flow, close));
    evidence.crossing = Some(if sent_after_fin {
        "sent_after_fin"
    } else {
        "crossed_in_flight"
    });
    evidence.request_minus_fin_s = Some(secs(request_minus_fin));
    evidence.answer = Some(if rst.is_some() { "rst" } else { "nothing" });
    evidence.rst_frame = rst.map(|r| r.at.frame);
    evidence.rst_from = rst.map(|_| "server");
    evidence.rst_ttl = rst.map(|r| r.ttl);

    let idle = match request.idle_before {
        Some(i) => format!(" after {} idle", human(i)),
        None if request.at.frame == flow.first.frame => {
            " (the first packet captured of this connection: the idle before it is not visible)"
                .to_string()
        }
        None => format!(
            " (the capture began {} before it: the idle before it is not visible)",
            human(request.at.ts.since(flow.first.ts))
        ),
    };
    let offset = human(request_minus_fin.saturating_abs());
    let side = match flow.capture_side() {
        CaptureSide::Client => "at the client",
        CaptureSide::Server => "at the server",
        CaptureSide::Unknown => "where captured",
    };
    let how = if sent_after_fin {
        format!(
            "was sent after the server's FIN #{} had reached the client (it acknowledges the FIN; {offset} apart {side})",
            close.fin.frame
        )
    } else if request_minus_fin <= 0 {
        format!(
            "crossed the server's FIN #{} in flight ({offset} before the FIN {side})",
            close.fin.frame
        )
    } else {
        format!(
            "crossed the server's FIN #{} in flight ({offset} after the FIN {side}, not acknowledging it)",
            close.fin.frame
        )
    };
    let prelude = match close.prelude {
        Some(p) => format!(
            ", {} #{}",
            prelude_phrase(prelude_kind(flow, close)),
            p.frame
        ),
        None => String::new(),
    };
    let notify = match close.close_notify {
        Some(alert) => format!("{prelude}, close_notify #{}", alert.frame),
        None if flow.tls.is_some() => format!("{prelude}, no close_notify"),
        None => prelude,
    };
    let closed = match close_idle {
        Some(idle) => format!("server closed after {} idle", human(idle)),
        None => "how long the server had been idle is not visible".to_string(),
    };
    let answer = match rst {
        Some(r) => format!("answered by RST #{}", r.at.frame),
        None => "no answer".to_string(),
    };
    let sentence = format!(
        "request #{}{idle} {how}; {closed}{notify}; {answer}",
        request.at.frame,
    );
    let fix = match close_idle {
        Some(idle) => format!(
            "set the client's max idle time to {} s, below the server's {:.2} s keep-alive",
            crate::advice::max_idle_below_server(secs(idle)),
            secs(idle)
        ),
        None => "set the client's max idle time below the server's keep-alive timeout (this flow does not show it: the capture began mid-connection)".to_string(),
    };
    Some(Finding {
        verdict: Verdict::KeepaliveRace,
        evidence,
        sentence,
        fix: Some(fix),
    })
}

/// What the server sent before its close_notify and FIN that answered no request.
fn prelude_kind(flow: &Flow, close: ServerClose) -> &'static str {
    if close.goaway {
        "http2_goaway"
    } else if flow.tls.is_some() && close.close_notify.is_some() {
        "tls_record_before_close_notify"
    } else {
        "data_before_fin"
    }
}

fn prelude_phrase(kind: &str) -> &'static str {
    match kind {
        "http2_goaway" => "HTTP/2 GOAWAY",
        "tls_record_before_close_notify" => "a record that answered nothing (HTTP/2's GOAWAY)",
        _ => "data that answered nothing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::built::{ACK, C, FIN_ACK, GET, OK, PSH_ACK, S, SYN, SYN_ACK, flow};

    /// Damaged timestamps: a request stamped near i64's start crossing a FIN stamped near
    /// its end. The gap saturates, and its absolute value must not overflow.
    #[test]
    fn a_crossing_at_the_ends_of_time_does_not_overflow() {
        let (get, ok) = (GET.len() as u32, OK.len() as u32);
        let crossing = flow(&[
            (0.00, C, SYN, 0, 0, b""),
            (0.05, S, SYN_ACK, 0, 1, b""),
            (0.05, C, ACK, 1, 1, b""),
            (0.06, C, PSH_ACK, 1, 1, GET),
            (0.11, S, PSH_ACK, 1, 1 + get, OK),
            (-1e10, C, PSH_ACK, 1 + get, 1 + ok, GET),
            (1e10, S, FIN_ACK, 1 + ok, 1 + get, b""),
        ]);
        let finding = keepalive_race(&crossing).expect("the request crossed the FIN");
        assert_eq!(finding.evidence.crossing, Some("crossed_in_flight"));
    }
}
