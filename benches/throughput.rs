//! Compression ratio and speed on real files, through the library.
//!
//! ```text
//! cargo bench --bench throughput                       # alice29.txt, book1, bible.txt
//! cargo bench --bench throughput -- FILE...            # chosen files
//! NNGPU_LEVEL=1 NNGPU_BACKEND=gpu NNGPU_BENCH_LIMIT=100000 cargo bench --bench throughput
//! NNGPU_STREAMS=1 cargo bench --bench throughput -- book1   # the CPU twin's fastest path
//! NNGPU_CPU_SCALAR=1 NNGPU_STREAMS=1 cargo bench --bench throughput -- book1   # its scalar path
//! ```
//!
//! Without file arguments it reads `alice29.txt`, `book1` and `bible.txt` from
//! `../shared/corpus` (or `NNGPU_CORPUS`), skipping missing files (and failing if none is left). For each file it compresses
//! and decompresses once, checks the round trip, and prints one line: sizes, bits per byte,
//! compression and decompression speed, the backend, and the `xz -9e` size from the corpus's
//! `BASELINES.md` when it lists the file (only for whole files, not for `NNGPU_BENCH_LIMIT`
//! prefixes). Settings: `NNGPU_LEVEL` (1..=9, default 5), `NNGPU_BACKEND` (auto, gpu or cpu;
//! default cpu), `NNGPU_ADAPTER` (part of a GPU adapter's name), `NNGPU_STREAMS` (streams
//! instead of the preset's choice), `NNGPU_BENCH_LIMIT` (bench only the first so many bytes of
//! each file). The backend column names the CPU twin's instruction path (`avx512`, `avx2`, or
//! `scalar` under `NNGPU_CPU_SCALAR=1`), so two runs show each path's KB/s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use nngpu::Options;
use nngpu::backend::BackendChoice;

/// Files benched when none is named.
const DEFAULT_FILES: [&str; 3] = ["alice29.txt", "book1", "bible.txt"];

struct Settings {
    options: Options,
    limit: Option<usize>,
}

/// `NAME` parsed as a number, if set.
fn env_number<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    env_var(name)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|e| format!("{name}={v}: {e}"))
        })
        .transpose()
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn settings() -> Result<Settings, String> {
    let level = match env_var("NNGPU_LEVEL") {
        None => 5,
        Some(v) => v
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| (1..=9).contains(l))
            .ok_or_else(|| format!("NNGPU_LEVEL={v}: expected 1..=9"))?,
    };
    let backend = match env_var("NNGPU_BACKEND").as_deref().map(str::trim) {
        None | Some("cpu") => BackendChoice::Cpu,
        Some("gpu") => BackendChoice::Gpu,
        Some("auto") => BackendChoice::Auto,
        Some(other) => return Err(format!("NNGPU_BACKEND={other}: expected auto, gpu or cpu")),
    };
    let limit = env_number::<usize>("NNGPU_BENCH_LIMIT")?;
    let streams = env_number::<u32>("NNGPU_STREAMS")?;
    Ok(Settings {
        options: Options {
            level,
            backend,
            adapter: env_var("NNGPU_ADAPTER"),
            streams,
            ..Options::default()
        },
        limit,
    })
}

fn corpus_dir() -> PathBuf {
    env_var("NNGPU_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    )
}

/// The `xz -9e` size of `name` from the corpus's `BASELINES.md` table, if it lists one.
fn xz_baseline(corpus: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(corpus.join("BASELINES.md")).ok()?;
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut lines = text.lines().filter(|l| l.trim_start().starts_with('|'));
    let header = cells(lines.next()?);
    let column = header.iter().position(|c| c == "xz -9e")?;
    lines
        .map(cells)
        .find(|row| row.first().is_some_and(|c| c == name))
        .and_then(|row| row.get(column)?.replace(',', "").parse().ok())
}

fn kb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds.max(1e-9) / 1000.0
}

/// Benches one file; `Ok(false)` if it was skipped.
fn bench(path: &Path, corpus: &Path, settings: &Settings) -> Result<bool, String> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) => {
            println!("{name:<14} skipped: cannot read {}: {e}", path.display());
            return Ok(false);
        }
    };
    let whole = settings.limit.is_none_or(|limit| limit >= data.len());
    if let Some(limit) = settings.limit {
        data.truncate(limit);
    }

    let started = Instant::now();
    let packed = nngpu::compress(&data, &settings.options)
        .map_err(|e| format!("{name}: compression failed: {e}"))?;
    let compress_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let unpacked = nngpu::decompress(&packed.bytes, &settings.options)
        .map_err(|e| format!("{name}: decompression failed: {e}"))?;
    let decompress_s = started.elapsed().as_secs_f64();
    if unpacked.bytes != data {
        return Err(format!("{name}: the round trip changed the data"));
    }

    let compressed = packed.bytes.len();
    let bpb = |size: u64| size as f64 * 8.0 / data.len().max(1) as f64;
    let xz = match xz_baseline(corpus, &name).filter(|_| whole) {
        Some(size) => format!("{size:>10} ({:.3})", bpb(size)),
        None => format!("{:>10}", "-"),
    };
    println!(
        "{name:<14} {:>10} {compressed:>10} {:>7.4} {:>9.1} {:>9.1}  {xz}  {}",
        data.len(),
        bpb(compressed as u64),
        kb_per_s(data.len(), compress_s),
        kb_per_s(data.len(), decompress_s),
        packed.backend,
    );
    Ok(true)
}

fn main() -> ExitCode {
    let settings = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("throughput: {e}");
            return ExitCode::FAILURE;
        }
    };
    let corpus = corpus_dir();
    // `cargo bench` passes `--bench` (and other flags) to harness-less benches: skip them.
    let named: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .collect();
    let files = if named.is_empty() {
        DEFAULT_FILES.iter().map(|f| corpus.join(f)).collect()
    } else {
        named
    };
    println!(
        "level {}, backend {}{}",
        settings.options.level,
        match settings.options.backend {
            BackendChoice::Auto => "auto",
            BackendChoice::Gpu => "gpu",
            BackendChoice::Cpu => "cpu",
        },
        settings
            .limit
            .map_or(String::new(), |l| format!(", first {l} bytes of each file")),
    );
    println!(
        "{:<14} {:>10} {:>10} {:>7} {:>9} {:>9}  {:>10} {:>7}  backend",
        "file", "bytes", "nngpu", "bpb", "comp KB/s", "dec KB/s", "xz -9e", "(bpb)"
    );
    let mut failed = false;
    let mut benched = 0;
    for file in &files {
        match bench(file, &corpus, &settings) {
            Ok(ran) => benched += usize::from(ran),
            Err(e) => {
                eprintln!("throughput: {e}");
                failed = true;
            }
        }
    }
    // A run that measured nothing is a failure, not a quiet success (a missing corpus would
    // otherwise pass in CI).
    if benched == 0 {
        eprintln!("throughput: no file could be read (set NNGPU_CORPUS or name files to bench)");
        failed = true;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
