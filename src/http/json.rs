//! JSON answers. axum's `Json` serialises through a `BytesMut` writer that starts at
//! 128 bytes; serde_json writes many small pieces, and into a `Vec` with room for a
//! typical answer they cost about a third as much (callgrind, `GET /me`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Room for a user or a token answer without growing.
const TYPICAL: usize = 512;

/// A JSON response body, ending with a newline (so `curl` leaves the prompt on a line
/// of its own).
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(TYPICAL);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => {
                body.push(b'\n');
                (
                    [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    body,
                )
                    .into_response()
            }
            // As `ApiError::Internal` answers; written out here because errors render
            // through this type (the error module depends on this one, not back).
            Err(e) => {
                tracing::error!(error = %e, "an answer could not be serialised");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    "{\"detail\":\"Internal Server Error\"}\n",
                )
                    .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_json_with_its_content_type() {
        let res = Json(serde_json::json!({"a": "b\"c"})).into_response();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"{\"a\":\"b\\\"c\"}\n");
    }

    #[tokio::test]
    async fn an_answer_that_cannot_be_serialised_is_a_plain_500() {
        // JSON object keys must be strings: a tuple key cannot be written.
        let unwritable: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let res = Json(unwritable).into_response();
        assert_eq!(res.status(), 500);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"{\"detail\":\"Internal Server Error\"}\n");
    }
}
