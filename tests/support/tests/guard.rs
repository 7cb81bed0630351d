//! Scratch directories outlive nothing: the guard removes them.

#[test]
fn dir_guard_removes_its_directory_on_drop() {
    let dir = test_support::scratch_dir("dir-guard").unwrap();
    std::fs::write(dir.join("x.log"), "x").unwrap();
    let guard = test_support::guard::DirGuard::new(&dir).unwrap();
    assert!(dir.exists());
    drop(guard);
    assert!(!dir.exists(), "{} left behind", dir.display());
}
