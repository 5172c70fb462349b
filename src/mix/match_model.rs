//! The match model: finds the last place the recent bytes occurred before, in this stream or
//! another, and predicts that the byte which followed them then follows them again.
//!
//! Each stream keeps its recent bytes in a ring of its own; one table, shared by all streams,
//! maps a hash of the last `MIN_MATCH` bytes to the stream and position after them, so a
//! stream can continue a text another stream has already seen. When no match is running, each
//! new byte looks its hash up and verifies the candidate against the rings (a hash collision
//! gives a short or empty match, never a false one). While a match runs, the predicted bit is
//! the next bit of the byte that followed it; how far to trust it is learned by counters per
//! match length, per whether the previous byte's prediction held, and per the predicted bit,
//! shared by all streams. A match into another stream ends when that stream has no byte
//! further yet (it runs at the same pace, so only when it ends its segment).

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
/// Smallest ring of one stream (bytes): longer than any verified match.
const MIN_RING: usize = 64;

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

/// Where one stream stands: its bytes so far and its running match.
#[derive(Clone, Debug, Default)]
struct Cursor {
    /// Bytes of the stream seen so far.
    pos: u64,
    /// The stream the running match reads from.
    source: usize,
    /// Position (in `source`) of the predicted byte, while `len > 0`.
    ptr: u64,
    /// Length of the current match in bytes (0 = none).
    len: u32,
    /// Whether the last byte contradicted the match then running.
    missed: bool,
    /// The byte the match predicts, while `len > 0`.
    predicted: u8,
    /// Bytes of the stream's current segment pushed so far, counted up to `MIN_MATCH`.
    segment_bytes: usize,
    /// The table entry of the last `MIN_MATCH` bytes, read and rewritten by `start_byte` (kept
    /// apart from `push` so the entry's cache miss overlaps other work).
    pending: Option<usize>,
}

/// What the match model predicts for one stream's next byte, fixed when its previous byte was
/// learned: nothing changes it while a step's streams are coded.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatchView {
    /// Length of the running match in bytes (0 = none).
    len: u32,
    /// Whether the last byte contradicted the match then running.
    missed: bool,
    /// The byte the match predicts, while `len > 0`.
    predicted: u8,
}

/// The match's prediction along the bits of one byte: it holds while the bits coded so far
/// agree with the predicted byte.
#[derive(Clone, Copy, Debug)]
pub struct MatchBits {
    view: MatchView,
    agrees: bool,
}

impl MatchBits {
    /// Starts a byte predicted by `view`.
    pub fn new(view: MatchView) -> MatchBits {
        MatchBits {
            view,
            agrees: view.len > 0,
        }
    }

    /// The mixer's view of the match: its length bucket, 0 when there is none or the byte's
    /// bits so far have left it.
    pub fn state(&self) -> usize {
        if self.agrees {
            length_bucket(self.view.len)
        } else {
            0
        }
    }

    /// The stretched probability that the next bit is 1 as the match sees it (0 when there is
    /// no match), `done` bits of the byte known, and the confidence counter it read, which
    /// `MatchModel::learn` trains.
    #[inline]
    pub fn predict(&self, model: &MatchModel, done: u32) -> (i32, Option<u8>) {
        if !self.agrees {
            return (0, None);
        }
        let v = &self.view;
        let bit = usize::from((v.predicted >> (7 - done)) & 1);
        let ctx = (length_bucket(v.len) * 2 + usize::from(v.missed)) * 2 + bit;
        (stretch(counter::p12(model.counters[ctx])), Some(ctx as u8))
    }

    /// Follows the coded `bit`, the `done`-th of the byte (0-based).
    #[inline]
    pub fn see(&mut self, done: u32, bit: u8) {
        if self.agrees && (self.view.predicted >> (7 - done)) & 1 != bit {
            self.agrees = false;
        }
    }
}

/// The match model of all streams of a frame.
#[derive(Clone, Debug)]
pub struct MatchModel {
    /// One ring per stream, one after the other: stream `s`'s byte at position `p` is at
    /// `s · ring + p mod ring`.
    rings: Vec<u8>,
    ring: usize,
    /// Hash of `MIN_MATCH` bytes → the stream (low `stream_bits` bits) and the low bits of
    /// the position after them (the rest), 0 when empty.
    table: Vec<u32>,
    stream_bits: u32,
    cursors: Vec<Cursor>,
    counters: Vec<u32>,
}

