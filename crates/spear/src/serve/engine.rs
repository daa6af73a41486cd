//! The engine thread of `spear serve`: one [`DecodeBatch`] that requests join between decoding
//! steps, the pause state, and weight swaps.
//!
//! HTTP threads send [`Cmd`]s over a channel and wait on a reply channel; the engine drains the
//! channel before every step, so a request that arrives while a batch decodes is prefilled and
//! joins at the next step. Everything the read-only endpoints need is mirrored in [`Shared`].

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spear_model::{BatchRequest, DecodeBatch, Generation, Policy, SamplingParams};

use super::protocol::ApiError;

/// `/pause` modes (vLLM's `PauseMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseMode {
    /// In-flight requests end now with `finish_reason: "abort"`.
    Abort,
    /// The call returns once in-flight requests have finished; no new ones start.
    Wait,
    /// In-flight requests freeze and continue after `/resume`.
    Keep,
}

/// A generation job, already parsed and tokenized.
#[derive(Debug)]
pub struct Job {
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// The request's seed, if it gave one.
    pub seed: Option<u64>,
    /// Sampling parameters.
    pub params: SamplingParams,
    /// Where the result goes.
    pub reply: Sender<Result<Done, ApiError>>,
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Done {
    /// Tokens, log-probs, text and finish reason.
    pub generation: Generation,
    /// Ended by `/pause?mode=abort` (or a weight swap that changed the architecture).
    pub aborted: bool,
    /// The prompt as generated from.
    pub prompt_ids: Vec<u32>,
    /// `(weight version, first output token index)` spans: which policy produced which tokens.
    pub versions: Vec<(Option<u64>, usize)>,
}

/// A loaded policy to swap in.
#[derive(Debug)]
pub struct Loaded {
    /// The policy.
    pub policy: Policy,
    /// Its version.
    pub version: Option<u64>,
    /// Where it came from (for `/v1/models` and logs).
    pub source: String,
}

/// Messages to the engine thread.
#[derive(Debug)]
pub enum Cmd {
    /// Generate.
    Generate(Job),
    /// Pause; the reply comes when the mode's condition holds.
    Pause(PauseMode, Sender<()>),
    /// Resume.
    Resume(Sender<()>),
    /// Swap in new weights (loaded by the HTTP thread).
    Swap(Box<Loaded>, Sender<()>),
    /// Relabel the current weights (`/update_weight_version`).
    SetVersion(Option<u64>, Sender<()>),
}

/// State mirrored for the read-only endpoints and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// Whether a model is loaded.
    pub model_loaded: bool,
    /// Where the current weights came from.
    pub source: Option<String>,
    /// The current policy version.
    pub version: Option<u64>,
    /// `max_model_len` of the current model.
    pub max_model_len: usize,
    /// Vocabulary size of the current model (prompt ids are checked against it).
    pub vocab_size: usize,
    /// The pause mode, if paused.
    pub paused: Option<PauseMode>,
    /// Requests received.
    pub requests: u64,
    /// Requests answered with a generation.
    pub completed: u64,
    /// Requests ended by an abort.
    pub aborted: u64,
    /// Requests that joined a batch while it was decoding (continuous batching at work).
    pub joined_running_batch: u64,
    /// Decoding steps run.
    pub decode_steps: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Largest batch decoded in one step.
    pub max_batch_seen: usize,
    /// Sequences in the batch now.
    pub running: usize,
    /// Requests waiting for admission (paused, or the batch is full).
    pub waiting: usize,
    /// Weight swaps done.
    pub reloads: u64,
}

struct Active {
    reply: Sender<Result<Done, ApiError>>,
    prompt_ids: Vec<u32>,
    versions: Vec<(Option<u64>, usize)>,
}

/// The engine; run with [`Engine::run`] on its own thread.
pub struct Engine {
    policy: Option<Policy>,
    version: Option<u64>,
    max_model_len_cap: Option<usize>,
    max_batch: usize,
    batch: DecodeBatch,
    active: std::collections::HashMap<u64, Active>,
    queue: VecDeque<Job>,
    paused: Option<PauseMode>,
    wait_replies: Vec<Sender<()>>,
    next_id: u64,
    seeds: ChaCha8Rng,
    shared: Arc<Mutex<Shared>>,
    /// Whether the batch has decoded at least one step since it last was empty (a request
    /// added then "joins a running batch").
    running: bool,
}

