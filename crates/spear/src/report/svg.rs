//! Line charts as inline SVG: linear scales, "nice" axis ticks and paths, generated here so the
//! report needs no plotting library and no network.
//!
//! Coordinates are SVG user units in a fixed `viewBox` ([`Frame`]); CSS scales the chart to
//! its column. The hover tooltip (in the page's script) maps the mouse back to data
//! coordinates with the same frame, read from the chart's JSON ([`Chart::hover_json`]).

use std::fmt::Write;

use super::html::escape_html;

/// Distinct series colours (Tableau 10), indexed by run.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The colour of run `i`.
pub fn run_colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The chart's size and the margins around its plot area, in SVG units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Total width.
    pub width: f64,
    /// Total height.
    pub height: f64,
    /// Space left of the plot (y tick labels).
    pub left: f64,
    /// Space right of the plot.
    pub right: f64,
    /// Space above the plot.
    pub top: f64,
    /// Space below the plot (x tick labels and axis label).
    pub bottom: f64,
}

impl Default for Frame {
    fn default() -> Self {
        Self {
            width: 480.0,
            height: 240.0,
            left: 56.0,
            right: 16.0,
            top: 12.0,
            bottom: 32.0,
        }
    }
}

impl Frame {
    /// Left and right x of the plot area.
    pub fn x_range(&self) -> (f64, f64) {
        (self.left, self.width - self.right)
    }
    /// Bottom and top y of the plot area (SVG y grows downwards, so bottom > top).
    pub fn y_range(&self) -> (f64, f64) {
        (self.height - self.bottom, self.top)
    }
}

/// A linear map from the data interval `domain` onto the pixel interval `range`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearScale {
    /// Data interval (lo, hi), lo < hi.
    pub domain: (f64, f64),
    /// Pixel interval the domain maps onto (may be reversed).
    pub range: (f64, f64),
}

impl LinearScale {
    /// The pixel coordinate of data value `v`.
    pub fn map(&self, v: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        r0 + (v - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// A "nice" tick step (1, 2 or 5 × 10^k) giving about `target` intervals over `span`.
pub fn nice_step(span: f64, target: f64) -> f64 {
    if span.is_nan() || span <= 0.0 || span.is_infinite() {
        return 1.0;
    }
    let rough = span / target;
    let magnitude = 10f64.powf(rough.log10().floor());
    let residual = rough / magnitude;
    // tolerance: 0.2 / 0.1 may land a hair above 2
    let m = if residual <= 1.0 + 1e-9 {
        1.0
    } else if residual <= 2.0 + 1e-9 {
        2.0
    } else if residual <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    m * magnitude
}

/// The multiples of `step` inside `[lo, hi]` (with a little tolerance for rounding).
pub fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let eps = step * 1e-9;
    let first = (lo / step - 1e-9).ceil();
    let mut out = Vec::new();
    let mut i = 0.0;
    loop {
        let v = (first + i) * step;
        if v > hi + eps || out.len() > 100 {
            break;
        }
        // -0.0 prints as "-0"
        out.push(if v.abs() < eps { 0.0 } else { v });
        i += 1.0;
    }
    out
}

/// A tick label for `v` on an axis with tick spacing `step` whose largest tick magnitude is
/// `max_abs`: one format per axis, as many decimals as the step needs, or scientific notation
/// when the axis's magnitudes are very large or very small.
pub fn fmt_tick(v: f64, step: f64, max_abs: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    if !(1e-3..1e6).contains(&max_abs) {
        return format!("{v:.1e}");
    }
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// A value for a tooltip: integers as integers, others with 4 significant digits.
pub fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        return format!("{}", v as i64);
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - a.log10().floor() as i64).clamp(0, 7) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One point of a series; `band` is an interval around `y` (e.g. a 95 % Wilson interval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// x (iteration).
    pub x: f64,
    /// y (metric value).
    pub y: f64,
    /// Optional (low, high) around y.
    pub band: Option<(f64, f64)>,
}

/// One run's line in a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Index of the run (picks the colour and the legend entry).
    pub run: usize,
    /// The run's name (for the SVG `<title>` fallback tooltip).
    pub name: String,
    /// Points sorted by x.
    pub points: Vec<Point>,
}

/// How the y axis is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum YAxis {
    /// Fit the data, rounded out to nice ticks.
    Auto,
    /// At least this interval (widened if the data leaves it), e.g. (0, 1) for rates.
    AtLeast(f64, f64),
}

