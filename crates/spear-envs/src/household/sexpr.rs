//! A small s-expression reader for PDDL text (`;` comments, case folded to
//! lower case as Fast Downward does; `shared/docs/environments.md` §1.5).

use std::fmt;

/// One s-expression: an atom or a parenthesised list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SExpr {
    /// A symbol (lower-cased).
    Atom(String),
    /// A list of expressions.
    List(Vec<SExpr>),
}

impl SExpr {
    /// The atom's text, if this is an atom.
    pub fn atom(&self) -> Option<&str> {
        match self {
            SExpr::Atom(s) => Some(s),
            SExpr::List(_) => None,
        }
    }

    /// The list's items, if this is a list.
    pub fn list(&self) -> Option<&[SExpr]> {
        match self {
            SExpr::List(v) => Some(v),
            SExpr::Atom(_) => None,
        }
    }

    /// For a list whose head is an atom: that head.
    pub fn head(&self) -> Option<&str> {
        self.list().and_then(|v| v.first()).and_then(SExpr::atom)
    }
}

impl fmt::Display for SExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SExpr::Atom(s) => write!(f, "{s}"),
            SExpr::List(v) => {
                write!(f, "(")?;
                for (i, e) in v.iter().enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{e}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// Parse error with a 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Line where the problem was found.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Lists nested deeper than this are refused: dropping, printing or walking an expression
/// recurses once per level, and a list nested 200 000 deep overflowed the stack. ALFRED's
/// domain and problems nest under 20 deep.
pub const MAX_DEPTH: usize = 512;

/// Parse exactly one top-level s-expression (trailing whitespace/comments allowed).
pub fn parse(text: &str) -> Result<SExpr, ParseError> {
    let mut stack: Vec<(Vec<SExpr>, usize)> = Vec::new();
    let mut result: Option<SExpr> = None;
    let mut line = 1;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                if result.is_some() {
                    return Err(ParseError {
                        line,
                        what: "text after the closing parenthesis of the top-level expression"
                            .into(),
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError {
                        line,
                        what: format!("lists nested more than {MAX_DEPTH} deep"),
                    });
                }
                stack.push((Vec::new(), line));
                i += 1;
            }
            b')' => {
                let Some((items, _)) = stack.pop() else {
                    return Err(ParseError {
                        line,
                        what: "unbalanced ')'".into(),
                    });
                };
                let e = SExpr::List(items);
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(e),
                    None => result = Some(e),
                }
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                let start = i;
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !matches!(bytes[i], b'(' | b')' | b';')
                {
                    i += 1;
                }
                let tok = text[start..i].to_ascii_lowercase();
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(SExpr::Atom(tok)),
                    None => {
                        return Err(ParseError {
                            line,
                            what: format!("atom {tok:?} outside any parenthesis"),
                        })
                    }
                }
            }
        }
    }
    if let Some((_, open_line)) = stack.last() {
        return Err(ParseError {
            line,
            what: format!("unclosed '(' opened at line {open_line}"),
        });
    }
    result.ok_or(ParseError {
        line,
        what: "no expression found".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_lists_lowercases_and_skips_comments() {
        let e = parse("(define (Problem P1) ; comment (\n (:init (atLocation Agent1 L)))").unwrap();
        assert_eq!(
            e.to_string(),
            "(define (problem p1) (:init (atlocation agent1 l)))"
        );
        assert_eq!(e.head(), Some("define"));
    }

    #[test]
    fn reports_unbalanced_parentheses_with_line() {
        let err = parse("(a\n(b c)\n").unwrap_err();
        assert!(err.what.contains("unclosed"), "{err}");
        assert_eq!(err.line, 3);
        assert!(parse("(a))").unwrap_err().what.contains("unbalanced"));
        assert!(parse("x").is_err());
        assert!(parse("").unwrap_err().what.contains("no expression"));
    }
}
