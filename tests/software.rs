//! Client and server software named from what each lab capture shows: every flow whose
//! client's bytes are in the capture gets the name of the client the lab ran (or of the
//! TLS stack several measured clients share, when that is all the fingerprint can say),
//! and every other flow gets "unknown", never a wrong name. The lab's clients per capture
//! are in testdata/README.md; which flow is which client is expected.tsv's scenario.

use std::collections::BTreeMap;

use staleconn::{Analysis, Settings, analyze_file};

fn analyse(capture: &str) -> Analysis {
    let path = format!("testdata/{capture}");
    analyze_file(&path, &Settings::default()).unwrap_or_else(|e| panic!("{path}: {e:#}"))
}

const GO: &str = "Go net/http";
const JAVA: &str = "Java (JDK TLS)";
const OPENSSL: &str = "Node.js or Python (OpenSSL, TLS 1.3 only)";
const PYTHON_HTTP_CLIENT: &str = "Python http.client";
const UNKNOWN: &str = "unknown";

/// The name a flow of this capture must get, from the client the lab ran for it and what
/// the capture holds of its bytes.
fn expected_client(capture: &str, verdict: &str, scenario: &str) -> &'static str {
    if verdict == "refused" {
        // Refused at the SYN: not one byte of the client's.
        return UNKNOWN;
    }
    let stem = capture.split('.').next().unwrap_or(capture);
    match stem {
        // Python's http.client in the clear: no User-Agent, Accept-Encoding: identity.
        "race-plain-client" | "race-plain-server" | "race-plain-client-midstream" => {
            PYTHON_HTTP_CLIENT
        }
        s if s.starts_with("nat-") || s.starts_with("blackhole-") => PYTHON_HTTP_CLIENT,
        // Python's ssl with TLS 1.2 at most: its own cipher list.
        "race-tls12-client"
        | "race-tls12-server"
        | "race-tls12-client-any"
        | "race-tls12-client-nano"
        | "race-tls12-client-sll" => "Python (ssl module)",
        // Snapshot length 96: the ClientHello is cut, nothing names the client.
        "race-tls12-client-s96" => UNKNOWN,
        // Python and Node with TLS 1.3 only send the same ClientHello: OpenSSL's.
        "race-tls13-client" | "race-tls13-server" | "node-tls13-client" | "node-tls13-server" => {
            OPENSSL
        }
        "node-tls12-client" => "Node.js",
        // HTTP/2 in the clear: the headers are HPACK-coded and there is no ClientHello.
        "node-h2c-client" => UNKNOWN,
        s if s.starts_with("go-") || s.starts_with("haproxy-go-") => GO,
        s if s.starts_with("jdk-")
            || s.starts_with("apache-")
            || s.starts_with("haproxy-apache-") =>
        {
            JAVA
        }
        // lab/db.sh: the JDBC drivers name themselves (pgjdbc's ApplicationName, MariaDB
        // Connector/J's connection attributes), PyMySQL its _client_name in the clear;
        // libpq, redis-py 4 and PyMySQL over TLS say nothing of themselves.
        s if s.starts_with("db-") => {
            let client = scenario.trim_start_matches("tls; ");
            if client.starts_with("hikari-pg") {
                "PostgreSQL JDBC (pgjdbc)"
            } else if client.starts_with("hikari-mariadb") {
                "MariaDB Connector/J"
            } else if client.starts_with("pymysql") && !scenario.starts_with("tls; ") {
                "PyMySQL"
            } else {
                UNKNOWN
            }
        }
        "nat60-client" if scenario.contains("nat60-go ") => GO,
        "nat60-client" if scenario.contains("nat60-node ") => OPENSSL,
        _ => panic!("{capture}: which client made it? (testdata/README.md)"),
    }
}

