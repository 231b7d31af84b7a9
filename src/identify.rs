//! Names the client and the server software of a flow from what flow tracking kept of its
//! bytes (flow/software.rs): the User-Agent and Server headers in the clear, the shape of
//! a request head, and the JA4 fingerprint of the TLS ClientHello; plus how the server
//! closed. The fingerprint table is measured on the lab's own clients, not copied from a
//! list: a fingerprint nobody measured stays "unknown", never a guess.

use serde::Serialize;

use crate::flow::Flow;
use crate::flow::software::{HeaderValue, Ja4};

/// What a flow's software is called when the capture does not show it.
pub const UNKNOWN: &str = "unknown";

/// How sure a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// The software named itself (User-Agent, Server).
    High,
    /// A fingerprint measured in the lab for one client family, or a request head that
    /// only one library writes.
    Medium,
    /// A fingerprint that several measured clients share: the name lists them.
    Low,
}

/// The software at one end of a flow, as the report and JSON show it.
#[derive(Debug, Clone, Serialize)]
pub struct Software {
    /// The product, or "unknown".
    pub name: &'static str,
    /// `None` when unknown.
    pub confidence: Option<Confidence>,
    /// What it was told from: `user_agent`, `request_head`, `tls_client_hello`,
    /// `server_header`; `None` when nothing showed it.
    pub source: Option<&'static str>,
    /// The header value or the JA4 fingerprint, as seen.
    pub seen: Option<String>,
    /// The sentence that says why, with the packet number.
    pub evidence: String,
    /// The server only: how it closed the connection, `close_notify_then_fin`, `fin`
    /// (a bare FIN) or `rst`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close: Option<&'static str>,
}

/// A client name with where its settings are listed (the names in advice/clients.rs).
#[derive(Debug, Clone, Copy)]
pub struct ClientName {
    pub name: &'static str,
    pub settings_for: &'static [&'static str],
}

/// Client products by the start of their User-Agent (compared without case), most
/// specific first.
const USER_AGENTS: &[(&str, ClientName)] = &[
    ("go-http-client", client("Go net/http", &["Go net/http"])),
    (
        "apache-httpclient/4.",
        client("Apache HttpClient 4.5", &["Apache HttpClient 4.5"]),
    ),
    (
        "apache-httpclient/5.",
        client("Apache HttpClient 5", &["Apache HttpClient 5"]),
    ),
    ("okhttp", client("OkHttp", &["OkHttp"])),
    ("reactornetty", client("Reactor Netty", &["Reactor Netty"])),
    (
        "java-http-client",
        client("JDK HttpClient", &["JDK HttpClient"]),
    ),
    (
        "python-requests",
        client("Python requests", &["Python requests / urllib3"]),
    ),
    (
        "python-urllib3",
        client("Python urllib3", &["Python requests / urllib3"]),
    ),
    ("python-httpx", client("Python httpx", &["Python httpx"])),
    (
        "node-fetch",
        client("node-fetch", &["Node http/https Agent"]),
    ),
    ("axios", client("axios", &["Node http/https Agent"])),
    (
        "undici",
        client("Node undici / fetch", &["Node undici / fetch"]),
    ),
    ("curl/", client("curl", &["curl / libcurl"])),
];

/// A User-Agent that is exactly this: Node's built-in fetch (undici).
const NODE_FETCH_USER_AGENT: &[u8] = b"node";
const NODE_FETCH: ClientName = client("Node fetch (undici)", &["Node undici / fetch"]);

