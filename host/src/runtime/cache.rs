//! Compiled components, cached on disk so that a restart does not recompile.
//!
//! An entry is keyed by the component's content hash and the engine's compatibility hash
//! (wasmtime version and configuration): a `.cwasm` only loads into an engine configured
//! like the one that wrote it.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::ContentHash;

pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: [u8; 32],
}

impl ComponentCache {
    /// A cache in `dir` (created if missing), or none: every load then compiles.
    pub(crate) fn new(engine: &Engine, dir: Option<&Path>) -> std::io::Result<Self> {
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
        }
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ComponentCache { dir: dir.map(Path::to_owned), engine_key: hasher.0.finalize().into() })
    }

    /// The compiled component for `bytes`, from the cache when it is there.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &ContentHash,
    ) -> wasmtime::Result<Component> {
        let Some(path) = self.path(hash) else {
            return Component::new(engine, bytes);
        };
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` into our own cache
            // directory; wasmtime still checks its header against this engine.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "recompiling: cached component unusable: {e}")
                }
            }
        }
        tracing::info!(
            "compiling a component of {} KiB; a large one (JavaScript, Python) takes 30-45 s on two \
             cores, once: it is cached for later loads",
            bytes.len() / 1024
        );
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), "could not cache compiled component: {e}");
        }
        Ok(component)
    }

    /// Removes the compiled form of a component that was refused.
    pub(crate) fn evict(&self, hash: &ContentHash) {
        if let Some(path) = self.path(hash)
            && let Err(error) = std::fs::remove_file(&path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), "could not remove a refused component's compiled form: {error}");
        }
    }

    fn path(&self, hash: &ContentHash) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let key = Sha256::new().chain_update(self.engine_key).chain_update(hash.0).finalize();
        Some(dir.join(format!("{}.cwasm", hex::encode(key))))
    }

    /// Writes atomically: a concurrent reader sees the whole file or none.
    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        let dir = path.parent().expect("cache paths are inside the cache directory");
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(&component.serialize()?)?;
        file.persist(path)?;
        Ok(())
    }
}

/// Feeds `Hash` output into SHA-256: stable across processes, unlike `DefaultHasher`.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 digest is read")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
