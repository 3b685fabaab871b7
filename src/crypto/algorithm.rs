//! The JWT signing algorithms a key ring can hold (its own module: the key ring and
//! key generation both name them).

/// The JWT signing algorithm of the active key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlgorithm {
    Hs256,
    EdDsa,
    Es256,
    Rs256,
}

impl SigningAlgorithm {
    /// Every algorithm, in the order messages list them.
    pub const ALL: [Self; 4] = [Self::Hs256, Self::EdDsa, Self::Es256, Self::Rs256];

    /// The JOSE name (`alg` header).
    pub fn jose_name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// The algorithm of a JOSE name, exactly as [`Self::jose_name`] writes it.
    pub fn from_jose(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.jose_name() == name)
    }
}
