//! The JSON-RPC body of an MCP request, read strictly for the operations it asks for.
//!
//! A body that the scope check cannot read the way every server would read it is refused, never
//! taken as "no operation": it must be strict UTF-8 JSON without a byte-order mark; a message is
//! an object, a batch a non-empty array of objects; the members that name the operation
//! (`jsonrpc`, `method`, `id`, `params`, and in `params` the members that name targets: `name`,
//! `uri`, `taskId`, whatever the method) appear at most once, and no other member is one of
//! them (or, in `params`, the one naming the method's target) in another case — a key that an ASCII,
//! Unicode-simple-folding or .NET-invariant case-insensitive reader would take for one of them
//! (`Method`, `NAME`, `paramſ`…) is refused. A method that acts on a named target (`tools/call`,
//! `resources/read`, `tasks/get`…) must carry the name as a string.
//!
//! Only what the check needs is extracted: keys and names are borrowed from the body where they
//! have no escapes, other values are skipped without being built, and a batch is folded message
//! by message, so a large body of `[{},{},…]` costs no memory beyond the body itself.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Why a body cannot be read unambiguously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyProblem {
    /// Not UTF-8, a byte-order mark, not JSON, trailing data, or not JSON-RPC in shape.
    Malformed,
    /// A member given twice, or in another case.
    Ambiguous,
}

/// A refused body: what kind of problem, and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyError {
    pub(crate) problem: BodyProblem,
    pub(crate) detail: String,
}

impl BodyError {
    fn malformed(detail: impl Into<String>) -> Self {
        Self {
            problem: BodyProblem::Malformed,
            detail: detail.into(),
        }
    }
}

/// One operation a message asks for: its method and, for methods that act on a named target,
/// that name (`params.name`, `params.uri` or `params.taskId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operation<'a> {
    pub(crate) method: Cow<'a, str>,
    pub(crate) name: Option<Cow<'a, str>>,
}

/// The `params` member that names what a method acts on (as MCP's `Mcp-Name` header does).
pub(crate) fn name_member(method: &str) -> Option<NameMember> {
    match method {
        "tools/call" | "prompts/get" => Some(NameMember::Name),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some(NameMember::Uri),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some(NameMember::TaskId),
        _ => None,
    }
}

/// A member of `params` that names a method's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameMember {
    Name,
    Uri,
    TaskId,
}

impl NameMember {
    const ALL: [Self; 3] = [Self::Name, Self::Uri, Self::TaskId];

    fn key(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Uri => "uri",
            Self::TaskId => "taskId",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The top-level members of a JSON-RPC request that decide what it does.
const MESSAGE_MEMBERS: [&str; 4] = ["jsonrpc", "method", "id", "params"];

/// A character as case-insensitive readers compare it: ASCII lower case, and the non-ASCII
/// characters that fold to ASCII letters (Unicode simple folding: `ſ` → `s`, Kelvin `K` → `k`;
/// .NET's invariant upper-casing: `ı` → `I`, and `İ` → `i` for good measure).
fn folded(c: char) -> char {
    match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        '\u{131}' | '\u{130}' => 'i',
        _ => c.to_ascii_lowercase(),
    }
}

/// How `key` relates to `member`: the same, the same to a case-insensitive reader, or other.
fn compare(key: &str, member: &str) -> Match {
    if key == member {
        Match::Exact
    } else if key.chars().map(folded).eq(member.chars().map(folded)) {
        Match::CaseVariant
    } else {
        Match::Other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Exact,
    CaseVariant,
    Other,
}

/// Reads every operation of `body` (one message or a batch), calling `each` for each one in
/// order; messages without a method (responses) ask for nothing.
pub(crate) fn read_operations<'a>(
    body: &'a [u8],
    each: &mut dyn FnMut(Operation<'a>),
) -> Result<(), BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| BodyError::malformed("The request body is not UTF-8 text."))?;
    if text.starts_with('\u{feff}') {
        return Err(BodyError::malformed(
            "The request body starts with a byte-order mark; send JSON without one.",
        ));
    }
    let problem = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let seed = Body {
        problem: &problem,
        each,
    };
    let read = seed
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    read.map_err(|error| match problem.take() {
        Some(found) => found,
        None => BodyError::malformed(format!("The request body is not JSON: {error}.")),
    })
}

