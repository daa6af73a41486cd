//! Differential cases for the verifier: random token soups (boxes, braces,
//! `Answer:` lines, `$`, `\text{`, `\frac`, unicode, …) scored by upstream's
//! Python `math_dapo.compute_score` (both modes): the fixture is recorded by
//! `fixtures/math/rescore_verifier_fixture.py` running upstream's own
//! `math_dapo.py` (SPEAR @ 7e84315). A JSON `null` pred is upstream's `None`
//! (strict mode, no closed box); non-strict mode returns the string `"[INVALID]"`.

use spear_envs::math::verify::compute_score;

#[test]
fn matches_upstream_python_on_recorded_cases() {
    let text = include_str!("fixtures/math/verifier_differential.jsonl");
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let resp = v["response"].as_str().unwrap();
        let gt = v["ground_truth"].as_str().unwrap();
        let strict = v["strict"].as_bool().unwrap();
        let got = compute_score(resp, gt, strict);
        assert_eq!(
            got.score,
            v["score"].as_f64().unwrap(),
            "case {}: {resp:?} gt {gt:?} strict {strict}",
            i + 1
        );
        assert_eq!(
            got.pred.as_deref(),
            v["pred"].as_str(),
            "case {}: {resp:?} strict {strict}",
            i + 1
        );
        assert!(
            v["pred"].is_string() || (v["pred"].is_null() && strict),
            "case {}: only strict mode has a None pred",
            i + 1
        );
        n += 1;
    }
    assert_eq!(n, 244);
}
