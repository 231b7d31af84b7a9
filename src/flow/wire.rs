//! What a database or cache protocol's bytes say: PostgreSQL, MySQL/MariaDB and Redis
//! messages, as far as flow tracking needs them (a query from a reply, a goodbye from a
//! request, a pool's validation query, the server's own words as it closes).

/// The application protocol a flow carries, from its ports and first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Protocol {
    /// Not recognised: requests are bursts of client data, answers the server's data
    /// that acknowledges them, whatever the protocol.
    #[default]
    Unknown,
    /// HTTP/1 or HTTP/2, in the clear or over TLS.
    Http,
    Postgres,
    /// MySQL or MariaDB: one wire protocol.
    Mysql,
    Redis,
}

impl Protocol {
    /// The name scripts see.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Unknown => "unknown",
            Protocol::Http => "http",
            Protocol::Postgres => "postgresql",
            Protocol::Mysql => "mysql",
            Protocol::Redis => "redis",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Unknown => "TCP",
            Protocol::Http => "HTTP",
            Protocol::Postgres => "PostgreSQL",
            Protocol::Mysql => "MySQL",
            Protocol::Redis => "Redis",
        }
    }

    /// A database or cache: its requests are queries or commands, its idle timers
    /// server settings, and its pools the clients' settings.
    pub fn is_database(self) -> bool {
        matches!(self, Protocol::Postgres | Protocol::Mysql | Protocol::Redis)
    }

    /// The protocol a server port usually carries (IANA's assignments).
    pub fn by_port(port: u16) -> Protocol {
        match port {
            5432 => Protocol::Postgres,
            3306 => Protocol::Mysql,
            6379 => Protocol::Redis,
            _ => Protocol::Unknown,
        }
    }
}

/// What a client's segment starts with, for a database or cache protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage {
    /// A query or command: it wants an answer.
    Request,
    /// A pool's check that the connection still works before lending it: MySQL COM_PING,
    /// PostgreSQL's empty query (JDBC `isValid()`), `SELECT 1`, Redis PING.
    Validation,
    /// The client ends the connection: PostgreSQL Terminate, MySQL COM_QUIT, Redis QUIT.
    /// It asks for no answer.
    Goodbye,
    /// The client asks to go on in TLS: PostgreSQL's SSLRequest, MySQL's SSL request
    /// packet. TLS records follow once the server agrees.
    TlsUpgrade,
}

/// PostgreSQL's SSLRequest: length 8, code 80877103.
const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// PostgreSQL's Terminate message: 'X', length 4.
const PG_TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];
/// MySQL's commands (the first byte of a command packet's payload).
const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_PING: u8 = 0x0e;
/// MySQL's capability flag asking for TLS in the client's handshake response.
const CLIENT_SSL: u32 = 0x0800;

/// What the client's segment starting with `captured` (of `len` bytes on the wire) is.
pub fn client_message(protocol: Protocol, captured: &[u8], len: u32) -> ClientMessage {
    match protocol {
        Protocol::Postgres => postgres_client(captured, len),
        Protocol::Mysql => mysql_client(captured, len),
        Protocol::Redis => redis_client(captured),
        Protocol::Unknown | Protocol::Http => ClientMessage::Request,
    }
}

fn postgres_client(captured: &[u8], len: u32) -> ClientMessage {
    if len == 8 && captured.starts_with(&PG_SSL_REQUEST) {
        return ClientMessage::TlsUpgrade;
    }
    if len == 5 && captured.starts_with(&PG_TERMINATE) {
        return ClientMessage::Goodbye;
    }
    match captured {
        // Query: the text, NUL-terminated.
        [b'Q', _, _, _, _, text @ ..] if is_validation_sql(c_string(text)) => {
            ClientMessage::Validation
        }
        // Parse: the statement's name, then its text (pgjdbc sends every query so).
        [b'P', _, _, _, _, rest @ ..] => {
            let name = c_string(rest);
            let text = rest.get(name.len() + 1..).map_or(&b"x"[..], c_string);
            if is_validation_sql(text) {
                ClientMessage::Validation
            } else {
                ClientMessage::Request
            }
        }
        _ => ClientMessage::Request,
    }
}

