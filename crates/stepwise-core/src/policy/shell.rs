//! What a command line runs, as far as policy can tell without being a shell: its simple
//! commands (segments), each as words, with the programs it may hide behind wrappers (`sh -c`,
//! `env`, `xargs`, `nohup`, …).
//!
//! This is not a shell parser, so it errs towards asking: a segment whose meaning it cannot pin
//! down (redirections, command or process substitution, grouping, comments, line
//! continuations, an unfinished quote) is *opaque*, and no `allow` rule vouches for it.

use crate::operation::CommandLine;

/// One simple command of a command line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Segment {
    /// The words, unquoted; `NAME=value` assignments that lead it are in `assignments`.
    pub(super) words: Vec<String>,
    /// Variables the segment sets for its command (`PATH=bin echo hi`).
    pub(super) assignments: Vec<(String, String)>,
    pub(super) opaque: bool,
}

impl Segment {
    /// The segment and every command it runs through a wrapper, as word lists: what `deny`
    /// and `ask` rules are matched against ("wherever the command can be known").
    pub(super) fn commands_within(&self) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        unwrap(&self.words, &mut found, 0);
        found
    }
}

/// How deep `sh -c '…'` inside `sh -c '…'` is followed.
const MAX_NESTING: usize = 4;

/// Splits a command into its simple commands. An argv list runs exactly one program; if that
/// program is a shell given `-c SCRIPT`, the script's commands are what it runs.
pub(super) fn segments(command: &CommandLine) -> Vec<Segment> {
    match command {
        CommandLine::Argv(argv) => vec![Segment {
            words: argv.clone(),
            assignments: Vec::new(),
            opaque: false,
        }],
        CommandLine::Shell(script) => split_shell(script),
    }
}

fn unwrap(words: &[String], found: &mut Vec<Vec<String>>, depth: usize) {
    if words.is_empty() || depth > MAX_NESTING {
        return;
    }
    found.push(words.to_vec());
    let program = basename(&words[0]);
    let rest = &words[1..];
    // A shell running a script: the script's commands.
    if matches!(program, "sh" | "bash" | "dash" | "zsh" | "ksh")
        && let Some(i) = rest.iter().position(|w| w == "-c" || w.starts_with("-c"))
        && let Some(script) = rest.get(i + 1)
    {
        for segment in split_shell(script) {
            unwrap(&segment.words, found, depth + 1);
        }
        return;
    }
    // Wrappers that run the command after them, past their own options and arguments. Which
    // of their words is an option's argument cannot be known for every wrapper and version, so
    // the command is looked for at each of the first few words that are not options: a `deny`
    // may then match an argument that only looks like a command, which errs on the safe side.
    let starts: Vec<usize> = match program {
        "env" => rest
            .iter()
            .position(|w| !w.starts_with('-') && !is_assignment(w))
            .into_iter()
            .collect(),
        "nohup" | "command" | "exec" | "builtin" | "time" | "then" | "do" | "else" | "elif"
        | "if" | "while" | "until" | "!" => vec![0],
        "nice" | "ionice" | "stdbuf" | "sudo" | "doas" | "xargs" | "chrt" | "taskset"
        | "setsid" | "unbuffer" | "timeout" => rest
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.starts_with('-'))
            .map(|(i, _)| i)
            .take(WRAPPER_LOOKAHEAD)
            .collect(),
        _ => Vec::new(),
    };
    for start in starts {
        unwrap(&rest[start..], found, depth + 1);
    }
}

/// How many of a wrapper's non-option words may be where the wrapped command starts.
const WRAPPER_LOOKAHEAD: usize = 3;

/// The program name without its directory: `/bin/rm` → `rm`.
pub(super) fn basename(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// Splits a shell line at `;`, `&&`, `||`, `|`, `&` and newlines, outside quotes, into
/// segments of words.
pub(super) fn split_shell(script: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    // Whether the current word has begun (so that `''` is an empty word).
    let mut in_word = false;
    let mut opaque = false;
    let mut quote: Option<char> = None;
    let mut chars = script.chars().peekable();
    let end_word = |words: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    let mut finish = |words: &mut Vec<String>, opaque: &mut bool| {
        if !words.is_empty() {
            segments.push(segment(std::mem::take(words), *opaque));
        }
        *opaque = false;
    };
    while let Some(c) = chars.next() {
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                } else {
                    word.push(c);
                }
            }
            Some(_) => match c {
                '"' => quote = None,
                '\\' => match chars.next() {
                    Some(next @ ('"' | '\\' | '$' | '`')) => word.push(next),
                    Some(next) => {
                        word.push('\\');
                        word.push(next);
                    }
                    None => opaque = true,
                },
                // Inside double quotes, `$(` and backticks still run commands, and `$NAME`
                // is expanded to what policy cannot see.
                '`' | '$' => {
                    opaque = true;
                    word.push(c);
                }
                _ => word.push(c),
            },
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' => {
                    // An escaped character (or a line continuation) outside quotes.
                    opaque = true;
                    in_word = true;
                    if let Some(next) = chars.next() {
                        word.push(next);
                    }
                }
                '#' if !in_word => {
                    // A comment hides the rest of the line from us but not from the shell.
                    opaque = true;
                    in_word = true;
                    word.push(c);
                }
                '<' | '>' | '(' | ')' | '{' | '}' | '`' | '$' | '*' | '?' | '[' | '~' => {
                    // Redirections, grouping, substitutions, expansions and globs: what runs
                    // depends on more than the words.
                    opaque = true;
                    in_word = true;
                    word.push(c);
                }
                ';' | '\n' | '|' | '&' => {
                    if matches!(chars.peek(), Some('|') | Some('&')) {
                        chars.next();
                    }
                    end_word(&mut words, &mut word, &mut in_word);
                    finish(&mut words, &mut opaque);
                }
                c if c.is_whitespace() => end_word(&mut words, &mut word, &mut in_word),
                _ => {
                    in_word = true;
                    word.push(c);
                }
            },
        }
    }
    if quote.is_some() {
        opaque = true;
    }
    end_word(&mut words, &mut word, &mut in_word);
    finish(&mut words, &mut opaque);
    segments
}

