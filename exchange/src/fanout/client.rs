//! HTTP clients towards bidders: pooled HTTP/2 (h2c or TLS with ALPN) or HTTP/1.1 keep-alive.
//!
//! One client per bidder. hyper-util's pooled client keeps one multiplexed
//! HTTP/2 connection per instance (or a pool of HTTP/1.1 connections), so a
//! request costs a stream, not a handshake.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::{BidderEntry, EndpointPolicy, Protocol};
use crate::guard::GuardedConnector;

/// How long establishing a TCP connection to a bidder may take. A bidder that
/// cannot accept a connection in this time will not answer within any tmax.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Idle connections are closed after this, so a bidder that scaled down is
/// not held on to forever.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// HTTP/2 PING interval: finds dead connections between auctions instead of
/// during one.
const H2_KEEPALIVE: Duration = Duration::from_secs(20);

/// Errors building a bidder's client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be read or parsed.
    #[error("bidder {bidder}: ca_file {path}: {message}")]
    CaFile {
        /// Bidder name.
        bidder: String,
        /// File.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("bidder {bidder}: tls: {message}")]
    Tls {
        /// Bidder name.
        bidder: String,
        /// What went wrong.
        message: String,
    },
}

/// A pooled client for one bidder.
#[derive(Clone, Debug)]
pub enum BidderClient {
    /// h2c or HTTP/1.1.
    Plain(Client<HttpConnector, Full<Bytes>>),
    /// HTTP/2 over TLS.
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
    /// h2c or HTTP/1.1, connecting only where the endpoint policy allows.
    GuardedPlain(Client<GuardedConnector, Full<Bytes>>),
    /// HTTP/2 over TLS, connecting only where the endpoint policy allows.
    GuardedTls(Client<HttpsConnector<GuardedConnector>, Full<Bytes>>),
}

impl BidderClient {
    /// Builds the client a bidder's protocol needs. With `guard`, every
    /// connection goes through [`GuardedConnector`]: the addresses a name
    /// resolves to are checked when connecting, not only at registration,
    /// so a bidder whose name is later pointed at a private address is not
    /// connected to (DNS rebinding). Without it (bidders from the config
    /// file, which the operator wrote) a plain connector.
    pub fn new(
        entry: &BidderEntry,
        guard: Option<Arc<EndpointPolicy>>,
    ) -> Result<Self, ClientError> {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        if entry.protocol != Protocol::Http1 {
            h2(&mut builder);
        }
        let tls = match entry.protocol {
            Protocol::H2 => Some(tls_config(entry)?),
            _ => None,
        };
        let https = |tls| {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_only()
                .enable_http2()
        };
        Ok(match (guard, tls) {
            (None, tls) => {
                let mut http = HttpConnector::new();
                http.set_nodelay(true);
                http.set_connect_timeout(Some(CONNECT_TIMEOUT));
                http.enforce_http(tls.is_none());
                match tls {
                    None => Self::Plain(builder.build(http)),
                    Some(tls) => Self::Tls(builder.build(https(tls).wrap_connector(http))),
                }
            }
            (Some(policy), tls) => {
                let guarded = GuardedConnector::new(policy).tcp(true, CONNECT_TIMEOUT);
                match tls {
                    None => Self::GuardedPlain(builder.build(guarded)),
                    Some(tls) => {
                        Self::GuardedTls(builder.build(https(tls).wrap_connector(guarded)))
                    }
                }
            }
        })
    }

    /// Sends one request.
    pub fn request(&self, req: http::Request<Full<Bytes>>) -> ResponseFuture {
        match self {
            Self::Plain(c) => c.request(req),
            Self::Tls(c) => c.request(req),
            Self::GuardedPlain(c) => c.request(req),
            Self::GuardedTls(c) => c.request(req),
        }
    }
}

fn h2(builder: &mut hyper_util::client::legacy::Builder) {
    builder
        .http2_only(true)
        .http2_keep_alive_interval(H2_KEEPALIVE)
        .http2_keep_alive_while_idle(true)
        // Bid responses are small; larger windows avoid WINDOW_UPDATE chatter
        // when many streams share one connection.
        .http2_initial_stream_window_size(1 << 20)
        .http2_initial_connection_window_size(8 << 20);
}

fn tls_config(entry: &BidderEntry) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &entry.ca_file {
        let ca_err = |message: String| ClientError::CaFile {
            bidder: entry.name.clone(),
            path: path.display().to_string(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no certificate in file".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls {
            bidder: entry.name.clone(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
