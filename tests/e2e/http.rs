//! The REST facade served on a local port, and an HTTP client for it (hyper's, so responses
//! are read as HTTP says, chunked or not).

use std::net::SocketAddr;

use cdf_provisioning::app::App;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Serves `app`'s REST facade on a local port; returns its address.
pub(crate) async fn serve(app: App) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = cdf_provisioning::api::router(app);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// A request and the status it must get: method, path, headers, body, status.
pub(crate) type Exchange<'a> = (&'a str, String, &'a [(&'a str, &'a str)], &'a str, u16);

/// One HTTP/1.1 exchange: status and body.
pub(crate) async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut request = hyper::Request::builder().method(method).uri(format!("http://{address}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
