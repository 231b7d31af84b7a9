//! Known idle-timeout defaults of servers and middleboxes, each with where it comes from:
//! the one table measured timeouts are matched against. Checked against
//! shared/reference/idle-timeouts.md (source code or vendor documentation per row).

/// What kind of thing enforces the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Closes an idle keep-alive connection itself (FIN, often after close_notify).
    Server,
    /// Forgets an idle connection silently; answers its next packet with RST or drops it.
    Middlebox,
}

/// What a middlebox does with the next packet of a connection it forgot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePacket {
    /// Answers it with RST: the NAT idle reset.
    Rst,
    /// Drops it without a word: the client retransmits into silence (the idle blackhole).
    Drop,
    /// Not documented where the default is (or it depends on the configuration).
    Unknown,
}

impl LatePacket {
    pub fn name(self) -> &'static str {
        match self {
            LatePacket::Rst => "rst",
            LatePacket::Drop => "drop",
            LatePacket::Unknown => "unknown",
        }
    }
}

/// A product's default idle timeout.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    pub name: &'static str,
    pub kind: Kind,
    /// Middleboxes: what a packet of a connection it forgot meets.
    pub late_packet: LatePacket,
    /// The default, in seconds.
    pub seconds: f64,
    /// How late it may close by design: a timer scanned once a second, or a buffer added.
    pub late_by: f64,
    /// Where the default is written down.
    pub source: &'static str,
    /// False where only secondary sources state the default: named, never built on.
    pub verified: bool,
}

const fn server(name: &'static str, seconds: f64, late_by: f64, source: &'static str) -> Known {
    Known {
        name,
        kind: Kind::Server,
        late_packet: LatePacket::Unknown,
        seconds,
        late_by,
        source,
        verified: true,
    }
}

const fn middlebox(
    name: &'static str,
    seconds: f64,
    late_packet: LatePacket,
    source: &'static str,
) -> Known {
    Known {
        name,
        kind: Kind::Middlebox,
        late_packet,
        seconds,
        late_by: 0.0,
        source,
        verified: true,
    }
}

/// A default that only secondary sources state: named as a candidate, never built on.
const fn unverified(known: Known) -> Known {
    Known {
        verified: false,
        ..known
    }
}

