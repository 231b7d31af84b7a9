//! The Prometheus metrics sink (`--metrics-listen`): what the pipeline judged, kept as
//! counters, gauges and a histogram (the `prometheus-client` crate encodes them), and a
//! small read-only HTTP server on std threads that serves `/metrics` and `/healthz`. The
//! server is bounded (connections, request size, time per connection) and never touches the
//! capture: a scrape reads atomics and a cached exposition.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::FlowReport;
use crate::advice::ServerAdvice;
use crate::detect::{Finding, Verdict};
use crate::flow::Flow;
use crate::pipeline::FlowObserver;
use crate::target::Target;

/// The default port: free in Prometheus' default port allocations list, and apart from the
/// node agents' ports (Cilium 9962-9965, Retina 10093, Inspektor Gadget 2224, Kubeshark
/// 49100).
pub const DEFAULT_PORT: u16 = 9477;

/// Peers with a label of their own; the rest are counted as `other`, so a scan or a
/// client of thousands of servers cannot grow the exposition.
pub const MAX_PEERS: usize = 20;

/// The idle before a failure, in seconds: the timers of known servers and middleboxes
/// (src/advice/known.rs), so a bucket boundary falls on each.
pub const IDLE_BUCKETS: [f64; 15] = [
    4.0, 5.0, 6.0, 15.0, 30.0, 60.0, 65.0, 75.0, 240.0, 300.0, 350.0, 600.0, 900.0, 1200.0, 3600.0,
];

/// The label of the peers past `MAX_PEERS`.
const OTHER: &str = "other";

/// Concurrent connections served; one more is closed at once.
const MAX_CONNECTIONS: usize = 16;
/// A request head larger than this is answered 431 and closed.
const MAX_REQUEST: usize = 8 * 1024;
/// After the answer, the most of the rest of a request read and dropped, and how long
/// each read of it waits.
const DRAIN: usize = 256 * 1024;
const DRAIN_WAIT: Duration = Duration::from_millis(200);
/// How long one connection may take from accept to the last byte written.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(3);
/// A scrape flood is served from the same encoding for this long.
const CACHE: Duration = Duration::from_millis(250);
/// How often the accept loop looks at the stop flag when no one connects.
const ACCEPT_POLL: Duration = Duration::from_millis(25);

/// What `--metrics-listen` asks for.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
    /// The `--target` values as given, each with what it matches: a peer label.
    pub targets: Vec<(Target, String)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlaggedLabels {
    verdict: &'static str,
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MiddleboxLabels {
    peer: String,
    /// `reset` (a RST answered the request) or `drop` (nothing did).
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric staleconn exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    packets: Counter,
    kernel_dropped: Counter,
    flows_tracked: Gauge,
    evictions: Counter,
    flows_judged: Family<VerdictLabels, Counter>,
    flows_flagged: Family<FlaggedLabels, Counter>,
    requests_lost: Family<PeerLabels, Counter>,
    failure_idle: Family<VerdictLabels, Histogram>,
    keepalive_timeout: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    keepalive_samples: Family<PeerLabels, Gauge>,
    middlebox_survived: Family<MiddleboxLabels, Gauge<f64, AtomicU64>>,
    middlebox_failed: Family<MiddleboxLabels, Gauge<f64, AtomicU64>>,
    /// The counters' last totals from the pipeline, so each update adds the difference.
    last: Mutex<Totals>,
    peers: Mutex<PeerNames>,
    /// The last encoding and when it was made.
    cache: Mutex<Option<(Instant, Arc<String>)>>,
}

#[derive(Default)]
struct Totals {
    packets: u64,
    kernel_dropped: u64,
    evictions: u64,
}

/// The peer labels handed out so far: each `--target` has its own, and the first peers
/// with something to count keep their address up to `MAX_PEERS` labels in all; every later
/// one is `other`.
struct PeerNames {
    targets: Vec<(Target, String)>,
    named: HashMap<SocketAddr, String>,
}

impl PeerNames {
    /// The label of `server`'s counts.
    fn label(&mut self, server: SocketAddr) -> String {
        // A target's label is worked out again each time: a CIDR block can match any
        // number of servers, and none of them is remembered.
        if let Some((_, given)) = self.targets.iter().find(|(t, _)| t.matches(server)) {
            return given.clone();
        }
        if let Some(name) = self.named.get(&server) {
            return name.clone();
        }
        if self.named.len() + self.targets.len() >= MAX_PEERS {
            return OTHER.to_string();
        }
        let name = server.to_string();
        self.named.insert(server, name.clone());
        name
    }

    /// Whether `server` has a label of its own, or would get one now.
    fn has_label(&self, server: SocketAddr) -> bool {
        self.targets.iter().any(|(t, _)| t.matches(server))
            || self.named.contains_key(&server)
            || self.named.len() + self.targets.len() < MAX_PEERS
    }
}

/// The pipeline's own counts, read by the live loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipelineCounts {
    pub packets: u64,
    pub kernel_dropped: u64,
    pub flows_tracked: usize,
    pub evictions: u64,
}

