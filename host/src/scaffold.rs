//! `wasmhook plugin new`: a connector project in Rust, JavaScript or Python that builds and
//! runs as it stands. The templates live in `host/scaffold/`, compiled into the binary so the
//! command works wherever the binary is; each project gets the contract (`wit/`) and a sample
//! event beside its sources.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::connectors;

/// The languages there is a template for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

/// What `new` needs besides the language.
pub struct Project<'a> {
    /// The connector's name, as `describe` returns it and the project is called.
    pub name: &'a str,
    /// Where the project goes; it must not exist, or be empty.
    pub dir: &'a Path,
    /// The Rust SDK (`plugin-sdk/`) the Rust template depends on.
    pub sdk: Option<&'a Path>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{0:?} is not a usable name: 1 to 64 characters, a-z, 0-9, - and _, starting with a letter")]
    Name(String),
    #[error("{0} exists and is not empty; choose another name or --dir")]
    NotEmpty(PathBuf),
    #[error(
        "the Rust template depends on the SDK (plugin-sdk/ in a wasmhook checkout), and {0} is not \
         one; pass --sdk PATH"
    )]
    NoSdk(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A file of a template: its path in the project and its text, with `{{…}}` placeholders.
type Template = (&'static str, &'static str);

const CONTRACT: Template = ("wit/plugin.wit", include_str!("../../wit/plugin.wit"));
const SAMPLE_EVENT: Template = ("event.json", include_str!("../../plugins/samples/todo-created.json"));

const RUST: &[Template] = &[
    ("Cargo.toml", include_str!("../scaffold/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("../scaffold/rust/src/lib.rs")),
    (".gitignore", include_str!("../scaffold/rust/gitignore")),
    ("README.md", include_str!("../scaffold/rust/README.md")),
    SAMPLE_EVENT,
];

const JS: &[Template] = &[
    ("package.json", include_str!("../scaffold/js/package.json")),
    ("{{name}}.js", include_str!("../scaffold/js/connector.js")),
    (".gitignore", include_str!("../scaffold/js/gitignore")),
    ("README.md", include_str!("../scaffold/js/README.md")),
    CONTRACT,
    SAMPLE_EVENT,
];

const PYTHON: &[Template] = &[
    ("app.py", include_str!("../scaffold/python/app.py")),
    ("build.sh", include_str!("../scaffold/python/build.sh")),
    ("requirements.txt", include_str!("../scaffold/python/requirements.txt")),
    (".gitignore", include_str!("../scaffold/python/gitignore")),
    ("README.md", include_str!("../scaffold/python/README.md")),
    CONTRACT,
    SAMPLE_EVENT,
];

impl Lang {
    fn templates(self) -> &'static [Template] {
        match self {
            Lang::Rust => RUST,
            Lang::Js => JS,
            Lang::Python => PYTHON,
        }
    }

    /// How to build the project, said once it is written.
    pub fn build_command(self) -> &'static str {
        match self {
            Lang::Rust => "cargo build --release --target wasm32-wasip2",
            Lang::Js => "npm install && npm run build",
            Lang::Python => "./build.sh",
        }
    }

    /// Where the build puts the component, relative to the project.
    pub fn component(self, name: &str) -> String {
        match self {
            Lang::Rust => format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")),
            Lang::Js | Lang::Python => format!("{name}.wasm"),
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "Rust",
            Lang::Js => "JavaScript",
            Lang::Python => "Python",
        })
    }
}

/// The SDK of the source tree this binary was built from, if it is still there.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk")
}

/// Writes a `lang` project; returns the files written, relative to the project.
pub fn new(lang: Lang, project: &Project) -> Result<Vec<String>, ScaffoldError> {
    let name = project.name;
    // A crate or package name too, so it starts with a letter.
    if !(connectors::valid_name(name) && name.starts_with(|c: char| c.is_ascii_lowercase())) {
        return Err(ScaffoldError::Name(name.to_owned()));
    }
    if project.dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(project.dir.to_owned()));
    }
    let sdk =
        match lang {
            Lang::Rust => {
                let sdk = project.sdk.map_or_else(default_sdk, Path::to_owned);
                let sdk = sdk.canonicalize().ok().filter(|dir| dir.join("Cargo.toml").is_file());
                Some(sdk.ok_or_else(|| {
                    ScaffoldError::NoSdk(project.sdk.map_or_else(default_sdk, Path::to_owned))
                })?)
            }
            Lang::Js | Lang::Python => None,
        };
    let fill = |text: &str| {
        let text = text.replace("{{name}}", name).replace("{{crate}}", &name.replace('-', "_"));
        match &sdk {
            Some(sdk) => text.replace("{{sdk}}", &sdk.display().to_string()),
            None => text,
        }
    };

    let mut written = Vec::new();
    for (path, text) in lang.templates() {
        let relative = fill(path);
        let path = project.dir.join(&relative);
        let write = || {
            std::fs::create_dir_all(path.parent().expect("a file in the project"))?;
            std::fs::write(&path, fill(text))?;
            if relative.ends_with(".sh") {
                make_executable(&path)?;
            }
            Ok(())
        };
        write().map_err(|source| ScaffoldError::Write { path: path.clone(), source })?;
        written.push(relative);
    }
    Ok(written)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_gets_its_files_with_the_name_filled_in() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            let dir = tempfile::tempdir().unwrap();
            let project = Project { name: "acme-crm", dir: &dir.path().join("acme-crm"), sdk: None };
            let files = new(lang, &project).unwrap();
            assert!(files.contains(&"event.json".to_owned()), "{lang}: {files:?}");
            for file in &files {
                let text = std::fs::read_to_string(project.dir.join(file)).unwrap();
                assert!(!text.contains("{{"), "{lang}: {file} keeps a placeholder");
            }
            let component = lang.component("acme-crm");
            assert!(component.ends_with(if lang == Lang::Rust { "acme_crm.wasm" } else { "acme-crm.wasm" }));
        }
    }

    #[test]
    fn bad_names_and_full_folders_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "Acme", "1st", "a b", "../up"] {
            let project = Project { name, dir: &dir.path().join("x"), sdk: None };
            assert!(matches!(new(Lang::Js, &project), Err(ScaffoldError::Name(_))), "{name:?}");
        }
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let project = Project { name: "fine", dir: dir.path(), sdk: None };
        assert!(matches!(new(Lang::Python, &project), Err(ScaffoldError::NotEmpty(_))));
        let missing = dir.path().join("no-sdk");
        let project = Project { name: "fine", dir: &dir.path().join("fine"), sdk: Some(&missing) };
        assert!(matches!(new(Lang::Rust, &project), Err(ScaffoldError::NoSdk(_))));
        assert!(!dir.path().join("fine").exists());
    }
}
