//! End-to-end WebShop engine tests on a generated catalogue.

use spear_envs::webshop::catalog::Catalog;
use spear_envs::webshop::env::{Split, WebShopEnv};
use spear_envs::webshop::expert::{run_expert, run_policy, Expert};
use spear_envs::webshop::generate::{generate_products, GenerateOptions};
use spear_envs::webshop::goals::GoalMode;
use spear_envs::{EnvError, Environment};
use std::sync::Arc;

fn catalog(n: usize) -> Arc<Catalog> {
    Arc::new(Catalog::new(
        generate_products(GenerateOptions::new(n, 3)),
        GoalMode::Synthetic,
        42,
    ))
}

#[test]
fn expert_solves_generated_goals() {
    let cat = catalog(1000);
    let mut env = WebShopEnv::new(cat, Split::Eval);
    assert_eq!(env.num_tasks(), 500);
    let (mut won, mut score) = (0, 0.0);
    let n = 200;
    for t in 0..n {
        let ep = run_expert(&mut env, t, 0).unwrap();
        assert!(ep.actions.len() <= 15);
        won += usize::from(ep.won);
        score += ep.score;
    }
    let (sr, sc) = (won as f64 / n as f64, score / n as f64);
    eprintln!("expert on 200 eval goals of a 1k catalogue: success {sr:.3}, score {sc:.3}");
    assert!(sr >= 0.9, "success rate {sr}");
    assert!(sc >= 0.95, "score {sc}");

    // Without the oracle (buy the top search hit): the tasks are not trivial.
    let (mut won, mut score) = (0, 0.0);
    for t in 0..n {
        let ep = run_policy(&mut env, t, 0, Expert::blind()).unwrap();
        won += usize::from(ep.won);
        score += ep.score;
    }
    let (bsr, bsc) = (won as f64 / n as f64, score / n as f64);
    eprintln!("blind policy on the same goals: success {bsr:.3}, score {bsc:.3}");
    assert!(bsr < sr, "the oracle must beat the top-hit policy");
    assert!(bsc > 0.3, "top hits are relevant: score {bsc}");
}

/// The checking expert (the `webshop-tiny` warm start) reads item pages, not the goal's asin:
/// it leaves a product with `< prev` exactly when the page lacks a goal option, opens the
/// results in order, and buys far more often than the top-hit policy.
#[test]
fn checking_expert_reads_pages_and_beats_the_top_hit() {
    let cat = catalog(1000);
    let mut env = WebShopEnv::new(cat, Split::Eval);
    let n = 200;
    let (mut won, mut blind_won, mut rejected) = (0, 0, 0);
    for t in 0..n {
        env.reset(t, 0).unwrap();
        let wanted: Vec<String> = env
            .goal()
            .unwrap()
            .goal_options
            .values()
            .iter()
            .map(|v| v.to_lowercase())
            .collect();
        let mut expert = Expert::checking();
        let mut opened = vec![];
        let mut steps = 0;
        let ep_won = loop {
            let (has_search, clickables) = env.available_actions();
            let a = expert.act(&env);
            let links: Vec<String> = clickables
                .iter()
                .filter(|c| !matches!(c.as_str(), "back to search" | "next >" | "< prev"))
                .cloned()
                .collect();
            if has_search {
                assert!(a.starts_with("search["), "{a}");
            } else if clickables.iter().any(|c| c == "buy now") {
                let lacks = wanted.iter().any(|v| !clickables.contains(v));
                if a == "click[< prev]" {
                    assert!(lacks, "left a product that offers every goal option");
                    rejected += 1;
                } else if a == "click[buy now]" && opened.len() <= 5 {
                    assert!(
                        !lacks,
                        "bought a product lacking a goal option: {clickables:?}"
                    );
                }
            } else {
                // Results page: the next unopened result, in page order.
                assert_eq!(a, format!("click[{}]", links[opened.len()]));
                opened.push(a.clone());
            }
            let o = env.step(&a).unwrap();
            steps += 1;
            if o.done {
                break o.won;
            }
        };
        assert!(steps <= 15);
        won += usize::from(ep_won);
        blind_won += usize::from(run_policy(&mut env, t, 0, Expert::blind()).unwrap().won);
    }
    let (sr, bsr) = (won as f64 / n as f64, blind_won as f64 / n as f64);
    eprintln!("checking expert: success {sr:.3}; top hit {bsr:.3}; {rejected} results left");
    assert!(sr >= 0.8, "checking expert success {sr}");
    assert!(sr > bsr + 0.3, "checking {sr} against top hit {bsr}");
    assert!(rejected > n / 2, "it must leave products: {rejected}");
}

