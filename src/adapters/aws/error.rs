//! Turns every SDK error into a [`PortError`] in one place, sorted by what to do next.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use crate::ports::{ErrorKind, PortError};

/// What a failed SDK call of operation `op` becomes where the call is made: classified, and
/// counted when AWS throttled it (`.map_err(failed(OP))`).
pub(crate) fn failed<E>(op: &'static str) -> impl FnOnce(SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |err| counted(classify(op, err))
}

/// Counts a throttled call in the metrics (`cdf_aws_throttles_total{operation}`) and passes the
/// error on; every classified SDK failure goes through here at its call site.
pub(crate) fn counted(error: PortError) -> PortError {
    if error.kind == ErrorKind::Throttled {
        crate::metrics::global().throttled(error.op);
    }
    error
}

/// Classifies an SDK error from operation `op`. Pure: counting is the call site's
/// ([`failed`], [`counted`]).
#[allow(clippy::needless_pass_by_value)] // takes the error the call returned, as `map_err` does
pub(crate) fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().unwrap_or_default();
            let status = service.raw().status().as_u16();
            PortError::new(kind_of(code, message, status), op, format!("{code}: {message}"))
        }
        SdkError::ConstructionFailure(_) => {
            PortError::new(ErrorKind::Permanent, op, aws_sdk_sqs::error::DisplayErrorContext(&err).to_string())
        }
        // Timeouts, dispatch failures (connection refused, DNS) and unparseable responses.
        _ => PortError::new(ErrorKind::Transient, op, aws_sdk_sqs::error::DisplayErrorContext(&err).to_string()),
    }
}

/// The decision table: service error code (and message, for IoT's overloaded
/// `InvalidRequestException`) and HTTP status to an [`ErrorKind`].
fn kind_of(code: &str, message: &str, status: u16) -> ErrorKind {
    match code {
        "ResourceNotFoundException"
        | "NoSuchKey"
        | "NoSuchBucket"
        | "NotFound"
        | "NotFoundException"
        | "AWS.SimpleQueueService.NonExistentQueue"
        | "QueueDoesNotExist" => ErrorKind::NotFound,
        "ResourceAlreadyExistsException" | "EntityAlreadyExists" => ErrorKind::AlreadyExists,
        "ConditionalCheckFailedException"
        | "TransactionCanceledException"
        | "PreconditionFailed"
        | "ConditionalRequestConflict" => ErrorKind::ConditionFailed,
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "ProvisionedThroughputExceededException"
        | "SlowDown"
        | "RequestThrottled"
        | "AWS.SimpleQueueService.RequestThrottled" => ErrorKind::Throttled,
        "DeleteConflictException"
        | "CertificateStateException"
        | "ConflictingResourceUpdateException"
        | "VersionConflictException" => ErrorKind::Conflict,
        // IoT answers "Cannot delete. Thing ... is still attached to one or more principals"
        // with InvalidRequestException while a detach propagates.
        "InvalidRequestException" if message.contains("attached") => ErrorKind::Conflict,
        "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "InternalFailureException"
        | "InternalFailure"
        | "InternalServerError"
        | "InternalError"
        | "RequestTimeout" => ErrorKind::Transient,
        "InvalidRequestException"
        | "ValidationException"
        | "InvalidParameterValue"
        | "InvalidParameterValueException"
        | "MalformedPolicyException"
        // RegisterThing: a resource the template names cannot be registered (a group or type
        // that does not exist, a certificate in use): the input is at fault.
        | "ResourceRegistrationFailureException"
        | "ReceiptHandleIsInvalid"
        | "InvalidParameterException" => ErrorKind::Invalid,
        _ if status == 429 => ErrorKind::Throttled,
        _ if status >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_what_to_do_next() {
        let cases = [
            ("ResourceNotFoundException", "", 404, ErrorKind::NotFound),
            ("ThrottlingException", "Rate exceeded", 400, ErrorKind::Throttled),
            (
                "InvalidRequestException",
                "Cannot delete. Thing t is still attached to one or more principals",
                400,
                ErrorKind::Conflict,
            ),
            ("InvalidRequestException", "bad name", 400, ErrorKind::Invalid),
            ("ResourceRegistrationFailureException", "thing group g does not exist", 400, ErrorKind::Invalid),
            ("DeleteConflictException", "", 409, ErrorKind::Conflict),
            ("CertificateStateException", "", 406, ErrorKind::Conflict),
            ("ConditionalCheckFailedException", "", 400, ErrorKind::ConditionFailed),
            ("PreconditionFailed", "", 412, ErrorKind::ConditionFailed),
            ("ConditionalRequestConflict", "", 409, ErrorKind::ConditionFailed),
            ("InternalFailureException", "", 500, ErrorKind::Transient),
            ("SomethingNew", "", 503, ErrorKind::Transient),
            ("SomethingNew", "", 429, ErrorKind::Throttled),
            ("UnauthorizedException", "", 401, ErrorKind::Permanent),
            ("AccessDeniedException", "", 403, ErrorKind::Permanent),
        ];
        for (code, message, status, kind) in cases {
            assert_eq!(kind_of(code, message, status), kind, "{code} {message}");
        }
    }
}
