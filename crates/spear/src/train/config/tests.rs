//! Tests of the trainer config: parsing, overrides, validation, errors.

use super::*;

/// The TOML spelling of a task type is the environment's (`TaskType::as_str`).
#[test]
fn task_type_names_are_the_environment_s() {
    for t in spear_envs::household::TaskType::ALL {
        let v = toml::Value::try_from(t).unwrap();
        assert_eq!(v.as_str(), Some(t.as_str()));
    }
}

#[test]
fn cross_field_group_filter_needs_a_kept_group() {
    let base = TrainConfig::default();
    let e = base
        .with_overrides(&[
            "env.tasks_per_iter=1".into(),
            "rl.drbot.rollout_filter_ratio=0.75".into(),
        ])
        .unwrap_err();
    assert_eq!(e.key, "rl.drbot.rollout_filter_ratio");
    assert!(
        e.message.contains("env.tasks_per_iter to at least 2"),
        "{}",
        e.message
    );
    // floor(0.75 × 2) = 1 group: fine; the filter off: fine.
    base.with_overrides(&["env.tasks_per_iter=2".into()])
        .unwrap();
    base.with_overrides(&[
        "env.tasks_per_iter=1".into(),
        "rl.drbot.rollout_filter_ratio=1.0".into(),
    ])
    .unwrap();
    // Fewer generated training games than tasks per iteration bound the groups.
    let e = base
        .with_overrides(&[
            "env.tasks_per_iter=8".into(),
            "env.household.train_games=1".into(),
        ])
        .unwrap_err();
    assert!(
        e.message.contains("env.household.train_games = 1"),
        "{}",
        e.message
    );
}

#[test]
fn resume_overrides_only_the_cadence_keys() {
    let base = TrainConfig::default();
    let c = base
        .with_resume_overrides(&["run.iterations=7".into(), "run.eval_every=3".into()])
        .unwrap();
    assert_eq!((c.run.iterations, c.run.eval_every), (7, 3));
    for bad in [
        "model.hidden_size=64",
        "run.seed=3",
        "rl.replay.enabled=false",
    ] {
        let e = base.with_resume_overrides(&[bad.into()]).unwrap_err();
        assert_eq!(e.key, bad.split('=').next().unwrap());
        assert!(e.message.contains("run.iterations"), "{}", e.message);
    }
}

#[test]
fn run_names_stay_inside_out_dir() {
    let base = TrainConfig::default();
    for bad in ["..", ".", "a/b", "a\\b", "\"\""] {
        let e = base
            .with_overrides(&[format!("run.name={bad}")])
            .unwrap_err();
        assert_eq!(e.key, "run.name", "{bad}");
    }
    base.with_overrides(&["run.name=..x".into()]).unwrap();
}

#[test]
fn config_file_says_when_the_sandbox_is_off() {
    assert!(!TrainConfig::default().config_file_text().starts_with('#'));
    let mut c = crate::train::presets::preset("math-tiny-spear").unwrap();
    c.env.math.sandbox.backend = SandboxBackend::Rlimits;
    let text = c.config_file_text();
    assert!(text.starts_with(RLIMITS_CONFIG_WARNING), "{text}");
    // The comment does not change what the file holds.
    assert_eq!(TrainConfig::from_toml_str(&text).unwrap(), c);
}

#[test]
fn defaults_round_trip_through_toml() {
    let c = TrainConfig::default();
    let text = c.to_toml_string();
    assert_eq!(TrainConfig::from_toml_str(&text).unwrap(), c);
    // A partial file takes defaults for the rest.
    let c2 = TrainConfig::from_toml_str("[run]\niterations = 7\n").unwrap();
    assert_eq!(c2.run.iterations, 7);
    assert_eq!(c2.env.group_size, 8);
}

#[test]
fn overrides_set_nested_keys_and_coerce_numbers() {
    let c = TrainConfig::default()
        .with_overrides(&[
            "run.iterations=3".into(),
            "optim.lr=1".into(),
            "rl.replay.enabled=false".into(),
            "run.name=007".into(),
            "env.household.task_types=[\"pick_and_place_simple\"]".into(),
            "rl.advantage.estimator=gigpo".into(),
        ])
        .unwrap();
    assert_eq!(c.run.iterations, 3);
    assert_eq!(c.optim.lr, 1.0);
    assert!(!c.rl.replay.enabled);
    assert_eq!(c.run.name, "007");
    assert_eq!(
        c.env.household.task_types,
        vec![spear_envs::household::TaskType::PickAndPlaceSimple]
    );
    assert_eq!(c.rl.advantage.estimator, spear_rl::config::Estimator::Gigpo);
}

#[test]
fn errors_name_the_key_and_the_allowed_values() {
    let e = TrainConfig::default()
        .with_overrides(&["rl.replay.tolerate_stepz=3".into()])
        .unwrap_err();
    assert_eq!(e.key, "rl.replay.tolerate_stepz");
    assert!(e.message.contains("tolerate_steps"), "{}", e.message);

    let e = TrainConfig::default()
        .with_overrides(&["rl.advantage.estimator=ppo".into()])
        .unwrap_err();
    assert_eq!(e.key, "rl.advantage.estimator");
    assert!(e.message.contains("gigpo"), "{}", e.message);

    let e = TrainConfig::from_toml_str("[env]\ngroup_size = 0\n").unwrap_err();
    assert_eq!(e.key, "env.group_size");

    let e = TrainConfig::from_toml_str("[run]\nnmae = \"x\"\n").unwrap_err();
    assert_eq!(e.key, "run.nmae");

    let e = TrainConfig::from_toml_str("[rl.replay]\ntolerate_steps = 50\n").unwrap_err();
    assert_eq!(e.key, "rl.replay.tolerate_steps");

    let e = TrainConfig::default()
        .with_overrides(&["env.household.task_types=[\"fly\"]".into()])
        .unwrap_err();
    assert!(e.message.contains("pick_and_place_simple"), "{}", e.message);

    let e = TrainConfig::default()
        .with_overrides(&["iterations".into()])
        .unwrap_err();
    assert!(e.message.contains("KEY=VALUE"));
}

