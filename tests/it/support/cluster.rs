//! A real single-node Slurm cluster for the Slurm backend's tests and benchmark, started with
//! `scripts/slurm-local.sh` and stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A cluster of its own (own state folder and ports), stopped when dropped.
pub struct Cluster {
    env: Vec<(&'static str, String)>,
    pub conf: String,
}

impl Cluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh")
    }

    pub fn up(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("pixelx-slurm-test-{}", std::process::id()));
        let env = vec![
            ("PIXELX_SLURM_DIR", dir.display().to_string()),
            ("PIXELX_SLURM_PORT", port.to_string()),
            // Four job slots on two cores, so two runs and a requeued one fit at once.
            ("PIXELX_SLURM_CPUS", "4".to_owned()),
            ("PIXELX_SLURM_KILL_WAIT", "10".to_owned()),
        ];
        let out = Command::new(Self::script())
            .arg("up")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("running scripts/slurm-local.sh");
        assert!(
            out.status.success(),
            "the local Slurm cluster did not come up:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = dir.join("etc/slurm.conf").display().to_string();
        Self { env, conf }
    }

    /// A Slurm client command against this cluster.
    pub fn tool(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// `pixelx` talking to this cluster.
    pub fn pixelx(&self, runs: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pixelx"));
        let data = std::env::var_os("PIXELX_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("data"));
        c.env("PIXELX_DATA_DIR", data).env("PIXELX_THREADS", "1");
        c.env("SLURM_CONF", &self.conf).arg("--runs-dir").arg(runs);
        c
    }

    pub fn pixelx_jobs(&self) -> Vec<String> {
        let out = self
            .tool("squeue")
            .args(["--noheader", "--format=%i %j %T"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("pixelx-"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("down")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some((_, dir)) = self.env.iter().find(|(k, _)| *k == "PIXELX_SLURM_DIR") {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
