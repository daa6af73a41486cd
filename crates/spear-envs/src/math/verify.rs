//! The `math_dapo` verifier, ported exactly (spec §2.2 "Extrinsic, math";
//! `environments.md` §3 "Verifier"; verl `verl/utils/reward_score/math_dapo.py`).
//!
//! Pure string logic, in Python's semantics (code points, `str.strip`,
//! single-pass `re.sub`):
//!
//! * `compute_score` first keeps the **last 300 characters** of the response.
//! * **Strict** (`strict_box_verify=True`, what SPEAR and ReTool use): of those,
//!   keep the last 100 characters, take the **last** `\boxed{` and match braces
//!   to its closing `}`; the content must equal the ground truth **exactly** (no
//!   normalisation of either side). No box, or a box that never closes, gives
//!   the prediction `None` (upstream's `extracted_pred = None`), which equals no
//!   ground truth: even a ground truth `"[INVALID]"` scores −1.
//! * **Non-strict** (the function's default, Minerva): the last match of
//!   `(?i)Answer\s*:\s*([^\n]+)`, then `normalize_final_answer` on both the
//!   prediction and the ground truth; no match gives the string `"[INVALID]"`
//!   (normalised like any answer, so a ground truth `"[INVALID]"` scores +1 here,
//!   as upstream).
//! * Score `+1.0` when correct, else `-1.0`; `acc` is the boolean.
//!
//! Read from `verl/verl/utils/reward_score/math_dapo.py` of TencentYoutuResearch/SPEAR
//! @ 7e8431513165640b4b1f78d09ebaae8807ee4f85 (`is_correct_strict_box` returns
//! `Optional[str]`; `is_correct_minerva` returns `str`).

use super::pystr::{is_py_space, last_chars, py_isdigit, py_strip};

/// The prediction string upstream's **non-strict** (Minerva) mode returns when there is
/// no `Answer:` line. Strict mode returns `None` instead (see [`DapoScore::pred`]).
pub const INVALID_PRED: &str = "[INVALID]";

/// `math_dapo.compute_score`'s result.
#[derive(Debug, Clone, PartialEq)]
pub struct DapoScore {
    /// `+1.0` if correct, `-1.0` otherwise.
    pub score: f64,
    /// Whether the prediction matched.
    pub acc: bool,
    /// The prediction exactly as upstream returns it: strict mode gives `None`
    /// when there is no closed box in the last 100 characters; non-strict mode
    /// always gives a string (`"[INVALID]"` when there is no `Answer:` line).
    pub pred: Option<String>,
    /// False when nothing was extracted (no box / no `Answer:` line). Not an
    /// upstream field: in strict mode it is `pred.is_some()`; in non-strict mode it
    /// tells a missing `Answer:` line from an answer that normalises to `[INVALID]`.
    pub extracted: bool,
}

/// `math_dapo.compute_score(solution, ground_truth, strict_box_verify)`.
pub fn compute_score(solution: &str, ground_truth: &str, strict: bool) -> DapoScore {
    let solution = last_chars(solution, 300);
    let (acc, pred, extracted) = if strict {
        is_correct_strict_box(solution, ground_truth)
    } else {
        is_correct_minerva(solution, ground_truth)
    };
    DapoScore {
        score: if acc { 1.0 } else { -1.0 },
        acc,
        pred,
        extracted,
    }
}

/// The last `\boxed{…}` of `s`, braces matched, including `\boxed{` and the
/// closing `}`; `None` if there is no `\boxed{` or it never closes.
pub fn last_boxed_only_string(s: &str) -> Option<&str> {
    let idx = s.rfind("\\boxed{")?;
    let mut open: i64 = 0;
    for (off, b) in s.as_bytes()[idx..].iter().enumerate() {
        match b {
            b'{' => open += 1,
            b'}' => {
                open -= 1;
                if open == 0 {
                    return Some(&s[idx..=idx + off]);
                }
            }
            _ => {}
        }
    }
    None
}

/// `remove_boxed`: the content of a `\boxed{…}` string returned by
/// [`last_boxed_only_string`] (which always has that shape).
pub fn remove_boxed(s: &str) -> &str {
    s.strip_prefix("\\boxed{")
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s)
}

/// `is_correct_strict_box`: `None == gt` is false for every string ground truth.
fn is_correct_strict_box(solution: &str, gt: &str) -> (bool, Option<String>, bool) {
    let tail = last_chars(solution, 100);
    match last_boxed_only_string(tail) {
        Some(b) => {
            let p = remove_boxed(b);
            (p == gt, Some(p.to_string()), true)
        }
        None => (false, None, false),
    }
}

