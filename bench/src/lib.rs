//! Criterion benches live in benches/; this library holds what they share.

/// A tiny fixed-seed xorshift generator for bench corpora: quality does not
/// matter, repeatability does (the same corpus on every run and machine).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
