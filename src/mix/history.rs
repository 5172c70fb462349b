//! What the context models condition on: hashes of the bytes before the current one, one per
//! context (orders 1, 2, 3, 4 and 6, the current word, the current word with the one before
//! it, and the two bytes before the last one), and whether the stream is inside a markup tag.
//!
//! The sparse context (bytes 2 and 3 back) sees past a last byte that varies where the text
//! around it does not (a digit in a number, a letter's case, a byte of a UTF-8 sequence):
//! on the files of `benches/layout` 0.2–0.7 % smaller, more than order 5 in the same place.
//!
//! The tables are shared by all streams of a frame, but the order-2 context also holds the
//! stream's segment (`Segment`): one dense context per segment learns what is local to it,
//! where streams differ in the same contexts (a counter file cut into 32 streams: 2.1 times
//! smaller than with every context shared; ordinary text: 0.2 % smaller too). Keyed by the
//! segment rather than the stream, it starts each segment afresh instead of from what the
//! stream's last segment, elsewhere in the input, left in it: on the first 8 MB of a
//! documentation text at `-2` (mixing stage alone, `benches/layout`) one stream gained 0.16 %,
//! 8 streams 1.4 %, 32 streams 1.5 % and the schedule 0.6 %.

/// Number of hashed contexts `History::hashes` gives.
pub const CONTEXTS: usize = 8;

/// Where each context stands in `History::hashes` (and in the context models' tables).
pub mod context {
    /// The last byte.
    pub const ORDER_1: usize = 0;
    /// The last two bytes, with the stream's segment.
    pub const ORDER_2: usize = 1;
    /// The last three bytes.
    pub const ORDER_3: usize = 2;
    /// The last four bytes.
    pub const ORDER_4: usize = 3;
    /// The last six bytes.
    pub const ORDER_6: usize = 4;
    /// The word being read, with the last byte.
    pub const WORD: usize = 5;
    /// The word being read and the one before it.
    pub const WORD_PAIR: usize = 6;
    /// The two bytes before the last one.
    pub const SPARSE: usize = 7;
}

/// A well-mixed 64-bit hash of `x` (splitmix64's finaliser).
#[inline(always)]
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which segment of which stream a byte belongs to, as the order-2 context's key: distinct
/// for every stream and every segment it starts, up to 2^31 segments a stream (beyond, keys
/// repeat: a collision of contexts, never an error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment(u64);

impl Segment {
    /// The `started`-th segment (0-based) of stream `stream` (below 2^17, the most streams).
    pub fn new(stream: usize, started: u64) -> Segment {
        Segment(stream as u64 | started << 17)
    }

    /// The same stream's next segment.
    pub fn next(self) -> Segment {
        Segment(self.0.wrapping_add(1 << 17))
    }
}

/// The recent bytes of one stream.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The last 8 bytes, the most recent in the low byte.
    last8: u64,
    /// Hash of the letters of the word being read (0 outside words).
    word: u64,
    /// Hash of the previous complete word.
    prev_word: u64,
    /// Whether the bytes since the last '<' hold no '>'.
    in_tag: bool,
}

impl History {
    /// Appends a coded byte.
    pub fn push(&mut self, byte: u8) {
        self.last8 = (self.last8 << 8) | u64::from(byte);
        match byte {
            b'<' => self.in_tag = true,
            b'>' => self.in_tag = false,
            _ => {}
        }
        if byte.is_ascii_alphanumeric() || byte >= 0x80 {
            self.word = mix64(self.word ^ u64::from(byte.to_ascii_lowercase()));
        } else if self.word != 0 {
            self.prev_word = self.word;
            self.word = 0;
        }
    }

    /// Whether the stream is inside a markup tag: its last '<' came after its last '>'.
    pub fn in_tag(&self) -> bool {
        self.in_tag
    }

    /// The last 8 bytes, the most recent in the low byte.
    pub fn last8(&self) -> u64 {
        self.last8
    }

    /// One hash per context for a byte of `segment`, each salted with its index so equal keys
    /// of different contexts differ.
    pub fn hashes(&self, segment: Segment) -> [u64; CONTEXTS] {
        let order = |n: u32| self.last8 & (u64::MAX >> (64 - 8 * n));
        let mut keys = [0; CONTEXTS];
        keys[context::ORDER_1] = order(1);
        // Above the two bytes: exact while the segment's key fits in the other 48 bits.
        keys[context::ORDER_2] = order(2) | segment.0 << 16;
        keys[context::ORDER_3] = order(3);
        keys[context::ORDER_4] = order(4);
        keys[context::ORDER_6] = order(6);
        keys[context::WORD] = self.word ^ (self.last8 & 0xFF) << 56;
        keys[context::WORD_PAIR] = mix64(self.word) ^ self.prev_word;
        keys[context::SPARSE] = (self.last8 >> 8) & 0xFFFF;
        let mut out = [0; CONTEXTS];
        for (i, (o, k)) in out.iter_mut().zip(keys).enumerate() {
            *o = mix64(k.wrapping_add((i as u64 + 1) << 59));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_whether_it_is_inside_a_tag() {
        let mut h = History::default();
        let mut inside = vec![];
        for &b in b"a<b c='d'>e</f>" {
            h.push(b);
            inside.push(h.in_tag());
        }
        let expected: Vec<bool> = "011111111001110".chars().map(|c| c == '1').collect();
        assert_eq!(inside, expected);
    }

    #[test]
    fn every_context_hashes_differently() {
        let mut h = History::default();
        for &b in b"some text" {
            h.push(b);
        }
        let hashes = h.hashes(Segment::new(0, 0));
        for i in 0..CONTEXTS {
            for j in i + 1..CONTEXTS {
                assert_ne!(hashes[i], hashes[j]);
            }
        }
        // The segment reaches the order-2 context only.
        let other = h.hashes(Segment::new(0, 1));
        let differs: Vec<bool> = (0..CONTEXTS).map(|i| hashes[i] != other[i]).collect();
        let expected: Vec<bool> = (0..CONTEXTS).map(|i| i == context::ORDER_2).collect();
        assert_eq!(differs, expected);
    }
}
