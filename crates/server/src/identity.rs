//! Identity: organisations, users, memberships and personal access tokens
//! (PATs), with the rules Docker's Image Access Management has: registry
//! sign-in takes a PAT, never the account password; PATs are random, shown
//! once and stored only as a hash; owners bypass image access.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use imagegate_core::Policy;
use sha2::{Digest, Sha256};

use crate::store::{Org, PolicyChange, Role, Session, Store, StoreError, Token, User, now, now_ms};

/// The prefix of every imagegate personal access token, so secret scanners
/// and people can recognise one.
pub const TOKEN_PREFIX: &str = "igpat_";
/// Random bytes in a token (256 bits).
const TOKEN_BYTES: usize = 32;
/// The shortest console password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Why an identity operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A name or value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A policy document does not load.
    #[error("policy does not load:\n{0}")]
    Policy(String),
    /// The system random source failed.
    #[error("no random source: {0}")]
    Random(String),
}

/// The longest a personal access token may live: ten years.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// Organisation and user names: lowercase letters, digits, `-`, `_`, `.`,
/// starting with a letter or digit, at most 64 characters.
pub fn validate_name(what: &str, name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Invalid(format!(
            "{what} name {name:?} must be 1 to 64 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

/// The policy an organisation starts with: image access off (Docker's
/// default), its namespaces listed as organisation images.
pub fn default_policy(org: &str, namespaces: &[String]) -> String {
    format!(
        "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata:\n  name: {org}\nspec:\n  mode: enforce\n  imageAccess:\n    enabled: false\n    organizationNamespaces: [{}]\n",
        namespaces.join(", ")
    )
}

/// The user created on a first start.
pub const FIRST_ADMINISTRATOR: &str = "admin";

/// How long a console session lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// A token as created: the secret, shown once, and what is stored.
pub struct NewToken {
    /// The secret to give the user. Not stored anywhere.
    pub secret: String,
    /// The stored record.
    pub token: Token,
}

/// Why a registry sign-in failed. The message never says which part was wrong
/// beyond what the user can act on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// Unknown user, wrong token, or a token of another user.
    #[error("invalid username or personal access token")]
    Invalid,
    /// The account password was given where a PAT is required.
    #[error("sign in with a personal access token, not the account password")]
    PasswordNotAccepted,
    /// The token was revoked.
    #[error("this personal access token was revoked")]
    Revoked,
    /// The token expired.
    #[error("this personal access token has expired")]
    Expired,
}

/// Identity operations over a store.
#[derive(Clone)]
pub struct Identity {
    store: Arc<dyn Store>,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| IdentityError::Random(e.to_string()))?;
    Ok(b)
}

/// SHA-256 of a token, hex. Tokens carry 256 random bits, so a fast hash is
/// enough: there is nothing to brute-force.
pub fn token_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl Identity {
    /// Identity over `store`.
    pub fn new(store: Arc<dyn Store>) -> Identity {
        Identity { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates an organisation with the default policy.
    pub fn create_org(&self, name: &str, namespaces: &[String]) -> Result<Org, IdentityError> {
        validate_name("organisation", name)?;
        for ns in namespaces {
            if imagegate_core::reference::grammar::parse_name(ns)
                .map(|r| r.domain.is_none() && !r.path.contains('/'))
                != Ok(true)
            {
                return Err(IdentityError::Invalid(format!(
                    "namespace {ns:?} is not a Docker Hub namespace (one lowercase path component)"
                )));
            }
        }
        let org = Org {
            name: name.to_owned(),
            namespaces: namespaces.to_vec(),
            policy: default_policy(name, namespaces),
        };
        self.store.create_org(&org)?;
        Ok(org)
    }

    /// Replaces an organisation's policy after checking that it loads.
    pub fn set_policy(&self, org: &str, text: &str) -> Result<(), IdentityError> {
        Policy::load(text).map_err(|e| IdentityError::Policy(e.to_string()))?;
        self.store.set_org_policy(org, text)?;
        Ok(())
    }

    /// An organisation, or an error naming it.
    pub fn org(&self, name: &str) -> Result<Org, IdentityError> {
        self.store.org(name)?.ok_or_else(|| {
            StoreError::Missing {
                what: "organisation",
                name: name.to_owned(),
            }
            .into()
        })
    }

    /// Creates a user with a console password (hashed with argon2).
    pub fn create_user(&self, name: &str, password: &str) -> Result<(), IdentityError> {
        validate_name("user", name)?;
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(IdentityError::Invalid(format!(
                "password must be at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        let hash = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| IdentityError::Invalid(format!("cannot hash the password: {e}")))?
            .to_string();
        self.store.create_user(&User {
            name: name.to_owned(),
            password_hash: hash,
        })?;
        Ok(())
    }

    /// Whether `password` is `user`'s console password.
    pub fn check_password(&self, user: &str, password: &str) -> Result<bool, IdentityError> {
        let Some(u) = self.store.user(user)? else {
            return Ok(false);
        };
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), u.password_hash.as_str())
            .is_ok())
    }

    /// Creates a token for `user`; the secret is in the result and nowhere else.
    pub fn create_token(
        &self,
        user: &str,
        name: &str,
        expires_days: Option<u32>,
    ) -> Result<NewToken, IdentityError> {
        if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(IdentityError::Invalid(
                "token name must be 1 to 100 printable characters".to_owned(),
            ));
        }
        if let Some(days) = expires_days.filter(|d| !(1..=MAX_TOKEN_DAYS).contains(d)) {
            return Err(IdentityError::Invalid(format!(
                "--expires must be between 1 and {MAX_TOKEN_DAYS} days, not {days}"
            )));
        }
        let secret = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<TOKEN_BYTES>()?)
        );
        let id = hex(&random_bytes::<6>()?);
        let created = now();
        let token = Token {
            id,
            user: user.to_owned(),
            name: name.to_owned(),
            hash: token_hash(&secret),
            created,
            last_used: None,
            expires: expires_days.map(|d| created + i64::from(d) * 86_400),
            revoked: None,
        };
        self.store.create_token(&token)?;
        Ok(NewToken { secret, token })
    }

    /// Revokes one of `user`'s tokens.
    pub fn revoke_token(&self, user: &str, id: &str) -> Result<(), IdentityError> {
        if self.store.revoke_token(user, id, now())? {
            Ok(())
        } else {
            Err(StoreError::Missing {
                what: "token of that user",
                name: id.to_owned(),
            }
            .into())
        }
    }

    /// Registry sign-in: `user` with a PAT. The account password is refused
    /// with a message that says to use a PAT.
    pub fn sign_in(&self, user: &str, secret: &str) -> Result<Token, SignInError> {
        if let Ok(Some(token)) = self.store.token_by_hash(&token_hash(secret)) {
            if token.user != user {
                return Err(SignInError::Invalid);
            }
            let at = now();
            if token.revoked.is_some() {
                return Err(SignInError::Revoked);
            }
            if token.expires.is_some_and(|e| e <= at) {
                return Err(SignInError::Expired);
            }
            let _ = self.store.touch_token(&token.id, at);
            return Ok(token);
        }
        if !secret.starts_with(TOKEN_PREFIX) && self.check_password(user, secret).unwrap_or(false) {
            return Err(SignInError::PasswordNotAccepted);
        }
        Err(SignInError::Invalid)
    }

    /// Every organisation's name, sorted.
    pub fn org_names(&self) -> Result<Vec<String>, IdentityError> {
        Ok(self.store.org_names()?)
    }

    /// A user's organisations and roles.
    pub fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, IdentityError> {
        Ok(self.store.memberships(user)?)
    }

    /// An organisation's members and roles.
    pub fn members(&self, org: &str) -> Result<Vec<(String, Role)>, IdentityError> {
        Ok(self.store.members(org)?)
    }

    /// `user` replaces `org`'s policy with `text` (which must load), and the
    /// change is recorded with the policy before and after. `what` says which
    /// part was edited (`policy`, `image_access`, `registry_access`).
    pub fn change_policy(
        &self,
        org: &str,
        user: &str,
        what: &str,
        text: &str,
    ) -> Result<(), IdentityError> {
        Policy::load(text).map_err(|e| IdentityError::Policy(e.to_string()))?;
        let before = self.org(org)?.policy;
        self.store.change_policy(&PolicyChange {
            time_ms: now_ms(),
            org: org.to_owned(),
            user: user.to_owned(),
            what: what.to_owned(),
            before,
            after: text.to_owned(),
        })?;
        Ok(())
    }

    /// On a store with no users, creates the administrator `admin` with a
    /// random password and returns it, to be shown once; `None` otherwise.
    pub fn first_administrator(&self) -> Result<Option<String>, IdentityError> {
        if self.store.has_users()? {
            return Ok(None);
        }
        let password =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<18>()?);
        self.create_user(FIRST_ADMINISTRATOR, &password)?;
        self.store.set_administrator(FIRST_ADMINISTRATOR, true)?;
        Ok(Some(password))
    }

    /// Starts a console session for `user`, who has just proven their
    /// password: a fresh random secret every time (the cookie; never one the
    /// browser brought), stored only as a hash, with its own CSRF token.
    pub fn start_session(&self, user: &str) -> Result<(String, Session), IdentityError> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let secret = b64(&random_bytes::<32>()?);
        let created = now();
        let session = Session {
            hash: token_hash(&secret),
            user: user.to_owned(),
            csrf: b64(&random_bytes::<32>()?),
            created,
            expires: created + SESSION_SECONDS,
        };
        self.store.create_session(&session)?;
        Ok((secret, session))
    }

    /// The live session a cookie's secret names, if any.
    pub fn session(&self, secret: &str) -> Result<Option<Session>, IdentityError> {
        Ok(self
            .store
            .session(&token_hash(secret))?
            .filter(|s| s.expires > now()))
    }

    /// Ends the session a cookie's secret names.
    pub fn end_session(&self, secret: &str) -> Result<(), IdentityError> {
        Ok(self.store.delete_session(&token_hash(secret))?)
    }

    /// The user a bearer PAT belongs to (the API). `Ok(Err)` when the token
    /// is unknown, revoked or expired; `Err` when the store cannot say.
    pub fn bearer(&self, secret: &str) -> Result<Result<Token, SignInError>, IdentityError> {
        let Some(token) = self.store.token_by_hash(&token_hash(secret))? else {
            return Ok(Err(SignInError::Invalid));
        };
        let at = now();
        if token.revoked.is_some() {
            return Ok(Err(SignInError::Revoked));
        }
        if token.expires.is_some_and(|e| e <= at) {
            return Ok(Err(SignInError::Expired));
        }
        let _ = self.store.touch_token(&token.id, at);
        Ok(Ok(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn identity() -> Identity {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "imagegate-identity-{}-{}",
            std::process::id(),
            u64::from_le_bytes(b)
        ));
        Identity::new(Arc::new(SqliteStore::open(&dir).unwrap()))
    }

    #[test]
    fn tokens_are_random_prefixed_and_stored_only_as_a_hash() {
        let id = identity();
        id.create_user("alice", "correct horse battery").unwrap();
        let a = id.create_token("alice", "laptop", None).unwrap();
        let b = id.create_token("alice", "ci", Some(30)).unwrap();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 43);
        let stored = id.store().tokens("alice").unwrap();
        assert!(
            stored
                .iter()
                .all(|t| t.hash != a.secret && t.hash != b.secret && t.hash.len() == 64)
        );
        assert_eq!(
            stored.iter().find(|t| t.id == b.token.id).unwrap().expires,
            Some(b.token.created + 30 * 86_400)
        );
    }

    #[test]
    fn sign_in_takes_a_token_never_the_password() {
        let id = identity();
        id.create_user("alice", "correct horse battery").unwrap();
        id.create_user("bob", "another good password").unwrap();
        let t = id.create_token("alice", "laptop", None).unwrap();
        assert_eq!(id.sign_in("alice", &t.secret).unwrap().id, t.token.id);
        assert!(id.store().tokens("alice").unwrap()[0].last_used.is_some());
        assert_eq!(
            id.sign_in("alice", "correct horse battery"),
            Err(SignInError::PasswordNotAccepted)
        );
        assert_eq!(
            id.sign_in("bob", &t.secret),
            Err(SignInError::Invalid),
            "a token opens only its own user"
        );
        assert_eq!(
            id.sign_in("alice", "igpat_wrong"),
            Err(SignInError::Invalid)
        );
        assert_eq!(id.sign_in("nobody", "x"), Err(SignInError::Invalid));
        id.revoke_token("alice", &t.token.id).unwrap();
        assert_eq!(id.sign_in("alice", &t.secret), Err(SignInError::Revoked));
        assert!(
            id.revoke_token("bob", &t.token.id).is_err(),
            "bob cannot revoke alice's token"
        );
    }

    #[test]
    fn passwords_are_argon2_and_checked() {
        let id = identity();
        assert!(
            id.create_user("alice", "short")
                .unwrap_err()
                .to_string()
                .contains("at least 8")
        );
        id.create_user("alice", "correct horse battery").unwrap();
        assert!(
            id.store()
                .user("alice")
                .unwrap()
                .unwrap()
                .password_hash
                .starts_with("$argon2id$")
        );
        assert!(id.check_password("alice", "correct horse battery").unwrap());
        assert!(!id.check_password("alice", "wrong password").unwrap());
    }

    #[test]
    fn names_namespaces_and_policies_are_validated() {
        let id = identity();
        assert!(id.create_org("Corp", &[]).is_err());
        assert!(id.create_org("corp", &["Corp".into()]).is_err());
        assert!(id.create_org("corp", &["a/b".into()]).is_err());
        let org = id
            .create_org("corp", &["corp".into(), "corp-labs".into()])
            .unwrap();
        let policy = Policy::load(&org.policy).unwrap();
        assert!(
            !policy.image_access.enabled,
            "image access is off by default"
        );
        let e = id.set_policy("corp", "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  mdoe: warn\n").unwrap_err();
        assert!(e.to_string().contains("spec.mdoe"), "{e}");
    }
}
