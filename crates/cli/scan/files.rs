//! Which files `imagegate scan` reads, what kind each is, and the image sites
//! in them (through `imagegate_scan`). In a Git checkout a directory's files
//! are Git's (`git ls-files`); elsewhere it is walked with the `ignore` crate
//! (`.gitignore`, `.ignore`). Files are read in parallel, symbolic links
//! followed, loops reported; decides nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use imagegate_scan::{Value, compose, dockerfile, manifest, yaml};

use super::hint::{self, Unchecked, Vars};

/// Files larger than this are reported, not read.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// What kind of file names the images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Dockerfile,
    Compose,
    Kubernetes,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Dockerfile => "dockerfile",
            Source::Compose => "compose",
            Source::Kubernetes => "kubernetes",
        }
    }

    /// How a parse error names the file's kind.
    fn parsed_as(self) -> &'static str {
        match self {
            Source::Dockerfile => "Dockerfile",
            Source::Compose => "Compose file",
            Source::Kubernetes => "Kubernetes manifest",
        }
    }
}

/// One place a file names an image, or says it cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Site {
    /// The path shown: as given, or relative to the scanned directory.
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub source: Source,
    pub what: What,
    /// What names it: `FROM`, `services.web.image`, `Deployment/web spec.…`.
    pub at: String,
    /// The Kubernetes object's namespace, for exemptions.
    pub namespace: Option<String>,
    /// What to do about a variable without a value or a file that does not
    /// parse (the policy's refusals get theirs from the decision).
    pub hint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum What {
    /// An image: as written, and after substitution.
    Image { raw: String, image: String },
    /// Variables without a value: as written, and the names.
    Unresolved { raw: String, names: Vec<String> },
    /// The file (or an object in it) cannot be read as its kind.
    ParseError { what: &'static str, detail: String },
}

/// What the scanner was told.
pub struct Options {
    pub build_args: Vec<(String, String)>,
    /// Variables from `--env-file`, instead of each Compose file's `.env`.
    pub env_file: Option<Vec<(String, String)>>,
}

/// What one file gave.
pub struct Scanned {
    pub sites: Vec<Site>,
    pub bytes: u64,
}

/// How a file is named.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dockerfile,
    Compose,
    /// `*.yaml`, `*.yml`, `*.json`: Kubernetes objects, or nothing of ours.
    Yaml,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?;
    let lower = name.to_ascii_lowercase();
    if name == "Dockerfile"
        || name == "Containerfile"
        || lower.ends_with(".dockerfile")
        || lower.ends_with(".containerfile")
        || name.starts_with("Dockerfile.")
        || name.starts_with("Containerfile.")
    {
        return Some(Kind::Dockerfile);
    }
    let yaml = [".yaml", ".yml"].iter().any(|e| lower.ends_with(e));
    if yaml && (lower.starts_with("compose.") || lower.starts_with("docker-compose.")) {
        return Some(Kind::Compose);
    }
    if yaml || lower.ends_with(".json") {
        return Some(Kind::Yaml);
    }
    None
}

/// A Helm chart's templates are Go templates, not YAML: scan them rendered
/// (`helm template … | imagegate scan -`).
pub fn is_helm_template(path: &Path) -> bool {
    path.ancestors().skip(1).any(|dir| {
        dir.file_name() == Some("templates".as_ref()) && dir.with_file_name("Chart.yaml").is_file()
    })
}

/// Scans one file named on the command line: its kind from its name, and a
/// YAML file whose document is shaped like Compose is read as one (`-f` style
/// overrides such as `prod.yaml`).
pub fn scan_file(path: &Path, shown: &str, options: &Options, root: &Path) -> Option<Scanned> {
    let kind = kind_of(path)?;
    scan_kind(path, shown, kind, options, root, true)
}

