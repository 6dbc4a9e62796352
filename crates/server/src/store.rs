//! The store: organisations, users, memberships and personal access tokens,
//! behind one interface ([`Store`]) so PostgreSQL can follow SQLite. The
//! embedded SQLite store lives in the data directory, in WAL mode, with
//! versioned migrations run at open. Nothing here knows about HTTP.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// A membership role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Manages the organisation; bypasses image access.
    Owner,
    /// Gets the organisation's policy.
    Member,
}

impl Role {
    /// `owner` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }

    /// Parses `owner` or `member`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    /// Its name.
    pub name: String,
    /// Docker Hub namespaces whose images are "Organization images".
    pub namespaces: Vec<String>,
    /// The policy document (YAML), as last set.
    pub policy: String,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The username.
    pub name: String,
    /// The argon2 PHC string of the console password.
    pub password_hash: String,
}

/// A personal access token, as stored: never the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// A short public identifier, for listing and revoking.
    pub id: String,
    /// The owner.
    pub user: String,
    /// A name the user gave it.
    pub name: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds of the last successful use.
    pub last_used: Option<i64>,
    /// Unix seconds after which it no longer works.
    pub expires: Option<i64>,
    /// Unix seconds when it was revoked.
    pub revoked: Option<i64>,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A name already taken.
    #[error("{what} {name:?} already exists")]
    Exists {
        /// `organisation`, `user`...
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A name that does not exist.
    #[error("no {what} named {name:?}")]
    Missing {
        /// `organisation`, `user`...
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The database URL names a backend this build cannot use.
    #[error("{0}")]
    Unsupported(String),
    /// The database failed.
    #[error("store {path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file is no longer the one opened: removed or replaced
    /// while the server had it open, so what is written there is lost.
    #[error("store {path}: the database file was {what} while imagegate had it open")]
    Gone {
        /// The database file.
        path: PathBuf,
        /// `removed`, `replaced` or `overwritten (…)`.
        what: &'static str,
    },
    /// The database file cannot be created or read.
    #[error("store {path}: {error}")]
    File {
        /// The database file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The data directory cannot be used.
    #[error("data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One audit event: a decision at a door.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// When, in Unix milliseconds.
    pub time_ms: i64,
    /// The door (`gateway`, `admission`, `imagepolicy`).
    pub door: String,
    /// The organisation whose policy decided (registry door).
    pub org: Option<String>,
    /// The user, or the Kubernetes identity.
    pub user: Option<String>,
    /// The source address.
    pub source: Option<String>,
    /// The normalised reference, or the input when it does not parse.
    pub image: String,
    /// The image as requested.
    pub input: String,
    /// The Docker Hub category.
    pub category: Option<String>,
    /// `allow` or `deny`.
    pub decision: String,
    /// The reason code.
    pub reason: String,
    /// The policy's mode.
    pub mode: String,
    /// The decision's message.
    pub message: String,
    /// The Kubernetes namespace.
    pub namespace: Option<String>,
    /// The request's id (an AdmissionReview uid).
    pub request: Option<String>,
    /// Where: a container's path in an object, or what the gateway served
    /// (`manifest`, `blob`, `tags`).
    pub path: Option<String>,
}

/// A console session, as stored: never the cookie's secret itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session secret, hex.
    pub hash: String,
    /// Who signed in.
    pub user: String,
    /// The session's CSRF token, which every form carries back.
    pub csrf: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds after which it no longer works.
    pub expires: i64,
}

/// A change an owner made to an organisation's policy, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyChange {
    /// When, in Unix milliseconds.
    pub time_ms: i64,
    /// The organisation.
    pub org: String,
    /// Who changed it.
    pub user: String,
    /// What was changed: `policy`, `image_access`, `registry_access`, `members`.
    pub what: String,
    /// The policy document before.
    pub before: String,
    /// The policy document after.
    pub after: String,
}

/// A member's request for an image their organisation's policy refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRequest {
    /// Its number, unique in the store.
    pub id: i64,
    /// The organisation asked.
    pub org: String,
    /// Who asked.
    pub user: String,
    /// The image as asked for, normalised (`docker.io/someuser/tool:1`).
    pub image: String,
    /// The repository an approval allows (`docker.io/someuser/tool`).
    pub repository: String,
    /// Why they need it, in their words.
    pub reason: String,
    /// The refusal they met when they asked.
    pub refusal: String,
    /// `open`, `approved`, `declined` or `withdrawn`.
    pub state: String,
    /// When it was asked, Unix milliseconds.
    pub created_ms: i64,
    /// Who settled it (an owner; the requester for `withdrawn`).
    pub decided_by: Option<String>,
    /// When it was settled, Unix milliseconds.
    pub decided_ms: Option<i64>,
    /// The owner's note to the requester.
    pub note: Option<String>,
}

/// How an open access request is settled, in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The organisation.
    pub org: String,
    /// The request.
    pub id: i64,
    /// `approved`, `declined` or `withdrawn`.
    pub state: String,
    /// Who settled it.
    pub by: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// A note to the requester.
    pub note: Option<String>,
    /// For an approval: the policy change that allows the repository. Every
    /// other open request for the same repository is approved with it.
    pub change: Option<PolicyChange>,
}

