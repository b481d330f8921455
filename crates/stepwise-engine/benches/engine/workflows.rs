//! The workflows the benchmarks run.

use std::fmt::Write as _;

fn chain(name: &str, n: usize, step: &str) -> String {
    chain_of(name, n, |_| step.to_string())
}

/// A chain of `n` steps `s0`, `s1`, … each needing the one before; step `i` is `step(i)`.
pub fn chain_of(name: &str, n: usize, step: impl Fn(usize) -> String) -> String {
    let mut yaml = format!("name: {name}\nsteps:\n");
    for i in 0..n {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("    needs: [s{}]\n", i - 1)
        };
        let _ = write!(yaml, "  - id: s{i}\n{}{needs}", step(i));
    }
    yaml
}

pub fn read_chain(n: usize) -> String {
    chain("reads", n, "    type: read_file\n    path: input.txt\n")
}

pub fn large_content() -> String {
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n".repeat(1600)
}

pub fn large_read_chain(n: usize) -> String {
    chain(
        "large-reads",
        n,
        "    type: read_file\n    path: large.txt\n",
    )
}

pub fn command_chain(n: usize) -> String {
    chain(
        "commands",
        n,
        "    type: run_command\n    command: [\"true\"]\n",
    )
}

pub fn linear_sets(n: usize) -> String {
    let mut yaml =
        String::from("name: linear\nsteps:\n  - id: s0\n    type: set\n    values: { i: 0 }\n");
    for i in 1..n {
        let _ = write!(
            yaml,
            "  - id: s{i}\n    type: set\n    needs: [s{p}]\n    values: {{ i: \"${{steps.s{p}.output.i + 1}}\" }}\n",
            p = i - 1
        );
    }
    yaml
}

pub fn fan_out_reads(n: usize) -> String {
    let mut yaml = String::from("name: fan-reads\nsteps:\n");
    for i in 0..n {
        let _ = write!(
            yaml,
            "  - id: b{i}\n    type: read_file\n    path: input.txt\n"
        );
    }
    join(yaml, n)
}

pub fn fan_out_sets(n: usize) -> String {
    let mut yaml =
        String::from("name: fan\nsteps:\n  - id: root\n    type: set\n    values: { x: 1 }\n");
    for i in 0..n {
        let _ = write!(
            yaml,
            "  - id: b{i}\n    type: set\n    needs: [root]\n    values: {{ v: \"${{steps.root.output.x + {i}}}\" }}\n"
        );
    }
    join(yaml, n)
}

fn join(mut yaml: String, n: usize) -> String {
    let needs: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
    let _ = write!(
        yaml,
        "  - id: join\n    type: set\n    needs: [{}]\n    values: {{ done: true }}\n",
        needs.join(", ")
    );
    yaml
}