#[test]
fn pages_transitions_and_text() {
    let cat = catalog(300);
    let mut env = WebShopEnv::new(cat.clone(), Split::All);
    let obs = env.reset(0, 1).unwrap();
    let goal = env.goal().unwrap().clone();
    assert_eq!(
        obs.text,
        format!(
            "WebShop [SEP] Instruction: [SEP] {} [SEP] Search",
            goal.instruction_text
        )
    );
    assert_eq!(env.task_description(), goal.instruction_text);
    assert_eq!(env.anchor(), "'Search'");
    assert_eq!(
        obs.admissible_actions,
        vec!["search[<your query>]", "click[search]"]
    );

    // invalid actions: no-ops with reward 0, page unchanged
    for a in [
        "click[search]",
        "click[buy now]",
        "buy",
        "search[]",
        "click[nothing here]",
    ] {
        let out = env.step(a).unwrap();
        assert_eq!(
            (out.reward, out.done, out.task_score),
            (0.0, false, Some(0.0)),
            "{a}"
        );
        assert_eq!(out.observation.text, obs.text, "{a}");
    }

    let q = goal.query.clone();
    let out = env.step(&format!("search[{q}]")).unwrap();
    let parts: Vec<&str> = out.observation.text.split(" [SEP] ").collect();
    assert_eq!(
        &parts[..3],
        &[
            "Instruction:",
            goal.instruction_text.as_str(),
            "Back to Search"
        ]
    );
    assert!(
        parts[3].starts_with("Page 1 (Total results: "),
        "{}",
        parts[3]
    );
    assert_eq!(parts[4], "Next >");
    assert_eq!(
        parts.len(),
        5 + 3 * 10,
        "10 products × (asin, title, price)"
    );
    assert_eq!(
        &out.observation.admissible_actions[..2],
        &["click[back to search]", "click[next >]"]
    );
    assert!(!out
        .observation
        .admissible_actions
        .iter()
        .any(|a| a.starts_with("search[")));
    let first_asin = parts[5].to_string();

    // page 2 has "< Prev" before "Next >"
    let out = env.step("click[Next >]").unwrap();
    let parts: Vec<&str> = out.observation.text.split(" [SEP] ").collect();
    assert!(parts[3].starts_with("Page 2 "));
    assert_eq!((parts[4], parts[5]), ("< Prev", "Next >"));
    let out = env.step("click[< prev]").unwrap();
    assert!(out.observation.text.contains("Page 1 (Total results"));

    // item page
    let out = env
        .step(&format!("click[{}]", first_asin.to_lowercase()))
        .unwrap();
    let (_, p) = cat.product(&first_asin).unwrap();
    let text = out.observation.text.clone();
    assert!(text.contains(&format!("[SEP] {} [SEP] Price: {} [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now", p.title, p.price_tag)), "{text}");
    let acts = &out.observation.admissible_actions;
    assert_eq!(
        &acts[..6],
        &[
            "click[back to search]",
            "click[< prev]",
            "click[description]",
            "click[features]",
            "click[reviews]",
            "click[buy now]"
        ]
    );
    let n_values: usize = p.options.iter().map(|(_, v)| v.len()).sum();
    assert!(acts.len() >= 6 + n_values.min(1));

    // features sub-page and back
    let out = env.step("click[features]").unwrap();
    let parts: Vec<&str> = out.observation.text.split(" [SEP] ").collect();
    assert_eq!(&parts[3..5], &["< Prev", p.bullet_points[0].as_str()]);
    let out = env.step("click[< prev]").unwrap();
    assert_eq!(out.observation.text, text);

    // choose an option, buy: done page, task score in [0, 1]
    if let Some((_, values)) = p.options.first() {
        env.step(&format!("click[{}]", values[0])).unwrap();
        assert_eq!(env.selected_options(), vec![values[0].clone()]);
    }
    let out = env.step("click[Buy Now]").unwrap();
    assert!(out.done);
    let score = out.task_score.unwrap();
    assert!((0.0..=1.0).contains(&score));
    assert_eq!(out.won, score == 1.0);
    assert_eq!(out.reward, if out.won { 10.0 } else { 0.0 });
    assert!(out.observation.text.starts_with("Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] (Paste it in your MTurk interface.) [SEP] Purchased [SEP] asin [SEP] "));
    assert!(matches!(
        env.step("click[back to search]"),
        Err(EnvError::NotRunning)
    ));
}

#[test]
fn step_cap_and_determinism() {
    let cat = catalog(300);
    let mut a = WebShopEnv::new(cat.clone(), Split::Train);
    let mut b = WebShopEnv::new(cat, Split::Train);
    assert!(matches!(
        a.reset(a.num_tasks(), 0),
        Err(EnvError::TaskOutOfRange { .. })
    ));
    let oa = a.reset(3, 9).unwrap();
    let ob = b.reset(3, 9).unwrap();
    assert_eq!(oa, ob);
    for i in 0..15 {
        let act = if i % 2 == 0 {
            "search[<r>]"
        } else {
            "click[next >]"
        };
        let (x, y) = (a.step(act).unwrap(), b.step(act).unwrap());
        assert_eq!(x, y);
        assert_eq!(x.done, i == 14, "done only at the 15-step cap");
    }
}

#[test]
fn same_seed_same_catalogue() {
    let a = catalog(200);
    let b = catalog(200);
    assert_eq!(a.goals, b.goals);
    assert_eq!(a.prices, b.prices);
    let c = Catalog::new(
        generate_products(GenerateOptions::new(200, 3)),
        GoalMode::Synthetic,
        43,
    );
    assert_ne!(a.goals, c.goals, "catalogue seed changes the goal order");
}
