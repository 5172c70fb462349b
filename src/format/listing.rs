//! What `nngpu -l` shows of an archive: built from the parsed frames alone, without decoding
//! (so it is instant and allocates nothing the header asks for).
//!
//! The shape is frames → blocks even while a version-1 archive holds exactly one frame of one
//! block, so later formats (several frames, blocks coded in parallel) only add entries and
//! scripts reading `--json` keep working.

use std::fmt::Write as _;

use super::{FORMAT_VERSION, Frame, FrameHeader, HEADER_LEN, TRAILER_LEN, parse_frame};
use crate::format::FormatError;
use crate::model::memory::{ModelMemory, model_state};

/// One block: a run of original bytes coded by one model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockListing {
    /// Original bytes the block decodes to.
    pub original_bytes: u64,
    /// Bytes of coded payload.
    pub coded_bytes: u64,
    /// Parallel streams the block is coded in.
    pub streams: u32,
}

/// One frame: a header, its blocks and its content checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameListing {
    /// Byte offset of the frame in the archive.
    pub offset: u64,
    /// Bytes of the frame, header and trailer included.
    pub bytes: u64,
    /// The frame's checked header.
    pub header: FrameHeader,
    /// XXH64 of the frame's original data, as stored.
    pub content_hash: u64,
    /// The frame's blocks, in order.
    pub blocks: Vec<BlockListing>,
}

/// Everything `-l` reports about one archive. `of_archive` succeeds exactly when the
/// archive's structure is valid (as `parse_frame` checks it); the payload is not decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// Bytes of the whole archive.
    pub archive_bytes: u64,
    /// Its frames, in order.
    pub frames: Vec<FrameListing>,
}

impl FrameListing {
    fn of(frame: &Frame<'_>, offset: u64) -> FrameListing {
        let header = frame.header;
        FrameListing {
            offset,
            bytes: (HEADER_LEN + TRAILER_LEN) as u64 + header.payload_len,
            header,
            content_hash: frame.content_hash,
            blocks: vec![BlockListing {
                original_bytes: header.original_len,
                coded_bytes: header.payload_len,
                streams: header.params.streams,
            }],
        }
    }

