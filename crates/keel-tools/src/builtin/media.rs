//! What Read shows for files that are not text: images (sent to the model as image blocks,
//! downscaled when too large) and PDFs (their text, page by page).

use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use image::{DynamicImage, GenericImageView as _, ImageFormat, ImageReader};
use serde_json::{Value, json};

use crate::{ToolError, ToolOutput};

/// The longest side an image is sent with; larger images are scaled down (the API would scale
/// them itself, after charging for the upload).
pub(crate) const MAX_IMAGE_SIDE: u32 = 1568;
/// The most bytes of one image sent to the model: its base64 form stays under the API's 5 MB.
pub(crate) const MAX_IMAGE_BYTES: usize = 3_750_000;
/// Image files larger than this are not decoded at all.
const MAX_IMAGE_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// PDF files larger than this are refused.
pub(crate) const MAX_PDF_BYTES: u64 = 100 * 1024 * 1024;
/// Pages shown when the model gives no `pages`.
const DEFAULT_PDF_PAGES: u32 = 20;
/// The most pages one call may ask for.
const MAX_PDF_PAGES: u32 = 100;

/// A file kind Read treats specially, told by its first bytes rather than its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// PNG, JPEG, GIF or WebP.
    Image(ImageKind),
    /// A PDF document.
    Pdf,
}

/// The image formats the model accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageKind {
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Gif => ImageFormat::Gif,
            Self::Webp => ImageFormat::WebP,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Gif => "GIF",
            Self::Webp => "WebP",
        }
    }
}

/// The kind of a file from its first bytes (at least 12 are needed to tell WebP).
pub(crate) fn sniff(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Image(ImageKind::Png))
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Image(ImageKind::Jpeg))
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(Kind::Image(ImageKind::Gif))
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        Some(Kind::Image(ImageKind::Webp))
    } else if head.starts_with(b"%PDF-") {
        Some(Kind::Pdf)
    } else {
        None
    }
}

/// An image ready for the model: the API's `source` object and what was done to it.
pub(crate) struct PreparedImage {
    /// `{"type": "base64", "media_type": ..., "data": ...}`.
    pub(crate) source: Value,
    /// The original size in pixels.
    pub(crate) original: (u32, u32),
    /// The size sent, in pixels.
    pub(crate) sent: (u32, u32),
    /// The media type sent (a downscaled GIF or WebP goes as PNG).
    pub(crate) media_type: &'static str,
}

/// Turns image bytes into what the model is sent: unchanged when within the limits, else
/// scaled down (and re-encoded) until it fits.
pub(crate) fn prepare_image(kind: ImageKind, bytes: Vec<u8>) -> Result<PreparedImage, String> {
    let mut reader = ImageReader::with_format(Cursor::new(&bytes), kind.format());
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(50_000);
    limits.max_image_height = Some(50_000);
    reader.limits(limits);
    let original = reader
        .into_dimensions()
        .map_err(|e| format!("it is not a readable {} image: {e}", kind.name()))?;
    let fits = original.0.max(original.1) <= MAX_IMAGE_SIDE && bytes.len() <= MAX_IMAGE_BYTES;
    if fits {
        return Ok(PreparedImage {
            source: base64_source(kind.media_type(), &bytes),
            original,
            sent: original,
            media_type: kind.media_type(),
        });
    }
    let mut reader = ImageReader::with_format(Cursor::new(&bytes), kind.format());
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(1024 * 1024 * 1024);
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| format!("it is not a readable {} image: {e}", kind.name()))?;
    drop(bytes);
    let (encoded, media_type, sent) = downscale(&decoded, kind)?;
    Ok(PreparedImage {
        source: base64_source(media_type, &encoded),
        original,
        sent,
        media_type,
    })
}

/// Encoded image bytes, their media type and size in pixels.
type Encoded = (Vec<u8>, &'static str, (u32, u32));

/// Scales `image` to fit [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_BYTES`]: photos stay JPEG, the
/// rest becomes PNG; when PNG is still too big, JPEG at falling quality, then smaller sizes.
fn downscale(image: &DynamicImage, kind: ImageKind) -> Result<Encoded, String> {
    let mut side = MAX_IMAGE_SIDE;
    loop {
        let scaled = if image.width().max(image.height()) > side {
            image.resize(side, side, image::imageops::FilterType::Triangle)
        } else {
            image.clone()
        };
        let dims = scaled.dimensions();
        if kind != ImageKind::Jpeg {
            let png = encode_png(&scaled)?;
            if png.len() <= MAX_IMAGE_BYTES {
                return Ok((png, "image/png", dims));
            }
        }
        let rgb = DynamicImage::ImageRgb8(scaled.to_rgb8());
        for quality in [85, 70, 50] {
            let jpeg = encode_jpeg(&rgb, quality)?;
            if jpeg.len() <= MAX_IMAGE_BYTES {
                return Ok((jpeg, "image/jpeg", dims));
            }
        }
        if side <= 200 {
            return Err("it cannot be made small enough to send".into());
        }
        side = side * 3 / 4;
    }
}

fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, String> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| format!("re-encoding it failed: {e}"))?;
    Ok(out.into_inner())
}

