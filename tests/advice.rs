//! Per-server advice on the lab's real captures: the measured keep-alive timeout, the
//! brackets on a middlebox's idle timer (reset or silent drop), the likely culprits, and the
//! client settings to change.

use staleconn::advice::ServerAdvice;
use staleconn::{Settings, analyze_file};

fn servers(capture: &str) -> Vec<ServerAdvice> {
    analyze_file(&format!("testdata/{capture}"), &Settings::default())
        .unwrap()
        .servers
}

fn server<'a>(servers: &'a [ServerAdvice], addr: &str) -> &'a ServerAdvice {
    servers
        .iter()
        .find(|s| s.server.to_string() == addr)
        .unwrap_or_else(|| panic!("no advice for {addr}"))
}

#[test]
fn race_captures_measure_nginx_closing_after_5_seconds() {
    for (capture, addr) in [
        ("race-tls12-client.pcap", "198.19.2.2:443"),
        ("race-tls12-server.pcap", "198.19.2.2:443"),
        ("race-tls13-client.pcap", "198.19.2.2:8443"),
        ("race-plain-client.pcap", "198.19.2.2:80"),
    ] {
        let all = servers(capture);
        let s = server(&all, addr);
        let keepalive = s.keepalive.as_ref().unwrap();
        assert!(
            (keepalive.median_s - 5.0).abs() <= 0.05,
            "{capture}: {keepalive:?}"
        );
        assert_eq!(keepalive.n, 9, "{capture}: 8 races and 1 idle close");
        let names: Vec<&str> = s.keepalive_candidates.iter().map(|c| c.name).collect();
        for expected in ["Apache httpd", "Node.js", "uvicorn"] {
            assert!(
                names.iter().any(|n| n.starts_with(expected)),
                "{capture}: {names:?}"
            );
        }
        assert!(s.keepalive_candidates.iter().all(|c| !c.source.is_empty()));
        assert_eq!(s.max_idle_s, Some(4), "{capture}");
        assert_eq!((s.races, s.sent_after_fin), (8, 4), "{capture}");
        let netty = s
            .client_settings
            .iter()
            .find(|c| c.client == "Reactor Netty")
            .unwrap();
        assert!(
            netty.setting.contains("maxIdleTime(Duration.ofSeconds(4))"),
            "{}",
            netty.setting
        );
        assert!(
            s.advice.iter().any(|a| a.contains("without checking them")),
            "{:?}",
            s.advice
        );
    }
}

#[test]
fn nat_capture_brackets_the_timer_around_350_seconds() {
    let all = servers("nat-client.pcap");
    let s = server(&all, "198.19.2.2:8080");
    let bracket = s.middlebox.as_ref().unwrap();
    let survived = bracket.survived_s.unwrap();
    assert!(survived < 350.0 && bracket.reset_s >= 350.0, "{bracket:?}");
    assert!(
        (survived - 300.0).abs() < 0.01 && (bracket.reset_s - 380.0).abs() < 0.01,
        "{bracket:?}"
    );
    assert_eq!(bracket.rst_sent_by, Some("middlebox"));
    assert_eq!((bracket.rst_ttl, bracket.server_ttl), (Some(64), Some(63)));
    let names: Vec<&str> = s.middlebox_candidates.iter().map(|c| c.name).collect();
    assert!(names.contains(&"AWS NAT Gateway"), "{names:?}");
    assert!(s.max_idle_s.unwrap() < 350 && s.tcp_keepalive_s.unwrap() < 350);
    assert!(
        s.advice[0].contains("TTL 64, the server's packets 63"),
        "{:?}",
        s.advice
    );
}

