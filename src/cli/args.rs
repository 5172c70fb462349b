//! The command line: clap's description of every flag, and what the flags mean together
//! (the mode, the level, the verbosity), with zstd's and xz's habits: the last mode and the
//! last level given win, `nngpu FILE` compresses, and the subcommands `compress`,
//! `decompress`, `test` and `list` are spellings of `-z`, `-d`, `-t` and `-l`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

use nngpu::backend::BackendChoice;
use nngpu::model::memory::DEFAULT_MEMORY_LIMIT;
use nngpu::model::presets;

/// What a run does with each input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Compress to `FILE.nng`.
    Compress,
    /// Decompress `FILE.nng` to `FILE`.
    Decompress,
    /// Decode and verify, write nothing.
    Test,
    /// Describe the archive without decoding it.
    List,
}

impl Mode {
    /// Whether this mode reads compressed data (which is never read from a terminal).
    pub fn reads_archives(self) -> bool {
        self != Mode::Compress
    }
}

/// Subcommand spellings of the mode flags.
const SUBCOMMANDS: [(&str, &str); 4] = [
    ("compress", "--compress"),
    ("decompress", "--decompress"),
    ("test", "--test"),
    ("list", "--list"),
];

#[derive(Parser, Debug)]
#[command(
    name = "nngpu",
    version,
    about = "Lossless compression with an LSTM trained while it codes",
    override_usage = "nngpu [-z|-d|-t|-l] [OPTIONS] [FILE]...\n       \
                      nngpu compress|decompress|test|list [OPTIONS] [FILE]...",
    after_help = "With no FILE, or when FILE is -, read standard input and write standard \
                  output. Exit status: 0 success, 1 error, 2 warning (a file was skipped).",
    args_override_self = true
)]
struct Cli {
    /// Compress (the default).
    #[arg(short = 'z', long, overrides_with_all = ["decompress", "test", "list"])]
    compress: bool,
    /// Decompress FILE.nng to FILE.
    #[arg(short = 'd', long, visible_alias = "uncompress",
          overrides_with_all = ["compress", "test", "list"])]
    decompress: bool,
    /// Test: decode and verify each archive, write nothing.
    #[arg(short = 't', long, overrides_with_all = ["compress", "decompress", "list"])]
    test: bool,
    /// List: format, model, sizes, ratio and memory of each archive, without decoding it.
    #[arg(short = 'l', long, overrides_with_all = ["compress", "decompress", "test"])]
    list: bool,
    /// With -l: one JSON object per archive, one per line.
    #[arg(long)]
    json: bool,

    /// Input files; standard input if none or "-".
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output file ("-" for standard output); only with a single input.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Write to standard output (several inputs: one archive after the other, which decode
    /// to the inputs joined).
    #[arg(short = 'c', long, visible_alias = "to-stdout")]
    stdout: bool,
    /// Overwrite existing outputs; compress files already ending in .nng; read a terminal.
    #[arg(short, long)]
    force: bool,
    /// Keep input files (the default).
    #[arg(short, long, overrides_with = "rm")]
    keep: bool,
    /// Delete each input once its output is complete, flushed and renamed into place.
    #[arg(long, overrides_with = "keep")]
    rm: bool,
    /// Fewer messages: -q hides warnings and the progress bar, -qq errors too.
    #[arg(short, long, action = ArgAction::Count)]
    quiet: u8,
    /// More messages: -v sizes, ratio and speed per file, -vv the model and backend too.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,

    #[command(flatten)]
    level: LevelFlags,
    /// Parallel streams instead of the preset's choice (compression; 1-65536): more run
    /// faster on a GPU, fewer compress better.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536))]
    streams: Option<u32>,
    /// Bytes of each stream per LSTM step (compression; 1-16): the LSTM predicts every Nth
    /// byte of each stream, the context mixing the rest; larger run faster, compress a little
    /// less. With --streams, every block's; otherwise the most the schedule reaches
    /// [default: the preset's: 8 at -1 and -2, else 1; 1 with --streams]
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=16))]
    stride: Option<u8>,
    /// Most model state to allocate, e.g. 512M, 2GiB; 0 or max for no limit [default: 1GiB].
    #[arg(short = 'M', long, visible_alias = "memlimit", value_name = "SIZE",
          value_parser = parse_size)]
    memory_limit: Option<u64>,
    /// Cut each input into independent frames of SIZE bytes (at least 64K; 0 or max: one
    /// frame), e.g. 64M. Frames cost some ratio, and their archives can be split and joined.
    #[arg(long, value_name = "SIZE", value_parser = parse_frame_size)]
    frame_size: Option<u64>,
    /// Use at most N threads (0: one per core); the archive does not depend on it.
    #[arg(short = 'T', long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Which backend runs the model.
    #[arg(long, value_enum, env = "NNGPU_BACKEND", default_value = "auto")]
    backend: BackendArg,
    /// Use the GPU adapter whose name (or driver) contains this text, e.g. lavapipe.
    #[arg(long, env = "NNGPU_ADAPTER")]
    adapter: Option<String>,
}

