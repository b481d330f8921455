//! Command patterns, matched word by word.
//!
//! A pattern is split into words as a shell would (quotes group). Each pattern word is a glob
//! over exactly one word of the command (`*` inside a word never reaches into the next one),
//! except a last word that is `*` alone, which matches all the remaining words, none included.
//! So `python3 -m unittest *` matches `python3 -m unittest` and `python3 -m unittest -v`, but
//! not `python3 -m unittest_evil`; `echo *` matches `echo` with any arguments, and the pattern
//! `*` alone matches any command.
//!
//! The first word is the program. For `allow` rules it must be written as the command writes
//! it (an `allow echo *` does not vouch for `./bin/echo`); `deny` and `ask` rules also match the
//! program's name without its directory, so `deny rm *` catches `/bin/rm -rf x`.

use globset::{GlobBuilder, GlobMatcher};

use super::shell::{basename, split_shell};

/// A compiled command pattern.
#[derive(Debug)]
pub(super) struct CommandPattern {
    words: Vec<GlobMatcher>,
    /// The last pattern word was `*` alone: any number of further words.
    rest: bool,
}

impl CommandPattern {
    pub(super) fn compile(pattern: &str) -> Result<CommandPattern, String> {
        let mut words: Vec<String> = split_shell(pattern)
            .into_iter()
            .flat_map(|segment| {
                segment
                    .assignments
                    .into_iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .chain(segment.words)
            })
            .collect();
        if words.is_empty() {
            return Err("the pattern is empty".into());
        }
        let rest = words.last().is_some_and(|w| w == "*");
        if rest {
            words.pop();
        }
        let words = words
            .iter()
            .map(|word| {
                GlobBuilder::new(word)
                    .literal_separator(false)
                    .build()
                    .map(|g| g.compile_matcher())
                    .map_err(|e| e.kind().to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(CommandPattern { words, rest })
    }

    /// Whether `command` (its words, program first) matches. With `by_name`, the program also
    /// matches by its name without a directory.
    pub(super) fn matches(&self, command: &[String], by_name: bool) -> bool {
        if command.len() < self.words.len() || (!self.rest && command.len() != self.words.len()) {
            return false;
        }
        self.words
            .iter()
            .zip(command)
            .enumerate()
            .all(|(i, (glob, word))| {
                glob.is_match(word) || (i == 0 && by_name && glob.is_match(basename(word)))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn matches(pattern: &str, command: &str) -> bool {
        CommandPattern::compile(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .matches(&words(command), false)
    }

    #[test]
    fn patterns_match_word_by_word() {
        assert!(matches("python3 -m unittest *", "python3 -m unittest"));
        assert!(matches("python3 -m unittest *", "python3 -m unittest -v x"));
        assert!(!matches(
            "python3 -m unittest *",
            "python3 -m unittest_evil"
        ));
        assert!(matches("python3 -m unittest*", "python3 -m unittest_evil"));
        assert!(!matches("cargo test", "cargo test --workspace"));
        assert!(matches("cargo test", "cargo test"));
        assert!(matches("git log --oneline -n *", "git log --oneline -n 5"));
        assert!(!matches("echo *", "ls"));
        assert!(matches("wc -l *.txt", "wc -l notes.txt"));
        assert!(matches("*", "ls"));
        assert!(matches("*", "git commit -m x"));
        assert!(!matches("wc -l *.txt", "wc -l a.txt b.txt"));
    }

    #[test]
    fn the_program_matches_by_name_only_where_asked() {
        let rm = CommandPattern::compile("rm *").unwrap();
        assert!(rm.matches(&words("/bin/rm -rf x"), true));
        assert!(!rm.matches(&words("/bin/rm -rf x"), false));
        assert!(!rm.matches(&words("./rmdir x"), true));
    }
}
