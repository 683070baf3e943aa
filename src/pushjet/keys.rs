//! The three identifiers of the Pushjet protocol, each parsed once: a service's secret key, its
//! public key, and a device's UUID.

use std::fmt;
use std::str::FromStr;

use ripemd::{Digest, Ripemd160};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid key of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 32 ASCII letters and digits.
    #[error("a Pushjet secret key is 32 ASCII letters and digits")]
    Secret,
    /// Not of the form `xxxx-xxxxxx-xxxxxxxxxxxx-xxxxx-xxxxxxxxx`.
    #[error(
        "a Pushjet public key looks like xxxx-xxxxxx-xxxxxxxxxxxx-xxxxx-xxxxxxxxx (letters and digits)"
    )]
    Public,
    /// Not an 8-4-4-4-12 hexadecimal UUID.
    #[error("a device UUID is 8-4-4-4-12 hexadecimal digits")]
    DeviceUuid,
}

/// A service's secret key: 32 ASCII letters and digits. It is the only credential of the
/// protocol, so `Debug` and `Display` never show it; [`SecretKey::expose`] is the one way out.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretKey(String);

impl SecretKey {
    /// Parses a secret key (`^[a-zA-Z0-9]{32}$`).
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(KeyError::Secret)
        }
    }

    /// Makes a new secret the way the real server does (32 lowercase hex characters), from the
    /// operating system's cryptographic random number generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Self(hex::encode(bytes)))
    }

    /// The secret itself, for the one place that must put it on the wire or on disk.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The public key that belongs to this secret: the RIPEMD-160 of the secret in lowercase hex,
    /// with the characters at indexes 4, 11, 24 and 30 replaced by dashes.
    pub fn public_key(&self) -> PublicKey {
        let mut chars: Vec<u8> = hex::encode(Ripemd160::digest(self.0.as_bytes())).into_bytes();
        for index in PUBLIC_KEY_DASHES {
            chars[index] = b'-';
        }
        PublicKey(String::from_utf8_lossy(&chars).into_owned())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for SecretKey {
    type Err = KeyError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(raw.trim()).map_err(serde::de::Error::custom)
    }
}

/// Positions of the dashes in a public key.
const PUBLIC_KEY_DASHES: [usize; 4] = [4, 11, 24, 30];

/// A service's public key, safe to show: 40 characters, letters and digits in groups of
/// 4-6-12-5-9 separated by dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(String);

impl PublicKey {
    /// Parses a public key.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let bytes = raw.as_bytes();
        let well_formed = bytes.len() == 40
            && bytes.iter().enumerate().all(|(index, byte)| {
                if PUBLIC_KEY_DASHES.contains(&index) {
                    *byte == b'-'
                } else {
                    byte.is_ascii_alphanumeric()
                }
            });
        if well_formed {
            Ok(Self(raw.to_owned()))
        } else {
            Err(KeyError::Public)
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A device's UUID: 8-4-4-4-12 hexadecimal digits, chosen by the device, in lower case whatever
/// the case it was given in (so that `ABC…` and `abc…` are one device everywhere).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceUuid(String);

impl DeviceUuid {
    /// Parses a device UUID.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let groups: Vec<&str> = raw.split('-').collect();
        let lengths = [8, 4, 4, 4, 12];
        let well_formed = groups.len() == lengths.len()
            && groups.iter().zip(lengths).all(|(group, length)| {
                group.len() == length && group.bytes().all(|b| b.is_ascii_hexdigit())
            });
        if well_formed {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(KeyError::DeviceUuid)
        }
    }

    /// The UUID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceUuid {
    type Err = KeyError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl Serialize for DeviceUuid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeviceUuid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_is_derived_like_the_real_server() {
        let secret = SecretKey::parse("3ad3ed6d089e9ff87f6a4c7247ca5940").unwrap();
        assert_eq!(
            secret.public_key().as_str(),
            "2340-b88c20-098512d83349-4966c-7df2fdc48"
        );
    }

    #[test]
    fn secret_is_redacted_in_debug_and_display() {
        let secret = SecretKey::parse("3ad3ed6d089e9ff87f6a4c7247ca5940").unwrap();
        assert!(!format!("{secret:?}").contains("3ad3"));
        assert!(!format!("{secret}").contains("3ad3"));
    }

    #[test]
    fn secret_accepts_only_32_alphanumerics() {
        assert!(SecretKey::parse("ABCDEFabcdef0123456789abcdefABCD").is_ok());
        assert_eq!(SecretKey::parse("short"), Err(KeyError::Secret));
        assert_eq!(
            SecretKey::parse("3ad3ed6d089e9ff87f6a4c7247ca594-"),
            Err(KeyError::Secret)
        );
        assert_eq!(
            SecretKey::parse("3ad3ed6d089e9ff87f6a4c7247ca5940a"),
            Err(KeyError::Secret)
        );
        assert_eq!(
            SecretKey::parse("3ad3ed6d089e9ff87f6a4c7247ca594é"),
            Err(KeyError::Secret)
        );
    }

    #[test]
    fn generated_secrets_are_valid_and_differ() {
        let first = SecretKey::generate().unwrap();
        let second = SecretKey::generate().unwrap();
        assert!(SecretKey::parse(first.expose()).is_ok());
        assert_ne!(first, second);
    }

    #[test]
    fn public_key_needs_dashes_in_the_right_places() {
        assert!(PublicKey::parse("2340-b88c20-098512d83349-4966c-7df2fdc48").is_ok());
        assert_eq!(
            PublicKey::parse("2340b88c20-098512d83349-4966c-7df2fdc48-"),
            Err(KeyError::Public)
        );
        assert_eq!(
            PublicKey::parse("2340-b88c20-098512d83349-4966c-7df2fdc4"),
            Err(KeyError::Public)
        );
    }

    #[test]
    fn device_uuid_is_hex_8_4_4_4_12_in_lower_case() {
        let uuid = DeviceUuid::parse("ABCDEF01-2345-6789-abcd-ef0123456789").unwrap();
        assert_eq!(uuid.as_str(), "abcdef01-2345-6789-abcd-ef0123456789");
        assert_eq!(
            uuid,
            DeviceUuid::parse("abcdef01-2345-6789-ABCD-EF0123456789").unwrap()
        );
        assert_eq!(
            DeviceUuid::parse("ABCDEF01-2345-6789-abcd-ef012345678g"),
            Err(KeyError::DeviceUuid)
        );
        assert_eq!(
            DeviceUuid::parse("ABCDEF012345-6789-abcd-ef0123456789"),
            Err(KeyError::DeviceUuid)
        );
    }
}
