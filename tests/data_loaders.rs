//! Loads every real dataset under `$SIAMESE_DATA_DIR` and checks the counts stated in each
//! folder's `SOURCE.md`. Without the variable (or the folder) each test prints why and passes.
//!
//! Images are loaded at 32×32 (or smaller) so the whole file runs in seconds.

use std::path::PathBuf;

use siamese::data::images::{ImageOptions, load_image_folder, load_images_recursive};
use siamese::data::info::describe;
use siamese::data::pairlist::{
    LabelConvention, load_pair_images, read_pair_list, read_pair_list_with,
};
use siamese::data::{idx, text};

/// `$SIAMESE_DATA_DIR/<name>`; `None` (the test skips, saying so) only when the variable is
/// unset: a set variable without the dataset is a failure, not a silent pass.
fn dataset(name: &str) -> Option<PathBuf> {
    let Some(root) = std::env::var_os("SIAMESE_DATA_DIR") else {
        println!("skipping: SIAMESE_DATA_DIR not set");
        return None;
    };
    let path = PathBuf::from(root).join(name);
    assert!(
        path.exists(),
        "SIAMESE_DATA_DIR is set but {} is missing",
        path.display()
    );
    Some(path)
}

fn opts(side: usize) -> ImageOptions {
    ImageOptions::new(side, side)
}

