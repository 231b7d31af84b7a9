//! Detection: the failure stories and their benign look-alikes. Each flow gets exactly one
//! `Finding`: a verdict with the evidence that proves it. Verdict names and thresholds live
//! here and nowhere else; each story is one file.

mod benign;
mod blackhole;
#[cfg(test)]
mod built;
mod nat;
mod race;

use serde::Serialize;

use crate::flow::{CaptureSide, Flow, Protocol, Request};
use crate::time::{NANOS_PER_SEC, Nanos, secs};

/// What happened to a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A request met the server's idle close and died.
    KeepaliveRace,
    /// A request after a long silence was answered by RST: a middlebox forgot the flow.
    NatIdleReset,
    /// A request after a long silence got nothing back, not even an ACK, while the client
    /// retransmitted it: a middlebox forgot the flow and drops its packets silently.
    IdleBlackhole,
    /// Requests answered; closed normally.
    Completed,
    /// The server closed an idle keep-alive connection and nobody reused it.
    IdleClosed,
    /// The server closed right after its response (`Connection: close`).
    ClosedAfterResponse,
    /// The SYN was answered by RST: nothing listening.
    Refused,
    /// The SYN was never answered.
    Unanswered,
    /// Ended by a RST that fits no failure pattern.
    Reset,
    /// Still open when the capture ended.
    OpenAtEnd,
}

impl Verdict {
    pub const ALL: [Verdict; 10] = [
        Verdict::KeepaliveRace,
        Verdict::NatIdleReset,
        Verdict::IdleBlackhole,
        Verdict::Completed,
        Verdict::IdleClosed,
        Verdict::ClosedAfterResponse,
        Verdict::Refused,
        Verdict::Unanswered,
        Verdict::Reset,
        Verdict::OpenAtEnd,
    ];

    /// The name scripts see (JSON, `--format json`) and the table shows.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::KeepaliveRace => "keepalive_race",
            Verdict::NatIdleReset => "nat_idle_reset",
            Verdict::IdleBlackhole => "idle_blackhole",
            Verdict::Completed => "completed",
            Verdict::IdleClosed => "idle_closed",
            Verdict::ClosedAfterResponse => "closed_after_response",
            Verdict::Refused => "refused",
            Verdict::Unanswered => "unanswered",
            Verdict::Reset => "reset",
            Verdict::OpenAtEnd => "open_at_end",
        }
    }

    /// One line for people, as the summary shows it.
    pub fn meaning(self) -> &'static str {
        match self {
            Verdict::KeepaliveRace => "request met the server's keep-alive close",
            Verdict::NatIdleReset => "request after a long idle answered by RST",
            Verdict::IdleBlackhole => "request after a long idle got no answer at all",
            Verdict::Completed => "requests answered, closed normally",
            Verdict::IdleClosed => "server closed an idle connection; not reused",
            Verdict::ClosedAfterResponse => "server closed right after its response",
            Verdict::Refused => "connection refused (SYN answered by RST)",
            Verdict::Unanswered => "SYN never answered",
            Verdict::Reset => "reset, no failure pattern",
            Verdict::OpenAtEnd => "still open when the capture ended",
        }
    }

    /// Flagged verdicts are failures; they set exit code 1.
    pub fn flagged(self) -> bool {
        matches!(
            self,
            Verdict::KeepaliveRace | Verdict::NatIdleReset | Verdict::IdleBlackhole
        )
    }
}

/// The thresholds the stories use, from the command line. How much silence makes an idle
/// story depends on how sure the wire is that a middlebox answered: `--nat-idle` and
/// `--blackhole-idle` set both figures of their story to one value.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Silence longer than this before a request that is reset means a middlebox forgot
    /// the connection, when the wire cannot tell who sent the RST (AWS NAT Gateway: 350 s).
    pub nat_idle: Nanos,
    /// The same, for a RST the wire shows a middlebox sent (its own TTL, or sooner than a
    /// round trip).
    pub middlebox_nat_idle: Nanos,
    /// Silence longer than this before a request that gets nothing back while the client
    /// retransmits it means a middlebox forgot the connection and drops its packets.
    pub blackhole_idle: Nanos,
    /// The same, when another connection to the same server was answered meanwhile: the
    /// path worked.
    pub corroborated_blackhole_idle: Nanos,
}

impl Thresholds {
    /// `--nat-idle`: one figure, whoever sent the RST.
    pub fn with_nat_idle(self, idle: Nanos) -> Thresholds {
        Thresholds {
            nat_idle: idle,
            middlebox_nat_idle: idle,
            ..self
        }
    }

    /// `--blackhole-idle`: one figure, corroborated or not.
    pub fn with_blackhole_idle(self, idle: Nanos) -> Thresholds {
        Thresholds {
            blackhole_idle: idle,
            corroborated_blackhole_idle: idle,
            ..self
        }
    }
}

