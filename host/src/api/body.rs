//! Reading a request body into one buffer, up to the configured limit.
//!
//! Why not `axum::body::to_bytes`: it collects every frame hyper hands over and, when there is
//! more than one (a 270 KB vCon arrives in several reads while the client is still sending),
//! copies them all into a new buffer once the last has come, on the API thread, while the
//! client waits (`perf record` of one client posting cat1: 3 % of the API thread in that copy).
//! Here a lone frame is kept as it is (no copy), and otherwise each frame is copied as it comes
//! into one buffer sized from `content-length`, so the copy of the early frames happens while
//! the rest are still on their way and the buffer never grows. A body whose `content-length`
//! is over the limit is refused before any of it is read. Alone, this was within the noise of
//! `cargo xtask bench api` (four alternated pairs of one client posting cat1, two faster each
//! way); with the other changes of its commit, the pairs are in docs/benchmarks.md.

use axum::body::{Body, Bytes, HttpBody};
use axum::http::StatusCode;
use bytes::BytesMut;
use http_body_util::BodyExt;

use super::ApiError;

/// Reads a request body up to `limit` bytes (`413` beyond), after the handler has checked
/// what it must check first (the external-ingress key).
pub(crate) async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let hint = body.size_hint();
    if hint.lower() > limit as u64 {
        return Err(ApiError::too_large(limit));
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut length = 0_usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {err}"),
            )
        })?;
        // Trailers carry nothing a handler reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        length += data.len();
        if length > limit {
            return Err(ApiError::too_large(limit));
        }
        if let Some(buffer) = &mut joined {
            buffer.extend_from_slice(&data);
        } else if let Some(alone) = first.take() {
            // `content-length` when the client sent one (hyper stops there), never more than
            // the limit allows.
            let expected = hint
                .upper()
                .map_or(0, |n| usize::try_from(n).unwrap_or(limit));
            let mut buffer = BytesMut::with_capacity(expected.min(limit).max(length));
            buffer.extend_from_slice(&alone);
            buffer.extend_from_slice(&data);
            joined = Some(buffer);
        } else {
            first = Some(data);
        }
    }
    Ok(joined.map_or_else(|| first.unwrap_or_default(), BytesMut::freeze))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_lone_frame_is_answered_without_a_copy() {
        let data = Bytes::from(vec![b'x'; 1000]);
        let read = read_body(Body::from(data.clone()), 4096).await.unwrap();
        assert_eq!(read.as_ptr(), data.as_ptr(), "the frame's own buffer");
        assert_eq!(read, data);
    }

    #[tokio::test]
    async fn frames_are_joined_in_order() {
        let read = read_body(streamed(&[b"{\"a\":", b"", b"1,", b"\"b\":2}"]), 4096)
            .await
            .unwrap();
        assert_eq!(&read[..], b"{\"a\":1,\"b\":2}");
    }

    #[tokio::test]
    async fn an_empty_body_reads_as_empty() {
        assert!(read_body(Body::empty(), 10).await.unwrap().is_empty());
        assert!(read_body(streamed(&[]), 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_413() {
        // Known length: refused before reading.
        let err = read_body(Body::from(vec![0_u8; 11]), 10).await.unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        // Streamed without a length: refused once the frames pass the limit.
        let err = read_body(streamed(&[b"123456", b"78901"]), 10)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        // Exactly at the limit is fine.
        let read = read_body(streamed(&[b"12345", b"67890"]), 10)
            .await
            .unwrap();
        assert_eq!(&read[..], b"1234567890");
    }

    #[tokio::test]
    async fn a_failing_body_is_a_400_that_says_why() {
        let frames: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"{")),
            Err(std::io::Error::other("connection reset")),
        ];
        let err = read_body(Body::from_stream(futures_util::stream::iter(frames)), 100)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let detail = err.detail.to_string();
        assert!(detail.contains("connection reset"), "{detail}");
    }
}
