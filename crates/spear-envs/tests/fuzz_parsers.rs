//! Property-based fuzz targets (docs/fuzzing.md): the math tool-call parser, the
//! s-expression / PDDL reader and the WebShop action parser must not panic on any input.
//!
//! Inputs are random strings, random bytes decoded lossily, and structure-aware mutations:
//! valid inputs (a hermes tool call, a fenced program, the ALFRED domain, a PDDL problem,
//! WebShop's clickables) with random splices of the format's own tokens. CI runs
//! `FUZZ_CASES` cases per target; `PROPTEST_CASES=100000` runs the long campaign.

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use spear_envs::household::pddl::Problem;
use spear_envs::household::scene::{ALFRED_PDDL, ALFRED_TWL2};
use spear_envs::household::sexpr::{self, SExpr};
use spear_envs::household::{Game, TwPddl};
use spear_envs::math::tool::{
    code_argument, extract_code, parse_turn, program_for, truncate_middle, ToolFormat,
};
use spear_envs::webshop::{
    build_catalog, parse_action, Catalog, CatalogConfig, DataSource, GenerateOptions, Split,
    WebShopEnv,
};
use spear_envs::Environment;

/// Cases per target in CI (a few seconds in all on two cores).
const FUZZ_CASES: u32 = 256;

/// `PROPTEST_CASES` when set (the long run), else `default`.
fn config(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}

/// Random text: any Unicode, or arbitrary bytes decoded lossily.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..600)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// One splice: at a relative position, delete some characters and insert a token.
type Edit = (f64, usize, String);

fn edits(tokens: &'static [&'static str]) -> impl Strategy<Value = Vec<Edit>> {
    let token = prop_oneof![
        3 => prop::sample::select(tokens).prop_map(str::to_string),
        1 => any::<String>(),
    ];
    prop::collection::vec((0.0f64..1.0, 0usize..12, token), 0..8)
}

/// Applies the splices to `base`, on character boundaries.
fn splice(base: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for (at, del, ins) in edits {
        let i = ((*at * chars.len() as f64) as usize).min(chars.len());
        let j = (i + del).min(chars.len());
        chars.splice(i..j, ins.chars());
    }
    chars.into_iter().collect()
}

const TOOL_TOKENS: &[&str] = &[
    "<tool_call>",
    "</tool_call>",
    "{",
    "}",
    "\"",
    ":",
    ",",
    "[",
    "]",
    "\\",
    "\\u",
    "\\ud800",
    "null",
    "\"name\"",
    "\"arguments\"",
    "\"code\"",
    "code_interpreter",
    "```python\n",
    "```py\n",
    "```",
    "\n",
    "<|im_end|>",
];

const TOOL_BASES: &[&str] = &[
    "Let me compute.\n<tool_call>\n{\"name\": \"code_interpreter\", \"arguments\": {\"code\": \"```python\\nprint(6*7)\\n```\"}}\n</tool_call>",
    "<tool_call>{\"name\": \"code_interpreter\", \"arguments\": \"{\\\"code\\\": \\\"print(1)\\\"}\"}</tool_call>",
    "Here:\n```python\nimport math\nprint(math.factorial(5))\n```\nThen \\boxed{120}",
    "```py\nprint('x')\n```",
];

fn exercise_tool_parser(text: &str) {
    for format in [
        ToolFormat::Auto,
        ToolFormat::Hermes,
        ToolFormat::PythonFence,
    ] {
        let parsed = parse_turn(text, format);
        for call in &parsed.calls {
            if let Ok(code) = code_argument(call) {
                let _ = program_for(&code);
                let _ = extract_code(&code);
            }
        }
    }
    let _ = extract_code(text);
    for max in [0, 1, 7, 64] {
        let _ = truncate_middle(text, max);
    }
}

const PDDL_TOKENS: &[&str] = &[
    "(", ")", "((", "))", ";", "\n", " ", "-", "?o", ":init", ":goal", ":objects", "and", "not",
    "exists", "forall", "=", "define", "problem", "(:goal", "(and", "(not", "agent1",
];

const PROBLEM: &str = "(define (problem p)\n(:domain alfred)\n(:objects agent1 - agent\n\
  Desk_bar__plus_01 - receptacle Mug_bar__plus_01 - object loc_bar_1 loc_bar_2 - location\n\
  DeskType - rtype MugType - otype)\n(:init (atLocation agent1 loc_bar_1) (receptacleAtLocation Desk_bar__plus_01 loc_bar_2)\n\
  (receptacleType Desk_bar__plus_01 DeskType) (objectType Mug_bar__plus_01 MugType) (pickupable Mug_bar__plus_01)\n\
  (inReceptacle Mug_bar__plus_01 Desk_bar__plus_01) (objectAtLocation Mug_bar__plus_01 loc_bar_2) (= (totalCost) 0))\n\
  (:goal (and (exists (?o - object) (and (objectType ?o MugType) (holds agent1 ?o))))))";