/// Refused attempts grouped by image, user and category, for insights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalGroup {
    /// The normalised reference, or the input when it did not parse.
    pub image: String,
    /// Who (None: anonymous or a Kubernetes request without a user).
    pub user: Option<String>,
    /// The Docker Hub category, when known.
    pub category: Option<String>,
    /// The reason code.
    pub reason: String,
    /// How many refused attempts.
    pub count: u64,
    /// The last one, Unix milliseconds.
    pub last_ms: i64,
}

/// Attempts in one time bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's start, Unix milliseconds.
    pub start_ms: i64,
    /// Allowed attempts.
    pub allowed: u64,
    /// Refused attempts.
    pub refused: u64,
}

/// Which audit events to read. Image globs are matched by the caller, on
/// the parsed reference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// At or after, Unix milliseconds.
    pub since_ms: Option<i64>,
    /// Before, Unix milliseconds.
    pub until_ms: Option<i64>,
    /// This user only.
    pub user: Option<String>,
    /// Decided under this organisation's policy only.
    pub org: Option<String>,
    /// This door only.
    pub door: Option<String>,
    /// `allow` or `deny` only.
    pub decision: Option<String>,
    /// At most this many (the newest), returned oldest first.
    pub limit: Option<usize>,
    /// Skip this many of the newest first (paging back in time).
    pub offset: Option<usize>,
}

/// How deep a [`Store::probe`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The database is still the one opened (not removed, not replaced):
    /// cheap enough for every audit batch.
    File,
    /// That, and a fresh connection reads it (a file overwritten in place is
    /// noticed, which the open connections' caches would hide).
    Read,
    /// That, and it takes a write (after a failed one: a disk that was full).
    Write,
}

