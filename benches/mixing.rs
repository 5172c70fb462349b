//! The context-mixing stage alone: its speed and what it compresses without the LSTM.
//!
//! ```text
//! cargo bench --bench mixing                 # every file in ../shared/corpus
//! cargo bench --bench mixing -- FILE...      # chosen files
//! ```
//!
//! Each file runs as one stream through `MixingStage` with a flat LSTM table (every byte
//! 1/256), so the figures are the stage's own: bits per byte of the context and match models
//! with the mixers and APMs, and MB/s of input on one core, encoding and then decoding (the
//! round trip is checked). The table budget is the default preset's for the file's size. The
//! issue's floor is 1 MB/s per core: the stage must never be what limits a GPU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use nngpu::coder::{BinaryDecoder, BinaryEncoder};
use nngpu::mix::MixingStage;
use nngpu::model::presets;

fn files() -> Vec<PathBuf> {
    let named: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(PathBuf::from)
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

fn main() -> ExitCode {
    let files = files();
    if files.is_empty() {
        eprintln!("no input files: name some, or set NNGPU_CORPUS to a folder of files");
        return ExitCode::FAILURE;
    }
    let flat = [256u32; 256];
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
        let start = Instant::now();
        let mut stage = MixingStage::new(params.mix_log2, 1);
        let mut enc = BinaryEncoder::new();
        for &b in &data {
            stage
                .code_byte(0, &flat, b, &mut enc)
                .expect("valid probabilities");
        }
        let coded = enc.finish();
        let enc_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut stage = MixingStage::new(params.mix_log2, 1);
        let mut dec = BinaryDecoder::new(&coded).expect("at least 4 bytes");
        let back: Vec<u8> = (0..data.len())
            .map(|_| stage.code_byte(0, &flat, 0, &mut dec).expect("decodes"))
            .collect();
        dec.finish().expect("ends at the flush");
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
