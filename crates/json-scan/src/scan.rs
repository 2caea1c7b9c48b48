//! Stage two: from a block's masks to its token starts, and each token through JSON's grammar.

use crate::classify::{Masks, CHUNK_BLOCKS};
use crate::Member;

/// Scans `text` with `classify_chunk` ([`crate::classify::avx2_chunk`] or
/// [`crate::classify::portable_chunk`]); see [`crate::object_members`].
pub(crate) fn members(
    text: &str,
    classify_chunk: impl Fn(&[u8], &mut [Masks; CHUNK_BLOCKS]) -> usize,
) -> Option<Vec<Member<'_>>> {
    let mut scan = Scan {
        text,
        carry: Carry::default(),
        stack: Vec::new(),
        state: State::Document,
        key: "",
        value_start: 0,
        members: Vec::with_capacity(16),
        scalars: 0,
        block_base: 0,
    };
    let mut masks = [Masks::default(); CHUNK_BLOCKS];
    let mut base = 0;
    while base < scan.text.len() {
        let written = classify_chunk(scan.text.as_bytes().get(base..)?, &mut masks);
        if written == 0 {
            // Never, while bytes remain; but a loop that cannot advance must not spin.
            return None;
        }
        for block in masks.iter().take(written) {
            scan.block(base, *block)?;
            base += 64;
        }
    }
    scan.finish()
}

/// What the previous block leaves to the next.
#[derive(Debug, Default)]
struct Carry {
    /// Bit 0 set: the next block's first byte is escaped by a backslash ending this one.
    escaped: u64,
    /// All ones while a string is open at the block's end, else zero.
    in_string: u64,
    /// Bit 0 set: this block ended inside a number or literal.
    scalar: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// Where the grammar is, between two tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing read yet: the top-level object must come.
    Document,
    /// Just after `{`: a key or `}`.
    ObjectStart,
    /// Just after `[`: a value or `]`.
    ArrayStart,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After `:`, or `,` in an array: a value.
    Value,
    /// After a value: `,` or the close of the innermost container.
    AfterValue,
    /// The top-level object is closed: nothing but whitespace may follow.
    End,
}

struct Scan<'a> {
    text: &'a str,
    carry: Carry,
    stack: Vec<Container>,
    state: State,
    /// The top-level member being read: its key, and where its value starts.
    key: &'a str,
    value_start: usize,
    members: Vec<Member<'a>>,
    /// The current block's bytes that belong to numbers and literals, and where it starts: a
    /// scalar token's length, when it ends inside the block, is read off them.
    scalars: u64,
    block_base: usize,
}

impl<'a> Scan<'a> {
    /// One block: which bytes are escaped and inside strings, then each token start in order.
    #[inline(always)]
    fn block(&mut self, base: usize, masks: Masks) -> Option<()> {
        let escaped = if masks.backslash == 0 && self.carry.escaped == 0 {
            0
        } else {
            self.escapes(base, masks.backslash)?
        };
        let quotes = masks.quote & !escaped;
        // Each unescaped quote toggles: set from an opening quote up to, not including, its
        // closing one.
        let in_string = prefix_xor(quotes) ^ self.carry.in_string;
        self.carry.in_string = 0_u64.wrapping_sub(in_string >> 63);
        if masks.control & in_string != 0 {
            return None;
        }
        // Outside strings, what is neither whitespace, structural nor a quote belongs to a number
        // or a literal; each run of it is one token.
        let other = !(masks.structural | masks.whitespace | masks.quote | in_string);
        let scalar_starts = other & !((other << 1) | self.carry.scalar);
        self.carry.scalar = other >> 63;
        self.scalars = other;
        self.block_base = base;
        let mut tokens = (masks.structural & !in_string) | (quotes & in_string) | scalar_starts;
        while tokens != 0 {
            let at = base + tokens.trailing_zeros() as usize;
            tokens &= tokens - 1;
            self.token(at)?;
        }
        Some(())
    }

