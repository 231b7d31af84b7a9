//! The keep-alive race: the server closed an idle connection (close_notify and FIN) while
//! the client reused it; the request crossed the FIN in flight, or was sent after the FIN had
//! arrived, and got no response.

use super::{Evidence, Finding, IMMEDIATE_CLOSE, Verdict, request_noun, validation_note};
use crate::flow::{CaptureSide, Flow, Request, ServerClose};
use crate::time::{human, secs};

pub fn keepalive_race(flow: &Flow) -> Option<Finding> {
    match flow.server_close {
        Some(close) => met_the_fin(flow, close),
        None => met_the_goodbye(flow).or_else(|| met_the_reset(flow)),
    }
}

/// The query met a database's close that ended in an RST: the server wrote its last words
/// (PostgreSQL's FATAL ErrorResponse) while the query was in flight, and the query then
/// reached a socket already closing, which the kernel resets instead of sending a FIN.
/// The last words answered nothing: they came after the query and do not acknowledge it.
fn met_the_goodbye(flow: &Flow) -> Option<Finding> {
    let request = flow.last_request?;
    if request.answered.is_some() || !request.server_data_after {
        return None;
    }
    let close = flow.close_begun_without_fin()?;
    if close.first.frame < request.at.frame || close.rst.frame < request.at.frame {
        return None;
    }
    let close_idle = close.idle_before?;
    if close_idle < IMMEDIATE_CLOSE {
        return None;
    }
    let rst = flow.from_server.rst?;
    let request_minus_close = request.at.ts.since(close.first.ts);

    let mut evidence = Evidence::for_flow(flow);
    evidence.server_close_by = Some("goodbye_then_rst");
    evidence.server_close_idle_s = Some(secs(close_idle));
    evidence.close_notify = flow.tls.as_ref().map(|_| close.close_notify.is_some());
    evidence.close_notify_frame = close.close_notify.map(|s| s.frame);
    let prelude = (close.close_notify.map(|s| s.frame) != Some(close.first.frame))
        .then(|| goodbye_kind(flow, close.first.frame));
    evidence.close_prelude_frame = prelude.map(|_| close.first.frame);
    evidence.close_prelude = prelude;
    evidence.crossing = Some("crossed_in_flight");
    evidence.answer = Some("rst");
    evidence.rst_frame = Some(rst.at.frame);
    evidence.rst_from = Some("server");
    evidence.rst_ttl = Some(rst.ttl);

    let words = match prelude {
        Some(kind) => format!("{} #{}", prelude_phrase(flow, kind), close.first.frame),
        None => format!("close_notify #{}", close.first.frame),
    };
    let notify = match close.close_notify {
        Some(alert) if prelude.is_some() => format!(", close_notify #{}", alert.frame),
        _ => String::new(),
    };
    let sentence = format!(
        "{} #{}{} crossed the server's close in flight ({} before its first packet {}); server closed after {} idle: {words}{notify}, then RST #{} instead of a FIN (the query reached a socket already closing){}",
        request_noun(flow, &request),
        request.at.frame,
        idle_phrase(flow, &request),
        human(request_minus_close.saturating_abs()),
        side_phrase(flow),
        human(close_idle),
        rst.at.frame,
        validation_note(flow, &request),
    );
    Some(Finding {
        verdict: Verdict::KeepaliveRace,
        evidence,
        sentence,
        fix: Some(fix(flow, Some(close_idle))),
    })
}

/// What a database server's last words before an RST were.
fn goodbye_kind(flow: &Flow, frame: u64) -> &'static str {
    let said = flow
        .db
        .as_ref()
        .and_then(|db| db.server_goodbye.as_ref())
        .is_some_and(|(at, _)| at.frame == frame);
    match flow.protocol {
        crate::flow::Protocol::Postgres if said => "postgresql_fatal",
        crate::flow::Protocol::Mysql if said => "mysql_error",
        _ if flow.tls.is_some() => "tls_record_before_close_notify",
        _ => "data_before_fin",
    }
}

