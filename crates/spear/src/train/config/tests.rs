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
    let e = TrainConfig::from_toml_str("[model]\ndtype = \"f16\"\n").unwrap_err();
    assert_eq!(e.key, "model.dtype");
    assert!(e.message.contains("line 2, column 9"), "{}", e.message);
    assert!(
        e.message.contains("use \"f32\" or \"bf16\""),
        "{}",
        e.message
    );
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
    let e = TrainConfig::default()
        .with_overrides(&["model.dtype=fp16".into()])
        .unwrap_err();
    assert_eq!(e.key, "model.dtype");
    assert!(e.message.contains("\"bf16\""), "{}", e.message);
    let c = TrainConfig::default()
        .with_overrides(&["model.dtype=bf16".into()])
        .unwrap();
    assert_eq!(c.model.dtype.0, spear_model::ComputeDtype::Bf16);
}

/// `model.matmul` / `model.blas_library`: parsed by name, refused by name where they cannot
/// apply (a GPU device; a library without `matmul = "blas"`).
#[test]
fn matmul_keys_parse_and_refuse_what_cannot_apply() {
    let c = TrainConfig::default()
        .with_overrides(&["model.matmul=blas".into()])
        .unwrap();
    assert_eq!(c.model.matmul, super::MatmulSpec::Blas);
    assert_eq!(TrainConfig::default().model.matmul, super::MatmulSpec::Gemm);
    let e = TrainConfig::default()
        .with_overrides(&["model.matmul=mkl".into()])
        .unwrap_err();
    assert_eq!(e.key, "model.matmul");
    let e = TrainConfig::default()
        .with_overrides(&["model.matmul=blas".into(), "model.device=\"cuda:0\"".into()])
        .unwrap_err();
    assert_eq!(e.key, "model.matmul");
    assert!(e.message.contains("GPU"), "{}", e.message);
    let e = TrainConfig::default()
        .with_overrides(&["model.blas_library=\"/opt/libopenblas.so\"".into()])
        .unwrap_err();
    assert_eq!(e.key, "model.blas_library");
    assert!(e.message.contains("model.matmul"), "{}", e.message);
}