fn mysql_client(captured: &[u8], len: u32) -> ClientMessage {
    let [l0, l1, l2, seq, body @ ..] = captured else {
        return ClientMessage::Request;
    };
    let packet = u32::from_le_bytes([*l0, *l1, *l2, 0]);
    match (seq, body) {
        (0, [COM_QUIT, ..]) if packet == 1 && len == 5 => ClientMessage::Goodbye,
        (0, [COM_PING, ..]) if packet == 1 => ClientMessage::Validation,
        (0, [COM_QUERY, text @ ..]) => {
            let text = &text[..text.len().min(packet.saturating_sub(1) as usize)];
            if is_validation_sql(text) {
                ClientMessage::Validation
            } else {
                ClientMessage::Request
            }
        }
        // The short handshake response that asks for TLS: capabilities and nothing else
        // a login needs (HandshakeResponse41 cut after its filler: 32 bytes).
        (1, [c0, c1, c2, c3, ..]) if packet == 32 => {
            let capabilities = u32::from_le_bytes([*c0, *c1, *c2, *c3]);
            if capabilities & CLIENT_SSL != 0 {
                ClientMessage::TlsUpgrade
            } else {
                ClientMessage::Request
            }
        }
        _ => ClientMessage::Request,
    }
}

fn redis_client(captured: &[u8]) -> ClientMessage {
    let name = redis_command(captured);
    if name.eq_ignore_ascii_case(b"QUIT") {
        ClientMessage::Goodbye
    } else if name.eq_ignore_ascii_case(b"PING") {
        ClientMessage::Validation
    } else {
        ClientMessage::Request
    }
}

/// The command name a Redis request starts with: a RESP array's first bulk string
/// ("*1\r\n$4\r\nPING\r\n"), or an inline command's first word ("PING\r\n").
fn redis_command(captured: &[u8]) -> &[u8] {
    if let Some(rest) = captured.strip_prefix(b"*") {
        let Some(header) = after_crlf(rest).and_then(|r| r.strip_prefix(b"$")) else {
            return b"";
        };
        let Some(body) = after_crlf(header) else {
            return b"";
        };
        let digits = &header[..header.len() - body.len() - 2];
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        return body.get(..len).unwrap_or(b"");
    }
    let end = captured
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(captured.len());
    &captured[..end]
}

fn after_crlf(bytes: &[u8]) -> Option<&[u8]> {
    let at = bytes.windows(2).position(|w| w == b"\r\n")?;
    Some(&bytes[at + 2..])
}

/// The bytes up to the first NUL (all of them if the capture cut it).
fn c_string(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// A pool's validation query: empty (JDBC `isValid()` on PostgreSQL), `SELECT 1`, or one
/// marked `/* ping */` (MySQL Connector/J's ping), spaces and a `;` aside.
fn is_validation_sql(text: &[u8]) -> bool {
    let text = text.trim_ascii();
    let text = text.strip_suffix(b";").unwrap_or(text).trim_ascii();
    text.is_empty()
        || text.eq_ignore_ascii_case(b"SELECT 1")
        || text.starts_with(b"/* ping */")
        || text.eq_ignore_ascii_case(b"VALUES 1")
}

/// What the server says as it ends the connection: PostgreSQL's FATAL ErrorResponse, a
/// MySQL error packet. Its code (SQLSTATE or MySQL error number) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerWords {
    pub code: String,
    pub message: String,
}

/// The server's FATAL error (PostgreSQL) or error packet (MySQL) that starts `captured`.
pub fn server_error(protocol: Protocol, captured: &[u8]) -> Option<ServerWords> {
    match protocol {
        Protocol::Postgres => postgres_fatal(captured),
        Protocol::Mysql => mysql_error(captured),
        _ => None,
    }
}

