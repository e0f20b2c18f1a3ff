//! A static mount, and finding a request's file in it.
//!
//! What it does: `StaticMount::new` checks a mount's settings once (the
//! directory exists and is one; the `Cache-Control` value and the index name
//! are usable) and keeps the directory's canonical path. `StaticMount::lookup`
//! turns a checked relative path (`proto::static_files::path`) into an open
//! file, a directory to redirect to, or nothing, with blocking file system
//! calls made on the connection's thread; a file found is remembered for
//! `FOUND_VALID` (its open files, its metadata, and the content of a small
//! one), so a busy file costs no system call to find.
//!
//! Never outside the directory: the relative path has no `..`, no empty
//! segment and no separator of another system (`proto::static_files::path`),
//! so only a symbolic link can lead out. The path is resolved with
//! `realpath(3)` (`fs::canonicalize`) and, unless the mount follows symbolic
//! links, must stay under the directory's own canonical path; the resolved
//! path is opened with `O_NOFOLLOW`. Links that stay inside the directory
//! are served. This works on every kernel and every Unix; `openat2(2)` with
//! `RESOLVE_BENEATH` would also close the window between the check and the
//! open, in which only someone who can already write inside the served
//! directory could swap a directory for a link. Files are opened with
//! `O_NONBLOCK`, so a FIFO cannot hold a thread; only regular files are
//! served, and a directory is never a file.
//!
//! What it does not do: decide the response (`endpoint`).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;

use crate::proto::static_files::coding::Coding;
use crate::proto::static_files::media;
use crate::proto::static_files::path::RelativePath;

/// A directory served under a URL prefix (`propylon.plan.StaticMount`).
#[derive(Debug)]
pub(crate) struct StaticMount {
    /// "" (every path) or "/x", without a trailing "/" (the route table's form).
    pub(crate) prefix: String,
    /// Canonical: absolute, without links.
    pub(crate) directory: PathBuf,
    pub(crate) cache_control: Option<HeaderValue>,
    /// The file served for a directory asked for with "/"; `None`: 404.
    pub(crate) index: Option<String>,
    /// Serve `.br`, `.zst`, `.gz` siblings by `Accept-Encoding`.
    pub(crate) precompressed: bool,
    pub(crate) follow_symlinks: bool,
    pub(crate) dotfiles: bool,
    /// Files found lately, by the path they were asked for.
    found: Mutex<HashMap<RelativePath, Cached>>,
}

/// How long a file found stays found without looking again: a file
/// replaced or changed on disk is served as it now is within this time.
/// (nginx's `open_file_cache_valid` is 60 s.)
pub(crate) const FOUND_VALID: Duration = Duration::from_secs(1);

/// The most paths a mount remembers (each holds up to four open files, the
/// original and its siblings); when full, it forgets them all.
const FOUND_CAPACITY: usize = 256;

#[derive(Debug)]
struct Cached {
    at: Instant,
    file: Arc<FoundFile>,
}

/// The settings of a mount, as the plan gives them.
pub(crate) struct MountSettings {
    pub(crate) prefix: String,
    pub(crate) directory: PathBuf,
    pub(crate) cache_control: Option<String>,
    pub(crate) index: Option<String>,
    pub(crate) precompressed: bool,
    pub(crate) follow_symlinks: bool,
    pub(crate) dotfiles: bool,
}

impl StaticMount {
    /// A mount, checked; the error is one line saying what to fix.
    pub(crate) fn new(settings: MountSettings) -> Result<StaticMount, String> {
        let MountSettings {
            prefix,
            directory,
            cache_control,
            index,
            precompressed,
            follow_symlinks,
            dotfiles,
        } = settings;
        // The route table's form ("/static/" is "/static", "/" is "").
        let prefix = prefix.strip_suffix('/').unwrap_or(&prefix).to_owned();
        let named = format!("static mount {prefix:?}");
        let canonical = std::fs::canonicalize(&directory).map_err(|e| {
            format!(
                "{named}: cannot serve directory {}: {e}",
                directory.display()
            )
        })?;
        if !canonical.is_dir() {
            return Err(format!(
                "{named}: {} is not a directory",
                directory.display()
            ));
        }
        let cache_control = cache_control
            .map(|value| {
                HeaderValue::from_str(&value)
                    .map_err(|_| format!("{named}: cache_control {value:?} is not a field value"))
            })
            .transpose()?;
        if let Some(index) = &index {
            let plain = !index.is_empty()
                && index != "."
                && index != ".."
                && !index.contains(['/', '\\', '\0']);
            if !plain {
                return Err(format!(
                    "{named}: index {index:?} is not a file name (no \"/\", not \".\" or \"..\")"
                ));
            }
        }
        Ok(StaticMount {
            prefix,
            directory: canonical,
            cache_control,
            index,
            precompressed,
            follow_symlinks,
            dotfiles,
            found: Mutex::default(),
        })
    }

