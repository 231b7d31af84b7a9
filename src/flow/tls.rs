//! TLS records walked in order, per direction, by handshake state: where each record starts
//! (alone, several to a segment, or split across segments), and what each one is to the
//! detectors: set-up, a close alert, or application data. The client's Finished is told
//! apart by where it stands in the handshake, never by its size, so every client
//! application-data record after it is a request or part of one, however small.

use super::Stamp;
use super::sniff::{
    TLS_ALERT, TLS_APPLICATION_DATA, TLS_CHANGE_CIPHER_SPEC, TLS_HANDSHAKE, TLS13_ALERT_MAX_RECORD,
    TlsRecord, tls_record,
};
use super::software::{self, Ja4};
use crate::time::Nanos;

/// What a record is to the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Handshake, change_cipher_spec, or TLS 1.3's encrypted handshake (the Finished).
    Setup,
    /// An alert: a close_notify when a FIN follows.
    Alert,
    /// Application data: a request or a response.
    Data,
}

/// What one segment's new bytes held, record by record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Walked {
    /// The record whose header starts the segment, if one does.
    pub first: Option<TlsRecord>,
    /// Offset of the first application-data byte (its record's header included).
    pub data_at: Option<u32>,
    /// Alert records only (a part of one included), no other bytes.
    pub only_alert: bool,
    /// The segment's last bytes are an alert record or a part of one.
    pub ends_with_alert: bool,
    /// Nothing could be placed yet: the segment holds only the start of a record header.
    pub undecided: bool,
    /// Length of that alert record.
    pub alert_length: u16,
}

/// One direction's place in its stream of records.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    /// Body bytes of the current record still to come in later segments.
    body_left: u32,
    /// What the current record is, decided at its header.
    body_role: Option<Role>,
    /// The first bytes of a header that a segment boundary split.
    partial: [u8; 5],
    partial_len: u8,
    /// The walk lost its place (the capture hid a header, or bytes were missing): records
    /// are unknown until a segment starts with a plausible header again.
    lost: bool,
    /// The walk lost its place at least once.
    ever_lost: bool,
}

/// Both directions' walks and the handshake state that decides what a record is.
#[derive(Debug, Clone, Default)]
pub struct TlsState {
    client: Cursor,
    server: Cursor,
    /// The server chose TLS 1.3 (its ServerHello's supported_versions), when visible.
    version13: Option<bool>,
    /// The client sent change_cipher_spec.
    client_ccs: bool,
    /// The client's previous segment began with change_cipher_spec (the old, size-based
    /// guess, for walks that lost their place).
    client_segment_was_ccs: bool,
    /// The client's handshake is over: its application-data records are requests.
    client_finished: bool,
    /// The server sent application-data records before the client's Finished: TLS 1.3's
    /// encrypted handshake.
    server_encrypted_handshake: bool,
    /// The server's alert (its close_notify) not yet followed by data, and the idle the
    /// server had seen when it sent it.
    pub pending_alert: Option<(Stamp, Option<Nanos>)>,
    /// The frame of the client's first alert (its close_notify): where its close began.
    pub client_alert_frame: Option<u64>,
    /// The JA4 fingerprint of the client's first ClientHello, when the capture held it
    /// whole, and its frame (0 until the flow, which knows frames, sets it): the frame of
    /// its last segment when it took several.
    pub client_hello: Option<(Ja4, u64)>,
    /// A ClientHello record longer than its first segment (a post-quantum key share makes
    /// it longer than one MSS): its handshake bytes so far, until the record is whole.
    hello_parts: Option<Vec<u8>>,
}

/// The ServerHello's supported_versions extension (RFC 8446 4.2.1).
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const HANDSHAKE_SERVER_HELLO: u8 = 2;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;

impl TlsState {
    /// A flow whose first payload was this record: one that begins with application data
    /// was captured after its handshake.
    pub fn new(first: TlsRecord) -> TlsState {
        TlsState {
            client_finished: first.content_type == TLS_APPLICATION_DATA,
            ..TlsState::default()
        }
    }

