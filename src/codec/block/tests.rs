//! The decoder's halves against its one-step loop: the same `code` calls with the same tables,
//! the same weights after each block, and errors from either side that end the block cleanly.

use super::{BlockPlan, halves, run_ahead, run_step_by_step};
use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::error::Error;
use crate::fixed::SYMBOLS;
use crate::format::Segments;
use crate::model::params::ModelParams;

const PARAMS: ModelParams = ModelParams {
    layers: 2,
    cells: 8,
    streams: 9,
    window: 4,
    learning_rate_q24: 200_000,
    beta2_shift: 6,
    seed: 3,
    mix_log2: 16,
    block_log2: 16,
    lstm_stride: 1,
};

fn plan(len: usize, streams: u32) -> BlockPlan {
    BlockPlan {
        params: PARAMS,
        position: 0,
        len,
        streams,
        stride: 1,
    }
}

/// One `code` call: stream, offset, and a digest of the table it got.
type Call = (usize, usize, u64);

/// A stand-in for the range decoder of a block cut as `seg`: "decodes" symbols that depend on
/// their tables, so that a table computed from wrong inputs changes everything after it, and
/// records a call per byte.
fn fake_decoder(
    seg: Segments,
    calls: &mut Vec<Call>,
) -> impl FnMut(usize, usize, &[u32], &mut [u8]) -> Result<(), Error> + Send + '_ {
    move |step, first, tables, symbols| {
        for ((s, table), symbol) in (first..)
            .zip(tables.chunks_exact(SYMBOLS))
            .zip(symbols.iter_mut())
        {
            let digest = table
                .iter()
                .fold(0u64, |d, &f| d.rotate_left(5) ^ u64::from(f));
            calls.push((s, seg.offset(s, step), digest));
            *symbol = b'a' + (digest % 7) as u8;
        }
        Ok(())
    }
}

/// Blocks of `(bytes, streams)`: many steps with every stream active; the last stream short,
/// so the last steps lose a stream of the second half; fewer streams with bytes than the
/// block has (the second half shrinks to nothing); an odd split; two streams.
const BLOCKS: [(usize, u32); 5] = [(90, 9), (61, 5), (10, 7), (33, 3), (17, 2)];

#[test]
fn halves_make_the_same_calls_and_train_the_same_model() {
    let mut whole = CpuBackend::new(&PARAMS);
    let mut halved = CpuBackend::new(&PARAMS);
    for (len, streams) in BLOCKS {
        let (plan, seg) = (plan(len, streams), Segments::new(len, streams as usize));
        let (mut want, mut got) = (Vec::new(), Vec::new());
        run_step_by_step(
            &mut whole,
            &plan,
            &seg,
            &mut |_| {},
            fake_decoder(seg, &mut want),
        )
        .unwrap();
        halves::run_in_halves(
            &mut halved,
            &plan,
            &seg,
            &mut |_| {},
            fake_decoder(seg, &mut got),
        )
        .unwrap();
        assert_eq!(want.len(), len);
        assert!(
            want == got,
            "{len} bytes in {streams} streams: the calls differ"
        );
        assert_eq!(
            whole.master_weights(),
            halved.master_weights(),
            "{len} bytes in {streams} streams: the weights differ"
        );
    }
}

#[test]
fn a_failing_decoder_ends_the_block_with_its_error() {
    let (len, streams) = (90, 9);
    let seg = Segments::new(len, streams as usize);
    // The first call, one inside a window, and the last before a window's training.
    for fail_at in [0, 13, 4 * 9 - 1, len - 1] {
        let mut calls = 0;
        let failing = |_: usize, _: usize, _: &[u32], symbols: &mut [u8]| {
            for symbol in symbols {
                calls += 1;
                if calls > fail_at {
                    return Err(Error::CorruptPayload);
                }
                *symbol = b'x';
            }
            Ok(())
        };
        let mut twin = CpuBackend::new(&PARAMS);
        let result =
            halves::run_in_halves(&mut twin, &plan(len, streams), &seg, &mut |_| {}, failing);
        assert!(
            matches!(result, Err(Error::CorruptPayload)),
            "failing at {fail_at}: {result:?}"
        );
    }
}

/// The CPU twin, failing from its `fail_at`th `forward` call on.
struct FailingBackend {
    twin: CpuBackend,
    calls: usize,
    fail_at: usize,
}

impl Backend for FailingBackend {
    fn describe(&self) -> String {
        "failing".to_string()
    }

