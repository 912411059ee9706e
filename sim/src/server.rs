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
                        Ok(tls) => serve_conn(TokioIo::new(tls), router, peer, shutdown).await,
                        Err(e) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                    },
                    None => serve_conn(TokioIo::new(stream), router, peer, shutdown).await,
                }
            });
        }
    })
}

async fn serve_conn<I>(io: I, router: Router, peer: SocketAddr, mut shutdown: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
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