#[test]
fn att_faces_40_subjects_of_10() {
    let Some(dir) = dataset("att_faces") else {
        return;
    };
    // Native size first: 92×112 gives the pixels unchanged.
    let native = load_image_folder(
        &dir,
        &ImageOptions {
            width: 92,
            height: 112,
            invert: false,
        },
    )
    .unwrap();
    assert_eq!(native.num_classes(), 40);
    assert_eq!(native.samples_per_class(), vec![10; 40]);
    assert_eq!(native.samples.shape(), [400, 92 * 112]);
    assert_eq!(native.class_names[0], "s1");
    assert_eq!(native.class_names[1], "s2");
    assert_eq!(native.class_names[39], "s40");
    assert!(native.paths[0].ends_with("s1/1.pgm"));
    assert!(native.paths[1].ends_with("s1/2.pgm"));
    let (lo, hi) = native
        .samples
        .as_slice()
        .iter()
        .fold((1.0f32, 0.0f32), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(
        (0.0..=1.0).contains(&lo) && hi <= 1.0 && hi > 0.5,
        "{lo}..{hi}"
    );
    let info = describe(&dir).unwrap();
    assert!(info.contains("40 classes, 400 images"), "{info}");
    assert!(info.contains("92×112 (400)"), "{info}");
    println!("{info}");
}

#[test]
fn yale_faces_15_subjects_164_images() {
    let Some(dir) = dataset("yale_faces") else {
        return;
    };
    let ds = load_image_folder(&dir, &opts(32)).unwrap();
    assert_eq!(ds.num_classes(), 15);
    assert_eq!(ds.samples.shape(), [164, 32 * 32]);
    let mut expect = vec![11; 15];
    expect[0] = 10; // subject01.centerlight is missing
    assert_eq!(ds.samples_per_class(), expect);
    assert_eq!(ds.class_names[0], "subject01");
    assert_eq!(ds.class_names[14], "subject15");
    let info = describe(&dir).unwrap();
    assert!(
        info.contains("15 classes, 164 images") && info.contains("320×243 (164)"),
        "{info}"
    );
    assert!(info.contains("GIF (164)"), "{info}");
    println!("{info}");
}

#[test]
fn mnist_test_set() {
    let Some(dir) = dataset("mnist") else { return };
    let ds = idx::load_mnist(&dir).unwrap();
    assert_eq!(ds.samples.shape(), [10_000, 784]);
    assert_eq!(ds.image_size, Some((28, 28)));
    assert_eq!(
        ds.samples_per_class(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(&ds.labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let train = idx::read_idx_labels(&dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(train.len(), 60_000);
    assert_eq!(train.iter().filter(|&&l| l == 1).count(), 6742);
    let max = ds.samples.as_slice().iter().cloned().fold(0.0f32, f32::max);
    assert_eq!(max, 1.0);
    let info = describe(&dir).unwrap();
    assert!(
        info.contains("10000 images of 28×28") && info.contains("1:1135"),
        "{info}"
    );
    println!("{info}");
}

#[test]
fn omniglot_small1() {
    let Some(dir) = dataset("omniglot") else {
        return;
    };
    let split = dir.join("images_background_small1");
    let ds = load_image_folder(
        &split,
        &ImageOptions {
            width: 28,
            height: 28,
            invert: true,
        },
    )
    .unwrap();
    assert_eq!(ds.num_classes(), 136);
    assert_eq!(ds.samples.shape(), [2720, 28 * 28]);
    assert_eq!(ds.samples_per_class(), vec![20; 136]);
    assert!(ds.class_names.iter().all(|c| c.contains("/character")));
    assert!(ds.class_names.iter().any(|c| c == "Latin/character01"));
    // Inverted: ink (black strokes on white) is high, background low.
    let mean = ds.samples.as_slice().iter().sum::<f32>() / ds.samples.as_slice().len() as f32;
    assert!(mean < 0.5, "mean {mean}");
    let info = describe(&split).unwrap();
    assert!(
        info.contains("136 classes, 2720 images") && info.contains("105×105 (2720)"),
        "{info}"
    );
    println!("{info}");
}

#[test]
fn signatures_folder_and_pairs() {
    let Some(dir) = dataset("signatures_sigcomp2011_dutch") else {
        return;
    };
    let o = ImageOptions {
        width: 32,
        height: 16,
        invert: true,
    };
    let ds = load_image_folder(&dir, &o).unwrap();
    assert_eq!(ds.num_classes(), 16);
    assert_eq!(ds.samples.rows(), 200);
    let count = |name: &str| {
        let i = ds.class_names.iter().position(|c| c == name).unwrap();
        ds.samples_per_class()[i]
    };
    let genuine: usize = (49..=56).map(|w| count(&format!("0{w}"))).sum();
    let forged: usize = (49..=56).map(|w| count(&format!("0{w}_forg"))).sum();
    assert_eq!((genuine, forged), (96, 104));
    assert_eq!(count("054_forg"), 20);

    let csv = dir.join("test_pairs_subset.csv");
    let raw = read_pair_list(&csv).unwrap();
    assert_eq!(raw.len(), 2304);
    assert_eq!(raw.iter().filter(|e| e.2 == 1.0).count(), 1248);
    assert!(raw.iter().all(|e| e.0.is_file() && e.1.is_file()));
    // In the file 1 = forgery; in ours 1 = similar (both genuine).
    let ours = read_pair_list_with(&csv, LabelConvention::OneMeansDifferent).unwrap();
    assert_eq!(ours.iter().filter(|e| e.2 == 1.0).count(), 1056);
    assert!(ours.iter().filter(|e| e.2 == 0.0).all(|e| {
        e.1.parent()
            .is_some_and(|p| p.to_string_lossy().ends_with("_forg"))
    }));
    let pairs = load_pair_images(&ours, &o).unwrap();
    assert_eq!(pairs.a.shape(), [2304, 32 * 16]);
    assert_eq!(pairs.b.shape(), [2304, 32 * 16]);
    assert_eq!(pairs.labels.iter().sum::<f32>(), 1056.0);

    let info = describe(&dir).unwrap();
    assert!(info.contains("16 classes, 200 images"), "{info}");
    assert!(
        info.contains("2304 pairs, label 1: 1248, label 0: 1056"),
        "{info}"
    );
    println!("{info}");
}

#[test]
fn embed_inputs_any_depth() {
    let Some(dir) = dataset("att_faces") else {
        return;
    };
    let (m, paths) = load_images_recursive(&dir.join("s7"), &opts(16)).unwrap();
    assert_eq!(m.shape(), [10, 256]);
    assert!(paths[9].ends_with("10.pgm"));
    let (m, _) = load_images_recursive(&dir.join("s7/1.pgm"), &opts(16)).unwrap();
    assert_eq!(m.shape(), [1, 256]);
}

#[test]
fn sts_benchmark_counts() {
    let Some(dir) = dataset("sts_benchmark") else {
        return;
    };
    for (file, n) in [
        ("sts-train.csv", 5749),
        ("sts-dev.csv", 1500),
        ("sts-test.csv", 1379),
    ] {
        let pairs = text::read_stsb(&dir.join(file)).unwrap();
        assert_eq!(pairs.len(), n, "{file}");
        assert!(
            pairs.iter().all(|p| (0.0..=5.0).contains(&p.score)),
            "{file}"
        );
        assert!(
            pairs.iter().all(|p| !p.a.is_empty() && !p.b.is_empty()),
            "{file}"
        );
        let info = describe(&dir.join(file)).unwrap();
        assert!(info.contains(&format!("{n} pairs")), "{info}");
        print!("{info}");
    }
    let first = &text::read_stsb(&dir.join("sts-train.csv")).unwrap()[0];
    assert_eq!(first.a, "A plane is taking off.");
    assert_eq!(first.b, "An air plane is taking off.");
    assert_eq!(first.score, 5.0);
}

#[test]
fn sick_counts_and_splits() {
    let Some(dir) = dataset("sick") else { return };
    let path = dir.join("SICK.txt");
    let all = text::read_sick(&path, None).unwrap();
    assert_eq!(all.len(), 9840);
    assert!(all.iter().all(|p| (1.0..=5.0).contains(&p.score)));
    for (split, n) in [("TRAIN", 4439), ("TRIAL", 495), ("TEST", 4906)] {
        assert_eq!(
            text::read_sick(&path, Some(split)).unwrap().len(),
            n,
            "{split}"
        );
    }
    assert_eq!(all[0].score, 4.5);
    assert!(all[0].a.starts_with("A group of kids"));
    let info = describe(&path).unwrap();
    assert!(
        info.contains("9840 pairs") && info.contains("TRAIN 4439, TRIAL 495, TEST 4906"),
        "{info}"
    );
    print!("{info}");
}

/// The `[data]` section of a run config.
#[derive(serde::Deserialize)]
struct Run {
    data: siamese::data::DataConfig,
}

fn run_config(text: &str) -> Run {
    toml::from_str(text).unwrap()
}

/// Class names of the samples of an indexed pair set.
fn sample_classes(set: &siamese::data::prepare::PairSet) -> Vec<String> {
    let s = set.samples().expect("indexed pairs");
    s.labels.iter().map(|&c| s.class_names[c].clone()).collect()
}

#[test]
fn omniglot_test_folder_drops_alphabets_seen_in_training() {
    let Some(dir) = dataset("omniglot") else {
        return;
    };
    let c = run_config(&format!(
        "[data]\nsource = \"images\"\npath = {:?}\ntest_path = {:?}\nimage_width = 12\n\
         image_height = 12\ninvert = true\npairing = \"random\"\nnum_pairs = 200\n\
         split = \"class\"\nvalidation_fraction = 0.1\n",
        dir.join("images_background_small1"),
        dir.join("images_background_small2")
    ));
    let data = siamese::data::prepare::prepare(&c.data, 0).unwrap();
    assert!(
        data.description[0].contains("dropped 50 classes")
            && data.description[0].contains("Greek, Latin"),
        "{:?}",
        data.description
    );
    let test = sample_classes(&data.test);
    assert_eq!(test.len(), 2120); // (47 + 42 + 17) characters × 20 drawers
    let mut alphabets: Vec<&str> = test.iter().map(|n| n.split('/').next().unwrap()).collect();
    alphabets.dedup();
    assert_eq!(alphabets, ["Japanese_(katakana)", "Sanskrit", "Tagalog"]);
    let train = sample_classes(&data.train);
    let val = sample_classes(data.validation.as_ref().unwrap());
    assert_eq!(train.len() + val.len(), 2720);
    assert!(
        train.iter().all(|n| !val.contains(n)),
        "validation classes are unseen"
    );
    // Within-alphabet one-shot trials on the test characters.
    let s = data.test.samples().unwrap();
    let (groups, names) = siamese::eval::parent_groups(&s.class_names);
    assert_eq!(names, ["Japanese_(katakana)", "Sanskrit", "Tagalog"]);
    let trials =
        siamese::eval::one_shot_trials_within(&s.labels, Some(&groups), 20, 100, 1).unwrap();
    for t in &trials {
        let g = groups[s.labels[t.query]];
        assert!(t.candidates.iter().all(|&c| groups[s.labels[c]] == g));
    }
}

#[test]
fn omniglot_all_joins_both_sets_and_holds_out_whole_alphabets() {
    let Some(dir) = dataset("omniglot") else {
        return;
    };
    let alphabet = |n: &String| n.split('/').next().unwrap().to_string();
    let mut validated = std::collections::BTreeSet::new();
    for seed in 0..3 {
        let c = run_config(&format!(
            "[data]\nsource = \"images\"\npath = {:?}\nextra_paths = [{:?}]\n\
             image_width = 8\nimage_height = 8\ninvert = true\npairing = \"random\"\n\
             num_pairs = 100\nsplit = \"group\"\ntest_fraction = 0\nvalidation_fraction = 0.25\n",
            dir.join("images_background_small1"),
            dir.join("images_background_small2")
        ));
        let data = siamese::data::prepare::prepare(&c.data, seed).unwrap();
        // Greek and Latin are in both sets (identical files): counted once.
        assert!(
            data.description[0].contains("skipped 50 classes")
                && data.description[0].contains("Greek, Latin"),
            "{:?}",
            data.description
        );
        assert!(data.test.is_empty());
        assert!(
            data.description
                .iter()
                .any(|d| d == "test: none (data.test_fraction = 0)"),
            "{:?}",
            data.description
        );
        let train = sample_classes(&data.train);
        let val = sample_classes(data.validation.as_ref().unwrap());
        assert_eq!(train.len() + val.len(), 4840, "242 characters × 20 drawers");
        let train_alphabets: std::collections::BTreeSet<String> =
            train.iter().map(alphabet).collect();
        let val_alphabets: std::collections::BTreeSet<String> = val.iter().map(alphabet).collect();
        // round(8 alphabets × 0.25) = 2 whole alphabets for validation, unseen in training.
        assert_eq!(val_alphabets.len(), 2, "{val_alphabets:?}");
        assert_eq!(train_alphabets.len(), 6, "{train_alphabets:?}");
        assert!(train_alphabets.is_disjoint(&val_alphabets));
        validated.extend(val_alphabets);
    }
    assert!(
        validated.len() > 2,
        "seeds draw different alphabets: {validated:?}"
    );
}

#[test]
fn signature_folds_are_writer_disjoint() {
    let Some(dir) = dataset("signatures_sigcomp2011_dutch") else {
        return;
    };
    let writer = |n: &String| n.trim_end_matches("_forg").to_string();
    let mut tested = Vec::new();
    for fold in 0..4 {
        let c = run_config(&format!(
            "[data]\nsource = \"images\"\npath = {dir:?}\nimage_width = 16\nimage_height = 8\n\
             invert = true\npairing = \"genuine-forgery\"\nsplit = \"class\"\nfolds = 4\n\
             fold = {fold}\nvalidation_fraction = 0.2\n"
        ));
        let data = siamese::data::prepare::prepare(&c.data, 0).unwrap();
        let parts = [&data.train, data.validation.as_ref().unwrap(), &data.test];
        let writers: Vec<Vec<String>> = parts
            .iter()
            .map(|p| {
                let mut w: Vec<String> = sample_classes(p).iter().map(writer).collect();
                w.sort();
                w.dedup();
                w
            })
            .collect();
        assert_eq!(writers[2].len(), 2, "two test writers per fold");
        assert_eq!(writers[1].len(), 1, "one validation writer");
        assert_eq!(writers[0].len(), 5);
        for w in &writers[2] {
            assert!(!writers[0].contains(w) && !writers[1].contains(w));
        }
        tested.extend(writers[2].clone());
        // Every pair compares two signatures of one writer; the first is genuine, and the
        // second is a forgery exactly when the pair is labelled different.
        let s = data.test.samples().unwrap();
        let siamese::data::prepare::PairSet::Indexed { pairs, .. } = &data.test else {
            panic!("indexed test pairs");
        };
        for p in pairs {
            let (a, b) = (&s.class_names[s.labels[p.i]], &s.class_names[s.labels[p.j]]);
            assert_eq!(writer(a), writer(b));
            assert!(!a.ends_with("_forg"));
            assert_eq!(b.ends_with("_forg"), p.label == 0.0);
        }
    }
    tested.sort();
    assert_eq!(
        tested,
        ["049", "050", "051", "052", "053", "054", "055", "056"]
    );
}

#[test]
fn text_sources_tokenise_their_published_splits() {
    let Some(sts) = dataset("sts_benchmark") else {
        return;
    };
    let c = run_config(&format!(
        "[data]\nsource = \"stsb\"\npath = {sts:?}\nmax_len = 16\nvocab_size = 2000\n\
         label_threshold = 4.0\n"
    ));
    let data = siamese::data::prepare::prepare(&c.data, 0).unwrap();
    assert_eq!(
        (
            data.train.len(),
            data.validation.as_ref().unwrap().len(),
            data.test.len()
        ),
        (5749, 1500, 1379)
    );
    assert_eq!(data.input_dim, 16);
    let text = data.text.as_ref().unwrap();
    assert!(text.tokenizer.vocab_size() <= 2001);
    // Binary labels: similar exactly when the gold score is at least 4.
    let labels = data.test.data().labels();
    for (y, s) in labels.iter().zip(&text.test_scores) {
        assert_eq!(*y, if *s >= 4.0 { 1.0 } else { 0.0 });
    }
    let siamese::data::prepare::PairSet::Dense(p) = &data.train else {
        panic!("dense text pairs");
    };
    // Ids are below the vocabulary size, padding is 0 and only trails.
    for row in (0..p.a.rows()).map(|r| p.a.row(r)) {
        assert!(
            row.iter()
                .all(|&v| v >= 0.0 && (v as usize) < text.tokenizer.vocab_size())
        );
        let first_pad = row.iter().position(|&v| v == 0.0).unwrap_or(row.len());
        assert!(row[first_pad..].iter().all(|&v| v == 0.0));
    }
    let Some(sick) = dataset("sick") else {
        return;
    };
    let c = run_config(&format!(
        "[data]\nsource = \"sick\"\npath = {:?}\nmax_len = 12\n",
        sick.join("SICK.txt")
    ));
    let data = siamese::data::prepare::prepare(&c.data, 0).unwrap();
    assert_eq!(
        (
            data.train.len(),
            data.validation.as_ref().unwrap().len(),
            data.test.len()
        ),
        (4439, 495, 4906) // SICK.txt's SemEval_set column
    );
    // Graded labels: (score − 1) / 4 in [0, 1].
    let labels = data.test.data().labels();
    let scores = &data.text.as_ref().unwrap().test_scores;
    for (y, s) in labels.iter().zip(scores) {
        assert!((y - (s - 1.0) / 4.0).abs() < 1e-6);
    }
}