/// Scans standard input: Kubernetes objects, or a Compose file.
/// `Err` when standard input holds nothing to scan (empty, or no Kubernetes
/// object and no Compose file): a failed `helm template` before the pipe must
/// not pass as a clean scan.
pub fn scan_stdin(text: &str, options: &Options) -> Result<Scanned, String> {
    if text.trim().is_empty() {
        return Err(
            "standard input is empty: nothing to scan (did the command before the pipe fail?)"
                .to_owned(),
        );
    }
    let none = "standard input holds no Kubernetes object and no Compose file";
    match yaml::documents(text) {
        Ok(docs)
            if !docs
                .iter()
                .any(|d| compose::is_compose(d) || manifest::manifest_images(d).objects > 0) =>
        {
            return Err(none.to_owned());
        }
        // Broken YAML is a finding when it looks like what it should be;
        // otherwise there is nothing to scan.
        Err(e) if !looks_like_compose(text) && !looks_like_kubernetes(text) => {
            return Err(format!("{none} (and is not YAML: {e})"));
        }
        _ => {}
    }
    let mut sites = Vec::new();
    yaml_sites(
        text,
        "-",
        Kind::Yaml,
        Path::new("."),
        Path::new("."),
        options,
        &mut sites,
        true,
    );
    Ok(Scanned {
        sites,
        bytes: text.len() as u64,
    })
}

/// Scans a file of a known kind; `sniff` reads a YAML file shaped like
/// Compose as one.
fn scan_kind(
    path: &Path,
    shown: &str,
    kind: Kind,
    options: &Options,
    root: &Path,
    sniff: bool,
) -> Option<Scanned> {
    let source = match kind {
        Kind::Dockerfile => Source::Dockerfile,
        Kind::Compose => Source::Compose,
        Kind::Yaml => Source::Kubernetes,
    };
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => return Some(unreadable(shown, source, &e.to_string())),
    };
    if size > MAX_FILE_BYTES {
        let detail = format!("the file is {size} bytes, over the limit of {MAX_FILE_BYTES}");
        return Some(unreadable(shown, source, &detail));
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Some(unreadable(shown, source, &e.to_string())),
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) if kind == Kind::Yaml => return None,
        Err(_) => return Some(unreadable(shown, source, "not valid UTF-8")),
    };
    let mut sites = Vec::new();
    let dir = path.parent().unwrap_or(Path::new("."));
    match kind {
        Kind::Dockerfile => {
            dockerfile_sites(&text, shown, &options.build_args, None, &mut sites);
        }
        Kind::Compose | Kind::Yaml => {
            yaml_sites(&text, shown, kind, dir, root, options, &mut sites, sniff);
        }
    }
    Some(Scanned { sites, bytes: size })
}

fn unreadable(shown: &str, source: Source, detail: &str) -> Scanned {
    Scanned {
        sites: vec![parse_error(
            shown,
            (0, 0),
            source,
            source.parsed_as(),
            detail.to_owned(),
            &Unchecked::File,
        )],
        bytes: 0,
    }
}

fn parse_error(
    file: &str,
    (line, column): (usize, usize),
    source: Source,
    what: &'static str,
    detail: String,
    unchecked: &Unchecked,
) -> Site {
    Site {
        file: file.to_owned(),
        line,
        column,
        source,
        at: String::new(),
        what: What::ParseError { what, detail },
        namespace: None,
        hint: Some(hint::parse_error(unchecked)),
    }
}

/// The images of a Dockerfile; `service` names the Compose service that
/// builds it, when one does (its `build.args` are then in `build_args`).
fn dockerfile_sites(
    text: &str,
    shown: &str,
    build_args: &[(String, String)],
    service: Option<&str>,
    sites: &mut Vec<Site>,
) {
    let mut declared = None;
    for f in dockerfile::images(text, build_args) {
        let at = match f.site {
            dockerfile::Site::From => "FROM",
            dockerfile::Site::CopyFrom => "COPY --from",
            dockerfile::Site::MountFrom => "RUN --mount from",
        };
        let hint = match &f.value {
            Value::Image(_) => None,
            Value::Unresolved(names) => {
                let declared: &[String] =
                    declared.get_or_insert_with(|| dockerfile::global_args(text));
                Some(hint::unresolved(
                    names,
                    &match service {
                        Some(service) => Vars::ComposeBuild { declared, service },
                        None => Vars::Dockerfile { declared },
                    },
                ))
            }
        };
        sites.push(Site {
            file: shown.to_owned(),
            line: f.line,
            column: f.column,
            source: Source::Dockerfile,
            at: at.to_owned(),
            what: what_of(f.raw, f.value),
            namespace: None,
            hint,
        });
    }
}

