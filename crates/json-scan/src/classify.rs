//! Stage one: a 64-byte block as bit masks, one bit per byte (bit `i` is byte `i`).

/// What each byte of a block is, as far as JSON's lexical structure cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    /// `"`.
    pub(crate) quote: u64,
    /// `\`.
    pub(crate) backslash: u64,
    /// JSON whitespace: space, tab, line feed, carriage return.
    pub(crate) whitespace: u64,
    /// `{ } [ ] : ,`.
    pub(crate) structural: u64,
    /// Bytes below `0x20`, which may not appear raw inside a string.
    pub(crate) control: u64,
}

/// How many blocks [`portable_chunk`] and [`avx2_chunk`] classify per call: 4 KiB of text.
pub(crate) const CHUNK_BLOCKS: usize = 64;

/// Classifies up to [`CHUNK_BLOCKS`] blocks from the start of `text` into `out`, the last one
/// padded with spaces if `text` ends inside it; answers how many it wrote.
///
/// Whole chunks, not one block per call, so the scan that reads the masks sees them only
/// through memory: inlined into one function, LLVM turns the masks back into vectors of
/// booleans and spends more undoing that than the compares cost (measured: 330 µs against
/// 130 µs for cat1).
#[inline(always)]
fn chunk(
    text: &[u8],
    out: &mut [Masks; CHUNK_BLOCKS],
    classify: impl Fn(&[u8; 64]) -> Masks,
) -> usize {
    let mut written = 0;
    let mut blocks = text.chunks_exact(64);
    for (slot, block) in out.iter_mut().zip(&mut blocks) {
        if let Ok(block) = <&[u8; 64]>::try_from(block) {
            *slot = classify(block);
            written += 1;
        }
    }
    let rest = blocks.remainder();
    if written < CHUNK_BLOCKS && !rest.is_empty() {
        let mut block = [b' '; 64];
        block[..rest.len()].copy_from_slice(rest);
        out[written] = classify(&block);
        written += 1;
    }
    written
}

/// [`chunk`] with [`portable`].
pub(crate) fn portable_chunk(text: &[u8], out: &mut [Masks; CHUNK_BLOCKS]) -> usize {
    chunk(text, out, portable)
}

/// [`chunk`] with [`avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
pub(crate) fn avx2_chunk(text: &[u8], out: &mut [Masks; CHUNK_BLOCKS]) -> usize {
    // The closure inherits this function's AVX2, so `avx2` inlines into the loop.
    chunk(text, out, |block| avx2(block))
}

/// One byte at a time: the reference the AVX2 classifier is tested against, and what tests use
/// on a CPU without AVX2.
pub(crate) fn portable(block: &[u8; 64]) -> Masks {
    let mut masks = Masks::default();
    for (i, &byte) in block.iter().enumerate() {
        let bit = 1_u64 << i;
        match byte {
            b'"' => masks.quote |= bit,
            b'\\' => masks.backslash |= bit,
            b' ' | b'\t' | b'\n' | b'\r' => masks.whitespace |= bit,
            b'{' | b'}' | b'[' | b']' | b':' | b',' => masks.structural |= bit,
            _ => {}
        }
        if byte < 0x20 {
            masks.control |= bit;
        }
    }
    masks
}

/// The same masks with AVX2: two 32-byte loads and a dozen compares per block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn avx2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256};
    // SAFETY: `block` is 64 readable bytes, and `loadu` needs no alignment.
    let low = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
    // SAFETY: bytes 32..64 of the same 64.
    let high = unsafe { _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>()) };
    let (low, high) = (avx2_half(low), avx2_half(high));
    Masks {
        quote: join(low.quote, high.quote),
        backslash: join(low.backslash, high.backslash),
        whitespace: join(low.whitespace, high.whitespace),
        structural: join(low.structural, high.structural),
        control: join(low.control, high.control),
    }
}

/// 32 bytes' masks, in the low half of each field.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn avx2_half(x: std::arch::x86_64::__m256i) -> Masks {
    use std::arch::x86_64::{_mm256_cmpeq_epi8, _mm256_max_epu8, _mm256_or_si256};
    // `[` and `]` differ from `{` and `}` only in bit 0x20.
    let folded = _mm256_or_si256(x, splat(0x20));
    let eq = |y, byte| _mm256_cmpeq_epi8(y, splat(byte));
    Masks {
        quote: bits(eq(x, b'"')),
        backslash: bits(eq(x, b'\\')),
        whitespace: bits(_mm256_or_si256(
            _mm256_or_si256(eq(x, b' '), eq(x, b'\t')),
            _mm256_or_si256(eq(x, b'\n'), eq(x, b'\r')),
        )),
        structural: bits(_mm256_or_si256(
            _mm256_or_si256(eq(folded, b'{'), eq(folded, b'}')),
            _mm256_or_si256(eq(x, b':'), eq(x, b',')),
        )),
        // Unsigned `x <= 0x1f`: the larger of the two is 0x1f.
        control: bits(eq(_mm256_max_epu8(x, splat(0x1f)), 0x1f)),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn splat(byte: u8) -> std::arch::x86_64::__m256i {
    std::arch::x86_64::_mm256_set1_epi8(byte.cast_signed())
}

/// The top bit of each byte of `m`, as 32 bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn bits(m: std::arch::x86_64::__m256i) -> u64 {
    u64::from(std::arch::x86_64::_mm256_movemask_epi8(m).cast_unsigned())
}

fn join(low: u64, high: u64) -> u64 {
    low | (high << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value, at every position, and random blocks: AVX2 agrees with the reference.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_agrees_with_the_portable_classifier() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("SKIPPED: this CPU has no AVX2; the portable classifier is all there is");
            return;
        }
        let mut blocks = Vec::new();
        for value in 0..=255_u8 {
            for position in [0, 1, 31, 32, 33, 63] {
                let mut block = [b'a'; 64];
                block[position] = value;
                blocks.push(block);
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            let mut block = [0_u8; 64];
            for byte in &mut block {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state.to_le_bytes()[0];
            }
            blocks.push(block);
        }
        for block in &blocks {
            // SAFETY: AVX2 was detected above.
            let fast = unsafe { avx2(block) };
            assert_eq!(fast, portable(block), "block {block:?}");
        }
    }
}
