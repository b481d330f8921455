//! An edit's hunks: the proposed change cut into the pieces its unified diff shows (each
//! `@@` block, numbered from 1), so that a person can apply some and reject others.
//!
//! The hunks are those of [`super::unified_diff`] (three lines of context), so the numbers a
//! person reads in a proposal's diff are the numbers they give back.

use std::collections::BTreeSet;

use similar::{DiffOp, DiffTag, TextDiff};

use crate::event::{HunkReview, Proposal};

/// The lines of context around each hunk, as in every diff Stepwise shows.
const CONTEXT_LINES: usize = 3;

/// One hunk of an edit, as a person is shown it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hunk {
    /// From 1, in file order.
    pub number: u32,
    /// Its `@@ -a,b +c,d @@` line and the lines under it.
    pub diff: String,
}

/// The hunks that change `before` (`None`: a new file) into `after`.
pub fn edit_hunks(before: Option<&str>, after: &str) -> Vec<Hunk> {
    let diff = TextDiff::from_lines(before.unwrap_or(""), after);
    // Cut by the diff's own hunks (the grouping `apply_hunks` uses), not by its text: a line
    // ending in a lone `\r` is printed without a `\n`, gluing the next `@@` onto it.
    let mut unified = diff.unified_diff();
    unified.context_radius(CONTEXT_LINES);
    unified
        .iter_hunks()
        .enumerate()
        .map(|(i, hunk)| Hunk {
            number: i as u32 + 1,
            diff: hunk.to_string(),
        })
        .collect()
}

/// `before` with only the hunks of the change to `after` not in `rejected` applied.
/// Refuses a hunk number the change does not have.
pub fn apply_hunks(
    before: Option<&str>,
    after: &str,
    rejected: &BTreeSet<u32>,
) -> Result<String, String> {
    let old = before.unwrap_or("");
    let diff = TextDiff::from_lines(old, after);
    // Each change (an op that is not `Equal`) belongs to the hunk its group makes.
    let groups = diff.grouped_ops(CONTEXT_LINES);
    let count = groups.len() as u32;
    if let Some(&wrong) = rejected.iter().find(|&&n| n == 0 || n > count) {
        return Err(match count {
            0 => "the edit changes nothing: it has no hunks".to_string(),
            1 => format!("the edit has one hunk; there is no hunk {wrong}"),
            n => format!("the edit has hunks 1 to {n}; there is no hunk {wrong}"),
        });
    }
    let mut hunk_of_change = std::collections::BTreeMap::new();
    for (i, group) in groups.iter().enumerate() {
        for op in group.iter().filter(|op| op.tag() != DiffTag::Equal) {
            hunk_of_change.insert(change_at(op), i as u32 + 1);
        }
    }
    let old_lines = diff.old_slices();
    let new_lines = diff.new_slices();
    let mut applied = String::with_capacity(after.len().max(old.len()));
    for op in diff.ops() {
        let keep_old = match op {
            DiffOp::Equal { .. } => true,
            _ => hunk_of_change
                .get(&change_at(op))
                .is_none_or(|hunk| rejected.contains(hunk)),
        };
        let lines = if keep_old {
            &old_lines[op.old_range()]
        } else {
            &new_lines[op.new_range()]
        };
        lines.iter().for_each(|line| applied.push_str(line));
    }
    Ok(applied)
}

/// What a person's review of an edit's hunks comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum HunkOutcome {
    /// Some hunks are applied: `proposal` is the edit with only those, to approve.
    Apply {
        proposal: Box<Proposal>,
        review: HunkReview,
    },
    /// Every hunk was rejected: the edit is rejected, for this reason.
    RejectAll { reason: String },
}

/// The edit `proposal` (made against `base`, the file then; `None`: it did not exist) with
/// the hunks numbered in `rejected` left out, for `reason`.
pub fn review_hunks(
    proposal: &Proposal,
    base: Option<&str>,
    rejected: &[u32],
    reason: Option<&str>,
) -> Result<HunkOutcome, String> {
    let Proposal::EditFile {
        path,
        base_hash,
        content,
        ..
    } = proposal
    else {
        return Err(format!(
            "only an edit has hunks; this is a {} proposal",
            proposal.kind_name()
        ));
    };
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let rejected: BTreeSet<u32> = rejected.iter().copied().collect();
    let applied_content = apply_hunks(base, content, &rejected)?;
    let count = edit_hunks(base, content).len() as u32;
    let applied: Vec<u32> = (1..=count).filter(|n| !rejected.contains(n)).collect();
    let rejected: Vec<u32> = rejected.into_iter().collect();
    if applied.is_empty() {
        let why = reason.unwrap_or("no reason given");
        return Ok(HunkOutcome::RejectAll {
            reason: format!("every hunk of the edit was rejected: {why}"),
        });
    }
    Ok(HunkOutcome::Apply {
        proposal: Box::new(Proposal::EditFile {
            diff: super::unified_diff(path, base, &applied_content),
            path: path.clone(),
            base_hash: base_hash.clone(),
            content: applied_content,
        }),
        review: HunkReview {
            applied,
            rejected,
            reason: reason.map(str::to_string),
        },
    })
}

impl HunkReview {
    /// What was done with the hunks, in one sentence (for a model, a step's output, a log).
    pub fn told(&self) -> String {
        let (applied, rejected) = (&self.applied, &self.rejected);
        let mut said = format!(
            "{} {} applied",
            plural(applied.len(), "hunk"),
            hunk_list(applied)
        );
        if !rejected.is_empty() {
            said.push_str(&format!(
                "; {} {} rejected",
                plural(rejected.len(), "hunk"),
                hunk_list(rejected)
            ));
            if let Some(reason) = &self.reason {
                said.push_str(&format!(" ({reason})"));
            }
        }
        said
    }
}

