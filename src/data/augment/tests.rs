//! Tests of the augmentation: exact permutations, interpolation, the drawn ranges,
//! determinism and validation.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Affine, AffineParams, AugmentConfig, augment_rows, random_affine};
use crate::data::Matrix;
use crate::error::SiameseError;

/// `rows` images of `w × h` with distinct, non-symmetric pixel values.
fn ramp(rows: usize, w: usize, h: usize) -> Matrix {
    let data = (0..rows * w * h)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    Matrix::new(rows, w * h, data).unwrap()
}

fn apply(affine: &Affine, src: &[f32], w: usize, h: usize, fill: f32) -> Vec<f32> {
    let mut dst = vec![f32::NAN; src.len()];
    affine.apply(src, w, h, fill, &mut dst);
    dst
}

fn full() -> AugmentConfig {
    AugmentConfig {
        rotation: 15.0,
        shift: 0.1,
        scale: 0.1,
        shear: 10.0,
        fill: 0.0,
        ..AugmentConfig::default()
    }
}

#[test]
fn identity_config_leaves_images_bit_identical() {
    let mut images = ramp(5, 7, 6);
    // Values an arithmetic identity would not preserve bit for bit.
    images.data[0] = -0.0;
    images.data[1] = f32::NAN;
    images.data[2] = 1e-42; // subnormal
    let before: Vec<u32> = images.as_slice().iter().map(|v| v.to_bits()).collect();
    let config = AugmentConfig {
        fill: 1.0,
        ..AugmentConfig::default()
    };
    assert!(config.is_identity());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    augment_rows(&mut images, 7, 6, &config, &mut rng).unwrap();
    let after: Vec<u32> = images.as_slice().iter().map(|v| v.to_bits()).collect();
    assert_eq!(before, after);
    // The rng was not consumed.
    let mut fresh = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(rng.random::<u64>(), fresh.random::<u64>());
    // The identity Affine copies exactly too.
    let src = images.row(0).to_vec();
    let out = apply(&Affine::identity(), &src, 7, 6, 0.5);
    assert_eq!(
        src.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(random_affine(&config, &mut rng, 7, 6), Affine::identity());
}

#[test]
fn rotation_by_90_degrees_permutes_pixels_like_rot90() {
    // 3 × 3, values 0..9 row-major: np.rot90 (counter-clockwise) gives
    // [[2, 5, 8], [1, 4, 7], [0, 3, 6]].
    let src: Vec<f32> = (0..9).map(|v| v as f32).collect();
    let ccw = apply(&Affine::rotation_deg(90.0, 3, 3), &src, 3, 3, -1.0);
    assert_eq!(ccw, [2., 5., 8., 1., 4., 7., 0., 3., 6.]);
    let cw = apply(&Affine::rotation_deg(-90.0, 3, 3), &src, 3, 3, -1.0);
    assert_eq!(cw, [6., 3., 0., 7., 4., 1., 8., 5., 2.]);
    let half = apply(&Affine::rotation_deg(180.0, 3, 3), &src, 3, 3, -1.0);
    assert_eq!(half, [8., 7., 6., 5., 4., 3., 2., 1., 0.]);
    let full_turn = apply(&Affine::rotation_deg(360.0, 3, 3), &src, 3, 3, -1.0);
    assert_eq!(full_turn, src);

    // Even size (half-integer centre), 4 × 4: out[i][j] = in[j][n − 1 − i].
    let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let out = apply(&Affine::rotation_deg(90.0, 4, 4), &src, 4, 4, -1.0);
    let expected: Vec<f32> = (0..4)
        .flat_map(|i| (0..4).map(move |j| (j * 4 + (3 - i)) as f32))
        .collect();
    assert_eq!(out, expected);
    // Four quarter turns come back to the start.
    let mut img = src.clone();
    for _ in 0..4 {
        img = apply(&Affine::rotation_deg(90.0, 4, 4), &img, 4, 4, -1.0);
    }
    assert_eq!(img, src);
}

#[test]
fn small_rotation_is_smooth_and_centre_fixed() {
    // The centre pixel of an odd image maps to itself under any rotation.
    let a = Affine::rotation_deg(33.0, 5, 5);
    let (x, y) = a.map(2.0, 2.0);
    assert!(
        (x - 2.0).abs() < 1e-6 && (y - 2.0).abs() < 1e-6,
        "({x}, {y})"
    );
    // Non-square images: a quarter turn keeps the centre and does not panic.
    let src: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let out = apply(&Affine::rotation_deg(90.0, 4, 3), &src, 4, 3, 0.0);
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn integer_shift_moves_pixels_and_fills() {
    let (w, h) = (5, 4);
    let src: Vec<f32> = (0..w * h).map(|v| 0.01 * v as f32).collect();
    let fill = 0.75;
    let out = apply(&Affine::translation(2.0, -1.0), &src, w, h, fill);
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = (x as isize - 2, y as isize + 1);
            let expected = if sx >= 0 && sy < h as isize {
                src[sy as usize * w + sx as usize]
            } else {
                fill
            };
            assert_eq!(out[y * w + x], expected, "pixel ({x}, {y})");
        }
    }
    // The same shift built through about_centre.
    let params = AffineParams {
        shift_x: 2.0,
        shift_y: -1.0,
        ..AffineParams::default()
    };
    assert_eq!(
        apply(&Affine::about_centre(&params, w, h), &src, w, h, fill),
        out
    );
    // Shifting everything out leaves only fill.
    let gone = apply(&Affine::translation(w as f32, 0.0), &src, w, h, fill);
    assert!(gone.iter().all(|&v| v == fill));
}

