//! Helpers shared by the integration tests: starting bidders, HTTP/1.1 and h2c clients, requests.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rtb_bidder::{BidderConfig, BidderHandle};
use serde_json::Value;
use tokio::net::TcpListener;

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// An HTTP/1.1 client.
pub(crate) fn h1() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An h2c (HTTP/2 prior knowledge) client.
pub(crate) fn h2() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Starts a bidder on an ephemeral localhost port.
pub(crate) async fn start(config: BidderConfig) -> BidderHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    rtb_bidder::spawn(listener, config).await.unwrap()
}

/// A bid request with one 300x250 banner imp per `(id, bidfloor)`.
pub(crate) fn bid_request(id: &str, imps: &[(&str, f64)]) -> String {
    let imps: Vec<Value> = imps
        .iter()
        .map(|(imp_id, floor)| {
            serde_json::json!({
                "id": imp_id,
                "bidfloor": floor,
                "bidfloorcur": "USD",
                "banner": {"format": [{"w": 300, "h": 250}]},
                "ext": {"ignored": true}
            })
        })
        .collect();
    serde_json::json!({
        "id": id,
        "imp": imps,
        "site": {"domain": "publisher.example", "page": "https://publisher.example/"},
        "tmax": 120,
        "cur": ["USD"],
        "unknown_field": [1, 2, 3]
    })
    .to_string()
}

/// A finished exchange: status, headers and the whole body.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("response body is JSON")
    }
}

/// POSTs `body` to `url` as an OpenRTB 2.6 bid request.
pub(crate) async fn post(client: &HttpClient, url: &str, body: &str) -> Reply {
    let req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", "application/json")
        .header("x-openrtb-version", "2.6")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    send(client, req).await
}

/// GETs `url`.
pub(crate) async fn get(client: &HttpClient, url: &str) -> Reply {
    let req = Request::builder()
        .uri(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(client, req).await
}

async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Reply {
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("response within 30 s")
        .expect("request succeeds");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// The bids of a bid response.
pub(crate) fn bids(resp: &Value) -> Vec<Value> {
    resp["seatbid"][0]["bid"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
