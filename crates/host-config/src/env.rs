//! `${VAR}` and `${VAR:-default}` in config values, so secrets stay out of the file.
//!
//! The Python server's docs show `${...}` but its code never expands it; vcon-host does what the
//! docs say. A reference to an unset variable without a default is an error (not an empty
//! string): a missing password should stop the start, not produce a confusing auth failure
//! later. `$${` writes a literal `${`.

/// Reads one environment variable; the process environment in production, a map in tests.
pub type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// The process environment as a [`Lookup`] (non-UTF-8 values count as unset).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Expands every `${...}` in `text`. The error names the variable, never a value.
pub(crate) fn expand(text: &str, env: &Lookup<'_>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("`${{` at `{}` is not closed with `}}`", clip(after)))?;
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_variable_name(name) {
                return Err(format!(
                    "`${{{inner}}}` is not a variable reference; use ${{NAME}} or ${{NAME:-default}} (NAME of letters, digits and _)"
                ));
            }
            match (env(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set; export it, or write ${{{name}:-default}} to give a default"
                    ))
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn clip(text: &str) -> &str {
    text.char_indices()
        .nth(24)
        .map_or(text, |(i, _)| &text[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("alice".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_unset_and_defaulted_variables() {
        assert_eq!(
            expand("postgres://${USER}@db", &env).unwrap(),
            "postgres://alice@db"
        );
        assert_eq!(expand("${PORT:-5432}", &env).unwrap(), "5432");
        assert_eq!(expand("${EMPTY:-x}", &env).unwrap(), "x");
        assert_eq!(expand("${USER:-x}", &env).unwrap(), "alice");
        assert_eq!(expand("cost: $5", &env).unwrap(), "cost: $5");
        assert_eq!(expand("$${USER}", &env).unwrap(), "${USER}");
    }

    #[test]
    fn unset_variable_without_default_names_it() {
        let err = expand("${PGPASSWORD}", &env).unwrap_err();
        assert!(err.contains("PGPASSWORD is not set"), "{err}");
    }

    #[test]
    fn malformed_references_are_refused() {
        assert!(expand("${USER", &env).unwrap_err().contains("not closed"));
        assert!(expand("${1X}", &env)
            .unwrap_err()
            .contains("not a variable reference"));
    }
}
