//! What a flow's own bytes say about the software at each end, taken once per flow and kept
//! as bytes: the client's `User-Agent` (or, without one, whether its head is the one
//! Python's http.client writes), the server's `Server` header, and the JA4 fingerprint
//! of the client's TLS ClientHello (FoxIO's JA4 spec). Naming the software from these is
//! identify.rs's job.

/// Bytes kept of a header value: enough for a product and its version
/// ("Apache-HttpClient/4.5.14 (Java/17.0.15)"); a browser's longer User-Agent is cut.
pub const HEADER_VALUE_MAX: usize = 64;

/// A header value as the flow first saw it, cut at `HEADER_VALUE_MAX` bytes.
#[derive(Debug, Clone, Copy)]
pub struct HeaderValue {
    bytes: [u8; HEADER_VALUE_MAX],
    len: u8,
    /// The frame that carried it.
    pub frame: u64,
}

impl HeaderValue {
    fn new(value: &[u8], frame: u64) -> HeaderValue {
        let value = value.trim_ascii();
        let len = value.len().min(HEADER_VALUE_MAX);
        let mut bytes = [0; HEADER_VALUE_MAX];
        bytes[..len].copy_from_slice(&value[..len]);
        HeaderValue {
            bytes,
            len: len as u8,
            frame,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What the first plaintext request and response heads said. Boxed in the flow: only
/// plaintext HTTP flows have one.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadsSeen {
    /// The first request's head was looked at (whether or not it had a User-Agent).
    pub request_seen: bool,
    pub user_agent: Option<HeaderValue>,
    /// The first request had no User-Agent and asked for `Accept-Encoding: identity`,
    /// which Python's http.client adds by itself; the frame that carried it.
    pub bare_identity_request: Option<u64>,
    pub response_seen: bool,
    pub server: Option<HeaderValue>,
}

impl HeadsSeen {
    /// Takes what the first request head says; later ones are not looked at.
    pub fn note_request(&mut self, head: &[u8], frame: u64) {
        if self.request_seen {
            return;
        }
        self.request_seen = true;
        let mut identity = false;
        for (name, value) in header_lines(head) {
            if name.eq_ignore_ascii_case(b"user-agent") {
                self.user_agent = Some(HeaderValue::new(value, frame));
            } else if name.eq_ignore_ascii_case(b"accept-encoding") {
                identity = value.trim_ascii().eq_ignore_ascii_case(b"identity");
            }
        }
        if self.user_agent.is_none() && identity {
            self.bare_identity_request = Some(frame);
        }
    }

    /// Takes the first response's `Server` value (found by the response-head parse the
    /// flow makes anyway).
    pub fn note_response(&mut self, server: Option<&[u8]>, frame: u64) {
        if self.response_seen {
            return;
        }
        self.response_seen = true;
        self.server = server.map(|v| HeaderValue::new(v, frame));
    }
}

/// The header lines of an HTTP/1 head as far as the capture holds it: (name, value), up to
/// the empty line. The request line is skipped; a line the capture cut is left out.
fn header_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split_inclusive(|&b| b == b'\n')
        .skip(1)
        .map_while(|line| line.strip_suffix(b"\n"))
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], &line[colon + 1..]))
        })
}

/// A JA4 fingerprint: `t13d1516h2_8daaf6152771_e5627efa2ab1`, always 36 ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ja4([u8; 36]);

impl Ja4 {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("?")
    }

    /// The hashed parts (`8daaf6152771_e5627efa2ab1`): the cipher suites, the extensions
    /// and the signature algorithms, the same whether the client named a host (SNI) or
    /// which protocols it offered (ALPN).
    pub fn hashes(&self) -> &str {
        self.as_str().get(11..).unwrap_or("")
    }
}

impl std::fmt::Debug for Ja4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa, ignored everywhere by JA4.
fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

