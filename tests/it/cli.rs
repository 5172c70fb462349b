//! The `nngpu` binary: default file names, `-o`, standard streams, overwrite rules, `-v` and
//! backend selection. Inputs are small and compressed at `-1`, so each run takes milliseconds.

use std::fs;

use super::util::{
    assert_fails, assert_ok, bare_nngpu, names_in, nngpu, run, run_with_stdin, short_text,
    temp_dir, unpack,
};
use nngpu::format::MAGIC;

#[test]
fn compress_writes_suffixed_file_and_keeps_input() {
    let dir = temp_dir();
    let data = short_text();
    fs::write(dir.path().join("notes.txt"), &data).unwrap();
    assert_ok(&run(nngpu(dir.path()).args([
        "compress",
        "-1",
        "notes.txt",
    ])));
    assert_eq!(names_in(dir.path()), ["notes.txt", "notes.txt.nng"]);
    assert_eq!(fs::read(dir.path().join("notes.txt")).unwrap(), data);
    let archive = fs::read(dir.path().join("notes.txt.nng")).unwrap();
    assert_eq!(archive[..4], MAGIC);
    assert_eq!(unpack(&archive).unwrap(), data);
}

#[test]
fn decompress_strips_the_suffix_and_keeps_the_archive() {
    let dir = temp_dir();
    let data = short_text();
    fs::write(dir.path().join("notes.txt"), &data).unwrap();
    assert_ok(&run(nngpu(dir.path()).args([
        "compress",
        "-1",
        "notes.txt",
    ])));
    fs::remove_file(dir.path().join("notes.txt")).unwrap();
    assert_ok(&run(nngpu(dir.path()).args(["decompress", "notes.txt.nng"])));
    assert_eq!(names_in(dir.path()), ["notes.txt", "notes.txt.nng"]);
    assert_eq!(fs::read(dir.path().join("notes.txt")).unwrap(), data);
}

#[test]
fn output_flag_names_the_output() {
    let dir = temp_dir();
    let data = short_text();
    fs::write(dir.path().join("in"), &data).unwrap();
    assert_ok(&run(nngpu(dir.path()).args([
        "compress",
        "-1",
        "in",
        "-o",
        "packed.bin",
    ])));
    assert_ok(&run(nngpu(dir.path()).args([
        "decompress",
        "packed.bin",
        "--output",
        "out",
    ])));
    assert_eq!(names_in(dir.path()), ["in", "out", "packed.bin"]);
    assert_eq!(fs::read(dir.path().join("out")).unwrap(), data);
}

#[test]
fn stdin_to_stdout() {
    let dir = temp_dir();
    let data = short_text();
    let packed = run_with_stdin(nngpu(dir.path()).args(["compress", "-1", "-c"]), &data);
    assert_ok(&packed);
    assert_eq!(packed.stdout[..4], MAGIC);
    let unpacked = run_with_stdin(nngpu(dir.path()).args(["decompress", "-c"]), &packed.stdout);
    assert_ok(&unpacked);
    assert_eq!(unpacked.stdout, data);
    // Without a file and without -c, standard input goes to standard output too; "-" names
    // standard input and "-o -" standard output.
    let implicit = run_with_stdin(nngpu(dir.path()).args(["compress", "-1"]), &data);
    assert_ok(&implicit);
    assert_eq!(implicit.stdout, packed.stdout);
    let dashes = run_with_stdin(
        nngpu(dir.path()).args(["decompress", "-", "-o", "-"]),
        &packed.stdout,
    );
    assert_ok(&dashes);
    assert_eq!(dashes.stdout, data);
    assert!(
        names_in(dir.path()).is_empty(),
        "{:?}",
        names_in(dir.path())
    );
}

#[test]
fn file_to_stdout() {
    let dir = temp_dir();
    let data = short_text();
    fs::write(dir.path().join("a.txt"), &data).unwrap();
    let packed = run(nngpu(dir.path()).args(["compress", "-1", "-c", "a.txt"]));
    assert_ok(&packed);
    assert_eq!(names_in(dir.path()), ["a.txt"]);
    fs::write(dir.path().join("a.txt.nng"), &packed.stdout).unwrap();
    let unpacked = run(nngpu(dir.path()).args(["decompress", "--stdout", "a.txt.nng"]));
    assert_ok(&unpacked);
    assert_eq!(unpacked.stdout, data);
}

#[test]
fn existing_output_is_kept_without_force() {
    let dir = temp_dir();
    let data = short_text();
    fs::write(dir.path().join("doc"), &data).unwrap();
    fs::write(dir.path().join("doc.nng"), b"precious").unwrap();
    let refused = run(nngpu(dir.path()).args(["compress", "-1", "doc"]));
    assert_fails(&refused, "already exists");
    assert_eq!(fs::read(dir.path().join("doc.nng")).unwrap(), b"precious");

    assert_ok(&run(nngpu(dir.path()).args(["compress", "-1", "-f", "doc"])));
    let archive = fs::read(dir.path().join("doc.nng")).unwrap();
    assert_eq!(unpack(&archive).unwrap(), data);

    // The same rule on the way back.
    fs::write(dir.path().join("doc"), b"also precious").unwrap();
    let refused = run(nngpu(dir.path()).args(["decompress", "doc.nng"]));
    assert_fails(&refused, "already exists");
    assert_eq!(fs::read(dir.path().join("doc")).unwrap(), b"also precious");
    assert_ok(&run(nngpu(dir.path()).args([
        "decompress",
        "--force",
        "doc.nng",
    ])));
    assert_eq!(fs::read(dir.path().join("doc")).unwrap(), data);
    assert_eq!(names_in(dir.path()), ["doc", "doc.nng"]);
}

