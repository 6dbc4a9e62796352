//! Who is pulling, and under which policies. A Bearer token presented to
//! `/v2/` is verified once (ES256) and remembered until it expires; its user's
//! organisations, roles and policies are re-read from the store at most once a
//! second, so a membership or policy change takes effect within a second and a
//! manifest request costs a hash lookup, not a signature check.
//!
//! A user in several organisations gets the most restrictive of their
//! policies: the image must be allowed by every one of them (an owner bypasses
//! image access only in the organisation they own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imagegate_core::decide::{Input, decide};
use imagegate_core::{Decision, Policy, Reference};

use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::store::Role;
use crate::token::{Claims, TokenError, TokenService};

/// How long a user's organisations and policies are reused before the store
/// is asked again.
pub const REFRESH: Duration = Duration::from_secs(1);
/// Remembered tokens, at most.
const MAX_TOKENS: usize = 50_000;

/// One organisation whose policy applies to a caller.
#[derive(Clone, Debug)]
pub struct Membership {
    /// The organisation.
    pub org: String,
    /// Whether the caller owns it (owners bypass image access).
    pub owner: bool,
    /// Its compiled policy.
    pub policy: Arc<Policy>,
}

/// A verified caller.
#[derive(Debug)]
pub struct Caller {
    /// The token's claims.
    pub claims: Claims,
    /// The user; `None` for an anonymous token.
    pub user: Option<String>,
    /// The policies that apply, or the refusal that applies before any policy
    /// (anonymous where sign-in is required, a user in no organisation).
    pub memberships: Result<Vec<Membership>, Refusal>,
}

/// Why a caller gets no policy at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Anonymous, and anonymous pulls are not allowed.
    SignInRequired,
    /// Signed in, in no organisation, and no default organisation.
    NotAMember,
    /// The store could not be read.
    StoreUnavailable,
}

struct Remembered {
    caller: Arc<Caller>,
    resolved: Instant,
}

/// Verifies tokens and resolves callers, with the caches described above.
pub struct Callers {
    tokens: Arc<TokenService>,
    identity: Identity,
    /// The organisation whose policy applies to anonymous callers (when
    /// anonymous pulls are allowed) and to users in no organisation.
    default_org: Option<String>,
    allow_anonymous: bool,
    metrics: Arc<Metrics>,
    remembered: Mutex<HashMap<String, Remembered>>,
    compiled: Mutex<HashMap<String, (u64, Arc<Policy>)>>,
}

