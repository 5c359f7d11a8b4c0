//! A zero-allocation matcher for the train lines mixscope's own writer produces (nine in ten of
//! a run's lines): what the fast [`super::decode::Decoder`] reads instead of serde, agreeing
//! with it line by line (tests/it/fuzz.rs, fuzz/events). Private to `runs::events`.

use super::decode::TrainPoint;

/// A number's value from its mantissa `m` (digits without the point), the power of ten to
/// scale it by, and its sign; `text` (the whole number) is parsed instead when the scale is out
/// of the exact powers' range. serde_json rejects a number that overflows f64 ("number out of
/// range"): so does this, leaving the line to the strict parser's report.
#[inline(always)]
fn compose(m: f64, scale: i32, neg: bool, text: &[u8]) -> Option<f64> {
    let v = if scale == 0 {
        m
    } else if scale > 0 && scale < 23 {
        m * POW10[scale as usize]
    } else if scale < 0 && scale > -23 {
        m / POW10[(-scale) as usize]
    } else {
        let v = std::str::from_utf8(text).ok()?.parse::<f64>().ok()?.abs();
        if !v.is_finite() {
            return None;
        }
        v
    };
    Some(if neg { -v } else { v })
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// What [`train_line`] keeps between lines, so that nothing is allocated per
/// line: the `(tag, count)` pairs of the train line being read, and the language keys of the
/// last train line the exact-layout path read.
#[derive(Debug, Clone, Default)]
pub(super) struct Scratch {
    pub(super) counts: Vec<(u64, u64)>,
    keys: LangKeys,
}

/// The layout of a train line as mixscope's writer lays it out (serde's field order, no
/// spaces): matched literally, so that the common line costs a few compares and its numbers.
/// Anything else — another order, spaces, `null`, escapes, a missing field — returns `None` and
/// the line goes to serde (see `decode.rs`).
///
/// `rest` is the unread part of a chunk: the line is matched from its start up to its newline
/// (none of the layout's parts can hold one), and its length is returned without a search for
/// the newline first. A line cut short (no newline yet) is not decoded.
pub(super) fn train_line(s: &mut Scratch, rest: &[u8]) -> Option<(usize, TrainPoint<'static>)> {
    /// Languages a line may name and still take this path.
    const MAX_LANGS: usize = 32;
    let mut t = Tpl { b: rest, i: 0 };
    // (tag, count): a name is rebuilt from its tag (see [`tag_name`]) only by a reader that
    // has not seen it yet.
    let counts = &mut s.counts;
    counts.clear();
    let keys = &s.keys;
    let mut fresh_keys = false;
    let parsed = (|| {
        t.lit(b"{\"v\":1,\"step\":")?;
        let step = t.uint()?;
        t.lit(b",\"time\":")?;
        let time = t.num()?;
        t.lit(b",\"kind\":\"train\",\"loss\":")?;
        let loss = t.num()?;
        t.lit(b",\"lr\":")?;
        let lr = t.num()?;
        t.lit(b",\"tokens\":")?;
        let tokens = t.uint()?;
        t.lit(b",\"tokens_per_s\":")?;
        let tokens_per_s = t.num()?;
        t.lit(b",\"examples\":{\"lang\":{")?;
        // Most lines name the languages of the line before: matched key by key, one compare
        // each. Otherwise (or on any difference) the map is read afresh.
        let map_start = t.i;
        if t.known_keys(keys, counts).is_none() {
            (t.i, fresh_keys) = (map_start, true);
            counts.clear();
            // Language names of at most seven bytes (longer ones go to serde),
            // strictly increasing: serde writes a map sorted, and a repeated key (which the
            // strict parser would fold) never takes this path.
            t.map(Tpl::short_key, |t, tag| {
                let c = t.small_uint()?;
                if counts.len() == MAX_LANGS || counts.last().is_some_and(|&(last, _)| last >= tag) {
                    return None;
                }
                counts.push((tag, c));
                Some(())
            })?;
        }
        t.lit(b",\"task\":{")?;
        t.map(Tpl::key, |t, _| t.small_uint().map(|_| ()))?;
        t.lit(b"}")?;
        if t.b.get(t.i) == Some(&b',') {
            t.lit(b",\"grad_norm\":")?;
            t.skip_num()?;
        }
        t.lit(b"}")?;
        (t.b.get(t.i) == Some(&b'\n')).then_some(TrainPoint { step, time, loss, lr, tokens, tokens_per_s, langs: &[] })
    })();
    let train = parsed?;
    if fresh_keys {
        s.keys = LangKeys::of(&s.counts);
    }
    Some((t.i, train))
}

/// The language keys of the last train line read by [`train_line`], each as the word of its
/// bytes `"key":` (a key of up to five bytes, as language codes are), with its tag: a line
/// naming the same languages is matched with one compare per key. Empty when that line named
/// none, or a longer key.
#[derive(Debug, Clone, Default)]
struct LangKeys(Vec<KnownKey>);

#[derive(Debug, Clone, Copy)]
struct KnownKey {
    word: u64,
    /// The `"key":` bytes of `word`: their count, and a mask of them.
    len: usize,
    mask: u64,
    tag: u64,
    /// The byte after the key's count: `,`, or `}` after the last key.
    sep: u8,
}

impl LangKeys {
    /// The keys of a line's `(tag, count)` pairs (see [`tag_name`]).
    fn of(counts: &[(u64, u64)]) -> LangKeys {
        let mut keys = Vec::with_capacity(counts.len());
        for &(tag, _) in counts {
            let name = tag_name(tag);
            let len = name.len() + 3;
            if len > 8 {
                return LangKeys::default();
            }
            let mut w = [0u8; 8];
            w[0] = b'"';
            w[1..len - 2].copy_from_slice(name.as_bytes());
            w[len - 2..len].copy_from_slice(b"\":");
            let mask = u64::MAX >> (64 - 8 * len);
            keys.push(KnownKey { word: u64::from_le_bytes(w), len, mask, tag, sep: b',' });
        }
        if let Some(last) = keys.last_mut() {
            last.sep = b'}';
        }
        LangKeys(keys)
    }
}

/// A cursor for [`train_line`]: literal compares, and numbers read eight digits at a time.
struct Tpl<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Tpl<'a> {
    /// The literal `s` (a constant: inlined, the compare folds into a few word compares
    /// instead of a call to `memcmp`).
    #[inline(always)]
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        let rest = &self.b[self.i..];
        let n = s.len();
        if rest.len() < n.max(8) {
            // Near the end of the line: byte by byte.
            return rest.starts_with(s).then(|| self.i += n);
        }
        let mut j = 0;
        while j + 8 <= n {
            if word(rest, j) != word(s, j) {
                return None;
            }
            j += 8;
        }
        if j < n {
            let same = if n >= 8 {
                // The last eight bytes, overlapping the words compared.
                word(rest, n - 8) == word(s, n - 8)
            } else {
                let mut pad = [0u8; 8];
                pad[..n].copy_from_slice(s);
                (word(rest, 0) ^ u64::from_le_bytes(pad)) & ((1u64 << (8 * n)) - 1) == 0
            };
            if !same {
                return None;
            }
        }
        self.i += n;
        Some(())
    }

    #[inline]
    fn digit(&self) -> Option<u8> {
        self.b.get(self.i).filter(|c| c.is_ascii_digit()).map(|c| c - b'0')
    }

    /// Digits into `mant` while it holds fewer than `MAX` significant digits (`kept`: zeros
    /// before the first nonzero digit, as in `0.000012`, are not counted); returns (digits read,
    /// digits dropped). Eight bytes at a time: the digits among them are found and reduced with
    /// word arithmetic.
    #[inline(always)]
    fn digits<const MAX: u32>(&mut self, mant: &mut u64, kept: &mut u32) -> (u32, u32) {
        let (mut read, mut dropped) = (0, 0);
        while *kept + 8 <= MAX && self.i + 8 <= self.b.len() {
            let w = word(self.b, self.i);
            let (k, v) = leading_digits(w);
            if k == 0 {
                return (read, dropped);
            }
            if *mant == 0 {
                // The word's leading zeros are not significant.
                let mask = u64::MAX >> (64 - 8 * k);
                let zeros = ((w ^ 0x3030_3030_3030_3030) & mask).trailing_zeros().min(64) / 8;
                *kept += if v == 0 { 0 } else { k - zeros };
            } else {
                *kept += k;
            }
            *mant = *mant * POW10_U64[k as usize] + v;
            read += k;
            self.i += k as usize;
            if k < 8 {
                return (read, dropped);
            }
        }
        while let Some(d) = self.digit() {
            if *kept < MAX {
                *mant = *mant * 10 + d as u64;
                *kept += (*mant != 0) as u32;
            } else {
                dropped += 1;
            }
            read += 1;
            self.i += 1;
        }
        (read, dropped)
    }

    /// A JSON unsigned integer as serde reads `u64`: no sign, fraction, exponent or leading
    /// zero (and at most 19 digits here, which never overflow; longer ones go to serde).
    #[inline(always)]
    fn uint(&mut self) -> Option<u64> {
        if let Some(s) = self.b.get(self.i..self.i + 32) {
            let (n, v) = digit_run(s, 0);
            if (1..=18).contains(&n) {
                let n = n as usize;
                if (n > 1 && s[0] == b'0') || matches!(s[n], b'.' | b'e' | b'E') {
                    return None;
                }
                self.i += n;
                return Some(v);
            }
        }
        let start = self.i;
        let (mut v, mut kept) = (0u64, 0u32);
        let (n, dropped) = self.digits::<19>(&mut v, &mut kept);
        if n == 0
            || dropped > 0
            || (n > 1 && self.b[start] == b'0')
            || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        Some(v)
    }

    /// A JSON number (not `null`), to plotting precision: within an ulp of serde's value.
    #[inline(always)]
    fn num(&mut self) -> Option<f64> {
        self.plain_num().or_else(|| self.any_num())
    }

    /// The common number: `int` or `int.frac`, without sign or exponent, at most 18 digits in
    /// all, with 48 bytes of the line readable from its start. Each part is read as one run of
    /// digits (a few words); the value is the one [`Tpl::any_num`] computes from the same digits.
    /// `None` (nothing consumed) for anything else.
    #[inline(always)]
    fn plain_num(&mut self) -> Option<f64> {
        let s = self.b.get(self.i..self.i + 48)?;
        let (a, int) = digit_run(s, 0);
        if a == 0 || a > 18 || (a > 1 && s[0] == b'0') {
            return None;
        }
        let a = a as usize;
        let (b, frac) = if s[a] == b'.' { digit_run(s, a + 1) } else { (0, 0) };
        let b = b as usize;
        let end = if b == 0 { a } else { a + 1 + b };
        if (b == 0 && s[a] == b'.') || a + b > 18 || matches!(s[end], b'e' | b'E') {
            return None;
        }
        let mant = (int * POW10_U64[b] + frac) as i64 as f64;
        self.i += end;
        Some(if b == 0 { mant } else { mant / POW10[b] })
    }

    /// Any JSON number (not `null`): see [`Tpl::num`].
    #[inline(always)]
    fn any_num(&mut self) -> Option<f64> {
        let start = self.i;
        let neg = self.b.get(self.i) == Some(&b'-');
        self.i += neg as usize;
        let int_start = self.i;
        let (mut mant, mut kept) = (0u64, 0u32);
        // 18 significant digits (more than an f64 holds) keep the mantissa an i64, whose
        // conversion to f64 is one instruction.
        let (int_digits, dropped) = self.digits::<18>(&mut mant, &mut kept);
        if int_digits == 0 || (int_digits > 1 && self.b[int_start] == b'0') {
            return None;
        }
        let mut scale = dropped as i32;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            let (frac_digits, frac_dropped) = self.digits::<18>(&mut mant, &mut kept);
            if frac_digits == 0 {
                return None;
            }
            scale -= (frac_digits - frac_dropped) as i32;
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            let eneg = match self.b.get(self.i) {
                Some(b'-') => true,
                Some(b'+') => false,
                _ => {
                    self.i -= 1;
                    false
                }
            };
            self.i += 1;
            let e_start = self.i;
            let mut e: i32 = 0;
            while let Some(d) = self.digit() {
                e = e.saturating_mul(10).saturating_add(d as i32);
                self.i += 1;
            }
            if self.i == e_start {
                return None;
            }
            scale = scale.saturating_add(if eneg { -e } else { e });
        }
        compose(mant as i64 as f64, scale, neg, &self.b[start..self.i])
    }

    /// A JSON number checked as [`Tpl::num`] checks it, without computing its value (the
    /// digits are counted a word at a time); where its text is. One with an exponent is read
    /// in full (its range decides whether serde accepts it).
    #[inline(always)]
    fn skip_num(&mut self) -> Option<std::ops::Range<usize>> {
        let start = self.i;
        self.i += (self.b.get(self.i) == Some(&b'-')) as usize;
        let int_start = self.i;
        let int_digits = self.count_digits();
        if int_digits == 0 || (int_digits > 1 && self.b[int_start] == b'0') || int_digits > 300 {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.count_digits() == 0 {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i = start;
            self.num()?;
        }
        Some(start..self.i)
    }

    /// Skip ASCII digits; how many there were.
    #[inline(always)]
    fn count_digits(&mut self) -> usize {
        let start = self.i;
        while self.i + 8 <= self.b.len() {
            let k = digit_count(word(self.b, self.i)) as usize;
            self.i += k;
            if k < 8 {
                return self.i - start;
            }
        }
        while self.digit().is_some() {
            self.i += 1;
        }
        self.i - start
    }

    /// A JSON string without escapes or control characters, UTF-8; the bytes between the quotes.
    #[inline]
    fn key(&mut self) -> Option<&'a [u8]> {
        self.lit(b"\"")?;
        let start = self.i;
        let mut ascii = true;
        loop {
            let c = *self.b.get(self.i)?;
            if c == b'"' {
                break;
            }
            if c == b'\\' || c < 0x20 {
                return None;
            }
            ascii &= c < 0x80;
            self.i += 1;
        }
        let k = &self.b[start..self.i];
        if !ascii && std::str::from_utf8(k).is_err() {
            return None;
        }
        self.i += 1;
        Some(k)
    }

    /// A key of at most seven printable ASCII bytes without escapes (a language name), read
    /// as one word: its [`tag`] (which holds the key: see [`tag_name`]). Anything else is
    /// `None` (serde's path).
    #[inline(always)]
    fn short_key(&mut self) -> Option<u64> {
        const LOW: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        if self.b.get(self.i) != Some(&b'"') || self.i + 9 > self.b.len() {
            return None;
        }
        let start = self.i + 1;
        let w = word(self.b, start);
        // Bytes equal to zero after the xor have bit 7 set here; the first such byte is exact
        // (a borrow only reaches later bytes), which is all that is read of these masks.
        let zero = |v: u64| v.wrapping_sub(LOW) & !v & HIGH;
        let quote = zero(w ^ (b'"' as u64 * LOW));
        let len = (quote.trailing_zeros() / 8) as usize;
        if len >= 8 {
            return None;
        }
        let control = w.wrapping_sub(0x20 * LOW) & !w & HIGH; // bytes below 0x20
        let bad = control | (w & HIGH) | zero(w ^ (b'\\' as u64 * LOW));
        let inside = (1u64 << (8 * len)) - 1;
        if bad & inside != 0 {
            return None;
        }
        self.i = start + len + 1;
        Some(tag(w, len))
    }

    /// The entries of an object whose opening brace was matched, through its closing brace,
    /// when they are exactly `keys` in order, each with a count (pushed to `counts` with the
    /// key's tag); `None` on any difference (the caller reads the object afresh).
    ///
    /// One bounds check per entry: its key and its count are read as two words. A count of
    /// one to seven digits ends inside its word (longer ones are read as a run of digits), and
    /// the byte after it must be the entry's separator; anything else (a leading zero, a
    /// fraction, a count over 18 digits, an object that ends within 16 bytes of the key) is a
    /// difference.
    #[inline(always)]
    fn known_keys(&mut self, keys: &LangKeys, counts: &mut Vec<(u64, u64)>) -> Option<()> {
        if keys.0.is_empty() {
            return None;
        }
        let mut i = self.i;
        for k in &keys.0 {
            let entry: &[u8; 16] = self.b.get(i..i + 16)?.try_into().ok()?;
            let key = u64::from_le_bytes(entry[..8].try_into().ok()?);
            if (key ^ k.word) & k.mask != 0 {
                return None;
            }
            let count = u64::from_le_bytes(entry[k.len.min(8)..k.len.min(8) + 8].try_into().ok()?);
            let (digits, value, next) = match leading_digits(count) {
                (d @ 0..8, v) => (d, v, (count >> (8 * d)) as u8),
                _ => {
                    // Eight digits or more (ten million examples of a language): a longer run.
                    let s = self.b.get(i + k.len..i + k.len + 32)?;
                    let (d, v) = digit_run(s, 0);
                    if d > 18 {
                        return None;
                    }
                    (d, v, s[d as usize])
                }
            };
            if digits == 0 || (digits > 1 && count as u8 == b'0') || next != k.sep {
                return None;
            }
            counts.push((k.tag, value));
            i += k.len + digits as usize + 1;
        }
        self.i = i;
        Some(())
    }

    /// [`Tpl::uint`], from one word when that holds the whole number (as counts do).
    #[inline(always)]
    fn small_uint(&mut self) -> Option<u64> {
        if self.i + 8 <= self.b.len() {
            let (k, v) = leading_digits(word(self.b, self.i));
            let k = k as usize;
            if (1..8).contains(&k) {
                // Byte k is not a digit (k < 8), so the number ends there.
                if (k > 1 && self.b[self.i] == b'0') || matches!(self.b[self.i + k], b'.' | b'e' | b'E') {
                    return None;
                }
                self.i += k;
                return Some(v);
            }
        }
        self.uint()
    }

    /// The entries of an object whose opening brace was matched, through its closing brace:
    /// `"key":value` pairs separated by commas, `key` reading each key and `f` each value.
    #[inline]
    fn map<K>(
        &mut self,
        key: impl Fn(&mut Self) -> Option<K>,
        mut f: impl FnMut(&mut Self, K) -> Option<()>,
    ) -> Option<()> {
        if self.lit(b"}").is_some() {
            return Some(());
        }
        loop {
            let k = key(self)?;
            self.lit(b":")?;
            f(self, k)?;
            match self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Powers of ten to 10^18, exact in a `u64`.
const POW10_U64: [u64; 19] = {
    let mut p = [1u64; 19];
    let mut i = 1;
    while i < 19 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// The run of ASCII digits at `s[p..]`: its length, and its value when the length is at most
/// 18 (longer runs are cut short at 17 to 24 and their value is meaningless). Reads up to
/// three words, so `s` holds `p + 24` bytes.
#[inline(always)]
fn digit_run(s: &[u8], p: usize) -> (u32, u64) {
    let w0 = word(s, p);
    let k0 = digit_count(w0);
    if k0 < 8 {
        return (k0, if k0 == 0 { 0 } else { digits_value(w0, k0) });
    }
    let v = digits_value(w0, 8);
    let w1 = word(s, p + 8);
    let k1 = digit_count(w1);
    if k1 < 8 {
        return (8 + k1, if k1 == 0 { v } else { v * POW10_U64[k1 as usize] + digits_value(w1, k1) });
    }
    let v = v * 100_000_000 + digits_value(w1, 8);
    let w2 = word(s, p + 16);
    let k2 = digit_count(w2);
    if k2 > 2 {
        return (16 + k2, 0);
    }
    (16 + k2, if k2 == 0 { v } else { v * POW10_U64[k2 as usize] + digits_value(w2, k2) })
}

/// Eight bytes from `b[i..]` as a little-endian word (the first byte lowest).
#[inline(always)]
fn word(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"))
}

/// The number of ASCII digits a word (little-endian) starts with, 0..=8.
#[inline(always)]
fn digit_count(x: u64) -> u32 {
    const LOW: u64 = 0x0101_0101_0101_0101;
    let t = x ^ (0x30 * LOW); // a digit's byte becomes its value, 0..=9
                              // Bit 7 of a byte is set when the byte is not a digit. A carry out of a byte only reaches
                              // later bytes, so the first non-digit is always found (what follows it does not matter).
    let not_digit = (t.wrapping_add(0x76 * LOW) | t) & (0x80 * LOW);
    not_digit.trailing_zeros() / 8
}

/// The number of ASCII digits a word starts with (0..=8), and their value. The digits are
/// found with one add per word and reduced as in simdjson / fast_float (SWAR).
#[inline(always)]
fn leading_digits(x: u64) -> (u32, u64) {
    let k = digit_count(x);
    if k == 0 {
        return (0, 0);
    }
    (k, digits_value(x, k))
}

/// The value of the first `k` (1..=8) bytes of `x`, which are ASCII digits (little-endian:
/// the first byte lowest).
#[inline(always)]
fn digits_value(x: u64, k: u32) -> u64 {
    const LOW: u64 = 0x0101_0101_0101_0101;
    // The k digits into the word's last k bytes (the leading bytes become zero digits).
    let v = (x ^ (0x30 * LOW)) << (8 * (8 - k));
    let v = (v & (0x0F * LOW)).wrapping_mul(2561) >> 8;
    let v = (v & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601) >> 16;
    (v & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001) >> 32
}

/// The name a [`Tpl::short_key`] tag holds: its bytes up to the first zero (keys read that way
/// are printable ASCII, without NUL).
pub(super) fn tag_name(tag: u64) -> String {
    let b = tag.to_be_bytes();
    let len = b.iter().position(|&c| c == 0).unwrap_or(8);
    String::from_utf8_lossy(&b[..len]).into_owned()
}

/// A name of at most eight bytes as a number that orders as the name does: its bytes
/// big-endian, zero-padded (JSON keys here hold no NUL, so a prefix sorts first). `w` is the
/// little-endian word starting at the name.
#[inline(always)]
pub(super) fn tag(w: u64, len: usize) -> u64 {
    let keep = if len >= 8 { u64::MAX } else { (1u64 << (8 * len)) - 1 };
    (w & keep).swap_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_digits_of_a_word() {
        let w = |s: &[u8; 8]| u64::from_le_bytes(*s);
        assert_eq!(leading_digits(w(b"12345678")), (8, 12_345_678));
        assert_eq!(leading_digits(w(b"00000000")), (8, 0));
        assert_eq!(leading_digits(w(b"99999999")), (8, 99_999_999));
        assert_eq!(leading_digits(w(b"1234567,")), (7, 1_234_567));
        assert_eq!(leading_digits(w(b"09.5,\"ab")), (2, 9));
        assert_eq!(leading_digits(w(b"7}\n\xff\xff\xff\xff\xff")), (1, 7));
        assert_eq!(leading_digits(w(b"9\xb9999999")), (1, 9));
        for bad in [b"/2345678", b":2345678", b".1234567", b"\xb02345678", b"\x00\x00\x00\x00\x00\x00\x00\x00"] {
            assert_eq!(leading_digits(w(bad)).0, 0, "{bad:?}");
        }
        // Every byte value after a digit ends the digits exactly where a byte loop would.
        for c in 0..=255u8 {
            let mut b = *b"5555555_";
            b[3] = c;
            let want = if c.is_ascii_digit() { 7 } else { 3 };
            assert_eq!(leading_digits(w(&b)).0, want, "byte {c}");
        }
    }

    #[test]
    fn tags_order_as_the_names_and_short_keys_read_them() {
        let names: [&[u8]; 9] = [b"", b"a", b"ab", b"abc", b"b", b"en", b"es", b"zh-Hant", b"zz"];
        let tag_of = |n: &[u8]| {
            let mut w = [0u8; 8];
            w[..n.len()].copy_from_slice(n);
            tag(u64::from_le_bytes(w), n.len())
        };
        for a in names {
            for b in names {
                assert_eq!(tag_of(a).cmp(&tag_of(b)), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
        // Garbage after the key's quote does not enter its tag.
        let line = b"\"es\":13,\"fr\":1}}";
        let mut t = Tpl { b: line, i: 0 };
        assert_eq!(t.short_key(), Some(tag_of(b"es")));
        assert_eq!(t.i, 4);
        for n in [&b"es"[..], b"a", b"zh-Hant"] {
            assert_eq!(tag_name(tag_of(n)).as_bytes(), n);
        }
        for bad in [
            &b"\"e\\s\":1}}}}}}"[..],
            b"\"e\x01\":1}}}}}}",
            b"\"\xc3\xa9\":1}}}}}}",
            b"\"abcdefgh\":1}}}}",
            b"es\":1}}}}}}}",
        ] {
            let mut t = Tpl { b: bad, i: 0 };
            assert_eq!(t.short_key(), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// The languages of the line before, with counts of every length: read on this path up to
    /// 18 digits (ten million examples of a language and more are eight digits).
    #[test]
    fn known_keys_read_counts_up_to_eighteen_digits() {
        let tag_of = |n: &[u8]| {
            let mut w = [0u8; 8];
            w[..n.len()].copy_from_slice(n);
            tag(u64::from_le_bytes(w), n.len())
        };
        let keys = LangKeys::of(&[(tag_of(b"en"), 0), (tag_of(b"es"), 0)]);
        let rest = ",\"task\":{}},\"grad_norm\":1.0}\n";
        for (en, es, want) in [
            ("7", "12", Some((7, 12))),
            ("12345678", "9", Some((12_345_678, 9))),
            ("7", "123456789012345678", Some((7, 123_456_789_012_345_678))),
            ("7", "1234567890123456789", None),
            ("12345678", "07", None),
            ("012345678", "7", None),
            ("12345678.5", "7", None),
        ] {
            let text = format!("\"en\":{en},\"es\":{es}}}{rest}");
            let mut t = Tpl { b: text.as_bytes(), i: 0 };
            let mut counts = Vec::new();
            let got = t.known_keys(&keys, &mut counts).map(|()| (counts[0].1, counts[1].1));
            assert_eq!(got, want, "{text}");
            if got.is_some() {
                assert_eq!(&text.as_bytes()[t.i..], rest.as_bytes(), "{text}");
            }
        }
    }

    #[test]
    fn template_numbers_match_the_standard_parser() {
        for s in [
            "0",
            "7",
            "5.716889316022036",
            "1800000000.1999998",
            "1e-5",
            "2.5E+3",
            "-0.25",
            "123456789012345678901",
            "0.000123",
            "1e300",
            "12345678.12345678",
            "3.0e-7",
            "0.12345678901234567",
            "18446744073709551615.5",
            "10",
            "99999999",
            "100000000",
            "1234567812345678",
            "123456781234567812",
            "1234567812345678123",
            "12345678.1234567891",
            "1.00000000000000001",
            "0.5",
            "0.00000000000000000000000001",
        ] {
            // Alone (read digit by digit) and followed by the rest of a line (read by words).
            for text in [s.to_string(), format!("{s},\"lr\":0.001,\"tokens\":4096,\"tokens_per_s\":20480.0}}\n")] {
                let mut t = Tpl { b: text.as_bytes(), i: 0 };
                let v = t.num().unwrap();
                let want: f64 = s.parse().unwrap();
                assert!(((v - want) / want.abs().max(1e-300)).abs() < 1e-15, "{s}: {v} vs {want}");
                assert_eq!(t.i, s.len(), "{s}");
                // The word path keeps the digits the byte path keeps: the same value, exactly.
                let mut alone = Tpl { b: s.as_bytes(), i: 0 };
                assert_eq!(alone.num().map(f64::to_bits), Some(v.to_bits()), "{s}");
            }
        }
        for bad in ["01", "1.", ".5", "-", "1e", "1e+", "+1", "-01.5", "00.5", "1.,", "1.e5"] {
            for text in [bad.to_string(), format!("{bad},\"lr\":0.001,\"tokens\":4096,\"tokens_per_s\":20480.0}}\n")] {
                let mut t = Tpl { b: text.as_bytes(), i: 0 };
                assert!(t.num().is_none_or(|_| t.i != bad.len()), "{bad}");
            }
        }
        // Unsigned integers the same way, by words and digit by digit.
        for (s, want) in [("0", Some(0)), ("7", Some(7)), ("123456789", Some(123_456_789)), ("01", None), ("1.5", None)]
        {
            for text in [s.to_string(), format!("{s},\"tokens_per_s\":20480.0,\"examples\":{{}}}}\n")] {
                let mut t = Tpl { b: text.as_bytes(), i: 0 };
                assert_eq!(t.uint(), want, "{s}");
            }
        }
        let max = "18446744073709551615";
        for s in ["999999999999999999", "9999999999999999999"] {
            let text = format!("{s},{max}{max}");
            let mut t = Tpl { b: text.as_bytes(), i: 0 };
            assert_eq!(t.uint(), s.parse().ok(), "{s}");
        }
    }
}
