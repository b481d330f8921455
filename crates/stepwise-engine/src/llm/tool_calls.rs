//! Putting a reply's tool calls together from the pieces its protocol gives (a whole reply's
//! calls, or a stream's fragments of each), within bounds: at most
//! [`MAX_TOOL_CALLS_PER_REPLY`] calls, names and ids of at most [`MAX_TOOL_NAME_BYTES`], the
//! arguments counted with the text against the reply's size ceiling, each a JSON object no
//! deeper than any recorded value may be.

use serde_json::Value;
use stepwise_core::json_depth::{MAX_VALUE_DEPTH, deeper_than};
use stepwise_core::llm::{
    MAX_TOOL_CALLS_PER_REPLY, MAX_TOOL_NAME_BYTES, MAX_TOOL_SIGNATURE_BYTES, ToolCall,
};

use super::error::BadReply;
use super::protocol::ToolCallPiece;

/// A reply's tool calls, as their pieces arrive.
#[derive(Default)]
pub(crate) struct ToolCalls {
    calls: Vec<Building>,
    /// Bytes of arguments so far.
    bytes: usize,
}

struct Building {
    index: Option<u64>,
    id: Option<String>,
    name: String,
    arguments: String,
    signature: Option<String>,
}

impl ToolCalls {
    /// Bytes of arguments so far (counted with the text against the reply's ceiling).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a piece: to the call of its index; without an index, as a new call if it names
    /// one (an id or a tool), else to the last call (a stream that numbers nothing).
    pub(crate) fn add(&mut self, piece: ToolCallPiece) -> Result<(), BadReply> {
        let at = match piece.index {
            Some(index) => self.calls.iter().position(|c| c.index == Some(index)),
            None if piece.id.is_none() && piece.name.is_none() => self.calls.len().checked_sub(1),
            None => None,
        };
        let call = match at {
            Some(at) => &mut self.calls[at],
            None => {
                if self.calls.len() >= MAX_TOOL_CALLS_PER_REPLY {
                    return Err(BadReply::new(format!(
                        "it asks for more than {MAX_TOOL_CALLS_PER_REPLY} tool calls in one reply"
                    )));
                }
                self.calls.push(Building {
                    index: piece.index,
                    id: None,
                    name: String::new(),
                    arguments: String::new(),
                    signature: None,
                });
                let last = self.calls.len() - 1;
                &mut self.calls[last]
            }
        };
        if let Some(id) = piece.id.filter(|id| !id.is_empty()) {
            call.id = Some(bounded(id, "a tool call's id")?);
        }
        if let Some(name) = piece.name.filter(|name| !name.is_empty()) {
            call.name = bounded(name, "a tool's name")?;
        }
        if let Some(signature) = piece.signature.filter(|s| !s.is_empty()) {
            if signature.len() > MAX_TOOL_SIGNATURE_BYTES {
                return Err(BadReply::new(format!(
                    "a tool call's signature is longer than {MAX_TOOL_SIGNATURE_BYTES} bytes"
                )));
            }
            self.bytes += signature.len();
            call.signature = Some(signature);
        }
        self.bytes += piece.arguments.len();
        call.arguments.push_str(&piece.arguments);
        Ok(())
    }

    /// The calls, each with a name, an id (`call_<n>` where the protocol gave none) and
    /// arguments that are a JSON object (empty arguments are `{}`). A call whose arguments
    /// are not one says so (`malformed`), for the model to be told: a model cut off by its
    /// token limit, say, can try again.
    pub(crate) fn finish(self) -> Result<Vec<ToolCall>, BadReply> {
        self.calls
            .into_iter()
            .enumerate()
            .map(|(n, call)| {
                if call.name.is_empty() {
                    return Err(BadReply::new(
                        "it asks for a tool call without a tool's name",
                    ));
                }
                let (arguments, malformed) = match arguments(&call.arguments) {
                    Ok(arguments) => (arguments, None),
                    Err(problem) => (Value::Object(serde_json::Map::new()), Some(problem)),
                };
                Ok(ToolCall {
                    id: call.id.unwrap_or_else(|| format!("call_{n}")),
                    name: call.name,
                    arguments,
                    signature: call.signature,
                    malformed,
                })
            })
            .collect()
    }
}