/// Fails the read with `found` (kept aside, since serde's error type carries only text).
fn fail<E: de::Error>(problem: &Cell<Option<BodyError>>, found: BodyError) -> E {
    let error = E::custom(&found.detail);
    problem.set(Some(found));
    error
}

fn ambiguous(detail: String) -> BodyError {
    BodyError {
        problem: BodyProblem::Ambiguous,
        detail,
    }
}

/// A string borrowed from the body when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The whole body: a message or a batch.
struct Body<'p, 'f, 'a> {
    problem: &'p Cell<Option<BodyError>>,
    each: &'f mut dyn FnMut(Operation<'a>),
}

impl<'a> DeserializeSeed<'a> for Body<'_, '_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> Visitor<'a> for Body<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }

    fn visit_map<M: MapAccess<'a>>(self, map: M) -> Result<(), M::Error> {
        let problem = self.problem;
        if let Some(operation) = (Message { problem }).visit_map(map)? {
            (self.each)(operation);
        }
        Ok(())
    }

    fn visit_seq<S: SeqAccess<'a>>(self, mut seq: S) -> Result<(), S::Error> {
        let problem = self.problem;
        let mut count = 0usize;
        while let Some(operation) = seq.next_element_seed(Message { problem })? {
            count += 1;
            if let Some(operation) = operation {
                (self.each)(operation);
            }
        }
        if count == 0 {
            return Err(fail(
                problem,
                BodyError::malformed("The request body is an empty batch."),
            ));
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_a_message())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.not_a_message())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.not_a_message())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.not_a_message())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_a_message())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_a_message())
    }
}

impl Body<'_, '_, '_> {
    fn not_a_message<E: de::Error>(&self) -> E {
        fail(
            self.problem,
            BodyError::malformed("The request body is neither a JSON-RPC message nor a batch."),
        )
    }
}

/// One message (an object); its operation, if it asks for one.
struct Message<'p> {
    problem: &'p Cell<Option<BodyError>>,
}

impl<'a> DeserializeSeed<'a> for Message<'_> {
    type Value = Option<Operation<'a>>;
    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// What `params` held of the members that name targets.
#[derive(Default)]
struct Params<'a> {
    is_object: bool,
    /// Per [`NameMember`]: the value if it is a string, `Err(())` if it is something else.
    names: [Option<Result<Cow<'a, str>, ()>>; 3],
    /// Per [`NameMember`]: whether a key in another case was seen.
    variants: [bool; 3],
}

