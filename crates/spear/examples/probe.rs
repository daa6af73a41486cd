use spear::rollout::agent::{rollout_agent, AgentRolloutParams};
use spear::train::{presets, setup, sft};
use spear_envs::household::HouseholdEnv;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = presets::preset("household-tiny")
        .unwrap()
        .with_overrides(&args)?;
    let t = Instant::now();
    let tasks = setup::load_household(&cfg)?;
    eprintln!(
        "games {} in {:.1}s",
        tasks.train.games.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let ex = setup::household_sft_examples(&tasks.train, cfg.sft.games as usize, 2)?;
    eprintln!("examples {} in {:.1}s", ex.len(), t.elapsed().as_secs_f64());
    let corpus = setup::household_corpus(&tasks, &ex);
    let policy = setup::build_policy(&cfg, || corpus)?;
    eprintln!(
        "vocab {} params {}",
        policy.tokenizer.vocab_size(),
        policy.model.params().num_params()
    );
    let lens: Vec<usize> = ex
        .iter()
        .map(|e| setup::prompt_ids(&policy, &e.prompt).unwrap().len())
        .collect();
    let rl: Vec<usize> = ex
        .iter()
        .map(|e| setup::response_ids(&policy, &e.response).unwrap().len())
        .collect();
    eprintln!(
        "prompt len mean {} max {}; resp mean {} max {}",
        lens.iter().sum::<usize>() / lens.len(),
        lens.iter().max().unwrap(),
        rl.iter().sum::<usize>() / rl.len(),
        rl.iter().max().unwrap()
    );
    eprintln!("example:\n{}\n=> {}", ex[3].prompt, ex[3].response);
    let s = sft::SftSettings {
        epochs: cfg.sft.epochs as usize,
        batch_size: cfg.sft.batch_size as usize,
        lr: cfg.sft.lr,
        weight_decay: 0.0,
        token_budget: cfg.optim.token_budget as usize,
        seed: 0,
    };
    let bar = indicatif::ProgressBar::new(1);
    let rep = sft::run_sft(&policy, &ex, &s, Some(&bar))?;
    bar.finish();
    eprintln!("{rep:?}");
    if std::env::var("PROBE_SFT_ONLY").is_ok() {
        return Ok(());
    }
    for (name, set) in &tasks.evals {
        let n = 64usize;
        let mut envs = HouseholdEnv::group(set.games.clone(), n, cfg.env.max_turns as usize);
        let tasks_idx: Vec<usize> = (0..n).map(|i| i % set.games.len()).collect();
        let p = AgentRolloutParams {
            group_size: 1,
            max_turns: cfg.env.max_turns as usize,
            history_length: 2,
            sampling: spear_model::SamplingParams {
                temperature: 0.4,
                max_new_tokens: cfg.sampling.max_new_tokens as usize,
                ..Default::default()
            },
            seed: 1,
            iteration: 0,
            keep_prompts: false,
        };
        let t = Instant::now();
        let out = rollout_agent(&policy, &mut envs, &tasks_idx, &p)?;
        let won = out.episodes.iter().filter(|e| e.won).count();
        let valid = out.samples.iter().filter(|s| s.is_action_valid).count();
        eprintln!("{name}: won {won}/{n}, samples {}, valid {valid}, gen {:.1}s tokens {} env {:.2}s total {:.1}s", out.samples.len(), out.generate_secs, out.generated_tokens, out.env_secs, t.elapsed().as_secs_f64());
        eprintln!(
            "sample turn: {:?}",
            out.episodes[0]
                .turns
                .first()
                .map(|t| (&t.response, &t.action, &t.observation))
        );
    }
    Ok(())
}
