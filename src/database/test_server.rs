//! A throwaway PostgreSQL for tests, from Debian's `postgresql` binaries
//! (`/usr/lib/postgresql/<version>/bin`; `scripts/test` installs them): `initdb` into a temporary
//! directory, listening on 127.0.0.1 only, on a free port, without syncing to disk (a crash of the machine is no test's concern; a stopped server keeps every commit).
//! `initdb` refuses to run as root, so as root the server runs as the `postgres` user.
//!
//! [`TestPostgres::shared`] starts one server per test binary, at first use, and each test takes
//! a database of its own with a random name ([`TestPostgres::create_database`]); a watcher
//! process stops the server and deletes its directory when the test binary exits.
//! [`TestPostgres::start`] starts a private one that a test may stop and start again; it is
//! stopped when dropped. [`TestPostgres::start_with_tls`] starts a private one that also takes
//! TLS connections, with the certificate and key a test made. [`TestPostgres::pause`] and
//! [`TestPostgres::resume`] hang a private one (SIGSTOP to every process of it) and let it go on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A PostgreSQL server started for tests.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run its commands as `postgres` (we are root).
    as_postgres: bool,
    /// Stop it when dropped (a private server).
    owned: bool,
    /// Takes TLS connections too (`ssl=on`, with `server.crt` and `server.key` in `dir`).
    tls: bool,
}

impl TestPostgres {
    /// The server every test of this binary shares, started on first use.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(|| Self::launch(false, None))
    }

    /// A server of the caller's own, stopped when dropped.
    pub fn start() -> Self {
        Self::launch(true, None)
    }

    /// A server of the caller's own that also takes TLS connections (plain ones still work, as
    /// [`Self::create_database`] uses), presenting `certificate` (PEM, the server's first, then
    /// any intermediates) made for `key` (PEM); stopped when dropped.
    pub fn start_with_tls(certificate: &str, key: &str) -> Self {
        Self::launch(true, Some((certificate, key)))
    }

    fn launch(owned: bool, tls: Option<(&str, &str)>) -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("pushjet-bridge-pg-")
            .tempdir()
            .expect("a temporary directory for PostgreSQL")
            .keep();
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&dir));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let server = Self {
            bin,
            dir,
            port,
            as_postgres,
            owned,
            tls: tls.is_some(),
        };
        if let Some((certificate, key)) = tls {
            server.write_private_file("server.crt", certificate);
            server.write_private_file("server.key", key);
        }
        let data = server.data_dir();
        run(server
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions", "-D"])
            .arg(&data));
        server.watch_for_exit();
        server.start_again();
        server
    }

    /// Starts the server (again, after [`Self::stop`]), on the same port; returns once it takes
    /// connections.
    pub fn start_again(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=400 -c shared_buffers=16MB",
            self.port,
            self.dir.display()
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.dir.join("server.crt").display(),
                self.dir.join("server.key").display()
            ));
        }
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-o", &options, "start"]));
    }

    /// Stops the server at once (connections are cut, as when a database host fails).
    pub fn stop(&self) {
        run(self.command("pg_ctl").arg("-D").arg(self.data_dir()).args([
            "-w",
            "-m",
            "immediate",
            "stop",
        ]));
    }

    /// Hangs the server without stopping it (as a host that stalls, or a full disk, does): its
    /// connections stay open and nothing answers. SIGSTOP to the postmaster first (it starts no
    /// more processes), then to each of its children (each runs in a session of its own, so
    /// not one process group).
    pub fn pause(&self) {
        let postmaster = self
            .postmaster_pid()
            .expect("a running server's postmaster.pid");
        signal("STOP", &[postmaster]);
        // A signal is delivered asynchronously: until the postmaster has stopped it may still
        // start a process, which would then be missed.
        wait_until_stopped(&[postmaster]);
        let children = children_of(postmaster);
        signal("STOP", &children);
        wait_until_stopped(&children);
    }

    /// Lets a server [`Self::pause`] hung go on: SIGCONT to its processes.
    pub fn resume(&self) {
        if let Some(postmaster) = self.postmaster_pid() {
            signal("CONT", &children_of(postmaster));
            signal("CONT", &[postmaster]);
        }
    }

    /// The postmaster's process id, the first line of `postmaster.pid` (none when stopped).
    fn postmaster_pid(&self) -> Option<u32> {
        let file = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        file.lines().next()?.trim().parse().ok()
    }

    /// Creates a database with a random name; its connection string.
    pub async fn create_database(&self) -> String {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect to the test PostgreSQL");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        drop(client);
        let _closed = driver.await;
        self.url(&name)
    }

    /// The connection string of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Writes `name` into the server's directory, readable by the server only (PostgreSQL
    /// refuses a key file others can read).
    fn write_private_file(&self, name: &str, contents: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("write a file for PostgreSQL");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("make a PostgreSQL file private");
        if self.as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&path));
        }
    }

    /// One of PostgreSQL's programs, run as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command.stdin(Stdio::null()).stdout(Stdio::null());
        command
    }

    /// Leaves a process behind that stops the server and deletes its directory once this test
    /// binary has exited, however it exits.
    fn watch_for_exit(&self) {
        let stop = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "stop"])
            .get_args()
            .map(|arg| shell_word(&arg.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let program = shell_word(&self.command("pg_ctl").get_program().to_string_lossy());
        let script = format!(
            "(tail --pid={pid} -f /dev/null; {program} {stop} >/dev/null 2>&1; rm -rf {dir}) &",
            pid = std::process::id(),
            dir = shell_word(&self.dir.to_string_lossy()),
        );
        // The shell leaves the watcher running in the background and exits at once.
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start the PostgreSQL watcher");
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.owned {
            // A server left hung by a failed test must run to be stopped.
            self.resume();
            let _stopped = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "stop"])
                .stderr(Stdio::null())
                .status();
            let _removed = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Debian's newest PostgreSQL binaries.
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "the tests need PostgreSQL's initdb under /usr/lib/postgresql/<version>/bin: \
             run scripts/test, or apt-get install postgresql"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn run(command: &mut Command) {
    let output = command
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The processes whose parent is `parent` (from `/proc/<pid>/stat`).
fn children_of(parent: u32) -> Vec<u32> {
    let processes = std::fs::read_dir("/proc").expect("/proc lists the processes");
    processes
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (name) state ppid …`: the name may hold spaces, so read after its `)`.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// Waits (up to 10 s) until each of `pids` is stopped (state `T`) or gone (or a zombie).
fn wait_until_stopped(pids: &[u32]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for pid in pids {
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            let running = state.as_deref().is_some_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .is_some_and(|state| !matches!(state, "T" | "t" | "Z" | "X"))
            });
            if !running || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Sends SIGSTOP or SIGCONT (`name`) to `pids`; one that has exited meanwhile is no error.
fn signal(name: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _sent = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// A word quoted for `sh`.
fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
