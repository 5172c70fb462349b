//! The `nngpu` binary as a stream: inputs larger than any buffer through pipes, joined
//! archives, thread counts that leave the archive unchanged, outputs that cannot be created
//! (refused before any work), and signals that leave no temporary file behind. Inputs are
//! generated text at `-1` on the CPU twin, which codes about 100 KB/s on two cores, so the
//! tests with hundreds of kilobytes take seconds.

use super::util::sh;
use std::fs;
use std::path::Path;

use super::util::{
    assert_fails, assert_ok, names_in, nngpu, pack, run, run_with_stdin, short_text, temp_dir, text,
};

#[test]
fn more_than_a_mebibyte_through_pipes() {
    let dir = temp_dir();
    let d = dir.path();
    let data = text((1 << 20) + 4099, 1);
    // 64 streams code faster on the CPU than the preset's one, and still go through the
    // same pipes and buffers.
    let packed = run_with_stdin(nngpu(d).args(["-1", "--streams", "64"]), &data);
    assert_ok(&packed);
    let unpacked = run_with_stdin(nngpu(d).arg("-d"), &packed.stdout);
    assert_ok(&unpacked);
    assert!(unpacked.stdout == data, "the round trip changed the data");
    assert!(names_in(d).is_empty(), "{:?}", names_in(d));
}

#[test]
fn thread_counts_give_identical_archives() {
    let dir = temp_dir();
    let d = dir.path();
    let data = text(200_000, 2);
    fs::write(d.join("in"), &data).unwrap();
    let archive = |threads: &str| {
        let out = run(nngpu(d).args(["-1", "-c", "--frame-size", "64K", "-T", threads, "in"]));
        assert_ok(&out);
        out.stdout
    };
    let one = archive("1");
    assert!(
        one == archive("2"),
        "-T 1 and -T 2 wrote different archives"
    );
    let back = run_with_stdin(nngpu(d).args(["-d", "-T", "2"]), &one);
    assert_ok(&back);
    assert!(back.stdout == data, "the round trip changed the data");
}

#[test]

fn joined_archives_decode_to_joined_inputs() {
    let dir = temp_dir();
    let d = dir.path();
    let (a, b) = (text(3000, 3), short_text());
    fs::write(d.join("a"), &a).unwrap();
    fs::write(d.join("b"), &b).unwrap();
    assert_ok(&run(nngpu(d).args(["-1", "a", "b"])));
    let script = format!("cat a.nng b.nng | '{}' -d", env!("CARGO_BIN_EXE_nngpu"));
    let out = sh(d, &script);
    assert_ok(&out);
    assert!(
        out.stdout == [a, b].concat(),
        "the joined archives decode to something else"
    );
}

#[test]
fn a_listing_reads_a_pipe() {
    let dir = temp_dir();
    let out = run_with_stdin(nngpu(dir.path()).arg("-l"), &pack(&short_text(), 1));
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("300") && text.contains("(stdin)"), "{text}");
}

#[test]
fn an_output_that_cannot_be_created_fails_before_any_work() {
    let dir = temp_dir();
    let d = dir.path();
    fs::write(d.join("in"), short_text()).unwrap();
    // The memory limit would refuse the model once work started: the output's error comes
    // first, so the output was created before it.
    let out = run(nngpu(d).args(["-1", "-M", "64K", "-o", "missing/out", "in"]));
    assert_fails(
        &out,
        "nngpu: missing/out: cannot create a file in missing: No such file or directory",
    );
    // A damaged archive likewise: the output is refused before decoding starts.
    fs::write(d.join("bad.nng"), b"not an archive").unwrap();
    let out = run(nngpu(d).args(["-d", "-o", "in/out", "bad.nng"]));
    assert_fails(
        &out,
        "nngpu: in/out: cannot create a file in in: Not a directory",
    );
    assert_eq!(names_in(d), ["bad.nng", "in"]);
}

/// Starts compressing a few hundred kilobytes slowly (`-9` on the CPU), sends `signal` once
/// the temporary output exists, and checks the exit status and that only the input is left.
#[cfg(unix)]
fn interrupted(signal: libc::c_int, status: i32) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = temp_dir();
    let d = dir.path();
    fs::write(d.join("big"), text(300_000, 4)).unwrap();
    let mut child = nngpu(d)
        .args(["-9", "big"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start nngpu");
    let started = Instant::now();
    while !has_temporary_file(d) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no temporary file after 30 s: {:?}",
            names_in(d)
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "nngpu ended before the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory effects; the child has not been waited for, so its pid is
    // still its own.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill failed");
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("nngpu went on after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(status), "{exit}");
    assert_eq!(names_in(d), ["big"]);
}

/// Whether `dir` holds a temporary output, `.nngpu-*.tmp`.
#[cfg(unix)]
fn has_temporary_file(dir: &Path) -> bool {
    names_in(dir)
        .iter()
        .any(|name| name.starts_with(".nngpu-") && name.ends_with(".tmp"))
}

#[cfg(unix)]
#[test]
fn sigint_removes_the_temporary_output() {
    interrupted(libc::SIGINT, 130);
}

#[cfg(unix)]
#[test]
fn sigterm_removes_the_temporary_output() {
    interrupted(libc::SIGTERM, 143);
}
