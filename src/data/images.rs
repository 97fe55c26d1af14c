//! Image datasets: one class per folder (AT&T faces, Omniglot, signatures) or per file-name
//! prefix (Yale faces), decoded by content into grayscale `[0, 1]` vectors.
//!
//! Every image becomes one row of `width · height` values, row-major (`y · width + x`):
//! converted to 8-bit grayscale, resized to `width × height` with a triangle (bilinear)
//! filter and divided by 255, so white is 1.0 and black 0.0; with `invert` each value `v`
//! becomes `1 − v` (ink on paper then reads as 1).
//!
//! Files are recognised by their first bytes, never by their extension, so Yale's
//! extension-less GIFs and upper-case `.PNG` files load; the formats compiled in are PNG, GIF,
//! JPEG and PNM (PGM/PPM/PBM/PAM). Folders are walked in natural order (`s2` before `s10`) so
//! results are deterministic, and images are decoded on all cores.

use std::cmp::Ordering;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use image::ImageFormat;
use image::imageops::FilterType;

use super::Matrix;
use crate::error::{Result, SiameseError};

/// Deepest folder nesting walked (guards against symlink loops).
const MAX_DEPTH: usize = 32;

/// Extensions of files that are never tried as images, whatever their first bytes.
const TEXT_EXTENSIONS: &[&str] = &[
    "txt", "md", "csv", "tsv", "json", "toml", "yaml", "yml", "py", "rs", "sh", "html", "xml",
    "npy", "npz", "gz", "zip", "pdf",
];

/// Samples with an integer class per row: what the image and MNIST loaders return.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSamples {
    /// One sample per row, `n × (width · height)` for images.
    pub samples: Matrix,
    /// The class of each row, an index into `class_names`.
    pub labels: Vec<usize>,
    /// Class names in index order (sorted naturally when they come from folders).
    pub class_names: Vec<String>,
    /// The file each row came from; empty when the samples came from one file (IDX).
    pub paths: Vec<PathBuf>,
    /// `(width, height)` of each image, when the samples are images.
    pub image_size: Option<(usize, usize)>,
}

impl LabelledSamples {
    /// Number of classes (the length of `class_names`).
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// How many samples each class has, indexed like `class_names`.
    pub fn samples_per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l) {
                *c += 1;
            }
        }
        counts
    }
}

/// How images are turned into vectors: size after resizing and optional inversion.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageOptions {
    /// Width in pixels after resizing.
    pub width: usize,
    /// Height in pixels after resizing.
    pub height: usize,
    /// Map each value `v` to `1 − v` (useful for dark ink on white paper).
    pub invert: bool,
}

impl ImageOptions {
    /// `width × height`, not inverted.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            invert: false,
        }
    }

    /// Values per image: `width · height`.
    pub fn dim(&self) -> usize {
        self.width * self.height
    }

    /// Errors unless both sides are in `1..=65535`.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [("width", self.width), ("height", self.height)] {
            if v == 0 || v > 65_535 {
                return Err(SiameseError::config(
                    format!("image {field}"),
                    format!("{v} pixels; it must be between 1 and 65535"),
                ));
            }
        }
        Ok(())
    }
}

/// Compares strings in natural order: runs of digits compare as numbers (`s2` < `s10`).
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, ra) = a.split_at(da);
                let (nb, rb) = b.split_at(db);
                let ta = trim_zeros(na);
                let tb = trim_zeros(nb);
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
                    .then_with(|| na.len().cmp(&nb.len()));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = ra;
                b = rb;
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n.min(s.len().saturating_sub(1))..]
}

/// Natural order of two paths, compared as `/`-joined strings.
pub(crate) fn natural_path_cmp(a: &Path, b: &Path) -> Ordering {
    natural_cmp(&a.to_string_lossy(), &b.to_string_lossy())
}