pub const KNOWN: &[Known] = &[
    server(
        "gunicorn keepalive",
        2.0,
        0.0,
        "benoitc/gunicorn gunicorn/config.py (keepalive = 2)",
    ),
    server(
        "Apache httpd KeepAliveTimeout",
        5.0,
        0.0,
        "apache/httpd include/httpd.h DEFAULT_KEEPALIVE_TIMEOUT 5; docs/manual/mod/core.xml",
    ),
    server(
        "Node.js server.keepAliveTimeout",
        5.0,
        1.0,
        "https://nodejs.org/api/http.html#serverkeepalivetimeout (5000 ms; v24.6+ closes 1 s later: keepAliveTimeoutBuffer)",
    ),
    server(
        "uvicorn --timeout-keep-alive",
        5.0,
        0.0,
        "encode/uvicorn uvicorn/config.py (timeout_keep_alive = 5)",
    ),
    server(
        "Apache Tomcat (standalone server.xml connectionTimeout)",
        20.0,
        1.0,
        "apache/tomcat conf/server.xml connectionTimeout=20000; timeouts scanned every 1 s",
    ),
    server(
        "Jetty idleTimeout (also Spring Boot Jetty)",
        30.0,
        0.0,
        "jetty/jetty.project AbstractConnector.java (_idleTimeout = 30000)",
    ),
    server(
        "Tomcat embedded / Spring Boot Tomcat",
        60.0,
        1.0,
        "apache/tomcat webapps/docs/config/http.xml connectionTimeout default 60000; timeouts scanned every 1 s",
    ),
    server(
        "Undertow NO_REQUEST_TIMEOUT (Undertow.builder)",
        60.0,
        0.0,
        "undertow-io/undertow core/src/main/java/io/undertow/Undertow.java (60000)",
    ),
    server(
        "AWS Application / Classic Load Balancer idle timeout",
        60.0,
        0.0,
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html",
    ),
    server(
        "nginx keepalive_timeout",
        75.0,
        0.0,
        "nginx/nginx src/http/ngx_http_core_module.c (keepalive_timeout 75s)",
    ),
    server(
        "IIS connectionTimeout",
        120.0,
        0.0,
        "https://learn.microsoft.com/iis/configuration/system.applicationhost/sites/sitedefaults/limits",
    ),
    server(
        "Kestrel KeepAliveTimeout",
        130.0,
        0.0,
        "https://learn.microsoft.com/dotnet/api/microsoft.aspnetcore.server.kestrel.core.kestrelserverlimits.keepalivetimeout",
    ),
    server(
        "Traefik respondingTimeouts.idleTimeout",
        180.0,
        0.0,
        "traefik/traefik pkg/config/static/static_config.go (180 s)",
    ),
    server(
        "Caddy idle_timeout",
        300.0,
        0.0,
        "caddyserver/caddy modules/caddyhttp/app.go (5 min)",
    ),
    server(
        "GCP Application Load Balancer (backend keep-alive)",
        600.0,
        0.0,
        "https://cloud.google.com/load-balancing/docs/https/request-distribution",
    ),
    server(
        "GCP external Application Load Balancer (client keep-alive)",
        610.0,
        0.0,
        "https://cloud.google.com/load-balancing/docs/https/request-distribution",
    ),
    server(
        "Envoy idle_timeout",
        3600.0,
        0.0,
        "https://www.envoyproxy.io/docs/envoy/latest/faq/configuration/timeouts",
    ),
    // Its default is to "silently drop flows when the idle timeout of a flow is reached";
    // "TCP reset on idle" (off unless enabled per rule) sends RSTs at expiry instead.
    middlebox(
        "Azure Load Balancer (TCP reset on idle off, the default)",
        240.0,
        LatePacket::Drop,
        "MicrosoftDocs/azure-docs articles/load-balancer/load-balancer-tcp-reset.md (default: silently drop flows at idle timeout); load-balancer-tcp-idle-timeout.md (4 min)",
    ),
    // "A TCP reset packet is sent only upon detecting traffic on the dropped connection flow".
    middlebox(
        "Azure NAT Gateway",
        240.0,
        LatePacket::Rst,
        "MicrosoftDocs/azure-docs articles/nat-gateway/nat-gateway-resource.md (4 min; RST to traffic on a dropped flow)",
    ),
    unverified(middlebox(
        "AWS Global Accelerator (unverified)",
        340.0,
        LatePacket::Unknown,
        "secondary summaries of docs.aws.amazon.com/global-accelerator/latest/dg/introduction-how-it-works.html",
    )),
    middlebox(
        "AWS NAT Gateway",
        350.0,
        LatePacket::Rst,
        "awsdocs/amazon-vpc-user-guide doc_source/nat-gateway-troubleshooting.md (350 s; RST to later packets)",
    ),
    middlebox(
        "AWS Network Load Balancer",
        350.0,
        LatePacket::Rst,
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/network/update-idle-timeout.html",
    ),
    middlebox(
        "AWS Gateway Load Balancer",
        350.0,
        LatePacket::Unknown,
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/gateway/update-idle-timeout.html",
    ),
    // "After the idle timeout passes, data packets are dropped" (60-6000 s, default 350).
    middlebox(
        "AWS Network Firewall",
        350.0,
        LatePacket::Drop,
        "https://docs.aws.amazon.com/network-firewall/latest/APIReference/API_FlowTimeouts.html (TcpIdleTimeoutSeconds 350; later data packets dropped)",
    ),
    // Packets after the timeout "aren't delivered".
    middlebox(
        "AWS interface VPC endpoints",
        350.0,
        LatePacket::Drop,
        "https://aws.amazon.com/blogs/networking-and-content-delivery/implementing-long-running-tcp-connections-within-vpc-networking/",
    ),
    middlebox(
        "OCI Network Load Balancer",
        360.0,
        LatePacket::Unknown,
        "https://docs.oracle.com/en-us/iaas/Content/NetworkLoadBalancer/NetworkLoadBalancers/configure-idle-timeout.htm",
    ),
    middlebox(
        "Linux IPVS (kube-proxy IPVS mode)",
        900.0,
        LatePacket::Unknown,
        "Linux net/netfilter/ipvs/ip_vs_proto_tcp.c (ESTABLISHED 15*60*HZ)",
    ),
    // Silent drop is reported only by secondary sources.
    middlebox(
        "GCP Cloud NAT",
        1200.0,
        LatePacket::Unknown,
        "https://cloud.google.com/nat/docs/tune-nat-configuration#nat-timeouts (tcpEstablishedIdleTimeoutSec 1200)",
    ),
    // `timeout conn` 1:00:00; an RST at expiry only with the `reset` keyword.
    middlebox(
        "Cisco ASA timeout conn (without reset)",
        3600.0,
        LatePacket::Drop,
        "https://www.cisco.com/c/en/us/support/docs/security/secure-firewall-asa/222075-configure-connection-timeout-for-specifi.html (tcp idle 1 h); ASA CLI configuration guide, Connection Settings (idle ... reset)",
    ),
    middlebox(
        "Palo Alto PAN-OS TCP session",
        3600.0,
        LatePacket::Unknown,
        "https://docs.paloaltonetworks.com/ngfw/networking/session-settings-and-timeouts/configure-session-timeouts/configure-session-timeouts-pan-os",
    ),
];

/// How well a measurement fits a known default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Within 1 % (or 50 ms) of the default.
    Exact,
    /// Within the tolerance of a timer that fires a little late.
    Close,
    /// Later than the default by no more than the product closes late by design.
    LateByDesign,
}

impl Fit {
    pub fn name(self) -> &'static str {
        match self {
            Fit::Exact => "exact",
            Fit::Close => "close",
            Fit::LateByDesign => "late by design",
        }
    }
}