/// A line chart: runs overlaid, x = iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Index of the chart in the page (its hover data is `charts[id]`).
    pub id: usize,
    /// Accessible label (the metric key).
    pub label: String,
    /// The y axis rule.
    pub y_axis: YAxis,
    /// One series per run that has this metric.
    pub series: Vec<Series>,
    /// Frame.
    pub frame: Frame,
}

/// Series with more points than this are thinned (min/max per bucket) before drawing.
pub const MAX_POINTS: usize = 1200;
/// Series with at most this many points get a marker (with a `<title>`) per point.
pub const MAX_MARKERS: usize = 40;

/// Thins `points` to about `max` by keeping, per bucket of consecutive points, the lowest and
/// the highest (in x order), so spikes survive; the first and last points are always kept.
pub fn decimate(points: &[Point], max: usize) -> Vec<Point> {
    if points.len() <= max || max < 4 {
        return points.to_vec();
    }
    let buckets = max / 2;
    let size = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(max + 2);
    for chunk in points.chunks(size) {
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in chunk.iter().enumerate() {
            if p.y < chunk[lo].y {
                lo = i;
            }
            if p.y > chunk[hi].y {
                hi = i;
            }
        }
        let (a, b) = (lo.min(hi), lo.max(hi));
        out.push(chunk[a]);
        if b != a {
            out.push(chunk[b]);
        }
    }
    if out.first() != points.first() {
        out.insert(0, points[0]);
    }
    if out.last() != points.last() {
        out.push(points[points.len() - 1]);
    }
    out
}

/// The scales and ticks of a chart, computed from its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Axes {
    /// x scale (domain = the data's x extent exactly).
    pub x: LinearScale,
    /// y scale (domain rounded out to ticks).
    pub y: LinearScale,
    /// x tick values.
    pub x_ticks: Vec<f64>,
    /// x tick step.
    pub x_step: f64,
    /// y tick values.
    pub y_ticks: Vec<f64>,
    /// y tick step.
    pub y_step: f64,
}