impl Engine {
    /// An engine with an optional first policy.
    pub fn new(
        initial: Option<Loaded>,
        max_batch: usize,
        max_model_len_cap: Option<usize>,
        seed: u64,
        shared: Arc<Mutex<Shared>>,
    ) -> Self {
        let mut e = Engine {
            policy: None,
            version: None,
            max_model_len_cap,
            max_batch: max_batch.max(1),
            batch: DecodeBatch::new(),
            active: Default::default(),
            queue: VecDeque::new(),
            paused: None,
            wait_replies: vec![],
            next_id: 0,
            seeds: ChaCha8Rng::seed_from_u64(seed),
            shared,
            running: false,
        };
        if let Some(l) = initial {
            e.install(l);
        }
        e.publish();
        e
    }

    /// The `max_model_len` reported for `policy`.
    pub fn max_model_len(policy: &Policy, cap: Option<usize>) -> usize {
        let m = policy.model.config().max_position_embeddings;
        cap.map_or(m, |c| c.min(m))
    }

    fn install(&mut self, l: Loaded) {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        s.model_loaded = true;
        s.source = Some(l.source);
        s.version = l.version;
        s.max_model_len = Self::max_model_len(&l.policy, self.max_model_len_cap);
        s.vocab_size = l.policy.model.config().vocab_size;
        drop(s);
        self.version = l.version;
        self.policy = Some(l.policy);
    }

    fn publish(&self) {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        s.paused = self.paused;
        s.running = self.batch.len();
        s.waiting = self.queue.len();
    }

