//! Offline training problems: a deterministic generator of integer-answer
//! problems where a code interpreter genuinely helps (big numbers, modular
//! exponentiation, counting, divisor sums, linear systems, recurrences), in six
//! families with three difficulty levels, plus demonstrations
//! (problem → code → output → boxed answer) for a warm start.
//!
//! Every generated problem carries `check_code`: a Python program computing the
//! answer by a *different* method (brute force, Python big integers, sympy).
//! The tests run it in the sandbox and compare.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::super::conversation::{Message, Role};
use super::super::tool::{ToolCall, ANSWER_FORMAT, TOOL_NAME};
use super::MathProblem;

/// Problem families; serialised as [`Family::name`] (the trainer's `env.math.families`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Products and powers of large integers, digit sums.
    BigArithmetic,
    /// Modular exponentiation and the Chinese remainder theorem.
    Modular,
    /// Binomials, non-consecutive subsets, derangements.
    Combinatorics,
    /// Divisor counts and sums, coprime counts.
    NumberTheory,
    /// Integer linear systems with 2–4 unknowns.
    LinearSystem,
    /// Arithmetic sequences, polynomial sums, linear recurrences.
    Sequence,
    /// One product `a × b` of two 2-, 3- or 4-digit numbers (level 1, 2, 3): short enough
    /// for a tiny character-level policy to copy into a tool call, too long to multiply in
    /// its head. Not in [`FAMILIES`]: named only by `env.math.families` (the tool-use
    /// experiment, docs/math.md).
    Multiply,
}

/// The six families of the default mix, in generation order ([`Family::Multiply`] is
/// generated only when named).
pub const FAMILIES: [Family; 6] = [
    Family::BigArithmetic,
    Family::Modular,
    Family::Combinatorics,
    Family::NumberTheory,
    Family::LinearSystem,
    Family::Sequence,
];

impl Family {
    /// Short name (`generated/<name>` is the data source).
    pub fn name(self) -> &'static str {
        match self {
            Family::BigArithmetic => "big_arithmetic",
            Family::Modular => "modular",
            Family::Combinatorics => "combinatorics",
            Family::NumberTheory => "number_theory",
            Family::LinearSystem => "linear_system",
            Family::Sequence => "sequence",
            Family::Multiply => "multiply",
        }
    }
}

/// A generated problem with its independent check.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The problem and its answer.
    pub problem: MathProblem,
    /// The family.
    pub family: Family,
    /// Difficulty 1–3.
    pub level: u8,
    /// Python that prints the answer, computed another way.
    pub check_code: String,
}

/// `n` problems from `seed`, cycling through families and the given levels
/// (1–3; others are clamped). The same arguments give the same problems.
pub fn generate_set(n: usize, seed: u64, levels: &[u8]) -> Vec<Generated> {
    generate_in_turn(n, seed, levels, &FAMILIES)
}

/// `n` problems from `seed` cycling through `families` (in the given order) and `levels`
/// as [`generate_set`] cycles through all six; empty `families` is [`generate_set`].
pub fn generate_families(
    n: usize,
    seed: u64,
    levels: &[u8],
    families: &[Family],
) -> Vec<Generated> {
    if families.is_empty() {
        return generate_set(n, seed, levels);
    }
    generate_in_turn(n, seed, levels, families)
}

/// Problem `i` is of `families[i % len]` at level `levels[(i / len) % levels.len()]` (1–3,
/// others clamped; empty = all three), all drawn from one stream of `seed`.
fn generate_in_turn(n: usize, seed: u64, levels: &[u8], families: &[Family]) -> Vec<Generated> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let levels: Vec<u8> = if levels.is_empty() {
        vec![1, 2, 3]
    } else {
        levels.iter().map(|l| (*l).clamp(1, 3)).collect()
    };
    (0..n)
        .map(|i| {
            let fam = families[i % families.len()];
            let level = levels[(i / families.len()) % levels.len()];
            let mut g = generate(fam, level, &mut rng);
            g.problem.id = format!("gen-{}-{}-{i}", fam.name(), level);
            g
        })
        .collect()
}

fn make(family: Family, level: u8, problem: String, answer: String, check: String) -> Generated {
    Generated {
        problem: MathProblem {
            id: String::new(),
            problem,
            answer,
            data_source: format!("generated/{}", family.name()),
        },
        family,
        level,
        check_code: check,
    }
}

