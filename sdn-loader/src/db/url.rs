//! Database URLs (which backend, the SQLite file, the text shown in messages) and the
//! identity and permissions of an SQLite file.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::Backend;

/// What replaces a secret in a printed URL.
const MASK: &str = "***";

/// The URL with every credential masked, for messages: the password of `user:password@`, and
/// the value of every query parameter whose name says it is a password (`password=`,
/// `sslpassword=`, in any case). A `passfile=` path is not a secret and stays.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            // The userinfo ends at the last '@' of the authority (a password may hold '@').
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:{MASK}@{host}{path}"),
                    None => format!("{scheme}://{userinfo}@{host}{path}"),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(q) = query {
        out.push('?');
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_key(k) => format!("{k}={MASK}"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k == "pass" || k == "pwd"
}

/// Masks every credential of every database URL, and every `password=` setting, found in
/// `text` (an error message whose causes may quote a URL): the last line of defence before
/// text is printed.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["postgres://", "postgresql://", "sqlite:"]
        .iter()
        .filter_map(|s| rest.find(s))
        .min()
    {
        out.push_str(&redact_params(&rest[..i]));
        let tail = &rest[i..];
        let token = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .unwrap_or(tail.len());
        // The sentence's own punctuation after a URL ("...?password=x: refused") is kept.
        let end = tail[..token]
            .trim_end_matches([':', ',', ';', '.', ')'])
            .len();
        out.push_str(&redact_url(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(&redact_params(rest));
    out
}

/// `password=VALUE` (also `password: VALUE` is left alone: no driver prints it so) outside
/// a URL, e.g. a libpq key/value connection string.
fn redact_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (n, word) in text.split(' ').enumerate() {
        if n > 0 {
            out.push(' ');
        }
        match word.split_once('=') {
            Some((k, _)) if is_secret_key(k) => {
                out.push_str(k);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(word),
        }
    }
    out
}

pub(super) fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

/// For SQLite: the file is created (`mode=rwc`) when `create`, and must exist otherwise
/// (`mode=rw`), unless the URL says its own `mode=`.
pub(super) fn sqlite_url(url: &str, create: bool) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        return url.to_owned();
    }
    let mode = if create { "rwc" } else { "rw" };
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}mode={mode}")
}

/// The file of an SQLite URL (`sqlite://rel`, `sqlite:///abs`, `sqlite:rel`), `None` for an
/// in-memory database.
pub(super) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

/// Which file an open SQLite database is: its path and the inode it had when opened. A
/// restore by `mv` or a deletion leaves the open connections on the old inode, where no
/// one writes any more; comparing with what the path names now tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FileId {
    pub(super) path: PathBuf,
    dev: u64,
    ino: u64,
}

/// What the path of an open SQLite database names now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileChange {
    /// Nothing is there.
    Vanished,
    /// Another file is there (a restore, a copy moved in place).
    Replaced,
}

impl FileChange {
    /// "vanished" or "was replaced".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Vanished => "vanished",
            Self::Replaced => "was replaced by another file",
        }
    }
}

impl FileId {
    pub(super) fn of(path: &Path) -> std::io::Result<Self> {
        let m = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// `None` while the path still names this file.
    pub(super) fn change(&self) -> Option<FileChange> {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => None,
            Ok(_) => Some(FileChange::Replaced),
            Err(_) => Some(FileChange::Vanished),
        }
    }
}

/// Mode of a database file the loader creates: the owner reads and writes, the file's group
/// (an operators' group, see [`create_private`]) reads, others nothing. SQLite gives its
/// `-wal` and `-shm` files the database file's mode.
pub(super) const FILE_MODE: u32 = 0o640;

/// Mode of a directory the loader creates for a database or its state.
pub const DIR_MODE: u32 = 0o750;

/// Creates `path` empty with [`FILE_MODE`] if it is not there (before SQLite would create
/// it 0644 under the usual umask). Its group is the directory's when the directory is
/// set-group-id (`chgrp sdn /var/lib/sdn; chmod 2750 /var/lib/sdn` lets the `sdn` group
/// read the database), the creator's otherwise.
pub(super) fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Takes away what `others` may do with the database file and its `-wal`/`-shm` (an earlier
/// version, or a copy made with the usual umask, left them 0644) when this process owns
/// them; returns the files changed.
pub(super) fn restrict_existing(path: &Path) -> Vec<PathBuf> {
    let mut changed = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        let Ok(m) = std::fs::metadata(&p) else {
            continue;
        };
        let mode = m.permissions().mode();
        if m.uid() == me && mode & 0o007 != 0 {
            let tighter = mode & 0o740;
            if std::fs::set_permissions(&p, std::fs::Permissions::from_mode(tighter)).is_ok() {
                changed.push(p);
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_credential_form_is_masked() {
        for (url, secret) in [
            ("postgres://u:pw@127.0.0.1:1/sdn", "pw"),
            ("postgres://u:qpw@127.0.0.1:1/sdn?password=qpw", "qpw"),
            (
                "postgres://u@127.0.0.1/sdn?sslmode=disable&password=s3cret",
                "s3cret",
            ),
            (
                "postgresql://127.0.0.1/sdn?PASSWORD=s3cret&user=u",
                "s3cret",
            ),
            ("postgres://u:p%40ss@h/db?sslpassword=keypw", "keypw"),
            ("postgres://u:a@b@h/db", "a@b"),
        ] {
            let r = redact_url(url);
            assert!(!r.contains(secret), "{url} -> {r}");
            assert!(r.contains(MASK), "{url} -> {r}");
        }
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/sdn?sslmode=require&password=x"),
            "postgres://u:***@h:5432/sdn?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres://u@h/sdn?passfile=/etc/sdn/pgpass"),
            "postgres://u@h/sdn?passfile=/etc/sdn/pgpass"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/sdn/sdn.db"),
            "sqlite:///var/lib/sdn/sdn.db"
        );
    }

    #[test]
    fn urls_inside_messages_are_masked() {
        let text = "cannot open database postgres://u:pw@h/sdn?password=qpw: refused; \
                    also \"postgresql://x:y@h/db\" and host=h password=kv dbname=sdn";
        let r = redact_text(text);
        for secret in [":pw@", "qpw", ":y@", "=kv"] {
            assert!(!r.contains(secret), "{r}");
        }
        assert!(r.contains("host=h password=*** dbname=sdn"), "{r}");
        assert!(
            r.starts_with("cannot open database postgres://u:***@h/sdn?password=***: refused"),
            "{r}"
        );
        assert_eq!(redact_text("no url here"), "no url here");
    }
}
