//! The LSTM's 256-way frequency table as binary probabilities along the byte's bit tree.
//!
//! The probability that bit `i` of the byte is 1, given its higher bits, is the table's mass on
//! the symbols with that prefix and a 1 next, over the mass on the prefix: exact integer sums
//! of the table, one division per bit.

use super::logistic::PROB_ONE;

/// Prefix sums of one frequency table.
#[derive(Clone, Debug)]
pub struct LstmBits {
    /// `cum[s]` = sum of the frequencies of symbols below `s`.
    cum: [u32; 257],
}

impl Default for LstmBits {
    fn default() -> Self {
        LstmBits { cum: [0; 257] }
    }
}

impl LstmBits {
    /// Takes the table of the byte about to be coded (entries ≥ 1, total 2^16, as every
    /// backend guarantees).
    pub fn load(&mut self, table: &[u32; 256]) {
        let mut sum = 0;
        for (c, &f) in self.cum[1..].iter_mut().zip(table) {
            sum += f;
            *c = sum;
        }
    }

    /// 12-bit probability (`1..=4095`) that the next bit is 1, when `done` bits of the byte
    /// are known (0..8) and `prefix` holds them (the byte's top `done` bits).
    #[inline]
    pub fn p1(&self, done: u32, prefix: u32) -> i32 {
        let lo = (prefix << (8 - done)) as usize;
        let half = 1usize << (7 - done);
        let all = u64::from(self.cum[lo + 2 * half] - self.cum[lo]);
        let ones = u64::from(self.cum[lo + 2 * half] - self.cum[lo + half]);
        // all ≥ 2 since every entry is at least 1, so the division is defined.
        let p = (ones * PROB_ONE as u64 + all / 2) / all.max(1);
        (p as i32).clamp(1, PROB_ONE - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_table_down_the_tree() {
        let mut t = [1u32; 256];
        t[b'a' as usize] = 65536 - 255;
        let mut bits = LstmBits::default();
        bits.load(&t);
        let mut prefix = 0;
        for done in 0..8 {
            let bit = (b'a' >> (7 - done)) & 1;
            let p = bits.p1(done, prefix);
            if bit == 1 {
                assert!(p > 4000)
            } else {
                assert!(p < 96)
            }
            prefix = (prefix << 1) | u32::from(bit);
        }
    }
}