    /// The escaped bytes of a block with backslashes ([`escaped_bytes`]), each escape checked
    /// as serde_json checks one it skips.
    fn escapes(&mut self, base: usize, backslashes: u64) -> Option<u64> {
        let text = self.text.as_bytes();
        escaped_bytes(backslashes, &mut self.carry.escaped, |bit| {
            let at = base + bit as usize;
            match text.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
                b'u' => text
                    .get(at + 2..at + 6)?
                    .iter()
                    .all(u8::is_ascii_hexdigit)
                    .then_some(()),
                _ => None,
            }
        })
    }

    /// The token starting at `at` (a structural character, an opening quote, or the first byte
    /// of a number or literal), in the grammar's current state.
    #[inline(always)]
    fn token(&mut self, at: usize) -> Option<()> {
        let byte = *self.text.as_bytes().get(at)?;
        match self.state {
            State::Document | State::Value | State::ArrayStart => self.value(at, byte),
            State::ObjectStart | State::Key => match byte {
                b'"' => {
                    if self.stack.len() == 1 {
                        self.key = self.key_at(at)?;
                    }
                    self.state = State::Colon;
                    Some(())
                }
                b'}' if self.state == State::ObjectStart => self.close(at, Container::Object),
                _ => None,
            },
            State::Colon => {
                if byte != b':' {
                    return None;
                }
                self.state = State::Value;
                Some(())
            }
            State::AfterValue => match byte {
                b',' => {
                    let innermost = *self.stack.last()?;
                    if self.stack.len() == 1 {
                        self.finish_member(at);
                    }
                    self.state = match innermost {
                        Container::Object => State::Key,
                        Container::Array => State::Value,
                    };
                    Some(())
                }
                b'}' => self.close(at, Container::Object),
                b']' => self.close(at, Container::Array),
                _ => None,
            },
            State::End => None,
        }
    }

    /// A token where a value must start.
    #[inline(always)]
    fn value(&mut self, at: usize, byte: u8) -> Option<()> {
        if self.state == State::Document {
            if byte != b'{' {
                return None;
            }
        } else if self.stack.len() == 1 {
            // Inside the top-level object, a value only follows a key's `:`.
            self.value_start = at;
        }
        match byte {
            b'{' => {
                self.stack.push(Container::Object);
                self.state = State::ObjectStart;
            }
            b'[' => {
                self.stack.push(Container::Array);
                self.state = State::ArrayStart;
            }
            b']' if self.state == State::ArrayStart => return self.close(at, Container::Array),
            // Its contents were checked with the block's masks.
            b'"' => self.state = State::AfterValue,
            b'}' | b']' | b':' | b',' => return None,
            _ => {
                self.scalar(at)?;
                self.state = State::AfterValue;
            }
        }
        Some(())
    }

    /// The number or literal starting at `at`. When it ends inside this block its length is
    /// known from the masks (the run of scalar bytes stops at whitespace, a structural character
    /// or a quote), and the usual number (digits, at most one fraction, within 16 bytes) is
    /// checked by [`short_number`] without a branch per byte or per part; anything else goes
    /// through [`scalar_end`].
    #[inline(always)]
    fn scalar(&self, at: usize) -> Option<()> {
        let bytes = self.text.as_bytes();
        // 64 when the run goes on into the next block.
        let length = (!self.scalars >> (at - self.block_base)).trailing_zeros() as usize;
        if length <= 16 {
            if let Some(window) = bytes.get(at..at + 16) {
                let mut window16 = [0; 16];
                window16.copy_from_slice(window);
                if short_number(window16, length) {
                    return Some(());
                }
            }
        }
        scalar_end(bytes, at).map(|_| ())
    }

    /// `}` or `]` at `at`, which must close the innermost container.
    fn close(&mut self, at: usize, kind: Container) -> Option<()> {
        if self.state == State::AfterValue && self.stack.len() == 1 {
            self.finish_member(at);
        }
        if self.stack.pop()? != kind {
            return None;
        }
        self.state = if self.stack.is_empty() {
            State::End
        } else {
            State::AfterValue
        };
        Some(())
    }

    /// A top-level key's text: up to its closing quote; `None` if it holds an escape.
    fn key_at(&self, at: usize) -> Option<&'a str> {
        let start = at + 1;
        let length = self
            .text
            .as_bytes()
            .get(start..)?
            .iter()
            .position(|&b| b == b'"' || b == b'\\')?;
        if self.text.as_bytes().get(start + length) != Some(&b'"') {
            return None;
        }
        self.text.get(start..start + length)
    }

    /// Ends the top-level member whose value runs up to the `,` or `}` at `at`.
    fn finish_member(&mut self, at: usize) {
        let value = self
            .text
            .get(self.value_start..at)
            .unwrap_or_default()
            .trim_end_matches([' ', '\t', '\n', '\r']);
        self.members.push(Member {
            key: self.key,
            value,
        });
    }

    fn finish(self) -> Option<Vec<Member<'a>>> {
        let closed =
            self.state == State::End && self.carry.in_string == 0 && self.carry.escaped == 0;
        closed.then_some(self.members)
    }
}

