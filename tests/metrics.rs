//! `--metrics-listen` on a live capture in a network namespace, with the real traffic of
//! tests/live_traffic.py (a keep-alive race and a NAT reset): a real Prometheus server
//! scrapes it and its query API returns the counters and the measured keep-alive timer;
//! `promtool check metrics` passes on the exposition; bad clients (idle connections,
//! malformed and oversized requests, a scrape flood) each get an error or a close while the
//! capture keeps up. These need root (namespaces, capture); without it they say they were
//! skipped and why.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "common/tools.rs"]
mod tools;

const FILTER: &str = "tcp port 18080 or tcp port 18081";
const METRICS: &str = "127.0.0.1:9477";
const PROMETHEUS: &str = "127.0.0.1:19090";
/// The lab server's keep-alive timeout (KEEPALIVE_S in tests/live_traffic.py).
const KEEPALIVE_S: f64 = 1.0;
/// The idle before the NAT reset (NAT_IDLE_S in tests/live_traffic.py).
const NAT_IDLE_S: f64 = 2.6;

fn staleconn() -> String {
    assert_cmd::cargo::cargo_bin("staleconn")
        .display()
        .to_string()
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A network namespace with its loopback up, removed when dropped.
struct Netns {
    name: String,
}

impl Netns {
    /// `None`, with a note on stderr, when this test cannot run here (not root).
    fn new(test: &str, needs: &[&tools::Tool]) -> Option<Netns> {
        if !is_root() {
            eprintln!(
                "SKIPPED {test}: live capture tests need root (network namespaces, packet capture); CI runs them as root"
            );
            return None;
        }
        for tool in std::iter::once(&tools::IP).chain(needs.iter().copied()) {
            tools::require(tool);
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // A shared machine can ask for its own prefix, to tell its namespaces apart.
        let prefix =
            std::env::var("STALECONN_TEST_NETNS_PREFIX").unwrap_or_else(|_| "sc-metrics".into());
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        Some(ns)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Starts staleconn with `--metrics-listen` here, and waits until it serves.
    fn start_capture(&self) -> Capture {
        let mut child = self
            .command(&staleconn())
            .args([
                "-i",
                "lo",
                "--metrics-listen",
                METRICS,
                "--nat-idle",
                "2s",
                FILTER,
            ])
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start staleconn");
        let (lines, received) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        for expected in [
            "listening on lo",
            "serving metrics on http://127.0.0.1:9477",
        ] {
            let line = received
                .recv_timeout(Duration::from_secs(10))
                .expect("staleconn says where it listens");
            assert!(line.contains(expected), "{line}");
        }
        Capture {
            child,
            stderr: received,
        }
    }

    /// The lab traffic: a keep-alive race and a NAT reset (see tests/live.rs).
    fn make_traffic(&self) {
        let out = self
            .command("timeout")
            .args(["30", "python3"])
            .arg(repo("tests/live_traffic.py"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "traffic: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(log.contains("RemoteDisconnected"), "{log}");
        assert!(log.contains("ConnectionResetError"), "{log}");
    }

    /// Runs tests/metrics_clients.py here; its standard output.
    fn clients(&self, args: &[&str]) -> String {
        let out = self
            .command("timeout")
            .args(["120", "python3"])
            .arg(repo("tests/metrics_clients.py"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "metrics_clients.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// One scrape of staleconn's /metrics, as curl or promtool would get it.
    fn scrape(&self) -> String {
        self.clients(&["get", &format!("http://{METRICS}/metrics")])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A running staleconn.
struct Capture {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Capture {
    /// Its resident memory, in KiB (`ip netns exec` execs staleconn: the pid is its own).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Ends it with SIGINT and waits (bounded): its exit code, stdout and stderr.
    fn stop(mut self) -> (i32, String, String) {
        // SAFETY: kill with a pid this test started and still waits on.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("staleconn did not stop");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let stderr: Vec<String> = self.stderr.try_iter().collect();
        (status.code().unwrap_or(-1), stdout, stderr.join("\n"))
    }
}

/// A Prometheus server in the namespace, scraping staleconn every second; killed when
/// dropped.
struct Prometheus {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(ns: &Netns) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: staleconn\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{METRICS}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = ns
            .command(tools::PROMETHEUS.program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={PROMETHEUS}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, _dir: dir }
    }

    /// The result vector of an instant query, or nothing while Prometheus is not up yet.
    fn query(&self, ns: &Netns, promql: &str) -> Vec<Value> {
        let url = format!(
            "http://{PROMETHEUS}/api/v1/query?query={}",
            url_encode(promql)
        );
        let out = ns
            .command("timeout")
            .args(["20", "python3"])
            .arg(repo("tests/metrics_clients.py"))
            .args(["get", &url])
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The query's single value once it satisfies `want`, polled for at most 60 s.
    fn wait_for(&self, ns: &Netns, promql: &str, want: impl Fn(f64) -> bool) -> (Value, f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let result = self.query(ns, promql);
            if let [series] = result.as_slice()
                && let Some(value) = series["value"][1].as_str().and_then(|v| v.parse().ok())
                && want(value)
            {
                return (series["metric"].clone(), value);
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never answered {promql} as wanted; last: {result:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of one sample line of an exposition, by its name and labels as written.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_listen_needs_a_live_capture_and_an_address() {
    let file = repo("testdata/blackhole-client.pcap");
    let out = Command::new(staleconn())
        .arg("-r")
        .arg(&file)
        .args(["--metrics-listen", METRICS])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("add -i IFACE"), "{stderr}");

    let out = Command::new(staleconn())
        .args(["-i", "lo", "--metrics-listen", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "staleconn: --metrics-listen 'localhost': use ADDR:PORT, e.g. 127.0.0.1:9477 or 0.0.0.0:9477"
    );
}

#[test]
fn prometheus_scrapes_the_race_the_reset_and_the_measured_timer() {
    let Some(ns) = Netns::new(
        "prometheus_scrapes_the_race_the_reset_and_the_measured_timer",
        &[
            &tools::PYTHON3,
            &tools::IPTABLES,
            &tools::PROMETHEUS,
            &tools::PROMTOOL,
        ],
    ) else {
        return;
    };
    let capture = ns.start_capture();
    let prometheus = Prometheus::start(&ns);
    ns.make_traffic();

    let race = r#"staleconn_flows_flagged_total{verdict="keepalive_race"}"#;
    let (labels, races) = prometheus.wait_for(&ns, race, |v| v >= 1.0);
    assert_eq!(races, 1.0);
    assert_eq!(labels["peer"], "127.0.0.1:18080", "{labels}");
    let reset = r#"staleconn_flows_flagged_total{verdict="nat_idle_reset"}"#;
    let (labels, resets) = prometheus.wait_for(&ns, reset, |v| v >= 1.0);
    assert_eq!(resets, 1.0);
    assert_eq!(labels["peer"], "127.0.0.1:18081", "{labels}");
    let (_, lost) = prometheus.wait_for(&ns, "sum(staleconn_requests_lost_total)", |v| v >= 2.0);
    assert_eq!(lost, 2.0);
    let timer = r#"staleconn_keepalive_timeout_seconds{peer="127.0.0.1:18080"}"#;
    let (_, measured) = prometheus.wait_for(&ns, timer, |_| true);
    assert!(
        (KEEPALIVE_S..KEEPALIVE_S + 0.5).contains(&measured),
        "measured keep-alive timer {measured} s, the server's is {KEEPALIVE_S} s"
    );
    let samples = r#"staleconn_keepalive_timeout_samples{peer="127.0.0.1:18080"}"#;
    let (_, samples) = prometheus.wait_for(&ns, samples, |v| v >= 1.0);
    let bracket =
        r#"staleconn_middlebox_shortest_failed_seconds{peer="127.0.0.1:18081",kind="reset"}"#;
    let (_, failed) = prometheus.wait_for(&ns, bracket, |_| true);
    assert!(
        (NAT_IDLE_S..NAT_IDLE_S + 0.5).contains(&failed),
        "shortest failed silence {failed} s, the lab's is {NAT_IDLE_S} s"
    );
    // Both failures came after an idle under 4 s: the histogram's first bucket.
    let first_bucket = r#"sum(staleconn_failure_idle_seconds_bucket{le="4.0"})"#;
    let (_, under_4s) = prometheus.wait_for(&ns, first_bucket, |v| v >= 2.0);
    assert_eq!(under_4s, 2.0);
    let (_, up) = prometheus.wait_for(&ns, r#"up{job="staleconn"}"#, |_| true);
    assert_eq!(up, 1.0);
    let (build, _) = prometheus.wait_for(&ns, "staleconn_build_info", |v| v == 1.0);
    assert_eq!(build["version"], env!("CARGO_PKG_VERSION"));
    eprintln!(
        "Prometheus: races {races}, resets {resets}, requests lost {lost}, keep-alive timer {measured} s from {samples} samples, middlebox shortest failed {failed} s, failures under 4 s idle {under_4s}"
    );

    let exposition = ns.scrape();
    eprintln!("/metrics:\n{exposition}");
    let mut promtool = Command::new(tools::PROMTOOL.program)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // Prometheus asked for OpenMetrics and got it.
    let openmetrics = ns.clients(&[
        "get",
        &format!("http://{METRICS}/metrics"),
        "application/openmetrics-text; version=1.0.0",
    ]);
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");

    let (code, _, stderr) = capture.stop();
    assert_eq!(code, 1, "{stderr}");
}

#[test]
fn bad_clients_get_an_error_or_a_close_and_the_capture_keeps_up() {
    let Some(ns) = Netns::new(
        "bad_clients_get_an_error_or_a_close_and_the_capture_keeps_up",
        &[&tools::PYTHON3, &tools::IPTABLES],
    ) else {
        return;
    };
    let capture = ns.start_capture();
    let healthy = ns.clients(&["get", &format!("http://{METRICS}/healthz")]);
    assert_eq!(healthy, "ok\n");
    let rss_before = capture.rss_kib();
    let report = std::thread::scope(|s| {
        let traffic = s.spawn(|| ns.make_traffic());
        let report = ns.clients(&["bad", "127.0.0.1", "9477"]);
        traffic.join().unwrap();
        report
    });
    let rss_after = capture.rss_kib();
    eprintln!(
        "bad clients: {report}; staleconn RSS {rss_before} KiB before, {rss_after} KiB after"
    );
    let report: Value = serde_json::from_str(&report).unwrap();

    assert_eq!(report["idle_opened"], 200, "{report}");
    assert_eq!(report["idle_closed_by_server"], 200, "{report}");
    assert!(
        report["idle_all_closed_s"].as_f64().unwrap() < 6.0,
        "{report}"
    );
    let bad = &report["bad"];
    for (case, status) in [
        ("garbage", "400"),
        ("no_version", "400"),
        ("post", "405"),
        ("unknown_path", "404"),
        ("oversized_header", "431"),
        ("endless_line", "431"),
    ] {
        let line = bad[case].as_str().unwrap();
        assert!(line.contains(status), "{case}: {line}");
    }
    assert_eq!(bad["half_request"], "closed", "{report}");
    let flood = &report["flood"];
    assert_eq!(flood["other"], 0, "{report}");
    assert!(flood["ok"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["after"].as_str().unwrap().contains("200"),
        "{report}"
    );
    // Threads and buffers of the flood are gone again: a few MiB at most.
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // The capture kept up: both failures judged, nothing dropped by the kernel.
    std::thread::sleep(Duration::from_millis(1500));
    let exposition = ns.scrape();
    assert_eq!(
        sample(&exposition, "staleconn_kernel_dropped_packets_total"),
        Some(0.0),
        "{exposition}"
    );
    for verdict in ["keepalive_race", "nat_idle_reset"] {
        let flagged = format!("staleconn_flows_flagged_total{{verdict=\"{verdict}\",peer=");
        assert!(exposition.contains(&flagged), "{verdict}: {exposition}");
    }
    let (code, _, stderr) = capture.stop();
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("kernel dropped"), "{stderr}");
}