#[test]
fn decompress_needs_a_suffix_or_an_output_name() {
    let dir = temp_dir();
    let data = short_text();
    fs::write(dir.path().join("data"), &data).unwrap();
    assert_ok(&run(
        nngpu(dir.path()).args(["compress", "-1", "data", "-o", "data.bin"])
    ));
    let refused = run(nngpu(dir.path()).args(["decompress", "data.bin"]));
    assert_fails(&refused, "does not end in .nng");
    assert_fails(&refused, "-o");
    assert_eq!(names_in(dir.path()), ["data", "data.bin"]);
}

#[test]
fn input_and_output_may_not_be_the_same_file() {
    let dir = temp_dir();
    fs::write(dir.path().join("same"), short_text()).unwrap();
    let refused = run(nngpu(dir.path()).args(["compress", "-1", "-f", "same", "-o", "same"]));
    assert_fails(&refused, "same: is also the output");
    assert_eq!(fs::read(dir.path().join("same")).unwrap(), short_text());
}

#[test]
fn missing_input_is_an_error() {
    let dir = temp_dir();
    let refused = run(nngpu(dir.path()).args(["compress", "-1", "absent.txt"]));
    assert_fails(&refused, "absent.txt");
    assert!(
        names_in(dir.path()).is_empty(),
        "{:?}",
        names_in(dir.path())
    );
}

#[test]
fn verbose_reports_ratio_and_backend() {
    let dir = temp_dir();
    fs::write(dir.path().join("v.txt"), short_text()).unwrap();
    let packed = run(nngpu(dir.path()).args(["compress", "-1", "-v", "v.txt"]));
    let stderr = assert_ok(&packed);
    assert!(stderr.contains("bits/byte"), "{stderr}");
    assert!(stderr.contains("backend cpu"), "{stderr}");
    assert!(stderr.contains("300 ->"), "{stderr}");
    fs::remove_file(dir.path().join("v.txt")).unwrap();
    let unpacked = run(nngpu(dir.path()).args(["decompress", "--verbose", "v.txt.nng"]));
    let stderr = assert_ok(&unpacked);
    assert!(
        stderr.contains("bits/byte") && stderr.contains("backend cpu"),
        "{stderr}"
    );
    // Quiet by default.
    let quiet = run(nngpu(dir.path()).args(["compress", "-1", "-f", "v.txt"]));
    assert_eq!(assert_ok(&quiet), "");
}

#[test]
fn backend_flag_selects_the_cpu() {
    let dir = temp_dir();
    fs::write(dir.path().join("b.txt"), short_text()).unwrap();
    let packed =
        run(bare_nngpu(dir.path()).args(["compress", "-1", "-v", "--backend", "cpu", "b.txt"]));
    let stderr = assert_ok(&packed);
    assert!(stderr.contains("backend cpu"), "{stderr}");
    // The flag wins over the environment.
    let packed = run(bare_nngpu(dir.path()).env("NNGPU_BACKEND", "gpu").args([
        "compress",
        "-1",
        "-v",
        "-f",
        "--backend",
        "cpu",
        "b.txt",
    ]));
    let stderr = assert_ok(&packed);
    assert!(stderr.contains("backend cpu"), "{stderr}");
}

#[test]
fn backend_from_the_environment() {
    let dir = temp_dir();
    fs::write(dir.path().join("e.txt"), short_text()).unwrap();
    let packed = run(bare_nngpu(dir.path())
        .env("NNGPU_BACKEND", "cpu")
        .args(["compress", "-1", "-v", "e.txt"]));
    let stderr = assert_ok(&packed);
    assert!(stderr.contains("backend cpu"), "{stderr}");
    let bogus = run(bare_nngpu(dir.path())
        .env("NNGPU_BACKEND", "tpu")
        .args(["compress", "-1", "-f", "e.txt"]));
    assert!(!bogus.status.success(), "NNGPU_BACKEND=tpu was accepted");
    let stderr = String::from_utf8_lossy(&bogus.stderr);
    assert!(
        stderr.contains("tpu") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn the_last_level_wins_and_is_recorded() {
    let dir = temp_dir();
    fs::write(dir.path().join("l.txt"), short_text()).unwrap();
    assert_ok(&run(
        nngpu(dir.path()).args(["compress", "-9", "-2", "l.txt"])
    ));
    assert_eq!(fs::read(dir.path().join("l.txt.nng")).unwrap()[6], 2);
    assert_ok(&run(nngpu(dir.path()).args(["-2", "-f", "-1", "l.txt"])));
    assert_eq!(fs::read(dir.path().join("l.txt.nng")).unwrap()[6], 1);
}

#[test]
fn help_and_version() {
    let dir = temp_dir();
    let help = run(nngpu(dir.path()).arg("--help"));
    assert_ok(&help);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("compress") && text.contains("decompress"),
        "{text}"
    );
    let version = run(nngpu(dir.path()).arg("--version"));
    assert_ok(&version);
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}
