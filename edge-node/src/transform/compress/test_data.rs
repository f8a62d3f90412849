//! Deterministic inputs for the compression tests: text that compresses like minified
//! JavaScript and HTML (about 4 to 6 times), and noise that does not compress.

/// xorshift64*: enough randomness for test data, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

const WORDS: &[&str] = &[
    "function",
    "return",
    "const ",
    "let ",
    "var ",
    "this.",
    "document.",
    "getElementById(",
    "querySelector(",
    "addEventListener(",
    "\"click\"",
    "=>",
    " = ",
    " === ",
    "if (",
    "} else {",
    "for (",
    "null",
    "true",
    "false",
    "undefined",
    "{",
    "}",
    "(",
    ")",
    ";",
    ",",
    ".",
    "\n",
    "  ",
    "<div class=\"",
    "\">",
    "</div>",
    "<span>",
    "</span>",
    "<a href=\"/",
    "</a>",
    "<li>",
    "</li>",
    "window.",
    "Promise.resolve(",
    "await ",
    "async ",
    "JSON.parse(",
    ".length",
    ".map(",
    ".filter(",
    "[0]",
    "0",
    "1",
    "42",
];

/// `len` bytes of JavaScript- and HTML-like text.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let identifiers: Vec<String> = (0..300)
        .map(|_| {
            let n = 2 + rng.below(9);
            (0..n).map(|_| char::from(b'a' + u8::try_from(rng.below(26)).unwrap_or(0))).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        if rng.below(3) == 0 {
            out.extend_from_slice(identifiers[rng.below(identifiers.len())].as_bytes());
        } else {
            out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        }
    }
    out.truncate(len);
    out
}

/// `len` bytes that do not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}
