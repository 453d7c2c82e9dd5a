//! The IoT registry ports on the AWS IoT control plane, one file per port:
//! [`things`], [`certificates`], [`policies`], [`registration`].

mod certificates;
mod policies;
mod registration;
mod things;

/// The IoT registry.
#[derive(Debug, Clone)]
pub struct IotRegistry {
    client: aws_sdk_iot::Client,
}

impl IotRegistry {
    /// Uses the IoT client of `clients`.
    pub fn new(clients: &super::AwsClients) -> Self {
        Self { client: clients.iot.clone() }
    }

    /// A registry on an explicit client (tests of request shapes).
    pub fn with_client(client: aws_sdk_iot::Client) -> Self {
        Self { client }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_iot::config::{BehaviorVersion, Credentials, Region};
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::Uri;
    use axum::routing::post;

    use std::collections::BTreeMap;

    use super::*;
    use crate::ports::ThingRegistration;

    /// A registry whose client talks to `app` on a local port, retrying as the product does
    /// (standard mode, three attempts) but with no wait between attempts.
    async fn registry_on(app: Router) -> IotRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let config = aws_sdk_iot::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::for_tests())
            .endpoint_url(format!("http://{address}"))
            .retry_config(
                aws_sdk_iot::config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(std::time::Duration::from_millis(1)),
            )
            .build();
        IotRegistry::with_client(aws_sdk_iot::Client::from_conf(config))
    }

    /// RegisterThing's request on the wire, checked against a local HTTP endpoint (the
    /// emulator does not implement RegisterThing).
    #[tokio::test]
    async fn register_thing_sends_the_template_and_parameters() {
        type Captured = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
        let seen: Captured = Arc::default();
        let capture = seen.clone();
        let app = Router::new().route(
            "/things",
            post(move |uri: Uri, body: Bytes| {
                let capture = capture.clone();
                async move {
                    capture.lock().unwrap().push((uri.path().to_owned(), body.to_vec()));
                    r#"{"certificatePem":"PEM","resourceArns":{"thing":"arn:aws:iot:us-east-1:1:thing/t1","certificate":"arn:aws:iot:us-east-1:1:cert/c1"}}"#
                }
            }),
        );
        let registry = registry_on(app).await;
        let template = r#"{"Parameters":{"ThingName":{"Type":"String"}},"Resources":{}}"#;
        let parameters = BTreeMap::from([("ThingName".to_owned(), "t1".to_owned())]);
        let registration = registry.register_thing(template, &parameters).await.unwrap();

        assert_eq!(registration.certificate_pem.as_deref(), Some("PEM"));
        assert_eq!(registration.resource_arns["certificate"], "arn:aws:iot:us-east-1:1:cert/c1");
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].0, "/things");
        let body: serde_json::Value = serde_json::from_slice(&requests[0].1).unwrap();
        assert_eq!(body, serde_json::json!({"templateBody": template, "parameters": {"ThingName": "t1"}}));
    }

    /// A call that makes a certificate is never retried by the SDK (a retry after a timeout
    /// would make a second one); an idempotent call still is.
    #[tokio::test]
    async fn certificate_creating_calls_are_not_retried_by_the_sdk() {
        use crate::ports::Certificates;
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = calls.clone();
        let app = Router::new().fallback(move |uri: Uri| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(uri.path().to_owned());
                (axum::http::StatusCode::INTERNAL_SERVER_ERROR, r#"{"message":"boom"}"#)
            }
        });
        let registry = registry_on(app).await;

        assert!(registry.create_certificate_from_csr("csr", false).await.is_err());
        assert_eq!(calls.lock().unwrap().len(), 1, "CreateCertificateFromCsr: one request");
        assert!(registry.create_keys_and_certificate(false).await.is_err());
        assert_eq!(calls.lock().unwrap().len(), 2, "CreateKeysAndCertificate: one request");
        let id = crate::domain::CertificateId::new("c1");
        assert!(registry.describe_certificate(&id).await.is_err());
        assert_eq!(calls.lock().unwrap().len(), 5, "DescribeCertificate: retried three times in all");
    }
}