    /// Find the file a checked path names: from the files found in the last
    /// `FOUND_VALID`, else on disk (blocking system calls, a few
    /// microseconds each on a local file system). Only files are
    /// remembered: a path that names nothing is looked up each time, so
    /// requests for random names cannot fill the memory.
    pub(crate) fn lookup(&self, path: &RelativePath) -> Found {
        let now = Instant::now();
        if let Some(cached) = self.remembered().get(path) {
            if now.duration_since(cached.at) < FOUND_VALID {
                return Found::File(cached.file.clone());
            }
        }
        let found = self.look_on_disk(path);
        if let Found::File(file) = &found {
            let mut remembered = self.remembered();
            if remembered.len() >= FOUND_CAPACITY {
                remembered.clear();
            }
            remembered.insert(
                path.clone(),
                Cached {
                    at: now,
                    file: file.clone(),
                },
            );
        }
        found
    }

    fn remembered(&self) -> MutexGuard<'_, HashMap<RelativePath, Cached>> {
        // A map a panicking holder left is still a valid cache.
        self.found.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn look_on_disk(&self, path: &RelativePath) -> Found {
        let mut full = self.directory.clone();
        full.extend(&path.segments);
        let name = path.segments.last().cloned();
        match self.open(&full) {
            Opened::File(file, meta, real) if !path.trailing_slash => {
                let name = name.unwrap_or_default();
                self.with_siblings(file, meta, &real, name)
            }
            Opened::File(..) => Found::Nothing,
            Opened::Directory if !path.trailing_slash => Found::Directory,
            Opened::Directory => {
                let Some(index) = &self.index else {
                    return Found::Nothing;
                };
                full.push(index);
                match self.open(&full) {
                    Opened::File(file, meta, real) => {
                        self.with_siblings(file, meta, &real, index.clone())
                    }
                    Opened::Forbidden => Found::Forbidden,
                    Opened::Directory | Opened::Nothing => Found::Nothing,
                }
            }
            Opened::Forbidden => Found::Forbidden,
            Opened::Nothing => Found::Nothing,
        }
    }

    /// The file, with the precompressed siblings found next to it. `real`
    /// is the path the file was opened by, resolved (and checked), so a
    /// sibling in the same directory is opened by its name alone
    /// (`O_NOFOLLOW`: one system call for a sibling that does not exist);
    /// only a sibling that is itself a link is resolved and checked as any
    /// other path. The siblings of a link are those of the file it leads to.
    fn with_siblings(&self, file: File, meta: Metadata, real: &Path, name: String) -> Found {
        let mut siblings = Vec::new();
        if self.precompressed {
            for coding in Coding::ALL {
                let mut sibling = real.as_os_str().to_owned();
                sibling.push(coding.suffix());
                let sibling = Path::new(&sibling);
                let opened = match self.open_resolved(sibling) {
                    Ok(opened) => opened,
                    Err(e) if e.raw_os_error() == Some(libc::ELOOP) => self.open(sibling),
                    Err(e) => Opened::failed(&e),
                };
                if let Opened::File(file, meta, _) = opened {
                    siblings.push(Representation::new(file, meta, Some(coding)));
                }
            }
        }
        let content_type = HeaderValue::from_str(&media::content_type(&name))
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        Found::File(Arc::new(FoundFile {
            name,
            content_type,
            original: Representation::new(file, meta, None),
            siblings,
        }))
    }

