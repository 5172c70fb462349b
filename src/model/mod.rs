//! The model: its parameters, its tensors, their initial values, the presets that choose
//! them, and the learning-rate schedule. The arithmetic itself lives in the backends (`crate::backend::cpu::kernels` is the
//! reference).

pub mod init;
pub mod layout;
pub mod memory;
pub mod params;
pub mod presets;
pub mod schedule;
