//! PNG plots of an evaluation (plotters, bitmap backend, embedded DejaVu Sans font so no
//! system font is needed).
//!
//! | file             | content                                                            |
//! |------------------|--------------------------------------------------------------------|
//! | `roc.png`        | ROC curve (FAR vs TPR) with the EER point and the chance diagonal   |
//! | `distances.png`  | histograms of distances for similar / dissimilar pairs, threshold  |
//! | `history.png`    | loss and validation loss per epoch                                 |
//! | `embeddings.png` | 2-D PCA map of test embeddings coloured by class                  |

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use siamese::data::Matrix;
use siamese::error::{Result, SiameseError};
use siamese::eval::roc;
use siamese::train::History;

const FONT_NAME: &str = "sans-serif";

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // The font is compiled in, so this cannot fail at run time for a valid build.
        let _ = plotters::style::register_font(
            FONT_NAME,
            FontStyle::Normal,
            include_bytes!("../assets/fonts/DejaVuSans.ttf"),
        );
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> SiameseError {
    SiameseError::Runtime(format!("cannot draw {}: {e}", path.display()))
}

const SIZE: (u32, u32) = (800, 600);

/// A chart with f64 axes on a bitmap.
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Fills `root` white and draws a titled chart over `x × y` with its grid and axis titles
/// (`x_format` formats the x tick labels when given).
fn frame<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    path: &Path,
    title: &str,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    (x_desc, y_desc): (&str, &str),
    x_format: Option<&dyn Fn(&f64) -> String>,
) -> Result<Chart<'a, 'b>> {
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT_NAME, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(|e| plot_err(path, e))?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT_NAME, 16))
        .axis_desc_style((FONT_NAME, 18));
    if let Some(f) = x_format {
        mesh.x_label_formatter(f);
    }
    mesh.draw().map_err(|e| plot_err(path, e))?;
    Ok(chart)
}

/// Draws the legend of the labelled series at `position`.
fn legend<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    path: &Path,
    position: SeriesLabelPosition,
    size: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT_NAME, size))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| plot_err(path, e))
}

