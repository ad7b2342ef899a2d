//! A re-implementation of TFLM's `GreedyMemoryPlanner`
//! (`tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc`).
//!
//! Buffers are placed largest first; each one goes at the lowest offset where it
//! does not overlap (in time *and* space) any buffer already placed.  Ties keep
//! TFLM's order: online buffers are filled into the sort array back to front and
//! then bubble-sorted (stable) by decreasing size, so among equal sizes the
//! buffer added *last* is placed first.  Offline-planned buffers keep their
//! offset and are placed before all online ones.

/// One buffer to plan: its (already aligned) size and the inclusive range of
/// allocation scopes (operator steps) it is alive for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferRequest {
    pub size: usize,
    pub first_used: i32,
    pub last_used: i32,
    /// `Some(offset)` for a buffer whose offset the model fixes
    /// (`OfflineMemoryAllocation` metadata).
    pub offline_offset: Option<usize>,
}

impl BufferRequest {
    /// An online-planned buffer.
    pub fn new(size: usize, first_used: i32, last_used: i32) -> Self {
        BufferRequest { size, first_used, last_used, offline_offset: None }
    }
    fn overlaps_in_time(&self, other: &BufferRequest) -> bool {
        !(self.first_used > other.last_used || other.first_used > self.last_used)
    }
}

/// The result of planning: one offset per request (same order) and the
/// high-water mark, which is the size of the arena head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GreedyPlan {
    pub offsets: Vec<usize>,
    pub size: usize,
}

