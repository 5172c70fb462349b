//! Command-line arguments (clap) and what each command does with files.
//!
//! Output is written to a temporary file beside its destination and renamed into place only
//! once complete, so an error never leaves a half-written file, and an existing file is never
//! replaced without `--force`. Inputs are never deleted.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use nngpu::backend::BackendChoice;
use nngpu::model::presets;
use nngpu::{Options, Outcome};

/// Suffix of compressed files.
const SUFFIX: &str = "nng";

#[derive(Parser)]
#[command(
    name = "nngpu",
    version,
    about = "Lossless compression with an LSTM trained while it codes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compress FILE (or standard input) to FILE.nng.
    Compress(CompressArgs),
    /// Decompress FILE.nng (or standard input) to FILE.
    Decompress(CommonArgs),
}

#[derive(Args)]
struct CompressArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    level: LevelFlags,
    /// Parallel streams instead of the preset's choice for the input size (1-65536): more
    /// run faster on a GPU, fewer compress better.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536))]
    streams: Option<u32>,
}

/// `-1` (fastest) … `-9` (strongest); the default is `-5`.
#[derive(Args)]
#[group(multiple = false)]
struct LevelFlags {
    /// Fastest preset: 1 layer of 32 cells.
    #[arg(short = '1')]
    l1: bool,
    #[arg(short = '2', hide = true)]
    l2: bool,
    #[arg(short = '3', hide = true)]
    l3: bool,
    #[arg(short = '4', hide = true)]
    l4: bool,
    /// Default preset: 2 layers of 96 cells, about 10 KB/s on a 2-core CPU.
    #[arg(short = '5')]
    l5: bool,
    #[arg(short = '6', hide = true)]
    l6: bool,
    #[arg(short = '7', hide = true)]
    l7: bool,
    #[arg(short = '8', hide = true)]
    l8: bool,
    /// Strongest preset: 4 layers of 352 cells (for GPUs).
    #[arg(short = '9')]
    l9: bool,
}

impl LevelFlags {
    fn level(&self) -> u8 {
        let flags = [
            self.l1, self.l2, self.l3, self.l4, self.l5, self.l6, self.l7, self.l8, self.l9,
        ];
        flags
            .iter()
            .position(|&f| f)
            .map_or(presets::DEFAULT_LEVEL, |i| i as u8 + 1)
    }
}

#[derive(Args)]
struct CommonArgs {
    /// Input file; standard input if absent or "-".
    file: Option<PathBuf>,
    /// Output file; "-" for standard output. Default: FILE.nng (compress) or FILE without
    /// .nng (decompress); standard output when reading standard input.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write to standard output.
    #[arg(short = 'c', long, conflicts_with = "output")]
    stdout: bool,
    /// Overwrite an existing output file.
    #[arg(short, long)]
    force: bool,
    /// Which backend runs the model.
    #[arg(long, value_enum, env = "NNGPU_BACKEND", default_value = "auto")]
    backend: BackendArg,
    /// Prefer the GPU adapter whose name contains this text.
    #[arg(long, env = "NNGPU_ADAPTER")]
    adapter: Option<String>,
    /// Print sizes, bits per byte, speed and the backend used.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Auto,
    Gpu,
    Cpu,
}

impl From<BackendArg> for BackendChoice {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Gpu => BackendChoice::Gpu,
            BackendArg::Cpu => BackendChoice::Cpu,
        }
    }
}

/// Where output goes.
enum Sink {
    Stdout,
    File(PathBuf),
}

/// Parses the command line and runs it.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Compress(args) => {
            let level = args.level.level();
            execute(&args.common, level, args.streams, true)
        }
        Command::Decompress(args) => execute(&args, presets::DEFAULT_LEVEL, None, false),
    }
}

