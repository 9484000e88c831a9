//! Sorted, disjoint, non-adjacent inclusive ranges of one address family, with a radix
//! index so that a lookup touches a bounded number of cache lines whatever the size.
//!
//! A plain binary search over 100k ranges costs ~17 dependent cache misses once the array
//! outgrows the caches. Instead, the bits right after the common prefix of the whole span
//! pick one of 2^k buckets, and the bucket's slice of ranges (usually one or two) is
//! searched. Sets that are small stay a plain binary search: the index would cost memory
//! (every app can carry a `trusted` set) and buy nothing.

/// The unsigned integer an address family maps to.
pub(super) trait Key: Copy + Ord + std::fmt::Debug {
    const BITS: u32;
    fn succ(self) -> Option<Self>;
    /// `(self << shift) >> (BITS - bits)`, with `shift < BITS` and `1 <= bits <= BITS`.
    fn radix(self, shift: u32, bits: u32) -> usize;
    fn common_prefix(self, other: Self) -> u32;
}

// `BITS` is a bit count, not an address: spelling its type `Self` would mislead.
#[expect(clippy::use_self, reason = "a bit count typed u32, not Self")]
impl Key for u32 {
    const BITS: u32 = 32;
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    #[inline]
    fn radix(self, shift: u32, bits: u32) -> usize {
        ((self << shift) >> (Self::BITS - bits)) as usize
    }
    fn common_prefix(self, other: Self) -> u32 {
        (self ^ other).leading_zeros()
    }
}

impl Key for u128 {
    const BITS: u32 = 128;
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    #[inline]
    fn radix(self, shift: u32, bits: u32) -> usize {
        ((self << shift) >> (Self::BITS - bits)) as usize
    }
    fn common_prefix(self, other: Self) -> u32 {
        (self ^ other).leading_zeros()
    }
}

/// Below this many ranges, no index: a binary search over a few cache lines is as fast.
const INDEX_MIN: usize = 64;
/// At most 2^22 buckets (16 MiB of index) even for many millions of ranges.
const INDEX_MAX_BITS: u32 = 22;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ranges<T> {
    /// Inclusive `(first, last)`, sorted, disjoint and not adjacent.
    ranges: Vec<(T, T)>,
    /// `index[b]` is the first range whose start falls in bucket `b` or later; it has
    /// `2^bits + 1` entries, or none for a small set.
    index: Vec<u32>,
    shift: u32,
    bits: u32,
}

impl<T> Default for Ranges<T> {
    fn default() -> Self {
        Self {
            ranges: Vec::new(),
            index: Vec::new(),
            shift: 0,
            bits: 0,
        }
    }
}

impl<T: Key> Ranges<T> {
    /// Merges overlapping and adjacent ranges, then indexes the result.
    pub(super) fn new(mut ranges: Vec<(T, T)>) -> Self {
        ranges.sort_unstable();
        let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            if let Some(last) = out.last_mut() {
                // Adjacent ranges merge too, so a lookup never straddles two entries.
                if lo <= last.1 || last.1.succ() == Some(lo) {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                    continue;
                }
            }
            out.push((lo, hi));
        }
        out.shrink_to_fit();
        let mut set = Self {
            ranges: out,
            ..Self::default()
        };
        set.build_index();
        set
    }

    fn build_index(&mut self) {
        let n = self.ranges.len();
        let (Some(first), Some(last)) = (self.ranges.first(), self.ranges.last()) else {
            return;
        };
        if n < INDEX_MIN || u32::try_from(n).is_err() {
            return;
        }
        // About one range per bucket.
        let bits = (usize::BITS - (n - 1).leading_zeros()).clamp(1, INDEX_MAX_BITS);
        // Every address in [first.0, last.1] shares their common prefix, so the bits after
        // it spread the set's own span over the buckets rather than the whole family.
        let shift = first.0.common_prefix(last.1).min(T::BITS - bits);
        let buckets = 1usize << bits;
        let mut index = Vec::with_capacity(buckets + 1);
        let mut i = 0usize;
        for b in 0..buckets {
            while i < n && self.ranges[i].0.radix(shift, bits) < b {
                i += 1;
            }
            index.push(i as u32);
        }
        index.push(n as u32);
        self.index = index;
        self.shift = shift;
        self.bits = bits;
    }

    #[inline]
    pub(super) fn contains(&self, x: T) -> bool {
        let r = &self.ranges;
        if self.index.is_empty() {
            // The first range whose start is beyond x; the one before it is the only
            // candidate.
            let i = r.partition_point(|&(lo, _)| lo <= x);
            return i > 0 && x <= r[i - 1].1;
        }
        // Outside the span, the common prefix does not hold: answer before bucketing.
        match (r.first(), r.last()) {
            (Some(f), Some(l)) if f.0 <= x && x <= l.1 => {}
            _ => return false,
        }
        let b = x.radix(self.shift, self.bits);
        let (Some(&s), Some(&e)) = (self.index.get(b), self.index.get(b + 1)) else {
            return false;
        };
        let (s, e) = (s as usize, e as usize);
        // Ranges before `s` start before this bucket, those from `e` after it: the global
        // partition point lies in `s..=e`.
        let i = s + r[s..e].partition_point(|&(lo, _)| lo <= x);
        i > 0 && x <= r[i - 1].1
    }

    pub(super) fn len(&self) -> usize {
        self.ranges.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (T, T)> + '_ {
        self.ranges.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Indexed and plain lookups agree with a scan, on a dense and a clustered set.
    #[test]
    fn index_agrees_with_a_scan() {
        let mut seed = 0x1234_5678_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for cluster in [0u32, 0xffff_0000] {
            let raw: Vec<(u32, u32)> = (0..2000)
                .map(|_| {
                    let lo = (next() & !cluster) | (0x0a00_0000 & cluster);
                    (lo, lo.saturating_add(next() % 64))
                })
                .collect();
            let set = Ranges::new(raw.clone());
            assert!(!set.index.is_empty());
            let probes = (0..5_000)
                .map(|_| (next() & !cluster) | (0x0a00_0000 & cluster))
                .chain(
                    raw.iter()
                        .flat_map(|&(a, b)| [a, b, a.wrapping_sub(1), b.wrapping_add(1)]),
                )
                .chain([0, u32::MAX]);
            for x in probes {
                let want = raw.iter().any(|&(a, b)| a <= x && x <= b);
                assert_eq!(set.contains(x), want, "{x:#x}");
            }
        }
    }

    #[test]
    fn extremes() {
        let all = Ranges::new(vec![(0u128, u128::MAX)]);
        assert!(all.contains(0) && all.contains(u128::MAX));
        let many = Ranges::new((0..200u32).map(|i| (i * 4, i * 4 + 1)).collect());
        assert!(many.contains(0) && many.contains(797) && !many.contains(798));
        assert!(!many.contains(u32::MAX));
        let empty = Ranges::<u32>::new(Vec::new());
        assert!(!empty.contains(0));
    }
}
