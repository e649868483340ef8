//! `scripts/postgres.sh`, the private PostgreSQL that the run command starts when no
//! `DATABASE_URL` is set: it must not be a trust-auth cluster that every local user can reach.
//! Each test runs the real script against a data folder of its own (`VOC_PGDATA`).

use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The server binaries the script itself would find (Debian's layout first).
fn pg_bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
        .filter(|d| d.join("initdb").exists())
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (the script installs them)")
}

/// Runs the command as the cluster's owner: `postgres` when the tests run as root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A data folder that the cluster's owner can use, and a guard that stops its server.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::Builder::new().prefix("voc-pg").tempdir().unwrap();
        if is_root() {
            // `postgres` must be able to enter it; the script closes the data folder itself.
            Command::new("chmod")
                .arg("755")
                .arg(dir.path())
                .status()
                .unwrap();
        }
        Cluster { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("pgdata")
    }

    /// Runs `ensure_database` with no DATABASE_URL and returns the URL it exported.
    fn ensure_database(&self) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {script} && ensure_database && echo \"$DATABASE_URL\""
            ))
            .env_remove("DATABASE_URL")
            .env("VOC_PGDATA", self.data())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ensure_database failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout.lines().last().unwrap_or_default().trim().to_string()
    }

    fn port(&self) -> String {
        std::fs::read_to_string(self.data().join("port"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_owner(&pg_bindir().join("pg_ctl"))
            .arg("-D")
            .arg(self.data().join("db"))
            .args(["stop", "-m", "immediate"])
            .output();
    }
}

async fn connects(url: &str) -> Result<i32, sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    Ok(one)
}

#[tokio::test]
async fn the_private_cluster_asks_every_client_for_its_generated_password() {
    let cluster = Cluster::new();
    let url = cluster.ensure_database();
    let password = std::fs::read_to_string(cluster.data().join("password")).unwrap();
    let password = password.trim();
    assert!(
        password.len() >= 24,
        "a generated password, got {password:?}"
    );
    assert_eq!(
        url,
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            cluster.port()
        )
    );
    assert_eq!(connects(&url).await.unwrap(), 1);

    // Another local user knows the port but not the password.
    let no_password = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port());
    let err = connects(&no_password).await.unwrap_err().to_string();
    assert!(
        err.contains("password"),
        "refused for want of a password, got: {err}"
    );
    let wrong = format!(
        "postgres://postgres:guess@127.0.0.1:{}/postgres",
        cluster.port()
    );
    assert!(connects(&wrong).await.is_err());

    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(cluster.data().join("password")), 0o600);
    assert_eq!(mode(cluster.data()), 0o700);

    // A second call reuses the running server and the same password.
    assert_eq!(cluster.ensure_database(), url);
}

#[tokio::test]
async fn a_trust_cluster_made_by_an_older_script_is_switched_to_the_password() {
    let cluster = Cluster::new();
    std::fs::create_dir_all(cluster.data()).unwrap();
    if is_root() {
        Command::new("chown")
            .arg("postgres:")
            .arg(cluster.data())
            .status()
            .unwrap();
    }
    let made = as_owner(&pg_bindir().join("initdb"))
        .arg("-D")
        .arg(cluster.data().join("db"))
        .args(["-U", "postgres", "--auth=trust"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let url = cluster.ensure_database();
    assert_eq!(connects(&url).await.unwrap(), 1);
    let no_password = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port());
    assert!(
        connects(&no_password).await.is_err(),
        "the old trust cluster still lets anyone in"
    );
    let hba = std::fs::read_to_string(cluster.data().join("db/pg_hba.conf")).unwrap();
    assert!(
        !hba.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.split_whitespace().any(|w| w == "trust")),
        "pg_hba.conf still trusts: {hba}"
    );
}