/// A segment from its words. Leading `NAME=value` words set the environment of the command
/// they precede: they are its assignments. A segment of assignments alone sets shell
/// variables; those count only if they change how later commands are found or run
/// (`PATH=bin; echo hi`), see [`changes_what_runs`].
fn segment(mut words: Vec<String>, opaque: bool) -> Segment {
    let leading = words.iter().take_while(|w| is_assignment(w)).count();
    let standalone = leading == words.len();
    let assignments = words
        .drain(..leading)
        .filter_map(|w| {
            w.split_once('=')
                .map(|(name, value)| (name.to_string(), value.to_string()))
        })
        .filter(|(name, _)| !standalone || changes_what_runs(name))
        .collect();
    Segment {
        words,
        assignments,
        opaque,
    }
}

/// Variables that change which program runs or what it loads or executes on its own: the
/// search paths, the dynamic loader's, interpreters' start-up hooks and the shell's own.
pub(super) fn changes_what_runs(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "CDPATH",
        "SHELLOPTS",
        "BASHOPTS",
        "GLOBIGNORE",
        "PS4",
        "PROMPT_COMMAND",
        "HOME",
        "ZDOTDIR",
        "CLASSPATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "GCONV_PATH",
        "PERLLIB",
        "GEM_HOME",
        "GEM_PATH",
        "BUNDLE_GEMFILE",
        "NODE_OPTIONS",
        "NODE_PATH",
    ];
    const PREFIXES: &[&str] = &[
        "LD_",
        "DYLD_",
        "PYTHON",
        "PERL5",
        "RUBY",
        "NODE_",
        "GIT_",
        "LUA_",
        "BASH_FUNC_",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(script: &str) -> Vec<Vec<String>> {
        split_shell(script).into_iter().map(|s| s.words).collect()
    }

    #[test]
    fn splits_segments_and_unquotes_words() {
        assert_eq!(
            words("cargo test -q && echo 'a b' \"c\"; ls|wc -l"),
            vec![
                vec!["cargo", "test", "-q"],
                vec!["echo", "a b", "c"],
                vec!["ls"],
                vec!["wc", "-l"],
            ]
        );
        let split = split_shell("PATH=bin:/bin echo hi");
        assert_eq!(split[0].words, vec!["echo", "hi"]);
        assert_eq!(
            split[0].assignments,
            vec![("PATH".to_string(), "bin:/bin".to_string())]
        );
        // Standalone: a shell variable, counted only if it changes what runs.
        let split = split_shell("n=1; PATH=bin; echo $n");
        assert!(split[0].assignments.is_empty());
        assert_eq!(split[1].assignments.len(), 1);
    }

    #[test]
    fn marks_what_it_cannot_pin_down_as_opaque() {
        for script in [
            "echo $(rm x)",
            "echo `id`",
            "cat < secret",
            "echo hi > out",
            "echo \"$HOME\"",
            "ls *.rs",
            "(cd x; ls)",
            "echo 'unfinished",
            "echo hi # rm -rf /",
        ] {
            assert!(
                split_shell(script).iter().any(|s| s.opaque),
                "{script} should be opaque"
            );
        }
        assert!(!split_shell("echo 'a $b * > c'")[0].opaque);
    }

    #[test]
    fn finds_commands_behind_shells_and_wrappers() {
        let within = |line: &str| -> Vec<String> {
            split_shell(line)
                .iter()
                .flat_map(Segment::commands_within)
                .map(|w| w.join(" "))
                .collect()
        };
        let found = within("sh -c 'rm -rf x'");
        assert!(found.contains(&"rm -rf x".to_string()), "{found:?}");
        let found = within("env -i FOO=1 /bin/rm x");
        assert!(found.contains(&"/bin/rm x".to_string()), "{found:?}");
        let found = within("timeout -s 9 10 nohup rm x");
        assert!(found.contains(&"rm x".to_string()), "{found:?}");
        let found = within("if true; then rm x; fi");
        assert!(found.contains(&"rm x".to_string()), "{found:?}");
        let found = within("find . | xargs -0 rm");
        assert!(found.contains(&"rm".to_string()), "{found:?}");
        let nested = segments(&CommandLine::Argv(vec![
            "bash".into(),
            "-c".into(),
            "sh -c \"rm -f y\"".into(),
        ]));
        let found: Vec<String> = nested[0]
            .commands_within()
            .iter()
            .map(|w| w.join(" "))
            .collect();
        assert!(found.contains(&"rm -f y".to_string()), "{found:?}");
    }
}
