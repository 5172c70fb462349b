//! Hashed context models: for each context, the probability of each bit given the context and
//! the byte's bits so far, learned by counters in a table of fixed size.
//!
//! Each context owns a table of 64-byte groups of 16 counters, sized for it (order 1's few
//! contexts need a small one). At the start of each nibble a
//! context's hash, with the byte's bits so far, picks a group: slot 0 holds a check value and
//! slots 1..=15 the counters of the nibble's bit tree (node 1, then `2·node + bit`). A check
//! that matches neither of two neighbouring groups (one 128-byte pair) replaces the less used one, so a collision
//! costs a fresh start rather than borrowed statistics.
//!
//! The tables are shared by all streams of a frame, so what one stream learns serves the
//! others; only the contexts of a stream's next byte (`NextContexts`) belong to the stream.
//! Coding reads the tables; learning writes them after the step, so the streams of a step
//! may be coded at once, by several threads.

use super::counter;
use super::history::{CONTEXTS, context, mix64};
use super::logistic::stretch;
use super::table;

/// Counters per group (one check slot and 15 tree nodes).
const GROUP: usize = 16;
/// Hit-count limit of the counters: low enough to keep adapting to changing statistics
/// (`benches/layout`, one stream: 60 gave 0.3–0.5 % less than 255 on a documentation text,
/// URLs, HTML and world192.txt, book1 unchanged; 30 less still on one stream but more in the
/// schedule).
const COUNT_LIMIT: u32 = 60;
/// Bytes of a pair of groups, the candidates of one context's nibble. The tables start on a
/// multiple of it, so a pair is exactly the two cache lines that `prefetch_nibble` loads (an
/// allocation is only 16-byte aligned, and a pair there straddles three lines, the third read
/// unprefetched).
const PAIR_BYTES: usize = 2 * GROUP * 4;

/// The contexts whose counts make up `ContextModels::confidence`, the first in its highest bits.
const CONFIDENT_CONTEXTS: [usize; 5] = [
    context::WORD,
    context::WORD_PAIR,
    context::ORDER_4,
    context::ORDER_6,
    context::ORDER_3,
];
/// Values `ContextModels::confidence` takes: four levels for each of its contexts.
pub const CONFIDENCE_LEVELS: usize = 1 << (2 * CONFIDENT_CONTEXTS.len());

/// Groups in a table of `bytes`: a power of two, at least 2.
fn groups_in(bytes: usize) -> usize {
    1 << (bytes / (4 * GROUP)).max(2).ilog2()
}

/// The context models: the tables every stream shares. Coding a byte only reads them (through
/// a `ContextCursor`); what it teaches them is applied afterwards, in a fixed order, table by
/// table (`tables_mut`).
#[derive(Clone, Debug)]
pub struct ContextModels {
    /// `CONTEXTS` tables one after the other, from slot `origin` on, then one group that stays
    /// zero: what a context whose group is not in its table yet reads (unseen counters).
    slots: Vec<u32>,
    /// The first slot on a `PAIR_BYTES` boundary (a clone keeps it: as correct, maybe slower).
    origin: usize,
    /// Each context's table: its first slot after `origin`, and its groups less 2 (a power
    /// of two less 2: the mask that picks the first group of a pair).
    tables: [(usize, usize); CONTEXTS],
    /// First slot of the group that stays zero.
    unseen: usize,
}

/// The contexts of one stream's next byte, with its first nibble's groups already located:
/// what a stream keeps between two of its bytes while other streams use the tables.
#[derive(Clone, Debug)]
pub struct NextContexts {
    hashes: [u64; CONTEXTS],
    /// Located for the partial byte 1 (the first nibble).
    first: Located,
}

/// Every context's check value and candidate groups for one partial byte: where a nibble's
/// counters are, found when it was coded and claimed when it is learned
/// (`ContextTable::learn_nibble`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Located {
    /// The partial byte they are for; 0 (no partial byte has it) when stale.
    partial: u32,
    checks: [u32; CONTEXTS],
    /// Each context's first candidate group (its first slot); the second follows it. In
    /// `u32`, which holds any slot (tables of at most 2^30 bytes), since every byte of a step
    /// keeps two of these until the step's learning.
    pairs: [u32; CONTEXTS],
}