#[test]
fn half_pixel_shift_interpolates_bilinearly() {
    // One row [0, 1, 0, 0]: shifting right by 0.5 averages neighbours, fill on the left.
    let src = [0.0, 1.0, 0.0, 0.0];
    let out = apply(&Affine::translation(0.5, 0.0), &src, 4, 1, 0.2);
    assert_eq!(out, [0.1, 0.5, 0.5, 0.0]);
}

#[test]
fn scale_and_shear_follow_the_formula() {
    // Scale 2 about the centre of a 5 × 5 image: output (4, 2) samples input (3, 2).
    let params = AffineParams {
        scale: 2.0,
        ..AffineParams::default()
    };
    let (x, y) = Affine::about_centre(&params, 5, 5).map(4.0, 2.0);
    assert!(
        (x - 3.0).abs() < 1e-6 && (y - 2.0).abs() < 1e-6,
        "({x}, {y})"
    );
    // Shear 45°: x' = x + (y − cy), so output (2, 4) samples input (0, 4).
    let params = AffineParams {
        shear_deg: 45.0,
        ..AffineParams::default()
    };
    let (x, y) = Affine::about_centre(&params, 5, 5).map(2.0, 4.0);
    assert!(
        (x - 0.0).abs() < 1e-6 && (y - 4.0).abs() < 1e-6,
        "({x}, {y})"
    );
}

