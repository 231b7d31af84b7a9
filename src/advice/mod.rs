//! Advice, per server: what the capture measured (the keep-alive timeout the server
//! enforces, the brackets on a middlebox's idle timer, for resets and for silent drops),
//! which products that fits, and the client setting to change, with its value. Fed by
//! every judged flow, not only the failed ones: a clean reuse after a long idle narrows
//! the bracket too.

pub mod clients;
pub mod histogram;
pub mod known;
pub mod near_miss;

use std::collections::HashMap;
use std::net::SocketAddr;

use serde::Serialize;

use crate::detect::{Finding, Verdict};
use crate::flow::{CaptureSide, Flow, Protocol};
use crate::identify;
use crate::time::{NANOS_PER_SEC, Nanos, secs};
use histogram::IdleHistogram;
use known::{Fit, Known, LatePacket};
pub use near_miss::NearMiss;
use near_miss::NearMisses;

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
    /// Nothing came back at all: a middlebox dropped it (an idle blackhole).
    Blackhole,
    /// Not answered, for another reason (the capture ended, say).
    Unanswered,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Answered,
        Outcome::Race,
        Outcome::Reset,
        Outcome::Blackhole,
        Outcome::Unanswered,
    ];

    /// Its place in `ALL`.
    pub fn index(self) -> usize {
        self as usize
    }
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
#[derive(Debug, Clone, Default)]
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
    blackholes: u64,
    shortest_blackhole: Option<Nanos>,
    /// The longest a dropped request went unanswered in the capture, in seconds.
    longest_unanswered_s: f64,
    /// The slowest answer to a flow's last request: the floor for a read timeout.
    slowest_response: Option<Nanos>,
    points: Vec<ReusePoint>,
    /// Every reuse of an idle connection, and how many of them met the server's close.
    reuses: u64,
    reuses_raced: u64,
    /// Answered reuses that may have come within a round trip of the keep-alive timer.
    near_misses: NearMisses,
    /// Every reuse, beyond the sample in `points` too, by idle and outcome.
    reuse_histogram: IdleHistogram,
    /// Its flows' client software, server software and ways of closing, by name.
    clients: Tally,
    server_names: Tally,
    server_closes: Tally,
    /// The database or cache protocol its flows carry, once one of them showed it.
    protocol: Protocol,
}

/// Names tallied per server: at most this many, the rest counted together.
const TALLY_NAMES: usize = 8;

/// Flows counted by name in a small capped list: a server's clients are few, and a flood
/// of odd names cannot grow it.
#[derive(Debug, Clone, Default)]
struct Tally {
    counts: Vec<(&'static str, u64)>,
    /// Flows whose name came after the list was full.
    others: u64,
}

impl Tally {
    fn add(&mut self, name: &'static str) {
        if let Some((_, count)) = self.counts.iter_mut().find(|(n, _)| *n == name) {
            *count += 1;
        } else if self.counts.len() < TALLY_NAMES {
            self.counts.push((name, 1));
        } else {
            self.others += 1;
        }
    }

    /// Most seen first ("other" last), ties by name.
    fn into_counts(mut self) -> Vec<SoftwareCount> {
        self.counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let others = (self.others > 0).then_some(("other", self.others));
        self.counts
            .into_iter()
            .chain(others)
            .map(|(name, flows)| SoftwareCount { name, flows })
            .collect()
    }
}

/// A name and how many of a server's flows had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SoftwareCount {
    pub name: &'static str,
    pub flows: u64,
}

/// A server's timers measured so far (see `Advisor::measured_timers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasuredTimers {
    pub server: SocketAddr,
    pub keepalive: Option<Nanos>,
    pub middlebox: Option<Nanos>,
}

/// Collects per-server figures from judged flows.
#[derive(Debug, Default)]
pub struct Advisor {
    servers: HashMap<SocketAddr, ServerStats>,
}