fn postgres_fatal(captured: &[u8]) -> Option<ServerWords> {
    let [b'E', l0, l1, l2, l3, body @ ..] = captured else {
        return None;
    };
    let len = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
    let mut fields: &[u8] = &body[..body.len().min(len.saturating_sub(4))];
    let (mut severity, mut code, mut message): (&[u8], &[u8], &[u8]) = (b"", b"", b"");
    while let [kind, rest @ ..] = fields
        && *kind != 0
    {
        let value = c_string(rest);
        match kind {
            b'V' => severity = value,
            b'S' if severity.is_empty() => severity = value,
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        fields = rest.get(value.len() + 1..).unwrap_or(&[]);
    }
    (severity == b"FATAL" || severity == b"PANIC").then(|| ServerWords {
        code: String::from_utf8_lossy(code).into_owned(),
        message: String::from_utf8_lossy(&message[..message.len().min(160)]).into_owned(),
    })
}

fn mysql_error(captured: &[u8]) -> Option<ServerWords> {
    let [l0, l1, l2, _seq, 0xff, c0, c1, rest @ ..] = captured else {
        return None;
    };
    let packet = u32::from_le_bytes([*l0, *l1, *l2, 0]) as usize;
    let rest = &rest[..rest.len().min(packet.saturating_sub(3))];
    let message = match rest {
        [b'#', _, _, _, _, _, message @ ..] => message,
        message => message,
    };
    Some(ServerWords {
        code: u16::from_le_bytes([*c0, *c1]).to_string(),
        message: String::from_utf8_lossy(&message[..message.len().min(160)]).into_owned(),
    })
}

/// The protocol the first bytes of a connection show, either way: PostgreSQL's startup
/// or SSLRequest, a MySQL server's greeting, a Redis command as a RESP array.
pub fn recognise(from_client: bool, captured: &[u8]) -> Option<Protocol> {
    if from_client {
        let postgres = matches!(
            captured,
            [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f | 0x30, ..] | [0, 0, _, _, 0, 3, 0, 0, ..]
        );
        if postgres {
            return Some(Protocol::Postgres);
        }
        if let [b'*', b'1'..=b'9', ..] = captured
            && !redis_command(captured).is_empty()
        {
            return Some(Protocol::Redis);
        }
        return None;
    }
    // The greeting: a packet numbered 0 of protocol version 10 with a printable version.
    match captured {
        [_, _, 0, 0, 10, b'0'..=b'9', ..] => Some(Protocol::Mysql),
        _ => None,
    }
}

/// The name a database client gives itself in its first bytes: PostgreSQL's
/// `application_name` in the startup message, MySQL's `_client_name` connection attribute,
/// the `LIB-NAME` of Redis' `CLIENT SETINFO`.
pub fn client_self_name(protocol: Protocol, captured: &[u8]) -> Option<&[u8]> {
    match protocol {
        Protocol::Postgres => {
            // pgjdbc names itself in a query right after the set-up.
            if let Some(at) = find(captured, b"application_name = '") {
                let rest = &captured[at + 20..];
                return rest
                    .iter()
                    .position(|&b| b == b'\'')
                    .map(|end| &rest[..end]);
            }
            // The startup message: length, version 3.0, then NUL-terminated pairs.
            let [_, _, _, _, 0, 3, 0, 0, rest @ ..] = captured else {
                return None;
            };
            let mut params: &[u8] = rest;
            while !params.is_empty() && params[0] != 0 {
                let key = c_string(params);
                let rest = params.get(key.len() + 1..)?;
                let value = c_string(rest);
                if key == b"application_name" {
                    return (!value.is_empty()).then_some(value);
                }
                params = rest.get(value.len() + 1..)?;
            }
            None
        }
        Protocol::Mysql => {
            // The attributes are length-encoded strings: "_client_name", then its value.
            let at = find(captured, b"\x0c_client_name")? + 13;
            let len = usize::from(*captured.get(at)?);
            captured.get(at + 1..at + 1 + len)
        }
        Protocol::Redis => {
            let at =
                find(captured, b"LIB-NAME\r\n$").or_else(|| find(captured, b"lib-name\r\n$"))? + 11;
            let rest = captured.get(at..)?;
            let body = after_crlf(rest)?;
            let end = body.windows(2).position(|w| w == b"\r\n")?;
            Some(&body[..end])
        }
        Protocol::Unknown | Protocol::Http => None,
    }
}

/// The version a database server announces: PostgreSQL's `server_version` parameter,
/// the MySQL greeting's version string.
pub fn server_version(protocol: Protocol, captured: &[u8]) -> Option<&[u8]> {
    match protocol {
        Protocol::Postgres => {
            let at = find(captured, b"server_version\0")? + 15;
            Some(c_string(captured.get(at..)?))
        }
        Protocol::Mysql => match captured {
            [_, _, _, 0, 10, version @ ..] => Some(c_string(version)),
            _ => None,
        },
        _ => None,
    }
    .filter(|v| !v.is_empty() && v.len() <= 80)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The byte that says what a message is, for a timeline: PostgreSQL's message type (0 for
/// a startup packet, 1 for SSLRequest), a MySQL command or a server packet's first byte
/// (10 for the greeting), a RESP type byte.
pub fn message_tag(protocol: Protocol, from_client: bool, captured: &[u8]) -> u8 {
    match (protocol, captured) {
        (Protocol::Postgres, [0, 0, 0, 8, 0x04, 0xd2, ..]) => 1,
        (Protocol::Postgres, [0, ..]) => 0,
        (Protocol::Postgres, [tag, ..]) => *tag,
        (Protocol::Mysql, [_, _, _, _, tag, ..]) => *tag,
        (Protocol::Redis, [tag, ..]) if from_client && *tag != b'*' => b'i',
        (Protocol::Redis, [tag, ..]) => *tag,
        _ => 0xff,
    }
}

/// A timeline's name for a message (Wireshark's where it has one).
pub fn message_name(protocol: Protocol, from_client: bool, tag: u8) -> &'static str {
    match (protocol, from_client, tag) {
        (Protocol::Postgres, true, 0) => "PostgreSQL startup message",
        (Protocol::Postgres, true, 1) => "PostgreSQL SSLRequest",
        (Protocol::Postgres, true, b'Q') => "PostgreSQL Query",
        (Protocol::Postgres, true, b'P') => "PostgreSQL Parse",
        (Protocol::Postgres, true, b'B') => "PostgreSQL Bind",
        (Protocol::Postgres, true, b'X') => "PostgreSQL Terminate",
        (Protocol::Postgres, true, b'p') => "PostgreSQL password message",
        (Protocol::Postgres, false, b'R') => "PostgreSQL Authentication",
        (Protocol::Postgres, false, b'E') => "PostgreSQL ErrorResponse",
        (Protocol::Postgres, false, b'S') => "PostgreSQL ParameterStatus or SSL yes",
        (Protocol::Postgres, false, b'N') => "PostgreSQL NoticeResponse or SSL no",
        (Protocol::Postgres, false, b'T') => "PostgreSQL RowDescription",
        (Protocol::Postgres, false, b'1') => "PostgreSQL ParseComplete",
        (Protocol::Postgres, false, b'C') => "PostgreSQL CommandComplete",
        (Protocol::Postgres, false, b'I') => "PostgreSQL EmptyQueryResponse",
        (Protocol::Postgres, false, b'Z') => "PostgreSQL ReadyForQuery",
        (Protocol::Postgres, _, _) => "PostgreSQL message",
        (Protocol::Mysql, true, COM_QUIT) => "MySQL COM_QUIT",
        (Protocol::Mysql, true, COM_QUERY) => "MySQL COM_QUERY",
        (Protocol::Mysql, true, COM_PING) => "MySQL COM_PING",
        (Protocol::Mysql, true, _) => "MySQL command",
        (Protocol::Mysql, false, 0x00) => "MySQL OK",
        (Protocol::Mysql, false, 0xff) => "MySQL error",
        (Protocol::Mysql, false, 10) => "MySQL server greeting",
        (Protocol::Mysql, false, _) => "MySQL response",
        (Protocol::Redis, true, _) => "Redis command",
        (Protocol::Redis, false, b'-') => "Redis error reply",
        (Protocol::Redis, false, _) => "Redis reply",
        _ => "data",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_messages() {
        let m = |bytes: &[u8]| client_message(Protocol::Postgres, bytes, bytes.len() as u32);
        assert_eq!(m(&PG_SSL_REQUEST), ClientMessage::TlsUpgrade);
        assert_eq!(m(&PG_TERMINATE), ClientMessage::Goodbye);
        assert_eq!(m(b"Q\0\0\0\x0dSELECT 1\0"), ClientMessage::Validation);
        assert_eq!(m(b"Q\0\0\0\x05\0"), ClientMessage::Validation);
        assert_eq!(m(b"Q\0\0\0\x0eSELECT 42\0"), ClientMessage::Request);
        // pgjdbc's isValid(): Parse of an empty query, unnamed.
        assert_eq!(
            m(b"P\0\0\0\x08\0\0\0\0B\0\0\0\x0c"),
            ClientMessage::Validation
        );
        assert_eq!(m(b"P\0\0\0\x10\0select 2\0\0\0"), ClientMessage::Request);
        // Terminate in the same segment as more bytes is not a goodbye alone.
        assert_eq!(
            client_message(Protocol::Postgres, &PG_TERMINATE, 9),
            ClientMessage::Request
        );
    }

    #[test]
    fn mysql_messages() {
        let m = |bytes: &[u8]| client_message(Protocol::Mysql, bytes, bytes.len() as u32);
        assert_eq!(m(&[1, 0, 0, 0, COM_QUIT]), ClientMessage::Goodbye);
        assert_eq!(m(&[1, 0, 0, 0, COM_PING]), ClientMessage::Validation);
        assert_eq!(m(b"\x09\0\0\0\x03SELECT 1"), ClientMessage::Validation);
        assert_eq!(m(b"\x0a\0\0\0\x03SELECT 42"), ClientMessage::Request);
        let mut ssl = vec![32, 0, 0, 1, 0x05, 0xaa, 0, 0];
        ssl.resize(36, 0);
        assert_eq!(m(&ssl), ClientMessage::TlsUpgrade);
    }

    #[test]
    fn redis_messages() {
        let m = |bytes: &[u8]| client_message(Protocol::Redis, bytes, bytes.len() as u32);
        assert_eq!(m(b"*1\r\n$4\r\nPING\r\n"), ClientMessage::Validation);
        assert_eq!(m(b"*1\r\n$4\r\nQUIT\r\n"), ClientMessage::Goodbye);
        assert_eq!(m(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), ClientMessage::Request);
        assert_eq!(m(b"PING\r\n"), ClientMessage::Validation);
        assert_eq!(m(b"*2\r\n$99\r\nGE"), ClientMessage::Request);
        assert_eq!(m(b"*"), ClientMessage::Request);
    }

    #[test]
    fn server_goodbyes() {
        // PostgreSQL 15 at idle_session_timeout.
        let fatal = b"E\0\0\0\x73SFATAL\0VFATAL\0C57P05\0Mterminating connection due to idle-session timeout\0Fpostgres.c\0L3370\0RProcessInterrupts\0\0";
        let words = server_error(Protocol::Postgres, fatal).unwrap();
        assert_eq!(words.code, "57P05");
        assert_eq!(
            words.message,
            "terminating connection due to idle-session timeout"
        );
        let error = b"E\0\0\0\x20SERROR\0VERROR\0C42601\0Mx\0\0";
        assert_eq!(server_error(Protocol::Postgres, error), None);
        // MySQL 8 at wait_timeout: ER_CLIENT_INTERACTION_TIMEOUT.
        let mut mysql = vec![0, 0, 0, 0, 0xff, 0xbf, 0x0f, b'#'];
        mysql.extend(b"HY000The client was disconnected");
        mysql[0] = (mysql.len() - 4) as u8;
        let words = server_error(Protocol::Mysql, &mysql).unwrap();
        assert_eq!(words.code, "4031");
        assert_eq!(words.message, "The client was disconnected");
        assert_eq!(
            server_error(Protocol::Mysql, b"\x07\0\0\x01\0\0\0\x02\0\0\0"),
            None
        );
    }

    #[test]
    fn software_names() {
        let startup =
            b"\0\0\0\x40\0\x03\0\0user\0app\0application_name\0PostgreSQL JDBC Driver\0\0";
        assert_eq!(
            client_self_name(Protocol::Postgres, startup),
            Some(&b"PostgreSQL JDBC Driver"[..])
        );
        assert_eq!(
            client_self_name(Protocol::Postgres, b"\0\0\0\x10\0\x03\0\0user\0a\0\0"),
            None
        );
        let set = b"P\0\0\0\x3a\0SET application_name = 'PostgreSQL JDBC Driver'\0\0\0";
        assert_eq!(
            client_self_name(Protocol::Postgres, set),
            Some(&b"PostgreSQL JDBC Driver"[..])
        );
        let attrs = b"..\x0c_client_name\x07pymysql\x04_pid";
        assert_eq!(
            client_self_name(Protocol::Mysql, attrs),
            Some(&b"pymysql"[..])
        );
        let setinfo =
            b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$8\r\nLIB-NAME\r\n$8\r\nredis-py\r\n";
        assert_eq!(
            client_self_name(Protocol::Redis, setinfo),
            Some(&b"redis-py"[..])
        );
        let status = b"S\0\0\0\x19server_version\x0015.18\0Z";
        assert_eq!(
            server_version(Protocol::Postgres, status),
            Some(&b"15.18"[..])
        );
        assert_eq!(
            server_version(Protocol::Mysql, b"\x5b\0\0\0\x0a10.11.6-MariaDB\0"),
            Some(&b"10.11.6-MariaDB"[..])
        );
    }

    #[test]
    fn first_bytes() {
        assert_eq!(recognise(true, &PG_SSL_REQUEST), Some(Protocol::Postgres));
        assert_eq!(
            recognise(true, b"\0\0\0\x29\0\x03\0\0user\0app\0"),
            Some(Protocol::Postgres)
        );
        assert_eq!(
            recognise(true, b"*3\r\n$3\r\nSET\r\n"),
            Some(Protocol::Redis)
        );
        assert_eq!(
            recognise(false, b"\x5b\0\0\0\x0a10.11.6-MariaDB\0"),
            Some(Protocol::Mysql)
        );
        assert_eq!(recognise(true, b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(recognise(false, b"HTTP/1.1 200 OK"), None);
        assert_eq!(recognise(true, b"*"), None);
    }
}
