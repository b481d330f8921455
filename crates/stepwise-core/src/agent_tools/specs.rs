//! What the model is told of each built-in tool: its name, what it does, and its arguments as
//! a JSON Schema.

use serde_json::json;

use crate::llm::ToolSpec;

/// What the model is told of a built-in tool; `None` for a name that is not one.
pub fn tool_spec(name: &str) -> Option<ToolSpec> {
    let (description, parameters) = match name {
        "read_file" => (
            "Read a UTF-8 text file of the workspace, by its path relative to the workspace. \
             Returns its content, or the lines from `offset` (1 is the first), at most `limit` \
             of them. Long results are cut, with a note saying so.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The file's path, relative to the workspace."},
                    "offset": {"type": "integer", "minimum": 1, "description": "The first line to return (1 is the first)."},
                    "limit": {"type": "integer", "minimum": 1, "description": "The most lines to return."}
                },
                "required": ["path"]
            }),
        ),
        "list_files" => (
            "List the files of the workspace, or of one of its directories, as `.gitignore` \
             files leave them (hidden files left out), with paths relative to the workspace; \
             with `glob` (e.g. `**/*.py`; `*` stays within a directory), only those whose path \
             from the workspace's root matches it. At most 1000 paths, with a note when there \
             were more.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "A directory of the workspace (default: all of it)."},
                    "glob": {"type": "string", "description": "A glob the paths must match, e.g. `src/**/*.rs`."}
                }
            }),
        ),
        "search" => (
            "Search the text files of the workspace (as `list_files` sees them) for lines \
             matching a regular expression (Rust `regex` syntax). Returns `path:line: text` for \
             each, at most 200 lines, with a note when there were more.",
            json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "The regular expression, e.g. `fn\\s+main`."},
                    "path": {"type": "string", "description": "A directory of the workspace to search (default: all of it)."},
                    "glob": {"type": "string", "description": "Only files whose path matches this glob, e.g. `**/*.py`."}
                },
                "required": ["pattern"]
            }),
        ),
        "edit_file" => (
            "Change a text file of the workspace by replacing `old_text`, which must occur \
             exactly once in it, with `new_text`. Include enough surrounding lines to make \
             `old_text` unique. A person may have to approve the change first; if they reject \
             it, you are told why.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The file's path, relative to the workspace."},
                    "old_text": {"type": "string", "description": "The exact text to replace, occurring once in the file."},
                    "new_text": {"type": "string", "description": "The text to put in its place."}
                },
                "required": ["path", "old_text", "new_text"]
            }),
        ),
        "write_file" => (
            "Create a text file of the workspace, or replace all of its content. A person may \
             have to approve it first; if they reject it, you are told why.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The file's path, relative to the workspace."},
                    "content": {"type": "string", "description": "The file's whole new content."}
                },
                "required": ["path", "content"]
            }),
        ),
        "run_command" => (
            "Run a program in the workspace, without a shell: `argv` is the program and its \
             arguments, `cwd` a directory of the workspace (default: its root). The workspace's \
             policy decides whether it runs, is refused, or waits for a person's approval. \
             Returns the exit code and what it printed (cut at 32 KiB, with a note). It is \
             killed after 5 minutes.",
            json!({
                "type": "object",
                "properties": {
                    "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "The program and its arguments, e.g. [\"python3\", \"-m\", \"unittest\"]."},
                    "cwd": {"type": "string", "description": "The directory to run in, relative to the workspace."}
                },
                "required": ["argv"]
            }),
        ),
        "remember" => (
            "Remember a text for later runs of this workflow (and any that share this memory), \
             under a short key; remembering under a key again replaces what it held. Keep each \
             text to one fact or decision.",
            json!({
                "type": "object",
                "properties": {
                    "key": {"type": "string", "description": "A short name for it, e.g. `build-command`."},
                    "text": {"type": "string", "description": "What to remember (at most 8 KiB)."}
                },
                "required": ["key", "text"]
            }),
        ),
        "recall" => (
            "Recall what was remembered: the entries (key and text) that share the most words \
             with `query`, best first, at most 10; an empty query gives the most recent.",
            json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Words to look for, e.g. `build command`."}
                },
                "required": ["query"]
            }),
        ),
        "ask_person" => (
            "Ask the person supervising you a question, when you cannot go on without their \
             answer. Returns what they reply.",
            json!({
                "type": "object",
                "properties": {
                    "question": {"type": "string", "description": "The question, in full."}
                },
                "required": ["question"]
            }),
        ),
        _ => return None,
    };
    Some(ToolSpec {
        name: name.into(),
        description: description.into(),
        parameters,
    })
}
