//! Summaries of latency samples: median, p99, max (nearest-rank percentiles).

use serde::{Deserialize, Serialize};

/// The summary of one set of samples, in the samples' unit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// The smallest sample.
    pub min: f64,
    /// The median (nearest rank).
    pub median: f64,
    /// The 99th percentile (nearest rank; the maximum for fewer than 100 samples).
    pub p99: f64,
    /// The largest sample.
    pub max: f64,
    /// The arithmetic mean.
    pub mean: f64,
}

/// The `p`-th percentile (0 < p ≤ 100) of ascending `sorted`, by nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarizes `samples`; `None` when there are none.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Summary {
        n: sorted.len(),
        min: sorted[0],
        median: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        max: sorted[sorted.len() - 1],
        mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        let sum = summarize(&s).expect("samples");
        assert_eq!(sum.median, 50.0);
        assert_eq!(sum.p99, 99.0);
        assert_eq!(sum.max, 100.0);
        assert_eq!(summarize(&[3.0]).expect("one").p99, 3.0);
        assert!(summarize(&[]).is_none());
    }
}
