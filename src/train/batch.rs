//! Turning encoded examples into training tensors: packed (one row, no padding) where the
//! model's kernels keep sequences apart, padded otherwise.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};

use super::model::Model;
use super::ops::Seqs;
use super::optim::GradAccum;
use crate::data::tokenizer::Encoded;

/// A batch: inputs, next-token targets and per-target loss weights, all `[B, T]` when padded,
/// all `[1, N]` when packed (`seqs` then says where each example lies).
pub struct Batch {
    pub ids: Tensor,
    pub targets: Tensor,
    pub weights: Tensor,
    /// Real (non-pad) input tokens.
    pub tokens: u64,
    /// Sum of the loss weights (response tokens).
    pub weight_sum: f64,
    /// The examples' spans in a packed batch; `None` when padded.
    pub seqs: Option<Seqs>,
}

impl Batch {
    /// Positions computed (real tokens plus padding).
    pub fn positions(&self) -> usize {
        self.ids.elem_count()
    }
}

/// Right-pad the examples to the longest one (pads carry weight 0, so a causal mask suffices).
pub fn make_batch(encs: &[&Encoded], pad: u32, device: &Device) -> Result<Batch> {
    let t = encs.iter().map(|e| e.ids.len().saturating_sub(1)).max().unwrap_or(1).max(1);
    let b = encs.len();
    let mut ids = vec![pad; b * t];
    let mut targets = vec![pad; b * t];
    let mut weights = vec![0f32; b * t];
    let mut tokens = 0u64;
    let mut weight_sum = 0f64;
    for (row, e) in encs.iter().enumerate() {
        let n = e.ids.len().saturating_sub(1);
        tokens += n as u64;
        for i in 0..n {
            ids[row * t + i] = e.ids[i];
            targets[row * t + i] = e.ids[i + 1];
            weights[row * t + i] = e.weights[i];
            weight_sum += e.weights[i] as f64;
        }
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, t), device)?,
        targets: Tensor::from_vec(targets, (b, t), device)?,
        weights: Tensor::from_vec(weights, (b, t), device)?,
        tokens,
        weight_sum,
        seqs: None,
    })
}

/// Concatenate the examples into one row of N = Σ (len − 1) positions, no padding: each
/// example keeps its own positions (from 0) and attends only to itself, so the loss and
/// gradient are those of the padded batch (up to float rounding) at the cost of the real
/// tokens alone. Needs [`Model::can_pack`].
pub fn make_packed_batch(encs: &[&Encoded], device: &Device) -> Result<Batch> {
    let lens: Vec<usize> = encs.iter().map(|e| e.ids.len().saturating_sub(1)).collect();
    let n: usize = lens.iter().sum();
    let (mut ids, mut targets, mut weights) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for (e, &len) in encs.iter().zip(&lens).filter(|(_, &len)| len > 0) {
        ids.extend_from_slice(&e.ids[..len]);
        targets.extend_from_slice(&e.ids[1..=len]);
        weights.extend_from_slice(&e.weights[..len]);
    }
    let weight_sum = weights.iter().map(|&w| w as f64).sum();
    Ok(Batch {
        ids: Tensor::from_vec(ids, (1, n), device)?,
        targets: Tensor::from_vec(targets, (1, n), device)?,
        weights: Tensor::from_vec(weights, (1, n), device)?,
        tokens: n as u64,
        weight_sum,
        seqs: Some(Seqs::from_lens(&lens)),
    })
}

/// Splits one step's examples into micro-batches, grouped by length so that little compute is
/// spent on padding (every row of a batch is padded to the batch's longest example).
///
/// `lens[i]` is example i's input length; a micro-batch holds at most `max_rows` examples.
/// Returns the micro-batches as lists of indices into `lens`, longest examples first. The
/// split minimises the padded tokens computed plus `overhead` tokens' worth of fixed cost per
/// micro-batch (a forward and backward pass costs something however small it is): examples
/// are sorted by length and cut into contiguous groups by dynamic programming, which is optimal
/// for this cost. It depends on the lengths alone, so a resumed or forked run splits its steps
/// exactly as the original did.
///
/// The gradient is that of the whole batch either way: each micro-batch's loss is weighted by
/// its share of the step's response tokens.
pub fn plan_micro_batches(lens: &[usize], max_rows: usize, overhead: usize) -> Vec<Vec<usize>> {
    let n = lens.len();
    let max_rows = max_rows.max(1);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a]).then(a.cmp(&b)));
    // best[i]: the least cost of the first i examples (in `order`); cut[i]: where its last group starts
    let mut best = vec![u64::MAX; n + 1];
    let mut cut = vec![0usize; n + 1];
    best[0] = 0;
    for i in 1..=n {
        for j in i.saturating_sub(max_rows)..i {
            // the group order[j..i] is padded to its first (longest) example
            let cost = best[j] + ((i - j) * lens[order[j]].max(1) + overhead) as u64;
            if cost < best[i] {
                best[i] = cost;
                cut[i] = j;
            }
        }
    }
    let mut groups = Vec::new();
    let mut i = n;
    while i > 0 {
        groups.push(order[cut[i]..i].to_vec());
        i = cut[i];
    }
    groups.reverse();
    groups
}

/// A step's `n` examples in drawn order, cut into micro-batches of at most `max_rows`.
pub fn micro_batches_in_order(n: usize, max_rows: usize) -> Vec<Vec<usize>> {
    (0..n).collect::<Vec<_>>().chunks(max_rows.max(1)).map(<[usize]>::to_vec).collect()
}