/// Issue 12 (TRL's `GRPOConfig` as the model): every key `--print-config` writes has a doc
/// comment on its field that states the default. (Units are checked by reading, not here.)
#[test]
fn every_printed_key_documents_its_default() {
    const SOURCES: [&str; 8] = [
        include_str!("mod.rs"),
        include_str!("rollout.rs"),
        include_str!("sections.rs"),
        include_str!("env.rs"),
        include_str!("math.rs"),
        include_str!("model.rs"),
        include_str!("../../../../spear-rl/src/config.rs"),
        include_str!("../../../../spear-rl/src/loss/config.rs"),
    ];
    // Which struct each printed table is.
    const TABLES: [(&str, &str); 20] = [
        ("rollout", "RolloutSection"),
        ("", "TrainConfig"),
        ("run", "RunConfig"),
        ("env", "EnvConfig"),
        ("env.household", "HouseholdConfig"),
        ("env.webshop", "WebshopConfig"),
        ("env.math", "MathConfig"),
        ("env.math.sandbox", "SandboxSection"),
        ("model", "ModelSection"),
        ("sampling", "SamplingSection"),
        ("optim", "OptimConfig"),
        ("sft", "SftConfig"),
        ("eval", "EvalConfig"),
        ("rl", "RlConfig"),
        ("rl.advantage", "AdvantageConfig"),
        ("rl.gigpo", "GigpoConfig"),
        ("rl.reward", "RewardConfig"),
        ("rl.drbot", "DrBotConfig"),
        ("rl.replay", "ReplayConfig"),
        ("rl.update", "UpdateConfig"),
    ];
    // (struct, field) → its doc comment.
    let mut docs = std::collections::BTreeMap::new();
    for src in SOURCES {
        let mut current: Option<String> = None;
        let mut doc = String::new();
        for line in src.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("pub struct ") {
                current = rest.strip_suffix('{').map(|n| n.trim().to_string());
            } else if t == "}" {
                current = None;
            } else if let Some(d) = t.strip_prefix("///") {
                doc.push_str(d);
                doc.push(' ');
                continue;
            } else if let (Some(s), Some(rest)) = (&current, t.strip_prefix("pub ")) {
                if let Some((field, _)) = rest.split_once(':') {
                    docs.insert((s.clone(), field.trim().to_string()), doc.clone());
                }
            }
            if !t.starts_with("#[") {
                doc.clear();
            }
        }
    }
    let struct_of = |table: &str| {
        let loss = (table == "rl.loss").then_some("LossConfig");
        loss.or_else(|| TABLES.iter().find(|(t, _)| *t == table).map(|(_, s)| *s))
            .unwrap_or_else(|| panic!("[{table}] is printed but not in TABLES"))
    };
    fn walk(table: &str, value: &toml::Table, check: &mut dyn FnMut(&str, &str, &toml::Value)) {
        for (k, v) in value {
            check(table, k, v);
            if let toml::Value::Table(t) = v {
                let path = if table.is_empty() {
                    k.clone()
                } else {
                    format!("{table}.{k}")
                };
                walk(&path, t, check);
            }
        }
    }
    let mut missing = vec![];
    let mut checked = 0;
    let mut configs = vec![TrainConfig::default()];
    configs.extend(crate::train::presets::PRESETS.map(|p| p.config()));
    for c in configs {
        let printed: toml::Table = toml::from_str(&c.to_toml_string()).unwrap();
        walk("", &printed, &mut |table, key, value| {
            let doc = docs.get(&(struct_of(table).to_string(), key.to_string()));
            let is_table = value.is_table();
            let ok =
                doc.is_some_and(|d| !d.trim().is_empty() && (is_table || d.contains("Default")));
            if !ok {
                missing.push(format!("{table}.{key}"));
            }
            checked += 1;
        });
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "keys without a doc comment stating the default: {missing:?}"
    );
    assert!(checked > 100, "{checked}");

    // The stated default is the value `TrainConfig::default()` prints (numbers, booleans,
    // `names`, `empty`); wordier statements ("Default: the preset's name") are not checked.
    let printed: toml::Table = toml::from_str(&TrainConfig::default().to_toml_string()).unwrap();
    let mut wrong = vec![];
    walk("", &printed, &mut |table, key, value| {
        let Some(doc) = docs.get(&(struct_of(table).to_string(), key.to_string())) else {
            return;
        };
        let Some((_, after)) = doc.split_once("Default") else {
            return;
        };
        let Some(raw) = after.trim_start_matches(':').split_whitespace().next() else {
            return;
        };
        let token = raw.trim_end_matches(['.', ',', ';']);
        let quoted = token.starts_with('`');
        let token = token.trim_matches('`');
        let agrees = match value {
            toml::Value::Integer(n) => token.parse::<f64>().ok().map(|t| t == *n as f64),
            toml::Value::Float(x) => token.parse::<f64>().ok().map(|t| t == *x),
            toml::Value::Boolean(b) => token.parse::<bool>().ok().map(|t| t == *b),
            toml::Value::String(v) if token == "empty" => Some(v.is_empty()),
            toml::Value::String(v) => quoted.then(|| token == v),
            toml::Value::Array(a) if token == "empty" => Some(a.is_empty()),
            toml::Value::Array(_) => quoted.then(|| token == value.to_string()),
            _ => None,
        };
        if agrees == Some(false) {
            wrong.push(format!(
                "{table}.{key}: doc says {token}, default is {value}"
            ));
        }
    });
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `rl.loss.tis_cap`: off (`false`) by default and printed as such; a number > 0 turns it on
/// (integers too); 0, a negative cap, `true` or a string are errors naming the key, also
/// with line and column from a file.
#[test]
fn tis_cap_is_off_by_default_and_a_positive_number_when_on() {
    let base = TrainConfig::default();
    assert_eq!(base.rl.loss.tis_cap.0, None);
    assert!(base.to_toml_string().contains("tis_cap = false"));
    let on = base
        .with_overrides(&["rl.loss.tis_cap=2.0".into()])
        .unwrap();
    assert_eq!(on.rl.loss.tis_cap.0, Some(2.0));
    assert!(on.to_toml_string().contains("tis_cap = 2.0"));
    let int = base.with_overrides(&["rl.loss.tis_cap=3".into()]).unwrap();
    assert_eq!(int.rl.loss.tis_cap.0, Some(3.0));
    // Round trip through the file a run keeps.
    let back = TrainConfig::from_toml_str(&on.to_toml_string()).unwrap();
    assert_eq!(back, on);
    for bad in ["0", "-1.5", "0.0", "true", "\"big\"", "nan"] {
        let e = base
            .with_overrides(&[format!("rl.loss.tis_cap={bad}")])
            .unwrap_err();
        assert_eq!(e.key, "rl.loss.tis_cap", "{bad}: {e}");
        assert!(
            e.message.contains("cap") || e.message.contains("false"),
            "{bad}: {}",
            e.message
        );
    }
    let text = "[rl.loss]\ntis_cap = -1.0\n";
    let e = TrainConfig::from_toml_str(text).unwrap_err();
    assert_eq!(e.key, "rl.loss.tis_cap");
    assert!(e.to_string().contains("line 2"), "{e}");
}

