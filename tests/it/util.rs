//! Helpers shared by the integration tests: test data, library shortcuts and a way to run the
//! `nngpu` binary inside a test's own temporary directory.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use nngpu::backend::BackendChoice;
use nngpu::{Error, Options};

/// Options for the CPU twin at `level`: the suite must pass on machines without a GPU.
pub fn cpu(level: u8) -> Options {
    Options {
        level,
        backend: BackendChoice::Cpu,
        ..Options::default()
    }
}

/// Compresses `data` at `level` on the CPU twin, checking the backend that ran.
pub fn pack(data: &[u8], level: u8) -> Vec<u8> {
    let outcome = nngpu::compress(data, &cpu(level)).expect("compression failed");
    assert!(
        outcome.backend.contains("cpu"),
        "ran on {}",
        outcome.backend
    );
    outcome.bytes
}

/// Decompresses `archive` on the CPU twin.
pub fn unpack(archive: &[u8]) -> Result<Vec<u8>, Error> {
    nngpu::decompress(archive, &cpu(1)).map(|outcome| outcome.bytes)
}

/// Compresses and decompresses `data` at `level`, asserts the round trip and returns the
/// archive.
pub fn round_trip(data: &[u8], level: u8) -> Vec<u8> {
    let archive = pack(data, level);
    assert_eq!(
        archive[..4],
        nngpu::format::MAGIC,
        "archive lacks the magic"
    );
    let back = unpack(&archive).expect("decompression failed");
    assert!(
        back == data,
        "round trip changed the data ({} bytes in, {} out, first difference at {:?})",
        data.len(),
        back.len(),
        data.iter().zip(&back).position(|(a, b)| a != b)
    );
    archive
}

/// Bits per original byte of an archive, header and trailer included.
pub fn bits_per_byte(archive: &[u8], original: &[u8]) -> f64 {
    archive.len() as f64 * 8.0 / original.len() as f64
}

/// splitmix64: a small seeded generator, so every random input reproduces.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// The seed's digit data: lines "000000\n" to "099999\n", 700,000 bytes.
pub fn digits() -> Vec<u8> {
    (0..100_000)
        .flat_map(|i| format!("{i:06}\n").into_bytes())
        .collect()
}

/// Lewis Carroll's "Alice's Adventures in Wonderland" (Canterbury corpus, public domain).
pub fn alice() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alice29.txt");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A few hundred bytes of text: small enough to decode thousands of times in a test.
pub fn short_text() -> Vec<u8> {
    alice()[..300].to_vec()
}

/// `len` bytes of text: lines of words drawn from a small vocabulary, seeded.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "alpha", "beta", "gamma", "delta", "stream", "frame", "model", "block", "the", "of", "and",
        "nngpu",
    ];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let word = WORDS[(rng.next_u64() % WORDS.len() as u64) as usize];
        out.extend_from_slice(word.as_bytes());
        out.push(if rng.next_u64().is_multiple_of(8) {
            b'\n'
        } else {
            b' '
        });
    }
    out.truncate(len);
    out
}

/// The `nngpu` binary, run in `dir`, on the CPU twin, with no adapter preference inherited
/// from the environment.
pub fn nngpu(dir: &Path) -> Command {
    let mut cmd = bare_nngpu(dir);
    cmd.env("NNGPU_BACKEND", "cpu");
    cmd
}

/// The `nngpu` binary, run in `dir`, with neither `NNGPU_BACKEND` nor `NNGPU_ADAPTER` set.
pub fn bare_nngpu(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nngpu"));
    cmd.current_dir(dir)
        .env_remove("NNGPU_BACKEND")
        .env_remove("NNGPU_ADAPTER");
    cmd
}

/// Runs `cmd` with `input` on its standard input and collects its output.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start nngpu");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // Write from a thread so a child that fills its stdout pipe first cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("nngpu did not finish");
    writer
        .join()
        .expect("writer thread")
        .expect("cannot write stdin");
    output
}

/// Runs `cmd` with an empty standard input and collects its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .expect("cannot start nngpu")
}

/// Asserts that `output` is a success and returns its standard error.
pub fn assert_ok(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "nngpu failed ({}): {stderr}",
        output.status
    );
    stderr
}

/// Asserts that `output` is a clean failure: exit status 1, nothing on standard output, and
/// an error on standard error that contains `needle` (case-insensitively) and is not a panic.
/// Returns the standard error.
pub fn assert_fails(output: &Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected a clean failure, got {}; stderr: {stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "nngpu panicked: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "stderr lacks {needle:?}: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "a failed run wrote {} bytes to stdout",
        output.stdout.len()
    );
    stderr
}

/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("cannot list the test directory")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A fresh temporary directory for one test.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("cannot create a temporary directory")
}

/// Runs the shell `script` in `dir` on the CPU twin (`NNGPU_BACKEND=cpu`), for pipelines.
pub fn sh(dir: &Path, script: &str) -> Output {
    Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env("NNGPU_BACKEND", "cpu")
        .output()
        .expect("cannot run sh")
}