/// Servers whose default keep-alive fits a measured idle close of `seconds`: from 50 ms
/// early (clock and capture jitter) to max(0.25 s, 2 %) late, plus the product's own lag.
pub fn servers_matching(seconds: f64) -> Vec<(Known, Fit)> {
    KNOWN
        .iter()
        .filter(|k| k.kind == Kind::Server)
        .filter_map(|k| {
            let slack = (0.02 * k.seconds).max(0.25);
            let off = seconds - k.seconds;
            let fit = if off.abs() <= (0.01 * k.seconds).max(0.05) {
                Fit::Exact
            } else if (-0.05..=slack).contains(&off) {
                Fit::Close
            } else if off > 0.0 && off <= slack + k.late_by {
                Fit::LateByDesign
            } else {
                return None;
            };
            Some((*k, fit))
        })
        .collect()
}

/// Middleboxes whose default idle timeout lies in the bracket the capture proves (above
/// the longest silence that was survived, at or below the shortest that failed) and that
/// could have failed it as seen: `seen` is what the late packet met (RST or silence). One
/// whose behaviour is not documented stays a candidate for either.
pub fn middleboxes_within(survived: Option<f64>, failed: f64, seen: LatePacket) -> Vec<Known> {
    KNOWN
        .iter()
        .filter(|k| k.kind == Kind::Middlebox)
        .filter(|k| k.late_packet == seen || k.late_packet == LatePacket::Unknown)
        .filter(|k| survived.is_none_or(|s| k.seconds > s) && k.seconds <= failed)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: &[(Known, Fit)]) -> Vec<&str> {
        found.iter().map(|(k, _)| k.name).collect()
    }

    #[test]
    fn five_seconds_is_apache_node_or_uvicorn() {
        let found = servers_matching(5.0004);
        assert_eq!(
            names(&found),
            [
                "Apache httpd KeepAliveTimeout",
                "Node.js server.keepAliveTimeout",
                "uvicorn --timeout-keep-alive"
            ]
        );
        assert!(found.iter().all(|(_, fit)| *fit == Fit::Exact));
    }

    #[test]
    fn newer_node_closes_a_second_late() {
        let found = servers_matching(6.0);
        assert_eq!(names(&found), ["Node.js server.keepAliveTimeout"]);
        assert_eq!(found[0].1, Fit::LateByDesign);
    }

    #[test]
    fn tomcat_scans_once_a_second() {
        // Past 2 % of 60 s, only a product that closes late by design still fits.
        let found = servers_matching(61.5);
        assert_eq!(names(&found), ["Tomcat embedded / Spring Boot Tomcat"]);
        assert_eq!(found[0].1, Fit::LateByDesign);
        assert!(
            names(&servers_matching(60.8))
                .contains(&"Undertow NO_REQUEST_TIMEOUT (Undertow.builder)")
        );
    }

    fn middlebox_names(survived: Option<f64>, failed: f64, seen: LatePacket) -> Vec<&'static str> {
        middleboxes_within(survived, failed, seen)
            .iter()
            .map(|k| k.name)
            .collect()
    }

    #[test]
    fn a_bracket_around_350_names_the_aws_devices() {
        let found = middlebox_names(Some(300.0), 380.0, LatePacket::Rst);
        assert!(found.contains(&"AWS NAT Gateway"));
        assert!(found.contains(&"AWS Network Load Balancer"));
        assert!(!found.iter().any(|n| n.starts_with("Azure")));
    }

    #[test]
    fn a_reset_and_a_silence_name_different_devices() {
        let reset = middlebox_names(Some(200.0), 380.0, LatePacket::Rst);
        let silence = middlebox_names(Some(200.0), 380.0, LatePacket::Drop);
        assert!(reset.contains(&"Azure NAT Gateway") && reset.contains(&"AWS NAT Gateway"));
        assert!(!reset.contains(&"AWS Network Firewall"));
        assert!(silence.contains(&"AWS Network Firewall"));
        assert!(silence.contains(&"Azure Load Balancer (TCP reset on idle off, the default)"));
        assert!(!silence.contains(&"AWS NAT Gateway") && !silence.contains(&"Azure NAT Gateway"));
        // Undocumented behaviour: a candidate either way.
        assert!(reset.contains(&"AWS Gateway Load Balancer"));
        assert!(silence.contains(&"AWS Gateway Load Balancer"));
        let lunch = middlebox_names(Some(1800.0), 4000.0, LatePacket::Drop);
        assert!(
            lunch.contains(&"Cisco ASA timeout conn (without reset)"),
            "{lunch:?}"
        );
    }

    /// The blackhole threshold must not hide a silent dropper's default idle timeout.
    #[test]
    fn no_silent_dropper_forgets_before_the_blackhole_threshold() {
        let threshold = crate::time::secs(crate::detect::DEFAULT_BLACKHOLE_IDLE);
        for k in KNOWN.iter().filter(|k| k.late_packet != LatePacket::Rst) {
            assert!(
                k.kind == Kind::Server || k.seconds > threshold,
                "{} forgets after {} s",
                k.name,
                k.seconds
            );
        }
    }
}
