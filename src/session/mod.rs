//! PHP's sessions: the values `serialize()` writes, the three session
//! serializers (`php`, `php_serialize`, `php_binary`), a JSON view, and
//! the stores PHP keeps them in.

mod value;

pub use value::{Key, Object, Value};