/// The image format of the file at `path`, from its first bytes; `None` for anything that is
/// not an image in a format this build can decode (or cannot be read).
pub fn sniff_image(path: &Path) -> Option<ImageFormat> {
    let name = path.file_name()?.to_string_lossy();
    if name.starts_with('.') {
        return None;
    }
    if let Some(ext) = path.extension() {
        let ext = ext.to_string_lossy().to_ascii_lowercase();
        if TEXT_EXTENSIONS.contains(&ext.as_str()) {
            return None;
        }
    }
    let mut head = [0u8; 16];
    let mut file = fs::File::open(path).ok()?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let head = &head[..n];
    let format = image::guess_format(head).ok()?;
    if !format.reading_enabled() {
        return None;
    }
    // PNM magics are two printable bytes ("P5"); demand the whitespace and the number (or
    // comment) that must follow, so a text file starting with "P1 …" is not taken for an image.
    if format == ImageFormat::Pnm {
        let rest = head.get(2..).unwrap_or(&[]);
        let first = rest.iter().position(|c| !c.is_ascii_whitespace());
        let pam = head.get(1) == Some(&b'7');
        let ok = first.is_some_and(|i| {
            i > 0
                && (rest[i].is_ascii_digit()
                    || rest[i] == b'#'
                    || pam && rest[i].is_ascii_uppercase())
        });
        if !ok {
            return None;
        }
    }
    Some(format)
}

/// Decodes one image by content into `width · height` grayscale values in `[0, 1]`.
///
/// The image is converted to 8-bit luma, resized to exactly `width × height` (aspect ratio
/// is not kept) with a triangle filter and scaled by `1/255`; `invert` maps `v → 1 − v`.
///
/// # Errors
/// [`SiameseError::Io`] if the file cannot be opened; [`SiameseError::Format`] naming the
/// file if it is not a decodable image; [`SiameseError::Config`] for a zero size.
pub fn load_image(path: &Path, opts: &ImageOptions) -> Result<Vec<f32>> {
    opts.validate()?;
    let reader = image::ImageReader::open(path)
        .map_err(|e| SiameseError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| SiameseError::io(path, e))?;
    if reader.format().is_none() {
        return Err(SiameseError::format(
            path,
            "not an image in a supported format (PNG, GIF, JPEG, PNM/PGM)",
        ));
    }
    let img = reader
        .decode()
        .map_err(|e| SiameseError::format(path, format!("cannot decode image: {e}")))?;
    Ok(preprocess_image(&img, opts))
}

/// Decodes an image held in memory (PNG, GIF, JPEG, PNM/PGM), refusing one wider or taller
/// than `max_side` pixels before decoding it; `what` names it in errors (e.g. `"inputs[2]"`).
///
/// ```
/// let png = {
///     let mut out = std::io::Cursor::new(Vec::new());
///     image::GrayImage::new(4, 3).write_to(&mut out, image::ImageFormat::Png).unwrap();
///     out.into_inner()
/// };
/// let img = siamese::data::images::decode_image(&png, 16, "upload").unwrap();
/// assert_eq!((img.width(), img.height()), (4, 3));
/// let err = siamese::data::images::decode_image(&png, 3, "upload").unwrap_err();
/// assert!(err.to_string().contains("4×3"), "{err}");
/// assert!(siamese::data::images::decode_image(b"not an image", 16, "upload").is_err());
/// ```
pub fn decode_image(bytes: &[u8], max_side: u32, what: &str) -> Result<image::DynamicImage> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SiameseError::invalid(what, format!("cannot read image: {e}")))?;
    if reader.format().is_none() {
        return Err(SiameseError::invalid(
            what,
            "is not an image in a supported format (PNG, GIF, JPEG, PNM/PGM)",
        ));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| SiameseError::invalid(what, format!("cannot read image header: {e}")))?;
    if w > max_side || h > max_side || w == 0 || h == 0 {
        return Err(SiameseError::invalid(
            what,
            format!("is a {w}×{h} image; sides of 1 to {max_side} pixels are accepted"),
        ));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SiameseError::invalid(what, format!("cannot read image: {e}")))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| SiameseError::invalid(what, format!("cannot decode image: {e}")))
}

/// Decoded images as rows of a matrix, each through [`preprocess_image`].
pub fn preprocess_images(images: &[image::DynamicImage], opts: &ImageOptions) -> Result<Matrix> {
    let mut data = Vec::with_capacity(images.len() * opts.dim());
    for img in images {
        data.extend(preprocess_image(img, opts));
    }
    Matrix::new(images.len(), opts.dim(), data)
}

/// One decoded image as a model input row: grayscale, resized to `opts.width × opts.height`
/// (triangle filter), scaled to `[0, 1]`, inverted when `opts.invert`. `opts` must be valid
/// ([`ImageOptions::validate`]).
pub fn preprocess_image(img: &image::DynamicImage, opts: &ImageOptions) -> Vec<f32> {
    let gray = img.to_luma8();
    // `validate` keeps both sides within u32.
    let (w, h) = (opts.width as u32, opts.height as u32);
    let gray = if gray.dimensions() == (w, h) {
        gray
    } else {
        image::imageops::resize(&gray, w, h, FilterType::Triangle)
    };
    let scale = 1.0 / 255.0;
    gray.as_raw()
        .iter()
        .map(|&p| {
            let v = f32::from(p) * scale;
            if opts.invert { 1.0 - v } else { v }
        })
        .collect()
}

