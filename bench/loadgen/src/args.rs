//! `--name value` options, parsed by hand.

use std::collections::HashMap;
use std::str::FromStr;

pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
    used: std::cell::RefCell<Vec<String>>,
}

/// Options that take no value.
const FLAGS: &[&str] = &["binary", "raw", "search", "quiet", "help"];

impl Args {
    pub fn parse(items: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut it = items.peekable();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            if let Some((k, v)) = name.split_once('=') {
                values.insert(k.to_owned(), v.to_owned());
            } else if FLAGS.contains(&name) {
                flags.push(name.to_owned());
            } else {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                values.insert(name.to_owned(), v);
            }
        }
        Ok(Args {
            values,
            flags,
            used: Default::default(),
        })
    }

    pub fn flag(&self, name: &str) -> bool {
        self.used.borrow_mut().push(name.to_owned());
        self.flags.iter().any(|f| f == name)
    }

    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        Ok(self.opt(name)?.unwrap_or(default))
    }

    pub fn opt<T: FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.used.borrow_mut().push(name.to_owned());
        match self.values.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("--{name}: cannot parse {v:?}")),
        }
    }

    /// A size such as 32, 64K or 1M (K = 1024).
    pub fn size(&self, name: &str, default: usize) -> Result<usize, String> {
        let Some(v) = self.opt::<String>(name)? else {
            return Ok(default);
        };
        let (num, mul) = match v.chars().last() {
            Some('k' | 'K') => (&v[..v.len() - 1], 1024),
            Some('m' | 'M') => (&v[..v.len() - 1], 1024 * 1024),
            _ => (&v[..], 1),
        };
        num.parse::<usize>()
            .map(|n| n * mul)
            .map_err(|_| format!("--{name}: cannot parse {v:?}"))
    }

    /// Errors on options no mode asked for (typos).
    pub fn check_unused(&self) -> Result<(), String> {
        let used = self.used.borrow();
        for k in self.values.keys().chain(self.flags.iter()) {
            if !used.contains(k) {
                return Err(format!("unknown option --{k}"));
            }
        }
        Ok(())
    }
}