/// Draws the ROC curve with its EER point and the chance diagonal.
pub fn plot_roc(path: &Path, distances: &[f32], labels: &[f32]) -> Result<()> {
    register_font();
    let r = roc(distances, labels)?;
    let eer = r.eer();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    let mut chart = frame(
        &root,
        path,
        &format!("ROC curve (AUC = {:.4})", r.auc()),
        (0.0..1.0, 0.0..1.0),
        ("false accept rate (FAR)", "true accept rate (1 − FRR)"),
        None,
    )?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
        .map_err(|e| plot_err(path, e))?
        .label("chance")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.3)));
    chart
        .draw_series(LineSeries::new(
            r.fpr.iter().zip(&r.tpr).map(|(&x, &y)| (x, y)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| plot_err(path, e))?
        .label("model")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(std::iter::once(Circle::new(
            (eer.rate, 1.0 - eer.rate),
            6,
            RED.filled(),
        )))
        .map_err(|e| plot_err(path, e))?
        .label(format!(
            "EER = {:.2}% (d = {:.3})",
            eer.rate * 100.0,
            eer.threshold
        ))
        .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
    legend(&mut chart, path, SeriesLabelPosition::LowerRight, 16)?;
    root.present().map_err(|e| plot_err(path, e))
}

/// Draws histograms of the distances of similar and dissimilar pairs with the threshold.
pub fn plot_distances(
    path: &Path,
    distances: &[f32],
    labels: &[f32],
    threshold: f32,
) -> Result<()> {
    register_font();
    if distances.is_empty() {
        return Err(SiameseError::Empty("no distances to plot".into()));
    }
    let max = distances.iter().copied().fold(threshold, f32::max) as f64 * 1.05 + 1e-6;
    let bins = 50usize;
    let width = max / bins as f64;
    let mut counts = [vec![0usize; bins], vec![0usize; bins]];
    for (&d, &y) in distances.iter().zip(labels) {
        let b = ((d as f64 / width) as usize).min(bins - 1);
        counts[usize::from(y >= 0.5)][b] += 1;
    }
    let (n_neg, n_pos) = (
        counts[0].iter().sum::<usize>().max(1),
        counts[1].iter().sum::<usize>().max(1),
    );
    let frac = |c: usize, n: usize| c as f64 / n as f64;
    let top = (0..bins)
        .map(|b| frac(counts[0][b], n_neg).max(frac(counts[1][b], n_pos)))
        .fold(0.0, f64::max)
        * 1.1
        + 1e-9;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    let mut chart = frame(
        &root,
        path,
        "Distances of test pairs",
        (0.0..max, 0.0..top),
        ("distance d", "fraction of pairs"),
        None,
    )?;
    for (class, color, name) in [(1usize, GREEN, "similar"), (0, RED, "dissimilar")] {
        let n = if class == 1 { n_pos } else { n_neg };
        chart
            .draw_series((0..bins).map(|b| {
                let x0 = b as f64 * width;
                Rectangle::new(
                    [(x0, 0.0), (x0 + width, frac(counts[class][b], n))],
                    color.mix(0.45).filled(),
                )
            }))
            .map_err(|e| plot_err(path, e))?
            .label(format!("{name} ({n})"))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.mix(0.45).filled())
            });
    }
    let t = threshold as f64;
    chart
        .draw_series(LineSeries::new([(t, 0.0), (t, top)], BLACK.stroke_width(2)))
        .map_err(|e| plot_err(path, e))?
        .label(format!("threshold {threshold:.3}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    legend(&mut chart, path, SeriesLabelPosition::UpperRight, 16)?;
    root.present().map_err(|e| plot_err(path, e))
}

/// A named, coloured line of points.
type Curve<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Draws training and validation loss per epoch.
pub fn plot_history(path: &Path, history: &History) -> Result<()> {
    register_font();
    if history.epochs.is_empty() {
        return Err(SiameseError::Empty("no epochs to plot".into()));
    }
    let n = history.epochs.len();
    let top = history
        .epochs
        .iter()
        .flat_map(|e| [Some(e.loss), e.val_loss])
        .flatten()
        .fold(0.0f32, f32::max) as f64
        * 1.1
        + 1e-9;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    let mut chart = frame(
        &root,
        path,
        "Loss per epoch",
        (1.0..(n.max(2) as f64), 0.0..top),
        ("epoch", "contrastive loss"),
        Some(&|x: &f64| format!("{x:.0}")),
    )?;
    let series: [Curve; 2] = [
        (
            "loss",
            BLUE,
            history
                .epochs
                .iter()
                .map(|e| (e.epoch as f64, e.loss as f64))
                .collect(),
        ),
        (
            "val_loss",
            RGBColor(230, 120, 0),
            history
                .epochs
                .iter()
                .filter_map(|e| e.val_loss.map(|v| (e.epoch as f64, v as f64)))
                .collect(),
        ),
    ];
    for (name, color, points) in series {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| plot_err(path, e))?;
    }
    legend(&mut chart, path, SeriesLabelPosition::UpperRight, 16)?;
    root.present().map_err(|e| plot_err(path, e))
}

/// The first two principal components of the rows of `x` (centred), by power iteration on
/// the covariance with deflation. Returns `n × 2` coordinates.
pub fn pca_2d(x: &Matrix) -> Vec<[f64; 2]> {
    let (n, d) = (x.rows(), x.cols());
    if n == 0 || d == 0 {
        return Vec::new();
    }
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| x.row(i)[j] as f64).sum::<f64>() / n as f64)
        .collect();
    let mut cov = vec![0.0f64; d * d];
    for i in 0..n {
        let r: Vec<f64> = x
            .row(i)
            .iter()
            .zip(&mean)
            .map(|(&v, m)| v as f64 - m)
            .collect();
        for a in 0..d {
            for b in a..d {
                cov[a * d + b] += r[a] * r[b];
            }
        }
    }
    for a in 0..d {
        for b in 0..a {
            cov[a * d + b] = cov[b * d + a];
        }
    }
    let mut components: Vec<Vec<f64>> = Vec::new();
    for k in 0..2 {
        let mut v: Vec<f64> = (0..d)
            .map(|j| 1.0 + ((j * 7 + k * 13) % 11) as f64 / 11.0)
            .collect();
        let mut lambda = 0.0;
        for _ in 0..200 {
            let mut w: Vec<f64> = (0..d)
                .map(|a| (0..d).map(|b| cov[a * d + b] * v[b]).sum())
                .collect();
            for c in &components {
                let dot: f64 = w.iter().zip(c).map(|(p, q)| p * q).sum();
                for (wi, ci) in w.iter_mut().zip(c) {
                    *wi -= dot * ci;
                }
            }
            let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm < 1e-12 {
                break;
            }
            lambda = norm;
            v = w.into_iter().map(|v| v / norm).collect();
        }
        let _ = lambda;
        components.push(v);
    }
    (0..n)
        .map(|i| {
            let r: Vec<f64> = x
                .row(i)
                .iter()
                .zip(&mean)
                .map(|(&v, m)| v as f64 - m)
                .collect();
            let p = |c: &Vec<f64>| r.iter().zip(c).map(|(a, b)| a * b).sum::<f64>();
            [p(&components[0]), p(&components[1])]
        })
        .collect()
}

