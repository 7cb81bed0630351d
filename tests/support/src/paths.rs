//! Where the project's tools live, found from this crate's location so tests
//! work from any working directory.

use std::path::PathBuf;

/// The repository root (two levels above `tests/support`).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(here)
}

/// The extended emulator's launcher, `moto/moto_ext.py` beside this crate's
/// sources (with `moto_cbor.py`, which it imports from the same folder).
pub fn moto_launcher() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("moto/moto_ext.py")
}

/// The project venv's `bin/` directory, or an error that says to run `make setup`.
pub fn venv_bin() -> anyhow::Result<PathBuf> {
    let bin = repo_root().join(".venv/bin");
    if bin.join("python").exists() {
        Ok(bin)
    } else {
        anyhow::bail!(
            "the project venv is missing ({}): run `make setup` first",
            bin.display()
        )
    }
}

/// A command found on PATH or in one of `extra_dirs`, in that order.
pub fn find_tool(name: &str, extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().cloned())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A debug binary of this workspace (`target/debug/<bin>`, or under
/// `CARGO_TARGET_DIR`), built on first use.
///
/// Tests that run another package's binary (the API as a task, the functions
/// under the runtime API) must work from a clean clone with `cargo test -p X`,
/// where cargo builds only the package under test. Under cargo (`CARGO` is set
/// for `cargo test` and `cargo run`) this runs [`BUILD_BINS`] once per process.
/// It is the very command that `make test` and `make demo` run first, so it is a
/// no-op then: a narrower `cargo build -p <package>` resolves features for that
/// package alone and rebuilt the AWS SDK in a third variant (seven minutes on a
/// cold 2-core CI machine, inside a test's timeout). Outside cargo (the demo
/// started by `make demo`) the binary must exist.
pub fn workspace_binary(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<Option<Result<(), String>>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    built
        .get_or_insert_with(|| build_workspace_bins().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("debug").join(bin);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: run `cargo {}` (make demo and make test do); it is package {package}'s",
        path.display(),
        BUILD_BINS.join(" ")
    );
    Ok(path)
}

/// The one build of every binary in the workspace, shared by the Makefile
/// (`make test`, `make demo`) and [`workspace_binary`] so they agree on features.
pub const BUILD_BINS: [&str; 4] = ["build", "--locked", "--workspace", "--bins"];

fn build_workspace_bins() -> anyhow::Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let command = format!("cargo {}", BUILD_BINS.join(" "));
    let status = std::process::Command::new(cargo)
        .args(BUILD_BINS)
        .arg("--quiet")
        .current_dir(repo_root())
        .status()
        .map_err(|e| anyhow::anyhow!("run `{command}`: {e}"))?;
    anyhow::ensure!(status.success(), "`{command}` failed ({status})");
    Ok(())
}