fn bounded(text: String, what: &str) -> Result<String, BadReply> {
    if text.len() > MAX_TOOL_NAME_BYTES {
        return Err(BadReply::new(format!(
            "{what} is longer than {MAX_TOOL_NAME_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// A call's arguments text read as a JSON object, or what is wrong with it (in words for the
/// model, which wrote it).
fn arguments(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("the arguments are not JSON ({e}); were they cut off?"))?;
    if !value.is_object() {
        return Err("the arguments are not a JSON object".into());
    }
    if deeper_than(&value, MAX_VALUE_DEPTH) {
        return Err(format!(
            "the arguments are nested deeper than {MAX_VALUE_DEPTH} levels"
        ));
    }
    Ok(value)
}

/// A whole call's arguments as text, whether the protocol gives them as a JSON string (OpenAI)
/// or as a value (Anthropic's `input`, Gemini's `args`, some OpenAI-compatible servers).
pub(crate) fn arguments_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn piece(
        index: Option<u64>,
        id: Option<&str>,
        name: Option<&str>,
        args: &str,
    ) -> ToolCallPiece {
        ToolCallPiece {
            index,
            id: id.map(str::to_string),
            name: name.map(str::to_string),
            arguments: args.to_string(),
            signature: None,
        }
    }

    #[test]
    fn a_stream_that_numbers_nothing_continues_the_call_it_named_last() {
        let mut calls = ToolCalls::default();
        calls
            .add(piece(None, Some("a"), Some("read_file"), "{\"path\": "))
            .unwrap();
        calls.add(piece(None, None, None, "\"x\"}")).unwrap();
        calls
            .add(piece(None, Some("b"), Some("read_file"), "{}"))
            .unwrap();
        let calls = calls.finish().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments, json!({"path": "x"}));
        assert_eq!(calls[1].id, "b");
    }

    #[test]
    fn streamed_fragments_are_put_together_by_index() {
        let mut calls = ToolCalls::default();
        calls
            .add(piece(Some(0), Some("a"), Some("read_file"), "{\"pa"))
            .unwrap();
        calls
            .add(piece(Some(1), Some("b"), Some("list_files"), ""))
            .unwrap();
        calls
            .add(piece(Some(0), None, None, "th\": \"x.txt\"}"))
            .unwrap();
        let calls = calls.finish().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "a");
        assert_eq!(calls[0].arguments, json!({"path": "x.txt"}));
        assert_eq!(calls[1].name, "list_files");
        assert_eq!(calls[1].arguments, json!({}));
    }

    #[test]
    fn whole_calls_without_ids_are_numbered() {
        let mut calls = ToolCalls::default();
        calls.add(piece(None, None, Some("a"), "{}")).unwrap();
        calls
            .add(piece(None, None, Some("b"), "{\"n\": 1}"))
            .unwrap();
        let ids: Vec<String> = calls.finish().unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["call_0", "call_1"]);
    }

    #[test]
    fn hostile_calls_are_refused_with_what_is_wrong() {
        let finish = |pieces: Vec<ToolCallPiece>| {
            let mut calls = ToolCalls::default();
            for p in pieces {
                calls.add(p)?;
            }
            calls.finish()
        };
        let wrong = |pieces| finish(pieces).unwrap_err().0;
        // Arguments the model got wrong are its call's to be told of, not the reply's.
        let told = |args: &str| {
            finish(vec![piece(None, None, Some("t"), args)]).unwrap()[0]
                .malformed
                .clone()
                .unwrap_or_default()
        };
        assert!(told("[1]").contains("not a JSON object"));
        assert!(told("{\"a\":").contains("not JSON"));
        assert!(wrong(vec![piece(None, None, None, "{}")]).contains("without a tool's name"));
        let long = "n".repeat(MAX_TOOL_NAME_BYTES + 1);
        assert!(wrong(vec![piece(None, None, Some(&long), "{}")]).contains("longer than"));
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        assert!(told(&deep).contains("nested deeper"));
        let many = (0..=MAX_TOOL_CALLS_PER_REPLY)
            .map(|_| piece(None, None, Some("t"), "{}"))
            .collect();
        assert!(wrong(many).contains("more than 64 tool calls"));
    }
}
