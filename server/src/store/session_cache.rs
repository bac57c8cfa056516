//! Operator sessions recently read from the database, so that every request of a console does
//! not query SQLite for the same cookie again. An entry is trusted for [`RECHECK_MS`] at most
//! and never past the session's expiry; logging out forgets it at once. A change made behind
//! the server's back (manual SQL, another process) is therefore seen within that time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::SessionOperator;
use crate::domain::Millis;

/// How long a looked-up session is trusted before it is read again.
const RECHECK_MS: Millis = 1_000;

/// Most sessions remembered; past this the cache starts over.
const CAPACITY: usize = 4_096;

#[derive(Debug)]
struct Entry {
    operator: SessionOperator,
    expires_at: Millis,
    checked_at: Millis,
}

#[derive(Debug, Default)]
struct Entries {
    by_token: HashMap<String, Entry>,
    /// Counts logouts: a read that began before one may not be remembered after it.
    logouts: u64,
}

/// Token hash → the session's operator, as last read.
#[derive(Debug, Default)]
pub(super) struct SessionCache {
    entries: Mutex<Entries>,
}

/// Taken before reading a session from the database; see [`SessionCache::put`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(u64);

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The operator of `token_hash` if it was read less than [`RECHECK_MS`] ago and the session
    /// has not expired.
    /// On a miss, also the ticket to hand to [`SessionCache::put`] with what the database says.
    pub(super) fn get(&self, token_hash: &str, now: Millis) -> Result<SessionOperator, Ticket> {
        let entries = self.lock();
        entries
            .by_token
            .get(token_hash)
            .filter(|e| now < e.expires_at && now - e.checked_at < RECHECK_MS)
            .map(|e| e.operator.clone())
            .ok_or(Ticket(entries.logouts))
    }

    /// Remembers what the database answered for `token_hash` at `now`, unless a logout came
    /// after `ticket` was taken (the answer may predate it).
    pub(super) fn put(
        &self,
        ticket: Ticket,
        token_hash: &str,
        found: Option<(SessionOperator, Millis)>,
        now: Millis,
    ) {
        let mut entries = self.lock();
        if entries.logouts != ticket.0 {
            return;
        }
        let by_token = &mut entries.by_token;
        match found {
            Some((operator, expires_at)) => {
                if by_token.len() >= CAPACITY && !by_token.contains_key(token_hash) {
                    by_token.clear();
                }
                by_token.insert(
                    token_hash.to_owned(),
                    Entry {
                        operator,
                        expires_at,
                        checked_at: now,
                    },
                );
            }
            None => {
                by_token.remove(token_hash);
            }
        }
    }

    /// Forgets every session of operator `id` (its account changed): call it once the change is
    /// stored.
    pub(super) fn forget_operator(&self, id: i64) {
        let mut entries = self.lock();
        entries.logouts += 1;
        entries.by_token.retain(|_, e| e.operator.id != id);
    }

    /// Forgets `token_hash` (logout): call it once the session is deleted.
    pub(super) fn forget(&self, token_hash: &str) {
        let mut entries = self.lock();
        entries.logouts += 1;
        entries.by_token.remove(token_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn operator() -> SessionOperator {
        SessionOperator {
            id: 1,
            username: "op".into(),
            role: Role::Operator,
            session_id: 1,
            must_change_password: false,
            last_seen_at: 0,
            second_factor: false,
        }
    }

    #[test]
    fn an_entry_is_trusted_briefly_and_never_past_expiry() {
        let cache = SessionCache::default();
        let ticket = cache.get("t", 1_000).unwrap_err();
        cache.put(ticket, "t", Some((operator(), 10_000)), 1_000);
        assert!(cache.get("t", 1_500).is_ok());
        let ticket = cache.get("t", 1_000 + RECHECK_MS).unwrap_err();
        cache.put(ticket, "t", Some((operator(), 10_000)), 9_500);
        assert!(cache.get("t", 10_000).is_err(), "expired");
    }

    #[test]
    fn logout_and_a_missing_session_forget_the_entry() {
        let cache = SessionCache::default();
        let ticket = cache.get("t", 0).unwrap_err();
        cache.put(ticket, "t", Some((operator(), 10_000)), 0);
        cache.forget("t");
        assert!(cache.get("t", 1).is_err());
        let ticket = cache.get("t", 1).unwrap_err();
        cache.put(ticket, "t", None, 1);
        assert!(cache.get("t", 2).is_err());
    }

    #[test]
    fn an_account_change_forgets_all_its_sessions() {
        let cache = SessionCache::default();
        for t in ["a", "b"] {
            let ticket = cache.get(t, 0).unwrap_err();
            cache.put(ticket, t, Some((operator(), 10_000)), 0);
        }
        cache.forget_operator(1);
        assert!(cache.get("a", 1).is_err());
        assert!(cache.get("b", 1).is_err());
    }

    #[test]
    fn a_read_from_before_a_logout_is_not_remembered() {
        let cache = SessionCache::default();
        let ticket = cache.get("t", 0).unwrap_err();
        cache.forget("t");
        cache.put(ticket, "t", Some((operator(), 10_000)), 0);
        assert!(cache.get("t", 1).is_err());
    }
}
