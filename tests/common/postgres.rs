//! A throwaway PostgreSQL cluster for one test: Debian's PostgreSQL 15 server binaries,
//! `initdb` in a temp dir (as the `postgres` user: `initdb` refuses root), password
//! authentication (scram-sha-256) for the role `jobwatch`, `pg_ctl start` on a free loopback
//! port, stopped and removed when dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian puts the server binaries.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The role's password (the tests pass it through the environment, never the config file).
pub const PASSWORD: &str = "pg-Secret-Password-7";

/// A running cluster.
pub struct Postgres {
    root: PathBuf,
    pub port: u16,
}

fn as_postgres(program: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"])
        .arg(Path::new(BIN).join(program));
    cmd
}

fn run(mut cmd: Command) {
    let out = cmd.output().expect("run a PostgreSQL binary");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// Initialises and starts a cluster with a database `jobwatch` owned by role `jobwatch`.
    pub fn start() -> Postgres {
        assert!(
            Path::new(BIN).join("initdb").exists(),
            "PostgreSQL 15 server binaries are missing in {BIN} (scripts/test.sh installs postgresql-15)"
        );
        let root = std::env::temp_dir().join(format!("jobwatch-pg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&root).unwrap();
        let pwfile = root.join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        let chown = |p: &Path| {
            run({
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(p);
                c
            })
        };
        chown(&root);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        run({
            let mut c = as_postgres("initdb");
            c.arg("-D")
                .arg(root.join("data"))
                .args([
                    "-U",
                    "jobwatch",
                    "--auth=scram-sha-256",
                    "--no-sync",
                    "--no-instructions",
                ])
                .arg(format!("--pwfile={}", pwfile.display()));
            c
        });
        let pg = Postgres { root, port };
        pg.start_again();
        pg
    }

    /// Starts the (stopped) cluster again on the same port.
    pub fn start_again(&self) {
        run({
            let mut c = as_postgres("pg_ctl");
            c.arg("-D")
                .arg(self.root.join("data"))
                .arg("-l")
                .arg(self.root.join("log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off -c max_connections=300",
                    self.port
                ))
                .arg("start");
            c
        });
    }

    /// Stops the cluster (fast: sessions are ended).
    pub fn stop(&self) {
        run({
            let mut c = as_postgres("pg_ctl");
            c.arg("-D")
                .arg(self.root.join("data"))
                .args(["-w", "-m", "fast", "stop"]);
            c
        });
    }

    /// Creates database `name` and returns its URL (no password in it).
    pub fn database(&self, name: &str) -> String {
        run({
            let mut c = Command::new(Path::new(BIN).join("createdb"));
            c.args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "jobwatch",
                name,
            ])
            .env("PGPASSWORD", PASSWORD);
            c
        });
        self.url(name)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://jobwatch@127.0.0.1:{}/{name}", self.port)
    }

    /// The store settings for database `name`.
    pub fn settings(&self, name: &str) -> jobwatch::store::PgSettings {
        jobwatch::store::PgSettings {
            url: self.url(name),
            password: Some(PASSWORD.to_owned().into()),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-w", "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
