//! Where in the input an error lies: a JSON pointer (RFC 6901) into one of the documents a
//! command is made of, built by pushing segments rather than by formatting strings.
//!
//! Records, events and dead-letter attributes carry a location as one string: a pointer
//! into the queue message (`/idempotencyKey`), into its payload (`/payload/thingName`), or
//! into the template (`template:/Resources/thing`). That spelling is made here and read
//! back here, nowhere else. The REST facade, whose body *is* the payload, shows
//! [`Location::pointer`], the part inside the document.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::bounded_to;

/// The document a [`Location`] points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Document {
    /// The whole message or request as received: the queue envelope (`/type`,
    /// `/idempotencyKey`), or a bulk task's request as its row results name it
    /// (`/parameters/3/ThingName`).
    Message,
    /// The command's payload, which is the REST request body.
    Payload,
    /// The provisioning template.
    Template,
}

impl Document {
    /// What the stored spelling puts before the pointer.
    const fn prefix(self) -> &'static str {
        match self {
            Self::Message => "",
            Self::Payload => "/payload",
            Self::Template => "template:",
        }
    }
}

/// A location in a command's input: a document and an RFC 6901 pointer into it.
///
/// Dereferences to its stored spelling (`/payload/thingName`), the form records, events
/// and logs show.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    document: Document,
    /// The stored spelling: the document's prefix, then the pointer.
    text: String,
}

impl Location {
    /// The root of the queue message (or of a bulk task's request).
    pub fn message() -> Self {
        Self { document: Document::Message, text: String::new() }
    }

    /// The root of the command's payload (the REST body).
    pub fn payload() -> Self {
        Self { document: Document::Payload, text: Document::Payload.prefix().to_owned() }
    }

    /// The root of the template.
    pub fn template() -> Self {
        Self { document: Document::Template, text: Document::Template.prefix().to_owned() }
    }

    /// This location's member or element `segment`, escaped so that a key holding `/` or
    /// `~` stays one segment.
    #[must_use]
    pub fn child(mut self, segment: impl fmt::Display) -> Self {
        self.push(segment);
        self
    }

    /// Appends `segment` (escaped). A message's `payload` member is the payload's root.
    pub fn push(&mut self, segment: impl fmt::Display) {
        let segment = segment.to_string();
        if self.document == Document::Message && self.text.is_empty() && segment == "payload" {
            *self = Self::payload();
            return;
        }
        self.text.push('/');
        for c in segment.chars() {
            match c {
                '~' => self.text.push_str("~0"),
                '/' => self.text.push_str("~1"),
                c => self.text.push(c),
            }
        }
    }

    /// This location followed by `pointer`, a pointer already escaped (from a parser or a
    /// schema validator), appended as it is.
    #[must_use]
    pub fn join(mut self, pointer: &str) -> Self {
        if !(self.text.is_empty() && pointer == "/") {
            self.text.push_str(pointer);
        }
        self
    }

    /// `base` followed by the path at which serde met an error, segment by segment.
    #[must_use]
    pub fn of_serde_path(base: Self, path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        path.iter().fold(base, |at, segment| match segment {
            Segment::Seq { index } => at.child(index),
            Segment::Map { key } | Segment::Enum { variant: key } => at.child(key),
            Segment::Unknown => at.child('?'),
        })
    }

    /// Reads a stored spelling back. A pointer that starts with a `/payload` segment is in
    /// the payload; `template:` names the template; anything else is in the message.
    pub fn parse(text: &str) -> Self {
        if text == "/" {
            return Self::message();
        }
        if let Some(pointer) = text.strip_prefix(Document::Template.prefix()) {
            return Self::template().join(pointer);
        }
        let prefix = Document::Payload.prefix();
        if let Some(rest) = text.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return Self { document: Document::Payload, text: format!("{prefix}{rest}") };
        }
        Self { document: Document::Message, text: text.to_owned() }
    }

    /// The document pointed into.
    pub fn document(&self) -> Document {
        self.document
    }

    /// The pointer inside its document (`/` for the document's root).
    pub fn pointer(&self) -> &str {
        match &self.text[self.document.prefix().len()..] {
            "" => "/",
            pointer => pointer,
        }
    }

    /// The location cut to `max` characters, so that a huge key is never repeated whole.
    #[must_use]
    pub(crate) fn capped(mut self, max: usize) -> Self {
        self.text = bounded_to(&self.text, max.max(self.document.prefix().len()));
        self
    }
}

impl Deref for Location {
    type Target = str;

    fn deref(&self) -> &str {
        // The root of the message is the whole message: `/`, as RFC 6901 tools print it.
        if self.text.is_empty() { "/" } else { &self.text }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl From<&str> for Location {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl From<String> for Location {
    fn from(text: String) -> Self {
        Self::parse(&text)
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self::parse(&text))
    }
}
