//! Latency curves: the open-loop rates offered to a design as fractions of its capacity, and
//! the "nines" axis of a percentile chart.

/// The percentiles of the percentile chart, with the metric that holds each.
pub const PERCENTILES: [(f64, &str); 5] = [
    (50.0, "p50_us"),
    (90.0, "p90_us"),
    (99.0, "p99_us"),
    (99.9, "p999_us"),
    (99.99, "p9999_us"),
];

/// The lowest and highest rate `oneloop load --rate` takes, per second.
const LOAD_RATES: (f64, f64) = (0.001, 1_000_000.0);

/// The rates to offer a design that completed `capacity` requests a second closed-loop: each
/// fraction of it, to two significant digits (so a table's rates read plainly), within what
/// the load generator takes. None when the capacity is unknown or zero.
pub fn ladder(capacity: f64, fractions: &[f64]) -> Option<Vec<f64>> {
    if !(capacity.is_finite() && capacity > 0.0) {
        return None;
    }
    let rates = fractions
        .iter()
        .map(|f| two_digits(capacity * f).clamp(LOAD_RATES.0, LOAD_RATES.1))
        .collect();
    Some(rates)
}

fn two_digits(v: f64) -> f64 {
    if v <= 0.0 {
        return v;
    }
    let unit = 10f64.powi(v.log10().floor() as i32 - 1);
    (v / unit).round() * unit
}

/// Where percentile `p` (in %) sits on a nines axis: 50 → 0.3, 90 → 1, 99 → 2, 99.9 → 3.
pub fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).log10()
}

/// The label of a ladder step: `50% cap` for half the capacity.
pub fn label(fraction: f64) -> String {
    format!("{}% cap", (fraction * 100.0).round())
}