/// One problem of `family` at `level` (1–3).
pub fn generate(family: Family, level: u8, rng: &mut ChaCha8Rng) -> Generated {
    let level = level.clamp(1, 3);
    match family {
        Family::BigArithmetic => big_arithmetic(level, rng),
        Family::Modular => modular(level, rng),
        Family::Combinatorics => combinatorics(level, rng),
        Family::NumberTheory => number_theory(level, rng),
        Family::LinearSystem => linear_system(level, rng),
        Family::Sequence => sequence(level, rng),
        Family::Multiply => multiply(level, rng),
    }
}

fn multiply(level: u8, rng: &mut ChaCha8Rng) -> Generated {
    let lo = 10u64.pow(level as u32);
    let a = rng.random_range(lo..lo * 10);
    let b = rng.random_range(lo..lo * 10);
    make(
        Family::Multiply,
        level,
        format!("Compute ${a} \\times {b}$."),
        (a * b).to_string(),
        format!("print({a} * {b})"),
    )
}

fn big_arithmetic(level: u8, rng: &mut ChaCha8Rng) -> Generated {
    let f = Family::BigArithmetic;
    match level {
        1 | 2 => {
            let (lo, hi) = if level == 1 {
                (100_000u128, 1_000_000u128)
            } else {
                (10u128.pow(11), 10u128.pow(12))
            };
            let a = rng.random_range(lo..hi);
            let b = rng.random_range(lo..hi);
            let c = rng.random_range(1_000u128..1_000_000);
            if level == 1 {
                make(
                    f,
                    level,
                    format!("Compute ${a} \\times {b} + {c}$."),
                    (a * b + c).to_string(),
                    format!("print({a} * {b} + {c})"),
                )
            } else {
                make(
                    f,
                    level,
                    format!("Compute ${a} \\times {b} - {c}$."),
                    (a * b - c).to_string(),
                    format!("print({a} * {b} - {c})"),
                )
            }
        }
        _ => {
            let a: u32 = rng.random_range(2..100);
            let e: u32 = rng.random_range(25..61);
            // decimal digits, least significant first
            let mut digits = vec![1u32];
            for _ in 0..e {
                let mut carry = 0;
                for d in digits.iter_mut() {
                    let v = *d * a + carry;
                    *d = v % 10;
                    carry = v / 10;
                }
                while carry > 0 {
                    digits.push(carry % 10);
                    carry /= 10;
                }
            }
            let sum: u32 = digits.iter().sum();
            make(
                f,
                level,
                format!("What is the sum of the decimal digits of ${a}^{{{e}}}$?"),
                sum.to_string(),
                format!("n = 1\nfor _ in range({e}):\n    n *= {a}\ns = 0\nwhile n:\n    s += n % 10\n    n //= 10\nprint(s)"),
            )
        }
    }
}

fn mod_pow(mut b: u128, mut e: u128, m: u128) -> u128 {
    let mut r = 1 % m;
    b %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = r * b % m;
        }
        b = b * b % m;
        e >>= 1;
    }
    r
}

