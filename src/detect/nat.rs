//! The NAT idle reset: a middlebox forgot a connection that sat idle too long and told
//! nobody; the client's next request on it was answered by RST, with no FIN and no response.

use super::{
    Evidence, Finding, Thresholds, Verdict, idle_for_a_middlebox, request_noun, setting_owner,
    validation_note,
};
use crate::flow::{CaptureSide, Flow};
use crate::time::{human, secs};

pub fn nat_idle_reset(flow: &Flow, thresholds: &Thresholds) -> Option<Finding> {
    let request = flow.last_request?;
    if request.answered.is_some() {
        return None;
    }
    let rst = flow
        .from_server
        .rst
        .filter(|r| r.at.frame > request.at.frame)?;
    if flow
        .from_server
        .fin
        .is_some_and(|fin| fin.frame < rst.at.frame)
    {
        return None;
    }
    let to_rst = rst.at.ts.since(request.at.ts);
    let server_ttl = flow.from_server.ttl;
    let rtt = flow.rtt();

    // Who sent it: a router in between sets its own TTL, and on the client's side answers
    // sooner than the server could.
    let (sent_by, who, why) = match (server_ttl, rtt) {
        (Some(ttl), _) if ttl != rst.ttl => (
            "middlebox",
            "a middlebox",
            format!("TTL {} differs from the server's {ttl}", rst.ttl),
        ),
        (_, Some(rtt))
            if flow.capture_side() == CaptureSide::Client && to_rst.saturating_mul(2) < rtt =>
        {
            (
                "middlebox",
                "a middlebox",
                format!(
                    "it came {} after the request, faster than the {} round trip",
                    human(to_rst),
                    human(rtt)
                ),
            )
        }
        // Timing tells only where the round trip shows: on the client's side.
        (Some(ttl), Some(rtt))
            if ttl == rst.ttl
                && flow.capture_side() == CaptureSide::Client
                && to_rst.saturating_mul(2) >= rtt =>
        {
            (
                "server",
                "the server",
                format!("TTL {ttl} matches the server's and it took a round trip"),
            )
        }
        // A capture on the server's host sees only the resets the server sent itself.
        (Some(ttl), _) if ttl == rst.ttl && flow.capture_side() == CaptureSide::Server => (
            "server",
            "the server",
            format!("TTL {ttl} matches the server's, captured on the server's side"),
        ),
        _ => (
            "unknown",
            "whom is unclear",
            "TTL and timing do not tell".to_string(),
        ),
    };
    let silence = request.silence_before;
    let long_enough = match sent_by {
        // A middlebox's reset after a silence long for the path: its idle timer, however
        // short.
        "middlebox" => idle_for_a_middlebox(flow, silence, thresholds.middlebox_nat_idle),
        // The server's own reset is the server's story, not a middlebox's.
        "server" => false,
        _ => silence > thresholds.nat_idle,
    };
    if !long_enough {
        return None;
    }

    let mut evidence = Evidence::for_flow(flow);
    evidence.answer = Some("rst");
    evidence.rst_frame = Some(rst.at.frame);
    evidence.rst_from = Some("server side");
    evidence.request_to_rst_s = Some(secs(to_rst));
    evidence.rst_ttl = Some(rst.ttl);
    evidence.server_ttl = server_ttl;
    evidence.rst_sent_by = Some(sent_by);

    let retrans = match request.retransmissions {
        0 => String::new(),
        1 => ", 1 retransmission".to_string(),
        n => format!(", {n} retransmissions"),
    };
    let sentence = format!(
        "{} #{} after {} of silence was answered {} later by RST #{}{retrans} (no FIN, no response); sent by {}: {why}{}",
        request_noun(flow, &request),
        request.at.frame,
        human(request.silence_before),
        human(to_rst),
        rst.at.frame,
        who,
        validation_note(flow, &request),
    );
    let fix = format!(
        "set the {}'s max idle time, or TCP keepalive, below the middlebox's idle timeout (it forgot this connection within {} of silence; AWS NAT Gateway's is 350 s)",
        setting_owner(flow),
        human(request.silence_before)
    );
    Some(Finding {
        verdict: Verdict::NatIdleReset,
        evidence,
        sentence,
        fix: Some(fix),
    })
}
