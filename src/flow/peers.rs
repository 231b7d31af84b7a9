//! Answers on other connections to the same server: the one fact that crosses flows. A
//! request that got nothing back while another connection to its server was answered met
//! lost state, not a dead path. Kept apart from the flow tables, which are split by flow
//! hash (and over threads): they send their notes here, and this takes them in packet order.

use std::collections::HashMap;

use super::{Endpoint, Flow, PeerAnswer};
use crate::time::{Nanos, Timestamp};

/// How long the latest answer per server is kept: Linux gives up on a retransmitted request
/// after about 15 minutes (tcp_retries2), so no request waits longer for its verdict.
pub const PEER_ANSWER_HORIZON: Nanos = 15 * 60 * crate::time::NANOS_PER_SEC;

/// Servers whose latest answer is kept before old ones are pruned.
const PRUNE_AT: usize = 4096;

/// What a flow table tells `PeerAnswers` about one packet.
#[derive(Debug, Clone, Copy)]
pub struct PeerNote(Note);

#[derive(Debug, Clone, Copy)]
enum Note {
    /// A request on `answer.flow` was answered.
    Answered {
        server: Endpoint,
        answer: PeerAnswer,
    },
    /// A client packet of `flow`, whose last request (sent at `since`) is unanswered and
    /// was retransmitted: the client is waiting.
    Waiting {
        flow: u64,
        server: Endpoint,
        since: Timestamp,
    },
}

impl PeerNote {
    pub(super) fn answered(flow: &Flow, at: super::Stamp) -> PeerNote {
        PeerNote(Note::Answered {
            server: Endpoint::from(flow.server),
            answer: PeerAnswer { flow: flow.id, at },
        })
    }

    /// The note for a client packet of `flow`, if its client is waiting for an answer.
    pub(super) fn waiting(flow: &Flow) -> Option<PeerNote> {
        let request = waiting_request(flow)?;
        Some(PeerNote(Note::Waiting {
            flow: flow.id,
            server: Endpoint::from(flow.server),
            since: request.at.ts,
        }))
    }
}

/// The flow's last request if it is unanswered and was retransmitted: the only kind of
/// request a peer's answer says anything about (see detect::blackhole).
fn waiting_request(flow: &Flow) -> Option<super::Request> {
    flow.last_request
        .filter(|r| r.answered.is_none() && r.retransmissions > 0)
}

/// Whether a flow handed on needs `PeerAnswers::settle` before it is judged. The others
/// can be judged wherever they are, on any thread.
pub fn needs_peer_answer(flow: &Flow) -> bool {
    waiting_request(flow).is_some()
}

/// Keyed by the server as integers: one insert per answer, so hashing must be cheap.
type Latest = HashMap<Endpoint, PeerAnswer, foldhash::fast::RandomState>;

/// Per server, the latest request answered on any of its connections; per waiting flow,
/// the answer on another connection that came while it waited.
pub struct PeerAnswers {
    latest: Latest,
    /// `latest` is pruned to `PEER_ANSWER_HORIZON` once it outgrows this.
    limit: usize,
    /// Kept at the first note of a flow's wait that found one, before later answers
    /// replace it in `latest`; taken when the flow is settled.
    found: HashMap<u64, PeerAnswer, foldhash::fast::RandomState>,
}

impl Default for PeerAnswers {
    fn default() -> Self {
        PeerAnswers {
            latest: Latest::default(),
            limit: PRUNE_AT,
            found: HashMap::default(),
        }
    }
}

impl PeerAnswers {
    /// Takes one note, in packet order.
    pub fn note(&mut self, note: PeerNote) {
        match note.0 {
            Note::Answered { server, answer } => {
                self.latest.insert(server, answer);
                if self.latest.len() > self.limit {
                    let now = answer.at.ts;
                    self.latest
                        .retain(|_, a| now.since(a.at.ts) <= PEER_ANSWER_HORIZON);
                    // If most are recent, the map grows: one entry per server answered
                    // within the horizon.
                    self.limit = (2 * self.latest.len()).max(PRUNE_AT);
                }
            }
            Note::Waiting {
                flow,
                server,
                since,
            } => {
                if self.found.contains_key(&flow) {
                    return;
                }
                if let Some(answer) = self.latest_after(server, flow, since) {
                    self.found.insert(flow, answer);
                }
            }
        }
    }

    fn latest_after(&self, server: Endpoint, flow: u64, since: Timestamp) -> Option<PeerAnswer> {
        self.latest
            .get(&server)
            .filter(|a| a.flow != flow && a.at.ts > since)
            .copied()
    }

    /// What `settle` would give the flow now, without settling it: for a flow judged
    /// while it is still tracked (a live capture's announcement).
    pub fn peek(&self, flow: &Flow) -> Option<PeerAnswer> {
        if let Some(found) = flow
            .peer_answer
            .or_else(|| self.found.get(&flow.id).copied())
        {
            return Some(found);
        }
        let request = waiting_request(flow)?;
        self.latest_after(Endpoint::from(flow.server), flow.id, request.at.ts)
    }

    /// A flow handed on, before it is judged: given the answer found while it waited, or
    /// else the latest answer since its request, if its client is waiting.
    pub fn settle(&mut self, flow: &mut Flow) {
        let found = if self.found.is_empty() {
            None // nearly always: no client waits in vain
        } else {
            self.found.remove(&flow.id)
        };
        if flow.peer_answer.is_none() {
            flow.peer_answer = found.or_else(|| self.peek(flow));
        }
    }
}