impl Metrics {
    pub fn new(targets: Vec<(Target, String)>) -> Metrics {
        let mut registry = Registry::with_prefix("staleconn");
        registry.register(
            "build",
            "The staleconn version running",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let packets = Counter::default();
        registry.register("packets", "Packets read from the capture", packets.clone());
        let kernel_dropped = Counter::default();
        registry.register(
            "kernel_dropped_packets",
            "Packets the kernel or the interface dropped before staleconn read them",
            kernel_dropped.clone(),
        );
        let flows_tracked = Gauge::default();
        registry.register(
            "flows_tracked",
            "TCP flows open in the flow table",
            flows_tracked.clone(),
        );
        let evictions = Counter::default();
        registry.register(
            "flow_evictions",
            "Flows evicted from the full flow table (--max-flows) while still open",
            evictions.clone(),
        );
        let flows_judged = Family::default();
        registry.register(
            "flows_judged",
            "Flows judged, by verdict",
            flows_judged.clone(),
        );
        let flows_flagged = Family::default();
        registry.register(
            "flows_flagged",
            "Flows whose request died, by verdict and peer (the --target given or the server address; other past the busiest peers)",
            flows_flagged.clone(),
        );
        let requests_lost = Family::default();
        registry.register(
            "requests_lost",
            "Requests that got no response on a flagged flow, by peer",
            requests_lost.clone(),
        );
        let failure_idle =
            Family::<VerdictLabels, Histogram>::new_with_constructor(failure_idle_histogram);
        registry.register_with_unit(
            "failure_idle",
            "The idle time before each failed request, by verdict",
            Unit::Seconds,
            failure_idle.clone(),
        );
        let keepalive_timeout = Family::default();
        registry.register_with_unit(
            "keepalive_timeout",
            "Each peer's keep-alive timer as measured from its idle closes (the median)",
            Unit::Seconds,
            keepalive_timeout.clone(),
        );
        let keepalive_samples = Family::default();
        registry.register(
            "keepalive_timeout_samples",
            "Idle closes the peer's keep-alive timer was measured from",
            keepalive_samples.clone(),
        );
        let middlebox_survived = Family::default();
        registry.register_with_unit(
            "middlebox_longest_survived",
            "The longest silence a peer's connection survived (the middlebox bracket's low end)",
            Unit::Seconds,
            middlebox_survived.clone(),
        );
        let middlebox_failed = Family::default();
        registry.register_with_unit(
            "middlebox_shortest_failed",
            "The shortest silence after which a request to the peer was reset or dropped (the bracket's high end)",
            Unit::Seconds,
            middlebox_failed.clone(),
        );
        Metrics {
            registry,
            packets,
            kernel_dropped,
            flows_tracked,
            evictions,
            flows_judged,
            flows_flagged,
            requests_lost,
            failure_idle,
            keepalive_timeout,
            keepalive_samples,
            middlebox_survived,
            middlebox_failed,
            last: Mutex::new(Totals::default()),
            peers: Mutex::new(PeerNames {
                targets,
                named: HashMap::new(),
            }),
            cache: Mutex::new(None),
        }
    }
}

impl FlowObserver for Metrics {
    /// A flagged flow, the moment its story is certain: counted now rather than after its
    /// grace period.
    fn announced(&self, report: &FlowReport) {
        self.count(
            report.server,
            report.requests,
            report.responses,
            &report.finding,
        );
    }

