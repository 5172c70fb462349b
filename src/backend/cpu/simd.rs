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
    /// x86-64 AVX2: 16-bit multiply-add for the forward products, the other kernels'
    /// plain Rust compiled for AVX2.
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
            let forced = std::env::var(SCALAR_ENV)
                .is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
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