impl Located {
    /// Context `i`'s two candidate groups (first slots).
    #[inline(always)]
    fn pair(&self, i: usize) -> [usize; 2] {
        let first = self.pairs[i] as usize;
        [first, first + GROUP]
    }
}

/// Where one byte being coded stands in the tables: its contexts, each context's group for
/// the current nibble and the position in the nibble's bit tree.
#[derive(Clone, Debug)]
pub struct ContextCursor {
    /// The contexts of the byte being coded.
    hashes: [u64; CONTEXTS],
    /// First slot of each context's current group (the zero group where it has none).
    base: [usize; CONTEXTS],
    /// Position in the nibble's bit tree (1..=15).
    node: usize,
    /// The groups `prefetch_nibble` located, by the partial byte's last bit, so the nibble
    /// that starts next does not hash again.
    located: [Located; 2],
}

impl ContextModels {
    /// Models with `table_bytes[i]` bytes of counters for context `i` (each rounded down to a
    /// power of two, at least two groups).
    pub fn new(table_bytes: [usize; CONTEXTS]) -> ContextModels {
        let groups = table_bytes.map(groups_in);
        let total = groups.iter().sum::<usize>();
        // Room to move the start to the next boundary, and the zero group (not counted in
        // `bytes`: a fixed 192).
        let slots = table::zeroed((total + 1) * GROUP + PAIR_BYTES / 4);
        let origin = (slots.as_ptr() as usize).wrapping_neg() % PAIR_BYTES / 4;
        let mut start = 0;
        let tables = groups.map(|g| {
            let table = (start, g - 2);
            start += g * GROUP;
            table
        });
        ContextModels {
            slots,
            origin,
            tables,
            unseen: origin + total * GROUP,
        }
    }

    /// Bytes of counters held for tables of `table_bytes`.
    pub fn bytes(table_bytes: [usize; CONTEXTS]) -> u64 {
        table_bytes.map(groups_in).iter().sum::<usize>() as u64 * (GROUP * 4) as u64
    }

    /// The contexts `hashes` of a stream's next byte, with its first nibble's groups located
    /// and starting to load, so the memory latency overlaps whatever runs before that byte is
    /// coded (the other streams' bytes, the LSTM's next step).
    pub fn next_contexts(&self, hashes: [u64; CONTEXTS]) -> NextContexts {
        NextContexts {
            hashes,
            first: self.locate_nibble(&hashes, 1),
        }
    }

    /// Every context's check value and candidate groups for the nibble with partial byte
    /// `partial`, their loads started (hints: no value changes).
    fn locate_nibble(&self, hashes: &[u64; CONTEXTS], partial: u32) -> Located {
        let mut found = Located {
            partial,
            ..Located::default()
        };
        for i in 0..CONTEXTS {
            let (check, [a, b]) = self.locate(i, hashes, partial);
            found.checks[i] = check;
            found.pairs[i] = a as u32;
            table::prefetch(&self.slots[a]);
            table::prefetch(&self.slots[b]);
        }
        found
    }

    /// Context `i`'s check value and its two candidate groups (first slots) for the nibble
    /// whose partial byte is `partial`, in the contexts `hashes`.
    #[inline(always)]
    fn locate(&self, i: usize, hashes: &[u64; CONTEXTS], partial: u32) -> (u32, [usize; 2]) {
        let key = mix64(hashes[i] ^ u64::from(partial) << 48);
        let check = (key >> 40) as u32 | 1;
        let (start, mask) = self.tables[i];
        let first = (key as usize) & mask;
        let table = self.origin + start;
        (check, [first, first + 1].map(|g| table + g * GROUP))
    }

    /// The group of `located` context `i` already holds, if any.
    #[inline(always)]
    fn found(&self, located: &Located, i: usize) -> Option<usize> {
        holding(&self.slots, located.checks[i], located.pair(i))
    }

