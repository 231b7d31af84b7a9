//! Advice, per server: what the capture measured (the keep-alive timeout the server
//! enforces, the bracket on a middlebox's idle timer), which products that fits, and the
//! client setting to change, with its value. Fed by every judged flow, not only the failed
//! ones: a clean reuse after a long idle narrows the bracket too.

pub mod clients;
pub mod known;

use std::collections::HashMap;
use std::net::SocketAddr;

use serde::Serialize;

use crate::detect::{Finding, Verdict};
use crate::flow::Flow;
use crate::time::{Nanos, secs};
use known::{Fit, Known, LatePacket};

/// Idle closes and reuse points kept per server; counts, min and max stay exact beyond it.
const SAMPLE: usize = 10_000;

/// A request shorter after its predecessor than this is not a reuse of an idle connection.
const REUSE_MIN_IDLE: Nanos = 50_000_000;

/// What became of a request that reused an idle connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    Race,
    Reset,
    /// Not answered, for another reason (the capture ended, say).
    Unanswered,
}

/// One reuse of an idle connection: how long it sat idle before the request, and what
/// became of the request.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReusePoint {
    pub flow: u64,
    /// Silence (since the last packet of any kind: what a middlebox's timer sees), except
    /// for a race, where it is the idle since the last data: a server's FIN that crossed
    /// the request is not activity the pool saw.
    pub idle_s: f64,
    pub outcome: Outcome,
}

/// What the flows of one server have shown so far.
#[derive(Debug, Default)]
struct ServerStats {
    idle_closes: Vec<f64>,
    closes: u64,
    min_close: f64,
    max_close: f64,
    announced_keepalive_s: Option<u32>,
    announced_connection_close: bool,
    longest_survived: Option<Nanos>,
    shortest_reset: Option<Nanos>,
    races: u64,
    sent_after_fin: u64,
    nat_resets: u64,
    rst_sent_by: Option<&'static str>,
    rst_ttl: Option<u8>,
    server_ttl: Option<u8>,
    points: Vec<ReusePoint>,
}

/// Collects per-server figures from judged flows.
#[derive(Debug, Default)]
pub struct Advisor {
    servers: HashMap<SocketAddr, ServerStats>,
}

impl Advisor {
    pub fn observe(&mut self, flow: &Flow, finding: &Finding) {
        let stats = self.servers.entry(flow.server).or_default();
        let evidence = &finding.evidence;
        if matches!(
            finding.verdict,
            Verdict::IdleClosed | Verdict::KeepaliveRace
        ) && let Some(idle) = evidence.server_close_idle_s
        {
            stats.closes += 1;
            stats.min_close = if stats.closes == 1 {
                idle
            } else {
                stats.min_close.min(idle)
            };
            stats.max_close = stats.max_close.max(idle);
            if stats.idle_closes.len() < SAMPLE {
                stats.idle_closes.push(idle);
            }
        }
        stats.announced_keepalive_s = flow.keepalive_header_s.or(stats.announced_keepalive_s);
        stats.announced_connection_close |= flow.connection_close;
        if let Some(survived) = flow.longest_answered_silence {
            stats.longest_survived = Some(stats.longest_survived.unwrap_or(0).max(survived));
        }
        if let Some(request) = flow.last_request
            && request.idle_before.is_some()
            && stats.points.len() < SAMPLE
        {
            let outcome = match finding.verdict {
                Verdict::KeepaliveRace => Outcome::Race,
                Verdict::NatIdleReset => Outcome::Reset,
                _ if request.answered.is_some() => Outcome::Answered,
                _ => Outcome::Unanswered,
            };
            let idle = match outcome {
                Outcome::Race => request.idle_before.unwrap_or(request.silence_before),
                _ => request.silence_before,
            };
            if idle >= REUSE_MIN_IDLE {
                stats.points.push(ReusePoint {
                    flow: flow.id,
                    idle_s: secs(idle),
                    outcome,
                });
            }
        }
        match finding.verdict {
            Verdict::KeepaliveRace => {
                stats.races += 1;
                stats.sent_after_fin += u64::from(evidence.crossing == Some("sent_after_fin"));
            }
            Verdict::NatIdleReset => {
                stats.nat_resets += 1;
                if let Some(request) = flow.last_request {
                    let silence = request.silence_before;
                    if stats.shortest_reset.is_none_or(|s| silence < s) {
                        stats.shortest_reset = Some(silence);
                        stats.rst_sent_by = evidence.rst_sent_by;
                        stats.rst_ttl = evidence.rst_ttl;
                        stats.server_ttl = evidence.server_ttl;
                    }
                }
            }
            _ => {}
        }
    }