/// The request met a close by FIN (after a close_notify, a GOAWAY or a database's last
/// words, where the server sent them).
fn met_the_fin(flow: &Flow, close: ServerClose) -> Option<Finding> {
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

    let idle = idle_phrase(flow, &request);
    let offset = human(request_minus_fin.saturating_abs());
    let side = side_phrase(flow);
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
            prelude_phrase(flow, prelude_kind(flow, close)),
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
        "{} #{}{idle} {how}; {closed}{notify}; {answer}{}",
        request_noun(flow, &request),
        request.at.frame,
        validation_note(flow, &request),
    );
    let fix = fix(flow, close_idle);
    Some(Finding {
        verdict: Verdict::KeepaliveRace,
        evidence,
        sentence,
        fix: Some(fix),
    })
}

/// The request met the server's close by RST: it aborted the idle connection (MariaDB at
/// `wait_timeout`) with RST|ACK from its own socket, whose acknowledgement does not cover
/// the request: the server never had it.
fn met_the_reset(flow: &Flow) -> Option<Finding> {
    let request = flow.last_request?;
    if request.answered.is_some() {
        return None;
    }
    let rst = flow.from_server.rst?;
    let ack = rst.ack()?;
    if flow.from_server.ttl != Some(rst.ttl) || ack.after(request.seq) {
        return None;
    }
    let close_idle = flow.idle_at_server_reset()?;
    if close_idle < IMMEDIATE_CLOSE {
        return None;
    }
    let request_minus_rst = request.at.ts.since(rst.at.ts);

    let mut evidence = Evidence::for_flow(flow);
    evidence.server_close_by = Some("rst");
    evidence.server_close_idle_s = Some(secs(close_idle));
    evidence.crossing = Some("crossed_in_flight");
    evidence.answer = Some("rst");
    evidence.rst_frame = Some(rst.at.frame);
    evidence.rst_from = Some("server");
    evidence.rst_ttl = Some(rst.ttl);
    evidence.server_ttl = flow.from_server.ttl;
    evidence.rst_sent_by = Some("server");

    let offset = human(request_minus_rst.saturating_abs());
    let when = if request_minus_rst <= 0 {
        "before"
    } else {
        "after"
    };
    let sentence = format!(
        "{} #{}{} crossed the server's RST #{} in flight ({offset} {when} the RST {}); the server reset the connection after {} idle, with no FIN: an abort from its own socket (TTL {}, its ACK covers nothing of the {}){}",
        request_noun(flow, &request),
        request.at.frame,
        idle_phrase(flow, &request),
        rst.at.frame,
        side_phrase(flow),
        human(close_idle),
        rst.ttl,
        if flow.protocol.is_database() {
            "query"
        } else {
            "request"
        },
        validation_note(flow, &request),
    );
    Some(Finding {
        verdict: Verdict::KeepaliveRace,
        evidence,
        sentence,
        fix: Some(fix(flow, Some(close_idle))),
    })
}

/// " after 4.961 s idle", or why the idle is not visible.
fn idle_phrase(flow: &Flow, request: &Request) -> String {
    match request.idle_before {
        Some(i) => format!(" after {} idle", human(i)),
        None if request.at.frame == flow.first.frame => {
            " (the first packet captured of this connection: the idle before it is not visible)"
                .to_string()
        }
        None => format!(
            " (the capture began {} before it: the idle before it is not visible)",
            human(request.at.ts.since(flow.first.ts))
        ),
    }
}

fn side_phrase(flow: &Flow) -> &'static str {
    match flow.capture_side() {
        CaptureSide::Client => "at the client",
        CaptureSide::Server => "at the server",
        CaptureSide::Unknown => "where captured",
    }
}

