//! Which instructions the CPU twin's kernels run on: chosen once, at run time, from the CPU's
//! features, or forced to the plain-Rust reference with `NNGPU_CPU_SCALAR=1`.
//!
//! Every path computes the same integers: the vector paths only reorder exact integer sums
//! (see `crate::fixed` for the bounds that make them exact) and evaluate the same formulas
//! lane by lane. `kernels::tests` checks each path the CPU supports against `Isa::Scalar` on
//! random and extreme inputs.

use std::sync::OnceLock;

/// The environment variable that forces the scalar reference path (any value but `0`).
pub const SCALAR_ENV: &str = "NNGPU_CPU_SCALAR";

/// An instruction set the kernels have a path for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust for the baseline target: the reference the other paths must match.
    Scalar,
    /// x86-64 AVX2: 256-bit multiply-adds for the matrix products; the Adam update is the
    /// scalar code compiled for AVX2 (AVX2 lacks the 64-bit shifts, multiplies and leading-zero
    /// counts an explicit version would need).
    Avx2,
    /// x86-64 AVX-512 (F, BW, DQ, CD, VL): every matrix product and the Adam update in
    /// explicit 512-bit code.
    Avx512,
}

impl Isa {
    /// The path the kernels use: the fastest one the CPU supports, or `Scalar` when
    /// `NNGPU_CPU_SCALAR` is set (to anything but `0` or nothing). Decided once per process.
    pub fn active() -> Isa {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let forced =
                std::env::var(SCALAR_ENV).is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
            if forced {
                Isa::Scalar
            } else {
                *Isa::supported().last().expect("Scalar is always supported")
            }
        })
    }

    /// Every path this CPU can run, slowest first (`Scalar` always).
    pub fn supported() -> Vec<Isa> {
        let mut out = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                out.push(Isa::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512dq")
                && std::is_x86_feature_detected!("avx512cd")
                && std::is_x86_feature_detected!("avx512vl")
            {
                out.push(Isa::Avx512);
            }
        }
        out
    }

    /// A short name for reports (`scalar`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Every vector path against the scalar reference, on raw integers.
#[cfg(test)]
mod tests {
    use super::Isa;
    use crate::backend::cpu::kernels::{Optimizer, RowPairs, adam_row, dot_rows};
    use crate::fixed::{GRAD_LIMIT, MASTER_LIMIT, ONE};
    use crate::model::init::SplitMix64;