    /// Walks one segment's new bytes: `captured` is what the capture holds of them,
    /// `len` their true length. `gap` says bytes before them were never seen.
    pub fn walk(&mut self, from_client: bool, captured: &[u8], len: u32, gap: bool) -> Walked {
        if let Some(walked) = self.walk_one_record(from_client, captured, len, gap) {
            return walked;
        }
        let mut cursor = if from_client {
            self.client
        } else {
            self.server
        };
        if gap {
            cursor.lost = true;
            cursor.ever_lost = true;
        }
        let mut walked = Walked::default();
        let mut all_alert = true;
        let starts_with_ccs = tls_record(captured)
            .is_some_and(|r| r.content_type == TLS_CHANGE_CIPHER_SPEC && cursor.body_left == 0);
        if cursor.lost {
            if tls_record(captured).is_some() {
                cursor = Cursor {
                    ever_lost: true,
                    ..Cursor::default()
                };
            } else {
                // Unknown bytes: application data once the handshake is over.
                let role = self.unknown_role();
                walked.data_at = (role == Role::Data).then_some(0);
                self.store(from_client, cursor, starts_with_ccs);
                return walked;
            }
        }
        let mut pos: u32 = 0;
        let mut last_role = None;
        let mut last_alert_length = 0;
        while pos < len {
            if cursor.body_left > 0 {
                let n = cursor.body_left.min(len - pos);
                if from_client && self.hello_parts.is_some() {
                    self.collect_hello(captured, pos, n, cursor.body_left == n);
                }
                let role = cursor.body_role.unwrap_or(Role::Data);
                self.note_piece(&mut walked, role, pos, &mut all_alert);
                last_role = Some(role);
                cursor.body_left -= n;
                pos += n;
                continue;
            }
            // A header, perhaps begun in the previous segment.
            let need = 5 - u32::from(cursor.partial_len);
            let here = captured.get(pos as usize..).unwrap_or(&[]);
            let available = (here.len() as u32).min(len - pos);
            if available < need.min(len - pos) {
                // The capture cut the segment before this header: the walk is lost.
                self.lose(&mut cursor, &mut walked, pos, &mut all_alert);
                last_role = None;
                break;
            }
            if len - pos < need {
                // The header goes on in the next segment: its bytes are placed there.
                let n = (len - pos) as usize;
                let at = usize::from(cursor.partial_len);
                cursor.partial[at..at + n].copy_from_slice(&here[..n]);
                cursor.partial_len += n as u8;
                // Nothing placed yet: after the client's handshake its records are requests
                // (a close_notify aside), so a request begins here, where its silence is.
                if pos == 0 {
                    if from_client && self.client_finished {
                        walked.data_at = Some(0);
                    } else {
                        walked.undecided = true;
                    }
                }
                break;
            }
            let mut header = cursor.partial;
            let at = usize::from(cursor.partial_len);
            header[at..].copy_from_slice(&here[..need as usize]);
            let header_at = pos.saturating_sub(u32::from(cursor.partial_len));
            cursor.partial_len = 0;
            let Some(record) = tls_record(&header) else {
                self.lose(&mut cursor, &mut walked, pos, &mut all_alert);
                last_role = None;
                break;
            };
            if header_at == 0 && pos == 0 {
                walked.first = Some(record);
            }
            let body = here.get(need as usize..).unwrap_or(&[]);
            let role = self.decide(from_client, record, body, &cursor);
            cursor.body_role = Some(role);
            cursor.body_left = u32::from(record.length);
            pos += need;
            self.note_piece(&mut walked, role, header_at, &mut all_alert);
            last_role = Some(role);
            last_alert_length = record.length;
        }
        walked.ends_with_alert = last_role == Some(Role::Alert);
        walked.only_alert = walked.ends_with_alert && all_alert;
        if walked.ends_with_alert {
            walked.alert_length = last_alert_length;
        }
        self.store(from_client, cursor, starts_with_ccs);
        walked
    }

    /// The common case on its own: the segment is exactly one whole record, on a record
    /// boundary of a walk that knows its place.
    fn walk_one_record(
        &mut self,
        from_client: bool,
        captured: &[u8],
        len: u32,
        gap: bool,
    ) -> Option<Walked> {
        let cursor = if from_client {
            &self.client
        } else {
            &self.server
        };
        if gap || cursor.lost || cursor.body_left != 0 || cursor.partial_len != 0 {
            return None;
        }
        let record = tls_record(captured)?;
        if u32::from(record.length) + 5 != len {
            return None;
        }
        let cursor = *cursor;
        let role = self.decide(from_client, record, &captured[5..], &cursor);
        // The record is whole in this segment: a hello that did not parse was cut by the
        // capture, and no later segment holds the rest.
        self.hello_parts = None;
        let alert = role == Role::Alert;
        if from_client {
            self.client_segment_was_ccs = record.content_type == TLS_CHANGE_CIPHER_SPEC;
        }
        Some(Walked {
            first: Some(record),
            data_at: (role == Role::Data).then_some(0),
            only_alert: alert,
            ends_with_alert: alert,
            undecided: false,
            alert_length: if alert { record.length } else { 0 },
        })
    }

