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

/// A product's default idle timeout.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    pub name: &'static str,
    pub kind: Kind,
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
        seconds,
        late_by,
        source,
        verified: true,
    }
}

const fn middlebox(name: &'static str, seconds: f64, source: &'static str) -> Known {
    Known {
        name,
        kind: Kind::Middlebox,
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
    middlebox(
        "Azure Load Balancer / Azure NAT Gateway (4 min)",
        240.0,
        "MicrosoftDocs/azure-docs articles/load-balancer/load-balancer-tcp-idle-timeout.md; articles/nat-gateway/nat-gateway-resource.md",
    ),
    unverified(middlebox(
        "AWS Global Accelerator (unverified)",
        340.0,
        "secondary summaries of docs.aws.amazon.com/global-accelerator/latest/dg/introduction-how-it-works.html",
    )),
    middlebox(
        "AWS NAT Gateway",
        350.0,
        "awsdocs/amazon-vpc-user-guide doc_source/nat-gateway-troubleshooting.md (350 s; RST to later packets)",
    ),
    middlebox(
        "AWS Network Load Balancer",
        350.0,
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/network/update-idle-timeout.html",
    ),
    middlebox(
        "AWS Gateway Load Balancer",
        350.0,
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/gateway/update-idle-timeout.html",
    ),
    middlebox(
        "AWS Network Firewall",
        350.0,
        "https://docs.aws.amazon.com/network-firewall/latest/APIReference/API_FlowTimeouts.html",
    ),
    middlebox(
        "AWS interface VPC endpoints",
        350.0,
        "https://aws.amazon.com/blogs/networking-and-content-delivery/implementing-long-running-tcp-connections-within-vpc-networking/",
    ),
    middlebox(
        "OCI Network Load Balancer",
        360.0,
        "https://docs.oracle.com/en-us/iaas/Content/NetworkLoadBalancer/NetworkLoadBalancers/configure-idle-timeout.htm",
    ),
    middlebox(
        "Linux IPVS (kube-proxy IPVS mode)",
        900.0,
        "Linux net/netfilter/ipvs/ip_vs_proto_tcp.c (ESTABLISHED 15*60*HZ)",
    ),
    middlebox(
        "GCP Cloud NAT",
        1200.0,
        "https://cloud.google.com/nat/docs/tune-nat-configuration#nat-timeouts (tcpEstablishedIdleTimeoutSec 1200)",
    ),
    middlebox(
        "Cisco ASA timeout conn",
        3600.0,
        "https://www.cisco.com/c/en/us/support/docs/security/secure-firewall-asa/222075-configure-connection-timeout-for-specifi.html",
    ),
    middlebox(
        "Palo Alto PAN-OS TCP session",
        3600.0,
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

/// Middleboxes whose default idle timeout lies in the bracket the capture proves:
/// above the longest silence that was survived, at or below the shortest that was reset.
pub fn middleboxes_within(survived: Option<f64>, reset: f64) -> Vec<Known> {
    KNOWN
        .iter()
        .filter(|k| k.kind == Kind::Middlebox)
        .filter(|k| survived.is_none_or(|s| k.seconds > s) && k.seconds <= reset)
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

    #[test]
    fn a_bracket_around_350_names_the_aws_devices() {
        let found: Vec<&str> = middleboxes_within(Some(300.0), 380.0)
            .iter()
            .map(|k| k.name)
            .collect();
        assert!(found.contains(&"AWS NAT Gateway"));
        assert!(found.contains(&"AWS Network Load Balancer"));
        assert!(!found.iter().any(|n| n.starts_with("Azure")));
    }
}
