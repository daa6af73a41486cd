//! Named presets: one table, [`PRESETS`], of a name, a base (an environment family's starting
//! config, in [`household`], [`webshop`] and [`math`]) and an algorithm. The name is the base
//! and an algorithm suffix (`-grpo`, `-gigpo`, `-spear`; none = `-spear`); `--preset` accepts
//! exactly the table's names (clap lists them on a typo).
//!
//! Agent algorithms (household, WebShop; spec §2.9, §3, §4):
//! * `grpo`: GRPO advantages (std-normalised; Dr.GRPO on the small presets, see below),
//!   vanilla PPO clip (0.2/0.28), no Dr.BoT filters, no replay, no tool-call reward.
//! * `gigpo`: the same with GiGPO advantages (γ 0.95, ω 1, `mean_std_norm`; `mean_norm` on
//!   the small presets).
//! * `spear`: SPEAR on Dr.BoT(GiGPO): Dr.BoT filters and group filter, Clip-Cov loss,
//!   `seq-mean-token-sum-norm`, the cosine tool-call reward, self-imitation replay with the P50
//!   baseline and the γ(t) ramp.
//!
//! Math has `-spear` and `-grpo` only ([`math`]).
//!
//! Reading: the upstream GRPO/GiGPO baselines add a 0.01 `low_var_kl` loss to a reference
//! model (spec §8 item 10); our baselines keep the SPEAR repo's `use_kl_loss = false` so the
//! three variants differ only in what SPEAR adds (`--set rl.loss.use_kl_loss=true` turns it on).
//!
//! The tiny presets shrink the paper's batch (32 tasks × 8) to what two CPU cores can run in
//! minutes, and scale every step-count constant to the run length: T_decay and T_warm
//! (spec §2.6) equal the number of iterations, the mini-batch is 256 step-samples, and the
//! replay buffer holds 32 samples (trigger: more than 1.5 × 32 stored samples scoring above
//! the P50 baseline, spec §2.3). The paper's 2048 is sized for ~5000 step-samples per
//! iteration at 30–80 % success; at 64 episodes and ~10 % success only winning steps pass
//! the P50 test, ~20 per iteration, so a buffer of 128 never fired in 30 iterations.
//!
//! Reading for the small models (`household-tiny`, `household-smollm2`): **no std
//! normalisation of advantages** — GiGPO `mode = mean_norm` (the GiGPO paper's "w/o std"
//! variant) and Dr.GRPO (`s − μ`) for `-grpo`. The released scripts keep the std on (spec §8
//! item 11), which is harmless when most groups contain a win. At the tiny model's ~5–10 %
//! training success most groups contain none, and their scores then differ only by the 0.1
//! invalid-action penalty; dividing by that group's tiny σ turns it into ±1-sized advantages
//! that reinforce whole failing trajectories (and −12 step advantages for one invalid step in a
//! large anchor group). Measured on this preset: with the std on, success fell from 0.26 to
//! 0.16 (valid_seen) over 30 iterations; see docs/training.md "Tuning the tiny preset".

pub mod household;
pub mod math;
pub mod webshop;

use clap::builder::PossibleValue;
use spear_rl::config::{Estimator, GigpoMode, RlConfig, ToolCallReward};
use spear_rl::loss::LossConfig;

use self::math::{MathAlgorithm, MathBase};
use super::config::TrainConfig;
use spear_rl::config::ConfigError;

/// The algorithm part of an agent preset's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Plain GRPO.
    Grpo,
    /// Plain GiGPO.
    Gigpo,
    /// SPEAR on Dr.BoT(GiGPO).
    Spear,
}

/// The base of a household or WebShop preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentBase {
    /// `household-tiny`: generated games, a tiny from-scratch model, two CPU cores.
    HouseholdTiny,
    /// `household-smollm2`: the same games with SmolLM2-135M-Instruct.
    HouseholdSmollm2,
    /// `alfworld`: the paper's ALFWorld run.
    Alfworld,
    /// `webshop-tiny`: a generated catalogue and a tiny model, two CPU cores.
    WebshopTiny,
    /// `webshop`: the paper's WebShop run.
    Webshop,
}

