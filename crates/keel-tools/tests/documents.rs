//! Read of images, PDFs and notebooks, and NotebookEdit, on real files; edited notebooks are
//! checked with Jupyter's own `nbformat` (installed with the test peers).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use common::{Workspace, s};
use serde_json::{Value, json};

fn png(width: u32, height: u32) -> Vec<u8> {
    // A gradient, so the image does not compress to nothing.
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x % 256) as u8,
            (y % 256) as u8,
            ((x * 7 + y * 13) % 256) as u8,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn decoded_dimensions(source: &Value) -> (u32, u32) {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(source["data"].as_str().unwrap())
        .unwrap();
    let image = image::load_from_memory(&bytes).unwrap();
    (image.width(), image.height())
}

// ---------- images ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_png_is_sent_as_an_image_block_unchanged() {
    let ws = Workspace::new();
    let bytes = png(64, 32);
    let path = ws.path("shot.png");
    std::fs::write(&path, &bytes).unwrap();
    let result = ws.ok("Read", json!({"file_path": s(&path)})).await;
    assert_eq!(result.images.len(), 1);
    let source = &result.images[0];
    assert_eq!(source["type"], "base64");
    assert_eq!(source["media_type"], "image/png");
    assert_eq!(
        source["data"],
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    assert!(result.content.contains("64x32"), "{}", result.content);
    let structured = result.structured.clone().unwrap();
    assert_eq!(structured["type"], "image");
    assert_eq!(structured["file"]["dimensions"]["displayWidth"], 64);
    // The result goes to the model as a text block and an image block.
    let blocks = serde_json::to_value(result_content(&result)).unwrap();
    assert_eq!(blocks[1]["type"], "image");
    assert_eq!(blocks[1]["source"]["media_type"], "image/png");
}

