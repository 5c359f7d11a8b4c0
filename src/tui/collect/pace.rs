//! When a change on disk is read and drawn: at once after a quiet spell, and within a burst
//! of appends at most every [`DATA_FRAME`].

use std::time::{Duration, Instant};

/// The shortest time between two frames drawn for new data (not for keys): a burst of
/// appends (many runs writing at once, or a trainer's eval lines) costs two frames, not one
/// per line.
pub const DATA_FRAME: Duration = Duration::from_millis(50);

/// When a change on disk is read and drawn: at once when no data frame was drawn within
/// [`DATA_FRAME`], else when that time is up (changes meanwhile are read together).
#[derive(Debug, Default, Clone, Copy)]
pub struct DataPacer {
    last: Option<Instant>,
}

impl DataPacer {
    /// When to read and draw a change noticed at `now`.
    pub fn due(&self, now: Instant) -> Instant {
        match self.last {
            Some(t) if now < t + DATA_FRAME => t + DATA_FRAME,
            _ => now,
        }
    }

    /// A frame with new data was drawn at `at`.
    pub fn drawn(&mut self, at: Instant) {
        self.last = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// New data is drawn at once after a quiet spell; within a burst, when the data frame's
    /// interval is up; and at once again after one.
    #[test]
    fn data_frames_are_paced_within_a_burst_only() {
        let t0 = Instant::now();
        let mut p = DataPacer::default();
        assert_eq!(p.due(t0), t0, "the first change: at once");
        p.drawn(t0);
        let ms = |n| Duration::from_millis(n);
        assert_eq!(p.due(t0 + ms(1)), t0 + DATA_FRAME, "a burst waits for the interval");
        assert_eq!(p.due(t0 + DATA_FRAME - ms(1)), t0 + DATA_FRAME);
        assert_eq!(p.due(t0 + DATA_FRAME), t0 + DATA_FRAME);
        let later = t0 + DATA_FRAME + ms(200);
        assert_eq!(p.due(later), later, "after a quiet spell: at once");
    }
}
