//! The one model artifact format, shared by the server, Rust users and Python.
//!
//! ```text
//! offset  size  content
//! 0       8     magic "CGSOCMDL"
//! 8       4     format version, u32 little-endian (currently 1)
//! 12      4     header length H, u32 little-endian (at most 1 MiB)
//! 16      4     CRC-32 of the header bytes, u32 little-endian
//! 20      H     header, UTF-8 JSON: kind, format_version, crate_version, params, metrics,
//!               created_at (Unix seconds), n_features, payload_len, checksum ("crc32:xxxxxxxx",
//!               the payload's CRC-32)
//! 20+H    P     payload: the fitted model, postcard-encoded; P = payload_len
//! ```
//!
//! Loading checks the magic, version, lengths, kind and checksum, decodes the payload and then
//! validates the model itself (every tree index in range, consistent lengths, finite numbers),
//! so a truncated, corrupt or hostile file yields [`Error::InvalidModel`], never a panic, a
//! huge allocation or a walk that does not end.

use std::path::Path;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// First bytes of every artifact.
pub const MAGIC: &[u8; 8] = b"CGSOCMDL";
/// Version of the layout written by this crate.
pub const FORMAT_VERSION: u32 = 1;
const MAX_HEADER_LEN: usize = 1 << 20;
const PREAMBLE_LEN: usize = 20;

/// The JSON header of an artifact: what the model is, without decoding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactHeader {
    /// `tfidf_vectorizer`, `isolation_forest`, `random_forest_classifier` or `detector`.
    pub kind: String,
    /// Layout version (same as the preamble's).
    pub format_version: u32,
    /// Version of soc-core that wrote the file.
    pub crate_version: String,
    /// The hyperparameters, as JSON.
    pub params: serde_json::Value,
    /// Training metrics, as JSON (`null` when there are none).
    pub metrics: serde_json::Value,
    /// When the artifact was written, Unix seconds.
    pub created_at: u64,
    /// Number of input features (for the detector: of its vectorizer and structural features).
    pub n_features: usize,
    /// Length of the payload in bytes.
    pub payload_len: u64,
    /// `crc32:` and the payload's CRC-32 in 8 hex digits.
    pub checksum: String,
}

/// A fitted type that can be written as an artifact.
pub(crate) trait Artifact: Serialize + DeserializeOwned {
    /// The header's `kind`.
    const KIND: &'static str;
    fn params_json(&self) -> serde_json::Value;
    fn metrics_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn n_features(&self) -> usize;
    /// Reads settings kept in the header rather than in the payload (settings added after
    /// the payload's layout was fixed, so that older artifacts still decode).
    fn read_header_settings(&mut self, _header: &ArtifactHeader) {}
    /// Rebuilds caches and validates everything an untrusted payload could break.
    fn after_load(&mut self) -> Result<()>;
}

fn checksum(payload: &[u8]) -> String {
    format!("crc32:{:08x}", crc32fast::hash(payload))
}