fn is_correct_minerva(solution: &str, gt: &str) -> (bool, Option<String>, bool) {
    let answers = find_answer_lines(solution);
    let (raw, extracted) = match answers.last() {
        Some(a) => (*a, true),
        None => (INVALID_PRED, false),
    };
    let pred = normalize_final_answer(raw);
    let gt = normalize_final_answer(gt);
    (pred == gt, Some(pred), extracted)
}

/// Python `re.findall(r"(?i)Answer\s*:\s*([^\n]+)", s)`, with the regex
/// engine's backtracking reproduced (the group may start with a space).
pub fn find_answer_lines(s: &str) -> Vec<&str> {
    const WORD: [&[char]; 6] = [
        &['a', 'A'],
        &['n', 'N'],
        &['s', 'S', '\u{17F}'],
        &['w', 'W'],
        &['e', 'E'],
        &['r', 'R'],
    ];
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map(|c| c.0).unwrap_or(s.len());
    let mut out = Vec::new();
    let mut i = 0;
    'scan: while i < chars.len() {
        // "answer", case-insensitively
        for (k, alts) in WORD.iter().enumerate() {
            match chars.get(i + k) {
                Some(&(_, c)) if alts.contains(&c) => {}
                _ => {
                    i += 1;
                    continue 'scan;
                }
            }
        }
        let mut j = i + 6;
        while j < chars.len() && is_py_space(chars[j].1) {
            j += 1;
        }
        if j >= chars.len() || chars[j].1 != ':' {
            i += 1;
            continue;
        }
        let q = j + 1;
        let mut w = q;
        while w < chars.len() && is_py_space(chars[w].1) {
            w += 1;
        }
        // `\s*` backtracks until `[^\n]+` can take at least one character.
        let start = if w < chars.len() {
            Some(w)
        } else {
            (q..w).rev().find(|&k| chars[k].1 != '\n')
        };
        let Some(start) = start else {
            i += 1;
            continue;
        };
        let mut end = start;
        while end < chars.len() && chars[end].1 != '\n' {
            end += 1;
        }
        out.push(&s[byte_at(start)..byte_at(end)]);
        i = end;
    }
    out
}