/// `-1` (fastest) … `-9` (strongest); the last one given wins; the default is `-5`.
#[derive(clap::Args, Debug)]
struct LevelFlags {
    /// Fastest preset: 1 layer of 32 cells.
    #[arg(short = '1', overrides_with_all = ["l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9"])]
    l1: bool,
    #[arg(short = '2', hide = true, overrides_with_all = ["l1", "l3", "l4", "l5", "l6", "l7", "l8", "l9"])]
    l2: bool,
    #[arg(short = '3', hide = true, overrides_with_all = ["l1", "l2", "l4", "l5", "l6", "l7", "l8", "l9"])]
    l3: bool,
    #[arg(short = '4', hide = true, overrides_with_all = ["l1", "l2", "l3", "l5", "l6", "l7", "l8", "l9"])]
    l4: bool,
    /// Default preset: 2 layers of 96 cells, about 10 KB/s on a 2-core CPU.
    #[arg(short = '5', overrides_with_all = ["l1", "l2", "l3", "l4", "l6", "l7", "l8", "l9"])]
    l5: bool,
    #[arg(short = '6', hide = true, overrides_with_all = ["l1", "l2", "l3", "l4", "l5", "l7", "l8", "l9"])]
    l6: bool,
    #[arg(short = '7', hide = true, overrides_with_all = ["l1", "l2", "l3", "l4", "l5", "l6", "l8", "l9"])]
    l7: bool,
    #[arg(short = '8', hide = true, overrides_with_all = ["l1", "l2", "l3", "l4", "l5", "l6", "l7", "l9"])]
    l8: bool,
    /// Strongest preset: 4 layers of 352 cells (for GPUs).
    #[arg(short = '9', overrides_with_all = ["l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8"])]
    l9: bool,
}

impl LevelFlags {
    /// The level given last (clap has unset the earlier ones), or the default.
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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Auto,
    Gpu,
    Cpu,
}

/// Where standard output or a named file receives the results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputChoice {
    /// Derived from each input's name (`FILE.nng`, `FILE`), or standard output for stdin.
    Derived,
    /// Standard output, for every input.
    Stdout,
    /// This file (one input only).
    File(PathBuf),
}

/// The parsed command line, with every flag's meaning resolved.
#[derive(Debug)]
pub struct Settings {
    /// What to do with each input.
    pub mode: Mode,
    /// Inputs; `None` is standard input.
    pub inputs: Vec<Option<PathBuf>>,
    /// Where outputs go.
    pub output: OutputChoice,
    /// `-f`.
    pub force: bool,
    /// `--rm` (given after any `-k`).
    pub remove_input: bool,
    /// 1 by default; 0 hides warnings and progress, -1 errors too; 2 and 3 add detail.
    pub verbosity: i8,
    /// `--json` (with `-l`).
    pub json: bool,
    /// Preset level.
    pub level: u8,
    /// `--streams`.
    pub streams: Option<u32>,
    /// `--stride`.
    pub stride: Option<u8>,
    /// Bytes of model state allowed.
    pub memory_limit: u64,
    /// `--frame-size`; `None`: one frame per input.
    pub frame_size: Option<u64>,
    /// `-T`: most threads; 0 is one per core.
    pub threads: usize,
    /// `--backend`.
    pub backend: BackendChoice,
    /// `--adapter`.
    pub adapter: Option<String>,
}

