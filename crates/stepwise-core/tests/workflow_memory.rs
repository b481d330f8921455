//! How much memory a compiled workflow holds. The engine keeps every workflow it has compiled
//! (by content hash) for as long as it lives, and the app lives long: a workflow of many
//! steps must not cost many kilobytes per expression. This is its own test binary because it
//! counts the process's allocations.

// A counting allocator is the one way to see what a value holds; it only wraps the system's.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicIsize, Ordering};

use stepwise_core::workflow::parse_workflow;

/// The system allocator, counting the bytes held.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_compiled_workflow_holds_little_memory_per_expression() {
    const STEPS: usize = 1_000;
    let mut yaml =
        String::from("name: linear\nsteps:\n  - id: s0\n    type: set\n    values: { i: 0 }\n");
    for i in 1..STEPS {
        let p = i - 1;
        let _ = write!(
            yaml,
            "  - id: s{i}\n    type: set\n    needs: [s{p}]\n    values: {{ i: \"${{steps.s{p}.output.i + 1}}\", w: \"${{steps.s{p}.status}} then\" }}\n"
        );
    }
    // Once first, so that lazily built statics (the expression environment) are not counted.
    drop(parse_workflow(
        "warm.yaml",
        "name: w\nsteps:\n  - id: a\n    type: set\n    values: { x: \"${1 + 1}\" }\n",
    ));
    let before = HELD.load(Ordering::Relaxed);
    let workflow = parse_workflow("linear.yaml", &yaml).expect("a valid workflow");
    let held = HELD.load(Ordering::Relaxed) - before;
    let per_step = held / STEPS as isize;
    // Each step has two expressions. A compiled minijinja program reserves room for 256
    // instructions and their spans (about 13 KB) however small the expression, which is why
    // programs are not kept with the workflow.
    assert!(
        per_step < 4 * 1024,
        "a compiled workflow holds {per_step} bytes per step ({held} in all)"
    );
    drop(workflow);
}
