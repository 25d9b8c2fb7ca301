//! The values PHP's `serialize()` writes, as data: what the session codecs
//! decode into and encode from.

/// An array key (PHP canonicalises decimal-integer string keys to ints).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// `i:N;`
    Int(i64),
    /// `s:N:"…";` (bytes, not necessarily UTF-8)
    Str(Vec<u8>),
}

/// One PHP value. (`PartialEq` compares floats as floats: `NAN` is not
/// equal to itself.)
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `N;`
    Null,
    /// `b:0;` / `b:1;`
    Bool(bool),
    /// `i:N;`
    Int(i64),
    /// `d:…;` including `INF`, `-INF`, `NAN` and `-0`.
    Float(f64),
    /// `s:N:"…";`: a byte string.
    Str(Vec<u8>),
    /// `a:N:{…}`: an ordered map.
    Array(Vec<(Key, Value)>),
    /// `O:…`: an object with its class and properties. Property names are
    /// kept as PHP mangles them (`\0Class\0name` private, `\0*\0name`
    /// protected).
    Object(Box<Object>),
    /// `C:…`: an object of a class implementing `Serializable`, with its
    /// own opaque payload.
    Custom {
        /// The class name.
        class: Vec<u8>,
        /// What its `serialize()` method returned.
        data: Vec<u8>,
    },
    /// `E:…`: an enum case, `Class:Case`.
    Enum {
        /// The enum's class name.
        class: Vec<u8>,
        /// The case name.
        case: Vec<u8>,
    },
    /// `R:n;` (a PHP reference `&`, `object: false`) or `r:n;` (the same
    /// object again, `object: true`): `slot` numbers values in the order
    /// PHP's serializer counts them.
    Ref {
        /// The 1-based slot number PHP wrote.
        slot: u32,
        /// `r` rather than `R`.
        object: bool,
    },
}

/// An object's class and properties.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// The class name.
    pub class: Vec<u8>,
    /// Properties in order; names mangled as PHP writes them (`__serialize`
    /// objects may have int keys).
    pub props: Vec<(Key, Value)>,
}

impl Value {
    /// Equality that compares floats by their bits, so `NAN` equals
    /// itself and `-0.0` differs from `0.0` (what a round trip must keep).
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Array(a), Value::Array(b)) => same_members(a, b),
            (Value::Object(a), Value::Object(b)) => {
                a.class == b.class && same_members(&a.props, &b.props)
            }
            (a, b) => a == b,
        }
    }
}

/// Member lists equal key by key, values by [`Value::same`].
pub(crate) fn same_members(a: &[(Key, Value)], b: &[(Key, Value)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && va.same(vb))
}
