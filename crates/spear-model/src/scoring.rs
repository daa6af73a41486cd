//! Teacher-forced log-probs and entropies of response tokens, with gradient, micro-batched by a
//! token budget (verl's dynamic batch size).

use candle_core::Tensor;

use crate::decoder::{Decoder, ForwardInput, Mode};
use crate::error::{ModelError, Result};
use crate::logprob::token_logprobs_and_entropy;

/// One (prompt, response) pair to score.
#[derive(Debug, Clone, Copy)]
pub struct ScoreItem<'a> {
    /// Prompt token ids (non-empty).
    pub prompt: &'a [u32],
    /// Response token ids whose log-probs are wanted.
    pub response: &'a [u32],
}

/// Scores of a micro-batch, flattened over response tokens.
#[derive(Debug, Clone)]
pub struct Scored {
    /// `[N]` log-probs of every response token, item after item.
    pub logprobs: Tensor,
    /// `[N]` entropies of the distributions those tokens were drawn from (if asked for).
    pub entropy: Option<Tensor>,
    /// `(start, len)` of each item inside the flat tensors.
    pub spans: Vec<(usize, usize)>,
}

impl Scored {
    /// Log-probs of item `i` as a 1-D tensor.
    pub fn item_logprobs(&self, i: usize) -> Result<Tensor> {
        let (s, n) = self.spans[i];
        Ok(self.logprobs.narrow(0, s, n)?)
    }

    /// Pads to `[items, max_len]` (zeros) with a 0/1 mask of the same shape.
    pub fn padded(&self) -> Result<(Tensor, Tensor)> {
        let m = self.spans.iter().map(|s| s.1).max().unwrap_or(0);
        let dev = self.logprobs.device();
        let dt = self.logprobs.dtype();
        let mut rows = vec![];
        let mut mask = vec![];
        for &(s, n) in &self.spans {
            let r = self.logprobs.narrow(0, s, n)?;
            rows.push(if n < m {
                Tensor::cat(&[r, Tensor::zeros(m - n, dt, dev)?], 0)?
            } else {
                r
            });
            mask.extend((0..m).map(|j| if j < n { 1f32 } else { 0.0 }));
        }
        let mask = Tensor::from_vec(mask, (self.spans.len(), m), dev)?.to_dtype(dt)?;
        Ok((Tensor::stack(&rows, 0)?, mask))
    }
}

/// Scores `items` in one forward pass. `Mode::Train` keeps the graph for `backward`.
///
/// The logit of position `P + k - 1` predicts response token `k` (P = prompt length); only those
/// rows go through the LM head, so prompt positions cost no vocabulary projection. Log-probs and
/// entropies come from one fused op ([`token_logprobs_and_entropy`]): no `[rows, vocab]`
/// temporaries beyond the logits and their gradient.
pub fn score(
    model: &Decoder,
    items: &[ScoreItem<'_>],
    mode: Mode,
    with_entropy: bool,
) -> Result<Scored> {
    score_at_temperature(model, items, mode, with_entropy, 1.0)
}

/// [`score`] under the tempered distribution softmax(logits / `temperature`), as verl's actor
/// scores rollouts sampled at that temperature (`logits.div_(temperature)`).
pub fn score_at_temperature(
    model: &Decoder,
    items: &[ScoreItem<'_>],
    mode: Mode,
    with_entropy: bool,
    temperature: f64,
) -> Result<Scored> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(ModelError::arg(
            "temperature",
            format!("{temperature} is not a positive number"),
        ));
    }
    if items.is_empty() {
        return Err(ModelError::arg("items", "nothing to score"));
    }
    let seqs: Vec<Vec<u32>> = items
        .iter()
        .map(|it| {
            if it.prompt.is_empty() {
                return Err(ModelError::arg("prompt", "empty prompt"));
            }
            Ok([it.prompt, it.response].concat())
        })
        .collect::<Result<_>>()?;
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let input =
        ForwardInput::right_padded(model.config(), &refs, 0, model.dtype(), &model.device())?;
    let h = model.forward_hidden(&input, None, mode)?;
    let (b, t, hs) = h.dims3()?;
    let mut rows = vec![];
    let mut targets = vec![];
    let mut spans = vec![];
    for (i, it) in items.iter().enumerate() {
        spans.push((targets.len(), it.response.len()));
        for (k, &tok) in it.response.iter().enumerate() {
            rows.push((i * t + it.prompt.len() + k - 1) as u32);
            targets.push(tok);
        }
    }
    let dev = model.device();
    let n = rows.len();
    if n == 0 {
        let z = Tensor::zeros(0, model.dtype(), &dev)?;
        return Ok(Scored {
            logprobs: z.clone(),
            entropy: with_entropy.then_some(z),
            spans,
        });
    }
    let idx = Tensor::from_vec(rows, n, &dev)?;
    let hsel = h.reshape((b * t, hs))?.index_select(&idx, 0)?;
    let mut logits = model.logits(&hsel, mode)?;
    if temperature != 1.0 {
        logits = logits.affine(1.0 / temperature, 0.0)?;
    }
    let (logprobs, ent) = token_logprobs_and_entropy(&logits, &targets, with_entropy)?;
    Ok(Scored {
        logprobs,
        entropy: ent,
        spans,
    })
}

/// Packs items (by total length) into micro-batches whose padded size `rows x longest` stays
/// within `token_budget`, keeping input order; an item longer than the budget goes alone.
pub fn plan_micro_batches(lengths: &[usize], token_budget: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![];
    let mut cur: Vec<usize> = vec![];
    let mut longest = 0;
    for (i, &len) in lengths.iter().enumerate() {
        let l2 = longest.max(len);
        if !cur.is_empty() && (cur.len() + 1) * l2 > token_budget {
            out.push(std::mem::take(&mut cur));
            longest = 0;
        }
        longest = longest.max(len);
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batches_respect_budget() {
        // Budget 10: [3, 4] -> 2 x 4 = 8 fits; adding 5 -> 3 x 5 = 15 > 10, new batch;
        // [5, 2] -> 2 x 5 = 10 fits; 12 alone.
        assert_eq!(
            plan_micro_batches(&[3, 4, 5, 2, 12], 10),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        assert_eq!(plan_micro_batches(&[], 10), Vec::<Vec<usize>>::new());
    }
}
