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
    /// Chosen to make room: no longer counted in its network's share.
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
    /// Close the connection (of `net`, if given) idle the longest, not yet shed; whether
    /// there was one.
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
        if let Some(net) = conn.net {
            self.uncount(net);
        }
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
            && !conn.shed.load(Ordering::Relaxed)
        {
            self.uncount(net);
        }
    }
}

/// Counts a request as begun on its connection, and as finished when dropped (also if
/// the request is cancelled).
struct InFlight(Arc<Conn>, Instant);

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
            // Over its share: its own longest-idle connection makes room, else the new
            // one is refused (closed at once).
            if reg.per_net.get(&net).copied().unwrap_or(0) >= limits.max_connections_per_client
                && !reg.shed_oldest_idle(Some(net))
            {
                drop(reg);
                tracing::debug!(client = %net.as_ip(), "connection refused: the client holds its share");
                continue;
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
            loop {
                tokio::select! {
                    // A client that vanishes or times out is not our error.
                    _ = serving.as_mut() => break,
                    () = conn.close.notified(), if !closing => closing = true,
                    () = &mut aged, if !closing => closing = true,
                    _ = stopping.wait_for(|s| *s), if !closing => closing = true,
                }
                if closing {
                    serving.as_mut().graceful_shutdown();
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
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
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
        let answer = app.clone().oneshot(req.map(Body::new));
        async move {
            let mut res = answer.await;
            drop(in_flight);
            if last && let Ok(res) = &mut res {
                // The client learns not to send another request here (hyper then closes).
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            res
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