/// Ring bytes per stream for `history_bytes` of history shared by `streams` streams.
fn ring_len(history_bytes: usize, streams: usize) -> usize {
    let share = streams.max(1).next_power_of_two();
    1 << (history_bytes / share).max(MIN_RING).ilog2()
}

/// Table entries in `table_bytes`.
fn table_len(table_bytes: usize) -> usize {
    1 << (table_bytes / 4).max(16).ilog2()
}

impl MatchModel {
    /// A model for `streams` streams with `history_bytes` of history split between them (at
    /// least `MIN_RING` each) and `table_bytes` of position table (each rounded down to a
    /// power of two).
    pub fn new(history_bytes: usize, table_bytes: usize, streams: usize) -> MatchModel {
        let streams = streams.max(1);
        let ring = ring_len(history_bytes, streams);
        MatchModel {
            rings: vec![0; ring * streams],
            ring,
            table: vec![0; table_len(table_bytes)],
            stream_bits: streams.next_power_of_two().ilog2(),
            cursors: vec![Cursor::default(); streams],
            counters: vec![0; LENGTH_BUCKETS * 4],
        }
    }

    /// Bytes held for `streams` streams, `history_bytes` of history and `table_bytes` of
    /// table.
    pub fn bytes(history_bytes: usize, table_bytes: usize, streams: usize) -> u64 {
        let streams = streams.max(1);
        ((ring_len(history_bytes, streams) + size_of::<Cursor>()) * streams) as u64
            + 4 * table_len(table_bytes) as u64
    }

    /// The byte of `stream` at position `pos` (still in its ring).
    fn at(&self, stream: usize, pos: u64) -> u8 {
        self.rings[stream * self.ring + (pos as usize & (self.ring - 1))]
    }

    /// What the match predicts for `stream`'s next byte.
    pub fn view(&self, stream: usize) -> MatchView {
        let c = &self.cursors[stream];
        MatchView {
            len: c.len,
            missed: c.missed,
            predicted: c.predicted,
        }
    }

    /// Trains the confidence counter `ctx` (from `MatchBits::predict`) on the coded `bit`.
    #[inline]
    pub fn learn(&mut self, ctx: u8, bit: u8) {
        let c = &mut self.counters[usize::from(ctx)];
        *c = counter::update(*c, bit, COUNT_LIMIT);
    }

    /// Appends the coded byte of `stream` and extends or ends its running match; `last8` is
    /// the stream's last 8 bytes, `byte` the lowest. The stream's `start_byte` finishes it.
    pub fn push(&mut self, stream: usize, byte: u8, last8: u64) {
        let s = stream;
        let slot = s * self.ring + (self.cursors[s].pos as usize & (self.ring - 1));
        self.rings[slot] = byte;
        let c = &mut self.cursors[s];
        c.pos += 1;
        if c.len > 0 {
            if byte == c.predicted {
                c.len = (c.len + 1).min(MAX_LENGTH);
                c.ptr += 1;
                c.missed = false;
            } else {
                c.len = 0;
                c.missed = true;
            }
        }
        if c.len > 0 {
            let (source, ptr) = (c.source, c.ptr);
            if self.readable(source, ptr) {
                self.cursors[s].predicted = self.at(source, ptr);
            } else {
                self.cursors[s].len = 0;
            }
        }
        let c = &mut self.cursors[s];
        c.segment_bytes = (c.segment_bytes + 1).min(MIN_MATCH);
        if c.segment_bytes >= MIN_MATCH {
            let key = mix64(last8 & (u64::MAX >> (64 - 8 * MIN_MATCH as u32)));
            let entry = (key as usize) & (self.table.len() - 1);
            table::prefetch(&self.table[entry]);
            c.pending = Some(entry);
        }
    }

    /// Whether `source`'s byte at `pos` is known and still in its ring.
    fn readable(&self, source: usize, pos: u64) -> bool {
        let end = self.cursors[source].pos;
        pos < end && end - pos <= self.ring as u64
    }