/// Parses, and for a successful parse checks that printing and re-reading gives it back.
fn exercise_sexpr(text: &str) -> Result<(), TestCaseError> {
    if let Ok(e) = sexpr::parse(text) {
        let again = sexpr::parse(&e.to_string());
        prop_assert_eq!(again.as_ref(), Ok(&e), "{}", e);
    }
    let _ = Problem::parse(text, "fuzz.pddl");
    Ok(())
}

fn exercise_game(problem: &str, grammar: &str, domain: &str) {
    let tw = TwPddl {
        pddl_domain: domain.to_string(),
        grammar: grammar.to_string(),
        pddl_problem: problem.to_string(),
        solvable: Some(true),
        walkthrough: None,
    };
    let _ = Game::from_tw_pddl(&tw, "fuzz.tw-pddl");
}

fn catalog() -> Arc<Catalog> {
    static CAT: OnceLock<Arc<Catalog>> = OnceLock::new();
    CAT.get_or_init(|| {
        let cfg = CatalogConfig {
            source: DataSource::Generated(GenerateOptions::new(60, 0)),
            ..Default::default()
        };
        Arc::new(build_catalog(&cfg).expect("generated catalogue").0)
    })
    .clone()
}

const WEBSHOP_TOKENS: &[&str] = &[
    "search[",
    "click[",
    "[",
    "]",
    "]]",
    "[[",
    "\n",
    "back to search",
    "next >",
    "< prev",
    "buy now",
    "description",
    "features",
    "reviews",
    "item -",
    " ",
    "",
];

proptest! {
    #![proptest_config(config(FUZZ_CASES))]

    #[test]
    fn tool_call_parser_random(text in any_text()) {
        exercise_tool_parser(&text);
    }

    #[test]
    fn tool_call_parser_mutated(base in prop::sample::select(TOOL_BASES), e in edits(TOOL_TOKENS)) {
        exercise_tool_parser(&splice(base, &e));
    }

    #[test]
    fn sexpr_reader_random(text in any_text()) {
        exercise_sexpr(&text)?;
    }

    #[test]
    fn pddl_reader_mutated(e in edits(PDDL_TOKENS), which in 0usize..2) {
        let base = if which == 0 { PROBLEM } else { ALFRED_PDDL };
        exercise_sexpr(&splice(base, &e))?;
    }

    #[test]
    fn household_game_mutated(
        ep in edits(PDDL_TOKENS),
        eg in edits(PDDL_TOKENS),
        ed in edits(PDDL_TOKENS),
    ) {
        let grammar = ALFRED_TWL2.replace("UNKNOWN GOAL", "pick up a mug");
        exercise_game(&splice(PROBLEM, &ep), &splice(&grammar, &eg), &splice(ALFRED_PDDL, &ed));
    }

    #[test]
    fn webshop_action_parser_random(text in any_text()) {
        let (verb, arg) = parse_action(&text);
        prop_assert!(text.starts_with(&verb) || arg.is_none());
    }

    #[test]
    fn webshop_env_steps_mutated_actions(
        steps in prop::collection::vec((0usize..64, edits(WEBSHOP_TOKENS)), 1..6),
        task in 0usize..20,
    ) {
        let mut env = WebShopEnv::new(catalog(), Split::All);
        env.reset(task % env.num_tasks().max(1), 0).expect("reset");
        for (pick, e) in steps {
            let (_, actions) = env.available_actions();
            let base = if actions.is_empty() {
                "search[red shirt]".to_string()
            } else {
                let a = &actions[pick % actions.len()];
                if a == "search" { "search[red shirt]".to_string() } else { format!("click[{a}]") }
            };
            let action = splice(&base, &e);
            let _ = parse_action(&action);
            // Errors are allowed (e.g. stepping after the episode ended); panics are not.
            let _ = env.step(&action);
        }
    }
}

/// Deeply nested input is an error, not a stack overflow (found while writing the PDDL
/// target: random splices do not reach it, but dropping a list nested 200 000 deep recursed
/// past the stack and aborted the process).
#[test]
fn deep_nesting_is_an_error() {
    let deep = format!("{}{}", "(".repeat(200_000), ")".repeat(200_000));
    let e = sexpr::parse(&deep).unwrap_err();
    assert!(e.what.contains("deep"), "{e}");
    let ok = format!("{}x{}", "(".repeat(100), ")".repeat(100));
    let mut e = sexpr::parse(&ok).unwrap();
    for _ in 0..100 {
        e = match e {
            SExpr::List(mut v) if !v.is_empty() => v.remove(0),
            other => other,
        };
    }
    assert_eq!(e, SExpr::Atom("x".into()));
}
