//! A coded block's payload: one arithmetic coder for each group of consecutive streams, so
//! that a decoder can decode the groups at once, each on a core of its own (`FORMAT.md`,
//! "Payload").
//!
//! The payload is the byte length of every coder's output but the last, each as an
//! unsigned LEB128 number (7 bits a byte, low bits first, the high bit set on every byte but
//! the last, never a needless zero byte), then the coders' outputs, one after the other.

use super::MIN_CODED_LEN;

/// Streams a coder takes before a block gets another coder: below this, more coders would
/// cost their flushes and lengths for little work to share out.
const STREAMS_PER_CODER: usize = 32;
/// Most coders of a block: enough cores for a frame's mixing stage on a GPU host, few enough
/// that their flushes and lengths (about 6 bytes each) stay under 0.05 % of a 128 KiB block.
pub const MAX_CODERS: usize = 8;

/// How a block's streams are shared between its coders: stream `s` is coded by coder
/// `⌊s · coders / streams⌋`, with `coders = clamp(⌊streams / 32⌋, 1, 8)`, so each coder codes
/// a run of consecutive streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coders {
    streams: usize,
    coders: usize,
}

/// Why a coded payload cannot be cut into its coders' outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodersError {
    /// A length is not a minimal LEB128 number, or runs past the payload.
    #[error("a coder's length is malformed")]
    BadLength,
    /// The lengths do not leave every coder its output of at least `MIN_CODED_LEN` bytes
    /// within the payload.
    #[error("the coders' lengths do not fit the payload")]
    LengthsOutOfRange,
}

impl Coders {
    /// The coders of a block of `streams ≥ 1` streams.
    pub fn new(streams: usize) -> Coders {
        let streams = streams.max(1);
        Coders {
            streams,
            coders: (streams / STREAMS_PER_CODER).clamp(1, MAX_CODERS),
        }
    }

    /// How many coders the block has, `1..=MAX_CODERS`.
    pub fn count(&self) -> usize {
        self.coders
    }

    /// The coder of `stream` (below the block's streams): never decreasing with `stream`.
    pub fn of(&self, stream: usize) -> usize {
        stream * self.coders / self.streams
    }

    /// The payload of coders' outputs `parts` (one per coder, in order).
    pub fn join(&self, parts: &[Vec<u8>]) -> Vec<u8> {
        debug_assert_eq!(parts.len(), self.coders);
        let mut payload = Vec::with_capacity(parts.iter().map(|p| p.len() + 3).sum());
        if let Some((_, leading)) = parts.split_last() {
            for part in leading {
                let mut len = part.len();
                while len >= 0x80 {
                    payload.push(len as u8 | 0x80);
                    len >>= 7;
                }
                payload.push(len as u8);
            }
        }
        for part in parts {
            payload.extend_from_slice(part);
        }
        payload
    }

    /// Cuts `payload` into the coders' outputs. `Ok` guarantees one part per coder, each at
    /// least `MIN_CODED_LEN` bytes, together exactly the payload after the lengths. Nothing
    /// is allocated beyond the list of `count()` slices.
    pub fn split<'a>(&self, payload: &'a [u8]) -> Result<Vec<&'a [u8]>, CodersError> {
        let mut rest = payload;
        let mut lens = Vec::with_capacity(self.coders);
        for _ in 1..self.coders {
            let (len, after) = read_length(rest)?;
            lens.push(len);
            rest = after;
        }
        let mut parts = Vec::with_capacity(self.coders);
        for len in lens {
            if len < MIN_CODED_LEN as usize || len > rest.len() {
                return Err(CodersError::LengthsOutOfRange);
            }
            let (part, after) = rest.split_at(len);
            parts.push(part);
            rest = after;
        }
        if rest.len() < MIN_CODED_LEN as usize {
            return Err(CodersError::LengthsOutOfRange);
        }
        parts.push(rest);
        Ok(parts)
    }
}

/// A minimal unsigned LEB128 number of at most 32 bits at the start of `bytes`, and the
/// bytes after it. Read here rather than by a general LEB128 reader because the format allows
/// one encoding of each length only (no needless zero bytes, nothing above 32 bits), as the
/// strict reader allows one encoding of every field.
fn read_length(bytes: &[u8]) -> Result<(usize, &[u8]), CodersError> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(5) {
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // A last byte of 0 after others would be a needless zero byte.
            if (i > 0 && b == 0) || value > u64::from(u32::MAX) {
                return Err(CodersError::BadLength);
            }
            return Ok((value as usize, &bytes[i + 1..]));
        }
    }
    Err(CodersError::BadLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_shared_in_consecutive_groups() {
        for streams in [1, 2, 31, 32, 63, 64, 100, 256, 257, 1000, 65_536] {
            let coders = Coders::new(streams);
            assert_eq!(coders.count(), (streams / 32).clamp(1, 8));
            // From coder 0 to the last, one step at a time: every coder has streams.
            let of: Vec<usize> = (0..streams).map(|s| coders.of(s)).collect();
            assert_eq!(of[0], 0);
            assert_eq!(of[streams - 1], coders.count() - 1);
            assert!(of.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1));
        }
    }

    #[test]
    fn a_joined_payload_splits_back() {
        let coders = Coders::new(256);
        let parts: Vec<Vec<u8>> = [4, 127, 128, 300, 16_384, 5, 70_000, 9]
            .iter()
            .enumerate()
            .map(|(i, &len)| vec![i as u8; len])
            .collect();
        let payload = coders.join(&parts);
        // 4 and 127: one byte; 128, 300, 16,384 (three), 70,000 (three): 1+1+2+2+3+1+3.
        let lengths = 1 + 1 + 2 + 2 + 3 + 1 + 3;
        assert_eq!(
            payload.len(),
            lengths + parts.iter().map(Vec::len).sum::<usize>()
        );
        let split = coders.split(&payload).unwrap();
        assert_eq!(split, parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // One coder: the payload is its output, with no length.
        let one = Coders::new(5);
        assert_eq!(one.join(&[vec![7; 6]]), vec![7; 6]);
        assert_eq!(one.split(&[7; 6]).unwrap(), [&[7u8; 6][..]]);
    }

    #[test]
    fn bad_lengths_are_refused() {
        let two = Coders::new(64);
        // The first part is 4 bytes, the second 4.
        let good = [&[4u8][..], &[1; 8]].concat();
        assert!(two.split(&good).is_ok());
        for (payload, why) in [
            (vec![], CodersError::BadLength),
            (vec![0x84], CodersError::BadLength),
            (
                vec![0x84, 0x00, 1, 1, 1, 1, 1, 1, 1, 1],
                CodersError::BadLength,
            ),
            (vec![0xFF; 6], CodersError::BadLength),
            (vec![3, 1, 1, 1, 1, 1, 1, 1], CodersError::LengthsOutOfRange),
            (vec![4, 1, 1, 1, 1, 1, 1, 1], CodersError::LengthsOutOfRange),
            (
                vec![9, 1, 1, 1, 1, 1, 1, 1, 1],
                CodersError::LengthsOutOfRange,
            ),
        ] {
            assert_eq!(two.split(&payload), Err(why), "{payload:?}");
        }
    }
}