impl Advisor {
    pub fn observe(&mut self, flow: &Flow, finding: &Finding) {
        let stats = self.servers.entry(flow.server).or_default();
        if flow.protocol.is_database() {
            stats.protocol = flow.protocol;
        }
        stats.clients.add(identify::client_name(flow).name);
        stats.server_names.add(identify::server_name(flow));
        if let Some(close) = identify::server_close(flow) {
            stats.server_closes.add(close);
        }
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
            && let Some(answer) = request.answered
        {
            let took = answer.ts.since(request.at.ts);
            stats.slowest_response = Some(stats.slowest_response.unwrap_or(0).max(took));
        }
        if let Some(request) = flow.last_request
            && let Some(idle_before) = request.idle_before
        {
            let outcome = match finding.verdict {
                Verdict::KeepaliveRace => Outcome::Race,
                Verdict::NatIdleReset => Outcome::Reset,
                Verdict::IdleBlackhole => Outcome::Blackhole,
                _ if request.answered.is_some() => Outcome::Answered,
                _ => Outcome::Unanswered,
            };
            let idle = match outcome {
                Outcome::Race => idle_before,
                _ => request.silence_before,
            };
            if idle >= REUSE_MIN_IDLE {
                stats.reuses += 1;
                stats.reuses_raced += u64::from(outcome == Outcome::Race);
                stats.reuse_histogram.add(secs(idle), outcome);
                if stats.points.len() < SAMPLE {
                    stats.points.push(ReusePoint {
                        flow: flow.id,
                        idle_s: secs(idle),
                        outcome,
                    });
                }
            }
            // A keep-alive timer counts from the last payload (a TCP keepalive probe does
            // not reset it), so a near miss is judged on the idle since then.
            if outcome == Outcome::Answered
                && idle_before >= REUSE_MIN_IDLE
                && let Some(rtt) = flow.rtt()
            {
                stats.near_misses.observe(
                    flow.id,
                    idle_at_server(flow.capture_side(), idle_before, rtt),
                    rtt,
                );
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
            Verdict::IdleBlackhole => {
                stats.blackholes += 1;
                if let Some(request) = flow.last_request {
                    let silence = request.silence_before;
                    stats.shortest_blackhole =
                        Some(stats.shortest_blackhole.map_or(silence, |s| s.min(silence)));
                }
                let unanswered = evidence.request_to_end_s.unwrap_or(0.0);
                stats.longest_unanswered_s = stats.longest_unanswered_s.max(unanswered);
            }
            _ => {}
        }
    }

    /// A copy of what was collected for the servers `wanted` only.
    pub fn subset(&self, wanted: &dyn Fn(SocketAddr) -> bool) -> Advisor {
        Advisor {
            servers: self
                .servers
                .iter()
                .filter(|(server, _)| wanted(**server))
                .map(|(server, stats)| (*server, stats.clone()))
                .collect(),
        }
    }

    /// Each server's timers measured so far, while the capture runs: the keep-alive
    /// timeout (its shortest idle close) and the shortest silence a middlebox did not
    /// survive (reset or dropped). For the warning before a request dies.
    pub fn measured_timers(&self) -> impl Iterator<Item = MeasuredTimers> + '_ {
        self.servers.iter().filter_map(|(server, s)| {
            let keepalive = (s.closes > 0).then_some((s.min_close * NANOS_PER_SEC as f64) as Nanos);
            let middlebox = match (s.shortest_reset, s.shortest_blackhole) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (keepalive.is_some() || middlebox.is_some()).then_some(MeasuredTimers {
                server: *server,
                keepalive,
                middlebox,
            })
        })
    }

    /// Advice for every server with something measured, busiest failure first.
    pub fn finish(self) -> Vec<ServerAdvice> {
        let mut advice: Vec<ServerAdvice> = self
            .servers
            .into_iter()
            .filter(|(_, s)| {
                s.closes > 0
                    || s.races > 0
                    || s.nat_resets > 0
                    || s.blackholes > 0
                    || s.announced_keepalive_s.is_some()
                    || !s.reuse_histogram.is_empty()
            })
            .map(|(server, stats)| advise(server, stats))
            .collect();
        advice.sort_by(|a, b| {
            (b.races + b.nat_resets + b.idle_blackholes)
                .cmp(&(a.races + a.nat_resets + a.idle_blackholes))
                .then(a.server.cmp(&b.server))
        });
        advice
    }
}