/// The loss and gradient of one optimizer step.
pub struct StepGradients {
    /// Mean loss per response token over the whole step.
    pub loss: f64,
    /// `None` when the step has no response tokens.
    pub grads: Option<GradStore>,
    /// Real (non-pad) input tokens.
    pub tokens: u64,
}

/// Forward and backward over a step's examples, split into the micro-batches `groups` (indices
/// into `encs`), each packed when `pack` and the model can (else padded). Each micro-batch's
/// mean loss is weighted by its share of the step's response tokens, so the loss and gradient
/// are those of the whole batch however it is split.
pub fn step_gradients(
    model: &Model,
    encs: &[Encoded],
    groups: &[Vec<usize>],
    pad: u32,
    pack: bool,
) -> Result<StepGradients> {
    let pack = pack && model.can_pack();
    let total_w: f64 = encs.iter().map(|e| e.weights.iter().map(|&w| w as f64).sum::<f64>()).sum();
    let total_w = total_w.max(1.0);
    let mut grads = GradAccum::new();
    let mut loss = 0.0;
    let mut tokens = 0;
    for group in groups {
        let refs: Vec<&Encoded> = group.iter().map(|&i| &encs[i]).collect();
        let b = match pack {
            true => make_packed_batch(&refs, model.device())?,
            false => make_batch(&refs, pad, model.device())?,
        };
        tokens += b.tokens;
        if b.weight_sum == 0.0 {
            continue;
        }
        let share = b.weight_sum / total_w;
        let (l, g) = model.loss_and_grads(&b.ids, b.seqs.as_ref(), &b.targets, &b.weights, share)?;
        loss += l * share;
        grads.add(g)?;
    }
    Ok(StepGradients { loss, grads: grads.take(), tokens })
}

/// Input tokens computed for a set of micro-batches (rows times each one's longest).
pub fn padded_tokens(lens: &[usize], groups: &[Vec<usize>]) -> usize {
    groups.iter().map(|g| g.len() * g.iter().map(|&i| lens[i]).max().unwrap_or(0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batches_group_examples_of_like_length() {
        // four long examples and twelve short ones, as in a summarisation + arithmetic mix
        let lens = [120, 30, 28, 35, 118, 25, 30, 33, 125, 29, 31, 27, 110, 26, 32, 30];
        let groups = plan_micro_batches(&lens, 16, 64);
        let mut all: Vec<usize> = groups.concat();
        all.sort();
        assert_eq!(all, (0..16).collect::<Vec<_>>(), "every example exactly once");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0], vec![8, 0, 4, 12]);
        assert_eq!(padded_tokens(&lens, &groups), 4 * 125 + 12 * 35);
        assert!(padded_tokens(&lens, &groups) * 2 < padded_tokens(&lens, &[(0..16).collect()]));
        // a large fixed cost keeps the batch whole; the row limit is kept
        assert_eq!(plan_micro_batches(&lens, 16, 100_000).len(), 1);
        assert!(plan_micro_batches(&lens, 4, 0).iter().all(|g| g.len() <= 4));
        assert_eq!(plan_micro_batches(&[], 4, 0), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn equal_lengths_keep_sampling_order_within_a_group() {
        let groups = plan_micro_batches(&[7, 7, 7, 7], 2, 0);
        assert_eq!(groups, vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn pads_right_with_zero_weight() {
        let a = Encoded { ids: vec![1, 5, 6, 7], weights: vec![0.0, 1.0, 1.0], prompt_len: 2, truncated: false };
        let b = Encoded { ids: vec![1, 9], weights: vec![1.0], prompt_len: 1, truncated: false };
        let batch = make_batch(&[&a, &b], 0, &Device::Cpu).unwrap();
        assert_eq!(batch.ids.to_vec2::<u32>().unwrap(), vec![vec![1, 5, 6], vec![1, 0, 0]]);
        assert_eq!(batch.targets.to_vec2::<u32>().unwrap(), vec![vec![5, 6, 7], vec![9, 0, 0]]);
        assert_eq!(batch.weights.to_vec2::<f32>().unwrap(), vec![vec![0.0, 1.0, 1.0], vec![1.0, 0.0, 0.0]]);
        assert_eq!(batch.tokens, 4);
        assert_eq!(batch.weight_sum, 3.0);
    }

    #[test]
    fn packs_examples_end_to_end_without_padding() {
        let a = Encoded { ids: vec![1, 5, 6, 7], weights: vec![0.0, 1.0, 1.0], prompt_len: 2, truncated: false };
        let b = Encoded { ids: vec![1, 9], weights: vec![1.0], prompt_len: 1, truncated: false };
        let batch = make_packed_batch(&[&a, &b], &Device::Cpu).unwrap();
        assert_eq!(batch.ids.to_vec2::<u32>().unwrap(), vec![vec![1, 5, 6, 1]]);
        assert_eq!(batch.targets.to_vec2::<u32>().unwrap(), vec![vec![5, 6, 7, 9]]);
        assert_eq!(batch.weights.to_vec2::<f32>().unwrap(), vec![vec![0.0, 1.0, 1.0, 1.0]]);
        assert_eq!((batch.tokens, batch.weight_sum, batch.positions()), (4, 3.0, 4));
        let seqs = batch.seqs.unwrap();
        assert_eq!((seqs.rows(), seqs.max_len(), seqs.uniform_dims()), (4, 3, None));
    }
}
