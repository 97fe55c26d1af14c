//! [`VerificationReport`]: every verification number for one set of labelled pairs
//! (accuracy, precision, recall, F1, FAR, FRR, ROC AUC, EER, threshold, one-shot), as
//! `report.json` holds it; and [`read_history_csv`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SiameseError};
use crate::eval::{Confusion, roc};
use crate::train::History;

/// Every number `siamese evaluate` reports for one set of labelled pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// Number of pairs.
    pub pairs: usize,
    /// Pairs labelled similar.
    pub similar: usize,
    /// Mean contrastive loss.
    pub loss: f32,
    /// Decision threshold (`d < threshold` ⇒ similar).
    pub threshold: f32,
    /// Where the threshold came from (e.g. "calibrated on validation pairs: accuracy").
    pub threshold_source: String,
    /// Pair accuracy at the threshold.
    pub accuracy: f64,
    /// Precision of "similar" at the threshold.
    pub precision: f64,
    /// Recall of "similar" at the threshold.
    pub recall: f64,
    /// F1 of "similar" at the threshold.
    pub f1: f64,
    /// False accept rate at the threshold.
    pub far: f64,
    /// False reject rate at the threshold.
    pub frr: f64,
    /// Confusion counts at the threshold.
    pub confusion: Confusion,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Equal error rate.
    pub eer: f64,
    /// Distance threshold at the equal error rate.
    pub eer_threshold: f64,
    /// N-way one-shot accuracy, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_shot_accuracy: Option<f64>,
    /// N of the one-shot trials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ways: Option<usize>,
    /// Number of one-shot trials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_shot_trials: Option<usize>,
    /// Groups the one-shot trials were drawn within (e.g. alphabets), when grouped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_shot_groups: Option<Vec<String>>,
    /// Pearson correlation of predicted similarity and gold score (graded text pairs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pearson: Option<f64>,
    /// Spearman rank correlation of predicted similarity and gold score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spearman: Option<f64>,
    /// Closed-set identification against a gallery, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identification: Option<crate::eval::protocols::Identification>,
    /// Writer-dependent verification with references, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<crate::eval::protocols::ReferenceReport>,
}

impl VerificationReport {
    /// Computes the report from distances and labels at `threshold`.
    pub fn new(
        distances: &[f32],
        labels: &[f32],
        loss: f32,
        threshold: f32,
        threshold_source: impl Into<String>,
    ) -> Result<Self> {
        let c = Confusion::at(distances, labels, threshold)?;
        let r = roc(distances, labels)?;
        let eer = r.eer();
        Ok(Self {
            pairs: distances.len(),
            similar: labels.iter().filter(|&&y| y >= 0.5).count(),
            loss,
            threshold,
            threshold_source: threshold_source.into(),
            accuracy: c.accuracy(),
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            far: c.far(),
            frr: c.frr(),
            confusion: c,
            auc: r.auc(),
            eer: eer.rate,
            eer_threshold: eer.threshold,
            one_shot_accuracy: None,
            ways: None,
            one_shot_trials: None,
            one_shot_groups: None,
            pearson: None,
            spearman: None,
            identification: None,
            references: None,
        })
    }

