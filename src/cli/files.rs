//! Files: output names derived from input names, opening inputs (never compressed data from a
//! terminal), and writing outputs safely.
//!
//! An output is written, as it is produced, to a temporary file beside its destination
//! created before any work; it is given the input's mode and modification time, flushed to
//! disk and only then renamed into place, so an error or a signal never leaves a half-written
//! file and `--rm` never deletes an input whose output is not safely on disk. An existing file
//! is replaced only with `--force`.

use std::fs::{self, File, FileTimes, Metadata};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use nngpu::error::io_message;
use tempfile::NamedTempFile;

use super::Problem;
use super::args::Mode;
use super::cleanup;

/// Suffix of compressed files.
pub const SUFFIX: &str = "nng";

/// How standard input is named in messages (as xz does).
pub const STDIN_NAME: &str = "(stdin)";

/// The output name `mode` derives from `input`: `FILE.nng` when compressing, `FILE` from
/// `FILE.nng` when decompressing. Compressing a name that already ends in `.nng` is a
/// warning (the file is skipped) unless `force`; decompressing a name without the suffix is
/// an error, since no output name follows from it.
pub fn derived_name(mode: Mode, input: &Path, force: bool) -> Result<PathBuf, Problem> {
    let has_suffix = input.extension().is_some_and(|e| e == SUFFIX);
    if mode == Mode::Compress {
        if has_suffix && !force {
            return Err(Problem::Warning(format!(
                "already has the .{SUFFIX} suffix, skipping (use -f to compress it anyway)"
            )));
        }
        let mut name = input.as_os_str().to_owned();
        name.push(".");
        name.push(SUFFIX);
        Ok(name.into())
    } else if has_suffix && input.file_stem().is_some() {
        Ok(input.with_extension(""))
    } else {
        Err(Problem::Error(format!(
            "does not end in .{SUFFIX}: give the output name with -o (or use -c)"
        )))
    }
}

/// Refuses standard input when it is a terminal (`path` is `None`): compressed data is never
/// read from one, and typing into the compressor by accident is refused too unless `force`.
pub fn refuse_terminal_input(path: Option<&Path>, mode: Mode, force: bool) -> Result<(), Problem> {
    if path.is_some() || !io::stdin().is_terminal() {
        return Ok(());
    }
    if mode.reads_archives() {
        return Err(Problem::Error(
            "compressed data is not read from a terminal".into(),
        ));
    }
    if !force {
        return Err(Problem::Error(
            "standard input is a terminal: give a file, a pipe, or -f to type the input".into(),
        ));
    }
    Ok(())
}

