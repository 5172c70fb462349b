//! The context-mixing stage alone: its speed and what it compresses without the LSTM.
//!
//! ```text
//! cargo bench --bench mixing                       # every file in ../shared/corpus
//! cargo bench --bench mixing -- FILE...            # chosen files
//! cargo bench --bench mixing -- FILE --streams 256 --threads 4
//! ```
//!
//! Each file runs through `MixingStage` with a flat LSTM table (every byte 1/256), so the
//! figures are the stage's own: bits per byte of the context and match models with the mixers
//! and APMs, and MB/s of input, encoding and then decoding (the round trip is checked). The
//! table budget is the default preset's for the file's size. By default the file is one
//! stream on one core; `--streams N` cuts it into N segments coded side by side in one
//! block, with the block's coders (`format::Coders`) each on a thread of a pool of
//! `--threads` (default: one per core), which is how a frame's stage uses a GPU host's cores.
//! The issue's floor is 1 MB/s per core: the stage must never be what limits a GPU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use nngpu::coder::{BinaryDecoder, BinaryEncoder, BitCoder};
use nngpu::format::{Coders, Segments};
use nngpu::mix::MixingStage;
use nngpu::model::presets;

fn files() -> Vec<PathBuf> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let named: Vec<PathBuf> = args
        .iter()
        .enumerate()
        .filter(|&(i, a)| {
            !a.starts_with('-')
                && (i == 0 || !matches!(args[i - 1].as_str(), "--streams" | "--threads"))
        })
        .map(|(_, a)| PathBuf::from(a))
        .collect();
    if !named.is_empty() {
        return named;
    }
    let dir = std::env::var("NNGPU_CORPUS").unwrap_or_else(|_| "../shared/corpus".into());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.retain(|p| p.is_file() && !p.extension().is_some_and(|e| e == "md" || e == "sh"));
    found.sort();
    found
}

/// The number after `flag` on the command line, if given.
fn option(flag: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == flag)?;
    match args.get(at + 1).and_then(|v| v.parse().ok()) {
        Some(n) if n > 0 => Some(n),
        _ => {
            eprintln!("{flag} needs a positive number");
            std::process::exit(2);
        }
    }
}

/// Codes `data` cut into the segments of one block through `stage`, a step at a time, with
/// `coders` (one per `Coders` group); returns the bytes coded.
fn code_block<C: BitCoder + Send>(
    stage: &mut MixingStage,
    data: &[u8],
    segments: Segments,
    coders: &mut [C],
) -> Vec<u8> {
    let flat = vec![256u32; 256 * segments.streams()];
    let groups = Coders::new(segments.streams());
    let mut out = vec![0; data.len()];
    let mut symbols = vec![0; segments.streams()];
    stage.start_block(segments.streams());
    for t in 0..segments.steps() {
        let active = segments.active(t);
        for (s, symbol) in symbols[..active].iter_mut().enumerate() {
            if t == 0 {
                stage.start_segment(s);
            }
            *symbol = data[segments.offset(s, t)];
        }
        stage
            .code_streams(
                0,
                &flat[..256 * active],
                &mut symbols[..active],
                coders,
                |s| groups.of(s),
            )
            .expect("valid probabilities");
        stage.end_step();
        for (s, &symbol) in symbols[..active].iter().enumerate() {
            out[segments.offset(s, t)] = symbol;
        }
    }
    out
}

fn main() -> ExitCode {
    let files = files();
    if files.is_empty() {
        eprintln!("no input files: name some, or set NNGPU_CORPUS to a folder of files");
        return ExitCode::FAILURE;
    }
    let streams = option("--streams").unwrap_or(1);
    if let Some(threads) = option("--threads") {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .expect("the pool is built once");
    }
    println!(
        "{streams} streams, {} threads",
        rayon::current_num_threads()
    );
    println!(
        "{:<16} {:>10} {:>10} {:>9} {:>10} {:>10}",
        "file", "bytes", "coded", "bits/B", "enc MB/s", "dec MB/s"
    );
    for path in files {
        let Ok(data) = std::fs::read(&path) else {
            eprintln!("{}: cannot read", path.display());
            return ExitCode::FAILURE;
        };
        let params = presets::params_for(presets::DEFAULT_LEVEL, Some(data.len() as u64));
        let segments = Segments::new(data.len().max(1), streams.min(data.len().max(1)));
        let count = Coders::new(segments.streams()).count();
        let start = Instant::now();
        let mut stage = MixingStage::new(params.mix_log2, segments.streams() as u32);
        let mut encoders = vec![BinaryEncoder::new(); count];
        code_block(&mut stage, &data, segments, &mut encoders);
        let parts: Vec<Vec<u8>> = encoders.into_iter().map(BinaryEncoder::finish).collect();
        let coded = Coders::new(segments.streams()).join(&parts);
        let enc_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut stage = MixingStage::new(params.mix_log2, segments.streams() as u32);
        let mut decoders: Vec<BinaryDecoder> = parts
            .iter()
            .map(|p| BinaryDecoder::new(p).expect("at least 4 bytes"))
            .collect();
        let back = code_block(&mut stage, &data, segments, &mut decoders);
        for d in decoders {
            d.finish().expect("ends at the flush");
        }
        let dec_s = start.elapsed().as_secs_f64();
        assert!(back == data, "{}: round trip failed", path.display());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mb = data.len() as f64 / 1e6;
        println!(
            "{:<16} {:>10} {:>10} {:>9.4} {:>10.2} {:>10.2}",
            name,
            data.len(),
            coded.len(),
            coded.len() as f64 * 8.0 / data.len().max(1) as f64,
            mb / enc_s,
            mb / dec_s
        );
    }
    ExitCode::SUCCESS
}
