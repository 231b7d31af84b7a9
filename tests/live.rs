//! Live capture, on the loopback of a network namespace each test makes, with real traffic
//! from real kernel TCP (tests/live_traffic.py): the live verdicts and figures equal the
//! offline analysis of the `-w` file of the same run; live JSON is event lines, and
//! `--keep-flagged` pcaps hold each flagged flow's failure; every way of stopping ends with the
//! report and the kernel's counts; a missing device and missing permission give one line.
//! These need root (namespaces, capture); without it they say they were skipped and why.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "common/tools.rs"]
mod tools;

const FILTER: &str = "tcp port 18080 or tcp port 18081";
/// The node every event line names (`NODE_NAME`, as Kubernetes' downward API sets it).
const NODE: &str = "test-node-7";

fn staleconn() -> String {
    assert_cmd::cargo::cargo_bin("staleconn")
        .display()
        .to_string()
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
    /// `None`, with a note on stderr, when this test cannot run here (not root). Fails
    /// the test in one line naming the package when `ip` or one of the other programs
    /// it `needs` is missing, before anything is started.
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
        let name = format!(
            "sc-test-{}-{}",
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

    /// Starts staleconn here and waits until it is listening.
    fn start_capture(&self, args: &[&str]) -> Capture {
        let mut child = self
            .command(&staleconn())
            .args(args)
            .env("NO_COLOR", "1")
            .env("NODE_NAME", NODE)
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
        let first = received
            .recv_timeout(Duration::from_secs(10))
            .expect("staleconn says it is listening");
        assert!(first.contains("listening on lo"), "{first}");
        Capture {
            child,
            stderr: received,
        }
    }

    /// The lab traffic: a short keep-alive server raced by a pooled client, and a
    /// connection that an iptables REJECT answers with RST after 2.6 s idle. A test that
    /// calls it names python3 and iptables in its `Netns::new`.
    fn make_traffic(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/live_traffic.py");
        let out = self
            .command("timeout")
            .args(["30", "python3"])
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "traffic: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            log.contains("\"race\"") && log.contains("RemoteDisconnected"),
            "{log}"
        );
        assert!(log.contains("ConnectionResetError"), "{log}");
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
    fn signal(&self, signal: i32) {
        // `ip netns exec` execs staleconn, so the child's pid is staleconn's own.
        // SAFETY: kill with a pid this test started and still waits on.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits (bounded) for it to end and returns its exit code, stdout and stderr.
    fn finish(mut self) -> (i32, String, String) {
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

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn flows_by_endpoints(doc: &Value) -> Vec<(String, String, Value)> {
    let mut flows: Vec<(String, String, Value)> = doc["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["client"].to_string(), f["server"].to_string(), f.clone()))
        .collect();
    flows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    flows
}

/// Live `--format json` output: one JSON object per line, each an event.
fn event_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[test]
fn live_verdicts_equal_offline_verdicts_of_the_same_packets() {
    let Some(ns) = Netns::new(
        "live_verdicts_equal_offline_verdicts_of_the_same_packets",
        &[&tools::PYTHON3, &tools::IPTABLES],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("live.pcap");
    let written = written.to_str().unwrap();
    let flagged = dir.path().join("flagged.pcap");
    let flagged = flagged.to_str().unwrap();
    let capture = ns.start_capture(&[
        "-i",
        "lo",
        "-w",
        written,
        "--write-flagged",
        flagged,
        "--format",
        "json",
        "--nat-idle",
        "2s",
        FILTER,
    ]);
    ns.make_traffic();
    std::thread::sleep(Duration::from_millis(500));
    capture.signal(libc::SIGINT);
    let (code, stdout, stderr) = capture.finish();
    assert_eq!(code, 1, "{stderr}");

    // Event lines: each flagged flow as it was certain, then the final summary line.
    let events = event_lines(&stdout);
    let announced = of_type(&events, "flagged");
    let last = events.last().expect("output");
    assert_eq!(last["type"], "final", "{stdout}");
    let mut announced_verdicts: Vec<&str> = announced
        .iter()
        .map(|f| f["verdict"].as_str().unwrap())
        .collect();
    announced_verdicts.sort();
    assert_eq!(
        announced_verdicts,
        ["keepalive_race", "nat_idle_reset"],
        "{stdout}"
    );

    // --write-flagged copied the two flagged flows out of the -w file.
    assert!(stderr.contains("of 2 flagged flows to"), "{stderr}");
    let copied = Command::new(staleconn())
        .args(["-r", flagged, "--format", "json", "--nat-idle", "2s"])
        .output()
        .unwrap();
    let copied: Value = serde_json::from_slice(&copied.stdout).unwrap();
    assert_eq!(copied["summary"]["flows"], 2, "{copied}");
    assert_eq!(copied["summary"]["flagged"], 2, "{copied}");

    let kernel = &last["summary"]["kernel"];
    assert!(kernel["received"].as_u64().unwrap() > 0, "{kernel}");
    assert_eq!(kernel["dropped"], 0);

    let offline = Command::new(staleconn())
        .args([
            "-r",
            written,
            "--format",
            "json",
            "--nat-idle",
            "2s",
            FILTER,
        ])
        .output()
        .unwrap();
    assert_eq!(offline.status.code(), Some(1));
    let offline: Value = serde_json::from_slice(&offline.stdout).unwrap();

    // Every flow counted live, by verdict, as offline; the flagged ones with the same
    // evidence and figures.
    assert_eq!(last["summary"]["flows"], 3, "{last}");
    assert_eq!(last["summary"]["verdicts"], offline["summary"]["verdicts"]);
    assert_eq!(last["summary"]["packets"], offline["summary"]["packets"]);
    let offline_flows = flows_by_endpoints(&offline);
    let offline_flagged: Vec<_> = offline_flows
        .iter()
        .filter(|(_, _, f)| f["flagged"] == true)
        .collect();
    assert_eq!(offline_flagged.len(), announced.len());
    for event in &announced {
        let live = &event["flow"];
        let (client, server, offline) = offline_flagged
            .iter()
            .find(|(_, _, f)| f["client"] == live["client"] && f["server"] == live["server"])
            .unwrap_or_else(|| panic!("{event} not flagged offline"));
        for key in [
            "client",
            "server",
            "verdict",
            "evidence",
            "first_seen",
            "requests",
            "longest_idle_s",
        ] {
            assert_eq!(
                live[key], offline[key],
                "{client} -> {server}: {key} differs live and offline"
            );
        }
    }
}

/// Live `--format json --keep-flagged`: the event lines a log pipeline reads (valid JSON,
/// one per flagged flow, each with its type, time, node and id, and periodic summaries),
/// and for the race and the reset a pcap that holds the failure.
#[test]
fn event_lines_and_kept_pcaps_for_a_race_and_a_reset() {
    let Some(ns) = Netns::new(
        "event_lines_and_kept_pcaps_for_a_race_and_a_reset",
        &[&tools::PYTHON3, &tools::IPTABLES],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept");
    let capture = ns.start_capture(&[
        "-i",
        "lo",
        "--format",
        "json",
        "--nat-idle",
        "2s",
        "--keep-flagged",
        kept.to_str().unwrap(),
        "--summary-every",
        "1s",
        FILTER,
    ]);
    ns.make_traffic();
    std::thread::sleep(Duration::from_millis(1500));
    capture.signal(libc::SIGTERM);
    let (code, stdout, stderr) = capture.finish();
    assert_eq!(code, 1, "{stderr}");
    let events = event_lines(&stdout);

    let mut ids = std::collections::HashSet::new();
    for event in &events {
        assert_eq!(event["node"], NODE, "{event}");
        let time = event["time"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(time).unwrap();
        assert_eq!(parsed.offset().local_minus_utc(), 0, "{time}");
        // Nanoseconds: nine digits after the second.
        assert!(
            time.ends_with('Z') && time.split('.').nth(1).unwrap().len() == 10,
            "{time}"
        );
        assert!(
            ids.insert(event["id"].as_str().unwrap().to_string()),
            "{event}"
        );
    }
    assert!(of_type(&events, "summary").len() >= 2, "{stdout}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "final");
    assert_eq!(of_type(&events, "final").len(), 1);
    assert_eq!(last["flows_judged"], last["summary"]["flows"], "{last}");
    assert_eq!(last["flagged"], 2, "{last}");
    // The server's 1 s keep-alive timer is measured by the end.
    let server = last["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == "127.0.0.1:18080")
        .unwrap_or_else(|| panic!("{last}"));
    assert!(
        server["keepalive"]["min_s"].as_f64().unwrap() >= 1.0,
        "{server}"
    );

    let flagged = of_type(&events, "flagged");
    let mut verdicts: Vec<&str> = flagged
        .iter()
        .map(|e| e["verdict"].as_str().unwrap())
        .collect();
    verdicts.sort();
    assert_eq!(verdicts, ["keepalive_race", "nat_idle_reset"], "{stdout}");
    for event in &flagged {
        // The id names the node, the run and the flow (its first frame).
        let id = event["id"].as_str().unwrap();
        assert!(id.starts_with(&format!("{NODE}/")), "{id}");
        assert!(
            id.ends_with(&format!("/flow-{}", event["flow"]["id"])),
            "{id}"
        );

        // The kept pcap holds the handshake and the whole timeline, failure included.
        let pcap = &event["pcap"];
        let path = pcap["path"].as_str().unwrap_or_else(|| panic!("{event}"));
        assert!(Path::new(path).starts_with(&kept), "{path}");
        let name = Path::new(path).file_name().unwrap().to_str().unwrap();
        assert!(name.contains(event["verdict"].as_str().unwrap()), "{name}");
        assert!(name.contains("127.0.0.1_1808"), "{name}");
        let timeline = event["flow"]["timeline"].as_array().unwrap();
        assert_eq!(
            pcap["timeline_frames"].as_u64(),
            Some(timeline.len() as u64),
            "{event}"
        );
        let reread = Command::new(staleconn())
            .args(["-r", path, "--format", "json", "--nat-idle", "2s"])
            .output()
            .unwrap();
        let reread: Value = serde_json::from_slice(&reread.stdout).unwrap();
        assert_eq!(reread["summary"]["flows"], 1, "{reread}");
        let flow = &reread["flows"][0];
        assert_eq!(flow["verdict"], event["verdict"], "{reread}");
        // The same figures; frames are numbered within the kept file.
        let without_frames = |evidence: &Value| -> Value {
            let mut evidence = evidence.clone();
            evidence
                .as_object_mut()
                .unwrap()
                .retain(|key, _| !key.ends_with("_frame"));
            evidence
        };
        assert_eq!(
            without_frames(&flow["evidence"]),
            without_frames(&event["flow"]["evidence"]),
            "{reread}"
        );
        assert_eq!(flow["first_seen"], event["flow"]["first_seen"], "{reread}");
        // Ends with the failure (the race's RST or the NAT's).
        let frames = reread["summary"]["packets"]["read"].as_u64().unwrap();
        assert_eq!(frames, pcap["packets"].as_u64().unwrap(), "{reread}");
        let last = flow["timeline"].as_array().unwrap().last().unwrap();
        assert!(last["flags"].as_str().unwrap().contains("RST"), "{flow}");
    }
    let files = std::fs::read_dir(&kept).unwrap().count();
    assert_eq!(files, 2);
}

#[test]
fn sigterm_ends_with_the_table_and_kernel_counts() {
    let Some(ns) = Netns::new("sigterm_ends_with_the_table_and_kernel_counts", &[]) else {
        return;
    };
    let capture = ns.start_capture(&["-i", "lo", FILTER]);
    capture.signal(libc::SIGTERM);
    let (code, stdout, stderr) = capture.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Flows: 0 analysed, 0 flagged"), "{stdout}");
    assert!(
        stdout.contains("Kernel: 0 packets received, 0 dropped by the kernel"),
        "{stdout}"
    );
}

#[test]
fn duration_ends_the_capture() {
    let Some(ns) = Netns::new("duration_ends_the_capture", &[]) else {
        return;
    };
    let started = Instant::now();
    let capture = ns.start_capture(&["-i", "lo", "--duration", "1s", FILTER]);
    let (code, stdout, stderr) = capture.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(stdout.contains("Kernel:"), "{stdout}");
}

#[test]
fn count_ends_the_capture_after_that_many_packets() {
    let Some(ns) = Netns::new(
        "count_ends_the_capture_after_that_many_packets",
        &[&tools::PYTHON3],
    ) else {
        return;
    };
    let capture = ns.start_capture(&["-i", "lo", "-c", "4", "--all", FILTER]);
    // Two refused connections: SYN and RST each.
    let connect = "import socket\nfor _ in range(3):\n  s = socket.socket(); s.settimeout(2)\n  try: s.connect(('127.0.0.1', 18080))\n  except OSError: pass\n  s.close()";
    run(ns.command("timeout").args(["20", "python3", "-c", connect]));
    let (code, stdout, stderr) = capture.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Packets: 4 read"), "{stdout}");
    assert!(stdout.contains("refused"), "{stdout}");
    assert!(stdout.contains("Kernel:"), "{stdout}");
}

#[test]
fn no_such_device_is_one_line_naming_the_devices() {
    let Some(ns) = Netns::new("no_such_device_is_one_line_naming_the_devices", &[]) else {
        return;
    };
    let out = ns
        .command(&staleconn())
        .args(["-i", "nosuchdev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("nosuchdev: no such interface; interfaces here:") && stderr.contains("lo"),
        "{stderr}"
    );
}

#[test]
fn no_permission_says_what_to_run() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let Some(_ns) = Netns::new("no_permission_says_what_to_run", &[]) else {
        return;
    };
    // A copy nobody can run, wherever the checkout lives.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("staleconn");
    std::fs::copy(staleconn(), &binary).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&binary)
        .args(["-i", "lo"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no permission to capture")
            && stderr.contains("setcap cap_net_raw,cap_net_admin"),
        "{stderr}"
    );
}

/// `--keep-flagged` names a directory that was there and that the `-Z` user cannot write:
/// one line, at start, rather than evidence silently lost later; and the directory's
/// owner is left as it was (staleconn hands over only a directory it made).
#[test]
fn keep_flagged_in_a_directory_the_user_cannot_write_is_one_line() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(ns) = Netns::new(
        "keep_flagged_in_a_directory_the_user_cannot_write_is_one_line",
        &[],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("root-only");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = ns
        .command(&staleconn())
        .args([
            "-i",
            "lo",
            "--keep-flagged",
            theirs.to_str().unwrap(),
            "-c",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("listening"))
        .collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(error[0].contains("nobody cannot write in it"), "{stderr}");
    assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 0);
}