fn be16(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// A list with a 1- or 2-byte length prefix at the start of `b`: (the list, what follows).
fn prefixed(b: &[u8], width: usize) -> Option<(&[u8], &[u8])> {
    let len = match width {
        1 => usize::from(*b.first()?),
        _ => usize::from(be16(b)?),
    };
    let rest = b.get(width..)?;
    Some((rest.get(..len)?, &rest[len..]))
}

fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// The JA4 fingerprint of a ClientHello: `body` is the handshake message (type 1 first) as
/// far as the capture holds it. `None` when it is not a ClientHello or is not whole (cut
/// by a snapshot length, or continued in a later segment).
pub fn ja4(body: &[u8]) -> Option<Ja4> {
    let (&kind, rest) = body.split_first()?;
    if kind != HANDSHAKE_CLIENT_HELLO {
        return None;
    }
    let len = usize::from(*rest.first()?) << 16 | usize::from(be16(rest.get(1..)?)?);
    let hello = rest.get(3..3 + len)?;
    let legacy_version = be16(hello)?;
    // version(2) random(32), then the session id.
    let (_, rest) = prefixed(hello.get(34..)?, 1)?;
    let (suites, rest) = prefixed(rest, 2)?;
    let (_, rest) = prefixed(rest, 1)?;
    let extensions = if rest.is_empty() {
        &[][..]
    } else {
        prefixed(rest, 2)?.0
    };

    let mut ciphers: Vec<u16> = u16s(suites).filter(|&c| !grease(c)).collect();
    let mut kinds = Vec::new();
    let mut sni = false;
    let mut alpn: Option<&[u8]> = None;
    let mut signatures: &[u8] = &[];
    let mut highest_version = None;
    let mut exts = extensions;
    while !exts.is_empty() {
        let kind = be16(exts)?;
        let (data, more) = prefixed(exts.get(2..)?, 2)?;
        exts = more;
        if grease(kind) {
            continue;
        }
        kinds.push(kind);
        match kind {
            EXT_SERVER_NAME => sni = true,
            EXT_ALPN => {
                let (list, _) = prefixed(data, 2)?;
                alpn = prefixed(list, 1).map(|(first, _)| first);
            }
            EXT_SIGNATURE_ALGORITHMS => signatures = prefixed(data, 2)?.0,
            EXT_SUPPORTED_VERSIONS => {
                highest_version = u16s(prefixed(data, 1)?.0).filter(|&v| !grease(v)).max();
            }
            _ => {}
        }
    }

    let version = match highest_version.unwrap_or(legacy_version) {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0200 => "s2",
        0x0100 => "s1",
        _ => "00",
    };
    let alpn_chars = match alpn {
        Some(value) if !value.is_empty() => alpn_char_pair(value[0], value[value.len() - 1]),
        _ => *b"00",
    };
    let mut out = Vec::with_capacity(36);
    out.push(b't');
    out.extend_from_slice(version.as_bytes());
    out.push(if sni { b'd' } else { b'i' });
    out.extend_from_slice(
        format!("{:02}{:02}", ciphers.len().min(99), kinds.len().min(99)).as_bytes(),
    );
    out.extend_from_slice(&alpn_chars);
    out.push(b'_');
    ciphers.sort_unstable();
    out.extend_from_slice(&truncated_hash(&hex_list(&ciphers)));
    out.push(b'_');
    kinds.retain(|&k| k != EXT_SERVER_NAME && k != EXT_ALPN);
    kinds.sort_unstable();
    let mut listed = hex_list(&kinds);
    let signatures: Vec<u16> = u16s(signatures).collect();
    if !signatures.is_empty() {
        listed.push('_');
        listed.push_str(&hex_list(&signatures));
    }
    out.extend_from_slice(&truncated_hash(&listed));
    Some(Ja4(out.try_into().ok()?))
}

/// JA4's two ALPN characters: the first and last of the first value, or, when either is
/// not alphanumeric, the first hex digit of the first byte and the last of the last.
fn alpn_char_pair(first: u8, last: u8) -> [u8; 2] {
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        [first, last]
    } else {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        [HEX[usize::from(first >> 4)], HEX[usize::from(last & 0xf)]]
    }
}

/// `1301,1302,c02b`: four lower-case hex digits each, comma separated.
fn hex_list(values: &[u16]) -> String {
    let mut s = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{v:04x}"));
    }
    s
}

