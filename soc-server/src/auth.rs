//! API keys: `ak_<base64url of 32 random bytes>`, stored as SHA-256, compared in constant
//! time, never logged. The [`Auth`] extractor resolves the caller's tenant and role.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::db::Db;
use crate::error::ApiError;

/// Characters of the key (after `ak_`) kept in clear as a lookup prefix: 48 random bits, not
/// enough to guess the key, enough to find its row.
const LOOKUP_LEN: usize = 8;

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Tenant settings and keys, plus everything an analyst and an agent may do.
    Admin,
    /// Read everything of the tenant, triage threats.
    Analyst,
    /// Register, heartbeat, ship logs.
    Agent,
}

impl Role {
    /// Parses `admin`, `analyst`, `agent`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Agent => "agent",
        }
    }
}

/// A freshly generated key: the secret (shown once) and what is stored.
pub struct NewKey {
    /// `ak_…`, to give to the user.
    pub secret: String,
    /// Lookup prefix.
    pub lookup: String,
    /// SHA-256 of `secret`.
    pub hash: [u8; 32],
}

/// Generates a random key.
pub fn generate_key() -> NewKey {
    let bytes: [u8; 32] = rand::random();
    let secret = format!("ak_{}", URL_SAFE_NO_PAD.encode(bytes));
    NewKey {
        lookup: lookup_of(&secret).unwrap_or_default().to_owned(),
        hash: hash_key(&secret),
        secret,
    }
}

fn hash_key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn lookup_of(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix("ak_")?;
    if rest.len() > LOOKUP_LEN {
        rest.get(..LOOKUP_LEN).filter(|l| l.is_ascii())
    } else {
        None
    }
}

/// Creates a key for `tenant_id` and returns its secret.
pub async fn create_key(
    db: &Db,
    tenant_id: i64,
    role: Role,
    name: Option<&str>,
) -> Result<(i64, String), soc_core::store::StorageError> {
    let k = generate_key();
    let id = db
        .insert_api_key(tenant_id, &k.lookup, &k.hash, role.as_str(), name)
        .await?;
    Ok((id, k.secret))
}

/// Finds the key's tenant and role; `None` when no unrevoked key matches.
pub async fn verify_key(db: &Db, secret: &str) -> Result<Option<(i64, i64, Role)>, ApiError> {
    let Some(lookup) = lookup_of(secret) else {
        return Ok(None);
    };
    let hash = hash_key(secret);
    let mut found = None;
    for row in db.api_keys_by_lookup(lookup).await? {
        if bool::from(row.key_hash.as_slice().ct_eq(&hash)) {
            found = Role::parse(&row.role).map(|r| (row.tenant_id, row.id, r));
        }
    }
    Ok(found)
}

/// The authenticated caller: tenant, key and role, from `Authorization: Bearer ak_…`.
#[derive(Debug, Clone, Copy)]
pub struct Auth {
    /// The caller's tenant: every query is scoped by it.
    pub tenant_id: i64,
    /// The key's id.
    pub key_id: i64,
    /// The key's role.
    pub role: Role,
}

impl Auth {
    /// 403 unless the caller has one of `roles` (admin always passes).
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.role == Role::Admin || roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "an API key with role `{}` may not do this",
                self.role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer ak_…` header"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer ak_…`"))?;
        match verify_key(&state.db, secret).await? {
            Some((tenant_id, key_id, role)) => Ok(Auth {
                tenant_id,
                key_id,
                role,
            }),
            None => Err(ApiError::unauthorized("invalid or revoked API key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_well_formed() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("ak_"));
        assert_eq!(a.secret.len(), 3 + 43);
        assert_eq!(a.lookup, &a.secret[3..3 + LOOKUP_LEN]);
        assert_eq!(a.hash, hash_key(&a.secret));
    }

    #[test]
    fn malformed_keys_have_no_lookup() {
        assert_eq!(lookup_of("ak_short"), None);
        assert_eq!(lookup_of("bearer"), None);
        assert_eq!(lookup_of("ak_ééééééééé"), None);
        assert_eq!(lookup_of("ak_aééééééééé"), None);
    }
}