/// The idle the server saw when a request reached it, from the idle before it where the
/// capture was taken. On the client, the server's last payload arrived half a round trip
/// after it left, and the request takes another half to arrive: a full round trip more. On
/// the server it is what was measured; in between (a tap), half a round trip more.
fn idle_at_server(side: CaptureSide, idle: Nanos, rtt: Nanos) -> Nanos {
    match side {
        CaptureSide::Client => idle.saturating_add(rtt),
        CaptureSide::Server => idle,
        CaptureSide::Unknown => idle.saturating_add(rtt / 2),
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

/// What the capture proves about a middlebox that drops forgotten connections silently.
#[derive(Debug, Clone, Serialize)]
pub struct SilentDrop {
    /// The longest silence after which a request was still answered.
    pub survived_s: Option<f64>,
    /// The shortest silence after which a request got nothing back.
    pub dropped_s: f64,
    /// The longest a dropped request went unanswered (to the client's FIN or RST, or to
    /// its flow's last packet): the hang the application saw, or a lower bound on it.
    pub longest_unanswered_s: f64,
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
    /// The database or cache protocol its flows carry (`postgresql`, `mysql`, `redis`);
    /// absent for HTTP and any other protocol.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "protocol_name"
    )]
    pub protocol: Option<Protocol>,
    pub races: u64,
    pub sent_after_fin: u64,
    pub nat_resets: u64,
    pub idle_blackholes: u64,
    /// The keep-alive timeout it enforces, from its idle closes.
    pub keepalive: Option<Spread>,
    /// `Keep-Alive: timeout=N` in its plaintext responses.
    pub announced_keepalive_s: Option<u32>,
    pub announced_connection_close: bool,
    pub middlebox: Option<Bracket>,
    /// The bracket on the idle timer of a middlebox that drops silently.
    pub blackhole: Option<SilentDrop>,
    pub keepalive_candidates: Vec<Candidate>,
    /// Middleboxes that fit the reset bracket and answer a forgotten connection with RST
    /// (or may: not documented).
    pub middlebox_candidates: Vec<Candidate>,
    /// Middleboxes that fit the silent-drop bracket and drop a forgotten connection's
    /// packets (or may: not documented).
    pub blackhole_candidates: Vec<Candidate>,
    /// The recommended client max idle, in seconds.
    pub max_idle_s: Option<u64>,
    /// The recommended TCP keepalive idle, for a middlebox that counts probes as traffic.
    pub tcp_keepalive_s: Option<u64>,
    /// The slowest answer to a flow's last request, in seconds.
    pub slowest_response_s: Option<f64>,
    /// The recommended read (response) timeout, so that a dropped request fails fast.
    pub read_timeout_s: Option<u64>,
    /// What to do, in sentences.
    pub advice: Vec<String>,
    pub client_settings: Vec<clients::Setting>,
    /// The read timeout in each common client, and TCP_USER_TIMEOUT.
    pub read_timeout_settings: Vec<clients::Setting>,
    /// Reuses of an idle connection (the first 10,000), for JSON.
    pub reuse: Vec<ReusePoint>,
    /// How many reuses of an idle connection there were (the flows' last requests after
    /// 50 ms or more of idle), and how many of them met the server's keep-alive close.
    pub reuses: u64,
    pub reuses_raced: u64,
    /// Answered reuses that reached the server within one round trip of its measured
    /// keep-alive timer: they got lucky.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_misses: Option<NearMiss>,
    /// Every reuse of an idle connection, counted by idle and outcome, for `--plot`.
    #[serde(skip)]
    pub reuse_histogram: IdleHistogram,
    /// The client software of its flows, most seen first, with how many flows each
    /// ("unknown" included; names past the eighth counted as "other").
    pub client_software: Vec<SoftwareCount>,
    /// Its own software by its Server header, the same way.
    pub server_software: Vec<SoftwareCount>,
    /// How its side closed connections: `close_notify_then_fin`, `error_then_fin` (a database's last words, then FIN), `fin` or `rst`.
    pub server_closes: Vec<SoftwareCount>,
}

fn protocol_name<S: serde::Serializer>(
    protocol: &Option<Protocol>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match protocol {
        Some(p) => serializer.serialize_str(p.name()),
        None => serializer.serialize_none(),
    }
}

impl ServerAdvice {
    /// The client software seen most on this server's flows, when any was identified.
    pub fn identified_client(&self) -> Option<&str> {
        top_client(&self.client_software).map(|c| c.name)
    }