    /// Each context's table on its own, to learn from at once: the tables share nothing.
    pub fn tables_mut(&mut self) -> [ContextTable<'_>; CONTEXTS] {
        let mut rest = &mut self.slots[self.origin..];
        let mut first = self.origin;
        let mut context = 0;
        self.tables.map(|(_, mask)| {
            let (slots, after) = std::mem::take(&mut rest).split_at_mut((mask + 2) * GROUP);
            rest = after;
            let table = ContextTable {
                context,
                first,
                slots,
            };
            first += table.slots.len();
            context += 1;
            table
        })
    }
}

/// Which of the candidate groups `pair` (first slots in `slots`) holds `check`, if either.
#[inline(always)]
fn holding(slots: &[u32], check: u32, [a, b]: [usize; 2]) -> Option<usize> {
    if slots[a] == check {
        Some(a)
    } else if slots[b] == check {
        Some(b)
    } else {
        None
    }
}

/// One context's table, apart from the others (`ContextModels::tables_mut`).
pub struct ContextTable<'a> {
    /// The context whose table it is.
    context: usize,
    /// The index, among all the models' slots, of `slots[0]`.
    first: usize,
    slots: &'a mut [u32],
}

impl ContextTable<'_> {
    /// Starts loading the table's candidate groups of a byte's `nibbles` (hints only).
    #[inline(always)]
    pub fn prefetch(&self, nibbles: &[Located; 2]) {
        for located in nibbles {
            for g in located.pair(self.context) {
                table::prefetch(&self.slots[g - self.first]);
            }
        }
    }

    /// Trains the table's counters on a nibble coded at `located`
    /// (`ContextCursor::start_nibble`'s result): `bits`, its four coded bits from the top. A
    /// group not in the table yet takes the less used of its two candidates, cleared, so a
    /// collision costs a fresh start rather than borrowed statistics.
    pub fn learn_nibble(&mut self, located: &Located, bits: u8) {
        let [a, b] = located.pair(self.context).map(|g| g - self.first);
        let check = located.checks[self.context];
        let base = holding(self.slots, check, [a, b]).unwrap_or_else(|| {
            let used = |g: usize| counter::count(self.slots[g + 1]);
            let victim = if used(b) < used(a) { b } else { a };
            self.slots[victim..victim + GROUP].fill(0);
            self.slots[victim] = check;
            victim
        });
        let mut node = 1;
        for done in 0..4 {
            let bit = (bits >> (3 - done)) & 1;
            let s = &mut self.slots[base + node];
            *s = counter::update(*s, bit, COUNT_LIMIT);
            node = 2 * node + usize::from(bit);
        }
    }
}

impl ContextCursor {
    /// Starts coding a byte in the contexts `next` (from `ContextModels::next_contexts`).
    pub fn new(next: &NextContexts) -> ContextCursor {
        ContextCursor {
            hashes: next.hashes,
            base: [0; CONTEXTS],
            node: 1,
            located: [Located::default(), next.first],
        }
    }

    /// Locates the groups the nibble with partial byte `partial` would use and starts
    /// loading them (the loads are hints: no value changes). The codec calls it one bit ahead
    /// for both possible partial bytes.
    pub fn prefetch_nibble(&mut self, models: &ContextModels, partial: u32) {
        self.located[(partial & 1) as usize] = models.locate_nibble(&self.hashes, partial);
    }

    /// Picks each context's group for the nibble starting now, and returns where they are,
    /// for `ContextTable::learn_nibble`; `partial` is the byte's bits so far with a leading
    /// 1 (1 at the first nibble, 16..=31 at the second).
    pub fn start_nibble(&mut self, models: &ContextModels, partial: u32) -> Located {
        self.node = 1;
        let cached = self.located[(partial & 1) as usize];
        let located = if cached.partial == partial {
            cached
        } else {
            models.locate_nibble(&self.hashes, partial)
        };
        for i in 0..CONTEXTS {
            self.base[i] = models.found(&located, i).unwrap_or(models.unseen);
        }
        located
    }

