//! PHP's sessions: the values `serialize()` writes, the three session
//! serializers (`php`, `php_serialize`, `php_binary`), a JSON view, and
//! the stores PHP keeps them in.

pub mod format;
pub mod json;
pub mod path;
mod refs;
pub mod serialize;
mod value;

pub use format::{EncodeError, Serializer, SessionData, decode, encode};
pub use json::{from_json, value_to_json};
pub use path::PathError;
pub use serialize::{DecodeError, decode_value, encode_value};
pub use value::{Key, Object, Value};

pub mod files;
mod settings;
pub use settings::{DEFAULT_PREFIX, HELP as OPTIONS_HELP, SessionSettings};
mod store;
pub use store::{Patch, Session, StoreError, StoreSpec, cookie, file_path, valid_id};