    fn judged(&self, flow: &Flow, finding: &Finding, announced: bool) {
        if !announced {
            self.count(flow.server, flow.requests, flow.responses, finding);
        }
    }
}

impl Metrics {
    /// Counts one judged flow: its verdict, and if flagged, its peer, its lost requests
    /// and the idle before the failure.
    fn count(&self, server: SocketAddr, requests: u32, responses: u32, finding: &Finding) {
        let verdict = finding.verdict;
        self.flows_judged
            .get_or_create(&VerdictLabels {
                verdict: verdict.name(),
            })
            .inc();
        if !verdict.flagged() {
            return;
        }
        let peer = self.peer(server);
        self.flows_flagged
            .get_or_create(&FlaggedLabels {
                verdict: verdict.name(),
                peer: peer.clone(),
            })
            .inc();
        // The request that died, and any sent after it that were never answered either.
        let lost = requests.saturating_sub(responses).max(1);
        self.requests_lost
            .get_or_create(&PeerLabels { peer })
            .inc_by(u64::from(lost));
        let evidence = &finding.evidence;
        // As the advice counts it: a race from the last payload (the server's timer), a
        // reset or a drop from the last packet (the middlebox's).
        let idle = match verdict {
            Verdict::KeepaliveRace => evidence.request_idle_s,
            _ => evidence.request_silence_s,
        };
        if let Some(idle) = idle {
            self.failure_idle
                .get_or_create(&VerdictLabels {
                    verdict: verdict.name(),
                })
                .observe(idle);
        }
    }

    /// Whether a server's timers are wanted: it has a label of its own (a figure of
    /// `other` would mix servers). The live loop works out only these.
    pub fn wants_server(&self, server: SocketAddr) -> bool {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .has_label(server)
    }

    /// The per-server results so far (busiest first): timers and brackets, for the peers
    /// with a label of their own. Where a target names several servers, the busiest's.
    pub fn servers(&self, servers: &[ServerAdvice]) {
        for server in servers.iter().rev() {
            let peer = self.peer(server.server);
            if peer == OTHER {
                continue;
            }
            if let Some(keepalive) = &server.keepalive {
                let labels = PeerLabels { peer: peer.clone() };
                self.keepalive_timeout
                    .get_or_create(&labels)
                    .set(keepalive.median_s);
                self.keepalive_samples
                    .get_or_create(&labels)
                    .set(i64::try_from(keepalive.n).unwrap_or(i64::MAX));
            }
            let brackets = [
                (
                    "reset",
                    server.middlebox.as_ref().map(|b| (b.survived_s, b.reset_s)),
                ),
                (
                    "drop",
                    server
                        .blackhole
                        .as_ref()
                        .map(|d| (d.survived_s, d.dropped_s)),
                ),
            ];
            for (kind, bracket) in brackets {
                let Some((survived, failed)) = bracket else {
                    continue;
                };
                let labels = MiddleboxLabels {
                    peer: peer.clone(),
                    kind,
                };
                self.middlebox_failed.get_or_create(&labels).set(failed);
                if let Some(survived) = survived {
                    self.middlebox_survived.get_or_create(&labels).set(survived);
                }
            }
        }
    }

    /// The capture's own counts: each counter grows by what is new since the last call.
    pub fn counts(&self, counts: PipelineCounts) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        self.packets
            .inc_by(counts.packets.saturating_sub(last.packets));
        self.kernel_dropped
            .inc_by(counts.kernel_dropped.saturating_sub(last.kernel_dropped));
        self.evictions
            .inc_by(counts.evictions.saturating_sub(last.evictions));
        *last = Totals {
            packets: last.packets.max(counts.packets),
            kernel_dropped: last.kernel_dropped.max(counts.kernel_dropped),
            evictions: last.evictions.max(counts.evictions),
        };
        self.flows_tracked
            .set(i64::try_from(counts.flows_tracked).unwrap_or(i64::MAX));
    }

    /// The exposition in the OpenMetrics text format, as `/metrics` serves it.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The exposition, encoded at most once per `CACHE` however many scrapes come.
    fn exposition(&self) -> Arc<String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some((at, text)) if at.elapsed() < CACHE => Arc::clone(text),
            _ => {
                let text = Arc::new(self.encode());
                *cache = Some((Instant::now(), Arc::clone(&text)));
                text
            }
        }
    }

    fn peer(&self, server: SocketAddr) -> String {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .label(server)
    }
}

fn failure_idle_histogram() -> Histogram {
    Histogram::new(IDLE_BUCKETS)
}

/// The endpoint's socket, bound and not yet served: bound while still root (a low port
/// works), served once root is dropped.
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    pub fn bind(address: SocketAddr) -> Result<MetricsListener> {
        let listener = TcpListener::bind(address)
            .with_context(|| format!("--metrics-listen {address}: cannot listen"))?;
        listener.set_nonblocking(true)?;
        Ok(MetricsListener { listener })
    }

    /// Serves `metrics` from a thread of its own until the returned server is dropped.
    pub fn serve(self, metrics: Arc<Metrics>) -> Result<MetricsServer> {
        let address = self.listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let listener = self.listener;
        let acceptor = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || accept_loop(&listener, &metrics, &flag))
            .context("cannot start the metrics thread")?;
        Ok(MetricsServer {
            address,
            stop,
            acceptor: Some(acceptor),
        })
    }
}

