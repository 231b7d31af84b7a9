//! Per-server advice on the lab's real captures: the measured keep-alive timeout, the
//! bracket on the NAT's idle timer, the likely culprits, and the client settings to change.

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
