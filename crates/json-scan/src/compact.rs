//! Removing the whitespace between tokens: the same masks as the scan, then each block's kept
//! bytes packed together.
//!
//! Why: a pretty-printed vCon is about half indentation (cat1: 275,840 bytes, 140,410
//! without), and every byte of it would be written to the broker, answered to the client and
//! written again by every storage. Dropping it once, at ingress, halves all of that.

use crate::classify::{Masks, CHUNK_BLOCKS};
use crate::scan::{escaped_bytes, prefix_xor};

/// How a block's kept bytes are appended to the output.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Packer {
    /// One run of consecutive kept bytes at a time, with `extend_from_slice`.
    Runs,
    /// AVX-512 VBMI2's byte compress: a whole block in a few instructions.
    #[cfg(target_arch = "x86_64")]
    Vbmi2,
}

/// What one block leaves to the next: an escape pending, a string open.
#[derive(Debug, Default)]
struct Carry {
    escaped: u64,
    in_string: u64,
}

/// See [`crate::compact`]: `classify_chunk` reads the masks, `packer` packs each block.
pub(crate) fn compact(
    text: &[u8],
    classify_chunk: impl Fn(&[u8], &mut [Masks; CHUNK_BLOCKS]) -> usize,
    packer: Packer,
) -> Option<Vec<u8>> {
    let mut carry = Carry::default();
    let mut masks = [Masks::default(); CHUNK_BLOCKS];
    // Allocated at the first block with whitespace to drop: text without any is answered
    // `None` and never copied.
    let mut out: Option<Vec<u8>> = None;
    let mut base = 0;
    while base < text.len() {
        let Some(rest) = text.get(base..) else { break };
        let written = classify_chunk(rest, &mut masks);
        if written == 0 {
            break;
        }
        for block_masks in masks.iter().take(written) {
            let block = text.get(base..text.len().min(base + 64)).unwrap_or(&[]);
            let drop = droppable(*block_masks, &mut carry);
            // The last block was padded with spaces: only its real bytes count.
            let real = if block.len() == 64 {
                u64::MAX
            } else {
                (1_u64 << block.len()) - 1
            };
            let keep = !drop & real;
            if keep == real && out.is_none() {
                base += 64;
                continue;
            }
            let out = out.get_or_insert_with(|| {
                // 64 spare bytes: a packed block is stored whole before its length is known.
                let mut out = Vec::with_capacity(text.len() + 64);
                out.extend_from_slice(text.get(..base).unwrap_or(&[]));
                out
            });
            pack(block, keep, out, packer);
            base += 64;
        }
    }
    out
}

/// The block's whitespace that lies outside strings.
#[inline(always)]
fn droppable(masks: Masks, carry: &mut Carry) -> u64 {
    let escaped = if masks.backslash == 0 && carry.escaped == 0 {
        0
    } else {
        // Any escape will do here: the text was validated before.
        escaped_bytes(masks.backslash, &mut carry.escaped, |_| Some(())).unwrap_or(0)
    };
    let quotes = masks.quote & !escaped;
    let in_string = prefix_xor(quotes) ^ carry.in_string;
    carry.in_string = 0_u64.wrapping_sub(in_string >> 63);
    masks.whitespace & !in_string
}

/// Appends the bytes of `block` whose bit is set in `keep`, in order.
#[inline(always)]
fn pack(block: &[u8], keep: u64, out: &mut Vec<u8>, packer: Packer) {
    if keep == u64::MAX {
        out.extend_from_slice(block);
        return;
    }
    match packer {
        Packer::Runs => pack_runs(block, keep, out),
        #[cfg(target_arch = "x86_64")]
        Packer::Vbmi2 => {
            if let Ok(block) = <&[u8; 64]>::try_from(block) {
                // SAFETY: `Packer::Vbmi2` is only chosen once the CPU is known to have
                // AVX-512 BW and VBMI2 (`crate::compact`).
                unsafe { pack_vbmi2(block, keep, out) }
            } else {
                pack_runs(block, keep, out);
            }
        }
    }
}

/// One `extend_from_slice` per run of kept bytes.
fn pack_runs(block: &[u8], keep: u64, out: &mut Vec<u8>) {
    let mut rest = keep;
    while rest != 0 {
        let start = rest.trailing_zeros();
        let length = (!(rest >> start)).trailing_zeros();
        let (start, end) = (start as usize, (start + length) as usize);
        out.extend_from_slice(block.get(start..end).unwrap_or(&[]));
        rest = if end >= 64 {
            0
        } else {
            rest & !((1 << end) - 1)
        };
    }
}

/// The kept bytes of a whole block, packed in one register and stored at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2")]
fn pack_vbmi2(block: &[u8; 64], keep: u64, out: &mut Vec<u8>) {
    use std::arch::x86_64::{_mm512_loadu_si512, _mm512_maskz_compress_epi8, _mm512_storeu_si512};
    out.reserve(64);
    let length = out.len();
    // SAFETY: `block` is 64 readable bytes, and `loadu` needs no alignment.
    let bytes = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
    let packed = _mm512_maskz_compress_epi8(keep, bytes);
    // SAFETY: `reserve(64)` left at least 64 bytes of spare capacity after `length`; `storeu`
    // needs no alignment. The kept bytes come first in `packed`.
    unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(length).cast(), packed) };
    // SAFETY: the first `count_ones` of those 64 bytes were just written, and are within the
    // capacity.
    unsafe { out.set_len(length + keep.count_ones() as usize) };
}