    /// Adds the `n` record body bytes at `pos` of this segment to a ClientHello being
    /// gathered; `last` says they end its record. Bytes the capture does not hold end it.
    fn collect_hello(&mut self, captured: &[u8], pos: u32, n: u32, last: bool) {
        let piece = captured.get(pos as usize..(pos + n) as usize);
        match (self.hello_parts.as_mut(), piece) {
            (Some(parts), Some(piece)) => {
                parts.extend_from_slice(piece);
                if last {
                    self.client_hello = software::ja4(parts).map(|fp| (fp, 0));
                    self.hello_parts = None;
                }
            }
            _ => self.hello_parts = None,
        }
    }

    fn store(&mut self, from_client: bool, cursor: Cursor, starts_with_ccs: bool) {
        if from_client {
            self.client = cursor;
            self.client_segment_was_ccs = starts_with_ccs;
        } else {
            self.server = cursor;
        }
    }

    /// The walk lost its place at `at`: the rest of the segment is unknown bytes.
    fn lose(&self, cursor: &mut Cursor, walked: &mut Walked, at: u32, all_alert: &mut bool) {
        cursor.lost = true;
        cursor.ever_lost = true;
        self.note_piece(walked, self.unknown_role(), at, all_alert);
    }

    fn note_piece(&self, walked: &mut Walked, role: Role, at: u32, all_alert: &mut bool) {
        if role == Role::Data && walked.data_at.is_none() {
            walked.data_at = Some(at);
        }
        *all_alert &= role == Role::Alert;
    }

    /// Bytes the walk could not place: data once the client's handshake is over.
    fn unknown_role(&self) -> Role {
        if self.client_finished {
            Role::Data
        } else {
            Role::Setup
        }
    }

    /// What a record is, from its header, the first bytes of its body, and the handshake
    /// so far.
    fn decide(
        &mut self,
        from_client: bool,
        record: TlsRecord,
        body: &[u8],
        cursor: &Cursor,
    ) -> Role {
        match record.content_type {
            TLS_CHANGE_CIPHER_SPEC => {
                if from_client {
                    self.client_ccs = true;
                }
                Role::Setup
            }
            TLS_ALERT => Role::Alert,
            TLS_HANDSHAKE => {
                // A header that ends its segment shows no body yet: its first bytes, in the
                // next segment, say whether it is a ClientHello (ja4 checks).
                if from_client
                    && self.client_hello.is_none()
                    && !self.client_ccs
                    && body
                        .first()
                        .is_none_or(|&kind| kind == HANDSHAKE_CLIENT_HELLO)
                {
                    if body.len() >= usize::from(record.length) {
                        let whole = &body[..usize::from(record.length)];
                        self.client_hello = software::ja4(whole).map(|fp| (fp, 0));
                    } else {
                        // Gathered piece by piece as the walk places the record's body.
                        self.hello_parts = Some(Vec::with_capacity(usize::from(record.length)));
                    }
                }
                if from_client {
                    // TLS 1.2: the encrypted Finished follows change_cipher_spec (a second
                    // ClientHello after a HelloRetryRequest is in the clear).
                    if self.client_ccs && body.first() != Some(&HANDSHAKE_CLIENT_HELLO) {
                        self.client_finished = true;
                        self.version13.get_or_insert(false);
                    }
                } else if self.version13.is_none() {
                    self.version13 = server_hello_version13(body);
                }
                Role::Setup
            }
            TLS_APPLICATION_DATA if from_client => {
                if self.client_finished {
                    return if record.length <= TLS13_ALERT_MAX_RECORD {
                        Role::Alert
                    } else {
                        Role::Data
                    };
                }
                self.client_finished = true;
                let tls13 = match self.version13 {
                    Some(v) => v,
                    None if self.server_encrypted_handshake => true,
                    // A walk that lost its place: the old guess, a short record alone in
                    // the segment after change_cipher_spec.
                    None if cursor.ever_lost => {
                        self.client_segment_was_ccs && record.length <= TLS13_FINISHED_MAX_RECORD
                    }
                    // The walk saw every client record: change_cipher_spec was not followed
                    // by an encrypted handshake record, so this is TLS 1.3's Finished.
                    None => true,
                };
                if tls13 { Role::Setup } else { Role::Data }
            }
            TLS_APPLICATION_DATA => {
                if !self.client_finished {
                    self.server_encrypted_handshake = true;
                    Role::Setup
                } else if record.length <= TLS13_ALERT_MAX_RECORD {
                    Role::Alert
                } else {
                    Role::Data
                }
            }
            _ => Role::Data,
        }
    }
}

