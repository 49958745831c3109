//! `--plot FILE.svg` of `tether demo` and `tether sim`: throughput over time (left) and the
//! latency CDF (right), one line per run, drawn with plotters' SVG backend.
use std::path::Path;

use plotters::prelude::*;

/// One run's line in both panels.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend entry.
    pub label: String,
    /// `(seconds, Mbit/s)` points.
    pub throughput: Vec<(f64, f64)>,
    /// Latencies in milliseconds (any order).
    pub latency_ms: Vec<f64>,
}

/// What the axes say.
#[derive(Debug, Clone, Copy)]
pub struct Axes<'a> {
    /// The figure's title.
    pub title: &'a str,
    /// The time axis of the throughput panel (wall clock or simulated).
    pub time: &'a str,
    /// What the latency is of.
    pub latency: &'a str,
}

/// Why the plot was not written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {why} (check that its directory exists and is writable)")]
pub struct PlotError {
    path: String,
    why: String,
}

/// Throughput between consecutive `(seconds, cumulative bytes)` samples, in Mbit/s, at
/// the end of each interval.
pub fn rates(samples: &[(f64, u64)]) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .filter_map(|w| {
            let ((t0, b0), (t1, b1)) = (w[0], w[1]);
            let dt = t1 - t0;
            (dt > 0.0).then(|| (t1, b1.saturating_sub(b0) as f64 * 8.0 / dt / 1e6))
        })
        .collect()
}

/// Colours of the lines, in order.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Writes the figure of `series` to `path`.
pub fn write_svg(path: &Path, axes: Axes<'_>, series: &[Series]) -> Result<(), PlotError> {
    let err = |why: String| PlotError {
        path: path.display().to_string(),
        why,
    };
    // plotters' SVG backend writes the file when the root is dropped; present() reports.
    let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
    draw(&root, axes, series).map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    axes: Axes<'_>,
    series: &[Series],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(axes.title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(550);
    let throughput = Panel {
        caption: "throughput".into(),
        x_desc: axes.time,
        y_desc: "Mbit/s",
        legend: SeriesLabelPosition::UpperRight,
    };
    let lines: Vec<_> = series.iter().map(|s| s.throughput.clone()).collect();
    throughput.draw(&left, series, &lines)?;
    let latency = Panel {
        caption: format!("latency CDF ({})", axes.latency),
        x_desc: "ms",
        y_desc: "fraction at or below",
        legend: SeriesLabelPosition::LowerRight,
    };
    let lines: Vec<_> = series.iter().map(|s| cdf(&s.latency_ms)).collect();
    latency.draw(&right, series, &lines)?;
    Ok(())
}

/// One panel's words.
struct Panel<'a> {
    caption: String,
    x_desc: &'a str,
    y_desc: &'a str,
    legend: SeriesLabelPosition,
}

impl Panel<'_> {
    /// Draws `lines` (one per series, labelled by it) on axes from 0 to just past the
    /// largest point.
    fn draw<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        series: &[Series],
        lines: &[Vec<(f64, f64)>],
    ) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let points = lines.iter().flatten();
        let x_max = points.clone().map(|p| p.0).fold(0.0, f64::max).max(1e-3) * 1.02;
        let y_max = points.map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.05;
        let mut chart = ChartBuilder::on(area)
            .caption(self.caption.as_str(), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .draw()?;
        for (i, (s, line)) in series.iter().zip(lines).enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    line.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(self.legend)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// The empirical CDF as a step line: `(latency, fraction at or below it)`, at most ~2000
/// points (large runs are thinned evenly; the tail's last point is kept).
fn cdf(latency_ms: &[f64]) -> Vec<(f64, f64)> {
    let mut v = latency_ms.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let step = (n / 2000).max(1);
    let mut out = Vec::with_capacity(n / step + 2);
    for (i, &x) in v.iter().enumerate() {
        if i % step == 0 || i + 1 == n {
            out.push((x, (i + 1) as f64 / n as f64));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_cumulative_samples() {
        let r = rates(&[(0.0, 0), (0.5, 125_000), (1.0, 125_000), (1.0, 200_000)]);
        assert_eq!(r, vec![(0.5, 2.0), (1.0, 0.0)]);
    }

    #[test]
    fn cdf_ends_at_one_and_is_monotonic() {
        let c = cdf(&[3.0, 1.0, 2.0]);
        assert_eq!(c, vec![(1.0, 1.0 / 3.0), (2.0, 2.0 / 3.0), (3.0, 1.0)]);
        assert!(cdf(&[]).is_empty());
    }

    #[test]
    fn writes_an_svg_with_one_line_per_series() {
        let path = std::env::temp_dir().join(format!("tether-plot-{}.svg", std::process::id()));
        let s = |label: &str, k: f64| Series {
            label: label.into(),
            throughput: vec![(0.25, k), (0.5, 2.0 * k), (0.75, k)],
            latency_ms: vec![10.0 * k, 20.0 * k, 30.0 * k],
        };
        let axes = Axes {
            title: "test",
            time: "s",
            latency: "requests",
        };
        write_svg(&path, axes, &[s("a", 1.0), s("b", 2.0)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        // Two panels, two lines each, plus the legend samples.
        assert!(svg.matches("<polyline").count() >= 4, "{svg}");
        assert!(
            svg.contains("\na\n") && svg.contains("\nb\n"),
            "legend labels"
        );
    }
}
