//! Terminals, under a real pseudo-terminal: util-linux `script` runs `nngpu` with its standard
//! input, output and error on a new pty. Compressed data is never read from a terminal nor
//! written to one; decompressed data may go to one. Skipped, saying so, where `script` is
//! missing; `NNGPU_REQUIRE_PTY=1` makes that a failure.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::util::{names_in, pack, short_text, temp_dir};

/// Runs `nngpu ARGS` (a shell fragment) on a pseudo-terminal in `dir`, on the CPU twin;
/// `None` if `script` is not installed.
fn on_pty(dir: &Path, args: &str) -> Option<Output> {
    let command = format!("'{}' {args}", env!("CARGO_BIN_EXE_nngpu"));
    let output = Command::new("script")
        // -q: no banner; -e: exit with the command's status; -c: the command; /dev/null: no
        // typescript file.
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(dir)
        .env("NNGPU_BACKEND", "cpu")
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(output) => Some(output),
        Err(e) => {
            let required = std::env::var("NNGPU_REQUIRE_PTY").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "NNGPU_REQUIRE_PTY=1 but `script` cannot run: {e}"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipping a pty test: `script` cannot run: {e}"
            );
            None
        }
    }
}

/// What the terminal showed (standard output and error together, as a terminal does).
fn shown(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn compressed_data_is_never_read_from_a_terminal() {
    let dir = temp_dir();
    for args in ["-d", "-t", "-l", "decompress -c", "-d -f"] {
        let Some(out) = on_pty(dir.path(), args) else {
            return;
        };
        assert_eq!(out.status.code(), Some(1), "{args}: {}", shown(&out));
        assert!(
            shown(&out).contains("nngpu: (stdin): compressed data is not read from a terminal"),
            "{args}: {}",
            shown(&out)
        );
    }
    // Typing into the compressor by accident is refused too (-f reads the terminal).
    let Some(out) = on_pty(dir.path(), "-1") else {
        return;
    };
    assert_eq!(out.status.code(), Some(1));
    assert!(
        shown(&out).contains("standard input is a terminal"),
        "{}",
        shown(&out)
    );
    assert!(names_in(dir.path()).is_empty());
}

#[test]
fn compressed_data_is_never_written_to_a_terminal() {
    let dir = temp_dir();
    let d = dir.path();
    std::fs::write(d.join("f"), short_text()).unwrap();
    for args in ["-1 -c f", "-1 < f", "compress -1 -o - f"] {
        let Some(out) = on_pty(d, args) else { return };
        assert_eq!(out.status.code(), Some(1), "{args}: {}", shown(&out));
        assert!(
            shown(&out).contains("compressed data is not written to a terminal"),
            "{args}: {}",
            shown(&out)
        );
        assert!(!shown(&out).contains("NNG"), "{args} wrote the archive");
    }
    assert_eq!(names_in(d), ["f"]);
    // Into a file or a pipe, from a terminal's shell, it works.
    let Some(out) = on_pty(d, "-1 f") else { return };
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(names_in(d), ["f", "f.nng"]);
}

#[test]
fn decompressed_data_may_go_to_a_terminal() {
    let dir = temp_dir();
    let d = dir.path();
    std::fs::write(d.join("f.nng"), pack(b"hello from the archive\n", 1)).unwrap();
    for command in ["-dc f.nng", "-d < f.nng"] {
        let Some(out) = on_pty(d, command) else {
            return;
        };
        assert_eq!(out.status.code(), Some(0), "{command}: {}", shown(&out));
        assert!(
            shown(&out).contains("hello from the archive"),
            "{command}: {}",
            shown(&out)
        );
    }
}