fn what_of(raw: String, value: Value) -> What {
    match value {
        Value::Image(image) => What::Image { raw, image },
        Value::Unresolved(names) => What::Unresolved { raw, names },
    }
}

/// A YAML or JSON file: a Compose file (by name, or by shape when `sniff`),
/// else Kubernetes objects. A file of neither kind yields nothing; one that
/// does not parse is reported when it looks like one of them.
#[allow(clippy::too_many_arguments)]
fn yaml_sites(
    text: &str,
    shown: &str,
    kind: Kind,
    dir: &Path,
    root: &Path,
    options: &Options,
    sites: &mut Vec<Site>,
    sniff: bool,
) {
    let docs = match yaml::documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            if kind == Kind::Compose || looks_like_compose(text) {
                sites.push(parse_error(
                    shown,
                    (e.line, e.column),
                    Source::Compose,
                    "YAML",
                    e.message,
                    &Unchecked::ComposeYaml,
                ));
            } else if looks_like_kubernetes(text) {
                // A stream of Kubernetes objects (rendered Helm output): each
                // document on its own, so one broken template hides no other.
                let parts = yaml::each_document(text);
                let others = parts.len() > 1;
                for part in parts {
                    match part {
                        Ok(doc) => manifest_sites(&doc, shown, sites),
                        Err(e) => sites.push(parse_error(
                            shown,
                            (e.line, e.column),
                            Source::Kubernetes,
                            "YAML",
                            e.message,
                            &Unchecked::Document { others },
                        )),
                    }
                }
            }
            return;
        }
    };
    let compose = kind == Kind::Compose || (sniff && docs.first().is_some_and(compose::is_compose));
    if compose {
        if let Some(doc) = docs.first() {
            compose_sites(doc, shown, dir, root, options, sites);
        }
        return;
    }
    for doc in &docs {
        manifest_sites(doc, shown, sites);
    }
}

/// The images of one document holding Kubernetes objects (or none).
fn manifest_sites(doc: &yaml::Node, shown: &str, sites: &mut Vec<Site>) {
    let found = manifest::manifest_images(doc);
    for image in found.images {
        sites.push(Site {
            file: shown.to_owned(),
            line: image.line,
            column: image.column,
            source: Source::Kubernetes,
            at: format!("{} {}", image.object, image.path),
            what: What::Image {
                raw: image.image.clone(),
                image: image.image,
            },
            namespace: image.namespace,
            hint: None,
        });
    }
    for p in found.problems {
        let mut site = parse_error(
            shown,
            (p.line, p.column),
            Source::Kubernetes,
            "Kubernetes object",
            format!("{}: {}", p.object, p.error),
            &Unchecked::Object,
        );
        site.at = format!("{} {}", p.object, p.error.path);
        sites.push(site);
    }
}

fn looks_like_kubernetes(text: &str) -> bool {
    text.contains("apiVersion") && text.contains("kind")
}

fn looks_like_compose(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("services:"))
}

fn compose_sites(
    doc: &yaml::Node,
    shown: &str,
    dir: &Path,
    root: &Path,
    options: &Options,
    sites: &mut Vec<Site>,
) {
    let dotenv;
    let vars: HashMap<&str, &str> = match &options.env_file {
        Some(vars) => vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        None => {
            dotenv = std::fs::read_to_string(dir.join(".env"))
                .map(|t| compose::env_file(&t))
                .unwrap_or_default();
            dotenv
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        }
    };
    // The shell's environment wins over the file, as in Compose.
    let env = |name: &str| -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| vars.get(name).map(|v| (*v).to_owned()))
    };
    let found = match compose::services(doc, &env) {
        Ok(found) => found,
        Err(e) => {
            let mut site = parse_error(
                shown,
                (e.line, e.column),
                Source::Compose,
                "Compose file",
                e.to_string(),
                &Unchecked::ComposeShape,
            );
            site.at = e.path;
            sites.push(site);
            return;
        }
    };
    let vars = Vars::Compose {
        env_file: options.env_file.is_some(),
        stdin: shown == "-",
    };
    for image in found.images {
        let hint = match &image.value {
            Value::Image(_) => None,
            Value::Unresolved(names) => Some(hint::unresolved(names, &vars)),
        };
        sites.push(Site {
            file: shown.to_owned(),
            line: image.line,
            column: image.column,
            source: Source::Compose,
            at: format!("services.{}.image", image.service),
            what: what_of(image.raw, image.value),
            namespace: None,
            hint,
        });
    }
    for build in found.builds {
        build_sites(&build, shown, dir, root, options, &vars, sites);
    }
}