impl<'a> Visitor<'a> for Message<'_> {
    type Value = Option<Operation<'a>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message (an object)")
    }

    fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let problem = self.problem;
        let mut seen = [false; 4];
        let mut method: Option<Cow<'a, str>> = None;
        let mut params: Option<Params<'a>> = None;
        while let Some(Text(key)) = map.next_key::<Text<'a>>()? {
            let mut member = None;
            for (index, name) in MESSAGE_MEMBERS.iter().enumerate() {
                match compare(&key, name) {
                    Match::Exact => member = Some(index),
                    Match::CaseVariant => {
                        return Err(fail(
                            problem,
                            ambiguous(format!(
                                "The message has a member {key:?}, which some readers take for {name:?}."
                            )),
                        ));
                    }
                    Match::Other => {}
                }
            }
            let Some(index) = member else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(fail(
                    problem,
                    ambiguous(format!("The message has more than one {key:?} member.")),
                ));
            }
            match MESSAGE_MEMBERS[index] {
                "method" => {
                    let value = map.next_value::<Text<'a>>().map_err(|_| {
                        fail::<M::Error>(
                            problem,
                            BodyError::malformed("The message's method is not a string."),
                        )
                    })?;
                    method = Some(value.0);
                }
                "params" => params = Some(map.next_value_seed(ParamsSeed { problem })?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(method) = method else {
            return Ok(None);
        };
        let Some(member) = name_member(&method) else {
            return Ok(Some(Operation { method, name: None }));
        };
        let params = params.unwrap_or_default();
        if params.variants[member.index()] {
            return Err(fail(
                problem,
                ambiguous(format!(
                    "The params of {method:?} have a member that some readers take for {:?}.",
                    member.key()
                )),
            ));
        }
        let mut names = params.names;
        match names[member.index()].take() {
            Some(Ok(name)) if params.is_object => Ok(Some(Operation {
                method,
                name: Some(name),
            })),
            _ => Err(fail(
                problem,
                BodyError::malformed(format!(
                    "A {method:?} message needs params.{} as a string.",
                    member.key()
                )),
            )),
        }
    }

    fn visit_seq<S: SeqAccess<'a>>(self, _: S) -> Result<Self::Value, S::Error> {
        Err(self.not_an_object())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(self.not_an_object())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(self.not_an_object())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(self.not_an_object())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(self.not_an_object())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(self.not_an_object())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.not_an_object())
    }
}

impl Message<'_> {
    fn not_an_object<E: de::Error>(&self) -> E {
        fail(
            self.problem,
            BodyError::malformed("A message of the batch is not a JSON object."),
        )
    }
}

/// `params`: an object whose name members are read, or anything else (skipped).
struct ParamsSeed<'p> {
    problem: &'p Cell<Option<BodyError>>,
}

impl<'a> DeserializeSeed<'a> for ParamsSeed<'_> {
    type Value = Params<'a>;
    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> Visitor<'a> for ParamsSeed<'_> {
    type Value = Params<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("params")
    }

    fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut params = Params {
            is_object: true,
            ..Params::default()
        };
        while let Some(Text(key)) = map.next_key::<Text<'a>>()? {
            let mut exact = None;
            for member in NameMember::ALL {
                match compare(&key, member.key()) {
                    Match::Exact => exact = Some(member),
                    Match::CaseVariant => params.variants[member.index()] = true,
                    Match::Other => {}
                }
            }
            let Some(member) = exact else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let slot = &mut params.names[member.index()];
            if slot.is_some() {
                return Err(fail(
                    self.problem,
                    ambiguous(format!("The params have more than one {key:?} member.")),
                ));
            }
            *slot = Some(map.next_value::<StringOrOther<'a>>()?.0);
        }
        Ok(params)
    }

    fn visit_seq<S: SeqAccess<'a>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Params::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Params::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Params::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Params::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Params::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Params::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Params::default())
    }
}

/// A value that is kept when it is a string, and skipped (as `Err(())`) otherwise.
struct StringOrOther<'a>(Result<Cow<'a, str>, ()>);

