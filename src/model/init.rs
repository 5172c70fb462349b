//! Initial weights, drawn from a seeded integer PRNG so every backend starts from the same bits.

use crate::fixed::{MASTER_FRAC, MASTER_LIMIT};
use crate::model::layout::{Shape, TensorRole};

/// splitmix64: a tiny, well-mixed 64-bit generator, identical on every platform (also the
/// seeded source of the crate's randomised tests). The field is the state; any seed is fine.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-limit, limit]` (multiply-shift, no modulo bias worth speaking of).
    fn symmetric(&mut self, limit: i64) -> i32 {
        let span = (2 * limit + 1) as u64;
        (((self.next() >> 32) * span) >> 32) as i64 as i32 - limit as i32
    }
}

/// Q24 master values of every tensor of `shape`, in `Shape::tensors` order.
///
/// Matrices are uniform in ±1/√inputs (the usual scale for a unit-variance output),
/// embeddings uniform in ±0.25, biases zero except the forget gate's, which starts at +1 so
/// that cells remember by default.
pub fn initial_weights(shape: &Shape, seed: u64) -> Vec<Vec<i32>> {
    let mut rng = SplitMix64(seed);
    let one = 1i64 << MASTER_FRAC;
    shape
        .tensors()
        .iter()
        .enumerate()
        .map(|(index, spec)| match spec.role {
            TensorRole::Matrix => {
                let limit = one / (spec.cols as u64).isqrt().max(1) as i64;
                (0..spec.values()).map(|_| rng.symmetric(limit)).collect()
            }
            TensorRole::Embedding => (0..spec.values()).map(|_| rng.symmetric(one / 4)).collect(),
            TensorRole::Bias if index < shape.head_tensor() => (0..spec.values())
                .map(|i| if i < shape.cells { one as i32 } else { 0 })
                .collect(),
            TensorRole::Bias => vec![0; spec.values()],
        })
        .map(|v: Vec<i32>| {
            v.into_iter()
                .map(|w| w.clamp(-MASTER_LIMIT, MASTER_LIMIT))
                .collect()
        })
        .collect()
}