fn plural(n: usize, word: &str) -> String {
    match n {
        1 => word.to_string(),
        _ => format!("{word}s"),
    }
}

/// Where a change starts in both texts: names it among the ops of one diff.
fn change_at(op: &DiffOp) -> (usize, usize) {
    (op.old_range().start, op.new_range().start)
}

/// Hunk numbers as people read them: `1`, `1 and 3`, `1, 2 and 4`.
pub fn hunk_list(numbers: &[u32]) -> String {
    let words: Vec<String> = numbers.iter().map(u32::to_string).collect();
    match words.split_last() {
        None => "none".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\nr\ns\nt\n";

    fn three_changes() -> String {
        BEFORE
            .replace("b\n", "B\n")
            .replace("j\n", "J\nJJ\n")
            .replace("s\n", "")
    }

    #[test]
    fn an_edit_is_cut_into_the_hunks_its_diff_shows() {
        let after = three_changes();
        let hunks = edit_hunks(Some(BEFORE), &after);
        assert_eq!(hunks.len(), 3, "{hunks:#?}");
        assert!(
            hunks[0].diff.starts_with("@@ -1,5 +1,5 @@"),
            "{}",
            hunks[0].diff
        );
        assert!(hunks[1].diff.contains("+JJ\n"));
        assert!(hunks[2].diff.contains("-s\n"));
        let shown = super::super::unified_diff("f.txt", Some(BEFORE), &after);
        assert_eq!(
            shown.matches("\n@@").count(),
            3,
            "the same hunks as the diff"
        );
    }

    #[test]
    fn rejected_hunks_are_left_as_they_were() {
        let after = three_changes();
        let applied = apply_hunks(Some(BEFORE), &after, &BTreeSet::from([2])).unwrap();
        assert_eq!(applied, BEFORE.replace("b\n", "B\n").replace("s\n", ""));
        let none = apply_hunks(Some(BEFORE), &after, &BTreeSet::from([1, 2, 3])).unwrap();
        assert_eq!(none, BEFORE);
        let all = apply_hunks(Some(BEFORE), &after, &BTreeSet::new()).unwrap();
        assert_eq!(all, after);
    }

    #[test]
    fn a_hunk_the_edit_does_not_have_is_refused() {
        let after = three_changes();
        let error = apply_hunks(Some(BEFORE), &after, &BTreeSet::from([4])).unwrap_err();
        assert!(
            error.contains("hunks 1 to 3; there is no hunk 4"),
            "{error}"
        );
        assert!(apply_hunks(Some(BEFORE), &after, &BTreeSet::from([0])).is_err());
    }

    #[test]
    fn a_new_file_is_one_hunk_and_lines_without_a_newline_survive() {
        assert_eq!(edit_hunks(None, "x\ny").len(), 1);
        let before = "1\n2\n3\n4\n5\n6\n7\n8\n9\nlast";
        let after = "one\n2\n3\n4\n5\n6\n7\n8\n9\nLAST";
        assert_eq!(edit_hunks(Some(before), after).len(), 2);
        let applied = apply_hunks(Some(before), after, &BTreeSet::from([1])).unwrap();
        assert_eq!(applied, "1\n2\n3\n4\n5\n6\n7\n8\n9\nLAST");
    }

    #[test]
    fn a_review_applies_the_accepted_hunks_and_says_which() {
        let after = three_changes();
        let proposal = Proposal::EditFile {
            path: "f.txt".into(),
            base_hash: None,
            content: after.clone(),
            diff: super::super::unified_diff("f.txt", Some(BEFORE), &after),
        };
        let outcome = review_hunks(&proposal, Some(BEFORE), &[2], Some(" too much ")).unwrap();
        let HunkOutcome::Apply { proposal, review } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(review.applied, vec![1, 3]);
        assert_eq!(review.rejected, vec![2]);
        assert_eq!(
            review.told(),
            "hunks 1 and 3 applied; hunk 2 rejected (too much)"
        );
        let Proposal::EditFile { content, diff, .. } = *proposal else {
            panic!()
        };
        assert!(!content.contains("JJ") && content.contains("B\n"));
        assert!(!diff.contains("JJ"), "{diff}");
        let all = review_hunks(&proposal_of(&after), Some(BEFORE), &[1, 2, 3], None).unwrap();
        assert_eq!(
            all,
            HunkOutcome::RejectAll {
                reason: "every hunk of the edit was rejected: no reason given".into()
            }
        );
    }

    fn proposal_of(content: &str) -> Proposal {
        Proposal::EditFile {
            path: "f.txt".into(),
            base_hash: None,
            content: content.into(),
            diff: String::new(),
        }
    }

    #[test]
    fn lines_ending_in_a_lone_cr_are_counted_as_apply_sees_them() {
        let before = "1\r2\r3\r4\r5\r6\r7\r8\r9\r10\r";
        let after = "one\r2\r3\r4\r5\r6\r7\r8\r9\rten\r";
        let hunks = edit_hunks(Some(before), after);
        assert_eq!(hunks.len(), 2, "{hunks:?}");
        let applied = apply_hunks(Some(before), after, &BTreeSet::from([2])).unwrap();
        assert_eq!(applied, before.replacen("1\r", "one\r", 1));
    }

    #[test]
    fn hunk_numbers_read_as_a_list() {
        assert_eq!(hunk_list(&[2]), "2");
        assert_eq!(hunk_list(&[1, 3]), "1 and 3");
        assert_eq!(hunk_list(&[1, 2, 4]), "1, 2 and 4");
    }
}