impl AgentBase {
    /// Small presets train without std normalisation (module docs).
    fn is_small(self) -> bool {
        match self {
            AgentBase::HouseholdTiny | AgentBase::HouseholdSmollm2 | AgentBase::WebshopTiny => true,
            AgentBase::Alfworld | AgentBase::Webshop => false,
        }
    }

    fn build(self, c: &mut TrainConfig) {
        match self {
            AgentBase::HouseholdTiny => household::household_tiny(c),
            AgentBase::HouseholdSmollm2 => household::household_smollm2(c),
            AgentBase::Alfworld => household::alfworld(c),
            AgentBase::WebshopTiny => webshop::webshop_tiny(c),
            AgentBase::Webshop => webshop::webshop(c),
        }
    }
}

/// What a preset is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// A household or WebShop base with an agent algorithm.
    Agent(AgentBase, Algorithm),
    /// A math base with a math algorithm.
    Math(MathBase, MathAlgorithm),
}

/// A named preset (`spear train --preset NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The name `--preset` takes (and the run's default `run.name`).
    pub name: &'static str,
    /// Its base and algorithm.
    pub recipe: Recipe,
}

const fn agent(name: &'static str, base: AgentBase, algo: Algorithm) -> Preset {
    Preset {
        name,
        recipe: Recipe::Agent(base, algo),
    }
}

const fn math(name: &'static str, base: MathBase, algo: MathAlgorithm) -> Preset {
    Preset {
        name,
        recipe: Recipe::Math(base, algo),
    }
}

/// Every preset, the one list `--preset` accepts; the first is the default.
pub const PRESETS: [Preset; 29] = {
    use AgentBase::*;
    use Algorithm::*;
    use MathAlgorithm::DrBot;
    [
        agent("household-tiny", HouseholdTiny, Spear),
        agent("household-tiny-grpo", HouseholdTiny, Grpo),
        agent("household-tiny-gigpo", HouseholdTiny, Gigpo),
        agent("household-tiny-spear", HouseholdTiny, Spear),
        agent("household-smollm2", HouseholdSmollm2, Spear),
        agent("household-smollm2-grpo", HouseholdSmollm2, Grpo),
        agent("household-smollm2-gigpo", HouseholdSmollm2, Gigpo),
        agent("household-smollm2-spear", HouseholdSmollm2, Spear),
        agent("webshop-tiny", WebshopTiny, Spear),
        agent("webshop-tiny-grpo", WebshopTiny, Grpo),
        agent("webshop-tiny-gigpo", WebshopTiny, Gigpo),
        agent("webshop-tiny-spear", WebshopTiny, Spear),
        agent("webshop", Webshop, Spear),
        agent("webshop-grpo", Webshop, Grpo),
        agent("webshop-gigpo", Webshop, Gigpo),
        agent("webshop-spear", Webshop, Spear),
        agent("alfworld", Alfworld, Spear),
        agent("alfworld-grpo", Alfworld, Grpo),
        agent("alfworld-gigpo", Alfworld, Gigpo),
        agent("alfworld-spear", Alfworld, Spear),
        math("math", MathBase::Smollm2, MathAlgorithm::Spear),
        math("math-grpo", MathBase::Smollm2, DrBot),
        math("math-spear", MathBase::Smollm2, MathAlgorithm::Spear),
        math("math-tiny", MathBase::Tiny, MathAlgorithm::Spear),
        math("math-tiny-grpo", MathBase::Tiny, DrBot),
        math("math-tiny-spear", MathBase::Tiny, MathAlgorithm::Spear),
        math("math-paper", MathBase::Paper, MathAlgorithm::Spear),
        math("math-paper-grpo", MathBase::Paper, DrBot),
        math("math-paper-spear", MathBase::Paper, MathAlgorithm::Spear),
    ]
};

