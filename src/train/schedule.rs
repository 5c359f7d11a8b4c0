//! The learning-rate schedule: linear warmup, then constant or cosine decay.

use crate::config::{Schedule, TrainSection};

/// The learning rate for the update that produces step `step + 1` (steps count completed
/// updates). Warmup and decay are measured from `schedule_start` (a run started from another
/// run's model warms up again from there).
pub fn lr_at(t: &TrainSection, step: u64) -> f64 {
    let start = t.schedule_start;
    let s = step.saturating_sub(start) as f64;
    let warm = t.warmup_steps as f64;
    if warm > 0.0 && s < warm {
        return t.lr * (s + 1.0) / warm;
    }
    match t.schedule {
        Schedule::Cosine => {
            let total = (t.max_steps.saturating_sub(start) as f64 - warm).max(1.0);
            let p = ((s - warm) / total).clamp(0.0, 1.0);
            let min = t.lr * t.min_lr_ratio;
            min + (t.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        }
        Schedule::Constant => t.lr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let t = TrainSection {
            lr: 1.0,
            warmup_steps: 10,
            schedule: Schedule::Cosine,
            max_steps: 110,
            min_lr_ratio: 0.1,
            ..Default::default()
        };
        assert!((lr_at(&t, 0) - 0.1).abs() < 1e-12);
        assert!((lr_at(&t, 9) - 1.0).abs() < 1e-12);
        assert!((lr_at(&t, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(&t, 60) - 0.55).abs() < 1e-9);
        assert!((lr_at(&t, 110) - 0.1).abs() < 1e-12);
        let c = TrainSection { lr: 0.5, ..Default::default() };
        assert_eq!(lr_at(&c, 500), 0.5);
        let shifted =
            TrainSection { lr: 1.0, warmup_steps: 4, schedule_start: 100, max_steps: 200, ..Default::default() };
        assert!((lr_at(&shifted, 100) - 0.25).abs() < 1e-12);
    }
}
