//! The benign look-alikes: every flow that is neither failure story gets a verdict that says
//! plainly what happened to it.

use super::{Evidence, Finding, IMMEDIATE_CLOSE, Verdict};
use crate::flow::{End, Flow};
use crate::time::{human, secs};

/// `worded`: whether the sentence is written; a flow nobody will see needs only its verdict
/// and evidence, and its sentence was most of the cost of judging it.
pub fn classify(flow: &Flow, worded: bool) -> Finding {
    let mut evidence = Evidence::for_flow(flow);
    let (verdict, sentence) = judge(flow, &mut evidence, worded);
    Finding {
        verdict,
        evidence,
        sentence,
        fix: None,
    }
}

/// The sentence, if it is wanted.
macro_rules! say {
    ($worded:expr, $($arg:tt)*) => {
        if $worded { format!($($arg)*) } else { String::new() }
    };
}

fn judge(flow: &Flow, evidence: &mut Evidence, worded: bool) -> (Verdict, String) {
    let client_fin = flow.from_client.fin;
    let server_rst = flow.from_server.rst;
    let client_rst = flow.from_client.rst;

    if flow.handshake.syn.is_some() && flow.handshake.syn_ack.is_none() {
        if let Some(rst) = server_rst {
            evidence.rst_frame = Some(rst.at.frame);
            evidence.rst_from = Some("server");
            let syn = flow.handshake.syn.map_or(0, |s| s.frame);
            return (
                Verdict::Refused,
                say!(
                    worded,
                    "SYN #{syn} answered by RST #{}: nothing listening on port {}",
                    rst.at.frame,
                    flow.server.port()
                ),
            );
        }
        if flow.from_server.packets == 0 {
            return (
                Verdict::Unanswered,
                say!(
                    worded,
                    "{} SYN(s) sent, none answered",
                    flow.from_client.packets
                ),
            );
        }
    }

    if let Some(close) = flow.server_close {
        // The server's close began with its first close packet: a GOAWAY or close_notify
        // can draw the client's FIN before the server's own FIN arrives.
        let began = close
            .prelude
            .or(close.close_notify)
            .map_or(close.fin.frame, |s| s.frame);
        // And the client's with its close_notify, where it sent one.
        let client_began = [
            client_fin.map(|f| f.frame),
            flow.tls.as_ref().and_then(|t| t.client_alert_frame),
            flow.db.as_ref().and_then(|db| db.client_goodbye),
            encrypted_goodbye(flow),
        ]
        .into_iter()
        .flatten()
        .min();
        let server_first =
            client_began.is_none_or(|c| c > began) && client_rst.is_none_or(|r| r.at.frame > began);
        if server_first {
            evidence.server_fin_frame = Some(close.fin.frame);
            evidence.server_close_idle_s = close.idle_before.map(secs);
            evidence.close_notify = Some(close.close_notify.is_some());
            evidence.close_notify_frame = close.close_notify.map(|s| s.frame);
            evidence.connection_close = Some(flow.connection_close);
            if close.idle_before.is_none() && !flow.connection_close {
                return (
                    Verdict::IdleClosed,
                    say!(
                        worded,
                        "server closed first (FIN #{}); how long the connection had been idle is not visible: the capture began {} before",
                        close.fin.frame,
                        human(close.fin.ts.since(flow.first.ts))
                    ),
                );
            }
            let idle = close.idle_before.unwrap_or(0);
            if flow.connection_close || idle < IMMEDIATE_CLOSE {
                let why = if flow.connection_close {
                    " (Connection: close)"
                } else {
                    ""
                };
                return (
                    Verdict::ClosedAfterResponse,
                    say!(
                        worded,
                        "server closed {} after its last data{why}, FIN #{}",
                        human(idle),
                        close.fin.frame
                    ),
                );
            }
            let notify = if close.close_notify.is_some() {
                "close_notify and "
            } else {
                ""
            };
            return (
                Verdict::IdleClosed,
                say!(
                    worded,
                    "server closed after {} idle ({notify}FIN #{}); the client did not reuse it",
                    human(idle),
                    close.fin.frame
                ),
            );
        }
    }

    let answered = say!(
        worded,
        "{} of {} requests answered",
        flow.responses,
        flow.requests
    );
    if let Some(found) = reset_when_idle(flow, evidence, worded) {
        return found;
    }
    if let Some(fin) = client_fin
        && client_rst.is_none_or(|r| r.at.frame > fin.frame)
        && server_rst.is_none_or(|r| r.at.frame > fin.frame)
    {
        return (
            Verdict::Completed,
            say!(
                worded,
                "{answered}; client closed first (FIN #{})",
                fin.frame
            ),
        );
    }
    // A database client that said goodbye (Terminate, COM_QUIT, or its close_notify over
    // TLS) and then reset, because the server's own goodbye reached a closed socket
    // (libpq over TLS does so), closed first.
    let client_goodbye = [
        flow.db.as_ref().and_then(|db| db.client_goodbye),
        flow.tls.as_ref().and_then(|t| t.client_alert_frame),
    ]
    .into_iter()
    .flatten()
    .min()
    .filter(|_| flow.db.is_some());
    if let (Some(goodbye), Some(rst)) = (client_goodbye, client_rst)
        && goodbye < rst.at.frame
        && server_rst.is_none_or(|s| s.at.frame > rst.at.frame)
    {
        return (
            Verdict::Completed,
            say!(
                worded,
                "{answered}; client closed first (its goodbye #{goodbye}, then RST #{})",
                rst.at.frame
            ),
        );
    }
    let first_rst = match (client_rst, server_rst) {
        (Some(c), Some(s)) if s.at.frame < c.at.frame => Some(("server", s)),
        (Some(c), _) => Some(("client", c)),
        (None, Some(s)) => Some(("server", s)),
        (None, None) => None,
    };
    if let Some((from, rst)) = first_rst {
        evidence.rst_frame = Some(rst.at.frame);
        evidence.rst_from = Some(from);
        evidence.rst_ttl = Some(rst.ttl);
        return (
            Verdict::Reset,
            say!(worded, "{answered}; RST #{} from the {from}", rst.at.frame),
        );
    }
    let why = match flow.end {
        End::Evicted => "evicted from the full flow table while still open",
        End::Closed | End::CaptureEnd => "still open at the end of the capture",
    };
    (
        Verdict::OpenAtEnd,
        say!(
            worded,
            "{answered}; {why} (last packet #{})",
            flow.last.frame
        ),
    )
}

