//! The Prometheus text exposition format, version 0.0.4: metric families
//! written as text, nothing else.
//!
//! The rules (prometheus.io, "Exposition formats", text format 0.0.4): UTF-8
//! lines ending in `\n`, the last one too; per family one `# HELP name text`
//! line (`\` and line feed escaped as `\\` and `\n`) and one `# TYPE name
//! kind` line before its samples, all samples of a family together; a sample
//! is `name{label="value",...} value`, label values with `\`, `"` and line
//! feed escaped; a histogram is its cumulative `_bucket` samples (one per
//! upper bound `le`, the last `le="+Inf"`), then `_sum` and `_count`.
//!
//! What it does not do: collect or hold any value (`runtime::metrics`).

use std::fmt::Write as _;

/// `Content-Type` of a scrape's answer.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a family is (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample's value: integers as they are, floats in Go's shortest form
/// (the `+Inf` and `NaN` spellings the format names).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value {
    Int(i64),
    Float(f64),
}

/// The text of a scrape, written family by family.
#[derive(Default)]
pub(crate) struct Exposition {
    text: String,
}

impl Exposition {
    pub(crate) fn new() -> Exposition {
        Exposition::default()
    }

    /// Start a family: its `# HELP` and `# TYPE` lines.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
    }

    /// One sample of the family just started (`name` may carry a suffix
    /// such as `_total` or `_bucket`).
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(label);
                self.text.push_str("=\"");
                escape_label_value(&mut self.text, v);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        write_value(&mut self.text, value);
        self.text.push('\n');
    }

    /// The samples of one histogram series: `counts[i]` observations fell
    /// at or below `bounds[i]` and above the bound before it; the last count,
    /// one more than the bounds, those above every bound. Written cumulative,
    /// with `_sum` and `_count`.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        debug_assert_eq!(counts.len(), bounds.len() + 1);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        let mut le = String::new();
        for (i, count) in counts.iter().enumerate() {
            cumulative += count;
            le.clear();
            match bounds.get(i) {
                Some(bound) => write_value(&mut le, Value::Float(*bound)),
                None => le.push_str("+Inf"),
            }
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, Value::Int(saturating(cumulative)));
        }
        self.sample(&format!("{name}_sum"), labels, Value::Float(sum));
        self.sample(
            &format!("{name}_count"),
            labels,
            Value::Int(saturating(cumulative)),
        );
    }

    pub(crate) fn into_text(self) -> String {
        self.text
    }
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, value: Value) {
    match value {
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f == f64::INFINITY => out.push_str("+Inf"),
        Value::Float(f) if f == f64::NEG_INFINITY => out.push_str("-Inf"),
        // Rust's shortest round-trip form: `0.005`, `10`, `1e-7`.
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples() {
        let mut e = Exposition::new();
        e.family("x_requests", Kind::Counter, "Requests\\answered\nso far.");
        e.sample(
            "x_requests_total",
            &[("status", "200"), ("path", "a\"b\\c\nd")],
            Value::Int(3),
        );
        e.family("x_open", Kind::Gauge, "Open.");
        e.sample("x_open", &[], Value::Float(1.5));
        assert_eq!(
            e.into_text(),
            "# HELP x_requests Requests\\\\answered\\nso far.\n\
             # TYPE x_requests counter\n\
             x_requests_total{status=\"200\",path=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP x_open Open.\n\
             # TYPE x_open gauge\n\
             x_open 1.5\n"
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let mut e = Exposition::new();
        e.family("x_seconds", Kind::Histogram, "Time.");
        e.histogram("x_seconds", &[("p", "h")], &[0.005, 1.0], &[2, 0, 1], 1.25);
        assert_eq!(
            e.into_text(),
            "# HELP x_seconds Time.\n\
             # TYPE x_seconds histogram\n\
             x_seconds_bucket{p=\"h\",le=\"0.005\"} 2\n\
             x_seconds_bucket{p=\"h\",le=\"1\"} 2\n\
             x_seconds_bucket{p=\"h\",le=\"+Inf\"} 3\n\
             x_seconds_sum{p=\"h\"} 1.25\n\
             x_seconds_count{p=\"h\"} 3\n"
        );
    }

    #[test]
    fn special_floats() {
        let mut out = String::new();
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-7, 10.0] {
            write_value(&mut out, Value::Float(f));
            out.push(' ');
        }
        assert_eq!(out, "NaN +Inf -Inf 0.0000001 10 ");
    }
}
