//! The CPU twin run in parts of steps (`Backend::forward` with a first stream) against the
//! same twin run in whole steps: the same tables and, after training, the same weights.

use super::CpuBackend;
use crate::backend::Backend;
use crate::model::init::SplitMix64;
use crate::model::params::ModelParams;

fn params(layers: u8, streams: u32, window: u16) -> ModelParams {
    ModelParams {
        layers,
        cells: 8,
        streams,
        window,
        learning_rate_q24: 200_000,
        beta2_shift: 6,
        seed: 11,
        mix_log2: 16,
        block_log2: 16,
        lstm_stride: 1,
    }
}

/// Steps `steps` steps of `params.streams` streams whose active prefix shrinks to one stream
/// near the end, training after every window, once in whole steps and once with each step
/// cut where `cuts(step, active)` says (a cut at 0 or at `active` leaves the step whole; two
/// cuts make three parts). Compares every table and the final weights.
fn split_agrees(params: ModelParams, steps: usize, cuts: impl Fn(usize, usize) -> Vec<usize>) {
    let mut whole = CpuBackend::new(&params);
    let mut split = CpuBackend::new(&params);
    let mut rng = SplitMix64(params.seed);
    let (streams, window) = (params.streams as usize, params.window as usize);
    let mut inputs = vec![0u8; streams];
    let mut targets = Vec::new();
    for t in 0..steps {
        let active = streams - (streams - 1) * t / (steps - 1);
        let want = whole.forward(0, &[&inputs[..active]]).unwrap().to_vec();
        let mut got = Vec::new();
        let mut first = 0;
        for end in cuts(t, active).into_iter().chain([active]) {
            if end > first {
                got.extend_from_slice(split.forward(first, &[&inputs[first..end]]).unwrap());
                first = end;
            }
        }
        assert!(want == got, "tables differ at step {t} ({active} streams)");
        for input in &mut inputs[..active] {
            *input = rng.next() as u8 % 5 + b'a';
        }
        targets.extend_from_slice(&inputs[..active]);
        if (t + 1) % window == 0 || t + 1 == steps {
            whole.train(&targets, params.learning_rate_q24).unwrap();
            split.train(&targets, params.learning_rate_q24).unwrap();
            targets.clear();
        }
    }
    assert_eq!(whole.master_weights(), split.master_weights());
}

#[test]
fn halves_agree_with_whole_steps() {
    split_agrees(params(2, 8, 4), 19, |_, active| vec![active.min(4)]);
}

#[test]
fn uneven_and_shifting_parts_agree_with_whole_steps() {
    // Halves of 7 streams (4 and 3), then cuts anywhere, three parts, and parts of one stream.
    split_agrees(params(1, 7, 5), 23, |_, active| vec![active.min(4)]);
    split_agrees(params(3, 7, 3), 17, |t, active| vec![(t % active).max(1)]);
    split_agrees(params(2, 7, 4), 15, |t, active| {
        vec![1, (t % 3 + 2).min(active)]
    });
}

#[test]
#[should_panic(expected = "where the step's streams end")]
fn a_part_must_continue_where_the_step_ends() {
    let mut twin = CpuBackend::new(&params(1, 4, 4));
    twin.forward(0, &[&[0, 0]]).unwrap();
    let _ = twin.forward(3, &[&[0]]);
}