/// The bytes of a block that a backslash escapes: the byte after each backslash that is not
/// itself escaped, in one sequential pass over the backslashes (rare in a vCon). `carry` is 1
/// when the previous block ended with such a backslash, and is set for the next block. `check`
/// sees each escaping backslash's bit before it counts (the scan validates the escape there);
/// its `None` ends the pass with `None`.
#[inline]
pub(crate) fn escaped_bytes(
    backslashes: u64,
    carry: &mut u64,
    mut check: impl FnMut(u32) -> Option<()>,
) -> Option<u64> {
    let mut escaped = std::mem::take(carry);
    let mut rest = backslashes;
    while rest != 0 {
        let bit = rest.trailing_zeros();
        rest &= rest - 1;
        if escaped & (1 << bit) != 0 {
            continue;
        }
        check(bit)?;
        if bit == 63 {
            *carry = 1;
        } else {
            escaped |= 1 << (bit + 1);
        }
    }
    Some(escaped)
}

/// Bit `i` of the result is the XOR of bits `0..=i` of `x`.
#[inline(always)]
pub(crate) fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Whether the first `length` bytes of `window` (1 to 16) are a number with no exponent:
/// `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)?. `false` means "not one of those", not "invalid": an
/// exponent, a literal or an error is left to [`scalar_end`].
///
/// The 16 bytes are one `u128`: a SWAR test marks each byte that is not a digit (as [`digits`]
/// does for eight), the sign is unmarked, and the marks left must be none (an integer) or one
/// `.` with digits on both sides; each part is a compare, not a branch, so the mix of integers
/// and fractions of varying lengths in a transcript costs no mispredictions.
#[inline(always)]
fn short_number(window: [u8; 16], length: usize) -> bool {
    const LOW7: u128 = u128::from_ne_bytes([0x7f; 16]);
    const ZEROS: u128 = u128::from_ne_bytes([b'0'; 16]);
    const TENS: u128 = u128::from_ne_bytes([0x76; 16]);
    const HIGH: u128 = u128::from_ne_bytes([0x80; 16]);
    debug_assert!((1..=16).contains(&length));
    let x = u128::from_le_bytes(window) ^ ZEROS;
    let sign = usize::from(window[0] == b'-');
    let in_token = u128::MAX >> (128 - 8 * length.clamp(1, 16));
    let not_digit = (((x & LOW7) + TENS) | x) & HIGH & in_token & !((sign as u128) << 7);
    // Where the integer part ends: the first mark, or the token's end.
    let integer_end = ((not_digit.trailing_zeros() / 8) as usize).min(length);
    let integer_digits = integer_end - sign;
    let leading_zero = (window[sign] == b'0') & (integer_digits > 1);
    let integer = (integer_digits > 0) & !leading_zero;
    let only_digits = not_digit == 0;
    let one_mark = not_digit & not_digit.wrapping_sub(1) == 0;
    let fraction = one_mark & (window.get(integer_end) == Some(&b'.')) & (integer_end + 1 < length);
    integer & (only_digits | fraction)
}

