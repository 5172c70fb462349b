//! Hashed context models: for each context, the probability of each bit given the context and
//! the byte's bits so far, learned by counters in a table of fixed size.
//!
//! Each context owns a table of 64-byte groups of 16 counters. At the start of each nibble a
//! context's hash, with the byte's bits so far, picks a group: slot 0 holds a check value and
//! slots 1..=15 the counters of the nibble's bit tree (node 1, then `2·node + bit`). A check
//! that matches neither of two neighbouring groups (one 128-byte pair) replaces the less used one, so a collision
//! costs a fresh start rather than borrowed statistics.
//!
//! The tables are shared by all streams of a frame, so what one stream learns serves the
//! others; only the contexts of a stream's next byte (`NextContexts`) belong to the stream.

use super::counter;
use super::history::{CONTEXTS, mix64};
use super::logistic::stretch;
use super::table;

/// Counters per group (one check slot and 15 tree nodes).
const GROUP: usize = 16;
/// Hit-count limit of the counters: low enough to keep adapting to changing statistics.
const COUNT_LIMIT: u32 = 255;
/// Bytes of a pair of groups, the candidates of one context's nibble. The tables start on a
/// multiple of it, so a pair is exactly the two cache lines that `prefetch_nibble` loads (an
/// allocation is only 16-byte aligned, and a pair there straddles three lines, the third read
/// unprefetched).
const PAIR_BYTES: usize = 2 * GROUP * 4;

/// The context models: the tables every stream shares, and where the byte being coded stands
/// in them.
#[derive(Clone, Debug)]
pub struct ContextModels {
    /// `CONTEXTS` tables one after the other, `groups` groups each, from slot `origin` on.
    slots: Vec<u32>,
    /// The first slot on a `PAIR_BYTES` boundary (a clone keeps it: as correct, maybe slower).
    origin: usize,
    groups: usize,
    /// The contexts of the byte being coded.
    hashes: [u64; CONTEXTS],
    /// First slot of each context's current group.
    base: [usize; CONTEXTS],
    /// Position in the nibble's bit tree (1..=15).
    node: usize,
    /// The groups `prefetch_nibble` located, by the partial byte's last bit, so the nibble
    /// that starts next does not hash again.
    located: [Located; 2],
}

/// The contexts of one stream's next byte, with its first nibble's groups already located:
/// what a stream keeps between two of its bytes while other streams use the tables.
#[derive(Clone, Debug)]
pub struct NextContexts {
    hashes: [u64; CONTEXTS],
    /// Located for the partial byte 1 (the first nibble).
    first: Located,
}

/// Every context's check value and candidate groups for one partial byte.
#[derive(Clone, Copy, Debug, Default)]
struct Located {
    /// The partial byte they are for; 0 (no partial byte has it) when stale.
    partial: u32,
    checks: [u32; CONTEXTS],
    pairs: [[usize; 2]; CONTEXTS],
}

impl ContextModels {
    /// Models with `table_bytes` bytes of counters per context (rounded down to a power of
    /// two, at least two groups).
    pub fn new(table_bytes: usize) -> ContextModels {
        let groups = (table_bytes / (4 * GROUP)).max(2);
        let groups = 1 << groups.ilog2();
        // Room to move the start to the next boundary (not counted in `bytes`: a fixed 128).
        let slots = table::zeroed(groups * GROUP * CONTEXTS + PAIR_BYTES / 4);
        let origin = (slots.as_ptr() as usize).wrapping_neg() % PAIR_BYTES / 4;
        ContextModels {
            slots,
            origin,
            groups,
            hashes: [0; CONTEXTS],
            base: [0; CONTEXTS],
            node: 1,
            located: [Located::default(); 2],
        }
    }

    /// Bytes of counters held.
    pub fn bytes(table_bytes: usize) -> u64 {
        let groups = (table_bytes / (4 * GROUP)).max(2);
        (1u64 << groups.ilog2()) * (GROUP * CONTEXTS * 4) as u64
    }