/// Everything the doors and `imagegate admin` need from storage.
pub trait Store: Send + Sync {
    /// Creates an organisation.
    fn create_org(&self, org: &Org) -> Result<(), StoreError>;
    /// An organisation by name.
    fn org(&self, name: &str) -> Result<Option<Org>, StoreError>;
    /// Every organisation's name, sorted.
    fn org_names(&self) -> Result<Vec<String>, StoreError>;
    /// Replaces an organisation's policy document.
    fn set_org_policy(&self, name: &str, policy: &str) -> Result<(), StoreError>;
    /// Creates a user.
    fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// Whether any user exists (none on a first start).
    fn has_users(&self) -> Result<bool, StoreError>;
    /// A user by name.
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    /// Adds a user to an organisation, or changes their role.
    fn set_member(&self, org: &str, user: &str, role: Role) -> Result<(), StoreError>;
    /// Removes a user from an organisation; false when they were not a member.
    fn remove_member(&self, org: &str, user: &str) -> Result<bool, StoreError>;
    /// A user's organisations and roles.
    fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, StoreError>;
    /// Stores a new token.
    fn create_token(&self, token: &Token) -> Result<(), StoreError>;
    /// A user's tokens, newest first.
    fn tokens(&self, user: &str) -> Result<Vec<Token>, StoreError>;
    /// A token by the hash of its secret.
    fn token_by_hash(&self, hash: &str) -> Result<Option<Token>, StoreError>;
    /// A token by its id.
    fn token(&self, id: &str) -> Result<Option<Token>, StoreError>;
    /// Records a successful use.
    fn touch_token(&self, id: &str, at: i64) -> Result<(), StoreError>;
    /// Revokes a user's token; false when the user has no such token.
    fn revoke_token(&self, user: &str, id: &str, at: i64) -> Result<bool, StoreError>;
    /// Appends audit events, all or none.
    fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Audit events matching `filter`, oldest first.
    fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
    /// An organisation's members and their roles, by name.
    fn members(&self, org: &str) -> Result<Vec<(String, Role)>, StoreError>;
    /// Replaces an organisation's policy and records who changed it, together.
    fn change_policy(&self, change: &PolicyChange) -> Result<(), StoreError>;
    /// Records a change that did not touch the policy text (a membership).
    fn record_change(&self, change: &PolicyChange) -> Result<(), StoreError>;
    /// Stores a new console session.
    fn create_session(&self, session: &Session) -> Result<(), StoreError>;
    /// A session by the hash of its secret.
    fn session(&self, hash: &str) -> Result<Option<Session>, StoreError>;
    /// Ends a session (and any that have expired).
    fn delete_session(&self, hash: &str) -> Result<(), StoreError>;
    /// The latest `limit` changes to an organisation's policy, newest first.
    fn policy_changes(&self, org: &str, limit: usize) -> Result<Vec<PolicyChange>, StoreError>;
    /// Marks `user` as an administrator of this imagegate (they may create
    /// organisations), or not.
    fn set_administrator(&self, user: &str, administrator: bool) -> Result<(), StoreError>;
    /// Whether `user` is an administrator.
    fn is_administrator(&self, user: &str) -> Result<bool, StoreError>;
    /// Files an access request (its `id` is ignored) and returns its id.
    fn create_access_request(&self, request: &AccessRequest) -> Result<i64, StoreError>;
    /// An organisation's access requests, newest first: in `state` when
    /// given, by `user` when given, at most `limit`.
    fn access_requests(
        &self,
        org: &str,
        state: Option<&str>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AccessRequest>, StoreError>;
    /// One access request of an organisation.
    fn access_request(&self, org: &str, id: i64) -> Result<Option<AccessRequest>, StoreError>;
    /// Settles an open request, with its policy change when approved. Returns
    /// the ids settled; none when the request was not open (nothing changes).
    fn settle_access_request(&self, s: &Settlement) -> Result<Vec<i64>, StoreError>;
    /// Attempts per `bucket_ms` between `since_ms` and `until_ms` under
    /// `org`'s policy: admission decisions and gateway manifest requests
    /// (blobs and tag lists are parts of a pull, not attempts).
    fn attempt_series(
        &self,
        org: &str,
        since_ms: i64,
        until_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<Bucket>, StoreError>;
    /// Refused attempts in the window, grouped by image, user and category.
    fn refusal_groups(
        &self,
        org: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<RefusalGroup>, StoreError>;
    /// Whether the store is still the database opened, to the depth
    /// `check` asks: the audit writer's health probe.
    fn probe(&self, check: Probe) -> Result<(), StoreError>;
}

/// What counts as an attempt: every admission decision, and the gateway's
/// manifest requests (a pull's blobs and tag lists are not attempts).
const ATTEMPT: &str = "(door IN ('admission', 'imagepolicy') OR (door = 'gateway' AND (path IS NULL OR path = 'manifest')))";

/// The migrations, in order; the store records which have run.
const MIGRATIONS: &[&str] = &[
    // 1: identity
    "CREATE TABLE orgs (
        name TEXT PRIMARY KEY,
        namespaces TEXT NOT NULL,
        policy TEXT NOT NULL
    );
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL
    );
    CREATE TABLE members (
        org TEXT NOT NULL REFERENCES orgs(name) ON DELETE CASCADE,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('owner', 'member')),
        PRIMARY KEY (org, user)
    );
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        last_used INTEGER,
        expires INTEGER,
        revoked INTEGER
    );
    CREATE INDEX tokens_user ON tokens(user);",
    // 2: the audit log
    "CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        door TEXT NOT NULL,
        org TEXT,
        user TEXT,
        source TEXT,
        image TEXT NOT NULL,
        input TEXT NOT NULL,
        category TEXT,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL,
        mode TEXT NOT NULL,
        message TEXT NOT NULL,
        namespace TEXT,
        request TEXT,
        path TEXT
    );
    CREATE INDEX audit_time ON audit(time_ms);
    CREATE INDEX audit_user ON audit(user, time_ms);",
    // 3: who changed an organisation's policy, and how
    "CREATE TABLE policy_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        org TEXT NOT NULL REFERENCES orgs(name) ON DELETE CASCADE,
        user TEXT NOT NULL,
        what TEXT NOT NULL,
        before TEXT NOT NULL,
        after TEXT NOT NULL
    );
    CREATE INDEX policy_changes_org ON policy_changes(org, time_ms);",
    // 4: console sessions
    "CREATE TABLE sessions (
        hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL
    );
    CREATE INDEX sessions_expires ON sessions(expires);",
    // 5: access requests; administrators; the audit log by organisation
    "CREATE TABLE access_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        org TEXT NOT NULL REFERENCES orgs(name) ON DELETE CASCADE,
        user TEXT NOT NULL,
        image TEXT NOT NULL,
        repository TEXT NOT NULL,
        reason TEXT NOT NULL,
        refusal TEXT NOT NULL,
        state TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        decided_by TEXT,
        decided_ms INTEGER,
        note TEXT
    );
    CREATE INDEX access_requests_org ON access_requests(org, state, id);
    ALTER TABLE users ADD COLUMN administrator INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX audit_org ON audit(org, time_ms, decision, door, path);",
    // 6: one row the audit writer's probe rewrites to learn that the store
    // takes writes again after a failure (a disk that was full)
    "CREATE TABLE store_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at_ms INTEGER NOT NULL
    );",
];

/// The embedded SQLite store: one connection for writes and the doors'
/// short lookups, and one of its own (WAL lets it read beside the writer)
/// for the long reads of people (Activity, Insights, exports), so a long
/// query never holds what a pull's lookup or an audit write waits for.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Long reads waiting for the reader connection (tests watch it).
    waiting_long_reads: std::sync::atomic::AtomicUsize,
    /// The database file's device and inode when opened.
    file: Option<(u64, u64)>,
    /// Stops the checkpointer when dropped.
    _checkpointer: Checkpointer,
}

