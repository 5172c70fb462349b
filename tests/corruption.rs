//! The corruption suite: over 10,000 damaged archives per run, drawn from a fixed seed, each
//! decoded by the CPU twin under a tight memory limit.
//!
//! It fails on any panic, on any damaged archive accepted with data other than the original,
//! on an error without a message, and on a peak resident set above `PEAK_MEMORY_CAP`. It
//! prints, per kind of damage, how many archives were tried, rejected, accepted with the right
//! data, panicked or accepted with wrong data, and the peak memory. Accepted with the right
//! data is harmless: it happens only where an edited field plays no part in decoding that
//! data, such as the window or learning rate of the empty and the one-byte sample, which
//! decode without a single training step.
//!
//! A binary of its own (`harness = false` in Cargo.toml): its peak memory is the process's,
//! not shared with other tests running beside it, and its report is printed by
//! `cargo test` rather than captured. Set `NNGPU_CORRUPTION_SEED` to try another seed.

use std::panic::{AssertUnwindSafe, catch_unwind};

use nngpu::backend::BackendChoice;
use nngpu::format::{FRAME_HEADER_LEN as HEADER_LEN, FrameHeader, MAGIC, RECORD_LEN};
use nngpu::model::memory::DEFAULT_MEMORY_LIMIT;
use nngpu::{Error, Options};
use rayon::prelude::*;

/// The seed used unless `NNGPU_CORRUPTION_SEED` names another.
const DEFAULT_SEED: u64 = 0x6E6E_6770_7563_0001;
/// The decoder's memory limit in this suite: far below the default, so the model a hostile
/// header asks for is refused, or small enough to decode in microseconds.
const SUITE_MEMORY_LIMIT: u64 = 16 << 20;
/// Peak resident memory allowed for the whole suite: a few decoders at the limit above, the
/// archives and the test's own bookkeeping.
const PEAK_MEMORY_CAP: u64 = 192 << 20;
/// Bytes of the header CRC at the end of the header.
const CRC_LEN: usize = 4;

/// splitmix64: a seeded generator, so every run tries the same archives.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One kind of damage and its quota.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    HeaderBitFlips,
    Truncations,
    PayloadFlips,
    Overwrites,
    RandomFiles,
    Splices,
    ExtremeHeaders,
}

const KINDS: [(Kind, &str, usize); 7] = [
    (Kind::HeaderBitFlips, "header bit flips", 2000),
    (Kind::Truncations, "truncations", 2000),
    (Kind::PayloadFlips, "payload/trailer flips", 1200),
    (Kind::Overwrites, "overwrites", 1500),
    (Kind::RandomFiles, "random files", 2000),
    (Kind::Splices, "joins, inserts, deletes", 1500),
    (Kind::ExtremeHeaders, "extreme fields, CRC fixed", 600),
];

/// The originals and their level-1 archives the damage starts from.
struct Sample {
    original: Vec<u8>,
    archive: Vec<u8>,
}

fn options(memory_limit: u64) -> Options {
    Options {
        level: 1,
        backend: BackendChoice::Cpu,
        memory_limit,
        ..Options::default()
    }
}

fn samples() -> Vec<Sample> {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/alice29.txt"
    ))
    .expect("tests/data/alice29.txt");
    let mut out = Vec::new();
    for (original, streams, stride) in [
        (text[1000..1256].to_vec(), None, None),
        (text[5000..5256].to_vec(), Some(3), None),
        // Two coders a block: their lengths are damaged too.
        (text[9000..9512].to_vec(), Some(64), None),
        (Vec::new(), None, None),
        (b"x".to_vec(), None, None),
        // The LSTM on every fourth byte of each stream: the strides are damaged too.
        (text[12000..12300].to_vec(), Some(5), Some(4)),
    ] {
        let opts = Options {
            streams,
            stride,
            ..options(SUITE_MEMORY_LIMIT)
        };
        let archive = nngpu::compress(&original, &opts).expect("compress").bytes;
        out.push(Sample { original, archive });
    }
    out
}

