//! The LSTM's 256-way frequency table as binary probabilities along the byte's bit tree.
//!
//! The probability that bit `i` of the byte is 1, given its higher bits, is the table's mass on
//! the symbols with that prefix and a 1 next, over the mass on the prefix: exact integer sums
//! of the table, one division per bit.

use super::logistic::PROB_ONE;

/// One frequency table with the mass of every prefix: the nodes of the byte's bit tree.
#[derive(Clone, Debug)]
pub struct LstmBits<'a> {
    table: &'a [u32; 256],
    /// `nodes[n]` for `n` in 1..256 is the mass of the symbols whose top bits are `n`'s bits
    /// below its leading 1 (a partial byte), the sum of its children `2n` and `2n + 1`; the
    /// children of nodes 128..256 are the symbols themselves. (Index 0 is unused.)
    nodes: [u32; 256],
}

impl<'a> LstmBits<'a> {
    /// Takes the table of the byte about to be coded (entries ≥ 1, total 2^16, as every
    /// backend guarantees).
    pub fn new(table: &'a [u32; 256]) -> LstmBits<'a> {
        // Level by level from the bottom: the additions are independent of the coded bits
        // (off the bit-serial path) and pairwise, so they vectorise, where a running prefix
        // sum is one serial chain of 256 additions.
        let mut nodes = [0; 256];
        let (pairs, _) = table.as_chunks::<2>();
        for (n, [a, b]) in nodes[128..].iter_mut().zip(pairs) {
            *n = a + b;
        }
        let mut width = 64;
        while width >= 1 {
            let (upper, lower) = nodes.split_at_mut(2 * width);
            let (pairs, _) = lower[..2 * width].as_chunks::<2>();
            for (n, [a, b]) in upper[width..].iter_mut().zip(pairs) {
                *n = a + b;
            }
            width /= 2;
        }
        LstmBits { table, nodes }
    }

    /// 12-bit probability (`1..=4095`) that the next bit is 1, given the byte's bits so far
    /// as `partial` (with a leading 1: 1, then 2..=3, … 128..=255).
    #[inline]
    pub fn p1(&self, partial: u32) -> i32 {
        let node = partial as usize & 0xff;
        let all = u64::from(self.nodes[node]);
        let ones = u64::from(if node < 128 {
            self.nodes[2 * node + 1]
        } else {
            self.table[2 * node + 1 - 256]
        });
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
        let bits = LstmBits::new(&t);
        let mut partial = 1;
        for done in 0..8 {
            let bit = (b'a' >> (7 - done)) & 1;
            let p = bits.p1(partial);
            if bit == 1 {
                assert!(p > 4000)
            } else {
                assert!(p < 96)
            }
            partial = (partial << 1) | u32::from(bit);
        }
    }

    #[test]
    fn divides_the_sums_of_the_prefixes() {
        let mut t = [0u32; 256];
        let mut x = 7u32;
        for f in &mut t {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *f = 1 + (x >> 16) % 500;
        }
        let bits = LstmBits::new(&t);
        let mass = |from: usize, len: usize| -> u64 {
            t[from..from + len].iter().map(|&f| u64::from(f)).sum()
        };
        for byte in [0u8, 1, 0x5a, 0xa5, 0xfe, 0xff] {
            let mut partial = 1u32;
            for done in 0..8 {
                let len = 256 >> done;
                let from = (partial as usize - (1 << done)) * len;
                let (all, ones) = (mass(from, len), mass(from + len / 2, len / 2));
                let want = ((ones * 4096 + all / 2) / all).clamp(1, 4095) as i32;
                assert_eq!(bits.p1(partial), want, "byte {byte:#x}, bit {done}");
                partial = (partial << 1) | u32::from((byte >> (7 - done)) & 1);
            }
        }
    }
}