/// testdata/lab/blackhole.sh: a router that forgets connections after 240 s (Azure Load
/// Balancer's default) and drops their packets. A request after 200 s was answered, three
/// after 280 s got nothing back; a slow server (20 s think) answered after 200 s idle.
#[test]
fn blackhole_capture_brackets_the_silent_timer_and_names_azure_load_balancer() {
    let all = servers("blackhole-client.pcap");
    let s = server(&all, "198.19.8.2:8090");
    assert_eq!(s.idle_blackholes, 3);
    assert_eq!(s.nat_resets, 0);
    let bracket = s.blackhole.as_ref().unwrap();
    let survived = bracket.survived_s.unwrap();
    assert!(
        (survived - 200.0).abs() < 0.01 && (bracket.dropped_s - 280.0).abs() < 0.01,
        "{bracket:?}"
    );
    assert!(bracket.longest_unanswered_s > 20.0, "{bracket:?}");
    let names: Vec<&str> = s.blackhole_candidates.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["Azure Load Balancer (TCP reset on idle off, the default)"],
        "only a device that drops silently: Azure NAT Gateway (240 s too) answers with RST"
    );
    assert!(s.middlebox.is_none() && s.middlebox_candidates.is_empty());
    // Under Azure's verified 240 s by rule B; keepalive at half of it.
    assert_eq!((s.max_idle_s, s.tcp_keepalive_s), (Some(215), Some(120)));
    assert_eq!(s.read_timeout_s, Some(10));
    assert!(
        s.advice[0].contains("dropped silently after a silence of between 200.0 s and 280.0 s")
            && s.advice[0].contains("max idle time to 215 s"),
        "{:?}",
        s.advice
    );
    assert!(
        s.advice[1].contains("read timeout of 10 s"),
        "{:?}",
        s.advice
    );
    assert!(
        s.read_timeout_settings
            .iter()
            .any(|r| r.setting.contains("TCP_USER_TIMEOUT, 10000)")),
        "{:?}",
        s.read_timeout_settings
    );

    // The slow server acknowledged its requests at once and answered 20 s later: alive.
    let slow = server(&all, "198.19.8.2:8091");
    assert_eq!(slow.idle_blackholes, 0);
    assert!(slow.blackhole.is_none() && slow.advice.is_empty());
    assert!((slow.slowest_response_s.unwrap() - 20.0).abs() < 0.5);
}

