//! The REST facade served on a local port, and an HTTP client for it.

use cdf_provisioning::app::App;

/// Serves `app`'s REST facade on a local port; returns its address.
pub(crate) async fn serve(app: App) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = cdf_provisioning::api::router(app);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// A request and the status it must get: method, path, headers, body, status.
pub(crate) type Exchange<'a> = (&'a str, String, &'a [(&'a str, &'a str)], &'a str, u16);

/// One HTTP/1.1 exchange over a plain socket (the tests need no HTTP client crate):
/// status and body.
pub(crate) async fn http(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}
