//! Byte classes and small grammar helpers: tokens, OWS, comma lists and quoted strings
//! (RFC 9110 §5.6), request-target and host characters (RFC 3986 §2–3).
//!
//! Owns: the one lookup table every parser of the codec classifies bytes with, the quote-aware
//! comma-list splitter, and exact validators for the small grammars used inside field values
//! (transfer codings, Upgrade protocols, chunk-extension values). Must not: allocate, panic on any
//! input, or know about messages, limits or errors — callers decide what a failed check means.

/// `tchar`: the characters of a token (RFC 9110 §5.6.2).
pub(crate) const TCHAR: u8 = 1;
/// A byte allowed inside a field value or reason phrase: HTAB, SP, VCHAR, obs-text
/// (RFC 9110 §5.5). CR, LF, NUL, DEL and other controls are not.
pub(crate) const VALUE: u8 = 2;
/// A byte allowed in a request-target: VCHAR except `#` (no fragment on the wire, RFC 9112 §3.2;
/// no raw non-ASCII, RFC 3986 §2).
pub(crate) const TARGET: u8 = 4;
/// A byte of a registered host name as we accept it: unreserved (RFC 3986 §2.3).
pub(crate) const HOST: u8 = 8;
/// `qdtext` of a quoted string (RFC 9110 §5.6.4).
pub(crate) const QDTEXT: u8 = 16;
/// A hexadecimal digit.
pub(crate) const HEX: u8 = 32;

const fn classify(b: u8) -> u8 {
    let mut c = 0;
    let alpha = b.is_ascii_alphabetic();
    let digit = b.is_ascii_digit();
    let vchar = b >= 0x21 && b <= 0x7e;
    let obs_text = b >= 0x80;
    if alpha
        || digit
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
    {
        c |= TCHAR;
    }
    if b == b'\t' || b == b' ' || vchar || obs_text {
        c |= VALUE;
    }
    if vchar && b != b'#' {
        c |= TARGET;
    }
    if alpha || digit || matches!(b, b'-' | b'.' | b'_' | b'~') {
        c |= HOST;
    }
    if b == b'\t' || b == b' ' || b == 0x21 || (b >= 0x23 && b <= 0x5b) || (b >= 0x5d && b <= 0x7e)
    {
        c |= QDTEXT;
    }
    if obs_text {
        c |= QDTEXT;
    }
    if b.is_ascii_hexdigit() {
        c |= HEX;
    }
    c
}

static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = classify(i as u8);
        i += 1;
    }
    table
};

/// Whether `b` belongs to every class in `class`.
#[inline]
pub(crate) fn is(b: u8, class: u8) -> bool {
    CLASSES[usize::from(b)] & class == class
}

#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    is(b, TCHAR)
}

#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Number of leading bytes of `s` in `class`.
#[inline]
pub(crate) fn run(s: &[u8], class: u8) -> usize {
    s.iter().position(|&b| !is(b, class)).unwrap_or(s.len())
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Some byte of `x` is below `n` (n <= 128). Exact (Bit Twiddling Hacks, "hasless").
#[inline]
fn has_less(x: u64, n: u8) -> bool {
    x.wrapping_sub(LO * u64::from(n)) & !x & HI != 0
}

/// Some byte of `x` equals `b`.
#[inline]
fn has_byte(x: u64, b: u8) -> bool {
    let v = x ^ (LO * u64::from(b));
    v.wrapping_sub(LO) & !v & HI != 0
}

/// [`run`] for `class`, eight bytes at a time where the class allows it (field values and
/// request-targets, the long runs of a head); byte by byte for the rest and the tail.
#[inline]
pub(crate) fn run_fast(s: &[u8], class: u8) -> usize {
    match class {
        // HTAB falls back to the byte loop, which accepts it.
        VALUE => run_words(s, class, |x| !has_less(x, 0x20) && !has_byte(x, 0x7f)),
        TARGET => run_words(s, class, |x| {
            !has_less(x, 0x21) && x & HI == 0 && !has_byte(x, 0x7f) && !has_byte(x, b'#')
        }),
        _ => run(s, class),
    }
}

#[inline(always)]
fn run_words(s: &[u8], class: u8, word_ok: impl Fn(u64) -> bool) -> usize {
    let mut done = 0;
    for chunk in s.chunks_exact(8) {
        // A chunk is always 8 bytes; a zero word fails `word_ok` and falls back safely.
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if !word_ok(x) {
            break;
        }
        done += 8;
    }
    done + run(s.get(done..).unwrap_or(&[]), class)
}

/// `1*tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Removes leading and trailing SP/HTAB.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or(&[])
}

/// `1*DIGIT` as a `u64`: `Err(false)` if not all digits (or empty), `Err(true)` on overflow.
pub(crate) fn parse_decimal(s: &[u8]) -> Result<u64, bool> {
    if s.is_empty() {
        return Err(false);
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(false);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(true)?;
    }
    Ok(n)
}

/// `quoted-string` (RFC 9110 §5.6.4) at the start of `s`: returns its length including both
/// quotes, or `None` if `s` does not start with a complete, valid one.
pub(crate) fn quoted_string_len(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    loop {
        let b = *s.get(i)?;
        match b {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if !is(escaped, VALUE) {
                    return None;
                }
                i += 2;
            }
            _ if is(b, QDTEXT) => i += 1,
            _ => return None,
        }
    }
}

