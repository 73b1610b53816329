//! Fixed-bucket histograms that count at record time: two relaxed atomic adds per sample and
//! nothing buffered. The exporter's own histograms keep every sample in a lock-free list
//! until an upkeep drains it: megabytes of RSS at tens of thousands of requests a second, and
//! an upkeep that walks every histogram (55 ms for 10,000 upstreams) on a timer. Rendered in
//! the exporter's text layout, after its families, so /metrics reads the same.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{HistogramFn, Label};

/// One series: a count per bucket (not cumulative; rendering sums them) and the sum of the
/// recorded values in nanounits, so adding stays one integer `fetch_add`.
#[derive(Debug)]
pub(super) struct Buckets {
    bounds: &'static [f64],
    /// `counts[i]` counts values in `(bounds[i-1], bounds[i]]`; the last one those above all.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Buckets {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        // `le` is inclusive: the first bound not below the value (NaN and negatives land in
        // the first bucket, as no duration is either).
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int cast: a negative or NaN value adds 0.
        self.sum_nanos
            .fetch_add((value * 1e9).round() as u64, Ordering::Relaxed);
    }
}

/// Every series of one histogram name.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    /// Rendered label pairs (`upstream="x"`) and the series, in registration order.
    series: Vec<(String, Arc<Buckets>)>,
    index: HashMap<String, usize>,
}

/// The registry of these histograms, one per app like the exporter's.
#[derive(Debug, Default)]
pub(super) struct Histograms {
    families: Mutex<Vec<Family>>,
}

impl Histograms {
    /// The series of `name` with `labels`, created on first use; the same labels again (a
    /// reload, an upstream that comes back) return the same series, so counts continue.
    pub(super) fn register(
        &self,
        name: &'static str,
        help: &'static str,
        bounds: &'static [f64],
        labels: &[Label],
    ) -> Arc<Buckets> {
        let rendered = render_labels(labels);
        let mut families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let family = match families.iter().position(|f| f.name == name) {
            Some(i) => &mut families[i],
            None => {
                families.push(Family {
                    name,
                    help,
                    bounds,
                    series: Vec::new(),
                    index: HashMap::new(),
                });
                families.last_mut().expect("just pushed")
            }
        };
        if let Some(&i) = family.index.get(&rendered) {
            return family.series[i].1.clone();
        }
        let buckets = Arc::new(Buckets::new(family.bounds));
        family.index.insert(rendered.clone(), family.series.len());
        family.series.push((rendered, buckets.clone()));
        buckets
    }

    /// Appends every family in Prometheus text format 0.0.4, laid out as the exporter does
    /// (HELP, TYPE, samples, a blank line).
    pub(super) fn render_into(&self, out: &mut String) {
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        for family in families.iter().filter(|f| !f.series.is_empty()) {
            let name = family.name;
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (labels, buckets) in &family.series {
                let (sep, open, close) = if labels.is_empty() {
                    ("", "", "")
                } else {
                    (",", "{", "}")
                };
                let mut cumulative = 0u64;
                for (bound, count) in family.bounds.iter().zip(buckets.counts.iter()) {
                    cumulative += count.load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
                    );
                }
                if let Some(above) = buckets.counts.last() {
                    cumulative += above.load(Ordering::Relaxed);
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
                );
                let sum = buckets.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                let _ = writeln!(out, "{name}_sum{open}{labels}{close} {sum}");
                let _ = writeln!(out, "{name}_count{open}{labels}{close} {cumulative}");
            }
            out.push('\n');
        }
    }
}

/// `a="x",b="y"` with the text format's escapes.
fn render_labels(labels: &[Label]) -> String {
    let mut out = String::new();
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(label.key());
        out.push_str("=\"");
        for c in label.value().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.01, 1.0];

    fn render(h: &Histograms) -> String {
        let mut out = String::new();
        h.render_into(&mut out);
        out
    }

    #[test]
    fn bounds_are_inclusive_and_buckets_cumulative() {
        let h = Histograms::default();
        let s = h.register("t_seconds", "help", BOUNDS, &[Label::new("upstream", "a")]);
        for v in [0.0005, 0.001, 0.002, 0.5, 1.0, 7.0] {
            s.record(v);
        }
        let text = render(&h);
        let expected = "# HELP t_seconds help\n# TYPE t_seconds histogram\n\
            t_seconds_bucket{upstream=\"a\",le=\"0.001\"} 2\n\
            t_seconds_bucket{upstream=\"a\",le=\"0.01\"} 3\n\
            t_seconds_bucket{upstream=\"a\",le=\"1\"} 5\n\
            t_seconds_bucket{upstream=\"a\",le=\"+Inf\"} 6\n\
            t_seconds_sum{upstream=\"a\"} 8.5035\n\
            t_seconds_count{upstream=\"a\"} 6\n\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn registering_again_continues_the_same_series() {
        let h = Histograms::default();
        let labels = [Label::new("upstream", "a")];
        h.register("t_seconds", "help", BOUNDS, &labels).record(0.1);
        h.register("t_seconds", "help", BOUNDS, &labels).record(0.1);
        h.register("t_seconds", "help", BOUNDS, &[Label::new("upstream", "b")]);
        let text = render(&h);
        assert!(
            text.contains("t_seconds_count{upstream=\"a\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_count{upstream=\"b\"} 0\n"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 1, "{text}");
    }

    #[test]
    fn label_values_are_escaped_and_empty_families_omitted() {
        let h = Histograms::default();
        h.register(
            "t_seconds",
            "help",
            BOUNDS,
            &[Label::new("upstream", "a\"b\\c\nd")],
        );
        let text = render(&h);
        assert!(
            text.contains("{upstream=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 0"),
            "{text}"
        );
        assert_eq!(render(&Histograms::default()), "");
    }
}
