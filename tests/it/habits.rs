//! zstd's and xz's habits, each row of README.md's habits table through the real binary.
//! Inputs are a few hundred bytes at `-1`, so each run takes milliseconds. The rows about
//! terminals run under a pseudo-terminal in `terminal`.

use super::util::sh;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::util::{
    assert_fails, assert_ok, bare_nngpu, names_in, nngpu, pack, run, run_with_stdin, short_text,
    temp_dir, unpack,
};
use nngpu::format::{FRAME_HEADER_LEN, RECORD_LEN};

/// Where the first block's payload starts.
const PAYLOAD: usize = FRAME_HEADER_LEN + RECORD_LEN;

fn write(dir: &Path, name: &str, data: &[u8]) {
    fs::write(dir.join(name), data).unwrap();
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn mode_flags_subcommands_and_the_last_mode_wins() {
    let dir = temp_dir();
    let d = dir.path();
    let data = short_text();
    write(d, "a", &data);
    // `nngpu FILE` compresses; `-z` and `compress` too.
    assert_ok(&run(nngpu(d).args(["-1", "a"])));
    let archive = read(d, "a.nng");
    assert_eq!(unpack(&archive).unwrap(), data);
    assert_ok(&run(nngpu(d).args(["-1", "-z", "-f", "a"])));
    assert_eq!(read(d, "a.nng"), archive);
    assert_ok(&run(nngpu(d).args(["compress", "-1", "-f", "a"])));
    assert_eq!(read(d, "a.nng"), archive);
    // `-d`, `--uncompress` and `decompress`.
    for flags in [
        &["-d"][..],
        &["--uncompress"],
        &["decompress"],
        &["-t", "-z", "-d"],
    ] {
        fs::remove_file(d.join("a")).unwrap();
        assert_ok(&run(nngpu(d).args(flags).arg("a.nng")));
        assert_eq!(read(d, "a"), data, "{flags:?}");
    }
    // The last mode wins: `-d … -z` compresses.
    assert_ok(&run(nngpu(d).args(["-d", "-1", "-z", "-f", "a"])));
    assert_eq!(read(d, "a.nng"), archive);
    // `-t` and `test` write nothing; `-l` and `list` print a listing.
    for flags in [&["-t"][..], &["test"], &["-d", "-t"]] {
        let out = run(nngpu(d).args(flags).arg("a.nng"));
        assert_eq!(assert_ok(&out), "");
        assert!(out.stdout.is_empty());
    }
    for flags in [&["-l"][..], &["list"], &["-d", "-l"]] {
        let out = run(nngpu(d).args(flags).arg("a.nng"));
        assert_ok(&out);
        assert!(String::from_utf8_lossy(&out.stdout).contains("a.nng"));
    }
    assert_eq!(names_in(d), ["a", "a.nng"]);
}

#[test]
fn pipes_round_trip() {
    let dir = temp_dir();
    let d = dir.path();
    write(d, "f", &short_text());
    let script = format!(
        "cat f | '{bin}' -1 | '{bin}' -d | cmp - f",
        bin = env!("CARGO_BIN_EXE_nngpu")
    );
    let out = sh(d, &script);
    assert_ok(&out);
    assert_eq!(names_in(d), ["f"]);
}

#[test]
fn several_files_each_to_its_own_output() {
    let dir = temp_dir();
    let d = dir.path();
    let data = short_text();
    for (name, len) in [("a", 100), ("b", 200), ("c", 300)] {
        write(d, name, &data[..len]);
    }
    assert_ok(&run(nngpu(d).args(["-1", "a", "b", "c"])));
    assert_eq!(names_in(d), ["a", "a.nng", "b", "b.nng", "c", "c.nng"]);
    assert_eq!(unpack(&read(d, "b.nng")).unwrap(), &data[..200]);
    assert_ok(&run(
        nngpu(d).args(["-d", "--rm", "a.nng", "b.nng", "c.nng", "-f"])
    ));
    assert_eq!(names_in(d), ["a", "b", "c"]);
    assert_eq!(read(d, "c"), &data[..300]);
    // Decompressing several to standard output concatenates them.
    assert_ok(&run(nngpu(d).args(["-1", "a", "b"])));
    let out = run(nngpu(d).args(["-dc", "a.nng", "b.nng"]));
    assert_ok(&out);
    assert_eq!(
        out.stdout,
        &data[..100]
            .iter()
            .chain(&data[..200])
            .copied()
            .collect::<Vec<_>>()[..]
    );
    // One failing input does not stop the others; the status says something failed.
    let out = run(nngpu(d).args(["-1", "-f", "a", "absent", "c"]));
    assert_fails(&out, "nngpu: absent: No such file or directory");
    assert!(names_in(d).contains(&"c.nng".to_string()));
}

#[test]
fn output_flag_takes_one_input_only() {
    let dir = temp_dir();
    let d = dir.path();
    write(d, "a", b"aaa");
    write(d, "b", b"bbb");
    let out = run(nngpu(d).args(["-1", "-o", "x", "a", "b"]));
    assert_fails(&out, "-o names one output");
    assert_eq!(names_in(d), ["a", "b"]);
    // With -c, several inputs become joined archives (one after the other), as zstd does.
    let out = run(nngpu(d).args(["-1", "-c", "a", "b"]));
    assert_ok(&out);
    let one_by_one: Vec<u8> = ["a", "b"]
        .iter()
        .flat_map(|name| assert_ok_stdout(&run(nngpu(d).args(["-1", "-c", name]))))
        .collect();
    assert_eq!(out.stdout, one_by_one);
    assert_eq!(names_in(d), ["a", "b"]);
}

/// The standard output of a successful run.
fn assert_ok_stdout(output: &std::process::Output) -> Vec<u8> {
    assert_ok(output);
    output.stdout.clone()
}

#[test]
fn inputs_are_kept_unless_rm_and_rm_waits_for_a_complete_output() {
    let dir = temp_dir();
    let d = dir.path();
    let data = short_text();
    write(d, "k", &data);
    assert_ok(&run(nngpu(d).args(["-1", "-k", "k"])));
    assert_eq!(names_in(d), ["k", "k.nng"]);
    write(d, "r", &data);
    assert_ok(&run(nngpu(d).args(["-1", "--rm", "r"])));
    assert_eq!(names_in(d), ["k", "k.nng", "r.nng"]);
    assert_eq!(unpack(&read(d, "r.nng")).unwrap(), data);
    // The last of -k and --rm wins.
    assert_ok(&run(nngpu(d).args(["-d", "--rm", "-k", "r.nng"])));
    assert!(d.join("r.nng").exists());
    assert_ok(&run(nngpu(d).args(["-d", "-f", "-k", "--rm", "r.nng"])));
    assert!(!d.join("r.nng").exists());
    assert_eq!(read(d, "r"), data);
    // A failed run deletes nothing; standard output is no file to wait for, so -c keeps.
    let mut bad = read(d, "k.nng");
    bad[PAYLOAD + 5] ^= 1;
    write(d, "bad.nng", &bad);
    assert_fails(&run(nngpu(d).args(["-d", "--rm", "bad.nng"])), "bad.nng");
    assert!(d.join("bad.nng").exists());
    assert_ok(&run(nngpu(d).args(["-dc", "--rm", "k.nng"])));
    assert!(d.join("k.nng").exists());
    // An existing output refused without -f keeps the input too.
    assert_fails(
        &run(nngpu(d).args(["-d", "--rm", "k.nng"])),
        "already exists",
    );
    assert!(d.join("k.nng").exists());
}

#[test]
fn quiet_and_verbose() {
    let dir = temp_dir();
    let d = dir.path();
    write(d, "v", &short_text());
    let out = run(nngpu(d).args(["-1", "-v", "v"]));
    let stderr = assert_ok(&out);
    assert!(
        stderr.contains("v: 300 -> ") && stderr.contains("bits/byte"),
        "{stderr}"
    );
    assert!(!stderr.contains("layers"), "{stderr}");
    let out = run(nngpu(d).args(["-d", "-c", "-vv", "v.nng"]));
    let stderr = assert_ok(&out);
    assert!(
        stderr.contains("backend cpu") && stderr.contains("layers x 32 cells"),
        "{stderr}"
    );
    // -q hides warnings (the status still says 2), -qq errors too (the status says 1).
    let out = run(nngpu(d).args(["-1", "-q", "v.nng"]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_of(&out), "");
    let out = run(nngpu(d).args(["-1", "-qq", "absent"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_of(&out), "");
    let out = run(nngpu(d).args(["-1", "-q", "absent"]));
    assert_fails(&out, "absent");
}

#[test]
fn archives_are_skipped_with_a_warning_unless_forced() {
    let dir = temp_dir();
    let d = dir.path();
    write(d, "x.nng", &pack(b"already compressed", 1));
    write(d, "y", &short_text());
    let out = run(nngpu(d).args(["-1", "x.nng", "y"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(
        stderr_of(&out),
        "nngpu: x.nng: already has the .nng suffix, skipping (use -f to compress it anyway)\n"
    );
    assert_eq!(names_in(d), ["x.nng", "y", "y.nng"]);
    assert_ok(&run(nngpu(d).args(["-1", "-f", "x.nng"])));
    assert!(d.join("x.nng.nng").exists());
    // An error outranks a warning in the exit status.
    let out = run(nngpu(d).args(["-1", "x.nng", "absent"]));
    assert_eq!(out.status.code(), Some(1));
}

/// Mode and modification time of `path`.
fn attributes(path: &Path) -> (u32, SystemTime) {
    let meta = fs::metadata(path).unwrap();
    (meta.permissions().mode() & 0o7777, meta.modified().unwrap())
}

#[test]
fn outputs_keep_the_inputs_mode_and_time() {
    let dir = temp_dir();
    let d = dir.path();
    write(d, "m", &short_text());
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    let file = fs::File::options().write(true).open(d.join("m")).unwrap();
    file.set_modified(old).unwrap();
    drop(file);
    fs::set_permissions(d.join("m"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_ok(&run(nngpu(d).args(["-1", "m"])));
    assert_eq!(attributes(&d.join("m.nng")), (0o640, old));
    fs::remove_file(d.join("m")).unwrap();
    assert_ok(&run(nngpu(d).args(["-d", "m.nng"])));
    assert_eq!(attributes(&d.join("m")), (0o640, old));
    // A file replaced with -f gets the input's mode, not its own nor 0600.
    write(d, "m", b"older contents");
    fs::set_permissions(d.join("m"), fs::Permissions::from_mode(0o644)).unwrap();
    assert_ok(&run(nngpu(d).args(["-d", "-f", "m.nng"])));
    assert_eq!(attributes(&d.join("m")), (0o640, old));
    // -o keeps them too; standard input gives a new file's usual mode (0666 less the umask).
    assert_ok(&run(nngpu(d).args(["-1", "m", "-o", "named"])));
    assert_eq!(attributes(&d.join("named")), (0o640, old));
    let out = run_with_stdin(nngpu(d).args(["-1", "-o", "fromstdin"]), b"abc");
    assert_ok(&out);
    let mode = attributes(&d.join("fromstdin")).0;
    assert_ne!(
        mode, 0o600,
        "a file written from standard input is mode 0600"
    );
    assert_eq!(mode & 0o600, 0o600);
}

#[test]
fn each_error_once_as_nngpu_file_message() {
    let dir = temp_dir();
    let d = dir.path();
    let archive = pack(&short_text(), 1);
    write(d, "cut.nng", &archive[..100]);
    let out = run(nngpu(d).args(["-d", "cut.nng"]));
    assert_fails(&out, "truncated");
    assert_eq!(
        stderr_of(&out),
        "nngpu: cut.nng: truncated archive: the input ends inside a block's payload\n"
    );
    let out = run(nngpu(d).args(["-1", "absent.txt"]));
    assert_eq!(
        stderr_of(&out),
        "nngpu: absent.txt: No such file or directory\n"
    );
    assert_eq!(out.status.code(), Some(1));
    let out = run_with_stdin(nngpu(d).arg("-d"), b"not an archive");
    assert_eq!(
        stderr_of(&out),
        "nngpu: (stdin): not an nngpu archive (bad magic)\n"
    );
    // Usage errors look the same and exit 1 too.
    let out = run(nngpu(d).arg("--no-such-flag"));
    let stderr = assert_fails(&out, "--no-such-flag");
    assert!(
        stderr.starts_with("nngpu: unexpected argument '--no-such-flag'"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("nngpu: ").count(), 1, "{stderr}");
}

#[test]
fn test_mode_writes_nothing_and_fails_on_damage() {
    let dir = temp_dir();
    let d = dir.path();
    let mut archive = pack(&short_text(), 1);
    write(d, "good.nng", &archive);
    let out = run(nngpu(d).args(["-t", "good.nng"]));
    assert_eq!(assert_ok(&out), "");
    let out = run(nngpu(d).args(["-tv", "good.nng"]));
    assert!(assert_ok(&out).contains("good.nng: OK"));
    archive[PAYLOAD + 10] ^= 4;
    write(d, "bad.nng", &archive);
    for flags in [&["-t"][..], &["-t", "-f"], &["-t", "-o", "out"]] {
        let out = run(nngpu(d).args(flags).arg("bad.nng"));
        assert_fails(&out, "nngpu: bad.nng: corrupt archive");
    }
    assert_eq!(names_in(d), ["bad.nng", "good.nng"]);
}

#[test]
fn list_and_json() {
    let dir = temp_dir();
    let d = dir.path();
    write(d, "a.nng", &pack(&short_text(), 1));
    write(d, "b.nng", &pack(b"", 2));
    let out = run(nngpu(d).args(["-l", "a.nng", "b.nng"]));
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("ratio") && lines[0].contains("memory"),
        "{text}"
    );
    assert!(
        lines[1].contains("300") && lines[1].ends_with("a.nng"),
        "{text}"
    );
    let out = run(nngpu(d).args(["-lv", "a.nng"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = format!("format version   {}", nngpu::format::FORMAT_VERSION);
    for field in [
        version.as_str(),
        "1 layers x 32 cells",
        "window 16",
        "xxh64",
        "block 0",
    ] {
        assert!(text.contains(field), "{field}: {text}");
    }
    let out = run(nngpu(d).args(["-l", "--json", "a.nng", "b.nng"]));
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let json_version = format!(
        "{{\"file\":\"a.nng\",\"format_version\":{},",
        nngpu::format::FORMAT_VERSION
    );
    for field in [
        json_version.as_str(),
        "\"original_bytes\":300,",
        "\"model\":{\"layers\":1,\"cells\":32,\"window\":16,\"lstm_stride\":1,\"learning_rate\":0.003,",
        "\"decoder_memory\":{\"weights\":",
        "\"frames\":[{\"offset\":0,",
        "\"blocks\":[{\"bytes\":300,",
    ] {
        assert!(lines[0].contains(field), "{field}: {}", lines[0]);
    }
    assert!(
        lines[1].contains("\"ratio\":0,\"bits_per_byte\":null"),
        "{}",
        lines[1]
    );
    // Each line is one valid JSON document, frames → blocks even for a single frame.
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
    assert_eq!(v["frames"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["frames"][0]["blocks"][0]["streams"], 1);
    assert_eq!(v["frames"][0]["model"]["cells"], 32);
    let memory = &v["decoder_memory"];
    let parts: u64 = [
        "weights",
        "optimizer",
        "lstm_state",
        "window",
        "mixing",
        "blocks",
    ]
    .iter()
    .map(|k| memory[k].as_u64().expect(k))
    .sum();
    assert_eq!(memory["total"].as_u64(), Some(parts));
    let hash = v["frames"][0]["checksum"]["value"].as_str().map(str::len);
    assert_eq!(hash, Some(16));
    let v: serde_json::Value = serde_json::from_str(lines[1]).expect("valid JSON");
    assert_eq!(v["original_bytes"], 0);
    // A damaged archive is an error in a listing too.
    write(d, "c.nng", b"\x89NNG");
    assert_fails(
        &run(nngpu(d).args(["-l", "c.nng"])),
        "nngpu: c.nng: truncated",
    );
    assert_fails(
        &run(nngpu(d).args(["--json", "a.nng"])),
        "--json goes with -l",
    );
}

#[test]
fn memory_limit_refuses_big_models_before_allocating() {
    let dir = temp_dir();
    let d = dir.path();
    write(d, "a.nng", &pack(&short_text(), 1));
    let out = run(nngpu(d).args(["-t", "--memory-limit", "64K", "a.nng"]));
    let stderr = assert_fails(&out, "nngpu: a.nng: the model needs");
    assert!(stderr.contains("above the limit of 64.0 KiB"), "{stderr}");
    for size in ["2M", "2MiB", "3m", "0", "max"] {
        assert_ok(&run(nngpu(d).args(["-t", "--memory-limit", size, "a.nng"])));
    }
    assert_ok(&run(nngpu(d).args(["-t", "-M", "1G", "a.nng"])));
    assert_fails(&run(nngpu(d).args(["-t", "-M", "12X", "a.nng"])), "12X");
    // The encoder honours the limit too: a model it could not decode is never written.
    write(d, "b", &short_text());
    let out = run(nngpu(d).args(["-9", "-M", "1M", "b"]));
    assert_fails(&out, "nngpu: b: the model needs");
    assert_eq!(names_in(d), ["a.nng", "b"]);
}

#[test]
fn adapter_names_that_match_nothing_list_the_adapters() {
    let dir = temp_dir();
    let d = dir.path();
    write(d, "a", b"abc");
    for backend in ["auto", "gpu"] {
        let out =
            run(bare_nngpu(d).args(["--backend", backend, "--adapter", "no-such-gpu-x", "a"]));
        let stderr = assert_fails(
            &out,
            "nngpu: --adapter: no GPU adapter matching \"no-such-gpu-x\"",
        );
        assert!(
            stderr.contains("adapters found: ") || stderr.contains("no adapter at all"),
            "{stderr}"
        );
    }
    assert_eq!(names_in(d), ["a"]);
    // The CPU needs no adapter: the name is not checked.
    assert_ok(&run(bare_nngpu(d).args([
        "--backend",
        "cpu",
        "--adapter",
        "nothing",
        "-1",
        "a",
    ])));
}

#[test]
fn lavapipe_names_llvmpipe() {
    if nngpu::backend::gpu::usable_adapters(Some("llvmpipe")).is_empty() {
        return; // No lavapipe here; `cross_backend` says whether GPU tests ran at all.
    }
    assert!(!nngpu::backend::gpu::usable_adapters(Some("lavapipe")).is_empty());
    assert!(!nngpu::backend::gpu::usable_adapters(Some("LavaPipe")).is_empty());
    let dir = temp_dir();
    let d = dir.path();
    write(d, "a", b"abc");
    let out = run(bare_nngpu(d).args(["-1", "-v", "--adapter", "lavapipe", "a"]));
    let stderr = assert_ok(&out);
    assert!(stderr.contains("backend gpu (llvmpipe"), "{stderr}");
}

#[test]
fn probing_for_adapters_prints_no_loader_noise() {
    let dir = temp_dir();
    let d = dir.path();
    write(d, "a", &short_text());
    // Without XDG_RUNTIME_DIR, Mesa's Vulkan driver complains while adapters are listed.
    let out = run(bare_nngpu(d)
        .env_remove("XDG_RUNTIME_DIR")
        .args(["-1", "a"]));
    assert_eq!(assert_ok(&out), "");
    // `auto` probes only for inputs of many streams; `gpu` always does. Without an adapter it
    // fails, but with nngpu's own message alone.
    let out = run(bare_nngpu(d).env_remove("XDG_RUNTIME_DIR").args([
        "-d",
        "-c",
        "--backend",
        "gpu",
        "a.nng",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().all(|l| l.starts_with("nngpu: ")), "{stderr}");
}
