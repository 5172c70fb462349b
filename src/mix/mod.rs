//! The context-mixing stage: turns the LSTM's prediction of each byte into the probability of
//! each of its bits, mixes it with context models and a match model, refines the mix, and
//! codes the bit.
//!
//! Per bit: the LSTM's table gives P(bit = 1 | the byte's bits so far) (`lstm_bits`); hashed
//! order-1…6, word and sparse contexts (`context_model`) and the longest recent match
//! (`match_model`) give theirs; four logistic mixers with weight sets chosen by the partial
//! byte, the match state, the previous byte and the contexts' confidence blend them, a final
//! mixer chosen by the match state blends the four (`mixer`); three adaptive probability maps
//! (orders 0, 1 and 2) refine the result (`apm`); the arithmetic coder codes the bit; then
//! every part learns from it. All of it is integer arithmetic run in one fixed order by
//! encoder and decoder, on the CPU, whatever backend ran the LSTM: the archive's bits do not
//! depend on the backend, the thread count or the machine.
//!
//! One stage serves all streams of a frame (streams are segments of the input coded side by
//! side, a byte of each in turn): the context tables, the match model's position table, the
//! mixers and the APMs learn from every stream's bytes in the coding order, so many streams
//! cost little ratio. A stream keeps only what describes its own recent past: its last bytes
//! (`History`), the contexts of its next byte and its ring of bytes for the match model; one
//! context (order 2 with the stream's index, see `history`) learns what is local to it. The
//! tables' total size is fixed by the header (`ModelParams::mix_log2`); the stream count only
//! adds a small fixed part per stream.

mod apm;
mod context_model;
mod counter;
mod history;
mod logistic;
mod lstm_bits;
mod match_model;
mod mixer;
mod table;

use crate::coder::{BitCoder, CoderError};
use apm::Apm;
use context_model::{CONFIDENCE_LEVELS, ContextModels, NextContexts};
use history::{CONTEXTS, History, Segment, context};
use lstm_bits::LstmBits;
use match_model::{LENGTH_BUCKETS, MatchModel};
use mixer::{DecayingRate, Mixer, MixerRates};

/// Inputs of the first-layer mixers: the LSTM, each context, the match model and a bias.
const INPUTS: usize = 1 + CONTEXTS + 1 + 1;
/// The bias input: a constant 1.0 (Q8 log-odds) whose weight learns a per-set offset.
const BIAS: i32 = 256;
/// Initial weight of every first-layer input (Q16): about an even blend.
const INITIAL_WEIGHT: i32 = (1 << 16) / 4;
/// First-layer mixers: chosen by the partial byte, by match state × bit position, by the
/// previous byte with whether it is inside a markup tag (3 MB of HTML 0.2 % smaller), and by
/// how much the higher-order contexts have seen (`ContextModels::confidence`).
const MIXERS: usize = 4;
/// Weight sets of each first-layer mixer.
const MIXER_SETS: [usize; MIXERS] = [256, LENGTH_BUCKETS * 8, 512, CONFIDENCE_LEVELS];
/// Weight sets of the final mixer: chosen by match state × bit position, where the
/// first-layer mixers' worth differs most (`benches/layout` on the first 8 MB of the 40 MB
/// text, a URL list, HTML, book1 and world192.txt: 0.4–0.8 % smaller than one set).
const FINAL_SETS: usize = LENGTH_BUCKETS * 8;
/// Learning rates of the first-layer mixers and of the final mixer (units of 2^-12). A young
/// stage learns its blend fast; the rate then decays towards a floor that averages well
/// (measured with `benches/mixing` on six corpus files: 2.4 % smaller in all than constant
/// rates of 192 and 96; the decay gives small files back what the low floors cost them).
const MIXER_RATES: [DecayingRate; 2] = [
    DecayingRate {
        start: 128,
        floor: 32,
    },
    DecayingRate {
        start: 48,
        floor: 8,
    },
];

/// APM learning rates (shift).
const APM_RATE: u32 = 7;