    /// Starts a new segment of `stream`: its next byte does not follow the bytes it pushed
    /// last, so its running match ends, and its hashes neither look up nor record a place
    /// until the segment has `MIN_MATCH` bytes of its own (the last bytes of the old segment
    /// would record a place that is not followed by what follows them).
    pub fn start_segment(&mut self, stream: usize) {
        let c = &mut self.cursors[stream];
        c.len = 0;
        c.pending = None;
        c.segment_bytes = 0;
    }

    /// Prepares `stream`'s next byte, finishing its last `push`: without a running match,
    /// looks for one where its last `MIN_MATCH` bytes occurred before; then records that they
    /// occur here.
    pub fn start_byte(&mut self, stream: usize) {
        let Some(entry) = self.cursors[stream].pending.take() else {
            return;
        };
        if self.cursors[stream].len == 0 {
            self.find(stream, self.table[entry]);
        }
        // The position's low bits are enough: a ring is far shorter than 2^(32 − stream_bits)
        // (at most 2^26 bytes of history in all, or `MIN_RING` for each of 2^16 streams), so
        // they tell any position still in a ring from the stream's end.
        let low = (self.cursors[stream].pos as u32) & (u32::MAX >> self.stream_bits);
        self.table[entry] = (low << self.stream_bits) | stream as u32;
    }

    /// Verifies the candidate `entry` (a stream and the low bits of a position in it) against
    /// the rings and starts a match of `s` of the length that really agrees.
    fn find(&mut self, s: usize, entry: u32) {
        if entry == 0 {
            return;
        }
        let source = (entry & ((1 << self.stream_bits) - 1)) as usize;
        let stored = entry >> self.stream_bits;
        let end = self.cursors[source].pos;
        let pos_mask = u32::MAX >> self.stream_bits;
        let back = u64::from((end as u32).wrapping_sub(stored) & pos_mask);
        let window = self.ring as u64;
        if back == 0 || back >= window || back > end {
            return;
        }
        let cand = end - back;
        let pos = self.cursors[s].pos;
        let mut len = 0;
        while len < MAX_LENGTH
            && u64::from(len) < cand
            && u64::from(len) < pos
            && u64::from(len) + back < window
            && self.at(source, cand - 1 - u64::from(len)) == self.at(s, pos - 1 - u64::from(len))
        {
            len += 1;
            if len >= 32 {
                break;
            }
        }
        if len > 0 {
            let predicted = self.at(source, cand);
            let c = &mut self.cursors[s];
            c.len = len;
            c.source = source;
            c.ptr = cand;
            c.predicted = predicted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `bytes` as `stream`'s next bytes; returns whether a match was running before the
    /// last one.
    fn feed(model: &mut MatchModel, last8: &mut u64, stream: usize, bytes: &[u8]) -> bool {
        let mut running = false;
        for &b in bytes {
            model.start_byte(stream);
            running = model.cursors[stream].len > 0;
            *last8 = (*last8 << 8) | u64::from(b);
            model.push(stream, b, *last8);
        }
        running
    }

    #[test]
    fn a_new_segment_ends_the_running_match() {
        let mut model = MatchModel::new(1 << 12, 1 << 12, 2);
        let (mut a, mut b) = (0u64, 0u64);
        feed(&mut model, &mut b, 1, b"abcdefghijklmnop");
        assert!(feed(&mut model, &mut a, 0, b"abcdefghij"));
        model.start_segment(0);
        model.start_byte(0);
        assert_eq!(model.cursors[0].len, 0);
    }

    #[test]
    fn a_new_segment_does_not_record_the_old_one_as_followed_by_it() {
        for restart in [false, true] {
            let mut model = MatchModel::new(1 << 12, 1 << 12, 2);
            let (mut a, mut b) = (0u64, 0u64);
            feed(&mut model, &mut a, 0, b"0123456789");
            if restart {
                model.start_segment(0);
                a = 0;
            }
            feed(&mut model, &mut a, 0, b"zzzz");
            // Stream 1 reads the old segment's last bytes (and no earlier ones, which would
            // start a match sooner): only without the restart were they recorded as followed
            // by "z".
            let found = feed(&mut model, &mut b, 1, b"456789?");
            assert_eq!(found, !restart, "restart: {restart}");
            if !restart {
                assert_eq!(model.cursors[1].predicted, b'z');
            }
        }
    }
}