fn modular(level: u8, rng: &mut ChaCha8Rng) -> Generated {
    let f = Family::Modular;
    match level {
        1 | 2 => {
            let a: u128 = rng.random_range(2..100);
            let (e, m) = if level == 1 {
                (
                    rng.random_range(10u128..1000),
                    rng.random_range(7u128..1000),
                )
            } else {
                (
                    rng.random_range(10u128.pow(9)..10u128.pow(12)),
                    rng.random_range(10u128.pow(6)..10u128.pow(9)),
                )
            };
            let check = if level == 1 {
                format!("r = 1\nfor _ in range({e}):\n    r = r * {a} % {m}\nprint(r)")
            } else {
                format!("print(pow({a}, {e}, {m}))")
            };
            make(
                f,
                level,
                format!("Find the remainder when ${a}^{{{e}}}$ is divided by ${m}$."),
                mod_pow(a, e, m).to_string(),
                check,
            )
        }
        _ => {
            let primes = [3u64, 5, 7, 11, 13, 17, 19, 23, 29];
            let mut ms: Vec<u64> = Vec::new();
            while ms.len() < 3 {
                let p = primes[rng.random_range(0..primes.len())];
                if !ms.contains(&p) {
                    ms.push(p);
                }
            }
            let rs: Vec<u64> = ms.iter().map(|&m| rng.random_range(0..m)).collect();
            let big_m: u64 = ms.iter().product();
            // CRT: x = Σ r_i · M_i · (M_i^{-1} mod m_i)
            let mut x: u128 = 0;
            for (&m, &r) in ms.iter().zip(&rs) {
                let mi = (big_m / m) as u128;
                let inv = mod_pow(mi % m as u128, m as u128 - 2, m as u128); // m prime
                x = (x + r as u128 * mi % big_m as u128 * inv) % big_m as u128;
            }
            if x == 0 {
                x = big_m as u128;
            }
            let conds: Vec<String> = ms
                .iter()
                .zip(&rs)
                .map(|(m, r)| format!("x \\equiv {r} \\pmod{{{m}}}"))
                .collect();
            make(
                f,
                level,
                format!(
                    "Find the smallest positive integer $x$ such that ${}$.",
                    conds.join("$, $")
                ),
                x.to_string(),
                format!(
                    "x = 1\nwhile not ({}):\n    x += 1\nprint(x)",
                    ms.iter()
                        .zip(&rs)
                        .map(|(m, r)| format!("x % {m} == {r}"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            )
        }
    }
}

fn binom(n: u128, k: u128) -> u128 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut r = 1u128;
    for i in 0..k {
        r = r * (n - i) / (i + 1);
    }
    r
}

fn combinatorics(level: u8, rng: &mut ChaCha8Rng) -> Generated {
    let f = Family::Combinatorics;
    match level {
        1 => {
            let n: u128 = rng.random_range(10..31);
            let k: u128 = rng.random_range(2..n - 1);
            make(
                f,
                level,
                format!("In how many ways can a committee of {k} people be chosen from {n} people?"),
                binom(n, k).to_string(),
                format!("row = [1]\nfor _ in range({n}):\n    row = [1] + [row[i] + row[i + 1] for i in range(len(row) - 1)] + [1]\nprint(row[{k}])"),
            )
        }
        2 => {
            let k: u128 = rng.random_range(2..6);
            let n: u128 = rng.random_range((2 * k).max(8)..21);
            make(
                f,
                level,
                format!("How many {k}-element subsets of $\\{{1, 2, \\ldots, {n}\\}}$ contain no two consecutive integers?"),
                binom(n - k + 1, k).to_string(),
                format!("from itertools import combinations\nprint(sum(1 for c in combinations(range(1, {n} + 1), {k}) if all(b - a > 1 for a, b in zip(c, c[1:]))))"),
            )
        }
        _ => {
            let n: u64 = rng.random_range(5..9);
            let (mut d0, mut d1) = (1u64, 0u64); // D(0), D(1)
            for m in 2..=n {
                let d = (m - 1) * (d0 + d1);
                d0 = d1;
                d1 = d;
            }
            make(
                f,
                level,
                format!("How many permutations of $(1, 2, \\ldots, {n})$ leave no number in its original position?"),
                d1.to_string(),
                format!("from itertools import permutations\nprint(sum(1 for p in permutations(range({n})) if all(p[i] != i for i in range({n}))))"),
            )
        }
    }
}

fn factorize(mut n: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let mut p = 2;
    while p * p <= n {
        let mut e = 0;
        while n % p == 0 {
            n /= p;
            e += 1;
        }
        if e > 0 {
            out.push((p, e));
        }
        p += 1;
    }
    if n > 1 {
        out.push((n, 1));
    }
    out
}

fn number_theory(level: u8, rng: &mut ChaCha8Rng) -> Generated {
    let f = Family::NumberTheory;
    match level {
        1 => {
            let n: u64 = rng.random_range(1000..1_000_000);
            let tau: u64 = factorize(n).iter().map(|&(_, e)| e as u64 + 1).product();
            make(
                f,
                level,
                format!("How many positive divisors does ${n}$ have?"),
                tau.to_string(),
                format!("n = {n}\nc = 0\nd = 1\nwhile d * d <= n:\n    if n % d == 0:\n        c += 1 if d * d == n else 2\n    d += 1\nprint(c)"),
            )
        }
        2 => {
            let n: u64 = rng.random_range(10_000..10_000_000);
            let sigma: u64 = factorize(n)
                .iter()
                .map(|&(p, e)| (0..=e).map(|i| p.pow(i)).sum::<u64>())
                .product();
            make(
                f,
                level,
                format!("What is the sum of all positive divisors of ${n}$?"),
                sigma.to_string(),
                format!("n = {n}\ns = 0\nd = 1\nwhile d * d <= n:\n    if n % d == 0:\n        s += d if d * d == n else d + n // d\n    d += 1\nprint(s)"),
            )
        }
        _ => {
            let n: u64 = rng.random_range(10_000..100_000);
            let pool = [2u64, 3, 5, 7, 11, 13];
            let mut m = 1u64;
            for _ in 0..rng.random_range(2..4) {
                m *= pool[rng.random_range(0..pool.len())];
            }
            let m = m * rng.random_range(1..4);
            let primes: Vec<u64> = factorize(m).iter().map(|&(p, _)| p).collect();
            // inclusion–exclusion over the distinct primes of m
            let mut count: i64 = 0;
            for mask in 0u32..(1 << primes.len()) {
                let prod: u64 = primes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask >> i & 1 == 1)
                    .map(|(_, p)| *p)
                    .product();
                let sign = if mask.count_ones() % 2 == 0 { 1 } else { -1 };
                count += sign * (n / prod) as i64;
            }
            make(
                f,
                level,
                format!("How many integers $k$ with $1 \\le k \\le {n}$ satisfy $\\gcd(k, {m}) = 1$?"),
                count.to_string(),
                format!("from math import gcd\nprint(sum(1 for k in range(1, {n} + 1) if gcd(k, {m}) == 1))"),
            )
        }
    }
}

fn det(m: &[Vec<i128>]) -> i128 {
    let n = m.len();
    if n == 1 {
        return m[0][0];
    }
    let mut d = 0;
    for c in 0..n {
        let minor: Vec<Vec<i128>> = m[1..]
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != c)
                    .map(|(_, v)| *v)
                    .collect()
            })
            .collect();
        let sign = if c % 2 == 0 { 1 } else { -1 };
        d += sign * m[0][c] * det(&minor);
    }
    d
}

