//! What a segment's payload is, from its bytes: TLS record headers, HTTP/1 heads and HTTP/2
//! frames in the clear. Only what flow tracking needs; tls.rs walks the records.

/// TLS record content types.
pub const TLS_CHANGE_CIPHER_SPEC: u8 = 20;
pub const TLS_ALERT: u8 = 21;
pub const TLS_HANDSHAKE: u8 = 22;
pub const TLS_APPLICATION_DATA: u8 = 23;

/// The longest TLS 1.3 record that can be an encrypted alert: 2 bytes of alert, 1 byte of
/// inner content type and a 16-byte AEAD tag. nginx's close_notify is exactly this.
pub const TLS13_ALERT_MAX_RECORD: u16 = 19;

/// The header of a TLS record: content type, version, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsRecord {
    pub content_type: u8,
    pub length: u16,
}

/// A TLS record header at the start of `bytes`, if the bytes look like one.
pub fn tls_record(bytes: &[u8]) -> Option<TlsRecord> {
    let [content_type, major, minor, hi, lo, ..] = *bytes else {
        return None;
    };
    let plausible = (TLS_CHANGE_CIPHER_SPEC..=TLS_APPLICATION_DATA).contains(&content_type)
        && major == 3
        && minor <= 4;
    let length = u16::from_be_bytes([hi, lo]);
    // RFC 8446: a record is at most 2^14 bytes plus 256 of expansion.
    (plausible && length <= 16384 + 256).then_some(TlsRecord {
        content_type,
        length,
    })
}

/// What a segment's payload starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// A TLS record of this type starts the segment.
    Tls { record: TlsRecord },
    /// An HTTP/1 request line ("GET / HTTP/1.1").
    HttpRequest,
    /// An HTTP/1 status line ("HTTP/1.1 200 OK").
    HttpResponse,
    /// Anything else: a continuation, another protocol, or bytes the capture cut.
    Other,
}

/// What an HTTP/2 client sends first on a connection in the clear (RFC 9113 3.4).
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Classifies a segment from its first captured bytes.
pub fn classify(captured: &[u8]) -> Payload {
    if let Some(record) = tls_record(captured) {
        return Payload::Tls { record };
    }
    if captured.starts_with(b"HTTP/1.") {
        return Payload::HttpResponse;
    }
    if HTTP_METHODS.iter().any(|m| captured.starts_with(m)) {
        return Payload::HttpRequest;
    }
    Payload::Other
}

/// HTTP/2's GOAWAY frame type (RFC 9113 6.8).
const HTTP2_GOAWAY: u8 = 7;

/// Whether the HTTP/2 frames that start `captured` hold a GOAWAY (on stream 0), as far as
/// the capture holds them.
pub fn http2_goaway(captured: &[u8]) -> bool {
    let mut rest = captured;
    while let [l0, l1, l2, kind, _flags, s0, s1, s2, s3, body @ ..] = rest {
        let stream = u32::from_be_bytes([*s0 & 0x7f, *s1, *s2, *s3]);
        if *kind == HTTP2_GOAWAY && stream == 0 {
            return true;
        }
        let len = usize::from(*l0) << 16 | usize::from(*l1) << 8 | usize::from(*l2);
        let Some(next) = body.get(len..) else {
            return false;
        };
        rest = next;
    }
    false
}

/// What the HTTP/2 frames of a client segment in the clear carry: `Some(true)` when one of
/// them is part of a request (HEADERS, CONTINUATION or DATA), `Some(false)` when every one is
/// connection control (SETTINGS, PING, WINDOW_UPDATE, GOAWAY, RST_STREAM, PRIORITY), and
/// `None` when the bytes are not whole frames as far as `len` and the capture go.
pub fn http2_carries_request(captured: &[u8], len: u32) -> Option<bool> {
    const DATA: u8 = 0;
    const HEADERS: u8 = 1;
    const CONTINUATION: u8 = 9;
    let skip = if captured.starts_with(HTTP2_PREFACE) {
        HTTP2_PREFACE.len()
    } else {
        0
    };
    let mut at = skip;
    let len = len as usize;
    if at >= len {
        return Some(false);
    }
    while at < len {
        let header = captured.get(at..at + 9)?;
        let kind = header[3];
        if matches!(kind, DATA | HEADERS | CONTINUATION) {
            return Some(true);
        }
        let frame =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        at += 9 + frame;
    }
    (at == len).then_some(false)
}

/// Which of `HTTP_METHODS` starts an HTTP/1 request line (one byte in a timeline).
pub fn http_method_index(captured: &[u8]) -> Option<u8> {
    let index = HTTP_METHODS.iter().position(|m| captured.starts_with(m))?;
    u8::try_from(index).ok()
}

