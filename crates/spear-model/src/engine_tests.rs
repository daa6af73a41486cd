//! End-to-end tests of the engine on tiny models: sampling vs scoring log-probs, batch
//! independence, prefix reuse, stop strings, a training loop, checkpoints and HF export.

use candle_core::{DType, Device};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{export_hf, load_checkpoint, save_checkpoint};
use crate::config::Arch;
use crate::decoder::Mode;
use crate::optim::{AdamW, AdamWConfig, Grads};
use crate::policy::Policy;
use crate::sampling::{FinishReason, GenRequest, SamplingParams};
use crate::scoring::ScoreItem;
use crate::test_util::max_abs_diff;
use crate::{plan_micro_batches, ChatMessage};

const CORPUS: &[&str] = &[
    "you are in a kitchen . there is a fridge and a table .",
    "go to fridge . open fridge . take apple from fridge . <action> look </action>",
    "the apple is red . put apple on table . done",
];

fn policy(arch: Arch, seed: u64) -> Policy {
    Policy::from_scratch(arch, CORPUS, |c| c.max_position_embeddings = 256, seed).unwrap()
}

fn prompt(p: &Policy, text: &str) -> Vec<u32> {
    p.chat_prompt_ids(&[ChatMessage::user(text)], None).unwrap()
}

/// Two chat prompts (of different lengths) and one response, for scoring tests.
fn two_prompts_one_response(p: &Policy, second: &str) -> (Vec<Vec<u32>>, Vec<u32>) {
    let prompts = vec![prompt(p, "what is red ?"), prompt(p, second)];
    let resp = p.tokenizer.encode("take apple from fridge . done").unwrap();
    (prompts, resp)
}

fn items<'a>(prompts: &'a [Vec<u32>], resp: &'a [u32]) -> Vec<ScoreItem<'a>> {
    prompts
        .iter()
        .map(|x| ScoreItem {
            prompt: x,
            response: resp,
        })
        .collect()
}

