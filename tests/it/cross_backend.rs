//! The GPU backend and the CPU twin produce the same archives and decode each other's.
//!
//! These tests need an adapter that can run the model; without one they say so and pass,
//! unless `NNGPU_REQUIRE_GPU=1` (set by CI, which installs lavapipe), which makes a missing
//! adapter a failure. Inputs are small: on lavapipe the GPU path runs about 1 KB/s.

use nngpu::backend::{BackendChoice, gpu};
use nngpu::{Options, compress, decompress};

use super::util::{alice, assert_fails, assert_ok, bare_nngpu, names_in, run, temp_dir};

/// Whether a GPU adapter can run the model; panics if none can and one is required.
fn gpu_available() -> bool {
    if !gpu::usable_adapters(None).is_empty() {
        return true;
    }
    let required = std::env::var("NNGPU_REQUIRE_GPU").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "NNGPU_REQUIRE_GPU=1 but no GPU adapter can run the model"
    );
    // Once per run, on the real standard error: libtest hides `eprintln!` of passing tests.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gpu::write_stderr_line(
            "skipping the cross-backend tests: no GPU adapter with 64-bit shader integers \
             (NNGPU_REQUIRE_GPU=1 makes this a failure)",
        );
    });
    false
}

fn options(level: u8, backend: BackendChoice) -> Options {
    Options {
        level,
        backend,
        ..Options::default()
    }
}

#[test]
fn several_streams_of_uneven_length_agree_across_backends() {
    if !gpu_available() {
        return;
    }
    // 1,001 bytes in 4 streams: segments of 251, 251, 251 and 248 bytes; the same at an LSTM
    // stride of 5 (the LSTM on every fifth byte of each, its last run of each segment short);
    // in 96 streams, segments of 11 bytes (the last 46 streams with none) shared by three
    // coders.
    let text = &alice()[..1001];
    for (count, stride) in [(4, None), (4, Some(5)), (96, None)] {
        let streams = |backend| Options {
            streams: Some(count),
            stride,
            ..options(2, backend)
        };
        let on_cpu = compress(text, &streams(BackendChoice::Cpu)).unwrap();
        let on_gpu = compress(text, &streams(BackendChoice::Gpu)).unwrap();
        assert!(
            on_gpu.bytes == on_cpu.bytes,
            "{count} streams: archives differ between backends"
        );
        let back = decompress(&on_gpu.bytes, &options(2, BackendChoice::Cpu)).unwrap();
        assert!(back.bytes == text, "{count} streams");
        let back = decompress(&on_cpu.bytes, &options(2, BackendChoice::Gpu)).unwrap();
        assert!(back.bytes == text, "{count} streams");
    }
}

#[test]
fn gpu_and_cpu_archives_are_identical_and_decode_on_either_backend() {
    if !gpu_available() {
        return;
    }
    let text = &alice()[..2500];
    for level in [1, 4] {
        let on_cpu = compress(text, &options(level, BackendChoice::Cpu)).unwrap();
        let on_gpu = compress(text, &options(level, BackendChoice::Gpu)).unwrap();
        assert!(
            on_gpu.backend.starts_with("gpu"),
            "ran on {}",
            on_gpu.backend
        );
        assert!(
            on_gpu.bytes == on_cpu.bytes,
            "level {level}: archives differ between backends"
        );
        let back = decompress(&on_cpu.bytes, &options(level, BackendChoice::Gpu)).unwrap();
        assert!(
            back.bytes == text,
            "level {level}: CPU archive decoded on the GPU differs"
        );
        let back = decompress(&on_gpu.bytes, &options(level, BackendChoice::Cpu)).unwrap();
        assert!(
            back.bytes == text,
            "level {level}: GPU archive decoded on the CPU differs"
        );
    }
}

#[test]
fn cli_names_the_adapter_and_round_trips_across_backends() {
    if !gpu_available() {
        return;
    }
    let dir = temp_dir();
    let text = &alice()[..800];
    std::fs::write(dir.path().join("a.txt"), text).unwrap();
    let stderr = assert_ok(&run(bare_nngpu(dir.path()).args([
        "compress",
        "-1",
        "-v",
        "--backend",
        "gpu",
        "a.txt",
    ])));
    assert!(
        stderr.contains("backend gpu ("),
        "no adapter named: {stderr}"
    );
    let stderr = assert_ok(&run(bare_nngpu(dir.path()).args([
        "decompress",
        "-v",
        "--backend",
        "cpu",
        "a.txt.nng",
        "-o",
        "b.txt",
    ])));
    assert!(stderr.contains("backend cpu"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("b.txt")).unwrap(), text);
}

#[test]
fn an_unknown_adapter_is_a_clear_error() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("a.txt"), b"some text").unwrap();
    let output = run(bare_nngpu(dir.path())
        .args(["compress", "--backend", "gpu", "a.txt"])
        .env("NNGPU_ADAPTER", "no-such-adapter-anywhere"));
    assert_fails(&output, "no GPU adapter matching");
    assert_eq!(names_in(dir.path()), ["a.txt"]);
}