/// Issue 12: a syntax error keeps its line and column, and shows the line.
#[test]
fn syntax_errors_keep_line_and_column() {
    let e = TrainConfig::from_toml_str("[run]\niterations = 3\nname = = \"a\"\n").unwrap_err();
    assert_eq!(e.key, "(file)");
    assert!(e.message.contains("line 3, column 8"), "{}", e.message);
    assert!(e.message.contains("3 | name = = \"a\""), "{}", e.message);
}

/// Issue 12: an error about a key the file spells out points at it (its value, or the key
/// itself when it is unknown); keys the file does not have get no position.
#[test]
fn key_errors_point_into_the_file() {
    let e = TrainConfig::from_toml_str("[env]\n\ngroup_size = 0\n").unwrap_err();
    assert_eq!(e.key, "env.group_size");
    assert!(e.message.contains("line 3, column 14"), "{}", e.message);
    let e = TrainConfig::from_toml_str("[rl.replay]\ntolerate_stepz = 1\n").unwrap_err();
    assert_eq!(e.key, "rl.replay.tolerate_stepz");
    assert!(e.message.contains("line 2, column 1"), "{}", e.message);
    let e =
        TrainConfig::from_toml_str("[eval]\nsplits = [\"valid_seen\", \"nope\"]\n").unwrap_err();
    assert_eq!(e.key, "eval.splits");
    assert!(e.message.contains("valid_unseen"), "{}", e.message);
    assert!(e.message.contains("line 2, column 10"), "{}", e.message);
    // The math budget differs from the default max_response_length, which the file lacks.
    let e = TrainConfig::from_toml_str(
        "[env]\nkind = \"math\"\n[eval]\nsplits = [\"held_out\"]\n\
         [rl.reward]\ntoolcall_variant = \"math_qwen3\"\n",
    )
    .unwrap_err();
    assert_eq!(e.key, "rl.drbot.max_response_length");
    assert!(!e.message.contains("line"), "{}", e.message);
}

/// Issue 12: `rl.seed` (written by earlier versions, never read) still loads, is dropped, and
/// is no longer written.
#[test]
fn old_rl_seed_loads_and_is_not_written() {
    let old = TrainConfig::from_toml_str("[run]\nseed = 4\n\n[rl]\nseed = 4\n").unwrap();
    assert_eq!(old.run.seed, 4);
    assert_eq!(old.rl, RlConfig::default());
    let text = old.to_toml_string();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    assert!(
        doc.get("rl").and_then(|v| v.get("seed")).is_none(),
        "{text}"
    );
    // `--set` knows no rl.seed either.
    let e = old.with_overrides(&["rl.seed=1".into()]).unwrap_err();
    assert_eq!(e.key, "rl.seed");
}

/// Issue 12: model source, splits, task types and families are parsed once, into enums, and
/// written back as they were spelt.
#[test]
fn typed_values_parse_once_and_keep_their_spelling() {
    let text = "[env]\nkind = \"math\"\n[env.math]\nfamilies = [\"modular\", \"number_theory\"]\n\
                max_response_tokens = 512\n[model]\nname = \"smollm2-135m\"\n\
                [eval]\nsplits = [\"aime25\", \"held_out\"]\n\
                [rl.reward]\ntoolcall_variant = \"math_qwen3\"\n\
                [rl.drbot]\nmax_response_length = 512\n";
    let c = TrainConfig::from_toml_str(text).unwrap();
    use spear_envs::math::data::generator::Family;
    assert_eq!(
        c.env.math.families,
        vec![Family::Modular, Family::NumberTheory]
    );
    assert_eq!(c.model.name, ModelSource::Pretrained("smollm2-135m"));
    assert_eq!(c.eval.splits, vec![EvalSplit::Aime25, EvalSplit::HeldOut]);
    let back = c.to_toml_string();
    for spelt in [
        "families = [\"modular\", \"number_theory\"]",
        "name = \"smollm2-135m\"",
        "splits = [\"aime25\", \"held_out\"]",
    ] {
        assert!(back.contains(spelt), "{spelt} not in\n{back}");
    }
    for f in spear_envs::math::data::generator::FAMILIES {
        assert_eq!(toml::Value::try_from(f).unwrap().as_str(), Some(f.name()));
    }
    for s in [EnvKind::Household, EnvKind::Webshop, EnvKind::Math]
        .iter()
        .flat_map(|k| k.eval_splits())
    {
        assert_eq!(toml::Value::try_from(s).unwrap().as_str(), Some(s.as_str()));
    }
    // A split of another environment: the error lists this environment's.
    let e = TrainConfig::default()
        .with_overrides(&["eval.splits=[\"test\"]".into()])
        .unwrap_err();
    assert_eq!(e.key, "eval.splits");
    assert!(
        e.message.contains("valid_seen, valid_unseen, train"),
        "{}",
        e.message
    );
    let e = TrainConfig::default()
        .with_overrides(&["model.name=\"\"".into()])
        .unwrap_err();
    assert_eq!(e.key, "model.name");
    let e = TrainConfig::default()
        .with_overrides(&["model.device=gpu".into()])
        .unwrap_err();
    assert_eq!(e.key, "model.device");
}
