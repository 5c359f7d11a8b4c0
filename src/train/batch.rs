//! Turning encoded examples into padded training tensors.

use anyhow::Result;
use candle_core::{Device, Tensor};

use crate::data::tokenizer::Encoded;

/// A padded batch: inputs, next-token targets and per-target loss weights, all `[B, T]`.
pub struct Batch {
    pub ids: Tensor,
    pub targets: Tensor,
    pub weights: Tensor,
    /// Real (non-pad) input tokens.
    pub tokens: u64,
    /// Sum of the loss weights (response tokens).
    pub weight_sum: f64,
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
