//! The ground floor of a download in parts: the byte ranges ([`Part`]), who holds which
//! ([`Plan`]), what every worker, the hasher and the controller share ([`Shared`]), and how a
//! worker gets a part: the lowest one no one holds, else one carved off the part with the most
//! bytes left ([`Plan::claim_in`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::super::sparse::{Sparse, BLOCK};
use super::hash::Hashing;
use crate::download::error::DownloadError;
use crate::jobs::Outstanding;

/// Requests of workers that share a file: about 1/64 of it, between these (block multiples).
const CHUNK_MIN: u64 = 2 << 20;
const CHUNK_MAX: u64 = 8 << 20;
/// A part is carved only when both sides keep at least this much.
pub(super) const MIN_SPLIT: u64 = 512 << 10;

/// One byte range of the file and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    pub(super) start: u64,
    /// Bytes up to here were received (buffered or written).
    pub(super) cursor: u64,
    /// Bytes up to here are on disk.
    pub(super) written: u64,
    /// Where this part stops (moves down when another worker carves its back).
    pub(super) end: u64,
    /// Where the current request stops by itself (`end` when it runs to the part's end).
    pub(super) asked: u64,
    pub(super) taken: bool,
}

impl Part {
    pub(super) fn new(start: u64, end: u64, taken: bool) -> Self {
        Self { start, cursor: start, written: start, end, asked: start, taken }
    }
}

/// Every part, and how many workers may hold them.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) parts: Vec<Part>,
    /// Live workers that have not received a byte yet.
    pub(super) cold: usize,
    /// Most workers that may take another part.
    pub(super) limit: usize,
    /// Workers that may still take parts.
    pub(super) workers: usize,
}

impl Plan {
    /// Where the contiguous written prefix ends (`size` once every part is written).
    pub(super) fn frontier(&self, size: u64) -> u64 {
        self.parts.iter().filter(|p| p.written < p.end).map(|p| p.written).min().unwrap_or(size)
    }

    /// Bytes received so far, over every part.
    pub(super) fn received(&self) -> u64 {
        self.parts.iter().map(|p| p.cursor - p.start).sum()
    }

    /// A part for a worker: the lowest one no one holds, else the back of the part with the most
    /// bytes left, carved just after its current request (or `chunk` bytes, or half of what is
    /// left, past its cursor when that request runs to the part's end). `None` when nothing is
    /// left worth carving.
    pub(super) fn claim_in(&mut self, chunk: u64) -> Option<usize> {
        if let Some(i) = self.parts.iter().position(|p| !p.taken && p.written < p.end) {
            self.parts[i].taken = true;
            return Some(i);
        }
        let (i, left) = self
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.taken && p.cursor < p.end)
            .map(|(i, p)| (i, p.end - p.cursor))
            .max_by_key(|(_, left)| *left)?;
        let victim = &mut self.parts[i];
        let ahead = victim.cursor + chunk.min(left / 2);
        // Just after its current request, unless that one runs to the part's end.
        let cut = if victim.asked < victim.end { ahead.max(victim.asked) } else { ahead };
        let cut = cut.next_multiple_of(BLOCK);
        if cut < victim.cursor + MIN_SPLIT || victim.end < cut + MIN_SPLIT {
            return None;
        }
        let end = std::mem::replace(&mut victim.end, cut);
        self.parts.push(Part::new(cut, end, true));
        Some(self.parts.len() - 1)
    }
}

/// Why a worker ended the whole plan.
pub(super) enum End {
    Failed(DownloadError),
    RangeIgnored,
}

impl From<DownloadError> for End {
    fn from(e: DownloadError) -> Self {
        Self::Failed(e)
    }
}

/// What the workers, the hasher and the controller share.
pub(super) struct Shared {
    pub(super) sparse: Sparse,
    /// The part file (named in errors).
    pub(super) path: PathBuf,
    /// The job's outstanding work: every write and hash step counts here.
    pub(super) gate: Outstanding,
    /// Request length of workers that share the file.
    pub(super) chunk: u64,
    pub(super) plan: Mutex<Plan>,
    /// Rung when a part's written prefix grows.
    pub(super) written: event_listener::Event,
    pub(super) ends: async_channel::Sender<End>,
    pub(super) hash: Arc<Mutex<Hashing>>,
}

impl Shared {
    pub(super) fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the contiguous written prefix ends.
    pub(super) fn frontier(&self) -> u64 {
        self.plan().frontier(self.sparse.size())
    }

    /// Bytes received so far, over every part, plus `done` from before.
    pub(super) fn received(&self, done: u64) -> u64 {
        done + self.plan().received()
    }

    /// A part for a worker ([`Plan::claim_in`]), unless it is one worker too many.
    pub(super) fn claim(&self) -> Option<usize> {
        let mut plan = self.plan();
        let claimed = if plan.workers > plan.limit { None } else { plan.claim_in(self.chunk) };
        if claimed.is_none() {
            // This worker is done: one worker too many, or no work left.
            plan.workers -= 1;
        }
        claimed
    }
}