/// The elements of a comma-separated list (RFC 9110 §5.6.1), OWS-trimmed, empty elements
/// skipped. Commas inside quoted strings do not split.
pub(crate) struct List<'a> {
    rest: &'a [u8],
}

impl<'a> List<'a> {
    pub(crate) fn new(value: &'a [u8]) -> Self {
        Self { rest: value }
    }
}

impl<'a> Iterator for List<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let mut quoted = false;
            let mut escaped = false;
            let mut split = self.rest.len();
            for (i, &b) in self.rest.iter().enumerate() {
                if escaped {
                    escaped = false;
                } else if quoted {
                    match b {
                        b'\\' => escaped = true,
                        b'"' => quoted = false,
                        _ => {}
                    }
                } else if b == b'"' {
                    quoted = true;
                } else if b == b',' {
                    split = i;
                    break;
                }
            }
            let element = self.rest.get(..split).unwrap_or(&[]);
            self.rest = self.rest.get(split + 1..).unwrap_or(&[]);
            let element = trim_ows(element);
            if !element.is_empty() {
                return Some(element);
            }
        }
        None
    }
}

/// A `transfer-coding` (RFC 9112 §7): `token *( OWS ";" OWS token BWS "=" BWS ( token /
/// quoted-string ) )`. Returns the coding name and whether it had parameters, or `None` if the
/// element does not match the grammar.
pub(crate) fn transfer_coding(element: &[u8]) -> Option<(&[u8], bool)> {
    let name_len = run(element, TCHAR);
    if name_len == 0 {
        return None;
    }
    let name = element.get(..name_len)?;
    let mut rest = element.get(name_len..)?;
    let mut has_params = false;
    loop {
        rest = skip_ws(rest);
        if rest.is_empty() {
            return Some((name, has_params));
        }
        if rest.first() != Some(&b';') {
            return None;
        }
        rest = skip_ws(rest.get(1..)?);
        let key = run(rest, TCHAR);
        if key == 0 {
            return None;
        }
        rest = skip_ws(rest.get(key..)?);
        if rest.first() != Some(&b'=') {
            return None;
        }
        rest = skip_ws(rest.get(1..)?);
        let value = match rest.first() {
            Some(b'"') => quoted_string_len(rest)?,
            _ => run(rest, TCHAR),
        };
        if value == 0 {
            return None;
        }
        rest = rest.get(value..)?;
        has_params = true;
    }
}

/// A `protocol` of Upgrade (RFC 9110 §7.8): `protocol-name [ "/" protocol-version ]`, both tokens.
pub(crate) fn is_protocol(element: &[u8]) -> bool {
    match element.iter().position(|&b| b == b'/') {
        Some(slash) => {
            is_token(element.get(..slash).unwrap_or(&[]))
                && is_token(element.get(slash + 1..).unwrap_or(&[]))
        }
        None => is_token(element),
    }
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    s.get(n..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_the_abnf() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), tchar, "tchar {b:#x}");
            let value = b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80;
            assert_eq!(is(b, VALUE), value, "value {b:#x}");
            assert_eq!(is(b, TARGET), (0x21..=0x7e).contains(&b) && b != b'#');
        }
    }

    #[test]
    fn word_at_a_time_runs_equal_byte_runs() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let alphabet = b"aZ09 \t#\x7f\x80\xff\x00\x1f!~:%";
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let mut s = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly bytes of the class, sometimes anything.
                let b = if x & 7 == 0 {
                    alphabet[(x >> 8) as usize % alphabet.len()]
                } else {
                    (x >> 16) as u8
                };
                s.push(b);
            }
            for class in [VALUE, TARGET, TCHAR] {
                assert_eq!(run_fast(&s, class), run(&s, class), "{s:?}");
            }
        }
        for b in 0..=255u8 {
            let s = [b'a', b'a', b'a', b'a', b'a', b'a', b'a', b, b'a'];
            assert_eq!(run_fast(&s, VALUE), run(&s, VALUE), "{b:#x}");
            assert_eq!(run_fast(&s, TARGET), run(&s, TARGET), "{b:#x}");
        }
    }

    #[test]
    fn lists_split_outside_quotes_and_skip_empty_elements() {
        let items: Vec<&[u8]> = List::new(b" a ,, b;q=\"x,y\" ,\t,c ").collect();
        assert_eq!(items, vec![&b"a"[..], b"b;q=\"x,y\"", b"c"]);
        assert_eq!(List::new(b" , ,").count(), 0);
    }

    #[test]
    fn transfer_codings_follow_the_grammar() {
        assert_eq!(transfer_coding(b"chunked"), Some((&b"chunked"[..], false)));
        assert_eq!(transfer_coding(b"gzip ; q = 1"), Some((&b"gzip"[..], true)));
        assert_eq!(transfer_coding(b"x;a=\"b\\\"c\""), Some((&b"x"[..], true)));
        for bad in [
            &b"chunked;"[..],
            b"a b",
            b";a=b",
            b"a;=b",
            b"a;b",
            b"a;b=",
            b"a;b=\"c",
        ] {
            assert_eq!(transfer_coding(bad), None, "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn decimal_rejects_signs_and_overflow() {
        assert_eq!(parse_decimal(b"0042"), Ok(42));
        assert_eq!(parse_decimal(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), Err(true));
        for bad in [&b""[..], b"+1", b"-1", b"1 1", b"0x1"] {
            assert_eq!(parse_decimal(bad), Err(false));
        }
    }
}
