//! `siamese serve` end to end: the binary on a loopback port, driven over HTTP.
//!
//! Every route; every bad request named in the service issue (wrong key, no key, oversized
//! body, corrupt image, wrong vector length, NaN, unknown identity, duplicate enrolment,
//! concurrent enrol + delete); and `kill -9` in a loop while enrolling, after which every
//! acknowledged sample must still be there.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};
use siamese::data::prepare::Preprocessing;
use siamese::data::{DataSource, ImageOptions, Matrix};
use siamese::io::Threshold;
use siamese::model::Siamese;

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_siamese"))
        .arg("serve")
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Server { child, base }
}

/// A server on `model_dir` with the gallery file `gallery`, plus `extra` flags.
fn start_with(model_dir: &Path, gallery: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--model",
        model_dir.to_str().unwrap(),
        "--gallery",
        gallery.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    start(&args)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// (status, JSON body) of a request with an optional JSON body and key.
fn call(method: &str, url: &str, body: Option<&Value>, key: Option<&str>) -> (u16, Value) {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
    raw(method, url, bytes.as_deref(), "application/json", key)
}

fn raw(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    ctype: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let a = agent();
    let mut resp = match (method, body) {
        ("GET", _) => with_key(a.get(url), key).call(),
        ("DELETE", _) => with_key(a.delete(url), key).call(),
        ("PUT", b) => with_key(a.put(url), key)
            .header("Content-Type", ctype)
            .send(b.unwrap_or(&[])),
        (_, b) => with_key(a.post(url), key)
            .header("Content-Type", ctype)
            .send(b.unwrap_or(&[])),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn with_key<B>(r: ureq::RequestBuilder<B>, key: Option<&str>) -> ureq::RequestBuilder<B> {
    match key {
        Some(k) => r.header("X-API-Key", k),
        None => r,
    }
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A reference MLP on 8 features with a threshold, saved under `dir/model`.
fn vector_model(dir: &Path) -> (PathBuf, Siamese) {
    let mut m = Siamese::reference(8, 0).unwrap();
    m.set_threshold(Threshold {
        value: 0.5,
        source: "test".into(),
    });
    let path = dir.join("model");
    m.save(&path).unwrap();
    (path, m)
}

fn keys(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("keys.txt");
    let key = siamese_app::serve::auth::keygen(&path, "test").unwrap();
    (path, key)
}

fn v(seed: usize) -> Value {
    let x: Vec<f32> = (0..8)
        .map(|i| ((i * 7 + seed * 13) % 11) as f32 / 11.0)
        .collect();
    json!({ "vector": x })
}

#[test]
fn every_route_answers_and_every_bad_request_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (model_dir, model) = vector_model(dir.path());
    let (key_file, key) = keys(dir.path());
    let gallery = dir.path().join("g.sqlite");
    let s = start_with(
        &model_dir,
        &gallery,
        &[
            "--api-keys",
            key_file.to_str().unwrap(),
            "--max-body-bytes",
            "20000",
        ],
    );
    let u = |p: &str| format!("{}{p}", s.base);
    let k = Some(key.as_str());

    // Health, model, page.
    assert_eq!(call("GET", &u("/healthz"), None, None).0, 200);
    let (st, info) = call("GET", &u("/v1/model"), None, None);
    assert_eq!(
        (st, info["input"].as_str(), info["input_dim"].as_u64()),
        (200, Some("vector"), Some(8))
    );
    let (st, page) = call("GET", &u("/"), None, None);
    assert!(
        st == 200
            && page
                .as_str()
                .unwrap()
                .contains("<title>siamese serve</title>")
    );

    // Verify equals the library's predict.
    let (a, b) = (v(1), v(2));
    let (st, r) = call(
        "POST",
        &u("/v1/verify"),
        Some(&json!({"a": a, "b": b})),
        None,
    );
    assert_eq!(st, 200, "{r}");
    let row = |x: &Value| -> Vec<f32> {
        x["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_f64().unwrap() as f32)
            .collect()
    };
    let want = model
        .predict(
            &Matrix::new(1, 8, row(&a)).unwrap(),
            &Matrix::new(1, 8, row(&b)).unwrap(),
        )
        .unwrap()[0];
    let got = r["distance"].as_f64().unwrap() as f32;
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    assert_eq!(r["same"].as_bool(), Some(want < 0.5));
    let (st, r) = call(
        "POST",
        &u("/v1/embed"),
        Some(&json!({"inputs": [a, b, v(3)]})),
        None,
    );
    assert_eq!(
        (st, r["embeddings"].as_array().unwrap().len()),
        (200, 3),
        "{r}"
    );

    // Gallery: create, enrol, list, identify, verify.
    let (st, r) = call(
        "PUT",
        &u("/v1/identities/ada"),
        Some(&json!({"metadata": {"desk": 4}})),
        k,
    );
    assert_eq!(st, 201, "{r}");
    assert_eq!(
        call(
            "PUT",
            &u("/v1/identities/ada"),
            Some(&json!({"metadata": {"desk": 5}})),
            k
        )
        .0,
        200
    );
    assert_eq!(call("PUT", &u("/v1/identities/bob"), None, k).0, 201);
    let (st, r) = call(
        "POST",
        &u("/v1/identities/ada/samples"),
        Some(&json!({"inputs": [v(1), v(4)]})),
        k,
    );
    assert_eq!(st, 201, "{r}");
    let ada_samples: Vec<i64> = r["sample_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert_eq!(
        call(
            "POST",
            &u("/v1/identities/bob/samples"),
            Some(&json!({"inputs": [v(9)]})),
            k
        )
        .0,
        201
    );
    let (st, r) = call("GET", &u("/v1/identities/ada"), None, None);
    assert_eq!(
        (
            st,
            r["identity"]["samples"].as_u64(),
            r["identity"]["metadata"]["desk"].as_i64()
        ),
        (200, Some(2), Some(5))
    );
    let (st, r) = call("GET", &u("/v1/identities?limit=10"), None, None);
    assert_eq!((st, r["identities"].as_array().unwrap().len()), (200, 2));
    let (st, r) = call(
        "POST",
        &u("/v1/identify"),
        Some(&json!({"probe": v(1), "k": 2, "score": "min"})),
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["matches"][0]["identity"], "ada", "{r}");
    assert!(r["matches"][0]["distance"].as_f64().unwrap() < 1e-2);
    let (st, r) = call(
        "POST",
        &u("/v1/identities/ada/verify"),
        Some(&json!({"probe": v(1)})),
        None,
    );
    assert_eq!((st, r["references"].as_u64()), (200, Some(2)), "{r}");

    // Keys: writes need one; a wrong one is refused; nothing is written either way.
    let (st, r) = call("PUT", &u("/v1/identities/eve"), None, None);
    assert_eq!(st, 401, "{r}");
    assert!(message(&r).contains("API key"));
    assert_eq!(
        call("PUT", &u("/v1/identities/eve"), None, Some("sk_wrong")).0,
        403
    );
    assert_eq!(call("DELETE", &u("/v1/identities/ada"), None, None).0, 401);
    assert_eq!(call("GET", &u("/v1/identities/eve"), None, None).0, 404);

    // Bad requests: each a 4xx naming the problem.
    let big = json!({"inputs": [{"vector": vec![0.5f32; 8000]}]});
    let (st, r) = call("POST", &u("/v1/embed"), Some(&big), None);
    assert_eq!(st, 413, "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/verify"),
        Some(&json!({"a": {"vector": [1.0, 2.0]}, "b": v(1)})),
        None,
    );
    assert_eq!(st, 400);
    assert!(message(&r).contains("8 numbers"), "{r}");
    let (st, r) = raw(
        "POST",
        &u("/v1/verify"),
        Some(br#"{"a": {"vector": [NaN,0,0,0,0,0,0,0]}, "b": {"vector": [0,0,0,0,0,0,0,0]}}"#),
        "application/json",
        None,
    );
    assert_eq!(st, 400, "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/verify"),
        Some(&json!({"a": {"vector": [1e39, 0, 0, 0, 0, 0, 0, 0]}, "b": v(1)})),
        None,
    );
    assert_eq!(st, 400, "{r}");
    assert!(message(&r).contains("inf"), "{r}");
    let (st, r) = raw(
        "POST",
        &u("/v1/verify"),
        Some(b"{not json"),
        "application/json",
        None,
    );
    assert_eq!(st, 400);
    assert!(message(&r).contains("request body"), "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/verify"),
        Some(&json!({"a": {"img": "x"}, "b": v(1)})),
        None,
    );
    assert_eq!(st, 400);
    assert!(
        message(&r).contains("`a`") || message(&r).contains("img"),
        "{r}"
    );
    let (st, r) = call(
        "POST",
        &u("/v1/verify"),
        Some(&json!({"a": {"image": "aGVsbG8="}, "b": v(1)})),
        None,
    );
    assert_eq!(st, 400);
    assert!(message(&r).contains("not an image"), "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/identities/nobody/samples"),
        Some(&json!({"inputs": [v(1)]})),
        k,
    );
    assert_eq!(st, 404, "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/identities/nobody/verify"),
        Some(&json!({"probe": v(1)})),
        None,
    );
    assert_eq!(st, 404, "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/identities/ada/samples"),
        Some(&json!({"inputs": [v(4)]})),
        k,
    );
    assert_eq!(st, 409, "{r}");
    assert!(
        message(&r).contains(&format!("sample {}", ada_samples[1])),
        "{r}"
    );
    let (st, r) = call("PUT", &u("/v1/identities/bad%20id"), None, k);
    assert_eq!(st, 400, "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/identify"),
        Some(&json!({"probe": v(1), "k": 0})),
        None,
    );
    assert_eq!(st, 400, "{r}");
    assert_eq!(call("GET", &u("/v1/nothing"), None, None).0, 404);
    assert_eq!(call("DELETE", &u("/v1/verify"), None, None).0, 405);

    // Deletes.
    let (st, _) = call(
        "DELETE",
        &u(&format!("/v1/identities/ada/samples/{}", ada_samples[0])),
        None,
        k,
    );
    assert_eq!(st, 200);
    assert_eq!(
        call(
            "DELETE",
            &u(&format!("/v1/identities/ada/samples/{}", ada_samples[0])),
            None,
            k
        )
        .0,
        404
    );
    let (st, r) = call("DELETE", &u("/v1/identities/ada"), None, k);
    assert_eq!((st, r["samples"].as_u64()), (200, Some(1)));
    let (st, r) = call(
        "POST",
        &u("/v1/identify"),
        Some(&json!({"probe": v(1), "k": 5})),
        None,
    );
    assert_eq!(
        (st, r["matches"].as_array().unwrap().len()),
        (200, 1),
        "{r}"
    );

    // Metrics count what happened.
    let (st, m) = call("GET", &u("/metrics"), None, None);
    let m = m.as_str().unwrap().to_string();
    assert_eq!(st, 200);
    assert!(
        m.contains("siamese_requests_total{route=\"/v1/verify\",method=\"POST\",status=\"400\"}"),
        "{m}"
    );
    assert!(m.contains("siamese_gallery_samples 1"), "{m}");
    assert!(m.contains("siamese_request_duration_seconds_bucket"), "{m}");
}

