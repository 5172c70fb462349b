//! Temporary outputs that must not outlive the process, even when it is interrupted.
//!
//! Every temporary file an output is being written to is registered here from the moment it
//! is created until it is renamed into place or removed. On SIGINT or SIGTERM a thread removes
//! the registered files and exits with status 128 + the signal's number (130, 143), as shells
//! report a process killed by it. Creating, renaming and removing a temporary file happen
//! while the registry is locked, and the thread holds the lock until the process is gone, so
//! a signal finds each output either complete under its final name or not there at all.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// Paths of the temporary files open now.
static OPEN: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The registry, locked. A panic while it was held leaves it usable: it is only a list.
pub fn registry() -> MutexGuard<'static, Vec<PathBuf>> {
    OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the thread that removes the registered files on SIGINT and SIGTERM and exits.
#[cfg(unix)]
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("nngpu-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let open = registry();
                for path in open.iter() {
                    let _ = std::fs::remove_file(path);
                }
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

/// Without Unix signals, the default handling stays: nothing to install.
#[cfg(not(unix))]
pub fn install() -> std::io::Result<()> {
    Ok(())
}
