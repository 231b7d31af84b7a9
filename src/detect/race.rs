//! The keep-alive race: the server closed an idle connection (close_notify and FIN) while
//! the client reused it; the request crossed the FIN in flight, or was sent after the FIN had
//! arrived, and got no response.

use super::{Evidence, Finding, IMMEDIATE_CLOSE, Verdict};
use crate::flow::{CaptureSide, Flow};
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
    // An idle close, not a close right after a response.
    let close_idle = close.idle_before?;
    if close_idle < IMMEDIATE_CLOSE || flow.connection_close {
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
    evidence.server_close_idle_s = Some(secs(close_idle));
    evidence.close_notify = Some(close.close_notify.is_some());
    evidence.close_notify_frame = close.close_notify.map(|s| s.frame);
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

    let idle = request
        .idle_before
        .map(|i| format!(" after {} idle", human(i)))
        .unwrap_or_default();
    let offset = human(request_minus_fin.abs());
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
    let notify = match close.close_notify {
        Some(alert) => format!(", close_notify #{}", alert.frame),
        None => ", no close_notify".to_string(),
    };
    let answer = match rst {
        Some(r) => format!("answered by RST #{}", r.at.frame),
        None => "no answer".to_string(),
    };
    let sentence = format!(
        "request #{}{idle} {how}; server closed after {} idle{notify}; {answer}",
        request.at.frame,
        human(close_idle),
    );
    let fix = format!(
        "set the client's max idle time to {} s, below the server's {:.2} s keep-alive",
        crate::advice::max_idle_below_server(secs(close_idle)),
        secs(close_idle)
    );
    Some(Finding {
        verdict: Verdict::KeepaliveRace,
        evidence,
        sentence,
        fix: Some(fix),
    })
}