/// The setting that ends the race: the client's (or pool's) max idle below the server's
/// timer.
fn fix(flow: &Flow, close_idle: Option<crate::time::Nanos>) -> String {
    let (owner, timer) = if flow.protocol.is_database() {
        ("pool", "idle timeout")
    } else {
        ("client", "keep-alive")
    };
    match close_idle {
        Some(idle) => format!(
            "set the {owner}'s max idle time to {} s, below the server's {:.2} s {timer}",
            crate::advice::max_idle_below_server(secs(idle)),
            secs(idle)
        ),
        None => format!(
            "set the {owner}'s max idle time below the server's {timer} (this flow does not show it: the capture began mid-connection)"
        ),
    }
}

/// What the server sent before its close_notify and FIN that answered no request.
fn prelude_kind(flow: &Flow, close: ServerClose) -> &'static str {
    let goodbye = flow
        .db
        .as_ref()
        .and_then(|db| db.server_goodbye.as_ref())
        .filter(|(at, _)| close.prelude.is_some_and(|p| p.frame == at.frame));
    if goodbye.is_some() {
        match flow.protocol {
            crate::flow::Protocol::Postgres => "postgresql_fatal",
            _ => "mysql_error",
        }
    } else if close.goaway {
        "http2_goaway"
    } else if flow.tls.is_some() && close.close_notify.is_some() {
        "tls_record_before_close_notify"
    } else {
        "data_before_fin"
    }
}