const fn client(name: &'static str, settings_for: &'static [&'static str]) -> ClientName {
    ClientName { name, settings_for }
}

/// Python's http.client, told by the head it writes by itself: no User-Agent, and
/// `Accept-Encoding: identity` (race-plain, nat, blackhole captures).
const PYTHON_HTTP_CLIENT: ClientName = client("Python http.client", &["Python http.client"]);

const GO: ClientName = client("Go net/http", &["Go net/http"]);
const OPENSSL_TLS13_ONLY: ClientName = client(
    "Node.js or Python (OpenSSL, TLS 1.3 only)",
    &["Node http/https Agent", "Python http.client"],
);
const NODE: ClientName = client("Node.js", &["Node http/https Agent", "Node undici / fetch"]);
const PYTHON_SSL: ClientName = client(
    "Python (ssl module)",
    &["Python http.client", "Python requests / urllib3"],
);
const PYTHON_URLLIB3: ClientName =
    client("Python requests / urllib3", &["Python requests / urllib3"]);
const JAVA: ClientName = client(
    "Java (JDK TLS)",
    &["JDK HttpClient", "Apache HttpClient 4.5"],
);
const CURL: ClientName = client("curl", &["curl / libcurl"]);

/// Database and cache clients by the name they give themselves on the wire
/// (`wire::client_self_name`), matched from the start, case aside.
const DATABASE_CLIENTS: &[(&str, ClientName)] = &[
    (
        "PostgreSQL JDBC Driver",
        client(
            "PostgreSQL JDBC (pgjdbc)",
            &["HikariCP", "PostgreSQL JDBC (pgjdbc)"],
        ),
    ),
    (
        "MariaDB Connector/J",
        client("MariaDB Connector/J", &["HikariCP", "MariaDB Connector/J"]),
    ),
    (
        "MySQL Connector/J",
        client("MySQL Connector/J", &["HikariCP", "MySQL Connector/J"]),
    ),
    ("pymysql", client("PyMySQL", &["PyMySQL", "SQLAlchemy"])),
    (
        "Go-MySQL-Driver",
        client("Go database/sql", &["Go database/sql"]),
    ),
    ("redis-py", client("redis-py", &["redis-py"])),
    ("Lettuce", client("Lettuce", &["Lettuce"])),
    ("jedis", client("Jedis", &["Jedis"])),
];
const OKHTTP: ClientName = client("OkHttp", &["OkHttp"]);

/// A ClientHello fingerprint measured in the lab: JA4's hashed parts (ciphers;
/// extensions and signature algorithms), which do not change with SNI or ALPN; the client
/// it names; how sure that is; and which lab client sent it, in which captures. A client's
/// TLS settings change its fingerprint: the race labs pin each client to one TLS version,
/// testdata/lab/fingerprints.sh leaves them at their defaults, and both are here.
struct Measured {
    hashes: &'static str,
    client: ClientName,
    confidence: Confidence,
    measured: &'static str,
}

/// Every fingerprint the lab's clients sent (testdata/lab/ja4.py over testdata/*.pcap and
/// testdata/lab/fingerprints/defaults.pcap).
const FINGERPRINTS: &[Measured] = &[
    Measured {
        hashes: "9dc949149365_97f8aa674fd9",
        client: GO,
        confidence: Confidence::Medium,
        measured: "Go 1.19 net/http's, HTTP/1.1 and HTTP/2, at its defaults and with TLS 1.3 only alike (go-h1-tls13, go-h2-tls13, haproxy-go-h1-tls13, nat60, lab/fingerprints)",
    },
    Measured {
        hashes: "16476d049b0b_78f1d400d464",
        client: OPENSSL_TLS13_ONLY,
        confidence: Confidence::Low,
        measured: "sent alike by Node.js 20 https.Agent and Python 3.11 http.client with TLS 1.3 only (node-tls13, race-tls13, nat60)",
    },
    Measured {
        hashes: "16476d049b0b_6775ac8fe30b",
        client: OPENSSL_TLS13_ONLY,
        confidence: Confidence::Low,
        measured: "Node.js 20 https.Agent with TLS 1.3 only, resuming a session, as Python's would (node-tls13)",
    },
    Measured {
        hashes: "99d8c53049f3_e7e480e5a997",
        client: NODE,
        confidence: Confidence::Medium,
        measured: "Node.js 20 https.Agent's with TLS 1.2 only: Node's own cipher list (node-tls12)",
    },
    Measured {
        hashes: "a33745022dd6_1f22a2ca17c4",
        client: NODE,
        confidence: Confidence::Medium,
        measured: "Node.js 20's at its defaults, https.Agent and fetch alike (lab/fingerprints)",
    },
    Measured {
        hashes: "d68b136fe8d9_e7e480e5a997",
        client: PYTHON_SSL,
        confidence: Confidence::Medium,
        measured: "Python 3.11 http.client's with TLS 1.2 only: Python's own cipher list (race-tls12)",
    },
    Measured {
        hashes: "85036bcba153_d41ae481755e",
        client: PYTHON_SSL,
        confidence: Confidence::Medium,
        measured: "Python 3.11 http.client's with ssl.create_default_context() (lab/fingerprints)",
    },
    Measured {
        hashes: "85036bcba153_b26ce05bbdd6",
        client: PYTHON_URLLIB3,
        confidence: Confidence::Medium,
        measured: "Python 3.11 requests 2.34 / urllib3 2.7's at their defaults (lab/fingerprints)",
    },
    Measured {
        hashes: "e8f1e7e78f70_b26ce05bbdd6",
        client: CURL,
        confidence: Confidence::Medium,
        measured: "curl 7.88 (libcurl, OpenSSL 3.0) at its defaults: curl's own cipher list (lab/fingerprints)",
    },
    Measured {
        hashes: "8daaf6152771_a5b99884f7f5",
        client: OKHTTP,
        confidence: Confidence::Medium,
        measured: "OkHttp 3.13 on OpenJDK 17 at its defaults: OkHttp's own cipher list (ConnectionSpec.MODERN_TLS) on the JDK's TLS (lab/fingerprints)",
    },
    Measured {
        hashes: "db35923f8641_7c76daad20ec",
        client: JAVA,
        confidence: Confidence::Low,
        measured: "sent alike by OpenJDK 17 HttpClient and Apache HttpClient 4.5 on it at their defaults: the JDK's TLS (lab/fingerprints)",
    },
    Measured {
        hashes: "55b375c5d22e_c1c26d69a8d8",
        client: JAVA,
        confidence: Confidence::Low,
        measured: "sent alike by OpenJDK 17 HttpClient and Apache HttpClient 4.5 with TLS 1.3 only: the JDK's TLS (jdk-tls13, apache-tls13, haproxy-apache-tls13)",
    },
    Measured {
        hashes: "55b375c5d22e_7d01cb85ed02",
        client: JAVA,
        confidence: Confidence::Low,
        measured: "OpenJDK 17 HttpClient with TLS 1.3 only, resuming a session (jdk-tls13)",
    },
    Measured {
        hashes: "0ca14b6c4d46_1f7ae294493e",
        client: JAVA,
        confidence: Confidence::Low,
        measured: "Apache HttpClient 4.5 on OpenJDK 17 with TLS 1.2 only: the JDK's TLS (apache-tls12)",
    },
];

/// Server products by the start of their Server header (compared without case), most
/// specific first.
const SERVERS: &[(&str, &str)] = &[
    ("nginx", "nginx"),
    ("openresty", "OpenResty"),
    ("apache-coyote", "Apache Tomcat"),
    ("apache", "Apache httpd"),
    ("istio-envoy", "Envoy (Istio)"),
    ("envoy", "Envoy"),
    ("haproxy", "HAProxy"),
    ("uvicorn", "uvicorn"),
    ("gunicorn", "Gunicorn"),
    ("basehttp/", "Python http.server"),
    ("werkzeug", "Werkzeug"),
    ("jetty", "Jetty"),
    ("kestrel", "Kestrel"),
    ("microsoft-iis", "IIS"),
    ("caddy", "Caddy"),
    ("awselb", "AWS Elastic Load Balancing"),
    ("cloudflare", "Cloudflare"),
];

fn starts_with_ignore_case(value: &[u8], prefix: &str) -> bool {
    value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// What showed a flow's client, before any text is made.
#[derive(Clone, Copy)]
enum ClientClue<'f> {
    UserAgent(&'f HeaderValue, Option<ClientName>),
    PythonHead(u64),
    Hello(Ja4, u64, Option<&'static Measured>),
    /// The name a database client gave itself, and its frame.
    Database(&'f str, u64, Option<ClientName>),
    Nothing,
}

fn client_clue(flow: &Flow) -> ClientClue<'_> {
    let heads = flow.http_lines.as_ref().map(|lines| &lines.heads);
    if let Some(ua) = heads.and_then(|h| h.user_agent.as_ref()) {
        let value = ua.as_bytes();
        let known = if value == NODE_FETCH_USER_AGENT {
            Some(NODE_FETCH)
        } else {
            USER_AGENTS
                .iter()
                .find(|(prefix, _)| starts_with_ignore_case(value, prefix))
                .map(|(_, name)| *name)
        };
        return ClientClue::UserAgent(ua, known);
    }
    if let Some(frame) = heads.and_then(|h| h.bare_identity_request) {
        return ClientClue::PythonHead(frame);
    }
    if let Some((ja4, frame)) = flow.tls.as_ref().and_then(|t| t.client_hello) {
        let measured = FINGERPRINTS.iter().find(|m| m.hashes == ja4.hashes());
        return ClientClue::Hello(ja4, frame, measured);
    }
    if let Some((frame, name)) = flow.db.as_ref().and_then(|db| db.client_name.as_ref()) {
        let known = DATABASE_CLIENTS
            .iter()
            .find(|(prefix, _)| starts_with_ignore_case(name.as_bytes(), prefix))
            .map(|(_, c)| *c);
        return ClientClue::Database(name, *frame, known);
    }
    ClientClue::Nothing
}

/// The flow's client, by name only: what per-server counts need, without making text.
pub fn client_name(flow: &Flow) -> ClientName {
    const NONE: ClientName = client(UNKNOWN, &[]);
    match client_clue(flow) {
        ClientClue::UserAgent(_, known) => known.unwrap_or(NONE),
        ClientClue::PythonHead(_) => PYTHON_HTTP_CLIENT,
        ClientClue::Hello(_, _, measured) => measured.map_or(NONE, |m| m.client),
        ClientClue::Database(_, _, known) => known.unwrap_or(NONE),
        ClientClue::Nothing => NONE,
    }
}

/// Where a named client's settings are listed (advice/clients.rs), best first.
pub fn settings_for(name: &str) -> &'static [&'static str] {
    let all = USER_AGENTS
        .iter()
        .map(|(_, c)| c)
        .chain(FINGERPRINTS.iter().map(|m| &m.client))
        .chain(DATABASE_CLIENTS.iter().map(|(_, c)| c))
        .chain([&PYTHON_HTTP_CLIENT, &NODE_FETCH]);
    all.into_iter()
        .find(|c| c.name == name)
        .map_or(&[], |c| c.settings_for)
}

/// The flow's client software, with its evidence.
pub fn client_software(flow: &Flow) -> Software {
    let unknown = |source, seen, evidence| Software {
        name: UNKNOWN,
        confidence: None,
        source,
        seen,
        evidence,
        close: None,
    };
    match client_clue(flow) {
        ClientClue::UserAgent(ua, known) => {
            let value = String::from_utf8_lossy(ua.as_bytes()).into_owned();
            match known {
                Some(name) => Software {
                    name: name.name,
                    confidence: Some(Confidence::High),
                    source: Some("user_agent"),
                    evidence: format!("User-Agent: {value} (#{})", ua.frame),
                    seen: Some(value),
                    close: None,
                },
                None => unknown(
                    Some("user_agent"),
                    Some(value.clone()),
                    format!(
                        "User-Agent: {value} (#{}) names no HTTP client staleconn knows",
                        ua.frame
                    ),
                ),
            }
        }
        ClientClue::PythonHead(frame) => Software {
            name: PYTHON_HTTP_CLIENT.name,
            confidence: Some(Confidence::Medium),
            source: Some("request_head"),
            seen: Some("Accept-Encoding: identity".to_string()),
            evidence: format!(
                "request #{frame} has no User-Agent and asks for Accept-Encoding: identity, the head Python's http.client writes by itself"
            ),
            close: None,
        },
        ClientClue::Hello(ja4, frame, Some(measured)) => Software {
            name: measured.client.name,
            confidence: Some(measured.confidence),
            source: Some("tls_client_hello"),
            seen: Some(ja4.as_str().to_string()),
            evidence: format!(
                "TLS ClientHello #{frame}, JA4 {}: the fingerprint {}",
                ja4.as_str(),
                measured.measured
            ),
            close: None,
        },
        ClientClue::Hello(ja4, frame, None) => unknown(
            Some("tls_client_hello"),
            Some(ja4.as_str().to_string()),
            format!(
                "TLS ClientHello #{frame}, JA4 {}: not a fingerprint measured in the lab",
                ja4.as_str()
            ),
        ),
        ClientClue::Database(name, frame, Some(known)) => Software {
            name: known.name,
            confidence: Some(Confidence::High),
            source: Some("database_client_name"),
            seen: Some(name.to_string()),
            evidence: format!(
                "the client calls itself {name:?} in its {} set-up (#{frame})",
                flow.protocol.label()
            ),
            close: None,
        },
        ClientClue::Database(name, frame, None) => unknown(
            Some("database_client_name"),
            Some(name.to_string()),
            format!(
                "the client calls itself {name:?} in its {} set-up (#{frame}): not a client staleconn knows",
                flow.protocol.label()
            ),
        ),
        ClientClue::Nothing if flow.protocol.is_database() => unknown(
            None,
            None,
            format!(
                "the client gives no name of its own in its {} set-up (libpq and psycopg2 send none unless application_name is set)",
                flow.protocol.label()
            ),
        ),
        ClientClue::Nothing => unknown(
            None,
            None,
            "the capture shows no User-Agent, request head or whole TLS ClientHello of this flow"
                .to_string(),
        ),
    }
}

/// How the server closed when it was the one to close: its close_notify then its FIN, a
/// bare FIN, or a RST before any FIN. A close that answers the client's own (its FIN or
/// close_notify came first) says nothing of the server, nor does a RST with a TTL unlike
/// the server's packets (a middlebox's).
pub fn server_close(flow: &Flow) -> Option<&'static str> {
    let client_closed_first = |frame: u64| {
        flow.from_client.fin.is_some_and(|f| f.frame < frame)
            || flow
                .tls
                .as_ref()
                .and_then(|t| t.client_alert_frame)
                .is_some_and(|f| f < frame)
            || flow
                .db
                .as_ref()
                .and_then(|db| db.client_goodbye)
                .is_some_and(|f| f < frame)
    };
    if let Some(rst) = flow.from_server.rst
        && flow.from_server.fin.is_none_or(|f| rst.at.frame < f.frame)
    {
        let servers = flow.from_server.ttl.is_some_and(|ttl| ttl == rst.ttl);
        return (servers && !client_closed_first(rst.at.frame)).then_some("rst");
    }
    let close = flow.server_close?;
    let first = close.close_notify.unwrap_or(close.fin).frame;
    if client_closed_first(first) {
        return None;
    }
    let goodbye = flow
        .db
        .as_ref()
        .and_then(|db| db.server_goodbye.as_ref())
        .is_some_and(|(at, _)| close.prelude.is_some_and(|p| p.frame == at.frame));
    Some(if goodbye {
        "error_then_fin"
    } else if close.close_notify.is_some() {
        "close_notify_then_fin"
    } else {
        "fin"
    })
}

/// The server software's name by its Server header, without making text.
pub fn server_name(flow: &Flow) -> &'static str {
    if let Some(name) = database_server_name(flow) {
        return name;
    }
    flow.http_lines
        .as_ref()
        .and_then(|lines| lines.heads.server)
        .and_then(|server| {
            SERVERS
                .iter()
                .find(|(prefix, _)| starts_with_ignore_case(server.as_bytes(), prefix))
        })
        .map_or(UNKNOWN, |(_, name)| name)
}

