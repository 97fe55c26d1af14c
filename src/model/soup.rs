//! Averaging the weights of trained models: a uniform "model soup" (Wortsman et al. 2022,
//! "Model soups: averaging weights of multiple fine-tuned models improves accuracy without
//! increasing inference time") or checkpoint averaging.

use super::Siamese;
use crate::error::{Result, SiameseError};
use crate::train::average_networks;

impl Siamese {
    /// Replaces this model's weights with the element-wise mean of its own and `others'`:
    /// `θ = (θ_self + θ_1 + … + θ_n) / (n + 1)` for every tensor (batch-norm statistics
    /// included). Every model must have the same network configuration and input
    /// preprocessing (models fine-tuned from one pretrained encoder, or one recipe trained with
    /// other seeds); the calibrated threshold is dropped, since it belonged to other weights:
    /// calibrate the average on validation pairs ([`Siamese::calibrate`]) before deciding
    /// with it. Averages of runs from one start usually score at least as well as the mean of
    /// their runs, and sometimes better than each; check on validation data.
    ///
    /// ```
    /// use siamese::prelude::*;
    /// let mut a = Siamese::reference(4, 0).unwrap();
    /// let b = Siamese::reference(4, 1).unwrap();
    /// a.average_weights(&[&b]).unwrap();
    /// let other = Siamese::reference(5, 0).unwrap();
    /// let e = a.average_weights(&[&other]).unwrap_err().to_string();
    /// assert!(e.contains("model 2") && e.contains("network"), "{e}");
    /// ```
    ///
    /// # Errors
    /// A model whose network configuration or preprocessing differs from this one's (named
    /// by its position, this model being 1).
    pub fn average_weights(&mut self, others: &[&Siamese]) -> Result<()> {
        for (i, o) in others.iter().enumerate() {
            if let Some(why) = self.averaging_mismatch(o) {
                return Err(SiameseError::invalid(format!("model {}", i + 2), why));
            }
        }
        let mut all = vec![&self.network];
        all.extend(others.iter().map(|o| &o.network));
        let averaged = average_networks(&all)?;
        self.set_network(averaged);
        self.meta.threshold = None;
        Ok(())
    }

    /// Why `other` cannot be averaged with this model ([`Siamese::average_weights`]): another
    /// network configuration or input preprocessing; `None` when it can.
    pub fn averaging_mismatch(&self, other: &Siamese) -> Option<&'static str> {
        if other.meta.config.network != self.meta.config.network {
            Some(
                "has another network configuration than model 1: only models of one \
                 architecture can be averaged",
            )
        } else if other.meta.preprocessing != self.meta.preprocessing {
            Some("has another input preprocessing than model 1 (image size, tokenizer)")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    /// A model averaged with copies of itself predicts as before; averaged with other seeds'
    /// models it predicts as none of them does, and has no threshold until calibrated. (The
    /// element-wise mean itself is tested in `train::average`.)
    #[test]
    fn averages_replace_the_weights() {
        let (a, b, _) = crate::synthetic::random_pairs(6, 4, 9);
        let mut same = Siamese::reference(4, 0).unwrap();
        same.set_threshold(crate::io::Threshold {
            value: 0.5,
            source: "test".into(),
        });
        let before = same.predict(&a, &b).unwrap();
        let copies: Vec<Siamese> = (0..2).map(|_| Siamese::reference(4, 0).unwrap()).collect();
        same.average_weights(&[&copies[0], &copies[1]]).unwrap();
        assert!(same.threshold().is_none());
        for (x, y) in same.predict(&a, &b).unwrap().iter().zip(&before) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        let others: Vec<Siamese> = (1..3).map(|s| Siamese::reference(4, s).unwrap()).collect();
        let mut soup = Siamese::reference(4, 0).unwrap();
        soup.average_weights(&[&others[0], &others[1]]).unwrap();
        let got = soup.predict(&a, &b).unwrap();
        for m in others.iter().chain([&copies[0]]) {
            let own = m.predict(&a, &b).unwrap();
            assert!(own.iter().zip(&got).any(|(o, g)| (o - g).abs() > 1e-3));
        }
    }
}
