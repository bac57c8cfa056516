//! Ends the connection after a response sent before its request's body was read (a refusal of
//! the path, a header or the session, or a body of the wrong type), saying so with
//! `Connection: close`. Without it the server closes such a keep-alive connection by itself
//! whenever the unread body has not fully arrived yet, and a client that already sent its next
//! request on it sees the connection drop instead of an answer.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Middleware: adds `Connection: close` to the response when the request's body was not read to
/// its end.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(Tracked {
            inner: body,
            read: read.clone(),
        })
    });
    let mut response = next.run(request).await;
    if !read.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end.
struct Tracked {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::middleware::from_fn;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    async fn answer(path: &str, body: &'static str) -> Option<HeaderValue> {
        let app = Router::new()
            .route("/ignores", post(|| async { "refused" }))
            .route("/reads", post(|body: String| async move { body }))
            .layer(from_fn(close_if_body_unread));
        let request = Request::post(path).body(Body::from(body)).unwrap();
        let response = app.oneshot(request).await.unwrap();
        response.headers().get(CONNECTION).cloned()
    }

    #[tokio::test]
    async fn only_an_unread_body_closes_the_connection() {
        assert_eq!(answer("/ignores", "{}").await.unwrap(), "close");
        assert_eq!(answer("/reads", "{}").await, None);
        assert_eq!(answer("/ignores", "").await, None, "no body to read");
    }
}