impl Callers {
    /// Callers verified by `tokens`, resolved in `identity`'s store.
    pub fn new(
        tokens: Arc<TokenService>,
        identity: Identity,
        default_org: Option<String>,
        allow_anonymous: bool,
        metrics: Arc<Metrics>,
    ) -> Callers {
        Callers {
            tokens,
            identity,
            default_org,
            allow_anonymous,
            metrics,
            remembered: Mutex::new(HashMap::new()),
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The token service (its `service` is the audience tokens carry).
    pub fn token_service(&self) -> &Arc<TokenService> {
        &self.tokens
    }

    /// The caller presenting `token`: its signature, audience and expiry are
    /// checked (once per token), its organisations read (once a second).
    pub async fn resolve(self: &Arc<Self>, token: &str) -> Result<Arc<Caller>, TokenError> {
        let now = Instant::now();
        let unix_now = crate::store::now();
        let known = {
            let remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
            remembered.get(token).and_then(|r| {
                (r.caller.claims.exp > unix_now).then(|| (r.caller.clone(), r.resolved))
            })
        };
        let claims = match known {
            Some((caller, resolved)) => {
                self.metrics.token_check(true);
                if now.duration_since(resolved) < REFRESH {
                    return Ok(caller);
                }
                caller.claims.clone()
            }
            None => {
                self.metrics.token_check(false);
                self.tokens.verify(token)?
            }
        };
        let this = self.clone();
        let resolved = tokio::task::spawn_blocking(move || this.caller(claims))
            .await
            .map_err(|e| TokenError::Invalid(format!("resolving the caller failed: {e}")))?;
        let caller = match resolved {
            Ok(c) => Arc::new(c),
            Err(e) => {
                self.remembered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(token);
                return Err(e);
            }
        };
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if remembered.len() >= MAX_TOKENS {
            remembered.retain(|_, r| r.caller.claims.exp > unix_now);
            if remembered.len() >= MAX_TOKENS {
                remembered.clear();
            }
        }
        remembered.insert(
            token.to_owned(),
            Remembered {
                caller: caller.clone(),
                resolved: now,
            },
        );
        Ok(caller)
    }

    /// Checks that the personal access token the registry token was issued
    /// for still signs its user in (not revoked, not expired, not removed
    /// with its user), reads the caller's organisations and compiles (or
    /// reuses) their policies.
    fn caller(&self, claims: Claims) -> Result<Caller, TokenError> {
        let user = (!claims.sub.is_empty()).then(|| claims.sub.clone());
        let pat_state = match (&user, &claims.pat) {
            (Some(user), Some(pat)) => self.pat_state(user, pat),
            _ => Ok(()),
        };
        let memberships = match (&user, pat_state) {
            (_, Err(Some(e))) => return Err(e),
            (_, Err(None)) => Err(Refusal::StoreUnavailable),
            (user, Ok(())) => self.memberships(user.as_deref()),
        };
        Ok(Caller {
            claims,
            user,
            memberships,
        })
    }

    /// `Err(Some)` when the token no longer signs `user` in, `Err(None)`
    /// when the store cannot say.
    fn pat_state(&self, user: &str, pat: &str) -> Result<(), Option<TokenError>> {
        let token = self.identity.store().token(pat).map_err(|e| {
            tracing::error!(user, error = %e, "cannot read the personal access token");
            None
        })?;
        let now = crate::store::now();
        let refused = |why: &str| {
            Err(Some(TokenError::Invalid(format!(
                "the personal access token it was issued for {why}"
            ))))
        };
        match token {
            Some(t) if t.user != user => refused("belongs to another user"),
            Some(t) if t.revoked.is_some() => refused("was revoked"),
            Some(t) if t.expires.is_some_and(|e| e <= now) => refused("has expired"),
            Some(_) => Ok(()),
            None => refused("no longer exists"),
        }
    }

    fn memberships(&self, user: Option<&str>) -> Result<Vec<Membership>, Refusal> {
        match user {
            None if !self.allow_anonymous => Err(Refusal::SignInRequired),
            None => self.default_membership(),
            Some(user) => match self.identity.memberships(user).map(|mut list| {
                list.sort_by(|a, b| a.0.cmp(&b.0));
                list
            }) {
                Err(e) => {
                    tracing::error!(user = %user, error = %e, "cannot read memberships");
                    Err(Refusal::StoreUnavailable)
                }
                Ok(list) if list.is_empty() => self.default_membership(),
                Ok(list) => list
                    .into_iter()
                    .map(|(org, role)| {
                        Ok(Membership {
                            policy: self.policy(&org)?,
                            owner: role == Role::Owner,
                            org,
                        })
                    })
                    .collect(),
            },
        }
    }

    fn default_membership(&self) -> Result<Vec<Membership>, Refusal> {
        let Some(org) = &self.default_org else {
            return Err(Refusal::NotAMember);
        };
        Ok(vec![Membership {
            org: org.clone(),
            owner: false,
            policy: self.policy(org)?,
        }])
    }

    /// An organisation's compiled policy, recompiled only when its text changed.
    fn policy(&self, org: &str) -> Result<Arc<Policy>, Refusal> {
        let org = self.identity.org(org).map_err(|e| {
            tracing::error!(org = %org, error = %e, "cannot read the organisation's policy");
            Refusal::StoreUnavailable
        })?;
        let fingerprint = crate::state::fingerprint_text(&org.policy);
        if let Some((f, p)) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&org.name)
            && *f == fingerprint
        {
            return Ok(p.clone());
        }
        let policy = match Policy::load(&org.policy) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                // set_policy validates, so only a hand-edited store gets here.
                tracing::error!(org = %org.name, error = %e, "the organisation's stored policy does not load");
                return Err(Refusal::StoreUnavailable);
            }
        };
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(org.name.clone(), (fingerprint, policy.clone()));
        Ok(policy)
    }
}