/// A TLS 1.3 client Finished after change_cipher_spec is one small application-data record
/// (the old guess, used only where the walk lost its place).
const TLS13_FINISHED_MAX_RECORD: u16 = 96;

/// Whether a ServerHello chose TLS 1.3: `body` is the handshake record's body as far as the
/// capture holds it. `None` when it is not a ServerHello or is cut short.
fn server_hello_version13(body: &[u8]) -> Option<bool> {
    let (&kind, rest) = body.split_first()?;
    if kind != HANDSHAKE_SERVER_HELLO {
        return None;
    }
    // length(3) version(2) random(32)
    let rest = rest.get(3 + 2 + 32..)?;
    let (&session_len, rest) = rest.split_first()?;
    // session id, cipher suite(2), compression(1)
    let rest = rest.get(usize::from(session_len) + 3..)?;
    let Some(ext_len) = rest.get(..2) else {
        // No extensions: TLS 1.2 or older.
        return Some(false);
    };
    let ext_len = usize::from(u16::from_be_bytes([ext_len[0], ext_len[1]]));
    let mut exts = rest.get(2..2 + ext_len)?;
    while let [t0, t1, l0, l1, more @ ..] = exts {
        let kind = u16::from_be_bytes([*t0, *t1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let data = more.get(..len)?;
        if kind == EXT_SUPPORTED_VERSIONS {
            return Some(data == [3, 4]);
        }
        exts = &more[len..];
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_type: u8, body_len: u16) -> Vec<u8> {
        let mut r = vec![content_type, 3, 3];
        r.extend_from_slice(&body_len.to_be_bytes());
        r.extend(std::iter::repeat_n(0xab, usize::from(body_len)));
        r
    }

    /// A flow captured after its handshake: its first payload was application data.
    fn established() -> TlsState {
        TlsState::new(TlsRecord {
            content_type: TLS_APPLICATION_DATA,
            length: 0,
        })
    }

    fn walk(state: &mut TlsState, from_client: bool, bytes: &[u8]) -> Walked {
        state.walk(from_client, bytes, bytes.len() as u32, false)
    }

    /// TLS 1.3 as Node writes it: change_cipher_spec, Finished and the first request in
    /// one segment; later requests as single records of any size.
    #[test]
    fn node_coalesces_its_finished_with_the_first_request() {
        let mut state = TlsState::new(TlsRecord {
            content_type: TLS_HANDSHAKE,
            length: 200,
        });
        assert_eq!(
            walk(&mut state, true, &record(TLS_HANDSHAKE, 200)).data_at,
            None
        );
        // The server's flight: ServerHello, change_cipher_spec, encrypted handshake.
        let mut flight = record(TLS_HANDSHAKE, 90);
        flight.extend(record(TLS_CHANGE_CIPHER_SPEC, 1));
        flight.extend(record(TLS_APPLICATION_DATA, 800));
        assert_eq!(walk(&mut state, false, &flight).data_at, None);
        let mut first = record(TLS_CHANGE_CIPHER_SPEC, 1);
        first.extend(record(TLS_APPLICATION_DATA, 53));
        let request_at = first.len() as u32;
        first.extend(record(TLS_APPLICATION_DATA, 80));
        assert_eq!(walk(&mut state, true, &first).data_at, Some(request_at));
        // A small request alone, after the handshake: a request.
        let small = walk(&mut state, true, &record(TLS_APPLICATION_DATA, 60));
        assert_eq!(small.data_at, Some(0));
    }

    #[test]
    fn tls12_finished_is_the_handshake_record_after_change_cipher_spec() {
        let mut state = TlsState::default();
        let mut flight = record(TLS_HANDSHAKE, 70);
        flight.extend(record(TLS_CHANGE_CIPHER_SPEC, 1));
        flight.extend(record(TLS_HANDSHAKE, 40));
        assert_eq!(walk(&mut state, true, &flight).data_at, None);
        // Even a record as short as a TLS 1.3 Finished is a request in TLS 1.2.
        assert_eq!(
            walk(&mut state, true, &record(TLS_APPLICATION_DATA, 50)).data_at,
            Some(0)
        );
    }

    #[test]
    fn a_record_split_across_segments_keeps_its_role() {
        let mut state = established();
        let response = record(TLS_APPLICATION_DATA, 300);
        // Split inside the header, then inside the body.
        let a = walk(&mut state, false, &response[..3]);
        assert_eq!(a.data_at, None);
        let b = walk(&mut state, false, &response[3..100]);
        assert_eq!(b.data_at, Some(0));
        let c = walk(&mut state, false, &response[100..]);
        assert_eq!(c.data_at, Some(0));
        assert!(!c.ends_with_alert);
        // The next segment starts on a record boundary: a close_notify.
        let alert = walk(&mut state, false, &record(TLS_APPLICATION_DATA, 19));
        assert!(alert.only_alert && alert.ends_with_alert);
    }

    #[test]
    fn a_goaway_record_and_close_notify_in_one_segment() {
        let mut state = established();
        let mut both = record(TLS_APPLICATION_DATA, 34);
        both.extend(record(TLS_APPLICATION_DATA, 19));
        let walked = walk(&mut state, false, &both);
        assert_eq!(walked.data_at, Some(0));
        assert!(walked.ends_with_alert && !walked.only_alert);
        assert_eq!(walked.alert_length, 19);
    }

    #[test]
    fn a_snapshot_length_that_hides_a_header_loses_the_walk_until_a_boundary() {
        let mut state = established();
        let mut two = record(TLS_APPLICATION_DATA, 100);
        two.extend(record(TLS_APPLICATION_DATA, 100));
        let cut = state.walk(false, &two[..30], two.len() as u32, false);
        assert_eq!(cut.data_at, Some(0));
        // Continuation bytes: unknown, taken as data after the handshake.
        let unknown = walk(&mut state, false, &[0x55; 40]);
        assert_eq!(unknown.data_at, Some(0));
        let resync = walk(&mut state, false, &record(TLS_ALERT, 26));
        assert!(resync.only_alert);
    }

    /// Go's ClientHello from testdata/go-h1-tls13-client.pcap (see software.rs), split as a
    /// hello longer than one MSS is: the record header and a part, then the rest.
    #[test]
    fn a_client_hello_over_two_segments_is_fingerprinted() {
        let go = software::tests::go_hello();
        for cut in [3, 5, 6, 100, go.len() - 1] {
            let mut state = TlsState::default();
            walk(&mut state, true, &go[..cut]);
            assert!(state.client_hello.is_none());
            walk(&mut state, true, &go[cut..]);
            let (fingerprint, _) = state.client_hello.expect("fingerprinted");
            assert_eq!(
                fingerprint.as_str(),
                "t13i1909h1_9dc949149365_97f8aa674fd9",
                "cut at {cut}"
            );
            assert!(state.hello_parts.is_none());
        }
        // A snapshot length that hides the rest of the first segment: no fingerprint.
        let mut state = TlsState::default();
        state.walk(true, &go[..60], 120, false);
        state.walk(true, &go[120..], (go.len() - 120) as u32, false);
        assert!(state.client_hello.is_none());
    }

    #[test]
    fn server_hello_supported_versions() {
        let mut hello = vec![HANDSHAKE_SERVER_HELLO, 0, 0, 0, 3, 3];
        hello.extend([7; 32]);
        hello.push(32);
        hello.extend([1; 32]);
        hello.extend([0x13, 0x01, 0]);
        hello.extend([0, 6, 0, 43, 0, 2, 3, 4]);
        assert_eq!(server_hello_version13(&hello), Some(true));
        let tls12 = &hello[..hello.len() - 8];
        assert_eq!(server_hello_version13(tls12), Some(false));
        assert_eq!(server_hello_version13(&hello[..20]), None);
    }
}
