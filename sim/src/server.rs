//! Serving an axum Router over TLS (or plain HTTP for the control endpoint) on loopback,
//! with graceful shutdown. A handler can ask for the connection to be reset (a fault)
//! by putting [`ResetConnection`] in the response extensions.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Response extension: drop the connection instead of answering.
#[derive(Clone, Copy, Debug)]
pub struct ResetConnection;

#[derive(Debug, thiserror::Error)]
#[error("connection reset by fault injection")]
struct Reset;

/// Serve `router` on `listener`, over TLS when `tls` is given, until `shutdown` turns true.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => { tracing::warn!("accept failed: {e}"); continue; }
                },
                _ = shutdown.changed() => break,
            };
            let router = router.clone();
            let acceptor = acceptor.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(acc) => match acc.accept(stream).await {
                        Ok(tls) => serve_conn(TokioIo::new(CloseNotify(tls)), router, peer, shutdown).await,
                        Err(e) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                    },
                    None => serve_conn(TokioIo::new(stream), router, peer, shutdown).await,
                }
            });
        }
    })
}

/// [`spawn`], for a server that can go away and come back: while `up` is false the port is
/// closed (clients get "connection refused") and the connections it had are dropped, as
/// when an API server is unreachable; when `up` turns true again it listens on the same
/// address.
pub fn spawn_closable(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
    mut up: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let mut listener = (*up.borrow_and_update()).then_some(listener);
        // Every connection ends when this changes (the server went down, or shuts down).
        let (cut_tx, _) = watch::channel(0u64);
        loop {
            let Some(l) = listener.as_ref() else {
                tokio::select! {
                    r = up.changed() => {
                        if r.is_err() { break; }
                        if *up.borrow_and_update() {
                            match TcpListener::bind(addr).await {
                                Ok(l) => listener = Some(l),
                                Err(e) => tracing::warn!("cannot listen on {addr} again: {e}"),
                            }
                        }
                    }
                    _ = shutdown.changed() => break,
                }
                continue;
            };
            let (stream, peer) = tokio::select! {
                r = l.accept() => match r {
                    Ok(x) => x,
                    Err(e) => { tracing::warn!("accept failed: {e}"); continue; }
                },
                r = up.changed() => {
                    if r.is_err() { break; }
                    if !*up.borrow_and_update() {
                        listener = None;
                        cut_tx.send_modify(|n| *n += 1);
                    }
                    continue;
                }
                _ = shutdown.changed() => break,
            };
            let router = router.clone();
            let acceptor = acceptor.clone();
            // Subscribed now: a cut before this connection does not end it.
            let cut = cut_tx.subscribe();
            tokio::spawn(async move {
                match acceptor {
                    Some(acc) => match acc.accept(stream).await {
                        Ok(tls) => serve_conn(TokioIo::new(CloseNotify(tls)), router, peer, cut).await,
                        Err(e) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                    },
                    None => serve_conn(TokioIo::new(stream), router, peer, cut).await,
                }
            });
        }
        cut_tx.send_modify(|n| *n += 1);
    })
}

async fn serve_conn<I, T>(io: I, router: Router, peer: SocketAddr, mut shutdown: watch::Receiver<T>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    T: Send + Sync + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        async move {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let resp = router.oneshot(req).await.unwrap_or_else(|e| match e {});
            if resp.extensions().get::<ResetConnection>().is_some() {
                return Err(Reset);
            }
            Ok::<_, Reset>(resp)
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => { if let Err(e) = r { tracing::trace!("connection from {peer} ended: {e}"); } }
        _ = shutdown.changed() => {}
    }
}

/// A TLS connection that says `close_notify` when it is dropped, as Go's `tls.Conn.Close`
/// (the API server's) does. hyper shuts a plain HTTP connection down itself, but an upgraded
/// one (pods/exec over WebSocket) is simply dropped when the handler ends; without the alert
/// rustls clients read an unexpected EOF, an error rather than the end of the stream
/// (kube-rs then never ends an exec's stdout after a reboot cut it).
struct CloseNotify(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl Drop for CloseNotify {
    fn drop(&mut self) {
        let (tcp, tls) = self.0.get_mut();
        tls.send_close_notify(); // once: rustls skips it if already sent
        let mut alert = Vec::new();
        while tls.wants_write() {
            if tls.write_tls(&mut alert).is_err() {
                return;
            }
        }
        // Best effort and without blocking: a few bytes into a socket buffer.
        let _ = tcp.try_write(&alert);
    }
}

impl tokio::io::AsyncRead for CloseNotify {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CloseNotify {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