/// What the policies of a caller's organisations say about `image`: the first
/// refusal (organisations in name order, as [`Callers`] keeps them), else the
/// first would-be refusal of a `warn`/`audit` policy, else the allow. Returns
/// the deciding organisation. `None` when the caller's organisations could not
/// be read: that is no decision, and no caller is told they are not a member.
pub fn decide_for(caller: &Caller, image: &str) -> Option<(Decision, Option<String>)> {
    let memberships = match &caller.memberships {
        Ok(m) => m,
        Err(refusal) => {
            let reference = Reference::parse(image).ok();
            let d = match refusal {
                Refusal::SignInRequired => Decision::sign_in_required(reference),
                Refusal::NotAMember => {
                    Decision::not_a_member(caller.user.as_deref().unwrap_or("-"), reference)
                }
                Refusal::StoreUnavailable => return None,
            };
            return Some((d, None));
        }
    };
    let mut warned: Option<(Decision, String)> = None;
    let mut allowed: Option<(Decision, String)> = None;
    for m in memberships {
        let d = decide(
            &m.policy,
            &Input {
                image,
                user: caller.user.as_deref(),
                owner: m.owner,
                ..Input::default()
            },
        );
        if !d.is_allowed() {
            return Some((d, Some(m.org.clone())));
        }
        if d.is_would_be_denial() {
            warned.get_or_insert((d, m.org.clone()));
        } else {
            allowed.get_or_insert((d, m.org.clone()));
        }
    }
    Some(match warned.or(allowed) {
        Some((d, org)) => (d, Some(org)),
        // Memberships are never empty; refused if they were.
        None => (
            Decision::not_a_member(
                caller.user.as_deref().unwrap_or("-"),
                Reference::parse(image).ok(),
            ),
            None,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagegate_core::Reason;

    fn membership(org: &str, owner: bool, spec: &str) -> Membership {
        let text = format!(
            "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {{name: {org}}}\nspec:\n{spec}"
        );
        Membership {
            org: org.into(),
            owner,
            policy: Arc::new(Policy::load(&text).unwrap()),
        }
    }

    fn caller(m: Vec<Membership>) -> Caller {
        Caller {
            claims: Claims {
                iss: "i".into(),
                sub: "alice".into(),
                aud: "i".into(),
                exp: 0,
                nbf: 0,
                iat: 0,
                jti: "j".into(),
                access: vec![],
                pat: None,
            },
            user: Some("alice".into()),
            memberships: Ok(m),
        }
    }

    const STRICT: &str = "  imageAccess: {enabled: true, allow: [official]}\n";
    const OPEN: &str = "  imageAccess: {enabled: false}\n";

    #[test]
    fn the_most_restrictive_organisation_decides() {
        let c = caller(vec![
            membership("a-strict", false, STRICT),
            membership("b-open", false, OPEN),
        ]);
        let (d, org) = decide_for(&c, "someuser/custom-image").unwrap();
        assert_eq!(d.reason, Reason::CategoryNotAllowed);
        assert_eq!(
            d.message,
            "image access denied: community images not allowed"
        );
        assert_eq!(org.as_deref(), Some("a-strict"));
        let (d, _) = decide_for(&c, "nginx:1").unwrap();
        assert!(d.is_allowed());
    }

    #[test]
    fn an_owner_bypasses_image_access_only_in_the_organisation_they_own() {
        let owner_of_strict = caller(vec![membership("strict", true, STRICT)]);
        assert!(
            decide_for(&owner_of_strict, "someuser/custom-image")
                .unwrap()
                .0
                .is_allowed()
        );
        let also_member = caller(vec![
            membership("strict", true, STRICT),
            membership("other", false, STRICT),
        ]);
        let (d, org) = decide_for(&also_member, "someuser/custom-image").unwrap();
        assert!(!d.is_allowed());
        assert_eq!(org.as_deref(), Some("other"));
    }

    #[test]
    fn a_warn_policy_warns_even_when_another_allows() {
        let c = caller(vec![
            membership("a", false, OPEN),
            membership("b", false, &format!("  mode: warn\n{STRICT}")),
        ]);
        let (d, org) = decide_for(&c, "someuser/custom-image").unwrap();
        assert!(d.is_allowed() && d.is_would_be_denial());
        assert_eq!(org.as_deref(), Some("b"));
    }

    #[test]
    fn callers_without_policies_are_refused_in_words() {
        let mut c = caller(vec![]);
        c.memberships = Err(Refusal::SignInRequired);
        assert_eq!(
            decide_for(&c, "nginx").unwrap().0.message,
            "sign-in required"
        );
        c.memberships = Err(Refusal::NotAMember);
        assert_eq!(
            decide_for(&c, "nginx").unwrap().0.message,
            "user alice is not a member of any organisation"
        );
        c.memberships = Err(Refusal::StoreUnavailable);
        assert!(
            decide_for(&c, "nginx").is_none(),
            "a store failure is no decision, and never `not a member`"
        );
    }
}