/// `[rollout]`: `mode` sync (default) or async, `max_staleness` a count of versions; async
/// with the math environment is refused naming `rollout.mode`; both keys can change on
/// resume.
#[test]
fn rollout_mode_keys() {
    let base = TrainConfig::default();
    assert_eq!(base.rollout.mode, RolloutMode::Sync);
    assert_eq!(base.rollout.max_staleness, 1);
    let a = base
        .with_overrides(&[
            "rollout.mode=async".into(),
            "rollout.max_staleness=0".into(),
        ])
        .unwrap();
    assert_eq!(a.rollout.mode, RolloutMode::Async);
    assert_eq!(a.rollout.max_staleness, 0);
    let e = base
        .with_overrides(&["rollout.mode=eventually".into()])
        .unwrap_err();
    assert_eq!(e.key, "rollout.mode");
    assert!(
        e.message.contains("sync") && e.message.contains("async"),
        "{e}"
    );
    let e = base
        .with_overrides(&["rollout.max_staleness=-1".into()])
        .unwrap_err();
    assert_eq!(e.key, "rollout.max_staleness");
    let mut math = crate::train::presets::PRESETS
        .iter()
        .find(|p| p.config().env.kind == EnvKind::Math)
        .expect("a math preset")
        .config();
    math.rollout.mode = RolloutMode::Async;
    let e = math.validate().unwrap_err();
    assert_eq!(e.key, "rollout.mode");
    assert!(e.message.contains("math"), "{e}");
    let r = base
        .with_resume_overrides(&["rollout.mode=async".into()])
        .unwrap();
    assert_eq!(r.rollout.mode, RolloutMode::Async);
}