    /// The crate's seeded splitmix64, with the draws these tests need.
    struct Rng(SplitMix64);
    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(SplitMix64(seed))
        }
        fn next(&mut self) -> u64 {
            self.0.next()
        }
        /// Uniform in `[-limit, limit]`.
        fn within(&mut self, limit: i64) -> i64 {
            (self.next() % (2 * limit as u64 + 1)) as i64 - limit
        }
        /// `±limit` or `[-limit, limit]` uniform, or a random magnitude of up to `limit`'s
        /// bits: extremes, typical values and small ones all show up.
        fn value(&mut self, limit: i64, extreme: bool) -> i64 {
            match (extreme, self.next() % 4) {
                (true, _) | (false, 0) => {
                    if self.next().is_multiple_of(2) {
                        limit
                    } else {
                        -limit
                    }
                }
                (false, 1) => {
                    let bits = (self.next() % 63) as u32;
                    self.within(limit >> bits)
                }
                _ => self.within(limit),
            }
        }
    }

    fn vector_paths() -> Vec<Isa> {
        Isa::supported()
            .into_iter()
            .filter(|&i| i != Isa::Scalar)
            .collect()
    }

    /// Column counts around every vector width and accumulation bound, and the presets'.
    const COLS: [usize; 14] = [1, 7, 8, 15, 16, 17, 31, 33, 96, 127, 129, 192, 257, 1100];

    #[test]
    fn dot_rows_matches_the_scalar_path() {
        let mut rng = Rng::new(1);
        for isa in vector_paths() {
            for &cols in &COLS {
                for extreme in [false, true] {
                    let rows = 1 + (rng.next() % 9) as usize;
                    let w: Vec<i16> = (0..rows * cols)
                        .map(|_| rng.value(32767, extreme) as i16)
                        .collect();
                    let x: Vec<i16> = (0..cols)
                        .map(|_| rng.value(ONE as i64, extreme) as i16)
                        .collect();
                    // All terms of one sign: the largest sums the contract allows.
                    let same: Vec<i16> = w.iter().map(|v| v.abs()).collect();
                    let pos: Vec<i16> = x.iter().map(|v| v.abs()).collect();
                    for (w, x) in [(&w, &x), (&same, &pos)] {
                        let (mut want, mut got) = (vec![0; rows], vec![0; rows]);
                        dot_rows(Isa::Scalar, w, x, &mut want);
                        dot_rows(isa, w, x, &mut got);
                        assert_eq!(got, want, "{isa:?}, {rows} × {cols}, extreme {extreme}");
                    }
                }
            }
        }
    }

    /// `RowPairs`' two combinations on every path against the scalar path, with rows and
    /// coefficients at random and at their bounds, all products of one sign included.
    fn check_row_pairs(seed: u64, row_limit: i64, activations: bool) {
        let mut rng = Rng::new(seed);
        for isa in vector_paths() {
            for &cols in &COLS {
                let shapes = [
                    (false, 20, 288),
                    (true, 20, 3),
                    (true, 33, 1),
                    (false, 1, 5),
                    (false, 0, 1),
                    (true, 3072, 1),
                ];
                for (extreme, n, stride) in shapes {
                    let c: Vec<i32> = (0..n * stride)
                        .map(|_| rng.value(GRAD_LIMIT as i64, extreme) as i32)
                        .collect();
                    let m: Vec<i16> = (0..n * cols)
                        .map(|_| rng.value(row_limit, extreme) as i16)
                        .collect();
                    let c_pos: Vec<i32> = c.iter().map(|v| v.abs()).collect();
                    let m_pos: Vec<i16> = m.iter().map(|v| v.abs()).collect();
                    for (c, m) in [(&c, &m), (&c_pos, &m_pos)] {
                        let (mut want, mut got) = (vec![0; cols], vec![7; cols]);
                        let (scalar, vector) = (
                            RowPairs::new(Isa::Scalar, m, n, cols),
                            RowPairs::new(isa, m, n, cols),
                        );
                        if activations {
                            scalar.combine_activations(c, stride, &mut want);
                            vector.combine_activations(c, stride, &mut got);
                        } else {
                            scalar.combine_weights(c, stride, &mut want);
                            vector.combine_weights(c, stride, &mut got);
                        }
                        assert_eq!(got, want, "{isa:?}, {n} × {cols}, stride {stride}");
                    }
                }
            }
        }
    }

    #[test]
    fn combining_weight_rows_matches_the_scalar_path() {
        check_row_pairs(2, 32767, false);
    }

    #[test]
    fn combining_activation_rows_matches_the_scalar_path() {
        check_row_pairs(4, ONE as i64, true);
    }

    #[test]
    fn adam_row_matches_the_scalar_path() {
        let mut rng = Rng::new(3);
        for isa in vector_paths() {
            for len in [1, 5, 8, 9, 96, 100, 1000] {
                for round in 0..40 {
                    let extreme = round % 4 == 3;
                    let opt = Optimizer {
                        lr_q24: if extreme {
                            u32::MAX as i64
                        } else {
                            (rng.next() % 200_000) as i64
                        },
                        beta2_shift: 4 + (rng.next() % 17) as u32,
                    };
                    // Window sums up to 2^61 (the contract's bound), a quarter of them 0.
                    let sums: Vec<i64> = (0..len)
                        .map(|_| {
                            if rng.next().is_multiple_of(4) {
                                0
                            } else {
                                rng.value(1 << 61, extreme)
                            }
                        })
                        .collect();
                    let v: Vec<u64> = (0..len)
                        .map(|_| match rng.next() % 4 {
                            0 => 0,
                            1 => 1 + rng.next() % 300,
                            _ => rng.next() >> (2 + rng.next() % 62),
                        })
                        .collect();
                    let w: Vec<i32> = (0..len)
                        .map(|_| rng.value(MASTER_LIMIT as i64, extreme) as i32)
                        .collect();
                    for with_forward in [true, false] {
                        let f_len = if with_forward { len } else { 0 };
                        let (mut v0, mut w0, mut f0) = (v.clone(), w.clone(), vec![0i16; f_len]);
                        let (mut v1, mut w1, mut f1) = (v.clone(), w.clone(), vec![1i16; f_len]);
                        adam_row(Isa::Scalar, &opt, &sums, &mut v0, &mut w0, &mut f0);
                        adam_row(isa, &opt, &sums, &mut v1, &mut w1, &mut f1);
                        let what = format!("{isa:?}, {len} weights, {opt:?}");
                        assert_eq!(v1, v0, "second moments, {what}");
                        assert_eq!(w1, w0, "weights, {what}");
                        assert_eq!(f1, f0, "forward copies, {what}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_scalar_path_is_always_there_and_comes_first() {
        assert_eq!(Isa::supported()[0], Isa::Scalar);
        assert!(Isa::supported().contains(&Isa::active()));
    }
}
