//! The in-memory store (tests; state is lost when the process ends).
