//! The match model: finds the last place the recent bytes occurred before and predicts that
//! the byte which followed them then follows them again.
//!
//! A table maps a hash of the last `MIN_MATCH` bytes to the position after them. When no match
//! is running, each new byte looks its hash up and verifies the candidate against the history
//! (a hash collision gives a short or empty match, never a false one). While a match runs, the
//! predicted bit is the next bit of the byte that followed it; how far to trust it is learned by
//! counters per match length, per whether the previous byte's prediction held, and per the
//! predicted bit.

use super::counter;
use super::history::mix64;
use super::logistic::stretch;
use super::table;

/// Bytes hashed to find a match candidate.
pub const MIN_MATCH: usize = 6;
/// Matches are verified and counted up to this length.
const MAX_LENGTH: u32 = 65_535;
/// Length buckets: the mixer's weight sets and the counters are chosen by these.
pub const LENGTH_BUCKETS: usize = 16;
/// Hit-count limit of the confidence counters.
const COUNT_LIMIT: u32 = 1023;

/// `len` as one of `LENGTH_BUCKETS` buckets: 0 = no match, 1..=11 exact, then roughly
/// logarithmic.
pub fn length_bucket(len: u32) -> usize {
    match len {
        0..=11 => len as usize,
        12..=15 => 12,
        16..=31 => 13,
        32..=63 => 14,
        _ => 15,
    }
}

/// The match model of one stream.
#[derive(Clone, Debug)]
pub struct MatchModel {
    /// The stream's recent bytes, a ring indexed by position modulo its length.
    history: Vec<u8>,
    /// Hash of `MIN_MATCH` bytes → (low 32 bits of) the position after them.
    table: Vec<u32>,
    /// Bytes seen so far.
    pos: u64,
    /// Position of the predicted byte, while `len > 0`.
    ptr: u64,
    /// Length of the current match in bytes (0 = none).
    len: u32,
    /// Whether the last byte contradicted the match then running.
    missed: bool,
    /// The byte the match predicts, while `len > 0`.
    predicted: u8,
    /// Whether the bits of the current byte so far agree with `predicted`.
    agrees: bool,
    counters: Vec<u32>,
    /// Counter used for the current bit, if a prediction was made.
    active: Option<usize>,
    /// The table entry of the last `MIN_MATCH` bytes, read and rewritten by `resolve` (kept
    /// apart from `push` so the entry's cache miss overlaps other work).
    pending: Option<usize>,
}

impl MatchModel {
    /// A model with `history_bytes` of history and `table_bytes` of position table (each
    /// rounded down to a power of two).
    pub fn new(history_bytes: usize, table_bytes: usize) -> MatchModel {
        MatchModel {
            history: vec![0; 1 << history_bytes.max(64).ilog2()],
            table: vec![0; 1 << (table_bytes / 4).max(16).ilog2()],
            pos: 0,
            ptr: 0,
            len: 0,
            missed: false,
            predicted: 0,
            agrees: false,
            counters: vec![0; LENGTH_BUCKETS * 4],
            active: None,
            pending: None,
        }
    }

    /// Bytes held for `history_bytes` of history and `table_bytes` of table.
    pub fn bytes(history_bytes: usize, table_bytes: usize) -> u64 {
        (1u64 << history_bytes.max(64).ilog2()) + 4 * (1u64 << (table_bytes / 4).max(16).ilog2())
    }

    fn at(&self, pos: u64) -> u8 {
        self.history[(pos as usize) & (self.history.len() - 1)]
    }

    /// The mixer's view of the match: its length bucket, 0 when there is none or the byte's bits
    /// so far have left it.
    pub fn state(&self) -> usize {
        if self.len > 0 && self.agrees {
            length_bucket(self.len)
        } else {
            0
        }
    }

    /// The stretched probability that the next bit is 1 as the match sees it (0 when there is
    /// no match); `done` bits of the byte are known.
    #[inline]
    pub fn predict(&mut self, done: u32) -> i32 {
        if self.len == 0 || !self.agrees {
            self.active = None;
            return 0;
        }
        let bit = usize::from((self.predicted >> (7 - done)) & 1);
        let ctx = (length_bucket(self.len) * 2 + usize::from(self.missed)) * 2 + bit;
        self.active = Some(ctx);
        stretch(counter::p12(self.counters[ctx]))
    }

    /// Trains on the coded `bit`, the `done`-th of the byte (0-based).
    #[inline]
    pub fn learn(&mut self, done: u32, bit: u8) {
        if let Some(ctx) = self.active {
            self.counters[ctx] = counter::update(self.counters[ctx], bit, COUNT_LIMIT);
        }
        if self.agrees && (self.predicted >> (7 - done)) & 1 != bit {
            self.agrees = false;
        }
    }

    /// Appends a coded byte and extends or ends the running match; `resolve` must follow
    /// before the next prediction.
    pub fn push(&mut self, byte: u8, last8: u64) {
        let slot = (self.pos as usize) & (self.history.len() - 1);
        self.history[slot] = byte;
        self.pos += 1;
        if self.len > 0 {
            if byte == self.predicted {
                self.len = (self.len + 1).min(MAX_LENGTH);
                self.ptr += 1;
                self.missed = false;
            } else {
                self.len = 0;
                self.missed = true;
            }
        }
        if self.len > 0 {
            self.predicted = self.at(self.ptr);
        }
        self.agrees = self.len > 0;
        if self.pos >= MIN_MATCH as u64 {
            let key = mix64(last8 & (u64::MAX >> (64 - 8 * MIN_MATCH as u32)));
            let entry = (key as usize) & (self.table.len() - 1);
            table::prefetch(&self.table[entry]);
            self.pending = Some(entry);
        }
    }

    /// Finishes the last `push` before the next byte is predicted: without a running match,
    /// looks for one where the last `MIN_MATCH` bytes occurred before; then records that they
    /// occur here.
    pub fn resolve(&mut self) {
        let Some(entry) = self.pending.take() else {
            return;
        };
        if self.len == 0 {
            self.find(self.table[entry]);
            if self.len > 0 {
                self.predicted = self.at(self.ptr);
                self.agrees = true;
            }
        }
        self.table[entry] = self.pos as u32;
    }

    /// Verifies the candidate position `stored` (low 32 bits of a position) against the
    /// history and starts a match of the length that really agrees.
    fn find(&mut self, stored: u32) {
        let back = (self.pos as u32).wrapping_sub(stored) as u64;
        let window = self.history.len() as u64;
        if stored == 0 || back == 0 || back >= window || back > self.pos {
            return;
        }
        let cand = self.pos - back;
        let mut len = 0;
        while len < MAX_LENGTH
            && u64::from(len) < cand
            && u64::from(len) + back < window
            && self.at(cand - 1 - u64::from(len)) == self.at(self.pos - 1 - u64::from(len))
        {
            len += 1;
            if len >= 32 {
                break;
            }
        }
        if len > 0 {
            self.len = len;
            self.ptr = cand;
        }
    }
}
