//! An MCP server as the user's settings define it (`mcp_servers:`), and what makes one usable.

use std::collections::BTreeMap;

use serde::Deserialize;

/// An MCP server as the user's settings define it. Its `Debug` shows the names of the
/// variables it sets, never their values (which may be keys).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct McpServerDef {
    /// The program and its arguments (no shell), e.g. `[npx, -y, @modelcontextprotocol/server-filesystem, .]`.
    pub(crate) command: Vec<String>,
    /// Variables set for it (their values stay in the settings file, never in a run's log).
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// Variables passed through from the engine's environment, by name.
    #[serde(default)]
    pub(crate) pass_env: Vec<String>,
}

impl std::fmt::Debug for McpServerDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerDef")
            .field("command", &self.command)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("pass_env", &self.pass_env)
            .finish()
    }
}

impl McpServerDef {
    /// What is wrong with the definition of server `name`, if anything.
    pub(crate) fn check(&self, name: &str) -> Result<(), String> {
        let valid_name = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(format!(
                "`{name}` is not an MCP server's name: letters, digits, `_` and `-`, at most 32"
            ));
        }
        if self
            .command
            .first()
            .is_none_or(|program| program.is_empty())
        {
            return Err(format!(
                "MCP server `{name}` needs a `command`: the program and its arguments"
            ));
        }
        if self.command.iter().any(|arg| arg.contains('\0')) {
            return Err(format!("MCP server `{name}`: an argument holds a NUL byte"));
        }
        // Checked here, where the error names the variable and never its value (which may be
        // a key), rather than when the server starts.
        let bad_name = |var: &String| var.is_empty() || var.contains(['=', '\0']);
        for (var, value) in &self.env {
            if bad_name(var) || value.contains('\0') {
                return Err(format!(
                    "MCP server `{name}`: `env` variable `{}` needs a name without `=` and a value without NUL bytes",
                    var.replace('\0', "\\0")
                ));
            }
        }
        if let Some(var) = self.pass_env.iter().find(|var| bad_name(var)) {
            return Err(format!(
                "MCP server `{name}`: `pass_env` name `{}` is not a variable's name",
                var.replace('\0', "\\0")
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_the_variables_but_never_their_values() {
        let def = McpServerDef {
            command: vec!["server".into()],
            env: [("API_KEY".to_string(), "sk-secret-value".to_string())].into(),
            pass_env: vec!["HOME".into()],
        };
        let shown = format!("{def:?}");
        assert!(shown.contains("API_KEY"), "{shown}");
        assert!(!shown.contains("sk-secret-value"), "{shown}");
    }
}
