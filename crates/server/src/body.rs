//! Reading request bodies with a size limit, so no door holds an unbounded
//! body in memory.

use axum::body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// A body that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over the limit.
    #[error("request body is larger than the {limit} bytes accepted")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("request body could not be read: {0}")]
    Read(String),
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { limit })
        }
        Err(err) => Err(BodyError::Read(err.to_string())),
    }
}