/// Minerva `SUBSTITUTIONS` (in order).
pub const SUBSTITUTIONS: [(&str, &str); 10] = [
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    ("\\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
];

/// Minerva `REMOVED_EXPRESSIONS` (in order).
pub const REMOVED_EXPRESSIONS: [&str; 41] = [
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "hours",
    "km",
    "units",
    "\\ldots",
    "sue",
    "points",
    "feet",
    "minutes",
    "digits",
    "cents",
    "degrees",
    "cm",
    "gm",
    "pounds",
    "meters",
    "meals",
    "edges",
    "students",
    "childrentickets",
    "multiples",
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    "\\mathrm{th}",
    "^\\circ",
    "^{\\circ}",
    "\\;",
    ",\\!",
    "{,}",
    "\"",
    "\\dots",
];

/// Minerva `normalize_final_answer`, step by step as in `math_dapo.py`.
pub fn normalize_final_answer(final_answer: &str) -> String {
    let mut s = final_answer.rsplit('=').next().unwrap_or("").to_string();
    for (before, after) in SUBSTITUTIONS {
        s = s.replace(before, after);
    }
    for expr in REMOVED_EXPRESSIONS {
        s = s.replace(expr, "");
    }
    s = sub_dollar_pairs(&s);
    s = sub_wrapped_lazy(&s, "\\text{");
    s = sub_wrapped_lazy(&s, "\\textbf{");
    s = sub_wrapped_lazy(&s, "\\overline{");
    s = sub_boxed_greedy(&s);
    s = sub_frac_shorthand(&s);
    s = sub_sqrt_shorthand(&s);
    s = s.replace('$', "");
    if py_isdigit(&s.replace(',', "")) {
        s = s.replace(',', "");
    }
    py_strip(&s).to_string()
}

/// `re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", s)`: per line (`.` stops at
/// `\n`), a line with two `$` becomes `$` + the text between them + `$`.
fn sub_dollar_pairs(s: &str) -> String {
    s.split('\n')
        .map(|line| {
            let mut it = line.match_indices('$');
            match (it.next(), it.next()) {
                (Some((a, _)), Some((b, _))) => format!("${}$", &line[a + 1..b]),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `re.sub(r"(PREFIX)(.*?)(\})", "\\2", s)` for a prefix ending in `{`.
fn sub_wrapped_lazy(s: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if let Some(body) = rest.strip_prefix(prefix) {
            let close = body.find('}');
            let newline = body.find('\n');
            if let Some(c) = close.filter(|&c| newline.is_none_or(|n| c < n)) {
                out.push_str(&body[..c]);
                i += prefix.len() + c + 1;
                continue;
            }
        }
        let ch = rest.chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// `re.sub(r"(\\boxed\{)(.*)(\})", "\\2", s)`: greedy to the last `}` of the line.
fn sub_boxed_greedy(s: &str) -> String {
    const P: &str = "\\boxed{";
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if let Some(body) = rest.strip_prefix(P) {
            let line = &body[..body.find('\n').unwrap_or(body.len())];
            if let Some(c) = line.rfind('}') {
                out.push_str(&line[..c]);
                i += P.len() + c + 1;
                continue;
            }
        }
        let ch = rest.chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// `re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", s)`.
fn sub_frac_shorthand(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if let Some(after) = rest.strip_prefix("frac") {
            let mut cs = after.chars();
            if let (Some(a), Some(b)) = (cs.next(), cs.next()) {
                if a != '{' && b != '\n' {
                    out.push_str(&format!("frac{{{a}}}{{{b}}}"));
                    i += 4 + a.len_utf8() + b.len_utf8();
                    continue;
                }
            }
        }
        let ch = rest.chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// `re.sub(r"(sqrt)([^{])", "sqrt{\\2}", s)`.
fn sub_sqrt_shorthand(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if let Some(after) = rest.strip_prefix("sqrt") {
            if let Some(a) = after.chars().next().filter(|&a| a != '{') {
                out.push_str(&format!("sqrt{{{a}}}"));
                i += 4 + a.len_utf8();
                continue;
            }
        }
        let ch = rest.chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (response, ground truth, expected score, expected pred) in strict mode.
    /// Each expectation was derived by hand from the Python source.
    #[test]
    fn strict_table() {
        let pad = "x".repeat(400);
        let cases: Vec<(String, &str, f64, Option<&str>)> = vec![
            ("The answer is \\boxed{42}.".into(), "42", 1.0, Some("42")),
            ("\\boxed{42}".into(), "42", 1.0, Some("42")),
            // exact string match: no normalisation of whitespace
            ("\\boxed{ 42}".into(), "42", -1.0, Some(" 42")),
            ("\\boxed{42 }".into(), "42", -1.0, Some("42 ")),
            // nested braces are matched
            (
                "\\boxed{\\frac{1}{2}}".into(),
                "\\frac{1}{2}",
                1.0,
                Some("\\frac{1}{2}"),
            ),
            ("\\boxed{{a}{b}}".into(), "{a}{b}", 1.0, Some("{a}{b}")),
            // the last box wins
            ("\\boxed{1} then \\boxed{2}".into(), "2", 1.0, Some("2")),
            ("\\boxed{2} then \\boxed{1}".into(), "2", -1.0, Some("1")),
            // no box / unclosed box
            ("The answer is 42".into(), "42", -1.0, None),
            ("\\boxed{42".into(), "42", -1.0, None),
            ("".into(), "42", -1.0, None),
            // `\boxed {` with a space is not a box
            ("\\boxed {42}".into(), "42", -1.0, None),
            // only the last 100 characters are searched
            (format!("\\boxed{{42}}{}", "y".repeat(95)), "42", -1.0, None),
            (
                format!("\\boxed{{42}}{}", "y".repeat(90)),
                "42",
                1.0,
                Some("42"),
            ),
            // a long prefix does not matter
            (format!("{pad}\\boxed{{7}}"), "7", 1.0, Some("7")),
            // unclosed last box hides an earlier good one
            ("\\boxed{7} and \\boxed{".into(), "7", -1.0, None),
            // LaTeX text kept verbatim
            (
                "\\boxed{\\text{(B)}}".into(),
                "\\text{(B)}",
                1.0,
                Some("\\text{(B)}"),
            ),
            // empty ground truth and empty box
            ("\\boxed{}".into(), "", 1.0, Some("")),
            ("\\boxed{-5}".into(), "-5", 1.0, Some("-5")),
            // unicode is counted in characters, not bytes
            (
                format!("{}\\boxed{{é}}", "é".repeat(200)),
                "é",
                1.0,
                Some("é"),
            ),
        ];
        for (resp, gt, score, pred) in cases {
            let r = compute_score(&resp, gt, true);
            assert_eq!(r.score, score, "response {resp:?}");
            assert_eq!(r.acc, score > 0.0);
            assert_eq!(r.pred.as_deref(), pred, "response {resp:?}");
            assert_eq!(r.extracted, pred.is_some());
        }
    }

    /// Upstream's strict pred is `None` when nothing is boxed, and `None == "[INVALID]"`
    /// is false: a ground truth `[INVALID]` must not score +1 without a box. A literal
    /// boxed `[INVALID]` does match it. Non-strict mode returns the string `"[INVALID]"`,
    /// which upstream normalises and compares like any answer (so it does match).
    #[test]
    fn invalid_ground_truth() {
        let r = compute_score("no box at all", INVALID_PRED, true);
        assert_eq!((r.score, r.acc, r.pred), (-1.0, false, None));
        let r = compute_score("\\boxed{[INVALID]}", INVALID_PRED, true);
        assert_eq!((r.score, r.pred.as_deref()), (1.0, Some(INVALID_PRED)));
        let r = compute_score("no answer line", INVALID_PRED, false);
        assert_eq!((r.score, r.pred.as_deref()), (1.0, Some(INVALID_PRED)));
        assert!(!r.extracted);
    }

    #[test]
    fn last_boxed_and_remove() {
        assert_eq!(
            last_boxed_only_string("a \\boxed{x{y}} b"),
            Some("\\boxed{x{y}}")
        );
        assert_eq!(last_boxed_only_string("\\boxed{x{y}"), None);
        assert_eq!(remove_boxed("\\boxed{x{y}}"), "x{y}");
    }

    #[test]
    fn normalize_table() {
        // (input, expected), each worked through the Python steps by hand.
        let cases = [
            ("42", "42"),
            ("  42  ", "42"),
            ("1,000", "1000"),
            ("1,000.5", "1,000.5"), // "1000.5".isdigit() is False
            ("x = 5", "5"),
            ("$5$", "5"),
            ("The answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
            ("\\text{(B)}", "(B)"),
            ("10 degrees", "10"),
            ("\\frac12", "\\frac{1}{2}"),
            ("\\sqrt2", "\\sqrt{2}"),
            ("\\boxed{7}", "7"),
            ("5^\\circ", "5"),
            ("a b", "b"), // "a " is removed
            ("\\textbf{9}", "9"),
            ("\\overline{3}", "3"),
            ("[INVALID]", "[INVALID]"),
            ("12 students", "12"),
        ];
        for (inp, want) in cases {
            assert_eq!(normalize_final_answer(inp), want, "input {inp:?}");
        }
    }

    #[test]
    fn minerva_mode() {
        let r = compute_score("Reasoning...\nAnswer: 42", "42", false);
        assert_eq!((r.score, r.pred.as_deref()), (1.0, Some("42")));
        // the last Answer: line counts, case-insensitive
        let r = compute_score("answer: 1\nANSWER : 2", "2", false);
        assert_eq!((r.score, r.pred.as_deref()), (1.0, Some("2")));
        // `\s*` may cross a newline
        let r = compute_score("Answer:\n\n 17", "17", false);
        assert_eq!(r.pred.as_deref(), Some("17"));
        // ground truth is normalised too
        let r = compute_score("Answer: $1,000$", "1000", false);
        assert_eq!(r.score, 1.0);
        // nothing to extract
        let r = compute_score("no final line", "1", false);
        assert_eq!((r.score, r.pred.as_deref()), (-1.0, Some(INVALID_PRED)));
        assert!(!r.extracted);
        // a box is not an Answer: line in this mode
        let r = compute_score("\\boxed{3}", "3", false);
        assert_eq!(r.score, -1.0);
    }

    #[test]
    fn answer_regex_backtracking() {
        // "Answer: \n" at the end: group is the single space before the newline
        assert_eq!(find_answer_lines("Answer: \n"), vec![" "]);
        assert_eq!(find_answer_lines("Answer:\n"), Vec::<&str>::new());
        assert_eq!(find_answer_lines("answers: 3"), Vec::<&str>::new());
        assert_eq!(find_answer_lines("Answer: a\nAnswer: b"), vec!["a", "b"]);
        // the greedy group swallows a following "Answer:" on the same line
        assert_eq!(
            find_answer_lines("Answer: a Answer: b"),
            vec!["a Answer: b"]
        );
    }
}