/// Scales for `series` in `frame`: x spans exactly the data's iterations (so iteration 5 of
/// 1..9 sits mid-plot), y spans the data (bands included) rounded out to nice ticks.
pub fn axes(series: &[Series], y_axis: YAxis, frame: &Frame) -> Axes {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in pts {
        x0 = x0.min(p.x);
        x1 = x1.max(p.x);
        let (lo, hi) = p.band.unwrap_or((p.y, p.y));
        y0 = y0.min(p.y.min(lo));
        y1 = y1.max(p.y.max(hi));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x0 == x1 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    if let YAxis::AtLeast(lo, hi) = y_axis {
        y0 = y0.min(lo);
        y1 = y1.max(hi);
    }
    if y0 == y1 {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let y_step = nice_step(y1 - y0, 5.0);
    let (y0, y1) = (
        // the tolerance keeps 1.0 / 0.2 = 5.000…01 from adding an empty tick interval
        (y0 / y_step + 1e-6).floor() * y_step,
        (y1 / y_step - 1e-6).ceil() * y_step,
    );
    let integral_x = series
        .iter()
        .flat_map(|s| &s.points)
        .all(|p| p.x.fract() == 0.0);
    let mut x_step = nice_step(x1 - x0, 6.0);
    if integral_x {
        x_step = x_step.max(1.0);
    }
    Axes {
        x: LinearScale {
            domain: (x0, x1),
            range: frame.x_range(),
        },
        y: LinearScale {
            domain: (y0, y1),
            range: frame.y_range(),
        },
        x_ticks: ticks(x0, x1, x_step),
        x_step,
        y_ticks: ticks(y0, y1, y_step),
        y_step,
    }
}

/// Largest magnitude a chart places: beyond it (and for NaN/±inf) a point is left out, so
/// every coordinate written into the SVG is finite (the span of two such values still fits
/// an f64).
pub const MAX_PLOTTABLE: f64 = 1e300;

/// `p` if it can be drawn (band ends that cannot be drawn are dropped with the band).
pub fn plottable(p: Point) -> Option<Point> {
    let ok = |v: f64| v.is_finite() && v.abs() <= MAX_PLOTTABLE;
    if !ok(p.x) || !ok(p.y) {
        return None;
    }
    Some(Point {
        band: p.band.filter(|(l, h)| ok(*l) && ok(*h)),
        ..p
    })
}

/// The SVG path `d` of a polyline through `points`.
pub fn line_path(points: &[(f64, f64)]) -> String {
    let mut d = String::with_capacity(points.len() * 14);
    for (i, (x, y)) in points.iter().enumerate() {
        let _ = write!(d, "{}{x:.1},{y:.1}", if i == 0 { 'M' } else { 'L' });
    }
    d
}

impl Chart {
    /// The series as drawn: points that cannot be placed on a chart (NaN, ±inf, or beyond
    /// ±[`MAX_PLOTTABLE`]) left out (a gap), bands clamped, thinned to [`MAX_POINTS`].
    fn drawn(&self) -> Vec<Series> {
        self.series
            .iter()
            .map(|s| {
                let ok: Vec<Point> = s.points.iter().filter_map(|p| plottable(*p)).collect();
                Series {
                    points: decimate(&ok, MAX_POINTS),
                    ..s.clone()
                }
            })
            .collect()
    }

    /// The chart as an `<svg>` element.
    pub fn to_svg(&self) -> String {
        let f = &self.frame;
        let series = self.drawn();
        let a = axes(&series, self.y_axis, f);
        let (px0, px1) = f.x_range();
        let (py0, py1) = f.y_range();
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart" data-chart="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">"#,
            self.id,
            f.width,
            f.height,
            escape_html(&self.label)
        );
        let _ = write!(
            s,
            r#"<rect class="plot" x="{px0}" y="{py1}" width="{}" height="{}"/>"#,
            px1 - px0,
            py0 - py1
        );
        let max_abs = |ts: &[f64]| ts.iter().fold(0f64, |m, t| m.max(t.abs()));
        let (x_max_abs, y_max_abs) = (max_abs(&a.x_ticks), max_abs(&a.y_ticks));
        for t in &a.y_ticks {
            let y = a.y.map(*t);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{px0}" x2="{px1}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                px0 - 6.0,
                y + 3.5,
                fmt_tick(*t, a.y_step, y_max_abs)
            );
        }
        for t in &a.x_ticks {
            let x = a.x.map(*t);
            let _ = write!(
                s,
                r#"<line class="xtick" x1="{x:.1}" x2="{x:.1}" y1="{py0}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                py0 + 4.0,
                py0 + 15.0,
                fmt_tick(*t, a.x_step, x_max_abs)
            );
        }
        let _ = write!(
            s,
            r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">iteration</text>"#,
            (px0 + px1) / 2.0,
            f.height - 4.0
        );
        for (si, ser) in series.iter().enumerate() {
            let colour = run_colour(ser.run);
            let banded: Vec<&Point> = ser.points.iter().filter(|p| p.band.is_some()).collect();
            if banded.len() > 1 {
                let mut poly: Vec<(f64, f64)> = banded
                    .iter()
                    .map(|p| (a.x.map(p.x), a.y.map(p.band.unwrap().1)))
                    .collect();
                poly.extend(
                    banded
                        .iter()
                        .rev()
                        .map(|p| (a.x.map(p.x), a.y.map(p.band.unwrap().0))),
                );
                let _ = write!(
                    s,
                    r#"<path class="band" d="{}Z" fill="{colour}"/>"#,
                    line_path(&poly)
                );
            }
            for p in &banded {
                let (lo, hi) = p.band.unwrap();
                let x = a.x.map(p.x);
                let _ = write!(
                    s,
                    r#"<line class="errbar" x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}"/>"#,
                    a.y.map(lo),
                    a.y.map(hi)
                );
            }
            let xy: Vec<(f64, f64)> = ser
                .points
                .iter()
                .map(|p| (a.x.map(p.x), a.y.map(p.y)))
                .collect();
            if xy.len() > 1 {
                let _ = write!(
                    s,
                    r#"<path class="line" data-s="{si}" d="{}" stroke="{colour}"><title>{}</title></path>"#,
                    line_path(&xy),
                    escape_html(&ser.name)
                );
            }
            if ser.points.len() <= MAX_MARKERS {
                for (p, (x, y)) in ser.points.iter().zip(&xy) {
                    let band = p
                        .band
                        .map(|(lo, hi)| format!(" [{} – {}]", fmt_value(lo), fmt_value(hi)))
                        .unwrap_or_default();
                    let _ = write!(
                        s,
                        r#"<circle class="dot" cx="{x:.1}" cy="{y:.1}" r="2.2" fill="{colour}"><title>{} · iteration {}: {}{band}</title></circle>"#,
                        escape_html(&ser.name),
                        fmt_value(p.x),
                        fmt_value(p.y)
                    );
                }
            }
        }
        let _ = write!(
            s,
            r#"<line class="hover" x1="0" x2="0" y1="{py1}" y2="{py0}" visibility="hidden"/></svg>"#
        );
        s
    }

    /// The data the page's script needs for hovering and smoothing: the x and y mappings and
    /// every series' points (`{"x": [d0, d1], "px": [r0, r1], "y": [..], "py": [..],
    /// "s": [{"r": run, "p": [[x, y], …], "b": [[lo, hi], …]}]}`; series in drawing order,
    /// the `data-s` of their path).
    pub fn hover_json(&self) -> serde_json::Value {
        let series = self.drawn();
        let a = axes(&series, self.y_axis, &self.frame);
        let s: Vec<serde_json::Value> = series
            .iter()
            .map(|ser| {
                let p: Vec<[f64; 2]> = ser.points.iter().map(|p| [p.x, p.y]).collect();
                let mut o = serde_json::json!({"r": ser.run, "p": p});
                if ser.points.iter().any(|p| p.band.is_some()) {
                    let b: Vec<Option<[f64; 2]>> = ser
                        .points
                        .iter()
                        .map(|p| p.band.map(|(l, h)| [l, h]))
                        .collect();
                    o["b"] = serde_json::json!(b);
                }
                o
            })
            .collect();
        serde_json::json!({
            "x": [a.x.domain.0, a.x.domain.1],
            "px": [a.x.range.0, a.x.range.1],
            "y": [a.y.domain.0, a.y.domain.1],
            "py": [a.y.range.0, a.y.range.1],
            "s": s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f64, y: f64) -> Point {
        Point { x, y, band: None }
    }

    fn series(points: Vec<Point>) -> Vec<Series> {
        vec![Series {
            run: 0,
            name: "a".into(),
            points,
        }]
    }

    #[test]
    fn iteration_five_of_one_to_nine_is_mid_plot() {
        // default frame: plot x from 56 to 480 − 16 = 464; middle = (56 + 464)/2 = 260.
        // x = 5 in [1, 9]: 56 + (5 − 1)/(9 − 1)·408 = 56 + 204 = 260.
        let f = Frame::default();
        let pts: Vec<Point> = (1..=9).map(|i| pt(i as f64, 0.1 * i as f64)).collect();
        let a = axes(&series(pts), YAxis::AtLeast(0.0, 1.0), &f);
        assert_eq!(a.x.domain, (1.0, 9.0));
        assert!((a.x.map(5.0) - 260.0).abs() < 1e-9);
        assert!((a.x.map(1.0) - 56.0).abs() < 1e-9);
        assert!((a.x.map(9.0) - 464.0).abs() < 1e-9);
        // y: plot from 240 − 32 = 208 (value 0) up to 12 (value 1); 0.25 →
        // 208 − 0.25·196 = 159.
        assert_eq!(a.y.domain, (0.0, 1.0));
        assert!((a.y.map(0.25) - 159.0).abs() < 1e-9);
        assert!((a.y.map(1.0) - 12.0).abs() < 1e-9);
        // span 8 / 6 targets = 1.33 → step 2; ticks 2, 4, 6, 8 (1 and 9 are not multiples)
        assert_eq!(a.x_ticks, [2.0, 4.0, 6.0, 8.0]);
        // y span 1 / 5 = 0.2 → step 0.2: 0, 0.2, …, 1
        assert_eq!(a.y_ticks.len(), 6);
        assert!((a.y_step - 0.2).abs() < 1e-12);
    }

    #[test]
    fn auto_axis_rounds_out_to_nice_ticks() {
        // data 3.2 … 17.9: span 14.7 / 5 = 2.94 → step 5; domain [0, 20].
        let a = axes(
            &series(vec![pt(1.0, 3.2), pt(2.0, 17.9)]),
            YAxis::Auto,
            &Frame::default(),
        );
        assert_eq!(a.y_step, 5.0);
        assert_eq!(a.y.domain, (0.0, 20.0));
        assert_eq!(a.y_ticks, [0.0, 5.0, 10.0, 15.0, 20.0]);
        // bands widen the domain: 0.5 with band [−0.2, 0.9] over span 1.1 → step 0.5 (1.1/5 =
        // 0.22 → 0.5), domain [−0.5, 1].
        let b = axes(
            &series(vec![Point {
                x: 1.0,
                y: 0.5,
                band: Some((-0.2, 0.9)),
            }]),
            YAxis::Auto,
            &Frame::default(),
        );
        assert_eq!(b.y.domain, (-0.5, 1.0));
        // one point: x domain padded ±1 so it sits mid-plot
        assert_eq!(b.x.domain, (0.0, 2.0));
        // a constant series gets ±10 %: 4 → [3.6, 4.4], span 0.8/5 = 0.16 → step 0.2
        let c = axes(
            &series(vec![pt(1.0, 4.0), pt(2.0, 4.0)]),
            YAxis::Auto,
            &Frame::default(),
        );
        assert!((c.y_step - 0.2).abs() < 1e-12);
        assert!((c.y.domain.0 - 3.6).abs() < 1e-9 && (c.y.domain.1 - 4.4).abs() < 1e-9);
    }

    #[test]
    fn nice_steps_and_labels() {
        assert_eq!(nice_step(10.0, 5.0), 2.0); // 2 → 2
        assert_eq!(nice_step(0.3, 5.0), 0.1); // 0.06 → 0.1 (residual 6 → 10 × 0.01)
        assert_eq!(nice_step(7.0, 5.0), 2.0); // 1.4 → 2
        assert_eq!(nice_step(300.0, 6.0), 50.0); // 50 → residual 5 → 5 × 10
        assert_eq!(fmt_tick(0.30000000000000004, 0.1, 1.0), "0.3");
        assert_eq!(fmt_tick(12000.0, 2000.0, 12000.0), "12000");
        assert_eq!(fmt_tick(2e-5, 1e-5, 4e-5), "2.0e-5");
        // one format per axis: 0.0009 on an axis reaching 0.0011 stays fixed-point
        assert_eq!(fmt_tick(0.0009, 0.00005, 0.0011), "0.00090");
        assert_eq!(fmt_tick(-0.0, 1.0, 1.0), "0");
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(0.123456), "0.1235");
        assert_eq!(fmt_value(12.5), "12.5");
        assert_eq!(fmt_value(1234.5678), "1235");
        assert_eq!(fmt_value(1229.9), "1230");
        assert_eq!(fmt_value(0.0001234), "1.234e-4");
    }

    #[test]
    fn line_path_formats_points() {
        assert_eq!(
            line_path(&[(56.0, 208.0), (260.0, 159.0), (464.25, 12.0)]),
            "M56.0,208.0L260.0,159.0L464.2,12.0"
        );
    }

    #[test]
    fn svg_has_one_path_per_multi_point_series_and_titles() {
        let chart = Chart {
            id: 3,
            label: "success_rate <&>".into(),
            y_axis: YAxis::AtLeast(0.0, 1.0),
            series: vec![
                Series {
                    run: 0,
                    name: "run<a>".into(),
                    points: vec![pt(1.0, 0.0), pt(5.0, 0.25), pt(9.0, 1.0)],
                },
                Series {
                    run: 1,
                    name: "b".into(),
                    points: vec![pt(5.0, 0.5)],
                },
            ],
            frame: Frame::default(),
        };
        let svg = chart.to_svg();
        assert!(
            svg.starts_with(r#"<svg class="chart" data-chart="3""#),
            "{svg}"
        );
        assert_eq!(svg.matches(r#"class="line""#).count(), 1);
        assert!(
            svg.contains(r#"d="M56.0,208.0L260.0,159.0L464.0,12.0""#),
            "{svg}"
        );
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("run&lt;a&gt; · iteration 5: 0.25"));
        assert!(svg.contains(r#"aria-label="success_rate &lt;&amp;&gt;""#));
        assert!(!svg.contains("<a>"));
        let j = chart.hover_json();
        assert_eq!(j["x"], serde_json::json!([1.0, 9.0]));
        assert_eq!(j["py"], serde_json::json!([208.0, 12.0]));
        assert_eq!(j["s"][1]["p"], serde_json::json!([[5.0, 0.5]]));
    }

    #[test]
    fn unplottable_points_never_reach_the_svg() {
        let pts = vec![
            pt(1.0, 0.5),
            pt(2.0, f64::NAN),
            pt(3.0, f64::INFINITY),
            pt(4.0, 1.7e308),
            pt(5.0, -1.7e308),
            Point {
                x: 6.0,
                y: 0.7,
                band: Some((f64::NEG_INFINITY, 1.0)),
            },
            pt(7.0, 0.9),
        ];
        let c = Chart {
            id: 0,
            label: "x".into(),
            frame: Frame::default(),
            y_axis: YAxis::Auto,
            series: series(pts),
        };
        let svg = c.to_svg();
        for bad in ["NaN", "inf"] {
            assert!(!svg.contains(bad), "{bad} in {svg}");
        }
        let hover = c.hover_json().to_string();
        assert!(!hover.contains("null"), "{hover}");
        // Only the three plottable points are drawn.
        assert_eq!(c.drawn()[0].points.len(), 3);
        // Nothing drawable at all: still a well-formed chart.
        let c = Chart {
            series: series(vec![pt(1.0, f64::NAN)]),
            ..c
        };
        assert!(!c.to_svg().contains("NaN"));
    }

    #[test]
    fn decimation_keeps_extremes_and_ends() {
        let pts: Vec<Point> = (0..1000)
            .map(|i| pt(i as f64, if i == 500 { 99.0 } else { (i % 7) as f64 }))
            .collect();
        let d = decimate(&pts, 100);
        assert!(d.len() <= 102, "{}", d.len());
        assert_eq!(d[0], pts[0]);
        assert_eq!(*d.last().unwrap(), pts[999]);
        assert!(d.iter().any(|p| p.y == 99.0));
        assert!(d.windows(2).all(|w| w[0].x < w[1].x));
        assert_eq!(decimate(&pts[..10], 100).len(), 10);
    }
}