    /// The model state a decoder of this frame needs.
    pub fn memory(&self) -> ModelMemory {
        model_state(&self.header.params)
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

/// A source that can only be read forwards (standard input, a pipe).
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
    /// headers (payloads are skipped). Fails as decoding would on a structural error.
    pub fn read(input: &mut dyn Source) -> Result<Listing, crate::Error> {
        let mut bytes = Vec::new();
        input
            .read_to_end(&mut bytes)
            .map_err(crate::Error::Read)?;
        Ok(Listing::of_archive(&bytes)?)
    }

    /// Lists a complete archive, checking its structure but not decoding it.
    pub fn of_archive(bytes: &[u8]) -> Result<Listing, FormatError> {
        let frame = parse_frame(bytes)?;
        Ok(Listing {
            archive_bytes: bytes.len() as u64,
            frames: vec![FrameListing::of(&frame, 0)],
        })
    }

    /// Lists an archive of `archive_bytes` bytes from its first bytes `head` (the header, or
    /// whatever there is of it) and its last 8 bytes `tail`, without reading the payload:
    /// the same result and the same errors as `of_archive` on the whole archive.
    pub fn of_ends(
        head: &[u8],
        archive_bytes: u64,
        tail: [u8; TRAILER_LEN],
    ) -> Result<Listing, FormatError> {
        let header = FrameHeader::parse(head)?;
        let needed = (HEADER_LEN as u64)
            .saturating_add(header.payload_len)
            .saturating_add(TRAILER_LEN as u64);
        if archive_bytes < needed {
            return Err(FormatError::Truncated {
                needed,
                got: archive_bytes,
            });
        }
        if archive_bytes > needed {
            return Err(FormatError::TrailingBytes {
                extra: archive_bytes - needed,
            });
        }
        let frame = Frame {
            header,
            payload: &[],
            content_hash: u64::from_le_bytes(tail),
        };
        Ok(Listing {
            archive_bytes,
            frames: vec![FrameListing::of(&frame, 0)],
        })
    }

    /// Original bytes of all frames.
    pub fn original_bytes(&self) -> u64 {
        self.frames.iter().map(|f| f.header.original_len).sum()
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
             \"original_bytes\":{},\"ratio\":{},\"bits_per_byte\":{},\"decoder_memory\":{},\
             \"frames\":[",
            json_string(name),
            self.archive_bytes,
            self.original_bytes(),
            json_number(self.ratio()),
            json_number(self.bits_per_byte()),
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
         \"model\":{{\"layers\":{},\"cells\":{},\"window\":{},\"learning_rate\":{},\
         \"learning_rate_q24\":{},\"beta2_shift\":{},\"seed\":{},\"mixing_table_bytes\":{}}},\
         \"checksum\":{{\"type\":\"xxh64\",\"value\":\"{:016x}\"}},\"decoder_memory\":{},\
         \"blocks\":[",
        frame.offset,
        frame.bytes,
        h.original_len,
        h.preset,
        p.layers,
        p.cells,
        p.window,
        json_number(Some(learning_rate(p.learning_rate_q24))),
        p.learning_rate_q24,
        p.beta2_shift,
        p.seed,
        1u64 << p.mix_log2,
        frame.content_hash,
        memory_json(&frame.memory()),
    );
    for (i, b) in frame.blocks.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"bytes\":{},\"coded_bytes\":{},\"streams\":{}}}",
            if i > 0 { "," } else { "" },
            b.original_bytes,
            b.coded_bytes,
            b.streams
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
    use crate::format::{content_hash, write_frame};
    use crate::model::presets;

    fn archive() -> Vec<u8> {
        let header = FrameHeader {
            preset: 1,
            params: presets::params_for(1, 1000),
            original_len: 1000,
            payload_len: 600,
        };
        write_frame(&header, &[7; 600], content_hash(b"x"))
    }

    #[test]
    fn one_frame_of_one_block() {
        let bytes = archive();
        let listing = Listing::of_archive(&bytes).unwrap();
        assert_eq!(listing.archive_bytes, 660);
        assert_eq!(listing.original_bytes(), 1000);
        assert_eq!(listing.frames.len(), 1);
        assert_eq!(listing.frames[0].bytes, 660);
        assert_eq!(
            listing.frames[0].blocks,
            [BlockListing {
                original_bytes: 1000,
                coded_bytes: 600,
                streams: 1
            }]
        );
        assert_eq!(listing.bits_per_byte(), Some(660.0 * 8.0 / 1000.0));
        assert!(Listing::of_archive(&bytes[..100]).is_err());
    }

    #[test]
    fn the_ends_list_as_the_whole_archive_does() {
        let mut bytes = archive();
        bytes.extend_from_slice(b"tail");
        for len in 0..bytes.len() {
            let whole = &bytes[..len];
            let head = &whole[..len.min(HEADER_LEN)];
            let mut tail = [0; TRAILER_LEN];
            if len >= TRAILER_LEN {
                tail.copy_from_slice(&whole[len - TRAILER_LEN..]);
            }
            let from_ends = Listing::of_ends(head, len as u64, tail);
            assert_eq!(from_ends, Listing::of_archive(whole), "length {len}");
        }
    }

    #[test]
    fn json_has_every_documented_field() {
        let json = Listing::of_archive(&archive())
            .unwrap()
            .to_json("a \"b\"\n.nng");
        for field in [
            "\"file\":\"a \\\"b\\\"\\n.nng\"",
            "\"format_version\":2",
            "\"archive_bytes\":660",
            "\"original_bytes\":1000",
            "\"ratio\":1.515152",
            "\"bits_per_byte\":5.28,",
            "\"layers\":1",
            "\"cells\":32",
            "\"window\":16",
            "\"learning_rate\":0.003",
            "\"mixing_table_bytes\":65536",
            "\"checksum\":{\"type\":\"xxh64\",\"value\":\"",
            "\"decoder_memory\":{\"weights\":",
            "\"frames\":[{\"offset\":0,\"bytes\":660,",
            "\"blocks\":[{\"bytes\":1000,\"coded_bytes\":600,\"streams\":1}]",
        ] {
            assert!(json.contains(field), "{field} missing from {json}");
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
