//! The AWS implementations of the ports, and the only place the AWS SDK appears.
//!
//! Clients come from the standard credential chain and honour `AWS_ENDPOINT_URL` and the
//! per-service `AWS_ENDPOINT_URL_<SERVICE>` variables, so the same code runs against AWS
//! and against a local emulator. [`ports`] wires them as the product runs them.

mod clients;
mod cloudformation;
mod dynamodb;
mod error;
mod events;
mod iot;
mod s3;
mod sqs;
mod wiring;

pub use clients::AwsClients;
pub use cloudformation::{StackDeployer, StackOutputs};
pub use dynamodb::DynamoStateStore;
pub use events::{SnsEventPublisher, SqsEventPublisher};
pub use iot::IotRegistry;
pub use s3::{S3CaKeyStore, S3RowSource, S3SecretSink, S3TemplateStore};
pub use sqs::{
    REJECTION_CODE_ATTRIBUTE, REJECTION_PATH_ATTRIBUTE, REJECTION_REASON_ATTRIBUTE, SOURCE_MESSAGE_ID_ATTRIBUTE,
    SqsCommandQueue,
};
pub use wiring::ports;
