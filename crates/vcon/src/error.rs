//! Why a document was refused.

/// One problem in a document: where (a JSON path such as `dialog[0].duration`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The JSON path of the offending value.
    pub path: String,
    /// What is wrong with it, and what was found.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why [`parse`](crate::parse) refused a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VconError {
    /// The bytes are not JSON.
    #[error("not valid JSON at line {line} column {column}: {reason}")]
    NotJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser expected.
        reason: String,
    },
    /// The JSON is not an object.
    #[error("a vCon must be a JSON object, found {found}")]
    NotAnObject {
        /// What was found instead.
        found: String,
    },
    /// The document is JSON but breaks vCon rules: every problem found, not just the first.
    #[error("invalid vCon: {}", join(problems))]
    Invalid {
        /// The problems, in document order.
        problems: Vec<Problem>,
    },
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl VconError {
    /// The problems of an [`Invalid`](VconError::Invalid) document (empty for the others).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems } => problems,
            _ => &[],
        }
    }
}