/// How the `2^mix_log2` bytes are split between the parts.
#[derive(Clone, Copy, Debug)]
struct Split {
    context_tables: [usize; CONTEXTS],
    match_history: usize,
    match_table: usize,
    /// Contexts of the order-1 APM (a power of two); the order-2 APM has twice as many.
    apm_contexts: usize,
    streams: usize,
}

impl Split {
    fn of(mix_log2: u8, streams: u32) -> Split {
        let b = 1usize << mix_log2;
        Split {
            // Orders 2 to 6 and the two word contexts take 1/8 of the budget each; the
            // sparse context 1/16; order 1, whose few contexts fit a small table, 1/128; the
            // match model's history 1/16 (split between the streams) and its table 1/64; the
            // order-1 APM (66 bytes a context) about 1/32 and the order-2 APM twice that.
            context_tables: {
                let mut tables = [b / 8; CONTEXTS];
                tables[context::ORDER_1] = b / 128;
                tables[context::SPARSE] = b / 16;
                tables
            },
            match_history: b / 16,
            match_table: b / 64,
            apm_contexts: 1 << (b / 2048).clamp(256, 1 << 16).ilog2(),
            streams: streams.max(1) as usize,
        }
    }

    /// Contexts of the order-0, order-1 and order-2 APMs.
    fn apm_rows(&self) -> [usize; 3] {
        [256, self.apm_contexts, 2 * self.apm_contexts]
    }

    fn bytes(&self) -> u64 {
        ContextModels::bytes(self.context_tables)
            + MatchModel::bytes(self.match_history, self.match_table, self.streams)
            + self.apm_rows().map(Apm::bytes).iter().sum::<u64>()
            + MIXER_SETS.map(Mixer::<INPUTS>::bytes).iter().sum::<u64>()
            + Mixer::<MIXERS>::bytes(FINAL_SETS)
            + size_of::<Stream>() as u64 * self.streams as u64
    }
}

/// Bytes the stage allocates for `streams` streams and tables of `2^mix_log2` bytes: what a
/// decoder must be able to hold (the memory limit counts it).
pub fn state_bytes(mix_log2: u8, streams: u32) -> u64 {
    Split::of(mix_log2, streams).bytes()
}

/// What every bit of a byte is predicted in, fixed before its first bit: computed once a byte
/// instead of once a bit.
#[derive(Clone, Copy, Debug)]
struct ByteContext {
    /// The previous-byte mixer's weight set: the previous byte, with whether the stream is
    /// inside a markup tag above it.
    last_set: usize,
    /// The order-1 and order-2 APMs' row keys, to be joined with the partial byte: the
    /// previous byte, and a hash of the last two.
    apm_keys: [usize; 2],
}

impl ByteContext {
    /// The context of the byte that follows `history`.
    fn of(history: &History) -> ByteContext {
        let last2 = history.last8() as u16;
        let last = usize::from(last2 as u8);
        // The two bytes spread over the row's high bits by a multiplicative hash: the table is
        // usually smaller than the 2^24 rows an exact key would need. In u64, so that every
        // platform keeps the same low bits.
        let hashed = ((u64::from(last2) * 0x9E37_79B1) >> 8 << 8) as usize;
        ByteContext {
            last_set: last | usize::from(history.in_tag()) << 8,
            apm_keys: [last << 8, hashed],
        }
    }
}

/// What the stage keeps of one stream between two of its bytes (the match model keeps the
/// stream's ring).
#[derive(Clone, Debug)]
struct Stream {
    history: History,
    next: NextContexts,
    /// The segment the stream's bytes now belong to.
    segment: Segment,
}

/// The mixing stage of a frame, shared by its streams.
#[derive(Clone, Debug)]
pub struct MixingStage {
    streams: Vec<Stream>,
    contexts: ContextModels,
    matches: MatchModel,
    mixers: [Mixer<INPUTS>; MIXERS],
    last_layer: Mixer<MIXERS>,
    /// The APMs of orders 0, 1 and 2.
    apms: [Apm; 3],
    /// The order-1 and order-2 APMs' row masks (their contexts less 1).
    apm_masks: [usize; 2],
    inputs: [i32; INPUTS],
    mixed: [i32; MIXERS],
    /// The mixers' learning rates (first layer, final mixer), slowed for the block's width.
    rates: MixerRates<2>,
}

