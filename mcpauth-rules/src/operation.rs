//! Names of MCP operations that scopes are attached to: tool names (`tools/call` with
//! `params.name`) and JSON-RPC method names.

/// Why `name` cannot be the name of a tool, in words for an error message; `None` when it can.
///
/// MCP tool names are 1 to 128 characters and have no spaces (MCP 2025-11-25, tool names); a
/// name with whitespace or a control character is refused here, as is the empty name, since no
/// client calls a tool by such a name. Other characters MCP discourages are left to the server.
///
/// ```
/// use mcpauth_rules::operation::tool_name_problem;
///
/// assert_eq!(tool_name_problem("create_todo"), None);
/// assert!(tool_name_problem("").is_some());
/// assert!(tool_name_problem("create todo").is_some());
/// ```
pub fn tool_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("a tool name cannot be empty")
    } else if has_stray_character(name) {
        Some("a tool name has no whitespace or control characters (MCP)")
    } else if name.chars().count() > 128 {
        Some("a tool name is at most 128 characters long (MCP)")
    } else {
        None
    }
}

/// Why `name` cannot be a JSON-RPC method name scopes are attached to (like `resources/read`),
/// in words for an error message; `None` when it can.
pub fn method_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("a method name cannot be empty")
    } else if has_stray_character(name) {
        Some("a method name has no whitespace or control characters")
    } else {
        None
    }
}

fn has_stray_character(name: &str) -> bool {
    name.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names() {
        for valid in ["create_todo", "admin.tools.list", "DATA_EXPORT_v2", "a"] {
            assert_eq!(tool_name_problem(valid), None, "{valid}");
        }
        let long = "x".repeat(129);
        for invalid in ["", " create", "create ", "a\tb", "a\nb", long.as_str()] {
            assert!(tool_name_problem(invalid).is_some(), "{invalid:?}");
        }
    }

    #[test]
    fn method_names() {
        assert_eq!(method_name_problem("resources/read"), None);
        for invalid in ["", "tools/call ", "tools /call"] {
            assert!(method_name_problem(invalid).is_some(), "{invalid:?}");
        }
    }
}