/// `[rollout]`: the HTTP engine needs endpoints, each `http://host:port`; resume may move the
/// servers but not switch engines.
#[test]
fn rollout_section_is_checked() {
    let base = TrainConfig::default();
    assert_eq!(base.rollout.engine, EngineKind::Local);
    let e = base
        .with_overrides(&["rollout.engine=http".into()])
        .unwrap_err();
    assert_eq!(e.key, "rollout.endpoints");
    assert!(e.message.contains("rollout.engine"), "{}", e.message);
    let ok = base
        .with_overrides(&[
            "rollout.engine=http".into(),
            "rollout.api=sglang".into(),
            r#"rollout.endpoints=["http://127.0.0.1:8000", "http://[::1]:9/"]"#.into(),
        ])
        .unwrap();
    assert_eq!(ok.rollout.api, ApiKind::Sglang);
    for (bad, why) in [
        ("https://h:1", "https"),
        ("127.0.0.1:8000", "http://"),
        ("http://h", "port"),
        ("http://h:0", "port"),
        ("http://h:99999", "port"),
        ("http://h:80/v1", "path"),
    ] {
        let e = base
            .with_overrides(&[format!("rollout.endpoints=[{bad:?}]")])
            .unwrap_err();
        assert_eq!(e.key, "rollout.endpoints", "{bad}");
        assert!(e.message.contains(why), "{bad}: {}", e.message);
    }
    let e = base
        .with_overrides(&[r#"rollout.endpoints=["http://a:1", "http://a:1/"]"#.into()])
        .unwrap_err();
    assert!(e.message.contains("twice"), "{}", e.message);
    let e = base
        .with_overrides(&["rollout.api=tgi".into()])
        .unwrap_err();
    assert_eq!(e.key, "rollout.api");
    let e = base
        .with_overrides(&["rollout.keep_weights=0".into()])
        .unwrap_err();
    assert_eq!(e.key, "rollout.keep_weights");
    // A file with a bad endpoint: the error points at its line.
    let text = "[rollout]\nengine = \"http\"\nendpoints = [\"ftp://x:1\"]\n";
    let e = TrainConfig::from_toml_str(text).unwrap_err();
    assert_eq!(e.key, "rollout.endpoints");
    assert!(e.message.contains("line 3"), "{}", e.message);
    // Resume: the servers may move; the engine may not change.
    let c = ok
        .with_resume_overrides(&[r#"rollout.endpoints=["http://10.0.0.2:8000"]"#.into()])
        .unwrap();
    assert_eq!(
        c.rollout.endpoints,
        vec!["http://10.0.0.2:8000".to_string()]
    );
    let e = ok
        .with_resume_overrides(&["rollout.engine=local".into()])
        .unwrap_err();
    assert_eq!(e.key, "rollout.engine");
}

/// `env.webshop.demonstrations` takes `oracle` (the default) or `checking`; `webshop-tiny`
/// warm-starts on the checking expert, the paper preset keeps the oracle.
#[test]
fn webshop_demonstrations_parse_and_presets_choose() {
    let base = TrainConfig::default();
    assert_eq!(base.env.webshop.demonstrations, env::WebshopDemos::Oracle);
    let c = base
        .with_overrides(&["env.webshop.demonstrations=\"checking\"".into()])
        .unwrap();
    assert_eq!(c.env.webshop.demonstrations, env::WebshopDemos::Checking);
    let e = base
        .with_overrides(&["env.webshop.demonstrations=\"blind\"".into()])
        .unwrap_err();
    assert!(e.key.contains("demonstrations"), "{} {}", e.key, e.message);
    let tiny = crate::train::presets::Preset::named("webshop-tiny").unwrap();
    assert_eq!(
        tiny.config().env.webshop.demonstrations,
        env::WebshopDemos::Checking
    );
    let paper = crate::train::presets::Preset::named("webshop").unwrap();
    assert_eq!(
        paper.config().env.webshop.demonstrations,
        env::WebshopDemos::Oracle
    );
    // The search copy curriculum: off by default and in the paper preset, on in the tiny one.
    assert_eq!(base.env.webshop.search_demos, 0);
    assert_eq!(paper.config().env.webshop.search_demos, 0);
    assert!(tiny.config().env.webshop.search_demos >= 1000);
    assert_eq!(base.env.webshop.click_demos, 0);
    assert_eq!(paper.config().env.webshop.click_demos, 0);
    assert!(tiny.config().env.webshop.click_demos >= 500);
    let c = base
        .with_overrides(&["env.webshop.click_demos=7".into()])
        .unwrap();
    assert_eq!(c.env.webshop.click_demos, 7);
    assert_eq!(base.env.webshop.option_demos, 0);
    assert_eq!(paper.config().env.webshop.option_demos, 0);
    // Its short first steps and long episodes are batched by length; nothing else is.
    assert!(tiny.config().sft.group_by_length);
    assert!(!base.sft.group_by_length);
    assert!(!paper.config().sft.group_by_length);
    let c = base
        .with_overrides(&["env.webshop.search_demos=12".into()])
        .unwrap();
    assert_eq!(c.env.webshop.search_demos, 12);
    let e = base
        .with_overrides(&["env.webshop.search_demos=\"many\"".into()])
        .unwrap_err();
    assert!(e.key.contains("search_demos"), "{} {}", e.key, e.message);
}

/// `env.household.demonstrations` takes the two expert names; anything else is an error that
/// names the key.
#[test]
fn household_demonstrations_parse_and_reject_unknown_names() {
    let base = TrainConfig::default();
    assert_eq!(
        base.env.household.demonstrations,
        env::HouseholdDemos::Walkthrough
    );
    let c = base
        .with_overrides(&["env.household.demonstrations=\"searching\"".into()])
        .unwrap();
    assert_eq!(
        c.env.household.demonstrations,
        env::HouseholdDemos::Searching
    );
    let e = base
        .with_overrides(&["env.household.demonstrations=\"random\"".into()])
        .unwrap_err();
    assert!(e.key.contains("demonstrations"), "{} {}", e.key, e.message);
    // `demo_share`: a share in [0, 1] per task type name.
    let c = base
        .with_overrides(&["env.household.demo_share={look_at_obj_in_light=0.1}".into()])
        .unwrap();
    assert_eq!(
        c.env
            .household
            .demo_share_of(Some(spear_envs::household::TaskType::LookAtObjInLight)),
        0.1
    );
    assert_eq!(
        c.env
            .household
            .demo_share_of(Some(spear_envs::household::TaskType::PickAndPlaceSimple)),
        1.0
    );
    let e = base
        .with_overrides(&["env.household.demo_share={look_at_obj_in_light=1.5}".into()])
        .unwrap_err();
    assert_eq!(e.key, "env.household.demo_share.look_at_obj_in_light");
    let e = base
        .with_overrides(&["env.household.demo_share={look_at=0.5}".into()])
        .unwrap_err();
    assert_eq!(e.key, "env.household.demo_share");
    assert!(e.message.contains("look_at_obj_in_light"), "{}", e.message);
}