pub const DEFAULT_NAT_IDLE: Nanos = 350 * NANOS_PER_SEC;

/// A reset that the wire shows a middlebox sent (its own TTL, or sooner than a round trip)
/// after this much silence is a NAT idle reset by default. Many common timers are far below
/// AWS NAT Gateway's 350 s: Azure NAT Gateway 4 min, firewalls and home NATs from 60 s; at
/// 350 s they would go unseen. 20 s is far longer than any round trip or the gaps of a busy
/// pool, and shorter than those timers. The same figure holds for an idle blackhole while
/// another connection to the same server was answered.
pub const DEFAULT_MIDDLEBOX_IDLE: Nanos = 20 * NANOS_PER_SEC;

/// ... and the silence must be at least this many round trips, and longer than any the
/// connection survived: long for the path, and longer than the middlebox's timer can be.
pub const MIDDLEBOX_IDLE_RTTS: i64 = 100;

/// Lower than `DEFAULT_NAT_IDLE` on purpose. The devices that drop silently forget sooner
/// by default (Azure Load Balancer: 4 min) and can be set as low as 60 s (AWS Network
/// Firewall, Gateway Load Balancer); at 350 s the most common of them would go unseen. And
/// the wire says more than for a reset: not one packet came back while the client
/// retransmitted, so less rests on the idle. Below a minute of quiet, a request that gets
/// nothing back is more likely a broken path or a dead server than an idle timer, unless
/// another connection to the same server was answered meanwhile.
pub const DEFAULT_BLACKHOLE_IDLE: Nanos = 60 * NANOS_PER_SEC;

/// A server that closes within this of its last payload closed after a response
/// (`Connection: close`), not on an idle timer. Keep-alive timeouts are seconds.
pub const IMMEDIATE_CLOSE: Nanos = NANOS_PER_SEC / 2;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            nat_idle: DEFAULT_NAT_IDLE,
            middlebox_nat_idle: DEFAULT_MIDDLEBOX_IDLE,
            blackhole_idle: DEFAULT_BLACKHOLE_IDLE,
            corroborated_blackhole_idle: DEFAULT_MIDDLEBOX_IDLE,
        }
    }
}

/// Whether `silence` before a request is long enough for a middlebox's idle timer on this
/// flow: over `threshold`, at least `MIDDLEBOX_IDLE_RTTS` round trips, and longer than any
/// silence the connection survived.
fn idle_for_a_middlebox(flow: &Flow, silence: Nanos, threshold: Nanos) -> bool {
    silence > threshold
        && flow
            .rtt()
            .is_none_or(|rtt| silence >= rtt.saturating_mul(MIDDLEBOX_IDLE_RTTS))
        && flow
            .longest_survived_silence
            .is_none_or(|survived| silence > survived)
}

/// A verdict with its evidence: the figures (JSON) and one sentence (table).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub verdict: Verdict,
    pub evidence: Evidence,
    #[serde(skip)]
    pub sentence: String,
    /// What to change, for flagged verdicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The measured figures behind a verdict. Times in seconds, frames as numbered in the capture.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    /// Which host the capture was taken on: client, server or unknown.
    pub capture_side: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_frame: Option<u64>,
    /// Idle before the request: since the last payload either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_idle_s: Option<f64>,
    /// Silence before the request: since the last packet of any kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_silence_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_retransmissions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_fin_frame: Option<u64>,
    /// The server's measured keep-alive timeout: idle before it began to close.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_close_idle_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_notify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_notify_frame: Option<u64>,
    /// Server data that answered nothing right before its close: HTTP/2's GOAWAY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_prelude_frame: Option<u64>,
    /// `http2_goaway` (seen in the clear), `tls_record_before_close_notify`, or
    /// `data_before_fin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_prelude: Option<&'static str>,
    /// How the request met the close: `crossed_in_flight` or `sent_after_fin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crossing: Option<&'static str>,
    /// Request time minus FIN time at the capture point (negative: request seen first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_minus_fin_s: Option<f64>,
    /// What came back to the request: `rst` or `nothing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rst_frame: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rst_from: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_to_rst_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rst_ttl: Option<u8>,
    /// TTL (hop limit) of the server's own packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_ttl: Option<u8>,
    /// Who sent the RST, judged by TTL and timing: `middlebox`, `server` or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rst_sent_by: Option<&'static str>,
    /// From the request's first transmission to its last retransmission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retransmission_span_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_retransmission_frame: Option<u64>,
    /// How a request that got nothing back ended: `client_fin` or `client_rst` (the
    /// client gave up), `capture_end` (still waiting), or `evicted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<&'static str>,
    /// The client's FIN or RST, or the flow's last packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_frame: Option<u64>,
    /// From the request to its end: how long the client waited for nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_to_end_s: Option<f64>,
    /// The server side's last packet before the request: its last sign of life.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_last_frame: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_last_before_request_s: Option<f64>,
    /// Another connection to the same server answered while this request waited: its
    /// flow id and the answer's frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_answer_flow: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_answer_frame: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_close: Option<bool>,
    /// Database and cache flows only: `postgresql`, `mysql` or `redis`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    /// The request was a pool's validation query (COM_PING, an empty query, PING).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_query: Option<bool>,
    /// The server's last words before its close: PostgreSQL's FATAL ErrorResponse or a
    /// MySQL error packet, as code and message, and its frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_goodbye: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_goodbye_frame: Option<u64>,
    /// How the server closed, when not by FIN: `rst` (MariaDB's idle close).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_close_by: Option<&'static str>,
}