/// A service's build: its Dockerfile, read with the service's build args
/// over `--build-arg`s.
fn build_sites(
    build: &compose::Build,
    shown: &str,
    dir: &Path,
    root: &Path,
    options: &Options,
    vars: &Vars,
    sites: &mut Vec<Site>,
) {
    let at = format!("services.{}.build", build.service);
    let mut args = options.build_args.clone();
    args.extend(build.args.iter().cloned());
    if let Some((text, line, column)) = &build.inline {
        let mut inline = Vec::new();
        dockerfile_sites(text, shown, &args, Some(&build.service), &mut inline);
        for mut site in inline {
            // A block scalar's location is that of its first line of text.
            site.line += line.saturating_sub(1);
            site.column += column.saturating_sub(1);
            site.source = Source::Compose;
            site.at = format!("{at}.dockerfile_inline {}", site.at);
            sites.push(site);
        }
        return;
    }
    let (Some(context), dockerfile) = (&build.context, &build.dockerfile) else {
        return;
    };
    let site_at = |what: What, hint: String| Site {
        file: shown.to_owned(),
        line: build.line,
        column: build.column,
        source: Source::Compose,
        at: at.clone(),
        what,
        namespace: None,
        hint: Some(hint),
    };
    let (context, dockerfile) = match (context, dockerfile) {
        (Value::Image(c), Value::Image(d)) => (c, d),
        (Value::Unresolved(names), _) | (_, Value::Unresolved(names)) => {
            sites.push(site_at(
                What::Unresolved {
                    raw: at.clone(),
                    names: names.clone(),
                },
                hint::unresolved(names, vars),
            ));
            return;
        }
    };
    let path = dir.join(context).join(dockerfile);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            sites.push(site_at(
                What::ParseError {
                    what: "Compose file",
                    detail: format!(
                        "{at}: the Dockerfile {} cannot be read: {e}",
                        path.display()
                    ),
                },
                hint::parse_error(&Unchecked::Build {
                    service: &build.service,
                }),
            ));
            return;
        }
    };
    let mut built = Vec::new();
    dockerfile_sites(
        &text,
        &display(&path, root),
        &args,
        Some(&build.service),
        &mut built,
    );
    for mut site in built {
        // The same Dockerfile may be scanned on its own too, with other args.
        site.at = format!("{}, built by {shown} {at}", site.at);
        sites.push(site);
    }
}

/// A path as shown: relative to the scanned directory when under it.
pub fn display(path: &Path, root: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}

/// Problems met while walking (a symbolic link loop, a directory that cannot
/// be read): said on stderr, the walk goes on.
pub struct WalkWarning(pub String);

/// What the walk sends: a scanned file, a skipped Helm template, a warning.
pub enum Event {
    Scanned(Scanned),
    HelmTemplate,
    Warning(WalkWarning),
}

/// Walks `root`, sending what each file gave. In a Git checkout the files
/// are Git's (tracked, whatever an ignore rule says, and untracked but not
/// ignored); elsewhere a parallel walk honouring `.gitignore` and `.ignore`.
/// Paths are shown relative to `shown_from` (the root itself, or `.` when
/// several roots are scanned, so their files stay apart). `Err` when the
/// checkout's files cannot be listed: a guess would skip what Git tracks.
pub fn walk(
    root: &Path,
    shown_from: &Path,
    options: &Options,
    events: &mpsc::Sender<Event>,
) -> Result<(), String> {
    walk_tree(root, shown_from, options, events, &mut Vec::new())
}