fn execute(args: &CommonArgs, level: u8, streams: Option<u32>, compress: bool) -> Result<()> {
    let input_path = args.file.as_deref().filter(|p| *p != Path::new("-"));
    let sink = choose_sink(args, input_path, compress)?;
    if let Sink::File(out) = &sink {
        if out.exists() && !args.force {
            bail!(
                "{} already exists (use --force to overwrite)",
                out.display()
            );
        }
        if input_path.is_some_and(|p| same_file(p, out)) {
            bail!("input and output are the same file: {}", out.display());
        }
    }
    if compress && matches!(sink, Sink::Stdout) && io::stdout().is_terminal() {
        bail!("refusing to write compressed data to a terminal (use -o FILE or redirect)");
    }
    let input = read_input(input_path)?;
    let options = Options {
        level,
        backend: args.backend.into(),
        adapter: args.adapter.clone(),
        streams,
    };
    let started = Instant::now();
    let bar = progress_bar(if compress {
        input.len() as u64
    } else {
        original_len(&input)
    });
    let mut report = |done: u64| bar.set_position(done);
    let result = if compress {
        nngpu::compress_with_progress(&input, &options, &mut report)
    } else {
        nngpu::decompress_with_progress(&input, &options, &mut report)
    };
    bar.finish_and_clear();
    let outcome: Outcome = if compress {
        result?
    } else {
        result.with_context(|| match input_path {
            Some(p) => format!("cannot decompress {}", p.display()),
            None => "cannot decompress standard input".to_string(),
        })?
    };
    let seconds = started.elapsed().as_secs_f64();
    write_output(&sink, &outcome.bytes)?;
    if args.verbose {
        let (original, compressed) = if compress {
            (input.len(), outcome.bytes.len())
        } else {
            (outcome.bytes.len(), input.len())
        };
        let bits_per_byte = if original == 0 {
            0.0
        } else {
            compressed as f64 * 8.0 / original as f64
        };
        eprintln!(
            "{}: {original} -> {compressed} bytes, {bits_per_byte:.4} bits/byte, {:.1} KB/s, backend {}",
            input_path.map_or("stdin".into(), |p| p.display().to_string()),
            original as f64 / seconds.max(1e-9) / 1000.0,
            outcome.backend,
        );
    }
    Ok(())
}

/// A progress bar on standard error, drawn only when it is a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, {eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}

/// The original length an archive announces, for the progress bar (0 if it has no header).
fn original_len(archive: &[u8]) -> u64 {
    nngpu::format::FrameHeader::parse(archive).map_or(0, |h| h.original_len)
}

fn choose_sink(args: &CommonArgs, input: Option<&Path>, compress: bool) -> Result<Sink> {
    if args.stdout || args.output.as_deref() == Some(Path::new("-")) {
        return Ok(Sink::Stdout);
    }
    if let Some(out) = &args.output {
        return Ok(Sink::File(out.clone()));
    }
    let Some(input) = input else {
        return Ok(Sink::Stdout);
    };
    if compress {
        let mut name = input.as_os_str().to_owned();
        name.push(".");
        name.push(SUFFIX);
        Ok(Sink::File(name.into()))
    } else if input.extension().is_some_and(|e| e == SUFFIX) {
        Ok(Sink::File(input.with_extension("")))
    } else {
        bail!(
            "{} does not end in .{SUFFIX}: give the output name with -o",
            input.display()
        )
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn read_input(path: Option<&Path>) -> Result<Vec<u8>> {
    match path {
        Some(p) => fs::read(p).with_context(|| format!("cannot read {}", p.display())),
        None => {
            let mut data = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut data)
                .context("cannot read standard input")?;
            Ok(data)
        }
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place.
fn write_output(sink: &Sink, bytes: &[u8]) -> Result<()> {
    match sink {
        Sink::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
        Sink::File(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot create a file in {}", dir.display()))?;
            tmp.write_all(bytes)
                .and_then(|()| tmp.as_file().sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tmp.persist(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(())
        }
    }
}
