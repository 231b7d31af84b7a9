//! Report rendering: the table and JSON turn an `Analysis` into text, with no I/O, so each
//! is tested as a string (a new format is one new file); JSON read from a file is streamed
//! to an `io::Write` flow by flow instead; the plot draws an analysis to an SVG file.

mod json;
pub mod plot;
mod table;

pub use json::{EventLines, JsonStream};

use crate::{Analysis, FlowReport};

/// Something that renders a whole analysis, and a live capture's announcements.
pub trait Render {
    fn render(&self, analysis: &Analysis) -> String;

    /// One line, newline included, for a flow flagged while a live capture runs.
    fn render_flagged(&self, flow: &FlowReport) -> String;
}

/// The output the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The report for people: per server the diagnosis, then the flows' table; `all`
    /// lists benign flows too; `explain` adds each flagged flow's packet timeline and per
    /// server every fitting product and client library's setting; `width` is the columns
    /// to fit (None: no limit, each evidence sentence on one line).
    Table {
        all: bool,
        color: bool,
        explain: bool,
        width: Option<usize>,
    },
    /// One JSON document listing every flow; a live capture writes event lines instead
    /// (`EventLines`): each flagged flow, a periodic and a final summary.
    Json,
}

impl Output {
    /// `live`: the output is a stream (announcements, then the report), so JSON goes one
    /// object per line.
    pub fn renderer(self, live: bool) -> Box<dyn Render> {
        match self {
            Output::Table {
                all,
                color,
                explain,
                width,
            } => Box::new(table::TableReport {
                all,
                color,
                explain,
                width,
            }),
            Output::Json => Box::new(json::JsonReport { one_line: live }),
        }
    }
}

/// Packet time for people: UTC, to the millisecond.
fn utc(ts: crate::time::Timestamp) -> String {
    ts.to_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// What a timeline packet carried, in Wireshark's words where it has them: a plaintext
/// HTTP request or status line as it was.
fn describe_packet(packet: &crate::TimelineEntry) -> String {
    match &packet.http_line {
        Some(line) => format!("HTTP: {line}"),
        None => describe(packet.carried, packet.from_client),
    }
}

/// What a packet carried, in Wireshark's words where it has them.
fn describe(carried: crate::flow::Carried, from_client: bool) -> String {
    use crate::flow::Carried;
    use crate::flow::sniff::{
        TLS_ALERT, TLS_APPLICATION_DATA, TLS_CHANGE_CIPHER_SPEC, TLS_HANDSHAKE,
    };
    match carried {
        Carried::Nothing => String::new(),
        Carried::KeepaliveProbe => "TCP keep-alive probe".to_string(),
        Carried::Retransmission => "retransmission".to_string(),
        Carried::TlsAlert { length } => {
            format!("TLS Encrypted Alert (close_notify), record {length} bytes")
        }
        Carried::Tls {
            content_type,
            length,
        } => {
            let what = match content_type {
                TLS_CHANGE_CIPHER_SPEC => "Change Cipher Spec",
                TLS_ALERT => "Alert",
                TLS_HANDSHAKE => "Handshake",
                TLS_APPLICATION_DATA => "Application Data",
                _ => "record",
            };
            format!("TLS {what}, record {length} bytes")
        }
        Carried::HttpRequest { method } => {
            format!(
                "HTTP {} request",
                crate::flow::sniff::http_method_name(method)
            )
        }
        Carried::HttpResponse { status } => format!("HTTP response {status}"),
        Carried::Database { protocol, tag } => {
            crate::flow::wire::message_name(protocol, from_client, tag).to_string()
        }
        Carried::Data => "data".to_string(),
    }
}

/// A gap at least this long between two timeline packets gets a line of its own.
const IDLE_LINE: crate::time::Nanos = crate::time::NANOS_PER_SEC;