    /// Open `path` if it is a regular file or a directory under the mount
    /// (anywhere, when the mount follows links).
    fn open(&self, path: &Path) -> Opened {
        let real = match std::fs::canonicalize(path) {
            Ok(real) => real,
            Err(e) => return Opened::failed(&e),
        };
        if !self.follow_symlinks && !real.starts_with(&self.directory) {
            log::info!(
                target: "propylon.server",
                "static mount {:?}: {} leads outside the mount's directory (to {}); not served",
                self.prefix,
                path.display(),
                real.display()
            );
            return Opened::Nothing;
        }
        self.open_resolved(&real)
            .unwrap_or_else(|e| Opened::failed(&e))
    }

    /// Open a resolved path: its last component must not be a link
    /// (`ELOOP` otherwise).
    fn open_resolved(&self, target: &Path) -> io::Result<Opened> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
        let file = options.open(target)?;
        let meta = file.metadata()?;
        Ok(if meta.is_file() {
            Opened::File(file, meta, target.to_path_buf())
        } else if meta.is_dir() {
            Opened::Directory
        } else {
            Opened::Nothing
        })
    }
}

/// What opening a path gave. Not boxed, whatever clippy says of its size:
/// it lives for one call on the stack, and is moved once.
#[allow(clippy::large_enum_variant)]
enum Opened {
    /// The file, and the path it was opened by.
    File(File, Metadata, PathBuf),
    Directory,
    Forbidden,
    Nothing,
}

impl Opened {
    fn failed(e: &io::Error) -> Opened {
        match e.kind() {
            io::ErrorKind::PermissionDenied => Opened::Forbidden,
            _ => Opened::Nothing,
        }
    }
}

/// One file that can answer: the original or a precompressed sibling.
#[derive(Debug)]
pub(crate) struct Representation {
    /// Shared by the responses that send it (and by the lookup cache).
    pub(crate) file: Arc<File>,
    pub(crate) meta: Metadata,
    /// `None`: the original.
    pub(crate) coding: Option<Coding>,
    /// The content of a file of at most `SMALL_FILE` bytes, read when found.
    pub(crate) content: Option<Bytes>,
}

/// Files up to this size are read when found, and sent from memory: the
/// head and the content leave in one write, one TCP segment, where a head
/// then `sendfile(2)` takes two system calls and two segments (4 KiB
/// files: 119,000 responses a second on one core with `sendfile`, with
/// this the two segments' cost is gone). Bounded by the lookup cache: at
/// most `FOUND_CAPACITY` paths of four representations each.
pub(crate) const SMALL_FILE: u64 = 16 * 1024;

impl Representation {
    fn new(file: File, meta: Metadata, coding: Option<Coding>) -> Representation {
        let content = (meta.len() <= SMALL_FILE)
            .then(|| {
                let mut content = vec![0; meta.len() as usize];
                // A file that changes size while read is sent by its file.
                file.read_exact_at(&mut content, 0).ok()?;
                Some(Bytes::from(content))
            })
            .flatten();
        Representation {
            file: Arc::new(file),
            meta,
            coding,
            content,
        }
    }
}

/// A file found for a request.
#[derive(Debug)]
pub(crate) struct FoundFile {
    /// The original's name (the index file's, for a directory): what the
    /// lookup resolved, for debugging and the tests; the response needs only the
    /// type.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) name: String,
    /// The original's type, every representation's (`proto::static_files::media`),
    /// found once with the file.
    pub(crate) content_type: HeaderValue,
    pub(crate) original: Representation,
    /// The precompressed siblings that exist, in `Coding::ALL`'s order.
    pub(crate) siblings: Vec<Representation>,
}

/// What a checked path names under a mount.
pub(crate) enum Found {
    /// Shared with the lookup cache; the other answers carry nothing.
    File(Arc<FoundFile>),
    /// A directory asked for without the trailing "/": redirect.
    Directory,
    /// A file the server may not read: 403.
    Forbidden,
    /// Nothing the mount serves: 404.
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mount(dir: &Path, follow_symlinks: bool) -> StaticMount {
        StaticMount::new(MountSettings {
            prefix: "/static".into(),
            directory: dir.to_path_buf(),
            cache_control: None,
            index: Some("index.html".into()),
            precompressed: true,
            follow_symlinks,
            dotfiles: false,
        })
        .unwrap()
    }