/// The preset of `spear train` without `--preset` or `--config`.
pub const DEFAULT_PRESET: Preset = PRESETS[0];

impl Preset {
    /// The preset called `name`.
    pub fn named(name: &str) -> Option<Preset> {
        PRESETS.into_iter().find(|p| p.name == name)
    }

    /// The full config of this preset (`run.name` = its name).
    pub fn config(self) -> TrainConfig {
        let mut c = TrainConfig::default();
        match self.recipe {
            Recipe::Agent(base, algo) => {
                base.build(&mut c);
                apply_algorithm(&mut c.rl, algo);
                if base.is_small() {
                    without_std_normalisation(&mut c.rl);
                }
            }
            Recipe::Math(base, algo) => math::math_preset(&mut c, base, algo),
        }
        c.run.name = self.name.to_string();
        c
    }
}

impl clap::ValueEnum for Preset {
    fn value_variants<'a>() -> &'a [Self] {
        &PRESETS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name))
    }
}

impl Preset {
    /// Whether the preset ties T_decay (`rl.reward.max_toolcall_steps`) and T_warm
    /// (`rl.replay.max_replay_loss_steps`) to its own run length: the short CPU presets do
    /// (module docs); the paper's presets keep the paper's constants (200, 300).
    pub fn schedules_follow_iterations(self) -> bool {
        match self.recipe {
            Recipe::Agent(base, _) => base.is_small(),
            Recipe::Math(base, _) => base != MathBase::Paper,
        }
    }

    /// This preset's config with `--set` overrides (`KEY=VALUE`). On a preset whose schedules
    /// follow its length ([`Preset::schedules_follow_iterations`]), an overridden
    /// `run.iterations` carries T_decay and T_warm along unless they are set too, so that the
    /// tool-call reward still decays to 0 and the replay weight still reaches 1 at the end of
    /// the run. Returns the config and one note per key that moved (for the user to see).
    pub fn with_overrides(
        self,
        sets: &[String],
    ) -> Result<(TrainConfig, Vec<String>), ConfigError> {
        let base = self.config();
        let mut c = base.with_overrides(sets)?;
        let mut notes = Vec::new();
        let n = c.run.iterations;
        if !self.schedules_follow_iterations() || n == base.run.iterations {
            return Ok((c, notes));
        }
        let set_here = |key: &str| {
            sets.iter()
                .filter_map(|s| s.split_once('='))
                .any(|(k, _)| k.trim() == key)
        };
        let follow = [
            (
                "rl.reward.max_toolcall_steps",
                &mut c.rl.reward.max_toolcall_steps,
            ),
            (
                "rl.replay.max_replay_loss_steps",
                &mut c.rl.replay.max_replay_loss_steps,
            ),
        ];
        for (key, value) in follow {
            if !set_here(key) && *value == base.run.iterations {
                *value = n;
                notes.push(format!(
                    "{key} = {n}: it follows run.iterations on the {} preset (set it to choose \
                     another value)",
                    self.name
                ));
            }
        }
        Ok((c, notes))
    }
}

/// Resolves a preset name into a full config (`None`: no such preset).
pub fn preset(name: &str) -> Option<TrainConfig> {
    Preset::named(name).map(Preset::config)
}

/// Applies an agent algorithm's learner settings to `rl`.
pub fn apply_algorithm(rl: &mut RlConfig, algo: Algorithm) {
    let (filters, replay) = match algo {
        Algorithm::Grpo | Algorithm::Gigpo => (false, false),
        Algorithm::Spear => (true, true),
    };
    rl.advantage.estimator = match algo {
        Algorithm::Grpo => Estimator::Grpo,
        Algorithm::Gigpo | Algorithm::Spear => Estimator::Gigpo,
    };
    rl.drbot.filter_overlong = filters;
    rl.drbot.filter_incomplete = filters;
    rl.drbot.filter_repetitive = filters;
    rl.drbot.filter_unreadable = filters;
    rl.drbot.rollout_filter_ratio = if filters { 0.75 } else { 1.0 };
    rl.drbot.power_of_two_subsample = filters;
    rl.replay.enabled = replay;
    rl.reward.toolcall_reward = if replay {
        ToolCallReward::Cosine
    } else {
        ToolCallReward::None
    };
    rl.loss = match algo {
        Algorithm::Grpo | Algorithm::Gigpo => LossConfig {
            use_kl_loss: false,
            kl_loss_coef: 0.0,
            loss_agg_mode: spear_rl::loss::LossAggMode::TokenMean,
            ..LossConfig::dr_bot()
        },
        Algorithm::Spear => LossConfig::spear(),
    };
}

