//! The mixing stage under the codec's stream layout: what coding a frame in many streams
//! costs the stage, and where in a segment that cost falls.
//!
//! ```text
//! cargo bench --bench layout -- FILE WIDTH... [--level N] [--block BYTES] [--from BYTES]
//! cargo bench --bench layout -- big.txt 1 8 schedule --level 2
//! ```
//!
//! Each WIDTH (a stream count, or `schedule` for the schedule the encoder follows) runs FILE
//! through a fresh `MixingStage` in the codec's coding order: blocks of the preset's size (or
//! `--block`), ended where the schedule changes the width, each cut into WIDTH contiguous
//! segments coded a byte of each in turn, every segment started afresh
//! (`MixingStage::start_segment`). The LSTM's table is flat (every byte 1/256), so the
//! figures are the stage's own; the widths run side by side, one thread each. Costs are ideal
//! code lengths (the sum of −log2 p over the coded bits), within a few bytes of a coder's
//! output. For every width the bench prints bits per byte over the file and from byte `--from`
//! on (default 4 MiB, where the schedule reaches its full width), and, from `--from` on, bits
//! per byte by the byte's offset in its segment beside the first WIDTH's bits on the same
//! bytes: what the segments' starts cost, and what the later bytes win from the block's other
//! segments being known.

use std::process::ExitCode;

use nngpu::coder::{BitCoder, CoderError, PROB_BITS};
use nngpu::format::Segments;
use nngpu::mix::MixingStage;
use nngpu::model::{presets, schedule};

/// A coder that codes nothing and adds up each bit's ideal code length.
#[derive(Default)]
struct CodeLength {
    bits: f64,
}

impl BitCoder for CodeLength {
    fn code(&mut self, bit: u8, p1: u16) -> Result<u8, CoderError> {
        let p1 = f64::from(p1) / f64::from(1u32 << PROB_BITS);
        self.bits -= if bit == 1 { p1 } else { 1.0 - p1 }.log2();
        Ok(bit)
    }
}

/// How the frame is cut into segments.
#[derive(Clone, Copy)]
enum Width {
    Fixed(u32),
    Schedule,
}

impl Width {
    fn parse(arg: &str) -> Option<Width> {
        match arg {
            "schedule" => Some(Width::Schedule),
            n => n.parse().ok().filter(|&n| n >= 1).map(Width::Fixed),
        }
    }

    fn name(self) -> String {
        match self {
            Width::Fixed(n) => format!("{n} streams"),
            Width::Schedule => "schedule".into(),
        }
    }
}

/// What one width cost: per byte of the file, its ideal code length in bits and its offset in
/// its segment.
struct Run {
    bits: Vec<f32>,
    offset: Vec<u32>,
}

/// Runs `data` through a fresh stage of `level`'s tables in `width`'s layout, blocks of at
/// most `block` bytes, cut as the encoder cuts them (`schedule::BlockCut`, `format::Segments`).
fn run(data: &[u8], width: Width, level: u8, block: usize) -> Run {
    let params = presets::params_for(level, Some(data.len() as u64));
    let cut = schedule::BlockCut {
        block_bytes: block as u64,
        most_streams: match width {
            Width::Fixed(n) => n,
            Width::Schedule => params.streams,
        },
        // The stage codes every byte whatever the stride; the stride only sets the streams.
        most_stride: match width {
            Width::Fixed(_) => 1,
            Width::Schedule => params.lstm_stride.into(),
        },
        fixed: matches!(width, Width::Fixed(_)),
    };
    let mut stage = MixingStage::new(params.mix_log2, cut.most_streams);
    let flat = [256u32; 256];
    let mut coder = CodeLength::default();
    let mut out = Run {
        bits: vec![0.0; data.len()],
        offset: vec![0; data.len()],
    };
    let mut start = 0usize;
    while start < data.len() {
        let len = cut.block_len(start as u64, (data.len() - start) as u64) as usize;
        let segments = Segments::new(len, cut.width(start as u64, len).0 as usize);
        stage.start_block(segments.streams());
        for t in 0..segments.steps() {
            for s in 0..segments.active(t) {
                let offset = segments.offset(s, t);
                if segments.starts_segment(s, offset) {
                    stage.start_segment(s);
                }
                let at = start + offset;
                let before = coder.bits;
                // One stream at a time, to count each byte's bits: the same bits as the whole
                // step at once.
                stage
                    .code_streams(
                        s,
                        &flat,
                        &mut [data[at]],
                        std::slice::from_mut(&mut coder),
                        |_| 0,
                    )
                    .expect("valid probabilities");
                out.bits[at] = (coder.bits - before) as f32;
                out.offset[at] = t as u32;
            }
            stage.end_step();
        }
        start += len;
    }
    out
}