fn png(w: u32, h: u32, shade: u8) -> Vec<u8> {
    let img = image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([shade.wrapping_add((x * 9 + y * 5) as u8)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn image_models_take_base64_and_multipart_and_refuse_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Siamese::reference(16, 1).unwrap();
    m.set_preprocessing(
        Preprocessing {
            source: Some(DataSource::Images),
            image: Some(ImageOptions::new(4, 4)),
            text: None,
        },
        None,
    )
    .unwrap();
    m.set_threshold(Threshold {
        value: 0.3,
        source: "test".into(),
    });
    m.save(dir.path().join("model")).unwrap();
    let s = start(&[
        "--model",
        dir.path().join("model").to_str().unwrap(),
        "--max-image-side",
        "64",
    ]);
    let u = |p: &str| format!("{}{p}", s.base);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (a, b) = (png(8, 8, 0), png(8, 8, 90));
    let (st, r) = call(
        "POST",
        &u("/v1/verify"),
        Some(&json!({"a": {"image": b64(&a)}, "b": {"image": b64(&b)}})),
        None,
    );
    assert_eq!(st, 200, "{r}");
    let rows = m
        .encode_images(&[
            image::load_from_memory(&a).unwrap(),
            image::load_from_memory(&b).unwrap(),
        ])
        .unwrap();
    let d = m
        .predict(&rows.slice_rows(0, 1), &rows.slice_rows(1, 2))
        .unwrap()[0];
    assert!(
        (r["distance"].as_f64().unwrap() as f32 - d).abs() < 1e-4,
        "{r} vs {d}"
    );

    // Multipart enrolment (no key file: loopback writes are open).
    assert_eq!(call("PUT", &u("/v1/identities/ink"), None, None).0, 201);
    let boundary = "XyZ";
    let mut body = Vec::new();
    for (name, bytes) in [("inputs", &a), ("inputs", &b)] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"keep_raw\"\r\n\r\ntrue\r\n--{boundary}--\r\n").as_bytes());
    let (st, r) = raw(
        "POST",
        &u("/v1/identities/ink/samples"),
        Some(&body),
        &format!("multipart/form-data; boundary={boundary}"),
        None,
    );
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["sample_ids"].as_array().unwrap().len(), 2);
    // keep_raw stored the upload itself.
    let first = r["sample_ids"][0].as_i64().unwrap();
    let (st, r) = call(
        "GET",
        &u(&format!("/v1/identities/ink/samples/{first}")),
        None,
        None,
    );
    assert_eq!(
        (st, r["raw_base64"].as_str()),
        (200, Some(b64(&a).as_str())),
        "{r}"
    );
    let (st, _) = call("GET", &u("/v1/identities/ink/samples/999"), None, None);
    assert_eq!(st, 404);

    // Corrupt and oversized images; a vector for an image model.
    let mut broken = a.clone();
    broken.truncate(30);
    let (st, r) = call(
        "POST",
        &u("/v1/identify"),
        Some(&json!({"probe": {"image": b64(&broken)}})),
        None,
    );
    assert_eq!(st, 400, "{r}");
    assert!(message(&r).contains("probe[0]"), "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/identify"),
        Some(&json!({"probe": {"image": b64(&png(65, 8, 0))}})),
        None,
    );
    assert_eq!(st, 400, "{r}");
    assert!(message(&r).contains("65×8"), "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/identify"),
        Some(&json!({"probe": {"image": "***"}})),
        None,
    );
    assert_eq!(st, 400, "{r}");
    assert!(message(&r).contains("base64"), "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/identify"),
        Some(&json!({"probe": {"vector": [1.0]}})),
        None,
    );
    assert_eq!(st, 400, "{r}");
    assert!(message(&r).contains("takes images"), "{r}");
    let (st, r) = call(
        "POST",
        &u("/v1/identify"),
        Some(&json!({"probe": {"image": b64(&a)}})),
        None,
    );
    assert_eq!(
        (st, r["matches"][0]["identity"].as_str()),
        (200, Some("ink")),
        "{r}"
    );
}

