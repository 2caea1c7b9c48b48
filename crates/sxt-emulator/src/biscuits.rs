//! Biscuit checks: does some token in the request grant `operation` on `resource`, signed by
//! the table's key?
//!
//! Space and Time's own authorizer policy is not published; this one is built from what is
//! documented (capability facts, `*` for every operation) and from real biscuits seen in public
//! code. Resources are compared lower-cased on both sides.

use std::time::Duration;

use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, PublicKey};

/// Checks `tokens` for one grant of `operation` on `resource` under `key`. `Err` says why every
/// token failed, for the 403 answer.
pub(crate) fn authorize(
    tokens: &[String],
    key: &PublicKey,
    operation: &str,
    resource: &str,
) -> Result<(), String> {
    if tokens.is_empty() {
        return Err(format!(
            "no biscuit was sent; {operation} on {resource} needs one"
        ));
    }
    let resource = resource.to_ascii_lowercase();
    let mut reasons = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match check_one(token, key, operation, &resource) {
            Ok(()) => return Ok(()),
            Err(reason) => reasons.push(format!("biscuit {}: {reason}", i + 1)),
        }
    }
    Err(format!(
        "no biscuit grants {operation} on {resource}: {}",
        reasons.join("; ")
    ))
}

fn check_one(token: &str, key: &PublicKey, operation: &str, resource: &str) -> Result<(), String> {
    let biscuit = Biscuit::from_base64(token.trim(), *key)
        .map_err(|err| format!("not signed by the table's key or malformed ({err})"))?;
    // `operation` and `resource` are validated identifiers (letters, digits, `_`, `.`), so
    // quoting them with Debug is exact.
    let code = format!(
        "sxt:operation({operation:?}); sxt:resource({resource:?});\n\
         allow if sxt:operation($o), sxt:resource($r), sxt:capability($o, $r);\n\
         allow if sxt:resource($r), sxt:capability(\"*\", $r);\n\
         allow if sxt:capability(\"*\", \"*\");\n\
         deny if true;"
    );
    let mut authorizer = AuthorizerBuilder::new()
        .code(code)
        .map(|builder| {
            // The default budget (1 ms) is exceeded by a busy test machine, which would turn
            // load into refusals; the real service's budget is unknown.
            builder.time().set_limits(AuthorizerLimits {
                max_time: Duration::from_secs(1),
                ..AuthorizerLimits::default()
            })
        })
        .and_then(|builder| builder.build(&biscuit))
        .map_err(|err| format!("cannot evaluate ({err})"))?;
    authorizer.authorize().map(|_| ()).map_err(|err| match err {
        biscuit_auth::error::Token::FailedLogic(_) => "does not hold the capability".to_owned(),
        other => format!("cannot be evaluated ({other})"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keys::{public_key, TableKeys};

    #[test]
    fn grants_and_refusals() {
        let keys = TableKeys::generate();
        let key = public_key(&keys.public_hex).unwrap();
        let read = keys.biscuit(&["dql_select"], "VCON.VCONS");
        let all = keys.biscuit(&["*"], "vcon.vcons");
        let one = std::slice::from_ref;
        assert!(authorize(one(&read), &key, "dql_select", "vcon.vcons").is_ok());
        assert!(authorize(one(&read), &key, "dml_insert", "vcon.vcons").is_err());
        assert!(authorize(one(&read), &key, "dql_select", "vcon.other").is_err());
        assert!(authorize(one(&all), &key, "ddl_drop", "VCON.VCONS").is_ok());
        assert!(authorize(&[read.clone(), all], &key, "dml_delete", "vcon.vcons").is_ok());
        let other = TableKeys::generate().biscuit(&["*"], "vcon.vcons");
        let err = authorize(&[other], &key, "dql_select", "vcon.vcons").unwrap_err();
        assert!(err.contains("not signed"), "{err}");
        assert!(authorize(&[], &key, "dql_select", "vcon.vcons").is_err());
        assert!(authorize(&["garbage".into()], &key, "dql_select", "vcon.vcons").is_err());
    }
}
