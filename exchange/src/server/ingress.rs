//! Reading a publisher's request body: bounded, and gunzipped when it says so.
//!
//! The limit applies twice: to the bytes on the wire and to the bytes after
//! decompression, so a small gzip bomb cannot expand into a large allocation.

use std::io::Read;

use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};

/// Why a body was refused; maps to an HTTP status and a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IngressError {
    /// Larger than the limit (413).
    #[error("body: larger than {0} bytes")]
    TooLarge(usize),
    /// `Content-Encoding` other than identity or gzip (415).
    #[error("content-encoding: {0:?} is not supported (use gzip or none)")]
    UnsupportedEncoding(String),
    /// The gzip stream is broken (400).
    #[error("body: invalid gzip data: {0}")]
    BadGzip(String),
    /// The connection failed while reading (400).
    #[error("body: {0}")]
    Read(String),
}

impl IngressError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            IngressError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngressError::BadGzip(_) | IngressError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads the whole body, at most `limit` bytes on the wire and after gunzip.
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, IngressError>
where
    B: Body,
    B::Error: std::fmt::Display + Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let gzip = match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str()) {
        None => false,
        Some(Ok(v)) if v.eq_ignore_ascii_case("identity") => false,
        Some(Ok(v)) if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") => true,
        Some(v) => {
            return Err(IngressError::UnsupportedEncoding(
                v.unwrap_or("<not text>").to_owned(),
            ))
        }
    };
    // A declared length over the limit is refused before reading a byte.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(IngressError::TooLarge(limit));
    }
    let raw = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(IngressError::TooLarge(limit))
        }
        Err(e) => return Err(IngressError::Read(e.to_string())),
    };
    if !gzip {
        return Ok(raw);
    }
    gunzip(&raw, limit)
}

/// Decompresses, refusing output beyond `limit` bytes.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Bytes, IngressError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    // One byte more than allowed tells "exactly the limit" from "over it".
    let mut reader = flate2::read::MultiGzDecoder::new(data).take(limit as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| IngressError::BadGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(IngressError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use http_body_util::Full;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn headers(encoding: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(e) = encoding {
            h.insert(header::CONTENT_ENCODING, e.parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn plain_and_gzip_bodies_are_read() {
        let body = Full::new(Bytes::from_static(b"{\"id\":\"1\"}"));
        assert_eq!(
            read_body(&headers(None), body, 100).await.unwrap(),
            "{\"id\":\"1\"}"
        );
        let body = Full::new(Bytes::from(gz(b"hello")));
        assert_eq!(
            read_body(&headers(Some("gzip")), body, 100).await.unwrap(),
            "hello"
        );
    }

    #[tokio::test]
    async fn limits_apply_on_the_wire_and_after_gunzip() {
        let big = Full::new(Bytes::from(vec![b' '; 101]));
        assert_eq!(
            read_body(&headers(None), big, 100).await,
            Err(IngressError::TooLarge(100))
        );
        // 10 kB of zeros compresses to a few dozen bytes: a small bomb.
        let bomb = gz(&vec![0u8; 10_000]);
        assert!(bomb.len() < 100);
        let body = Full::new(Bytes::from(bomb));
        let err = read_body(&headers(Some("gzip")), body, 100)
            .await
            .unwrap_err();
        assert_eq!(err, IngressError::TooLarge(100));
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn bad_encodings_are_refused() {
        let body = Full::new(Bytes::from_static(b"xx"));
        let err = read_body(&headers(Some("br")), body, 100)
            .await
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let body = Full::new(Bytes::from_static(b"not gzip"));
        let err = read_body(&headers(Some("gzip")), body, 100)
            .await
            .unwrap_err();
        assert!(matches!(err, IngressError::BadGzip(_)));
    }
}