/// The server closed an idle connection by RST (MariaDB at `wait_timeout`): an abort from
/// its own socket (RST|ACK, its own TTL) after it had been idle, with nothing waiting for
/// an answer and before the client closed. Nobody reused it.
fn reset_when_idle(
    flow: &Flow,
    evidence: &mut Evidence,
    worded: bool,
) -> Option<(Verdict, String)> {
    let rst = flow.from_server.rst?;
    let idle = flow.idle_at_server_reset()?;
    let waiting = flow.last_request.is_some_and(|r| r.answered.is_none());
    let client_first = flow.from_client.fin.is_some_and(|f| f.frame < rst.at.frame)
        || flow
            .from_client
            .rst
            .is_some_and(|r| r.at.frame < rst.at.frame)
        || flow
            .db
            .as_ref()
            .and_then(|db| db.client_goodbye)
            .is_some_and(|frame| frame < rst.at.frame);
    if flow.from_server.ttl != Some(rst.ttl) || waiting || client_first || idle < IMMEDIATE_CLOSE {
        return None;
    }
    evidence.server_close_by = Some("rst");
    evidence.server_close_idle_s = Some(secs(idle));
    evidence.rst_frame = Some(rst.at.frame);
    evidence.rst_from = Some("server");
    evidence.rst_ttl = Some(rst.ttl);
    Some((
        Verdict::IdleClosed,
        say!(
            worded,
            "server reset the connection after {} idle (RST #{}, no FIN: an abort from its own socket, TTL {}); the client did not reuse it",
            human(idle),
            rst.at.frame,
            rst.ttl
        ),
    ))
}

/// The database client's goodbye over TLS, which the bytes cannot show: its last record was
/// small (PostgreSQL Terminate and MySQL COM_QUIT are 5 bytes; with TLS's framing at most
/// 40), never answered, and the server closed at once, acknowledging it.
fn encrypted_goodbye(flow: &Flow) -> Option<u64> {
    if flow.db.is_none() || flow.tls.is_none() {
        return None;
    }
    let request = flow.last_request.filter(|r| r.answered.is_none())?;
    let close = flow.server_close?;
    let small = request.end.0.wrapping_sub(request.seq.0) <= 40;
    let prompted = !close.fin_ack.before(request.end);
    let at_once = close.fin.ts.since(request.at.ts) < IMMEDIATE_CLOSE;
    (small && prompted && at_once).then_some(request.at.frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::built::{
        ACK, C, FIN_ACK, MARIADB_GREETING, MARIADB_LOGIN, MARIADB_LOGIN_OK, MARIADB_RESULT,
        PSH_ACK, S, flow, mariadb_logged_in,
    };

    /// PyMySQL's close after a query answered 2 s after the last: COM_QUIT and its FIN at
    /// once; MariaDB's FIN acknowledges the COM_QUIT but not yet the FIN. The client
    /// closed first: the answer after the idle does not begin a close.
    #[test]
    fn a_mysql_answer_after_an_idle_does_not_begin_the_servers_close() {
        const QUERY: &[u8] = b"\x0d\0\0\0\x03SELECT now()";
        const QUIT: &[u8] = b"\x01\0\0\0\x01";
        let (g, l, o) = (
            MARIADB_GREETING.len() as u32,
            MARIADB_LOGIN.len() as u32,
            MARIADB_LOGIN_OK.len() as u32,
        );
        let (q, r, x) = (
            QUERY.len() as u32,
            MARIADB_RESULT.len() as u32,
            QUIT.len() as u32,
        );
        let (c, s) = (1 + l + 2 * q, 1 + g + o + 2 * r);
        let mut packets = mariadb_logged_in();
        packets.extend([
            (0.15, C, PSH_ACK, 1 + l, 1 + g + o, QUERY),
            (0.20, S, PSH_ACK, 1 + g + o, 1 + l + q, MARIADB_RESULT),
            (2.20, C, PSH_ACK, 1 + l + q, 1 + g + o + r, QUERY),
            (2.25, S, PSH_ACK, 1 + g + o + r, c, MARIADB_RESULT),
            (2.251, C, PSH_ACK, c, s, QUIT),
            (2.2511, C, FIN_ACK, c + x, s, b""),
            (2.30, S, FIN_ACK, s, c + x, b""),
            (2.30, C, ACK, c + x + 1, s + 1, b""),
        ]);
        let closed = flow(&packets);
        let finding = classify(&closed, true);
        assert_eq!(finding.verdict, Verdict::Completed, "{}", finding.sentence);
    }
}