    /// Failures of any kind on this server's flows.
    pub fn failures(&self) -> u64 {
        self.races + self.nat_resets + self.idle_blackholes
    }
}

/// Puts the settings of the identified client first (in its own order), the rest after
/// them as they were.
fn lead_with(settings: &mut [clients::Setting], wanted: &[&str]) {
    settings.sort_by_key(|s| {
        wanted
            .iter()
            .position(|w| *w == s.client)
            .unwrap_or(usize::MAX)
    });
}

/// The client software seen most on a server's flows, when any was identified.
fn top_client(counts: &[SoftwareCount]) -> Option<SoftwareCount> {
    counts
        .iter()
        .find(|c| c.name != identify::UNKNOWN && c.name != "other")
        .copied()
}

/// What follows a sentence that recommends a value, when the client is known: that
/// client's own setting with the value filled in, so the advice leads with what to type.
/// Empty when no client was identified or none of its settings is listed.
fn for_client(
    identified: Option<SoftwareCount>,
    flows: u64,
    seconds: u64,
    setting: fn(&str, u64) -> Option<clients::Setting>,
) -> String {
    let Some(client) = identified else {
        return String::new();
    };
    let own: Vec<String> = identify::settings_for(client.name)
        .iter()
        .filter_map(|name| setting(name, seconds))
        .map(|s| format!("{}: {}", s.client, s.setting))
        .collect();
    if own.is_empty() {
        return String::new();
    }
    let noun = if flows == 1 { "flow" } else { "flows" };
    format!(
        "; the client is {}, on {} of {flows} {noun}: {}",
        client.name,
        client.flows,
        own.join("; ")
    )
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

/// A server's advice from figures made up in a test: idle closes at `close_s`, `races` of
/// them met, the client pgjdbc on every flow (none for HTTP), for the report's tests.
#[cfg(test)]
pub(crate) fn example(protocol: Protocol, close_s: f64, races: u64) -> ServerAdvice {
    let mut stats = ServerStats {
        protocol,
        closes: 3,
        min_close: close_s - 0.002,
        max_close: close_s + 0.002,
        idle_closes: vec![close_s - 0.002, close_s, close_s + 0.002],
        races,
        reuses: races,
        reuses_raced: races,
        ..ServerStats::default()
    };
    if protocol.is_database() {
        stats.clients.add("PostgreSQL JDBC (pgjdbc)");
    }
    advise("198.19.2.2:5432".parse().unwrap(), stats)
}

/// What a protocol's requests are called: queries, or a cache's commands.
pub fn request_nouns(protocol: Protocol) -> (&'static str, &'static str) {
    match protocol {
        Protocol::Redis => ("command", "commands"),
        _ => ("query", "queries"),
    }
}

/// The server settings that close an idle pooled connection, by protocol.
pub fn idle_timer_names(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Postgres => {
            "PostgreSQL idle_session_timeout, off by default; or PgBouncer's client_idle_timeout, or RDS Proxy's IdleClientTimeout"
        }
        Protocol::Mysql => "MySQL / MariaDB wait_timeout, 28800 s by default",
        Protocol::Redis => "Redis timeout, off by default",
        Protocol::Unknown | Protocol::Http => "its keep-alive timeout",
    }
}

/// The server-side TCP keepalive setting, by protocol.
fn server_keepalive_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Postgres => "PostgreSQL tcp_keepalives_idle",
        Protocol::Redis => "Redis tcp-keepalive, 300 s by default",
        Protocol::Mysql => {
            "MariaDB tcp_keepalive_time; MySQL: the server host's net.ipv4.tcp_keepalive_time"
        }
        Protocol::Unknown | Protocol::Http => "the server host's net.ipv4.tcp_keepalive_time",
    }
}