impl Evidence {
    /// What every verdict carries: the capture side, the round trip, and the flow's last
    /// request (how long it waited is evidence even when it worked).
    fn for_flow(flow: &Flow) -> Evidence {
        let request = flow.last_request;
        Evidence {
            capture_side: side_name(flow.capture_side()),
            rtt_s: flow.rtt().map(secs),
            request_frame: request.map(|r| r.at.frame),
            request_idle_s: request.and_then(|r| r.idle_before).map(secs),
            request_silence_s: request.map(|r| secs(r.silence_before)),
            request_retransmissions: request.map(|r| r.retransmissions),
            protocol: flow.protocol.is_database().then(|| flow.protocol.name()),
            validation_query: request
                .filter(|_| flow.protocol.is_database())
                .map(|r| r.validation),
            server_goodbye: server_goodbye(flow).map(|(_, words)| words),
            server_goodbye_frame: server_goodbye(flow).map(|(frame, _)| frame),
            ..Evidence::default()
        }
    }
}

/// The server's last words before it closed, as people read them ("FATAL 57P05
/// terminating connection due to idle-session timeout"), and their frame.
fn server_goodbye(flow: &Flow) -> Option<(u64, String)> {
    let (at, words) = flow.db.as_ref()?.server_goodbye.as_ref()?;
    let what = match flow.protocol {
        Protocol::Postgres => "FATAL ",
        _ => "error ",
    };
    Some((at.frame, format!("{what}{} {}", words.code, words.message)))
}

/// What the client sent, as a sentence names it: "request" for HTTP and unknown
/// protocols, "PostgreSQL query", "Redis command", or a pool's validation query.
fn request_noun(flow: &Flow, request: &Request) -> String {
    let protocol = flow.protocol;
    if !protocol.is_database() {
        return "request".to_string();
    }
    let what = match (protocol, request.validation) {
        (Protocol::Redis, true) => "PING",
        (Protocol::Redis, false) => "command",
        (_, true) => "validation query",
        (_, false) => "query",
    };
    format!("{} {what}", protocol.label())
}

/// For a pool's validation query that failed: what the pool does about it.
fn validation_note(flow: &Flow, request: &Request) -> &'static str {
    match (flow.protocol, request.validation) {
        (Protocol::Postgres | Protocol::Mysql, true) => {
            "; it was the pool's check before lending the connection (HikariCP validates a connection idle over 500 ms: it logs \"Failed to validate connection\" and opens a new one, so the application sees only latency)"
        }
        (Protocol::Redis, true) => {
            "; it was a health check (redis-py's health_check_interval): the client reconnects and retries"
        }
        _ => "",
    }
}

/// Who the setting is for: a pool, or an HTTP client.
fn setting_owner(flow: &Flow) -> &'static str {
    if flow.protocol.is_database() {
        "pool"
    } else {
        "client"
    }
}

pub fn side_name(side: CaptureSide) -> &'static str {
    match side {
        CaptureSide::Client => "client",
        CaptureSide::Server => "server",
        CaptureSide::Unknown => "unknown",
    }
}

/// Judges one finished flow: the failure stories first, then the benign look-alikes.
pub fn judge(flow: &Flow, thresholds: &Thresholds) -> Finding {
    judge_worded(flow, thresholds, true)
}

/// `judge`, the sentence of a benign verdict written only if `worded` (flagged ones always
/// are: they are always shown).
pub fn judge_worded(flow: &Flow, thresholds: &Thresholds, worded: bool) -> Finding {
    race::keepalive_race(flow)
        .or_else(|| nat::nat_idle_reset(flow, thresholds))
        .or_else(|| blackhole::idle_blackhole(flow, thresholds))
        .unwrap_or_else(|| benign::classify(flow, worded))
}
