//! What `nngpu -l` shows of an archive: built from the parsed frames alone, without decoding
//! (so it is instant and allocates nothing the header asks for).
//!
//! The shape is frames → blocks even while a version-1 archive holds exactly one frame of one
//! block, so later formats (several frames, blocks coded in parallel) only add entries and
//! scripts reading `--json` keep working.

use std::fmt::Write as _;

use super::{ArchiveReader, BlockKind, Coders, FORMAT_VERSION, FrameHeader, Record};
use crate::error::Error;
use crate::model::memory::{ModelMemory, model_state};

/// One block: a run of original bytes coded by its frame's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockListing {
    /// Original bytes the block decodes to.
    pub original_bytes: u64,
    /// Bytes the block stores (its payload, without its 24-byte record).
    pub coded_bytes: u64,
    /// Parallel streams the block is coded in.
    pub streams: u32,
    /// Bytes of each stream per LSTM step.
    pub stride: u8,
    /// Whether the block is stored raw (coding would not have made it smaller).
    pub raw: bool,
}

/// One frame: a header, its blocks and its content checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameListing {
    /// Byte offset of the frame in the archive.
    pub offset: u64,
    /// Bytes of the frame, header and records included.
    pub bytes: u64,
    /// The frame's checked header.
    pub header: FrameHeader,
    /// Original bytes of the frame's data, as its end record states.
    pub original_bytes: u64,
    /// XXH64 of the frame's original data, as stored in its end record.
    pub content_hash: u64,
    /// The frame's blocks, in order.
    pub blocks: Vec<BlockListing>,
}

/// Everything `-l` reports about one archive. `read` succeeds exactly when the archive's
/// structure is valid (as decoding checks it); the payloads are not decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// Bytes of the whole archive.
    pub archive_bytes: u64,
    /// Its frames, in order.
    pub frames: Vec<FrameListing>,
}

impl BlockListing {
    /// Decoder steps the block takes: one per `stride` bytes of its longest stream.
    pub fn steps(&self) -> u64 {
        let longest = self.original_bytes.div_ceil(u64::from(self.streams.max(1)));
        longest.div_ceil(u64::from(self.stride.max(1)))
    }

    /// Arithmetic coders a coded block's payload holds (`Coders`): how many cores its decoder
    /// can code each step on; 0 for a raw block.
    pub fn coders(&self) -> usize {
        match self.raw {
            true => 0,
            false => Coders::new(self.streams as usize).count(),
        }
    }
}

impl FrameListing {
    /// The model state a decoder of this frame needs.
    pub fn memory(&self) -> ModelMemory {
        model_state(&self.header.params)
    }

    /// Frame bits per original byte, header and records included; `None` for an empty frame.
    pub fn bits_per_byte(&self) -> Option<f64> {
        (self.original_bytes > 0).then(|| self.bytes as f64 * 8.0 / self.original_bytes as f64)
    }
}

/// Where a listing reads an archive from: bytes in order, with a way to pass over payloads
/// (a file seeks past them; a pipe reads and drops them).
pub trait Source: std::io::Read {
    /// Passes over the next `bytes` bytes.
    fn skip(&mut self, bytes: u64) -> std::io::Result<()>;
}

impl Source for std::fs::File {
    fn skip(&mut self, bytes: u64) -> std::io::Result<()> {
        use std::io::Seek;
        let offset = i64::try_from(bytes).map_err(std::io::Error::other)?;
        self.seek_relative(offset)
    }
}

/// A source that can only be read forwards (standard input, a pipe, a byte slice).
pub struct Forward<R>(pub R);