    fn rel(segments: &[&str], trailing_slash: bool) -> RelativePath {
        RelativePath {
            segments: segments.iter().map(|s| s.to_string()).collect(),
            trailing_slash,
        }
    }

    fn kind(found: Found) -> String {
        match found {
            Found::File(f) => {
                let codings: Vec<_> = f
                    .siblings
                    .iter()
                    .map(|s| s.coding.unwrap().token())
                    .collect();
                format!("file {} {}{:?}", f.name, f.original.meta.len(), codings)
            }
            Found::Directory => "directory".into(),
            Found::Forbidden => "forbidden".into(),
            Found::Nothing => "not found".into(),
        }
    }

    #[test]
    fn lookups_stay_under_the_directory() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        std::fs::write(dir.join("app.js"), "js").unwrap();
        std::fs::write(dir.join("app.js.br"), "b").unwrap();
        std::fs::write(dir.join("app.js.gz"), "g").unwrap();
        std::fs::create_dir(dir.join("docs")).unwrap();
        std::fs::write(dir.join("docs/index.html"), "<p>").unwrap();
        std::fs::create_dir(dir.join("empty")).unwrap();
        symlink(outside.path().join("secret"), dir.join("leak")).unwrap();
        symlink(outside.path(), dir.join("leakdir")).unwrap();
        symlink(dir.join("app.js"), dir.join("alias.js")).unwrap();
        std::fs::write(dir.join("linked.css"), "css").unwrap();
        symlink(outside.path().join("secret"), dir.join("linked.css.br")).unwrap();
        symlink(dir.join("app.js.gz"), dir.join("linked.css.gz")).unwrap();
        let m = mount(dir, false);
        let cases = [
            (rel(&["app.js"], false), "file app.js 2[\"br\", \"gzip\"]"),
            (rel(&["app.js"], true), "not found"),
            (rel(&["docs"], false), "directory"),
            (rel(&["docs"], true), "file index.html 3[]"),
            (rel(&[], true), "not found"),
            (rel(&[], false), "directory"),
            (rel(&["empty"], true), "not found"),
            (rel(&["missing"], false), "not found"),
            (rel(&["app.js", "x"], false), "not found"),
            (rel(&["leak"], false), "not found"),
            (rel(&["leakdir", "secret"], false), "not found"),
            // A link is served by the name it was asked by (alias.js, the
            // siblings of app.js); a sibling that is a link is checked too.
            (
                rel(&["alias.js"], false),
                "file alias.js 2[\"br\", \"gzip\"]",
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(kind(m.lookup(&path)), expected, "{path:?}");
        }
        let followed = mount(dir, true);
        assert_eq!(
            kind(followed.lookup(&rel(&["leak"], false))),
            "file leak 6[]"
        );
        assert_eq!(
            kind(followed.lookup(&rel(&["leakdir", "secret"], false))),
            "file secret 6[]"
        );
        assert_eq!(
            kind(followed.lookup(&rel(&["linked.css"], false))),
            "file linked.css 3[\"br\", \"gzip\"]"
        );
    }

    #[test]
    fn bad_mounts_say_what_is_wrong() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        let settings =
            |directory: PathBuf, cache_control: Option<&str>, index: Option<&str>| MountSettings {
                prefix: "/s".into(),
                directory,
                cache_control: cache_control.map(Into::into),
                index: index.map(Into::into),
                precompressed: false,
                follow_symlinks: false,
                dotfiles: false,
            };
        let missing = StaticMount::new(settings(root.path().join("nope"), None, None));
        assert!(missing.unwrap_err().contains("cannot serve directory"));
        let not_dir = StaticMount::new(settings(file, None, None));
        assert!(not_dir.unwrap_err().contains("is not a directory"));
        let bad_cc = StaticMount::new(settings(root.path().into(), Some("a\nb"), None));
        assert!(bad_cc.unwrap_err().contains("cache_control"));
        let bad_index = StaticMount::new(settings(root.path().into(), None, Some("../x")));
        assert!(bad_index.unwrap_err().contains("index"));
    }
}