#[test]
fn sampling_and_scoring_log_probs_agree() {
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3] {
        let mut p = policy(arch, 11);
        // Larger weights so distributions are far from uniform.
        let m = Policy::from_scratch(arch, CORPUS, |_| {}, 11).unwrap();
        p.model = crate::Decoder::random(
            m.model.config().clone(),
            5,
            0.3,
            DType::F32,
            &crate::test_util::test_device(),
        )
        .unwrap();
        let reqs: Vec<GenRequest> = ["go to fridge", "take apple from the fridge now please"]
            .iter()
            .enumerate()
            .map(|(i, t)| GenRequest {
                prompt_ids: prompt(&p, t),
                seed: i as u64,
            })
            .collect();
        // T = 1 and a tempered T = 0.6: the sampler reports log p_T, scoring recomputes it.
        for temperature in [1.0, 0.6] {
            let params = SamplingParams {
                max_new_tokens: 12,
                with_entropy: true,
                temperature,
                ..Default::default()
            };
            let gens = p.generate(&reqs, &params).unwrap();
            let items: Vec<ScoreItem> = reqs
                .iter()
                .zip(&gens)
                .map(|(r, g)| ScoreItem {
                    prompt: &r.prompt_ids,
                    response: &g.token_ids,
                })
                .collect();
            let s = p
                .score_at_temperature(&items, Mode::Train, true, temperature)
                .unwrap();
            for (i, g) in gens.iter().enumerate() {
                let lp: Vec<f32> = s.item_logprobs(i).unwrap().to_vec1().unwrap();
                let (st, n) = s.spans[i];
                let ent: Vec<f32> = s
                    .entropy
                    .as_ref()
                    .unwrap()
                    .narrow(0, st, n)
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                assert_eq!(lp.len(), g.token_ids.len());
                for k in 0..lp.len() {
                    assert!(
                        (lp[k] - g.logprobs[k]).abs() < 1e-4,
                        "{arch:?} seq {i} tok {k}: {} vs {}",
                        lp[k],
                        g.logprobs[k]
                    );
                    let ge = g.entropies.as_ref().unwrap()[k];
                    assert!(
                        (ent[k] - ge).abs() < 1e-4,
                        "{arch:?} entropy {} vs {ge}",
                        ent[k]
                    );
                }
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_batch_composition_and_prefix_reuse_is_exact() {
    let p = policy(Arch::Qwen2, 3);
    let a = GenRequest {
        prompt_ids: prompt(&p, "open fridge"),
        seed: 42,
    };
    let b = GenRequest {
        prompt_ids: prompt(&p, "the apple is red . put apple on table"),
        seed: 7,
    };
    let params = SamplingParams {
        max_new_tokens: 10,
        temperature: 1.0,
        ..Default::default()
    };
    let alone = p.generate(std::slice::from_ref(&a), &params).unwrap();
    let mixed = p
        .generate(&[b.clone(), a.clone(), b.clone()], &params)
        .unwrap();
    assert_eq!(alone[0].token_ids, mixed[1].token_ids);
    for (x, y) in alone[0].logprobs.iter().zip(&mixed[1].logprobs) {
        assert!((x - y).abs() < 1e-4);
    }
    // Rows 0 and 2 share prompt and seed: prefilled once, identical outputs.
    assert_eq!(mixed[0], mixed[2]);
    // A GRPO group: same prompt, different seeds -> shared prefill, different samples.
    let group: Vec<GenRequest> = (0..6)
        .map(|s| GenRequest {
            prompt_ids: a.prompt_ids.clone(),
            seed: s,
        })
        .collect();
    let g = p.generate(&group, &params).unwrap();
    let solo = p.generate(&group[3..4], &params).unwrap();
    assert_eq!(g[3].token_ids, solo[0].token_ids);
    assert!(
        g.iter().any(|x| x.token_ids != g[0].token_ids),
        "seeds should differ"
    );
}

#[test]
fn stop_strings_stop_tokens_and_length() {
    let p = policy(Arch::Llama, 5);
    let tok = &p.tokenizer;
    let a_id = tok.token_id("<").unwrap_or(1);
    let _ = a_id;
    let req = GenRequest {
        prompt_ids: prompt(&p, "look"),
        seed: 1,
    };
    // Greedy with max 5 tokens ends by length unless a stop token comes first.
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 5,
        ..Default::default()
    };
    let g = &p.generate(std::slice::from_ref(&req), &params).unwrap()[0];
    match &g.finish {
        FinishReason::Length => assert_eq!(g.token_ids.len(), 5),
        FinishReason::StopToken(t) => assert_eq!(g.token_ids.last(), Some(t)),
        other => panic!("unexpected {other:?}"),
    }
    // Make the first greedy word a stop string: the run ends after that one token.
    let first = tok.decode(&g.token_ids[..1], true).unwrap();
    if !first.trim().is_empty() && !matches!(g.finish, FinishReason::StopToken(_)) {
        let params = SamplingParams {
            temperature: 0.0,
            max_new_tokens: 5,
            stop_strings: vec![first.trim().to_string()],
            ..Default::default()
        };
        let h = &p.generate(std::slice::from_ref(&req), &params).unwrap()[0];
        assert_eq!(h.token_ids.len(), 1);
        assert_eq!(h.finish, FinishReason::StopString(first.trim().to_string()));
        assert!(h.text.ends_with(first.trim()));
    }
    // An explicit stop token id equal to the greedy token stops at once.
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 5,
        stop_token_ids: vec![g.token_ids[0]],
        ..Default::default()
    };
    let h = &p.generate(std::slice::from_ref(&req), &params).unwrap()[0];
    assert_eq!(h.token_ids.len(), 1);
    assert_eq!(h.finish, FinishReason::StopToken(g.token_ids[0]));
}

/// Trains the tiny policy to answer "apple" with micro-batches + accumulation + AdamW.
#[test]
fn training_loop_raises_log_prob_of_target_response() {
    let p = policy(Arch::Qwen3, 9);
    let pr = prompt(&p, "what is red ?");
    let resp = p.tokenizer.encode("apple<|im_end|>").unwrap();
    let prompts = [pr.clone(), prompt(&p, "what is on the table ?"), pr.clone()];
    let items: Vec<ScoreItem> = prompts
        .iter()
        .map(|x| ScoreItem {
            prompt: x,
            response: &resp,
        })
        .collect();
    let lens: Vec<usize> = prompts.iter().map(|x| x.len() + resp.len()).collect();
    // Budget fits two rows -> two micro-batches, gradients accumulated.
    let plan = plan_micro_batches(&lens, 2 * lens.iter().max().unwrap());
    assert_eq!(plan.len(), 2);
    let mean_lp = |p: &Policy| -> f32 {
        let s = p.score(&items, Mode::Infer, false).unwrap();
        s.logprobs.mean_all().unwrap().to_scalar().unwrap()
    };
    let before = mean_lp(&p);
    let mut opt = AdamW::new(AdamWConfig::default());
    for _ in 0..15 {
        let mut grads = Grads::new();
        let total: usize = items.iter().map(|i| i.response.len()).sum();
        for mb in &plan {
            let sub: Vec<ScoreItem> = mb.iter().map(|&i| items[i]).collect();
            let s = p.score(&sub, Mode::Train, false).unwrap();
            // Token-mean NLL over the whole batch: each micro-batch contributes sum / total.
            let loss = (s.logprobs.sum_all().unwrap().neg().unwrap() / total as f64).unwrap();
            grads
                .accumulate(&loss.backward().unwrap(), p.model.params())
                .unwrap();
        }
        assert_eq!(grads.len(), p.model.params().len());
        grads.clip_global_norm(1.0).unwrap();
        opt.step(p.model.params(), &grads, 1e-2).unwrap();
    }
    let after = mean_lp(&p);
    assert!(after > before + 1.0, "log-prob {before} -> {after}");
}

#[test]
fn checkpoint_round_trip_restores_weights_optimizer_and_rng() {
    let p = policy(Arch::Qwen2, 2);
    let pr = prompt(&p, "open fridge");
    let items = [ScoreItem {
        prompt: &pr,
        response: &pr[1..4],
    }];
    let mut opt = AdamW::new(AdamWConfig::default());
    let mut g = Grads::new();
    let s = p.score(&items, Mode::Train, false).unwrap();
    g.accumulate(
        &s.logprobs.sum_all().unwrap().backward().unwrap(),
        p.model.params(),
    )
    .unwrap();
    opt.step(p.model.params(), &g, 1e-3).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let _: u64 = rand::Rng::random(&mut rng);
    let dir = std::env::temp_dir().join(format!("spear-ckpt-{}", std::process::id()));
    let path = dir.join("step1.safetensors");
    save_checkpoint(&path, &p.model, Some(&opt), &[("trainer", &rng)]).unwrap();
    let q = policy(Arch::Qwen2, 77);
    let extras = load_checkpoint(&path, &q.model, AdamWConfig::default()).unwrap();
    for ((na, va), (nb, vb)) in p.model.params().iter().zip(q.model.params().iter()) {
        assert_eq!(na, nb);
        let d = crate::test_util::max_abs_diff(va.as_tensor(), vb.as_tensor());
        assert_eq!(d, 0.0, "{na}");
    }
    let o = extras.optimizer.unwrap();
    assert_eq!(o.step, 1);
    assert_eq!(o.state, opt.state);
    let (name, mut r2) = extras.rngs.into_iter().next().unwrap();
    assert_eq!(name, "trainer");
    assert_eq!(
        rand::Rng::random::<u64>(&mut r2),
        rand::Rng::random::<u64>(&mut rng)
    );
    // No temp files left behind.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    // A truncated file is a typed error naming the path.
    std::fs::write(&path, b"garbage").unwrap();
    let e = load_checkpoint(&path, &q.model, AdamWConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("step1.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hf_export_reloads_to_the_same_policy() {
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3] {
        let p = policy(arch, 4);
        let dir =
            std::env::temp_dir().join(format!("spear-export-{}-{arch:?}", std::process::id()));
        export_hf(&dir, &p.model, Some(&p.tokenizer)).unwrap();
        let q = Policy::load(dir.to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(q.model.config().arch, arch);
        let pr = prompt(&p, "take apple");
        assert_eq!(prompt(&q, "take apple"), pr);
        let items = [ScoreItem {
            prompt: &pr[..3],
            response: &pr[3..],
        }];
        let a = p.score(&items, Mode::Infer, false).unwrap().logprobs;
        let b = q.score(&items, Mode::Infer, false).unwrap().logprobs;
        let d = crate::test_util::max_abs_diff(&a, &b);
        assert_eq!(d, 0.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// An untied export (what the vLLM weight sync writes) of a tied model: `lm_head.weight` is
/// its own tensor equal to the embedding, the config says untied, and it reloads to the same
/// log-probs.
#[test]
fn untied_hf_export_reloads_to_the_same_policy() {
    let p = policy(Arch::Qwen2, 4);
    assert!(p.model.config().tie_word_embeddings);
    let dir = std::env::temp_dir().join(format!("spear-export-untied-{}", std::process::id()));
    crate::checkpoint::export_hf_with(&dir, &p.model, Some(&p.tokenizer), true).unwrap();
    let st = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let d = crate::test_util::max_abs_diff(&st["lm_head.weight"], &st["model.embed_tokens.weight"]);
    assert_eq!(d, 0.0);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["tie_word_embeddings"], false);
    let q = Policy::load(dir.to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    assert!(!q.model.config().tie_word_embeddings);
    let pr = prompt(&p, "take apple");
    let items = [ScoreItem {
        prompt: &pr[..3],
        response: &pr[3..],
    }];
    let a = p.score(&items, Mode::Infer, false).unwrap().logprobs;
    let b = q.score(&items, Mode::Infer, false).unwrap().logprobs;
    assert!(crate::test_util::max_abs_diff(&a, &b) < 1e-6);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_model_specs_and_files_are_typed_errors() {
    let e = Policy::load("/nonexistent/model", DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/model"), "{e}");
    // a missing file is "not found", whatever its extension
    for missing in [
        "/nonexistent/x.gguf",
        "x-does-not-exist.gguf",
        "/nonexistent/dir/",
    ] {
        let e = Policy::load(missing, DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found") && e.contains(missing), "{e}");
    }
    let dir = std::env::temp_dir().join(format!("spear-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{\"model_type\": \"llama\"").unwrap();
    let e = Policy::load(dir.to_str().unwrap(), DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.json"), "{e}");
    let p = policy(Arch::Llama, 1);
    export_hf(&dir, &p.model, Some(&p.tokenizer)).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"xx").unwrap();
    let e = Policy::load(dir.to_str().unwrap(), DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    let gg = dir.join("x.gguf");
    std::fs::write(&gg, b"not gguf").unwrap();
    let e = Policy::load(gg.to_str().unwrap(), DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.gguf"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Logits of tiny Llama / Qwen2 / Qwen3 models match PyTorch + transformers
/// (fixtures written by `scripts/model/make_reference.py`).
#[test]
fn logits_match_transformers_reference() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in ["tiny-llama", "tiny-qwen2", "tiny-qwen3"] {
        let dir = root.join(name);
        let text = std::fs::read_to_string(dir.join("expected_logits.json")).unwrap_or_else(|e| {
            panic!("fixture {name} missing ({e}); run scripts/model/make_reference.py")
        });
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ids: Vec<Vec<u32>> = serde_json::from_value(v["input_ids"].clone()).unwrap();
        let want: Vec<Vec<Vec<f32>>> = serde_json::from_value(v["logits"].clone()).unwrap();
        let (model, _) =
            crate::load::hf::load_hf_dir(&dir, DType::F32, &crate::test_util::test_device())
                .unwrap();
        let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let inp = crate::ForwardInput::right_padded(
            model.config(),
            &refs,
            0,
            DType::F32,
            &crate::test_util::test_device(),
        )
        .unwrap();
        for mode in [Mode::Train, Mode::Infer] {
            let got: Vec<Vec<Vec<f32>>> =
                model.forward_logits(&inp, mode).unwrap().to_vec3().unwrap();
            let mut worst = 0f32;
            for (a, b) in got
                .iter()
                .flatten()
                .flatten()
                .zip(want.iter().flatten().flatten())
            {
                worst = worst.max((a - b).abs());
            }
            assert!(worst < 1e-4, "{name} {mode:?}: max |diff| {worst}");
        }
    }
}

/// The preallocated KV cache: growing past its capacity and cloning (a GRPO group forks rows)
/// give the same hidden states as one full forward pass.
#[test]
fn kv_cache_growth_and_clones_match_full_forward() {
    use crate::decoder::{ForwardInput, KvCache};
    let p = policy(Arch::Qwen2, 4);
    let (m, cfg) = (&p.model, p.model.config());
    let ids = prompt(&p, "open fridge . take apple from fridge");
    let n = ids.len();
    assert!(n > 8, "prompt of {n} tokens");
    let dev = crate::test_util::test_device();
    let full = ForwardInput::right_padded(cfg, &[&ids], 0, DType::F32, &dev).unwrap();
    let want = m.forward_hidden(&full, None, Mode::Infer).unwrap();
    let step = |cache: &mut KvCache, j: usize, tok: u32| {
        let input = ForwardInput::new(
            cfg,
            &[vec![tok]],
            &[vec![j as u32]],
            &[vec![true; j + 1]],
            DType::F32,
            &dev,
        )
        .unwrap();
        m.forward_hidden(&input, Some(cache), Mode::Infer).unwrap()
    };
    // Capacity 1: the 3-token prefill and later steps reallocate the buffers several times.
    let mut cache = KvCache::with_capacity(cfg.num_layers, 1);
    let pre = ForwardInput::new(
        cfg,
        &[ids[..3].to_vec()],
        &[vec![0, 1, 2]],
        &[vec![true; 3]],
        DType::F32,
        &dev,
    )
    .unwrap();
    let h = m
        .forward_hidden(&pre, Some(&mut cache), Mode::Infer)
        .unwrap();
    assert!(max_abs_diff(&h, &want.narrow(1, 0, 3).unwrap()) < 1e-4);
    for (j, &tok) in ids.iter().enumerate().skip(3) {
        if j == 6 {
            // A clone advanced with another token must not disturb the original.
            let mut fork = cache.clone();
            let _ = step(&mut fork, j, ids[0]);
            assert_eq!(fork.len(), j + 1);
        }
        let h = step(&mut cache, j, tok);
        let d = max_abs_diff(&h, &want.narrow(1, j, 1).unwrap());
        assert!(d < 1e-4, "position {j}: {d}");
        assert_eq!(cache.len(), j + 1);
    }
}

/// A stop string made of several tokens ends generation at the token completing it, with the
/// same tokens and text as decoding the whole response after every token (the old behaviour).
#[test]
fn multi_token_stop_string_matches_full_decoding() {
    let p = policy(Arch::Llama, 8);
    let tok = &p.tokenizer;
    let req = GenRequest {
        prompt_ids: prompt(&p, "go to fridge"),
        seed: 3,
    };
    let free = SamplingParams {
        max_new_tokens: 12,
        ignore_eos: true,
        ..Default::default()
    };
    let g = &p.generate(std::slice::from_ref(&req), &free).unwrap()[0];
    assert_eq!(g.token_ids.len(), 12);
    // The text of two consecutive word tokens (a string spanning a token boundary).
    let stop = (1..11)
        .map(|i| tok.decode(&g.token_ids[i..i + 2], true).unwrap())
        .find(|s| s.trim().contains(' '))
        .expect("two consecutive word tokens in the sample");
    // Reference: first prefix whose full decode contains the stop.
    let (k, text) = (1..=12)
        .find_map(|k| {
            let t = tok.decode(&g.token_ids[..k], true).unwrap();
            t.find(&stop).map(|i| (k, t[..i + stop.len()].to_string()))
        })
        .unwrap();
    let params = SamplingParams {
        stop_strings: vec!["never appears".into(), stop.clone()],
        ..free
    };
    let h = &p.generate(std::slice::from_ref(&req), &params).unwrap()[0];
    assert_eq!(h.token_ids, g.token_ids[..k]);
    assert_eq!(h.text, text);
    assert_eq!(h.finish, FinishReason::StopString(stop));
}

/// `model.dtype = "bf16"` (issue 16): on the same weights, bf16 products with f32 sums move the
/// log-probs of the tiny policy by at most 2e-2 nats (max over tokens; measured about 1e-3, see
/// the printed figures), but they do move them (the bf16 path ran); training and inference agree.
#[test]
fn bf16_log_probs_stay_close_to_f32() {
    let mut p = policy(Arch::Qwen2, 5);
    let (prompts, resp) = two_prompts_one_response(&p, "go to fridge . open fridge .");
    let items = items(&prompts, &resp);
    let f32_lp = p.score(&items, Mode::Infer, true).unwrap();
    p.model.compute_dtype = crate::ComputeDtype::Bf16;
    let bf_lp = p.score(&items, Mode::Infer, true).unwrap();
    let bf_train = p.score(&items, Mode::Train, true).unwrap();
    let d = max_abs_diff(&f32_lp.logprobs, &bf_lp.logprobs);
    let de = max_abs_diff(
        f32_lp.entropy.as_ref().unwrap(),
        bf_lp.entropy.as_ref().unwrap(),
    );
    eprintln!(
        "bf16 vs f32 (path {}): max |Δ log-prob| {d:.2e}, max |Δ entropy| {de:.2e}",
        crate::Bf16Path::detect().name()
    );
    assert!(
        d > 0.0,
        "bf16 gave bit-identical log-probs: the bf16 path did not run"
    );
    assert!(d < 2e-2, "max |Δ log-prob| {d}");
    assert!(de < 2e-2, "max |Δ entropy| {de}");
    let dt = max_abs_diff(&bf_lp.logprobs, &bf_train.logprobs);
    assert!(dt < 1e-4, "bf16 train vs infer: {dt}");
}

/// The training loop above in bf16 and f32 from the same start: both raise the target's
/// log-prob by more than 1 nat and end within 0.5 nat of each other.
#[test]
fn bf16_training_follows_f32() {
    let run = |dtype: crate::ComputeDtype| -> (f32, f32) {
        let mut p = policy(Arch::Qwen3, 9);
        p.model.compute_dtype = dtype;
        let pr = prompt(&p, "what is red ?");
        let resp = p.tokenizer.encode("apple<|im_end|>").unwrap();
        let items = [ScoreItem {
            prompt: &pr,
            response: &resp,
        }];
        let mean_lp = |p: &Policy| -> f32 {
            let s = p.score(&items, Mode::Infer, false).unwrap();
            s.logprobs.mean_all().unwrap().to_scalar().unwrap()
        };
        let before = mean_lp(&p);
        let mut opt = AdamW::new(AdamWConfig::default());
        for _ in 0..15 {
            let s = p.score(&items, Mode::Train, false).unwrap();
            let loss = s.logprobs.mean_all().unwrap().neg().unwrap();
            let mut grads = Grads::new();
            grads
                .accumulate(&loss.backward().unwrap(), p.model.params())
                .unwrap();
            assert_eq!(grads.len(), p.model.params().len());
            grads.clip_global_norm(1.0).unwrap();
            opt.step(p.model.params(), &grads, 1e-2).unwrap();
        }
        (before, mean_lp(&p))
    };
    let (b32, a32) = run(crate::ComputeDtype::F32);
    let (b16, a16) = run(crate::ComputeDtype::Bf16);
    eprintln!("mean log-prob f32 {b32} -> {a32}, bf16 {b16} -> {a16}");
    assert!(
        a32 > b32 + 1.0 && a16 > b16 + 1.0,
        "f32 {b32}->{a32}, bf16 {b16}->{a16}"
    );
    assert!((a32 - a16).abs() < 0.5, "f32 {a32} vs bf16 {a16}");
}

/// `model.activation_checkpointing` (issue 15): the same loss to the bit and the same gradients
/// (up to summation order) as the plain graph, for every parameter of Llama, Qwen2 (q/k/v bias)
/// and Qwen3 (q/k norm), and for LoRA adapters over frozen embeddings (whose first block input
/// records no graph). The blocks' weight gradients must come through the pending store: the
/// `GradStore` of the checkpointed backward has none of them.
#[test]
fn activation_checkpointing_gives_the_plain_gradients() {
    let grads_of = |p: &mut Policy, checkpoint: bool| -> (f32, Grads) {
        p.model.activation_checkpointing = checkpoint;
        let (prompts, resp) =
            two_prompts_one_response(p, "go to fridge . open fridge . take apple");
        let s = p.score(&items(&prompts, &resp), Mode::Train, true).unwrap();
        let ent = s.entropy.as_ref().unwrap().mean_all().unwrap();
        let loss = (s.logprobs.mean_all().unwrap().neg().unwrap() + (ent * 0.1).unwrap()).unwrap();
        let store = loss.backward().unwrap();
        let block_w = p
            .model
            .params()
            .trainable()
            .find(|(n, _)| n.starts_with("model.layers.0."))
            .map(|(_, v)| v.as_tensor().clone())
            .unwrap();
        assert_eq!(
            store.get(&block_w).is_some(),
            !checkpoint,
            "a block weight's gradient in candle's store (checkpointing {checkpoint})"
        );
        let mut g = Grads::new();
        g.accumulate(&store, p.model.params()).unwrap();
        assert!(p.model.params().take_pending_grads().is_empty());
        (loss.to_scalar::<f32>().unwrap(), g)
    };
    let compare = |p: &mut Policy, what: &str| {
        let (l0, g0) = grads_of(p, false);
        let (l1, g1) = grads_of(p, true);
        assert_eq!(l0, l1, "{what}: loss");
        assert_eq!(g0.len(), p.model.params().trainable().count(), "{what}");
        assert_eq!(g0.len(), g1.len(), "{what}: tensors with a gradient");
        let mut worst = 0f32;
        for (name, a) in g0.iter() {
            let b = g1
                .get(name)
                .unwrap_or_else(|| panic!("{what}: no gradient of {name}"));
            let d = crate::test_util::max_rel_diff(b, a);
            worst = worst.max(d);
            assert!(d < 1e-4, "{what}: {name}: relative difference {d:e}");
        }
        eprintln!("{what}: worst relative gradient difference {worst:.1e}");
    };
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3] {
        let mut p = policy(arch, 21);
        compare(&mut p, &format!("{arch:?}"));
    }
    let mut p = policy(Arch::Qwen2, 22);
    let n = crate::lora::add_lora(
        &mut p.model,
        &crate::lora::LoraConfig {
            rank: 4,
            alpha: 8.0,
            target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
            seed: 3,
        },
    )
    .unwrap();
    assert!(n > 0);
    // PEFT's B = 0 gives A no gradient; move B off zero so both adapters' gradients count.
    for (name, v) in p.model.params().trainable() {
        if name.contains("lora_B") {
            v.set(&(v.as_tensor().ones_like().unwrap() * 0.05).unwrap())
                .unwrap();
        }
    }
    compare(&mut p, "LoRA over frozen embeddings");
}
