//! What each mode does with one input: compress, decompress, test or list it.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use nngpu::error::io_message;
use nngpu::format::listing::{Forward, Listing, learning_rate};
use nngpu::model::memory::describe_bytes;
use nngpu::{Options, Report};

use super::Problem;
use super::args::{Mode, OutputChoice, Settings};
use super::files::{self, Output, STDIN_NAME};

/// Where one input's output goes.
enum Sink {
    Stdout,
    File(std::path::PathBuf),
    /// `-t`: nowhere.
    Nowhere,
}

/// The library options the settings ask for.
fn options(settings: &Settings) -> Options {
    Options {
        level: settings.level,
        backend: settings.backend,
        adapter: settings.adapter.clone(),
        streams: settings.streams,
        stride: settings.stride,
        memory_limit: settings.memory_limit,
        frame_size: settings.frame_size,
        threads: settings.threads,
    }
}

/// Where the output of `input` goes, checked before any work: never compressed data onto a
/// terminal, never an existing file without `-f`, never the input itself.
fn choose_sink(settings: &Settings, input: Option<&Path>) -> Result<Sink, Problem> {
    let sink = match (&settings.output, input) {
        _ if settings.mode == Mode::Test => Sink::Nowhere,
        (OutputChoice::Stdout, _) | (OutputChoice::Derived, None) => Sink::Stdout,
        (OutputChoice::File(out), _) => Sink::File(out.clone()),
        (OutputChoice::Derived, Some(path)) => {
            Sink::File(files::derived_name(settings.mode, path, settings.force)?)
        }
    };
    match &sink {
        Sink::Stdout
            if settings.mode == Mode::Compress && !settings.force && io::stdout().is_terminal() =>
        {
            Err(Problem::Output(
                "(stdout)".into(),
                "compressed data is not written to a terminal (use -o FILE or redirect)".into(),
            ))
        }
        Sink::File(out) if input.is_some_and(|p| files::same_file(p, out)) => Err(Problem::Error(
            format!("is also the output {}", out.display()),
        )),
        Sink::File(out) if !settings.force && out.symlink_metadata().is_ok() => Err(
            Problem::Output(out.clone(), "already exists (use -f to overwrite)".into()),
        ),
        _ => Ok(sink),
    }
}

