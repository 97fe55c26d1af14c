//! [`Siamese::summary`]: a Keras-style table of layers, output shapes and parameters.

use burn::module::Module;

use super::Siamese;

impl Siamese {
    /// A Keras-style summary table: layers, output shapes, parameters.
    pub fn summary(&self) -> String {
        let enc = &self.meta.config.network.encoder;
        let rows = enc.layer_rows();
        let total: usize = rows.iter().map(|r| r.3).sum();
        let mut lines = vec![
            "Model: \"siamese\"".to_string(),
            format!(
                "{:<36}{:<22}{:>12}  {}",
                "Layer (type)", "Output Shape", "Param #", "Connected to"
            ),
            "=".repeat(90),
        ];
        let dim = enc.input_dim();
        for input in ["input_a", "input_b"] {
            lines.push(format!(
                "{:<36}{:<22}{:>12}",
                format!("{input} (Input)"),
                format!("(None, {dim})"),
                0
            ));
        }
        lines.push(format!(
            "{:<36}{:<22}{:>12}  {}",
            "encoder (shared)",
            format!("(None, {})", enc.output_dim()),
            group(total),
            "input_a, input_b"
        ));
        for (name, kind, shape, params) in &rows {
            lines.push(format!(
                "{:<36}{:<22}{:>12}",
                format!("  {name} ({kind})"),
                shape,
                group(*params)
            ));
        }
        let head_params = match self.meta.config.network.head {
            crate::siamese::Head::Distance => {
                lines.push(format!(
                    "{:<36}{:<22}{:>12}  {}",
                    format!("distance ({})", self.meta.config.network.distance.name()),
                    "(None, 1)",
                    0,
                    "encoder(a), encoder(b)"
                ));
                0
            }
            crate::siamese::Head::WeightedL1 => {
                let params = enc.output_dim() + 1;
                lines.push(format!(
                    "{:<36}{:<22}{:>12}  {}",
                    "weighted_l1 (Dense |a−b| → logit)",
                    "(None, 1)",
                    group(params),
                    "encoder(a), encoder(b)"
                ));
                params
            }
        };
        // Keras counts batch-norm moving statistics as (non-trainable) parameters.
        let total = total + head_params;
        let trainable = self.network.num_params();
        lines.push("=".repeat(90));
        lines.push(format!("Total params: {}", group(total)));
        lines.push(format!("Trainable params: {}", group(trainable)));
        lines.push(format!(
            "Non-trainable params: {}",
            group(total.saturating_sub(trainable))
        ));
        lines.join("\n")
    }
}

/// `45952` → `"45,952"`.
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
