//! A deadline for request bodies. actix-web bounds the time to receive a request's headers
//! (`client_request_timeout`) but nothing bounds its body: a client sending one byte a second
//! kept its request in flight for as long as it liked, and held a graceful stop for the whole
//! shutdown timeout (measured: 30 s of a 40.7 s stop). Every request that declares a body must
//! deliver all of it within the body timeout of its headers' arrival; a slower one is answered
//! 408 and its connection closed.

use crate::error::AppError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage as _, ResponseError as _};
use futures_util::Stream;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The middleware: wraps the body of every request that has one in a [`Deadline`].
pub async fn enforce(
    timeout: Duration,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !has_body(&req) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let expired = Rc::new(Cell::new(false));
    let body = Deadline {
        inner: req.take_payload(),
        timer: Box::pin(actix_rt::time::sleep(timeout)),
        expired: expired.clone(),
        finished: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(body),
    });
    let what = format!("{} {}", req.method(), req.path());
    let res = next.call(req).await?;
    if !expired.get() {
        return Ok(res.map_into_left_body());
    }
    log::warn!(
        "{what}: the request body did not arrive within {} s; answered 408 and disconnected",
        timeout.as_secs()
    );
    // Whatever the handler made of the broken body, the answer is the timeout. The rest of
    // the body may still be on its way, so the connection cannot carry another request.
    let mut timed_out = AppError::BadRequest(format!(
        "the request body did not arrive within {} s",
        timeout.as_secs()
    ))
    .error_response();
    *timed_out.status_mut() = StatusCode::REQUEST_TIMEOUT;
    timed_out
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    let (req, _) = res.into_parts();
    Ok(ServiceResponse::new(req, timed_out).map_into_right_body())
}

/// Whether the request declares a body. WebSocket upgrades do not: after the upgrade their
/// "payload" is the socket itself, which must not get a deadline.
fn has_body(req: &ServiceRequest) -> bool {
    if req.head().upgrade() {
        return false;
    }
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// A request body that fails with a timeout once its deadline passes.
struct Deadline {
    inner: Payload,
    timer: Pin<Box<actix_rt::time::Sleep>>,
    expired: Rc<Cell<bool>>,
    finished: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            if item.is_none() {
                self.finished = true;
            }
            return Poll::Ready(item);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.finished = true;
            self.expired.set(true);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Poll::Pending
    }
}