    fn forward(&mut self, first_stream: usize, steps: &[&[u8]]) -> Result<&[u32], Error> {
        self.calls += 1;
        if self.calls > self.fail_at {
            return Err(Error::Gpu("lost".to_string()));
        }
        self.twin.forward(first_stream, steps)
    }

    fn train(&mut self, targets: &[u8], learning_rate_q24: u32) -> Result<(), Error> {
        self.twin.train(targets, learning_rate_q24)
    }
}

#[test]
fn a_failing_model_ends_the_block_with_its_error() {
    let (len, streams) = (90, 9);
    let seg = Segments::new(len, streams as usize);
    for fail_at in [0, 1, 2, 7, 8, 9] {
        let mut backend = FailingBackend {
            twin: CpuBackend::new(&PARAMS),
            calls: 0,
            fail_at,
        };
        let mut calls = Vec::new();
        let result = halves::run_in_halves(
            &mut backend,
            &plan(len, streams),
            &seg,
            &mut |_| {},
            fake_decoder(seg, &mut calls),
        );
        assert!(
            matches!(result, Err(Error::Gpu(_))),
            "failing at {fail_at}: {result:?}"
        );
    }
}

/// One byte coded at a stride: its offset in the block, and a digest of the LSTM table it was
/// coded with (`None` for a run's bytes after its first, which the LSTM does not predict).
type StridedCall = (usize, Option<u64>);

/// A stand-in for the coder of `data` cut as `seg` at `stride`: gives every byte of each LSTM
/// step from `data`, where a decoder would decode it, and records a call per byte.
fn strided_coder<'a>(
    seg: Segments,
    stride: usize,
    data: &'a [u8],
    calls: &'a mut Vec<StridedCall>,
) -> impl FnMut(usize, usize, &[u32], &mut [u8]) -> Result<(), Error> + Send + 'a {
    move |step, first, tables, symbols| {
        let n = tables.len() / SYMBOLS;
        for (j, u) in seg.sub_steps(step, stride).enumerate() {
            for i in 0..n.min(seg.active(u).saturating_sub(first)) {
                let at = seg.offset(first + i, u);
                symbols[j * n + i] = data[at];
                let table = &tables[i * SYMBOLS..][..SYMBOLS];
                let digest = table
                    .iter()
                    .fold(0u64, |d, &f| d.rotate_left(5) ^ u64::from(f));
                calls.push((at, (j == 0).then_some(digest)));
            }
        }
        Ok(())
    }
}

#[test]
fn at_every_stride_the_encoder_and_the_decoder_run_the_same_model() {
    let data: Vec<u8> = (0..90u32).map(|i| b'a' + (i * 7 % 11) as u8).collect();
    for stride in 1..=4u8 {
        let params = ModelParams {
            lstm_stride: stride,
            ..PARAMS
        };
        let mut encoder = CpuBackend::new(&params);
        let mut decoder = CpuBackend::new(&params);
        for (len, streams) in BLOCKS {
            let plan = BlockPlan {
                params,
                stride,
                ..plan(len, streams)
            };
            let seg = plan.segments();
            let data = &data[..len];
            let (mut want, mut got) = (Vec::new(), Vec::new());
            let stride = usize::from(stride);
            run_ahead(
                &mut encoder,
                &plan,
                &seg,
                data,
                &mut |_| {},
                strided_coder(seg, stride, data, &mut want),
            )
            .unwrap();
            run_step_by_step(
                &mut decoder,
                &plan,
                &seg,
                &mut |_| {},
                strided_coder(seg, stride, data, &mut got),
            )
            .unwrap();
            let what = format!("{len} bytes in {streams} streams at stride {stride}");
            assert!(want == got, "{what}: the calls differ");
            let mut offsets: Vec<usize> = want.iter().map(|&(at, _)| at).collect();
            offsets.sort_unstable();
            assert_eq!(offsets, (0..len).collect::<Vec<_>>(), "{what}");
            let predicted = want.iter().filter(|(_, table)| table.is_some()).count();
            // One run of `stride` bytes (the last one shorter) per stream and LSTM step.
            let runs: usize = (0..streams as usize)
                .map(|s| (0..seg.steps()).filter(|&t| s < seg.active(t)).count())
                .map(|segment| segment.div_ceil(stride))
                .sum();
            assert_eq!(predicted, runs, "{what}: one LSTM table a run");
            assert_eq!(
                encoder.master_weights(),
                decoder.master_weights(),
                "{what}: the weights differ"
            );
        }
    }
}
