//! Colour normalisation of option values (WebShop `engine/normalize.py`, environments.md §2.3).

/// WebShop's `COLOR_SET`, in the original order (the first substring hit wins).
pub const COLOR_SET: [&str; 102] = [
    "alabaster",
    "apricot",
    "aqua",
    "ash",
    "asphalt",
    "azure",
    "banana",
    "beige",
    "black",
    "blue",
    "blush",
    "bordeaux",
    "bronze",
    "brown",
    "burgundy",
    "camel",
    "camo",
    "caramel",
    "champagne",
    "charcoal",
    "cheetah",
    "chestnut",
    "chocolate",
    "christmas",
    "coffee",
    "cognac",
    "copper",
    "coral",
    "cranberry",
    "cream",
    "crystal",
    "dark",
    "denim",
    "eggplant",
    "elephant",
    "espresso",
    "fuchsia",
    "gold",
    "granite",
    "grape",
    "graphite",
    "grass",
    "gray",
    "green",
    "grey",
    "heather",
    "indigo",
    "ivory",
    "ivy",
    "khaki",
    "lavender",
    "lemon",
    "leopard",
    "light",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mauve",
    "merlot",
    "midnight",
    "mint",
    "mocha",
    "multicolor",
    "mushroom",
    "mustard",
    "natural",
    "navy",
    "nude",
    "olive",
    "orange",
    "peach",
    "pewter",
    "pink",
    "plum",
    "purple",
    "rainbow",
    "red",
    "rose",
    "royal",
    "rust",
    "sand",
    "sapphire",
    "seashell",
    "silver",
    "skull",
    "slate",
    "steel",
    "stone",
    "stonewash",
    "sunflower",
    "tan",
    "taupe",
    "teal",
    "tiger",
    "turquoise",
    "violet",
    "walnut",
    "wheat",
    "white",
    "wine",
    "yellow",
];

/// `normalize_color(s)` for a string: the first colour of [`COLOR_SET`] that is a
/// substring of `s` (case-sensitive, as the original), else `s` unchanged.
pub fn normalize_color(s: &str) -> String {
    COLOR_SET
        .iter()
        .find(|c| s.contains(*c))
        .map(|c| c.to_string())
        .unwrap_or_else(|| s.to_string())
}

/// `normalize_color((key, value))` for a goal option given as a dict item: Python's
/// `color in tuple` is element equality, so a colour replaces the pair only when the
/// key or the value *equals* it; otherwise the pair is kept and later stringified
/// by thefuzz as `str((key, value))` (see [`py_tuple_repr`]).
pub fn normalize_color_pair(key: &str, value: &str) -> String {
    COLOR_SET
        .iter()
        .find(|c| **c == key || **c == value)
        .map(|c| c.to_string())
        .unwrap_or_else(|| py_tuple_repr(key, value))
}

/// Python's `str.isprintable()` for one character (CPython's `Py_UNICODE_ISPRINTABLE`):
/// false for the general categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs except the ASCII
/// space. The ranges come from [`super::py_printable`], generated with the CPython and
/// Unicode versions it names.
pub fn py_isprintable(c: char) -> bool {
    let cp = c as u32;
    super::py_printable::NON_PRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

/// Python `repr(str)`, following CPython's `unicode_repr` (Objects/unicodeobject.c):
///
/// * quotes: `'`, or `"` when the string contains `'` and no `"`; the chosen quote and `\`
///   are backslash-escaped;
/// * `\t`, `\n`, `\r` by name; other ASCII controls (below 0x20, and 0x7f) as `\xhh`;
/// * a non-ASCII character that is not printable ([`py_isprintable`]: e.g. U+00A0, U+00AD,
///   U+200B, U+2028, private-use and unassigned code points) as `\xhh` below 0x100, `\uhhhh`
///   below 0x10000, else `\Uhhhhhhhh` (lowercase hex); printable ones stay as they are.
pub fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        let cp = c as u32;
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            _ if cp < 0x20 || cp == 0x7f => out.push_str(&format!("\\x{cp:02x}")),
            _ if cp < 0x7f || py_isprintable(c) => out.push(c),
            _ if cp <= 0xff => out.push_str(&format!("\\x{cp:02x}")),
            _ if cp <= 0xffff => out.push_str(&format!("\\u{cp:04x}")),
            _ => out.push_str(&format!("\\U{cp:08x}")),
        }
    }
    out.push(quote);
    out
}

