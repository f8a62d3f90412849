//! A small tmpfs mounted for one scenario (a full disk on demand), unmounted on drop. Needs
//! root (CI runs the tests as root); [`SmallFs::mount`] says so when it cannot mount.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

pub struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `size` (e.g. `"64k"`) on `dir`, which must exist and be empty.
    pub fn mount(dir: &Path, size: &str) -> anyhow::Result<Self> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .status()
            .context("running mount (a tmpfs needs root)")?;
        anyhow::ensure!(status.success(), "mount -t tmpfs on {} failed ({status}); the test needs root", dir.display());
        Ok(Self { dir: dir.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `name` until the filesystem is full; returns its path.
    pub fn fill(&self, name: &str) -> anyhow::Result<PathBuf> {
        use std::io::Write as _;
        let path = self.dir.join(name);
        let mut file = std::fs::File::create(&path)?;
        let block = [b'x'; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => return Err(e).context("filling the tmpfs"),
            }
        }
        Ok(path)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file open there does not keep the mount alive.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