fn result_content(result: &keel_tools::ToolCallResult) -> keel_protocol::ToolResultContent {
    result.to_content()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_image_is_scaled_down_to_fit() {
    let ws = Workspace::new();
    let path = ws.path("big.png");
    std::fs::write(&path, png(2000, 500)).unwrap();
    let result = ws.ok("Read", json!({"file_path": s(&path)})).await;
    let (w, h) = decoded_dimensions(&result.images[0]);
    assert_eq!((w, h), (1568, 392));
    assert!(
        result.content.contains("2000x500") && result.content.contains("1568x392"),
        "{}",
        result.content
    );
    let data = result.images[0]["data"].as_str().unwrap();
    assert!(data.len() < 5_000_000, "base64 of {} bytes", data.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_recognised_by_content_not_name() {
    let ws = Workspace::new();
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(10, 10, image::Rgb([200, 0, 0])))
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new(&mut jpeg))
        .unwrap();
    let path = ws.path("capture.dat");
    std::fs::write(&path, &jpeg).unwrap();
    let result = ws.ok("Read", json!({"file_path": s(&path)})).await;
    assert_eq!(result.images[0]["media_type"], "image/jpeg");

    // A file named .png that is not one is read as what it is.
    let fake = ws.write("fake.png", "just text\n");
    let result = ws.ok("Read", json!({"file_path": s(&fake)})).await;
    assert!(result.images.is_empty());
    assert_eq!(result.content, "     1\tjust text");

    // A broken image says so.
    let broken = ws.path("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let error = ws.err("Read", json!({"file_path": s(&broken)})).await;
    assert!(error.contains("not a readable PNG image"), "{error}");
}

// ---------- PDF ----------

/// A small PDF with one line of text per page, written by hand with a correct xref table.
fn pdf(pages: &[&str]) -> Vec<u8> {
    let n = pages.len();
    let font_id = 3 + 2 * n;
    let mut objects: Vec<String> = Vec::new();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 3 + 2 * i)).collect();
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {n} >>",
        kids.join(" ")
    ));
    for (i, text) in pages.iter().enumerate() {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {} 0 R >>",
            4 + 2 * i
        ));
        let stream = format!("BT /F1 18 Tf 72 700 Td ({text}) Tj ET");
        objects.push(format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ));
    }
    objects.push(
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
    );
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{body}\nendobj\n", i + 1));
    }
    let xref = out.len();
    out.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for offset in offsets {
        out.push_str(&format!("{offset:010} 00000 n \n"));
    }
    out.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_is_read_page_by_page() {
    let ws = Workspace::new();
    let path = ws.path("report.pdf");
    std::fs::write(
        &path,
        pdf(&[
            "Apples are red",
            "Bananas are yellow",
            "Cherries are dark",
            "Dates are sweet",
        ]),
    )
    .unwrap();
    let all = ws.ok("Read", json!({"file_path": s(&path)})).await;
    assert!(
        all.content
            .starts_with(&format!("PDF {}: 4 pages.", s(&path))),
        "{}",
        all.content
    );
    for (page, words) in [
        (1, "Apples are red"),
        (2, "Bananas are yellow"),
        (3, "Cherries are dark"),
        (4, "Dates are sweet"),
    ] {
        let header = format!("--- Page {page} of 4 ---");
        let at = all
            .content
            .find(&header)
            .unwrap_or_else(|| panic!("{header} missing"));
        assert!(
            all.content[at..].contains(words),
            "page {page}: {}",
            all.content
        );
    }

    let some = ws
        .ok("Read", json!({"file_path": s(&path), "pages": "2-3"}))
        .await;
    assert!(
        some.content
            .contains("--- Page 2 of 4 ---\nBananas are yellow"),
        "{}",
        some.content
    );
    assert!(
        some.content
            .contains("--- Page 3 of 4 ---\nCherries are dark"),
        "{}",
        some.content
    );
    assert!(!some.content.contains("Apples") && !some.content.contains("Dates"));
    assert_eq!(some.structured.unwrap()["file"]["pages"], json!([2, 3]));

    let error = ws
        .err("Read", json!({"file_path": s(&path), "pages": "7"}))
        .await;
    assert!(error.contains("the document has 4 pages"), "{error}");
    let text = ws.write("notes.txt", "x\n");
    let error = ws
        .err("Read", json!({"file_path": s(&text), "pages": "1"}))
        .await;
    assert!(error.contains("`pages` is for PDF files"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_pdf_is_explained() {
    let ws = Workspace::new();
    let path = ws.path("broken.pdf");
    std::fs::write(&path, b"%PDF-1.4\nthis is not a pdf at all\n").unwrap();
    let error = ws.err("Read", json!({"file_path": s(&path)})).await;
    assert!(error.contains("Cannot read the PDF"), "{error}");
}

// ---------- notebooks ----------

fn tiny_png_base64() -> String {
    base64::engine::general_purpose::STANDARD.encode(png(4, 4))
}

fn notebook() -> Value {
    json!({
        "cells": [
            {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# Analysis\n", "Load the data."]},
            {"cell_type": "code", "execution_count": 1, "id": "load", "metadata": {"tags": ["setup"]},
             "outputs": [{"name": "stdout", "output_type": "stream", "text": ["loaded 3 rows\n"]}],
             "source": ["import pandas as pd\n", "df = pd.read_csv('x.csv')"]},
            {"cell_type": "code", "execution_count": 2, "id": "plot", "metadata": {},
             "outputs": [{"data": {"image/png": tiny_png_base64(), "text/plain": ["<Figure size 4x4>"]},
                          "metadata": {}, "output_type": "display_data"}],
             "source": "df.plot()"},
            {"cell_type": "code", "execution_count": 3, "id": "oops", "metadata": {},
             "outputs": [{"ename": "ZeroDivisionError", "evalue": "division by zero", "output_type": "error",
                          "traceback": ["\u{1b}[0;31mZeroDivisionError\u{1b}[0m: division by zero"]}],
             "source": ["1/0"]}
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5
    })
}

/// Writes a notebook the way Jupyter does: one-space indent, sorted keys, final newline.
fn write_notebook(ws: &Workspace, name: &str, nb: &Value) -> std::path::PathBuf {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&sort_keys(nb), &mut serializer).unwrap();
    out.push(b'\n');
    let path = ws.path(name);
    std::fs::write(&path, out).unwrap();
    path
}

fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// Jupyter's own validator passes the file (the peers' Python has nbformat).
fn assert_nbformat_valid(path: &Path) {
    let peers = keel_test_support::peers::ensure();
    let python = peers.join("venv/bin/python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys, nbformat; nb = nbformat.read(sys.argv[1], as_version=nbformat.NO_CONVERT); nbformat.validate(nb); print(len(nb.cells))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nbformat rejected {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notebook_is_read_as_cells_with_outputs() {
    let ws = Workspace::new();
    let path = write_notebook(&ws, "analysis.ipynb", &notebook());
    let result = ws.ok("Read", json!({"file_path": s(&path)})).await;
    let text = &result.content;
    assert!(text.contains("(python, 4 cells)"), "{text}");
    assert!(
        text.contains(
            "<cell id=\"intro\" cell_type=\"markdown\">\n# Analysis\nLoad the data.\n</cell>"
        ),
        "{text}"
    );
    assert!(
        text.contains("<cell id=\"load\" cell_type=\"code\" execution_count=\"1\">\nimport pandas as pd\ndf = pd.read_csv('x.csv')\n</cell>\n<outputs cell=\"load\">\nloaded 3 rows\n</outputs>"),
        "{text}"
    );
    assert!(
        text.contains("[image output 1: attached]\n<Figure size 4x4>"),
        "{text}"
    );
    assert!(
        text.contains("ZeroDivisionError: division by zero"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "ANSI codes left in: {text}");
    assert_eq!(result.images.len(), 1);
    assert_eq!(result.images[0]["media_type"], "image/png");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notebook_edits_round_trip_through_nbformat() {
    let ws = Workspace::new();
    let path = write_notebook(&ws, "analysis.ipynb", &notebook());
    let before = std::fs::read_to_string(&path).unwrap();
    assert_nbformat_valid(&path);

    // Editing needs a read first, as with Edit.
    let error = ws
        .err(
            "NotebookEdit",
            json!({"notebook_path": s(&path), "cell_id": "load", "new_source": "x = 1"}),
        )
        .await;
    assert!(error.contains("has not been read yet"), "{error}");
    ws.ok("Read", json!({"file_path": s(&path)})).await;

    // Replace: the source changes, stale outputs go, the other cells stay byte for byte.
    let result = ws
        .ok(
            "NotebookEdit",
            json!({"notebook_path": s(&path), "cell_id": "load", "new_source": "import polars as pl\ndf = pl.read_csv('x.csv')\n"}),
        )
        .await;
    assert!(
        result.content.contains("Updated cell load"),
        "{}",
        result.content
    );
    assert_nbformat_valid(&path);
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let original: Value = serde_json::from_str(&before).unwrap();
    assert_eq!(
        after["cells"][1]["source"],
        json!(["import polars as pl\n", "df = pl.read_csv('x.csv')\n"])
    );
    assert_eq!(after["cells"][1]["outputs"], json!([]));
    assert_eq!(after["cells"][1]["execution_count"], Value::Null);
    assert_eq!(after["cells"][1]["metadata"], json!({"tags": ["setup"]}));
    for i in [0, 2, 3] {
        assert_eq!(after["cells"][i], original["cells"][i], "cell {i} changed");
    }
    assert_eq!(after["metadata"], original["metadata"]);
    // Only the edited cell's lines differ: the file keeps Jupyter's formatting.
    let after_text = std::fs::read_to_string(&path).unwrap();
    assert!(after_text.ends_with("}\n"));
    assert!(
        after_text.starts_with("{\n \"cells\": [\n  {\n"),
        "{after_text}"
    );
    let unchanged_tail = before.split("\"id\": \"plot\"").nth(1).unwrap();
    assert!(after_text.ends_with(unchanged_tail));

    // Insert after a cell: a markdown cell with a fresh id.
    let result = ws
        .ok(
            "NotebookEdit",
            json!({"notebook_path": s(&path), "cell_id": "plot", "edit_mode": "insert", "cell_type": "markdown", "new_source": "## Results"}),
        )
        .await;
    assert_nbformat_valid(&path);
    let nb: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let new = &nb["cells"][3];
    assert_eq!(new["cell_type"], "markdown");
    assert_eq!(new["source"], json!(["## Results"]));
    let new_id = new["id"].as_str().unwrap();
    assert_eq!(new_id.len(), 8);
    assert_eq!(result.structured.as_ref().unwrap()["cell_id"], new_id);

    // Insert at the start without an id; a code cell gets empty outputs.
    ws.ok(
        "NotebookEdit",
        json!({"notebook_path": s(&path), "edit_mode": "insert", "cell_type": "code", "new_source": "%matplotlib inline"}),
    )
    .await;
    assert_nbformat_valid(&path);

    // Delete.
    ws.ok(
        "NotebookEdit",
        json!({"notebook_path": s(&path), "cell_id": "oops", "edit_mode": "delete", "new_source": ""}),
    )
    .await;
    assert_nbformat_valid(&path);
    let nb: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let ids: Vec<&str> = nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(&ids[1..4], ["intro", "load", "plot"]);
    assert_eq!(ids[4], new_id);
    assert_eq!(nb["cells"][0]["outputs"], json!([]));

    // Replacing a code cell's type: markdown loses the code-only fields and stays valid.
    ws.ok(
        "NotebookEdit",
        json!({"notebook_path": s(&path), "cell_id": "cell-3", "cell_type": "markdown", "new_source": "A plot went here."}),
    )
    .await;
    assert_nbformat_valid(&path);
    let nb: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(nb["cells"][3]["id"], "plot");
    assert_eq!(nb["cells"][3]["cell_type"], "markdown");
    assert!(nb["cells"][3].get("outputs").is_none());

    // Mistakes say how to fix them.
    let error = ws
        .err(
            "NotebookEdit",
            json!({"notebook_path": s(&path), "cell_id": "nope", "new_source": "x"}),
        )
        .await;
    assert!(
        error.contains("has no cell \"nope\"") && error.contains("intro"),
        "{error}"
    );
    let error = ws
        .err(
            "NotebookEdit",
            json!({"notebook_path": s(&path), "edit_mode": "insert", "new_source": "x"}),
        )
        .await;
    assert!(error.contains("cell_type is required"), "{error}");
    let error = ws
        .err(
            "NotebookEdit",
            json!({"notebook_path": s(&path), "new_source": "x"}),
        )
        .await;
    assert!(error.contains("cell_id is required to replace"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notebook_changed_on_disk_must_be_read_again() {
    let ws = Workspace::new();
    let path = write_notebook(&ws, "n.ipynb", &notebook());
    ws.ok("Read", json!({"file_path": s(&path)})).await;
    common::set_mtime(&path, 1_000_000);
    let error = ws
        .err(
            "NotebookEdit",
            json!({"notebook_path": s(&path), "cell_id": "intro", "new_source": "# Hi"}),
        )
        .await;
    assert!(error.contains("modified since it was last read"), "{error}");
}
