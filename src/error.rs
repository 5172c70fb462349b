//! The library's typed errors.

use crate::format::FormatError;
use crate::model::memory::describe_bytes;

/// Everything that can go wrong in compressing or decompressing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive is not a valid nngpu archive (bad header, truncated, corrupt).
    // Transparent: the format error is the whole message, so a chain printer (anyhow's
    // `{:#}`) must not find it a second time as the source.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A block's payload does not decode to the length its record announces.
    #[error("corrupt archive: a block's compressed data ends early or holds extra bytes")]
    CorruptPayload,
    /// A frame's decoded data does not match the checksum stored in its end record.
    #[error(
        "corrupt archive: a frame's decoded data fails its checksum (expected {expected:016x}, got {got:016x})"
    )]
    ChecksumMismatch {
        /// Hash stored in the archive.
        expected: u64,
        /// Hash of the decoded data.
        got: u64,
    },
    /// A backend produced a frequency table the mixing stage cannot use, or the stage a bit
    /// probability the coder cannot use: a bug, reported instead of writing an archive that
    /// would not decode.
    #[error("internal error: the model produced an invalid frequency table or bit probability")]
    InvalidTable,
    /// The requested backend cannot run here (no adapter, missing feature or limit).
    #[error("backend unavailable: {0}")]
    BackendUnavailable(String),
    /// The GPU reported an error while running a kernel.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The decoded data would not fit in memory.
    #[error("cannot allocate {0} bytes for the decoded data")]
    OutOfMemory(u64),
    /// The model a header (or the chosen preset) describes needs more memory than the limit
    /// allows; refused before anything is allocated.
    #[error(
        "the model needs {} of memory, above the limit of {} (raise it with --memory-limit)",
        describe_bytes(*needed),
        describe_bytes(*limit)
    )]
    MemoryLimit {
        /// Bytes of model state the model needs (`model::memory::model_state`).
        needed: u64,
        /// The limit in force.
        limit: u64,
    },
    /// Reading the input failed.
    #[error("cannot read: {}", io_message(.0))]
    Read(#[source] std::io::Error),
    /// Writing the output failed.
    #[error("cannot write: {}", io_message(.0))]
    Write(#[source] std::io::Error),
    /// A block decoded to data that fails its checksum: the archive is corrupt there.
    #[error(
        "corrupt archive: block {block} of frame {frame} (from byte {offset} of the frame's \
         data) fails its checksum (expected {expected:08x}, got {got:08x})"
    )]
    BlockChecksumMismatch {
        /// Index of the frame in the archive, from 0.
        frame: u64,
        /// Index of the block in its frame, from 0.
        block: u64,
        /// Offset of the block's first byte in the frame's original data.
        offset: u64,
        /// Checksum stored in the block's record.
        expected: u32,
        /// Checksum of the decoded data.
        got: u32,
    },
}

/// An I/O error as a message: the system's text without Rust's " (os error N)" tail.
pub fn io_message(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}
