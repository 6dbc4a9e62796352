//! `imagegate admin`: organisations, users, memberships and access tokens in
//! the store, before (and besides) the console.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use imagegate_server::identity::Identity;
use imagegate_server::store::{self, Role, Store};

use crate::EXIT_OK;

/// Where the store is: shared by `serve`, `admin` and `audit`, so one
/// `--data-dir` (or `IMAGEGATE_DATA_DIR`) works for all three.
#[derive(clap::Args, Clone, Default)]
pub struct StoreArgs {
    /// Data directory of the embedded store and the signing key
    /// [default: imagegate-data].
    #[arg(long, value_name = "DIR", env = "IMAGEGATE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL (sqlite:PATH); overrides --data-dir for the store.
    #[arg(
        long,
        value_name = "URL",
        env = "IMAGEGATE_DATABASE_URL",
        global = true
    )]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// The data directory, defaulted.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(imagegate_server::config::DEFAULT_DATA_DIR))
    }

    /// The SQLite file the store is (or would be) in; `None` for a URL that
    /// names no file, which [`store::open`] refuses in its own words.
    fn database_file(&self) -> Option<PathBuf> {
        match &self.database_url {
            None => Some(self.data_dir().join(store::DATABASE_FILE)),
            Some(url) => url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .map(PathBuf::from),
        }
    }

    /// Opens the store that is there, and refuses to create one: a command
    /// that reads or changes records must not answer from an empty store at
    /// a mistyped path (or a forgotten `--data-dir`).
    pub fn open_existing(&self) -> anyhow::Result<Arc<dyn Store>> {
        if let Some(file) = self.database_file()
            && !file.exists()
        {
            anyhow::bail!(
                "no store at {}: give the --data-dir (or --database-url) that imagegate serve uses",
                file.display()
            );
        }
        self.open()
    }

    /// Opens the store, creating it if there is none yet, and then says on
    /// stderr where it was created.
    pub fn open_or_create(&self) -> anyhow::Result<Arc<dyn Store>> {
        let created = self.database_file().filter(|file| !file.exists());
        let store = self.open()?;
        if let Some(file) = created {
            let shown = std::path::absolute(&file).unwrap_or(file);
            crate::style::note(&format!(
                "created a new store at {}: give imagegate serve the same --data-dir",
                shown.display()
            ));
        }
        Ok(store)
    }

    fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(Arc::new(store::open(
            &self.data_dir(),
            self.database_url.as_deref(),
        )?))
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Organisations and their policies.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Memberships of users in organisations.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Personal access tokens (registry sign-in).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(clap::Subcommand)]
enum OrgCommand {
    /// Create an organisation (image access off, as Docker starts it).
    Create {
        /// The organisation's name.
        name: String,
        /// A Docker Hub namespace whose images are this organisation's (repeatable).
        #[arg(long = "namespace", value_name = "NS")]
        namespaces: Vec<String>,
    },
    /// The organisation's policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(clap::Subcommand)]
enum PolicyCommand {
    /// Replace the policy with a file (checked before it is stored).
    Set {
        /// The organisation.
        name: String,
        /// The policy file (YAML or JSON).
        #[arg(long, value_name = "POLICY")]
        file: PathBuf,
    },
    /// Print the policy.
    Show {
        /// The organisation.
        name: String,
    },
}

#[derive(clap::Subcommand)]
enum UserCommand {
    /// Create a user; the console password is read from standard input.
    Create {
        /// The username.
        name: String,
        /// An administrator of this imagegate: creates organisations in the
        /// console and the API.
        #[arg(long)]
        administrator: bool,
    },
}

#[derive(clap::Subcommand)]
enum MemberCommand {
    /// Add a user to an organisation (or change their role).
    Add {
        /// The organisation.
        org: String,
        /// The user.
        user: String,
        /// owner (bypasses image access, manages the organisation) or member.
        #[arg(long, value_parser = ["owner", "member"])]
        role: String,
    },
    /// Remove a user from an organisation.
    Remove {
        /// The organisation.
        org: String,
        /// The user.
        user: String,
    },
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Create a token; prints only the token, which is shown this once.
    Create {
        /// The user.
        user: String,
        /// What the token is for.
        #[arg(long, value_name = "N")]
        name: String,
        /// Days until it expires (never, without this).
        #[arg(long, value_name = "DAYS")]
        expires: Option<u32>,
    },
    /// List a user's tokens, one per line, id first.
    List {
        /// The user.
        user: String,
    },
    /// Revoke a token by its id.
    Revoke {
        /// The user.
        user: String,
        /// The token's id (from `token list`).
        id: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    // Only creating an organisation or a user may start a store; everything
    // else needs the records of one that exists.
    let creates = matches!(
        args.command,
        Command::Org(OrgCommand::Create { .. }) | Command::User(UserCommand::Create { .. })
    );
    let store = if creates {
        args.store.open_or_create()?
    } else {
        args.store.open_existing()?
    };
    let id = Identity::new(store);
    let mut out = std::io::stdout().lock();
    match args.command {
        Command::Org(OrgCommand::Create { name, namespaces }) => {
            id.create_org(&name, &namespaces)?;
            writeln!(out, "created organisation {name}")?;
        }
        Command::Org(OrgCommand::Policy(PolicyCommand::Set { name, file })) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read policy {}", file.display()))?;
            id.org(&name)?;
            id.set_policy(&name, &text)
                .with_context(|| format!("{} was not stored", file.display()))?;
            writeln!(out, "policy of {name} set from {}", file.display())?;
        }
        Command::Org(OrgCommand::Policy(PolicyCommand::Show { name })) => {
            let org = id.org(&name)?;
            out.write_all(org.policy.as_bytes())?;
            if !org.policy.ends_with('\n') {
                writeln!(out)?;
            }
        }
        Command::User(UserCommand::Create {
            name,
            administrator,
        }) => {
            let password = read_password()?;
            id.create_user(&name, &password)?;
            if administrator {
                id.store().set_administrator(&name, true)?;
                writeln!(out, "created user {name}, an administrator")?;
            } else {
                writeln!(out, "created user {name}")?;
            }
        }
        Command::Member(MemberCommand::Add { org, user, role }) => {
            let role = Role::parse(&role).context("role must be owner or member")?;
            id.store().set_member(&org, &user, role)?;
            writeln!(out, "{user} is {} of {org}", role.as_str())?;
        }
        Command::Member(MemberCommand::Remove { org, user }) => {
            if !id.store().remove_member(&org, &user)? {
                anyhow::bail!("{user} is not a member of {org}");
            }
            writeln!(out, "removed {user} from {org}")?;
        }
        Command::Token(TokenCommand::Create {
            user,
            name,
            expires,
        }) => {
            let token = id.create_token(&user, &name, expires)?;
            writeln!(out, "{}", token.secret)?;
        }
        Command::Token(TokenCommand::List { user }) => {
            if id.store().user(&user)?.is_none() {
                anyhow::bail!("no user named {user:?}");
            }
            let now = store::now();
            for t in id.store().tokens(&user)? {
                let state = if t.revoked.is_some() {
                    "revoked"
                } else if t.expires.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                writeln!(
                    out,
                    "{}\t{}\t{state}\tcreated {}\tlast used {}\texpires {}",
                    t.id,
                    t.name,
                    date(Some(t.created)),
                    date(t.last_used),
                    date(t.expires)
                )?;
            }
        }
        Command::Token(TokenCommand::Revoke { user, id: token }) => {
            id.revoke_token(&user, &token)?;
            writeln!(out, "revoked token {token} of {user}")?;
        }
    }
    Ok(EXIT_OK)
}

/// The password from standard input: the first line, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
    }
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .context("reading the password from standard input")?;
    let text = String::from_utf8(bytes).context("the password is not UTF-8")?;
    let line = text.lines().next().unwrap_or_default();
    Ok(line.to_owned())
}

fn date(at: Option<i64>) -> String {
    match at.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok()) {
        Some(t) => t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.unix_timestamp().to_string()),
        None => "never".to_owned(),
    }
}