impl MixingStage {
    /// A fresh stage for `streams` streams (at least 1) with tables of `2^mix_log2` bytes
    /// (`state_bytes` gives what it holds).
    pub fn new(mix_log2: u8, streams: u32) -> MixingStage {
        let split = Split::of(mix_log2, streams);
        let contexts = ContextModels::new(split.context_tables);
        let streams = (0..split.streams)
            .map(|s| {
                let segment = Segment::new(s, 0);
                Stream {
                    history: History::default(),
                    next: contexts.next_contexts(History::default().hashes(segment)),
                    segment,
                }
            })
            .collect();
        MixingStage {
            streams,
            contexts,
            matches: MatchModel::new(split.match_history, split.match_table, split.streams),
            mixers: MIXER_SETS.map(|sets| Mixer::new(sets, INITIAL_WEIGHT)),
            last_layer: Mixer::new(FINAL_SETS, (1 << 16) / MIXERS as i32),
            apms: split.apm_rows().map(|rows| Apm::new(rows, APM_RATE)),
            apm_masks: [split.apm_rows()[1] - 1, split.apm_rows()[2] - 1],
            inputs: [0; INPUTS],
            mixed: [0; MIXERS],
            rates: MixerRates::new(MIXER_RATES),
        }
    }

    /// Codes the next byte of `stream` (below the stage's stream count) through `coder`, bit
    /// by bit from the top, and returns it. `table` is the LSTM's frequency table for this
    /// byte; `byte` is the byte to encode (a decoder passes anything: its coder ignores it).
    /// The result depends only on the bytes coded before, in their order, and the tables.
    pub fn code_byte(
        &mut self,
        stream: usize,
        table: &[u32; 256],
        byte: u8,
        coder: &mut impl BitCoder,
    ) -> Result<u8, CoderError> {
        let lstm = LstmBits::new(table);
        self.matches.start_byte(stream);
        let state = &mut self.streams[stream];
        self.contexts.start_byte(&state.next);
        let byte_context = ByteContext::of(&state.history);
        // The partial byte with a leading 1: 1, then 2..=3, … 128..=255.
        let mut partial = 1u32;
        for done in 0..8 {
            if done == 0 || done == 4 {
                self.contexts.start_nibble(partial);
            }
            if done == 3 {
                self.contexts.prefetch_nibble(partial << 1);
                self.contexts.prefetch_nibble(partial << 1 | 1);
            }
            let p = self.predict(done, partial, byte_context, lstm.p1(partial));
            let bit = coder.code((byte >> (7 - done)) & 1, p as u16)?;
            self.learn(done, bit);
            partial = (partial << 1) | u32::from(bit);
        }
        let byte = partial as u8;
        let state = &mut self.streams[stream];
        state.history.push(byte);
        self.matches.push(byte, state.history.last8());
        // The stream's next byte comes after every other stream's: locating its groups now
        // lets their loads overlap that work.
        state.next = self
            .contexts
            .next_contexts(state.history.hashes(state.segment));
        let keys = ByteContext::of(&state.history).apm_keys;
        self.prefetch_apm_rows(keys, 1);
        Ok(byte)
    }

    /// The order-1 and order-2 APMs' rows for the partial byte `partial` of a byte whose
    /// `ByteContext::apm_keys` are `keys`.
    #[inline(always)]
    fn apm_rows(&self, keys: [usize; 2], partial: u32) -> [usize; 2] {
        [0, 1].map(|i| (keys[i] | partial as usize) & self.apm_masks[i])
    }

    /// Starts loading the order-1 and order-2 APMs' rows for the partial byte `partial`.
    #[inline(always)]
    fn prefetch_apm_rows(&self, keys: [usize; 2], partial: u32) {
        let rows = self.apm_rows(keys, partial);
        self.apms[1].prefetch(rows[0]);
        self.apms[2].prefetch(rows[1]);
    }

