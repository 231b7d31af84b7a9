//! Report rendering: every output format turns an `Analysis` into text, with no I/O, so
//! each is tested as a string. A new format is one new file.

mod json;
mod table;

use crate::Analysis;

/// Something that renders a whole analysis.
pub trait Render {
    fn render(&self, analysis: &Analysis) -> String;
}

/// The output the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The verdict table for people; `all` lists benign flows too.
    Table { all: bool, color: bool },
    /// One JSON document listing every flow.
    Json,
}

impl Output {
    pub fn renderer(self) -> Box<dyn Render> {
        match self {
            Output::Table { all, color } => Box::new(table::TableReport { all, color }),
            Output::Json => Box::new(json::JsonReport),
        }
    }
}

/// Packet time for people: UTC, to the millisecond.
fn utc(ts: crate::time::Timestamp) -> String {
    ts.to_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}