#[test]
fn a_non_loopback_bind_needs_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (model_dir, _) = vector_model(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_siamese"))
        .args([
            "serve",
            "--model",
            model_dir.to_str().unwrap(),
            "--bind",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--api-keys"), "{err}");
}

#[test]
fn concurrent_enrol_and_delete_leave_a_consistent_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let (model_dir, _) = vector_model(dir.path());
    let gallery = dir.path().join("g.sqlite");
    let s = start_with(&model_dir, &gallery, &[]);
    let base = s.base.clone();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let base = base.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for i in 0..25 {
                    let id = format!("p{}", i % 3);
                    let url = format!("{base}/v1/identities/{id}");
                    let st = if t % 2 == 0 {
                        call("PUT", &url, None, None);
                        call(
                            "POST",
                            &format!("{url}/samples"),
                            Some(&json!({"inputs": [v(t * 100 + i)]})),
                            None,
                        )
                        .0
                    } else {
                        call("DELETE", &url, None, None).0
                    };
                    statuses.push(st);
                }
                statuses
            })
        })
        .collect();
    for t in threads {
        for st in t.join().unwrap() {
            assert!([200, 201, 404, 409].contains(&st), "status {st}");
        }
    }
    // What the index serves equals what the store holds, identity by identity.
    let (_, list) = call("GET", &format!("{base}/v1/identities"), None, None);
    let stored: u64 = list["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["samples"].as_u64().unwrap())
        .sum();
    let (_, health) = call("GET", &format!("{base}/healthz"), None, None);
    assert_eq!(health["samples"].as_u64(), Some(stored), "{health} {list}");
    drop(s);
    let s = start_with(&model_dir, &gallery, &[]);
    let (_, health) = call("GET", &format!("{}/healthz", s.base), None, None);
    assert_eq!(health["samples"].as_u64(), Some(stored));
}

