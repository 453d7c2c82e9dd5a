//! Builds the SDK clients once, from the standard configuration chain.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

/// One client per AWS service the product uses.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub(crate) iot: aws_sdk_iot::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) cloudformation: aws_sdk_cloudformation::Client,
    pub(crate) s3: aws_sdk_s3::Client,
}

impl AwsClients {
    /// Loads region, credentials and endpoints (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_IOT`, ...)
    /// the standard way. The SDK retries throttling and transient errors itself (standard
    /// mode, `max_attempts` attempts); long polls get an attempt timeout above their wait.
    /// Not adaptive mode: its client-side limiter slows every call of a client after a few
    /// throttles and recovers slowly, which cut throughput 34-fold when 30 % of IoT calls were
    /// throttled (fault suite); IoT calls are paced per operation by the rate limits instead.
    pub async fn load(max_attempts: u32, long_poll_wait: Duration) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            )
            .load()
            .await;
        let sqs_config = aws_sdk_sqs::config::Builder::from(&shared)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    // aws-sdk-rust#1094: without a bound a long poll can hang forever.
                    .operation_attempt_timeout(long_poll_wait + Duration::from_secs(10))
                    .build(),
            )
            .build();
        // An emulator answers on one host: address buckets by path, not by subdomain.
        let emulated = shared.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3_config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(emulated).build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            iot: aws_sdk_iot::Client::new(&shared),
            sqs: aws_sdk_sqs::Client::from_conf(sqs_config),
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            sns: aws_sdk_sns::Client::new(&shared),
            cloudformation: aws_sdk_cloudformation::Client::new(&shared),
        }
    }
}