/// Checks the number or literal starting at `at`, which must run up to whitespace, a
/// structural character, a quote or the end; answers where it ends.
#[inline]
fn scalar_end(bytes: &[u8], at: usize) -> Option<usize> {
    let end = match bytes.get(at)? {
        b't' => literal(bytes, at, b"true")?,
        b'f' => literal(bytes, at, b"false")?,
        b'n' => literal(bytes, at, b"null")?,
        _ => number(bytes, at)?,
    };
    match bytes.get(end) {
        None
        | Some(b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'}' | b'[' | b']' | b':' | b',' | b'"') => {
            Some(end)
        }
        Some(_) => None,
    }
}

fn literal(bytes: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    (bytes.get(at..at + word.len())? == word).then_some(at + word.len())
}

/// RFC 8259's number: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
#[inline]
fn number(bytes: &[u8], mut at: usize) -> Option<usize> {
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    let end = digits(bytes, at);
    // At least one digit, and no leading zero; tested without a branch on the length, which
    // varies from number to number.
    let leading_zero = (end - at > 1) & (bytes.get(at) == Some(&b'0'));
    if (end == at) | leading_zero {
        return None;
    }
    at = end;
    if bytes.get(at) == Some(&b'.') {
        let end = digits(bytes, at + 1);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        let end = digits(bytes, at);
        if end == at {
            return None;
        }
        at = end;
    }
    Some(at)
}

/// Where the run of ASCII digits from `at` ends: eight bytes at a time (a SWAR test for
/// `0`-`9` on each byte), so the usual number costs no branch per digit.
fn digits(bytes: &[u8], mut at: usize) -> usize {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const TENS: u64 = 0x7676_7676_7676_7676;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        // A digit's byte XOR `0` is 0-9; adding 0x76 to its low seven bits sets the top bit
        // exactly when it is 10 or more, and no carry crosses into the next byte.
        let x = u64::from_le_bytes(eight) ^ ZEROS;
        let not_digit = (((x & LOW7) + TENS) | x) & HIGH;
        if not_digit != 0 {
            return at + (not_digit.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while bytes.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token of up to six bytes over the bytes that matter to a number: the fast path may
    /// only say yes where the full check says the whole token is a number.
    #[test]
    fn short_number_agrees_with_the_full_check() {
        const ALPHABET: &[u8] = b"0159-+.eEx ";
        let mut token = Vec::new();
        let mut accepted = 0;
        for length in 1..=6_usize {
            let mut digits = vec![0_usize; length];
            loop {
                token.clear();
                token.extend(digits.iter().map(|&d| ALPHABET[d]));
                let mut window = [b'!'; 16];
                window[..length].copy_from_slice(&token);
                let full = number(&token, 0) == Some(length);
                let fast = short_number(window, length);
                assert!(
                    !fast || full,
                    "fast path accepted {:?}",
                    String::from_utf8_lossy(&token)
                );
                // Exponent-free numbers are exactly what the fast path is for.
                let no_exponent = !token.iter().any(|b| matches!(b, b'e' | b'E'));
                assert_eq!(
                    fast,
                    full && no_exponent,
                    "{:?}",
                    String::from_utf8_lossy(&token)
                );
                accepted += usize::from(fast);
                // Next token, like an odometer.
                let Some(place) = digits.iter().rposition(|&d| d + 1 < ALPHABET.len()) else {
                    break;
                };
                digits[place] += 1;
                digits[place + 1..].fill(0);
            }
        }
        assert!(accepted > 1000, "only {accepted} numbers seen");
    }

    #[test]
    fn short_number_reads_only_its_length() {
        let window = *b"12.5,99999999999";
        assert!(short_number(window, 4));
        assert!(
            !short_number(window, 5),
            "the comma is inside a 5-byte token"
        );
        let sixteen = *b"-1234567.8901234";
        assert!(short_number(sixteen, 16));
        assert!(!short_number(*b"-01.5           ", 5), "leading zero");
        assert!(!short_number(*b"1.              ", 2), "empty fraction");
        assert!(!short_number(*b".5              ", 2), "empty integer");
        assert!(!short_number(*b"-               ", 1), "a sign alone");
        assert!(short_number(*b"0               ", 1));
        assert!(short_number(*b"-0.0            ", 4));
    }
}