    /// Advice for every server with something measured, busiest failure first.
    pub fn finish(self) -> Vec<ServerAdvice> {
        let mut advice: Vec<ServerAdvice> = self
            .servers
            .into_iter()
            .filter(|(_, s)| {
                s.closes > 0
                    || s.nat_resets > 0
                    || s.announced_keepalive_s.is_some()
                    || !s.points.is_empty()
            })
            .map(|(server, stats)| advise(server, stats))
            .collect();
        advice.sort_by(|a, b| {
            (b.races + b.nat_resets)
                .cmp(&(a.races + a.nat_resets))
                .then(a.server.cmp(&b.server))
        });
        advice
    }
}

/// The server's keep-alive timeout, measured from every idle close it made.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub n: u64,
    pub min_s: f64,
    pub median_s: f64,
    pub max_s: f64,
}

/// What the capture proves about a middlebox's idle timer.
#[derive(Debug, Clone, Serialize)]
pub struct Bracket {
    /// The longest silence after which a request was still answered.
    pub survived_s: Option<f64>,
    /// The shortest silence after which a request was reset.
    pub reset_s: f64,
    pub rst_sent_by: Option<&'static str>,
    pub rst_ttl: Option<u8>,
    pub server_ttl: Option<u8>,
}

/// A product whose default fits the measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub name: &'static str,
    pub default_s: f64,
    pub fit: &'static str,
    pub source: &'static str,
    pub verified: bool,
    /// Middleboxes: what a packet of a connection it forgot meets: `rst`, `drop` or
    /// `unknown` (not documented).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_packet: Option<&'static str>,
}

/// Everything staleconn can say about one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerAdvice {
    pub server: SocketAddr,
    pub races: u64,
    pub sent_after_fin: u64,
    pub nat_resets: u64,
    /// The keep-alive timeout it enforces, from its idle closes.
    pub keepalive: Option<Spread>,
    /// `Keep-Alive: timeout=N` in its plaintext responses.
    pub announced_keepalive_s: Option<u32>,
    pub announced_connection_close: bool,
    pub middlebox: Option<Bracket>,
    pub keepalive_candidates: Vec<Candidate>,
    /// Middleboxes that fit the reset bracket and answer a forgotten connection with RST
    /// (or may: not documented).
    pub middlebox_candidates: Vec<Candidate>,
    /// The recommended client max idle, in seconds.
    pub max_idle_s: Option<u64>,
    /// The recommended TCP keepalive idle, for a middlebox that counts probes as traffic.
    pub tcp_keepalive_s: Option<u64>,
    /// What to do, in sentences.
    pub advice: Vec<String>,
    pub client_settings: Vec<clients::Setting>,
    /// Every reuse of an idle connection (at most 10,000), for `--plot`.
    pub reuse: Vec<ReusePoint>,
}

fn candidate(known: Known, fit: &'static str) -> Candidate {
    Candidate {
        name: known.name,
        default_s: known.seconds,
        fit,
        source: known.source,
        verified: known.verified,
        late_packet: (known.kind == known::Kind::Middlebox).then(|| known.late_packet.name()),
    }
}

/// Middleboxes whose default lies in the bracket and that could have answered as seen.
fn middleboxes_fitting(survived: Option<f64>, failed: f64, seen: LatePacket) -> Vec<Candidate> {
    known::middleboxes_within(survived, failed, seen)
        .into_iter()
        .map(|known| {
            let fit = if known.late_packet == LatePacket::Unknown {
                "within the bracket; RST or silent drop not documented"
            } else {
                "within the bracket"
            };
            candidate(known, fit)
        })
        .collect()
}

/// Rule A: below a server that closes after X s, a max idle of X - max(1 s, 10 %),
/// whole seconds, multiples of 5 from a minute up.
pub fn max_idle_below_server(x: f64) -> u64 {
    let m = (x - (0.1 * x).max(1.0)).floor().max(1.0) as u64;
    if x >= 60.0 { m - m % 5 } else { m }
}

/// Rule B: about 10 % under a middlebox's Y s, in multiples of 5 s.
fn max_idle_below_middlebox(y: f64) -> u64 {
    let m = (0.9 * y).floor().max(1.0) as u64;
    if m >= 10 { m - m % 5 } else { m }
}

