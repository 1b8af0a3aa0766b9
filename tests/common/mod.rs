//! Helpers shared by the integration tests.

use std::path::PathBuf;
use std::process::Command;

/// The path of example `name`, built for this test's profile. `cargo test` builds examples
/// before integration tests; `cargo test --test X` alone does not (and would run a stale
/// binary), so this always asks cargo, which does nothing when the example is fresh.
pub(crate) fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", name]);
        if dir.parent().unwrap().file_name().unwrap() == "release" {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "building example {name} failed"
        );
    }
    path
}