/// Bits per byte over `bits`.
fn per_byte(bits: &[f32]) -> f64 {
    bits.iter().map(|&b| f64::from(b)).sum::<f64>() / bits.len().max(1) as f64
}

/// The value after `flag` among `args`, parsed.
fn option<T: std::str::FromStr>(args: &[String], flag: &str) -> Result<Option<T>, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or(format!("{flag} needs a number")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let parsed = (|| -> Result<_, String> {
        let level = option(&args, "--level")?.unwrap_or(presets::DEFAULT_LEVEL);
        let block: Option<usize> = option(&args, "--block")?;
        let from = option(&args, "--from")?.unwrap_or(4usize << 20);
        let mut free = args
            .iter()
            .enumerate()
            .filter(|&(i, a)| !a.starts_with("--") && (i == 0 || !args[i - 1].starts_with("--")));
        let path = free.next().ok_or("name a file")?.1;
        let widths: Vec<Width> = free
            .map(|(_, a)| Width::parse(a).ok_or(format!("{a}: not a width")))
            .collect::<Result<_, _>>()?;
        if widths.is_empty() {
            return Err("name at least one width: a stream count or `schedule`".into());
        }
        let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        Ok((level, block, from, widths, data))
    })();
    let (level, block, from, widths, data) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("layout: {e}");
            return ExitCode::FAILURE;
        }
    };
    let block =
        block.unwrap_or(1 << presets::params_for(level, Some(data.len() as u64)).block_log2);
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = widths
            .iter()
            .map(|&w| {
                let data = &data;
                scope.spawn(move || run(data, w, level, block))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("run"))
            .collect()
    });
    let from = from.min(data.len());
    println!(
        "{} bytes, level {level}, blocks of {block} bytes; from byte {from} on:",
        data.len()
    );
    for (w, r) in widths.iter().zip(&runs) {
        println!(
            "{:<12} {:>8.4} bits/byte in all, {:>8.4} from byte {from} ({:+.2} % against {})",
            w.name(),
            per_byte(&r.bits),
            per_byte(&r.bits[from..]),
            100.0 * (per_byte(&r.bits[from..]) / per_byte(&runs[0].bits[from..]) - 1.0),
            widths[0].name(),
        );
    }
    const OFFSETS: [u32; 12] = [0, 1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512];
    for (w, r) in widths.iter().zip(&runs).skip(1) {
        println!(
            "{} by offset in its segment, against {}:",
            w.name(),
            widths[0].name()
        );
        for (i, &low) in OFFSETS.iter().enumerate() {
            let high = OFFSETS.get(i + 1).copied().unwrap_or(u32::MAX);
            let (mut n, mut mine, mut theirs) = (0u64, 0f64, 0f64);
            for at in (from..data.len()).filter(|&at| (low..high).contains(&r.offset[at])) {
                n += 1;
                mine += f64::from(r.bits[at]);
                theirs += f64::from(runs[0].bits[at]);
            }
            if n > 0 {
                println!(
                    "  offset {low:>4}..{:<5} {n:>9} bytes {:>7.3} against {:>7.3} bits/byte, {:>+9.0} bytes",
                    if high == u32::MAX {
                        "".into()
                    } else {
                        high.to_string()
                    },
                    mine / n as f64,
                    theirs / n as f64,
                    (mine - theirs) / 8.0
                );
            }
        }
    }
    ExitCode::SUCCESS
}
