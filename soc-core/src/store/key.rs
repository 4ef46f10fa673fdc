//! The key rules shared by every model store of soc-core ([`validate_key`]).

use super::StorageError;

/// Longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// Longest accepted key segment, in bytes (the file-name limit of common filesystems, so that
/// every key valid for one store is valid for [`FsModelStore`](super::FsModelStore) too).
pub const MAX_SEGMENT_LEN: usize = 255;

/// File-name prefix of the temporary files [`FsModelStore`](super::FsModelStore) writes before
/// renaming them into place. Key segments may not start with it, so a temporary file left
/// behind by a crash is never mistaken for a key.
pub(crate) const TEMP_PREFIX: &str = ".tmp-cgsoc-";

/// Checks that `key` is acceptable to the model stores of soc-core.
///
/// A key is a relative path of `/`-separated segments such as `ml_models/global/3.cgsoc`:
/// at most [`MAX_KEY_LEN`] bytes, each segment non-empty, at most [`MAX_SEGMENT_LEN`] bytes,
/// made of ASCII letters, digits, `.`, `_` and `-`, and neither `.` nor `..`. Segments starting
/// with `.tmp-cgsoc-` are reserved for temporary files. Anything else (the empty key, `/abs`,
/// `a//b`, `a/`, `../x`, `a\b`, spaces, non-ASCII, ...) is [`StorageError::InvalidKey`].
///
/// Every model store in soc-core applies these rules to `put`, `get` and `delete`, so a key is
/// always a safe relative file path and the in-memory and filesystem stores accept the same keys.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let invalid = |reason: &str| {
        // Invalid keys can be anything (huge, control characters): show a bounded, escaped form.
        let shown: String = key.chars().take(80).collect();
        let ellipsis = if shown.len() < key.len() { "..." } else { "" };
        Err(StorageError::InvalidKey(format!(
            "`{}{ellipsis}`: {reason}",
            shown.escape_debug()
        )))
    };
    if key.is_empty() {
        return invalid("the key is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("the key is longer than 512 bytes");
    }
    if key.starts_with('/') {
        return invalid("absolute paths are not keys");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return invalid("empty segment (`//` or a trailing `/`)");
        }
        if segment == "." || segment == ".." {
            return invalid("`.` and `..` segments are not allowed");
        }
        if segment.len() > MAX_SEGMENT_LEN {
            return invalid("a segment is longer than 255 bytes");
        }
        if !segment.bytes().all(is_key_byte) {
            return invalid("only ASCII letters, digits, `.`, `_`, `-` and `/` are allowed");
        }
        if segment.starts_with(TEMP_PREFIX) {
            return invalid("segments starting with `.tmp-cgsoc-` are reserved");
        }
    }
    Ok(())
}

/// `true` for the bytes a key segment may contain.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// `true` when `name` (a directory entry) can be one segment of a key.
pub(crate) fn is_key_segment(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_SEGMENT_LEN
        && name.bytes().all(is_key_byte)
        && !name.starts_with(TEMP_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for key in [
            "a",
            "ml_models/global/3.cgsoc",
            "..a",
            "a..",
            ".hidden/x",
            "A-Z_0-9.x",
            &"x".repeat(255),
            &["y".repeat(255), "z".repeat(255)].join("/"),
        ] {
            assert_eq!(validate_key(key), Ok(()), "{key}");
            assert!(key.split('/').all(is_key_segment), "{key}");
        }
    }

    #[test]
    fn rejects_bad_keys() {
        for key in [
            "",
            "/",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "../x",
            "a/..",
            "a\\b",
            "a b",
            "a\0b",
            "é",
            "a:b",
            ".tmp-cgsoc-1-2",
            "a/.tmp-cgsoc-x",
            &"x".repeat(256),
            &["y".repeat(255), "z".repeat(255), "w".repeat(10)].join("/"),
        ] {
            assert!(
                matches!(validate_key(key), Err(StorageError::InvalidKey(_))),
                "{key:?}"
            );
        }
    }

    #[test]
    fn error_message_is_bounded() {
        let Err(StorageError::InvalidKey(msg)) = validate_key(&"\n".repeat(10_000)) else {
            panic!("expected InvalidKey");
        };
        assert!(msg.len() < 300, "{msg}");
    }
}