impl<R: std::io::Read> std::io::Read for Forward<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: std::io::Read> Source for Forward<R> {
    fn skip(&mut self, bytes: u64) -> std::io::Result<()> {
        let mut rest = std::io::Read::take(&mut self.0 as &mut dyn std::io::Read, bytes);
        let skipped = std::io::copy(&mut rest, &mut std::io::sink())?;
        if skipped < bytes {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

impl Listing {
    /// Lists the archive `input` holds, frame by frame and block by block, reading only the
    /// headers and records (payloads are skipped). Fails as decoding would on a structural
    /// error: even where a file seeks past a payload the file does not hold, the frame's end
    /// record, which must follow, is then missing.
    pub fn read(input: &mut dyn Source) -> Result<Listing, Error> {
        let mut reader = ArchiveReader::new(input);
        let mut frames = Vec::new();
        loop {
            let offset = reader.offset();
            let Some(header) = reader.next_frame()? else {
                break;
            };
            let mut blocks = Vec::new();
            let end = loop {
                match reader.next_record()? {
                    Record::Block(b) => {
                        reader.skip_payload(|source, bytes| source.skip(bytes))?;
                        let (streams, raw) = match b.kind {
                            BlockKind::Coded { streams } => (streams, false),
                            BlockKind::Raw { streams } => (streams, true),
                        };
                        blocks.push(BlockListing {
                            original_bytes: u64::from(b.original_len),
                            coded_bytes: u64::from(b.stored_len),
                            streams,
                            stride: b.stride,
                            raw,
                        });
                    }
                    Record::End(end) => break end,
                }
            };
            frames.push(FrameListing {
                offset,
                bytes: reader.offset() - offset,
                header,
                original_bytes: end.original_len,
                content_hash: end.content_hash,
                blocks,
            });
        }
        Ok(Listing {
            archive_bytes: reader.offset(),
            frames,
        })
    }

    /// Lists an archive held in memory.
    pub fn of_archive(bytes: &[u8]) -> Result<Listing, Error> {
        Listing::read(&mut Forward(bytes))
    }

    /// Original bytes of all frames.
    pub fn original_bytes(&self) -> u64 {
        self.frames.iter().map(|f| f.original_bytes).sum()
    }

    /// Decoder steps of all blocks: the archive's original bytes over this is the mean number
    /// of bytes one step codes, what a GPU's throughput follows.
    pub fn steps(&self) -> u64 {
        self.frames
            .iter()
            .flat_map(|f| &f.blocks)
            .map(BlockListing::steps)
            .sum()
    }

    /// Original bytes per archive byte (higher is better); `None` for an empty archive.
    pub fn ratio(&self) -> Option<f64> {
        (self.archive_bytes > 0).then(|| self.original_bytes() as f64 / self.archive_bytes as f64)
    }

    /// Archive bits per original byte, header and trailer included; `None` for empty data.
    pub fn bits_per_byte(&self) -> Option<f64> {
        let original = self.original_bytes();
        (original > 0).then(|| self.archive_bytes as f64 * 8.0 / original as f64)
    }

    /// The most model state any frame needs: what decoding the archive will hold at once.
    pub fn memory(&self) -> ModelMemory {
        self.frames
            .iter()
            .map(FrameListing::memory)
            .max_by_key(ModelMemory::total)
            .unwrap_or_default()
    }

    /// One JSON object (on one line) describing the archive named `name`. The fields and
    /// their meaning are documented in README.md; new fields may be added, none removed.
    pub fn to_json(&self, name: &str) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"file\":{},\"format_version\":{FORMAT_VERSION},\"archive_bytes\":{},\
             \"original_bytes\":{},\"ratio\":{},\"bits_per_byte\":{},\"steps\":{},\
             \"decoder_memory\":{},\"frames\":[",
            json_string(name),
            self.archive_bytes,
            self.original_bytes(),
            json_number(self.ratio()),
            json_number(self.bits_per_byte()),
            self.steps(),
            memory_json(&self.memory()),
        );
        for (i, frame) in self.frames.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            frame_json(&mut out, frame);
        }
        out.push_str("]}");
        out
    }
}

fn frame_json(out: &mut String, frame: &FrameListing) {
    let h = &frame.header;
    let p = &h.params;
    let _ = write!(
        out,
        "{{\"offset\":{},\"bytes\":{},\"original_bytes\":{},\"preset\":{},\
         \"model\":{{\"layers\":{},\"cells\":{},\"window\":{},\"lstm_stride\":{},\"learning_rate\":{},\
         \"learning_rate_q24\":{},\"beta2_shift\":{},\"seed\":{},\"mixing_table_bytes\":{},\
         \"block_bytes\":{}}},\
         \"checksum\":{{\"type\":\"xxh64\",\"value\":\"{:016x}\"}},\"decoder_memory\":{},\
         \"blocks\":[",
        frame.offset,
        frame.bytes,
        frame.original_bytes,
        h.preset,
        p.layers,
        p.cells,
        p.window,
        p.lstm_stride,
        json_number(Some(learning_rate(p.learning_rate_q24))),
        p.learning_rate_q24,
        p.beta2_shift,
        p.seed,
        1u64 << p.mix_log2,
        1u64 << p.block_log2,
        frame.content_hash,
        memory_json(&frame.memory()),
    );
    for (i, b) in frame.blocks.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"bytes\":{},\"coded_bytes\":{},\"streams\":{},\"stride\":{},\"coders\":{},\"steps\":{},\"raw\":{}}}",
            if i > 0 { "," } else { "" },
            b.original_bytes,
            b.coded_bytes,
            b.streams,
            b.stride,
            b.coders(),
            b.steps(),
            b.raw
        );
    }
    out.push_str("]}");
}

/// The learning rate a Q24 field stands for.
pub fn learning_rate(q24: u32) -> f64 {
    q24 as f64 / (1u64 << 24) as f64
}

fn memory_json(m: &ModelMemory) -> String {
    let mut out = String::from("{");
    for (name, bytes) in m.parts() {
        let _ = write!(out, "\"{name}\":{bytes},");
    }
    let _ = write!(out, "\"total\":{}}}", m.total());
    out
}

