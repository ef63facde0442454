//! `--plot FILE.png|FILE.svg`: the convergence curve of an iterative job
//! (PageRank's L1 change, nodes changed in CC and BFS, ALS's RMSE, CoCoA's
//! duality gap), drawn with plotters once the loop is over.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::error::{CliError, usage};
use crate::flag::Flag;

/// One line of a plot: a value per iteration.
pub struct Curve {
    /// The legend's text.
    pub label: String,
    /// `(iteration, value)`, in iteration order.
    pub points: Vec<(u64, f64)>,
}

/// What a convergence plot shows.
pub struct Plot {
    /// The caption.
    pub title: String,
    /// The x axis: "iteration" or "round".
    pub x_label: &'static str,
    /// The y axis.
    pub y_label: String,
    /// A logarithmic y axis (values ≤ 0 are left out, as a log axis has no
    /// place for them).
    pub log: bool,
    /// The lines.
    pub curves: Vec<Curve>,
}

const SIZE: (u32, u32) = (900, 560);

/// The font of every text in a plot, built in (no system fonts needed):
/// DejaVu Sans, under the licence in `src/fonts/LICENSE-DejaVu.txt`.
const FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// Makes [`FONT`] the `sans-serif` family plotters draws with, once.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the built-in font could not be read"))
    }
}

/// An iterative job's `--plot FILE`.
pub const PLOT: Flag<PathBuf> = Flag::new(
    "plot",
    "FILE",
    "draw the convergence curve into FILE (.png or .svg)",
);

/// The `--plot` file, checked before the job runs (so a long job does not
/// fail at its end): a `.png` or `.svg` name in a directory that exists.
pub fn path(m: &getopts::Matches) -> Result<Option<PathBuf>, CliError> {
    let Some(path) = PLOT.get(m)? else {
        return Ok(None);
    };
    let text = path.display();
    match path.extension().and_then(|e| e.to_str()) {
        Some("png" | "svg") => {}
        _ => {
            return Err(usage(format!(
                "--plot {text}: the file must end in .png or .svg"
            )));
        }
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent
        && !dir.is_dir()
    {
        return Err(usage(format!(
            "--plot {text}: directory {} does not exist",
            dir.display()
        )));
    }
    Ok(Some(path))
}

impl Plot {
    /// Draws the plot into `path` (PNG or SVG, by its extension).
    pub fn write(&self, path: &Path) -> Result<(), CliError> {
        let drawn = if let Err(e) = register_font() {
            Err(e)
        } else if path.extension().and_then(|e| e.to_str()) == Some("svg") {
            self.draw(SVGBackend::new(path, SIZE).into_drawing_area())
        } else {
            self.draw(BitMapBackend::new(path, SIZE).into_drawing_area())
        };
        drawn
            .with_context(|| format!("--plot {}", path.display()))
            .map_err(CliError::Runtime)
    }

    /// The points of `curve` that the axes can show.
    fn shown(&self, curve: &Curve) -> Vec<(u64, f64)> {
        let log = self.log;
        curve
            .points
            .iter()
            .copied()
            .filter(|&(_, v)| v.is_finite() && (!log || v > 0.0))
            .collect()
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        let points: Vec<(u64, f64)> = self.curves.iter().flat_map(|c| self.shown(c)).collect();
        let first = points.iter().map(|p| p.0).min().unwrap_or(0);
        let last = points.iter().map(|p| p.0).max().unwrap_or(0);
        let low = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let high = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let (low, high) = if points.is_empty() {
            (1.0, 10.0)
        } else if self.log {
            (low / 2.0, high * 2.0)
        } else {
            let pad = ((high - low) * 0.05).max(high.abs() * 1e-3).max(1e-12);
            (low - pad, high + pad)
        };
        let x = first..last.max(first + 1);
        if self.log {
            self.draw_on(&root, x, (low..high).log_scale())?;
        } else {
            self.draw_on(&root, x, low..high)?;
        }
        root.present().map_err(|e| anyhow!("{e}"))
    }

    fn draw_on<DB, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: std::ops::Range<u64>,
        y: Y,
    ) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e}");
        root.fill(&WHITE).map_err(fail)?;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(84)
            .build_cartesian_2d(x, y)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(&self.y_label)
            .y_label_formatter(&|v| {
                if self.log {
                    format!("{v:.0e}")
                } else {
                    format!("{v:.3}")
                }
            })
            .draw()
            .map_err(fail)?;
        for (i, curve) in self.curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let shown = self.shown(curve);
            chart
                .draw_series(LineSeries::new(
                    shown.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(fail)?
                .label(&curve.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(shown.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(fail)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(fail)?;
        Ok(())
    }
}
