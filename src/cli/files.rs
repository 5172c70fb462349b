//! Files: output names derived from input names, reading inputs (never compressed data from a
//! terminal), and writing outputs safely.
//!
//! An output is written to a temporary file beside its destination, given the input's mode
//! and modification time, flushed to disk and only then renamed into place, so an error never
//! leaves a half-written file and `--rm` never deletes an input whose output is not safely
//! on disk. An existing file is replaced only with `--force`.

use std::fs::{self, File, FileTimes, Metadata};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use super::Problem;
use super::args::Mode;

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

/// An I/O error as a message: the system's text without Rust's " (os error N)" tail.
pub fn io_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
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

/// Reads a whole input: the file at `path` (with its metadata, for the output's attributes),
/// or standard input (after `refuse_terminal_input`).
pub fn read_input(path: Option<&Path>) -> Result<(Vec<u8>, Option<Metadata>), Problem> {
    match path {
        Some(p) => {
            let mut file = File::open(p).map_err(|e| Problem::Error(io_message(&e)))?;
            let meta = file
                .metadata()
                .map_err(|e| Problem::Error(io_message(&e)))?;
            if meta.is_dir() {
                return Err(Problem::Warning("is a directory, skipping".into()));
            }
            let mut data = Vec::new();
            // Fallible: an input larger than memory is an error, not an abort.
            data.try_reserve_exact(meta.len() as usize)
                .map_err(|_| Problem::Error("too large to read into memory".into()))?;
            file.read_to_end(&mut data)
                .map_err(|e| Problem::Error(io_message(&e)))?;
            Ok((data, Some(meta)))
        }
        None => {
            let mut data = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut data)
                .map_err(|e| Problem::Error(io_message(&e)))?;
            Ok((data, None))
        }
    }
}

/// The first `head` bytes of the file at `path` (fewer if it is shorter), its length, and its
/// last `N` bytes (zeros if it is shorter): what a listing needs, without reading the rest.
pub fn read_ends<const N: usize>(
    path: &Path,
    head: usize,
) -> Result<(Vec<u8>, u64, [u8; N]), Problem> {
    use std::io::{Seek, SeekFrom};
    let fail = |e: io::Error| Problem::Error(io_message(&e));
    let mut file = File::open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if meta.is_dir() {
        return Err(Problem::Warning("is a directory, skipping".into()));
    }
    let len = meta.len();
    let mut first = Vec::new();
    (&mut file)
        .take(head as u64)
        .read_to_end(&mut first)
        .map_err(fail)?;
    let mut last = [0u8; N];
    if len >= N as u64 {
        file.seek(SeekFrom::End(-(N as i64))).map_err(fail)?;
        file.read_exact(&mut last).map_err(fail)?;
    }
    Ok((first, len, last))
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

/// Writes `bytes` to `path`: a temporary file beside it gets the bytes, the mode (without
/// set-id bits) and the modification time of `like` (the input, if it is a file), is flushed
/// with fsync, and is renamed into place; then the directory is flushed, so the new name is
/// on disk before anyone deletes the input. Without `force` an existing `path` is never
/// replaced, even one that appeared while nngpu worked. Errors name what failed; on any error
/// nothing is left behind.
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    like: Option<&Metadata>,
    force: bool,
) -> Result<(), Problem> {
    let dir = parent_dir(path);
    let error = |what: &str, e: &io::Error| Problem::Error(format!("{what}: {}", io_message(e)));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".nngpu-").suffix(".tmp");
    // Created as a new file would be (0666 less the umask) when there is no input file to
    // copy the mode from.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| error(&format!("cannot create a file in {}", dir.display()), &e))?;
    tmp.write_all(bytes)
        .map_err(|e| error("cannot write", &e))?;
    if let Some(meta) = like {
        copy_attributes(tmp.as_file(), meta)
            .map_err(|e| error("cannot set the mode or time", &e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| error("cannot flush", &e))?;
    let persisted = if force {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    persisted.map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            Problem::Error("already exists (use -f to overwrite)".into())
        } else {
            error("cannot rename into place", &e.error)
        }
    })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| error(&format!("cannot flush the directory {}", dir.display()), &e))
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