/// A read timeout that fails a dropped request fast without failing slow answers:
/// 3 times the slowest answer seen, at least 10 s, rounded up to 5 s.
pub fn read_timeout(slowest_response: Option<f64>) -> u64 {
    let t = (3.0 * slowest_response.unwrap_or(0.0)).max(10.0).ceil() as u64;
    t.div_ceil(5) * 5
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

/// The client max idle and TCP keepalive idle (half the timer) that stay under a
/// middlebox whose timer lies in (survived, failed]: under the lowest verified default
/// inside the bracket by rule B; else at the longest silence that survived, which is
/// proven (the timer may lie anywhere above it, so 10 % under `failed` could be over it);
/// else by rule B under the silence that failed.
fn stay_under_middlebox(
    candidates: &[Candidate],
    survived: Option<f64>,
    failed: f64,
) -> (u64, u64) {
    let lowest_default = candidates
        .iter()
        .filter(|c| c.verified)
        .map(|c| c.default_s)
        .reduce(f64::min);
    match (lowest_default, survived) {
        (Some(y), _) => (max_idle_below_middlebox(y), (y / 2.0).floor() as u64),
        (None, Some(s)) => {
            let m = s.floor().max(1.0) as u64;
            let m = if m >= 10 { m - m % 5 } else { m };
            (m, (s / 2.0).floor().max(1.0) as u64)
        }
        (None, None) => (
            max_idle_below_middlebox(failed),
            (failed / 2.0).floor() as u64,
        ),
    }
}

fn advise(server: SocketAddr, mut stats: ServerStats) -> ServerAdvice {
    let mut advice = Vec::new();
    let flows: u64 =
        stats.clients.counts.iter().map(|(_, n)| n).sum::<u64>() + stats.clients.others;
    let client_software = std::mem::take(&mut stats.clients).into_counts();
    let identified = top_client(&client_software);
    // A database or cache: its pools' and drivers' settings, its server's idle timeout.
    let db = stats.protocol.is_database().then_some(stats.protocol);
    let max_idle_setting = match db {
        Some(_) => clients::db_max_idle_setting,
        None => clients::max_idle_setting,
    };
    let lead = |m: u64| for_client(identified, flows, m, max_idle_setting);
    let (one, many) = db.map_or(("request", "requests"), request_nouns);
    let keepalive = (stats.closes > 0).then(|| {
        stats.idle_closes.sort_by(f64::total_cmp);
        Spread {
            n: stats.closes,
            min_s: stats.min_close,
            median_s: stats.idle_closes[stats.idle_closes.len() / 2],
            max_s: stats.max_close,
        }
    });
    let near_misses = keepalive.as_ref().and_then(|k| {
        stats
            .near_misses
            .of_timer((k.median_s * 1e9).round() as Nanos)
    });
    let keepalive_candidates: Vec<Candidate> = keepalive
        .as_ref()
        .map(|k| {
            known::servers_matching(k.median_s, stats.protocol)
                .into_iter()
                .map(|(known, fit): (Known, Fit)| candidate(known, fit.name()))
                .collect()
        })
        .unwrap_or_default();

    // A request answered right after the handshake says nothing about an idle timer.
    let survived = stats.longest_survived.filter(|s| *s >= REUSE_MIN_IDLE);
    let middlebox = stats.shortest_reset.map(|reset| Bracket {
        survived_s: survived.filter(|s| *s < reset).map(secs),
        reset_s: secs(reset),
        rst_sent_by: stats.rst_sent_by,
        rst_ttl: stats.rst_ttl,
        server_ttl: stats.server_ttl,
    });
    let middlebox_candidates: Vec<Candidate> = middlebox
        .as_ref()
        .map(|b| middleboxes_fitting(b.survived_s, b.reset_s, LatePacket::Rst))
        .unwrap_or_default();
    let blackhole = stats.shortest_blackhole.map(|dropped| SilentDrop {
        survived_s: survived.filter(|s| *s < dropped).map(secs),
        dropped_s: secs(dropped),
        longest_unanswered_s: stats.longest_unanswered_s,
    });
    let blackhole_candidates: Vec<Candidate> = blackhole
        .as_ref()
        .map(|b| middleboxes_fitting(b.survived_s, b.dropped_s, LatePacket::Drop))
        .unwrap_or_default();
    let slowest_response_s = stats.slowest_response.map(secs);

    let mut max_idle = None;
    let mut tcp_keepalive = None;
    if let Some(k) = &keepalive
        && stats.races > 0
    {
        let x = k.median_s;
        if let Some(p) = db {
            if x < 3.0 {
                advice.push(format!(
                    "the server closes idle connections after {x:.2} s, too soon for a pool: raise its idle timeout ({}), or set the pool's max idle to 1 s{}",
                    idle_timer_names(p),
                    lead(1)
                ));
                max_idle = Some(1);
            } else {
                let m = max_idle_below_server(x);
                advice.push(format!(
                    "set the pool's max idle time to {m} s, below the server's {x:.2} s idle timeout ({}){}",
                    idle_timer_names(p),
                    lead(m)
                ));
                max_idle = Some(m);
            }
        } else if x < 3.0 {
            advice.push(format!(
                "the server closes idle connections after {x:.2} s, too soon for a pool: raise its keep-alive timeout (behind a load balancer, above the balancer's), or set the client's max idle to 1 s{}",
                lead(1)
            ));
            max_idle = Some(1);
        } else {
            let m = max_idle_below_server(x);
            advice.push(format!(
                "set the client's max idle time to {m} s, below the server's {x:.2} s keep-alive{}",
                lead(m)
            ));
            max_idle = Some(m);
        }
        if stats.sent_after_fin > 0 && db.is_some() {
            advice.push(format!(
                "{} of {} {many} were sent after the server's close had arrived: the pool lends connections without checking them ({})",
                stats.sent_after_fin,
                stats.races,
                clients::DB_CHECK_BEFORE_REUSE
            ));
        } else if stats.sent_after_fin > 0 {
            advice.push(format!(
                "{} of {} requests were sent after the server's FIN had arrived: the pool reuses connections without checking them ({})",
                stats.sent_after_fin,
                stats.races,
                clients::CHECK_BEFORE_REUSE
            ));
        }
    } else if let (true, Some(p)) = (stats.races > 0, db) {
        advice.push(format!(
            "{} {} met the server's close, but the capture does not show how long the server waits before it closes an idle connection: capture from before the connections open (or read the server's idle timeout: {}) and set the pool's max idle time below it",
            stats.races,
            if stats.races == 1 { one } else { many },
            idle_timer_names(p)
        ));
    } else if stats.races > 0 {
        // Races, but no idle close this capture shows whole (it began mid-connection).
        advice.push(format!(
            "{} request(s) met the server's close, but the capture does not show how long the server waits before it closes an idle connection: capture from before the connections open (or find the server's keep-alive timeout in its configuration) and set the client's max idle time below it",
            stats.races
        ));
    }
    if let Some(b) = &middlebox {
        let (m, keepalive_idle) =
            stay_under_middlebox(&middlebox_candidates, b.survived_s, b.reset_s);
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
        if let Some(p) = db {
            advice.push(format!(
                "idle connections are forgotten after a silence of {range}; {who}; set the pool's max idle time to {m} s, or enable TCP keepalive with an idle of at most {keepalive_idle} s where the device counts keepalive probes as traffic (NAT gateways and layer-4 load balancers do), in the driver or on the server ({}){}",
                server_keepalive_name(p),
                lead(m)
            ));
        } else {
            advice.push(format!(
                "idle connections are forgotten after a silence of {range}; {who}; set the client's max idle time to {m} s, or enable TCP keepalive with an idle of at most {keepalive_idle} s where the device counts keepalive probes as traffic (layer-4 NATs and load balancers do; ALB and other layer-7 proxies do not){}",
                lead(m)
            ));
        }
        max_idle = Some(max_idle.map_or(m, |a: u64| a.min(m)));
        tcp_keepalive = Some(keepalive_idle);
    }
    let mut read_timeout_s = None;
    if let Some(b) = &blackhole {
        let (m, keepalive_idle) =
            stay_under_middlebox(&blackhole_candidates, b.survived_s, b.dropped_s);
        let range = match b.survived_s {
            Some(s) => format!("between {s:.1} s and {:.1} s", b.dropped_s),
            None => format!("at most {:.1} s", b.dropped_s),
        };
        if let Some(p) = db {
            advice.push(format!(
                "idle connections are dropped silently after a silence of {range}: no RST, so a {one} hangs until the driver gives up (here one went unanswered for {:.1} s); set the pool's max idle time to {m} s, or enable TCP keepalive with an idle of at most {keepalive_idle} s where the device counts keepalive probes as traffic (NAT gateways, layer-4 load balancers and firewalls do), in the driver or on the server ({}){}",
                b.longest_unanswered_s,
                server_keepalive_name(p),
                lead(m)
            ));
        } else {
            advice.push(format!(
                "idle connections are dropped silently after a silence of {range}: no RST, so a request hangs until the client gives up (here one went unanswered for {:.1} s); set the client's max idle time to {m} s, or enable TCP keepalive with an idle of at most {keepalive_idle} s where the device counts keepalive probes as traffic (layer-4 NATs, load balancers and firewalls do; ALB and other layer-7 proxies do not){}",
                b.longest_unanswered_s,
                lead(m)
            ));
        }
        max_idle = Some(max_idle.map_or(m, |a: u64| a.min(m)));
        tcp_keepalive = Some(tcp_keepalive.map_or(keepalive_idle, |k: u64| k.min(keepalive_idle)));
        let r = read_timeout(slowest_response_s);
        let slowest = slowest_response_s
            .map(|s| {
                format!(" (3 times the slowest answer seen here, {s:.3} s, and at least 10 s)")
            })
            .unwrap_or_else(|| {
                " (no answer to a flow's last request was seen to measure; at least 10 s)"
                    .to_string()
            });
        let read_timeout_setting = match db {
            Some(_) => clients::db_read_timeout_setting,
            None => clients::read_timeout_setting,
        };
        advice.push(format!(
            "set a read timeout of {r} s{slowest} so that a dropped {one} fails fast instead of hanging, and retry idempotent {many} once on a new connection; without a timeout Linux retransmits for about 15 min (tcp_retries2=15) before the socket fails{}",
            for_client(identified, flows, r, read_timeout_setting)
        ));
        read_timeout_s = Some(r);
    }
    if let (Some(announced), Some(k)) = (stats.announced_keepalive_s, &keepalive) {
        advice.push(format!(
            "the server announces Keep-Alive: timeout={announced}; it was measured closing after {:.2} s",
            k.median_s
        ));
    }
    let (mut client_settings, read_timeout_settings) =
        match db {
            Some(p) => {
                let mut settings = max_idle
                    .map(|m| clients::db_max_idle_settings(p, m))
                    .unwrap_or_default();
                if let Some(k) = tcp_keepalive {
                    settings.extend(clients::db_tcp_keepalive_settings(p, k).into_iter().map(
                        |s| clients::Setting {
                            client: s.client,
                            setting: format!("TCP keepalive: {}", s.setting),
                        },
                    ));
                }
                if max_idle.is_some() {
                    settings.extend(clients::server_settings(p, tcp_keepalive));
                }
                let read = read_timeout_s
                    .map(|r| clients::db_read_timeout_settings(p, r))
                    .unwrap_or_default();
                (settings, read)
            }
            None => {
                let mut settings = max_idle.map(clients::max_idle_settings).unwrap_or_default();
                if let Some(k) = tcp_keepalive {
                    settings.push(clients::Setting {
                        client: "TCP keepalive",
                        setting: clients::tcp_keepalive(k),
                    });
                }
                let read = read_timeout_s
                    .map(clients::read_timeout_settings)
                    .unwrap_or_default();
                (settings, read)
            }
        };
    let mut read_timeout_settings = read_timeout_settings;
    if let Some(client) = identified {
        let wanted = identify::settings_for(client.name);
        lead_with(&mut client_settings, wanted);
        lead_with(&mut read_timeout_settings, wanted);
    }

    ServerAdvice {
        server,
        protocol: stats.protocol.is_database().then_some(stats.protocol),
        races: stats.races,
        sent_after_fin: stats.sent_after_fin,
        nat_resets: stats.nat_resets,
        idle_blackholes: stats.blackholes,
        keepalive,
        announced_keepalive_s: stats.announced_keepalive_s,
        announced_connection_close: stats.announced_connection_close,
        middlebox,
        blackhole,
        keepalive_candidates,
        middlebox_candidates,
        blackhole_candidates,
        max_idle_s: max_idle,
        tcp_keepalive_s: tcp_keepalive,
        slowest_response_s,
        read_timeout_s,
        advice,
        client_settings,
        read_timeout_settings,
        reuse: stats.points,
        reuses: stats.reuses,
        reuses_raced: stats.reuses_raced,
        near_misses,
        reuse_histogram: stats.reuse_histogram,
        client_software,
        server_software: stats.server_names.into_counts(),
        server_closes: stats.server_closes.into_counts(),
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

    #[test]
    fn without_a_known_default_the_survived_silence_is_the_safe_bound() {
        // Timer somewhere in (70 s, 100 s]: 10 % under 100 s could be over it.
        assert_eq!(stay_under_middlebox(&[], Some(70.0), 100.0), (70, 35));
        assert_eq!(stay_under_middlebox(&[], None, 100.0), (90, 50));
    }

    fn server() -> SocketAddr {
        "198.19.2.2:5432".parse().unwrap()
    }

    #[test]
    fn a_postgres_idle_timeout_race_is_pool_advice_with_the_server_setting() {
        let advice = example(Protocol::Postgres, 5.004, 2);
        assert_eq!(advice.protocol, Some(Protocol::Postgres));
        assert_eq!(advice.max_idle_s, Some(4));
        // PostgreSQL's timer is off by default: no product's default is named for it.
        assert!(advice.keepalive_candidates.is_empty());
        let first = &advice.advice[0];
        assert!(
            first.starts_with("set the pool's max idle time to 4 s, below the server's 5.00 s idle timeout (PostgreSQL idle_session_timeout"),
            "{first}"
        );
        assert!(
            first.contains("the client is PostgreSQL JDBC (pgjdbc)"),
            "{first}"
        );
        assert!(first.contains("HikariCP: maxLifetime=4000 "), "{first}");
        assert!(!first.contains("keep-alive"), "{first}");
        // HikariCP leads, the server's own settings follow the clients'.
        assert_eq!(advice.client_settings[0].client, "HikariCP");
        assert!(
            advice
                .client_settings
                .iter()
                .any(|s| s.client == "PostgreSQL server")
        );
        assert!(
            !advice
                .client_settings
                .iter()
                .any(|s| s.client == "Reactor Netty")
        );
        let json = serde_json::to_value(&advice).unwrap();
        assert_eq!(json["protocol"], "postgresql");
    }

    #[test]
    fn an_http_server_keeps_its_keep_alive_advice_and_no_protocol_field() {
        let advice = example(Protocol::Http, 5.004, 1);
        assert_eq!(advice.protocol, None);
        assert!(advice.advice[0].ends_with("below the server's 5.00 s keep-alive"));
        assert_eq!(advice.keepalive_candidates.len(), 3);
        let json = serde_json::to_value(&advice).unwrap();
        assert!(json.get("protocol").is_none());
    }

    #[test]
    fn a_mysql_server_at_eight_hours_is_wait_timeout() {
        let advice = example(Protocol::Mysql, 28800.4, 1);
        let names: Vec<&str> = advice.keepalive_candidates.iter().map(|c| c.name).collect();
        assert_eq!(names[0], "MySQL / MariaDB wait_timeout");
        assert!(advice.advice[0].contains("wait_timeout"));
    }

    #[test]
    fn a_nat_reset_on_redis_names_the_drivers_keepalive_and_tcp_keepalive() {
        let stats = ServerStats {
            protocol: Protocol::Redis,
            nat_resets: 1,
            shortest_reset: Some(400 * NANOS_PER_SEC),
            longest_survived: Some(200 * NANOS_PER_SEC),
            rst_sent_by: Some("middlebox"),
            ..ServerStats::default()
        };
        let advice = advise(server(), stats);
        let text = &advice.advice[0];
        assert!(text.contains("set the pool's max idle time to"), "{text}");
        assert!(text.contains("Redis tcp-keepalive"), "{text}");
        let keepalive = advice.tcp_keepalive_s.unwrap();
        assert!(advice.client_settings.iter().any(|s| s.client == "redis-py"
            && s.setting.contains(&format!("TCP_KEEPIDLE: {keepalive}}}"))));
        assert!(
            advice
                .client_settings
                .iter()
                .any(|s| s.client == "Redis server"
                    && s.setting.contains(&format!("tcp-keepalive {keepalive} ")))
        );
        assert!(
            !advice
                .client_settings
                .iter()
                .any(|s| s.client == "HikariCP")
        );
    }

    #[test]
    fn read_timeout_rule() {
        assert_eq!(read_timeout(None), 10);
        assert_eq!(read_timeout(Some(0.051)), 10);
        assert_eq!(read_timeout(Some(4.2)), 15);
        assert_eq!(read_timeout(Some(20.05)), 65);
    }
}