    /// Forgets `stream`'s recent bytes and ends its running match, because its next byte starts
    /// a new segment of the input, which does not follow the bytes the stream coded last; the
    /// segment's block is coded in `block_streams` streams, which sets how fast the shared
    /// mixers learn from its bytes (`mixer::width_divisor_q8`).
    /// Their contexts and match would only mislead: on the first 16 MB of a documentation text
    /// at `-2` (512-byte segments in 256 streams from 4 MiB on) starting each segment afresh
    /// gave 2,958,428 bytes against 2,969,836, ending only the match 2,969,221. The stream's
    /// local order-2 context starts afresh too (`history`, `Segment`).
    pub fn start_segment(&mut self, stream: usize, block_streams: usize) {
        self.rates.set_width(block_streams);
        let state = &mut self.streams[stream];
        state.history = History::default();
        state.segment = state.segment.next();
        state.next = self
            .contexts
            .next_contexts(state.history.hashes(state.segment));
        self.matches.start_segment(stream);
    }

    /// The final 12-bit probability (1..=4095) that the next bit is 1, given the LSTM's
    /// (`lstm_p1`, 12-bit), for a bit of a byte coded in `byte_context`.
    fn predict(&mut self, done: u32, partial: u32, byte_context: ByteContext, lstm_p1: i32) -> i32 {
        let [lstm, contexts @ .., matched, bias] = &mut self.inputs;
        *lstm = logistic::stretch(lstm_p1);
        self.contexts.predict(contexts);
        *matched = self.matches.predict(done);
        *bias = BIAS;
        let match_bit = self.matches.state() * 8 + done as usize;
        let sets = [
            partial as usize,
            match_bit,
            byte_context.last_set,
            self.contexts.confidence(),
        ];
        for ((m, out), set) in self.mixers.iter_mut().zip(&mut self.mixed).zip(sets) {
            *out = m.mix(&self.inputs, set);
        }
        let p = logistic::squash(self.last_layer.mix(&self.mixed, match_bit));
        let [row1, row2] = self.apm_rows(byte_context.apm_keys, partial);
        let [order0, order1, order2] = &mut self.apms;
        let order0 = order0.refine(p, partial as usize);
        let order1 = order1.refine(p, row1);
        let order2 = order2.refine(p, row2);
        if done < 7 {
            self.prefetch_apm_rows(byte_context.apm_keys, partial << 1);
            self.prefetch_apm_rows(byte_context.apm_keys, partial << 1 | 1);
        }
        // Weights measured with `benches/layout` (against (p + order0 + 2·order1) / 4 without
        // the order-2 map: 0.3–0.5 % smaller on text and HTML, 0.1 % on URLs).
        ((p + order0 + 3 * order1 + 3 * order2 + 4) >> 3).clamp(1, logistic::PROB_ONE - 1)
    }

