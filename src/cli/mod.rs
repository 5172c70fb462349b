//! The `nngpu` command: zstd's and xz's habits over the library.
//!
//! - `args`: the flags and what they mean together (mode, level, verbosity);
//! - `cleanup`: temporary outputs, removed on SIGINT and SIGTERM;
//! - `files`: output names, opening inputs, writing outputs safely;
//! - `modes`: what compress, decompress, test and list do with one input.
//!
//! Every input is handled on its own: a failure is reported (once, as
//! `nngpu: FILE: what went wrong`) and the next input is tried. The exit status is 1 if any
//! input failed, else 2 if any was skipped with a warning, else 0.

mod args;
mod cleanup;
mod files;
mod modes;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use args::{Mode, Settings};
use nngpu::backend::BackendChoice;
use nngpu::error::io_message;

/// Why one input did not go through.
#[derive(Debug)]
pub enum Problem {
    /// An error about the input: `nngpu: INPUT: message`, exit status 1.
    Error(String),
    /// An error about an output file: `nngpu: OUTPUT: message`, exit status 1.
    Output(PathBuf, String),
    /// The input was skipped: `nngpu: INPUT: message` unless -q, exit status 2.
    Warning(String),
    /// Standard output was closed by its reader (`nngpu … | head`): stop quietly.
    BrokenPipe,
}

impl Problem {
    /// An error of writing to standard output.
    fn from_stdout(err: io::Error) -> Problem {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Problem::BrokenPipe
        } else {
            Problem::Output(
                PathBuf::from("(stdout)"),
                format!("cannot write: {}", io_message(&err)),
            )
        }
    }

    /// The same problem, reported against the output file `out`.
    fn about(self, out: &Path) -> Problem {
        match self {
            Problem::Error(message) => Problem::Output(out.to_path_buf(), message),
            other => other,
        }
    }
}

/// Exit statuses, as xz and gzip use them.
const EXIT_ERROR: u8 = 1;
const EXIT_WARNING: u8 = 2;

/// Prints messages at the chosen verbosity and remembers the exit status they imply.
struct Reporter {
    verbosity: i8,
    status: u8,
}

impl Reporter {
    fn error(&mut self, subject: &str, message: &str) {
        self.status = EXIT_ERROR;
        if self.verbosity >= 0 {
            eprintln!("nngpu: {subject}: {message}");
        }
    }

    fn warning(&mut self, subject: &str, message: &str) {
        if self.status == 0 {
            self.status = EXIT_WARNING;
        }
        if self.verbosity >= 1 {
            eprintln!("nngpu: {subject}: {message}");
        }
    }
}

/// Parses the command line, handles every input and returns the exit status.
pub fn run(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let settings = match args::parse(argv) {
        Ok(settings) => settings,
        Err(err) => return clap_exit(&err),
    };
    let mut reporter = Reporter {
        verbosity: settings.verbosity,
        status: 0,
    };
    if let Err(message) = check_run(&settings).and_then(|()| start(&settings)) {
        reporter.error(&message.0, &message.1);
        return ExitCode::from(reporter.status);
    }
    for (i, input) in settings.inputs.iter().enumerate() {
        let path = input.as_deref();
        let result = match settings.mode {
            Mode::List => modes::list(&settings, path, i == 0),
            _ => modes::code(&settings, path),
        };
        let subject = || path.map_or(files::STDIN_NAME.into(), |p| p.display().to_string());
        match result {
            Ok(()) => {}
            Err(Problem::Error(message)) => reporter.error(&subject(), &message),
            Err(Problem::Output(out, message)) => {
                reporter.error(&out.display().to_string(), &message)
            }
            Err(Problem::Warning(message)) => reporter.warning(&subject(), &message),
            Err(Problem::BrokenPipe) => break,
        }
    }
    ExitCode::from(reporter.status)
}

/// Checks that concern the whole run, before any input is read: `(subject, message)`.
fn check_run(settings: &Settings) -> Result<(), (String, String)> {
    if settings.inputs.iter().filter(|i| i.is_none()).count() > 1 {
        return Err((files::STDIN_NAME.into(), "given more than once".into()));
    }
    // An adapter named on the command line that matches nothing is an error even under
    // `auto` (which would quietly use the CPU), and the message lists what is there.
    if let Some(name) = &settings.adapter {
        let runs_model = settings.mode != Mode::List && settings.backend != BackendChoice::Cpu;
        if runs_model && nngpu::backend::gpu::usable_adapters(Some(name)).is_empty() {
            return Err((
                "--adapter".into(),
                nngpu::backend::gpu::no_adapter_message(Some(name)),
            ));
        }
    }
    Ok(())
}

/// Sets up the process before any input: the signal handler that removes temporary outputs,
/// and rayon's pool of `-T` threads (left to rayon, one per core, for `-T 0`).
fn start(settings: &Settings) -> Result<(), (String, String)> {
    cleanup::install().map_err(|e| ("signals".into(), format!("cannot install a handler: {e}")))?;
    if settings.threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(settings.threads)
            .build_global()
            .map_err(|e| ("-T".into(), e.to_string()))?;
    }
    Ok(())
}

/// Prints a clap outcome: help and version on standard output (status 0), a usage error as
/// `nngpu: …` on standard error (status 1, as xz and zstd do; 2 means a warning here).
fn clap_exit(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let text = err.render().to_string();
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        _ => {
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprint!("nngpu: {text}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