    /// Each context's stretched prediction for the next bit.
    #[inline]
    pub fn predict(&self, models: &ContextModels, inputs: &mut [i32; CONTEXTS]) {
        for (x, &b) in inputs.iter_mut().zip(&self.base) {
            *x = stretch(counter::p12(models.slots[b + self.node]));
        }
    }

    /// How much the higher-order contexts have seen of the current node, as one of
    /// `CONFIDENCE_LEVELS`: the counts of orders 3, 4 and 6 and of the two word contexts,
    /// each as one of four levels (never seen, 1–2, 3–14, more). A mixer's weight set chosen
    /// by it learns how far to trust each context for what it has seen: on the files of
    /// `benches/layout` 0.4 % (URLs) to 1.7 % (a documentation text) smaller.
    #[inline]
    pub fn confidence(&self, models: &ContextModels) -> usize {
        CONFIDENT_CONTEXTS.iter().fold(0, |levels, &i| {
            let level = match counter::count(models.slots[self.base[i] + self.node]) {
                0 => 0,
                1..=2 => 1,
                3..=14 => 2,
                _ => 3,
            };
            levels << 2 | level
        })
    }

    /// Moves down the nibble's tree along the coded `bit`.
    #[inline]
    pub fn advance(&mut self, bit: u8) {
        self.node = 2 * self.node + usize::from(bit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The confidence `models` give the first bit of a byte whose contexts are `hashes`,
    /// and where that byte's first nibble stands.
    fn first_bit(models: &ContextModels, hashes: [u64; CONTEXTS]) -> (usize, Located) {
        let mut cursor = ContextCursor::new(&models.next_contexts(hashes));
        let located = cursor.start_nibble(models, 1);
        (cursor.confidence(models), located)
    }

    #[test]
    fn confidence_counts_what_the_contexts_have_seen() {
        let hashes = [1, 2, 3, 4, 5, 6, 7, 8].map(mix64);
        let mut m = ContextModels::new([4096; CONTEXTS]);
        assert_eq!(first_bit(&m, hashes).0, 0, "unseen");
        let mut seen = vec![];
        for _ in 0..20 {
            let (confidence, located) = first_bit(&m, hashes);
            seen.push(confidence);
            for mut table in m.tables_mut() {
                table.learn_nibble(&located, 0b1000);
            }
        }
        // Every context has seen the node as often: levels 1 (seen once or twice), 2 (3 to 14
        // times), 3 (more) in each of the five counted contexts.
        let all = |level: usize| (0..5).fold(0, |acc, _| acc << 2 | level);
        assert_eq!(seen[1], all(1));
        assert_eq!(seen[3], all(2));
        assert_eq!(seen[15], all(3));
        assert!(seen.iter().all(|&c| c < CONFIDENCE_LEVELS));
        // A context not counted (order 1) changes nothing.
        let mut other = hashes;
        other[context::ORDER_1] = mix64(99);
        assert_eq!(first_bit(&m, other).0, all(3));
    }

    #[test]
    fn each_context_has_a_table_of_its_own_size() {
        let sizes = [1024, 1 << 16, 4096, 4096, 4096, 4096, 4096, 8192];
        let m = ContextModels::new(sizes);
        let groups: Vec<usize> = m.tables.iter().map(|&(_, mask)| mask + 2).collect();
        assert_eq!(groups, [16, 1024, 64, 64, 64, 64, 64, 128]);
        // One after the other, without overlap, inside the allocation.
        for pair in m.tables.windows(2) {
            assert_eq!(pair[1].0, pair[0].0 + (pair[0].1 + 2) * GROUP);
        }
        assert_eq!(
            ContextModels::bytes(sizes),
            (groups.iter().sum::<usize>() * GROUP * 4) as u64
        );
        // Tiny tables still hold one pair of groups.
        assert_eq!(
            ContextModels::bytes([0; CONTEXTS]),
            (CONTEXTS * 2 * GROUP * 4) as u64
        );
    }
}