#[test]
fn every_lab_flow_gets_its_clients_name_or_unknown_never_a_wrong_one() {
    let text = std::fs::read_to_string("testdata/expected.tsv").expect("testdata/expected.tsv");
    let mut rows: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for line in text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let c: Vec<&str> = line.split('\t').collect();
        rows.entry(c[0].to_string()).or_default().push((
            c[1].to_string(),
            c[3].to_string(),
            c[8].to_string(),
        ));
    }
    assert!(
        rows.len() >= 30,
        "expected.tsv lists {} captures",
        rows.len()
    );
    let mut named = 0;
    let mut unknown = 0;
    for (capture, flows) in &rows {
        let analysis = analyse(capture);
        for (client, verdict, scenario) in flows {
            let flow = analysis
                .flows
                .iter()
                .find(|f| f.client.to_string() == *client)
                .unwrap_or_else(|| panic!("{capture}: no flow of {client}"));
            let want = expected_client(capture, verdict, scenario);
            let got = &flow.client_software;
            assert_eq!(
                got.name, want,
                "{capture} {client} ({scenario}): {}",
                got.evidence
            );
            if want == UNKNOWN {
                unknown += 1;
                assert!(got.confidence.is_none());
            } else {
                named += 1;
                assert!(got.confidence.is_some() && !got.evidence.is_empty());
            }
        }
    }
    // Most flows show their client; the rest are refused, h2c or cut by a snapshot length.
    assert!(
        named > 400 && unknown > 20,
        "{named} named, {unknown} unknown"
    );
}

/// testdata/lab/fingerprints.sh: one request from each client at its default TLS
/// settings, each to its own port (lab/fingerprints/clients.tsv).
#[test]
fn clients_at_their_default_tls_settings_are_named() {
    let analysis = analyse("lab/fingerprints/defaults.pcap");
    let want = [
        (18441, "curl"),
        (18442, "Python (ssl module)"),
        (18443, "Python requests / urllib3"),
        (18444, "Node.js"),
        (18445, "Node.js"),
        (18446, GO),
        (18447, JAVA),
        (18448, JAVA),
        (18449, "OkHttp"),
    ];
    let tsv = std::fs::read_to_string("testdata/lab/fingerprints/clients.tsv").unwrap();
    assert_eq!(
        tsv.lines().filter(|l| !l.starts_with('#')).count(),
        want.len()
    );
    for (port, name) in want {
        let flows: Vec<_> = analysis
            .flows
            .iter()
            .filter(|f| f.server.port() == port)
            .collect();
        assert!(!flows.is_empty(), "no flow to port {port}");
        for flow in flows {
            assert_eq!(
                flow.client_software.name, name,
                "port {port}: {}",
                flow.client_software.evidence
            );
        }
    }
}

#[test]
fn the_evidence_says_what_named_the_client() {
    let go = analyse("go-h1-tls13-client.pcap");
    let flow = &go.flows[0];
    assert_eq!(flow.client_software.source, Some("tls_client_hello"));
    assert_eq!(
        flow.client_software.seen.as_deref(),
        Some("t13i1909h1_9dc949149365_97f8aa674fd9")
    );
    assert!(
        flow.client_software
            .evidence
            .starts_with("TLS ClientHello #"),
        "{}",
        flow.client_software.evidence
    );
    let plain = analyse("race-plain-client.pcap");
    let python = &plain.flows[0].client_software;
    assert_eq!(python.source, Some("request_head"));
    assert!(python.evidence.contains("Accept-Encoding: identity"));
}

#[test]
fn server_software_from_its_header_and_how_it_closes() {
    // In the clear: nginx and Python's http.server name themselves.
    let plain = analyse("race-plain-client.pcap");
    let nginx = plain
        .servers
        .iter()
        .find(|s| s.server.to_string() == "198.19.2.2:80")
        .unwrap();
    assert_eq!(nginx.server_software[0].name, "nginx");
    // nginx in the clear closes an idle connection with a bare FIN.
    assert!(nginx.server_closes.iter().all(|c| c.name == "fin"));
    let blackhole = analyse("blackhole-client.pcap");
    assert!(
        blackhole
            .flows
            .iter()
            .all(|f| f.server_software.name == "Python http.server")
    );
    // Over TLS the header is hidden: unknown, but the close is evidence. nginx and HAProxy
    // both send close_notify, then FIN, when they close an idle connection.
    for capture in [
        "race-tls12-client.pcap",
        "go-h1-tls13-client.pcap",
        "haproxy-go-h1-tls13-client.pcap",
    ] {
        let analysis = analyse(capture);
        let server = &analysis.servers[0];
        assert_eq!(server.server_software[0].name, "unknown", "{capture}");
        assert_eq!(server.server_closes.len(), 1, "{capture}");
        assert_eq!(server.server_closes[0].name, "close_notify_then_fin");
        assert!(server.server_closes[0].flows >= 9, "{capture}");
    }
    // A RST from the router (TTL 64, the server's packets 63) is not the server's close.
    let nat = analyse("nat60-client.pcap");
    assert!(nat.servers[0].server_closes.iter().all(|c| c.name != "rst"));
}