/// Parses `argv` (program name first). `Err` is clap's error, for help and version too.
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Settings, clap::Error> {
    let mut argv: Vec<OsString> = argv.into_iter().collect();
    // A subcommand is the mode flag it stands for; later mode flags still win over it.
    if let Some(first) = argv.get_mut(1)
        && let Some((_, flag)) = SUBCOMMANDS.iter().find(|(name, _)| first == name)
    {
        *first = OsString::from(flag);
    }
    let cli = Cli::try_parse_from(argv)?;
    let mode = if cli.decompress {
        Mode::Decompress
    } else if cli.test {
        Mode::Test
    } else if cli.list {
        Mode::List
    } else {
        Mode::Compress
    };
    let inputs: Vec<Option<PathBuf>> = if cli.files.is_empty() {
        vec![None]
    } else {
        cli.files
            .into_iter()
            .map(|f| (f.as_os_str() != "-").then_some(f))
            .collect()
    };
    let output = match (cli.stdout, cli.output) {
        (true, _) => OutputChoice::Stdout,
        (false, Some(out)) if out.as_os_str() == "-" => OutputChoice::Stdout,
        (false, Some(out)) => OutputChoice::File(out),
        (false, None) => OutputChoice::Derived,
    };
    let usage = |message: &str| {
        Cli::command_for_errors().error(clap::error::ErrorKind::ArgumentConflict, message)
    };
    if matches!(output, OutputChoice::File(_)) && inputs.len() > 1 {
        return Err(usage("-o names one output, but several inputs were given"));
    }
    if cli.json && mode != Mode::List {
        return Err(usage("--json goes with -l (list)"));
    }
    Ok(Settings {
        mode,
        inputs,
        output,
        force: cli.force,
        remove_input: cli.rm,
        verbosity: 1 + cli.verbose.min(8) as i8 - cli.quiet.min(8) as i8,
        json: cli.json,
        level: cli.level.level(),
        streams: cli.streams,
        stride: cli.stride,
        memory_limit: cli.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT),
        frame_size: cli.frame_size.filter(|&size| size != u64::MAX),
        threads: cli.threads,
        backend: match cli.backend {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Gpu => BackendChoice::Gpu,
            BackendArg::Cpu => BackendChoice::Cpu,
        },
        adapter: cli.adapter,
    })
}

impl Cli {
    /// The clap command, for errors found after parsing (so they look like clap's own).
    fn command_for_errors() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}

/// A size with an optional binary suffix: `123`, `64K`, `512M`, `2G`, `1T`, each also as
/// `KB`/`KiB` (all powers of 1024, as zstd reads them); `0` or `max` means no limit.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("max") {
        return Ok(u64::MAX);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 512M, 2GiB)"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "unknown size suffix in {text:?} (use K, M, G, KiB, MiB, GiB)"
            ));
        }
    };
    if number == 0 {
        return Ok(u64::MAX);
    }
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Smallest `--frame-size`: below it a frame's header and model reset cost too much ratio.
const MIN_FRAME_SIZE: u64 = 64 << 10;

