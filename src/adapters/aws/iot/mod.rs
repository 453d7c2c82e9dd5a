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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let config = aws_sdk_iot::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::for_tests())
            .endpoint_url(format!("http://{address}"))
            .build();
        let registry = IotRegistry::with_client(aws_sdk_iot::Client::from_conf(config));
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
}