fn linear_system(level: u8, rng: &mut ChaCha8Rng) -> Generated {
    let f = Family::LinearSystem;
    let n = level as usize + 1; // 2, 3, 4 unknowns
    let names = ["x", "y", "z", "w"];
    let range = 4 * level as i128 + 5;
    let sol: Vec<i128> = (0..n).map(|_| rng.random_range(-20..21)).collect();
    let a = loop {
        let a: Vec<Vec<i128>> = (0..n)
            .map(|_| {
                (0..n)
                    .map(|_| loop {
                        let v = rng.random_range(-range..range + 1);
                        if v != 0 {
                            break v;
                        }
                    })
                    .collect()
            })
            .collect();
        if det(&a) != 0 {
            break a;
        }
    };
    let b: Vec<i128> = a
        .iter()
        .map(|row| row.iter().zip(&sol).map(|(x, s)| x * s).sum())
        .collect();
    let eqs: Vec<String> = a
        .iter()
        .zip(&b)
        .map(|(row, rhs)| {
            let mut s = String::new();
            for (j, &c) in row.iter().enumerate() {
                let mag = if c.abs() == 1 {
                    String::new()
                } else {
                    c.abs().to_string()
                };
                if s.is_empty() {
                    s.push_str(&format!(
                        "{}{mag}{}",
                        if c < 0 { "-" } else { "" },
                        names[j]
                    ));
                } else {
                    s.push_str(&format!(
                        " {} {mag}{}",
                        if c < 0 { "-" } else { "+" },
                        names[j]
                    ));
                }
            }
            format!("{s} = {rhs}")
        })
        .collect();
    let weights: Vec<i128> = (1..=n as i128).collect();
    let target: i128 = sol.iter().zip(&weights).map(|(s, w)| s * w).sum();
    let target_text = names[..n]
        .iter()
        .zip(&weights)
        .map(|(v, w)| {
            if *w == 1 {
                v.to_string()
            } else {
                format!("{w}{v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" + ");
    let check = format!(
        "import sympy\nA = sympy.Matrix({:?})\nb = sympy.Matrix({:?})\ns = A.LUsolve(b)\nprint(sum(w * v for w, v in zip({:?}, s)))",
        a, b, weights
    );
    make(
        f,
        level,
        format!("The real numbers {} satisfy\n$$\\begin{{cases}} {} \\end{{cases}}$$\nFind ${target_text}$.", names[..n].join(", "), eqs.join(" \\\\ ")),
        target.to_string(),
        check,
    )
}

fn sequence(level: u8, rng: &mut ChaCha8Rng) -> Generated {
    let f = Family::Sequence;
    match level {
        1 => {
            let a1: i64 = rng.random_range(-50..51);
            let d: i64 = rng.random_range(2..31);
            let n: i64 = rng.random_range(50..501);
            make(
                f,
                level,
                format!("An arithmetic sequence has first term ${a1}$ and common difference ${d}$. What is its ${n}$th term?"),
                (a1 + (n - 1) * d).to_string(),
                format!("t = {a1}\nfor _ in range({n} - 1):\n    t += {d}\nprint(t)"),
            )
        }
        2 => {
            let (a, b, c): (i128, i128, i128) = (
                rng.random_range(1..10),
                rng.random_range(-10..11),
                rng.random_range(-20..21),
            );
            let n: i128 = rng.random_range(100..2001);
            let s = a * n * (n + 1) * (2 * n + 1) / 6 + b * n * (n + 1) / 2 + c * n;
            make(
                f,
                level,
                format!("Compute $\\sum_{{k=1}}^{{{n}}} ({a}k^2 + ({b})k + ({c}))$."),
                s.to_string(),
                format!("print(sum({a} * k * k + ({b}) * k + ({c}) for k in range(1, {n} + 1)))"),
            )
        }
        _ => {
            let (p, q): (u64, u64) = (rng.random_range(1..10), rng.random_range(1..10));
            let (al, be): (u64, u64) = (rng.random_range(1..6), rng.random_range(1..6));
            let n: u64 = rng.random_range(50..501);
            // [u_k, u_{k-1}] = M^(k-2) [u_2, u_1] with M = [[al, be], [1, 0]], mod 1000
            let mul = |x: [[u64; 2]; 2], y: [[u64; 2]; 2]| {
                let mut r = [[0u64; 2]; 2];
                for i in 0..2 {
                    for j in 0..2 {
                        r[i][j] = (x[i][0] * y[0][j] + x[i][1] * y[1][j]) % 1000;
                    }
                }
                r
            };
            let mut result = [[1, 0], [0, 1]];
            let mut base = [[al, be], [1, 0]];
            let mut e = n - 2;
            while e > 0 {
                if e & 1 == 1 {
                    result = mul(result, base);
                }
                base = mul(base, base);
                e >>= 1;
            }
            let un = (result[0][0] * q + result[0][1] * p) % 1000;
            make(
                f,
                level,
                format!("A sequence has $u_1 = {p}$, $u_2 = {q}$ and $u_k = {al}u_{{k-1}} + {be}u_{{k-2}}$ for $k \\ge 3$. Find the remainder when $u_{{{n}}}$ is divided by $1000$."),
                un.to_string(),
                format!("a, b = {p}, {q}\nfor _ in range({n} - 2):\n    a, b = b, {al} * b + {be} * a\nprint(b % 1000)"),
            )
        }
    }
}

/// A demonstration conversation: the problem, one `code_interpreter` call with
/// the check program, its output, and the boxed answer (SFT warm start).
pub fn demonstration(g: &Generated) -> Vec<Message> {
    vec![
        Message::new(Role::User, format!("{}{ANSWER_FORMAT}", g.problem.problem)),
        Message {
            role: Role::Assistant,
            content: "I will compute this exactly with Python.".into(),
            tool_calls: vec![ToolCall {
                name: TOOL_NAME.into(),
                arguments: serde_json::json!({ "code": g.check_code }),
            }],
        },
        Message::new(Role::Tool, g.problem.answer.clone()),
        Message::new(
            Role::Assistant,
            format!(
                "The computation gives {}.\n\n\\boxed{{{}}}",
                g.problem.answer, g.problem.answer
            ),
        ),
    ]
}

/// A demonstration that answers without the tool: the problem and a boxed answer written
/// directly. For a warm start that rarely calls the interpreter (`env.math.demo_tool_rate`):
/// a policy imitating it learns to guess digits it cannot compute, as a model that does not
/// use its tool does, and RL can find the tool calls that win.
pub fn direct_demonstration(g: &Generated) -> Vec<Message> {
    vec![
        Message::new(Role::User, format!("{}{ANSWER_FORMAT}", g.problem.problem)),
        Message::new(
            Role::Assistant,
            format!("The answer is \\boxed{{{}}}", g.problem.answer),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_covering() {
        let a = generate_set(36, 7, &[1, 2, 3]);
        let b = generate_set(36, 7, &[1, 2, 3]);
        assert_eq!(a, b);
        assert_ne!(a, generate_set(36, 8, &[1, 2, 3]));
        for fam in FAMILIES {
            for lvl in 1..=3 {
                assert!(
                    a.iter().any(|g| g.family == fam && g.level == lvl),
                    "{fam:?} {lvl}"
                );
            }
        }
        assert!(a.iter().all(|g| g.problem.answer.parse::<i128>().is_ok()));
    }

    /// The unsigned integers written in a problem's text, in order.
    fn numbers_in(text: &str) -> Vec<u64> {
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect()
    }

    /// Rust brute force for the families where it is cheap.
    #[test]
    fn brute_force_checks_in_rust() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let g = generate(Family::Combinatorics, 2, &mut rng);
            // parse n, k back from the text: "How many K-element subsets of $\{1, 2, \ldots, N\}$ …"
            let k: u32 = g
                .problem
                .problem
                .split('-')
                .next()
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let n: u32 = g
                .problem
                .problem
                .split("\\ldots, ")
                .nth(1)
                .unwrap()
                .split('\\')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let brute = (0u32..1 << n)
                .filter(|m| m.count_ones() == k && m & (m >> 1) == 0)
                .count();
            assert_eq!(g.problem.answer, brute.to_string());
        }
        for _ in 0..20 {
            let g = generate(Family::NumberTheory, 1, &mut rng);
            let n: u64 = g
                .problem
                .problem
                .split('$')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            let brute = (1..=n).filter(|d| n % d == 0).count();
            assert_eq!(g.problem.answer, brute.to_string());
        }
        for _ in 0..20 {
            let g = generate(Family::Modular, 1, &mut rng);
            let nums = numbers_in(&g.problem.problem);
            let (a, e, m) = (nums[0], nums[1], nums[2]);
            let mut r = 1 % m;
            for _ in 0..e {
                r = r * a % m;
            }
            assert_eq!(g.problem.answer, r.to_string());
        }
    }

    #[test]
    fn multiply_has_the_level_s_digits_and_its_product() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for level in 1..=3u8 {
            for _ in 0..50 {
                let g = generate(Family::Multiply, level, &mut rng);
                let nums = numbers_in(&g.problem.problem);
                assert_eq!(nums.len(), 2, "{}", g.problem.problem);
                for n in &nums {
                    assert_eq!(n.to_string().len(), level as usize + 1, "{n}");
                }
                assert_eq!(g.problem.answer, (nums[0] * nums[1]).to_string());
                assert_eq!(g.check_code, format!("print({} * {})", nums[0], nums[1]));
                assert_eq!(g.family.name(), "multiply");
            }
        }
    }

    #[test]
    fn named_families_are_generated_in_turn_and_none_means_the_default_mix() {
        assert_eq!(
            generate_families(24, 7, &[1, 2], &[]),
            generate_set(24, 7, &[1, 2])
        );
        let fams = [Family::Multiply, Family::Modular];
        let a = generate_families(12, 7, &[1, 2], &fams);
        assert_eq!(a, generate_families(12, 7, &[1, 2], &fams));
        for (i, g) in a.iter().enumerate() {
            assert_eq!(g.family, fams[i % 2]);
            assert_eq!(g.level, [1, 2][(i / 2) % 2]);
            assert_eq!(
                g.problem.id,
                format!("gen-{}-{}-{i}", g.family.name(), g.level)
            );
        }
        // The default mix never holds the named-only family.
        assert!(generate_set(60, 1, &[])
            .iter()
            .all(|g| g.family != Family::Multiply));
    }

    #[test]
    fn demonstration_shape() {
        let g = generate_set(1, 1, &[1]).remove(0);
        let d = demonstration(&g);
        assert_eq!(d.len(), 4);
        assert!(d[3]
            .content
            .ends_with(&format!("\\boxed{{{}}}", g.problem.answer)));
        assert_eq!(d[1].tool_calls[0].arguments["code"], g.check_code);
        let direct = direct_demonstration(&g);
        assert_eq!(direct.len(), 2);
        assert_eq!(direct[0], d[0]);
        assert!(direct[1].tool_calls.is_empty());
        assert_eq!(
            direct[1].content,
            format!("The answer is \\boxed{{{}}}", g.problem.answer)
        );
    }
}