fn encode_jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    image
        .write_with_encoder(encoder)
        .map_err(|e| format!("re-encoding it failed: {e}"))?;
    Ok(out)
}

fn base64_source(media_type: &str, bytes: &[u8]) -> Value {
    json!({
        "type": "base64",
        "media_type": media_type,
        "data": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

/// Read of an image file: a line of facts and the image itself.
pub(crate) fn read_image(path: &Path, kind: ImageKind, size: u64) -> Result<ToolOutput, ToolError> {
    if size > MAX_IMAGE_FILE_BYTES {
        return Err(ToolError::Failed(format!(
            "{} is a {} image of {} bytes, too large to read (the limit is {} MB).",
            path.display(),
            kind.name(),
            size,
            MAX_IMAGE_FILE_BYTES / (1024 * 1024)
        )));
    }
    let bytes = std::fs::read(path).map_err(|source| ToolError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let image = prepare_image(kind, bytes)
        .map_err(|why| ToolError::Failed(format!("Cannot show {}: {why}.", path.display())))?;
    let (w, h) = image.original;
    let mut content = format!(
        "Image {} ({}, {w}x{h} pixels, {} bytes).",
        path.display(),
        kind.name(),
        size
    );
    if image.sent != image.original {
        content.push_str(&format!(
            " Scaled down to {}x{} to fit the model's image limits.",
            image.sent.0, image.sent.1
        ));
    }
    Ok(ToolOutput {
        content,
        structured: Some(json!({
            "type": "image",
            "file": {
                "filePath": path.display().to_string(),
                "type": image.media_type,
                "originalSize": size,
                "dimensions": {
                    "originalWidth": w,
                    "originalHeight": h,
                    "displayWidth": image.sent.0,
                    "displayHeight": image.sent.1,
                },
            }
        })),
        images: vec![image.source],
    })
}

/// Parses a `pages` range: `"3"`, `"1-5"`, `"4-"` (to the end), or a comma-separated list of
/// those. Pages are 1-based; the result is sorted and free of duplicates.
pub(crate) fn parse_pages(spec: &str, total: u32) -> Result<Vec<u32>, String> {
    let mut pages = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |text: &str| -> Result<u32, String> {
            text.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{text:?} in pages {spec:?} is not a page number"))
        };
        let (first, last) = match part.split_once('-') {
            Some((a, b)) if b.trim().is_empty() => (number(a)?, total),
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if first > last {
            return Err(format!(
                "the range {part:?} in pages {spec:?} runs backwards; write it as {last}-{first}"
            ));
        }
        if first > total {
            return Err(format!(
                "page {first} does not exist: the document has {total} page{}",
                if total == 1 { "" } else { "s" }
            ));
        }
        pages.extend(first..=last.min(total));
    }
    if pages.is_empty() {
        return Err(format!(
            "pages {spec:?} names no page; use e.g. \"1-5\", \"3\" or \"2,4,7-9\""
        ));
    }
    pages.sort_unstable();
    pages.dedup();
    Ok(pages)
}

/// Read of a PDF: the text of the chosen pages (the first [`DEFAULT_PDF_PAGES`] without
/// `pages`), each under a header with its number.
pub(crate) fn read_pdf(
    path: &Path,
    size: u64,
    pages: Option<&str>,
) -> Result<ToolOutput, ToolError> {
    if size > MAX_PDF_BYTES {
        return Err(ToolError::Failed(format!(
            "{} is a PDF of {size} bytes, too large to read (the limit is {} MB).",
            path.display(),
            MAX_PDF_BYTES / (1024 * 1024)
        )));
    }
    let bytes = std::fs::read(path).map_err(|source| ToolError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let unreadable = |why: String| {
        ToolError::Failed(format!(
            "Cannot read the PDF {}: {why}. If it is a scanned document, there is no text in \
             it to extract.",
            path.display()
        ))
    };
    let mut doc = pdf_extract::Document::load_mem(&bytes).map_err(|e| unreadable(e.to_string()))?;
    drop(bytes);
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(ToolError::Failed(format!(
            "{} is an encrypted PDF that needs a password, so its text cannot be read.",
            path.display()
        )));
    }
    let numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
    let total = u32::try_from(numbers.len()).unwrap_or(u32::MAX);
    if total == 0 {
        return Err(unreadable("it has no pages".into()));
    }
    let (wanted, defaulted) = match pages {
        Some(spec) => (
            parse_pages(spec, total).map_err(ToolError::InvalidInput)?,
            false,
        ),
        None => ((1..=total.min(DEFAULT_PDF_PAGES)).collect::<Vec<_>>(), true),
    };
    if wanted.len() > MAX_PDF_PAGES as usize {
        return Err(ToolError::InvalidInput(format!(
            "pages asks for {} pages; read at most {MAX_PDF_PAGES} at a time (e.g. pages=\"1-{MAX_PDF_PAGES}\")",
            wanted.len()
        )));
    }
    let mut content = format!(
        "PDF {}: {total} page{}.",
        path.display(),
        if total == 1 { "" } else { "s" }
    );
    let mut shown = Vec::new();
    for &page in &wanted {
        let text = page_text(&doc, page);
        content.push_str(&format!("\n\n--- Page {page} of {total} ---\n"));
        match text {
            Ok(text) if text.is_empty() => {
                content.push_str("(No text on this page: it may be a scanned image or a drawing.)")
            }
            Ok(text) => content.push_str(&text),
            Err(why) => content.push_str(&format!(
                "(The text of this page could not be extracted: {why})"
            )),
        }
        shown.push(page);
    }
    if defaulted && total > DEFAULT_PDF_PAGES {
        content.push_str(&format!(
            "\n\n(Showing pages 1-{DEFAULT_PDF_PAGES} of {total}. Call Read again with pages=\"{}-{}\" for more.)",
            DEFAULT_PDF_PAGES + 1,
            total.min(DEFAULT_PDF_PAGES * 2)
        ));
    }
    Ok(ToolOutput {
        content,
        structured: Some(json!({
            "type": "pdf",
            "file": {
                "filePath": path.display().to_string(),
                "originalSize": size,
                "totalPages": total,
                "pages": shown,
            }
        })),
        images: Vec::new(),
    })
}

/// One page's text, tidied: trailing spaces and runs of blank lines removed. The extractor
/// panics on some malformed fonts; that fails the page, not the call.
fn page_text(doc: &pdf_extract::Document, page: u32) -> Result<String, String> {
    let extracted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut text = String::new();
        let mut output = pdf_extract::PlainTextOutput::new(&mut text);
        pdf_extract::output_doc_page(doc, &mut output, page).map(|()| text)
    }));
    let raw = match extracted {
        Ok(Ok(text)) => text,
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err("the PDF's fonts or content stream are malformed".into()),
    };
    let mut tidy = String::with_capacity(raw.len());
    let mut blank_run = 0;
    for line in raw.lines().map(str::trim_end) {
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        tidy.push_str(line);
        tidy.push('\n');
    }
    Ok(tidy.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_by_magic_bytes() {
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(Kind::Image(ImageKind::Png))
        );
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(Kind::Image(ImageKind::Jpeg))
        );
        assert_eq!(sniff(b"GIF89a\x01\0"), Some(Kind::Image(ImageKind::Gif)));
        assert_eq!(
            sniff(b"RIFF\x24\0\0\0WEBPVP8 "),
            Some(Kind::Image(ImageKind::Webp))
        );
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(Kind::Pdf));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"plain text"), None);
    }

    #[test]
    fn page_ranges_parse_and_explain_mistakes() {
        assert_eq!(parse_pages("3", 10).unwrap(), [3]);
        assert_eq!(parse_pages("1-3", 10).unwrap(), [1, 2, 3]);
        assert_eq!(parse_pages("8-", 10).unwrap(), [8, 9, 10]);
        assert_eq!(parse_pages("5, 1-2,2", 10).unwrap(), [1, 2, 5]);
        assert_eq!(parse_pages("9-20", 10).unwrap(), [9, 10]);
        assert!(parse_pages("11", 10).unwrap_err().contains("has 10 pages"));
        assert!(parse_pages("4-2", 10).unwrap_err().contains("2-4"));
        assert!(
            parse_pages("0", 10)
                .unwrap_err()
                .contains("not a page number")
        );
        assert!(
            parse_pages("a-b", 10)
                .unwrap_err()
                .contains("not a page number")
        );
        assert!(
            parse_pages(" , ", 10)
                .unwrap_err()
                .contains("names no page")
        );
    }
}