/// The method named by `http_method_index`, without its trailing space.
pub fn http_method_name(index: u8) -> &'static str {
    HTTP_METHODS
        .get(usize::from(index))
        .and_then(|m| std::str::from_utf8(&m[..m.len() - 1]).ok())
        .unwrap_or("?")
}

/// The first line of an HTTP/1 head, as far as the capture holds it (at most 120 bytes),
/// written over `line`: a flow's latest request or status line replaces the one before in
/// the same buffer, so a connection with many requests allocates once.
pub fn first_line_into(captured: &[u8], line: &mut String) {
    let end = captured
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(captured.len());
    line.clear();
    line.push_str(&String::from_utf8_lossy(&captured[..end.min(120)]));
}

/// The status code of an HTTP/1 status line ("HTTP/1.1 200 OK").
pub fn http_status(captured: &[u8]) -> Option<u16> {
    let code = captured.get(9..12)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// What a plaintext HTTP/1 response head announces about the connection's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// `Connection: close`.
    pub connection_close: bool,
    /// `Keep-Alive: timeout=N`, in seconds: the server's own word on its idle timer.
    pub keepalive_timeout_s: Option<u32>,
    /// The `Server` header's value, as bytes: the server software's own name for itself.
    pub server: Option<&'a [u8]>,
}

/// Parses a response head with httparse; `None` when the capture holds no complete head
/// (a snapshot length can cut it).
pub fn response_head(captured: &[u8]) -> Option<ResponseHead<'_>> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(captured) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let mut head = ResponseHead::default();
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("server") {
            head.server = Some(header.value);
            continue;
        }
        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
        if header.name.eq_ignore_ascii_case("connection") {
            head.connection_close |= value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
        } else if header.name.eq_ignore_ascii_case("keep-alive") {
            head.keepalive_timeout_s = value.split(',').find_map(|param| {
                let (key, n) = param.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("timeout")
                    .then(|| n.trim().parse().ok())?
            });
        }
    }
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_goaway_frames() {
        // nginx at its idle timer over h2c: GOAWAY (last stream 1, NO_ERROR).
        let goaway = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(http2_goaway(&goaway));
        // After a SETTINGS acknowledgement in the same segment.
        let mut both = vec![0, 0, 0, 4, 1, 0, 0, 0, 0];
        both.extend(goaway);
        assert!(http2_goaway(&both));
        // A DATA frame on stream 1 is not one, nor are cut or foreign bytes.
        assert!(!http2_goaway(&[0, 0, 2, 0, 1, 0, 0, 0, 1, b'o', b'k']));
        assert!(!http2_goaway(&goaway[..5]));
        assert!(!http2_goaway(b"HTTP/1.1 200 OK\r\n"));
    }

    #[test]
    fn http2_control_frames_are_not_requests() {
        // SETTINGS acknowledgement, then a client GOAWAY: control only.
        let control = [
            0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        ];
        assert_eq!(http2_carries_request(&control, 26), Some(false));
        // A HEADERS frame on stream 3.
        let headers = [0, 0, 2, 1, 5, 0, 0, 0, 3, 0x82, 0x84];
        assert_eq!(http2_carries_request(&headers, 11), Some(true));
        // The preface with SETTINGS, no request yet.
        let mut preface = HTTP2_PREFACE.to_vec();
        preface.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(
            http2_carries_request(&preface, preface.len() as u32),
            Some(false)
        );
        // Cut by the capture, or not frames at all: unknown.
        assert_eq!(http2_carries_request(&control[..12], 26), None);
        assert_eq!(http2_carries_request(b"GET / HTTP/1.1", 14), None);
    }

    #[test]
    fn request_method_and_status_code() {
        let delete = http_method_index(b"DELETE /x HTTP/1.1\r\n").unwrap();
        assert_eq!(http_method_name(delete), "DELETE");
        assert_eq!(
            http_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(http_status(b"HTTP/1.1"), None);
    }

    #[test]
    fn http_heads() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Payload::HttpRequest);
        assert_eq!(classify(b"HTTP/1.1 200 OK\r\n"), Payload::HttpResponse);
        assert_eq!(classify(b"\x00\x01garbage"), Payload::Other);
    }

    #[test]
    fn response_head_announcements() {
        let head = response_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").unwrap();
        assert!(head.connection_close);
        let head = response_head(
            b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nConnection: Keep-Alive\r\n\r\nbody",
        )
        .unwrap();
        assert_eq!(
            head,
            ResponseHead {
                connection_close: false,
                keepalive_timeout_s: Some(5),
                server: None,
            }
        );
        let nginx = response_head(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\n").unwrap();
        assert_eq!(nginx.server, Some(&b"nginx/1.22.1"[..]));
        let after_head = response_head(b"HTTP/1.1 200 OK\r\n\r\nConnection: close").unwrap();
        assert!(!after_head.connection_close);
        assert_eq!(response_head(b"HTTP/1.1 200 OK\r\nConnec"), None);
    }
}