fn prelude_phrase(flow: &Flow, kind: &str) -> String {
    match kind {
        "postgresql_fatal" | "mysql_error" => {
            let words = super::server_goodbye(flow).map_or(String::new(), |(_, w)| w);
            let what = if kind == "postgresql_fatal" {
                "ErrorResponse"
            } else {
                "error packet"
            };
            return format!("{what} \"{words}\"");
        }
        _ => {}
    }
    if kind == "tls_record_before_close_notify" && flow.protocol == crate::flow::Protocol::Postgres
    {
        return "a record that answered nothing (PostgreSQL's FATAL ErrorResponse, encrypted)"
            .to_string();
    }
    if kind == "tls_record_before_close_notify" && flow.protocol == crate::flow::Protocol::Mysql {
        return "a record that answered nothing (MySQL's error packet, encrypted)".to_string();
    }
    match kind {
        "http2_goaway" => "HTTP/2 GOAWAY",
        "tls_record_before_close_notify" => "a record that answered nothing (HTTP/2's GOAWAY)",
        _ => "data that answered nothing",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::built::{
        ACK, C, FIN_ACK, GET, MARIADB_GREETING, MARIADB_LOGIN, MARIADB_LOGIN_OK, MARIADB_RESULT,
        OK, PSH_ACK, RST, RST_ACK, S, SYN, SYN_ACK, flow, mariadb_logged_in,
    };

    const QUERY: &[u8] = b"\x09\0\0\0\x03select 2";
    const PING: &[u8] = b"\x01\0\0\0\x0e";

    /// MariaDB at `wait_timeout`: RST|ACK from its own socket after 3 s idle, crossing the
    /// client's next command (`next`) in flight.
    fn mariadb_reset_crossing(next: &'static [u8]) -> Flow {
        let (g, l, o) = (
            MARIADB_GREETING.len() as u32,
            MARIADB_LOGIN.len() as u32,
            MARIADB_LOGIN_OK.len() as u32,
        );
        let (q, r) = (QUERY.len() as u32, MARIADB_RESULT.len() as u32);
        let mut packets = mariadb_logged_in();
        packets.extend([
            (0.15, C, PSH_ACK, 1 + l, 1 + g + o, QUERY),
            (0.20, S, PSH_ACK, 1 + g + o, 1 + l + q, MARIADB_RESULT),
            (3.18, C, PSH_ACK, 1 + l + q, 1 + g + o + r, next),
            (3.21, S, RST_ACK, 1 + g + o + r, 1 + l + q, b""),
            (3.23, S, RST, 1 + g + o + r, 0, b""),
        ]);
        flow(&packets)
    }

    #[test]
    fn a_query_that_crosses_mariadbs_reset_met_its_idle_close() {
        let crossing = mariadb_reset_crossing(QUERY);
        assert_eq!(crossing.protocol, crate::flow::Protocol::Mysql);
        let finding = keepalive_race(&crossing).expect("the query crossed the server's RST");
        assert_eq!(finding.evidence.server_close_by, Some("rst"));
        assert_eq!(finding.evidence.crossing, Some("crossed_in_flight"));
        assert_eq!(finding.evidence.rst_frame, Some(10));
        assert_eq!(finding.evidence.server_close_idle_s, Some(3.01));
        assert_eq!(finding.evidence.protocol, Some("mysql"));
        assert_eq!(finding.evidence.validation_query, Some(false));
        assert!(
            finding
                .sentence
                .starts_with("MySQL query #9 after 2.980 s idle crossed the server's RST #10"),
            "{}",
            finding.sentence
        );
    }

    #[test]
    fn a_pools_validation_query_is_named_as_one() {
        let finding = keepalive_race(&mariadb_reset_crossing(PING)).expect("a race");
        assert_eq!(finding.evidence.validation_query, Some(true));
        assert!(finding.sentence.starts_with("MySQL validation query #9"));
        assert!(finding.sentence.contains("Failed to validate connection"));
    }

    /// PostgreSQL's start-up (protocol 3.0, user postgres), its AuthenticationOk and
    /// ReadyForQuery, a query, and the FATAL ErrorResponse of `idle_session_timeout`.
    const STARTUP: &[u8] = b"\0\0\0\x17\0\x03\0\0user\0postgres\0\0";
    const AUTH_OK: &[u8] = b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I";
    const PG_QUERY: &[u8] = b"Q\0\0\0\x11SELECT now()\0";
    const PG_RESULT: &[u8] = b"C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I";
    const FATAL: &[u8] = b"E\0\0\0\x4fSFATAL\0VFATAL\0C57P05\0Mterminating connection due to idle-session timeout\0\0";

    /// PostgreSQL at `idle_session_timeout`: the FATAL ErrorResponse crossed the client's
    /// next query, which then reached a socket already closing: RST, no FIN.
    #[test]
    fn a_query_that_crossed_postgresqls_goodbye_met_its_idle_close_though_the_rst_acks_it() {
        let (st, au) = (STARTUP.len() as u32, AUTH_OK.len() as u32);
        let (q, r, f) = (
            PG_QUERY.len() as u32,
            PG_RESULT.len() as u32,
            FATAL.len() as u32,
        );
        let crossing = flow(&[
            (0.00, C, SYN, 0, 0, b""),
            (0.05, S, SYN_ACK, 0, 1, b""),
            (0.05, C, ACK, 1, 1, b""),
            (0.06, C, PSH_ACK, 1, 1, STARTUP),
            (0.11, S, PSH_ACK, 1, 1 + st, AUTH_OK),
            (0.11, C, PSH_ACK, 1 + st, 1 + au, PG_QUERY),
            (0.16, S, PSH_ACK, 1 + au, 1 + st + q, PG_RESULT),
            (3.12, C, PSH_ACK, 1 + st + q, 1 + au + r, PG_QUERY),
            (3.17, S, PSH_ACK, 1 + au + r, 1 + st + q, FATAL),
            (3.171, S, RST_ACK, 1 + au + r + f, 1 + st + 2 * q, b""),
        ]);
        assert_eq!(crossing.protocol, crate::flow::Protocol::Postgres);
        let finding = keepalive_race(&crossing).expect("the query crossed the FATAL");
        assert_eq!(finding.evidence.server_close_by, Some("goodbye_then_rst"));
        assert_eq!(finding.evidence.close_prelude, Some("postgresql_fatal"));
        assert_eq!(finding.evidence.close_prelude_frame, Some(9));
        assert_eq!(finding.evidence.rst_frame, Some(10));
        assert_eq!(finding.evidence.crossing, Some("crossed_in_flight"));
        assert!(
            finding.sentence.contains("ErrorResponse \"FATAL 57P05"),
            "{}",
            finding.sentence
        );
    }

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
