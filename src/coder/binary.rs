//! Binary arithmetic coder over 12-bit probabilities.
//!
//! The coding interval is `[low, high]` of 32-bit integers. A bit whose probability of being 1
//! is `p / 4096` splits it at `mid = low + ((high - low) >> 12) · p`: a 1 keeps `[low, mid]`, a 0
//! keeps `[mid + 1, high]`. Whenever `low` and `high` agree in their top byte, that byte is
//! final: it is written out and both are shifted left by 8 (`high` filling with 1s). No carry
//! can ever reach a written byte, so the coder needs no carry handling at all.
//!
//! The decoder mirrors `low` and `high` exactly, so both shift the same number of times: an
//! encoder that shifted `n` times writes `n + 4` bytes (the four extra bytes are the flushed
//! `low`), and the decoder reads 4 bytes up front plus one per shift. Decoding therefore
//! consumes the payload exactly, which is what lets [`BinaryDecoder::finish`] reject trailing
//! bytes and a final window that is not the encoder's flush, and lets every read past the end
//! be reported as truncation.

use super::{BitCoder, CoderError, PROB_BITS};

/// Bytes of `low` the encoder flushes at the end and the decoder preloads.
const CODE_BYTES: usize = 4;
/// Top-byte mask: once `low` and `high` agree under it, their top byte is settled.
const TOP_BYTE: u32 = 0xFF00_0000;

/// Checks a probability of a 1 in units of 2^-12: it must leave both bits a non-empty share.
fn checked(p1: u16) -> Result<u32, CoderError> {
    if (1..(1 << PROB_BITS)).contains(&p1) {
        Ok(u32::from(p1))
    } else {
        Err(CoderError::InvalidProbability)
    }
}

/// The split point of `[low, high]` for a bit with probability `p1` of being 1. Since
/// `p1 < 4096`, `mid < high` whenever `high - low ≥ 4096`, and `mid = low` otherwise, so both
/// halves are valid intervals (`low ≤ mid < high` or, at worst, `mid = low ≤ high`).
#[inline(always)]
fn split(low: u32, high: u32, p1: u32) -> u32 {
    low + ((high - low) >> PROB_BITS) * p1
}

/// Encodes bits into an owned buffer; [`BinaryEncoder::finish`] returns bytes that
/// [`BinaryDecoder`] decodes back to the same bits under the same sequence of probabilities.
#[derive(Debug, Clone)]
pub struct BinaryEncoder {
    low: u32,
    high: u32,
    out: Vec<u8>,
}

impl Default for BinaryEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BinaryEncoder {
    /// An encoder for an empty bit sequence; it allocates nothing until bytes are due.
    pub fn new() -> Self {
        Self {
            low: 0,
            high: u32::MAX,
            out: Vec::new(),
        }
    }

    /// Appends `bit` (0 or 1; any non-zero value counts as 1) coded with probability
    /// `p1 / 4096` of being 1. Errors with [`CoderError::InvalidProbability`], leaving the
    /// encoder unchanged, unless `1 ≤ p1 ≤ 4095`; the decoder applies the same check.
    pub fn encode(&mut self, bit: u8, p1: u16) -> Result<(), CoderError> {
        let mid = split(self.low, self.high, checked(p1)?);
        if bit != 0 {
            self.high = mid;
        } else {
            self.low = mid + 1;
        }
        while (self.low ^ self.high) & TOP_BYTE == 0 {
            self.out.push((self.high >> 24) as u8);
            self.low <<= 8;
            self.high = (self.high << 8) | 0xFF;
        }
        Ok(())
    }

    /// Flushes `low` and returns the coded bytes: exactly what the decoder will read to
    /// decode every bit encoded so far (at least 4 bytes, even for no bits).
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&self.low.to_be_bytes());
        self.out
    }
}

impl BitCoder for BinaryEncoder {
    fn code(&mut self, bit: u8, p1: u16) -> Result<u8, CoderError> {
        self.encode(bit, p1)?;
        Ok(u8::from(bit != 0))
    }
}

/// Decodes what [`BinaryEncoder`] wrote, given the same probabilities in the same order.
#[derive(Debug, Clone)]
pub struct BinaryDecoder<'a> {
    low: u32,
    high: u32,
    /// The four payload bytes in the coder's window, as a big-endian number.
    code: u32,
    input: &'a [u8],
    pos: usize,
}

impl<'a> BinaryDecoder<'a> {
    /// Starts decoding `input`. Errors with [`CoderError::Truncated`] if it is shorter than
    /// the 4 bytes every encoder output has.
    pub fn new(input: &'a [u8]) -> Result<Self, CoderError> {
        let head = input
            .first_chunk::<CODE_BYTES>()
            .ok_or(CoderError::Truncated)?;
        Ok(Self {
            low: 0,
            high: u32::MAX,
            code: u32::from_be_bytes(*head),
            input,
            pos: CODE_BYTES,
        })
    }

