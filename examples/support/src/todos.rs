//! The todo list of the todo examples (`todo-manager`, `todo-broker`): one list shared by every
//! request, each todo owned by the subject that created it. The MCP tools around it decide
//! which scopes see or delete others' todos.

use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::{Value, json};

/// One todo.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Todo {
    /// `todo-<n>`.
    pub id: String,
    /// What to do.
    pub content: String,
    /// The subject that created it.
    pub owner_id: String,
}

#[derive(Debug, Default)]
struct List {
    todos: Vec<Todo>,
    next_id: u64,
}

/// The todos, shared by every request (clones share the list).
#[derive(Debug, Clone, Default)]
pub struct TodoList(Arc<Mutex<List>>);

impl TodoList {
    /// Adds a todo owned by `owner`; answers it as JSON.
    pub fn create(&self, owner: &str, content: String) -> String {
        let mut list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        list.next_id += 1;
        let todo = Todo {
            id: format!("todo-{}", list.next_id),
            content,
            owner_id: owner.to_owned(),
        };
        list.todos.push(todo.clone());
        json!(todo).to_string()
    }

    /// Every todo (`all`), or those `subject` owns; answers `{"todos": […]}`.
    pub fn list(&self, subject: &str, all: bool) -> String {
        let list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let visible: Vec<&Todo> = list
            .todos
            .iter()
            .filter(|todo| all || todo.owner_id == subject)
            .collect();
        json!({ "todos": visible }).to_string()
    }

    /// Deletes the todo `id` if `subject` owns it or `any` is allowed; answers what happened.
    pub fn delete(&self, subject: &str, id: &str, any: bool) -> String {
        let mut list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let position = list
            .todos
            .iter()
            .position(|todo| todo.id == id && (any || todo.owner_id == subject));
        let answer: Value = match position {
            Some(index) => {
                let todo = list.todos.remove(index);
                json!({ "message": format!("Todo {} deleted", todo.id), "details": todo })
            }
            None => json!({ "error": "Failed to delete todo" }),
        };
        answer.to_string()
    }
}