/// A progress bar on standard error, drawn only when it is a terminal and not hidden by -q:
/// against `total` original bytes when known in advance, else bytes and speed alone.
fn progress_bar(total: Option<u64>, settings: &Settings) -> ProgressBar {
    if settings.verbosity < 1 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, {eta} left"
    } else {
        "{spinner} {binary_bytes} {binary_bytes_per_sec}, {elapsed}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    if total.is_none() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}

/// The problem a failed run is: a write error is the output's, a broken pipe ends the run.
fn problem(err: nngpu::Error, sink: &Sink) -> Problem {
    match (err, sink) {
        (nngpu::Error::Write(e), Sink::Stdout) => Problem::from_stdout(e),
        (err @ nngpu::Error::Write(_), Sink::File(out)) => {
            Problem::Output(out.clone(), err.to_string())
        }
        (err, _) => Problem::Error(err.to_string()),
    }
}

/// Compresses, decompresses or tests one input (`None`: standard input), streaming it from
/// the input to the output as it is coded.
pub fn code(settings: &Settings, input: Option<&Path>) -> Result<(), Problem> {
    files::refuse_terminal_input(input, settings.mode, settings.force)?;
    let sink = choose_sink(settings, input)?;
    let opened = input.map(files::open_input).transpose()?;
    let mut output = match &sink {
        Sink::File(out) => Some(Output::create(out, settings.force).map_err(|p| p.about(out))?),
        Sink::Stdout | Sink::Nowhere => None,
    };
    let size_hint = opened.as_ref().map(|(_, meta)| meta.len());
    let started = Instant::now();
    let report = match &opened {
        Some((file, _)) => run(
            settings,
            &sink,
            &mut BufReader::new(file),
            size_hint,
            &mut output,
        ),
        None => run(settings, &sink, &mut io::stdin().lock(), None, &mut output),
    }?;
    let seconds = started.elapsed().as_secs_f64();
    if let (Some(output), Sink::File(out)) = (output, &sink) {
        let like = opened.as_ref().map(|(_, meta)| meta);
        output.finish(like).map_err(|p| p.about(out))?;
    }
    if settings.verbosity >= 2 {
        summary(settings, input, &sink, &report, seconds);
    }
    if let (true, Some(path), Sink::File(_)) = (settings.remove_input, input, &sink) {
        std::fs::remove_file(path)
            .map_err(|e| Problem::Error(format!("cannot remove: {}", io_message(&e))))?;
    }
    Ok(())
}

/// Runs the coder from `reader` (of `size_hint` bytes, if it is a file) to the sink (`output`
/// when it is a file), with a progress bar: against the input's length when compressing a
/// file; otherwise the original size is not known until the end.
fn run(
    settings: &Settings,
    sink: &Sink,
    reader: &mut dyn Read,
    size_hint: Option<u64>,
    output: &mut Option<Output>,
) -> Result<Report, Problem> {
    let mut stdout;
    let mut nowhere = io::sink();
    let writer: &mut dyn Write = match (output, sink) {
        (Some(output), _) => output.writer(),
        (None, Sink::Stdout) => {
            stdout = BufWriter::with_capacity(STDOUT_BUFFER, io::stdout().lock());
            &mut stdout
        }
        (None, _) => &mut nowhere,
    };
    let options = options(settings);
    let compress = settings.mode == Mode::Compress;
    let bar = progress_bar(if compress { size_hint } else { None }, settings);
    let mut progress = |done: u64| bar.set_position(done);
    let result = if compress {
        nngpu::compress_stream(reader, writer, size_hint, &options, &mut progress)
    } else {
        nngpu::decompress_stream(reader, writer, &options, &mut progress)
    };
    bar.finish_and_clear();
    let report = result.map_err(|e| problem(e, sink))?;
    writer
        .flush()
        .map_err(|e| problem(nngpu::Error::Write(e), sink))?;
    Ok(report)
}

/// Bytes gathered before a write to standard output (which is line-buffered by itself).
const STDOUT_BUFFER: usize = 1 << 16;

/// `-v`: sizes, bits per byte, speed and backend of one run; `-vv` the model too, when the
/// archive is a file to list.
fn summary(settings: &Settings, input: Option<&Path>, sink: &Sink, report: &Report, seconds: f64) {
    let name = input.map_or(STDIN_NAME.into(), |p| p.display().to_string());
    let (original, compressed) = (report.original_bytes, report.archive_bytes);
    let bits_per_byte = if original == 0 {
        0.0
    } else {
        compressed as f64 * 8.0 / original as f64
    };
    let verdict = if settings.mode == Mode::Test {
        "OK, "
    } else {
        ""
    };
    eprintln!(
        "{name}: {verdict}{original} -> {compressed} bytes, {bits_per_byte:.4} bits/byte, {:.1} KB/s, backend {}",
        original as f64 / seconds.max(1e-9) / 1000.0,
        report.backend,
    );
    if settings.verbosity >= 3 {
        let archive = match (settings.mode, sink) {
            (Mode::Compress, Sink::File(out)) => Some(out.as_path()),
            (Mode::Compress, _) => None,
            _ => input,
        };
        let listing = archive.and_then(|path| Listing::read(&mut File::open(path).ok()?).ok());
        if let Some(listing) = listing {
            eprint!("{}", details(&listing));
        }
    }
}

/// Lists one archive: a table row (after the header row for the first input), the details
/// with -v, or one JSON line with --json.
pub fn list(settings: &Settings, input: Option<&Path>, first: bool) -> Result<(), Problem> {
    files::refuse_terminal_input(input, Mode::List, settings.force)?;
    // Only the headers are read: a file's payloads are skipped with seeks.
    let listing = match input {
        Some(path) => Listing::read(&mut files::open_input(path)?.0),
        None => Listing::read(&mut Forward(io::stdin().lock())),
    }
    .map_err(|e| Problem::Error(e.to_string()))?;
    let name = input.map_or(STDIN_NAME.into(), |p| p.display().to_string());
    let text = if settings.json {
        format!("{}\n", listing.to_json(&name))
    } else if settings.verbosity >= 2 {
        format!("{name}\n{}", details(&listing))
    } else {
        let header = format!(
            "{:>6} {:>6} {:>12} {:>12} {:>7} {:>9}  {:<16} {:>10}  file\n",
            "frames", "blocks", "compressed", "original", "ratio", "bits/byte", "model", "memory"
        );
        format!(
            "{}{}\n",
            if first { header } else { String::new() },
            row(&listing, &name)
        )
    };
    files::write_stdout(text.as_bytes()).map_err(Problem::from_stdout)
}

/// One table row of `-l`.
fn row(listing: &Listing, name: &str) -> String {
    let blocks: usize = listing.frames.iter().map(|f| f.blocks.len()).sum();
    let model = listing.frames.first().map_or(String::new(), |f| {
        let p = &f.header.params;
        format!(
            "-{} {}x{} s{}",
            f.header.preset, p.layers, p.cells, p.streams
        )
    });
    let memory = listing.memory().total() as f64 / (1u64 << 20) as f64;
    format!(
        "{:>6} {:>6} {:>12} {:>12} {:>7} {:>9}  {model:<16} {:>6.1} MiB  {name}",
        listing.frames.len(),
        blocks,
        listing.archive_bytes,
        listing.original_bytes(),
        listing.ratio().map_or("-".into(), |r| format!("{r:.3}")),
        listing
            .bits_per_byte()
            .map_or("-".into(), |b| format!("{b:.4}")),
        memory,
    )
}

/// `-lv` (and `-vv`): everything the header says, frame by frame.
fn details(listing: &Listing) -> String {
    let mut out = format!(
        "  format version   {}\n  archive          {} bytes\n  original         {} bytes\n  \
         ratio            {}\n  bits/byte        {}\n  decoder memory   {}\n",
        nngpu::format::FORMAT_VERSION,
        listing.archive_bytes,
        listing.original_bytes(),
        listing.ratio().map_or("-".into(), |r| format!("{r:.4}")),
        listing
            .bits_per_byte()
            .map_or("-".into(), |b| format!("{b:.4}")),
        describe_bytes(listing.memory().total()),
    );
    for (i, frame) in listing.frames.iter().enumerate() {
        let h = &frame.header;
        let p = &h.params;
        let parts: Vec<String> = frame
            .memory()
            .parts()
            .iter()
            .map(|(name, bytes)| format!("{name} {}", describe_bytes(*bytes)))
            .collect();
        out.push_str(&format!(
            "  frame {i}: offset {}, {} bytes, preset -{}\n    model          {} layers x {} \
             cells, window {}, LSTM stride up to {}, learning rate {} (Q24 {}), beta2 shift {}, \
             seed {:#x}, \
             mixing tables {}\n    checksum       xxh64 {:016x}\n    memory         {}\n",
            frame.offset,
            frame.bytes,
            h.preset,
            p.layers,
            p.cells,
            p.window,
            p.lstm_stride,
            learning_rate(p.learning_rate_q24),
            p.learning_rate_q24,
            p.beta2_shift,
            p.seed,
            describe_bytes(1 << p.mix_log2),
            frame.content_hash,
            parts.join(", "),
        ));
        for (j, b) in frame.blocks.iter().enumerate() {
            let stored = match b.coders() {
                0 => format!("stored raw in {} bytes", b.coded_bytes),
                1 => format!("coded in {} bytes", b.coded_bytes),
                n => format!("coded in {} bytes by {n} coders", b.coded_bytes),
            };
            let stride = match b.stride {
                1 => String::new(),
                k => format!(", the LSTM on every {k}th byte of each"),
            };
            out.push_str(&format!(
                "    block {j}        {} bytes {stored}, {} streams{stride}\n",
                b.original_bytes, b.streams
            ));
        }
    }
    out
}
