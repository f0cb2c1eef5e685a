//! Scope hierarchies: a broader scope implies narrower ones ("Servers MUST account for scope
//! hierarchies", MCP 2026-07-28). The transitive closure is computed once, when the
//! configuration is built; a cycle is a configuration error.

use std::collections::HashMap;

/// What is wrong with a declared hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HierarchyError {
    /// A scope in the hierarchy is not among the declared scopes.
    #[error("the scope {0:?} is not declared: add it to the scopes or fix the spelling")]
    Undeclared(String),
    /// The scopes imply each other in a circle (first scope repeated at the end).
    #[error("the scope hierarchy has a cycle: {}", .0.join(" implies "))]
    Cycle(Vec<String>),
}

/// For each scope, every scope it implies (transitively, not itself).
#[derive(Debug, Clone, Default)]
pub struct ScopeHierarchy {
    implied: HashMap<String, Vec<String>>,
}

impl ScopeHierarchy {
    /// Builds the closure of `edges` (`scope` → the scopes it directly implies). With
    /// `declared` non-empty, every scope named must be declared.
    pub fn build(
        declared: &[String],
        edges: &[(String, Vec<String>)],
    ) -> Result<Self, HierarchyError> {
        // The same scope may be given several times: its implications add up.
        let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
        for (scope, implied) in edges {
            direct
                .entry(scope.as_str())
                .or_default()
                .extend(implied.iter().map(String::as_str));
        }
        if !declared.is_empty() {
            let named = edges
                .iter()
                .flat_map(|(scope, implied)| std::iter::once(scope).chain(implied));
            for scope in named {
                if !declared.contains(scope) {
                    return Err(HierarchyError::Undeclared(scope.clone()));
                }
            }
        }
        // Walk in declaration order, so a cycle is always reported from the same scope.
        let mut order: Vec<&str> = Vec::new();
        for (scope, _) in edges {
            if !order.contains(&scope.as_str()) {
                order.push(scope);
            }
        }
        let mut implied = HashMap::new();
        for scope in &order {
            let mut reached = Vec::new();
            let mut path = vec![*scope];
            walk(&direct, scope, &mut path, &mut reached)?;
            implied.insert((*scope).to_owned(), reached);
        }
        Ok(Self { implied })
    }

    /// Whether the `granted` scopes include `required`, directly or through the hierarchy.
    pub fn satisfies(&self, granted: &[String], required: &str) -> bool {
        granted.iter().any(|g| {
            g == required
                || self
                    .implied
                    .get(g)
                    .is_some_and(|implied| implied.iter().any(|s| s == required))
        })
    }
}

fn walk<'a>(
    direct: &HashMap<&'a str, Vec<&'a str>>,
    scope: &'a str,
    path: &mut Vec<&'a str>,
    reached: &mut Vec<String>,
) -> Result<(), HierarchyError> {
    for &next in direct.get(scope).into_iter().flatten() {
        if let Some(start) = path.iter().position(|s| *s == next) {
            let mut cycle: Vec<String> = path[start..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(next.to_owned());
            return Err(HierarchyError::Cycle(cycle));
        }
        if !reached.iter().any(|r| r == next) {
            reached.push(next.to_owned());
        }
        path.push(next);
        walk(direct, next, path, reached)?;
        path.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn implication_is_transitive() {
        let declared = s(&["admin", "write", "read", "other"]);
        let edges = vec![
            ("admin".to_owned(), s(&["write"])),
            ("write".to_owned(), s(&["read"])),
        ];
        let hierarchy = ScopeHierarchy::build(&declared, &edges).unwrap();
        assert!(hierarchy.satisfies(&s(&["admin"]), "read"));
        assert!(hierarchy.satisfies(&s(&["write"]), "read"));
        assert!(!hierarchy.satisfies(&s(&["read"]), "write"));
        assert!(!hierarchy.satisfies(&s(&["other"]), "read"));
        assert!(hierarchy.satisfies(&s(&["other", "read"]), "read"));
    }

    #[test]
    fn implications_of_one_scope_given_twice_add_up() {
        let declared = s(&["admin", "write", "read"]);
        let edges = vec![
            ("admin".to_owned(), s(&["read"])),
            ("admin".to_owned(), s(&["write"])),
        ];
        let hierarchy = ScopeHierarchy::build(&declared, &edges).unwrap();
        assert!(hierarchy.satisfies(&s(&["admin"]), "read"));
        assert!(hierarchy.satisfies(&s(&["admin"]), "write"));
    }

    #[test]
    fn cycles_and_undeclared_scopes_are_refused() {
        let declared = s(&["a", "b", "c"]);
        let cycle = vec![
            ("a".to_owned(), s(&["b"])),
            ("b".to_owned(), s(&["c"])),
            ("c".to_owned(), s(&["a"])),
        ];
        assert_eq!(
            ScopeHierarchy::build(&declared, &cycle).unwrap_err(),
            HierarchyError::Cycle(s(&["a", "b", "c", "a"]))
        );
        let own = vec![("a".to_owned(), s(&["a"]))];
        assert_eq!(
            ScopeHierarchy::build(&declared, &own).unwrap_err(),
            HierarchyError::Cycle(s(&["a", "a"]))
        );
        let undeclared = vec![("a".to_owned(), s(&["z"]))];
        assert_eq!(
            ScopeHierarchy::build(&declared, &undeclared).unwrap_err(),
            HierarchyError::Undeclared("z".to_owned())
        );
    }
}