/// Python `str((key, value))`.
pub fn py_tuple_repr(key: &str, value: &str) -> String {
    format!("({}, {})", py_str_repr(key), py_str_repr(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_colour_substring_wins() {
        // "dark navy" contains "dark" (index 31) before "navy" (index 67).
        assert_eq!(normalize_color("dark navy"), "dark");
        assert_eq!(normalize_color("x-large"), "x-large");
        // case-sensitive: "Black" has no lowercase colour... except none -> unchanged.
        assert_eq!(normalize_color("Black"), "Black");
        // "tangerine" contains "tan".
        assert_eq!(normalize_color("tangerine"), "tan");
    }

    #[test]
    fn pair_uses_equality_not_substring() {
        assert_eq!(normalize_color_pair("color", "grey"), "grey");
        assert_eq!(
            normalize_color_pair("color", "navy blue"),
            "('color', 'navy blue')"
        );
        assert_eq!(
            normalize_color_pair("size", "men's 9"),
            "('size', \"men's 9\")"
        );
        // a no-break space is not printable: str() of the tuple shows `\xa0`
        assert_eq!(
            normalize_color_pair("size", "6\u{a0}oz"),
            "('size', '6\\xa0oz')"
        );
    }

    /// `repr(s)` as CPython 3.11.7 (Unicode 14.0.0) prints it, recorded with
    /// `python3 -c "print(repr(s))"` for each input.
    #[test]
    fn repr_matches_cpython() {
        let table: &[(&str, &str)] = &[
            ("\u{0}", "'\\x00'"),
            ("\u{7}", "'\\x07'"),
            ("\u{9}", "'\\t'"),
            ("\u{a}", "'\\n'"),
            ("\u{d}", "'\\r'"),
            ("\u{1b}", "'\\x1b'"),
            ("\u{1f}", "'\\x1f'"),
            (" ", "' '"),
            ("~", "'~'"),
            ("\u{7f}", "'\\x7f'"),
            ("\u{80}", "'\\x80'"),
            ("\u{85}", "'\\x85'"),
            ("\u{9f}", "'\\x9f'"),
            ("\u{a0}", "'\\xa0'"),
            ("\u{a1}", "'\u{a1}'"),
            ("\u{ad}", "'\\xad'"),
            ("\u{e9}", "'\u{e9}'"),
            ("\u{ff}", "'\u{ff}'"),
            ("\u{100}", "'\u{100}'"),
            ("\u{378}", "'\\u0378'"),
            ("\u{61c}", "'\\u061c'"),
            ("\u{1680}", "'\\u1680'"),
            ("\u{2000}", "'\\u2000'"),
            ("\u{200b}", "'\\u200b'"),
            ("\u{200d}", "'\\u200d'"),
            ("\u{2028}", "'\\u2028'"),
            ("\u{2029}", "'\\u2029'"),
            ("\u{202f}", "'\\u202f'"),
            ("\u{205f}", "'\\u205f'"),
            ("\u{2060}", "'\\u2060'"),
            ("\u{3000}", "'\\u3000'"),
            ("\u{e000}", "'\\ue000'"),
            ("\u{f8ff}", "'\\uf8ff'"),
            ("\u{feff}", "'\\ufeff'"),
            ("\u{fff9}", "'\\ufff9'"),
            ("\u{fffd}", "'\u{fffd}'"),
            ("\u{ffff}", "'\\uffff'"),
            ("\u{1f600}", "'\u{1f600}'"),
            ("\u{e0001}", "'\\U000e0001'"),
            ("\u{e007f}", "'\\U000e007f'"),
            ("\u{f0000}", "'\\U000f0000'"),
            ("\u{10ffff}", "'\\U0010ffff'"),
            ("\u{1fffe}", "'\\U0001fffe'"),
            ("\u{30000}", "'\u{30000}'"),
            // CJK Extension H: assigned in Unicode 15, unassigned (escaped) in 14
            ("\u{31350}", "'\\U00031350'"),
            ("'", "\"'\""),
            ("\"", "'\"'"),
            ("it's", "\"it's\""),
            ("say \"hi\"", "'say \"hi\"'"),
            ("both ' and \"", "'both \\' and \"'"),
            ("\\", "'\\\\'"),
            ("men\u{a0}s 9", "'men\\xa0s 9'"),
            ("x-large\u{200b}", "'x-large\\u200b'"),
            ("6\u{202f}oz", "'6\\u202foz'"),
        ];
        assert_eq!(super::super::py_printable::UNICODE_VERSION, "14.0.0");
        for (input, want) in table {
            assert_eq!(&py_str_repr(input), want, "repr of {input:?}");
        }
    }
}
