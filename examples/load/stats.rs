//! Latency histograms (µs) and the report lines.

use std::time::Duration;

use hdrhistogram::Histogram;

#[derive(Clone)]
pub struct Step {
    pub name: String,
    pub hist: Histogram<u64>,
    pub errors: u64,
}

impl Step {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            errors: 0,
        }
    }

    pub fn record(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 120_000_000);
        self.hist.record(us).expect("in range");
    }

    pub fn merge(&mut self, other: &Step) {
        self.hist.add(&other.hist).expect("same bounds");
        self.errors += other.errors;
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }
}

pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

pub fn header() {
    println!(
        "  {:<34} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "step", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
}

pub fn line(step: &Step, elapsed: Duration) {
    let h = &step.hist;
    println!(
        "  {:<34} {:>9} {:>10.0} {:>9} {:>9} {:>9} {:>7}",
        step.name,
        h.len(),
        h.len() as f64 / elapsed.as_secs_f64(),
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        step.errors
    );
}