    /// The contexts `hashes` of a stream's next byte, with its first nibble's groups located
    /// and starting to load, so the memory latency overlaps whatever runs before that byte is
    /// coded (the other streams' bytes, the LSTM's next step). The groups' contents are read
    /// only when the byte starts, so other streams may use the tables in between.
    pub fn next_contexts(&self, hashes: [u64; CONTEXTS]) -> NextContexts {
        let mut first = Located {
            partial: 1,
            ..Located::default()
        };
        for i in 0..CONTEXTS {
            (first.checks[i], first.pairs[i]) = self.locate(i, &hashes, 1);
            let [a, b] = first.pairs[i];
            table::prefetch(&self.slots[a]);
            table::prefetch(&self.slots[b]);
        }
        NextContexts { hashes, first }
    }

    /// Starts coding a byte in the contexts `next` (from `next_contexts`).
    pub fn start_byte(&mut self, next: &NextContexts) {
        self.hashes = next.hashes;
        self.located = [Located::default(), next.first];
    }

    /// Locates the groups the nibble with partial byte `partial` would use and starts
    /// loading them (the loads are hints: no value changes). The codec calls it one bit ahead
    /// for both possible partial bytes.
    pub fn prefetch_nibble(&mut self, partial: u32) {
        let mut found = Located {
            partial,
            ..Located::default()
        };
        for i in 0..CONTEXTS {
            (found.checks[i], found.pairs[i]) = self.locate(i, &self.hashes, partial);
            let [a, b] = found.pairs[i];
            table::prefetch(&self.slots[a]);
            table::prefetch(&self.slots[b]);
        }
        self.located[(partial & 1) as usize] = found;
    }

    /// Context `i`'s check value and its two candidate groups (first slots) for the nibble
    /// whose partial byte is `partial`, in the contexts `hashes`.
    #[inline(always)]
    fn locate(&self, i: usize, hashes: &[u64; CONTEXTS], partial: u32) -> (u32, [usize; 2]) {
        let key = mix64(hashes[i] ^ u64::from(partial) << 48);
        let check = (key >> 40) as u32 | 1;
        let first = (key as usize) & (self.groups - 2);
        let table = self.origin + i * self.groups * GROUP;
        (check, [first, first + 1].map(|g| table + g * GROUP))
    }

    /// Picks each context's group for the nibble starting now; `partial` is the byte's bits so
    /// far with a leading 1 (1 at the first nibble, 16..=31 at the second).
    pub fn start_nibble(&mut self, partial: u32) {
        self.node = 1;
        // Every hash and address first, then every check value: the loads are independent,
        // so their cache misses overlap instead of queueing behind each decision.
        let cached = self.located[(partial & 1) as usize];
        let Located { checks, pairs, .. } = if cached.partial == partial {
            cached
        } else {
            let mut found = Located::default();
            for i in 0..CONTEXTS {
                (found.checks[i], found.pairs[i]) = self.locate(i, &self.hashes, partial);
            }
            found
        };
        let heads = pairs.map(|[a, b]| [self.slots[a], self.slots[b]]);
        for i in 0..CONTEXTS {
            let [a, b] = pairs[i];
            self.base[i] = if heads[i][0] == checks[i] {
                a
            } else if heads[i][1] == checks[i] {
                b
            } else {
                let used = |g: usize| counter::count(self.slots[g + 1]);
                let victim = if used(b) < used(a) { b } else { a };
                self.slots[victim..victim + GROUP].fill(0);
                self.slots[victim] = checks[i];
                victim
            };
        }
    }

    /// Each context's stretched prediction for the next bit.
    #[inline]
    pub fn predict(&self, inputs: &mut [i32; CONTEXTS]) {
        for (x, &b) in inputs.iter_mut().zip(&self.base) {
            *x = stretch(counter::p12(self.slots[b + self.node]));
        }
    }

    /// Trains every context's counter on the coded `bit` and moves down the nibble's tree.
    #[inline]
    pub fn learn(&mut self, bit: u8) {
        for &b in &self.base {
            let s = &mut self.slots[b + self.node];
            *s = counter::update(*s, bit, COUNT_LIMIT);
        }
        self.node = 2 * self.node + usize::from(bit);
    }
}
