//! Known idle-timeout defaults of servers and middleboxes, each with where it comes from:
//! the one table measured timeouts are matched against. Checked against
//! shared/reference/idle-timeouts.md (source code or vendor documentation per row); the
//! database and cache rows against the vendors' own documentation or source, cited per row.
//! Each row says which servers it belongs to: a database's measured timer is matched only
//! against its protocol's rows (and middleboxes), an HTTP server's only against HTTP rows.

use crate::flow::Protocol;

/// What kind of thing enforces the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Closes an idle keep-alive connection itself (FIN, often after close_notify).
    Server,
    /// Forgets an idle connection silently; answers its next packet with RST or drops it.
    Middlebox,
    /// A server setting named in advice but never matched against a measured timer: off
    /// by default (0), a TCP keepalive interval rather than an idle close, or a timer on
    /// connections the client never sees (a pooler's own server connections).
    Setting,
}

/// Which servers' timers a row is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// HTTP servers and proxies, and any flow whose protocol is not a database's.
    Http,
    /// Servers of these database or cache protocols.
    Database(&'static [Protocol]),
    /// Middleboxes: whatever the connection carries.
    Any,
}

impl Speaks {
    /// Whether a server whose flows carry `protocol` may be this row's product.
    pub fn serves(self, protocol: Protocol) -> bool {
        match self {
            Speaks::Http => !protocol.is_database(),
            Speaks::Database(protocols) => protocols.contains(&protocol),
            Speaks::Any => true,
        }
    }
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
    /// The servers it belongs to.
    pub speaks: Speaks,
    /// Middleboxes: what a packet of a connection it forgot meets.
    pub late_packet: LatePacket,
    /// The default, in seconds; 0 for a setting that is off by default.
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
        speaks: Speaks::Http,
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
        speaks: Speaks::Any,
        late_packet,
        seconds,
        late_by: 0.0,
        source,
        verified: true,
    }
}

/// A database or cache server's idle timer that is on by default: matched against that
/// protocol's measured idle closes.
const fn database(
    name: &'static str,
    protocols: &'static [Protocol],
    seconds: f64,
    late_by: f64,
    source: &'static str,
) -> Known {
    Known {
        speaks: Speaks::Database(protocols),
        ..server(name, seconds, late_by, source)
    }
}

/// A database or cache setting named in advice, never matched (see `Kind::Setting`).
const fn setting(
    name: &'static str,
    protocols: &'static [Protocol],
    seconds: f64,
    late_by: f64,
    source: &'static str,
) -> Known {
    Known {
        kind: Kind::Setting,
        ..database(name, protocols, seconds, late_by, source)
    }
}