/// A `--frame-size`: a size as `parse_size` reads it, at least 64 KiB (`0` and `max`, read as
/// no limit, mean one frame per input).
fn parse_frame_size(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if size < MIN_FRAME_SIZE {
        return Err(format!("a frame holds at least 64K, not {text:?}"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let argv = std::iter::once("nngpu").chain(args.iter().copied());
        parse(argv.map(OsString::from)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn the_last_mode_wins_and_compress_is_the_default() {
        assert_eq!(settings(&["f"]).mode, Mode::Compress);
        assert_eq!(settings(&["-d", "f"]).mode, Mode::Decompress);
        assert_eq!(settings(&["-d", "-t", "f"]).mode, Mode::Test);
        assert_eq!(settings(&["-t", "-l", "-z", "f"]).mode, Mode::Compress);
        assert_eq!(settings(&["-dz"]).mode, Mode::Compress);
        assert_eq!(settings(&["decompress", "f"]).mode, Mode::Decompress);
        assert_eq!(settings(&["test", "f"]).mode, Mode::Test);
        assert_eq!(settings(&["list", "f"]).mode, Mode::List);
        assert_eq!(settings(&["compress", "-d", "f"]).mode, Mode::Decompress);
        assert_eq!(settings(&["-d", "-d", "f"]).mode, Mode::Decompress);
        // Only the first word is a subcommand: later ones are files.
        assert_eq!(settings(&["-d", "test"]).inputs, [Some("test".into())]);
    }

    #[test]
    fn the_last_level_wins() {
        assert_eq!(settings(&[]).level, 5);
        assert_eq!(settings(&["-1", "-9"]).level, 9);
        assert_eq!(settings(&["-9", "-1"]).level, 1);
        assert_eq!(settings(&["-3", "-3"]).level, 3);
    }

    #[test]
    fn keep_and_rm_the_last_wins() {
        assert!(!settings(&["f"]).remove_input);
        assert!(settings(&["--rm", "f"]).remove_input);
        assert!(!settings(&["--rm", "-k", "f"]).remove_input);
        assert!(settings(&["-k", "--rm", "f"]).remove_input);
    }

    #[test]
    fn verbosity_counts() {
        assert_eq!(settings(&[]).verbosity, 1);
        assert_eq!(settings(&["-q"]).verbosity, 0);
        assert_eq!(settings(&["-qq"]).verbosity, -1);
        assert_eq!(settings(&["-vv"]).verbosity, 3);
    }

    #[test]
    fn inputs_and_outputs() {
        assert_eq!(settings(&[]).inputs, [None]);
        assert_eq!(settings(&["-"]).inputs, [None]);
        assert_eq!(settings(&["a", "b"]).inputs.len(), 2);
        // Files may sit between flags; a repeated option takes its last value.
        assert_eq!(settings(&["a", "-v", "b", "-1", "c"]).inputs.len(), 3);
        let last = settings(&["-o", "x", "-o", "y", "a"]).output;
        assert_eq!(last, OutputChoice::File("y".into()));
        assert_eq!(settings(&["-c", "a"]).output, OutputChoice::Stdout);
        assert_eq!(settings(&["-o", "-", "a"]).output, OutputChoice::Stdout);
        assert_eq!(
            settings(&["-o", "x", "a"]).output,
            OutputChoice::File("x".into())
        );
        let argv = ["nngpu", "-o", "x", "a", "b"].map(OsString::from);
        assert!(parse(argv).is_err());
        let argv = ["nngpu", "--json", "a"].map(OsString::from);
        assert!(parse(argv).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512mib"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        assert_eq!(parse_size("0"), Ok(u64::MAX));
        assert_eq!(parse_size("max"), Ok(u64::MAX));
        assert!(parse_size("").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn frame_sizes_and_threads() {
        assert_eq!(settings(&[]).frame_size, None);
        assert_eq!(
            settings(&["--frame-size", "64K"]).frame_size,
            Some(64 << 10)
        );
        assert_eq!(settings(&["--frame-size", "2G"]).frame_size, Some(2 << 30));
        assert_eq!(settings(&["--frame-size", "max"]).frame_size, None);
        assert_eq!(settings(&["--frame-size", "0"]).frame_size, None);
        for small in ["65535", "1K", "12X"] {
            let argv = ["nngpu", "--frame-size", small].map(OsString::from);
            assert!(parse(argv).is_err(), "{small}");
        }
        assert_eq!(settings(&[]).threads, 0);
        assert_eq!(settings(&["-T", "3"]).threads, 3);
        assert_eq!(settings(&["-T1", "--threads", "2"]).threads, 2);
        assert!(parse(["nngpu", "-T", "x"].map(OsString::from)).is_err());
    }
}