/// The first 12 hex digits of the SHA-256 of `text`; `000000000000` for an empty list.
fn truncated_hash(text: &str) -> [u8; 12] {
    if text.is_empty() {
        return *b"000000000000";
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha256(text.as_bytes());
    let mut out = [0; 12];
    for (i, byte) in digest[..6].iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    out
}

/// SHA-256 (FIPS 180-4), for JA4's truncated hashes: a few hundred bytes once per TLS
/// flow, not worth a dependency.
fn sha256(message: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut padded = message.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&((message.len() as u64) * 8).to_be_bytes());
    for block in padded.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (state, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(v);
        }
    }
    let mut out = [0; 32];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Go's whole ClientHello record (see `GO_HELLO`), for the TLS walk's tests.
    pub(crate) fn go_hello() -> Vec<u8> {
        hex(GO_HELLO)
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn sha256_of_known_texts() {
        let d = sha256(b"abc");
        assert_eq!(
            d[..8],
            hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")[..8]
        );
        assert_eq!(sha256(b"")[..4], hex("e3b0c442")[..]);
        // Two blocks.
        let long = [b'a'; 100];
        assert_eq!(
            sha256(&long)[..4],
            hex("2816597888e4a0d3a36b82b83316ab32680eb8f00f8cd3b904d681246d285a0e")[..4]
        );
    }

    #[test]
    fn the_spec_examples_hash_as_the_spec_says() {
        // FoxIO's JA4.md: the sorted cipher list, and the extensions with the signature
        // algorithms.
        let ciphers = "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9";
        assert_eq!(&truncated_hash(ciphers), b"8daaf6152771");
        let exts = "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601";
        assert_eq!(&truncated_hash(exts), b"e5627efa2ab1");
        assert_eq!(&truncated_hash(""), b"000000000000");
    }

    #[test]
    fn grease_values() {
        assert!(grease(0x0a0a) && grease(0xfafa) && grease(0x3a3a));
        assert!(!grease(0x0a1a) && !grease(0x1301) && !grease(0x000a));
    }

    #[test]
    fn the_first_request_head_is_taken_once() {
        let mut seen = HeadsSeen::default();
        seen.note_request(
            b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent:  Go-http-client/1.1\r\n\r\n",
            4,
        );
        seen.note_request(b"GET / HTTP/1.1\r\nUser-Agent: other\r\n\r\n", 9);
        let ua = seen.user_agent.unwrap();
        assert_eq!((ua.as_bytes(), ua.frame), (&b"Go-http-client/1.1"[..], 4));
        assert_eq!(seen.bare_identity_request, None);

        let mut python = HeadsSeen::default();
        python.note_request(
            b"GET /nat/A/first HTTP/1.1\r\nHost: 198.19.2.2:8080\r\nAccept-Encoding: identity\r\n\r\n",
            7,
        );
        assert_eq!(python.bare_identity_request, Some(7));

        // A line the capture cut is not read, and a long value is kept cut.
        let mut cut = HeadsSeen::default();
        cut.note_request(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8", 1);
        assert!(cut.user_agent.is_none());
        let long = format!("GET / HTTP/1.1\r\nUser-Agent: {}\r\n\r\n", "M".repeat(300));
        let mut browser = HeadsSeen::default();
        browser.note_request(long.as_bytes(), 2);
        assert_eq!(
            browser.user_agent.unwrap().as_bytes().len(),
            HEADER_VALUE_MAX
        );
    }
    /// Go 1.19's ClientHello (testdata/go-h1-tls13-client.pcap, frame 5) and Python 3.11's
    /// with TLS 1.2 at most (testdata/race-tls12-client.pcap, frame 12), whole TLS records.
    /// The fingerprints are what testdata/lab/ja4.py computes from tshark's tcp.payload
    /// (TShark 4.0.17 has no tls.handshake.ja4 field to compare with).
    const GO_HELLO: &str = concat!(
        "16030100f7010000f30303d8e72e09c4d5aa5618740e03417d29f18a20ac93024e58478ad6376626b967ed2061c7f939",
        "c9ba4af1da1149d350e58784396a261d35eac9f96c2edad190efd0180026c02bc02fc02cc030cca9cca8c009c013c00a",
        "c014009c009d002f0035c012000a13011302130301000084000500050100000000000a000a0008001d00170018001900",
        "0b00020100000d001a0018080404030807080508060401050106010503060302010203ff010001000010000b00090868",
        "7474702f312e3100120000002b0003020304003300260024001d0020a85bb5b2a98b4a6fa7f7b550639b529e76c0e8ef",
        "6bcf7ae85faf55988f894626",
    );
    const PYTHON_TLS12_HELLO: &str = concat!(
        "160301009d010000990303a73ff9b3a276afbfce2405e2cef808156fcf558d2eb6803ba6e7aecbbfd1634100001ec02c",
        "c030c02bc02fcca9cca8c024c028c023c027009f009e006b006700ff01000052000b000403000102000a000c000a001d",
        "0017001e00190018002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806",
        "040105010601030303010302040205020602",
    );

    #[test]
    fn ja4_of_client_hellos_from_the_lab_captures() {
        let go = hex(GO_HELLO);
        let fingerprint = ja4(&go[5..]).unwrap();
        assert_eq!(fingerprint.as_str(), "t13i1909h1_9dc949149365_97f8aa674fd9");
        assert_eq!(fingerprint.hashes(), "9dc949149365_97f8aa674fd9");
        let python = hex(PYTHON_TLS12_HELLO);
        assert_eq!(
            ja4(&python[5..]).unwrap().as_str(),
            "t12i150600_d68b136fe8d9_e7e480e5a997"
        );
        // Cut short (a snapshot length, a hello continued in the next segment): none.
        assert_eq!(ja4(&go[5..go.len() - 1]), None);
        assert_eq!(ja4(&go[5..60]), None);
        // A ServerHello is not fingerprinted.
        let mut server = go[5..].to_vec();
        server[0] = 2;
        assert_eq!(ja4(&server), None);
    }
}
