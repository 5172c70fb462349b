//! The CPU twin alone, without the coder and the mixing stage: how fast its LSTM runs and
//! trains on the instruction path this CPU picks.
//!
//! ```text
//! cargo bench --bench cpu_twin                        # the first 300 KB of book1, preset 5
//! NNGPU_CPU_SCALAR=1 cargo bench --bench cpu_twin     # the scalar reference path
//! cargo bench --bench cpu_twin -- FILE
//! ```
//!
//! It feeds the file through one stream of the preset's model as a decoder does (one step
//! per byte, a training step after every window) and prints the KB/s, the path, and a
//! checksum of every frequency table the model produced: two paths that agree on the
//! checksum computed the same bits. Settings: `NNGPU_LEVEL` (1..=9, default 5),
//! `NNGPU_BENCH_LIMIT` (bytes, default 300000), `NNGPU_CORPUS` (where book1 is found).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use nngpu::backend::Backend;
use nngpu::backend::cpu::CpuBackend;
use nngpu::backend::cpu::simd::Isa;
use nngpu::model::presets;
use xxhash_rust::xxh64::Xxh64;

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|e| format!("{name}={v}: {e}")),
        _ => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let level = env_number("NNGPU_LEVEL", 5)? as u8;
    let limit = env_number("NNGPU_BENCH_LIMIT", 300_000)? as usize;
    // `cargo bench` passes `--bench` (and other flags) to harness-less benches: skip them.
    let path = match std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        Some(file) => PathBuf::from(file),
        None => std::env::var("NNGPU_CORPUS")
            .map_or_else(
                |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
                PathBuf::from,
            )
            .join("book1"),
    };
    let mut data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    data.truncate(limit);
    let mut params = presets::params_for(level, Some(data.len() as u64));
    params.streams = 1;
    let mut backend = CpuBackend::new(&params);
    let window = params.window as usize;
    let mut hash = Xxh64::new(0);
    let started = Instant::now();
    let mut previous = 0u8;
    for chunk in data.chunks(window) {
        for &byte in chunk {
            let freqs = backend
                .forward(0, &[&[previous]])
                .map_err(|e| e.to_string())?;
            hash.update(bytemuck::cast_slice(freqs));
            previous = byte;
        }
        backend
            .train(chunk, params.learning_rate_q24)
            .map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}: {} bytes, level {level}, 1 stream, path {}: {:.1} KB/s, tables xxh64 {:016x}",
        path.display(),
        data.len(),
        Isa::active().name(),
        data.len() as f64 / seconds / 1000.0,
        hash.digest(),
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cpu_twin: {e}");
            ExitCode::FAILURE
        }
    }
}