pub(crate) fn to_bytes<T: Artifact>(model: &T) -> Vec<u8> {
    // Serializing plain structs of numbers and strings into a Vec cannot fail.
    let payload = postcard::to_allocvec(model).unwrap_or_default();
    let header = ArtifactHeader {
        kind: T::KIND.to_string(),
        format_version: FORMAT_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        params: model.params_json(),
        metrics: model.metrics_json(),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        n_features: model.n_features(),
        payload_len: payload.len() as u64,
        checksum: checksum(&payload),
    };
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(PREAMBLE_LEN + header.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    out
}

/// Splits an artifact into its header and payload, checking everything but the payload's
/// contents.
fn split(bytes: &[u8]) -> Result<(ArtifactHeader, &[u8])> {
    if bytes.len() < PREAMBLE_LEN {
        return Err(Error::invalid_model(format!(
            "{} bytes is too short for a model artifact",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(Error::invalid_model(
            "not a CodeGrey SOC model artifact (bad magic)",
        ));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(8);
    if version != FORMAT_VERSION {
        return Err(Error::invalid_model(format!(
            "artifact format version {version} is not supported (this build reads {FORMAT_VERSION})"
        )));
    }
    let header_len = word(12) as usize;
    if header_len > MAX_HEADER_LEN || PREAMBLE_LEN + header_len > bytes.len() {
        return Err(Error::invalid_model(format!(
            "header length {header_len} does not fit the {}-byte file",
            bytes.len()
        )));
    }
    let header_bytes = &bytes[PREAMBLE_LEN..PREAMBLE_LEN + header_len];
    if crc32fast::hash(header_bytes) != word(16) {
        return Err(Error::invalid_model(
            "header checksum mismatch: the file is corrupt",
        ));
    }
    let header: ArtifactHeader = serde_json::from_slice(header_bytes)
        .map_err(|e| Error::invalid_model(format!("unreadable header: {e}")))?;
    let payload = &bytes[PREAMBLE_LEN + header_len..];
    if header.payload_len != payload.len() as u64 {
        return Err(Error::invalid_model(format!(
            "payload is {} bytes but the header says {} (truncated file?)",
            payload.len(),
            header.payload_len
        )));
    }
    if header.checksum != checksum(payload) {
        return Err(Error::invalid_model(
            "checksum mismatch: the file is corrupt",
        ));
    }
    Ok((header, payload))
}

/// Reads and checks an artifact's header without decoding the model.
pub fn read_header(bytes: &[u8]) -> Result<ArtifactHeader> {
    split(bytes).map(|(h, _)| h)
}

pub(crate) fn from_bytes<T: Artifact>(bytes: &[u8]) -> Result<T> {
    let (header, payload) = split(bytes)?;
    if header.kind != T::KIND {
        return Err(Error::invalid_model(format!(
            "the artifact holds a {}, not a {}",
            header.kind,
            T::KIND
        )));
    }
    let mut model: T = postcard::from_bytes(payload)
        .map_err(|e| Error::invalid_model(format!("undecodable payload: {e}")))?;
    model.read_header_settings(&header);
    model.after_load()?;
    if model.n_features() != header.n_features {
        return Err(Error::invalid_model(format!(
            "header says {} features, model has {}",
            header.n_features,
            model.n_features()
        )));
    }
    Ok(model)
}

pub(crate) fn save<T: Artifact>(model: &T, path: &Path) -> Result<()> {
    std::fs::write(path, to_bytes(model))
        .map_err(|e| Error::invalid_input(format!("cannot write {}: {e}", path.display())))
}

pub(crate) fn load<T: Artifact>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::invalid_input(format!("cannot read {}: {e}", path.display())))?;
    from_bytes(&bytes)
}

/// Gives a fitted type `to_bytes`, `from_bytes`, `save` and `load` as inherent methods.
macro_rules! impl_artifact_methods {
    ($ty:ty) => {
        impl $ty {
            /// Encodes the model in the artifact format (see [`crate::model`]).
            pub fn to_bytes(&self) -> Vec<u8> {
                $crate::model::to_bytes(self)
            }
            /// Decodes and validates an artifact; a corrupt or hostile file is an
            /// [`Error::InvalidModel`](crate::Error::InvalidModel).
            pub fn from_bytes(bytes: &[u8]) -> $crate::Result<Self> {
                $crate::model::from_bytes(bytes)
            }
            /// Writes the artifact to `path`.
            pub fn save(&self, path: impl AsRef<std::path::Path>) -> $crate::Result<()> {
                $crate::model::save(self, path.as_ref())
            }
            /// Reads an artifact from `path`.
            pub fn load(path: impl AsRef<std::path::Path>) -> $crate::Result<Self> {
                $crate::model::load(path.as_ref())
            }
        }
    };
}
pub(crate) use impl_artifact_methods;
