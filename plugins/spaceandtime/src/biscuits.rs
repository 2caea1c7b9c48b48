//! Minting the table's biscuits from its private key (option `biscuit_private_key`), exactly as
//! Space and Time's SDK does: one `sxt:capability("<operation>", "<schema.table>")` fact per
//! operation in the authority block, the resource in lower case, signed with the table's
//! Ed25519 key, URL-safe base64.

use biscuit_auth::builder::Algorithm;
use biscuit_auth::{Biscuit, KeyPair, PrivateKey};
use plugin_sdk::Secret;

use crate::error::Error;

/// What reads need.
pub(crate) const READ: &[&str] = &["dql_select"];
/// What `save`, `delete` and `clear` need (an upsert is an UPDATE, then an INSERT).
pub(crate) const WRITE: &[&str] = &["dml_insert", "dml_update", "dml_delete"];
/// What `provision` needs.
pub(crate) const DDL: &[&str] = &["ddl_create", "ddl_drop"];

/// The biscuits minted from a private key, and its public key for `CREATE TABLE`.
#[derive(Debug, Clone)]
pub(crate) struct Minted {
    pub(crate) read: Secret,
    pub(crate) write: Secret,
    pub(crate) ddl: Secret,
    pub(crate) public_hex: String,
}

/// Mints the read, write and DDL biscuits for `resource` (`schema.table`).
pub(crate) fn mint_all(private_hex: &Secret, resource: &str) -> Result<Minted, Error> {
    let hex = private_hex.expose().trim();
    let key = PrivateKey::from_bytes_hex(hex, Algorithm::Ed25519).map_err(|_| {
        Error::Biscuit(
            "invalid option biscuit_private_key: expected the table's Ed25519 private key as 64 \
             hex digits"
                .to_owned(),
        )
    })?;
    let pair = KeyPair::from(&key);
    let public_hex = pair
        .public()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Minted {
        read: mint(&pair, READ, resource)?,
        write: mint(&pair, WRITE, resource)?,
        ddl: mint(&pair, DDL, resource)?,
        public_hex,
    })
}

fn mint(pair: &KeyPair, operations: &[&str], resource: &str) -> Result<Secret, Error> {
    // `resource` is a validated identifier pair and the operations are constants, so Debug
    // quoting renders them exactly as Datalog strings.
    let resource = resource.to_ascii_lowercase();
    let code: String = operations
        .iter()
        .map(|op| format!("sxt:capability({op:?}, {resource:?});\n"))
        .collect();
    Biscuit::builder()
        .code(code)
        .and_then(|builder| builder.build(pair))
        .and_then(|token| token.to_base64())
        .map(Secret::from)
        .map_err(|err| Error::Biscuit(format!("cannot mint a biscuit: {err}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use biscuit_auth::UnverifiedBiscuit;

    const KEY: &str = "0f3c6a1e2d9b8c7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0918";

    #[test]
    fn mints_the_sdk_s_facts() {
        let minted = mint_all(&Secret::from(KEY.to_owned()), "VCON.VCONS").unwrap();
        assert_eq!(minted.public_hex.len(), 64);
        let read = UnverifiedBiscuit::from_base64(minted.read.expose()).unwrap();
        let source = read.print_block_source(0).unwrap();
        assert_eq!(
            source.trim(),
            "sxt:capability(\"dql_select\", \"vcon.vcons\");"
        );
        let write = UnverifiedBiscuit::from_base64(minted.write.expose()).unwrap();
        let source = write.print_block_source(0).unwrap();
        for op in WRITE {
            assert!(source.contains(&format!("sxt:capability(\"{op}\", \"vcon.vcons\")")));
        }
        assert!(
            !minted.write.expose().contains(['+', '/']),
            "not URL-safe base64"
        );
    }

    #[test]
    fn a_bad_key_is_refused_without_echoing_it() {
        let err = mint_all(&Secret::from("zz-secret".to_owned()), "a.b").unwrap_err();
        assert!(!err.to_string().contains("zz-secret"), "{err}");
    }
}