/// A finite number with up to 6 decimals, or `null`.
fn json_number(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => {
            let s = format!("{v:.6}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s.is_empty() || s == "-" {
                "0".into()
            } else {
                s.into()
            }
        }
        _ => "null".into(),
    }
}

/// `s` as a JSON string literal. File names that are not UTF-8 arrive here lossily converted.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendChoice;

    /// A real archive of 1000 bytes at level 1, coded by the CPU twin.
    fn archive() -> Vec<u8> {
        let data: Vec<u8> = (0..1000u32).map(|i| b"abcab "[(i % 6) as usize]).collect();
        let options = crate::Options {
            level: 1,
            backend: BackendChoice::Cpu,
            ..crate::Options::default()
        };
        crate::compress(&data, &options).unwrap().bytes
    }

    #[test]
    fn one_frame_of_one_block() {
        let bytes = archive();
        let listing = Listing::of_archive(&bytes).unwrap();
        let len = bytes.len() as u64;
        assert_eq!(listing.archive_bytes, len);
        assert_eq!(listing.original_bytes(), 1000);
        assert_eq!(listing.frames.len(), 1);
        assert_eq!(listing.frames[0].bytes, len);
        let block = listing.frames[0].blocks[0];
        assert_eq!(listing.frames[0].blocks.len(), 1);
        assert_eq!(
            (block.original_bytes, block.streams, block.raw),
            (1000, 1, false)
        );
        assert_eq!(block.coded_bytes, len - 36 - 2 * 24);
        assert_eq!(listing.bits_per_byte(), Some(len as f64 * 8.0 / 1000.0));
        for cut in 0..bytes.len() {
            assert!(Listing::of_archive(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn concatenated_archives_list_frame_by_frame() {
        let one = archive();
        let two = [one.clone(), one.clone()].concat();
        let listing = Listing::of_archive(&two).unwrap();
        assert_eq!(listing.frames.len(), 2);
        assert_eq!(listing.frames[1].offset, one.len() as u64);
        assert_eq!(listing.original_bytes(), 2000);
    }

    #[test]
    fn a_file_lists_as_its_bytes_do() {
        let bytes = archive();
        let dir = tempfile::tempdir().unwrap();
        for len in [bytes.len(), bytes.len() - 30, 40] {
            let path = dir.path().join("a.nng");
            std::fs::write(&path, &bytes[..len]).unwrap();
            let mut file = std::fs::File::open(&path).unwrap();
            let from_file = Listing::read(&mut file).map_err(|e| e.to_string());
            let from_bytes = Listing::of_archive(&bytes[..len]).map_err(|e| e.to_string());
            assert_eq!(from_file.is_ok(), from_bytes.is_ok(), "length {len}");
            if let (Ok(a), Ok(b)) = (from_file, from_bytes) {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn json_has_every_documented_field() {
        let bytes = archive();
        let listing = Listing::of_archive(&bytes).unwrap();
        let json = listing.to_json("a \"b\"\n.nng");
        let len = bytes.len();
        let coded = len - 36 - 48;
        for field in [
            "\"file\":\"a \\\"b\\\"\\n.nng\"".to_string(),
            format!("\"format_version\":{FORMAT_VERSION}"),
            format!("\"archive_bytes\":{len}"),
            "\"original_bytes\":1000".into(),
            "\"ratio\":".into(),
            "\"bits_per_byte\":".into(),
            "\"steps\":1000,".into(),
            "\"layers\":1".into(),
            "\"cells\":32".into(),
            "\"window\":16".into(),
            "\"learning_rate\":0.003".into(),
            "\"mixing_table_bytes\":262144".into(),
            "\"block_bytes\":65536".into(),
            "\"checksum\":{\"type\":\"xxh64\",\"value\":\"".into(),
            "\"decoder_memory\":{\"weights\":".into(),
            format!("\"frames\":[{{\"offset\":0,\"bytes\":{len},"),
            format!(
                "\"blocks\":[{{\"bytes\":1000,\"coded_bytes\":{coded},\"streams\":1,\"stride\":1,\"coders\":1,\"steps\":1000,\"raw\":false}}]"
            ),
        ] {
            assert!(json.contains(&field), "{field} missing from {json}");
        }
        assert!(!json.contains('\n'));
    }

    #[test]
    fn numbers_are_plain() {
        assert_eq!(json_number(Some(2.5)), "2.5");
        assert_eq!(json_number(Some(3.0)), "3");
        assert_eq!(json_number(Some(0.0)), "0");
        assert_eq!(json_number(None), "null");
        assert_eq!(json_number(Some(f64::NAN)), "null");
        assert_eq!(json_string("\u{1}"), "\"\\u0001\"");
    }
}