    fn stat(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut self.shared.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Serves commands until every sender is gone.
    pub fn run(mut self, rx: Receiver<Cmd>) {
        loop {
            let can_step = !self.batch.is_empty() && self.paused != Some(PauseMode::Keep);
            if !can_step && !self.admissible() {
                match rx.recv() {
                    Ok(c) => self.handle(c),
                    Err(_) => return,
                }
            }
            while let Ok(c) = rx.try_recv() {
                self.handle(c);
            }
            self.admit();
            if !self.batch.is_empty() && self.paused != Some(PauseMode::Keep) {
                self.step();
            }
            self.publish();
            if self.batch.is_empty() {
                self.running = false;
                for r in self.wait_replies.drain(..) {
                    let _ = r.send(());
                }
            }
        }
    }

    fn admissible(&self) -> bool {
        self.paused.is_none()
            && self.policy.is_some()
            && !self.queue.is_empty()
            && self.batch.len() < self.max_batch
    }

    fn handle(&mut self, c: Cmd) {
        match c {
            Cmd::Generate(job) => {
                self.stat(|s| s.requests += 1);
                self.queue.push_back(job);
                self.publish();
            }
            Cmd::Pause(mode, reply) => {
                self.paused = Some(mode);
                self.publish();
                match mode {
                    PauseMode::Abort => {
                        self.abort_all();
                        self.publish();
                        let _ = reply.send(());
                    }
                    PauseMode::Keep => {
                        let _ = reply.send(());
                    }
                    PauseMode::Wait => {
                        if self.batch.is_empty() {
                            let _ = reply.send(());
                        } else {
                            self.wait_replies.push(reply);
                        }
                    }
                }
            }
            Cmd::Resume(reply) => {
                self.paused = None;
                self.publish();
                // Nothing waits for a drain that will no longer be asked for.
                for r in self.wait_replies.drain(..) {
                    let _ = r.send(());
                }
                let _ = reply.send(());
            }
            Cmd::SetVersion(v, reply) => {
                self.version = v;
                self.stat(|s| s.version = v);
                for (id, n) in self.batch.progress() {
                    if let Some(a) = self.active.get_mut(&id) {
                        a.versions.push((v, n));
                    }
                }
                let _ = reply.send(());
            }
            Cmd::Swap(l, reply) => {
                let same_shape = self
                    .policy
                    .as_ref()
                    .is_some_and(|p| p.model.config() == l.policy.model.config());
                if !same_shape && !self.batch.is_empty() {
                    // The cached keys/values cannot continue under another architecture.
                    self.abort_all();
                }
                self.install(*l);
                self.stat(|s| s.reloads += 1);
                for (id, n) in self.batch.progress() {
                    if let Some(a) = self.active.get_mut(&id) {
                        a.versions.push((self.version, n));
                    }
                }
                let _ = reply.send(());
            }
        }
    }

    /// Ends every in-flight and queued request with `finish_reason: "abort"`.
    fn abort_all(&mut self) {
        let tok = self.policy.as_ref().map(|p| &p.tokenizer);
        let parts = self.batch.abort_all(tok);
        let n = parts.len() + self.queue.len();
        for (id, g) in parts {
            if let Some(a) = self.active.remove(&id) {
                let versions = fix_spans(a.versions, g.token_ids.len());
                let _ = a.reply.send(Ok(Done {
                    generation: g,
                    aborted: true,
                    prompt_ids: a.prompt_ids,
                    versions,
                }));
            }
        }
        for job in self.queue.drain(..) {
            let _ = job.reply.send(Ok(Done {
                generation: Generation {
                    token_ids: vec![],
                    text: String::new(),
                    logprobs: vec![],
                    entropies: None,
                    finish: spear_model::FinishReason::Length,
                    policy_version: None,
                },
                aborted: true,
                prompt_ids: job.prompt_ids,
                versions: vec![],
            }));
        }
        self.running = false;
        self.stat(|s| s.aborted += n as u64);
    }

    /// Moves queued requests into the batch (one prefill for the group).
    fn admit(&mut self) {
        if !self.admissible() {
            return;
        }
        let Some(policy) = self.policy.as_ref() else {
            return;
        };
        let room = self.max_batch - self.batch.len();
        let max_len = Self::max_model_len(policy, self.max_model_len_cap);
        let mut group = vec![];
        let mut replies = vec![];
        while group.len() < room {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            let seed = job.seed.unwrap_or_else(|| self.seeds.random());
            let req = BatchRequest {
                id: self.next_id,
                prompt_ids: job.prompt_ids,
                seed,
                params: job.params,
            };
            self.next_id += 1;
            let total = req.prompt_ids.len() + req.params.max_new_tokens;
            let check = if total > max_len {
                Err(ApiError::bad(
                    "max_tokens",
                    format!(
                        "This model's maximum context length is {max_len} tokens. However, you \
                         requested {total} tokens ({} in the prompt, {} for the completion). \
                         Please reduce the length of the prompt or max_tokens.",
                        req.prompt_ids.len(),
                        req.params.max_new_tokens
                    ),
                ))
            } else {
                DecodeBatch::check(&policy.model, Some(&policy.tokenizer), &req)
                    .map_err(|e| ApiError::bad_request(e.to_string()))
            };
            match check {
                Ok(()) => {
                    replies.push((req.id, job.reply, req.prompt_ids.clone()));
                    group.push(req);
                }
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        if group.is_empty() {
            return;
        }
        let joined = if self.running { group.len() } else { 0 };
        match self
            .batch
            .add(&policy.model, Some(&policy.tokenizer), group)
        {
            Ok(done_now) => {
                let version = self.version;
                for (id, reply, prompt_ids) in replies {
                    self.active.insert(
                        id,
                        Active {
                            reply,
                            prompt_ids,
                            versions: vec![(version, 0)],
                        },
                    );
                }
                self.stat(|s| s.joined_running_batch += joined as u64);
                self.deliver(done_now);
            }
            Err(e) => {
                let msg = format!("prefill failed: {e}");
                tracing::error!("{msg}");
                for (_, reply, _) in replies {
                    let _ = reply.send(Err(ApiError::status(500, msg.clone())));
                }
            }
        }
    }

    fn step(&mut self) {
        let Some(policy) = self.policy.as_ref() else {
            return;
        };
        let n = self.batch.len();
        match self.batch.step(&policy.model, Some(&policy.tokenizer)) {
            Ok(done) => {
                self.running = true;
                self.stat(|s| {
                    s.decode_steps += 1;
                    s.generated_tokens += n as u64;
                    s.max_batch_seen = s.max_batch_seen.max(n);
                });
                self.deliver(done);
            }
            Err(e) => {
                let msg = format!("decoding failed: {e}");
                tracing::error!("{msg}");
                let tok = Some(&policy.tokenizer);
                for (id, _) in self.batch.abort_all(tok) {
                    if let Some(a) = self.active.remove(&id) {
                        let _ = a.reply.send(Err(ApiError::status(500, msg.clone())));
                    }
                }
            }
        }
    }

    fn deliver(&mut self, done: Vec<(u64, Generation)>) {
        let mut n = 0;
        for (id, g) in done {
            if let Some(a) = self.active.remove(&id) {
                n += 1;
                let versions = fix_spans(a.versions, g.token_ids.len());
                let _ = a.reply.send(Ok(Done {
                    generation: g,
                    aborted: false,
                    prompt_ids: a.prompt_ids,
                    versions,
                }));
            }
        }
        self.stat(|s| s.completed += n);
    }
}

/// `(version, first token)` spans as recorded at each swap, clipped to the output length; a
/// span that no token came from is replaced by the next one.
fn fix_spans(v: Vec<(Option<u64>, usize)>, len: usize) -> Vec<(Option<u64>, usize)> {
    let mut out: Vec<(Option<u64>, usize)> = vec![];
    for (ver, start) in v {
        let start = start.min(len);
        if let Some(last) = out.last_mut() {
            if last.1 == start {
                *last = (ver, start);
                continue;
            }
        }
        out.push((ver, start));
    }
    out
}
