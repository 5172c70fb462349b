//! The payload's byte order: how a block is cut into its streams' segments and in what order
//! their bytes are coded (`FORMAT.md`, "Payload"), and which of them the LSTM predicts.

use std::ops::Range;

/// How a block of `len` bytes is cut into `streams` contiguous segments of ⌈len / streams⌉
/// bytes (the last ones shorter or empty); step `t` codes byte `t` of every segment that has
/// one, streams in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segments {
    len: usize,
    streams: usize,
    segment: usize,
}

impl Segments {
    /// The cut of a block of `len ≥ 1` bytes into `streams ≥ 1` streams.
    pub fn new(len: usize, streams: usize) -> Segments {
        Segments {
            len,
            streams,
            segment: len.div_ceil(streams.max(1)),
        }
    }

    /// Streams the block is cut into.
    pub fn streams(&self) -> usize {
        self.streams
    }

    /// Steps the block takes: the length of its longest (first) segment.
    pub fn steps(&self) -> usize {
        self.segment
    }

    /// Streams that have a byte at step `t`: always a prefix `0..n`, shrinking with `t`.
    pub fn active(&self, t: usize) -> usize {
        (self.len - t).div_ceil(self.segment).min(self.streams)
    }

    /// Offset in the block of the byte `stream` codes at step `t` (for `stream` below
    /// `active(t)`).
    pub fn offset(&self, stream: usize, t: usize) -> usize {
        stream * self.segment + t
    }

    /// Whether the byte at `offset` of the block is the first of `stream`'s segment.
    pub fn starts_segment(&self, stream: usize, offset: usize) -> bool {
        offset == self.offset(stream, 0)
    }

    /// LSTM steps the block takes when each takes `stride ≥ 1` bytes of every stream.
    pub fn model_steps(&self, stride: usize) -> usize {
        self.steps().div_ceil(stride)
    }

    /// The steps (one byte of every active stream each) of LSTM step `t` at `stride`: `stride`
    /// of them, fewer at the block's end. The LSTM predicts the bytes of the first; its
    /// streams are `0..active(t · stride)`, and every later one's are a prefix of them.
    pub fn sub_steps(&self, t: usize, stride: usize) -> Range<usize> {
        t * stride..((t + 1) * stride).min(self.steps())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_start_where_the_block_is_cut() {
        // 10 bytes in 3 streams: segments of 4, 4 and 2 bytes.
        let cut = Segments::new(10, 3);
        let starts: Vec<(usize, usize)> = (0..3)
            .flat_map(|s| (0..10).map(move |at| (s, at)))
            .filter(|&(s, at)| cut.starts_segment(s, at))
            .collect();
        assert_eq!(starts, [(0, 0), (1, 4), (2, 8)]);
        assert!(Segments::new(5, 1).starts_segment(0, 0));
        assert!(!Segments::new(5, 1).starts_segment(0, 1));
    }

    #[test]
    fn lstm_steps_cover_every_step_once() {
        // 10 bytes in 3 streams: 4 steps; at stride 3, LSTM steps of 3 and 1 steps.
        let cut = Segments::new(10, 3);
        assert_eq!(cut.model_steps(3), 2);
        assert_eq!(cut.sub_steps(0, 3), 0..3);
        assert_eq!(cut.sub_steps(1, 3), 3..4);
        for stride in 1..6 {
            let steps: Vec<usize> = (0..cut.model_steps(stride))
                .flat_map(|t| cut.sub_steps(t, stride))
                .collect();
            assert_eq!(steps, (0..cut.steps()).collect::<Vec<_>>());
        }
    }
}
