//! Table key pairs and biscuits, as the Space and Time tooling makes them: Ed25519 keys in hex,
//! biscuits holding `sxt:capability("<operation>", "<schema.table>")` facts in their authority
//! block, resource names lower-cased, tokens in URL-safe base64.

use biscuit_auth::builder::Algorithm;
use biscuit_auth::{Biscuit, KeyPair, PrivateKey, PublicKey};

/// A table key pair: the public key goes into `CREATE TABLE ... WITH "public_key=..."`, the
/// private key signs the table's biscuits.
#[derive(Clone)]
pub struct TableKeys {
    /// The private key, 64 hex digits (a 32-byte Ed25519 seed).
    pub private_hex: String,
    /// The public key, 64 hex digits.
    pub public_hex: String,
}

impl std::fmt::Debug for TableKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableKeys")
            .field("public_hex", &self.public_hex)
            .finish_non_exhaustive()
    }
}

impl TableKeys {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        let pair = KeyPair::new();
        Self {
            private_hex: hex(&pair.private().to_bytes()),
            public_hex: hex(&pair.public().to_bytes()),
        }
    }

    /// A biscuit signed with this key pair granting `operations` (e.g. `dql_select`, `*`) on
    /// `resource` (`schema.table`, any case).
    pub fn biscuit(&self, operations: &[&str], resource: &str) -> String {
        mint(&self.private_hex, operations, resource)
            .unwrap_or_else(|err| panic!("minting a test biscuit: {err}"))
    }
}

/// Mints a biscuit from a private key in hex: one `sxt:capability` fact per operation.
pub fn mint(private_hex: &str, operations: &[&str], resource: &str) -> Result<String, String> {
    let key = PrivateKey::from_bytes_hex(private_hex, Algorithm::Ed25519)
        .map_err(|err| format!("invalid private key: {err}"))?;
    let pair = KeyPair::from(&key);
    let resource = resource.to_ascii_lowercase();
    let code: String = operations
        .iter()
        .map(|op| format!("sxt:capability({op:?}, {resource:?});\n"))
        .collect();
    Biscuit::builder()
        .code(code)
        .and_then(|builder| builder.build(&pair))
        .and_then(|token| token.to_base64())
        .map_err(|err| format!("cannot mint the biscuit: {err}"))
}

/// Parses a public key in hex (64 digits).
pub(crate) fn public_key(hex_key: &str) -> Result<PublicKey, String> {
    PublicKey::from_bytes_hex(hex_key, Algorithm::Ed25519)
        .map_err(|err| format!("invalid public_key {hex_key:?}: {err}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