#[test]
fn kill_9_while_enrolling_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (model_dir, _) = vector_model(dir.path());
    let gallery = dir.path().join("g.sqlite");
    let mut acked: Vec<i64> = Vec::new();
    let mut n = 0usize;
    for round in 0..5 {
        let mut s = start_with(&model_dir, &gallery, &[]);
        if round == 0 {
            assert_eq!(
                call("PUT", &format!("{}/v1/identities/w", s.base), None, None).0,
                201
            );
        }
        let base = s.base.clone();
        let start_n = n;
        let writer = std::thread::spawn(move || {
            let mut ids = Vec::new();
            let mut i = start_n;
            loop {
                let body =
                    json!({"inputs": [{"vector": [i as f32, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]}]});
                let bytes = serde_json::to_vec(&body).unwrap();
                let r = agent()
                    .post(format!("{base}/v1/identities/w/samples"))
                    .header("Content-Type", "application/json")
                    .send(&bytes[..]);
                match r {
                    Ok(mut resp) if resp.status() == 201 => {
                        let v: Value =
                            serde_json::from_str(&resp.body_mut().read_to_string().unwrap())
                                .unwrap();
                        ids.push(v["sample_ids"][0].as_i64().unwrap());
                    }
                    Ok(resp) => panic!("status {}", resp.status()),
                    Err(_) => return (ids, i), // the server is gone
                }
                i += 1;
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(150 + 70 * round as u64));
        // SIGKILL: no shutdown code runs.
        s.child.kill().unwrap();
        s.child.wait().unwrap();
        let (ids, next) = writer.join().unwrap();
        assert!(
            !ids.is_empty(),
            "round {round}: nothing was enrolled before the kill"
        );
        acked.extend(ids);
        n = next + 1;
    }
    let s = start_with(&model_dir, &gallery, &[]);
    let (st, r) = call(
        "GET",
        &format!("{}/v1/identities/w/samples", s.base),
        None,
        None,
    );
    assert_eq!(st, 200);
    let stored: std::collections::HashSet<i64> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["sample_id"].as_i64().unwrap())
        .collect();
    let lost: Vec<&i64> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(stored.len() >= acked.len());
}
