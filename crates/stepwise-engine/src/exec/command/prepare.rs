//! A command made ready to start: its environment, working directory and command line
//! checked, its supervisor's request prepared, and the files its output is saved in. Nothing
//! here is seen by another process until the command is started.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cap_std::fs::OpenOptionsExt;
use nix::errno::Errno;
use stepwise_core::operation::{CommandLine, CommandRequest, OperationError, OperationErrorKind};

use super::super::supervisor::{self, Launch, Supervised};
use crate::sandbox::{SandboxError, Workspace};

/// Variables a command gets from the engine's environment without the workflow naming them:
/// enough for programs to find each other and behave, nothing that tends to hold secrets.
pub(super) const ENV_ALLOWLIST: &[&str] =
    &["PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER"];

/// A command on its way to its supervisor.
pub(super) enum Starting {
    /// Not sent yet.
    Prepared(PreparedCommand),
    /// Sent, at `at`, by the thread that committed its start.
    Started {
        shown: String,
        program: OsString,
        child: Supervised,
        at: Instant,
    },
}

/// A command checked and ready to go to a supervisor.
pub(super) struct PreparedCommand {
    pub(super) shown: String,
    pub(super) program: OsString,
    pub(super) supervisor: supervisor::Prepared,
}

impl PreparedCommand {
    /// Starts it now if a kept supervisor can take it at once (see
    /// [`supervisor::Prepared::try_start_at_once`]): this never blocks.
    pub(super) fn try_start_at_once(self) -> Starting {
        let PreparedCommand {
            shown,
            program,
            supervisor,
        } = self;
        let at = Instant::now();
        match supervisor.try_start_at_once() {
            Ok(child) => Starting::Started {
                shown,
                program,
                child,
                at,
            },
            Err(supervisor) => Starting::Prepared(PreparedCommand {
                shown,
                program,
                supervisor,
            }),
        }
    }
}

/// Checks the working directory and the command line, and prepares the supervisor's request:
/// nothing another process can see.
pub(super) fn prepare(
    ws: &Workspace,
    req: &CommandRequest,
    env: BTreeMap<OsString, OsString>,
    lock: Option<&Path>,
) -> Result<PreparedCommand, OperationError> {
    let cwd = working_dir(ws, &req.cwd)?;
    let (program, args) = program_and_args(&req.command)?;
    let env: Vec<(OsString, OsString)> = env.into_iter().collect();
    let supervisor = supervisor::prepare(&Launch {
        program: program.as_ref(),
        args: &args,
        env: &env,
        cwd: &cwd,
        lock,
        stdin: req.stdin.is_some(),
    })
    .map_err(|e| spawn_error(&program.to_string_lossy(), &e))?;
    Ok(PreparedCommand {
        shown: req.command.display(),
        program,
        supervisor,
    })
}

/// The files a command's whole output is streamed to.
pub(super) struct OutputFiles {
    pub(super) stdout_file: String,
    pub(super) stderr_file: String,
    pub(super) stdout: tokio::fs::File,
    pub(super) stderr: tokio::fs::File,
}

/// Creates `<stem>.stdout` and `<stem>.stderr` in the workspace (through its capability
/// handle: the files cannot land outside it), replacing files of the same name: what is there
/// is unlinked and a new file created (`O_EXCL`, `O_NOFOLLOW`), so that a link planted there,
/// symbolic or hard, by an earlier command is never written through.
pub(super) fn open_output_files(ws: &Workspace, stem: &str) -> Result<OutputFiles, OperationError> {
    let failed = |e: std::io::Error| {
        OperationError::new(
            OperationErrorKind::Io,
            format!("could not create the files to save the output in (`{stem}.*`): {e}"),
        )
    };
    let stem_path = Path::new(stem);
    if let Some(parent) = stem_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        ws.dir().create_dir_all(parent).map_err(failed)?;
    }
    let open = |extension: &str| -> Result<(String, tokio::fs::File), OperationError> {
        let rel = format!("{stem}.{extension}");
        match ws.dir().remove_file(&rel) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        let mut options = cap_std::fs::OpenOptions::new();
        options
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW);
        let file = ws.dir().open_with(&rel, &options).map_err(failed)?;
        Ok((rel, tokio::fs::File::from_std(file.into_std())))
    };
    let (stdout_file, stdout) = open("stdout")?;
    let (stderr_file, stderr) = open("stderr")?;
    Ok(OutputFiles {
        stdout_file,
        stderr_file,
        stdout,
        stderr,
    })
}

/// The environment a command gets: the allowlist, then the names the workflow passes
/// through, then its explicit values (which win). `host` looks up the engine's environment.
pub(super) fn child_env(
    req: &CommandRequest,
    host: impl Fn(&str) -> Option<OsString>,
) -> BTreeMap<OsString, OsString> {
    let mut env = BTreeMap::new();
    for name in ENV_ALLOWLIST
        .iter()
        .copied()
        .chain(req.pass_env.iter().map(String::as_str))
    {
        if let Some(value) = host(name) {
            env.insert(OsString::from(name), value);
        }
    }
    for (name, value) in &req.env {
        env.insert(OsString::from(name), OsString::from(value));
    }
    env
}

/// The command's working directory: it must exist inside the workspace and be a directory.
pub(super) fn working_dir(ws: &Workspace, cwd: &str) -> Result<PathBuf, OperationError> {
    let path = ws.resolve(cwd)?;
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(path),
        Ok(_) => Err(SandboxError::NotADirectory(path).into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(OperationError::new(
            OperationErrorKind::Sandbox,
            format!("working directory `{cwd}` does not exist in the workspace"),
        )),
        Err(source) => Err(SandboxError::Io {
            path: cwd.to_string(),
            source,
        }
        .into()),
    }
}

/// The program and its arguments: argv as it is, a shell line through `sh -c`.
pub(super) fn program_and_args(
    line: &CommandLine,
) -> Result<(OsString, Vec<OsString>), OperationError> {
    match line {
        CommandLine::Argv(argv) => match argv.split_first() {
            Some((program, args)) => Ok((
                OsString::from(program),
                args.iter().map(OsString::from).collect(),
            )),
            None => Err(OperationError::new(
                OperationErrorKind::Spawn,
                "command has an empty argv; there is no program to start",
            )),
        },
        CommandLine::Shell(script) => Ok((
            OsString::from("sh"),
            vec![OsString::from("-c"), OsString::from(script)],
        )),
    }
}

pub(super) fn spawn_error(program: &str, err: &io::Error) -> OperationError {
    // `Errno::desc` is the bare reason, without io::Error's "(os error 2)" suffix.
    let reason = match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    };
    OperationError::new(
        OperationErrorKind::Spawn,
        format!("could not start `{program}`: {reason}"),
    )
}
