//! LZMA-style range coder over 16-bit integer frequency tables.
//!
//! The encoder keeps a 33-bit `low` (bit 32 is a pending carry) and a 32-bit `range`. Each
//! symbol narrows the interval to `r · [cum, cum + freq)` with `r = range >> 16`, and whenever
//! `range` drops below 2^24 the top byte of `low` is shifted out. A byte cannot be written
//! while a later carry could still increment it, so the coder holds back one "cache" byte plus
//! a run of 0xFF bytes that a carry would turn into 0x00.
//!
//! The decoder mirrors the encoder's `range` exactly, so both shift the same number of times:
//! an encoder that shifted `n` times while coding writes `n + 4` bytes (the four extra bytes
//! are the flushed `low`), and the decoder reads 4 bytes up front plus one per shift. Decoding
//! therefore consumes the payload exactly, which is what lets [`RangeDecoder::finish`] reject
//! trailing bytes and lets every read past the end be reported as truncation.

use super::{CoderError, FREQ_TOTAL_BITS};

/// `range` is renormalised to stay at or above this, which keeps `range >> 16` at or above
/// 2^8: every symbol of a valid table then gets a non-empty sub-interval.
const TOP: u32 = 1 << 24;
/// Sum of every valid frequency table.
const FREQ_TOTAL: u64 = 1 << FREQ_TOTAL_BITS;
/// Largest scaled code value the decoder looks up; values above it lie in the slack the
/// encoder never uses and only occur in corrupt streams.
const MAX_TARGET: u32 = (1 << FREQ_TOTAL_BITS) - 1;
/// Bytes of `low` the encoder flushes at the end and the decoder preloads.
const CODE_BYTES: usize = 4;

/// Accepts a table only if every entry is at least 1 and the entries sum to `FREQ_TOTAL`;
/// `total` is summed in `u64` so no table can overflow it.
fn table_ok(total: u64, min: u32) -> bool {
    total == FREQ_TOTAL && min >= 1
}

/// Cumulative frequency below `symbol` and the symbol's own frequency, if the table is valid.
fn locate(freqs: &[u32; 256], symbol: u8) -> Result<(u32, u32), CoderError> {
    let s = usize::from(symbol);
    let (mut total, mut cum, mut min) = (0u64, 0u64, u32::MAX);
    for (i, &f) in freqs.iter().enumerate() {
        cum += if i < s { u64::from(f) } else { 0 };
        total += u64::from(f);
        min = min.min(f);
    }
    if !table_ok(total, min) {
        return Err(CoderError::InvalidTable);
    }
    // A valid table bounds cum by 2^16, so the conversion cannot fail.
    let cum = u32::try_from(cum).map_err(|_| CoderError::InvalidTable)?;
    Ok((cum, freqs[s]))
}

/// Encodes symbols into an owned buffer; [`RangeEncoder::finish`] returns bytes that
/// [`RangeDecoder`] decodes back to the same symbols under the same sequence of tables.
#[derive(Debug, Clone)]
pub struct RangeEncoder {
    low: u64,
    range: u32,
    /// The most recent byte shifted out of `low` that a carry could still change.
    cache: u8,
    /// Bytes held back: the cache byte plus the 0xFF bytes after it. Zero only before the
    /// first shift, when no byte exists yet.
    pending: u64,
    out: Vec<u8>,
}

impl Default for RangeEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeEncoder {
    /// An encoder for an empty symbol sequence; it allocates nothing until bytes are due.
    pub fn new() -> Self {
        Self {
            low: 0,
            range: u32::MAX,
            cache: 0,
            pending: 0,
            out: Vec::new(),
        }
    }

    /// Appends `symbol` coded under `freqs`. Errors with [`CoderError::InvalidTable`], leaving
    /// the encoder unchanged, unless every entry of `freqs` is at least 1 and they sum to
    /// `2^FREQ_TOTAL_BITS`; the decoder applies the same check, so a rejected table can never
    /// produce an undecodable stream.
    pub fn encode(&mut self, freqs: &[u32; 256], symbol: u8) -> Result<(), CoderError> {
        let (cum, freq) = locate(freqs, symbol)?;
        let r = self.range >> FREQ_TOTAL_BITS;
        // r < 2^16 and cum + freq <= 2^16, so neither product overflows and the new interval
        // lies inside the old one.
        self.low += u64::from(r * cum);
        self.range = r * freq;
        // r >= 2^8 and freq >= 1 leave range >= 2^8, so this runs at most twice.
        while self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
        Ok(())
    }

