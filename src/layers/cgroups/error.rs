//! The cgroups layer's error: the step that failed, what it was doing, and the cause.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroups: {step}: {what}")]
    Io {
        step: &'static str,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroups: {step}: {what}")]
    Lib {
        step: &'static str,
        what: String,
        #[source]
        source: cgroups_rs::fs::error::Error,
    },
    #[error("cgroups: {step}: {what}")]
    Other { step: &'static str, what: String },
}

impl CgroupError {
    pub(crate) fn limit(
        dir: &Path,
        file: &'static str,
        value: String,
        source: cgroups_rs::fs::error::Error,
    ) -> CgroupError {
        CgroupError::Lib {
            step: "limit",
            what: format!("cannot write {value:?} to {}", dir.join(file).display()),
            source,
        }
    }
}
