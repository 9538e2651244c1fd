//! A connector that refuses what [`EndpointPolicy`] forbids, at connect time:
//! under the win-notice client (every nurl) and under the clients of the
//! bidders registered through the admin API.
//!
//! Checking a URL before fetching it is not enough: a name can resolve to a
//! private address (or be re-pointed there between the check and the
//! connect). So the check sits inside the connector. IP literals are checked
//! before connecting (hyper-util's `HttpConnector` does not resolve them),
//! names against `allowed_hosts`, and every address a name resolves to goes
//! through the policy in the resolver, so the addresses the socket connects
//! to are exactly the ones that were checked.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

use crate::config::{EndpointPolicy, Refusal};

/// Boxed error, as hyper-util's connectors use.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the guard refused to connect.
#[derive(Debug, thiserror::Error)]
pub enum Blocked {
    /// Only `http` and `https` are fetched.
    #[error("scheme {0:?} is not http or https")]
    Scheme(String),
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The endpoint policy refused the host or an address it resolved to.
    #[error(transparent)]
    Policy(#[from] Refusal),
}

impl Blocked {
    /// The `Blocked` somewhere in `e`'s source chain, if any.
    pub fn find<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e Blocked> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(b) = err.downcast_ref::<Blocked>() {
                return Some(b);
            }
            cur = err.source();
        }
        None
    }
}

/// Resolves names with getaddrinfo and refuses the answer when any address
/// is one the policy forbids (a name with one private address among public
/// ones is refused, as at registration).
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    policy: Arc<EndpointPolicy>,
    gai: GaiResolver,
}

impl Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.gai.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        let lookup = self.gai.call(name.clone());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = lookup.await?.collect();
            for a in &addrs {
                policy
                    .check_resolved(name.as_str(), a.ip())
                    .map_err(Blocked::Policy)?;
            }
            Ok(addrs.into_iter())
        })
    }
}

/// `HttpConnector` behind the policy: a `tower::Service<Uri>` to wrap in
/// hyper-rustls's `HttpsConnector`.
#[derive(Debug, Clone)]
pub struct GuardedConnector {
    policy: Arc<EndpointPolicy>,
    inner: HttpConnector<CheckedResolver>,
}

impl GuardedConnector {
    /// A connector that connects only where `policy` allows (plain TCP;
    /// `https` URIs are passed through for the TLS layer above).
    pub fn new(policy: Arc<EndpointPolicy>) -> Self {
        let mut inner = HttpConnector::new_with_resolver(CheckedResolver {
            policy: policy.clone(),
            gai: GaiResolver::new(),
        });
        inner.enforce_http(false);
        Self { policy, inner }
    }

    /// The inner connector's TCP settings (`TCP_NODELAY`, connect timeout).
    pub fn tcp(mut self, nodelay: bool, connect_timeout: std::time::Duration) -> Self {
        self.inner.set_nodelay(nodelay);
        self.inner.set_connect_timeout(Some(connect_timeout));
        self
    }

    /// Checks the URI's scheme and host before any connection is tried.
    pub fn check(policy: &EndpointPolicy, uri: &Uri) -> Result<(), Blocked> {
        match uri.scheme_str() {
            Some("http" | "https") => {}
            other => return Err(Blocked::Scheme(other.unwrap_or("").to_owned())),
        }
        let host = uri.host().ok_or(Blocked::NoHost)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => policy.check_ip(ip)?,
            Err(_) => policy.check_name(bare)?,
        }
        Ok(())
    }
}

impl Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Err(b) = Self::check(&self.policy, &uri) {
            return Box::pin(async move { Err(b.into()) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}