#[test]
fn advice_leads_with_the_identified_clients_setting() {
    let go = analyse("go-h1-tls13-client.pcap");
    let server = &go.servers[0];
    assert_eq!(server.identified_client(), Some(GO));
    assert_eq!(server.client_software[0].flows, 37);
    assert_eq!(
        server.advice[0],
        "set the client's max idle time to 4 s, below the server's 5.00 s keep-alive; the client is Go net/http, on 37 of 37 flows: Go net/http: http.Transport{IdleConnTimeout: 4 * time.Second}"
    );
    assert_eq!(server.client_settings[0].client, "Go net/http");

    // The JDK's TLS, shared by the JDK HttpClient and Apache HttpClient: both settings.
    let apache = analyse("apache-tls13-client.pcap");
    let server = &apache.servers[0];
    assert_eq!(server.identified_client(), Some(JAVA));
    assert!(server.advice[0].contains("-Djdk.httpclient.keepalive.timeout=4"));
    assert!(server.advice[0].contains("evictIdleConnections(4, TimeUnit.SECONDS)"));
    let firsts: Vec<&str> = server.client_settings[..2]
        .iter()
        .map(|s| s.client)
        .collect();
    assert_eq!(firsts, ["JDK HttpClient", "Apache HttpClient 4.5"]);

    // Nothing identified: no client is named, and the advice stays general.
    let cut = analyse("race-tls12-client-s96.pcap");
    let server = cut.servers.iter().find(|s| s.races > 0).expect("the races");
    assert_eq!(server.identified_client(), None);
    assert!(!server.advice.iter().any(|a| a.contains("the client is")));
    // A NAT reset: the client's setting with the value under the middlebox's timer; a
    // blackhole: the read timeout too.
    let nat = analyse("nat-client.pcap");
    let server = nat.servers.iter().find(|s| s.nat_resets > 0).unwrap();
    assert!(
        server.advice[0].ends_with("the client is Python http.client, on 3 of 3 flows: Python http.client: no pool and no idle limit: close() the HTTPConnection and open a new one when it has been idle 315 s or more, and retry idempotent requests once"),
        "{}",
        server.advice[0]
    );
    let blackhole = analyse("blackhole-client.pcap");
    let server = blackhole
        .servers
        .iter()
        .find(|s| s.idle_blackholes > 0)
        .unwrap();
    assert!(
        server.advice[1].ends_with(
            "Python http.client: http.client.HTTPConnection(host, timeout=10), or HTTPSConnection"
        ),
        "{}",
        server.advice[1]
    );
}

#[test]
fn json_carries_client_and_server_software() {
    let out = assert_cmd::Command::cargo_bin("staleconn")
        .unwrap()
        .args(["-r", "testdata/race-plain-client.pcap", "--format", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let flow = &doc["flows"][0];
    assert_eq!(flow["client_software"]["name"], PYTHON_HTTP_CLIENT);
    assert_eq!(flow["client_software"]["confidence"], "medium");
    assert_eq!(flow["server_software"]["name"], "nginx");
    assert_eq!(flow["server_software"]["confidence"], "high");
    assert_eq!(flow["server_software"]["source"], "server_header");
    let server = &doc["servers"][0];
    assert_eq!(server["client_software"][0]["name"], PYTHON_HTTP_CLIENT);
    assert_eq!(server["server_software"][0]["name"], "nginx");
}
