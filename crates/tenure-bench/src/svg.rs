//! Plots as plain SVG text: latency CDFs and scale curves. Hand-written (a few polylines, axes
//! and a legend) so the harness needs no plotting dependency.

use std::fmt::Write as _;

const W: f64 = 760.0;
const PLOT_H: f64 = 360.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const AXIS_GAP: f64 = 50.0;
const LEGEND_LINE: f64 = 18.0;

/// One curve of a plot.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend's text.
    pub name: String,
    /// Stroke colour.
    pub color: &'static str,
    /// Dashed stroke (a second series of the same implementation).
    pub dashed: bool,
    /// The points, in data coordinates.
    pub points: Vec<(f64, f64)>,
}

/// The colour of an implementation.
pub fn color(implementation: &str) -> &'static str {
    match implementation {
        "tenure" => "#1f77b4",
        "floor" => "#555555",
        "curator" => "#ff7f0e",
        "kazoo" => "#2ca02c",
        _ => "#9467bd",
    }
}

#[derive(Clone, Copy, Debug)]
struct Axis {
    min: f64,
    max: f64,
    log: bool,
    from: f64,
    to: f64,
}

impl Axis {
    fn new(min: f64, max: f64, log: bool, from: f64, to: f64) -> Self {
        let (mut min, mut max) = (min, max);
        if log {
            min = nice_log_floor(min.max(1e-9));
            max = nice_log_ceil(max.max(min * 2.0));
        } else {
            if (max - min).abs() < 1e-12 {
                max = min + 1.0;
            }
            let step = nice_step((max - min) / 5.0);
            min = (min / step).floor() * step;
            max = (max / step).ceil() * step;
        }
        Self {
            min,
            max,
            log,
            from,
            to,
        }
    }

    fn map(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.max(self.min).log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (v - self.min) / (self.max - self.min)
        };
        self.from + t.clamp(0.0, 1.0) * (self.to - self.from)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.min.log10().floor() as i32,
                self.max.log10().ceil() as i32,
            );
            let steps: &[f64] = if b - a <= 3 { &[1.0, 2.0, 5.0] } else { &[1.0] };
            let mut out = Vec::new();
            for k in a..=b {
                for m in steps {
                    let v = m * 10f64.powi(k);
                    if v >= self.min * 0.999 && v <= self.max * 1.001 {
                        out.push(v);
                    }
                }
            }
            out
        } else {
            let step = nice_step((self.max - self.min) / 5.0);
            let mut out = Vec::new();
            let mut v = self.min;
            while v <= self.max + step * 1e-6 {
                out.push(v);
                v += step;
            }
            out
        }
    }
}

/// The largest 1, 2 or 5 × 10^k at or below `v` (> 0).
fn nice_log_floor(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c <= v * 1.000_001)
        .unwrap_or(p)
}

/// The smallest 1, 2 or 5 × 10^k at or above `v` (> 0).
fn nice_log_ceil(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v * 0.999_999)
        .unwrap_or(10.0 * p)
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * p
}

/// A number for a tick label.
pub fn label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A line plot. Log axes drop points ≤ 0.
pub fn plot(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> String {
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .filter(move |(x, y)| (!log_x || *x > 0.0) && (!log_y || *y > 0.0))
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (1.0, 10.0, 0.0, 1.0);
    }
    let bottom = TOP + PLOT_H;
    let xa = Axis::new(x0, x1, log_x, LEFT, W - RIGHT);
    let ya = Axis::new(if log_y { y0 } else { y0.min(0.0) }, y1, log_y, bottom, TOP);
    let h = bottom + AXIS_GAP + LEGEND_LINE * series.len() as f64 + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    for t in xa.ticks() {
        let x = xa.map(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#e4e4e4"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            label(t)
        );
    }
    for t in ya.ticks() {
        let y = ya.map(t);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            label(t)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{PLOT_H}" fill="none" stroke="#333"/>"##,
        W - RIGHT - LEFT
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        bottom + 36.0,
        esc(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        (TOP + bottom) / 2.0,
        (TOP + bottom) / 2.0,
        esc(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        let mut d = String::new();
        for &(x, y) in &se.points {
            if !x.is_finite() || !y.is_finite() || (log_x && x <= 0.0) || (log_y && y <= 0.0) {
                continue;
            }
            let _ = write!(d, "{:.1},{:.1} ", xa.map(x), ya.map(y));
        }
        let dash = if se.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let marker = se.points.len() <= 12;
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            d.trim_end(),
            se.color
        );
        if marker {
            for &(x, y) in &se.points {
                if (log_x && x <= 0.0) || (log_y && y <= 0.0) || !x.is_finite() || !y.is_finite() {
                    continue;
                }
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                    xa.map(x),
                    ya.map(y),
                    se.color
                );
            }
        }
        let ly = bottom + AXIS_GAP + LEGEND_LINE * i as f64 + 4.0;
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 28.0,
            se.color,
            LEFT + 36.0,
            ly + 4.0,
            esc(&se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The empirical CDF of `samples` as points (a step curve).
pub fn cdf_points(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let mut out = Vec::with_capacity(sorted.len() * 2);
    for (i, v) in sorted.iter().enumerate() {
        out.push((*v, i as f64 / n));
        out.push((*v, (i + 1) as f64 / n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_cdf() {
        let s = Series {
            name: "tenure <x>".into(),
            color: color("tenure"),
            dashed: false,
            points: cdf_points(&[1.0, 2.0, 30.0]),
        };
        let svg = plot("t", "µs", "fraction", &[s], true, false);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("polyline"));
        assert!(svg.contains("tenure &lt;x&gt;"));
        assert_eq!(label(20_000.0), "20k");
        assert_eq!(label(0.25), "0.25");
    }
}