    /// A plain-text table of the report.
    pub fn table(&self) -> String {
        let mut rows = vec![
            (
                "pairs",
                format!("{} ({} similar)", self.pairs, self.similar),
            ),
            ("loss", format!("{:.4}", self.loss)),
            (
                "threshold",
                format!("{:.4} ({})", self.threshold, self.threshold_source),
            ),
            ("accuracy", format!("{:.2}%", self.accuracy * 100.0)),
            ("precision", format!("{:.4}", self.precision)),
            ("recall", format!("{:.4}", self.recall)),
            ("F1", format!("{:.4}", self.f1)),
            ("FAR", format!("{:.2}%", self.far * 100.0)),
            ("FRR", format!("{:.2}%", self.frr * 100.0)),
            (
                "confusion",
                format!(
                    "TP {} FP {} TN {} FN {}",
                    self.confusion.tp, self.confusion.fp, self.confusion.tn, self.confusion.fn_
                ),
            ),
            ("ROC AUC", format!("{:.4}", self.auc)),
            (
                "EER",
                format!("{:.2}% at d = {:.4}", self.eer * 100.0, self.eer_threshold),
            ),
        ];
        if let (Some(p), Some(s)) = (self.pearson, self.spearman) {
            rows.push((
                "Pearson",
                format!("{:.2} (×100, similarity vs gold)", p * 100.0),
            ));
            rows.push(("Spearman", format!("{:.2} (×100)", s * 100.0)));
        }
        if let (Some(a), Some(w)) = (self.one_shot_accuracy, self.ways) {
            rows.push((
                "one-shot",
                format!(
                    "{:.2}% ({w}-way, {} trials{})",
                    a * 100.0,
                    self.one_shot_trials.unwrap_or(0),
                    match &self.one_shot_groups {
                        Some(g) => format!(", within {} groups", g.len()),
                        None => String::new(),
                    }
                ),
            ));
        }
        if let Some(i) = &self.identification {
            rows.push((
                "rank-1",
                format!(
                    "{:.2}% ({} identities, {} probes, {} enrolled each)",
                    i.rank1 * 100.0,
                    i.identities,
                    i.probes,
                    i.gallery_per_class
                ),
            ));
            rows.push(("rank-5", format!("{:.2}%", i.rank5 * 100.0)));
        }
        if let Some(r) = &self.references {
            rows.push((
                "ref EER",
                format!(
                    "{:.2}% (AUC {:.4}; {} writers, {} references each, {} distance; {} genuine, \
                     {} forgeries)",
                    r.eer * 100.0,
                    r.auc,
                    r.writers,
                    r.references,
                    match r.score {
                        crate::eval::protocols::ReferenceScore::Mean => "mean",
                        crate::eval::protocols::ReferenceScore::Min => "min",
                    },
                    r.genuine,
                    r.forgeries
                ),
            ));
        }
        rows.iter()
            .map(|(k, v)| format!("{k:<11}{v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Parses `history.csv` as written by [`History::to_csv`].
pub fn read_history_csv(path: &Path) -> Result<History> {
    let text = std::fs::read_to_string(path).map_err(|e| SiameseError::io(path, e))?;
    let mut history = History::default();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || {
            SiameseError::format(
                path,
                format!(
                    "line {}: expected 6 to 8 fields \
                     `epoch,loss,accuracy,val_loss,val_accuracy,seconds[,lr[,val_eer]]`",
                    i + 1
                ),
            )
        };
        if !(6..=8).contains(&f.len()) {
            return Err(bad());
        }
        let opt = |s: &str| -> Result<Option<f32>> {
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse().map(Some).map_err(|_| bad())
            }
        };
        history.epochs.push(crate::train::EpochLog {
            epoch: f[0].parse().map_err(|_| bad())?,
            loss: f[1].parse().map_err(|_| bad())?,
            accuracy: f[2].parse().map_err(|_| bad())?,
            val_loss: opt(f[3])?,
            val_accuracy: opt(f[4])?,
            seconds: f[5].parse().map_err(|_| bad())?,
            lr: match f.get(6) {
                Some(s) if !s.is_empty() => Some(s.parse().map_err(|_| bad())?),
                _ => None,
            },
            val_eer: opt(f.get(7).copied().unwrap_or(""))?,
        });
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_and_history_round_trip() {
        let d = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.55, 0.3, 0.7, 0.45];
        let y = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let r = VerificationReport::new(&d, &y, 0.1, 0.5, "given").unwrap();
        assert!((r.auc - 0.76).abs() < 1e-9);
        assert!(r.table().contains("EER"));
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::default();
        for e in 1..4 {
            h.epochs.push(crate::train::EpochLog {
                epoch: e,
                loss: 1.0 / e as f32,
                accuracy: 0.5,
                val_loss: Some(1.2 / e as f32),
                val_accuracy: None,
                seconds: 0.1,
                lr: Some(0.001 / e as f64),
                val_eer: Some(0.25),
            });
        }
        let csv = dir.path().join("history.csv");
        std::fs::write(&csv, h.to_csv()).unwrap();
        let back = read_history_csv(&csv).unwrap();
        assert_eq!(back.epochs.len(), 3);
        assert_eq!(back.epochs[1].lr, Some(0.0005));
        assert_eq!(back, h);
        assert_eq!(back.epochs[2].val_loss, Some(0.4));
        assert_eq!(back.epochs[2].val_accuracy, None);
    }
}