#[test]
fn same_seed_same_output_different_seed_different() {
    let run = |seed: u64| {
        let mut images = ramp(8, 10, 12);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        augment_rows(&mut images, 10, 12, &full(), &mut rng).unwrap();
        images
    };
    let original = ramp(8, 10, 12);
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    assert_ne!(a, original);
    // Each row gets its own transform: identical input rows come out different.
    let mut twins = Matrix::new(
        2,
        100,
        [ramp(1, 10, 10).into_vec(), ramp(1, 10, 10).into_vec()].concat(),
    )
    .unwrap();
    augment_rows(
        &mut twins,
        10,
        10,
        &full(),
        &mut ChaCha8Rng::seed_from_u64(3),
    )
    .unwrap();
    assert_ne!(twins.row(0), twins.row(1));
    // Output stays in [0, 1] for inputs and fill in [0, 1].
    assert!(a.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn random_affine_draws_within_the_configured_ranges() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (w, h) = (20, 10);
    let draws = 300;
    // Shift only: M = [[1, 0, −t_x], [0, 1, −t_y]], |t_x| ≤ 0.1·20, |t_y| ≤ 0.1·10.
    let shift = AugmentConfig {
        shift: 0.1,
        ..AugmentConfig::default()
    };
    let (mut max_x, mut max_y) = (0.0f32, 0.0f32);
    for _ in 0..draws {
        let [[a, b, c], [d, e, f]] = random_affine(&shift, &mut rng, w, h).matrix();
        assert!((a - 1.0).abs() < 1e-6 && b.abs() < 1e-6 && d.abs() < 1e-6);
        assert!((e - 1.0).abs() < 1e-6);
        assert!(
            c.abs() <= 2.0 + 1e-5 && f.abs() <= 1.0 + 1e-5,
            "shift ({c}, {f})"
        );
        (max_x, max_y) = (max_x.max(c.abs()), max_y.max(f.abs()));
    }
    assert!(
        max_x > 1.8 && max_y > 0.9,
        "shifts span the range: {max_x}, {max_y}"
    );
    // Rotation only: θ within ±15°, spanning the range.
    let rotation = AugmentConfig {
        rotation: 15.0,
        ..AugmentConfig::default()
    };
    let (mut lo, mut hi) = (0.0f32, 0.0f32);
    for _ in 0..draws {
        let [[a, b, _], _] = random_affine(&rotation, &mut rng, w, h).matrix();
        // A⁻¹ = [[cos, −sin], [sin, cos]] for A = [[cos, sin], [−sin, cos]].
        let theta = (-b).atan2(a).to_degrees();
        assert!(theta.abs() <= 15.0 + 1e-3, "θ = {theta}");
        (lo, hi) = (lo.min(theta), hi.max(theta));
    }
    assert!(
        lo < -13.0 && hi > 13.0,
        "rotations span the range: [{lo}, {hi}]"
    );
    // Scale only: M = I / s, s ∈ [0.8, 1.2].
    let scale = AugmentConfig {
        scale: 0.2,
        ..AugmentConfig::default()
    };
    let (mut lo, mut hi) = (f32::MAX, 0.0f32);
    for _ in 0..draws {
        let [[a, _, _], [_, e, _]] = random_affine(&scale, &mut rng, w, h).matrix();
        let s = 1.0 / a;
        assert!(
            (a - e).abs() < 1e-6 && (0.8 - 1e-5..=1.2 + 1e-5).contains(&s),
            "s = {s}"
        );
        (lo, hi) = (lo.min(s), hi.max(s));
    }
    assert!(
        lo < 0.82 && hi > 1.18,
        "scales span the range: [{lo}, {hi}]"
    );
}

#[test]
fn centred_blob_keeps_its_mean_under_small_transforms() {
    let (w, h) = (28, 28);
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let blob: Vec<f32> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32 - cx, (i / w) as f32 - cy);
            (-(x * x + y * y) / (2.0 * 3.0 * 3.0)).exp()
        })
        .collect();
    let n = 200;
    let mut images = Matrix::new(n, w * h, blob.repeat(n)).unwrap();
    let config = AugmentConfig {
        rotation: 10.0,
        shift: 0.05,
        scale: 0.1,
        shear: 5.0,
        fill: 0.0,
        ..AugmentConfig::default()
    };
    augment_rows(
        &mut images,
        w,
        h,
        &config,
        &mut ChaCha8Rng::seed_from_u64(11),
    )
    .unwrap();
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let original = mean(&blob);
    let mut total = 0.0;
    let mut changed = 0;
    for r in 0..n {
        let row = images.row(r);
        let ratio = mean(row) / original;
        // Area scales by s² ∈ [0.81, 1.21]; bilinear blur adds a little.
        assert!(
            (0.78..=1.24).contains(&ratio),
            "row {r}: mean ratio {ratio}"
        );
        total += ratio;
        changed += usize::from(row != blob.as_slice());
    }
    let average = total / n as f32;
    // E[s²] = 1 + scale²/3 ≈ 1.0033.
    assert!((average - 1.0).abs() < 0.03, "average mean ratio {average}");
    assert_eq!(changed, n, "every image should be transformed");
}

