//! The accept loop every listener shares. No client can hold the server's connections:
//! each must send its headers in time, a client network gets a share of the slots (a
//! trusted proxy, which carries many clients, is exempt), a connection serves a bounded
//! number of requests for a bounded time, and when every slot is taken the connection
//! idle the longest is closed to make room.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower::{Service, ServiceExt as _};

use crate::http::ConnectionLimits;
use crate::limits::ClientNet;

/// How long a connection asked to close may take to finish the answer it is writing.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// One open connection, as the accept loop sees it.
struct Conn {
    /// `None`: a trusted proxy's, exempt from the per-client share.
    net: Option<ClientNet>,
    /// Requests begun on it, and requests finished (equal: idle).
    begun: AtomicU32,
    finished: AtomicU32,
    /// When it last finished a request (or opened): ms since the loop started.
    idle_since_ms: AtomicU64,
    /// Asks its task to close it gracefully (an in-flight request still completes).
    close: Notify,
    /// Asked to close to make room (counted until it has closed).
    shed: AtomicBool,
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.begun.load(Ordering::Acquire) == self.finished.load(Ordering::Acquire)
    }
}

/// The open connections, for choosing which one to shed.
#[derive(Default)]
struct Registry {
    next_id: u64,
    conns: HashMap<u64, Arc<Conn>>,
    per_net: HashMap<ClientNet, usize>,
}

impl Registry {
    /// Ask the connection (of `net`, if given) idle the longest, not yet asked, to close;
    /// whether there was one. It still counts against its network until it has closed
    /// (a connection that looks idle may still be writing to a client that stopped
    /// reading; it is dropped after `CLOSE_GRACE` at the latest).
    fn shed_oldest_idle(&mut self, net: Option<ClientNet>) -> bool {
        let oldest = self
            .conns
            .values()
            .filter(|c| net.is_none() || c.net == net)
            .filter(|c| c.is_idle() && !c.shed.load(Ordering::Relaxed))
            .min_by_key(|c| c.idle_since_ms.load(Ordering::Relaxed))
            .cloned();
        let Some(conn) = oldest else { return false };
        conn.shed.store(true, Ordering::Relaxed);
        conn.close.notify_one();
        true
    }

    fn uncount(&mut self, net: ClientNet) {
        if let Some(n) = self.per_net.get_mut(&net) {
            *n -= 1;
            if *n == 0 {
                self.per_net.remove(&net);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id)
            && let Some(net) = conn.net
        {
            self.uncount(net);
        }
    }
}

/// Counts a request as begun on its connection, and as finished when dropped: with the
/// answer's body, once it is written (or the request is cancelled). A client that stops
/// reading its answer keeps its connection busy, so it is never taken for idle.
struct InFlight(Arc<Conn>, Instant);

/// What a body does once it has been read (or written) to its end.
trait AtEnd {
    fn reached(&mut self);
}

/// An answer's body holds its request's [`InFlight`] until it is written whole.
impl AtEnd for Option<InFlight> {
    fn reached(&mut self) {
        // Written whole: the connection is idle from now.
        self.take();
    }
}

/// A request's body notes when it has been read to its end. An answer sent before that
/// (a refusal decided from the headers) says `Connection: close`: the unread rest would
/// otherwise be taken for the next request, so hyper closes the connection, and a
/// keep-alive client must know not to reuse it.
impl AtEnd for Arc<AtomicBool> {
    fn reached(&mut self) {
        self.store(true, Ordering::Release);
    }
}

pin_project_lite::pin_project! {
    /// `inner`, telling `at_end` when its last frame has gone by.
    struct EndAware<B, E> {
        #[pin]
        inner: B,
        at_end: E,
    }
}

impl<B: hyper::body::Body, E: AtEnd> hyper::body::Body for EndAware<B, E> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) {
            this.at_end.reached();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body, holding its request's [`InFlight`] until it is written whole.
type TrackedBody = EndAware<Body, Option<InFlight>>;

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.1.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(ms, Ordering::Relaxed);
        self.0.finished.fetch_add(1, Ordering::Release);
    }
}