fn advise(server: SocketAddr, mut stats: ServerStats) -> ServerAdvice {
    let mut advice = Vec::new();
    let keepalive = (stats.closes > 0).then(|| {
        stats.idle_closes.sort_by(f64::total_cmp);
        Spread {
            n: stats.closes,
            min_s: stats.min_close,
            median_s: stats.idle_closes[stats.idle_closes.len() / 2],
            max_s: stats.max_close,
        }
    });
    let keepalive_candidates: Vec<Candidate> = keepalive
        .as_ref()
        .map(|k| {
            known::servers_matching(k.median_s)
                .into_iter()
                .map(|(known, fit): (Known, Fit)| candidate(known, fit.name()))
                .collect()
        })
        .unwrap_or_default();

    let middlebox = stats.shortest_reset.map(|reset| Bracket {
        survived_s: stats.longest_survived.filter(|s| *s < reset).map(secs),
        reset_s: secs(reset),
        rst_sent_by: stats.rst_sent_by,
        rst_ttl: stats.rst_ttl,
        server_ttl: stats.server_ttl,
    });
    let middlebox_candidates: Vec<Candidate> = middlebox
        .as_ref()
        .map(|b| middleboxes_fitting(b.survived_s, b.reset_s, LatePacket::Rst))
        .unwrap_or_default();

    let mut max_idle = None;
    let mut tcp_keepalive = None;
    if let Some(k) = &keepalive
        && stats.races > 0
    {
        let x = k.median_s;
        if x < 3.0 {
            advice.push(format!(
                "the server closes idle connections after {x:.2} s, too soon for a pool: raise its keep-alive timeout (behind a load balancer, above the balancer's), or set the client's max idle to 1 s"
            ));
            max_idle = Some(1);
        } else {
            let m = max_idle_below_server(x);
            advice.push(format!(
                "set the client's max idle time to {m} s, below the server's {x:.2} s keep-alive"
            ));
            max_idle = Some(m);
        }
        if stats.sent_after_fin > 0 {
            advice.push(format!(
                "{} of {} requests were sent after the server's FIN had arrived: the pool reuses connections without checking them ({})",
                stats.sent_after_fin,
                stats.races,
                clients::CHECK_BEFORE_REUSE
            ));
        }
    }
    if let Some(b) = &middlebox {
        // The lowest verified default inside the bracket, else the reset itself.
        let y = middlebox_candidates
            .iter()
            .filter(|c| c.verified)
            .map(|c| c.default_s)
            .fold(b.reset_s, f64::min);
        let m = max_idle_below_middlebox(y);
        let keepalive_idle = (y / 2.0).floor() as u64;
        let who = match b.rst_sent_by {
            Some("middlebox") => match (b.rst_ttl, b.server_ttl) {
                (Some(r), Some(s)) if r != s => {
                    format!("a middlebox sent the RST (TTL {r}, the server's packets {s})")
                }
                _ => "a middlebox sent the RST (it came faster than the round trip)".to_string(),
            },
            Some("server") => {
                "the server itself sent the RST (same TTL, a full round trip)".to_string()
            }
            _ => "who sent the RST is unclear".to_string(),
        };
        let range = match b.survived_s {
            Some(s) => format!("between {s:.1} s and {:.1} s", b.reset_s),
            None => format!("at most {:.1} s", b.reset_s),
        };
        advice.push(format!(
            "idle connections are forgotten after a silence of {range}; {who}; set the client's max idle time to {m} s, or enable TCP keepalive with an idle of at most {keepalive_idle} s where the device counts keepalive probes as traffic (layer-4 NATs and load balancers do; ALB and other layer-7 proxies do not)"
        ));
        max_idle = Some(max_idle.map_or(m, |a: u64| a.min(m)));
        tcp_keepalive = Some(keepalive_idle);
    }
    if let (Some(announced), Some(k)) = (stats.announced_keepalive_s, &keepalive) {
        advice.push(format!(
            "the server announces Keep-Alive: timeout={announced}; it was measured closing after {:.2} s",
            k.median_s
        ));
    }
    let mut client_settings = max_idle.map(clients::max_idle_settings).unwrap_or_default();
    if let Some(k) = tcp_keepalive {
        client_settings.push(clients::Setting {
            client: "TCP keepalive",
            setting: clients::tcp_keepalive(k),
        });
    }

    ServerAdvice {
        server,
        races: stats.races,
        sent_after_fin: stats.sent_after_fin,
        nat_resets: stats.nat_resets,
        keepalive,
        announced_keepalive_s: stats.announced_keepalive_s,
        announced_connection_close: stats.announced_connection_close,
        middlebox,
        keepalive_candidates,
        middlebox_candidates,
        max_idle_s: max_idle,
        tcp_keepalive_s: tcp_keepalive,
        advice,
        client_settings,
        reuse: stats.points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_idle_rules() {
        assert_eq!(max_idle_below_server(5.0), 4);
        assert_eq!(max_idle_below_server(5.004), 4);
        assert_eq!(max_idle_below_server(20.0), 18);
        assert_eq!(max_idle_below_server(60.0), 50);
        assert_eq!(max_idle_below_server(75.0), 65);
        assert_eq!(max_idle_below_middlebox(350.0), 315);
        assert_eq!(max_idle_below_middlebox(240.0), 215);
    }
}