#[test]
fn validate_rejects_bad_values_naming_the_field() {
    full().validate().unwrap();
    AugmentConfig::default().validate().unwrap();
    AugmentConfig {
        rotation: 180.0,
        shift: 0.99,
        scale: 0.99,
        shear: 79.9,
        fill: 1.0,
        ..AugmentConfig::default()
    }
    .validate()
    .unwrap();
    let cases: [(&str, AugmentConfig); 10] = [
        (
            "augment.rotation",
            AugmentConfig {
                rotation: -1.0,
                ..full()
            },
        ),
        (
            "augment.rotation",
            AugmentConfig {
                rotation: 180.5,
                ..full()
            },
        ),
        (
            "augment.rotation",
            AugmentConfig {
                rotation: f32::NAN,
                ..full()
            },
        ),
        (
            "augment.shift",
            AugmentConfig {
                shift: -0.1,
                ..full()
            },
        ),
        (
            "augment.shift",
            AugmentConfig {
                shift: 1.0,
                ..full()
            },
        ),
        (
            "augment.scale",
            AugmentConfig {
                scale: 1.0,
                ..full()
            },
        ),
        (
            "augment.scale",
            AugmentConfig {
                scale: f32::INFINITY,
                ..full()
            },
        ),
        (
            "augment.shear",
            AugmentConfig {
                shear: -5.0,
                ..full()
            },
        ),
        (
            "augment.shear",
            AugmentConfig {
                shear: 80.0,
                ..full()
            },
        ),
        (
            "augment.fill",
            AugmentConfig {
                fill: f32::NAN,
                ..full()
            },
        ),
    ];
    for (field, config) in cases {
        let err = config.validate().expect_err(field);
        match &err {
            SiameseError::Config { field: f, .. } => assert_eq!(f, field, "{err}"),
            other => panic!("expected a config error for {field}, got {other}"),
        }
        assert!(err.to_string().contains(field), "{err}");
        // augment_rows refuses it too.
        let mut images = ramp(1, 4, 4);
        assert!(
            augment_rows(
                &mut images,
                4,
                4,
                &config,
                &mut ChaCha8Rng::seed_from_u64(0)
            )
            .is_err()
        );
    }
}