/// [`walk`], remembering the directories (canonical) already walked, so a
/// symbolic link to one of them is not walked again.
fn walk_tree(
    root: &Path,
    shown_from: &Path,
    options: &Options,
    events: &mpsc::Sender<Event>,
    walked: &mut Vec<PathBuf>,
) -> Result<(), String> {
    if let Ok(canonical) = root.canonicalize() {
        walked.push(canonical);
    }
    let Some(listed) = git_files(root)? else {
        walk_ignoring(root, shown_from, options, events);
        return Ok(());
    };
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for path in listed {
        // A path Git lists that is gone from the working tree (deleted, or a
        // dangling link) holds nothing to scan.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => dirs.push(path),
            Ok(m) if m.is_file() => files.push(path),
            _ => {}
        }
    }
    scan_in_parallel(&files, shown_from, options, events);
    // Submodules and nested repositories (their own checkouts), and
    // symbolic links to directories.
    for dir in dirs {
        let linked = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink());
        if linked && let Ok(target) = dir.canonicalize() {
            let loops = dir
                .parent()
                .and_then(|p| p.canonicalize().ok())
                .is_some_and(|p| p.starts_with(&target));
            if loops {
                let _ = events.send(Event::Warning(WalkWarning(format!(
                    "{}: symbolic link loop to {}: not followed",
                    display(&dir, shown_from),
                    target.display()
                ))));
                continue;
            }
            if walked.iter().any(|w| target.starts_with(w)) {
                // Its files are scanned where they are.
                continue;
            }
        }
        walk_tree(&dir, shown_from, options, events, walked)?;
    }
    Ok(())
}

/// The files under `dir` as Git lists them, when `dir` is in a Git
/// checkout: `git ls-files --cached --others --exclude-standard` (without
/// `--exclude-standard` when Git ignores `dir` itself). `Ok(None)` outside a
/// checkout.
fn git_files(dir: &Path) -> Result<Option<Vec<PathBuf>>, String> {
    let in_checkout = dir
        .canonicalize()
        .is_ok_and(|abs| abs.ancestors().any(|a| a.join(".git").exists()));
    if !in_checkout {
        return Ok(None);
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "cannot scan {}: it is in a Git checkout, and git cannot be run to list the files it tracks ({e}); install git",
                    dir.display()
                )
            })
    };
    // A directory named to be scanned that Git ignores as a whole (rendered
    // manifests in an ignored `out/`): everything in it, ignoring nothing.
    let ignored = git(&["check-ignore", "-q", "."])?.status.code() == Some(0);
    let mut list = vec!["ls-files", "-z", "--cached", "--others"];
    if !ignored {
        list.push("--exclude-standard");
    }
    let output = git(&list)?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        return Err(format!(
            "cannot scan {}: git ls-files could not list the files of its Git checkout: {said}",
            dir.display()
        ));
    }
    let mut paths: Vec<PathBuf> = output
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| dir.join(path_of(p)))
        .collect();
    // A path in conflict is listed once per stage.
    paths.sort();
    paths.dedup();
    Ok(Some(paths))
}

#[cfg(unix)]
fn path_of(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    // `ls-files` ends a directory (a nested repository) with `/`.
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Scans `files` on as many threads as there are cores.
fn scan_in_parallel(
    files: &[PathBuf],
    shown_from: &Path,
    options: &Options,
    events: &mpsc::Sender<Event>,
) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(files.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (next, events) = (&next, events.clone());
            scope.spawn(move || {
                while let Some(path) =
                    files.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    visit(path, shown_from, options, &events);
                }
            });
        }
    });
}

/// Scans one file the walk found, if it is of a kind that names images.
fn visit(path: &Path, shown_from: &Path, options: &Options, events: &mpsc::Sender<Event>) {
    let Some(kind) = kind_of(path) else {
        return;
    };
    if is_helm_template(path) {
        let _ = events.send(Event::HelmTemplate);
        return;
    }
    if let Some(scanned) = scan_kind(
        path,
        &display(path, shown_from),
        kind,
        options,
        shown_from,
        false,
    ) {
        let _ = events.send(Event::Scanned(scanned));
    }
}

/// Walks `root` in parallel outside a Git checkout, honouring `.gitignore`
/// and `.ignore` files; symbolic links followed, loops reported.
fn walk_ignoring(root: &Path, shown_from: &Path, options: &Options, events: &mpsc::Sender<Event>) {
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .follow_links(true)
        // `.gitignore` counts even where the tree is not a Git checkout.
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build_parallel();
    walker.run(|| {
        let events = events.clone();
        Box::new(move |entry| {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                    visit(e.path(), shown_from, options, &events);
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = events.send(Event::Warning(WalkWarning(e.to_string())));
                }
            }
            ignore::WalkState::Continue
        })
    });
}
