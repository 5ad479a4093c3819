//! Small hand-written SVG charts: lines over a few categories, or one bar per design. A missing
//! value leaves a gap (line) or says `n/a` (bar).

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 8] = [
    "#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// One line of a line chart: a value per category, or none.
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// The vertical axis: linear from zero, or logarithmic over whole decades.
struct Scale {
    low: f64,
    high: f64,
    log: bool,
}

impl Scale {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Scale {
        let values: Vec<f64> = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        if values.is_empty() {
            return Scale {
                low: if log { 1.0 } else { 0.0 },
                high: 10.0,
                log,
            };
        }
        if log {
            let min = values.iter().copied().fold(f64::MAX, f64::min);
            let low = 10f64.powf(min.log10().floor());
            let high = 10f64.powf(max.log10().ceil()).max(low * 10.0);
            return Scale { low, high, log };
        }
        let step = nice_step(max / 5.0);
        Scale {
            low: 0.0,
            high: (max / step).ceil().max(1.0) * step,
            log,
        }
    }

    /// The y coordinate of `v`.
    fn y(&self, v: f64) -> f64 {
        let plot = HEIGHT - TOP - BOTTOM;
        let at = if self.log {
            (v.max(self.low).log10() - self.low.log10()) / (self.high.log10() - self.low.log10())
        } else {
            (v - self.low) / (self.high - self.low)
        };
        HEIGHT - BOTTOM - at * plot
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let decades = (self.high / self.low).log10().round() as i32;
            (0..=decades).map(|d| self.low * 10f64.powi(d)).collect()
        } else {
            let step = nice_step(self.high / 5.0);
            let n = (self.high / step).round() as usize;
            (0..=n).map(|i| i as f64 * step).collect()
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `rough`.
fn nice_step(rough: f64) -> f64 {
    if rough <= 0.0 || !rough.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power)
}

/// A number for an axis or a bar, to a tenth at most: 1234 → 1234, 25300 → 25.3k,
/// 2500000 → 2.5M.
fn short(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e4 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.1}");
    format!(
        "{}{suffix}",
        text.trim_end_matches('0').trim_end_matches('.')
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The frame: title, y axis with ticks and grid, y label.
fn frame(title: &str, y_label: &str, scale: &Scale) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
    for tick in scale.ticks() {
        let y = scale.y(tick);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short(tick)
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"black\"/>\
         <line x1=\"{LEFT}\" x2=\"{}\" y1=\"{0}\" y2=\"{0}\" stroke=\"black\"/>\
         <text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        (TOP + HEIGHT - BOTTOM) / 2.0,
        escape(y_label)
    );
    svg
}

/// The x position of category `i` of `n`, each in the middle of its slot.
fn slot_x(i: usize, n: usize) -> f64 {
    let width = (WIDTH - LEFT - RIGHT) / n as f64;
    LEFT + width * (i as f64 + 0.5)
}

fn x_label(svg: &mut String, x: f64, label: &str) {
    let _ = writeln!(
        svg,
        "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        HEIGHT - BOTTOM + 18.0,
        escape(label)
    );
}

/// Lines over `categories`, one per series, with a legend at the right.
pub fn line_chart(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[Series],
    log: bool,
) -> String {
    let all = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied());
    let scale = Scale::new(all, log);
    let mut svg = frame(title, y_label, &scale);
    for (i, c) in categories.iter().enumerate() {
        x_label(&mut svg, slot_x(i, categories.len()), c);
    }
    for (k, s) in series.iter().enumerate() {
        let points = s.values.iter().enumerate().map(|(i, v)| {
            let v = v.filter(|v| !log || *v > 0.0)?;
            Some((slot_x(i, categories.len()), scale.y(v)))
        });
        draw_series(&mut svg, k, &s.name, points);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Series `k`, called `name`: a dot at each point (in pixels), consecutive points joined by a
/// line that a `None` breaks, and its entry in the legend.
fn draw_series(
    svg: &mut String,
    k: usize,
    name: &str,
    points: impl Iterator<Item = Option<(f64, f64)>>,
) {
    let colour = COLOURS[k % COLOURS.len()];
    let mut path = String::new();
    let mut pen_down = false;
    for point in points {
        let Some((x, y)) = point else {
            pen_down = false;
            continue;
        };
        let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
        pen_down = true;
        let _ = writeln!(
            svg,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>"
        );
    }
    let _ = writeln!(
        svg,
        "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
        path.trim_end()
    );
    legend(svg, k, name, colour);
}

fn legend(svg: &mut String, k: usize, name: &str, colour: &str) {
    let y = TOP + 10.0 + 20.0 * k as f64;
    let x = WIDTH - RIGHT + 15.0;
    let _ = writeln!(
        svg,
        "<rect x=\"{x}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
         <text x=\"{}\" y=\"{y:.1}\">{}</text>",
        y - 10.0,
        x + 18.0,
        escape(name)
    );
}

/// One bar per name, its value printed above it.
pub fn bar_chart(title: &str, y_label: &str, bars: &[(String, Option<f64>)], log: bool) -> String {
    let scale = Scale::new(bars.iter().filter_map(|b| b.1), log);
    let mut svg = frame(title, y_label, &scale);
    let slot = (WIDTH - LEFT - RIGHT) / bars.len().max(1) as f64;
    for (i, (name, value)) in bars.iter().enumerate() {
        let x = slot_x(i, bars.len());
        x_label(&mut svg, x, name);
        let colour = COLOURS[i % COLOURS.len()];
        match value.filter(|v| !log || *v > 0.0) {
            Some(v) => {
                let (top, base) = (scale.y(v), HEIGHT - BOTTOM);
                let _ = writeln!(
                    svg,
                    "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                     fill=\"{colour}\"/><text x=\"{x:.1}\" y=\"{:.1}\" \
                     text-anchor=\"middle\">{}</text>",
                    x - slot * 0.35,
                    slot * 0.7,
                    base - top,
                    top - 5.0,
                    short(v)
                );
            }
            None => {
                let _ = writeln!(
                    svg,
                    "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">n/a</text>",
                    HEIGHT - BOTTOM - 8.0
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// One line of an x-y chart: its points, in the order they are joined.
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Lines through points on a numeric x axis and a logarithmic y axis, one per curve, with a
/// legend at the right. The x axis runs over `x_ticks` (position, label) when given, else from
/// zero to the largest x with round ticks.
pub fn xy_chart(
    title: &str,
    x_title: &str,
    y_label: &str,
    x_ticks: Option<&[(f64, String)]>,
    curves: &[Curve],
) -> String {
    let all = curves.iter().flat_map(|c| c.points.iter().map(|p| p.1));
    let scale = Scale::new(all, true);
    let mut svg = frame(title, y_label, &scale);
    let ticks: Vec<(f64, String)> = match x_ticks {
        Some(t) => t.to_vec(),
        None => {
            let max = curves
                .iter()
                .flat_map(|c| c.points.iter().map(|p| p.0))
                .fold(0.0, f64::max);
            let step = nice_step(max / 5.0);
            let n = (max / step).ceil().max(1.0) as usize;
            (0..=n)
                .map(|i| (i as f64 * step, short(i as f64 * step)))
                .collect()
        }
    };
    let (low, high) = match (ticks.first(), ticks.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (a.0, b.0),
        _ => (0.0, 1.0),
    };
    let x = |v: f64| LEFT + (v - low) / (high - low) * (WIDTH - LEFT - RIGHT);
    for (at, label) in &ticks {
        x_label(&mut svg, x(*at), label);
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 10.0,
        escape(x_title)
    );
    for (k, c) in curves.iter().enumerate() {
        let points = c.points.iter().filter(|p| p.1 > 0.0);
        let points = points.map(|&(px, py)| Some((x(px), scale.y(py))));
        draw_series(&mut svg, k, &c.name, points);
    }
    svg.push_str("</svg>\n");
    svg
}