    /// Flushes `low` and returns the coded bytes: exactly what the decoder will read to
    /// decode every symbol encoded so far (at least 4 bytes, even for no symbols).
    pub fn finish(mut self) -> Vec<u8> {
        // Four shifts move all of `low` into the held-back bytes; the fifth writes them out
        // (low is then 0, so no carry can follow) and holds back only a 0 byte that the
        // decoder never needs.
        for _ in 0..=CODE_BYTES {
            self.shift_low();
        }
        self.out
    }

    /// Moves the top byte of the 32-bit `low` out, resolving any carry into bit 32.
    fn shift_low(&mut self) {
        // The very first byte is held back unconditionally: the initial interval is
        // [0, 2^32 - 1), which no carry can leave, so it never needs a byte in front of it.
        if self.pending == 0 || self.low < 0xFF00_0000 || self.low >= 1 << 32 {
            let carry = (self.low >> 32) as u8;
            if self.pending > 0 {
                self.out.push(self.cache.wrapping_add(carry));
                for _ in 1..self.pending {
                    self.out.push(0xFFu8.wrapping_add(carry));
                }
            }
            self.cache = (self.low >> 24) as u8;
            self.pending = 1;
        } else {
            // Top byte is 0xFF with no carry yet: a later carry would make it 0x00 and
            // increment the cache, so it joins the held-back run.
            self.pending += 1;
        }
        self.low = (self.low & 0x00FF_FFFF) << 8;
    }
}

/// Decodes a byte slice written by [`RangeEncoder`]. Under the encoder's sequence of tables
/// it returns the encoder's symbols; on any other input it returns wrong symbols or an error,
/// and never panics or loops without consuming input.
#[derive(Debug, Clone)]
pub struct RangeDecoder<'a> {
    bytes: &'a [u8],
    /// Index of the next unread byte.
    pos: usize,
    /// Offset of the coded value from the encoder's `low`, within the current `range`.
    code: u32,
    range: u32,
}

impl<'a> RangeDecoder<'a> {
    /// Starts decoding `bytes`; errors with [`CoderError::Truncated`] if they are shorter than
    /// the 4 bytes every encoder output has.
    pub fn new(bytes: &'a [u8]) -> Result<Self, CoderError> {
        let head = bytes
            .first_chunk::<CODE_BYTES>()
            .ok_or(CoderError::Truncated)?;
        Ok(Self {
            bytes,
            pos: CODE_BYTES,
            code: u32::from_be_bytes(*head),
            range: u32::MAX,
        })
    }

    /// Decodes the next symbol under `freqs`. Errors with [`CoderError::InvalidTable`] on a
    /// table the encoder would have rejected, and with [`CoderError::Truncated`] if the
    /// symbol needs bytes past the end of the input.
    pub fn decode(&mut self, freqs: &[u32; 256]) -> Result<u8, CoderError> {
        let r = self.range >> FREQ_TOTAL_BITS;
        // r >= 2^8 (range >= 2^24), so the division is defined. In a valid stream
        // code < range <= r · 2^16 + (2^16 - 1); the clamp only bites on corrupt input.
        let target = u64::from((self.code / r).min(MAX_TARGET));
        // Branch-free prefix scan: the symbol is the number of entries whose inclusive
        // prefix sum is at most `target`, and its cumulative frequency is the sum of those
        // entries (prefix sums strictly increase in a valid table).
        let (mut total, mut cum, mut below, mut min) = (0u64, 0u64, 0usize, u32::MAX);
        for &f in freqs {
            total += u64::from(f);
            let le = total <= target;
            below += usize::from(le);
            cum += u64::from(f) * u64::from(le);
            min = min.min(f);
        }
        if !table_ok(total, min) {
            return Err(CoderError::InvalidTable);
        }
        // target < 2^16 = total, so `below` <= 255 and `get` always succeeds; cum <= target.
        let freq = *freqs.get(below).ok_or(CoderError::InvalidTable)?;
        let symbol = u8::try_from(below).map_err(|_| CoderError::InvalidTable)?;
        let cum = u32::try_from(cum).map_err(|_| CoderError::InvalidTable)?;
        // cum <= target <= code / r, so r · cum <= code.
        self.code -= r * cum;
        self.range = r * freq;
        while self.range < TOP {
            let byte = *self.bytes.get(self.pos).ok_or(CoderError::Truncated)?;
            self.pos += 1;
            // On a corrupt stream code may exceed range and lose its top bits here; that
            // yields wrong symbols, never an arithmetic fault.
            self.code = (self.code << 8) | u32::from(byte);
            self.range <<= 8;
        }
        Ok(symbol)
    }