/// Serve `app` on `listener` under `limits` until `shutdown` resolves, then let
/// in-flight requests finish for up to 10 seconds. `exempt` lists the networks whose
/// connections are not held to the per-client share (trusted proxies).
pub async fn serve_with<S>(
    listener: TcpListener,
    app: S,
    limits: ConnectionLimits,
    exempt: Arc<[IpNet]>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs));
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (stopping_tx, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let net = (!is_within(peer.ip(), &exempt)).then(|| ClientNet::of(peer.ip()));
        if let Some(net) = net {
            let mut reg = lock(&registry);
            let held = reg.per_net.get(&net).copied().unwrap_or(0);
            // Over its share: its own longest-idle connection is asked to close to make
            // room; connections still closing count, and past twice the share the new
            // one is refused (closed at once).
            if held >= limits.max_connections_per_client {
                reg.shed_oldest_idle(Some(net));
                if held >= limits.max_connections_per_client.saturating_mul(2) {
                    drop(reg);
                    // No address here: logs keep addresses only as TOKENGATE_SESSION_IP says.
                    tracing::debug!("connection refused: its client network holds its share");
                    continue;
                }
            }
        }
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // Full: the connection idle the longest makes room; with none idle, the
                // new one waits as long as a client may take to send its headers.
                lock(&registry).shed_oldest_idle(None);
                let wait = Duration::from_secs(limits.header_timeout_secs);
                tokio::select! {
                    slot = tokio::time::timeout(wait, slots.clone().acquire_owned()) => match slot {
                        Ok(Ok(slot)) => slot,
                        _ => continue,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let conn = Arc::new(Conn {
            net,
            begun: AtomicU32::new(0),
            finished: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
            close: Notify::new(),
            shed: AtomicBool::new(false),
        });
        let id = {
            let mut reg = lock(&registry);
            reg.next_id += 1;
            let id = reg.next_id;
            reg.conns.insert(id, conn.clone());
            if let Some(net) = net {
                *reg.per_net.entry(net).or_default() += 1;
            }
            id
        };
        let service = connection_service(
            app.clone(),
            peer,
            conn.clone(),
            started,
            limits.max_requests_per_connection,
        );
        let serving = http.serve_connection(TokioIo::new(stream_nodelay(stream)), service);
        let max_age = Duration::from_secs(limits.max_connection_age_secs);
        let registry = registry.clone();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut serving = std::pin::pin!(serving);
            let aged = tokio::time::sleep(max_age);
            let mut aged = std::pin::pin!(aged);
            let mut closing = false;
            // Once asked to close, a connection has this long to finish its answer: one
            // whose client stops reading is dropped then, not waited for.
            let grace = tokio::time::sleep(Duration::MAX);
            let mut grace = std::pin::pin!(grace);
            loop {
                tokio::select! {
                    // A client that vanishes or times out is not our error.
                    _ = serving.as_mut() => break,
                    () = conn.close.notified(), if !closing => closing = true,
                    () = &mut aged, if !closing => closing = true,
                    _ = stopping.wait_for(|s| *s), if !closing => closing = true,
                    () = &mut grace, if closing => break,
                }
                if closing && grace.deadline() > tokio::time::Instant::now() + CLOSE_GRACE {
                    serving.as_mut().graceful_shutdown();
                    grace.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
                }
            }
            lock(&registry).remove(id);
            drop(slot);
        });
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    let _ = stopping_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after 10 s; stopping anyway");
    }
    Ok(())
}

/// The service one connection runs: the request learns its peer, and each request is
/// counted (the connection closes after its last allowed one).
fn connection_service<S>(
    app: S,
    peer: SocketAddr,
    conn: Arc<Conn>,
    started: Instant,
    max_requests: u32,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<TrackedBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<TrackedBody>, Infallible>> + Send,
> + Clone
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let begun = conn.begun.fetch_add(1, Ordering::AcqRel) + 1;
        let last = begun >= max_requests;
        if last {
            conn.close.notify_one();
        }
        let in_flight = InFlight(conn.clone(), started);
        // Only a request with a body to read is watched (no allocation for the rest).
        let watch = (!hyper::body::Body::is_end_stream(req.body())).then(|| Arc::new(AtomicBool::new(false)));
        let req = match &watch {
            Some(flag) => req.map(|inner| {
                Body::new(EndAware {
                    inner,
                    at_end: flag.clone(),
                })
            }),
            None => req.map(Body::new),
        };
        let answer = app.clone().oneshot(req);
        async move {
            let Ok(mut res) = answer.await;
            let unread = watch.is_some_and(|w| !w.load(Ordering::Acquire));
            if last || unread {
                // The client learns not to send another request here (hyper then closes).
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(res.map(|inner| TrackedBody {
                inner,
                at_end: Some(in_flight),
            }))
        }
    })
}

fn stream_nodelay(stream: TcpStream) -> TcpStream {
    let _ = stream.set_nodelay(true);
    stream
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `ip` is in one of `nets`.
fn is_within(ip: IpAddr, nets: &[IpNet]) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}
