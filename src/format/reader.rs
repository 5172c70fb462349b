//! A strict reader of archives from any byte stream: frames one after another, each a header,
//! block records with their payloads, and an end record. It checks the structure as it goes
//! and holds at most one block's payload, so reading never allocates more than a header's
//! `2^block_log2` bytes allows, whatever the input claims.

use std::io::{self, Read};

use super::{FRAME_HEADER_LEN, FormatError, FrameHeader, MAGIC, RECORD_LEN, Record};

/// The frame being read.
#[derive(Clone, Copy, Debug)]
struct OpenFrame {
    header: FrameHeader,
    /// Original bytes of its blocks so far.
    original_len: u64,
}

/// Reads frames, records and payloads off `R` in order, checking each as it comes.
pub struct ArchiveReader<R> {
    input: R,
    /// Bytes consumed so far.
    offset: u64,
    /// Frames started so far.
    frames: u64,
    frame: Option<OpenFrame>,
    /// Payload bytes of the last block record not consumed yet.
    pending: u32,
}

/// An I/O error while reading `what`: an early end is a truncated archive.
fn read_error(what: &'static str) -> impl Fn(io::Error) -> FormatError {
    move |e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FormatError::Truncated(what),
        _ => FormatError::Read(crate::error::io_message(&e)),
    }
}

impl<R: Read> ArchiveReader<R> {
    /// A reader at the start of an archive.
    pub fn new(input: R) -> ArchiveReader<R> {
        ArchiveReader {
            input,
            offset: 0,
            frames: 0,
            frame: None,
            pending: 0,
        }
    }

    /// Bytes of the archive consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Frames started so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), FormatError> {
        self.input.read_exact(buf).map_err(read_error(what))?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Reads as much of `buf` as the input still has; the count read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, FormatError> {
        let mut got = 0;
        while got < buf.len() {
            match self.input.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error("a frame header")(e)),
            }
        }
        self.offset += got as u64;
        Ok(got)
    }

    /// Starts the next frame and returns its checked header, or `None` at the end of the
    /// input after a complete frame. An empty input, bytes that do not start a frame, or a
    /// call while a frame is still open are errors.
    pub fn next_frame(&mut self) -> Result<Option<FrameHeader>, FormatError> {
        if self.frame.is_some() {
            return Err(FormatError::Truncated(
                "a frame (its end record is missing)",
            ));
        }
        let start = self.offset;
        let mut bytes = [0u8; FRAME_HEADER_LEN];
        let seen = self.read_up_to(&mut bytes[..MAGIC.len()])?;
        if seen == 0 && self.frames > 0 {
            return Ok(None);
        }
        if bytes[..seen] != MAGIC[..seen] || seen == 0 {
            return Err(match self.frames {
                0 => FormatError::NotNngpu,
                _ => FormatError::TrailingGarbage { offset: start },
            });
        }
        if seen < MAGIC.len() {
            return Err(FormatError::Truncated("a frame header"));
        }
        self.read_exact(&mut bytes[MAGIC.len()..], "a frame header")?;
        let header = FrameHeader::parse(&bytes)?;
        self.frames += 1;
        self.frame = Some(OpenFrame {
            header,
            original_len: 0,
        });
        Ok(Some(header))
    }

    /// The next record of the open frame. After a block record, its payload must be taken
    /// with `read_payload` or `skip_payload` (else it is read and dropped here). The end
    /// record closes the frame once its length matches the blocks'.
    pub fn next_record(&mut self) -> Result<Record, FormatError> {
        if self.pending > 0 {
            let pending = u64::from(self.pending);
            let dropped = io::copy(&mut (&mut self.input).take(pending), &mut io::sink())
                .map_err(read_error("a block's payload"))?;
            self.offset += dropped;
            if dropped < pending {
                return Err(FormatError::Truncated("a block's payload"));
            }
            self.pending = 0;
        }
        let Some(frame) = self.frame else {
            return Err(FormatError::Truncated("a frame header"));
        };
        let mut bytes = [0u8; RECORD_LEN];
        self.read_exact(&mut bytes, "a block record")?;
        let record = Record::parse(&bytes, &frame.header.params)?;
        match record {
            Record::Block(block) => {
                self.pending = block.stored_len;
                self.frame = Some(OpenFrame {
                    original_len: frame.original_len + u64::from(block.original_len),
                    ..frame
                });
            }
            Record::End(end) => {
                if end.original_len != frame.original_len {
                    return Err(FormatError::FrameLengthMismatch {
                        declared: end.original_len,
                        blocks: frame.original_len,
                    });
                }
                self.frame = None;
            }
        }
        Ok(record)
    }

    /// Reads the payload of the block record just returned into `payload` (resized to it).
    pub fn read_payload(&mut self, payload: &mut Vec<u8>) -> Result<(), FormatError> {
        let len = self.pending as usize;
        payload.clear();
        payload
            .try_reserve_exact(len)
            .map_err(|_| FormatError::Read(format!("cannot allocate {len} bytes")))?;
        payload.resize(len, 0);
        self.read_exact(payload, "a block's payload")?;
        self.pending = 0;
        Ok(())
    }

    /// Passes over the payload of the block record just returned with `skip(input, bytes)`
    /// (a file can seek), without reading it into memory.
    pub fn skip_payload(
        &mut self,
        skip: impl FnOnce(&mut R, u64) -> io::Result<()>,
    ) -> Result<(), FormatError> {
        let len = u64::from(self.pending);
        skip(&mut self.input, len).map_err(read_error("a block's payload"))?;
        self.offset += len;
        self.pending = 0;
        Ok(())
    }
}