impl<'a> de::Deserialize<'a> for StringOrOther<'a> {
    fn deserialize<D: Deserializer<'a>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'a> Visitor<'a> for V {
            type Value = StringOrOther<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'a str) -> Result<Self::Value, E> {
                Ok(StringOrOther(Ok(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOrOther(Ok(Cow::Owned(v.to_owned()))))
            }
            fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StringOrOther(Err(())))
            }
            fn visit_seq<S: SeqAccess<'a>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StringOrOther(Err(())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(StringOrOther(Err(())))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(StringOrOther(Err(())))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(StringOrOther(Err(())))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(StringOrOther(Err(())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(StringOrOther(Err(())))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operations(body: &str) -> Result<Vec<(String, Option<String>)>, BodyProblem> {
        let mut found = Vec::new();
        read_operations(body.as_bytes(), &mut |op| {
            found.push((op.method.into_owned(), op.name.map(Cow::into_owned)));
        })
        .map(|()| found)
        .map_err(|e| e.problem)
    }

    fn one(method: &str, name: Option<&str>) -> Vec<(String, Option<String>)> {
        vec![(method.to_owned(), name.map(str::to_owned))]
    }

    #[test]
    fn operations_of_messages_and_batches() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create","arguments":{"name":"x","NAME":1}}}"#;
        assert_eq!(operations(call), Ok(one("tools/call", Some("create"))));
        assert_eq!(
            operations(
                r#"{"params":{"uri":"file:///a"},"method":"resources/read","id":1,"jsonrpc":"2.0"}"#
            ),
            Ok(one("resources/read", Some("file:///a")))
        );
        assert_eq!(
            operations(r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t1"}}"#),
            Ok(one("tasks/get", Some("t1")))
        );
        assert_eq!(
            operations(
                r#"{"jsonrpc":"2.0","method":"tools\/call","params":{"name":"cr\u0065ate"}}"#
            ),
            Ok(one("tools/call", Some("create")))
        );
        assert_eq!(
            operations(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Ok(vec![])
        );
        assert_eq!(
            operations(
                r#"[{"method":"tools/list","params":[1]},{"id":1,"result":{}},{"method":"ping"}]"#
            ),
            Ok(vec![
                ("tools/list".to_owned(), None),
                ("ping".to_owned(), None)
            ])
        );
        assert_eq!(
            operations(" {\"method\":\"ping\"}\n"),
            Ok(one("ping", None))
        );
    }

    #[test]
    fn bodies_that_readers_could_read_differently_are_refused() {
        use BodyProblem::{Ambiguous, Malformed};
        for (body, problem) in [
            ("\u{feff}{\"method\":\"ping\"}", Malformed),
            ("", Malformed),
            ("{\"method\":\"ping\"} x", Malformed),
            ("{\"method\":\"ping\"}{}", Malformed),
            ("[]", Malformed),
            ("\"tools/call\"", Malformed),
            ("null", Malformed),
            ("[1]", Malformed),
            ("{\"method\":5}", Malformed),
            ("{\"method\":\"tools/call\"}", Malformed),
            (
                "{\"method\":\"tools/call\",\"params\":{\"name\":5}}",
                Malformed,
            ),
            (
                "{\"method\":\"tools/call\",\"params\":[\"create\"]}",
                Malformed,
            ),
            ("{\"method\":\"tasks/cancel\",\"params\":{}}", Malformed),
            ("{\"method\":\"ping\",\"method\":\"tools/call\"}", Ambiguous),
            ("{\"method\":\"ping\",\"Method\":\"tools/call\"}", Ambiguous),
            ("{\"METHOD\":\"tools/call\"}", Ambiguous),
            ("{\"method\":\"ping\",\"paramſ\":{}}", Ambiguous),
            (
                "{\"jsonrpc\":\"2.0\",\"JSONRPC\":\"2.0\",\"method\":\"ping\"}",
                Ambiguous,
            ),
            ("{\"id\":1,\"iD\":2,\"method\":\"ping\"}", Ambiguous),
            ("{\"id\":1,\"id\":2,\"method\":\"ping\"}", Ambiguous),
            (
                "{\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"name\":\"b\"}}",
                Ambiguous,
            ),
            (
                "{\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"NAME\":\"b\"}}",
                Ambiguous,
            ),
            (
                "{\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"n\\u0061me\":\"b\"}}",
                Ambiguous,
            ),
            (
                "{\"method\":\"tasks/get\",\"params\":{\"taskId\":\"a\",\"taskid\":\"b\"}}",
                Ambiguous,
            ),
            (
                "{\"method\":\"tasks/get\",\"params\":{\"taſkId\":\"a\",\"taskId\":\"b\"}}",
                Ambiguous,
            ),
            (
                "{\"method\":\"tools/call\",\"params\":{\"name\":\"a\"},\"params\":{\"name\":\"b\"}}",
                Ambiguous,
            ),
        ] {
            assert_eq!(operations(body).err(), Some(problem), "{body:?}");
        }
        assert!(read_operations(b"{\"method\":\"\xff\"}", &mut |_| {}).is_err());
    }
}