    /// Ends decoding; errors with [`CoderError::TrailingBytes`] unless every input byte was
    /// read, which holds exactly when the input is the encoder's complete output for the
    /// symbols decoded.
    pub fn finish(self) -> Result<(), CoderError> {
        match self.bytes.len().saturating_sub(self.pos) {
            // The encoder's flush leaves the decoder's window exactly at `low`, so anything
            // but 0 here means the last bytes were damaged.
            0 if self.code != 0 => Err(CoderError::BadFlush),
            0 => Ok(()),
            extra => Err(CoderError::TrailingBytes { extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded, so failures reproduce.
    use crate::model::init::SplitMix64 as Rng;

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn check_table(freqs: &[u32; 256]) -> bool {
        freqs.iter().all(|&f| f >= 1)
            && freqs.iter().map(|&f| u64::from(f)).sum::<u64>() == FREQ_TOTAL
    }

    /// A valid table with weights of random magnitude, from nearly uniform to very skewed.
    fn random_table(rng: &mut Rng) -> [u32; 256] {
        let spread = rng.below(24);
        let mut weights = [0u64; 256];
        for w in &mut weights {
            let bits = rng.below(spread + 1);
            *w = rng.below(1 << bits) + 1;
        }
        let sum: u64 = weights.iter().sum();
        let spare = FREQ_TOTAL - 256;
        let mut freqs = [0u32; 256];
        for (f, w) in freqs.iter_mut().zip(weights) {
            *f = 1 + (w * spare / sum) as u32;
        }
        let short = FREQ_TOTAL as u32 - freqs.iter().sum::<u32>();
        let i = rng.below(256) as usize;
        freqs[i] += short;
        assert!(check_table(&freqs));
        freqs
    }

    /// A symbol drawn with the probabilities of `freqs`.
    fn draw(rng: &mut Rng, freqs: &[u32; 256]) -> u8 {
        let mut t = rng.below(FREQ_TOTAL) as u32;
        for (s, &f) in freqs.iter().enumerate() {
            if t < f {
                return s as u8;
            }
            t -= f;
        }
        unreachable!("table sums to FREQ_TOTAL")
    }

    fn ideal_bits(seq: &[([u32; 256], u8)]) -> f64 {
        seq.iter()
            .map(|(t, s)| -(f64::from(t[usize::from(*s)]) / FREQ_TOTAL as f64).log2())
            .sum()
    }

    fn encode_all(seq: &[([u32; 256], u8)]) -> Vec<u8> {
        let mut enc = RangeEncoder::new();
        for (t, s) in seq {
            enc.encode(t, *s).unwrap();
        }
        enc.finish()
    }

    fn decode_all(bytes: &[u8], seq: &[([u32; 256], u8)]) -> Result<Vec<u8>, CoderError> {
        let mut dec = RangeDecoder::new(bytes)?;
        let out = seq
            .iter()
            .map(|(t, _)| dec.decode(t))
            .collect::<Result<Vec<_>, _>>()?;
        dec.finish()?;
        Ok(out)
    }

    /// Round-trips `seq` and checks exact consumption; returns the bytes.
    fn round_trip_unsized(seq: &[([u32; 256], u8)]) -> Vec<u8> {
        let bytes = encode_all(seq);
        let decoded = decode_all(&bytes, seq).unwrap();
        assert!(decoded.iter().zip(seq).all(|(d, (_, s))| d == s));
        assert_eq!(decoded.len(), seq.len());
        bytes
    }

    /// Round-trips `seq` and checks the size is within 1% + 8 bytes of the ideal.
    fn round_trip(seq: &[([u32; 256], u8)]) -> Vec<u8> {
        let bytes = round_trip_unsized(seq);
        let ideal = ideal_bits(seq) / 8.0;
        assert!(
            (bytes.len() as f64) <= ideal * 1.01 + 8.0,
            "{} bytes for ideal {ideal:.1}",
            bytes.len()
        );
        bytes
    }

    #[test]
    fn random_tables_round_trip() {
        let mut rng = Rng(1);
        for round in 0..200 {
            let n = if round % 10 == 0 {
                rng.below(20_000)
            } else {
                rng.below(2_000)
            } as usize;
            let mut table = random_table(&mut rng);
            let seq: Vec<_> = (0..n)
                .map(|_| {
                    if rng.below(8) == 0 {
                        table = random_table(&mut rng);
                    }
                    (table, draw(&mut rng, &table))
                })
                .collect();
            round_trip(&seq);
        }
    }

    #[test]
    fn uniformly_drawn_symbols_round_trip() {
        // Symbols that ignore the table hit the rare entries far more often than the model
        // would, exercising the small sub-intervals.
        let mut rng = Rng(2);
        for _ in 0..50 {
            let table = random_table(&mut rng);
            let seq: Vec<_> = (0..3_000).map(|_| (table, rng.below(256) as u8)).collect();
            round_trip(&seq);
        }
    }

    #[test]
    fn extreme_tables_round_trip() {
        let mut skewed = [1u32; 256];
        skewed[200] = 65_281;
        let uniform = [256u32; 256];
        assert!(check_table(&skewed) && check_table(&uniform));
        let mut rng = Rng(3);
        let likely: Vec<_> = (0..100_000)
            .map(|_| (skewed, draw(&mut rng, &skewed)))
            .collect();
        round_trip(&likely);
        // Only the likeliest symbol: about 0.0056 bits each, so the slack of `range >> 16`
        // (the part of `range` above `r · 2^16`, never assigned to a symbol) is no longer
        // small beside it. It costs at most log2(1 / (1 - 2^-8)) ≈ 0.0056 bits per symbol and
        // about 5·10^-4 on average, as range wanders over [2^24, 2^32).
        let all_likely: Vec<_> = (0..100_000).map(|_| (skewed, 200)).collect();
        let bytes = round_trip_unsized(&all_likely);
        let bound = (ideal_bits(&all_likely) + 100_000.0 * 2f64.powi(-10)) / 8.0 + 8.0;
        assert!(
            (bytes.len() as f64) <= bound,
            "{} bytes, bound {bound:.1}",
            bytes.len()
        );
        let flat: Vec<_> = (0..10_000)
            .map(|_| (uniform, rng.below(256) as u8))
            .collect();
        let bytes = round_trip(&flat);
        // 8 bits per symbol is optimal here; only the 4-byte flush and slack are on top.
        assert!(bytes.len() <= 10_000 + 8, "{}", bytes.len());
    }

    #[test]
    fn rare_symbol_repeated() {
        let mut skewed = [1u32; 256];
        skewed[0] = 65_281;
        for sym in [1u8, 128, 255] {
            let seq: Vec<_> = (0..5_000).map(|_| (skewed, sym)).collect();
            round_trip(&seq);
        }
        let mut rng = Rng(4);
        let mixed: Vec<_> = (0..20_000)
            .map(|_| {
                (
                    skewed,
                    if rng.below(2) == 0 {
                        0
                    } else {
                        rng.below(256) as u8
                    },
                )
            })
            .collect();
        round_trip(&mixed);
    }

    #[test]
    fn empty_sequence() {
        let bytes = round_trip(&[]);
        assert_eq!(bytes.len(), CODE_BYTES);
        let dec = RangeDecoder::new(&bytes).unwrap();
        assert_eq!(dec.finish(), Ok(()));
        assert_eq!(RangeDecoder::new(&[]).err(), Some(CoderError::Truncated));
    }

    #[test]
    fn truncation_is_an_error() {
        let mut rng = Rng(5);
        for _ in 0..20 {
            let table = random_table(&mut rng);
            let seq: Vec<_> = (0..300).map(|_| (table, draw(&mut rng, &table))).collect();
            let bytes = encode_all(&seq);
            for cut in 0..bytes.len() {
                assert_eq!(
                    decode_all(&bytes[..cut], &seq),
                    Err(CoderError::Truncated),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut rng = Rng(6);
        let table = random_table(&mut rng);
        let seq: Vec<_> = (0..300).map(|_| (table, draw(&mut rng, &table))).collect();
        let mut bytes = encode_all(&seq);
        bytes.push(0);
        assert_eq!(
            decode_all(&bytes, &seq),
            Err(CoderError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn invalid_tables_are_rejected_by_both_sides() {
        let mut zero = [256u32; 256];
        zero[3] = 0;
        zero[4] = 512;
        let mut short = [256u32; 256];
        short[9] = 255;
        let mut huge = [u32::MAX; 256];
        huge[0] = 0;
        for table in [zero, short, huge] {
            let mut enc = RangeEncoder::new();
            assert_eq!(enc.encode(&table, 3), Err(CoderError::InvalidTable));
            let bytes = enc.finish();
            let mut dec = RangeDecoder::new(&bytes).unwrap();
            assert_eq!(dec.decode(&table), Err(CoderError::InvalidTable));
        }
    }

    #[test]
    fn corrupt_streams_terminate_without_panicking() {
        let mut rng = Rng(7);
        let tables: Vec<_> = (0..16).map(|_| random_table(&mut rng)).collect();
        for round in 0..500 {
            let len = rng.below(64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let Ok(mut dec) = RangeDecoder::new(&bytes) else {
                continue;
            };
            // Each symbol either reads input or errors, so the loop ends on its own; the
            // bound only guards the test against a regression.
            for i in 0..100_000 {
                if dec.decode(&tables[(round + i) % tables.len()]).is_err() {
                    break;
                }
            }
        }
        // Flipping a bit of a real stream must never panic either.
        let table = random_table(&mut rng);
        let seq: Vec<_> = (0..200).map(|_| (table, draw(&mut rng, &table))).collect();
        let bytes = encode_all(&seq);
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let _ = decode_all(&bad, &seq);
        }
    }
}
