//! Config errors: each names the file, the field path and what would be valid.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file.
///
/// Displays as `{file}: {path}: {message}`, for example
/// `edge.toml: services[1].origin: unsupported scheme "ftp"; use http or https`.
/// An error about the file as a whole (it cannot be read) has an empty `path` and displays as
/// `{file}: {message}`. An error from [`validate_service`](crate::validate_service) names no file
/// and displays as `{path}: {message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file, as given to [`load`](crate::load) or [`parse`](crate::parse); empty
    /// for a service checked on its own.
    pub file: PathBuf,
    /// Field path such as `services[1].origin` or `tls.certificates[0].cert`; for TOML syntax
    /// errors `(line L, column C)`.
    pub path: String,
    /// What is wrong and what would be valid, on one line.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(file: &Path, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), path: path.into(), message: one_line(&message.into()) }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.as_os_str().is_empty() {
            write!(f, "{}: ", self.file.display())?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config file, in file order where known. Never empty when returned
/// as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no error (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Collapses line breaks and runs of whitespace so that each error stays on one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_path_and_message() {
        let error = ConfigError::new(
            Path::new("edge.toml"),
            "services[1].origin",
            "unsupported scheme \"ftp\";\n  use http or https",
        );
        assert_eq!(error.to_string(), "edge.toml: services[1].origin: unsupported scheme \"ftp\"; use http or https");
        let whole_file = ConfigError::new(Path::new("edge.toml"), "", "cannot read");
        assert_eq!(whole_file.to_string(), "edge.toml: cannot read");
        let no_file = ConfigError::new(Path::new(""), "origin", "missing");
        assert_eq!(no_file.to_string(), "origin: missing");
    }

    #[test]
    fn displays_one_line_per_error() {
        let errors = ConfigErrors(vec![
            ConfigError::new(Path::new("a.toml"), "node.name", "empty"),
            ConfigError::new(Path::new("a.toml"), "listen", "no listener"),
        ]);
        assert_eq!(errors.to_string(), "a.toml: node.name: empty\na.toml: listen: no listener");
    }
}