/// Draws a 2-D PCA map of embeddings coloured by class (classes beyond the palette reuse
/// colours; at most `max_classes` classes are drawn, the legend lists up to 12).
pub fn plot_embeddings(
    path: &Path,
    embeddings: &Matrix,
    labels: &[usize],
    class_names: &[String],
) -> Result<()> {
    register_font();
    let points = pca_2d(embeddings);
    if points.is_empty() {
        return Err(SiameseError::Empty("no embeddings to plot".into()));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in &points {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    let pad = |a: f64, b: f64| ((b - a) * 0.05).max(1e-6);
    let (px, py) = (pad(x0, x1), pad(y0, y1));
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    let mut chart = frame(
        &root,
        path,
        "Test embeddings (PCA)",
        ((x0 - px)..(x1 + px), (y0 - py)..(y1 + py)),
        ("principal component 1", "principal component 2"),
        None,
    )?;
    let mut classes: Vec<usize> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    for (k, &c) in classes.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let series = chart
            .draw_series(
                points
                    .iter()
                    .zip(labels)
                    .filter(|&(_, &l)| l == c)
                    .map(|(p, _)| Circle::new((p[0], p[1]), 3, color.filled())),
            )
            .map_err(|e| plot_err(path, e))?;
        if k < 12 {
            let name = class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
            series
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
    }
    legend(&mut chart, path, SeriesLabelPosition::UpperRight, 14)?;
    root.present().map_err(|e| plot_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_main_direction() {
        // Points along (1, 1, 0) with small noise in z: PC1 spans x = y.
        let rows: Vec<Vec<f32>> = (0..20)
            .map(|i| {
                let t = i as f32 - 10.0;
                vec![t, t, if i % 2 == 0 { 0.1 } else { -0.1 }]
            })
            .collect();
        let p = pca_2d(&Matrix::from_rows(&rows).unwrap());
        // The mean of t is −0.5, so the first point projects on PC1 at ±√2·9.5; what is left
        // for PC2 is the ±0.1 wobble in z (slightly mixed with t, as z correlates with it).
        assert!(
            (p[0][0].abs() - 9.5 * 2f64.sqrt()).abs() < 1e-3,
            "{:?}",
            p[0]
        );
        assert!(p.iter().all(|q| q[1].abs() < 0.12), "{p:?}");
        assert!(p.iter().any(|q| q[1].abs() > 0.05), "{p:?}");
    }

    #[test]
    fn report_and_plots_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.55, 0.3, 0.7, 0.45];
        let y = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        plot_roc(&dir.path().join("roc.png"), &d, &y).unwrap();
        plot_distances(&dir.path().join("d.png"), &d, &y, 0.5).unwrap();
        let mut h = History::default();
        for e in 1..4 {
            h.epochs.push(siamese::train::EpochLog {
                epoch: e,
                loss: 1.0 / e as f32,
                accuracy: 0.5,
                val_loss: Some(1.2 / e as f32),
                val_accuracy: Some(0.5),
                seconds: 0.1,
                lr: None,
                val_eer: None,
            });
        }
        let csv = dir.path().join("history.csv");
        std::fs::write(&csv, h.to_csv()).unwrap();
        let back = siamese::report::read_history_csv(&csv).unwrap();
        assert_eq!(back.epochs.len(), 3);
        plot_history(&dir.path().join("h.png"), &back).unwrap();
        let e = Matrix::from_rows(&[vec![0.0, 1.0], vec![1.0, 0.0], vec![0.5, 0.5]]).unwrap();
        plot_embeddings(
            &dir.path().join("e.png"),
            &e,
            &[0, 1, 1],
            &["a".into(), "b".into()],
        )
        .unwrap();
        for f in ["roc.png", "d.png", "h.png", "e.png"] {
            let img = image::open(dir.path().join(f)).unwrap();
            assert_eq!((img.width(), img.height()), SIZE, "{f}");
        }
    }
}
