//! Validates a JSON object at SIMD speed and answers its top-level members as spans of the text.
//!
//! Why: the API validates every posted vCon before it answers, with one client waiting on it.
//! serde_json reads a large vCon (cat1, 270 KB of word-level transcript) at about 1.4 GiB/s,
//! branching on every byte of whitespace and every token; that validation was the largest part of
//! a one-client `POST /vcon` of cat1 (docs/benchmarks.md). This crate reads it at about
//! 2.1 GiB/s (`cargo xtask bench vcon`, `read_whole`). This crate does the same validation
//! the way simdjson does, in two stages:
//!
//! 1. `classify`: each 64-byte block becomes bit masks (quotes, backslashes, whitespace,
//!    structural characters, control characters) with AVX2 compares, and from them, without a
//!    branch per byte, which bytes are inside strings and where each token starts.
//! 2. `scan`: only the token starts are visited, by a grammar automaton with a stack, which
//!    checks that tokens follow each other as JSON allows, validates each number and literal, and
//!    records the top-level object's members.
//!
//! # The contract
//!
//! [`object_members`] answers `Some` only for text that is valid JSON (RFC 8259) with an object
//! at the top; every member's value is the exact text serde_json's `RawValue` would capture. It
//! answers `None` whenever it cannot vouch for that: invalid JSON, a top level that is not an
//! object, a top-level key with an escape in it (its text would not be its name), or a CPU
//! without AVX2. The caller then uses its full parser, which says what is wrong. So this crate
//! may refuse what serde_json accepts, never the reverse: `tests/it` checks that on every
//! fixture and on over a hundred thousand mutated documents. Escapes inside strings are checked
//! as serde_json checks them when it skips a value (`\u` needs four hex digits; a lone surrogate
//! is not an error until someone decodes the string).
//!
//! No dependency: the SIMD is `std::arch`, chosen at run time. `unsafe` is confined to the two
//! loads of `classify` and to calling its AVX2 function once the CPU is known to have AVX2.

#![allow(unsafe_code)] // AVX2 loads, and calls to AVX2 code after detection (SAFETY notes).

mod classify;
mod compact;
mod scan;

/// One member of the top-level object, as two spans of the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// The key, without its quotes. Never holds an escape (a key with one makes the scan answer
    /// `None`), so it is the member's name as is.
    pub key: &'a str,
    /// The value's exact text, from its first byte to its last (no surrounding whitespace).
    pub value: &'a str,
}

/// Validates `text` as a JSON object and answers its members in document order, duplicates
/// included; `None` when the text is not one this scan can vouch for (see the crate docs).
pub fn object_members(text: &str) -> Option<Vec<Member<'_>>> {
    #[cfg(target_arch = "x86_64")]
    {
        if accelerated() {
            return scan::members(text, |chunk, masks| {
                // SAFETY: AVX2 is available on this CPU (checked just above).
                unsafe { classify::avx2_chunk(chunk, masks) }
            });
        }
    }
    let _ = text;
    None
}

/// The JSON `text` without the whitespace between its tokens: every byte of every key, string,
/// number and literal kept, in order, and nothing else changed. `None` when there is no such
/// whitespace (the text is already compact, and nothing is copied).
///
/// Only meaningful for valid JSON: validate `text` first ([`object_members`] or a parser).
/// Removing whitespace can join what it separated (`[1 2]` becomes `[12]`), so the output of an
/// invalid text may look valid. For any input it answers without panicking, and never more
/// bytes than it was given.
///
/// Fast on x86-64: the masks of [`object_members`] with AVX2, each 64-byte block packed with
/// AVX-512 VBMI2 where the CPU has it, else one copy per run of kept bytes. Any CPU gets the
/// same answer, more slowly.
pub fn compact(text: &[u8]) -> Option<Vec<u8>> {
    #[cfg(target_arch = "x86_64")]
    {
        if accelerated() {
            let packer = if std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vbmi2")
            {
                compact::Packer::Vbmi2
            } else {
                compact::Packer::Runs
            };
            return compact::compact(
                text,
                |chunk, masks| {
                    // SAFETY: AVX2 is available on this CPU (checked just above).
                    unsafe { classify::avx2_chunk(chunk, masks) }
                },
                packer,
            );
        }
    }
    compact_portable(text)
}

/// [`compact`] with the byte-at-a-time classifier and one copy per run: the same answers on
/// any CPU. For tests, which compare the two.
#[doc(hidden)]
pub fn compact_portable(text: &[u8]) -> Option<Vec<u8>> {
    compact::compact(text, classify::portable_chunk, compact::Packer::Runs)
}

/// Whether [`object_members`] can answer on this CPU (x86-64 with AVX2); without it, it always
/// answers `None`.
pub fn accelerated() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`object_members`] with the byte-at-a-time classifier instead of AVX2: slow, but the same
/// answers on any CPU. For tests, which compare the two.
#[doc(hidden)]
pub fn object_members_portable(text: &str) -> Option<Vec<Member<'_>>> {
    scan::members(text, classify::portable_chunk)
}