    /// Trains every part on the coded `bit`.
    fn learn(&mut self, done: u32, bit: u8) {
        let [first, last] = self.rates.next_bit();
        for m in &mut self.mixers {
            m.learn(&self.inputs, bit, first);
        }
        self.last_layer.learn(&self.mixed, bit, last);
        for apm in &mut self.apms {
            apm.learn(bit);
        }
        self.contexts.learn(bit);
        self.matches.learn(done, bit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coder::{BinaryDecoder, BinaryEncoder};
    use crate::model::init::SplitMix64;

    /// A valid LSTM table (entries ≥ 1, total 2^16) drawn at random, peaked or flat.
    fn random_table(rng: &mut SplitMix64) -> [u32; 256] {
        let mut t = [1u32; 256];
        let peak = (rng.next() % 256) as usize;
        let mut left = 65536 - 256;
        for _ in 0..4 {
            let i = if rng.next().is_multiple_of(2) {
                peak
            } else {
                (rng.next() % 256) as usize
            };
            let add = (rng.next() % (u64::from(left) + 1)) as u32;
            t[i] += add;
            left -= add;
        }
        t[peak] += left;
        t
    }

    /// Codes `data` cut into `streams` contiguous segments, a byte of each segment in turn as
    /// the codec does, through a fresh stage; then decodes it and checks that the decoder
    /// follows. Returns the coded size.
    fn round_trip(data: &[u8], tables: &[[u32; 256]], streams: usize) -> usize {
        let segment = data.len().div_ceil(streams);
        let order: Vec<(usize, usize)> = (0..segment)
            .flat_map(|t| (0..streams).map(move |s| (s, s * segment + t)))
            .filter(|&(_, at)| at < data.len())
            .collect();
        let mut stage = MixingStage::new(16, streams as u32);
        let mut enc = BinaryEncoder::new();
        for &(s, at) in &order {
            if at == s * segment {
                stage.start_segment(s, streams);
            }
            let got = stage.code_byte(s, &tables[at], data[at], &mut enc);
            assert_eq!(got, Ok(data[at]));
        }
        let coded = enc.finish();
        let mut stage = MixingStage::new(16, streams as u32);
        let mut dec = BinaryDecoder::new(&coded).unwrap();
        for &(s, at) in &order {
            if at == s * segment {
                stage.start_segment(s, streams);
            }
            assert_eq!(stage.code_byte(s, &tables[at], 0, &mut dec), Ok(data[at]));
        }
        dec.finish().unwrap();
        coded.len()
    }

    #[test]
    fn decoder_follows_encoder_under_random_tables() {
        let mut rng = SplitMix64(11);
        // Text-like with repeats (the match model engages), then random bytes.
        let mut data: Vec<u8> = b"the cat sat on the mat; the cat sat on the hat. ".repeat(40);
        data.extend((0..2000).map(|_| rng.next() as u8));
        let tables: Vec<[u32; 256]> = data.iter().map(|_| random_table(&mut rng)).collect();
        for streams in [1, 3, 16] {
            let coded = round_trip(&data, &tables, streams);
            // The repeated text costs far less than the random tail.
            assert!(coded < 2000 + 600, "{streams} streams: {coded} bytes");
        }
    }

    #[test]
    fn a_new_segment_codes_from_a_fresh_history() {
        let table = [256u32; 256];
        let mut stage = MixingStage::new(16, 2);
        let mut enc = BinaryEncoder::new();
        for &b in b"some words" {
            stage.code_byte(0, &table, b, &mut enc).unwrap();
        }
        let fresh = format!("{:?}", History::default());
        assert_ne!(format!("{:?}", stage.streams[0].history), fresh);
        stage.start_segment(0, 2);
        assert_eq!(format!("{:?}", stage.streams[0].history), fresh);
    }

    #[test]
    fn streams_learn_from_each_other() {
        // Eight streams of the same text: each one after the first finds it in the others.
        let mut rng = SplitMix64(5);
        let text: Vec<u8> = (0..1000).map(|_| b'a' + (rng.next() % 26) as u8).collect();
        let data = text.repeat(8);
        let flat = vec![[256u32; 256]; data.len()];
        let coded = round_trip(&data, &flat, 8);
        // One copy of random letters costs about 590 bytes; the seven others far less.
        assert!(coded < 1000, "{coded} bytes");
    }

    #[test]
    fn tables_stay_within_the_budget_plus_a_fixed_part_per_stream() {
        // Mixer weights and the smallest APMs take a fixed ~150 KiB; each stream a few
        // hundred bytes (its history, next contexts, match cursor and smallest ring); the rest
        // follows the budget.
        const FIXED: u64 = 192 << 10;
        const PER_STREAM: u64 = 512;
        for mix_log2 in 16..=30u8 {
            for streams in [1u32, 2, 3, 64, 1000, 65_536] {
                let need = state_bytes(mix_log2, streams);
                assert!(
                    need <= (1u64 << mix_log2) + FIXED + u64::from(streams) * PER_STREAM,
                    "2^{mix_log2} bytes, {streams} streams: {need}"
                );
            }
        }
        // The default preset's largest tables fit the 256 MiB the issue allows.
        assert!(state_bytes(28, 1) <= 256 << 20);
    }
}
