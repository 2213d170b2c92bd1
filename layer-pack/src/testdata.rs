//! Test data shared by the unit tests.

/// `n` pseudo-random (incompressible) bytes from `seed` (xorshift64; `seed` must not be 0).
pub(crate) fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