/// The HTTP endpoint, serving until dropped.
pub struct MetricsServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Where it listens (the port chosen, when 0 was asked).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, metrics: &Arc<Metrics>, stop: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            // A connection reset before it was accepted, or out of descriptors: wait a
            // moment rather than spin.
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            // Too many at once: closed unread, the cheapest answer.
            drop(stream);
            continue;
        }
        let metrics = Arc::clone(metrics);
        let slot = Arc::clone(&active);
        let spawned = std::thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || {
                serve(stream, &metrics);
                slot.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One request per connection, answered and closed.
fn serve(mut stream: TcpStream, metrics: &Metrics) {
    let deadline = Instant::now() + CONNECTION_DEADLINE;
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let response = match read_head(&mut stream, deadline) {
        Ok(head) => respond(&head, metrics),
        Err(HeadError::TooLarge) => plain(
            431,
            "Request Header Fields Too Large",
            "request too large\n",
        ),
        Err(HeadError::Malformed) => plain(400, "Bad Request", "bad request\n"),
        Err(HeadError::Gone) => return,
    };
    let _ = stream.set_write_timeout(Some(remaining(deadline)));
    let _ = stream.write_all(&response);
    let _ = stream.shutdown(Shutdown::Write);
    // Closing with the client's bytes unread (an oversized head, a body) would send RST,
    // which can reach the client before the answer it should read: drain a bounded
    // amount first.
    drain(&mut stream, deadline);
}

/// Reads and drops what the client still sends, up to `DRAIN` bytes, until it closes,
/// pauses for `DRAIN_WAIT` or the deadline comes.
fn drain(stream: &mut TcpStream, deadline: Instant) {
    let mut buf = [0u8; 4096];
    let mut left = DRAIN;
    while left > 0 {
        let wait = remaining(deadline).min(DRAIN_WAIT);
        if wait.is_zero() || stream.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

enum HeadError {
    TooLarge,
    Malformed,
    /// Closed, timed out or failed before a full head: nothing to answer.
    Gone,
}

/// Reads up to the blank line that ends a request head, within the deadline.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = remaining(deadline);
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Gone);
        }
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end + 4);
            return Ok(head);
        }
        if head.len() > MAX_REQUEST {
            return Err(HeadError::TooLarge);
        }
        if !head.is_ascii() {
            return Err(HeadError::Malformed);
        }
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// The answer to one request head: read-only, two paths.
fn respond(head: &[u8], metrics: &Metrics) -> Vec<u8> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let (method, path) = match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => (
            request.method.unwrap_or_default(),
            request.path.unwrap_or_default(),
        ),
        _ => return plain(400, "Bad Request", "bad request\n"),
    };
    let path = path.split('?').next().unwrap_or_default();
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return plain(405, "Method Not Allowed", "only GET and HEAD\n");
    }
    // Prometheus asks for OpenMetrics; curl, promtool and older scrapers get the
    // Prometheus text format, as client_golang negotiates it.
    let openmetrics = request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("accept")
            && String::from_utf8_lossy(h.value).contains("application/openmetrics-text")
    });
    match path {
        "/metrics" if openmetrics => {
            let body = metrics.exposition();
            response(
                200,
                "OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body.as_bytes(),
                head_only,
            )
        }
        "/metrics" => {
            let body = prometheus_text(&metrics.exposition());
            response(
                200,
                "OK",
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                head_only,
            )
        }
        "/healthz" => response(200, "OK", "text/plain; charset=utf-8", b"ok\n", head_only),
        _ => plain(404, "Not Found", "not found: try /metrics or /healthz\n"),
    }
}

/// The Prometheus text format (0.0.4) of an OpenMetrics exposition: the same samples,
/// with the family names the older format expects (a counter's `_total`, an info's
/// `_info`, as a gauge), without `# UNIT` and `# EOF`.
fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP comes before its TYPE, which decides the name it goes under.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').or(Some((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                other => (name.to_string(), other),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn plain(code: u16, reason: &str, body: &str) -> Vec<u8> {
    response(
        code,
        reason,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        false,
    )
}

