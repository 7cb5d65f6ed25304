//! A PACS round trip of `speck scan --dicom-sr --dicom-seg`: DCMTK's `storescp` plays the PACS
//! on a free local port, and the objects written for a phantom DICOM series are sent to it with
//! the very `storescu` command that docs/cli.md gives users (read from docs/cli.md, only its
//! host and port replaced). Checked: the association succeeds (storescu exits 0, no error), both
//! files arrive, with the same SOP Instance UIDs, and the stored data sets equal those written.
//!
//! Skipped, saying so, without DCMTK (`apt-get install dcmtk`; `.ci/run` installs it) or ONNX
//! Runtime.

mod scan_support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use scan_support::*;
use speck_phantom::OutputFormat;

/// True when `tool` runs (DCMTK tools answer `--version`).
fn has(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The `storescu` line of docs/cli.md's section on sending the objects to a PACS.
fn documented_storescu() -> String {
    let doc = std::fs::read_to_string(repo().join("docs/cli.md")).expect("docs/cli.md");
    let lines: Vec<&str> = doc
        .lines()
        .filter(|l| l.trim_start().starts_with("storescu "))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one storescu command in docs/cli.md: {lines:?}"
    );
    lines[0].trim().to_string()
}

/// A storescp that kills itself when dropped.
struct Pacs(Child);

impl Drop for Pacs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `storescp` as AE `PACS` on a free local port, storing into `dir`; waits until it answers.
fn start_pacs(dir: &Path) -> (Pacs, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("storescp")
        .args(["-aet", "PACS", "-od"])
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start storescp");
    let pacs = Pacs(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "storescp does not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (pacs, port)
}

fn object(path: &Path) -> InMemDicomObject {
    OpenFileOptions::new()
        .open_file(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_inner()
}

/// Every element of `obj`, nested ones with their path: `tag VR value` (pixel data by its
/// bytes); sequences by their items, so the encoding of lengths (which storescp may choose
/// anew) does not count.
fn flatten(obj: &InMemDicomObject, prefix: &str, out: &mut Vec<String>) {
    for e in obj.iter() {
        let tag = format!("{prefix}{}", e.header().tag);
        match e.items() {
            Some(items) => {
                out.push(format!("{tag} SQ {} items", items.len()));
                for (k, item) in items.iter().enumerate() {
                    flatten(item, &format!("{tag}[{k}]."), out);
                }
            }
            None => {
                let value = match e.header().vr {
                    VR::OB | VR::OW => format!("{:?}", e.to_bytes().ok()),
                    _ => e
                        .to_str()
                        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
                        .unwrap_or_default(),
                };
                out.push(format!("{tag} {:?} {value}", e.header().vr));
            }
        }
    }
}

fn elements(obj: &InMemDicomObject) -> Vec<String> {
    let mut out = Vec::new();
    flatten(obj, "", &mut out);
    out
}

fn uid(obj: &InMemDicomObject) -> String {
    obj.element(tags::SOP_INSTANCE_UID)
        .expect("SOPInstanceUID")
        .to_str()
        .expect("text")
        .trim_end_matches(['\0', ' '])
        .to_string()
}

#[test]
fn the_documented_storescu_command_stores_the_report_and_the_segmentation_in_a_pacs() {
    if !(has("storescu") && has("storescp")) {
        eprintln!("SKIPPED PACS round trip: DCMTK's storescu/storescp not installed (apt-get install dcmtk)");
        return;
    }
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let series = write(
        &phantom(21),
        &dir.path().join("archive"),
        OutputFormat::Dicom,
    );
    // As in docs/cli.md: the scan's output folder is `results`, the command runs beside it.
    let results = dir.path().join("results");
    assert_eq!(
        code(&scan(
            &[&series],
            &results,
            &["--dicom-sr", "--dicom-seg"],
            &[]
        )),
        0
    );
    let sent: Vec<PathBuf> = ["sr.dcm", "seg.dcm"]
        .iter()
        .flat_map(|name| {
            std::fs::read_dir(results.join("scans"))
                .expect("scans")
                .map(move |e| e.expect("entry").path().join(name))
        })
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(sent.len(), 2, "one report and one segmentation: {sent:?}");

    let received = dir.path().join("pacs");
    std::fs::create_dir_all(&received).expect("mkdir");
    let (_pacs, port) = start_pacs(&received);
    let documented = documented_storescu();
    assert!(
        documented.contains("pacs.example.org 104"),
        "docs/cli.md's storescu line names pacs.example.org 104: {documented}"
    );
    let command = documented.replace("pacs.example.org 104", &format!("127.0.0.1 {port}"));
    eprintln!("running: {command}");
    let out = Command::new("sh")
        .args(["-c", &command])
        .current_dir(dir.path())
        .output()
        .expect("run storescu");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "storescu failed:\n{log}");
    assert!(
        !log.lines()
            .any(|l| l.starts_with("E:") || l.starts_with("F:")),
        "storescu reported an error:\n{log}"
    );

    // Both arrived (storescp writes each before it confirms the C-STORE), as written.
    let mut stored: Vec<InMemDicomObject> = std::fs::read_dir(&received)
        .expect("received")
        .map(|e| object(&e.expect("entry").path()))
        .collect();
    stored.sort_by_key(uid);
    let mut mine: Vec<InMemDicomObject> = sent.iter().map(|p| object(p)).collect();
    mine.sort_by_key(uid);
    assert_eq!(
        stored.iter().map(uid).collect::<Vec<_>>(),
        mine.iter().map(uid).collect::<Vec<_>>(),
        "the PACS holds the SOP instances sent"
    );
    for (a, b) in stored.iter().zip(&mine) {
        assert_eq!(
            elements(a),
            elements(b),
            "{}: the stored data set differs from the one written",
            uid(a)
        );
    }
    eprintln!(
        "PACS round trip: {} objects stored on 127.0.0.1:{port}",
        stored.len()
    );
}