/// Decodes many images on all cores, keeping their order, into an `n × (width · height)`
/// matrix.
pub(crate) fn load_many(paths: &[PathBuf], opts: &ImageOptions) -> Result<Matrix> {
    opts.validate()?;
    let dim = opts.dim();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(paths.len().max(1));
    let chunk = paths.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|ps| {
                s.spawn(move || {
                    let mut out = Vec::with_capacity(ps.len() * dim);
                    for p in ps {
                        out.extend(load_image(p, opts)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(SiameseError::Runtime(
                        "an image decoding thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let mut data = Vec::with_capacity(paths.len() * dim);
    for part in parts {
        data.extend(part?);
    }
    Matrix::new(paths.len(), dim, data)
}

/// The entries of `dir`, naturally sorted, as (files, subdirectories).
fn list_dir(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| SiameseError::io(dir, e))? {
        let entry = entry.map_err(|e| SiameseError::io(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // Follow symlinks; skip entries that vanished or cannot be stat-ed.
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => dirs.push(path),
            Ok(m) if m.is_file() => files.push(path),
            _ => {}
        }
    }
    files.sort_by(|a, b| natural_path_cmp(a, b));
    dirs.sort_by(|a, b| natural_path_cmp(a, b));
    Ok((files, dirs))
}

/// `rel` as a `/`-separated string.
fn rel_name(root: &Path, dir: &Path) -> String {
    dir.strip_prefix(root)
        .unwrap_or(dir)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Finds the classes of an image folder without decoding any image: `(class name, files)`,
/// sorted naturally by class name; files are naturally sorted within each class.
///
/// See [`load_image_folder`] for the rules.
///
/// # Errors
/// [`SiameseError::Io`] if `root` or a subfolder cannot be listed; [`SiameseError::Format`] if
/// `root` is not a directory.
pub fn scan_image_folder(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let meta = fs::metadata(root).map_err(|e| SiameseError::io(root, e))?;
    if !meta.is_dir() {
        return Err(SiameseError::format(
            root,
            "expected a folder of class folders (or of images named <class>.<anything>)",
        ));
    }
    let mut classes: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let (files, dirs) = list_dir(&dir)?;
        let images: Vec<PathBuf> = files
            .into_iter()
            .filter(|f| sniff_image(f).is_some())
            .collect();
        if depth == 0 {
            // Images directly in the root: the class is the file-name prefix before the first
            // '.' (Yale: subject01.glasses → subject01).
            for img in images {
                let name = img
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let class = name.split('.').next().unwrap_or(&name).to_string();
                match classes.iter_mut().find(|(c, _)| *c == class) {
                    Some((_, files)) => files.push(img),
                    None => classes.push((class, vec![img])),
                }
            }
        } else if !images.is_empty() {
            classes.push((rel_name(root, &dir), images));
        }
        if depth < MAX_DEPTH {
            stack.extend(dirs.into_iter().map(|d| (d, depth + 1)));
        }
    }
    classes.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    for (_, files) in &mut classes {
        files.sort_by(|a, b| natural_path_cmp(a, b));
    }
    Ok(classes)
}

/// Loads a labelled image folder: one class per directory that directly contains images.
///
/// The class name is the directory's path relative to `root`, `/`-separated (AT&T `s1` …
/// `s40`, Omniglot `Greek/character01`, signatures `049` and `049_forg`); folders are walked
/// recursively. Images lying directly in `root` form classes by the file-name prefix before
/// the first `.` (Yale: `subject01.glasses` → `subject01`). Non-image files (README, CSV, …)
/// are skipped by content. Classes and files are sorted naturally; label `i` is
/// `class_names[i]`.
///
/// # Errors
/// [`SiameseError::Io`] for a missing folder; [`SiameseError::Format`] naming a file that looks
/// like an image but does not decode; [`SiameseError::Empty`] naming the folder when it holds
/// no image; [`SiameseError::Config`] for a zero image size.
pub fn load_image_folder(root: &Path, opts: &ImageOptions) -> Result<LabelledSamples> {
    opts.validate()?;
    let classes = scan_image_folder(root)?;
    if classes.is_empty() {
        return Err(SiameseError::Empty(format!(
            "no images (PNG, GIF, JPEG, PGM) found in {}",
            root.display()
        )));
    }
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    let mut class_names = Vec::with_capacity(classes.len());
    for (i, (name, files)) in classes.into_iter().enumerate() {
        labels.extend(std::iter::repeat_n(i, files.len()));
        paths.extend(files);
        class_names.push(name);
    }
    let samples = load_many(&paths, opts)?;
    Ok(LabelledSamples {
        samples,
        labels,
        class_names,
        paths,
        image_size: Some((opts.width, opts.height)),
    })
}

/// Every image under `root` (a single image file, or a folder searched at any depth), in
/// natural path order, as an `n × (width · height)` matrix plus the path of each row.
///
/// # Errors
/// [`SiameseError::Io`] for a missing path; [`SiameseError::Format`] if `root` is a file that
/// is not an image or an image does not decode; [`SiameseError::Empty`] naming the folder when
/// it holds no image.
pub fn load_images_recursive(root: &Path, opts: &ImageOptions) -> Result<(Matrix, Vec<PathBuf>)> {
    opts.validate()?;
    let meta = fs::metadata(root).map_err(|e| SiameseError::io(root, e))?;
    let paths = if meta.is_file() {
        vec![root.to_path_buf()]
    } else {
        let mut found = Vec::new();
        let mut stack = vec![(root.to_path_buf(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let (files, dirs) = list_dir(&dir)?;
            found.extend(files.into_iter().filter(|f| sniff_image(f).is_some()));
            if depth < MAX_DEPTH {
                stack.extend(dirs.into_iter().map(|d| (d, depth + 1)));
            }
        }
        found.sort_by(|a, b| natural_path_cmp(a, b));
        found
    };
    if paths.is_empty() {
        return Err(SiameseError::Empty(format!(
            "no images (PNG, GIF, JPEG, PGM) found in {}",
            root.display()
        )));
    }
    let m = load_many(&paths, opts)?;
    Ok((m, paths))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a `w × h` grayscale image whose pixel (x, y) is `f(x, y)`, in the format the
    /// file name's extension implies (or PNG when `format` is given).
    pub(crate) fn write_gray(
        path: &Path,
        w: u32,
        h: u32,
        format: Option<ImageFormat>,
        f: impl Fn(u32, u32) -> u8,
    ) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]));
        match format {
            // The GIF encoder takes RGBA only.
            Some(ImageFormat::Gif) => image::DynamicImage::ImageLuma8(img)
                .to_rgba8()
                .save_with_format(path, ImageFormat::Gif)
                .unwrap(),
            Some(fmt) => img.save_with_format(path, fmt).unwrap(),
            None => img.save(path).unwrap(),
        }
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["s10", "s2", "s1", "a", "s02", "b1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["a", "b1", "s1", "s2", "s02", "s10"]);
    }

    #[test]
    fn single_image_is_gray_resized_and_scaled() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("white.png");
        write_gray(&p, 8, 4, None, |x, _| if x < 4 { 255 } else { 0 });
        let v = load_image(&p, &ImageOptions::new(8, 4)).unwrap();
        assert_eq!(v.len(), 32);
        assert_eq!(v[0], 1.0);
        assert_eq!(v[7], 0.0);
        let inv = ImageOptions {
            invert: true,
            ..ImageOptions::new(2, 2)
        };
        let v = load_image(&p, &inv).unwrap();
        assert_eq!(v.len(), 4);
        let plain = load_image(&p, &ImageOptions::new(2, 2)).unwrap();
        assert!(plain[0] > 0.8 && plain[1] < 0.2, "{plain:?}");
        for (i, p) in v.iter().zip(&plain) {
            assert!((i - (1.0 - p)).abs() < 1e-6);
        }
        // Content, not extension: a PGM saved without extension and a PNG named .PNG.
        let q = dir.path().join("noext");
        write_gray(&q, 3, 3, Some(ImageFormat::Pnm), |_, _| 51);
        let v = load_image(&q, &ImageOptions::new(3, 3)).unwrap();
        assert!((v[4] - 0.2).abs() < 1e-6);
        let r = dir.path().join("UP.PNG");
        write_gray(&r, 3, 3, Some(ImageFormat::Png), |_, _| 0);
        assert_eq!(
            load_image(&r, &ImageOptions::new(3, 3)).unwrap(),
            vec![0.0; 9]
        );
    }

    #[test]
    fn bad_images_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.png");
        write_gray(&p, 16, 16, None, |x, y| (x * y) as u8);
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_image(&p, &ImageOptions::new(4, 4)).unwrap_err();
        assert!(matches!(e, SiameseError::Format { .. }), "{e}");
        assert!(e.to_string().contains("broken.png"), "{e}");
        let t = dir.path().join("notes");
        fs::write(&t, "just some text").unwrap();
        let e = load_image(&t, &ImageOptions::new(4, 4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("notes") && e.contains("not an image"), "{e}");
        let e = load_image(&dir.path().join("gone.png"), &ImageOptions::new(4, 4)).unwrap_err();
        assert!(matches!(e, SiameseError::Io { .. }));
        let e = load_image(&p, &ImageOptions::new(0, 4)).unwrap_err();
        assert!(matches!(e, SiameseError::Config { .. }));
    }

    #[test]
    fn folder_of_class_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (class, n, shade) in [("s2", 2, 0u8), ("s10", 3, 255), ("s1", 1, 128)] {
            for i in 1..=n {
                write_gray(
                    &root.join(class).join(format!("{i}.pgm")),
                    5,
                    6,
                    None,
                    |_, _| shade,
                );
            }
        }
        // Nested classes and non-image files are handled.
        write_gray(&root.join("Greek/character01/a.png"), 5, 6, None, |_, _| 10);
        fs::write(root.join("README"), "P5 is not an image header here").unwrap();
        fs::write(root.join("s1/SOURCE.md"), "# source").unwrap();
        fs::write(root.join("s1/list.csv"), "a,b,1").unwrap();
        let opts = ImageOptions::new(5, 6);
        let ds = load_image_folder(root, &opts).unwrap();
        assert_eq!(ds.class_names, vec!["Greek/character01", "s1", "s2", "s10"]);
        assert_eq!(ds.samples_per_class(), vec![1, 1, 2, 3]);
        assert_eq!(ds.num_classes(), 4);
        assert_eq!(ds.samples.shape(), [7, 30]);
        assert_eq!(ds.labels, vec![0, 1, 2, 2, 3, 3, 3]);
        assert_eq!(ds.paths.len(), 7);
        assert!(ds.paths[3].ends_with("s2/2.pgm"));
        assert_eq!(ds.samples.row(6)[0], 1.0);
        assert_eq!(ds.image_size, Some((5, 6)));

        let (m, paths) = load_images_recursive(root, &opts).unwrap();
        assert_eq!(m.rows(), 7);
        assert!(paths[0].ends_with("Greek/character01/a.png"));
        let (m, _) = load_images_recursive(&root.join("s1/1.pgm"), &opts).unwrap();
        assert_eq!(m.shape(), [1, 30]);
    }

    #[test]
    fn flat_folder_uses_name_prefix_and_errors_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in ["subject02.happy", "subject01.glasses", "subject01.sad"] {
            write_gray(&root.join(name), 4, 4, Some(ImageFormat::Gif), |_, _| 200);
        }
        let ds = load_image_folder(root, &ImageOptions::new(2, 2)).unwrap();
        assert_eq!(ds.class_names, vec!["subject01", "subject02"]);
        assert_eq!(ds.samples_per_class(), vec![2, 1]);
        assert!(ds.paths[0].ends_with("subject01.glasses"));

        // A corrupt image in a folder names the file.
        let bad = root.join("subject03.sad");
        fs::write(&bad, b"GIF89a\x04\x00").unwrap();
        let e = load_image_folder(root, &ImageOptions::new(2, 2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("subject03.sad"), "{e}");

        // Empty folder and missing folder.
        let empty = root.join("empty");
        fs::create_dir(&empty).unwrap();
        fs::write(empty.join("README"), "nothing").unwrap();
        let e = load_image_folder(&empty, &ImageOptions::new(2, 2)).unwrap_err();
        assert!(
            matches!(e, SiameseError::Empty(_)) && e.to_string().contains("empty"),
            "{e}"
        );
        let e = load_images_recursive(&empty, &ImageOptions::new(2, 2)).unwrap_err();
        assert!(matches!(e, SiameseError::Empty(_)), "{e}");
        let e = load_image_folder(&root.join("missing"), &ImageOptions::new(2, 2)).unwrap_err();
        assert!(matches!(e, SiameseError::Io { .. }), "{e}");
        let e = load_image_folder(&empty.join("README"), &ImageOptions::new(2, 2)).unwrap_err();
        assert!(e.to_string().contains("README"), "{e}");
    }
}
