//! The capability bitset a plugin declares, so the host can check a config before running it.

use abi_stable::StableAbi;

/// What a storage can do beyond `save`, as a `u64` bitset.
///
/// Declared statically in [`PluginInfo`](crate::PluginInfo) so `plugins list`, `plugins check`
/// and config validation can use it without opening the storage, and narrowed per instance by
/// [`PluginStorage::capabilities`](crate::PluginStorage::capabilities) (an S3 store may lack
/// conditional puts). Bits this host does not know are ignored, so a newer plugin can declare
/// more. The conformance suite checks honesty: every undeclared operation answers
/// [`ErrorKind::UNSUPPORTED`](crate::ErrorKind::UNSUPPORTED).
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// No optional operation: `save` only.
    pub const NONE: Self = Self(0);
    /// `get` reads a vCon back.
    pub const GET: Self = Self(1 << 0);
    /// `delete` removes a vCon.
    pub const DELETE: Self = Self(1 << 1);
    /// `exists` answers without transferring the document.
    pub const EXISTS: Self = Self(1 << 2);
    /// `save_many`, `get_many`, `delete_many` are native batches (not a loop the host could do).
    pub const BATCH: Self = Self(1 << 3);
    /// `list` pages through stored uuids.
    pub const LIST: Self = Self(1 << 4);
    /// `query` answers a search (for example by party tel/mailto/name).
    pub const QUERY: Self = Self(1 << 5);
    /// `count` answers how many vCons are stored.
    pub const COUNT: Self = Self(1 << 6);
    /// `status` reports health and statistics.
    pub const STATUS: Self = Self(1 << 7);
    /// `provision` creates or migrates the schema, bucket or directory.
    pub const PROVISION: Self = Self(1 << 8);
    /// `clear` removes every stored vCon.
    pub const CLEAR: Self = Self(1 << 9);
    /// Reserved for namespaced storages (through `call`).
    pub const NAMESPACES: Self = Self(1 << 10);
    /// Reserved for per-vCon metadata (through `call`).
    pub const METADATA: Self = Self(1 << 11);
    /// Reserved for transactional batches (through `call`).
    pub const TRANSACTIONS: Self = Self(1 << 12);
    /// Every call returns without blocking on I/O, so the host may call it inline on an async
    /// worker instead of paying for a blocking-pool hand-off.
    pub const NONBLOCKING: Self = Self(1 << 13);

    /// Every capability this ABI version names, with its name, for listings and messages.
    pub const NAMED: [(Self, &'static str); 14] = [
        (Self::GET, "get"),
        (Self::DELETE, "delete"),
        (Self::EXISTS, "exists"),
        (Self::BATCH, "batch"),
        (Self::LIST, "list"),
        (Self::QUERY, "query"),
        (Self::COUNT, "count"),
        (Self::STATUS, "status"),
        (Self::PROVISION, "provision"),
        (Self::CLEAR, "clear"),
        (Self::NAMESPACES, "namespaces"),
        (Self::METADATA, "metadata"),
        (Self::TRANSACTIONS, "transactions"),
        (Self::NONBLOCKING, "nonblocking"),
    ];

    /// True when every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets, usable in `const` declarations.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The intersection of two sets: an instance may only narrow what its plugin declared.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The names of the known capabilities set here, in declaration order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMED
            .into_iter()
            .filter(move |(cap, _)| self.contains(*cap))
            .map(|(_, name)| name)
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl std::fmt::Display for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for name in self.names() {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(name)?;
            first = false;
        }
        if first {
            f.write_str("save-only")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_distinct() {
        let mut seen = 0u64;
        for (cap, _) in Capabilities::NAMED {
            assert_eq!(cap.0.count_ones(), 1);
            assert_eq!(seen & cap.0, 0, "{cap:?} reuses a bit");
            seen |= cap.0;
        }
    }

    #[test]
    fn display_lists_names() {
        let caps = Capabilities::GET | Capabilities::BATCH;
        assert_eq!(caps.to_string(), "get,batch");
        assert_eq!(Capabilities::NONE.to_string(), "save-only");
        assert!(caps.contains(Capabilities::GET));
        assert!(!caps.contains(Capabilities::DELETE));
    }
}
