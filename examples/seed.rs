//! The reference Keras Siamese program, step by step, in Rust.
//!
//! ```text
//! cargo run --release --example seed
//! ```
//!
//! Keras original (functional API):
//!
//! ```python
//! base = Sequential([Dense(128, activation='relu')] * 3)      # shared base network
//! a, b = Input((100,)), Input((100,))
//! distance = Lambda(euclidean_distance)([base(a), base(b)])  # (batch, 1)
//! model = Model([a, b], distance)
//! model.compile(loss=contrastive_loss, optimizer=RMSprop())
//! pairs = np.random.rand(100, 2, 100); labels = np.random.randint(0, 2, 100)
//! model.fit([pairs[:, 0], pairs[:, 1]], labels, epochs=20, batch_size=32)
//! print(model.predict([np.random.rand(1, 100), np.random.rand(1, 100)]))
//! ```

use siamese::prelude::*;
use siamese::synthetic::random_pairs;

fn main() -> Result<()> {
    let seed = std::env::args()
        .nth(1)
        .map(|s| {
            s.parse::<u64>()
                .expect("the optional argument is an integer seed")
        })
        .unwrap_or(42);

    // 1. The base network: 100 → Dense(128, relu) ×3, Glorot-uniform kernels, zero biases.
    // 2. One instance applied to both inputs, Euclidean distance layer → (batch, 1).
    // 3. Contrastive loss (margin 1, label 1 = similar) and RMSprop with Keras defaults.
    let config = ModelConfig {
        network: SiameseConfig {
            encoder: EncoderConfig::Mlp(MlpEncoderConfig::reference(100)),
            distance: Distance::Euclidean,
            head: Head::Distance,
        },
        loss: LossConfig::contrastive(1.0),
        optimizer: OptimizerConfig::rmsprop(),
        seed,
    };
    let mut model = Siamese::new(config, &Device::flex())?;
    println!("{}\n", model.summary());

    // 4. 100 random pairs of 100-dim inputs with random 0/1 labels.
    let (a, b, labels) = random_pairs(100, 100, seed);

    // 5. fit: 20 epochs, batch 32, one line of loss per epoch.
    let options = FitOptions {
        seed,
        ..FitOptions::new(20, 32)
    };
    let history = model.fit(&a, &b, &labels, &options)?;

    // 6. predict one new random pair.
    let (new_a, new_b, _) = random_pairs(1, 100, seed + 1);
    let distance = model.predict(&new_a, &new_b)?;
    println!(
        "\nloss: {:.4} → {:.4}",
        history.loss()[0],
        history.loss().last().copied().unwrap_or(f32::NAN)
    );
    println!(
        "predicted distance for a new random pair: [[{:.6}]]",
        distance[0]
    );
    Ok(())
}
