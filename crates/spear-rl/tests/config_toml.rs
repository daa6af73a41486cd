//! Config: TOML round-trip of the defaults, unknown keys and bad values named
//! by their dotted key (issue "Config" section).

use spear_rl::{Estimator, ReplayAdvantage, RlConfig};

#[test]
fn defaults_round_trip_through_toml() {
    let d = RlConfig::default();
    let text = d.to_toml_string();
    let back = RlConfig::from_toml_str(&text).unwrap();
    assert_eq!(back, d);
    // an empty file is the defaults
    assert_eq!(RlConfig::from_toml_str("").unwrap(), d);
}

#[test]
fn partial_file_overrides_only_its_keys() {
    let c = RlConfig::from_toml_str(
        "[advantage]\nestimator = \"gigpo\"\n[replay]\ntolerate_steps = 3\nadvantage = { weight_decay = 0.9 }\n",
    )
    .unwrap();
    assert_eq!(c.advantage.estimator, Estimator::Gigpo);
    assert_eq!(c.replay.tolerate_steps, 3);
    assert_eq!(c.replay.advantage, ReplayAdvantage::WeightDecay(0.9));
    assert_eq!(c.replay.buffer_size, 2048);
    let again = RlConfig::from_toml_str(&c.to_toml_string()).unwrap();
    assert_eq!(again, c);
}

#[test]
fn unknown_keys_are_named() {
    let e = RlConfig::from_toml_str("[replay]\ntolerate_stepz = 3\n").unwrap_err();
    assert_eq!(e.key, "replay.tolerate_stepz", "{e}");
    assert!(e.message.contains("unknown field"), "{e}");
    let e = RlConfig::from_toml_str("bogus = 1\n").unwrap_err();
    assert_eq!(e.key, "bogus", "{e}");
    let e = RlConfig::from_toml_str("[nope]\nx = 1\n").unwrap_err();
    assert_eq!(e.key, "nope", "{e}");
    // The run's seed is the trainer's `run.seed`; the trainer drops an old `rl.seed` itself.
    let e = RlConfig::from_toml_str("seed = 7\n").unwrap_err();
    assert_eq!(e.key, "seed", "{e}");
}

#[test]
fn wrong_types_and_enum_values_are_named() {
    let e = RlConfig::from_toml_str("[gigpo]\ngamma = \"high\"\n").unwrap_err();
    assert_eq!(e.key, "gigpo.gamma", "{e}");
    let e = RlConfig::from_toml_str("[advantage]\nestimator = \"ppo\"\n").unwrap_err();
    assert_eq!(e.key, "advantage.estimator", "{e}");
}

#[test]
fn out_of_range_values_are_named() {
    let cases = [
        ("[replay]\ntolerate_steps = 11\n", "replay.tolerate_steps"),
        ("[replay]\nbuffer_size = 0\n", "replay.buffer_size"),
        (
            "[replay]\nadvantage = { weight_decay = 1.5 }\n",
            "replay.advantage.weight_decay",
        ),
        ("[gigpo]\ngamma = 1.2\n", "gigpo.gamma"),
        (
            "[drbot]\nrollout_filter_ratio = 0.0\n",
            "drbot.rollout_filter_ratio",
        ),
        (
            "[drbot]\nrepetition_threshold = 1\n",
            "drbot.repetition_threshold",
        ),
        ("[advantage]\nepsilon = -1.0\n", "advantage.epsilon"),
        (
            "[reward]\ninvalid_action_penalty = -0.1\n",
            "reward.invalid_action_penalty",
        ),
        (
            "[update]\nmini_batch_size = 10\nmicro_batch_size = 3\n",
            "update.micro_batch_size",
        ),
        ("[update]\ngrad_clip = 0.0\n", "update.grad_clip"),
        ("[update]\nppo_epochs = 0\n", "update.ppo_epochs"),
    ];
    for (text, key) in cases {
        let e = RlConfig::from_toml_str(text).unwrap_err();
        assert_eq!(e.key, key, "for {text:?}: {e}");
        assert!(e.to_string().contains(key));
    }
}

#[test]
fn loss_table_is_part_of_the_config() {
    use spear_rl::loss::LossConfig;
    let c = RlConfig::from_toml_str("[loss]\nclip_ratio_high = 0.2\n").unwrap();
    assert_eq!(c.loss.clip_ratio_high, 0.2);
    assert_eq!(c.loss.clip_ratio_low, LossConfig::default().clip_ratio_low);
    let e = RlConfig::from_toml_str("[loss]\nclip_ratio_hgh = 0.2\n").unwrap_err();
    assert_eq!(e.key, "loss.clip_ratio_hgh", "{e}");
    let e = RlConfig::from_toml_str("[loss]\nentropy_coeff = -1.0\n").unwrap_err();
    assert_eq!(e.key, "loss.entropy_coeff", "{e}");
}