/// Plans `requests` exactly as `GreedyMemoryPlanner::CalculateOffsetsIfNeeded` does.
pub fn greedy_plan(requests: &[BufferRequest]) -> GreedyPlan {
    let n = requests.len();
    if n == 0 {
        return GreedyPlan { offsets: Vec::new(), size: 0 };
    }
    // Fill the sort order: offline buffers from the head (in order), online ones
    // from the tail (reversed), then stable-sort the online part by size, descending.
    let mut order: Vec<usize> = Vec::with_capacity(n);
    let mut online: Vec<usize> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        if r.offline_offset.is_some() {
            order.push(i);
        } else {
            online.push(i);
        }
    }
    online.reverse();
    // Bubble sort in TFLM only swaps strictly smaller-before-larger, i.e. it is stable.
    online.sort_by(|&a, &b| requests[b].size.cmp(&requests[a].size));
    order.extend(online);

    let mut offsets = vec![0usize; n];
    // Placed buffers, kept sorted by offset (insertion after equal offsets, as TFLM's list).
    let mut placed: Vec<usize> = Vec::with_capacity(n);
    for (k, &id) in order.iter().enumerate() {
        let want = &requests[id];
        let offset = if let Some(o) = want.offline_offset {
            o
        } else if k == 0 {
            0
        } else {
            let mut candidate = 0usize;
            for &p in &placed {
                let other = &requests[p];
                if !other.overlaps_in_time(want) {
                    continue;
                }
                let gap_end = offsets[p];
                if gap_end >= candidate && gap_end - candidate >= want.size {
                    break;
                }
                candidate = candidate.max(offsets[p] + other.size);
            }
            candidate
        };
        offsets[id] = offset;
        // TFLM inserts a new entry before the first entry with a strictly larger
        // offset (or at the front when it is below the current first entry).
        let pos = if placed.first().is_some_and(|&f| offsets[f] > offset) {
            0
        } else {
            placed.iter().position(|&p| offsets[p] > offset).unwrap_or(placed.len())
        };
        placed.insert(pos, id);
    }
    let size = requests.iter().zip(&offsets).map(|(r, &o)| o + r.size).max().unwrap_or(0);
    GreedyPlan { offsets, size }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(reqs: &[(usize, i32, i32)]) -> GreedyPlan {
        let r: Vec<_> = reqs.iter().map(|&(s, f, l)| BufferRequest::new(s, f, l)).collect();
        greedy_plan(&r)
    }

    fn assert_no_overlap(reqs: &[(usize, i32, i32)], p: &GreedyPlan) {
        for i in 0..reqs.len() {
            for j in i + 1..reqs.len() {
                let (a, b) = (reqs[i], reqs[j]);
                let time = !(a.1 > b.2 || b.1 > a.2);
                let space = p.offsets[i] < p.offsets[j] + b.0 && p.offsets[j] < p.offsets[i] + a.0;
                assert!(!(time && space), "buffers {i} and {j} overlap: {p:?}");
            }
        }
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(plan(&[]), GreedyPlan { offsets: vec![], size: 0 });
        assert_eq!(plan(&[(48, 0, 3)]), GreedyPlan { offsets: vec![0], size: 48 });
    }

    #[test]
    fn chain_reuses_memory() {
        // a -> b -> c -> d: each op reads one buffer and writes the next.
        let reqs = [(100, 0, 1), (200, 1, 2), (100, 2, 3), (50, 3, 3)];
        let p = plan(&reqs);
        assert_no_overlap(&reqs, &p);
        // Largest (200) at 0; the two 100s alternate around it; 50 shares with the first 100.
        assert_eq!(p.offsets, vec![200, 0, 200, 0]);
        assert_eq!(p.size, 300);
    }

    #[test]
    fn disjoint_lifetimes_share_offset_zero() {
        let reqs = [(64, 0, 0), (64, 1, 1), (64, 2, 2)];
        let p = plan(&reqs);
        assert_eq!(p.offsets, vec![0, 0, 0]);
        assert_eq!(p.size, 64);
    }

    #[test]
    fn all_live_at_once_stack_up_largest_first() {
        let reqs = [(16, 0, 5), (32, 0, 5), (48, 0, 5)];
        let p = plan(&reqs);
        assert_eq!(p.offsets, vec![80, 48, 0]);
        assert_eq!(p.size, 96);
    }

    #[test]
    fn ties_place_the_last_added_first() {
        let reqs = [(32, 0, 2), (32, 0, 2)];
        let p = plan(&reqs);
        assert_eq!(p.offsets, vec![32, 0]);
    }

    #[test]
    fn fills_a_gap_between_buffers() {
        // Two long-lived buffers with a gap-sized hole between them in time order:
        // big (0..4) at 0, mid (0..1) at 96, small later fits at 96 once mid is dead.
        let reqs = [(96, 0, 4), (64, 0, 1), (32, 3, 4), (64, 2, 2)];
        let p = plan(&reqs);
        assert_no_overlap(&reqs, &p);
        assert_eq!(p.offsets, vec![0, 96, 96, 96]);
        assert_eq!(p.size, 160);
    }

    #[test]
    fn offline_offsets_are_kept() {
        let mut r = vec![BufferRequest::new(32, 0, 3), BufferRequest::new(16, 0, 3)];
        r[1].offline_offset = Some(0);
        let p = greedy_plan(&r);
        assert_eq!(p.offsets, vec![16, 0]);
        assert_eq!(p.size, 48);
    }

    #[test]
    fn random_plans_never_overlap() {
        // Small deterministic LCG so the test needs no extra crates.
        let mut s: u64 = 0x1234_5678;
        let mut next = |m: u64| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) % m
        };
        for _ in 0..200 {
            let n = 1 + next(12) as usize;
            let reqs: Vec<(usize, i32, i32)> = (0..n)
                .map(|_| {
                    let f = next(8) as i32;
                    (16 * (1 + next(20) as usize), f, f + next(4) as i32)
                })
                .collect();
            let p = plan(&reqs);
            assert_no_overlap(&reqs, &p);
            // The plan is never smaller than the largest set of simultaneously live bytes.
            let peak = (0..12)
                .map(|t| reqs.iter().filter(|r| r.1 <= t && t <= r.2).map(|r| r.0).sum::<usize>())
                .max()
                .unwrap();
            assert!(p.size >= peak);
        }
    }
}
