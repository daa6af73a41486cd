//! WebShop presets: `webshop-tiny` (a generated catalogue on two CPU cores) and `webshop`
//! (the paper's run, spec §5.2). Both start from a household preset's settings.

use super::household::{alfworld, household_tiny, scale_to_short_run};
use crate::train::config::{EnvKind, EvalSplit, TinyTokenizer, TrainConfig, WebshopDemos};

/// WebShop on two CPU cores: the household-tiny learner settings on a generated catalogue of
/// 1000 products (≈ 5500 training goals), 15 steps per episode (spec §5.2), responses of up
/// to 64 tokens, a tiny word-level policy warm-started on the checking expert's winning
/// episodes (it opens results in order and buys the first product offering every goal option:
/// the oracle's asin clicks cannot be learnt from the page). 15 iterations, evaluation on
/// the first 128 `test` goals at T = 0.4 before RL and every 5 iterations (RESULTS.md,
/// "WebShop").
pub(super) fn webshop_tiny(c: &mut TrainConfig) {
    household_tiny(c);
    c.env.kind = EnvKind::Webshop;
    c.env.max_turns = 15;
    // 8 goals per iteration (household-tiny's 16 was measured on the household only, and a
    // WebShop iteration generates twice as long sequences).
    c.env.tasks_per_iter = 8;
    c.env.webshop.products = 1000;
    c.env.webshop.demonstrations = WebshopDemos::Checking;
    // WebShop actions must come back exactly (`search[…]`, `click[buy now]`).
    c.model.tokenizer = TinyTokenizer::Exact;
    c.model.max_position_embeddings = 8192;
    // The longest warm-start response (a search for a long instruction's key terms, the short
    // reason and the tags) is 53 tokens: 64 leaves room (tasks::webshop's test holds it).
    c.sampling.max_new_tokens = 64;
    c.rl.drbot.max_response_length = 64;
    // 200 goals' winning episodes (≈ 1230 steps of ≈ 1100 prompt tokens) × 6 epochs: 924 SFT
    // steps, about 28 minutes on two cores.
    c.sft.games = 200;
    c.sft.epochs = 6;
    c.run.iterations = 15;
    c.run.eval_every = 5;
    scale_to_short_run(c, 32);
    c.eval.episodes = 128;
    c.eval.splits = vec![EvalSplit::Test];
}

/// The paper's WebShop run (spec §5.2): 32 goals × 8, 15 steps, mini-batch 256, 350 steps,
/// Qwen2.5-1.5B-Instruct from an HF directory, 128 validation episodes every 5 steps.
pub(super) fn webshop(c: &mut TrainConfig) {
    alfworld(c);
    c.run.iterations = 350;
    c.env.household = TrainConfig::default().env.household;
    c.env.kind = EnvKind::Webshop;
    c.env.max_turns = 15;
    c.env.webshop.products = 1000;
    c.eval.splits = vec![EvalSplit::Test];
    c.rl.update.mini_batch_size = 256;
    c.rl.update.micro_batch_size = 4;
}