/// The small presets' advantages: Dr.GRPO instead of GRPO, GiGPO `mean_norm` (module docs).
fn without_std_normalisation(rl: &mut RlConfig) {
    if rl.advantage.estimator == Estimator::Grpo {
        rl.advantage.estimator = Estimator::DrGrpo;
    }
    rl.gigpo.mode = GigpoMode::MeanNorm;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_resolves_and_validates() {
        for p in PRESETS {
            let c = p.config();
            c.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(c.run.name, p.name);
            assert_eq!(preset(p.name).as_ref(), Some(&c));
        }
        assert!(preset("household-huge").is_none());
        assert_eq!(DEFAULT_PRESET.name, "household-tiny");
    }

    /// The paper's runs checkpoint activations, as the SPEAR scripts do; the CPU presets do not
    /// (their activations are small, and checkpointing costs a block forward).
    #[test]
    fn paper_presets_checkpoint_activations() {
        for p in PRESETS {
            let paper = p.name.starts_with("alfworld")
                || p.name == "webshop"
                || p.name.starts_with("webshop-") && !p.name.starts_with("webshop-tiny")
                || p.name == "math-paper"
                || p.name.starts_with("math-paper-");
            assert_eq!(
                p.config().model.activation_checkpointing,
                paper,
                "{}",
                p.name
            );
        }
    }

    /// The table's names are the base and the algorithm's suffix (none = SPEAR), each once.
    #[test]
    fn names_spell_base_and_algorithm() {
        let mut names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        for p in PRESETS {
            let (base, suffix) = match p.recipe {
                Recipe::Agent(b, a) => {
                    let base = match b {
                        AgentBase::HouseholdTiny => "household-tiny",
                        AgentBase::HouseholdSmollm2 => "household-smollm2",
                        AgentBase::Alfworld => "alfworld",
                        AgentBase::WebshopTiny => "webshop-tiny",
                        AgentBase::Webshop => "webshop",
                    };
                    let suffix = match a {
                        Algorithm::Grpo => "-grpo",
                        Algorithm::Gigpo => "-gigpo",
                        Algorithm::Spear => "-spear",
                    };
                    (base, suffix)
                }
                Recipe::Math(b, a) => {
                    let base = match b {
                        MathBase::Smollm2 => "math",
                        MathBase::Tiny => "math-tiny",
                        MathBase::Paper => "math-paper",
                    };
                    let suffix = match a {
                        MathAlgorithm::DrBot => "-grpo",
                        MathAlgorithm::Spear => "-spear",
                    };
                    (base, suffix)
                }
            };
            let spear = suffix == "-spear";
            assert!(
                p.name == format!("{base}{suffix}") || (spear && p.name == base),
                "{} is not {base}{suffix}",
                p.name
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PRESETS.len(), "a name appears twice");
    }

    fn sets(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    /// `--set run.iterations=N` on a short-run preset carries T_decay and T_warm along.
    #[test]
    fn short_presets_schedules_follow_an_overridden_run_length() {
        let p = Preset::named("household-tiny").unwrap();
        let (c, notes) = p.with_overrides(&sets(&["run.iterations=20"])).unwrap();
        assert_eq!(c.run.iterations, 20);
        assert_eq!(c.rl.reward.max_toolcall_steps, 20);
        assert_eq!(c.rl.replay.max_replay_loss_steps, 20);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("rl.reward.max_toolcall_steps = 20"),
            "{notes:?}"
        );
        // A key set by the user stays as set; the other still follows.
        let (c, notes) = p
            .with_overrides(&sets(&[
                "run.iterations=20",
                " rl.reward.max_toolcall_steps = 7",
            ]))
            .unwrap();
        assert_eq!(c.rl.reward.max_toolcall_steps, 7);
        assert_eq!(c.rl.replay.max_replay_loss_steps, 20);
        assert_eq!(notes.len(), 1, "{notes:?}");
        // Without a new length nothing moves, and the math tiny preset follows too.
        let (c, notes) = p.with_overrides(&sets(&["optim.lr=1e-3"])).unwrap();
        assert_eq!(
            c,
            preset("household-tiny")
                .unwrap()
                .with_overrides(&sets(&["optim.lr=1e-3"]))
                .unwrap()
        );
        assert!(notes.is_empty());
        let m = Preset::named("math-tiny").unwrap();
        let (c, _) = m.with_overrides(&sets(&["run.iterations=40"])).unwrap();
        assert_eq!(c.rl.reward.max_toolcall_steps, 40);
        assert_eq!(c.rl.replay.max_replay_loss_steps, 40);
    }

    /// The paper's presets keep the paper's constants whatever the run length.
    #[test]
    fn paper_presets_keep_their_schedules() {
        for name in ["alfworld", "webshop", "math-paper"] {
            let p = Preset::named(name).unwrap();
            assert!(!p.schedules_follow_iterations());
            let base = p.config();
            let (c, notes) = p.with_overrides(&sets(&["run.iterations=7"])).unwrap();
            assert_eq!(c.run.iterations, 7);
            assert_eq!(
                c.rl.reward.max_toolcall_steps, base.rl.reward.max_toolcall_steps,
                "{name}"
            );
            assert_eq!(
                c.rl.replay.max_replay_loss_steps, base.rl.replay.max_replay_loss_steps,
                "{name}"
            );
            assert!(notes.is_empty());
        }
        assert!(Preset::named("webshop-tiny")
            .unwrap()
            .schedules_follow_iterations());
    }

    #[test]
    fn algorithms_differ_only_where_spear_adds_something() {
        let g = preset("household-tiny-gigpo").unwrap();
        let s = preset("household-tiny-spear").unwrap();
        let r = preset("household-tiny-grpo").unwrap();
        // Small presets: no std normalisation (module docs); the paper-sized one keeps it.
        assert_eq!(r.rl.advantage.estimator, Estimator::DrGrpo);
        assert_eq!(g.rl.gigpo.mode, GigpoMode::MeanNorm);
        assert_eq!(s.rl.gigpo.mode, GigpoMode::MeanNorm);
        let a = preset("alfworld-grpo").unwrap();
        assert_eq!(a.rl.advantage.estimator, Estimator::Grpo);
        assert_eq!(a.rl.gigpo.mode, GigpoMode::MeanStdNorm);
        assert_eq!(g.rl.advantage.estimator, Estimator::Gigpo);
        assert_eq!(s.rl.advantage.estimator, Estimator::Gigpo);
        assert!(s.rl.replay.enabled && !g.rl.replay.enabled);
        assert_eq!(s.rl.reward.toolcall_reward, ToolCallReward::Cosine);
        assert_eq!(g.rl.reward.toolcall_reward, ToolCallReward::None);
        assert_eq!(s.rl.loss.loss_mode, spear_rl::loss::LossMode::ClipCov);
        assert_eq!(g.rl.loss.loss_mode, spear_rl::loss::LossMode::Vanilla);
        // Same environment, model and optimizer.
        assert_eq!(g.env, s.env);
        assert_eq!(g.model, s.model);
        assert_eq!(g.optim, s.optim);
        assert_eq!(preset("household-tiny").unwrap().rl, s.rl);
    }
}
