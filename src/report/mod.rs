//! Report rendering: every output format turns an `Analysis` into text, with no I/O, so
//! each is tested as a string. A new format is one new file.

mod json;
mod table;

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
    /// The verdict table for people; `all` lists benign flows too.
    Table { all: bool, color: bool },
    /// One JSON document listing every flow; `lines` puts it on one line, after the
    /// one-line announcements of a live capture.
    Json,
}

impl Output {
    /// `live`: the output is a stream (announcements, then the report), so JSON goes one
    /// object per line.
    pub fn renderer(self, live: bool) -> Box<dyn Render> {
        match self {
            Output::Table { all, color } => Box::new(table::TableReport { all, color }),
            Output::Json => Box::new(json::JsonReport { one_line: live }),
        }
    }
}

/// Packet time for people: UTC, to the millisecond.
fn utc(ts: crate::time::Timestamp) -> String {
    ts.to_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}