/// Recomputes the CRCs of the frame header and of the record after it, so that an edited
/// field reaches the checks behind them.
fn reseal(bytes: &mut [u8]) {
    for (start, end) in [(0, HEADER_LEN), (HEADER_LEN, HEADER_LEN + RECORD_LEN)] {
        if bytes.len() >= end {
            let crc = crc32fast::hash(&bytes[start..end - CRC_LEN]);
            bytes[end - CRC_LEN..end].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

/// The `i`-th damaged archive of `kind`, and the data it must decode to if accepted.
fn damage(kind: Kind, i: usize, rng: &mut Rng, samples: &[Sample]) -> (Vec<u8>, Vec<u8>) {
    // Mostly the two text samples: their payloads are long enough to damage; every eighth
    // archive the two coders', the empty one's or the strided one's.
    let which = if i % 8 == 7 {
        [2, 3, 5][i / 8 % 3]
    } else {
        i % 2
    };
    let base = &samples[which].archive;
    let mut a = base.clone();
    let mut expected = samples[which].original.clone();
    match kind {
        Kind::HeaderBitFlips => {
            // Every single bit first, then two or three bits at once.
            if i < HEADER_LEN * 8 {
                a[i / 8] ^= 1 << (i % 8);
            } else {
                let mut bits = Vec::new();
                while bits.len() < 2 + i % 2 {
                    let bit = rng.below(HEADER_LEN * 8);
                    if !bits.contains(&bit) {
                        bits.push(bit);
                        a[bit / 8] ^= 1 << (bit % 8);
                    }
                }
            }
        }
        Kind::Truncations => {
            let len = if i < base.len() {
                i
            } else {
                rng.below(base.len())
            };
            a.truncate(len);
        }
        Kind::PayloadFlips => {
            let body = a.len() - HEADER_LEN;
            let mut bits = Vec::new();
            while bits.len() < 1 + i % 3 {
                let bit = rng.below(body * 8);
                if !bits.contains(&bit) {
                    bits.push(bit);
                    a[HEADER_LEN + bit / 8] ^= 1 << (bit % 8);
                }
            }
        }
        Kind::Overwrites => {
            let at = rng.below(a.len());
            let len = (1 + rng.below(32)).min(a.len() - at);
            let fill = rng.below(3);
            for b in &mut a[at..at + len] {
                *b = match fill {
                    0 => 0,
                    1 => 0xFF,
                    _ => rng.next() as u8,
                };
            }
            if a == *base {
                a[at] ^= 0x55;
            }
        }
        Kind::RandomFiles => {
            let len = rng.below(1024);
            let mut r = rng.bytes(len);
            // A third start with the magic, a third with a whole valid header.
            let prefix: &[u8] = match i % 3 {
                1 => &MAGIC,
                2 => &base[..HEADER_LEN],
                _ => &[],
            };
            let n = r.len().min(prefix.len());
            r[..n].copy_from_slice(&prefix[..n]);
            a = r;
        }
        Kind::Splices => match i % 4 {
            // A whole archive appended is a second frame: the join decodes to both inputs.
            0 => {
                let other = &samples[rng.below(samples.len())];
                a.extend_from_slice(&other.archive);
                expected.extend_from_slice(&other.original);
            }
            1 => {
                let n = 1 + rng.below(64);
                let tail = rng.bytes(n);
                a.extend_from_slice(&tail);
            }
            2 => {
                let at = rng.below(a.len() + 1);
                let n = 1 + rng.below(16);
                let extra = rng.bytes(n);
                a.splice(at..at, extra);
            }
            _ => {
                let at = rng.below(a.len());
                let len = (1 + rng.below(16)).min(a.len() - at);
                a.drain(at..at + len);
            }
        },
        Kind::ExtremeHeaders => {
            // An edit that happens to write the values already there is no damage: redraw.
            while a == *base {
                extreme_fields(&mut a, rng);
                reseal(&mut a);
            }
        }
    }
    (a, expected)
}

/// Sets one to four fields of the frame header or the first block record to extreme values
/// (the limits, one past them, zero, all ones, or one time in six random bits) without
/// touching the CRCs.
fn extreme_fields(a: &mut [u8], rng: &mut Rng) {
    for _ in 0..1 + rng.below(4) {
        let pick = rng.below(6);
        let random = rng.next();
        let mut put = |at: usize, width: usize, values: &[u64]| {
            let v = values.get(pick).copied().unwrap_or(random);
            a[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
        };
        let record = HEADER_LEN;
        match rng.below(12) {
            0 => put(7, 1, &[0, 1, 4, 5, 255]),
            1 => put(8, 2, &[8, 1024, 1016, 1032, 0xFFFF]),
            2 => put(10, 4, &[1, 65_536, 16_384, 65_537, u32::MAX as u64]),
            3 => put(14, 2, &[1, 64, 65, 0, 0xFFFF]),
            4 => put(16, 4, &[1, 1 << 22, (1 << 22) + 1, 0, u32::MAX as u64]),
            5 => put(20, 1, &[4, 20, 3, 21, 255]),
            6 => put(24, 8, &[0, u64::MAX, 1, 1 << 63, 42]),
            7 => put(21, 1, &[16, 30, 15, 31, 255]),
            8 => put(22, 1, &[16, 26, 15, 27, 255]),
            9 => put(record + 4, 4, &[0, 1, 3, 4, u32::MAX as u64]),
            10 => put(
                record + 8,
                4,
                &[0, 1, 1 << 16, (1 << 26) + 1, u32::MAX as u64],
            ),
            _ => put(record + 12, 4, &[0, 3, 4, 1 << 20, u32::MAX as u64]),
        }
    }
}

/// What decoding one damaged archive did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Rejected,
    /// Accepted with exactly the original data.
    AcceptedRight,
    AcceptedWrong,
    EmptyMessage,
    Panicked,
}

fn judge(archive: &[u8], original: &[u8], memory_limit: u64) -> Verdict {
    let result = catch_unwind(AssertUnwindSafe(|| {
        nngpu::decompress(archive, &options(memory_limit))
    }));
    match result {
        Err(_) => Verdict::Panicked,
        Ok(Err(e)) if e.to_string().is_empty() => Verdict::EmptyMessage,
        Ok(Err(_)) => Verdict::Rejected,
        Ok(Ok(out)) if out.bytes == original => Verdict::AcceptedRight,
        Ok(Ok(_)) => Verdict::AcceptedWrong,
    }
}

/// Peak resident set of this process, from /proc (Linux); `None` elsewhere.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// The headers named in the issue that took a decoder to gigabytes (a 239-byte archive asking
/// for 65,536 streams, a 64-byte one for 16,384): refused by the default limit, before any
/// allocation.
fn known_bombs_are_refused(samples: &[Sample]) {
    for streams in [65_536u32, 16_384] {
        let mut a = samples[0].archive.clone();
        let mut header = FrameHeader::parse(&a).expect("sample header");
        header.params.streams = streams;
        a[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        match nngpu::decompress(&a, &options(DEFAULT_MEMORY_LIMIT)) {
            Err(Error::MemoryLimit { needed, limit }) => {
                assert!(needed > limit, "{streams} streams: {needed} <= {limit}")
            }
            other => panic!(
                "{streams} streams were not refused by the memory limit: {:?}",
                other.map(|o| o.bytes.len())
            ),
        }
    }
}

/// The name libtest would give this suite, for `cargo test` filters.
const NAME: &str = "corruption_suite";

/// Whether libtest-style arguments select this suite: `cargo test NAME` passes NAME (and
/// `--skip NAME`, `--test-threads N`, …) to every test binary, this one included.
fn selected(mut args: impl Iterator<Item = String>) -> bool {
    const TAKES_VALUE: [&str; 6] = [
        "--test-threads",
        "--logfile",
        "--format",
        "--color",
        "-Z",
        "--shuffle-seed",
    ];
    let (mut filters, mut skips, mut exact) = (Vec::new(), Vec::new(), false);
    while let Some(arg) = args.next() {
        if arg == "--list" {
            println!("{NAME}: test");
            return false;
        } else if arg == "--exact" {
            exact = true;
        } else if arg == "--skip" {
            skips.extend(args.next());
        } else if let Some(skip) = arg.strip_prefix("--skip=") {
            skips.push(skip.to_string());
        } else if TAKES_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    let matches = |pattern: &String| {
        if exact {
            pattern == NAME
        } else {
            NAME.contains(pattern.as_str())
        }
    };
    (filters.is_empty() || filters.iter().any(matches)) && !skips.iter().any(matches)
}

fn main() {
    if !selected(std::env::args().skip(1)) {
        return;
    }
    let seed = std::env::var("NNGPU_CORRUPTION_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(DEFAULT_SEED);
    println!("corruption suite: seed {seed:#018x} (NNGPU_CORRUPTION_SEED=<hex> for another)");
    // Panics are counted, not printed one by one (the first is shown below).
    std::panic::set_hook(Box::new(|_| {}));
    let started = std::time::Instant::now();
    let samples = samples();
    known_bombs_are_refused(&samples);

    let mut rng = Rng(seed);
    let mut cases = Vec::new();
    for (k, (kind, _, count)) in KINDS.iter().enumerate() {
        for i in 0..*count {
            let (archive, expected) = damage(*kind, i, &mut rng, &samples);
            cases.push((k, archive, expected));
        }
    }
    let verdicts: Vec<(usize, Verdict)> = cases
        .par_iter()
        .map(|(k, archive, expected)| (*k, judge(archive, expected, SUITE_MEMORY_LIMIT)))
        .collect();
    let _ = std::panic::take_hook();

    println!(
        "{:<27} {:>6} {:>8} {:>14} {:>7} {:>13} {:>9}",
        "kind", "tried", "rejected", "accepted-right", "panics", "accepted-wrong", "no-message"
    );
    let mut totals = [0usize; 6];
    for (k, (_, name, _)) in KINDS.iter().enumerate() {
        let mut row = [0usize; 6];
        for (_, v) in verdicts.iter().filter(|(kk, _)| *kk == k) {
            row[0] += 1;
            row[match v {
                Verdict::Rejected => 1,
                Verdict::AcceptedRight => 2,
                Verdict::Panicked => 3,
                Verdict::AcceptedWrong => 4,
                Verdict::EmptyMessage => 5,
            }] += 1;
        }
        println!(
            "{name:<27} {:>6} {:>8} {:>14} {:>7} {:>13} {:>9}",
            row[0], row[1], row[2], row[3], row[4], row[5]
        );
        for (t, r) in totals.iter_mut().zip(row) {
            *t += r;
        }
    }
    println!(
        "{:<27} {:>6} {:>8} {:>14} {:>7} {:>13} {:>9}",
        "total", totals[0], totals[1], totals[2], totals[3], totals[4], totals[5]
    );
    let peak = peak_rss();
    println!(
        "peak memory {} (cap {} MiB), memory limit {} MiB, {:.1} s",
        peak.map_or("unknown".into(), |p| format!(
            "{:.1} MiB",
            p as f64 / (1 << 20) as f64
        )),
        PEAK_MEMORY_CAP >> 20,
        SUITE_MEMORY_LIMIT >> 20,
        started.elapsed().as_secs_f64()
    );

    let mut failures = Vec::new();
    if totals[0] < 10_000 {
        failures.push(format!("only {} archives tried", totals[0]));
    }
    if totals[3] > 0 {
        failures.push(format!("{} panics", totals[3]));
    }
    if totals[4] > 0 {
        failures.push(format!(
            "{} damaged archives decoded to wrong data",
            totals[4]
        ));
    }
    if totals[5] > 0 {
        failures.push(format!("{} errors without a message", totals[5]));
    }
    if let Some(peak) = peak.filter(|&p| p > PEAK_MEMORY_CAP) {
        failures.push(format!(
            "peak memory {peak} bytes above the cap {PEAK_MEMORY_CAP}"
        ));
    }
    if !failures.is_empty() {
        // Show the first offending archive of each failing kind, so it can be replayed.
        for ((k, archive, expected), (_, v)) in cases.iter().zip(&verdicts) {
            if matches!(
                v,
                Verdict::Panicked | Verdict::AcceptedWrong | Verdict::EmptyMessage
            ) {
                eprintln!(
                    "{v:?}: {} (expected {} bytes): {archive:02x?}",
                    KINDS[*k].1,
                    expected.len()
                );
                break;
            }
        }
        eprintln!(
            "corruption suite FAILED (seed {seed:#018x}): {}",
            failures.join("; ")
        );
        std::process::exit(1);
    }
    println!("corruption suite passed");
}