/// A database or cache server's name: by the version it announced (MariaDB says so in its
/// version string), else by the protocol it speaks.
fn database_server_name(flow: &Flow) -> Option<&'static str> {
    use crate::flow::Protocol;
    let version = flow.db.as_ref()?.server_version.as_ref();
    Some(match flow.protocol {
        Protocol::Postgres => "PostgreSQL",
        Protocol::Mysql if version.is_some_and(|(_, v)| v.contains("MariaDB")) => "MariaDB",
        Protocol::Mysql => "MySQL",
        Protocol::Redis => "Redis",
        Protocol::Unknown | Protocol::Http => return None,
    })
}

/// The flow's server software, with its evidence and how it closed.
pub fn server_software(flow: &Flow) -> Software {
    let close = server_close(flow);
    let closed = match close {
        Some("close_notify_then_fin") => {
            "; it closed with a TLS close_notify, then its FIN (as nginx and HAProxy do in the lab)"
        }
        Some("fin") => "; it closed with a bare FIN",
        Some("error_then_fin") => {
            "; it closed with an error message saying why (PostgreSQL's FATAL), then its FIN"
        }
        Some("rst") => "; its side ended the connection with a RST",
        _ => "",
    };
    if let Some(name) = database_server_name(flow) {
        let version = flow.db.as_ref().and_then(|db| db.server_version.as_ref());
        let (confidence, seen, evidence) = match version {
            Some((frame, v)) => (
                Confidence::High,
                Some(v.to_string()),
                format!("it announced version {v} (#{frame}){closed}"),
            ),
            None => (
                Confidence::Medium,
                None,
                format!("it speaks the {} protocol{closed}", flow.protocol.label()),
            ),
        };
        return Software {
            name,
            confidence: Some(confidence),
            source: Some(if version.is_some() {
                "server_version"
            } else {
                "protocol"
            }),
            seen,
            evidence,
            close,
        };
    }
    let header = flow.http_lines.as_ref().and_then(|l| l.heads.server);
    let name = server_name(flow);
    match header {
        Some(server) => {
            let value = String::from_utf8_lossy(server.as_bytes()).into_owned();
            let known = name != UNKNOWN;
            Software {
                name,
                confidence: known.then_some(Confidence::High),
                source: Some("server_header"),
                evidence: if known {
                    format!("Server: {value} (#{}){closed}", server.frame)
                } else {
                    format!(
                        "Server: {value} (#{}) names no server staleconn knows{closed}",
                        server.frame
                    )
                },
                seen: Some(value),
                close,
            }
        }
        None => Software {
            name: UNKNOWN,
            confidence: None,
            source: None,
            seen: None,
            evidence: format!("the capture shows no Server header{closed}"),
            close,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Segment, TcpFlags};
    use crate::flow::{DEFAULT_MAX_FLOWS, Stamp, Tracker};
    use crate::time::Timestamp;

    /// A plaintext exchange: handshake, one request with `request` as its head, one
    /// response with `response` as its head, then the server's FIN.
    fn exchange(request: &'static [u8], response: &'static [u8]) -> Flow {
        const C: &str = "198.18.1.2:40000";
        const S: &str = "198.19.2.2:80";
        let seg = |src: &str, dst: &str, flags: u8, seq: u32, ack: u32, payload| {
            Segment::built(
                src.parse().unwrap(),
                dst.parse().unwrap(),
                flags,
                seq,
                ack,
                payload,
            )
        };
        let ack = TcpFlags::ACK;
        let data = TcpFlags::PSH | TcpFlags::ACK;
        let (q, r) = (request.len() as u32, response.len() as u32);
        let segments = [
            seg(C, S, TcpFlags::SYN, 100, 0, &b""[..]),
            seg(S, C, TcpFlags::SYN | ack, 500, 101, b""),
            seg(C, S, ack, 101, 501, b""),
            seg(C, S, data, 101, 501, request),
            seg(S, C, data, 501, 101 + q, response),
            seg(S, C, TcpFlags::FIN | ack, 501 + r, 101 + q, b""),
        ];
        let mut table = Tracker::new(Vec::new(), DEFAULT_MAX_FLOWS);
        let mut flows = Vec::new();
        for (i, s) in segments.iter().enumerate() {
            let at = Stamp {
                frame: i as u64 + 1,
                ts: Timestamp(i as i64 * 10_000_000),
            };
            table.observe(s, at, &mut |f| flows.push(*f));
        }
        table.finish_all(&mut |f| flows.push(*f));
        flows.pop().unwrap()
    }

    #[test]
    fn user_agent_and_server_headers_name_the_software() {
        let flow = exchange(
            b"GET / HTTP/1.1\r\nHost: api\r\nUser-Agent: okhttp/4.12.0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: envoy\r\nContent-Length: 0\r\n\r\n",
        );
        let client = client_software(&flow);
        assert_eq!(
            (client.name, client.confidence),
            ("OkHttp", Some(Confidence::High))
        );
        assert_eq!(client.evidence, "User-Agent: okhttp/4.12.0 (#4)");
        let server = server_software(&flow);
        assert_eq!(server.name, "Envoy");
        assert_eq!(server.close, Some("fin"));
        assert_eq!(
            server.evidence,
            "Server: envoy (#5); it closed with a bare FIN"
        );
        assert_eq!(client_name(&flow).settings_for, ["OkHttp"]);

        let apache = exchange(
            b"POST /x HTTP/1.1\r\nUser-Agent: Apache-HttpClient/4.5.14 (Java/17.0.15)\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.57 (Debian)\r\n\r\n",
        );
        assert_eq!(client_software(&apache).name, "Apache HttpClient 4.5");
        assert_eq!(server_software(&apache).name, "Apache httpd");
    }

    #[test]
    fn what_names_nothing_known_stays_unknown() {
        let flow = exchange(
            b"GET / HTTP/1.1\r\nUser-Agent: orders-service/2.1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: in-house\r\n\r\n",
        );
        let client = client_software(&flow);
        assert_eq!((client.name, client.confidence), (UNKNOWN, None));
        assert_eq!(client.seen.as_deref(), Some("orders-service/2.1"));
        assert_eq!(server_software(&flow).name, UNKNOWN);
        // No User-Agent and no http.client head: nothing to go by.
        let bare = exchange(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
        );
        assert_eq!(client_software(&bare).name, UNKNOWN);
        assert_eq!(client_software(&bare).source, None);
    }

    #[test]
    fn every_named_client_has_settings_to_lead_with() {
        let names = USER_AGENTS
            .iter()
            .map(|(_, c)| c)
            .chain(FINGERPRINTS.iter().map(|m| &m.client))
            .chain([&PYTHON_HTTP_CLIENT, &NODE_FETCH]);
        let listed: Vec<&str> = crate::advice::clients::max_idle_settings(4)
            .into_iter()
            .map(|s| s.client)
            .collect();
        for client in names {
            assert!(!client.settings_for.is_empty(), "{}", client.name);
            for wanted in client.settings_for {
                assert!(
                    listed.contains(wanted),
                    "{}: no {wanted} in clients.rs",
                    client.name
                );
            }
        }
    }
}