/// Opens the input file at `path` for reading, with its metadata (for the output's
/// attributes and the input's size). A directory is skipped with a warning.
pub fn open_input(path: &Path) -> Result<(File, Metadata), Problem> {
    let file = File::open(path).map_err(|e| Problem::Error(io_message(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| Problem::Error(io_message(&e)))?;
    if meta.is_dir() {
        return Err(Problem::Warning("is a directory, skipping".into()));
    }
    Ok((file, meta))
}

/// Whether `a` and `b` name the same existing file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Writes `bytes` to standard output and flushes it.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// The directory a file's temporary sibling goes in.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// An output file being written: a temporary file beside its destination, registered for
/// removal on a signal (`cleanup`). `finish` gives it the input's mode (without set-id bits)
/// and modification time, flushes it with fsync and renames it into place; then the directory
/// is flushed, so the new name is on disk before anyone deletes the input. Without `force` an
/// existing destination is never replaced, even one that appeared while nngpu worked. Dropped
/// unfinished (on any error), it removes the temporary file.
pub struct Output {
    /// The temporary file, buffered; `None` once finished.
    tmp: Option<BufWriter<NamedTempFile>>,
    path: PathBuf,
    force: bool,
}

impl Output {
    /// Creates the temporary file for `path`, before any work, so an output that cannot be
    /// written fails first.
    pub fn create(path: &Path, force: bool) -> Result<Output, Problem> {
        let dir = parent_dir(path);
        let mut builder = tempfile::Builder::new();
        builder.prefix(".nngpu-").suffix(".tmp");
        // Created as a new file would be (0666 less the umask) when there is no input file to
        // copy the mode from.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o666));
        }
        let mut open = cleanup::registry();
        let tmp = builder
            .tempfile_in(dir)
            .map_err(|e| failed(&format!("cannot create a file in {}", dir.display()), &e))?;
        open.push(tmp.path().to_path_buf());
        Ok(Output {
            tmp: Some(BufWriter::with_capacity(WRITE_BUFFER, tmp)),
            path: path.to_path_buf(),
            force,
        })
    }

    /// Where the output's bytes go, as the coder produces them.
    pub fn writer(&mut self) -> &mut dyn Write {
        self.tmp
            .as_mut()
            .expect("an output is written only before it is finished")
    }

    /// Completes the output: attributes of `like` (the input, if it is a file), fsync, rename
    /// into place, fsync of the directory. Errors name what failed; nothing is left behind.
    pub fn finish(mut self, like: Option<&Metadata>) -> Result<(), Problem> {
        // Until the rename, an error leaves the file to `drop`, which removes it.
        let buffered = self.tmp.as_mut().expect("an output is finished once");
        buffered.flush().map_err(|e| failed("cannot write", &e))?;
        complete(buffered.get_ref(), like)?;
        if let Some(buffered) = self.tmp.take() {
            self.rename(buffered.into_parts().0)?;
        }
        let dir = parent_dir(&self.path);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| failed(&format!("cannot flush the directory {}", dir.display()), &e))
    }

    /// Renames `tmp` into place and forgets it, both while the registry is locked.
    fn rename(&self, tmp: NamedTempFile) -> Result<(), Problem> {
        let mut open = cleanup::registry();
        let tmp_path = tmp.path().to_path_buf();
        let persisted = if self.force {
            tmp.persist(&self.path)
        } else {
            tmp.persist_noclobber(&self.path)
        };
        // A failed rename drops (removes) the temporary file here, still under the lock.
        let result = persisted.map(drop).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                Problem::Error("already exists (use -f to overwrite)".into())
            } else {
                failed("cannot rename into place", &e.error)
            }
        });
        open.retain(|p| *p != tmp_path);
        result
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some(buffered) = self.tmp.take() {
            let mut open = cleanup::registry();
            let (tmp, _unwritten) = buffered.into_parts();
            let tmp_path = tmp.path().to_path_buf();
            drop(tmp);
            open.retain(|p| *p != tmp_path);
        }
    }
}

/// Bytes buffered before a write to the output file.
const WRITE_BUFFER: usize = 1 << 16;

/// A problem with an output file: what failed, and the system's reason.
fn failed(what: &str, err: &io::Error) -> Problem {
    Problem::Error(format!("{what}: {}", io_message(err)))
}

/// Gives the written temporary file the attributes of `like` and flushes it to disk.
fn complete(tmp: &NamedTempFile, like: Option<&Metadata>) -> Result<(), Problem> {
    if let Some(meta) = like {
        copy_attributes(tmp.as_file(), meta)
            .map_err(|e| failed("cannot set the mode or time", &e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| failed("cannot flush", &e))
}

/// Gives `file` the permission bits and access and modification times of `meta`.
fn copy_attributes(file: &File, meta: &Metadata) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Set-user-ID, set-group-ID and sticky bits are not copied, as gzip and xz do not.
        let mode = meta.permissions().mode() & 0o777;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    file.set_permissions(meta.permissions())?;
    let mut times = FileTimes::new();
    if let Ok(accessed) = meta.accessed() {
        times = times.set_accessed(accessed);
    }
    if let Ok(modified) = meta.modified() {
        times = times.set_modified(modified);
    }
    file.set_times(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let ok = |mode, name: &str, force| derived_name(mode, Path::new(name), force).ok();
        assert_eq!(ok(Mode::Compress, "a.txt", false), Some("a.txt.nng".into()));
        assert_eq!(ok(Mode::Compress, "a.nng", false), None);
        assert_eq!(ok(Mode::Compress, "a.nng", true), Some("a.nng.nng".into()));
        assert_eq!(
            ok(Mode::Decompress, "d/a.txt.nng", false),
            Some("d/a.txt".into())
        );
        assert_eq!(ok(Mode::Decompress, "a.txt", false), None);
        assert_eq!(ok(Mode::Decompress, ".nng", false), None);
        assert!(matches!(
            derived_name(Mode::Compress, Path::new("x.nng"), false),
            Err(Problem::Warning(_))
        ));
    }

    #[test]
    fn io_messages_lose_the_errno() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(io_message(&e), "No such file or directory");
    }
}