    /// Decodes one bit coded with probability `p1 / 4096` of being 1. Errors with
    /// [`CoderError::InvalidProbability`] unless `1 ≤ p1 ≤ 4095`, and with
    /// [`CoderError::Truncated`] if the payload ends before the bit is settled.
    pub fn decode(&mut self, p1: u16) -> Result<u8, CoderError> {
        let mid = split(self.low, self.high, checked(p1)?);
        let bit = if self.code <= mid {
            self.high = mid;
            1
        } else {
            self.low = mid + 1;
            0
        };
        while (self.low ^ self.high) & TOP_BYTE == 0 {
            let byte = *self.input.get(self.pos).ok_or(CoderError::Truncated)?;
            self.pos += 1;
            self.low <<= 8;
            self.high = (self.high << 8) | 0xFF;
            self.code = (self.code << 8) | u32::from(byte);
        }
        Ok(bit)
    }

    /// Checks that the payload ended exactly where the encoder's output did: no bytes left
    /// over, and the last four bytes are the encoder's flush of `low`.
    pub fn finish(self) -> Result<(), CoderError> {
        let extra = self.input.len() - self.pos;
        if extra > 0 {
            return Err(CoderError::TrailingBytes { extra });
        }
        if self.code != self.low {
            return Err(CoderError::BadFlush);
        }
        Ok(())
    }
}

impl BitCoder for BinaryDecoder<'_> {
    fn code(&mut self, _bit: u8, p1: u16) -> Result<u8, CoderError> {
        self.decode(p1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::SplitMix64;

    /// Random bits with random probabilities, some of them extreme and some wrong-sided.
    fn sample(seed: u64, n: usize) -> Vec<(u8, u16)> {
        let mut rng = SplitMix64(seed);
        (0..n)
            .map(|_| {
                let r = rng.next();
                let p = match r % 5 {
                    0 => 1,
                    1 => 4095,
                    _ => ((r >> 8) % 4095 + 1) as u16,
                };
                // Mostly the likely bit, sometimes the unlikely one.
                let likely = u8::from(p >= 2048);
                let bit = if (r >> 40).is_multiple_of(10) {
                    1 - likely
                } else {
                    likely
                };
                (bit, p)
            })
            .collect()
    }

    fn encode_all(bits: &[(u8, u16)]) -> Vec<u8> {
        let mut e = BinaryEncoder::new();
        for &(b, p) in bits {
            e.encode(b, p).unwrap();
        }
        e.finish()
    }

    #[test]
    fn round_trips_random_and_extreme_bits() {
        for seed in 0..20 {
            let bits = sample(seed, 5000);
            let bytes = encode_all(&bits);
            let mut d = BinaryDecoder::new(&bytes).unwrap();
            for &(b, p) in &bits {
                assert_eq!(d.decode(p).unwrap(), b);
            }
            d.finish().unwrap();
        }
    }

    #[test]
    fn empty_sequence_is_four_bytes() {
        let bytes = BinaryEncoder::new().finish();
        assert_eq!(bytes.len(), 4);
        BinaryDecoder::new(&bytes).unwrap().finish().unwrap();
    }

    #[test]
    fn certain_bits_cost_at_least_the_precision_bound() {
        // 8 × 100,000 bits at the most favourable probability: each costs at least
        // log2(4096/4095) bits, so the payload cannot be shorter than that sum.
        let mut e = BinaryEncoder::new();
        for _ in 0..800_000 {
            e.encode(1, 4095).unwrap();
        }
        let bound = 800_000.0 * (4096.0f64 / 4095.0).log2() / 8.0;
        assert!(e.finish().len() as f64 >= bound);
    }

    #[test]
    fn invalid_probabilities_are_refused() {
        let mut e = BinaryEncoder::new();
        assert_eq!(e.encode(1, 0), Err(CoderError::InvalidProbability));
        assert_eq!(e.encode(1, 4096), Err(CoderError::InvalidProbability));
        let bytes = [0u8; 4];
        let mut d = BinaryDecoder::new(&bytes).unwrap();
        assert_eq!(d.decode(0), Err(CoderError::InvalidProbability));
    }

    #[test]
    fn truncation_trailing_bytes_and_bad_flush_are_detected() {
        let bits = sample(7, 2000);
        let bytes = encode_all(&bits);
        let decode = |input: &[u8]| -> Result<(), CoderError> {
            let mut d = BinaryDecoder::new(input)?;
            for &(_, p) in &bits {
                d.decode(p)?;
            }
            d.finish()
        };
        assert_eq!(decode(&bytes), Ok(()));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(CoderError::TrailingBytes { extra: 1 }));
        let mut flush = bytes.clone();
        *flush.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&flush), Err(CoderError::BadFlush));
    }
}
