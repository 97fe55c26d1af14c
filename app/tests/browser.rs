//! The page of `siamese serve` (`GET /`) in a real headless Chromium, driven over WebDriver
//! (fantoccini + the OS's chromedriver): verify two inputs, enrol a sample, identify it.
//!
//! It needs `chromium` and `chromedriver` (Debian: `chromium`, `chromium-driver`), so it is
//! ignored by a plain `cargo test`; `.ci/run` installs both and runs it with
//! `cargo test --release --test browser -- --ignored`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use siamese::io::Threshold;
use siamese::model::Siamese;

/// The text of the element `id` once it is not empty (5 s at most).
async fn text_of(c: &fantoccini::Client, id: &str) -> String {
    let out = c.find(Locator::Id(id)).await.unwrap();
    let mut text = String::new();
    for _ in 0..50 {
        text = out.text().await.unwrap();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run installs them and runs it"]
fn the_page_verifies_enrols_and_identifies_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Siamese::reference(4, 0).unwrap();
    m.set_threshold(Threshold {
        value: 0.5,
        source: "test".into(),
    });
    m.save(dir.path().join("model")).unwrap();

    let mut server = Command::new(env!("CARGO_BIN_EXE_siamese"))
        .args(["serve", "--bind", "127.0.0.1:0", "--model"])
        .arg(dir.path().join("model"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Killed(server);
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();

    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("chromedriver is installed (Debian package chromium-driver)");
    let _driver = Killed(driver);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut client = None;
        for _ in 0..50 {
            match ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let c = client.expect("chromedriver answers");
        c.goto(&base).await.unwrap();
        c.wait()
            .for_element(Locator::Css("body[data-ready='1']"))
            .await
            .unwrap();
        let model = c.find(Locator::Id("model")).await.unwrap().text().await.unwrap();
        assert!(model.contains("vectors of 4 numbers"), "{model}");

        // Verify: the distance shown is the API's.
        c.find(Locator::Id("in-a")).await.unwrap().send_keys("1, 0, 0, 0").await.unwrap();
        c.find(Locator::Id("in-b")).await.unwrap().send_keys("0, 1, 0, 0").await.unwrap();
        c.find(Locator::Id("verify-go")).await.unwrap().click().await.unwrap();
        let shown = c
            .wait()
            .for_element(Locator::Id("verify-distance"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let d = m
            .predict(
                &siamese::data::Matrix::new(1, 4, vec![1.0, 0.0, 0.0, 0.0]).unwrap(),
                &siamese::data::Matrix::new(1, 4, vec![0.0, 1.0, 0.0, 0.0]).unwrap(),
            )
            .unwrap()[0];
        assert_eq!(shown, format!("{d:.4}"));

        // Enrol, then identify the same vector.
        c.find(Locator::Id("enrol-id")).await.unwrap().send_keys("ada").await.unwrap();
        c.find(Locator::Id("in-enrol")).await.unwrap().send_keys("0.2 0.4 0.6 0.8").await.unwrap();
        c.find(Locator::Id("enrol-go")).await.unwrap().click().await.unwrap();
        let text = text_of(&c, "enrol-out").await;
        assert!(text.starts_with("enrolled sample"), "{text}");
        c.find(Locator::Id("in-probe")).await.unwrap().send_keys("0.2 0.4 0.6 0.8").await.unwrap();
        c.find(Locator::Id("identify-go")).await.unwrap().click().await.unwrap();
        let text = text_of(&c, "identify-out").await;
        assert!(text.starts_with("best: ada"), "{text}");
        c.close().await.unwrap();
    });
}