fn response(code: u16, reason: &str, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_past_the_cap_are_other() {
        let mut names = PeerNames {
            targets: Vec::new(),
            named: HashMap::new(),
        };
        for port in 0..MAX_PEERS as u16 {
            let server = SocketAddr::from(([198, 18, 0, 1], 1000 + port));
            assert!(names.has_label(server));
            assert_eq!(names.label(server), server.to_string());
        }
        let late = SocketAddr::from(([198, 18, 0, 2], 80));
        assert!(!names.has_label(late));
        assert_eq!(names.label(late), "other");
        // A peer named before keeps its label.
        let first = SocketAddr::from(([198, 18, 0, 1], 1000));
        assert_eq!(names.label(first), first.to_string());
    }

    #[test]
    fn a_target_names_every_server_it_matches() {
        let target: Target = "198.18.0.0/24".parse().unwrap();
        let mut names = PeerNames {
            targets: vec![(target, "198.18.0.0/24".to_string())],
            named: HashMap::new(),
        };
        let a = SocketAddr::from(([198, 18, 0, 1], 443));
        let b = SocketAddr::from(([198, 18, 0, 9], 443));
        assert_eq!(names.label(a), "198.18.0.0/24");
        assert_eq!(names.label(b), "198.18.0.0/24");
        // Nothing is remembered per server of a target.
        assert!(names.named.is_empty());
    }

    #[test]
    fn the_exposition_has_the_build_info_and_the_buckets() {
        let metrics = Metrics::new(Vec::new());
        metrics.counts(PipelineCounts {
            packets: 10,
            kernel_dropped: 0,
            flows_tracked: 2,
            evictions: 0,
        });
        metrics.counts(PipelineCounts {
            packets: 25,
            ..PipelineCounts::default()
        });
        let text = metrics.encode();
        assert!(text.contains("staleconn_build_info{version=\""), "{text}");
        assert!(text.contains("staleconn_packets_total 25"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// One request on a fresh connection; the whole answer, or "" when closed unanswered.
    fn ask(address: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[test]
    fn the_server_answers_and_closes_what_is_past_its_cap() {
        let metrics = Arc::new(Metrics::new(Vec::new()));
        let server = MetricsListener::bind("127.0.0.1:0".parse().unwrap())
            .and_then(|l| l.serve(metrics))
            .unwrap();
        let address = server.address();
        let scrape = ask(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
        assert!(scrape.contains("text/plain; version=0.0.4"), "{scrape}");
        assert!(
            scrape.contains("# TYPE staleconn_packets_total counter"),
            "{scrape}"
        );
        // Idle connections fill every slot; one more is closed unanswered at once.
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        assert_eq!(ask(address, b"GET /healthz HTTP/1.1\r\n\r\n"), "");
        assert!(
            started.elapsed() < CONNECTION_DEADLINE,
            "{:?}",
            started.elapsed()
        );
        // Past their deadline the idle ones are closed, and the slots are free again.
        for mut stream in idle {
            stream
                .set_read_timeout(Some(CONNECTION_DEADLINE * 2))
                .unwrap();
            let mut byte = [0u8; 1];
            assert!(matches!(stream.read(&mut byte), Ok(0)));
        }
        std::thread::sleep(Duration::from_millis(100));
        let healthy = ask(address, b"GET /healthz HTTP/1.1\r\n\r\n");
        assert!(healthy.ends_with("\r\n\r\nok\n"), "{healthy}");
        let openmetrics = ask(
            address,
            b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
        );
        assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    }

    #[test]
    fn the_text_format_names_counters_and_info_as_promtool_wants() {
        let text = prometheus_text(
            "# HELP a_packets Packets.\n# TYPE a_packets counter\na_packets_total 3\n# HELP a_build Build.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n# HELP a_idle_seconds Idle.\n# TYPE a_idle_seconds histogram\n# UNIT a_idle_seconds seconds\na_idle_seconds_count 0\n# EOF\n",
        );
        assert_eq!(
            text,
            "# HELP a_packets_total Packets.\n# TYPE a_packets_total counter\na_packets_total 3\n# HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n# HELP a_idle_seconds Idle.\n# TYPE a_idle_seconds histogram\na_idle_seconds_count 0\n"
        );
    }

    #[test]
    fn bad_requests_get_an_error() {
        let metrics = Metrics::new(Vec::new());
        let answer = |head: &str| String::from_utf8(respond(head.as_bytes(), &metrics)).unwrap();
        assert!(answer("GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(answer("GET /healthz HTTP/1.1\r\n\r\n").ends_with("ok\n"));
        assert!(answer("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(answer("GET /etc/passwd HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(answer("\x01\x02 nonsense\r\n\r\n").starts_with("HTTP/1.1 400"));
    }
}