/// The same advice and culprit, and each blackholed flow's figures, as scripts read them.
#[test]
fn blackhole_advice_and_evidence_are_in_the_json() {
    let analysis = analyze_file("testdata/blackhole-client.pcap", &Settings::default()).unwrap();
    let text = staleconn::report::Output::Json
        .renderer(false)
        .render(&analysis);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let server = json["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == "198.19.8.2:8090")
        .unwrap();
    assert_eq!(server["idle_blackholes"], 3);
    assert_eq!(server["max_idle_s"], 215);
    assert_eq!(server["read_timeout_s"], 10);
    let culprit = &server["blackhole_candidates"][0];
    assert_eq!(culprit["default_s"], 240.0);
    assert_eq!(culprit["late_packet"], "drop");
    assert!(
        culprit["source"]
            .as_str()
            .unwrap()
            .contains("load-balancer-tcp-reset")
    );
    let advice: Vec<&str> = server["advice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        advice.iter().any(|a| a.contains("dropped silently")),
        "{advice:?}"
    );
    assert!(
        advice.iter().any(|a| a.contains("read timeout of 10 s")),
        "{advice:?}"
    );
    assert!(server["read_timeout_settings"].as_array().unwrap().len() > 5);

    let blackholed: Vec<&serde_json::Value> = json["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "idle_blackhole")
        .collect();
    assert_eq!(blackholed.len(), 3);
    for flow in blackholed {
        let e = &flow["evidence"];
        assert_eq!(flow["flagged"], true);
        assert_eq!(e["answer"], "nothing");
        assert!(e["request_retransmissions"].as_u64().unwrap() >= 5, "{e}");
        assert!(e["retransmission_span_s"].as_f64().unwrap() > 10.0, "{e}");
        assert!(
            e["server_last_before_request_s"].as_f64().unwrap() > 279.0,
            "{e}"
        );
        assert!(
            e["ended_by"] == "client_rst" || e["ended_by"] == "capture_end",
            "{e}"
        );
        assert!(flow["fix"].as_str().unwrap().contains("read timeout"));
    }
}

/// One blackholed flow alone (a BPF filter): its first request, answered right after the
/// handshake, is no control, so the bracket has only its upper end.
#[test]
fn a_blackhole_without_a_control_is_bracketed_from_above_only() {
    let settings = Settings {
        bpf: Some("port 51003".to_string()),
        ..Settings::default()
    };
    let analysis = analyze_file("testdata/blackhole-client.pcap", &settings).unwrap();
    let s = server(&analysis.servers, "198.19.8.2:8090");
    let bracket = s.blackhole.as_ref().unwrap();
    assert_eq!(bracket.survived_s, None, "{bracket:?}");
    assert!(
        s.advice[0].contains("a silence of at most 280.0 s"),
        "{:?}",
        s.advice
    );
    assert_eq!(
        s.max_idle_s,
        Some(215),
        "Azure's 240 s is still in the bracket"
    );
}

#[test]
fn races_whose_server_timer_is_not_visible_still_get_advice() {
    // The capture begins with the crossing request: no idle close is visible whole.
    let all = servers("race-plain-client-midstream.pcap");
    let s = server(&all, "198.19.2.2:80");
    assert_eq!(s.races, 1);
    assert!(s.keepalive.is_none());
    assert!(
        s.advice
            .iter()
            .any(|a| a.contains("the capture does not show how long the server waits")),
        "{:?}",
        s.advice
    );
}

#[test]
fn the_real_clients_servers_measure_their_5_second_timers() {
    // nginx over TLS 1.3 (Node), HTTP/2 (Go: the GOAWAY begins the close), h2c (Node), and
    // HAProxy (Go): every idle close measured, the GOAWAY's included.
    for (capture, addr) in [
        ("node-tls13-client.pcap", "198.19.30.2:9443"),
        ("go-h2-tls13-client.pcap", "198.19.30.2:9445"),
        ("node-h2c-client.pcap", "198.19.30.2:9080"),
        ("haproxy-go-h1-tls13-client.pcap", "198.19.30.2:9446"),
    ] {
        let all = servers(capture);
        let s = server(&all, addr);
        let keepalive = s.keepalive.as_ref().unwrap_or_else(|| panic!("{capture}"));
        assert!(
            (keepalive.median_s - 5.0).abs() <= 0.05,
            "{capture}: {keepalive:?}"
        );
        assert!(s.races >= 5, "{capture}: {} races", s.races);
    }
}

/// The sweeps reuse connections at idles across the server's 5 s timer, 50 ms round trip:
/// the reuses answered less than a round trip short of the timer are near misses, and the
/// client's and the server's captures of one run name the same flows with the same margins
/// (checked by hand with tshark: node-tls13 flow 3, port 45998, idle 4.941679 s on the
/// client plus its 50.5 ms round trip, 4.992306 s on the server, timer 5.000 s: 8 ms short).
#[test]
fn near_misses_are_the_answered_reuses_within_a_round_trip_of_the_timer() {
    // The flows by client port: flow ids are frame numbers, which differ between the two
    // captures of one run.
    for (client, server_side, addr, ports) in [
        (
            "node-tls13-client.pcap",
            "node-tls13-server.pcap",
            "198.19.30.2:9443",
            Some(vec![45998, 45996]),
        ),
        (
            "race-tls12-client.pcap",
            "race-tls12-server.pcap",
            "198.19.2.2:443",
            Some(vec![44580, 44564]),
        ),
        (
            "go-h2-tls13-client.pcap",
            "go-h2-tls13-server.pcap",
            "198.19.30.2:9445",
            None, // four of them: see the length check
        ),
    ] {
        let near = |capture: &str| {
            let analysis =
                analyze_file(&format!("testdata/{capture}"), &Settings::default()).unwrap();
            let near = server(&analysis.servers, addr).near_misses.clone().unwrap();
            let ports: Vec<u16> = near
                .flows
                .iter()
                .map(|id| {
                    let flow = analysis.flows.iter().find(|f| f.id == *id).unwrap();
                    flow.client.port()
                })
                .collect();
            (near, ports)
        };
        let (a, a_ports) = near(client);
        let (b, b_ports) = near(server_side);
        assert_eq!(a_ports, b_ports, "{client} vs {server_side}: {a:?} {b:?}");
        match ports {
            Some(ports) => assert_eq!(a_ports, ports, "{client}: {a:?}"),
            None => assert_eq!(a_ports.len(), 4, "{client}: {a:?}"),
        }
        assert!(!a.lower_bound && !b.lower_bound);
        for (x, y) in [(a.within_s, b.within_s), (a.closest_s, b.closest_s)] {
            assert!(x > 0.0 && x <= 0.051, "{client}: {a:?}");
            assert!(
                (x - y).abs() < 0.001,
                "{client} {a:?} vs {server_side} {b:?}"
            );
        }
    }
    // A server without failures and with no reuse near its timer has none.
    assert!(
        servers("nat-client.pcap")
            .iter()
            .all(|s| s.near_misses.is_none())
    );
}
