//! Bidders over HTTP/2 on TLS (`protocol = "h2"`), ALPN-negotiated, trusting a
//! private CA from `ca_file`.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use rtb_exchange::config::{BidderEntry, Protocol};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// A minimal TLS bidder: HTTP/2 only (ALPN "h2"), bids 4.00 on the first imp.
/// Returns its port and a counter of HTTP/2 requests served.
async fn tls_bidder(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> (u16, Arc<AtomicU64>) {
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let counter = counter.clone();
                        async move {
                            assert_eq!(req.version(), http::Version::HTTP_2);
                            counter.fetch_add(1, Ordering::Relaxed);
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let r: Value = serde_json::from_slice(&body).unwrap();
                            let resp = json!({"id": r["id"], "cur": "USD", "seatbid": [{"bid": [
                                {"id": "t1", "impid": r["imp"][0]["id"], "price": 4.0, "adm": "<b>${AUCTION_PRICE}</b>"}
                            ]}]});
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
                                serde_json::to_vec(&resp).unwrap(),
                            ))))
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await;
            });
        }
    });
    (port, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_bidders_are_reached_over_tls_with_alpn() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let (port, served) = tls_bidder(&cert).await;
    let other = bidder("plain", 1.0, |_| {}).await;
    let ex = exchange(&[("plain", &other)], |c| {
        let mut entry = BidderEntry::new(
            "secure",
            vec![format!("https://127.0.0.1:{port}")],
            Protocol::H2,
        );
        entry.ca_file = Some(ca.clone());
        c.bidders.push(entry);
    })
    .await;
    let v = post(&ex, &request("tls-1", 0.5, 500)).await.json();
    let wins = winners(&v);
    assert_eq!(wins[0].0, "secure", "{v}");
    assert_eq!(wins[0].1["price"], json!(1.01));
    assert_eq!(wins[0].1["adm"], "<b>1.01</b>");
    assert_eq!(served.load(Ordering::Relaxed), 1);

    // Without the private CA the certificate is refused: an error, not a win.
    let ex = exchange(&[("plain", &other)], |c| {
        c.bidders.push(BidderEntry::new(
            "secure",
            vec![format!("https://127.0.0.1:{port}")],
            Protocol::H2,
        ));
    })
    .await;
    let v = post(&ex, &request("tls-2", 0.5, 500)).await.json();
    assert_eq!(winners(&v)[0].0, "plain");
    let nb = nonbids(&v, "secure");
    assert_eq!(nb[0]["statuscode"], 1, "{v}");
    assert!(
        nb[0]["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{v}"
    );
}
