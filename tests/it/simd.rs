//! The CPU twin's vector paths (`src/backend/cpu/simd.rs`) against its scalar reference,
//! end to end: the same archive bytes, each decoding the other's archive. The kernels'
//! primitives are compared on raw integers in the library's own tests.

use super::util::{alice, assert_ok, nngpu, run_with_stdin};

/// Compresses `data` (or decompresses it with `-d`) through the binary, on the scalar path if
/// `scalar`, else on the fastest path the CPU has.
fn code(data: &[u8], args: &[&str], scalar: bool) -> Vec<u8> {
    let dir = super::util::temp_dir();
    let mut cmd = nngpu(dir.path());
    cmd.args(args).arg("-c");
    if scalar {
        cmd.env("NNGPU_CPU_SCALAR", "1");
    } else {
        cmd.env_remove("NNGPU_CPU_SCALAR");
    }
    let output = run_with_stdin(&mut cmd, data);
    assert_ok(&output);
    output.stdout
}

#[test]
fn scalar_and_vector_paths_write_the_same_archive_and_read_each_others() {
    let text = &alice()[..10_000];
    for args in [&["-5", "--streams", "1"][..], &["-1", "--streams", "3"][..]] {
        let vector = code(text, args, false);
        let scalar = code(text, args, true);
        assert!(vector == scalar, "{args:?}: the archives differ");
        assert!(
            code(&vector, &["-d"], true) == text,
            "{args:?}: scalar decoding"
        );
        assert!(
            code(&scalar, &["-d"], false) == text,
            "{args:?}: vector decoding"
        );
    }
}