/// How often the WAL is copied into the database file.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// A WAL larger than this is truncated once checkpointed, in bytes.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The thread that checkpoints the WAL every [`CHECKPOINT_INTERVAL`] with a
/// connection of its own (passive: writers go on meanwhile).
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> rusqlite::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("imagegate-checkpoint".to_owned())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_INTERVAL)
                {
                    if let Err(e) =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(store = %shown, error = %e, "WAL checkpoint failed; retried");
                    }
                }
                // The last checkpoint: a clean stop leaves no WAL to replay.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            })
            .ok();
        Ok(Checkpointer {
            stop: Some(stop),
            thread,
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// The database file inside a data directory.
pub const DATABASE_FILE: &str = "imagegate.db";

/// Opens the store a `--database-url` or `--data-dir` names. PostgreSQL is
/// refused with a clear message until it lands.
pub fn open(data_dir: &Path, database_url: Option<&str>) -> Result<SqliteStore, StoreError> {
    match database_url {
        None => SqliteStore::open(data_dir),
        Some(url) => {
            if let Some(path) = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
            {
                SqliteStore::open_file(Path::new(path))
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Err(StoreError::Unsupported(
                    "PostgreSQL is not supported by this build yet; use the embedded store (--data-dir)".to_owned(),
                ))
            } else {
                Err(StoreError::Unsupported(format!(
                    "--database-url {url:?}: expected sqlite:PATH (or postgres://... once supported)"
                )))
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`. A directory it
    /// creates is `0700`: it holds the signing key and every secret's hash.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            dir.mode(0o700);
        }
        dir.create(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        SqliteStore::open_file(&data_dir.join(DATABASE_FILE))
    }

    /// Opens (creating if needed) the store in one database file. A file it
    /// creates is `0600`, and SQLite gives its WAL and shared-memory files
    /// the same mode.
    pub fn open_file(path: &Path) -> Result<SqliteStore, StoreError> {
        let db = |source| StoreError::Database {
            path: path.to_owned(),
            source,
        };
        create_private(path).map_err(|error| StoreError::File {
            path: path.to_owned(),
            error,
        })?;
        let mut conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        // WAL with NORMAL: a commit survives the process being killed (it is
        // in the WAL, in the OS's cache); only a power loss can undo the last
        // ones. This is what lets a door answer right after its commit.
        // Checkpoints (copying the WAL into the database, with an fsync) run
        // on a connection and thread of their own, never inside a commit a
        // door waits for.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(db)?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        migrate(&mut conn).map_err(db)?;
        let reader = Connection::open(path).map_err(db)?;
        reader.pragma_update(None, "query_only", "ON").map_err(db)?;
        reader
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            waiting_long_reads: std::sync::atomic::AtomicUsize::new(0),
            file: file_identity(path),
            _checkpointer: Checkpointer::start(path).map_err(db)?,
        })
    }

    /// Holds the long-read connection until the guard is dropped: tests use
    /// it to show that the doors do not wait for a long read.
    #[doc(hidden)]
    pub fn hold_long_reads(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds the writer's connection until the guard is dropped: tests use it
    /// to stall the audit writer.
    #[doc(hidden)]
    pub fn hold_writes(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many long reads wait for the connection [`SqliteStore::hold_long_reads`] holds.
    #[doc(hidden)]
    pub fn waiting_long_reads(&self) -> usize {
        self.waiting_long_reads
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.waiting_long_reads.fetch_add(1, SeqCst);
        let conn = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.waiting_long_reads.fetch_sub(1, SeqCst);
        f(&conn).map_err(|source| StoreError::Database {
            path: self.path.clone(),
            source,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&conn).map_err(|source| StoreError::Database {
            path: self.path.clone(),
            source,
        })
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
        })
    }
}

/// Creates `path` with mode `0600` unless it exists.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A file's device and inode, to notice it being removed or replaced.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)")?;
    let done: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(i).unwrap_or(i64::MAX) + 1;
        if version <= done {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            params![version, now()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccessRequest> {
    Ok(AccessRequest {
        id: r.get(0)?,
        org: r.get(1)?,
        user: r.get(2)?,
        image: r.get(3)?,
        repository: r.get(4)?,
        reason: r.get(5)?,
        refusal: r.get(6)?,
        state: r.get(7)?,
        created_ms: r.get(8)?,
        decided_by: r.get(9)?,
        decided_ms: r.get(10)?,
        note: r.get(11)?,
    })
}

/// A count column (SQLite integers are signed; a count is never negative).
fn count(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
}

const REQUEST_COLUMNS: &str = "id, org, user, image, repository, reason, refusal, state, created_ms, decided_by, decided_ms, note";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        id: r.get(0)?,
        user: r.get(1)?,
        name: r.get(2)?,
        hash: r.get(3)?,
        created: r.get(4)?,
        last_used: r.get(5)?,
        expires: r.get(6)?,
        revoked: r.get(7)?,
    })
}

/// Rows of (name, role) from a query over `members` with one parameter.
fn names_and_roles(c: &Connection, sql: &str, key: &str) -> rusqlite::Result<Vec<(String, Role)>> {
    let mut stmt = c.prepare(sql)?;
    let rows = stmt.query_map([key], |r| {
        let role: String = r.get(1)?;
        Ok((
            r.get::<_, String>(0)?,
            Role::parse(&role).unwrap_or(Role::Member),
        ))
    })?;
    rows.collect()
}

const TOKEN_COLUMNS: &str = "id, user, name, hash, created, last_used, expires, revoked";

impl Store for SqliteStore {
    fn create_org(&self, org: &Org) -> Result<(), StoreError> {
        let namespaces = org.namespaces.join(",");
        let inserted = {
            let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            conn.execute(
                "INSERT INTO orgs (name, namespaces, policy) VALUES (?1, ?2, ?3)",
                params![org.name, namespaces, org.policy],
            )
        };
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Exists {
                what: "organisation",
                name: org.name.clone(),
            }),
            Err(source) => Err(StoreError::Database {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn org(&self, name: &str) -> Result<Option<Org>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT name, namespaces, policy FROM orgs WHERE name = ?1",
                [name],
                |r| {
                    let namespaces: String = r.get(1)?;
                    Ok(Org {
                        name: r.get(0)?,
                        namespaces: namespaces
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        policy: r.get(2)?,
                    })
                },
            )
            .optional()
        })
    }

    fn org_names(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT name FROM orgs ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
    }

    fn set_org_policy(&self, name: &str, policy: &str) -> Result<(), StoreError> {
        let changed = self.with(|c| {
            c.execute(
                "UPDATE orgs SET policy = ?2 WHERE name = ?1",
                params![name, policy],
            )
        })?;
        if changed == 0 {
            return Err(StoreError::Missing {
                what: "organisation",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let inserted = {
            let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            conn.execute(
                "INSERT INTO users (name, password_hash) VALUES (?1, ?2)",
                params![user.name, user.password_hash],
            )
        };
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Exists {
                what: "user",
                name: user.name.clone(),
            }),
            Err(source) => Err(StoreError::Database {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn has_users(&self) -> Result<bool, StoreError> {
        self.with(|c| c.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0)))
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT name, password_hash FROM users WHERE name = ?1",
                [name],
                |r| {
                    Ok(User {
                        name: r.get(0)?,
                        password_hash: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    fn set_member(&self, org: &str, user: &str, role: Role) -> Result<(), StoreError> {
        if self.org(org)?.is_none() {
            return Err(StoreError::Missing {
                what: "organisation",
                name: org.to_owned(),
            });
        }
        if self.user(user)?.is_none() {
            return Err(StoreError::Missing {
                what: "user",
                name: user.to_owned(),
            });
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO members (org, user, role) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org, user) DO UPDATE SET role = excluded.role",
                params![org, user, role.as_str()],
            )
        })?;
        Ok(())
    }

    fn remove_member(&self, org: &str, user: &str) -> Result<bool, StoreError> {
        let n = self.with(|c| {
            c.execute(
                "DELETE FROM members WHERE org = ?1 AND user = ?2",
                params![org, user],
            )
        })?;
        Ok(n > 0)
    }

    fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, StoreError> {
        self.with(|c| {
            names_and_roles(
                c,
                "SELECT org, role FROM members WHERE user = ?1 ORDER BY org",
                user,
            )
        })
    }

    fn create_token(&self, t: &Token) -> Result<(), StoreError> {
        if self.user(&t.user)?.is_none() {
            return Err(StoreError::Missing {
                what: "user",
                name: t.user.clone(),
            });
        }
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    t.id,
                    t.user,
                    t.name,
                    t.hash,
                    t.created,
                    t.last_used,
                    t.expires,
                    t.revoked
                ],
            )
        })?;
        Ok(())
    }

    fn tokens(&self, user: &str) -> Result<Vec<Token>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user = ?1 ORDER BY created DESC, id"
            ))?;
            let rows = stmt.query_map([user], token_row)?;
            rows.collect()
        })
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<Token>, StoreError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"),
                [hash],
                token_row,
            )
            .optional()
        })
    }

    fn token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
                [id],
                token_row,
            )
            .optional()
        })
    }

    fn touch_token(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE tokens SET last_used = ?2 WHERE id = ?1",
                params![id, at],
            )
        })?;
        Ok(())
    }

    fn revoke_token(&self, user: &str, id: &str, at: i64) -> Result<bool, StoreError> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE tokens SET revoked = COALESCE(revoked, ?3) WHERE user = ?1 AND id = ?2",
                params![user, id, at],
            )
        })?;
        Ok(n > 0)
    }

    fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let db = |source| StoreError::Database {
            path: self.path.clone(),
            source,
        };
        let tx = conn.transaction().map_err(db)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO audit (time_ms, door, org, user, source, image, input, category, decision, reason, mode, message, namespace, request, path)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(db)?;
            for e in events {
                insert
                    .execute(params![
                        e.time_ms,
                        e.door,
                        e.org,
                        e.user,
                        e.source,
                        e.image,
                        e.input,
                        e.category,
                        e.decision,
                        e.reason,
                        e.mode,
                        e.message,
                        e.namespace,
                        e.request,
                        e.path
                    ])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    fn members(&self, org: &str) -> Result<Vec<(String, Role)>, StoreError> {
        self.with(|c| {
            names_and_roles(
                c,
                "SELECT user, role FROM members WHERE org = ?1 ORDER BY user",
                org,
            )
        })
    }

    fn change_policy(&self, ch: &PolicyChange) -> Result<(), StoreError> {
        let changed = {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            (|| {
                let tx = conn.transaction()?;
                let n = tx.execute(
                    "UPDATE orgs SET policy = ?2 WHERE name = ?1",
                    params![ch.org, ch.after],
                )?;
                if n == 1 {
                    tx.execute(
                        "INSERT INTO policy_changes (time_ms, org, user, what, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![ch.time_ms, ch.org, ch.user, ch.what, ch.before, ch.after],
                    )?;
                }
                tx.commit()?;
                Ok(n)
            })()
        };
        match changed {
            Ok(1) => Ok(()),
            Ok(_) => Err(StoreError::Missing {
                what: "organisation",
                name: ch.org.clone(),
            }),
            Err(source) => Err(StoreError::Database {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn create_session(&self, x: &Session) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (hash, user, csrf, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![x.hash, x.user, x.csrf, x.created, x.expires],
            )
            .map(|_| ())
        })
    }

    fn session(&self, hash: &str) -> Result<Option<Session>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT hash, user, csrf, created, expires FROM sessions WHERE hash = ?1",
                [hash],
                |r| {
                    Ok(Session {
                        hash: r.get(0)?,
                        user: r.get(1)?,
                        csrf: r.get(2)?,
                        created: r.get(3)?,
                        expires: r.get(4)?,
                    })
                },
            )
            .optional()
        })
    }

    fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE hash = ?1 OR expires <= ?2",
                params![hash, now()],
            )
            .map(|_| ())
        })
    }

    fn record_change(&self, ch: &PolicyChange) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO policy_changes (time_ms, org, user, what, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![ch.time_ms, ch.org, ch.user, ch.what, ch.before, ch.after],
            )
            .map(|_| ())
        })
    }

    fn policy_changes(&self, org: &str, limit: usize) -> Result<Vec<PolicyChange>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT time_ms, org, user, what, before, after FROM policy_changes WHERE org = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![org, limit], |r| {
                Ok(PolicyChange {
                    time_ms: r.get(0)?,
                    org: r.get(1)?,
                    user: r.get(2)?,
                    what: r.get(3)?,
                    before: r.get(4)?,
                    after: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = f
            .limit
            .and_then(|n| i64::try_from(n).ok())
            .unwrap_or(i64::MAX);
        self.read(|c| {
            let mut q = c.prepare_cached(
                "SELECT time_ms, door, org, user, source, image, input, category, decision, reason, mode, message, namespace, request, path
                 FROM audit
                 WHERE time_ms >= COALESCE(?1, -9223372036854775808) AND time_ms < COALESCE(?2, 9223372036854775807)
                   AND (?3 IS NULL OR user = ?3) AND (?4 IS NULL OR door = ?4) AND (?5 IS NULL OR decision = ?5)
                   AND (?7 IS NULL OR org = ?7)
                 ORDER BY time_ms DESC, id DESC LIMIT ?6 OFFSET ?8",
            )?;
            let rows = q.query_map(
                params![
                    f.since_ms,
                    f.until_ms,
                    f.user,
                    f.door,
                    f.decision,
                    limit,
                    f.org,
                    f.offset.and_then(|n| i64::try_from(n).ok()).unwrap_or(0)
                ],
                |r| {
                    Ok(AuditEvent {
                        time_ms: r.get(0)?,
                        door: r.get(1)?,
                        org: r.get(2)?,
                        user: r.get(3)?,
                        source: r.get(4)?,
                        image: r.get(5)?,
                        input: r.get(6)?,
                        category: r.get(7)?,
                        decision: r.get(8)?,
                        reason: r.get(9)?,
                        mode: r.get(10)?,
                        message: r.get(11)?,
                        namespace: r.get(12)?,
                        request: r.get(13)?,
                        path: r.get(14)?,
                    })
                },
            )?;
            let mut events = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            events.reverse();
            Ok(events)
        })
    }

    fn set_administrator(&self, user: &str, administrator: bool) -> Result<(), StoreError> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE users SET administrator = ?2 WHERE name = ?1",
                params![user, administrator],
            )
        })?;
        if n == 0 {
            return Err(StoreError::Missing {
                what: "user",
                name: user.to_owned(),
            });
        }
        Ok(())
    }

    fn is_administrator(&self, user: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1 AND administrator <> 0)",
                [user],
                |r| r.get(0),
            )
        })
    }

    fn create_access_request(&self, r: &AccessRequest) -> Result<i64, StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO access_requests (org, user, image, repository, reason, refusal, state, created_ms, decided_by, decided_ms, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    r.org,
                    r.user,
                    r.image,
                    r.repository,
                    r.reason,
                    r.refusal,
                    r.state,
                    r.created_ms,
                    r.decided_by,
                    r.decided_ms,
                    r.note
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    fn access_requests(
        &self,
        org: &str,
        state: Option<&str>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT {REQUEST_COLUMNS} FROM access_requests
                 WHERE org = ?1 AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR user = ?3)
                 ORDER BY id DESC LIMIT ?4"
            ))?;
            let rows = q.query_map(params![org, state, user, limit], request_row)?;
            rows.collect()
        })
    }

    fn access_request(&self, org: &str, id: i64) -> Result<Option<AccessRequest>, StoreError> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE org = ?1 AND id = ?2"
                ),
                params![org, id],
                request_row,
            )
            .optional()
        })
    }

    fn settle_access_request(&self, s: &Settlement) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let settled = (|| {
            let tx = conn.transaction()?;
            let repository: Option<String> = tx
                .query_row(
                    "SELECT repository FROM access_requests WHERE org = ?1 AND id = ?2 AND state = 'open'",
                    params![s.org, s.id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(repository) = repository else {
                return Ok(Vec::new());
            };
            let approved = s.state == "approved";
            let ids = {
                let mut q = tx.prepare(
                    "UPDATE access_requests SET state = ?3, decided_by = ?4, decided_ms = ?5, note = ?6
                     WHERE org = ?1 AND state = 'open' AND (id = ?2 OR (?7 AND repository = ?8))
                     RETURNING id",
                )?;
                let rows = q.query_map(
                    params![
                        s.org, s.id, s.state, s.by, s.at_ms, s.note, approved, repository
                    ],
                    |r| r.get::<_, i64>(0),
                )?;
                rows.collect::<rusqlite::Result<Vec<i64>>>()?
            };
            if let Some(ch) = &s.change {
                tx.execute(
                    "UPDATE orgs SET policy = ?2 WHERE name = ?1",
                    params![ch.org, ch.after],
                )?;
                tx.execute(
                    "INSERT INTO policy_changes (time_ms, org, user, what, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![ch.time_ms, ch.org, ch.user, ch.what, ch.before, ch.after],
                )?;
            }
            tx.commit()?;
            Ok(ids)
        })();
        settled.map_err(|source| StoreError::Database {
            path: self.path.clone(),
            source,
        })
    }

    fn attempt_series(
        &self,
        org: &str,
        since_ms: i64,
        until_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        let bucket_ms = bucket_ms.max(1);
        self.read(|c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT ?2 + ((time_ms - ?2) / ?4) * ?4 AS start,
                        SUM(decision <> 'deny'), SUM(decision = 'deny')
                 FROM audit
                 WHERE org = ?1 AND time_ms >= ?2 AND time_ms < ?3 AND {ATTEMPT}
                 GROUP BY start ORDER BY start"
            ))?;
            let rows = q.query_map(params![org, since_ms, until_ms, bucket_ms], |r| {
                Ok(Bucket {
                    start_ms: r.get(0)?,
                    allowed: count(r, 1)?,
                    refused: count(r, 2)?,
                })
            })?;
            rows.collect()
        })
    }

    fn refusal_groups(
        &self,
        org: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<RefusalGroup>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT image, user, category, MAX(reason), COUNT(*), MAX(time_ms)
                 FROM audit
                 WHERE org = ?1 AND time_ms >= ?2 AND time_ms < ?3 AND decision = 'deny' AND {ATTEMPT}
                 GROUP BY image, user, category"
            ))?;
            let rows = q.query_map(params![org, since_ms, until_ms], |r| {
                Ok(RefusalGroup {
                    image: r.get(0)?,
                    user: r.get(1)?,
                    category: r.get(2)?,
                    reason: r.get(3)?,
                    count: count(r, 4)?,
                    last_ms: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    fn probe(&self, check: Probe) -> Result<(), StoreError> {
        if let Some(opened) = self.file {
            let what = match file_identity(&self.path) {
                None => Some("removed"),
                Some(now) if now != opened => Some("replaced"),
                Some(_) => None,
            };
            if let Some(what) = what {
                return Err(StoreError::Gone {
                    path: self.path.clone(),
                    what,
                });
            }
        }
        if check == Probe::File {
            return Ok(());
        }
        // The header is read from the file itself: pages in the WAL would
        // hide a file overwritten in place from any connection.
        let mut header = [0u8; 16];
        std::fs::File::open(&self.path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
            .map_err(|error| StoreError::File {
                path: self.path.clone(),
                error,
            })?;
        if &header != b"SQLite format 3\0" {
            return Err(StoreError::Gone {
                path: self.path.clone(),
                what: "overwritten (it no longer starts with the SQLite header)",
            });
        }
        let db = |source| StoreError::Database {
            path: self.path.clone(),
            source,
        };
        let fresh = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        fresh
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(db)?;
        drop(fresh);
        if check == Probe::Write {
            self.with(|c| {
                c.execute(
                    "INSERT INTO store_probe (id, at_ms) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
                    [now_ms()],
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (SqliteStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "imagegate-store-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        (SqliteStore::open(&dir).unwrap(), dir)
    }

    fn rand_suffix() -> u64 {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        u64::from_le_bytes(b)
    }

    #[test]
    fn migrations_run_once_and_reopening_keeps_data() {
        let (s, dir) = store();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        s.create_org(&Org {
            name: "corp".into(),
            namespaces: vec!["corp".into(), "corp-labs".into()],
            policy: "x".into(),
        })
        .unwrap();
        drop(s);
        let s = SqliteStore::open(&dir).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(
            s.org("corp").unwrap().unwrap().namespaces,
            ["corp", "corp-labs"]
        );
    }

    #[test]
    fn duplicates_and_missing_names_are_errors_that_say_so() {
        let (s, _) = store();
        let org = Org {
            name: "corp".into(),
            namespaces: vec![],
            policy: String::new(),
        };
        s.create_org(&org).unwrap();
        assert_eq!(
            s.create_org(&org).unwrap_err().to_string(),
            "organisation \"corp\" already exists"
        );
        assert_eq!(
            s.set_member("corp", "alice", Role::Member)
                .unwrap_err()
                .to_string(),
            "no user named \"alice\""
        );
        assert_eq!(
            s.set_org_policy("nope", "x").unwrap_err().to_string(),
            "no organisation named \"nope\""
        );
    }

    #[test]
    fn memberships_roles_change_in_place() {
        let (s, _) = store();
        s.create_org(&Org {
            name: "corp".into(),
            namespaces: vec![],
            policy: String::new(),
        })
        .unwrap();
        s.create_user(&User {
            name: "alice".into(),
            password_hash: "h".into(),
        })
        .unwrap();
        s.set_member("corp", "alice", Role::Member).unwrap();
        s.set_member("corp", "alice", Role::Owner).unwrap();
        assert_eq!(
            s.memberships("alice").unwrap(),
            [("corp".to_owned(), Role::Owner)]
        );
        assert_eq!(
            s.members("corp").unwrap(),
            [("alice".to_owned(), Role::Owner)]
        );
        assert!(s.remove_member("corp", "alice").unwrap());
        assert!(!s.remove_member("corp", "alice").unwrap());
        assert!(s.members("corp").unwrap().is_empty());
    }

    #[test]
    fn a_policy_change_updates_the_policy_and_its_record_together() {
        let (s, _) = store();
        s.create_org(&Org {
            name: "corp".into(),
            namespaces: vec![],
            policy: "v1".into(),
        })
        .unwrap();
        for (i, after) in ["v2", "v3"].into_iter().enumerate() {
            s.change_policy(&PolicyChange {
                time_ms: i as i64,
                org: "corp".into(),
                user: "olga".into(),
                what: "policy".into(),
                before: if i == 0 { "v1" } else { "v2" }.into(),
                after: after.into(),
            })
            .unwrap();
        }
        assert_eq!(s.org("corp").unwrap().unwrap().policy, "v3");
        let changes = s.policy_changes("corp", 10).unwrap();
        let afters: Vec<&str> = changes.iter().map(|c| c.after.as_str()).collect();
        assert_eq!(afters, ["v3", "v2"], "newest first");
        assert_eq!(s.policy_changes("corp", 1).unwrap().len(), 1);
        let missing = s.change_policy(&PolicyChange {
            org: "nosuch".into(),
            ..changes[0].clone()
        });
        assert!(matches!(missing, Err(StoreError::Missing { .. })));
        assert!(s.policy_changes("nosuch", 10).unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_0700_and_the_database_and_its_wal_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "imagegate-store-{}-{}/nested",
            std::process::id(),
            rand_suffix()
        ));
        let s = SqliteStore::open(&dir).unwrap();
        s.create_user(&User {
            name: "alice".into(),
            password_hash: "h".into(),
        })
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for file in ["imagegate.db", "imagegate.db-wal", "imagegate.db-shm"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
    }

    #[test]
    fn the_wal_is_copied_into_the_database_off_the_writers_path() {
        let (s, dir) = store();
        let db = dir.join(DATABASE_FILE);
        let before = std::fs::metadata(&db).unwrap().len();
        let events: Vec<AuditEvent> = (0..5_000)
            .map(|i| AuditEvent {
                time_ms: i,
                door: "gateway".into(),
                image: format!("docker.io/library/nginx:{i}"),
                ..AuditEvent::default()
            })
            .collect();
        s.append_audit(&events).unwrap();
        // The writer's commit does not checkpoint: the checkpointer does.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::metadata(&db).unwrap().len() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was never checkpointed into {}",
                db.display()
            );
            std::thread::sleep(CHECKPOINT_INTERVAL / 5);
        }
        drop(s);
        let s = SqliteStore::open(&dir).unwrap();
        assert_eq!(
            s.audit_events(&AuditFilter::default()).unwrap().len(),
            5_000
        );
    }

    #[test]
    fn postgres_urls_are_refused_clearly() {
        let e = open(Path::new("/nonexistent"), Some("postgres://db/imagegate")).unwrap_err();
        assert!(
            e.to_string()
                .contains("PostgreSQL is not supported by this build yet"),
            "{e}"
        );
    }
}