const POSTGRES: &[Protocol] = &[Protocol::Postgres];
const MYSQL: &[Protocol] = &[Protocol::Mysql];
const REDIS: &[Protocol] = &[Protocol::Redis];
const POSTGRES_OR_MYSQL: &[Protocol] = &[Protocol::Postgres, Protocol::Mysql];

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
    // Databases and caches. MySQL and MariaDB share the wire protocol and the variable.
    database(
        "MySQL / MariaDB wait_timeout",
        MYSQL,
        28800.0,
        0.0,
        "https://dev.mysql.com/doc/refman/8.0/en/server-system-variables.html#sysvar_wait_timeout; mysql/mysql-server include/mysql_com.h (NET_WAIT_TIMEOUT 8*60*60); https://mariadb.com/docs/server/ref/mdb/system-variables/wait_timeout (28800)",
    ),
    // Applies instead of wait_timeout to clients that connect with CLIENT_INTERACTIVE.
    database(
        "MySQL / MariaDB interactive_timeout (interactive clients)",
        MYSQL,
        28800.0,
        0.0,
        "https://dev.mysql.com/doc/refman/8.0/en/server-system-variables.html#sysvar_interactive_timeout; https://mariadb.com/docs/server/ref/mdb/system-variables/interactive_timeout (28800)",
    ),
    // It "closes" an idle client connection; the database connection behind it stays pooled.
    database(
        "AWS RDS Proxy IdleClientTimeout",
        POSTGRES_OR_MYSQL,
        1800.0,
        0.0,
        "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy-connections.html (IdleClientTimeout, default 1,800 s)",
    ),
    // PostgreSQL 14+: "A value of zero (the default) disables the timeout." At expiry it
    // sends FATAL 57P05, then its FIN.
    setting(
        "PostgreSQL idle_session_timeout",
        POSTGRES,
        0.0,
        0.0,
        "https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-IDLE-SESSION-TIMEOUT (0, the default, disables it); postgres/postgres doc/src/sgml/config.sgml",
    ),
    setting(
        "PostgreSQL idle_in_transaction_session_timeout",
        POSTGRES,
        0.0,
        0.0,
        "https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-IDLE-IN-TRANSACTION-SESSION-TIMEOUT (0, the default, disables it)",
    ),
    // 0 selects the operating system's default (Linux tcp_keepalive_time 7200 s).
    setting(
        "PostgreSQL tcp_keepalives_idle",
        POSTGRES,
        0.0,
        0.0,
        "https://www.postgresql.org/docs/current/runtime-config-connection.html#GUC-TCP-KEEPALIVES-IDLE (0, the default, selects the operating system's default)",
    ),
    // Checked by serverCron, `hz` (default 10) times a second, in whole seconds of its own
    // clock: a configured timeout closes up to about 1 s late.
    setting(
        "Redis timeout",
        REDIS,
        0.0,
        1.0,
        "redis/redis redis.conf (timeout 0: \"Close the connection after a client is idle for N seconds (0 to disable)\"; hz 10)",
    ),
    setting(
        "Redis tcp-keepalive",
        REDIS,
        300.0,
        0.0,
        "redis/redis redis.conf (tcp-keepalive 300, the default since Redis 3.2.1)",
    ),
    // Closes PgBouncer's own idle connections to the server, not the application's.
    setting(
        "PgBouncer server_idle_timeout",
        POSTGRES,
        600.0,
        0.0,
        "pgbouncer/pgbouncer doc/config.md, https://www.pgbouncer.org/config.html (server_idle_timeout, default 600.0)",
    ),
    setting(
        "PgBouncer client_idle_timeout",
        POSTGRES,
        0.0,
        0.0,
        "pgbouncer/pgbouncer doc/config.md, https://www.pgbouncer.org/config.html (client_idle_timeout, default 0: disabled)",
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

/// Servers whose default idle timeout fits a measured idle close of `seconds` on a server
/// whose flows carry `protocol`: from 50 ms early (clock and capture jitter) to max(0.25 s,
/// 2 %) late, plus the product's own lag. Only rows of that protocol (HTTP rows for any
/// protocol that is not a database's) are candidates.
pub fn servers_matching(seconds: f64, protocol: Protocol) -> Vec<(Known, Fit)> {
    KNOWN
        .iter()
        .filter(|k| k.kind == Kind::Server && k.speaks.serves(protocol))
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

/// A database or cache protocol's server-side settings, every row (on by default or not),
/// for advice that names them.
pub fn database_settings(protocol: Protocol) -> impl Iterator<Item = &'static Known> {
    KNOWN.iter().filter(move |k| {
        protocol.is_database()
            && k.kind != Kind::Middlebox
            && matches!(k.speaks, Speaks::Database(p) if p.contains(&protocol))
    })
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
        let found = servers_matching(5.0004, Protocol::Http);
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
        let found = servers_matching(6.0, Protocol::Http);
        assert_eq!(names(&found), ["Node.js server.keepAliveTimeout"]);
        assert_eq!(found[0].1, Fit::LateByDesign);
    }

    #[test]
    fn tomcat_scans_once_a_second() {
        // Past 2 % of 60 s, only a product that closes late by design still fits.
        let found = servers_matching(61.5, Protocol::Http);
        assert_eq!(names(&found), ["Tomcat embedded / Spring Boot Tomcat"]);
        assert_eq!(found[0].1, Fit::LateByDesign);
        assert!(
            names(&servers_matching(60.8, Protocol::Http))
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
                k.kind != Kind::Middlebox || k.seconds > threshold,
                "{} forgets after {} s",
                k.name,
                k.seconds
            );
        }
    }

    /// A database's idle close is matched against its own protocol's defaults only.
    #[test]
    fn eight_hours_on_mysql_is_wait_timeout_and_never_an_http_server() {
        let mysql = servers_matching(28800.3, Protocol::Mysql);
        assert_eq!(
            names(&mysql),
            [
                "MySQL / MariaDB wait_timeout",
                "MySQL / MariaDB interactive_timeout (interactive clients)"
            ]
        );
        assert!(servers_matching(28800.3, Protocol::Http).is_empty());
        assert!(servers_matching(28800.3, Protocol::Postgres).is_empty());
        // RDS Proxy fronts PostgreSQL and MySQL, not Redis.
        assert_eq!(
            names(&servers_matching(1800.2, Protocol::Postgres)),
            ["AWS RDS Proxy IdleClientTimeout"]
        );
        assert!(servers_matching(1800.2, Protocol::Redis).is_empty());
    }

    /// An HTTP server's (or an unrecognised protocol's) close never names a database row.
    #[test]
    fn http_closes_are_matched_against_http_rows_only() {
        for protocol in [Protocol::Http, Protocol::Unknown] {
            let found = servers_matching(5.0004, protocol);
            assert_eq!(found.len(), 3, "{protocol:?}");
            assert!(found.iter().all(|(k, _)| k.speaks == Speaks::Http));
        }
        // Nginx's 75 s is no candidate for a PostgreSQL server's close at 75 s.
        assert!(servers_matching(75.0, Protocol::Postgres).is_empty());
        assert!(!names(&servers_matching(75.0, Protocol::Http)).is_empty());
    }

    /// Settings that are off by default (or not idle closes) are named, never matched.
    #[test]
    fn off_by_default_settings_never_match_a_number() {
        for protocol in [Protocol::Postgres, Protocol::Redis] {
            for seconds in [0.0, 0.3, 5.0, 300.0, 600.0] {
                assert!(
                    servers_matching(seconds, protocol).is_empty(),
                    "{protocol:?} {seconds}"
                );
            }
        }
        let postgres: Vec<&str> = database_settings(Protocol::Postgres)
            .map(|k| k.name)
            .collect();
        assert!(postgres.contains(&"PostgreSQL idle_session_timeout"));
        assert!(postgres.contains(&"PgBouncer server_idle_timeout"));
        assert!(!postgres.iter().any(|n| n.contains("wait_timeout")));
        assert_eq!(database_settings(Protocol::Http).count(), 0);
    }
}