/// The request length of workers sharing a `size`-byte file: ~1/64 of it, block-aligned,
/// within [`CHUNK_MIN`]..=[`CHUNK_MAX`].
pub(super) fn chunk_for(size: u64) -> u64 {
    (size / 64).clamp(CHUNK_MIN, CHUNK_MAX).next_multiple_of(BLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn plan(parts: Vec<Part>) -> Plan {
        Plan { parts, cold: 0, limit: 16, workers: 1 }
    }

    #[test]
    fn a_worker_takes_the_lowest_part_no_one_holds_first() {
        let mut p = plan(vec![
            Part::new(0, 4 * MIB, true),
            Part::new(8 * MIB, 12 * MIB, false),
            Part::new(16 * MIB, 20 * MIB, false),
        ]);
        assert_eq!(p.claim_in(2 * MIB), Some(1));
        assert!(p.parts[1].taken);
        assert_eq!(p.claim_in(2 * MIB), Some(2));
        // A part written to its end is never taken again.
        let mut done = Part::new(0, MIB, false);
        done.written = MIB;
        let mut p = plan(vec![done, Part::new(MIB, 2 * MIB, false)]);
        assert_eq!(p.claim_in(2 * MIB), Some(1));
    }

    #[test]
    fn carving_cuts_just_after_the_current_request_of_the_part_with_most_left() {
        // Two taken parts; the larger one is carved just after its request (block-aligned).
        let mut small = Part::new(0, 8 * MIB, true);
        small.asked = 2 * MIB;
        let mut big = Part::new(8 * MIB, 64 * MIB, true);
        (big.cursor, big.asked) = (9 * MIB, 9 * MIB + 2 * MIB + 1);
        let mut p = plan(vec![small, big]);
        assert_eq!(p.claim_in(2 * MIB), Some(2));
        let cut = (11 * MIB + 1).next_multiple_of(BLOCK);
        assert_eq!(p.parts[1].end, cut, "the victim stops after its request");
        assert_eq!(p.parts[2], Part::new(cut, 64 * MIB, true), "the new part takes the rest");
    }

    #[test]
    fn a_lone_request_to_the_part_end_is_cut_a_chunk_or_half_past_its_cursor() {
        let mut lone = Part::new(0, 64 * MIB, true);
        (lone.cursor, lone.asked) = (MIB, 64 * MIB);
        let mut p = plan(vec![lone]);
        assert_eq!(p.claim_in(8 * MIB), Some(1));
        assert_eq!((p.parts[0].end, p.parts[1].start), (9 * MIB, 9 * MIB), "a chunk past the cursor");
        // Little left: half of it.
        let mut short = Part::new(0, 4 * MIB, true);
        short.asked = 4 * MIB;
        let mut p = plan(vec![short]);
        assert_eq!(p.claim_in(8 * MIB), Some(1));
        assert_eq!(p.parts[0].end, 2 * MIB);
    }

    #[test]
    fn nothing_is_carved_that_leaves_a_side_under_the_minimum() {
        let mut tail = Part::new(0, 2 * MIN_SPLIT - BLOCK, true);
        tail.asked = tail.end;
        let mut p = plan(vec![tail.clone()]);
        assert_eq!(p.claim_in(8 * MIB), None);
        assert_eq!(p.parts, vec![tail], "the plan is unchanged");
        // A request that already runs nearly to the part's end leaves too little behind it.
        let mut near = Part::new(0, 8 * MIB, true);
        near.asked = 8 * MIB - BLOCK;
        assert_eq!(plan(vec![near]).claim_in(2 * MIB), None);
    }

    #[test]
    fn the_frontier_is_the_lowest_written_byte_of_an_unfinished_part() {
        let size = 12 * MIB;
        let mut a = Part::new(0, 4 * MIB, true);
        a.written = 4 * MIB;
        let mut b = Part::new(4 * MIB, 8 * MIB, true);
        b.written = 5 * MIB;
        let mut c = Part::new(8 * MIB, 12 * MIB, true);
        c.written = 9 * MIB;
        let mut p = plan(vec![a, b, c]);
        assert_eq!(p.frontier(size), 5 * MIB, "a finished part no longer holds the prefix back");
        p.parts[1].written = 8 * MIB;
        assert_eq!(p.frontier(size), 9 * MIB);
        p.parts[2].written = 12 * MIB;
        assert_eq!(p.frontier(size), size, "every part written: the whole file");
        // Received counts what each part got from its start, buffered or written.
        p.parts[0].cursor = 3 * MIB;
        assert_eq!(p.received(), 3 * MIB);
    }

    #[test]
    fn chunks_are_a_64th_of_the_file_within_bounds() {
        assert_eq!(chunk_for(16 * MIB), CHUNK_MIN);
        assert_eq!(chunk_for(256 * MIB), 4 * MIB);
        assert_eq!(chunk_for(4096 * MIB), CHUNK_MAX);
        assert_eq!(chunk_for(200 * MIB + 7) % BLOCK, 0);
    }
}
