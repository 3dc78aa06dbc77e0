//! `--plot`: a PNG of forecasts (history, median and the 10-90% band), one panel per series,
//! drawn with plotters' bitmap backend and a bundled font (DejaVu Sans), so the picture looks
//! the same on every machine and needs no system fonts.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// The quantile levels a plot shows: the band's edges and the median.
pub const PLOT_LEVELS: [f64; 3] = [0.1, 0.5, 0.9];

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 260;

/// Errors of [`plot_forecasts`], naming the output file.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{}: nothing to plot", path.display())]
    Empty { path: PathBuf },
    #[error("{}: series '{id}': {message}", path.display())]
    Series {
        path: PathBuf,
        id: String,
        message: String,
    },
    #[error("{}: cannot draw the plot: {message}", path.display())]
    Draw { path: PathBuf, message: String },
}

/// One panel: a series' history and its forecast quantiles.
#[derive(Debug, Clone, Copy)]
pub struct ForecastPlot<'a> {
    pub id: &'a str,
    /// The context, oldest first (`NaN` = missing); the last `history_shown` steps are drawn.
    pub history: &'a [f64],
    /// `(horizon,)` each: the 0.1, 0.5 and 0.9 quantiles.
    pub low: &'a [f64],
    pub median: &'a [f64],
    pub high: &'a [f64],
}

impl ForecastPlot<'_> {
    /// History steps drawn: four horizons, at least 48 (all of a shorter history).
    fn history_shown(&self) -> usize {
        self.history.len().min((4 * self.median.len()).max(48))
    }

    /// `(x range, y range)` over what is drawn; finite values only.
    fn ranges(&self) -> (Range<f64>, Range<f64>) {
        let shown = self.history_shown();
        let values = self.history[self.history.len() - shown..]
            .iter()
            .chain(self.low)
            .chain(self.high)
            .chain(self.median)
            .copied()
            .filter(|v| v.is_finite());
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let (lo, hi) = match (lo.is_finite(), hi - lo) {
            (false, _) => (0.0, 1.0),
            (true, d) if d > 0.0 => (lo - 0.05 * d, hi + 0.05 * d),
            (true, _) => (lo - 1.0, hi + 1.0),
        };
        (-(shown as f64)..self.median.len() as f64, lo..hi)
    }
}

/// Draws one panel per entry of `plots` (top to bottom) into the PNG `path`: the history in
/// black (gaps where it is missing), the median in blue and the 10-90% band shaded; x counts
/// steps from the first forecast step.
pub fn plot_forecasts(path: &Path, plots: &[ForecastPlot<'_>]) -> Result<(), PlotError> {
    if plots.is_empty() {
        return Err(PlotError::Empty {
            path: path.to_path_buf(),
        });
    }
    for p in plots {
        let h = p.median.len();
        if h == 0 || p.low.len() != h || p.high.len() != h {
            return Err(PlotError::Series {
                path: path.to_path_buf(),
                id: p.id.to_string(),
                message: format!(
                    "the quantiles have {}, {} and {} steps; expected one non-zero horizon",
                    p.low.len(),
                    h,
                    p.high.len()
                ),
            });
        }
    }
    register_bundled_font().map_err(|message| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    })?;
    let draw_err = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let height = PANEL_HEIGHT * plots.len() as u32;
    let file = crate::atomic::AtomicFile::create(path).map_err(|e| draw_err(&e))?;
    {
        let root = BitMapBackend::new(file.temp_path(), (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(&e))?;
        for (area, plot) in root.split_evenly((plots.len(), 1)).iter().zip(plots) {
            draw_panel(area, plot).map_err(|e| draw_err(&e))?;
        }
        root.present().map_err(|e| draw_err(&e))?;
    }
    file.commit().map_err(|e| draw_err(&e))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult<'a> =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>>;

fn draw_panel<'a>(area: &Area<'a>, plot: &ForecastPlot<'_>) -> DrawResult<'a> {
    let (x_range, y_range) = plot.ranges();
    let mut chart = ChartBuilder::on(area)
        .caption(plot.id, (FAMILY, 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("steps from the forecast start")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FAMILY, 13))
        .draw()?;

    let band_color = RGBColor(31, 119, 180);
    let band: Vec<(f64, f64)> = (0..plot.median.len())
        .map(|t| (t as f64, plot.high[t]))
        .chain(
            (0..plot.median.len())
                .rev()
                .map(|t| (t as f64, plot.low[t])),
        )
        .filter(|(_, v)| v.is_finite())
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(
            band,
            band_color.mix(0.25).filled(),
        )))?
        .label("10-90%")
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 16, y + 5)], band_color.mix(0.25).filled())
        });

    // The history in runs of observed values: a missing value leaves a gap.
    let shown = plot.history_shown();
    let start = plot.history.len() - shown;
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (i, &v) in plot.history[start..].iter().enumerate() {
        match (v.is_finite(), runs.last_mut()) {
            (true, Some(run)) => run.push((i as f64 - shown as f64, v)),
            (false, Some(run)) if !run.is_empty() => runs.push(Vec::new()),
            _ => {}
        }
    }
    for (k, run) in runs.into_iter().filter(|r| !r.is_empty()).enumerate() {
        let series = chart.draw_series(LineSeries::new(run, BLACK.stroke_width(1)))?;
        if k == 0 {
            series
                .label("history")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
        }
    }
    let median = (0..plot.median.len()).map(|t| (t as f64, plot.median[t]));
    chart
        .draw_series(LineSeries::new(median, band_color.stroke_width(2)))?
        .label("median")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], band_color.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font((FAMILY, 13))
        .draw()
}

/// Registers the bundled font as `sans-serif`, once per process.
fn register_bundled_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the bundled font is not a valid TrueType font".to_string())
        })
        .clone()
}