#[test]
fn augment_rows_checks_the_image_size() {
    let mut images = ramp(2, 4, 4);
    let err = augment_rows(
        &mut images,
        5,
        4,
        &full(),
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap_err();
    assert!(matches!(err, SiameseError::Shape { .. }), "{err}");
    assert!(
        augment_rows(
            &mut images,
            usize::MAX,
            2,
            &full(),
            &mut ChaCha8Rng::seed_from_u64(0)
        )
        .is_err()
    );
    // Degenerate but consistent sizes are fine.
    for (w, h) in [(0, 0), (0, 3), (1, 1), (1, 5)] {
        let mut m = ramp(3, w, h);
        augment_rows(&mut m, w, h, &full(), &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    }
}

#[test]
fn never_panics_on_extreme_valid_or_invalid_configs() {
    let extreme = AugmentConfig {
        rotation: 180.0,
        shift: 0.999,
        scale: 0.999,
        shear: 79.999,
        fill: 1.0,
        ..AugmentConfig::default()
    };
    extreme.validate().unwrap();
    let mut images = ramp(50, 9, 7);
    augment_rows(
        &mut images,
        9,
        7,
        &extreme,
        &mut ChaCha8Rng::seed_from_u64(5),
    )
    .unwrap();
    assert!(images.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    // random_affine itself tolerates configs validate() would reject.
    let wild = AugmentConfig {
        rotation: f32::INFINITY,
        shift: -3.0,
        scale: f32::MAX,
        shear: f32::NAN,
        fill: 0.0,
        ..AugmentConfig::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let src = ramp(1, 6, 6).into_vec();
    for _ in 0..100 {
        let a = random_affine(&wild, &mut rng, 6, 6);
        let _ = apply(&a, &src, 6, 6, 0.0);
    }
    // A singular map samples nothing but fill.
    let params = AffineParams {
        scale: 0.0,
        ..AffineParams::default()
    };
    let out = apply(&Affine::about_centre(&params, 6, 6), &src, 6, 6, 0.25);
    assert!(out.iter().all(|&v| v == 0.25));
}

#[test]
fn config_reads_from_toml_with_defaults() {
    let config: AugmentConfig = toml::from_str("rotation = 10.0\nshift = 0.1").unwrap();
    assert_eq!(
        config,
        AugmentConfig {
            rotation: 10.0,
            shift: 0.1,
            ..AugmentConfig::default()
        }
    );
    assert!(toml::from_str::<AugmentConfig>("zoom = 0.1").is_err());
    let empty: AugmentConfig = toml::from_str("").unwrap();
    assert!(empty.is_identity());
}

#[test]
fn flips_mirror_exactly_and_jitter_keeps_the_mean_within_its_range() {
    let (w, h) = (5, 3);
    let img = ramp(1, w, h).row(0).to_vec();
    let mirrored: Vec<f32> = (0..w * h)
        .map(|i| img[(i / w) * w + (w - 1 - i % w)])
        .collect();
    let flip = AugmentConfig {
        flip: true,
        ..AugmentConfig::default()
    };
    let mut images = Matrix::new(64, w * h, img.repeat(64)).unwrap();
    augment_rows(&mut images, w, h, &flip, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let flipped = (0..64)
        .filter(|&r| images.row(r) == mirrored.as_slice())
        .count();
    let kept = (0..64).filter(|&r| images.row(r) == img.as_slice()).count();
    assert_eq!(flipped + kept, 64);
    assert!(flipped > 16 && kept > 16, "{flipped} flipped of 64");

    // Contrast about the mean (values stay inside [0, 1] here, so no clamping): the mean is
    // kept and every deviation from it scales by one c in [0.8, 1.2].
    let mid: Vec<f32> = img.iter().map(|p| 0.4 + 0.2 * p).collect();
    let mean = mid.iter().sum::<f32>() / mid.len() as f32;
    let contrast = AugmentConfig {
        contrast: 0.2,
        ..AugmentConfig::default()
    };
    let mut images = Matrix::new(16, w * h, mid.repeat(16)).unwrap();
    augment_rows(
        &mut images,
        w,
        h,
        &contrast,
        &mut ChaCha8Rng::seed_from_u64(2),
    )
    .unwrap();
    let mut factors = Vec::new();
    for r in 0..16 {
        let row = images.row(r);
        let m = row.iter().sum::<f32>() / row.len() as f32;
        assert!((m - mean).abs() < 1e-5);
        let c = (row[0] - mean) / (mid[0] - mean);
        assert!((0.8 - 1e-4..=1.2 + 1e-4).contains(&c), "{c}");
        for (p, q) in row.iter().zip(&mid) {
            assert!((p - mean - c * (q - mean)).abs() < 1e-5);
        }
        factors.push(c);
    }
    assert!(factors.iter().any(|&c| c < 0.95) && factors.iter().any(|&c| c > 1.05));

    // Brightness shifts and clamps to [0, 1].
    let bright = AugmentConfig {
        brightness: 0.5,
        ..AugmentConfig::default()
    };
    let mut images = ramp(32, w, h);
    augment_rows(
        &mut images,
        w,
        h,
        &bright,
        &mut ChaCha8Rng::seed_from_u64(3),
    )
    .unwrap();
    assert!(images.as_slice().iter().all(|p| (0.0..=1.0).contains(p)));
    assert_ne!(images, ramp(32, w, h));
    // Presets are valid, bad ranges are named.
    for name in super::AUGMENT_PRESETS {
        AugmentConfig::preset(name).unwrap().validate().unwrap();
    }
    let bad = AugmentConfig {
        contrast: 1.5,
        ..AugmentConfig::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("augment.contrast")
    );
}
